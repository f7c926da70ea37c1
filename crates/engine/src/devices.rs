//! Paired devices: the engine's side of pairing phones. A device is a row with a
//! name and a role plus the SHA-256 of its session secret; the secret is handed out
//! once, when the device is added, and never stored.
//!
//! Pairing codes, rate limits and cookies are the server's business; this module
//! only keeps the durable record.

use crate::{Engine, Error, Result};
use anycode_core::{check_device_name, new_id, new_session_secret, now_rfc3339, Device, DeviceRole};
use sha2::{Digest, Sha256};

/// SHA-256 of a session secret as 64 hex digits: what the database keeps.
pub fn session_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Engine {
    /// Adds a device named `name` with `role`; returns it with its new session secret
    /// (256 random bits, 64 hex digits), which exists nowhere else afterwards.
    ///
    /// Errors: [`Error::Invalid`] for a name that is empty, longer than 60 characters
    /// or has control characters.
    pub async fn add_device(&self, name: &str, role: DeviceRole) -> Result<(Device, String)> {
        let name = check_device_name(name)?;
        self.db(move |store| {
            let secret = new_session_secret();
            let device = Device { id: new_id(), name, role, created_at: now_rfc3339(), last_seen: Some(now_rfc3339()) };
            store.insert_device(&device, &session_hash(&secret))?;
            Ok((device, secret))
        })
        .await
    }

    /// Paired devices, oldest first.
    pub async fn devices(&self) -> Result<Vec<Device>> {
        self.db(move |store| Ok(store.devices()?)).await
    }

    /// The device holding session secret `secret`, or `None` (unknown or revoked).
    pub async fn device_by_secret(&self, secret: &str) -> Result<Option<Device>> {
        let hash = session_hash(secret);
        self.db(move |store| Ok(store.device_by_session(&hash)?)).await
    }

    /// Records that device `id` was seen at `when` (RFC 3339 UTC).
    pub async fn touch_device(&self, id: &str, when: &str) -> Result<()> {
        let (id, when) = (id.to_string(), when.to_string());
        self.db(move |store| Ok(store.touch_device(&id, &when)?)).await
    }

    /// Revokes device `id`: its session secret stops working.
    /// Errors: [`Error::NotFound`] (`DEVICE_NOT_FOUND`) for an unknown id.
    pub async fn remove_device(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.db(move |store| if store.delete_device(&id)? { Ok(()) } else { Err(Error::NotFound { what: "device", id }) }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn add_find_and_remove_devices() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(anycode_core::Config::with_data_dir(dir.path())).await.unwrap();
        let (d, secret) = engine.add_device("  Sofa phone ", DeviceRole::Watch).await.unwrap();
        assert_eq!(d.name, "Sofa phone");
        assert_eq!(secret.len(), 64);
        assert_eq!(engine.device_by_secret(&secret).await.unwrap().unwrap().id, d.id);
        assert!(engine.device_by_secret(&"0".repeat(64)).await.unwrap().is_none());
        // The database holds the hash, never the secret.
        let db = std::fs::read(dir.path().join("anycode.db")).unwrap_or_default();
        let wal = std::fs::read(dir.path().join("anycode.db-wal")).unwrap_or_default();
        let hay = [db, wal].concat();
        assert!(!hay.windows(64).any(|w| w == secret.as_bytes()), "secret stored in clear");
        let e = engine.add_device("", DeviceRole::Control).await.unwrap_err();
        assert_eq!(e.code(), "INVALID_INPUT");
        engine.remove_device(&d.id).await.unwrap();
        assert!(engine.device_by_secret(&secret).await.unwrap().is_none());
        let e = engine.remove_device(&d.id).await.unwrap_err();
        assert_eq!((e.kind(), e.code()), (crate::ErrorKind::NotFound, "DEVICE_NOT_FOUND"));
    }
}
