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
use crate::openapi::{EngineErrors, JsonErrors};
use crate::{ApiError, AppState};
use anycode_engine::{BlockedHost, Engine, NetworkMode, NetworkPolicy, NetworkRequest, NetworkStatus};
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The `network` of a request body: a change of a network policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NetworkChange)]
pub(crate) struct NetworkBody {
    /// `allowlist`, `none` or `open`; for a task, takes effect at its next start.
    #[schema(value_type = Option<NetworkMode>)]
    mode: Option<String>,
    /// Replaces the allow list (host names, `*.example.com`, `host:port`).
    allow: Option<Vec<String>>,
    /// Added to the allow list (at once for a running sandbox).
    #[serde(default)]
    add: Vec<String>,
}

impl From<NetworkBody> for NetworkRequest {
    fn from(b: NetworkBody) -> Self {
        NetworkRequest { mode: b.mode, allow: b.allow, add: b.add }
    }
}

/// A task's network policy and what its sandbox was refused.
#[derive(Serialize, ToSchema)]
#[schema(as = TaskNetwork)]
struct NetworkView {
    /// The mode of the next start.
    mode: NetworkMode,
    /// The allow list.
    allow: Vec<String>,
    /// The mode the running sandbox started with (`null` when not running).
    running_mode: Option<NetworkMode>,
    /// Hosts the egress proxy refused, with counts.
    blocked: Vec<BlockedHost>,
}

impl From<NetworkStatus> for NetworkView {
    fn from(s: NetworkStatus) -> Self {
        NetworkView { mode: s.policy.mode, allow: std::sync::Arc::unwrap_or_clone(s.policy.allow), running_mode: s.running_mode, blocked: s.blocked }
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_task_network, put_task_network)).routes(routes!(get_project_network, put_project_network))
}

/// A task's network policy, the mode its running sandbox started with and the hosts
/// it was refused.
#[utoipa::path(get, path = "/tasks/{id}/network", tag = "network", params(("id" = String, Path, description = "Task id")), responses((status = 200, description = "The policy", body = NetworkView), EngineErrors))]
async fn get_task_network(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<NetworkView>, ApiError> {
    Ok(Json(st.engine.task_network(&id).await?.into()))
}

/// Change a task's network policy: `allow` replaces the list, `add` adds to it (at
/// once for a running sandbox); `mode` takes effect at the next start.
#[utoipa::path(put, path = "/tasks/{id}/network", tag = "network", params(("id" = String, Path, description = "Task id")), request_body = NetworkBody,
    responses((status = 200, description = "The policy now", body = NetworkView), JsonErrors, EngineErrors))]
async fn put_task_network(State(st): State<AppState>, Path(id): Path<String>, ApiJson(body): ApiJson<NetworkBody>) -> Result<Json<NetworkView>, ApiError> {
    Ok(Json(st.engine.set_task_network(&id, body.into()).await?.into()))
}

/// A project's default network policy for new tasks (`null`: the settings').
#[utoipa::path(get, path = "/projects/{id}/network", tag = "network", params(("id" = String, Path, description = "Project id")), responses((status = 200, description = "The policy", body = Option<NetworkPolicy>), EngineErrors))]
async fn get_project_network(State(st): State<AppState>, Path(id): Path<String>) -> Result<Json<Option<NetworkPolicy>>, ApiError> {
    Ok(Json(st.engine.project_network(&id).await?))
}

/// Set a project's default network policy for new tasks (`null` removes it); `allow`
/// is added to the built-in list.
#[utoipa::path(put, path = "/projects/{id}/network", tag = "network", params(("id" = String, Path, description = "Project id")), request_body = Option<NetworkBody>,
    responses((status = 200, description = "The policy now", body = Option<NetworkPolicy>), JsonErrors, EngineErrors))]
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
