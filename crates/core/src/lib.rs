//! AnyCode's domain model, shared by every other crate.
//!
//! - [`Project`]: a git repository on the host that tasks branch from.
//! - [`Task`]: one unit of agent work: a branch, a worktree of it, one sandbox
//!   container, and its terminals.
//! - [`Agent`]: which program runs as the task's main process (`shell`, `claude`).
//! - [`Device`], [`DeviceRole`]: a phone paired to watch or control tasks.
//! - [`Credential`]: which credential a task's agent gets (`none`, `subscription`, `api_key`).
//! - [`Config`]: settings with their defaults, read from the environment.
//! - [`slugify`], [`new_id`]: naming helpers.
//!
//! This crate does no I/O beyond reading environment variables; it knows nothing
//! of HTTP, SQLite, git or Docker.

mod config;
mod device;
mod model;
mod network;
mod settings;

pub use config::{Config, Limits};
pub use network::{BlockedHost, NetworkMode, NetworkPolicy};
pub use settings::{ApprovalSettings, NetworkSettings, SandboxSettings, Settings, SettingsError};
pub use device::{check_device_name, new_session_secret, Device, DeviceRole};
pub use model::{
    Agent, Attention, Credential, Host, HostInfo, HostStatus, HostTls, ImageCopy, PermissionMode, Project, PullRequestInfo, QueuedMessage, ReviewComment, SetupStatus, Task,
    TaskSetup, TaskStatus, TerminalInfo, TerminalKind, Usage, CREDENTIAL_WARNING_MS, LOCAL_HOST,
};

use rand::Rng;

/// Errors from parsing domain values supplied by users.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An agent name that is not well formed (1 to 32 of `a-z0-9-_`, starting with a
    /// letter), or (from the engine) names no profile.
    #[error("unknown agent {0:?}: see `anycode agents` for the profiles (claude, codex, gemini, aider, goose, shell, and yours)")]
    UnknownAgent(String),
    /// A permission mode that is not one of [`PermissionMode::ALL`].
    #[error("unknown permission mode {0:?}: choose one of default, acceptEdits, plan, auto, bypassPermissions")]
    UnknownPermissionMode(String),
    /// A credential choice that is not one of [`Credential::ALL`].
    #[error("unknown credential {0:?}: choose one of none, subscription, api_key")]
    UnknownCredential(String),
    /// A task status string that this version does not know (from a newer database).
    #[error("unknown task status {0:?}")]
    UnknownStatus(String),
    /// A device role that is not one of [`DeviceRole::ALL`].
    #[error("unknown role {0:?}: choose watch or control")]
    UnknownRole(String),
    /// A device name that is empty, longer than 60 characters or has control characters.
    #[error("a device name needs 1 to 60 characters and no control characters")]
    InvalidDeviceName,
    /// A network mode that is not one of [`NetworkMode::ALL`].
    #[error("unknown network mode {0:?}: choose one of allowlist, none, open")]
    UnknownNetworkMode(String),
}

/// A new random identifier: 12 lowercase hex digits (48 bits), short enough to
/// type in `anycode attach <id>` and to use in container names.
pub fn new_id() -> String {
    let bytes: [u8; 6] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Turns a task title into a branch-name component: lowercase ASCII letters and
/// digits, runs of anything else folded into one `-`, trimmed, at most 50 bytes.
/// Returns `"task"` when nothing is left (a title of only punctuation or emoji).
pub fn slugify(title: &str) -> String {
    let mut out = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= 50 {
            break;
        }
    }
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "task".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The current time as RFC 3339 UTC text with seconds, e.g. `2026-11-21T20:35:05Z`.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugify_folds_and_trims() {
        assert_eq!(slugify("Fix the Login bug!"), "fix-the-login-bug");
        assert_eq!(slugify("  --Hello,  World--  "), "hello-world");
        assert_eq!(slugify("日本語"), "task");
        assert_eq!(slugify("a".repeat(80).as_str()).len(), 50);
    }

    #[test]
    fn ids_are_hex_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 12);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
