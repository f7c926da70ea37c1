//! The JSON API under `/api`. Every handler carries its `#[utoipa::path]`: the
//! OpenAPI document (`crate::openapi`) is generated from them and the types.

use crate::{ApiError, AppState};
use anycode_engine::{Agent, Credential, NewTask, Secret, Task, TaskStatus, TerminalInfo};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use crate::error::ErrorBody;
use crate::openapi::{EngineErrors, JsonErrors};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The API's routes with their descriptions (paths relative to `/api`).
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(crate::github_api::routes())
        .routes(routes!(health))
        .routes(routes!(openapi))
        .routes(routes!(list_projects, add_project))
        .routes(routes!(get_project, delete_project))
        .routes(routes!(branches))
        .routes(routes!(create_task))
        .routes(routes!(list_tasks))
        .routes(routes!(get_task, delete_task))
        .routes(routes!(stop_task))
        .routes(routes!(start_task))
        .routes(routes!(open_terminal))
        .routes(routes!(diff))
        .routes(routes!(commit))
        .routes(routes!(close_terminal))
        .routes(routes!(list_agents))
        .routes(routes!(credentials_status))
        .routes(routes!(save_credential, delete_credential))
        .routes(routes!(recording))
        .merge(crate::pairing::routes())
        .merge(crate::hooks::api_routes())
        .merge(crate::messages_api::routes())
        .merge(crate::review_api::routes())
        .merge(crate::openin_api::routes())
        .merge(crate::setup_api::routes())
        .merge(crate::previews::routes())
        .merge(crate::network_api::routes())
        .merge(crate::hosts_api::routes())
}

/// The API's router: [`routes`] and the `NOT_FOUND` answer for other paths.
pub(crate) fn router() -> Router<AppState> {
    let (router, _) = routes().split_for_parts();
    router.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API endpoint") })
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

/// A task as the API shows it (also the `task` of `WS /ws/events` messages): the
/// fields of `anycode_core::Task` except `agent_terminal_id` (the first of
/// `terminals`) and `credential_problem` (shown as `credential_warning`, which also
/// warns of a credential expiring soon). Kept as its own type so the API's shape is
/// spelled out in one place; each field's description is the one of `Task`.
#[derive(Serialize, ToSchema)]
#[schema(as = Task)]
pub(crate) struct TaskView {
    /// 12 hex digits.
    id: String,
    /// The project this task branches from.
    project_id: String,
    /// Free text given by the user.
    title: String,
    /// The agent profile running as the container's main process.
    #[schema(value_type = String)]
    agent: Agent,
    /// The task's branch in the project's repository, e.g. `anycode/fix-login`.
    branch: String,
    /// The branch the task started from; diffs are against it.
    base: String,
    /// Commit of `base` when the task was created (40 hex digits).
    base_sha: String,
    /// Optional instructions for the agent.
    prompt: Option<String>,
    /// The sandbox's state and, while it runs, the agent's.
    status: TaskStatus,
    /// The agent's exit code when `status` is `exited`.
    exit_code: Option<i64>,
    /// What went wrong when `status` is `error`.
    error: Option<String>,
    /// The Docker container's full id, once created.
    container_id: Option<String>,
    /// Where the task's work is kept on this computer; empty for a task on a remote
    /// host (its files are in a Docker volume there, its work on its branch here).
    worktree: String,
    /// Whether the agent terminal is recorded (asciicast).
    record: bool,
    /// Open terminals: the agent's first, then extra shells.
    terminals: Vec<TerminalInfo>,
    /// RFC 3339 UTC.
    created_at: String,
    /// The task branch's pull request on GitHub, once opened.
    pr: Option<anycode_engine::PullRequestInfo>,
    /// Which credential the agent gets at each start.
    credential: Credential,
    /// Where the credential handed over at the last start came from (never the secret).
    credential_source: Option<String>,
    /// When the access token handed over at the last start expires, epoch ms.
    credential_expires_at: Option<i64>,
    /// Why the agent got no credential, or that it expires soon.
    credential_warning: Option<String>,
    /// Claude Code's permission mode (`null`: the profile's default).
    permission_mode: Option<anycode_engine::PermissionMode>,
    /// The sandbox's CPU cap in CPUs.
    cpus: Option<f64>,
    /// The sandbox's memory cap in MiB.
    memory_mb: Option<u64>,
    /// What the agent wants (tool and input for `needs_approval`, message, failure reason).
    attention: Option<anycode_engine::Attention>,
    /// Live CPU and memory while the sandbox runs.
    usage: Option<anycode_engine::Usage>,
    /// 1-based place in the queue while `status` is `queued`.
    queue_position: Option<u32>,
    /// How the sandbox reaches the network.
    network: anycode_engine::NetworkPolicy,
    /// Messages waiting for the agent to finish its turn, oldest first
    /// (`/api/tasks/{id}/messages`).
    messages: Vec<anycode_engine::QueuedMessage>,
    /// The dev container's setup (`postCreateCommand`, `postStartCommand`):
    /// `none` without one; the agent starts once it ended.
    setup: anycode_engine::TaskSetup,
    /// The Docker host the sandbox runs on: `local` or a host's id (`GET /api/hosts`).
    host: String,
    /// Set while that host does not answer: what failed. The task keeps its state
    /// and is reconciled when the host is back.
    #[serde(skip_serializing_if = "Option::is_none")]
    host_error: Option<String>,
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
            messages: t.messages,
            setup: t.setup,
            host: t.host,
            host_error: t.host_error,
        }
    }
}

/// `GET /api/health`.
#[derive(Serialize, ToSchema)]
struct Health {
    /// AnyCode's version.
    version: String,
    /// The Docker engine's state.
    docker: DockerHealthView,
}

/// The `docker` of [`Health`].
#[derive(Serialize, ToSchema)]
struct DockerHealthView {
    /// Whether the engine answered.
    ok: bool,
    /// The engine's version when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    /// What to do when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// AnyCode's version and whether Docker answers.
#[utoipa::path(get, path = "/health", tag = "server", responses((status = 200, description = "Version and Docker state", body = Health)))]
async fn health(State(st): State<AppState>) -> Json<Health> {
    let d = st.engine.health().await;
    Json(Health { version: env!("CARGO_PKG_VERSION").into(), docker: DockerHealthView { ok: d.ok, version: d.version, error: d.error } })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "server", responses((status = 200, description = "The OpenAPI document of this API", content_type = "application/json", body = Object)))]
async fn openapi() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], crate::openapi::document_json()).into_response()
}

/// All projects: imports in progress or failed (status `cloning`/`failed`) first,
/// then ready ones.
#[utoipa::path(get, path = "/projects", tag = "projects", responses((status = 200, description = "Imports, then projects", body = Vec<crate::github_api::ProjectView>), EngineErrors))]
async fn list_projects(State(st): State<AppState>) -> ApiResult<Json<Vec<crate::github_api::ProjectView>>> {
    Ok(Json(crate::github_api::list_projects(&st).await?))
}

/// `{"path"}` adds a repository on this machine; `{"url", "path"?}` imports one
/// (GitHub `owner/name` or a URL) by cloning it.
#[derive(Deserialize, ToSchema)]
struct AddProject {
    /// Without `url`: path of the repository's top level on the server's machine.
    /// With `url`: where to clone to (must not exist or be empty; default
    /// `<data_dir>/repos/<owner>/<name>`).
    path: Option<String>,
    /// `owner/name` (looked up at `ANYCODE_GITHUB_API`, cloned from its web host) or
    /// an `https://` or `git@host:owner/name` URL; cloned with the GitHub token when
    /// there is one.
    url: Option<String>,
}

/// Add a local git repository as a project (`{"path"}`, 201), or import one by
/// cloning it (`{"url"}`, 202 with status `cloning`; poll `GET /api/projects/{id}`
/// for progress; a failed clone leaves nothing on disk and shows status `failed`).
#[utoipa::path(post, path = "/projects", tag = "projects", request_body = AddProject, responses(
    (status = 201, description = "Added", body = crate::github_api::ProjectView),
    (status = 202, description = "Import started (status `cloning`)", body = crate::github_api::ProjectView),
    JsonErrors, EngineErrors))]
async fn add_project(
    State(st): State<AppState>,
    who: Option<axum::Extension<crate::auth::Principal>>,
    ApiJson(req): ApiJson<AddProject>,
) -> ApiResult<(StatusCode, Json<crate::github_api::ProjectView>)> {
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

/// One project or import.
#[utoipa::path(get, path = "/projects/{id}", tag = "projects", params(("id" = String, Path, description = "Project id")), responses((status = 200, description = "The project", body = crate::github_api::ProjectView), EngineErrors))]
async fn get_project(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<crate::github_api::ProjectView>> {
    if let Some(i) = st.engine.import(&id) {
        return Ok(Json(crate::github_api::import_view(&i)));
    }
    let p = st.engine.project(&id).await?;
    Ok(Json(crate::github_api::project_view(&st, p).await))
}

/// Remove a project (the repository is untouched); 409 while it has tasks. For an
/// import: cancels a running clone (nothing is left) or forgets a failed one.
#[utoipa::path(delete, path = "/projects/{id}", tag = "projects", params(("id" = String, Path, description = "Project id")), responses((status = 204, description = "Removed"), EngineErrors))]
async fn delete_project(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    // An import: a running one is cancelled (its clone is removed), a failed one forgotten.
    if st.engine.dismiss_import(&id) {
        return Ok(StatusCode::NO_CONTENT);
    }
    st.engine.delete_project(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Local branches and the current branch of a project's repository.
#[utoipa::path(get, path = "/projects/{id}/branches", tag = "projects", params(("id" = String, Path, description = "Project id")), responses((status = 200, description = "Branches", body = anycode_engine::Branches), EngineErrors))]
async fn branches(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<anycode_engine::Branches>> {
    Ok(Json(st.engine.branches(&id).await?))
}

/// A new task.
#[derive(Deserialize, ToSchema)]
#[schema(as = NewTask)]
struct CreateTask {
    /// Free text; the branch name is made from it unless `branch` is given. May be
    /// empty with `issue`: the issue's title is used.
    title: String,
    /// The agent profile (`GET /api/agents`): `claude`, `codex`, `gemini`, `aider`,
    /// `goose`, `shell` or one of the settings file.
    agent: String,
    /// The branch to start from; the repository's current branch when absent.
    base: Option<String>,
    /// The task's branch; `anycode/<slug of the title>` when absent.
    branch: Option<String>,
    /// Instructions handed to the agent.
    prompt: Option<String>,
    /// `none`, `subscription` or `api_key`; the profile's default when absent.
    #[schema(value_type = Option<Credential>)]
    credential: Option<String>,
    /// Record the agent terminal (asciicast).
    record: Option<bool>,
    /// Claude Code's permission mode: `default`, `acceptEdits`, `plan`, `auto`,
    /// `bypassPermissions`.
    #[schema(value_type = Option<anycode_engine::PermissionMode>)]
    permission_mode: Option<String>,
    /// CPU cap in CPUs; the settings' default when absent.
    cpus: Option<f64>,
    /// Memory cap in MiB; the settings' default when absent.
    memory_mb: Option<u64>,
    /// The sandbox's network policy; the project's or the settings' default when absent.
    network: Option<crate::network_api::NetworkBody>,
    /// An open issue of the project's GitHub repository (its number) to start from:
    /// its title is the default title, its title, body and link the default prompt,
    /// and the task's pull request says `Closes #N`.
    issue: Option<u64>,
    /// The Docker host to run on (`local`, a host's id or name, `GET /api/hosts`);
    /// when absent, the answering host with the most free CPUs.
    host: Option<String>,
}

/// Create a task: its branch from the base, its repository, its sandbox and the
/// agent terminal (or `queued` when the limit of running sandboxes is reached).
#[utoipa::path(post, path = "/projects/{id}/tasks", tag = "tasks", params(("id" = String, Path, description = "Project id")), request_body = CreateTask,
    responses((status = 201, description = "Created", body = TaskView), JsonErrors, EngineErrors))]

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
        issue: req.issue,
        host: req.host,
    };
    Ok((StatusCode::CREATED, Json(st.engine.create_task(&id, new).await?.into())))
}

/// The filter and page of `GET /api/tasks`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TaskQuery {
    /// Only this project's tasks.
    project: Option<String>,
    /// Only tasks in these states, comma-separated (e.g. `needs_approval,waiting_input`),
    /// as shown: an agent's state is a running task's.
    #[param(example = "needs_approval,waiting_input")]
    status: Option<String>,
    /// At most this many tasks, 1 to 1000 (all when absent).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// Skip this many matching tasks first.
    #[param(value_type = Option<u32>, minimum = 0)]
    offset: Option<String>,
}

/// The response header holding how many tasks match over all pages.
pub(crate) const TOTAL_HEADER: &str = "x-total-count";

/// Tasks, oldest first: filtered by project and status, a page at a time
/// (`limit`, `offset`); `X-Total-Count` says how many match over all pages.
#[utoipa::path(get, path = "/tasks", tag = "tasks", params(TaskQuery), responses(
    (status = 200, description = "Tasks", body = Vec<TaskView>, headers(("X-Total-Count" = u32, description = "Tasks matching the filter, over all pages"))),
    (status = 400, description = "INVALID_INPUT: an unknown status, a limit outside 1-1000, a negative offset", body = ErrorBody),
    EngineErrors))]
async fn list_tasks(State(st): State<AppState>, q: Result<Query<TaskQuery>, axum::extract::rejection::QueryRejection>) -> ApiResult<Response> {
    // A query string that does not parse (a parameter twice, say) is the caller's
    // mistake: a JSON error like every other, not axum's plain-text one.
    let Query(q) = q.map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", format!("{}: give project, status, limit and offset at most once each", e.body_text()))
    })?;
    let filter = anycode_engine::TaskFilter::parse(q.project, q.status.as_deref(), q.limit.as_deref(), q.offset.as_deref())?;
    let page = st.engine.list_tasks(&filter).await?;
    let views: Vec<TaskView> = page.tasks.into_iter().map(Into::into).collect();
    // Written into one `Vec` rather than through axum's `Json` (a `BytesMut` writer):
    // at 500 tasks (0.7 MB) a fifth of the request's time went to that writer's
    // memsets (perf, issue 14).
    let body = serde_json::to_vec(&views).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", format!("the task list could not be written as JSON: {e}")))?;
    Ok(([(TOTAL_HEADER, page.total.to_string()), (axum::http::header::CONTENT_TYPE.as_str(), "application/json".to_string())], body).into_response())
}

/// One task.
#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "Task id")), responses((status = 200, description = "The task", body = TaskView), EngineErrors))]
async fn get_task(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<TaskView>> {
    Ok(Json(st.engine.task(&id).await?.into()))
}

/// Delete a task: removes its sandbox and its repository, keeps its branch (brought
/// back into the project's repository first).
#[utoipa::path(delete, path = "/tasks/{id}", tag = "tasks", params(("id" = String, Path, description = "Task id")), responses((status = 204, description = "Deleted"), EngineErrors))]
async fn delete_task(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    st.engine.delete_task(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop the sandbox (SIGTERM, SIGKILL after 5 s).
#[utoipa::path(post, path = "/tasks/{id}/stop", tag = "tasks", params(("id" = String, Path, description = "Task id")), responses((status = 200, description = "Stopped", body = TaskView), EngineErrors))]
async fn stop_task(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<TaskView>> {
    Ok(Json(st.engine.stop_task(&id).await?.into()))
}

/// Start the sandbox again (re-created if it went missing; queued when the limit of
/// running sandboxes is reached).
#[utoipa::path(post, path = "/tasks/{id}/start", tag = "tasks", params(("id" = String, Path, description = "Task id")), responses((status = 200, description = "Started", body = TaskView), EngineErrors))]
async fn start_task(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<TaskView>> {
    Ok(Json(st.engine.start_task(&id).await?.into()))
}

/// The optional body of `POST /api/tasks/{id}/terminals`.
#[derive(Deserialize, Default, ToSchema)]
struct OpenTerminal {
    /// Run by `bash -lc`; a login shell when absent.
    cmd: Option<String>,
}

/// Open an extra terminal (an exec session) in the running sandbox.
#[utoipa::path(post, path = "/tasks/{id}/terminals", tag = "terminals", params(("id" = String, Path, description = "Task id")), request_body(content = Option<OpenTerminal>, description = "Optional"),
    responses((status = 201, description = "Opened", body = TerminalInfo),
    (status = 400, description = "INVALID_JSON: a body that is not `{\"cmd\"?}`", body = ErrorBody), EngineErrors))]

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

/// Close an extra terminal: its viewers are closed and its processes get SIGHUP (the
/// agent terminal cannot be closed).
#[utoipa::path(delete, path = "/terminals/{id}", tag = "terminals", params(("id" = String, Path, description = "Terminal id")), responses((status = 204, description = "Closed"), EngineErrors))]
async fn close_terminal(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    st.engine.close_terminal(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The terminal's asciicast v2 recording, streamed from the data dir.
#[utoipa::path(get, path = "/terminals/{id}/recording", tag = "terminals", params(("id" = String, Path, description = "Terminal id")),
    responses((status = 200, description = "asciicast v2", content_type = "application/x-asciicast", body = String), EngineErrors))]
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

/// The task's changes against its base (committed and not), brought out of the
/// sandbox first.
#[utoipa::path(get, path = "/tasks/{id}/diff", tag = "tasks", params(("id" = String, Path, description = "Task id")), responses((status = 200, description = "The diff", body = anycode_engine::Diff), EngineErrors))]
async fn diff(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<anycode_engine::Diff>> {
    Ok(Json(st.engine.diff(&id).await?))
}

/// The body of `POST /api/tasks/{id}/commit`.
#[derive(Deserialize, ToSchema)]
struct Commit {
    /// The commit message.
    message: String,
}

/// A commit made.
#[derive(Serialize, ToSchema)]
struct Committed {
    /// The new commit (40 hex digits).
    sha: String,
}

/// Commit everything in the task's worktree on its branch.
#[utoipa::path(post, path = "/tasks/{id}/commit", tag = "tasks", params(("id" = String, Path, description = "Task id")), request_body = Commit, responses((status = 200, description = "Committed", body = Committed), JsonErrors, EngineErrors))]
async fn commit(State(st): State<AppState>, Path(id): Path<String>, ApiJson(req): ApiJson<Commit>) -> ApiResult<Json<Committed>> {
    let sha = st.engine.commit(&id, &req.message).await?;
    Ok(Json(Committed { sha }))
}

/// One agent profile in `GET /api/agents` (see `anycode_engine::AgentInfo`).
#[derive(Serialize, ToSchema)]
#[schema(as = AgentProfile)]
struct AgentView {
    /// The profile's name (`claude`, `codex`, …).
    name: String,
    /// Its title (`OpenAI Codex CLI`).
    title: String,
    /// Whether it reports its state through hooks (else: the screen heuristic).
    hooks: bool,
    /// The image its tasks run in.
    image: String,
    /// Whether that image exists now (a variant is built on the first task).
    image_ready: bool,
    /// The credential a new task of it gets by default.
    credential: String,
    /// The credential choices it takes (`none` always).
    credentials: Vec<String>,
    /// One of AnyCode's built-ins (possibly changed by the settings file).
    builtin: bool,
    /// Changed or added by the settings file.
    customized: bool,
    /// Why its install may fail here, if it may.
    #[serde(skip_serializing_if = "Option::is_none")]
    install_note: Option<String>,
}

/// The agent profiles: built-ins and the settings file's.
#[utoipa::path(get, path = "/agents", tag = "agents", responses((status = 200, description = "Profiles", body = Vec<AgentView>), EngineErrors))]

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

/// Where each provider's credential comes from and its state (never a secret).
#[utoipa::path(get, path = "/credentials/status", tag = "credentials", responses((status = 200, description = "Status", body = anycode_engine::CredentialsStatus), EngineErrors))]
async fn credentials_status(State(st): State<AppState>) -> ApiResult<Json<anycode_engine::CredentialsStatus>> {
    Ok(Json(st.engine.credentials_status().await?))
}

#[derive(Deserialize)]
struct SaveCredential {
    value: Secret,
}

/// The body of `PUT /api/credentials/{name}`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct SaveCredentialBody {
    /// The key or token.
    value: String,
}

/// A credential saved.
#[derive(Serialize, ToSchema)]
struct SavedCredential {
    /// The entry's name.
    name: String,
    /// How it is shown: `sk-…abcd`.
    display: String,
}

/// A credential removed.
#[derive(Serialize, ToSchema)]
struct RemovedCredential {
    /// The entry's name.
    name: String,
    /// Whether there was one.
    removed: bool,
}

/// Save a credential in the OS keyring (owner only).
#[utoipa::path(put, path = "/credentials/{name}", tag = "credentials",
    params(("name" = anycode_engine::CredentialName, Path, description = "The keyring entry")),
    request_body = SaveCredentialBody,
    responses((status = 200, description = "Saved", body = SavedCredential),
    (status = 400, description = "INVALID_JSON: the body is not `{\"value\"}`", body = ErrorBody), EngineErrors))]
async fn save_credential(State(st): State<AppState>, Path(name): Path<String>, body: axum::body::Bytes) -> ApiResult<Json<SavedCredential>> {
    // Parsed by hand: serde's messages can quote the input (`invalid type: string
    // "sk-…"`), and this input is a secret.
    let req: SaveCredential = serde_json::from_slice(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", "the body must be {\"value\": \"<key or token>\"}"))?;
    let display = st.engine.save_credential(&name, req.value).await?;
    Ok(Json(SavedCredential { name, display }))
}

/// Remove a credential from the OS keyring (owner only).
#[utoipa::path(delete, path = "/credentials/{name}", tag = "credentials",
    params(("name" = anycode_engine::CredentialName, Path, description = "The keyring entry")),
    responses((status = 200, description = "Removed (or there was none)", body = RemovedCredential), EngineErrors))]
async fn delete_credential(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<RemovedCredential>> {
    let removed = st.engine.delete_credential(&name).await?;
    Ok(Json(RemovedCredential { name, removed }))
}
