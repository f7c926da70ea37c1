//! The GitHub part of the JSON API: imports, the token, push, pull requests, merge,
//! the conflict radar and "update from base". Described by `#[utoipa::path]` (see
//! `crate::openapi`).

use crate::api::ApiJson;
use crate::error::ErrorBody;
use crate::openapi::{EngineErrors, JsonErrors};
use crate::{ApiError, AppState};
use anycode_engine::{CloneProgress, Conflicts, CreatePr, GitHubStatus, Import, ImportRequest, Project, PullRequestInfo, PushOutcome, RepoMeta, UpdateOutcome};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type ApiResult<T> = Result<T, ApiError>;

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(project_conflicts))
        .routes(routes!(push))
        .routes(routes!(create_pr, refresh_pr))
        .routes(routes!(merge))
        .routes(routes!(conflicts))
        .routes(routes!(update_from_base))
        .routes(routes!(status))
        .routes(routes!(save_token, remove_token))
        .routes(routes!(repos))
        .routes(routes!(issues))
}

/// A project's state in the API.
#[derive(Serialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProjectStatus {
    /// Added: tasks can be made.
    Ready,
    /// An import whose clone runs (see `progress`).
    Cloning,
    /// An import that failed (see `error`); nothing is left on disk.
    Failed,
}

/// A project, or an import (a clone in progress or failed) that will be one.
#[derive(Serialize, ToSchema)]
#[schema(as = Project)]
pub(crate) struct ProjectView {
    /// 12 hex digits.
    id: String,
    /// Display name: the repository folder's name.
    name: String,
    /// Absolute path of the repository's working directory on the host.
    path: String,
    /// The branch HEAD pointed at when the project was added; `null` for imports.
    default_branch: Option<String>,
    /// `ready`, or `cloning`/`failed` for imports.
    status: ProjectStatus,
    /// `owner/name` when the repository is on GitHub.
    github: Option<String>,
    /// Imports: what is cloned (URL without credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    /// Imports: the clone's progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<CloneProgress>,
    /// Imports: why it failed (`null` while cloning).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Option<String>>,
    /// Imports: the failure's stable code.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<Option<String>>,
}

/// A project as the API shows it: `status` `ready`, plus `github` (`owner/name`)
/// when its `origin` is on GitHub.
pub(crate) async fn project_view(st: &AppState, p: Project) -> ProjectView {
    let github = st.engine.project_github(&p).await.map(|r| r.to_string());
    ProjectView {
        id: p.id,
        name: p.name,
        path: p.path,
        default_branch: Some(p.default_branch),
        status: ProjectStatus::Ready,
        github,
        url: None,
        progress: None,
        error: None,
        error_code: None,
    }
}

/// An import as the API shows it: the project's fields, `status` `cloning` or
/// `failed`, `progress`, `error`.
pub(crate) fn import_view(i: &Import) -> ProjectView {
    ProjectView {
        id: i.id.clone(),
        name: i.name.clone(),
        path: i.path.clone(),
        default_branch: None,
        status: if i.status == "failed" { ProjectStatus::Failed } else { ProjectStatus::Cloning },
        github: i.github.clone(),
        url: Some(i.url.clone()),
        progress: Some(i.progress.clone()),
        error: Some(i.error.clone()),
        error_code: Some(i.error_code.map(str::to_string)),
    }
}

/// Imports then projects.
pub(crate) async fn list_projects(st: &AppState) -> ApiResult<Vec<ProjectView>> {
    let mut out: Vec<ProjectView> = st.engine.imports().iter().map(import_view).collect();
    for p in st.engine.projects().await? {
        out.push(project_view(st, p).await);
    }
    Ok(out)
}

/// `POST /api/projects {"url", "path"?}`: starts an import (202).
pub(crate) async fn import(st: &AppState, url: String, path: Option<String>) -> ApiResult<(StatusCode, Json<ProjectView>)> {
    let i = st.engine.import_project(ImportRequest { url, path }).await?;
    Ok((StatusCode::ACCEPTED, Json(import_view(&i))))
}

/// The conflict radar across a project's tasks.
#[utoipa::path(get, path = "/projects/{id}/conflicts", tag = "github", params(("id" = String, Path, description = "Project id")), responses((status = 200, description = "Each task's merge check and overlaps", body = Vec<Conflicts>), EngineErrors))]
async fn project_conflicts(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Vec<Conflicts>>> {
    Ok(Json(st.engine.project_conflicts(&id).await?))
}

/// Push the task's branch to the project's `origin` (the work is brought out of the
/// sandbox first).
#[utoipa::path(post, path = "/tasks/{id}/push", tag = "github", params(("id" = String, Path, description = "Task id")), responses((status = 200, description = "Pushed", body = PushOutcome), EngineErrors))]
async fn push(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<PushOutcome>> {
    Ok(Json(st.engine.push_task(&id).await?))
}

/// The optional body of `POST /api/tasks/{id}/pr`.
#[derive(Deserialize, Default, ToSchema)]
struct CreatePrBody {
    /// Title; the task's title when absent.
    title: Option<String>,
    /// Body; generated when absent (prompt, commits, diffstat).
    body: Option<String>,
    /// Base branch; the task's base when absent.
    base: Option<String>,
    /// Open as a draft.
    draft: Option<bool>,
}

/// The body is optional: none opens a pull request with the defaults.
fn optional_json<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", e.to_string()))
}

/// Push the branch and open a pull request on GitHub.
#[utoipa::path(post, path = "/tasks/{id}/pr", tag = "github", params(("id" = String, Path, description = "Task id")), request_body(content = Option<CreatePrBody>, description = "Optional"),
    responses((status = 201, description = "Opened", body = PullRequestInfo), (status = 400, description = "INVALID_JSON", body = ErrorBody), EngineErrors))]
async fn create_pr(State(st): State<AppState>, Path(id): Path<String>, body: axum::body::Bytes) -> ApiResult<(StatusCode, Json<PullRequestInfo>)> {
    let b: CreatePrBody = optional_json(&body)?;
    let req = CreatePr { title: b.title, body: b.body, base: b.base, draft: b.draft.unwrap_or(false) };
    let pr = st.engine.create_pr(&id, req).await?;
    Ok((StatusCode::CREATED, Json(pr)))
}

/// The task's pull request, read again from GitHub.
#[utoipa::path(get, path = "/tasks/{id}/pr", tag = "github", params(("id" = String, Path, description = "Task id")), responses((status = 200, description = "The pull request", body = PullRequestInfo), EngineErrors))]
async fn refresh_pr(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<PullRequestInfo>> {
    Ok(Json(st.engine.refresh_pr(&id).await?))
}

/// The body of `POST /api/tasks/{id}/merge`.
#[derive(Deserialize, ToSchema)]
struct MergeBody {
    /// `merge`, `squash` or `rebase` (default `merge`).
    #[schema(value_type = Option<anycode_engine::MergeMethod>)]
    method: Option<String>,
    /// Delete the branch on GitHub after merging.
    delete_branch: Option<bool>,
}

/// A merged pull request.
#[derive(Serialize, ToSchema)]
struct Merged {
    /// The merge commit on the base.
    sha: String,
    /// Whether GitHub merged it.
    merged: bool,
    /// GitHub's message.
    message: String,
    /// The pull request as it is now.
    pr: PullRequestInfo,
}

/// Merge the task's pull request on GitHub.
#[utoipa::path(post, path = "/tasks/{id}/merge", tag = "github", params(("id" = String, Path, description = "Task id")), request_body = MergeBody, responses((status = 200, description = "Merged", body = Merged), JsonErrors, EngineErrors))]
async fn merge(State(st): State<AppState>, Path(id): Path<String>, ApiJson(b): ApiJson<MergeBody>) -> ApiResult<Json<Merged>> {
    let method = b.method.unwrap_or_else(|| "merge".into());
    let (result, pr) = st.engine.merge_pr(&id, &method, b.delete_branch.unwrap_or(false)).await?;
    Ok(Json(Merged { sha: result.sha, merged: result.merged, message: result.message, pr }))
}

/// The conflict radar for one task: its merge check against the base and overlaps
/// with other tasks.
#[utoipa::path(get, path = "/tasks/{id}/conflicts", tag = "github", params(("id" = String, Path, description = "Task id")), responses((status = 200, description = "The radar", body = Conflicts), EngineErrors))]
async fn conflicts(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Conflicts>> {
    Ok(Json(st.engine.conflicts(&id).await?))
}

/// Merge the base branch into the task's branch (in the sandbox).
#[utoipa::path(post, path = "/tasks/{id}/update-from-base", tag = "github", params(("id" = String, Path, description = "Task id")), responses((status = 200, description = "Updated", body = UpdateOutcome), EngineErrors))]
async fn update_from_base(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<UpdateOutcome>> {
    Ok(Json(st.engine.update_from_base(&id).await?))
}

/// The GitHub token's state (never the token).
#[utoipa::path(get, path = "/github", tag = "github", responses((status = 200, description = "State", body = GitHubStatus), EngineErrors))]
async fn status(State(st): State<AppState>) -> ApiResult<Json<GitHubStatus>> {
    Ok(Json(st.engine.github_status().await?))
}

/// The body of `PUT /api/github/token`.
#[derive(Deserialize, ToSchema)]
struct TokenBody {
    /// A GitHub token.
    token: String,
}

/// Save the GitHub token in the OS keyring (owner only).
#[utoipa::path(put, path = "/github/token", tag = "github", request_body = TokenBody, responses((status = 200, description = "Saved", body = GitHubStatus), JsonErrors, EngineErrors))]

async fn save_token(State(st): State<AppState>, ApiJson(b): ApiJson<TokenBody>) -> ApiResult<Json<GitHubStatus>> {
    Ok(Json(st.engine.save_github_token(&b.token).await?))
}

/// Remove the GitHub token from the OS keyring (owner only).
#[utoipa::path(delete, path = "/github/token", tag = "github", responses((status = 200, description = "Removed", body = GitHubStatus), EngineErrors))]
async fn remove_token(State(st): State<AppState>) -> ApiResult<Json<GitHubStatus>> {
    Ok(Json(st.engine.remove_github_token().await?))
}

/// The token user's repositories on GitHub.
#[utoipa::path(get, path = "/github/repos", tag = "github", responses((status = 200, description = "Repositories", body = Vec<RepoMeta>), EngineErrors))]
async fn repos(State(st): State<AppState>) -> ApiResult<Json<Vec<RepoMeta>>> {
    Ok(Json(st.engine.github_repos().await?))
}

/// The open issues of the project's GitHub repository (its `origin`), newest
/// first, pull requests left out: a new task can start from one (`issue` of
/// `POST /api/projects/{id}/tasks`).
#[utoipa::path(get, path = "/projects/{id}/github/issues", tag = "github", params(("id" = String, Path, description = "Project id")),
    responses((status = 200, description = "Open issues", body = Vec<anycode_engine::Issue>), EngineErrors))]
async fn issues(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Vec<anycode_engine::Issue>>> {
    Ok(Json(st.engine.github_issues(&id).await?))
}
