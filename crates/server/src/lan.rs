//! Serving on the local network ("LAN mode"), off by default.
//!
//! The server always listens on its main listener (127.0.0.1 unless told
//! otherwise). [`LanControl::enable`] also listens on the machine's local-network
//! addresses, on the same port, and adds exactly those addresses to the `Host`
//! allowlist; [`LanControl::disable`] stops those listeners, takes the addresses off
//! the allowlist and closes every WebSocket that came in through them.
//!
//! Which addresses: every non-loopback, non-link-local IPv4 address of an interface
//! that is up, except container and VM bridges (`docker*`, `br-*`, `veth*`,
//! `virbr*`, `cni*`, `podman*`), so that sandboxes do not get a door to the server.
//! [`crate::ServerOptions::lan_addresses`] replaces the discovery with a fixed list.

use crate::auth::AllowedHosts;
use axum::Router;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// Why LAN mode could not be turned on.
#[derive(Debug, thiserror::Error)]
pub enum LanError {
    /// No interface has a usable local-network address (not connected to a network).
    #[error("no local network address found: connect this computer to a network (Wi-Fi or Ethernet) first")]
    NoAddress,
    /// An address could not be listened on (in use by another program, or gone).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address and port tried.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The interfaces could not be listed.
    #[error("cannot list the network interfaces: {0}")]
    Interfaces(std::io::Error),
}

/// Whether LAN mode is on and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LanStatus {
    /// LAN mode is on.
    pub enabled: bool,
    /// The local-network addresses served (IP and port), best first: private IPv4
    /// ranges, then the rest. Empty when off.
    #[schema(value_type = Vec<String>)]
    pub addresses: Vec<SocketAddr>,
    /// `http://<address>/` for each address.
    pub urls: Vec<String>,
}

/// Marks a connection accepted on a LAN listener: `cancelled` fires when LAN mode is
/// turned off, so that connection's WebSockets close.
#[derive(Clone)]
pub(crate) struct LanConn(pub CancellationToken);

struct Active {
    addresses: Vec<SocketAddr>,
    /// Cancelled when LAN mode is turned off (or the server stops): stops the
    /// listeners and closes the WebSockets of their connections.
    epoch: CancellationToken,
}

struct Inner {
    port: u16,
    main_ip: IpAddr,
    fixed: Vec<IpAddr>,
    hosts: AllowedHosts,
    shutdown: CancellationToken,
    app: OnceLock<Router>,
    active: tokio::sync::Mutex<Option<Active>>,
    /// A copy of the state for synchronous readers (the API, status checks).
    status: std::sync::Mutex<LanStatus>,
}

/// Turns LAN mode on and off at run time; cheap to clone. Get it from
/// [`crate::Server::lan`]; the web UI's settings (`POST /api/lan`), `anycode serve
/// --lan` and the desktop tray all use it.
#[derive(Clone)]
pub struct LanControl {
    inner: Arc<Inner>,
}

impl LanControl {
    pub(crate) fn new(main: SocketAddr, fixed: Vec<IpAddr>, hosts: AllowedHosts, shutdown: CancellationToken) -> LanControl {
        LanControl {
            inner: Arc::new(Inner {
                port: main.port(),
                main_ip: main.ip(),
                fixed,
                hosts,
                shutdown,
                app: OnceLock::new(),
                active: tokio::sync::Mutex::new(None),
                status: std::sync::Mutex::new(LanStatus { enabled: false, addresses: vec![], urls: vec![] }),
            }),
        }
    }

    /// Hands over the router the LAN listeners serve (set once, after it is built).
    pub(crate) fn set_app(&self, app: Router) {
        let _ = self.inner.app.set(app);
    }

    /// The current state.
    pub fn status(&self) -> LanStatus {
        self.inner.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Turns LAN mode on: listens on the local-network addresses (on the main
    /// listener's port) and accepts them as `Host`. Does nothing when already on.
    ///
    /// Errors: [`LanError::NoAddress`] when there is no local-network address,
    /// [`LanError::Bind`] when an address cannot be listened on (then nothing is
    /// listening and nothing changed).
    pub async fn enable(&self) -> Result<LanStatus, LanError> {
        let mut active = self.inner.active.lock().await;
        if active.is_some() {
            return Ok(self.status());
        }
        let ips = if self.inner.fixed.is_empty() { discover()? } else { self.inner.fixed.clone() };
        if ips.is_empty() {
            return Err(LanError::NoAddress);
        }
        let port = self.inner.port;
        // Bind everything first, so a failure leaves nothing half on.
        let mut listeners = Vec::new();
        for ip in &ips {
            // The main listener already covers its own address (or all of them when it
            // listens on 0.0.0.0); binding again would fail with "address in use".
            if *ip == self.inner.main_ip || self.inner.main_ip.is_unspecified() {
                continue;
            }
            let addr = SocketAddr::new(*ip, port);
            let l = tokio::net::TcpListener::bind(addr).await.map_err(|source| LanError::Bind { addr, source })?;
            listeners.push(l);
        }
        // Hosts first: the first request on a new listener must already pass.
        for ip in &ips {
            self.inner.hosts.add(*ip, port);
        }
        let epoch = self.inner.shutdown.child_token();
        if let Some(app) = self.inner.app.get() {
            for l in listeners {
                let app = app.clone().layer(axum::Extension(LanConn(epoch.clone())));
                let stop = epoch.clone();
                tokio::spawn(async move {
                    if let Err(e) = crate::serve_listener(l, app, stop).await {
                        tracing::warn!(error = %e, "a LAN listener failed");
                    }
                });
            }
        }
        let addresses: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect();
        tracing::info!(?addresses, "serving on the local network");
        *active = Some(Active { addresses: addresses.clone(), epoch });
        let status = LanStatus { enabled: true, urls: addresses.iter().map(|a| format!("http://{a}/")).collect(), addresses };
        *self.inner.status.lock().unwrap_or_else(|p| p.into_inner()) = status.clone();
        Ok(status)
    }

    /// While LAN mode is on: the token cancelled when it is turned off (or the server
    /// stops), for listeners that must not outlive it (previews opened from a phone).
    pub(crate) async fn epoch(&self) -> Option<CancellationToken> {
        self.inner.active.lock().await.as_ref().map(|a| a.epoch.clone())
    }

    /// Turns LAN mode off: stops the LAN listeners, refuses the LAN addresses as
    /// `Host`, and closes the WebSockets that came in through them. Does nothing when
    /// already off.
    pub async fn disable(&self) -> LanStatus {
        let mut active = self.inner.active.lock().await;
        if let Some(a) = active.take() {
            for addr in &a.addresses {
                self.inner.hosts.remove(addr.ip(), addr.port());
            }
            a.epoch.cancel();
            tracing::info!("stopped serving on the local network");
        }
        let status = LanStatus { enabled: false, addresses: vec![], urls: vec![] };
        *self.inner.status.lock().unwrap_or_else(|p| p.into_inner()) = status.clone();
        status
    }
}

/// Interface names of container and VM bridges: never served.
const BRIDGE_PREFIXES: &[&str] = &["docker", "br-", "veth", "virbr", "cni", "podman", "vmnet", "vboxnet"];

/// The machine's local-network IPv4 addresses, best first (private ranges first).
pub fn discover() -> Result<Vec<IpAddr>, LanError> {
    let ifaces = if_addrs::get_if_addrs().map_err(LanError::Interfaces)?;
    let mut ips: Vec<IpAddr> = ifaces
        .iter()
        .filter(|i| i.is_oper_up() || i.oper_status == if_addrs::IfOperStatus::Unknown)
        .filter(|i| !BRIDGE_PREFIXES.iter().any(|p| i.name.starts_with(p)))
        .map(|i| i.ip())
        .filter(|ip| usable(*ip))
        .collect();
    ips.sort_by_key(|ip| (!is_private(*ip), *ip));
    ips.dedup();
    Ok(ips)
}

fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_loopback() || v4.is_link_local() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        // IPv6 needs care (link-local scope ids, temporary addresses); phones on a
        // home network reach IPv4. A fixed list may still name IPv6 addresses.
        IpAddr::V6(_) => false,
    }
}

fn is_private(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_private())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_skips_loopback_link_local_and_sorts_private_first() {
        // Only lists addresses; no traffic is sent anywhere.
        let ips = discover().unwrap();
        assert!(ips.iter().all(|ip| !ip.is_loopback()), "{ips:?}");
        assert!(!usable("169.254.1.2".parse().unwrap()));
        assert!(!usable("127.0.0.2".parse().unwrap()));
        assert!(!usable("fe80::1".parse().unwrap()));
        assert!(usable("192.168.1.20".parse().unwrap()));
        let mut v: Vec<IpAddr> = vec!["100.64.0.1".parse().unwrap(), "192.168.1.2".parse().unwrap()];
        v.sort_by_key(|ip| (!is_private(*ip), *ip));
        assert_eq!(v[0], "192.168.1.2".parse::<IpAddr>().unwrap());
    }
}
