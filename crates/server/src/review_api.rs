//! `/api/tasks/{id}/comments`: the owner's review comments on lines of a task's
//! changes, and **Send to agent**, which types the unsent ones to the agent as one
//! message (the rules are in the engine's `review.rs`). A watch device gets 403 on
//! every non-GET route (`auth.rs`).

use crate::api::ApiJson;
use crate::openapi::{EngineErrors, JsonErrors};
use crate::{ApiError, AppState};
use anycode_engine::{MessageSent, NewComment, ReviewComment};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The review comment routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_comments, add_comment)).routes(routes!(delete_comment)).routes(routes!(send_comments))
}

/// The task's review comments, oldest first; `addressed` is true once a commit on
/// the task branch after the sending changed the lines around a comment.
#[utoipa::path(get, path = "/tasks/{id}/comments", tag = "tasks", params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The comments", body = Vec<ReviewComment>), EngineErrors))]
async fn list_comments(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Vec<ReviewComment>>, ApiError> {
    Ok(Json(st.engine.comments(&id).await?))
}

/// Comment on a line of the task's changes (the new side of the diff). 422
/// `INVALID_INPUT` when the task's work has no such text file or line.
#[utoipa::path(post, path = "/tasks/{id}/comments", tag = "tasks", params(("id" = String, Path, description = "Task id")), request_body = NewComment,
    responses((status = 201, description = "Made", body = ReviewComment), JsonErrors, EngineErrors))]
async fn add_comment(State(st): State<AppState>, Path(id): Path<String>, ApiJson(body): ApiJson<NewComment>) -> Result<(StatusCode, Json<ReviewComment>), ApiError> {
    Ok((StatusCode::CREATED, Json(st.engine.add_comment(&id, body).await?)))
}

/// Delete a review comment (404 `COMMENT_NOT_FOUND` when it is not there).
#[utoipa::path(delete, path = "/tasks/{id}/comments/{comment_id}", tag = "tasks",
    params(("id" = String, Path, description = "Task id"), ("comment_id" = String, Path, description = "Comment id")),
    responses((status = 204, description = "Deleted"), EngineErrors))]
async fn delete_comment(State(st): State<AppState>, Path((id, comment_id)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    st.engine.delete_comment(&id, &comment_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send every unsent review comment to the agent as one message listing
/// `path:line: comment` entries: typed now when the agent waits, else queued like
/// any message. 422 `INVALID_INPUT` when none is unsent; 409 `TASK_NOT_RUNNING`.
#[utoipa::path(post, path = "/tasks/{id}/comments/send", tag = "tasks", params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "Typed now (`delivered`) or queued", body = MessageSent), EngineErrors))]
async fn send_comments(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<MessageSent>, ApiError> {
    Ok(Json(st.engine.send_comments(&id).await?))
}
