//! AnyCode's network boundary for sandboxes.
//!
//! A sandbox in `allowlist` or `none` mode has no network route of its own: every
//! AnyCode-bound connection (hooks on its `127.0.0.1:47777`, the egress proxy on its
//! `127.0.0.1:3128`) is accepted inside it by `anycode-relay`
//! (`sandbox-image/relay/anycode-relay.c`, a static binary) and multiplexed over that process's
//! stdin/stdout, which AnyCode holds through a Docker exec. No port is opened on the
//! host, and nothing depends on the Docker bridge's gateway.
//!
//! - [`frame`]: the relay's framing (documented there).
//! - [`relay::run_relay`]: the host side: demultiplexes connections into
//!   [`tokio::io::DuplexStream`]s handed to a handler by port.
//! - [`policy`]: [`Policy`] (a task's mode and allow list) and [`Pattern`]s,
//!   deciding by host name before any DNS lookup.
//! - [`proxy`]: the HTTP egress proxy (`CONNECT` and absolute-form `http://`),
//!   refusing with 403 and a body naming the setting to change, refusing
//!   non-public addresses after the lookup, and going through AnyCode's own upstream
//!   proxy when it has one.
//!
//! Only this crate and the server crate speak HTTP.

pub mod frame;
pub mod policy;
pub mod proxy;
pub mod relay;

pub use policy::{check_allow, Decision, Pattern, Policy, HOST_GATEWAY};
pub use proxy::{serve as serve_proxy, Upstream};
pub use relay::{run_relay, Handler};

/// The port of the hook endpoint inside a sandbox (`SANDBOX_HOOK_URL`).
pub const HOOK_PORT: u16 = 47777;
/// The port of the egress proxy inside a sandbox (`HTTP_PROXY`).
pub const PROXY_PORT: u16 = 3128;

/// Errors of the relay and the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The frame stream (or a request head) is malformed; the message says how.
    #[error("relay protocol error: {0}")]
    Protocol(String),
    /// An allow-list entry cannot be used; the message names it and the fix.
    #[error("{0}")]
    InvalidPattern(String),
    /// Reading or writing a stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
