//! `GET /api/tasks/{id}/open-in`: how to open a task in an editor (the engine's
//! `openin.rs`).

use crate::openapi::EngineErrors;
use crate::{ApiError, AppState};
use anycode_engine::OpenIn;
use axum::extract::{Path, State};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The open-in route.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(open_in))
}

/// How to open the task in an editor: VS Code's attached-container URI of the
/// sandbox at /workspace, the container's name, the folder on the host (with why
/// host tools should not run git there) and the `anycode attach` command.
#[utoipa::path(get, path = "/tasks/{id}/open-in", tag = "tasks", params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "Ways to open it", body = OpenIn), EngineErrors))]
async fn open_in(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<OpenIn>, ApiError> {
    Ok(Json(st.engine.open_in(&id).await?))
}
