//! The JSON API under `/api`. Shapes are documented in `openapi.json`.

use crate::{ApiError, AppState};
use anycode_engine::{Agent, Credential, NewTask, Secret, Task, TaskStatus, TerminalInfo};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(crate::github_api::routes())
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/projects", get(list_projects).post(add_project))
        .route("/projects/{id}", get(get_project).delete(delete_project))
        .route("/projects/{id}/branches", get(branches))
        .route("/projects/{id}/tasks", post(create_task))
        .route("/tasks", get(list_tasks))
        .route("/tasks/{id}", get(get_task).delete(delete_task))
        .route("/tasks/{id}/stop", post(stop_task))
        .route("/tasks/{id}/start", post(start_task))
        .route("/tasks/{id}/terminals", post(open_terminal))
        .route("/tasks/{id}/diff", get(diff))
        .route("/tasks/{id}/commit", post(commit))
        .route("/terminals/{id}", delete(close_terminal))
        .route("/agents", get(list_agents))
        .route("/credentials/status", get(credentials_status))
        .route("/credentials/{name}", put(save_credential).delete(delete_credential))
        .route("/terminals/{id}/recording", get(recording))
        .merge(crate::pairing::routes())
        .merge(crate::hooks::api_routes())
        .merge(crate::network_api::routes())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API endpoint") })
}

/// `Json` whose rejections are API errors (`INVALID_JSON`) instead of plain text.
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => {
                let status = match rej {
                    JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    _ => StatusCode::BAD_REQUEST,
                };
                Err(ApiError::new(status, "INVALID_JSON", rej.body_text()))
            }
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// A task as the API shows it (also the `task` of `WS /ws/events` messages).
#[derive(Serialize)]
pub(crate) struct TaskView {
    id: String,
    project_id: String,
    title: String,
    agent: Agent,
    branch: String,
    base: String,
    base_sha: String,
    prompt: Option<String>,
    status: TaskStatus,
    exit_code: Option<i64>,
    error: Option<String>,
    container_id: Option<String>,
    worktree: String,
    record: bool,
    terminals: Vec<TerminalInfo>,
    created_at: String,
    pr: Option<anycode_engine::PullRequestInfo>,
    credential: Credential,
    credential_source: Option<String>,
    credential_expires_at: Option<i64>,
    credential_warning: Option<String>,
    permission_mode: Option<anycode_engine::PermissionMode>,
    cpus: Option<f64>,
    memory_mb: Option<u64>,
    attention: Option<anycode_engine::Attention>,
    usage: Option<anycode_engine::Usage>,
    queue_position: Option<u32>,
    network: anycode_engine::NetworkPolicy,
}

impl From<Task> for TaskView {
    fn from(t: Task) -> Self {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        let credential_warning = t.credential_warning(now_ms);
        TaskView {
            id: t.id,
            project_id: t.project_id,
            title: t.title,
            agent: t.agent,
            branch: t.branch,
            base: t.base,
            base_sha: t.base_sha,
            prompt: t.prompt,
            status: t.status,
            exit_code: t.exit_code,
            error: t.error,
            container_id: t.container_id,
            worktree: t.worktree,
            record: t.record,
            terminals: t.terminals,
            created_at: t.created_at,
            pr: t.pr,
            credential: t.credential,
            credential_source: t.credential_source,
            credential_expires_at: t.credential_expires_at,
            credential_warning,
            permission_mode: t.permission_mode,
            cpus: t.cpus,
            memory_mb: t.memory_mb,
            attention: t.attention,
            usage: t.usage,
            queue_position: t.queue_position,
            network: t.network,
        }
    }
}

async fn health(State(st): State<AppState>) -> Json<serde_json::Value> {
    let d = st.engine.health().await;
    let mut docker = json!({"ok": d.ok});
    if let Some(v) = d.version {
        docker["version"] = json!(v);
    }
    if let Some(e) = d.error {
        docker["error"] = json!(e);
    }
    Json(json!({"version": env!("CARGO_PKG_VERSION"), "docker": docker}))
}

async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn list_projects(State(st): State<AppState>) -> ApiResult<Json<Vec<serde_json::Value>>> {
    Ok(Json(crate::github_api::list_projects(&st).await?))
}

/// `{"path"}` adds a repository on this machine; `{"url", "path"?}` imports one
/// (GitHub `owner/name` or a URL) by cloning it.
#[derive(Deserialize)]
struct AddProject {
    path: Option<String>,
    url: Option<String>,
}

async fn add_project(
    State(st): State<AppState>,
    who: Option<axum::Extension<crate::auth::Principal>>,
    ApiJson(req): ApiJson<AddProject>,
) -> ApiResult<(StatusCode, Json<serde_json::Value>)> {
    // Devices are refused before this (owner only); should that change, a device
    // still never names a folder on the host: its import goes under the data dir.
    if matches!(who.as_deref(), Some(crate::auth::Principal::Device(_))) && req.path.is_some() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "DEVICE_NO_HOST_PATH", "a paired device cannot name a folder on the computer: leave out \"path\" (imports go under AnyCode's data folder)"));
    }
    match (req.url, req.path) {
        (Some(url), path) => crate::github_api::import(&st, url, path).await,
        (None, Some(path)) => {
            let p = st.engine.add_project(&path).await?;
            Ok((StatusCode::CREATED, Json(crate::github_api::project_view(&st, p).await)))
        }
        (None, None) => Err(ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", "give \"path\" (a repository here) or \"url\" (owner/name or a URL to clone)")),
    }
}

async fn get_project(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    if let Some(i) = st.engine.import(&id) {
        return Ok(Json(crate::github_api::import_view(&i)));
    }
    let p = st.engine.project(&id).await?;
    Ok(Json(crate::github_api::project_view(&st, p).await))
}

async fn delete_project(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    // An import: a running one is cancelled (its clone is removed), a failed one forgotten.
    if st.engine.dismiss_import(&id) {
        return Ok(StatusCode::NO_CONTENT);
    }
    st.engine.delete_project(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn branches(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<anycode_engine::Branches>> {
    Ok(Json(st.engine.branches(&id).await?))
}

#[derive(Deserialize)]
struct CreateTask {
    title: String,
    agent: String,
    base: Option<String>,
    branch: Option<String>,
    prompt: Option<String>,
    credential: Option<String>,
    record: Option<bool>,
    permission_mode: Option<String>,
    cpus: Option<f64>,
    memory_mb: Option<u64>,
    network: Option<crate::network_api::NetworkBody>,
}

async fn create_task(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreateTask>,
) -> ApiResult<(StatusCode, Json<TaskView>)> {
    let new = NewTask {
        title: req.title,
        agent: req.agent,
        base: req.base,
        branch: req.branch,
        prompt: req.prompt,
        credential: req.credential,
        record: req.record,
        permission_mode: req.permission_mode,
        cpus: req.cpus,
        memory_mb: req.memory_mb,
        network: req.network.map(Into::into),
    };
    Ok((StatusCode::CREATED, Json(st.engine.create_task(&id, new).await?.into())))
}

#[derive(Deserialize)]
struct TaskQuery {
    project: Option<String>,
}

async fn list_tasks(State(st): State<AppState>, Query(q): Query<TaskQuery>) -> ApiResult<Json<Vec<TaskView>>> {
    if let Some(p) = &q.project {
        st.engine.project(p).await?;
    }
    Ok(Json(st.engine.tasks(q.project.as_deref()).await?.into_iter().map(Into::into).collect()))
}

async fn get_task(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<TaskView>> {
    Ok(Json(st.engine.task(&id).await?.into()))
}

async fn delete_task(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    st.engine.delete_task(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stop_task(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<TaskView>> {
    Ok(Json(st.engine.stop_task(&id).await?.into()))
}

async fn start_task(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<TaskView>> {
    Ok(Json(st.engine.start_task(&id).await?.into()))
}

#[derive(Deserialize, Default)]
struct OpenTerminal {
    cmd: Option<String>,
}

async fn open_terminal(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<TerminalInfo>)> {
    // The body is optional: no body opens a login shell.
    let req: OpenTerminal = if body.iter().all(u8::is_ascii_whitespace) {
        OpenTerminal::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", e.to_string()))?
    };
    Ok((StatusCode::CREATED, Json(st.engine.open_terminal(&id, req.cmd).await?)))
}

async fn close_terminal(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    st.engine.close_terminal(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The terminal's asciicast v2 recording, streamed from the data dir.
async fn recording(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let path = st.engine.recording(&id).await?;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "RECORDING_NOT_FOUND", format!("recording unreadable: {e}")))?;
    let body = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/x-asciicast"),
            (axum::http::header::CONTENT_DISPOSITION, "inline; filename=\"terminal.cast\""),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}

async fn diff(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<anycode_engine::Diff>> {
    Ok(Json(st.engine.diff(&id).await?))
}

#[derive(Deserialize)]
struct Commit {
    message: String,
}

async fn commit(State(st): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<Commit>) -> ApiResult<Json<serde_json::Value>> {
    let sha = st.engine.commit(&id, &req.message).await?;
    Ok(Json(json!({"sha": sha})))
}

/// One agent profile in `GET /api/agents` (see `anycode_engine::AgentInfo`).
#[derive(Serialize)]
struct AgentView {
    name: String,
    title: String,
    hooks: bool,
    image: String,
    image_ready: bool,
    credential: String,
    credentials: Vec<String>,
    builtin: bool,
    customized: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    install_note: Option<String>,
}

async fn list_agents(State(st): State<AppState>) -> ApiResult<Json<Vec<AgentView>>> {
    let list = st.engine.agents().await?;
    Ok(Json(
        list.into_iter()
            .map(|a| AgentView {
                name: a.name,
                title: a.title,
                hooks: a.hooks,
                image: a.image,
                image_ready: a.image_ready,
                credential: a.credential,
                credentials: a.credentials,
                builtin: a.builtin,
                customized: a.customized,
                install_note: a.install_note,
            })
            .collect(),
    ))
}

async fn credentials_status(State(st): State<AppState>) -> ApiResult<Json<anycode_engine::CredentialsStatus>> {
    Ok(Json(st.engine.credentials_status().await?))
}

#[derive(Deserialize)]
struct SaveCredential {
    value: Secret,
}

async fn save_credential(State(st): State<AppState>, Path(name): Path<String>, body: axum::body::Bytes) -> ApiResult<Json<serde_json::Value>> {
    // Parsed by hand: serde's messages can quote the input (`invalid type: string
    // "sk-…"`), and this input is a secret.
    let req: SaveCredential = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", "the body must be {\"value\": \"<key or token>\"}"))?;
    let display = st.engine.save_credential(&name, req.value).await?;
    Ok(Json(json!({"name": name, "display": display})))
}

async fn delete_credential(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    let removed = st.engine.delete_credential(&name).await?;
    Ok(Json(json!({"name": name, "removed": removed})))
}
