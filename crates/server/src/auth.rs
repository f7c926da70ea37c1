//! Access control: the token, one-time login codes, the session cookie, device
//! sessions and their roles, the Host allowlist and the Origin check.
//!
//! Who a request is ([`Principal`]) is decided here, once, and put into the
//! request's extensions: the owner (the token, or the desktop's session cookie
//! derived from it) or a paired device (its device cookie). Roles are enforced here
//! by method and path, not by the UI: a device never reaches owner-only endpoints,
//! and a watch device never reaches a non-GET one.

use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, Request, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Name of the owner's session cookie, set by `GET /login?code=…` (a one-time code).
pub const SESSION_COOKIE: &str = "anycode_session";

/// The access token: 256 random bits as 64 hex digits (or whatever `ANYCODE_TOKEN`
/// presets). Debug and Display never show it.
#[derive(Clone)]
pub struct AccessToken(String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(…)")
    }
}

impl AccessToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> AccessToken {
        AccessToken(value.into())
    }

    /// The token text, for the link `anycode serve` prints.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Loads the token from `path`, or makes a new random one and writes it there
    /// with mode 0600.
    pub fn load_or_create(path: &Path) -> std::io::Result<AccessToken> {
        if let Ok(s) = std::fs::read_to_string(path) {
            let s = s.trim();
            if s.len() >= 32 {
                return Ok(AccessToken(s.to_string()));
            }
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(token.as_bytes())?;
        }
        std::fs::rename(&tmp, path)?;
        Ok(AccessToken(token))
    }

    /// The session cookie's value: derived from the token, so the cookie store never
    /// holds the token itself.
    pub fn session_value(&self) -> String {
        hex::encode(Sha256::digest(format!("anycode-session:{}", self.0)))
    }

    /// Whether `candidate` is the token, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }
}

/// How long a login code is valid by default: 2 minutes.
pub const LOGIN_CODE_TTL: Duration = Duration::from_secs(120);
/// Login codes alive at once; making another drops the oldest.
const MAX_LOGIN_CODES: usize = 32;
/// How long a used or expired login code is remembered, to say so.
const REMEMBER_LOGIN_CODES: Duration = Duration::from_secs(3600);

struct LoginCode {
    /// SHA-256 of the code: the code itself is kept nowhere.
    hash: [u8; 32],
    expires: Instant,
    used: bool,
}

/// Why a login code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    /// No such code (mistyped, or from before a restart).
    Unknown,
    /// Used already: every code logs in once.
    Used,
    /// Older than its lifetime.
    Expired,
}

/// One-time login codes: what `anycode serve`, `anycode open` and the desktop app
/// put in the link they print or open (`/login?code=…`) instead of the long-lived
/// token, so the token is left in no browser history, process list or log. A code
/// is 128 random bits, valid for a short time and once; the server exchanges it for
/// the owner's session cookie. In memory only (a restart voids them). Cheap to
/// clone; clones share the codes.
#[derive(Clone)]
pub struct LoginCodes {
    ttl: Duration,
    codes: Arc<Mutex<Vec<LoginCode>>>,
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

impl LoginCodes {
    /// Codes valid for `ttl` each.
    pub fn new(ttl: Duration) -> LoginCodes {
        LoginCodes { ttl, codes: Arc::new(Mutex::new(Vec::new())) }
    }

    /// How long a new code is valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new code: 32 hex digits.
    pub fn issue(&self) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let code = hex::encode(bytes);
        let now = Instant::now();
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|c| c.expires + REMEMBER_LOGIN_CODES > now);
        while codes.iter().filter(|c| !c.used && c.expires > now).count() >= MAX_LOGIN_CODES {
            if let Some(i) = codes.iter().position(|c| !c.used && c.expires > now) {
                codes.remove(i);
            }
        }
        codes.push(LoginCode { hash: sha256(&code), expires: now + self.ttl, used: false });
        code
    }

    /// The login link for a new code on the server at `base` (e.g.
    /// `http://127.0.0.1:7878`): `<base>/login?code=<code>`.
    pub fn url(&self, base: &str) -> String {
        format!("{}/login?code={}", base.trim_end_matches('/'), self.issue())
    }

    /// Uses up `code`; `Ok` the first time within its lifetime.
    pub fn redeem(&self, code: &str) -> Result<(), LoginRefusal> {
        let wanted = sha256(code.trim());
        let now = Instant::now();
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = None;
        for (i, c) in codes.iter().enumerate() {
            if constant_time_eq(&c.hash, &wanted) {
                found = Some(i);
            }
        }
        let Some(i) = found else { return Err(LoginRefusal::Unknown) };
        let c = &mut codes[i];
        if c.used {
            return Err(LoginRefusal::Used);
        }
        if c.expires <= now {
            return Err(LoginRefusal::Expired);
        }
        c.used = true;
        Ok(())
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session cookie's value in a request, if any.
pub(crate) fn session_cookie(req: &Request<Body>) -> Option<String> {
    cookie(req, SESSION_COOKIE)
}

/// Cookie `name`'s value in a request, if any.
fn cookie(req: &Request<Body>, name: &str) -> Option<String> {
    cookie_in(req.headers(), name)
}

/// Cookie `name`'s value in these headers, if any.
pub(crate) fn cookie_in(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some((k, val)) = part.trim().split_once('=') {
                if k == name {
                    return Some(val.to_string());
                }
            }
        }
    }
    None
}

/// The `Host` values this server answers to: `127.0.0.1`, `localhost`, `[::1]`
/// and configured extras (each with and without the port), plus the LAN addresses
/// while LAN mode is on. Shared, so LAN mode can change it at run time.
#[derive(Clone, Default)]
pub(crate) struct AllowedHosts(Arc<RwLock<Vec<String>>>);

/// `ip` as it appears in a `Host` header, with and without `port`.
fn host_forms(ip: IpAddr, port: u16) -> [String; 2] {
    match ip {
        IpAddr::V4(v4) => [format!("{v4}:{port}"), v4.to_string()],
        IpAddr::V6(v6) => [format!("[{v6}]:{port}"), format!("[{v6}]")],
    }
}

impl AllowedHosts {
    pub fn new(port: u16, extra: &[String]) -> AllowedHosts {
        let mut hosts = vec![];
        for h in ["127.0.0.1", "localhost", "[::1]"].into_iter().map(str::to_string).chain(extra.iter().cloned()) {
            hosts.push(format!("{h}:{port}"));
            hosts.push(h);
        }
        AllowedHosts(Arc::new(RwLock::new(hosts)))
    }

    pub fn contains(&self, host: &str) -> bool {
        self.0.read().unwrap_or_else(|p| p.into_inner()).iter().any(|a| a == host)
    }

    pub fn add(&self, ip: IpAddr, port: u16) {
        let mut hosts = self.0.write().unwrap_or_else(|p| p.into_inner());
        for h in host_forms(ip, port) {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }

    pub fn remove(&self, ip: IpAddr, port: u16) {
        let forms = host_forms(ip, port);
        self.0.write().unwrap_or_else(|p| p.into_inner()).retain(|h| !forms.contains(h));
    }
}

/// Who sent a request; in the request's extensions after [`require_token`].
#[derive(Clone)]
pub(crate) enum Principal {
    /// The access token or the desktop's session cookie: everything.
    Owner,
    /// A paired device, with its role.
    Device(Arc<crate::devices::DeviceSession>),
}

impl Principal {
    /// A watch device: terminal input and resizes are dropped.
    pub fn read_only(&self) -> bool {
        matches!(self, Principal::Device(d) if d.role() == anycode_engine::DeviceRole::Watch)
    }
}

fn host_of(req: &Request<Body>) -> Option<String> {
    req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(|h| h.to_ascii_lowercase())
}

/// Refuses requests whose `Host` is not one this server answers to: a page of
/// another site that re-points its DNS name at 127.0.0.1 (DNS rebinding) must not
/// reach the API.
pub(crate) async fn check_host(State(st): State<AppState>, req: Request<Body>, next: Next) -> Result<Response, ApiError> {
    match host_of(&req) {
        Some(h) if st.allowed_hosts.contains(&h) => Ok(next.run(req).await),
        other => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "HOST_NOT_ALLOWED",
            format!("Host {:?} is not allowed; open AnyCode at http://127.0.0.1", other.unwrap_or_default()),
        )),
    }
}

/// Requires a session on /api and /ws: `Authorization: Bearer <token>`, the session
/// cookie, or a paired device's cookie (`POST /api/pair` alone needs none). Requests
/// carrying an `Origin` of another site are refused (cross-site WebSockets and form
/// posts). Devices are held to their role; the [`Principal`] goes into the request's
/// extensions.
pub(crate) async fn require_token(State(st): State<AppState>, mut req: Request<Body>, next: Next) -> Result<Response, ApiError> {
    let path = req.uri().path();
    if !(path.starts_with("/api/") || path.starts_with("/ws/")) {
        return Ok(next.run(req).await);
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        let host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")).unwrap_or("");
        let same_site = st.allowed_hosts.contains(host);
        let safe = req.method() == Method::GET && !path.starts_with("/ws/");
        if !same_site && !safe {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "ORIGIN_NOT_ALLOWED", format!("requests from {origin} are not allowed")));
        }
    }
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let owner = match bearer {
        Some(t) => st.token.matches(t),
        None => session_cookie(&req).is_some_and(|c| constant_time_eq(c.as_bytes(), st.token.session_value().as_bytes())),
    };
    let who = if owner {
        Principal::Owner
    } else if req.uri().path() == "/api/pair" && req.method() == Method::POST {
        // Pairing is how a device gets a session; it has its own guards.
        return Ok(next.run(req).await);
    } else {
        let device = match cookie(&req, crate::devices::DEVICE_COOKIE).filter(|_| bearer.is_none()) {
            Some(secret) => st.devices.authenticate(&secret).await?,
            None => None,
        };
        match device {
            Some(d) => Principal::Device(d),
            None => {
                return Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "not logged in: open the link `anycode serve` printed (or run `anycode open` for a new one), pair this device, or send Authorization: Bearer <token>",
                ))
            }
        }
    };
    if let Principal::Device(d) = &who {
        let path = req.uri().path();
        if let Some(why) = crate::pairing::owner_only(req.method(), path) {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "OWNER_ONLY", why));
        }
        let reads = req.method() == Method::GET || req.method() == Method::HEAD;
        if d.role() == anycode_engine::DeviceRole::Watch && !reads {
            return Err(ApiError::new(StatusCode::FORBIDDEN, "WATCH_ONLY", "this device is paired to watch only: it cannot change anything"));
        }
        st.devices.seen(d);
    }
    req.extensions_mut().insert(who);
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        let a = AccessToken::load_or_create(&p).unwrap();
        let b = AccessToken::load_or_create(&p).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_eq!(a.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(a.matches(a.expose()));
        assert!(!a.matches("nope"));
        assert_eq!(format!("{a:?}"), "AccessToken(…)");
    }

    #[test]
    fn login_codes_work_once_and_expire() {
        let codes = LoginCodes::new(Duration::from_millis(80));
        let url = codes.url("http://127.0.0.1:7878/");
        let code = url.strip_prefix("http://127.0.0.1:7878/login?code=").unwrap();
        assert_eq!(code.len(), 32);
        assert!(code.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(codes.redeem(code), Ok(()));
        assert_eq!(codes.redeem(code), Err(LoginRefusal::Used));
        assert_eq!(codes.redeem("0123"), Err(LoginRefusal::Unknown));
        let late = codes.issue();
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(codes.redeem(&late), Err(LoginRefusal::Expired));
        // Live codes are bounded: the oldest goes.
        let codes = LoginCodes::new(LOGIN_CODE_TTL);
        let first = codes.issue();
        for _ in 0..MAX_LOGIN_CODES {
            codes.issue();
        }
        assert_eq!(codes.redeem(&first), Err(LoginRefusal::Unknown));
    }
}
