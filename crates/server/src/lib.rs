//! AnyCode's HTTP and WebSocket server, on axum. The only crate that knows HTTP and
//! JSON.
//!
//! - [`launch`]: the one startup path of `anycode serve` and the desktop app
//!   (tracing, settings, engine, token, listener, banner). [`Server::new`] then
//!   [`Server::run`] (with a shutdown future) serve; tests make a [`Server`] on
//!   their own listener.
//! - [`auth`]: the access token (Bearer header for API clients), one-time login
//!   codes (`GET /login?code=…` sets the session cookie; the token never goes in a
//!   URL), the Host allowlist against DNS rebinding, and the Origin check that keeps
//!   other sites' pages away from terminals.
//! - [`api`]: the JSON API under `/api` (OpenAPI document at `/api/openapi.json`).
//! - [`ws`]: `WS /ws/terminals/{id}`, binary frames for bytes, text frames for control.
//! - `events_ws`: `WS /ws/events`, live task states (a snapshot, then changes).
//! - `hooks`: the agent hook service (only `POST /hooks/claude` with a task's hook
//!   token, served on the connections sandboxes' relays carry) and
//!   `POST /api/tasks/{id}/approval`.
//! - `network_api`: network policies (`/api/tasks/{id}/network`,
//!   `/api/projects/{id}/network`) and the relay check at start.
//! - [`lan`]: LAN mode (off by default): listening on the local-network addresses
//!   too, switched at run time through [`LanControl`].
//! - [`pairing`]: pairing codes and QR, device sessions with a role (watch or
//!   control), the brute-force guard, revocation; `devices` keeps the live
//!   sessions and their sockets.
//! - [`assets`]: the web UI, embedded from `frontend/dist`.

mod api;
mod assets;
pub mod auth;
mod devices;
mod error;
mod events_ws;
mod github_api;
mod hooks;
mod hosts_api;
mod messages_api;
mod review_api;
mod openin_api;
mod setup_api;
mod previews;
mod network_api;
pub mod openapi;
pub mod lan;
pub mod launch;
pub mod pairing;
mod ws;

pub use auth::{AccessToken, LoginCodes, LoginRefusal};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use lan::{LanControl, LanError, LanStatus};
pub use pairing::PairingLimits;

use anycode_engine::Engine;
use axum::Router;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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
    /// LAN mode serves these addresses instead of the discovered local-network ones
    /// (empty: discover). Tests use a loopback alias such as 127.0.0.2.
    pub lan_addresses: Vec<IpAddr>,
    /// Turn LAN mode on at start (`anycode serve --lan`).
    pub lan: bool,
    /// Pairing code lifetime and the brute-force guard.
    pub pairing: PairingLimits,
    /// How long a one-time login code is valid ([`auth::LOGIN_CODE_TTL`]).
    pub login_code_ttl: std::time::Duration,
}

impl ServerOptions {
    /// Loopback only, LAN mode off, the product's pairing limits.
    pub fn new(token: AccessToken) -> ServerOptions {
        ServerOptions {
            token,
            extra_hosts: vec![],
            lan_addresses: vec![],
            lan: false,
            pairing: PairingLimits::default(),
            login_code_ttl: auth::LOGIN_CODE_TTL,
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub token: AccessToken,
    pub allowed_hosts: auth::AllowedHosts,
    pub shutdown: CancellationToken,
    pub devices: Arc<devices::Devices>,
    pub pairing: Arc<pairing::Pairing>,
    pub lan: LanControl,
    pub login: LoginCodes,
    /// Preview codes, sessions and idle connections (`previews.rs`).
    pub previews: Arc<previews::Previews>,
    /// The main listener's port (preview hosts name it).
    pub port: u16,
}

fn router(state: AppState) -> Router {
    Router::new()
        .nest("/api", api::router())
        .route("/ws/terminals/{id}", axum::routing::get(ws::terminal))
        .route("/ws/events", axum::routing::get(events_ws::events))
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_token))
        .merge(assets::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::check_host))
        // Preview hosts (`<port>-<task>.localhost`) never reach the API or the UI.
        .layer(axum::middleware::from_fn_with_state(state.clone(), previews::dispatch))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// A server bound to its main listener, not running yet.
pub struct Server {
    engine: Engine,
    listener: TcpListener,
    app: Router,
    lan: LanControl,
    lan_at_start: bool,
    cancel: CancellationToken,
    login: LoginCodes,
}

impl Server {
    /// Prepares the server on `listener` (usually 127.0.0.1).
    pub fn new(engine: Engine, listener: TcpListener, opts: ServerOptions) -> std::io::Result<Server> {
        let addr = listener.local_addr()?;
        let cancel = CancellationToken::new();
        let hosts = auth::AllowedHosts::new(addr.port(), &opts.extra_hosts);
        let lan = LanControl::new(addr, opts.lan_addresses.clone(), hosts.clone(), cancel.clone());
        let login = LoginCodes::new(opts.login_code_ttl);
        let state = AppState {
            engine: engine.clone(),
            token: opts.token.clone(),
            allowed_hosts: hosts,
            shutdown: cancel.clone(),
            devices: Arc::new(devices::Devices::new(engine.clone())),
            pairing: Arc::new(pairing::Pairing::new(opts.pairing.clone())),
            lan: lan.clone(),
            login: login.clone(),
            previews: Arc::new(previews::Previews::default()),
            port: addr.port(),
        };
        let app = router(state);
        lan.set_app(app.clone());
        Ok(Server { engine, listener, app, lan, lan_at_start: opts.lan, cancel, login })
    }

    /// The handle that turns LAN mode on and off while the server runs.
    pub fn lan(&self) -> LanControl {
        self.lan.clone()
    }

    /// The server's one-time login codes: [`LoginCodes::url`] makes the link to
    /// print or open (valid while the server runs).
    pub fn login_codes(&self) -> LoginCodes {
        self.login.clone()
    }

    /// The main listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops the LAN listeners, closes open
    /// WebSockets and returns. Errors: LAN mode asked for at start and impossible
    /// ([`LanError`], as an `io::Error`), or the listener failing.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        // Connect to Docker and reconcile before the first request, so task states and
        // terminals are current from the start (Docker may be down: that is reported by
        // /api/health and retried on use).
        if let Err(e) = self.engine.connect().await {
            tracing::warn!(error = %e, "Docker is not available yet");
        }
        // Agent hooks: served on the connections sandboxes' relays carry.
        hooks::start(self.engine.clone());
        network_api::check_relay_at_start(self.engine.clone());
        if self.lan_at_start {
            self.lan.enable().await.map_err(std::io::Error::other)?;
        }
        // Shutting down cancels everything at once: the listeners stop accepting, and
        // WebSockets (which a graceful shutdown would otherwise wait for) close.
        let cancel = self.cancel.clone();
        tokio::spawn(async move {
            shutdown.await;
            cancel.cancel();
        });
        let res = serve_listener(self.listener, self.app, self.cancel.clone()).await;
        self.lan.disable().await;
        self.engine.shutdown_relays();
        res
    }
}

/// Makes `engine` serve agent hooks on the connections sandboxes' relays carry,
/// without the rest of the server (`anycode doctor`'s relay check).
pub fn serve_hooks(engine: &Engine) {
    hooks::start(engine.clone());
}

/// Resolves at Ctrl-C (SIGINT) or SIGTERM: the shutdown signal `anycode serve` and the
/// desktop app hand to [`Server::run`]. Where a signal cannot be watched, only
/// Ctrl-C counts.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Serves `app` on `listener` until `stop` is cancelled. TCP_NODELAY is set on every
/// connection so keystrokes and their echo are never held back by Nagle's algorithm;
/// the peer address is available to handlers (`ConnectInfo`) for the pairing guard.
pub(crate) async fn serve_listener(listener: TcpListener, app: Router, stop: CancellationToken) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY failed");
        }
    });
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { stop.cancelled_owned().await })
        .await
}

