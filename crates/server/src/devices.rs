//! Device sessions: who a request with the device cookie is, and the live
//! WebSockets of each device, so revoking a device closes them at once.
//!
//! The database (through the engine) is the truth; this keeps an in-memory cache of
//! sessions already seen, so an authenticated request costs no SQLite call. A cache
//! miss and a revocation hold the same lock, so a revoked session can never be put
//! back into the cache by a lookup that raced with it.

use anycode_engine::{Device, DeviceRole, Engine};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How often `last_seen` is written to the database per device at most.
const PERSIST_EVERY: Duration = Duration::from_secs(60);

/// Name of the device session cookie set by `POST /api/pair`.
pub const DEVICE_COOKIE: &str = "anycode_device";

/// One paired device's session as the server knows it.
pub(crate) struct DeviceSession {
    pub device: Device,
    /// Cancelled when the device is revoked: its WebSockets close.
    pub revoked: CancellationToken,
    sockets: AtomicUsize,
    /// Last request (RFC 3339) and when it was last written to the database.
    seen: Mutex<(String, Option<Instant>)>,
}

impl DeviceSession {
    pub fn role(&self) -> DeviceRole {
        self.device.role
    }

    /// Counts an open WebSocket until the guard is dropped.
    pub fn socket_opened(self: &Arc<Self>) -> SocketGuard {
        self.sockets.fetch_add(1, Ordering::SeqCst);
        SocketGuard(self.clone())
    }
}

/// Keeps a device's open-socket count while a WebSocket lives.
pub(crate) struct SocketGuard(Arc<DeviceSession>);

impl Drop for SocketGuard {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A paired device as `GET /api/devices` shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = PairedDevice)]
pub(crate) struct DeviceView {
    #[serde(flatten)]
    pub device: Device,
    /// Open terminal WebSockets of this device right now.
    pub sockets: usize,
}

pub(crate) struct Devices {
    engine: Engine,
    by_hash: Mutex<HashMap<String, Arc<DeviceSession>>>,
    fill: tokio::sync::Mutex<()>,
}

impl Devices {
    pub fn new(engine: Engine) -> Devices {
        Devices { engine, by_hash: Mutex::new(HashMap::new()), fill: tokio::sync::Mutex::new(()) }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<DeviceSession>>> {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session of cookie value `secret`, or `None` when it is unknown or revoked.
    pub async fn authenticate(&self, secret: &str) -> anycode_engine::Result<Option<Arc<DeviceSession>>> {
        // Only well-formed secrets reach the database.
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let hash = anycode_engine::session_hash(secret);
        if let Some(s) = self.cache().get(&hash) {
            return Ok(Some(s.clone()));
        }
        let _fill = self.fill.lock().await;
        if let Some(s) = self.cache().get(&hash) {
            return Ok(Some(s.clone()));
        }
        let Some(device) = self.engine.device_by_secret(secret).await? else { return Ok(None) };
        let seen = device.last_seen.clone().unwrap_or_default();
        let session = Arc::new(DeviceSession {
            device,
            revoked: CancellationToken::new(),
            sockets: AtomicUsize::new(0),
            seen: Mutex::new((seen, None)),
        });
        self.cache().insert(hash, session.clone());
        Ok(Some(session))
    }

    /// Records a request of `s`: kept in memory, written to the database at most
    /// once a minute (in the background; a failure only delays `last_seen`).
    pub fn seen(&self, s: &Arc<DeviceSession>) {
        let now = now_rfc3339();
        let persist = {
            let mut seen = s.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.0 = now.clone();
            let due = seen.1.is_none_or(|t| t.elapsed() >= PERSIST_EVERY);
            if due {
                seen.1 = Some(Instant::now());
            }
            due
        };
        if persist {
            let engine = self.engine.clone();
            let id = s.device.id.clone();
            tokio::spawn(async move {
                if let Err(e) = engine.touch_device(&id, &now).await {
                    tracing::debug!(error = %e, "recording last_seen failed");
                }
            });
        }
    }

    /// Paired devices with their freshest `last_seen` and open sockets.
    pub async fn list(&self) -> anycode_engine::Result<Vec<DeviceView>> {
        let mut devices = self.engine.devices().await?;
        let live: HashMap<String, Arc<DeviceSession>> = self.cache().values().map(|s| (s.device.id.clone(), s.clone())).collect();
        Ok(devices
            .drain(..)
            .map(|mut d| {
                let mut sockets = 0;
                if let Some(s) = live.get(&d.id) {
                    sockets = s.sockets.load(Ordering::SeqCst);
                    let seen = s.seen.lock().unwrap_or_else(|p| p.into_inner()).0.clone();
                    if !seen.is_empty() && d.last_seen.as_deref().is_none_or(|old| old < seen.as_str()) {
                        d.last_seen = Some(seen);
                    }
                }
                DeviceView { device: d, sockets }
            })
            .collect())
    }

    /// Revokes device `id`: deletes it, forgets its session and closes its sockets.
    /// Errors: `DEVICE_NOT_FOUND`.
    pub async fn revoke(&self, id: &str) -> anycode_engine::Result<()> {
        let _fill = self.fill.lock().await;
        let res = self.engine.remove_device(id).await;
        // Forget and close even when the row was already gone (revoked twice).
        let gone: Vec<Arc<DeviceSession>> = {
            let mut cache = self.cache();
            let keys: Vec<String> = cache.iter().filter(|(_, s)| s.device.id == id).map(|(k, _)| k.clone()).collect();
            keys.into_iter().filter_map(|k| cache.remove(&k)).collect()
        };
        for s in gone {
            s.revoked.cancel();
        }
        res
    }
}

fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now.replace_nanosecond(0).unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Now plus `d`, as RFC 3339 UTC with seconds.
pub(crate) fn rfc3339_in(d: Duration) -> String {
    let at = time::OffsetDateTime::now_utc() + d;
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}
