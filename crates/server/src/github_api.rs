//! The GitHub part of the JSON API: imports, the token, push, pull requests, merge,
//! the conflict radar and "update from base". Shapes are in `openapi.json`.

use crate::api::ApiJson;
use crate::{ApiError, AppState};
use anycode_engine::{Conflicts, CreatePr, GitHubStatus, Import, ImportRequest, Project, PullRequestInfo, PushOutcome, RepoMeta, UpdateOutcome};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/conflicts", get(project_conflicts))
        .route("/tasks/{id}/push", post(push))
        .route("/tasks/{id}/pr", post(create_pr).get(refresh_pr))
        .route("/tasks/{id}/merge", post(merge))
        .route("/tasks/{id}/conflicts", get(conflicts))
        .route("/tasks/{id}/update-from-base", post(update_from_base))
        .route("/github", get(status))
        .route("/github/token", put(save_token).delete(remove_token))
        .route("/github/repos", get(repos))
}

/// A project as the API shows it: `status` `ready`, plus `github` (`owner/name`)
/// when its `origin` is on GitHub.
pub(crate) async fn project_view(st: &AppState, p: Project) -> Value {
    let github = st.engine.project_github(&p).await.map(|r| r.to_string());
    let mut v = serde_json::to_value(&p).unwrap_or(Value::Null);
    v["status"] = json!("ready");
    v["github"] = json!(github);
    v
}

/// An import as the API shows it: the project's fields, `status` `cloning` or
/// `failed`, `progress`, `error`.
pub(crate) fn import_view(i: &Import) -> Value {
    json!({
        "id": i.id, "name": i.name, "path": i.path, "default_branch": null, "status": i.status,
        "url": i.url, "github": i.github, "progress": i.progress,
        "error": i.error, "error_code": i.error_code,
    })
}

/// Imports then projects.
pub(crate) async fn list_projects(st: &AppState) -> ApiResult<Vec<Value>> {
    let mut out: Vec<Value> = st.engine.imports().iter().map(import_view).collect();
    for p in st.engine.projects().await? {
        out.push(project_view(st, p).await);
    }
    Ok(out)
}

/// `POST /api/projects {"url", "path"?}`: starts an import (202).
pub(crate) async fn import(st: &AppState, url: String, path: Option<String>) -> ApiResult<(StatusCode, Json<Value>)> {
    let i = st.engine.import_project(ImportRequest { url, path }).await?;
    Ok((StatusCode::ACCEPTED, Json(import_view(&i))))
}

async fn project_conflicts(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Vec<Conflicts>>> {
    Ok(Json(st.engine.project_conflicts(&id).await?))
}

async fn push(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<PushOutcome>> {
    Ok(Json(st.engine.push_task(&id).await?))
}

#[derive(Deserialize, Default)]
struct CreatePrBody {
    title: Option<String>,
    body: Option<String>,
    base: Option<String>,
    draft: Option<bool>,
}

/// The body is optional: none opens a pull request with the defaults.
fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", e.to_string()))
}

async fn create_pr(State(st): State<AppState>, Path(id): Path<String>, body: axum::body::Bytes) -> ApiResult<(StatusCode, Json<PullRequestInfo>)> {
    let b: CreatePrBody = optional_json(&body)?;
    let req = CreatePr { title: b.title, body: b.body, base: b.base, draft: b.draft.unwrap_or(false) };
    let pr = st.engine.create_pr(&id, req).await?;
    Ok((StatusCode::CREATED, Json(pr)))
}

async fn refresh_pr(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<PullRequestInfo>> {
    Ok(Json(st.engine.refresh_pr(&id).await?))
}

#[derive(Deserialize)]
struct MergeBody {
    method: Option<String>,
    delete_branch: Option<bool>,
}

async fn merge(State(st): State<AppState>, Path(id): Path<String>, ApiJson(b): ApiJson<MergeBody>) -> ApiResult<Json<Value>> {
    let method = b.method.unwrap_or_else(|| "merge".into());
    let (result, pr) = st.engine.merge_pr(&id, &method, b.delete_branch.unwrap_or(false)).await?;
    Ok(Json(json!({"sha": result.sha, "merged": result.merged, "message": result.message, "pr": pr})))
}

async fn conflicts(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Conflicts>> {
    Ok(Json(st.engine.conflicts(&id).await?))
}

async fn update_from_base(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<UpdateOutcome>> {
    Ok(Json(st.engine.update_from_base(&id).await?))
}

async fn status(State(st): State<AppState>) -> ApiResult<Json<GitHubStatus>> {
    Ok(Json(st.engine.github_status().await?))
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

async fn save_token(State(st): State<AppState>, ApiJson(b): ApiJson<TokenBody>) -> ApiResult<Json<GitHubStatus>> {
    Ok(Json(st.engine.save_github_token(&b.token).await?))
}

async fn remove_token(State(st): State<AppState>) -> ApiResult<Json<GitHubStatus>> {
    Ok(Json(st.engine.remove_github_token().await?))
}

async fn repos(State(st): State<AppState>) -> ApiResult<Json<Vec<RepoMeta>>> {
    Ok(Json(st.engine.github_repos().await?))
}
