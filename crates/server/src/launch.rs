//! The one startup path of `anycode serve` and the desktop app: tracing, settings,
//! engine, access token, listener, server and banner, in that order.
//!
//! ```text
//! init_tracing(…) → load_config() → launch(config, Listen::…, opts) → Launched
//!   → launched.banner() printed → launched.server.run(shutdown)
//! ```
//!
//! Callers add only what is theirs: the CLI builds the image with a spinner, adds
//! `--project` repositories and opens a browser; the desktop app opens its window
//! and tray.

use crate::{AccessToken, Server, ServerOptions};
use anycode_engine::{Config, Engine};
use std::net::IpAddr;

/// The port both front ends use unless told otherwise.
pub const DEFAULT_PORT: u16 = 7878;

/// What can stop AnyCode from starting.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The settings file (or an environment variable) cannot be used; the message
    /// names the file and what is wrong.
    #[error("{0}")]
    Settings(String),
    /// The data dir or its database could not be opened.
    #[error("opening the data dir: {0}")]
    Engine(#[from] anycode_engine::Error),
    /// The access token file could not be read or written.
    #[error("reading the access token {path}: {source}")]
    Token {
        /// The token file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No listener: the address is taken or not this machine's.
    #[error("cannot listen on {addr} ({source}): is another anycode running? Choose another port (--port or ANYCODE_PORT)")]
    Bind {
        /// `ip:port` asked for.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// Exactly this address and port (`anycode serve --bind --port`); failing to
    /// bind is an error.
    Exact(IpAddr, u16),
    /// 127.0.0.1 on [`DEFAULT_PORT`], or any free port when it is taken (the
    /// desktop app, which finds its own server).
    LoopbackPreferDefault,
}

/// A started AnyCode, its server bound but not yet serving.
pub struct Launched {
    /// The engine (shared with the server).
    pub engine: Engine,
    /// The access token API clients use.
    pub token: AccessToken,
    /// The server; call [`Server::run`].
    pub server: Server,
    /// `http://HOST:PORT` as a browser on this machine reaches it.
    pub base_url: String,
}

impl Launched {
    /// The banner both front ends print on stdout (scripts and tests read it): a
    /// one-time login link, never the token.
    pub fn banner(&self) -> String {
        format!("AnyCode is running: {}", self.server.login_codes().url(&self.base_url))
    }
}

/// Installs the log subscriber: `ANYCODE_LOG` (an `EnvFilter` string) or
/// `default`, to stderr. Call once, first.
pub fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ANYCODE_LOG").unwrap_or_else(|_| default.into());
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The configuration from the settings file and the environment, with the
/// settings' agent profiles checked.
///
/// Errors: [`LaunchError::Settings`] naming the file and the problem.
pub fn load_config() -> Result<Config, LaunchError> {
    let config = Config::load().map_err(|e| LaunchError::Settings(e.to_string()))?;
    if let Err(e) = anycode_engine::Profiles::from_settings(&config.settings.agents) {
        return Err(LaunchError::Settings(format!("the settings file {} is not valid: {e}", config.settings_path.display())));
    }
    Ok(config)
}

/// Opens the engine, reads (or makes) the access token (`ANYCODE_TOKEN` wins),
/// binds the listener and prepares the server. Docker is not contacted here:
/// [`Server::run`] connects and reconciles before the first request.
///
/// The server gets [`ServerOptions::new`]'s defaults, with `lan_addresses` (LAN
/// mode's addresses instead of the discovered ones; empty: discover). A listener on
/// a non-loopback address also accepts that address as a `Host`.
///
/// Errors: [`LaunchError::Engine`], [`LaunchError::Token`], [`LaunchError::Bind`].
pub async fn launch(config: Config, listen: Listen, lan_addresses: Vec<IpAddr>) -> Result<Launched, LaunchError> {
    let engine = Engine::open(config.clone()).await?;
    let token = match std::env::var("ANYCODE_TOKEN").ok().filter(|t| !t.is_empty()) {
        Some(t) => AccessToken::new(t),
        None => {
            let path = config.token_path();
            AccessToken::load_or_create(&path).map_err(|source| LaunchError::Token { path: path.display().to_string(), source })?
        }
    };
    let listener = bind(&listen).await?;
    let addr = listener.local_addr().map_err(|source| LaunchError::Bind { addr: format!("{listen:?}"), source })?;
    let mut opts = ServerOptions { lan_addresses, ..ServerOptions::new(token.clone()) };
    let shown_host = if addr.ip().is_loopback() || addr.ip().is_unspecified() { "127.0.0.1".to_string() } else { addr.ip().to_string() };
    if !addr.ip().is_loopback() {
        opts.extra_hosts.push(addr.ip().to_string());
    }
    let server = Server::new(engine.clone(), listener, opts).map_err(|source| LaunchError::Bind { addr: addr.to_string(), source })?;
    Ok(Launched { engine, token, server, base_url: format!("http://{shown_host}:{}", addr.port()) })
}

async fn bind(listen: &Listen) -> Result<tokio::net::TcpListener, LaunchError> {
    use tokio::net::TcpListener;
    match *listen {
        Listen::Exact(ip, port) => {
            TcpListener::bind((ip, port)).await.map_err(|source| LaunchError::Bind { addr: format!("{ip}:{port}"), source })
        }
        Listen::LoopbackPreferDefault => match TcpListener::bind(("127.0.0.1", DEFAULT_PORT)).await {
            Ok(l) => Ok(l),
            Err(e) => {
                tracing::info!(error = %e, "port {DEFAULT_PORT} is taken; using a free port");
                TcpListener::bind(("127.0.0.1", 0)).await.map_err(|source| LaunchError::Bind { addr: "127.0.0.1:0".into(), source })
            }
        },
    }
}
