use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// What a paired device (a phone on the local network) may do. Chosen when its
/// pairing code is made; enforced by the server, not by the UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceRole {
    /// Read-only: task list, terminals (input dropped), diffs.
    Watch,
    /// Also typing in terminals, starting and stopping tasks, committing.
    Control,
}

impl DeviceRole {
    /// Every role.
    pub const ALL: [DeviceRole; 2] = [DeviceRole::Watch, DeviceRole::Control];

    /// The name used in the API and the database: `watch` or `control`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceRole::Watch => "watch",
            DeviceRole::Control => "control",
        }
    }
}

impl fmt::Display for DeviceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceRole {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DeviceRole::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| crate::Error::UnknownRole(s.to_string()))
    }
}

/// A device paired with a pairing code. Its session secret is not part of it: only
/// the secret's SHA-256 is stored, next to this record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Device {
    /// 12 hex digits, see [`crate::new_id`].
    pub id: String,
    /// The name the user typed when pairing ("Anna's phone"), 1 to 60 characters.
    pub name: String,
    /// What the device may do.
    pub role: DeviceRole,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC of its last request; `None` before the first one after pairing.
    pub last_seen: Option<String>,
}

/// A new device session secret: 256 random bits as 64 lowercase hex digits, from the
/// operating system's generator (through `rand`'s thread RNG, seeded from it).
pub fn new_session_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a device name typed by the user and returns it trimmed: 1 to 60
/// characters, no control characters.
pub fn check_device_name(name: &str) -> Result<String, crate::Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        return Err(crate::Error::InvalidDeviceName);
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        for r in DeviceRole::ALL {
            assert_eq!(r.as_str().parse::<DeviceRole>().unwrap(), r);
        }
        assert!("admin".parse::<DeviceRole>().is_err());
        assert_eq!(serde_json::to_string(&DeviceRole::Watch).unwrap(), "\"watch\"");
    }

    #[test]
    fn secrets_are_256_bits_and_distinct() {
        let a = new_session_secret();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, new_session_secret());
    }

    #[test]
    fn device_names_are_checked() {
        assert_eq!(check_device_name("  Anna's phone ").unwrap(), "Anna's phone");
        assert!(check_device_name("   ").is_err());
        assert!(check_device_name(&"x".repeat(61)).is_err());
        assert!(check_device_name("a\u{7}b").is_err());
        assert_eq!(check_device_name(&"é".repeat(60)).unwrap().chars().count(), 60);
    }
}
