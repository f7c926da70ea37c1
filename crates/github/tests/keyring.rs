//! The GitHub token's keyring store against a real Secret Service (gnome-keyring-daemon
//! on a private D-Bus session, see `anycode_testkit::SecretService`): it goes through
//! `anycode_credentials::keyring`, the one keyring layer, and still reads the tokens
//! earlier versions of AnyCode saved with their own keyring code.
//!
//! Each test points its own process's `DBUS_SESSION_BUS_ADDRESS` somewhere: nextest
//! (what scripts/test.sh runs) gives every test a process of its own. Linux only.
#![cfg(all(unix, not(target_os = "macos")))]
// Test code: a panic is how a test fails (clippy.toml allows unwrap/expect in
// #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycode_credentials::{Name, Provider, SourceKind, State};
use anycode_github::token::{KeyringStore, TokenSource, TokenStore, Tokens, KEYRING_ACCOUNT};
use anycode_github::Secret;
use anycode_testkit::secret_service::credential_sources;
use anycode_testkit::SecretService;
use std::time::Duration;

/// What `KeyringStore::set` did before it used `anycode_credentials::keyring`: its own
/// `keyring::Entry` under (service, `github-token`).
fn save_the_old_way(service: &str, token: &str) {
    keyring::Entry::new(service, "github-token").unwrap().set_password(token).unwrap();
}

/// What `KeyringStore::get` did before: `None` for a missing or blank entry.
fn read_the_old_way(service: &str) -> Option<String> {
    match keyring::Entry::new(service, "github-token").unwrap().get_password() {
        Ok(p) if !p.trim().is_empty() => Some(p.trim().to_string()),
        Ok(_) | Err(keyring::Error::NoEntry) => None,
        Err(e) => panic!("the keyring failed: {e}"),
    }
}

#[test]
fn a_token_saved_by_an_earlier_anycode_is_still_read() {
    let _ss = SecretService::start();
    let service = "anycode-gh-old";
    // Saved as a pasted token could have been, with its newline.
    save_the_old_way(service, "ghp_SAVED-BY-AN-OLDER-ANYCODE-0123\n");

    let tokens = Tokens::only(std::sync::Arc::new(KeyringStore { service: service.to_string() }));
    let (token, source) = tokens.resolve().expect("the old entry is found");
    assert_eq!((token.expose(), source), ("ghp_SAVED-BY-AN-OLDER-ANYCODE-0123", TokenSource::Keyring));

    // The credentials layer sees the same entry as the GitHub provider's keyring source.
    let dir = tempfile::tempdir().unwrap();
    let status = anycode_credentials::status(&credential_sources(service, dir.path()), anycode_credentials::now_ms());
    let gh = status.provider(Provider::Github).unwrap();
    assert_eq!((gh.state, gh.source), (State::Ok, Some(SourceKind::Keyring)), "{gh:?}");
    assert_eq!(gh.location.as_deref(), Some("keyring anycode-gh-old/github-token"));

    // Removing it through the store removes the old entry.
    tokens.remove().unwrap();
    assert_eq!(read_the_old_way(service), None);
    assert!(tokens.resolve().is_none());
}

#[test]
fn a_token_saved_now_is_where_earlier_versions_and_the_credentials_layer_look() {
    let ss = SecretService::start();
    let service = "anycode-gh-new";
    let store = KeyringStore { service: service.to_string() };
    store.set(&Secret::new("ghp_SAVED-NOW-4567")).unwrap();

    // An older AnyCode (a downgrade) reads it, and so does any Secret Service client.
    assert_eq!(read_the_old_way(service).as_deref(), Some("ghp_SAVED-NOW-4567"));
    let found = ss.secret_tool(&["lookup", "service", service, "username", KEYRING_ACCOUNT]).unwrap();
    assert_eq!(found.trim(), "ghp_SAVED-NOW-4567");

    // `anycode credentials set github-token` and the GitHub store share the entry.
    let dir = tempfile::tempdir().unwrap();
    let sources = credential_sources(service, dir.path());
    anycode_credentials::save(&sources, Name::GithubToken, &Secret::new("ghp_REPLACED-BY-CREDENTIALS-89ab")).unwrap();
    assert_eq!(store.get().unwrap().unwrap().expose(), "ghp_REPLACED-BY-CREDENTIALS-89ab");

    // A blank entry is no token.
    save_the_old_way(service, " \n");
    assert!(store.get().unwrap().is_none());
    store.delete().unwrap();
    store.delete().unwrap(); // Deleting what is not there is fine.
    assert!(ss.secret_tool(&["lookup", "service", service, "username", KEYRING_ACCOUNT]).is_none_or(|s| s.is_empty()));
}

#[test]
fn a_locked_keyring_is_an_error_that_says_so_in_bounded_time() {
    let ss = SecretService::start();
    let service = "anycode-gh-locked";
    let store = KeyringStore { service: service.to_string() };
    store.set(&Secret::new("ghp_LOCKED-AWAY-cdef")).unwrap();
    ss.lock();
    let t0 = std::time::Instant::now();
    let err = store.get().unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(8), "bounded in time");
    let msg = err.to_string();
    assert!(matches!(err, anycode_github::Error::Keyring(_)), "{msg}");
    assert!(msg.contains("keyring") && msg.contains("GITHUB_TOKEN") && !msg.contains("LOCKED-AWAY"), "{msg}");
    // `resolve` skips a failing keyring: with nothing else allowed, no token.
    assert!(Tokens::only(std::sync::Arc::new(store)).resolve().is_none());
}
