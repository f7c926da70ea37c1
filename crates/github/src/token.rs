//! Where the GitHub token comes from, in order: the OS keyring (service `anycode`,
//! account `github-token`: macOS Keychain, Windows Credential Manager, the Secret
//! Service on Linux), `GITHUB_TOKEN`, then `gh auth token` when the GitHub CLI is
//! installed. Every call here blocks (keyring, `gh`): async callers use
//! `spawn_blocking`.
//!
//! The keyring entry is the one `anycode_credentials` calls
//! `Name::GithubToken` (same service, same account), read and written through the
//! same layer (`anycode_credentials::keyring`), so `anycode credentials` and
//! `anycode github` see one token.

use crate::{Error, Result, Secret};
use anycode_credentials::keyring as os_keyring;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The keyring service name shared by AnyCode's credentials (`anycode`).
pub const KEYRING_SERVICE: &str = anycode_credentials::KEYRING_SERVICE;
/// The keyring account of the GitHub token (`github-token`). Entries saved by
/// earlier versions of AnyCode live under the same service and account.
pub const KEYRING_ACCOUNT: &str = "github-token";
/// How long a keyring call may take before AnyCode gives up on it.
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The OS keyring (saved from the UI or `anycode github login`).
    Keyring,
    /// The `GITHUB_TOKEN` environment variable.
    Env,
    /// `gh auth token`.
    GhCli,
}

/// A place a token is saved. [`KeyringStore`] in the product; tests use [`MemoryStore`].
pub trait TokenStore: Send + Sync {
    /// The saved token, `None` when there is none.
    fn get(&self) -> Result<Option<Secret>>;
    /// Saves `token`, replacing any other.
    fn set(&self, token: &Secret) -> Result<()>;
    /// Removes the saved token (no error when there is none).
    fn delete(&self) -> Result<()>;
}

/// The OS keyring under `service` (AnyCode's is [`KEYRING_SERVICE`], configurable
/// with `ANYCODE_KEYRING_SERVICE`), account [`KEYRING_ACCOUNT`]; each call on its
/// own thread with [`KEYRING_TIMEOUT`].
#[derive(Debug, Clone)]
pub struct KeyringStore {
    /// The keyring service name.
    pub service: String,
}

impl Default for KeyringStore {
    fn default() -> Self {
        KeyringStore { service: KEYRING_SERVICE.to_string() }
    }
}

fn keyring_error(e: os_keyring::KeyringError) -> Error {
    Error::Keyring(e.to_string())
}

impl TokenStore for KeyringStore {
    /// Reads the entry; an entry holding only whitespace counts as none, and
    /// surrounding whitespace is dropped.
    fn get(&self) -> Result<Option<Secret>> {
        match os_keyring::get(&self.service, KEYRING_ACCOUNT, KEYRING_TIMEOUT).map_err(keyring_error)? {
            Some(found) => {
                let token = Secret::trimmed(found.expose().to_string());
                Ok((!token.is_empty()).then_some(token))
            }
            None => Ok(None),
        }
    }

    fn set(&self, token: &Secret) -> Result<()> {
        os_keyring::set(&self.service, KEYRING_ACCOUNT, token, KEYRING_TIMEOUT).map_err(keyring_error)
    }

    fn delete(&self) -> Result<()> {
        os_keyring::delete(&self.service, KEYRING_ACCOUNT, KEYRING_TIMEOUT).map(|_existed| ()).map_err(keyring_error)
    }
}

/// No place to save a token (the keyring is turned off): reading finds none,
/// saving says why.
#[derive(Debug, Default)]
pub struct NoStore;

impl TokenStore for NoStore {
    fn get(&self) -> Result<Option<Secret>> {
        Ok(None)
    }
    fn set(&self, _: &Secret) -> Result<()> {
        Err(Error::Keyring("the OS keyring is turned off (ANYCODE_KEYRING_SERVICE=none)".into()))
    }
    fn delete(&self) -> Result<()> {
        Ok(())
    }
}

/// A token store in memory (tests, and platforms without a keyring).
#[derive(Debug, Default)]
pub struct MemoryStore(Mutex<Option<Secret>>);

impl TokenStore for MemoryStore {
    fn get(&self) -> Result<Option<Secret>> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }
    fn set(&self, token: &Secret) -> Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        Ok(())
    }
    fn delete(&self) -> Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}

/// The token sources in their order, each of which can be turned off.
#[derive(Clone)]
pub struct Tokens {
    /// Where tokens are saved.
    pub store: Arc<dyn TokenStore>,
    /// Whether `GITHUB_TOKEN` is read.
    pub use_env: bool,
    /// Whether `gh auth token` is asked.
    pub use_gh: bool,
}

impl Default for Tokens {
    /// The OS keyring, `GITHUB_TOKEN`, `gh`.
    fn default() -> Tokens {
        Tokens { store: Arc::new(KeyringStore::default()), use_env: true, use_gh: true }
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("use_env", &self.use_env).field("use_gh", &self.use_gh).finish()
    }
}

impl Tokens {
    /// The keyring under `service` (none when `None`: the keyring is off), then
    /// `GITHUB_TOKEN`, then `gh`.
    pub fn with_service(service: Option<&str>) -> Tokens {
        let store: Arc<dyn TokenStore> = match service {
            Some(s) => Arc::new(KeyringStore { service: s.to_string() }),
            None => Arc::new(NoStore),
        };
        Tokens { store, use_env: true, use_gh: true }
    }

    /// Only `store` (tests).
    pub fn only(store: Arc<dyn TokenStore>) -> Tokens {
        Tokens { store, use_env: false, use_gh: false }
    }

    /// The first token found, with its source; `None` when there is none. A failing
    /// keyring (none on this machine, locked) is logged and skipped, so the
    /// environment and `gh` still work.
    pub fn resolve(&self) -> Option<(Secret, TokenSource)> {
        match self.store.get() {
            Ok(Some(t)) => return Some((t, TokenSource::Keyring)),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "keyring unavailable; trying GITHUB_TOKEN and gh"),
        }
        if self.use_env {
            if let Some(t) = std::env::var("GITHUB_TOKEN").ok().map(Secret::trimmed).filter(|t| !t.is_empty()) {
                return Some((t, TokenSource::Env));
            }
        }
        if self.use_gh {
            if let Some(t) = gh_token() {
                return Some((t, TokenSource::GhCli));
            }
        }
        None
    }

    /// Saves `token` in the store. Errors: [`Error::Invalid`] for an empty or
    /// multi-line token; [`Error::Keyring`].
    pub fn save(&self, token: &Secret) -> Result<()> {
        check_token_shape(token)?;
        self.store.set(token)
    }

    /// Removes the saved token. A token from `GITHUB_TOKEN` or `gh` stays (AnyCode
    /// did not set it).
    pub fn remove(&self) -> Result<()> {
        self.store.delete()
    }
}

/// Refuses tokens that cannot be one: empty, with whitespace or control characters inside.
pub fn check_token_shape(token: &Secret) -> Result<()> {
    let t = token.expose();
    if t.is_empty() {
        return Err(Error::Invalid("the token is empty".into()));
    }
    if t.len() > 1024 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid("that is not a token: it has spaces or line breaks inside, or is too long".into()));
    }
    Ok(())
}

/// `gh auth token`'s answer when `gh` is installed and logged in (5 s at most).
fn gh_token() -> Option<Secret> {
    let mut child = std::process::Command::new("gh")
        .args(["auth", "token"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(Some(_)) => return None,
            Ok(None) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    use std::io::Read;
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    Some(Secret::trimmed(out)).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_round_trip_and_shape_checks() {
        let t = Tokens::only(Arc::new(MemoryStore::default()));
        assert!(t.resolve().is_none());
        t.save(&Secret::trimmed("ghp_one\n".to_string())).unwrap();
        let (s, src) = t.resolve().unwrap();
        assert_eq!((s.expose(), src), ("ghp_one", TokenSource::Keyring));
        assert!(matches!(t.save(&Secret::new("two words")), Err(Error::Invalid(_))));
        assert!(matches!(t.save(&Secret::new("  ")), Err(Error::Invalid(_))));
        assert_eq!(t.resolve().unwrap().0.expose(), "ghp_one", "a refused token changes nothing");
        t.remove().unwrap();
        assert!(t.resolve().is_none());
    }

    #[test]
    fn the_entry_is_the_credentials_crates_github_token() {
        assert_eq!(KEYRING_ACCOUNT, anycode_credentials::Name::GithubToken.account());
        assert_eq!(KEYRING_SERVICE, "anycode");
    }
}
