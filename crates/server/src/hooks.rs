//! Agent hooks over HTTP, and approvals.
//!
//! - The hook service: serves only `POST /hooks/claude`, on the connections each
//!   sandbox's relay carries over its exec stream (no listener on the host). A
//!   request needs the task's current hook token (`Authorization: Bearer …`, see
//!   the engine's `hooks.rs`): without it, 401 and nothing changes. Nothing else of
//!   the API is reachable there.
//! - `POST /api/tasks/{id}/approval {"decision": "allow"|"deny", "message"?}` (on
//!   the main listener, behind its auth): answers the task's waiting
//!   `PermissionRequest` hook.

use crate::api::TaskView;
use crate::{ApiError, AppState};
use anycode_engine::{ApprovalDecision, Engine, HookEvent, HookService, HOOK_PATH};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;

/// Longest Deny message accepted, in characters.
const MAX_MESSAGE: usize = 4000;

/// The hook listener's routes (nothing else).
fn hook_router(engine: Engine) -> Router {
    Router::new()
        .route(HOOK_PATH, post(hook))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "only agent hooks are served here") })
        .with_state(engine)
}

/// Serves the hook routes on every hook connection a sandbox's relay carries
/// (`anycode-relay`'s 127.0.0.1:47777, see the engine's `network.rs`): no port is
/// opened on the host, and nothing depends on the Docker bridge's gateway.
pub(crate) fn start(engine: Engine) {
    let app = hook_router(engine.clone());
    let service: HookService = Arc::new(move |stream| {
        let svc = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await {
                tracing::debug!(error = %e, "hook connection ended");
            }
        });
    });
    engine.set_hook_service(Some(service));
}

fn unauthorized() -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "a hook request needs the task's hook token").into_response()
}

/// `POST /hooks/claude`: one hook call, its JSON as Claude Code sends it.
async fn hook(State(engine): State<Engine>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let token = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
    let Some(task_id) = token.filter(|t| !t.is_empty()).and_then(|t| engine.hook_task(t)) else {
        return unauthorized();
    };
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return ApiError::new(StatusCode::BAD_REQUEST, "INVALID_JSON", "the hook's body must be its JSON input").into_response();
    };
    let Some(ev) = HookEvent::from_json(&v) else {
        return ApiError::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", "hook_event_name is missing").into_response();
    };
    Json(engine.hook_event(&task_id, ev).await.to_json()).into_response()
}

/// `/api/tasks/{id}/approval`.
pub(crate) fn api_routes() -> utoipa_axum::router::OpenApiRouter<AppState> {
    utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(approval))
}

/// `allow` or `deny`.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum DecisionWord {
    /// Run the tool.
    Allow,
    /// Do not run it; `message` is told to the agent.
    Deny,
}

/// The body of `POST /api/tasks/{id}/approval`.
#[derive(utoipa::ToSchema)]
#[schema(as = ApprovalDecision)]
#[allow(dead_code)]
struct ApprovalBody {
    /// Allow or deny the tool call.
    decision: DecisionWord,
    /// For `deny`: told to the agent (at most 4000 characters).
    #[schema(max_length = 4000)]
    message: Option<String>,
}

fn invalid(msg: &str) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", msg)
}

/// The decision in an approval request body.
pub(crate) fn parse_decision(body: &[u8]) -> Result<ApprovalDecision, ApiError> {
    const SHAPE: &str = "the body must be {\"decision\": \"allow\" or \"deny\", \"message\"?: text}";
    let v: Value = serde_json::from_slice(body).map_err(|_| invalid(SHAPE))?;
    let message = match v.get("message") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) if m.chars().count() > MAX_MESSAGE => return Err(invalid(&format!("message is longer than {MAX_MESSAGE} characters"))),
        Some(Value::String(m)) => Some(m.trim().to_string()).filter(|m| !m.is_empty()),
        Some(_) => return Err(invalid(SHAPE)),
    };
    match v.get("decision").and_then(Value::as_str) {
        Some("allow") => Ok(ApprovalDecision::Allow),
        Some("deny") => Ok(ApprovalDecision::Deny { message }),
        _ => Err(invalid(SHAPE)),
    }
}

/// Allow or deny the tool the task's agent waits for (status `needs_approval`,
/// `attention.tool` and `attention.input`): answers Claude Code's waiting
/// `PermissionRequest` hook, and the agent goes back to running. A request waits up
/// to `[approvals] timeout_secs` (default 300) before the agent asks in its terminal
/// instead; then 409.
#[utoipa::path(post, path = "/tasks/{id}/approval", tag = "tasks", params(("id" = String, Path, description = "Task id")), request_body = ApprovalBody,
    responses((status = 200, description = "Answered", body = TaskView),
    (status = 400, description = "INVALID_INPUT: not `{decision: allow|deny, message?}`", body = crate::error::ErrorBody),
    crate::openapi::EngineErrors))]
async fn approval(State(st): State<AppState>, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Json<TaskView>, ApiError> {
    let decision = parse_decision(&body)?;
    Ok(Json(st.engine.decide_approval(&id, decision).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approval_bodies() {
        assert_eq!(parse_decision(br#"{"decision":"allow"}"#).unwrap(), ApprovalDecision::Allow);
        assert_eq!(parse_decision(br#"{"decision":"deny","message":" no "}"#).unwrap(), ApprovalDecision::Deny { message: Some("no".into()) });
        assert_eq!(parse_decision(br#"{"decision":"deny","message":null}"#).unwrap(), ApprovalDecision::Deny { message: None });
        for bad in [&br#"{"decision":"maybe"}"#[..], br#"{}"#, b"not json", br#"{"decision":"deny","message":5}"#, br#"{"decision":true}"#] {
            let e = parse_decision(bad).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "INVALID_INPUT"), "{}", String::from_utf8_lossy(bad));
        }
        let long = format!(r#"{{"decision":"deny","message":"{}"}}"#, "x".repeat(MAX_MESSAGE + 1));
        assert!(parse_decision(long.as_bytes()).is_err());
    }
}
