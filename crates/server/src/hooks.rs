//! Agent hooks over HTTP, and approvals.
//!
//! - The hook listener: a second, minimal listener that serves only
//!   `POST /hooks/claude`, bound where containers reach the host
//!   (`host.docker.internal`): on Linux the Docker bridge's gateway address (e.g.
//!   `172.17.0.1`), else loopback (Docker Desktop maps `host.docker.internal` to
//!   the host's loopback). Any free port. A request needs the task's current hook
//!   token (`Authorization: Bearer …`, see the engine's `hooks.rs`): without it, 401
//!   and nothing changes. Nothing else of the API is reachable there.
//! - `POST /api/tasks/{id}/approval {"decision": "allow"|"deny", "message"?}` (on
//!   the main listener, behind its auth): answers the task's waiting
//!   `PermissionRequest` hook.

use crate::api::TaskView;
use crate::{ApiError, AppState};
use anycode_engine::{ApprovalDecision, Engine, HookAnswer, HookEvent, HOOK_PATH};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Longest Deny message accepted, in characters.
const MAX_MESSAGE: usize = 4000;

/// The hook listener's routes (nothing else).
fn hook_router(engine: Engine) -> Router {
    Router::new()
        .route(HOOK_PATH, post(hook))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "only agent hooks are served here") })
        .with_state(engine)
}

/// Where the hook listener binds: the Docker bridge's gateway on Linux (where
/// `host.docker.internal` points), else loopback.
async fn hook_address(engine: &Engine) -> IpAddr {
    if cfg!(target_os = "linux") {
        if let Ok(d) = engine.docker().await {
            match d.bridge_gateway().await {
                Ok(Some(ip)) => return ip,
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "asking Docker for its bridge's address failed"),
            }
        }
    }
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

/// Binds the hook listener (falling back to loopback when the bridge address cannot
/// be bound) and tells the engine the URL sandboxes reach it at.
///
/// The port is the one used last time when it is free (kept in
/// `<data_dir>/hook-port`): agents that kept running across an AnyCode restart post
/// to the port they were given at their start, so their hooks keep arriving.
async fn bind(engine: &Engine) -> std::io::Result<TcpListener> {
    let ip = hook_address(engine).await;
    let port_file = engine.config().data_dir.join("hook-port");
    let last: u16 = tokio::fs::read_to_string(&port_file).await.ok().and_then(|p| p.trim().parse().ok()).unwrap_or(0);
    let bind_at = |ip: IpAddr| async move {
        match TcpListener::bind(SocketAddr::new(ip, last)).await {
            Ok(l) => Ok(l),
            Err(_) if last != 0 => TcpListener::bind(SocketAddr::new(ip, 0)).await,
            Err(e) => Err(e),
        }
    };
    let listener = match bind_at(ip).await {
        Ok(l) => l,
        Err(e) if !ip.is_loopback() => {
            tracing::warn!(address = %ip, error = %e, "binding the hook listener on Docker's bridge failed; using loopback");
            bind_at(IpAddr::V4(Ipv4Addr::LOCALHOST)).await?
        }
        Err(e) => return Err(e),
    };
    let addr = listener.local_addr()?;
    if addr.port() != last {
        if let Err(e) = tokio::fs::write(&port_file, addr.port().to_string()).await {
            tracing::warn!(error = %e, "remembering the hook port failed (running agents lose their hooks at a restart)");
        }
    }
    engine.set_hook_url(Some(format!("http://host.docker.internal:{}", addr.port())));
    tracing::info!(%addr, "agent hook listener");
    Ok(listener)
}

/// Starts the hook listener: bound before this returns when Docker answers (so tasks
/// started next get hooks); otherwise retried in the background every 5 s. Serves
/// until `stop` is cancelled.
pub(crate) async fn start(engine: Engine, stop: CancellationToken) {
    let first = if engine.docker().await.is_ok() { bind(&engine).await.ok() } else { None };
    tokio::spawn(async move {
        let listener = match first {
            Some(l) => l,
            None => loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                if engine.docker().await.is_err() {
                    continue;
                }
                match bind(&engine).await {
                    Ok(l) => break l,
                    Err(e) => tracing::warn!(error = %e, "binding the hook listener failed"),
                }
            },
        };
        let app = hook_router(engine.clone());
        if let Err(e) = crate::serve_listener(listener, app, stop).await {
            tracing::warn!(error = %e, "the hook listener failed");
        }
        engine.set_hook_url(None);
    });
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
    let Some(ev) = parse_event(&v) else {
        return ApiError::new(StatusCode::BAD_REQUEST, "INVALID_INPUT", "hook_event_name is missing").into_response();
    };
    Json(answer_json(engine.hook_event(&task_id, ev).await)).into_response()
}

/// The typed event of a hook's JSON input (Claude Code's field names); `None`
/// without `hook_event_name`.
pub(crate) fn parse_event(v: &Value) -> Option<HookEvent> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let name = v.get("hook_event_name")?.as_str()?;
    Some(match name {
        "SessionStart" => HookEvent::SessionStart { source: s("source") },
        "UserPromptSubmit" => HookEvent::UserPromptSubmit,
        "PostToolUse" => HookEvent::PostToolUse,
        "PermissionRequest" => HookEvent::PermissionRequest { tool: s("tool_name"), input: v.get("tool_input").cloned().unwrap_or(Value::Null) },
        "Notification" => HookEvent::Notification { kind: s("notification_type"), message: s("message") },
        "Stop" => HookEvent::Stop,
        "StopFailure" => HookEvent::StopFailure {
            error: Some(s("error")).filter(|e| !e.is_empty()).unwrap_or_else(|| "unknown".into()),
            details: v.get("error_details").and_then(Value::as_str).map(str::to_string),
        },
        "SessionEnd" => HookEvent::SessionEnd { reason: s("reason") },
        other => HookEvent::Other(other.to_string()),
    })
}

/// The hook's answer as Claude Code reads it: `{}` for none, else the
/// `PermissionRequest` decision.
pub(crate) fn answer_json(a: HookAnswer) -> Value {
    let decision = match a {
        HookAnswer::Nothing => return json!({}),
        HookAnswer::Decision(ApprovalDecision::Allow) => json!({"behavior": "allow"}),
        HookAnswer::Decision(ApprovalDecision::Deny { message: Some(m) }) => json!({"behavior": "deny", "message": m}),
        HookAnswer::Decision(ApprovalDecision::Deny { message: None }) => json!({"behavior": "deny"}),
    };
    json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}})
}

/// `/api/tasks/{id}/approval`.
pub(crate) fn api_routes() -> Router<AppState> {
    Router::new().route("/tasks/{id}/approval", post(approval))
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

async fn approval(State(st): State<AppState>, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Json<TaskView>, ApiError> {
    let decision = parse_decision(&body)?;
    Ok(Json(st.engine.decide_approval(&id, decision).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_claude_codes_hook_input() {
        let pr = json!({"session_id": "s", "hook_event_name": "PermissionRequest", "tool_name": "Bash", "tool_input": {"command": "ls"}});
        assert_eq!(parse_event(&pr), Some(HookEvent::PermissionRequest { tool: "Bash".into(), input: json!({"command": "ls"}) }));
        let n = json!({"hook_event_name": "Notification", "notification_type": "idle_prompt", "message": "waiting"});
        assert_eq!(parse_event(&n), Some(HookEvent::Notification { kind: "idle_prompt".into(), message: "waiting".into() }));
        let f = json!({"hook_event_name": "StopFailure", "error": "rate_limit", "error_details": "429"});
        assert_eq!(parse_event(&f), Some(HookEvent::StopFailure { error: "rate_limit".into(), details: Some("429".into()) }));
        assert_eq!(parse_event(&json!({"hook_event_name": "PreCompact"})), Some(HookEvent::Other("PreCompact".into())));
        assert_eq!(parse_event(&json!({"tool_name": "Bash"})), None);
    }

    #[test]
    fn answers_in_claude_codes_shape() {
        assert_eq!(answer_json(HookAnswer::Nothing), json!({}));
        assert_eq!(
            answer_json(HookAnswer::Decision(ApprovalDecision::Allow)),
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}})
        );
        assert_eq!(
            answer_json(HookAnswer::Decision(ApprovalDecision::Deny { message: Some("not now".into()) })),
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "deny", "message": "not now"}}})
        );
    }

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
