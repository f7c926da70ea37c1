//! AnyCode's HTTP and WebSocket server, on axum. The only crate that knows HTTP and
//! JSON.
//!
//! - [`serve`] takes a bound listener and a shutdown future, so the CLI
//!   (`anycode serve`), the desktop shell and tests all run the same server.
//! - [`auth`]: the access token (Bearer header, or the session cookie set by
//!   `GET /?token=…`), the Host allowlist against DNS rebinding, and the Origin check
//!   that keeps other sites' pages away from terminals.
//! - [`api`]: the JSON API under `/api` (OpenAPI document at `/api/openapi.json`).
//! - [`ws`]: `WS /ws/terminals/{id}`, binary frames for bytes, text frames for control.
//! - [`assets`]: the web UI, embedded from `frontend/dist`.

mod api;
mod assets;
pub mod auth;
mod error;
mod github_api;
mod ws;

pub use auth::AccessToken;
pub use error::ApiError;

use anycode_engine::Engine;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Settings of one server.
#[derive(Clone)]
pub struct ServerOptions {
    /// The access token every /api and /ws request must carry.
    pub token: AccessToken,
    /// Extra `Host` header values to accept besides `127.0.0.1`, `localhost` and
    /// `[::1]` (with or without the port), e.g. a LAN address.
    pub extra_hosts: Vec<String>,
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub token: AccessToken,
    pub allowed_hosts: std::sync::Arc<Vec<String>>,
    pub shutdown: CancellationToken,
}

/// The application router for a server listening on `addr`.
pub fn router(engine: Engine, opts: &ServerOptions, addr: SocketAddr, shutdown: CancellationToken) -> Router {
    let port = addr.port();
    let mut hosts = vec![];
    for h in ["127.0.0.1", "localhost", "[::1]"].into_iter().map(str::to_string).chain(opts.extra_hosts.iter().cloned()) {
        hosts.push(format!("{h}:{port}"));
        hosts.push(h);
    }
    let state = AppState { engine, token: opts.token.clone(), allowed_hosts: std::sync::Arc::new(hosts), shutdown };
    Router::new()
        .nest("/api", api::routes())
        .route("/ws/terminals/{id}", axum::routing::get(ws::terminal))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .merge(assets::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::check_host))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves AnyCode on `listener` until `shutdown` resolves, then closes open
/// WebSockets and returns. TCP_NODELAY is set on every connection so keystrokes
/// and their echo are never held back by Nagle's algorithm.
pub async fn serve(
    engine: Engine,
    listener: TcpListener,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let addr = listener.local_addr()?;
    // Connect to Docker and reconcile before the first request, so task states and
    // terminals are current from the start (Docker may be down: that is reported by
    // /api/health and retried on use).
    if let Err(e) = engine.docker().await {
        tracing::warn!(error = %e, "Docker is not available yet");
    }
    let cancel = CancellationToken::new();
    let app = router(engine, &opts, addr, cancel.clone());
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY failed");
        }
    });
    let cancel2 = cancel.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            cancel2.cancel();
        })
        .await
}
