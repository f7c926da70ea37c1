//! Docker hosts over HTTP (the engine's `hosts.rs`):
//!
//! - `GET /api/hosts` → `[{id, name, endpoint, tls?, max_running?, status, cpus,
//!   memory_bytes, running_tasks, tasks, reserved_cpus, error?}]`, `local` first;
//! - `POST /api/hosts {name, endpoint | context, tls?: {ca, cert, key}, max_running?}`
//!   → 201 with the host (it must answer first);
//! - `DELETE /api/hosts/{id}` (id or name) → 204; 409 while tasks are on it;
//! - `GET /api/hosts/contexts` → the user's Docker contexts, offered as hosts.
//!
//! Adding and removing are the owner's (paired devices get 403 OWNER_ONLY).

use crate::api::ApiJson;
use crate::openapi::{EngineErrors, JsonErrors};
use crate::{ApiError, AppState};
use anycode_engine::{ContextOffer, HostInfo, HostTls, NewHost};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The hosts routes.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, add)).routes(routes!(remove)).routes(routes!(contexts))
}

/// A host to add: `endpoint` (with `tls` for a TLS `tcp://` engine) or `context`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewHost)]
struct NewHostBody {
    /// 1 to 64 of `[A-Za-z0-9._-]`, not `local`.
    name: String,
    /// `tcp://box:2376`, `ssh://user@box[:port]` or `unix:///path/docker.sock`.
    endpoint: Option<String>,
    /// The PEM files of a TLS `tcp://` endpoint, as paths on this computer.
    tls: Option<HostTls>,
    /// A Docker context's name (`GET /api/hosts/contexts`) instead of `endpoint`.
    context: Option<String>,
    /// At most this many sandboxes run there at once.
    max_running: Option<u32>,
}

/// A Docker context of the user's, offered as a host.
#[derive(Serialize, ToSchema)]
#[schema(as = DockerContext)]
struct ContextView {
    /// The context's name.
    name: String,
    /// Its Docker endpoint.
    endpoint: String,
    /// Its description.
    description: String,
    /// Whether it is the Docker CLI's current context.
    current: bool,
    /// Why AnyCode cannot use it as it is (e.g. `SkipTLSVerify`), if so.
    problem: Option<String>,
}

impl From<ContextOffer> for ContextView {
    fn from(c: ContextOffer) -> Self {
        ContextView { name: c.name, endpoint: c.endpoint, description: c.description, current: c.current, problem: c.problem }
    }
}

/// Every Docker host, `local` first: whether it answers (each asked, at most 5 s),
/// its CPUs and memory, and AnyCode's load on it.
#[utoipa::path(get, path = "/hosts", tag = "hosts", responses((status = 200, description = "The hosts", body = Vec<HostInfo>), EngineErrors))]
async fn list(State(st): State<AppState>) -> Result<Json<Vec<HostInfo>>, ApiError> {
    Ok(Json(st.engine.hosts().await?))
}

/// Add a remote Docker host, driven as the Docker CLI drives it (nothing of AnyCode
/// runs there). It must answer before it is kept. Secrets never appear: TLS files
/// are paths, ssh uses your ssh config and agent.
#[utoipa::path(post, path = "/hosts", tag = "hosts", request_body = NewHostBody,
    responses((status = 201, description = "Added", body = HostInfo), JsonErrors, EngineErrors))]
async fn add(State(st): State<AppState>, ApiJson(b): ApiJson<NewHostBody>) -> Result<(StatusCode, Json<HostInfo>), ApiError> {
    let req = NewHost { name: b.name, endpoint: b.endpoint, tls: b.tls, context: b.context, max_running: b.max_running };
    Ok((StatusCode::CREATED, Json(st.engine.add_host(req).await?)))
}

/// Remove a remote host (by id or name); refused while tasks are on it.
#[utoipa::path(delete, path = "/hosts/{id}", tag = "hosts", params(("id" = String, Path, description = "Host id or name")),
    responses((status = 204, description = "Removed"), EngineErrors))]
async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.engine.delete_host(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user's Docker contexts (`~/.docker/contexts`), to add as hosts.
#[utoipa::path(get, path = "/hosts/contexts", tag = "hosts", responses((status = 200, description = "The contexts", body = Vec<ContextView>), EngineErrors))]
async fn contexts(State(st): State<AppState>) -> Result<Json<Vec<ContextView>>, ApiError> {
    Ok(Json(st.engine.host_contexts().await?.into_iter().map(Into::into).collect()))
}
