//! Paired devices (table `devices`): a name, a role and the SHA-256 of the device's
//! session secret (64 hex digits). The secret itself is never stored.

use crate::{Error, Result, Store};
use anycode_core::{Device, DeviceRole};
use rusqlite::{params, OptionalExtension, Row};

const DEVICE_COLS: &str = "id, name, role, created_at, last_seen";

fn device_from_row(r: &Row<'_>) -> rusqlite::Result<Result<Device>> {
    let role: String = r.get(2)?;
    let role = match role.parse::<DeviceRole>() {
        Ok(role) => role,
        Err(e) => return Ok(Err(Error::Corrupt(e.to_string()))),
    };
    Ok(Ok(Device { id: r.get(0)?, name: r.get(1)?, role, created_at: r.get(3)?, last_seen: r.get(4)? }))
}

impl Store {
    /// Adds a paired device with the SHA-256 (hex) of its session secret.
    /// Errors: [`Error::Conflict`] when the id or the hash is taken.
    pub fn insert_device(&self, d: &Device, session_hash: &str) -> Result<()> {
        let res = self.conn().execute(
            "INSERT INTO devices (id, name, role, session_hash, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![d.id, d.name, d.role.as_str(), session_hash, d.created_at, d.last_seen],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(Error::Conflict(format!("device {} already exists", d.id)))
            }
            other => other.map(|_| ()).map_err(Error::from),
        }
    }

    /// Paired devices, oldest first.
    pub fn devices(&self) -> Result<Vec<Device>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {DEVICE_COLS} FROM devices ORDER BY created_at, rowid"))?;
        let rows = stmt.query_map([], device_from_row)?;
        rows.map(|r| r.map_err(Error::from).and_then(|x| x)).collect()
    }

    /// The device whose session secret hashes to `session_hash`, or `None`.
    pub fn device_by_session(&self, session_hash: &str) -> Result<Option<Device>> {
        let sql = format!("SELECT {DEVICE_COLS} FROM devices WHERE session_hash = ?1");
        self.conn().query_row(&sql, [session_hash], device_from_row).optional()?.transpose()
    }

    /// Records when the device was last seen (RFC 3339 UTC).
    pub fn touch_device(&self, id: &str, last_seen: &str) -> Result<()> {
        self.conn().execute("UPDATE devices SET last_seen = ?2 WHERE id = ?1", params![id, last_seen])?;
        Ok(())
    }

    /// Removes a device (revocation). Returns whether it existed.
    pub fn delete_device(&self, id: &str) -> Result<bool> {
        Ok(self.conn().execute("DELETE FROM devices WHERE id = ?1", [id])? > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(id: &str, role: DeviceRole) -> Device {
        Device { id: id.into(), name: format!("phone {id}"), role, created_at: "2026-11-21T00:00:00Z".into(), last_seen: None }
    }

    #[test]
    fn devices_round_trip_touch_and_revoke() {
        let s = Store::open_in_memory().unwrap();
        s.insert_device(&device("d1", DeviceRole::Watch), &"a".repeat(64)).unwrap();
        s.insert_device(&device("d2", DeviceRole::Control), &"b".repeat(64)).unwrap();
        // The same secret hash twice is refused (the column is unique).
        assert!(matches!(s.insert_device(&device("d3", DeviceRole::Watch), &"a".repeat(64)), Err(Error::Conflict(_))));
        assert_eq!(s.devices().unwrap().len(), 2);
        assert_eq!(s.device_by_session(&"b".repeat(64)).unwrap().unwrap().role, DeviceRole::Control);
        assert!(s.device_by_session(&"c".repeat(64)).unwrap().is_none());
        s.touch_device("d1", "2026-11-21T01:00:00Z").unwrap();
        assert_eq!(s.device_by_session(&"a".repeat(64)).unwrap().unwrap().last_seen.as_deref(), Some("2026-11-21T01:00:00Z"));
        assert!(s.delete_device("d1").unwrap());
        assert!(!s.delete_device("d1").unwrap());
        assert!(s.device_by_session(&"a".repeat(64)).unwrap().is_none());
        assert_eq!(s.devices().unwrap(), vec![device("d2", DeviceRole::Control)]);
    }

    #[test]
    fn unknown_role_is_corrupt_not_a_panic() {
        let s = Store::open_in_memory().unwrap();
        s.conn()
            .execute(
                "INSERT INTO devices (id, name, role, session_hash, created_at) VALUES ('x', 'x', 'admin', 'h', '2026-11-21T00:00:00Z')",
                [],
            )
            .unwrap();
        assert!(matches!(s.devices(), Err(Error::Corrupt(_))));
    }
}
