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
//!   [`PairingLimits::lockout`] (429 with `Retry-After`), right code or not.
//! - `GET /api/devices`, `DELETE /api/devices/{id}` (owner only): the paired devices;
//!   revoking closes the device's WebSockets at once.
//! - `GET /api/session`: who the caller is (owner, or a device and its role).
//! - `GET /api/lan`, `POST /api/lan {"enabled"}` (owner only): LAN mode.

use crate::api::ApiJson;
use crate::auth::{constant_time_eq, Principal};
use crate::devices::{rfc3339_in, DeviceView, DEVICE_COOKIE};
use crate::lan::{LanError, LanStatus};
use crate::{ApiError, AppState};
use anycode_engine::DeviceRole;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
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
    /// How long a client IP is locked out: 60 s.
    pub lockout: Duration,
}

impl Default for PairingLimits {
    fn default() -> Self {
        PairingLimits {
            code_ttl: Duration::from_secs(600),
            max_failures: 5,
            failure_window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
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
}

/// Pairing codes and the per-IP failure counts. In memory only: a restart voids
/// every code, which is what a user would expect of a code on screen.
pub(crate) struct Pairing {
    limits: PairingLimits,
    codes: Mutex<Vec<Code>>,
    attempts: Mutex<HashMap<IpAddr, Attempts>>,
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
        Pairing { limits, codes: Mutex::new(Vec::new()), attempts: Mutex::new(HashMap::new()) }
    }

    /// A new code for `role`: `(display form, valid for)`.
    pub fn issue(&self, role: DeviceRole) -> (String, Duration) {
        let mut rng = rand::rng();
        let mut symbols = [0u8; CODE_LEN];
        for s in &mut symbols {
            *s = ALPHABET[rng.random_range(0..ALPHABET.len())];
        }
        let now = Instant::now();
        let mut codes = lock(&self.codes);
        codes.retain(|c| c.used_at.or(Some(c.expires)).is_some_and(|t| t + REMEMBER_SPENT > now));
        while codes.iter().filter(|c| c.used_at.is_none() && c.expires > now).count() >= MAX_LIVE_CODES {
            if let Some(i) = codes.iter().position(|c| c.used_at.is_none() && c.expires > now) {
                codes.remove(i);
            }
        }
        codes.push(Code { symbols, role, expires: now + self.limits.code_ttl, used_at: None });
        (display(&symbols), self.limits.code_ttl)
    }

    /// Whether `ip` is locked out now: seconds left (at least 1).
    fn locked(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let attempts = lock(&self.attempts);
        let until = attempts.get(&ip)?.locked_until?;
        (until > now).then(|| (until - now).as_secs_f64().ceil().max(1.0) as u64)
    }

    fn fail(&self, ip: IpAddr, now: Instant) {
        let mut attempts = lock(&self.attempts);
        // Forget clients that have been quiet for a while, so the map stays small.
        let horizon = self.limits.failure_window.max(self.limits.lockout);
        attempts.retain(|_, a| {
            a.locked_until.is_some_and(|t| t > now) || a.window_start.is_some_and(|t| now.duration_since(t) < horizon)
        });
        let a = attempts.entry(ip).or_default();
        if a.window_start.is_none_or(|t| now.duration_since(t) >= self.limits.failure_window) {
            a.window_start = Some(now);
            a.failures = 0;
        }
        a.failures += 1;
        if a.failures >= self.limits.max_failures {
            a.locked_until = Some(now + self.limits.lockout);
            a.failures = 0;
            a.window_start = None;
            tracing::warn!(%ip, "too many wrong pairing codes: locked out");
        }
    }

    /// Checks whether `ip` may try a code now (without trying one).
    pub fn check_lockout(&self, ip: IpAddr) -> Result<(), Refusal> {
        match self.locked(ip, Instant::now()) {
            Some(secs) => Err(Refusal::Locked(secs)),
            None => Ok(()),
        }
    }

    /// Redeems `input` from `ip`: the role of the code, which is used up.
    pub fn redeem(&self, input: &str, ip: IpAddr) -> Result<DeviceRole, Refusal> {
        let now = Instant::now();
        self.check_lockout(ip)?;
        let wanted = normalise(input);
        let mut codes = lock(&self.codes);
        // Compare with every code, without stopping at a match: the time taken does
        // not depend on which code (if any) matched, or where.
        let mut found = None;
        for (i, c) in codes.iter().enumerate() {
            if constant_time_eq(&c.symbols, &wanted) {
                found = Some(i);
            }
        }
        let res = match found {
            None => Err(Refusal::Wrong),
            Some(i) if codes[i].used_at.is_some() => Err(Refusal::Used),
            Some(i) if codes[i].expires <= now => Err(Refusal::Expired),
            Some(i) => {
                codes[i].used_at = Some(now);
                Ok(codes[i].role)
            }
        };
        drop(codes);
        if res.is_err() {
            self.fail(ip, now);
        }
        res
    }

    /// Makes code `input` usable again (the device could not be stored after all).
    pub fn unspend(&self, input: &str) {
        let wanted = normalise(input);
        for c in lock(&self.codes).iter_mut() {
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

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/pairing", post(new_pairing))
        .route("/pair", post(pair))
        .route("/session", get(session))
        .route("/devices", get(list_devices))
        .route("/devices/{id}", delete(revoke_device))
        .route("/lan", get(lan_status).post(set_lan))
}

/// Paths only the owner (token or desktop session) may use, whatever the method:
/// a phone must not pair more phones, revoke others or change LAN mode, nor save or
/// remove secrets (agent credentials, the GitHub token). Reading their status is fine.
pub(crate) fn owner_only(path: &str) -> bool {
    matches!(path, "/api/pairing" | "/api/devices" | "/api/lan" | "/api/github/token")
        || path.starts_with("/api/devices/")
        || (path.starts_with("/api/credentials/") && path != "/api/credentials/status")
}

impl From<LanError> for ApiError {
    fn from(e: LanError) -> Self {
        let (status, code) = match &e {
            LanError::NoAddress => (StatusCode::CONFLICT, "NO_LAN_ADDRESS"),
            LanError::Bind { .. } => (StatusCode::CONFLICT, "LAN_LISTEN_FAILED"),
            LanError::Interfaces(_) => (StatusCode::INTERNAL_SERVER_ERROR, "LAN_INTERFACES"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

#[derive(Deserialize)]
struct NewPairing {
    role: String,
}

#[derive(Serialize)]
struct PairingView {
    code: String,
    role: DeviceRole,
    url: String,
    urls: Vec<String>,
    expires_at: String,
    expires_in: u64,
    qr_svg: String,
}

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

#[derive(Deserialize)]
struct Pair {
    code: String,
    device_name: String,
}

fn refusal(r: Refusal) -> Response {
    let (status, code, msg) = match r {
        Refusal::Wrong => (StatusCode::UNAUTHORIZED, "PAIRING_CODE_WRONG", "wrong pairing code: check it on the computer's screen".to_string()),
        Refusal::Expired => (StatusCode::UNAUTHORIZED, "PAIRING_CODE_EXPIRED", "this pairing code has expired: make a new one on the computer".to_string()),
        Refusal::Used => (StatusCode::UNAUTHORIZED, "PAIRING_CODE_USED", "this pairing code was already used: make a new one on the computer".to_string()),
        Refusal::Locked(secs) => {
            let mut r = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_ATTEMPTS",
                format!("too many wrong pairing codes from this device: try again in {secs} s"),
            )
            .into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return r;
        }
    };
    ApiError::new(status, code, msg).into_response()
}

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
    let mut r = (StatusCode::CREATED, Json(json!({"device": device}))).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn session(Extension(who): Extension<Principal>) -> Json<serde_json::Value> {
    Json(match who {
        Principal::Owner => json!({"kind": "owner", "role": "owner"}),
        Principal::Device(d) => json!({"kind": "device", "role": d.role(), "device": {"id": d.device.id, "name": d.device.name}}),
    })
}

async fn list_devices(State(st): State<AppState>) -> Result<Json<Vec<DeviceView>>, ApiError> {
    Ok(Json(st.devices.list().await?))
}

async fn revoke_device(State(st): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    st.devices.revoke(&id).await?;
    tracing::info!(device = %id, "device revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn lan_status(State(st): State<AppState>) -> Json<LanStatus> {
    Json(st.lan.status())
}

#[derive(Deserialize)]
struct SetLan {
    enabled: bool,
}

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
    fn qr_is_svg() {
        let svg = qr_svg("http://192.168.1.20:7878/#/pair/ABC-DEF-GHJ").unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<path"), "{svg}");
    }
}
