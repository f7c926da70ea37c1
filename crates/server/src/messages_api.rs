//! `/api/tasks/{id}/messages`: messages typed to a task's agent, queued while it is
//! busy (the rule is in the engine's `messages.rs`). A watch device gets 403 on
//! every non-GET route (`auth.rs`); a control device may send, edit and remove.

use crate::api::ApiJson;
use crate::openapi::{EngineErrors, JsonErrors};
use crate::{ApiError, AppState};
use anycode_engine::{MessageSent, QueuedMessage};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The message routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_messages, send_message)).routes(routes!(edit_message, remove_message))
}

/// The body of `POST /api/tasks/{id}/messages` and `PUT …/messages/{message_id}`.
#[derive(Deserialize, ToSchema)]
struct MessageBody {
    /// The text, typed into the agent's terminal followed by Enter (at most 16000
    /// characters; no control characters but newlines and tabs; several lines go in
    /// as one paste).
    #[schema(max_length = 16000)]
    text: String,
}

/// The messages waiting for the task's agent, oldest first.
#[utoipa::path(get, path = "/tasks/{id}/messages", tag = "tasks", params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The queue", body = Vec<QueuedMessage>), EngineErrors))]
async fn list_messages(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Vec<QueuedMessage>>, ApiError> {
    Ok(Json(st.engine.messages(&id).await?))
}

/// Send a message to the task's agent: typed into its terminal followed by Enter
/// now when the agent waits for input (or is the `shell`), else queued and typed
/// when it next reports `waiting_input` or `done`, one message per turn. 409
/// `TASK_NOT_RUNNING` when the sandbox does not run.
#[utoipa::path(post, path = "/tasks/{id}/messages", tag = "tasks", params(("id" = String, Path, description = "Task id")), request_body = MessageBody,
    responses((status = 200, description = "Typed now (`delivered`) or queued", body = MessageSent), JsonErrors, EngineErrors))]
async fn send_message(State(st): State<AppState>, Path(id): Path<String>, ApiJson(body): ApiJson<MessageBody>) -> Result<Json<MessageSent>, ApiError> {
    Ok(Json(st.engine.send_message(&id, &body.text).await?))
}

/// Change the text of a queued message (404 `MESSAGE_NOT_FOUND` once it was typed).
#[utoipa::path(put, path = "/tasks/{id}/messages/{message_id}", tag = "tasks",
    params(("id" = String, Path, description = "Task id"), ("message_id" = String, Path, description = "Message id")), request_body = MessageBody,
    responses((status = 200, description = "Changed", body = QueuedMessage), JsonErrors, EngineErrors))]
async fn edit_message(State(st): State<AppState>, Path((id, message_id)): Path<(String, String)>, ApiJson(body): ApiJson<MessageBody>) -> Result<Json<QueuedMessage>, ApiError> {
    Ok(Json(st.engine.edit_message(&id, &message_id, &body.text).await?))
}

/// Remove a queued message (404 `MESSAGE_NOT_FOUND` once it was typed).
#[utoipa::path(delete, path = "/tasks/{id}/messages/{message_id}", tag = "tasks",
    params(("id" = String, Path, description = "Task id"), ("message_id" = String, Path, description = "Message id")),
    responses((status = 204, description = "Removed"), EngineErrors))]
async fn remove_message(State(st): State<AppState>, Path((id, message_id)): Path<(String, String)>) -> Result<StatusCode, ApiError> {
    st.engine.remove_message(&id, &message_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
