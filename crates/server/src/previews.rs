//! Previews of dev servers in sandboxes, through AnyCode's own listener.
//!
//! - `GET /api/tasks/{id}/ports` lists the ports listening in the sandbox (one exec,
//!   only when asked; see the engine's `previews.rs`), each with `url`: the
//!   authenticated way in, `/api/tasks/{id}/ports/{port}/open` on AnyCode's origin.
//! - That route (behind the API's auth) makes a one-time code (60 s) and redirects
//!   to the preview's own origin, `http://<port>-<task>.localhost:<anycode port>/`
//!   (browsers resolve `*.localhost` to loopback), whose `/.anycode/preview-login`
//!   trades the code for a cookie of that host only (HttpOnly, random, kept as its
//!   SHA-256, valid for that task and port).
//! - Requests with a preview `Host` never reach the API or the UI: they are proxied
//!   to the port in the sandbox over an exec stream (HTTP/1.1, WebSocket upgrades
//!   included; paths and queries intact), with the preview cookie taken out. No
//!   cookie → 401. Cross-origin requests (another preview, another site: an `Origin`
//!   other than the preview's own, or `Sec-Fetch-Site` other than `same-origin`/`none`
//!   except for top-level navigations) → 403, so one preview cannot read another or
//!   drive it with its cookie. `Set-Cookie` with a `Domain` is dropped (it could
//!   reach AnyCode's own `localhost`). The API keeps refusing foreign `Origin`s on
//!   non-GET and WebSocket requests, previews included.
//! - **From a paired phone** (the open request came in on a LAN address, where
//!   `*.localhost` would name the phone itself): the preview gets a listener of its
//!   own on that LAN address and a free port, so its origin is
//!   `http://<LAN address>:<its port>` — another origin than the API's and every
//!   other preview's. It serves only that task's port, only under its own `Host`,
//!   and stops when LAN mode is turned off (at most [`MAX_LAN_PREVIEWS`], the
//!   oldest stopped first). Cookies are not kept apart by port, so its cookie is
//!   named after the port, and **every `anycode_*` cookie** (the phone's device
//!   session among them) is taken out of what reaches the sandbox.

use crate::auth::constant_time_eq;
use crate::openapi::EngineErrors;
use crate::{ApiError, AppState};
use anycode_engine::{ListeningPort, PreviewStream};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;
use std::time::{Duration, Instant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The preview's cookie (host-only: each preview origin has its own).
pub const PREVIEW_COOKIE: &str = "anycode_preview";
/// Where the one-time code is traded for the cookie, on the preview's origin.
pub const PREVIEW_LOGIN: &str = "/.anycode/preview-login";
/// How long a preview's one-time code is valid.
const CODE_TTL: Duration = Duration::from_secs(60);
/// Preview sessions kept at once; more drop the oldest.
const MAX_SESSIONS: usize = 512;
/// Idle connections kept per preview.
const MAX_IDLE: usize = 8;
/// Listeners for previews opened from phones kept at once; more stop the oldest.
pub const MAX_LAN_PREVIEWS: usize = 16;

/// A one-time open code: its SHA-256, the task, the port, when it was made.
type OpenCode = ([u8; 32], String, u16, Instant);
/// Idle HTTP/1 connections into sandboxes by `(task, port)`.
type IdleConns = HashMap<(String, u16), Vec<hyper::client::conn::http1::SendRequest<Body>>>;

/// A preview's listener on a LAN address (opened from a phone).
struct LanPreview {
    ip: IpAddr,
    task: String,
    port: u16,
    addr: SocketAddr,
    stop: CancellationToken,
}

/// One-time codes and sessions of previews, idle connections into sandboxes, and
/// the listeners of previews opened from phones.
#[derive(Default)]
pub(crate) struct Previews {
    codes: Mutex<Vec<OpenCode>>,
    sessions: Mutex<Vec<([u8; 32], String, u16)>>,
    idle: Mutex<IdleConns>,
    lan: tokio::sync::Mutex<Vec<LanPreview>>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

impl Previews {
    fn issue_code(&self, task: &str, port: u16) -> String {
        let code = random_hex();
        let now = Instant::now();
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|c| c.3 > now);
        codes.push((digest(&code), task.to_string(), port, now + CODE_TTL));
        code
    }

    /// Uses up a code for `task`/`port`; the new session secret.
    fn redeem(&self, code: &str, task: &str, port: u16) -> Option<String> {
        let d = digest(code);
        let now = Instant::now();
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        let i = codes.iter().position(|c| constant_time_eq(&c.0, &d) && c.1 == task && c.2 == port && c.3 > now)?;
        codes.remove(i);
        drop(codes);
        let secret = random_hex();
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= MAX_SESSIONS {
            sessions.remove(0);
        }
        sessions.push((digest(&secret), task.to_string(), port));
        Some(secret)
    }

    fn valid(&self, secret: &str, task: &str, port: u16) -> bool {
        let d = digest(secret);
        let sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions.iter().any(|s| constant_time_eq(&s.0, &d) && s.1 == task && s.2 == port)
    }
}

/// `<port>-<task>.localhost[:<server port>]` → (port, task). The task id is 12
/// lowercase hex digits, the port 1–65535, and the server port (when given) ours.
pub(crate) fn parse_preview_host(host: &str, server_port: u16) -> Option<(u16, String)> {
    let host = host.to_ascii_lowercase();
    let (name, port) = match host.rsplit_once(':') {
        Some((n, p)) => (n.to_string(), Some(p.parse::<u16>().ok()?)),
        None => (host.clone(), None),
    };
    if port.is_some_and(|p| p != server_port) {
        return None;
    }
    let label = name.strip_suffix(".localhost")?;
    let (p, task) = label.split_once('-')?;
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) || task.len() != 12 || !task.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let p: u16 = p.parse().ok().filter(|p| *p > 0)?;
    Some((p, task.to_string()))
}

/// The preview's origin host for `port` of `task` on a server listening on `server_port`.
pub(crate) fn preview_host(port: u16, task: &str, server_port: u16) -> String {
    format!("{port}-{task}.localhost:{server_port}")
}

/// A listening port with the way to open it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct PortView {
    /// The port in the sandbox.
    port: u16,
    /// The process holding it (the sandbox's own text), if seen.
    process: Option<String>,
    /// Where it listens in the sandbox (`127.0.0.1`, `0.0.0.0`, `::1`, …); empty
    /// for a forwarded port nothing listens on yet.
    address: String,
    /// Whether something listens on it now (false only for a forwarded port).
    listening: bool,
    /// Whether the project's devcontainer.json lists it in `forwardPorts`.
    forwarded: bool,
    /// Opens the preview: on AnyCode's origin, with the API's authentication; it
    /// redirects to `preview_origin` with a one-time code.
    url: String,
    /// The preview's own origin (`http://<port>-<task>.localhost:<anycode port>`).
    preview_origin: String,
}

/// The preview routes under /api.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ports)).routes(routes!(open))
}

fn server_port(headers: &HeaderMap, st: &AppState) -> u16 {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.rsplit_once(':'))
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(st.port)
}

/// The TCP ports listening in the task's sandbox now (one look inside, made when
/// asked), and the devcontainer's `forwardPorts` even before they listen, with
/// links that open them through AnyCode. 409 `TASK_NOT_RUNNING` when
/// the sandbox does not run.
#[utoipa::path(get, path = "/tasks/{id}/ports", tag = "tasks", params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "Listening ports, by port", body = Vec<PortView>), EngineErrors))]
async fn ports(State(st): State<AppState>, Path(id): Path<String>, headers: HeaderMap) -> Result<Json<Vec<PortView>>, ApiError> {
    let list: Vec<ListeningPort> = st.engine.listening_ports(&id).await?;
    let sp = server_port(&headers, &st);
    Ok(Json(
        list.into_iter()
            .map(|p| PortView {
                url: format!("/api/tasks/{id}/ports/{}/open", p.port),
                preview_origin: format!("http://{}", preview_host(p.port, &id, sp)),
                port: p.port,
                process: p.process,
                address: p.address,
                listening: p.listening,
                forwarded: p.forwarded,
            })
            .collect(),
    ))
}

/// Opens a preview: redirects (302) to the preview's origin with a one-time code
/// (60 s) that sets its cookie there.
#[utoipa::path(get, path = "/tasks/{id}/ports/{port}/open", tag = "tasks",
    params(("id" = String, Path, description = "Task id"), ("port" = u16, Path, description = "The port in the sandbox, 1-65535")),
    responses((status = 302, description = "To the preview's origin"), EngineErrors))]
async fn open(State(st): State<AppState>, Path((id, port)): Path<(String, String)>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p > 0) else {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_INPUT", format!("port {port:?}: give the port the dev server listens on (1-65535)")));
    };
    let task = st.engine.task(&id).await?;
    let host = match lan_ip(&headers, &st) {
        Some(ip) => lan_preview(&st, ip, &task.id, port).await?.to_string(),
        None => preview_host(port, &task.id, server_port(&headers, &st)),
    };
    let code = st.previews.issue_code(&task.id, port);
    let location = format!("http://{host}{PREVIEW_LOGIN}?code={code}");
    let mut r = (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(r)
}

/// The LAN address the request came in on (its `Host` names an address LAN mode
/// serves), or None for names and 127.0.0.1/::1 (where `*.localhost` works). Tests
/// stand in for a LAN address with another loopback address (127.0.0.2).
fn lan_ip(headers: &HeaderMap, st: &AppState) -> Option<IpAddr> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let ip: IpAddr = match host.parse::<SocketAddr>() {
        Ok(a) => a.ip(),
        Err(_) => host.trim_start_matches('[').trim_end_matches(']').parse().ok()?,
    };
    let localhost = [IpAddr::from([127, 0, 0, 1]), IpAddr::from(std::net::Ipv6Addr::LOCALHOST)];
    (!localhost.contains(&ip) && st.lan.status().addresses.iter().any(|a| a.ip() == ip)).then_some(ip)
}

/// The cookie that holds the session of a preview served at `host`: one name per
/// LAN listener (cookies of one address are shared by its ports), the plain name
/// for `*.localhost` hosts (host-only cookies keep those apart).
fn cookie_name(host: &str) -> String {
    match host.parse::<SocketAddr>() {
        Ok(a) => format!("{PREVIEW_COOKIE}_{}", a.port()),
        Err(_) => PREVIEW_COOKIE.to_string(),
    }
}

/// The listener of `task`'s `port` on LAN address `ip`: the one already open, or a
/// new one on a free port, stopped with LAN mode.
///
/// Errors: 409 `LAN_OFF` when LAN mode went off; 500 when no port can be bound.
async fn lan_preview(st: &AppState, ip: IpAddr, task: &str, port: u16) -> Result<SocketAddr, ApiError> {
    let Some(epoch) = st.lan.epoch().await else {
        return Err(ApiError::new(StatusCode::CONFLICT, "LAN_OFF", "local-network mode is off: turn it on to open previews from a phone"));
    };
    let mut lan = st.previews.lan.lock().await;
    lan.retain(|p| !p.stop.is_cancelled());
    if let Some(p) = lan.iter().find(|p| p.ip == ip && p.task == task && p.port == port) {
        return Ok(p.addr);
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, 0))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", format!("no port for the preview on {ip}: {e}")))?;
    let addr = listener.local_addr().map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()))?;
    if lan.len() >= MAX_LAN_PREVIEWS {
        let oldest = lan.remove(0);
        oldest.stop.cancel();
    }
    let stop = epoch.child_token();
    let (state, task_id, own) = (st.clone(), task.to_string(), addr.to_string());
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let (st, task, own) = (state.clone(), task_id.clone(), own.clone());
        async move {
            // Only its own name: another `Host` (a rebinding name) is refused.
            let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_ascii_lowercase();
            if host != own {
                return refuse(StatusCode::MISDIRECTED_REQUEST, "HOST_NOT_ALLOWED", "this listener serves one preview under its own address");
            }
            serve_preview(st, req, host, port, task).await
        }
    });
    let until = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::serve_listener(listener, app, until).await {
            tracing::warn!(error = %e, "a LAN preview listener failed");
        }
    });
    tracing::info!(%addr, task, port, "preview opened for the local network");
    lan.push(LanPreview { ip, task: task.to_string(), port, addr, stop });
    Ok(addr)
}

fn refuse(status: StatusCode, code: &'static str, message: &str) -> Response {
    ApiError::new(status, code, message).into_response()
}

/// The outermost layer: requests for a preview host go to the preview, all others on.
pub(crate) async fn dispatch(State(st): State<AppState>, req: Request<Body>, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    match parse_preview_host(&host, st.port) {
        Some((port, task)) => serve_preview(st, req, host, port, task).await,
        None => next.run(req).await,
    }
}

/// The `Cookie` header without AnyCode's own cookies (`anycode_*`: previews'
/// sessions, and on a LAN address the phone's device session, which the browser
/// sends to every port of that address); None when nothing is left.
fn without_anycode_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let rest: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';').map(|p| p.trim().to_string()).collect::<Vec<_>>())
        .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("anycode_"))
        .collect();
    if rest.is_empty() {
        None
    } else {
        HeaderValue::from_str(&rest.join("; ")).ok()
    }
}

/// Whether a request comes from the preview's own pages (or is a top-level
/// navigation the user made).
fn same_origin(headers: &HeaderMap, method: &Method, host: &str) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN) {
        let own = format!("http://{}", host.to_ascii_lowercase());
        if !origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(&own)) {
            return false;
        }
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin") | Some("none") => true,
        Some(_) => {
            let navigate = headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) == Some("navigate");
            navigate && (method == Method::GET || method == Method::HEAD)
        }
    }
}

async fn serve_preview(st: AppState, mut req: Request<Body>, host: String, port: u16, task: String) -> Response {
    if req.uri().path() == PREVIEW_LOGIN {
        let code = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("code="))).unwrap_or("");
        return match st.previews.redeem(code, &task, port) {
            Some(secret) => {
                let mut r = (StatusCode::FOUND, [(header::LOCATION, "/")]).into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("{}={secret}; HttpOnly; SameSite=Lax; Path=/", cookie_name(&host))) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
                r
            }
            None => refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "this preview link was used already or has expired: open the preview again from AnyCode"),
        };
    }
    let authed = crate::auth::cookie_in(req.headers(), &cookie_name(&host)).is_some_and(|c| st.previews.valid(&c, &task, port));
    if !authed {
        return refuse(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "not logged in to this preview: open it from AnyCode (the task's Ports list)");
    }
    if !same_origin(req.headers(), req.method(), &host) {
        return refuse(StatusCode::FORBIDDEN, "ORIGIN_NOT_ALLOWED", "a preview answers only its own pages");
    }
    match without_anycode_cookies(req.headers()) {
        Some(v) => {
            req.headers_mut().insert(header::COOKIE, v);
        }
        None => {
            req.headers_mut().remove(header::COOKIE);
        }
    }
    let upgrade = req.headers().get(header::UPGRADE).is_some();
    let result = if upgrade { proxy_upgrade(&st, req, &task, port).await } else { proxy(&st, req, &task, port).await };
    match result {
        Ok(mut r) => {
            // A cookie for a whole domain could reach AnyCode's own localhost.
            let kept: Vec<HeaderValue> = r
                .headers()
                .get_all(header::SET_COOKIE)
                .iter()
                .filter(|v| !v.to_str().unwrap_or("").to_ascii_lowercase().split(';').any(|a| a.trim().starts_with("domain")))
                .cloned()
                .collect();
            r.headers_mut().remove(header::SET_COOKIE);
            for v in kept {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Err(e) => e,
    }
}

async fn connect(st: &AppState, task: &str, port: u16) -> Result<PreviewStream, Response> {
    st.engine.preview_connect(task, port).await.map_err(|e| ApiError::from(e).into_response())
}

fn bad_gateway(port: u16, e: impl std::fmt::Display) -> Response {
    refuse(
        StatusCode::BAD_GATEWAY,
        "PREVIEW_UNREACHABLE",
        &format!("nothing answers on port {port} in the sandbox ({e}): start the dev server there, listening on 127.0.0.1, ::1 or all addresses"),
    )
}

/// One HTTP exchange, over an idle connection into the sandbox or a new one.
async fn proxy(st: &AppState, req: Request<Body>, task: &str, port: u16) -> Result<Response, Response> {
    let key = (task.to_string(), port);
    let idle = {
        let mut idle = st.previews.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key.clone()).or_default();
        list.retain(|s| !s.is_closed());
        list.iter().position(|s| s.is_ready()).map(|i| list.remove(i))
    };
    let mut sender = match idle {
        Some(s) => s,
        None => {
            let stream = connect(st, task, port).await?;
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| bad_gateway(port, e))?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "preview connection ended");
                }
            });
            sender
        }
    };
    let resp = sender.send_request(req).await.map_err(|e| bad_gateway(port, e))?;
    {
        let mut idle = st.previews.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE {
            list.push(sender);
        }
    }
    Ok(resp.map(Body::new))
}

/// A request asking for an upgrade (WebSocket): its own connection, and after a
/// `101` the two upgraded streams are copied into each other.
async fn proxy_upgrade(st: &AppState, mut req: Request<Body>, task: &str, port: u16) -> Result<Response, Response> {
    let stream = connect(st, task, port).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| bad_gateway(port, e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "preview upgrade connection ended");
        }
    });
    let client_upgrade = hyper::upgrade::on(&mut req);
    let (parts, body) = req.into_parts();
    let upstream_req = Request::from_parts(parts, body);
    let mut resp = sender.send_request(upstream_req).await.map_err(|e| bad_gateway(port, e))?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            match (client_upgrade.await, upstream_upgrade.await) {
                (Ok(c), Ok(u)) => {
                    let mut c = hyper_util::rt::TokioIo::new(c);
                    let mut u = hyper_util::rt::TokioIo::new(u);
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                }
                (c, u) => tracing::debug!(client = ?c.err(), upstream = ?u.err(), "preview upgrade failed"),
            }
        });
    }
    Ok(resp.map(Body::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_hosts() {
        assert_eq!(parse_preview_host("3000-0123456789ab.localhost:7878", 7878), Some((3000, "0123456789ab".into())));
        assert_eq!(parse_preview_host("3000-0123456789AB.LOCALHOST", 7878), Some((3000, "0123456789ab".into())));
        assert_eq!(parse_preview_host("3000-0123456789ab.localhost:9999", 7878), None);
        assert_eq!(parse_preview_host("0-0123456789ab.localhost:7878", 7878), None);
        assert_eq!(parse_preview_host("70000-0123456789ab.localhost:7878", 7878), None);
        assert_eq!(parse_preview_host("3000-0123456789ab.evil.com:7878", 7878), None);
        assert_eq!(parse_preview_host("3000-../etc.localhost:7878", 7878), None);
        assert_eq!(parse_preview_host("localhost:7878", 7878), None);
        assert_eq!(parse_preview_host("127.0.0.1:7878", 7878), None);
    }

    #[test]
    fn codes_work_once_for_their_preview_only() {
        let p = Previews::default();
        let code = p.issue_code("0123456789ab", 3000);
        assert!(p.redeem(&code, "0123456789ab", 3001).is_none());
        let secret = p.redeem(&code, "0123456789ab", 3000).unwrap();
        assert!(p.redeem(&code, "0123456789ab", 3000).is_none());
        assert!(p.valid(&secret, "0123456789ab", 3000));
        assert!(!p.valid(&secret, "0123456789ab", 3001));
        assert!(!p.valid("nope", "0123456789ab", 3000));
    }

    #[test]
    fn only_the_previews_own_pages_pass() {
        let host = "3000-0123456789ab.localhost:7878";
        let h = |pairs: &[(&str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
            }
            m
        };
        assert!(same_origin(&h(&[]), &Method::GET, host));
        assert!(same_origin(&h(&[("origin", "http://3000-0123456789ab.localhost:7878"), ("sec-fetch-site", "same-origin")]), &Method::POST, host));
        assert!(!same_origin(&h(&[("origin", "http://4000-0123456789ab.localhost:7878")]), &Method::GET, host));
        assert!(!same_origin(&h(&[("sec-fetch-site", "same-site"), ("sec-fetch-mode", "no-cors")]), &Method::GET, host));
        assert!(same_origin(&h(&[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate")]), &Method::GET, host));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate")]), &Method::POST, host));
    }
}
