//! A task's network policy: how its sandbox reaches the network.
//!
//! Pure data here; the egress crate enforces it (its proxy decides by host name) and
//! the engine chooses the sandbox's Docker networks by [`NetworkMode`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::str::FromStr;

/// How a sandbox reaches the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// No route of its own; HTTP(S) through AnyCode's egress proxy to the hosts of
    /// the allow list only. The default.
    #[default]
    Allowlist,
    /// No route of its own and the proxy refuses everything: no outbound network.
    None,
    /// Docker's default bridge (a direct route out), and the proxy allows every
    /// public host.
    Open,
}

impl NetworkMode {
    /// Every choice.
    pub const ALL: [NetworkMode; 3] = [NetworkMode::Allowlist, NetworkMode::None, NetworkMode::Open];

    /// The name used in the API, the settings file and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkMode::Allowlist => "allowlist",
            NetworkMode::None => "none",
            NetworkMode::Open => "open",
        }
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for NetworkMode {
    type Err = crate::Error;
    /// Errors: [`crate::Error::UnknownNetworkMode`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NetworkMode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| crate::Error::UnknownNetworkMode(s.chars().take(60).collect()))
    }
}

/// A task's network policy as the API shows it: `{"mode": …, "allow": [...]}`.
/// `allow` holds host patterns (`example.com`, `*.example.org`, `host:port`, and
/// gateways on this machine as `host.docker.internal:PORT`); the egress crate
/// checks them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NetworkPolicy {
    /// How the sandbox reaches the network.
    pub mode: NetworkMode,
    /// Host patterns the proxy lets through (in `allowlist` mode; in `open` mode only
    /// its gateways matter).
    // Shared, not copied, by the copies of a task (change it with `Arc::make_mut`):
    // a policy holds about 30 patterns, and a list of hundreds of tasks spent 40 % of
    // its time copying and freeing them (issue 14).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub allow: Arc<Vec<String>>,
}

/// One host the egress proxy refused for a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BlockedHost {
    /// The host name (or address) as the sandbox asked for it, lowercase, without port.
    pub host: String,
    /// How many requests were refused.
    pub count: u64,
    /// When the last one was, RFC 3339 UTC.
    pub last_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_and_serialize_as_words() {
        for m in NetworkMode::ALL {
            assert_eq!(m.as_str().parse::<NetworkMode>().unwrap(), m);
        }
        assert!("closed".parse::<NetworkMode>().is_err());
        let p = NetworkPolicy { mode: NetworkMode::None, allow: vec!["example.com".into()].into() };
        assert_eq!(serde_json::to_value(&p).unwrap(), serde_json::json!({"mode": "none", "allow": ["example.com"]}));
        assert_eq!(NetworkPolicy::default().mode, NetworkMode::Allowlist);
    }
}
