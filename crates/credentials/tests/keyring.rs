//! AnyCode's keyring entries against a real Secret Service (gnome-keyring-daemon on a
//! private D-Bus session, see `anycode_testkit::SecretService`), and what a locked,
//! hanging or absent Secret Service gives: a status with a hint, never a hang.
//!
//! Each test points its own process's `DBUS_SESSION_BUS_ADDRESS` somewhere: nextest
//! (what scripts/test.sh runs) gives every test a process of its own. Linux only:
//! the macOS and Windows keyrings are compiled behind cfg but cannot run here.
#![cfg(all(unix, not(target_os = "macos")))]
// Test code: a panic is how a test fails (clippy.toml allows unwrap/expect in
// #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use anycode_credentials::*;
use anycode_testkit::SecretService;
use std::time::{Duration, Instant};

use anycode_testkit::secret_service::credential_sources as sources;

#[test]
fn round_trip_against_a_real_secret_service() {
    let ss = SecretService::start();
    let dir = tempfile::tempdir().unwrap();
    let src = sources("anycode-test", dir.path());
    let now = now_ms();

    // Nothing saved yet: missing, with a hint; the keyring answered.
    let st = status(&src, now);
    assert_eq!(st.keyring_problem, None, "{st:?}");
    assert_eq!(st.provider(Provider::Anthropic).unwrap().state, State::Missing);

    // Save, read back through the status and a lookup.
    let key = Secret::new("sk-ant-api03-ROUNDTRIP-0123456789-wxyz");
    assert_eq!(save(&src, Name::AnthropicApiKey, &key).unwrap(), "sk-…wxyz");
    let st = status(&src, now);
    let a = st.provider(Provider::Anthropic).unwrap();
    assert_eq!((a.state, a.source, a.display.as_deref()), (State::Ok, Some(SourceKind::Keyring), Some("sk-…wxyz")));
    assert_eq!(a.location.as_deref(), Some("keyring anycode-test/anthropic-api-key"));
    assert!(!serde_json::to_string(&st).unwrap().contains("ROUNDTRIP"));
    assert_eq!(lookup(&src, Provider::Anthropic, now).secret.unwrap().expose(), key.expose());

    // The entry is a real Secret Service item with AnyCode's service and account.
    let found = ss.secret_tool(&["lookup", "service", "anycode-test", "username", "anthropic-api-key"]).unwrap();
    assert_eq!(found.trim(), key.expose());

    // Replacing keeps one entry; the keyring wins over the environment.
    let token = Secret::new("sk-ant-oat01-SETUP-TOKEN-abcdefgh-1234");
    save(&src, Name::ClaudeToken, &token).unwrap();
    save(&src, Name::ClaudeToken, &Secret::new("sk-ant-oat01-SETUP-TOKEN-abcdefgh-5678")).unwrap();
    let mut with_env = src.clone();
    with_env.env = vec![("CLAUDE_CODE_OAUTH_TOKEN".into(), Secret::new("sk-ant-oat01-FROM-ENV-xxxxxxxxxx"))];
    let f = lookup(&with_env, Provider::Claude, now);
    assert_eq!(f.status.source, Some(SourceKind::Keyring));
    assert_eq!(f.secret.unwrap().expose(), "sk-ant-oat01-SETUP-TOKEN-abcdefgh-5678");

    // Another service name (another AnyCode instance, or the tests') sees nothing of it.
    let other = sources("anycode-test-other", dir.path());
    assert_eq!(lookup(&other, Provider::Claude, now).status.state, State::Missing);

    // Bad input changes nothing.
    assert!(matches!(save(&src, Name::ClaudeToken, &Secret::new("  ")), Err(Error::InvalidValue(_))));
    assert_eq!(lookup(&src, Provider::Claude, now).secret.unwrap().expose(), "sk-ant-oat01-SETUP-TOKEN-abcdefgh-5678");

    // Remove.
    assert!(remove(&src, Name::ClaudeToken).unwrap());
    assert!(!remove(&src, Name::ClaudeToken).unwrap(), "removing twice is fine");
    assert_eq!(lookup(&src, Provider::Claude, now).status.state, State::Missing);
    assert!(remove(&src, Name::AnthropicApiKey).unwrap());
    assert!(ss.secret_tool(&["lookup", "service", "anycode-test", "username", "anthropic-api-key"]).is_none_or(|s| s.is_empty()));
}

#[test]
fn a_locked_keyring_is_a_status_with_a_hint_not_a_hang() {
    let ss = SecretService::start();
    let dir = tempfile::tempdir().unwrap();
    let src = sources("anycode-test", dir.path());
    save(&src, Name::OpenaiApiKey, &Secret::new("sk-openai-LOCKED-0123456789abcd")).unwrap();
    ss.lock();
    let t0 = Instant::now();
    let st = status(&src, now_ms());
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(8), "bounded by the keyring timeout: took {took:?}");
    let o = st.provider(Provider::Openai).unwrap();
    assert_eq!(o.state, State::Missing, "{o:?}");
    let problem = st.keyring_problem.clone().expect("the keyring problem is reported");
    assert!(problem.contains("locked") && problem.contains("gnome-keyring-daemon --unlock"), "{problem}");
    assert!(o.hint.as_deref().unwrap().contains("unlock it"), "{o:?}");
    assert!(!serde_json::to_string(&st).unwrap().contains("LOCKED-0123"));
    // Saving while locked fails with a hint too, in bounded time.
    let t0 = Instant::now();
    let err = save(&src, Name::OpenaiApiKey, &Secret::new("sk-openai-OTHER-0123456789abcd")).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(8));
    assert!(matches!(err, Error::Keyring(_)), "{err}");
}

#[test]
fn an_absent_secret_service_is_a_status_with_a_hint() {
    // A bus address where nothing listens: a headless Linux without a session bus.
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}/no-bus", dir.path().display()));
    let src = sources("anycode-test", dir.path());
    let t0 = Instant::now();
    let st = status(&src, now_ms());
    assert!(t0.elapsed() < Duration::from_secs(6));
    let problem = st.keyring_problem.clone().expect("reported");
    assert!(problem.contains("not available") && problem.contains("environment"), "{problem}");
    for p in &st.providers {
        assert_eq!(p.state, State::Missing);
        assert!(p.sources[0].problem.is_some(), "the keyring source shows why: {p:?}");
    }
    // The environment still works without a keyring.
    let mut with_env = src.clone();
    with_env.env = vec![("ANTHROPIC_API_KEY".into(), Secret::new("sk-ant-api03-ENV-ONLY-0123456789"))];
    let f = lookup(&with_env, Provider::Anthropic, now_ms());
    assert_eq!((f.status.state, f.status.source), (State::Ok, Some(SourceKind::Env)));
    let err = save(&src, Name::AnthropicApiKey, &Secret::new("sk-ant-api03-x-0123456789")).unwrap_err();
    assert!(err.to_string().contains("CLAUDE_CODE_OAUTH_TOKEN") || err.to_string().contains("environment"), "{err}");
}

#[test]
fn a_secret_service_that_never_answers_times_out() {
    // A socket that accepts connections and then says nothing: the D-Bus handshake
    // waits forever, as a wedged session bus would.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silent-bus");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", format!("unix:path={}", path.display()));
    let mut src = sources("anycode-test", dir.path());
    src.keyring_timeout = Duration::from_secs(2);
    let t0 = Instant::now();
    let st = status(&src, now_ms());
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let problem = st.keyring_problem.expect("reported");
    assert!(problem.contains("did not answer"), "{problem}");
    // While the first call still hangs, the next one fails at once.
    let t0 = Instant::now();
    let st = status(&src, now_ms());
    assert!(t0.elapsed() < Duration::from_millis(500));
    assert!(st.keyring_problem.unwrap().contains("busy"));
}
