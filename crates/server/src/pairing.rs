//! Pairing phones: one-time codes, the brute-force guard, device sessions, LAN mode.
//!
//! - `POST /api/pairing {"role"}` (owner only): a code `XXX-XXX-XXX` (9 symbols of 32,
//!   45 bits) valid for [`PairingLimits::code_ttl`] and one use, the URL that carries
//!   it and that URL as a QR code (SVG, made here by the `qrcode` crate). Needs LAN
//!   mode: a phone can only reach a LAN address.
//! - `POST /api/pair {"code", "device_name"}` (no session needed): redeems a code for
//!   a device session cookie (HttpOnly, SameSite=Strict, 256 random bits; the
//!   database keeps its SHA-256). Codes are compared in constant time; each client
//!   IP gets [`PairingLimits::max_failures`] wrong tries per
//!   [`PairingLimits::failure_window`], then is locked out for
//!   [`PairingLimits::lockout`] (429 with `Retry-After`), right code or not; and all
//!   clients together get [`PairingLimits::max_global_failures`] per window, then
//!   pairing pauses for everyone for the lockout (many addresses, e.g. IPv6, buy no
//!   more guesses). Checking the lockouts, comparing the code and counting a failure
//!   happen under one lock, so concurrent tries cannot slip past the count.
//! - `GET /api/devices`, `DELETE /api/devices/{id}` (owner only): the paired devices;
//!   revoking closes the device's WebSockets at once.
//! - `GET /api/session`: who the caller is (owner, or a device and its role).
//! - `POST /api/login-code` (owner only): a one-time login link (`/login?code=…`).
//! - `GET /api/lan`, `POST /api/lan {"enabled"}` (owner only): LAN mode.

use crate::api::ApiJson;
use crate::auth::{constant_time_eq, Principal};
use crate::devices::{rfc3339_in, DeviceView, DEVICE_COOKIE};
use crate::lan::{LanError, LanStatus};
use crate::{ApiError, AppState};
use anycode_engine::DeviceRole;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use crate::error::ErrorBody;
use crate::openapi::{EngineErrors, JsonErrors};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Symbols of a pairing code: capitals and digits without the look-alikes 0/O, 1/I.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Symbols in a code (shown as three groups of three).
const CODE_LEN: usize = 9;
/// Codes alive at once; making another drops the oldest.
const MAX_LIVE_CODES: usize = 8;
/// How long a used or expired code is remembered, to say so instead of "wrong".
const REMEMBER_SPENT: Duration = Duration::from_secs(3600);

/// Limits of pairing; the defaults are the product's, tests shorten them.
#[derive(Debug, Clone)]
pub struct PairingLimits {
    /// How long a pairing code is valid: 10 minutes.
    pub code_ttl: Duration,
    /// Wrong codes a client IP may send per `failure_window` before it is locked out: 5.
    pub max_failures: u32,
    /// The window failures are counted in: 1 minute.
    pub failure_window: Duration,
    /// How long a client IP (or, after too many failures from all, everyone) is
    /// locked out: 60 s.
    pub lockout: Duration,
    /// Wrong codes all clients together may send per `failure_window` before
    /// pairing pauses for everyone for `lockout`: 30.
    pub max_global_failures: u32,
}

impl Default for PairingLimits {
    fn default() -> Self {
        PairingLimits {
            code_ttl: Duration::from_secs(600),
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
            max_global_failures: 30,
        }
    }
}

struct Code {
    /// Normalised: 9 symbols, no dashes.
    symbols: [u8; CODE_LEN],
    role: DeviceRole,
    expires: Instant,
    used_at: Option<Instant>,
}

#[derive(Default)]
struct Attempts {
    window_start: Option<Instant>,
    failures: u32,
    locked_until: Option<Instant>,
}

/// Why a code was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Wrong,
    Expired,
    Used,
    /// Locked out; seconds until the next try is accepted.
    Locked(u64),
    /// Too many failures from all clients: pairing is paused for everyone for
    /// these seconds.
    Paused(u64),
}

/// Pairing codes and the failure counts, per IP and global. In memory only: a
/// restart voids every code, which is what a user would expect of a code on screen.
pub(crate) struct Pairing {
    limits: PairingLimits,
    /// One lock for codes and counts: a try is checked, compared and counted at once.
    state: Mutex<Guarded>,
}

#[derive(Default)]
struct Guarded {
    codes: Vec<Code>,
    attempts: HashMap<IpAddr, Attempts>,
    /// Failures of all clients together.
    global: Attempts,
}

/// Seconds from `now` until `until`, at least 1, while `until` is ahead.
fn secs_until(until: Option<Instant>, now: Instant) -> Option<u64> {
    until.filter(|t| *t > now).map(|t| (t - now).as_secs_f64().ceil().max(1.0) as u64)
}

impl Attempts {
    /// Counts a failure in the window; true when this one reached `max` (the
    /// caller's lockout starts now).
    fn fail(&mut self, now: Instant, window: Duration, max: u32, lockout: Duration) -> bool {
        if self.window_start.is_none_or(|t| now.duration_since(t) >= window) {
            self.window_start = Some(now);
            self.failures = 0;
        }
        self.failures += 1;
        if self.failures >= max {
            self.locked_until = Some(now + lockout);
            self.failures = 0;
            self.window_start = None;
            return true;
        }
        false
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `ABCDEFGHJ` → `ABC-DEF-GHJ`.
fn display(symbols: &[u8; CODE_LEN]) -> String {
    let s = String::from_utf8_lossy(symbols);
    format!("{}-{}-{}", &s[0..3], &s[3..6], &s[6..9])
}

/// What the user typed, in code form: case and separators (dashes, spaces) ignored.
/// Anything that cannot be a code becomes a value no code equals.
fn normalise(input: &str) -> [u8; CODE_LEN] {
    let mut out = [0u8; CODE_LEN];
    let mut n = 0;
    for c in input.chars().filter(|c| !matches!(c, '-' | ' ' | '\u{a0}')) {
        if n == CODE_LEN {
            return [0u8; CODE_LEN];
        }
        out[n] = if c.is_ascii() { c.to_ascii_uppercase() as u8 } else { 0 };
        n += 1;
    }
    if n == CODE_LEN {
        out
    } else {
        [0u8; CODE_LEN]
    }
}

impl Pairing {
    pub fn new(limits: PairingLimits) -> Pairing {
        Pairing { limits, state: Mutex::new(Guarded::default()) }
    }

    /// A new code for `role`: `(display form, valid for)`.
    pub fn issue(&self, role: DeviceRole) -> (String, Duration) {
        let mut rng = rand::rng();
        let mut symbols = [0u8; CODE_LEN];
        for s in &mut symbols {
            *s = ALPHABET[rng.random_range(0..ALPHABET.len())];
        }
        let now = Instant::now();
        let mut guarded = lock(&self.state);
        let codes = &mut guarded.codes;
        codes.retain(|c| c.used_at.or(Some(c.expires)).is_some_and(|t| t + REMEMBER_SPENT > now));
        while codes.iter().filter(|c| c.used_at.is_none() && c.expires > now).count() >= MAX_LIVE_CODES {
            if let Some(i) = codes.iter().position(|c| c.used_at.is_none() && c.expires > now) {
                codes.remove(i);
            }
        }
        codes.push(Code { symbols, role, expires: now + self.limits.code_ttl, used_at: None });
        (display(&symbols), self.limits.code_ttl)
    }

    /// Whether `ip` (or everyone) is locked out now, with the seconds left.
    fn locked(&self, g: &Guarded, ip: IpAddr, now: Instant) -> Result<(), Refusal> {
        if let Some(secs) = secs_until(g.global.locked_until, now) {
            return Err(Refusal::Paused(secs));
        }
        match secs_until(g.attempts.get(&ip).and_then(|a| a.locked_until), now) {
            Some(secs) => Err(Refusal::Locked(secs)),
            None => Ok(()),
        }
    }

    fn fail(&self, g: &mut Guarded, ip: IpAddr, now: Instant) {
        let l = &self.limits;
        // Forget clients that have been quiet for a while, so the map stays small.
        let horizon = l.failure_window.max(l.lockout);
        g.attempts.retain(|_, a| a.locked_until.is_some_and(|t| t > now) || a.window_start.is_some_and(|t| now.duration_since(t) < horizon));
        if g.attempts.entry(ip).or_default().fail(now, l.failure_window, l.max_failures, l.lockout) {
            tracing::warn!(%ip, "too many wrong pairing codes: locked out");
        }
        if g.global.fail(now, l.failure_window, l.max_global_failures, l.lockout) {
            tracing::warn!("too many wrong pairing codes from all clients: pairing paused");
        }
    }

    /// Checks whether `ip` may try a code now (without trying one).
    pub fn check_lockout(&self, ip: IpAddr) -> Result<(), Refusal> {
        self.locked(&lock(&self.state), ip, Instant::now())
    }

    /// Redeems `input` from `ip`: the role of the code, which is used up. The
    /// lockouts are checked, the code compared and a failure counted under one lock.
    pub fn redeem(&self, input: &str, ip: IpAddr) -> Result<DeviceRole, Refusal> {
        let now = Instant::now();
        let mut g = lock(&self.state);
        self.locked(&g, ip, now)?;
        let wanted = normalise(input);
        // Compare with every code, without stopping at a match: the time taken does
        // not depend on which code (if any) matched, or where.
        let mut found = None;
        for (i, c) in g.codes.iter().enumerate() {
            if constant_time_eq(&c.symbols, &wanted) {
                found = Some(i);
            }
        }
        let res = match found {
            None => Err(Refusal::Wrong),
            Some(i) if g.codes[i].used_at.is_some() => Err(Refusal::Used),
            Some(i) if g.codes[i].expires <= now => Err(Refusal::Expired),
            Some(i) => {
                g.codes[i].used_at = Some(now);
                Ok(g.codes[i].role)
            }
        };
        if res.is_err() {
            self.fail(&mut g, ip, now);
        }
        res
    }

    /// Makes code `input` usable again (the device could not be stored after all).
    pub fn unspend(&self, input: &str) {
        let wanted = normalise(input);
        for c in lock(&self.state).codes.iter_mut() {
            if c.symbols == wanted {
                c.used_at = None;
            }
        }
    }
}

/// The client's IP address, from the connection (not from headers, which anyone can
/// write). Without connection info (a router used without it) every client shares
/// one address, so the lockout errs on the strict side.
pub(crate) struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientIp(ip))
    }
}

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(new_pairing))
        .routes(routes!(pair))
        .routes(routes!(session))
        .routes(routes!(new_login_code))
        .routes(routes!(list_devices))
        .routes(routes!(revoke_device))
        .routes(routes!(lan_status, set_lan))
}

/// Why a device may not make this request, when only the owner (token or desktop
/// session) may: a phone must not pair more phones, revoke others or change LAN
/// mode, nor save or remove secrets (agent credentials, the GitHub token), nor add,
/// import or remove projects (which name folders on the host). Reading their status
/// and the project list is fine.
pub(crate) fn owner_only(method: &Method, path: &str) -> Option<&'static str> {
    let settings = matches!(path, "/api/pairing" | "/api/devices" | "/api/lan" | "/api/github/token" | "/api/login-code")
        || path.starts_with("/api/devices/")
        || (path.starts_with("/api/credentials/") && path != "/api/credentials/status");
    if settings {
        return Some("only the computer AnyCode runs on can pair devices, change network settings and save secrets: do this there");
    }
    let projects = (path == "/api/projects" && method == Method::POST)
        || (method == Method::DELETE && path.strip_prefix("/api/projects/").is_some_and(|id| !id.is_empty() && !id.contains('/')));
    if projects {
        return Some("only the computer AnyCode runs on can add, import or remove projects (they are folders on that computer): do this there");
    }
    // Hosts name files of that computer (TLS keys) and reach its ssh config.
    let hosts = method != Method::GET && (path == "/api/hosts" || path.starts_with("/api/hosts/"));
    hosts.then_some("only the computer AnyCode runs on can add or remove Docker hosts (their TLS files and ssh keys are on it): do this there")
}

impl From<LanError> for ApiError {
    fn from(e: LanError) -> Self {
        let (status, code) = match &e {
            LanError::NoAddress => (StatusCode::CONFLICT, "NO_LAN_ADDRESS"),
            LanError::Bind { .. } => (StatusCode::CONFLICT, "LAN_LISTEN_FAILED"),
            LanError::Interfaces(_) => (StatusCode::SERVICE_UNAVAILABLE, "LAN_INTERFACES"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

/// The body of `POST /api/pairing`.
#[derive(Deserialize, ToSchema)]
struct NewPairing {
    /// `watch` or `control`.
    #[schema(value_type = DeviceRole)]
    role: String,
}

/// A new pairing code.
#[derive(Serialize, ToSchema)]
#[schema(as = Pairing)]
struct PairingView {
    /// `XXX-XXX-XXX`, one use.
    code: String,
    /// The role the device will get.
    role: DeviceRole,
    /// The URL that carries the code (the first LAN address).
    url: String,
    /// The same for every LAN address.
    urls: Vec<String>,
    /// RFC 3339 UTC.
    expires_at: String,
    /// Seconds until it expires.
    expires_in: u64,
    /// `url` as a QR code (SVG).
    qr_svg: String,
}

/// A pairing code for a phone (owner only; needs LAN mode).
#[utoipa::path(post, path = "/pairing", tag = "devices", request_body = NewPairing, responses((status = 200, description = "A code", body = PairingView),
    (status = 409, description = "LAN_OFF: LAN mode is off", body = ErrorBody), (status = 422, description = "INVALID_INPUT: not a role", body = ErrorBody), JsonErrors))]
async fn new_pairing(State(st): State<AppState>, ApiJson(req): ApiJson<NewPairing>) -> Result<Json<PairingView>, ApiError> {
    let role: DeviceRole = req.role.parse().map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_INPUT", format!("{e}")))?;
    let lan = st.lan.status();
    if !lan.enabled || lan.addresses.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "LAN_OFF",
            "turn on \"Serve on local network\" first: a phone can only reach this computer on its local network address",
        ));
    }
    let (code, ttl) = st.pairing.issue(role);
    let urls: Vec<String> = lan.addresses.iter().map(|a| format!("http://{a}/#/pair/{code}")).collect();
    let url = urls[0].clone();
    let qr_svg = qr_svg(&url)?;
    Ok(Json(PairingView { code, role, url, urls, expires_at: rfc3339_in(ttl), expires_in: ttl.as_secs(), qr_svg }))
}

/// `text` as a QR code in SVG (black on white, with its quiet zone).
fn qr_svg(text: &str) -> Result<String, ApiError> {
    let qr = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "QR_FAILED", format!("cannot make the QR code: {e}")))?;
    let svg = qr.render::<qrcode::render::svg::Color>().min_dimensions(240, 240).quiet_zone(true).build();
    // Drop the XML declaration: the SVG is inlined into HTML.
    Ok(svg.strip_prefix(r#"<?xml version="1.0" standalone="yes"?>"#).unwrap_or(&svg).to_string())
}

/// The body of `POST /api/pair`.
#[derive(Deserialize, ToSchema)]
struct Pair {
    /// The code shown on the computer (case, dashes and spaces ignored).
    code: String,
    /// A name for this device (1 to 60 characters).
    device_name: String,
}

/// A device paired.
#[derive(Serialize, ToSchema)]
struct Paired {
    /// The new device.
    device: anycode_engine::Device,
}

/// Who the caller is.
#[derive(Serialize, ToSchema)]
struct SessionView {
    /// `owner` or `device`.
    kind: SessionKind,
    /// `owner`, or the device's role (`watch`, `control`).
    role: String,
    /// The device, for devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    device: Option<SessionDevice>,
}

/// The kind of a session.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum SessionKind {
    /// The access token or the desktop's session.
    Owner,
    /// A paired device.
    Device,
}

/// The device of a device session.
#[derive(Serialize, ToSchema)]
struct SessionDevice {
    /// Its id.
    id: String,
    /// Its name.
    name: String,
}

/// A one-time login link.
#[derive(Serialize, ToSchema)]
struct LoginLink {
    /// `http://<host>/login?code=…`.
    url: String,
    /// Seconds it stays valid.
    expires_in: u64,
}

fn refusal(r: Refusal) -> Response {
    let (status, code, msg) = match r {
        Refusal::Wrong => (StatusCode::UNAUTHORIZED, "PAIRING_CODE_WRONG", "wrong pairing code: check it on the computer's screen".to_string()),
        Refusal::Expired => (StatusCode::UNAUTHORIZED, "PAIRING_CODE_EXPIRED", "this pairing code has expired: make a new one on the computer".to_string()),
        Refusal::Used => (StatusCode::UNAUTHORIZED, "PAIRING_CODE_USED", "this pairing code was already used: make a new one on the computer".to_string()),
        Refusal::Locked(secs) | Refusal::Paused(secs) => {
            let (code, msg) = match r {
                Refusal::Paused(_) => (
                    "PAIRING_PAUSED",
                    format!("too many wrong pairing codes from all devices: pairing is paused; try again in {secs} s (check the code on the computer's screen)"),
                ),
                _ => ("TOO_MANY_ATTEMPTS", format!("too many wrong pairing codes from this device: try again in {secs} s")),
            };
            let mut r = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, msg).into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return r;
        }
    };
    ApiError::new(status, code, msg).into_response()
}

/// Redeem a pairing code for a device session cookie (no session needed). Wrong
/// codes are counted per address and globally; too many lock out (429 with
/// `Retry-After`).
#[utoipa::path(post, path = "/pair", tag = "devices", request_body = Pair, security(()),
    responses((status = 201, description = "Paired; sets the `anycode_device` cookie", body = Paired),
    (status = 401, description = "PAIRING_CODE_WRONG, PAIRING_CODE_EXPIRED, PAIRING_CODE_USED", body = ErrorBody),
    (status = 429, description = "TOO_MANY_ATTEMPTS, PAIRING_PAUSED (with `Retry-After`)", body = ErrorBody),
    JsonErrors, EngineErrors))]
async fn pair(State(st): State<AppState>, ClientIp(ip): ClientIp, ApiJson(req): ApiJson<Pair>) -> Response {
    // A locked-out client learns nothing else, not even whether its input is valid.
    if let Err(r) = st.pairing.check_lockout(ip) {
        return refusal(r);
    }
    // Bad input changes nothing: the name is checked before the code is spent.
    if let Err(e) = anycode_engine::check_device_name(&req.device_name) {
        return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID_INPUT", e.to_string()).into_response();
    }
    let role = match st.pairing.redeem(&req.code, ip) {
        Ok(role) => role,
        Err(r) => return refusal(r),
    };
    let (device, secret) = match st.engine.add_device(&req.device_name, role).await {
        Ok(x) => x,
        Err(e) => {
            st.pairing.unspend(&req.code);
            return ApiError::from(e).into_response();
        }
    };
    tracing::info!(device = %device.id, name = %device.name, role = %role, %ip, "device paired");
    let cookie = format!("{DEVICE_COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age=31536000");
    let mut r = (StatusCode::CREATED, Json(Paired { device })).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Who the caller is: the owner, or a device and its role.
#[utoipa::path(get, path = "/session", tag = "devices", responses((status = 200, description = "The session", body = SessionView)))]
async fn session(Extension(who): Extension<Principal>) -> Json<SessionView> {
    Json(match who {
        Principal::Owner => SessionView { kind: SessionKind::Owner, role: "owner".into(), device: None },
        Principal::Device(d) => SessionView {
            kind: SessionKind::Device,
            role: d.role().as_str().into(),
            device: Some(SessionDevice { id: d.device.id.clone(), name: d.device.name.clone() }),
        },
    })
}

/// `POST /api/login-code` (owner only): a one-time login link for this server, at
/// the address the request came to (`anycode open` prints and opens it).
#[utoipa::path(post, path = "/login-code", tag = "server", responses((status = 200, description = "A login link", body = LoginLink)))]
async fn new_login_code(State(st): State<AppState>, headers: axum::http::HeaderMap) -> Json<LoginLink> {
    // The Host was checked against the allowlist before this runs.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1");
    let url = st.login.url(&format!("http://{host}"));
    Json(LoginLink { url, expires_in: st.login.ttl().as_secs() })
}

/// The paired devices (owner only).
#[utoipa::path(get, path = "/devices", tag = "devices", responses((status = 200, description = "Devices", body = Vec<DeviceView>), EngineErrors))]
async fn list_devices(State(st): State<AppState>) -> Result<Json<Vec<DeviceView>>, ApiError> {
    Ok(Json(st.devices.list().await?))
}

/// Revoke a device: its session ends and its WebSockets close at once (owner only).
#[utoipa::path(delete, path = "/devices/{id}", tag = "devices", params(("id" = String, Path, description = "Device id")), responses((status = 204, description = "Revoked"), EngineErrors))]
async fn revoke_device(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.devices.revoke(&id).await?;
    tracing::info!(device = %id, "device revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// LAN mode's state (owner only).
#[utoipa::path(get, path = "/lan", tag = "devices", responses((status = 200, description = "The state", body = LanStatus)))]
async fn lan_status(State(st): State<AppState>) -> Json<LanStatus> {
    Json(st.lan.status())
}

/// The body of `POST /api/lan`.
#[derive(Deserialize, ToSchema)]
struct SetLan {
    /// Serve on the local network too.
    enabled: bool,
}

/// Turn LAN mode on or off (owner only).
#[utoipa::path(post, path = "/lan", tag = "devices", request_body = SetLan, responses((status = 200, description = "The state now", body = LanStatus),
    (status = 409, description = "NO_LAN_ADDRESS, LAN_LISTEN_FAILED", body = ErrorBody), (status = 503, description = "LAN_INTERFACES: the network interfaces cannot be listed", body = ErrorBody), JsonErrors))]
async fn set_lan(State(st): State<AppState>, ApiJson(req): ApiJson<SetLan>) -> Result<Json<LanStatus>, ApiError> {
    Ok(Json(if req.enabled { st.lan.enable().await? } else { st.lan.disable().await }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn codes_look_right_and_normalise() {
        let p = Pairing::new(PairingLimits::default());
        let (code, ttl) = p.issue(DeviceRole::Watch);
        assert_eq!(ttl, Duration::from_secs(600));
        assert_eq!(code.len(), 11);
        assert!(code.chars().enumerate().all(|(i, c)| if i == 3 || i == 7 { c == '-' } else { ALPHABET.contains(&(c as u8)) }), "{code}");
        // Lower case and spaces are fine; the code is single use.
        let typed = code.to_lowercase().replace('-', " ");
        assert_eq!(p.redeem(&typed, ip("10.0.0.9")), Ok(DeviceRole::Watch));
        assert_eq!(p.redeem(&code, ip("10.0.0.9")), Err(Refusal::Used));
        assert_eq!(normalise("abc-def-ghjk"), [0; CODE_LEN]);
        assert_eq!(normalise("ÄBC-DEF-GHJ")[0], 0);
    }

    #[test]
    fn lockout_counts_per_ip_and_ends() {
        let limits = PairingLimits { lockout: Duration::from_millis(300), ..PairingLimits::default() };
        let p = Pairing::new(limits);
        let (code, _) = p.issue(DeviceRole::Control);
        for _ in 0..5 {
            assert_eq!(p.redeem("AAA-AAA-AAA", ip("10.0.0.1")), Err(Refusal::Wrong));
        }
        // Locked: even the right code is refused, with the seconds to wait.
        assert_eq!(p.redeem(&code, ip("10.0.0.1")), Err(Refusal::Locked(1)));
        // Another client is not affected.
        assert_eq!(p.redeem("AAA-AAA-AAB", ip("10.0.0.2")), Err(Refusal::Wrong));
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(p.redeem(&code, ip("10.0.0.1")), Ok(DeviceRole::Control));
    }

    #[test]
    fn expired_codes_are_refused_and_live_codes_are_bounded() {
        let p = Pairing::new(PairingLimits { code_ttl: Duration::from_millis(50), ..PairingLimits::default() });
        let (code, _) = p.issue(DeviceRole::Watch);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(p.redeem(&code, ip("10.0.0.3")), Err(Refusal::Expired));
        let p = Pairing::new(PairingLimits::default());
        let first = p.issue(DeviceRole::Watch).0;
        for _ in 0..MAX_LIVE_CODES {
            p.issue(DeviceRole::Watch);
        }
        assert_eq!(p.redeem(&first, ip("10.0.0.4")), Err(Refusal::Wrong), "the oldest code was dropped");
    }

    #[test]
    fn a_global_budget_locks_out_everyone() {
        let p = Pairing::new(PairingLimits { max_global_failures: 6, ..PairingLimits::default() });
        let (code, _) = p.issue(DeviceRole::Watch);
        // Three addresses, two wrong tries each: under the per-address limit, at the global one.
        for i in 0..6 {
            assert_eq!(p.redeem("AAA-AAA-AAA", ip(&format!("10.1.0.{}", i / 2))), Err(Refusal::Wrong), "try {i}");
        }
        // Everyone is paused now, even a new address with the right code.
        assert!(matches!(p.redeem(&code, ip("10.9.9.9")), Err(Refusal::Paused(s)) if (1..=60).contains(&s)));
        assert!(matches!(p.check_lockout(ip("10.9.9.8")), Err(Refusal::Paused(_))));
    }

    #[test]
    fn concurrent_tries_never_exceed_the_budgets() {
        // Per address: 64 concurrent wrong tries from one address; exactly
        // max_failures are judged, the rest are locked out.
        let p = std::sync::Arc::new(Pairing::new(PairingLimits::default()));
        let run = |p: std::sync::Arc<Pairing>, ips: Vec<IpAddr>| {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(ips.len()));
            let handles: Vec<_> = ips
                .into_iter()
                .map(|a| {
                    let (p, b) = (p.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        b.wait();
                        p.redeem("AAA-AAA-AAA", a)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
        };
        let results = run(p.clone(), vec![ip("10.2.0.1"); 64]);
        assert_eq!(results.iter().filter(|r| **r == Err(Refusal::Wrong)).count(), 5, "{results:?}");
        // Globally: 200 concurrent tries from 200 addresses; exactly the global budget is judged.
        let p = std::sync::Arc::new(Pairing::new(PairingLimits::default()));
        let results = run(p, (0..200).map(|i| ip(&format!("10.3.{}.{}", i / 100, i % 100))).collect());
        assert_eq!(results.iter().filter(|r| **r == Err(Refusal::Wrong)).count(), 30, "{results:?}");
        assert!(results.iter().all(|r| matches!(r, Err(Refusal::Wrong) | Err(Refusal::Paused(_)))));
    }

    #[test]
    fn owner_only_requests() {
        let (get, post, delete) = (Method::GET, Method::POST, Method::DELETE);
        assert!(owner_only(&post, "/api/projects").is_some());
        assert!(owner_only(&delete, "/api/projects/abc123").is_some());
        assert!(owner_only(&get, "/api/projects").is_none());
        assert!(owner_only(&get, "/api/projects/abc123").is_none());
        assert!(owner_only(&post, "/api/projects/abc123/tasks").is_none());
        assert!(owner_only(&get, "/api/devices").is_some());
        assert!(owner_only(&get, "/api/credentials/status").is_none());
    }

    #[test]
    fn qr_is_svg() {
        let svg = qr_svg("http://192.168.1.20:7878/#/pair/ABC-DEF-GHJ").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<path"), "{svg}");
    }
}
