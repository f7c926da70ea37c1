//! Network policies over HTTP:
//!
//! - `GET /api/tasks/{id}/network` → `{mode, allow, running_mode, blocked: [{host, count, last_at}]}`
//! - `PUT /api/tasks/{id}/network {mode?, allow?, add?}`: `allow` replaces the list,
//!   `add` adds to it (at once for a running sandbox); `mode` takes effect at the
//!   next start. Same answer as GET.
//! - `GET /api/projects/{id}/network` → the project's default (`null`: the settings')
//! - `PUT /api/projects/{id}/network {mode?, allow?}` (or `null` to remove): the
//!   default of the project's new tasks; `allow` is added to the built-in list.
//!
//! Bad modes or entries are 400 `INVALID_INPUT` naming them and the fix.

use crate::api::ApiJson;
use crate::{ApiError, AppState};
use anycode_engine::{BlockedHost, Engine, NetworkMode, NetworkPolicy, NetworkRequest, NetworkStatus};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// The `network` of a request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkBody {
    mode: Option<String>,
    allow: Option<Vec<String>>,
    #[serde(default)]
    add: Vec<String>,
}

impl From<NetworkBody> for NetworkRequest {
    fn from(b: NetworkBody) -> Self {
        NetworkRequest { mode: b.mode, allow: b.allow, add: b.add }
    }
}

#[derive(Serialize)]
struct NetworkView {
    mode: NetworkMode,
    allow: Vec<String>,
    /// The mode the running sandbox started with (`null` when not running).
    running_mode: Option<NetworkMode>,
    blocked: Vec<BlockedHost>,
}

impl From<NetworkStatus> for NetworkView {
    fn from(s: NetworkStatus) -> Self {
        NetworkView { mode: s.policy.mode, allow: s.policy.allow, running_mode: s.running_mode, blocked: s.blocked }
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}/network", get(get_task_network).put(put_task_network))
        .route("/projects/{id}/network", get(get_project_network).put(put_project_network))
}

async fn get_task_network(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<NetworkView>, ApiError> {
    Ok(Json(st.engine.task_network(&id).await?.into()))
}

async fn put_task_network(State(st): State<AppState>, Path(id): Path<String>, ApiJson(body): ApiJson<NetworkBody>) -> Result<Json<NetworkView>, ApiError> {
    Ok(Json(st.engine.set_task_network(&id, body.into()).await?.into()))
}

async fn get_project_network(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Option<NetworkPolicy>>, ApiError> {
    Ok(Json(st.engine.project_network(&id).await?))
}

async fn put_project_network(
    State(st): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Option<NetworkBody>>,
) -> Result<Json<Option<NetworkPolicy>>, ApiError> {
    Ok(Json(st.engine.set_project_network(&id, body.map(Into::into)).await?))
}

/// At start, in the background: checks that a sandbox reaches AnyCode through its
/// relay (a throwaway container with no network), and says so plainly in the log
/// when not. Skipped when the sandbox image is not built yet (the first task builds
/// it; `anycode doctor` checks on demand).
pub(crate) fn check_relay_at_start(engine: Engine) {
    tokio::spawn(async move {
        match engine.check_relay(false).await {
            Ok(Some(ms)) => tracing::info!(ms, "sandboxes reach AnyCode through their relay"),
            Ok(None) => tracing::debug!("relay check skipped: no sandbox image yet"),
            Err(e) => tracing::error!(error = %e, "sandboxes cannot reach AnyCode: agent hooks, approvals and the egress proxy will not work"),
        }
    });
}
