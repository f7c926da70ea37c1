//! The egress proxy a sandbox's `HTTP_PROXY`/`HTTPS_PROXY` point at (its
//! `127.0.0.1:3128`, relayed to AnyCode). One request per connection:
//!
//! - `CONNECT host:port` (HTTPS and any other TLS): a tunnel after `200`;
//! - absolute-form `GET http://host[:port]/path …` (plain HTTP): forwarded in
//!   origin form with `Connection: close`.
//!
//! The [`Policy`] decides by the name in the request, before any DNS lookup; a
//! refused host gets `403` at once with a plain-text body naming the setting to
//! change (and the caller's `on_blocked` records it). An allowed name is then
//! resolved, and only public addresses are used: loopback, private, link-local,
//! unspecified, shared, documentation and multicast addresses and this machine's own
//! addresses are refused, so no host service, LAN address or AnyCode port is
//! reached — except a gateway (`host.docker.internal:PORT` in the allow list), which
//! goes to the host's `127.0.0.1:PORT`.
//!
//! When AnyCode itself runs behind a proxy ([`Upstream::from_env`]), allowed
//! requests go through it (`CONNECT` for tunnels, absolute form for plain HTTP); the
//! address check is then the upstream's business.

use crate::policy::{normalize_host, Decision, Policy};
use crate::Error;
use base64::Engine as _;
use bytes::BytesMut;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest request head accepted, bytes.
const MAX_HEAD: usize = 64 * 1024;
/// How long a client may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to a target (or the upstream proxy) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The proxy AnyCode itself goes through (from its own environment); never handed
/// to sandboxes.
#[derive(Clone)]
pub struct Upstream {
    host: String,
    port: u16,
    /// `Proxy-Authorization` value (`Basic …`) when the URL has user info.
    auth: Option<String>,
    /// `NO_PROXY` entries: `*`, or names matched as suffixes.
    no_proxy: Vec<String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Upstream({}:{}{})", self.host, self.port, if self.auth.is_some() { ", with credentials" } else { "" })
    }
}

impl Upstream {
    /// `HTTPS_PROXY`, `https_proxy`, `HTTP_PROXY`, `http_proxy` (the first set), an
    /// `http://[user:pass@]host[:port]` URL, with `NO_PROXY`/`no_proxy`. `None` when
    /// none is set or the URL is not usable (logged).
    pub fn from_env() -> Option<Upstream> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let url = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"].iter().find_map(|k| var(k))?;
        let no_proxy = var("NO_PROXY").or_else(|| var("no_proxy")).unwrap_or_default();
        match Upstream::parse(&url, &no_proxy) {
            Some(u) => Some(u),
            None => {
                tracing::warn!("AnyCode's HTTP(S)_PROXY is not an http://host:port URL; sandboxes' allowed traffic goes out directly");
                None
            }
        }
    }

    /// Parses a proxy URL and a `NO_PROXY` list.
    pub fn parse(url: &str, no_proxy: &str) -> Option<Upstream> {
        let rest = url.trim().strip_prefix("http://").or_else(|| if url.contains("://") { None } else { Some(url.trim()) })?;
        let rest = rest.split('/').next()?;
        let (auth, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hp)) => (Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(userinfo))), hp),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport, 80)?;
        let no_proxy = no_proxy.split(',').map(|e| e.trim().trim_start_matches('.').to_ascii_lowercase()).filter(|e| !e.is_empty()).collect();
        Some(Upstream { host, port, auth, no_proxy })
    }

    fn bypassed(&self, host: &str) -> bool {
        self.no_proxy.iter().any(|e| e == "*" || host == e || host.ends_with(&format!(".{e}")))
    }
}

/// Where a sandbox's settings are changed, for the 403 body.
fn refusal(task: &str, host: &str, port: u16, policy: &Policy, reason: Option<&str>) -> String {
    let why = match (policy.mode, reason) {
        (_, Some(r)) => r.to_string(),
        (anycode_core::NetworkMode::None, _) => "this task's network mode is `none` (no outbound network)".to_string(),
        _ => format!("{host}:{port} is not in this task's allow list (network mode `{}`)", policy.mode),
    };
    format!(
        "AnyCode's egress proxy refused {host}:{port}: {why}.\n\
         To allow it, add \"{host}\" to the task's allow list: the Network panel of task {task} (Allow), \
         PUT /api/tasks/{task}/network {{\"add\": [\"{host}\"]}}, `network.allow` of POST /api/projects/{{id}}/tasks for new tasks, \
         or `[network] allow` in AnyCode's settings file (config.toml). \
         The mode (allowlist, none, open) is the task's `network.mode` and takes effect at its next start.\n"
    )
}

async fn respond<S: AsyncWrite + Unpin>(client: &mut S, status: &str, body: &str, extra: &str) -> Result<(), Error> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body.as_bytes()).await?;
    client.flush().await?;
    let _ = client.shutdown().await;
    Ok(())
}

/// What the client asked for.
struct Target {
    host: String,
    port: u16,
    /// `None` for CONNECT; else the rewritten head for the origin (origin form) and
    /// for an upstream proxy (absolute form).
    forward: Option<(Vec<u8>, Vec<u8>)>,
}

/// Serves one proxy connection of task `task` with `policy`; `on_blocked(host)` is
/// called for each refused host (lowercase, without port).
///
/// Errors: [`Error::Io`] when the client or target connection fails midway (the
/// client has been answered where possible).
pub async fn serve<S>(mut client: S, task: &str, policy: &Policy, upstream: Option<&Upstream>, on_blocked: impl FnOnce(&str)) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(4096);
    let head_len = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf)).await {
        Ok(Ok(Some(n))) => n,
        Ok(Ok(None)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return respond(&mut client, "408 Request Timeout", "no request head within 30 s\n", "").await,
    };
    let target = match parse_request(&buf[..head_len]) {
        Ok(t) => t,
        Err(msg) => return respond(&mut client, "400 Bad Request", &format!("{msg}\n"), "").await,
    };
    let body_start = buf.split_off(head_len);
    let gateway = match policy.decide(&target.host, target.port) {
        Decision::Deny => {
            on_blocked(&target.host);
            let body = refusal(task, &target.host, target.port, policy, None);
            return respond(&mut client, "403 Forbidden", &body, &format!("X-AnyCode-Blocked: {}\r\n", target.host)).await;
        }
        Decision::Allow { gateway } => gateway,
    };
    let via = upstream.filter(|u| !gateway && !u.bypassed(&target.host));
    let connected = match via {
        Some(u) => connect_upstream(u, &target).await,
        None => connect_direct(&target, gateway).await,
    };
    let mut remote = match connected {
        Ok(r) => r,
        Err(Refused::Address(addr)) => {
            on_blocked(&target.host);
            let reason = format!("{} resolves to {addr}, an address of this machine or its local network, which sandboxes never reach", target.host);
            let body = refusal(task, &target.host, target.port, policy, Some(&reason));
            return respond(&mut client, "403 Forbidden", &body, &format!("X-AnyCode-Blocked: {}\r\n", target.host)).await;
        }
        Err(Refused::Failed(msg)) => return respond(&mut client, "502 Bad Gateway", &format!("AnyCode's egress proxy could not reach {}:{}: {msg}\n", target.host, target.port), "").await,
    };
    match &target.forward {
        None => {
            client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
            client.flush().await?;
        }
        Some((origin, absolute)) => {
            remote.write_all(if via.is_some() { absolute } else { origin }).await?;
        }
    }
    if !body_start.is_empty() {
        remote.write_all(&body_start).await?;
    }
    match tokio::io::copy_bidirectional(&mut client, &mut remote).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::NotConnected) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Reads until the end of the request head; `Ok(None)` when the client closed
/// before sending anything. Returns the head's length in `buf`.
async fn read_head<S: AsyncRead + Unpin>(client: &mut S, buf: &mut BytesMut) -> Result<Option<usize>, Error> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        if buf.len() > MAX_HEAD {
            return Err(Error::Protocol(format!("a request head over {MAX_HEAD} bytes")));
        }
        if client.read_buf(buf).await? == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(Error::Protocol("the client closed inside its request head".into())) };
        }
    }
}

fn split_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (h.to_string(), port)
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().ok()?),
            None => (s.to_string(), default_port),
        }
    };
    let host = normalize_host(&host);
    if host.is_empty() || port == 0 {
        return None;
    }
    Some((host, port))
}

/// The target and rewritten heads of a proxy request head; the error is the 400 body.
fn parse_request(head: &[u8]) -> Result<Target, String> {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete request head".into()),
        Err(e) => return Err(format!("malformed request head: {e}")),
    }
    let method = req.method.unwrap_or_default();
    let uri = req.path.unwrap_or_default();
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_host_port(uri, 443).ok_or_else(|| format!("CONNECT needs host:port, got {uri:?}"))?;
        return Ok(Target { host, port, forward: None });
    }
    let Some(rest) = uri.strip_prefix("http://").or_else(|| uri.strip_prefix("HTTP://")) else {
        return Err("this is AnyCode's egress proxy: send `CONNECT host:port` or an absolute http:// URL (use HTTPS_PROXY/HTTP_PROXY)".into());
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') { format!("/{path}") } else { path.to_string() };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = split_host_port(authority, 80).ok_or_else(|| format!("no host in {uri:?}"))?;
    let mut kept = String::new();
    let mut has_host = false;
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        if matches!(name.as_str(), "proxy-connection" | "proxy-authorization" | "connection" | "keep-alive") {
            continue;
        }
        has_host |= name == "host";
        kept.push_str(h.name);
        kept.push_str(": ");
        kept.push_str(&String::from_utf8_lossy(h.value));
        kept.push_str("\r\n");
    }
    if !has_host {
        kept.push_str(&format!("Host: {authority}\r\n"));
    }
    kept.push_str("Connection: close\r\n\r\n");
    let origin = format!("{method} {path} HTTP/1.1\r\n{kept}").into_bytes();
    let absolute = format!("{method} {uri} HTTP/1.1\r\n{kept}").into_bytes();
    Ok(Target { host, port, forward: Some((origin, absolute)) })
}

enum Refused {
    /// The name resolves only to addresses sandboxes never reach.
    Address(IpAddr),
    /// Not reachable (DNS, refused, timeout); the message says which.
    Failed(String),
}

/// Whether sandboxes may never reach `ip` through the proxy: everything that is
/// not a public unicast address.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10, shared (CGNAT)
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15, benchmarking
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0 && s[1] == 0 && s[2] == 0 && s[3] == 0 && s[4] == 0 && s[5] == 0) // IPv4-compatible
        }
    }
}

async fn connect_direct(t: &Target, gateway: bool) -> Result<TcpStream, Refused> {
    let addrs: Vec<SocketAddr> = if gateway {
        vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), t.port)]
    } else {
        let (host, port) = (t.host.clone(), t.port);
        // getaddrinfo and getifaddrs block: off the runtime.
        let resolved = tokio::task::spawn_blocking(move || {
            let addrs: Vec<SocketAddr> = (host.as_str(), port).to_socket_addrs()?.collect();
            let own: Vec<IpAddr> = if_addrs::get_if_addrs().map(|l| l.into_iter().map(|i| i.ip()).collect()).unwrap_or_default();
            Ok::<_, std::io::Error>((addrs, own))
        })
        .await;
        let (all, own) = match resolved {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => return Err(Refused::Failed(format!("looking up the name failed: {e}"))),
            Err(e) => return Err(Refused::Failed(format!("looking up the name failed: {e}"))),
        };
        let public: Vec<SocketAddr> = all.iter().copied().filter(|a| !is_forbidden(a.ip()) && !own.contains(&a.ip())).collect();
        if public.is_empty() {
            return match all.first() {
                Some(a) => Err(Refused::Address(a.ip())),
                None => Err(Refused::Failed("the name has no addresses".into())),
            };
        }
        public
    };
    let mut last = String::from("no address");
    for a in addrs {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(a)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        }
    }
    Err(Refused::Failed(last))
}

async fn connect_upstream(u: &Upstream, t: &Target) -> Result<TcpStream, Refused> {
    let fail = |e: String| Refused::Failed(format!("through AnyCode's upstream proxy {}:{}: {e}", u.host, u.port));
    let mut s = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((u.host.as_str(), u.port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => return Err(fail("no answer".into())),
    };
    let _ = s.set_nodelay(true);
    if t.forward.is_some() {
        // Plain HTTP goes to the upstream in absolute form; its credentials are added.
        return Ok(s);
    }
    let auth = u.auth.as_ref().map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default();
    let host = if t.host.contains(':') { format!("[{}]", t.host) } else { t.host.clone() };
    let req = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n", port = t.port);
    s.write_all(req.as_bytes()).await.map_err(|e| fail(e.to_string()))?;
    let mut buf = BytesMut::new();
    let n = match tokio::time::timeout(CONNECT_TIMEOUT, read_head(&mut s, &mut buf)).await {
        Ok(Ok(Some(n))) => n,
        Ok(Ok(None)) => return Err(fail("it closed the connection".into())),
        Ok(Err(e)) => return Err(fail(e.to_string())),
        Err(_) => return Err(fail("no answer to CONNECT".into())),
    };
    let status = String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_string();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(fail(format!("it answered {status:?}")));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anycode_core::NetworkMode;

    fn policy(mode: NetworkMode, allow: &[&str]) -> Policy {
        Policy::new(mode, &allow.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    /// Sends `req` through the proxy; returns the whole answer and the blocked hosts.
    async fn ask(policy: &Policy, req: &str) -> (String, Vec<String>) {
        let (mut a, b) = tokio::io::duplex(64 * 1024);
        let mut blocked = Vec::new();
        let req = req.to_string();
        let client = async move {
            a.write_all(req.as_bytes()).await.unwrap();
            let mut out = Vec::new();
            a.read_to_end(&mut out).await.unwrap();
            String::from_utf8_lossy(&out).into_owned()
        };
        let (answer, _) = tokio::join!(client, serve(b, "t1", policy, None, |h| blocked.push(h.to_string())));
        (answer, blocked)
    }

    #[tokio::test]
    async fn refuses_by_name_with_403_naming_the_setting() {
        let p = policy(NetworkMode::Allowlist, &["example.com"]);
        let (a, blocked) = ask(&p, "CONNECT example.net:443 HTTP/1.1\r\nHost: example.net:443\r\n\r\n").await;
        assert!(a.starts_with("HTTP/1.1 403"), "{a}");
        assert!(a.contains("X-AnyCode-Blocked: example.net"), "{a}");
        assert!(a.contains("Network panel") && a.contains("network.allow") && a.contains("[network] allow"), "{a}");
        assert_eq!(blocked, ["example.net"]);
        let (a, blocked) = ask(&p, "GET http://Example.NET./x HTTP/1.1\r\nHost: example.net\r\n\r\n").await;
        assert!(a.starts_with("HTTP/1.1 403"), "{a}");
        assert_eq!(blocked, ["example.net"]);
        let none = policy(NetworkMode::None, &["example.com"]);
        let (a, _) = ask(&none, "CONNECT example.com:443 HTTP/1.1\r\n\r\n").await;
        assert!(a.starts_with("HTTP/1.1 403") && a.contains("`none`"), "{a}");
        let (a, blocked) = ask(&p, "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n").await;
        assert!(a.starts_with("HTTP/1.1 400"), "{a}");
        assert!(blocked.is_empty());
    }

    #[tokio::test]
    async fn gateways_reach_the_host_loopback_and_plain_http_is_rewritten() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = BytesMut::new();
            let n = read_head(&mut s, &mut buf).await.unwrap().unwrap();
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let body = format!("saw: {}", head.replace("\r\n", "|"));
            s.write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).as_bytes()).await.unwrap();
        });
        let p = policy(NetworkMode::Allowlist, &[&format!("host.docker.internal:{port}")]);
        let req = format!("GET http://host.docker.internal:{port}/v1/messages?x=1 HTTP/1.1\r\nHost: host.docker.internal:{port}\r\nProxy-Connection: keep-alive\r\n\r\n");
        let (a, blocked) = ask(&p, &req).await;
        assert!(a.starts_with("HTTP/1.1 200"), "{a}");
        assert!(a.contains("saw: GET /v1/messages?x=1 HTTP/1.1|"), "{a}");
        assert!(a.contains("Connection: close") && !a.contains("Proxy-Connection"), "{a}");
        assert!(blocked.is_empty());
        // Another port of this machine is no gateway.
        let (a, blocked) = ask(&p, "CONNECT host.docker.internal:22 HTTP/1.1\r\n\r\n").await;
        assert!(a.starts_with("HTTP/1.1 403"), "{a}");
        assert_eq!(blocked, ["host.docker.internal"]);
    }

    #[tokio::test]
    async fn allowed_names_on_private_addresses_are_refused_after_the_lookup() {
        let open = policy(NetworkMode::Open, &[]);
        for target in ["127.0.0.1:8080", "localhost:80", "10.1.2.3:443", "[::1]:443", "169.254.169.254:80"] {
            let (a, blocked) = ask(&open, &format!("CONNECT {target} HTTP/1.1\r\n\r\n")).await;
            assert!(a.starts_with("HTTP/1.1 403") && a.contains("never reach"), "{target}: {a}");
            assert_eq!(blocked.len(), 1);
        }
    }

    #[test]
    fn address_classes() {
        for bad in ["127.0.0.1", "10.0.0.1", "172.17.0.1", "192.168.1.1", "169.254.1.1", "0.0.0.0", "100.64.0.1", "192.0.2.2", "224.0.0.1", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1"] {
            assert!(is_forbidden(bad.parse().unwrap()), "{bad}");
        }
        for good in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_forbidden(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn upstream_urls() {
        let u = Upstream::parse("http://user:pw@proxy.corp:3129/", "localhost,.internal").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("proxy.corp", 3129));
        assert_eq!(u.auth.as_deref(), Some("Basic dXNlcjpwdw=="));
        assert!(u.bypassed("a.internal") && u.bypassed("localhost") && !u.bypassed("example.com"));
        assert!(Upstream::parse("socks5://x:1", "").is_none());
        assert!(!format!("{u:?}").contains("pw"));
    }
}
