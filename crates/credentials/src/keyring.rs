//! The OS keyring (macOS Keychain, Windows Credential Manager, the Secret Service on
//! Linux and the BSDs) through the `keyring` crate, with every call bounded in time.
//!
//! A keyring call can block for good: a locked Secret Service collection waits for
//! an unlock prompt nobody answers on a headless machine, and the macOS Keychain
//! waits for the user to allow access. So each call runs on its own thread and the
//! caller waits at most the given timeout. A call that timed out keeps its thread
//! until the keyring answers; while one does, later calls fail at once instead of
//! piling up more stuck threads.

use crate::Secret;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// How long a keyring call may take by default. The macOS Keychain may show a
/// permission dialog the first time AnyCode reads Claude Code's entry, so it gets
/// time for a person to answer.
#[cfg(target_os = "macos")]
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a keyring call may take by default.
#[cfg(not(target_os = "macos"))]
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Calls that timed out and still wait for the keyring.
static STUCK: AtomicUsize = AtomicUsize::new(0);

/// Why the keyring could not be used. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// No keyring service answers (no Secret Service on a headless Linux, no D-Bus
    /// session), or it refused access.
    #[error("the OS keyring is not available: {0}")]
    Unavailable(String),
    /// The keyring is locked (or access was refused) and could not be unlocked: on
    /// a headless Linux no unlock prompt can be shown.
    #[error("the OS keyring is locked or refused access: {0}")]
    Locked(String),
    /// The keyring did not answer in time (a locked Secret Service collection
    /// waiting for an unlock prompt, a Keychain permission dialog).
    #[error("the OS keyring did not answer within {} s (locked, or waiting for a permission dialog?)", .0.as_secs())]
    Timeout(Duration),
    /// An earlier call timed out and the keyring still has not answered it.
    #[error("the OS keyring is still busy with an earlier request (locked, or waiting for a permission dialog?)")]
    Busy,
    /// The stored value is not UTF-8 text.
    #[error("the stored value is not text")]
    BadEncoding,
    /// Any other failure of the keyring.
    #[error("the OS keyring failed: {0}")]
    Failed(String),
}

impl KeyringError {
    /// What the user can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            KeyringError::Unavailable(_) => UNAVAILABLE_HINT,
            KeyringError::Locked(_) => {
                "unlock it (your desktop's keyring or Seahorse; on a headless Linux `gnome-keyring-daemon --unlock` with its password), \
                 or pass the credential in the environment of `anycode serve` (CLAUDE_CODE_OAUTH_TOKEN, ANTHROPIC_API_KEY, …)"
            }
            KeyringError::Timeout(_) | KeyringError::Busy => {
                "unlock the keyring (on Linux: your desktop's keyring, or `gnome-keyring-daemon --unlock`), or answer the Keychain dialog on macOS, then try again"
            }
            KeyringError::BadEncoding => "save the value again with `anycode credentials set <name> --stdin`",
            KeyringError::Failed(_) => "check the OS keyring (Keychain Access, Credential Manager, Seahorse), or pass the credential in the environment",
        }
    }
}

#[cfg(all(unix, not(target_os = "macos")))]
const UNAVAILABLE_HINT: &str = "no Secret Service answers (a headless Linux has none): start one (gnome-keyring-daemon, KeePassXC) in this session, \
     or pass the credential in the environment of `anycode serve` (CLAUDE_CODE_OAUTH_TOKEN, ANTHROPIC_API_KEY, …)";
#[cfg(not(all(unix, not(target_os = "macos"))))]
const UNAVAILABLE_HINT: &str = "the OS keyring refused access: check it, or pass the credential in the environment of `anycode serve`";

fn map_err(e: keyring::Error) -> KeyringError {
    // Each variant is mapped by hand: some carry the secret (BadEncoding holds the
    // raw bytes), so an error is never formatted with `{:?}`.
    match e {
        keyring::Error::PlatformFailure(inner) => KeyringError::Unavailable(first_line(&inner.to_string())),
        keyring::Error::NoStorageAccess(inner) => KeyringError::Locked(first_line(&inner.to_string())),
        keyring::Error::BadEncoding(mut bytes) => {
            zeroize::Zeroize::zeroize(&mut bytes);
            KeyringError::BadEncoding
        }
        keyring::Error::TooLong(what, max) => KeyringError::Failed(format!("the {what} is longer than {max}")),
        keyring::Error::Invalid(what, why) => KeyringError::Failed(format!("invalid {what}: {why}")),
        keyring::Error::Ambiguous(list) => KeyringError::Failed(format!("{} entries match; remove the extra ones", list.len())),
        keyring::Error::NoEntry => KeyringError::Failed("no such entry".into()),
        other => KeyringError::Failed(first_line(&other.to_string())),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

#[derive(PartialEq)]
enum CallState {
    Running,
    Done,
    Abandoned,
}

/// Runs `f` on its own thread and waits at most `timeout` for it.
fn bounded<T: Send + 'static>(timeout: Duration, f: impl FnOnce() -> T + Send + 'static) -> Result<T, KeyringError> {
    if STUCK.load(Ordering::SeqCst) > 0 {
        return Err(KeyringError::Busy);
    }
    let (tx, rx) = mpsc::channel();
    let state = Arc::new(Mutex::new(CallState::Running));
    let st = state.clone();
    let spawned = std::thread::Builder::new().name("keyring".into()).spawn(move || {
        let out = f();
        let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
        if *s == CallState::Abandoned {
            STUCK.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!("a keyring call that had timed out finished");
        } else {
            let _ = tx.send(out);
            *s = CallState::Done;
        }
    });
    if let Err(e) = spawned {
        return Err(KeyringError::Failed(format!("cannot start a thread: {e}")));
    }
    match rx.recv_timeout(timeout) {
        Ok(v) => Ok(v),
        Err(_) => {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            if *s == CallState::Done {
                // Finished between the timeout and taking the lock.
                return rx.try_recv().map_err(|_| KeyringError::Timeout(timeout));
            }
            *s = CallState::Abandoned;
            STUCK.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(timeout_s = timeout.as_secs(), "a keyring call timed out");
            Err(KeyringError::Timeout(timeout))
        }
    }
}

/// Reads entries `(service, account)`, in order, on one thread within `timeout`.
/// Each entry gives `Ok(Some)`, `Ok(None)` when absent, or its own error.
///
/// Errors: the whole batch fails with [`KeyringError::Timeout`] or
/// [`KeyringError::Busy`] when the keyring does not answer.
pub fn get_many(entries: &[(String, String)], timeout: Duration) -> Result<Vec<Result<Option<Secret>, KeyringError>>, KeyringError> {
    let entries = entries.to_vec();
    bounded(timeout, move || {
        let mut out = Vec::new();
        for (service, account) in &entries {
            let r = keyring::Entry::new(service, account).and_then(|e| e.get_password());
            out.push(match r {
                Ok(v) => Ok(Some(Secret::new(v))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(map_err(e)),
            });
            // Without a keyring service, every other entry fails the same way: stop.
            if matches!(out.last(), Some(Err(KeyringError::Unavailable(_) | KeyringError::Locked(_)))) {
                break;
            }
        }
        out
    })
}

/// Reads one entry. `Ok(None)` when it does not exist.
pub fn get(service: &str, account: &str, timeout: Duration) -> Result<Option<Secret>, KeyringError> {
    let mut all = get_many(&[(service.to_string(), account.to_string())], timeout)?;
    all.pop().unwrap_or(Ok(None))
}

/// Saves (creates or replaces) one entry.
pub fn set(service: &str, account: &str, value: &Secret, timeout: Duration) -> Result<(), KeyringError> {
    let (service, account, value) = (service.to_string(), account.to_string(), value.clone());
    bounded(timeout, move || keyring::Entry::new(&service, &account).and_then(|e| e.set_password(value.expose())).map_err(map_err))?
}

/// Deletes one entry. Returns whether it existed.
pub fn delete(service: &str, account: &str, timeout: Duration) -> Result<bool, KeyringError> {
    let (service, account) = (service.to_string(), account.to_string());
    bounded(timeout, move || match keyring::Entry::new(&service, &account).and_then(|e| e.delete_credential()) {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(e) => Err(map_err(e)),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_hangs_times_out_and_blocks_later_calls_until_it_ends() {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let t0 = std::time::Instant::now();
        let r = bounded(Duration::from_millis(200), move || {
            let _ = release_rx.recv();
            1
        });
        assert_eq!(r, Err(KeyringError::Timeout(Duration::from_millis(200))));
        assert!(t0.elapsed() < Duration::from_secs(2));
        assert_eq!(bounded(Duration::from_secs(1), || 2), Err(KeyringError::Busy), "no second stuck thread");
        release_tx.send(()).unwrap();
        for _ in 0..100 {
            if STUCK.load(Ordering::SeqCst) == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(bounded(Duration::from_secs(1), || 3), Ok(3), "usable again once the stuck call ended");
    }
}
