//! `GET /api/tasks/{id}/setup/log`: the dev container setup's log (the engine's
//! `devcontainer.rs`). The live output is the task's `setup` terminal.

use crate::openapi::EngineErrors;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The setup route.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(setup_log))
}

/// The task's setup log: the terminal output of its `postCreateCommand` and
/// `postStartCommand` (raw, with the terminal's escape sequences; at most 1 MiB),
/// live while the setup runs, else of its last run. 404 `SETUP_LOG_NOT_FOUND`
/// before any setup ran.
#[utoipa::path(get, path = "/tasks/{id}/setup/log", tag = "tasks", params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The log", content_type = "text/plain", body = String), EngineErrors))]
async fn setup_log(State(st): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let log = st.engine.setup_log(&id).await?;
    let mut r = log.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
