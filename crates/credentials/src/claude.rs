//! Claude Code's own login: the credentials file (Linux, Windows, and macOS's
//! fallback) and the macOS Keychain entry, both holding
//! `{"claudeAiOauth": {"accessToken", "refreshToken", "expiresAt", "scopes", "subscriptionType"}}`.
//!
//! The refresh token is parsed only to be dropped: Claude refresh tokens are
//! single-use, so any second refresher would revoke the user's login on the host.
//! The host's Claude Code stays the only one that refreshes.

use crate::Secret;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use zeroize::Zeroize;

/// The file name of Claude Code's credentials in its config dir.
pub const CREDENTIALS_FILE: &str = ".credentials.json";

/// Claude Code's subscription login, without its refresh token.
#[derive(Debug, Clone)]
pub struct ClaudeLogin {
    /// The OAuth access token (`sk-ant-oat01-…`), what `CLAUDE_CODE_OAUTH_TOKEN` takes.
    pub access_token: Secret,
    /// When the access token expires, epoch milliseconds (`expiresAt`).
    pub expires_at: Option<i64>,
    /// OAuth scopes, e.g. `user:inference`.
    pub scopes: Vec<String>,
    /// `pro`, `max`, `team`, `enterprise`… as Claude Code recorded it.
    pub subscription_type: Option<String>,
    /// Whether the login had a refresh token (which was dropped). A login without
    /// one cannot be refreshed by the host's Claude Code either.
    pub had_refresh_token: bool,
}

/// Why a credentials file or Keychain entry could not be used. The messages never
/// quote the content (parser messages can echo the values they choke on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginProblem {
    /// The text ends in the middle of the JSON.
    #[error("is truncated (the JSON ends early)")]
    Truncated,
    /// Not JSON at all, or broken JSON.
    #[error("is not valid JSON (line {line}, column {column})")]
    NotJson {
        /// 1-based line of the first error.
        line: usize,
        /// 1-based column of the first error.
        column: usize,
    },
    /// JSON without a `claudeAiOauth` object (e.g. only MCP logins).
    #[error("holds no Claude login (no claudeAiOauth object)")]
    NoLogin,
    /// `claudeAiOauth` is there but its `accessToken` is missing, empty or not a string.
    #[error("has no access token")]
    NoAccessToken,
    /// The file is empty.
    #[error("is empty")]
    Empty,
}

#[derive(Deserialize)]
struct OAuth {
    #[serde(rename = "accessToken")]
    access_token: Option<Secret>,
    // Parsed only to know it was there: IgnoredAny keeps no copy of the value.
    #[serde(rename = "refreshToken")]
    refresh_token: Option<IgnoredAny>,
    #[serde(rename = "expiresAt")]
    expires_at: Option<Value>,
    scopes: Option<Value>,
    #[serde(rename = "subscriptionType")]
    subscription_type: Option<Value>,
}

/// Parses the text of a credentials file or Keychain entry. Extra fields are
/// ignored; `expiresAt` may be a number or a numeric string.
///
/// Errors: a [`LoginProblem`] saying what is wrong, without quoting the text.
pub fn parse_login(text: &str) -> Result<ClaudeLogin, LoginProblem> {
    if text.trim().is_empty() {
        return Err(LoginProblem::Empty);
    }
    let mut doc: Value = serde_json::from_str(text).map_err(json_problem)?;
    let taken = doc.as_object_mut().and_then(|o| o.remove("claudeAiOauth"));
    // Everything else (other logins, e.g. MCP servers') is wiped unread.
    wipe(&mut doc);
    let mut oauth = match taken {
        Some(v) if v.is_object() => v,
        Some(mut other) => {
            wipe(&mut other);
            return Err(LoginProblem::NoLogin);
        }
        None => return Err(LoginProblem::NoLogin),
    };
    // The refresh token is in this Value: take it out and wipe it before anything else.
    if let Some(Value::String(s)) = oauth.get_mut("refreshToken") {
        s.zeroize();
    }
    let parsed = OAuth::deserialize(&oauth);
    wipe(&mut oauth);
    let oauth = parsed.map_err(|_| LoginProblem::NoAccessToken)?;
    let access_token = oauth.access_token.filter(|t| !t.expose().trim().is_empty()).ok_or(LoginProblem::NoAccessToken)?;
    let expires_at = oauth.expires_at.and_then(|v| match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    });
    let scopes = match oauth.scopes {
        Some(Value::Array(a)) => a.into_iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    };
    let subscription_type = oauth.subscription_type.and_then(|v| v.as_str().map(str::to_string)).filter(|s| !s.is_empty());
    Ok(ClaudeLogin { access_token, expires_at, scopes, subscription_type, had_refresh_token: oauth.refresh_token.is_some() })
}

fn wipe(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(a) => a.iter_mut().for_each(wipe),
        Value::Object(o) => o.values_mut().for_each(wipe),
        _ => {}
    }
}

fn json_problem(e: serde_json::Error) -> LoginProblem {
    match e.classify() {
        serde_json::error::Category::Eof => LoginProblem::Truncated,
        _ => LoginProblem::NotJson { line: e.line(), column: e.column() },
    }
}

/// Claude Code's config dir: `CLAUDE_CONFIG_DIR` when given, else `~/.claude`.
pub fn config_dir(custom: Option<&Path>) -> PathBuf {
    match custom {
        Some(p) => p.to_path_buf(),
        None => dirs::home_dir().unwrap_or_default().join(".claude"),
    }
}

/// The macOS Keychain service under which Claude Code keeps its login:
/// `Claude Code-credentials`, or with `CLAUDE_CONFIG_DIR` set,
/// `Claude Code-credentials-<first 8 hex digits of the sha256 of that dir>`
/// (Claude Code derives the suffix this way, so two config dirs keep two logins).
pub fn keychain_service(custom_config_dir: Option<&Path>) -> String {
    match custom_config_dir {
        None => "Claude Code-credentials".to_string(),
        Some(dir) => {
            let digest = Sha256::digest(dir.to_string_lossy().as_bytes());
            format!("Claude Code-credentials-{}", &hex::encode(digest)[..8])
        }
    }
}

/// The Keychain account Claude Code uses: the user name (`$USER`), or
/// `claude-code-user` when it has characters outside `[A-Za-z0-9._-]`.
pub fn keychain_account() -> String {
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_default();
    if !user.is_empty() && user.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        user
    } else {
        "claude-code-user".to_string()
    }
}

/// Reads a credentials file's text. `Ok(None)` when it does not exist. The caller
/// wipes the text once parsed.
pub(crate) fn read_file(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                let mut b = e.into_bytes();
                b.zeroize();
                Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a credentials file can be read by other users (group or world bits).
#[cfg(unix)]
pub(crate) fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

#[cfg(not(unix))]
pub(crate) fn readable_by_others(_path: &Path) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCESS: &str = "sk-ant-oat01-ACCESS-TOKEN-FOR-TESTS-ONLY";
    const REFRESH: &str = "sk-ant-ort01-REFRESH-TOKEN-FOR-TESTS-ONLY";

    fn valid() -> String {
        format!(
            r#"{{"claudeAiOauth":{{"accessToken":"{ACCESS}","refreshToken":"{REFRESH}","expiresAt":1893456000000,"scopes":["user:inference","user:profile"],"subscriptionType":"max"}}}}"#
        )
    }

    #[test]
    fn valid_login() {
        let l = parse_login(&valid()).unwrap();
        assert_eq!(l.access_token.expose(), ACCESS);
        assert_eq!(l.expires_at, Some(1_893_456_000_000));
        assert_eq!(l.scopes, vec!["user:inference", "user:profile"]);
        assert_eq!(l.subscription_type.as_deref(), Some("max"));
        assert!(l.had_refresh_token);
        // Nothing of what is kept can show the refresh token.
        assert!(!format!("{l:?}").contains("REFRESH"));
        assert!(!format!("{l:?}").contains("ACCESS-TOKEN"));
    }

    #[test]
    fn extra_fields_are_ignored() {
        let text = format!(
            r#"{{"mcpOAuth":{{"x":{{"accessToken":"other"}}}},"claudeAiOauth":{{"accessToken":"{ACCESS}","expiresAt":"1893456000000","rateLimitTier":"default_claude_max_20x","isMax":true,"scopes":"user:inference user:profile","subscriptionType":"pro"}},"future":[1,2,3]}}"#
        );
        let l = parse_login(&text).unwrap();
        assert_eq!(l.access_token.expose(), ACCESS);
        assert_eq!(l.expires_at, Some(1_893_456_000_000), "a numeric string is read too");
        assert_eq!(l.scopes.len(), 2);
        assert_eq!(l.subscription_type.as_deref(), Some("pro"));
    }

    #[test]
    fn no_refresh_token() {
        let l = parse_login(&format!(r#"{{"claudeAiOauth":{{"accessToken":"{ACCESS}","expiresAt":1}}}}"#)).unwrap();
        assert!(!l.had_refresh_token);
        assert_eq!(l.expires_at, Some(1));
        assert_eq!(l.subscription_type, None);
    }

    #[test]
    fn malformed_and_truncated() {
        let full = valid();
        let truncated = &full[..full.len() / 2];
        assert_eq!(parse_login(truncated).unwrap_err(), LoginProblem::Truncated);
        let err = parse_login("{\"claudeAiOauth\": {\"accessToken\": sk-ant-oat01-unquoted}}").unwrap_err();
        assert!(matches!(err, LoginProblem::NotJson { line: 1, .. }), "{err:?}");
        assert!(!err.to_string().contains("sk-ant"), "the message does not quote the text: {err}");
        assert_eq!(parse_login("").unwrap_err(), LoginProblem::Empty);
        assert_eq!(parse_login("  \n").unwrap_err(), LoginProblem::Empty);
    }

    #[test]
    fn keychain_entry_that_is_not_json() {
        // What a broken or foreign Keychain entry could hold: plain text, or hex.
        let err = parse_login("sk-ant-oat01-plain-token-not-json").unwrap_err();
        assert!(matches!(err, LoginProblem::NotJson { .. }), "{err:?}");
        assert!(!err.to_string().contains("plain-token"));
        let err = parse_login("7b22636c61756465416922").unwrap_err();
        assert!(matches!(err, LoginProblem::NoLogin | LoginProblem::NotJson { .. }), "{err:?}");
    }

    #[test]
    fn wrong_shapes() {
        // A login object whose values are not what they should be; the error must
        // not echo the token (serde's messages would).
        let err = parse_login(&format!(r#"{{"claudeAiOauth":"{ACCESS}"}}"#)).unwrap_err();
        assert_eq!(err, LoginProblem::NoLogin);
        assert_eq!(parse_login(r#"{"claudeAiOauth":{"accessToken":""}}"#).unwrap_err(), LoginProblem::NoAccessToken);
        assert_eq!(parse_login(r#"{"claudeAiOauth":{"accessToken":42}}"#).unwrap_err(), LoginProblem::NoAccessToken);
        assert_eq!(parse_login(r#"{"claudeAiOauth":{}}"#).unwrap_err(), LoginProblem::NoAccessToken);
        assert_eq!(parse_login(r#"{"other":{}}"#).unwrap_err(), LoginProblem::NoLogin);
        assert_eq!(parse_login(r#"[1,2]"#).unwrap_err(), LoginProblem::NoLogin);
        assert_eq!(parse_login(r#"null"#).unwrap_err(), LoginProblem::NoLogin);
    }

    #[test]
    fn keychain_service_names() {
        assert_eq!(keychain_service(None), "Claude Code-credentials");
        let s = keychain_service(Some(Path::new("/Users/me/.claude-work")));
        assert!(s.starts_with("Claude Code-credentials-"));
        assert_eq!(s.len(), "Claude Code-credentials-".len() + 8);
        assert_ne!(s, keychain_service(Some(Path::new("/Users/me/.claude-home"))));
    }
}
