//! AnyCode's credentials: finding the user's Claude login and API keys on the host,
//! saying where they stand, and handing one over without ever printing it.
//!
//! - [`Secret`]: a value that redacts itself in `Debug` and `Display` and cannot be
//!   serialized; [`Secret::expose`] is the only way to the value. It is AnyCode's one
//!   secret type: `anycode-github` re-exports it for the GitHub token.
//! - Sources, first found wins (see [`Sources`]):
//!   1. AnyCode's own entries in the OS keyring (service `anycode`, accounts
//!      [`Name::account`]: `claude-token`, `anthropic-api-key`, `openai-api-key`,
//!      `gemini-api-key`, `github-token`), saved with [`save`];
//!   2. Claude Code's own login ([`claude`]): the macOS Keychain entry
//!      `Claude Code-credentials`, or `~/.claude/.credentials.json` (or under
//!      `CLAUDE_CONFIG_DIR`);
//!   3. the environment AnyCode was started with (`CLAUDE_CODE_OAUTH_TOKEN`,
//!      `ANTHROPIC_API_KEY`, `OPENAI_API_KEY`, `GEMINI_API_KEY`).
//! - [`status`]: per [`Provider`], which source was found, the subscription type,
//!   the expiry, a fixed display form for keys the user typed (`sk-…abcd`), and a
//!   fix hint; every source looked at is listed with what was wrong with it.
//! - [`lookup`]: the secret to hand to an agent, with the same report.
//! - Keyring calls run on their own thread with a timeout ([`keyring`]): a locked
//!   or absent Secret Service gives a status with a hint, never a hang. [`keyring`]
//!   is AnyCode's one keyring layer: the GitHub token's store (`anycode-github`) goes
//!   through it too.
//!
//! The refresh token of a Claude login is parsed only to be dropped; it never
//! leaves this crate. Every call is blocking: async callers use `spawn_blocking`.

pub mod claude;
pub mod keyring;
mod secret;

pub use secret::{Secret, REDACTED};

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The keyring service of AnyCode's own entries.
pub const KEYRING_SERVICE: &str = "anycode";
/// Longest value [`save`] accepts, in bytes (tokens and keys are a few hundred).
pub const MAX_VALUE: usize = 2048;
/// A token expiring within this many milliseconds is reported as expiring (1 hour).
pub const EXPIRY_WARNING_MS: i64 = 60 * 60 * 1000;

/// Errors of saving and removing AnyCode's keyring entries.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name that is not one of [`Name::ALL`].
    #[error("unknown credential {0:?}: use one of claude-token, anthropic-api-key, openai-api-key, gemini-api-key, github-token")]
    UnknownName(String),
    /// An empty, oversized or misplaced value; nothing was saved.
    #[error("{0}")]
    InvalidValue(String),
    /// The keyring is turned off (`ANYCODE_KEYRING_SERVICE=none`).
    #[error("AnyCode's keyring use is turned off (ANYCODE_KEYRING_SERVICE=none): pass credentials in the environment instead")]
    KeyringDisabled,
    /// The keyring did not answer or refused; the message carries a hint.
    #[error("{0}; {hint}", hint = .0.hint())]
    Keyring(#[from] keyring::KeyringError),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Who a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// A Claude subscription (Pro, Max, Team): an OAuth token, from Claude Code's
    /// login or `claude setup-token`. Handed over as `CLAUDE_CODE_OAUTH_TOKEN`.
    Claude,
    /// An Anthropic API key (`ANTHROPIC_API_KEY`).
    Anthropic,
    /// An OpenAI API key (`OPENAI_API_KEY`).
    Openai,
    /// A Gemini API key (`GEMINI_API_KEY`).
    Gemini,
    /// A GitHub token (keyring only here; the GitHub layer has its own fallbacks).
    Github,
}

impl Provider {
    /// Every provider, in the order statuses list them.
    pub const ALL: [Provider; 5] = [Provider::Claude, Provider::Anthropic, Provider::Openai, Provider::Gemini, Provider::Github];

    /// `claude`, `anthropic`, `openai`, `gemini`, `github`.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Claude => "claude",
            Provider::Anthropic => "anthropic",
            Provider::Openai => "openai",
            Provider::Gemini => "gemini",
            Provider::Github => "github",
        }
    }

    /// The environment variable an agent reads the credential from (and that
    /// AnyCode's own environment is searched for).
    pub fn env_var(self) -> &'static str {
        match self {
            Provider::Claude => "CLAUDE_CODE_OAUTH_TOKEN",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
            Provider::Openai => "OPENAI_API_KEY",
            Provider::Gemini => "GEMINI_API_KEY",
            Provider::Github => "GITHUB_TOKEN",
        }
    }

    /// The keyring entry of this provider.
    pub fn name(self) -> Name {
        match self {
            Provider::Claude => Name::ClaudeToken,
            Provider::Anthropic => Name::AnthropicApiKey,
            Provider::Openai => Name::OpenaiApiKey,
            Provider::Gemini => Name::GeminiApiKey,
            Provider::Github => Name::GithubToken,
        }
    }

    /// Whether AnyCode's own environment is a source for it (not GitHub: the
    /// GitHub layer reads `GITHUB_TOKEN` and `gh` itself).
    fn reads_env(self) -> bool {
        self != Provider::Github
    }

    fn missing_hint(self) -> &'static str {
        match self {
            Provider::Claude => {
                "log in with `claude` on this machine (AnyCode reuses Claude Code's login), or run `claude setup-token` and save the token: \
                 `anycode credentials set claude-token --stdin` (or set CLAUDE_CODE_OAUTH_TOKEN)"
            }
            Provider::Anthropic => {
                "create a key at console.anthropic.com and save it: `anycode credentials set anthropic-api-key --stdin` (or set ANTHROPIC_API_KEY)"
            }
            Provider::Openai => "save a key: `anycode credentials set openai-api-key --stdin` (or set OPENAI_API_KEY)",
            Provider::Gemini => "save a key: `anycode credentials set gemini-api-key --stdin` (or set GEMINI_API_KEY)",
            Provider::Github => "save a token: `anycode credentials set github-token --stdin`",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of AnyCode's own keyring entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
#[schema(as = CredentialName)]
pub enum Name {
    /// `claude-token`: a long-lived token from `claude setup-token`.
    ClaudeToken,
    /// `anthropic-api-key`.
    AnthropicApiKey,
    /// `openai-api-key`.
    OpenaiApiKey,
    /// `gemini-api-key`.
    GeminiApiKey,
    /// `github-token`.
    GithubToken,
}

impl Name {
    /// Every name.
    pub const ALL: [Name; 5] = [Name::ClaudeToken, Name::AnthropicApiKey, Name::OpenaiApiKey, Name::GeminiApiKey, Name::GithubToken];

    /// The keyring account: `claude-token`, `anthropic-api-key`, `openai-api-key`,
    /// `gemini-api-key`, `github-token` (the names the API and the CLI take).
    pub fn account(self) -> &'static str {
        match self {
            Name::ClaudeToken => "claude-token",
            Name::AnthropicApiKey => "anthropic-api-key",
            Name::OpenaiApiKey => "openai-api-key",
            Name::GeminiApiKey => "gemini-api-key",
            Name::GithubToken => "github-token",
        }
    }

    /// The provider this entry serves.
    pub fn provider(self) -> Provider {
        match self {
            Name::ClaudeToken => Provider::Claude,
            Name::AnthropicApiKey => Provider::Anthropic,
            Name::OpenaiApiKey => Provider::Openai,
            Name::GeminiApiKey => Provider::Gemini,
            Name::GithubToken => Provider::Github,
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.account())
    }
}

impl FromStr for Name {
    type Err = Error;
    fn from_str(s: &str) -> Result<Name> {
        Name::ALL.into_iter().find(|n| n.account() == s).ok_or_else(|| Error::UnknownName(s.chars().take(60).collect()))
    }
}

/// Where to look. Built once from the configuration; cheap to clone.
#[derive(Clone)]
pub struct Sources {
    /// The keyring service of AnyCode's entries ([`KEYRING_SERVICE`]); `None` turns
    /// the keyring off (AnyCode's entries, and on macOS Claude Code's Keychain entry).
    pub keyring_service: Option<String>,
    /// Claude Code's config dir as the user set it (`CLAUDE_CONFIG_DIR`); `None`
    /// means `~/.claude`.
    pub claude_config_dir: Option<PathBuf>,
    /// The environment variables to read, e.g. `[("ANTHROPIC_API_KEY", …)]`: usually
    /// [`env_vars`] of the process; empty in tests.
    pub env: Vec<(String, Secret)>,
    /// How long one batch of keyring calls may take.
    pub keyring_timeout: Duration,
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources")
            .field("keyring_service", &self.keyring_service)
            .field("claude_config_dir", &self.claude_config_dir)
            .field("env", &self.env.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

/// The credential variables of this process's environment (non-empty ones only).
pub fn env_vars() -> Vec<(String, Secret)> {
    Provider::ALL
        .into_iter()
        .filter(|p| p.reads_env())
        .filter_map(|p| {
            let v = std::env::var(p.env_var()).ok()?;
            (!v.trim().is_empty()).then(|| (p.env_var().to_string(), Secret::new(v.trim())))
        })
        .collect()
}

impl Sources {
    /// The usual sources: the keyring under `keyring_service`, Claude Code's login
    /// under `claude_config_dir` (or `~/.claude`), and this process's environment.
    pub fn new(keyring_service: Option<String>, claude_config_dir: Option<PathBuf>) -> Sources {
        Sources { keyring_service, claude_config_dir, env: env_vars(), keyring_timeout: keyring::DEFAULT_TIMEOUT }
    }

    /// The path of Claude Code's credentials file.
    pub fn claude_credentials_file(&self) -> PathBuf {
        claude::config_dir(self.claude_config_dir.as_deref()).join(claude::CREDENTIALS_FILE)
    }
}

/// A kind of place a credential comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// AnyCode's own OS keyring entry.
    Keyring,
    /// Claude Code's login in the macOS Keychain.
    ClaudeKeychain,
    /// Claude Code's credentials file.
    ClaudeFile,
    /// An environment variable of AnyCode.
    Env,
}

/// One source looked at for a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SourceCheck {
    /// The kind of source.
    pub kind: SourceKind,
    /// Where exactly, e.g. `keyring anycode/claude-token`,
    /// `/home/me/.claude/.credentials.json`, `$ANTHROPIC_API_KEY`.
    pub location: String,
    /// Whether a credential was found there.
    pub found: bool,
    /// What was wrong (unreadable, malformed, expired, keyring locked…), if anything.
    pub problem: Option<String>,
}

/// A provider's credential state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = CredentialState)]
pub enum State {
    /// A usable credential.
    Ok,
    /// Usable, but it expires within the hour.
    Expiring,
    /// The only credentials found have expired.
    Expired,
    /// Nothing found (see the sources' problems, if any).
    Missing,
}

/// What AnyCode knows of one provider's credential. Never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProviderStatus {
    /// The provider.
    pub provider: Provider,
    /// The state of the credential that would be used.
    pub state: State,
    /// The source that wins (first found, skipping expired ones while a later one
    /// is usable).
    pub source: Option<SourceKind>,
    /// Its location (see [`SourceCheck::location`]).
    pub location: Option<String>,
    /// The subscription type of a Claude login (`pro`, `max`, …).
    pub subscription_type: Option<String>,
    /// When the access token expires, epoch milliseconds (Claude Code logins only).
    pub expires_at: Option<i64>,
    /// `sk-…abcd` for keys the user typed (keyring entries, environment); `None`
    /// for Claude Code's OAuth login.
    pub display: Option<String>,
    /// What to do: how to add one when missing, how to refresh one that expired or
    /// expires soon, how to fix a broken source.
    pub hint: Option<String>,
    /// Every source looked at, in order.
    pub sources: Vec<SourceCheck>,
}

/// The status of every provider ([`status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = CredentialsStatus)]
pub struct Status {
    /// One entry per [`Provider::ALL`], in that order.
    pub providers: Vec<ProviderStatus>,
    /// The keyring service AnyCode's entries live under, `None` when turned off.
    pub keyring_service: Option<String>,
    /// Why the keyring could not be read, with a hint; `None` when it answered.
    pub keyring_problem: Option<String>,
}

impl Status {
    /// One provider's status.
    pub fn provider(&self, p: Provider) -> Option<&ProviderStatus> {
        self.providers.iter().find(|s| s.provider == p)
    }
}

/// A credential ready to hand over, with its report.
#[derive(Debug, Clone)]
pub struct Found {
    /// The status (no secret in it).
    pub status: ProviderStatus,
    /// The secret when the state is `Ok` or `Expiring`. Expired credentials are
    /// never handed over.
    pub secret: Option<Secret>,
}

/// The current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// "in 40 min", "in 7 h", "2 h ago"… for expiries.
pub fn relative(at_ms: i64, now_ms: i64) -> String {
    let d = at_ms - now_ms;
    let mins = d.abs() / 60_000;
    let text = if mins < 1 {
        "less than a minute".to_string()
    } else if mins < 120 {
        format!("{mins} min")
    } else if mins < 48 * 60 {
        format!("{} h", (mins + 30) / 60)
    } else {
        format!("{} days", (mins + 12 * 60) / (24 * 60))
    };
    if d >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

struct Candidate {
    check: SourceCheck,
    secret: Option<Secret>,
    expires_at: Option<i64>,
    subscription_type: Option<String>,
    typed: bool,
    had_refresh_token: bool,
}

fn keyring_location(service: &str, name: Name) -> String {
    format!("keyring {service}/{}", name.account())
}

/// One keyring entry as read: `None` when not looked at (the keyring is off),
/// `Some(Ok(None))` when absent, `Some(Err(why))` when it could not be read.
type KeyringEntry = Option<std::result::Result<Option<Secret>, String>>;

/// Reads the keyring entries of `providers` (plus Claude Code's Keychain entry on
/// macOS when Claude is among them) in one bounded batch.
fn read_keyring(sources: &Sources, providers: &[Provider]) -> (Vec<KeyringEntry>, Option<String>) {
    let Some(service) = &sources.keyring_service else {
        return (providers.iter().map(|_| None).collect(), None);
    };
    let mut entries: Vec<(String, String)> = providers.iter().map(|p| (service.clone(), p.name().account().to_string())).collect();
    if cfg!(target_os = "macos") && providers.contains(&Provider::Claude) {
        entries.push((claude::keychain_service(sources.claude_config_dir.as_deref()), claude::keychain_account()));
    }
    match keyring::get_many(&entries, sources.keyring_timeout) {
        Ok(results) => {
            let mut problem = None;
            let mut out = Vec::new();
            for i in 0..entries.len() {
                out.push(Some(match results.get(i) {
                    Some(Ok(v)) => Ok(v.clone()),
                    Some(Err(e)) => {
                        let msg = format!("{e}; {}", e.hint());
                        problem.get_or_insert(msg.clone());
                        Err(msg)
                    }
                    // The batch stopped early: the keyring is not there.
                    None => Err(problem.clone().unwrap_or_else(|| "not read".into())),
                }));
            }
            (out, problem)
        }
        Err(e) => {
            let msg = format!("{e}; {}", e.hint());
            (entries.iter().map(|_| Some(Err(msg.clone()))).collect(), Some(msg))
        }
    }
}

fn candidates(sources: &Sources, p: Provider, keyring_entry: KeyringEntry, keychain_entry: KeyringEntry) -> Vec<Candidate> {
    let mut out = Vec::new();
    let blank = |kind, location: String| Candidate {
        check: SourceCheck { kind, location, found: false, problem: None },
        secret: None,
        expires_at: None,
        subscription_type: None,
        typed: true,
        had_refresh_token: false,
    };
    // 1. AnyCode's own keyring entry.
    if let (Some(service), Some(entry)) = (&sources.keyring_service, keyring_entry) {
        let mut c = blank(SourceKind::Keyring, keyring_location(service, p.name()));
        match entry {
            Ok(Some(s)) if s.expose().trim().is_empty() => c.check.problem = Some("the saved value is empty: save it again".into()),
            Ok(Some(s)) => {
                c.check.found = true;
                c.secret = Some(s);
            }
            Ok(None) => {}
            Err(msg) => c.check.problem = Some(msg),
        }
        out.push(c);
    }
    // 2. Claude Code's login.
    if p == Provider::Claude {
        if let Some(entry) = keychain_entry {
            let location = format!("macOS Keychain \"{}\"", claude::keychain_service(sources.claude_config_dir.as_deref()));
            let mut c = blank(SourceKind::ClaudeKeychain, location);
            c.typed = false;
            match entry {
                Ok(Some(text)) => login_into(&mut c, claude::parse_login(text.expose()), "the Keychain entry", "log in again with `claude` on this machine (/login)"),
                Ok(None) => {}
                Err(msg) => c.check.problem = Some(msg),
            }
            out.push(c);
        }
        let path = sources.claude_credentials_file();
        let mut c = blank(SourceKind::ClaudeFile, path.display().to_string());
        c.typed = false;
        match claude::read_file(&path) {
            Ok(Some(mut text)) => {
                let parsed = claude::parse_login(&text);
                zeroize::Zeroize::zeroize(&mut text);
                login_into(&mut c, parsed, "the file", "run `claude` on this machine and log in again (/login): it rewrites the file");
                if c.check.found {
                    if let Some(mode) = claude::readable_by_others(&path) {
                        c.check.problem = Some(format!("the file can be read by other users (mode {mode:o}): chmod 600 {}", path.display()));
                    }
                }
            }
            Ok(None) => {}
            Err(e) => c.check.problem = Some(format!("cannot read it: {e}")),
        }
        out.push(c);
    }
    // 3. The environment.
    if p.reads_env() {
        let var = p.env_var();
        let mut c = blank(SourceKind::Env, format!("${var}"));
        if let Some((_, v)) = sources.env.iter().find(|(k, _)| k == var) {
            if v.expose().trim().is_empty() {
                c.check.problem = Some("is empty".into());
            } else {
                c.check.found = true;
                c.secret = Some(v.clone());
            }
        }
        out.push(c);
    }
    out
}

fn login_into(c: &mut Candidate, parsed: std::result::Result<claude::ClaudeLogin, claude::LoginProblem>, what: &str, fix: &str) {
    match parsed {
        Ok(login) => {
            c.check.found = true;
            c.expires_at = login.expires_at;
            c.subscription_type = login.subscription_type;
            c.had_refresh_token = login.had_refresh_token;
            c.secret = Some(login.access_token);
        }
        Err(p) => c.check.problem = Some(format!("{what} {p}: {fix}")),
    }
}

fn evaluate(p: Provider, mut cands: Vec<Candidate>, now: i64) -> Found {
    let expired = |c: &Candidate| c.expires_at.is_some_and(|e| e <= now);
    for c in cands.iter_mut() {
        if c.check.found && expired(c) && c.check.problem.is_none() {
            c.check.problem = Some(format!("expired {}", relative(c.expires_at.unwrap_or(now), now)));
        }
    }
    let winner = cands.iter().position(|c| c.check.found && !expired(c)).or_else(|| cands.iter().position(|c| c.check.found));
    let sources: Vec<SourceCheck> = cands.iter().map(|c| c.check.clone()).collect();
    let Some(i) = winner else {
        let broken: Vec<String> = cands.iter().filter_map(|c| c.check.problem.as_ref().map(|pr| format!("{}: {pr}", c.check.location))).collect();
        let hint = if broken.is_empty() { p.missing_hint().to_string() } else { format!("{}; or {}", broken.join("; "), p.missing_hint()) };
        return Found {
            status: ProviderStatus {
                provider: p,
                state: State::Missing,
                source: None,
                location: None,
                subscription_type: None,
                expires_at: None,
                display: None,
                hint: Some(hint),
                sources,
            },
            secret: None,
        };
    };
    let c = cands.swap_remove(i);
    let refresh = "run `claude` on this machine once (it refreshes its login), then restart the task";
    let (state, hint) = match c.expires_at {
        Some(e) if e <= now => {
            let extra = if c.had_refresh_token { "" } else { " (this login has no refresh token: log in again with /login)" };
            (State::Expired, Some(format!("the login expired {}: {refresh}{extra}", relative(e, now))))
        }
        Some(e) if e - now < EXPIRY_WARNING_MS => (State::Expiring, Some(format!("the access token expires {}: {refresh}", relative(e, now)))),
        _ => (State::Ok, c.check.problem.clone()),
    };
    let display = if c.typed { c.secret.as_ref().map(Secret::display_form) } else { None };
    let secret = if state == State::Expired { None } else { c.secret };
    Found {
        status: ProviderStatus {
            provider: p,
            state,
            source: Some(c.check.kind),
            location: Some(c.check.location.clone()),
            subscription_type: c.subscription_type,
            expires_at: c.expires_at,
            display,
            hint,
            sources,
        },
        secret,
    }
}

/// Looks up every provider (one bounded keyring batch) and reports where each
/// stands, at time `now` (epoch ms). Never fails: every problem is part of the status.
pub fn status(sources: &Sources, now: i64) -> Status {
    let (mut entries, keyring_problem) = read_keyring(sources, &Provider::ALL);
    let keychain = if entries.len() > Provider::ALL.len() { entries.pop().flatten() } else { None };
    let providers = Provider::ALL
        .into_iter()
        .zip(entries)
        .map(|(p, entry)| {
            let kc = if p == Provider::Claude { keychain.clone() } else { None };
            evaluate(p, candidates(sources, p, entry, kc), now).status
        })
        .collect();
    Status { providers, keyring_service: sources.keyring_service.clone(), keyring_problem }
}

/// Looks up one provider's credential to hand to an agent, at time `now` (epoch ms).
/// Never fails: a missing, broken or expired credential is a `Found` without a
/// secret whose status says why.
pub fn lookup(sources: &Sources, p: Provider, now: i64) -> Found {
    let (mut entries, _) = read_keyring(sources, &[p]);
    let keychain = if entries.len() > 1 { entries.pop().flatten() } else { None };
    let entry = entries.pop().flatten();
    evaluate(p, candidates(sources, p, entry, keychain), now)
}

/// Checks a value before saving it under `name`: trimmed, not empty, no spaces or
/// control characters inside, at most [`MAX_VALUE`] bytes, and not obviously the
/// other kind of Anthropic credential.
///
/// Errors: [`Error::InvalidValue`] saying what is wrong (never quoting the value).
pub fn validate(name: Name, value: &Secret) -> Result<Secret> {
    let v = value.expose().trim();
    if v.is_empty() {
        return Err(Error::InvalidValue(format!("the value for {name} is empty")));
    }
    if v.len() > MAX_VALUE {
        return Err(Error::InvalidValue(format!("the value for {name} is longer than {MAX_VALUE} bytes: is it really a key or token?")));
    }
    if v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidValue(format!("the value for {name} contains spaces or control characters: paste the key or token alone")));
    }
    match name {
        Name::AnthropicApiKey if v.starts_with("sk-ant-oat") => {
            return Err(Error::InvalidValue("this is a Claude OAuth token (sk-ant-oat…), not an API key: save it as claude-token".into()));
        }
        Name::ClaudeToken if v.starts_with("sk-ant-api") => {
            return Err(Error::InvalidValue("this is an Anthropic API key (sk-ant-api…), not a Claude token: save it as anthropic-api-key".into()));
        }
        _ => {}
    }
    Ok(Secret::new(v))
}

/// Saves `value` as AnyCode's keyring entry `name` (after [`validate`]), replacing
/// any earlier one. Returns the value's display form (`sk-…abcd`).
///
/// Errors: [`Error::InvalidValue`], [`Error::KeyringDisabled`], [`Error::Keyring`].
pub fn save(sources: &Sources, name: Name, value: &Secret) -> Result<String> {
    let v = validate(name, value)?;
    let service = sources.keyring_service.as_deref().ok_or(Error::KeyringDisabled)?;
    keyring::set(service, name.account(), &v, sources.keyring_timeout)?;
    tracing::info!(credential = %name, "saved a credential in the OS keyring");
    Ok(v.display_form())
}

/// Removes AnyCode's keyring entry `name`. Returns whether it existed.
///
/// Errors: [`Error::KeyringDisabled`], [`Error::Keyring`].
pub fn remove(sources: &Sources, name: Name) -> Result<bool> {
    let service = sources.keyring_service.as_deref().ok_or(Error::KeyringDisabled)?;
    let existed = keyring::delete(service, name.account(), sources.keyring_timeout)?;
    tracing::info!(credential = %name, existed, "removed a credential from the OS keyring");
    Ok(existed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(dir: &std::path::Path, env: &[(&str, &str)]) -> Sources {
        Sources {
            keyring_service: None,
            claude_config_dir: Some(dir.to_path_buf()),
            env: env.iter().map(|(k, v)| (k.to_string(), Secret::new(*v))).collect(),
            keyring_timeout: Duration::from_secs(2),
        }
    }

    fn write_login(dir: &std::path::Path, access: &str, expires_at: i64) {
        let text = format!(
            r#"{{"claudeAiOauth":{{"accessToken":"{access}","refreshToken":"sk-ant-ort01-REFRESH","expiresAt":{expires_at},"scopes":["user:inference"],"subscriptionType":"max"}}}}"#
        );
        let path = dir.join(".credentials.json");
        std::fs::write(&path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn claude_login_file_is_found_with_its_subscription_and_expiry() {
        let d = tempfile::tempdir().unwrap();
        write_login(d.path(), "sk-ant-oat01-FILE-TOKEN", NOW + 8 * 3_600_000);
        let f = lookup(&sources(d.path(), &[]), Provider::Claude, NOW);
        assert_eq!(f.status.state, State::Ok);
        assert_eq!(f.status.source, Some(SourceKind::ClaudeFile));
        assert_eq!(f.status.subscription_type.as_deref(), Some("max"));
        assert_eq!(f.status.expires_at, Some(NOW + 8 * 3_600_000));
        assert_eq!(f.status.display, None, "no display form for Claude Code's own login");
        assert_eq!(f.secret.unwrap().expose(), "sk-ant-oat01-FILE-TOKEN");
        let json = serde_json::to_string(&status(&sources(d.path(), &[]), NOW)).unwrap();
        assert!(!json.contains("FILE-TOKEN") && !json.contains("REFRESH"), "{json}");
    }

    #[test]
    fn missing_everything_gives_hints() {
        let d = tempfile::tempdir().unwrap();
        let s = status(&sources(d.path(), &[]), NOW);
        assert_eq!(s.providers.len(), 5);
        for p in &s.providers {
            assert_eq!(p.state, State::Missing, "{p:?}");
            assert!(p.hint.as_deref().unwrap().contains("anycode credentials set"), "{p:?}");
        }
        assert!(s.provider(Provider::Claude).unwrap().sources.iter().any(|c| c.kind == SourceKind::ClaudeFile && !c.found && c.problem.is_none()));
    }

    #[test]
    fn expiring_and_expired() {
        let d = tempfile::tempdir().unwrap();
        write_login(d.path(), "sk-ant-oat01-SOON", NOW + 40 * 60_000);
        let f = lookup(&sources(d.path(), &[]), Provider::Claude, NOW);
        assert_eq!(f.status.state, State::Expiring);
        assert!(f.status.hint.as_deref().unwrap().contains("in 40 min"), "{:?}", f.status.hint);
        assert!(f.secret.is_some(), "an expiring token is still handed over");

        write_login(d.path(), "sk-ant-oat01-OLD", NOW - 2 * 3_600_000);
        let f = lookup(&sources(d.path(), &[]), Provider::Claude, NOW);
        assert_eq!(f.status.state, State::Expired);
        assert!(f.secret.is_none(), "an expired token is never handed over");
        assert!(f.status.hint.as_deref().unwrap().contains("run `claude`"), "{:?}", f.status.hint);

        // A usable later source wins over an expired earlier one.
        let f = lookup(&sources(d.path(), &[("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-ENV-LONG-LIVED")]), Provider::Claude, NOW);
        assert_eq!(f.status.state, State::Ok);
        assert_eq!(f.status.source, Some(SourceKind::Env));
        assert_eq!(f.status.display.as_deref(), Some("sk-…IVED"));
        assert!(f.status.sources.iter().any(|c| c.kind == SourceKind::ClaudeFile && c.problem.as_deref().unwrap_or("").contains("expired")));
    }

    #[test]
    fn malformed_file_is_a_status_with_a_hint() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(".credentials.json"), "{\"claudeAiOauth\": {\"accessToken\": \"sk-ant-oat01-TRUNC").unwrap();
        let f = lookup(&sources(d.path(), &[]), Provider::Claude, NOW);
        assert_eq!(f.status.state, State::Missing);
        let hint = f.status.hint.unwrap();
        assert!(hint.contains("truncated") && hint.contains("/login"), "{hint}");
        assert!(!hint.contains("TRUNC"));
    }

    #[cfg(unix)]
    #[test]
    fn a_file_readable_by_others_is_flagged() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        write_login(d.path(), "sk-ant-oat01-X", NOW + 8 * 3_600_000);
        std::fs::set_permissions(d.path().join(".credentials.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let f = lookup(&sources(d.path(), &[]), Provider::Claude, NOW);
        assert_eq!(f.status.state, State::Ok);
        assert!(f.status.hint.unwrap().contains("chmod 600"));
    }

    #[test]
    fn env_keys_and_empty_values() {
        let d = tempfile::tempdir().unwrap();
        let s = status(&sources(d.path(), &[("ANTHROPIC_API_KEY", "sk-ant-api03-abcdefghijklmnop1234"), ("OPENAI_API_KEY", "  ")]), NOW);
        let a = s.provider(Provider::Anthropic).unwrap();
        assert_eq!((a.state, a.source, a.display.as_deref()), (State::Ok, Some(SourceKind::Env), Some("sk-…1234")));
        let o = s.provider(Provider::Openai).unwrap();
        assert_eq!(o.state, State::Missing);
        assert!(o.hint.as_deref().unwrap().contains("is empty"), "{o:?}");
        assert!(!serde_json::to_string(&s).unwrap().contains("abcdefghijkl"));
    }

    #[test]
    fn validation() {
        let ok = validate(Name::AnthropicApiKey, &Secret::new("  sk-ant-api03-xyz\n")).unwrap();
        assert_eq!(ok.expose(), "sk-ant-api03-xyz", "trimmed");
        for (name, v) in [
            (Name::AnthropicApiKey, ""),
            (Name::AnthropicApiKey, " \n"),
            (Name::AnthropicApiKey, "sk-ant api"),
            (Name::AnthropicApiKey, "sk-ant-oat01-token"),
            (Name::ClaudeToken, "sk-ant-api03-key"),
        ] {
            let e = validate(name, &Secret::new(v)).unwrap_err();
            assert!(matches!(e, Error::InvalidValue(_)), "{e}");
        }
        assert!(validate(Name::GithubToken, &Secret::new("x".repeat(MAX_VALUE + 1))).is_err());
        assert!("nope".parse::<Name>().is_err());
        assert_eq!("claude-token".parse::<Name>().unwrap(), Name::ClaudeToken);
    }

    #[test]
    fn keyring_turned_off() {
        let d = tempfile::tempdir().unwrap();
        let e = save(&sources(d.path(), &[]), Name::ClaudeToken, &Secret::new("sk-ant-oat01-x")).unwrap_err();
        assert!(matches!(e, Error::KeyringDisabled));
    }

    #[test]
    fn relative_times() {
        assert_eq!(relative(NOW + 40 * 60_000, NOW), "in 40 min");
        assert_eq!(relative(NOW + 7 * 3_600_000, NOW), "in 7 h");
        assert_eq!(relative(NOW - 3 * 86_400_000, NOW), "3 days ago");
    }
}
