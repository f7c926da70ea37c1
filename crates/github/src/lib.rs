//! AnyCode's GitHub layer.
//!
//! - [`Secret`]: a token that never shows itself (`Debug`/`Display` print
//!   `<redacted>`, no `Serialize`); [`Secret::expose`] is the one way to read it.
//!   It is `anycode_credentials::Secret`, re-exported: AnyCode has one secret type.
//! - [`token`]: where the token comes from — the OS keyring (service `anycode`,
//!   account `github-token`), else `GITHUB_TOKEN`, else `gh auth token` — and saving
//!   and removing it. Keyring calls go through `anycode_credentials::keyring` (the
//!   one keyring layer): blocking, each on its own thread with a timeout (a missing
//!   Secret Service must not hang AnyCode).
//! - [`RepoRef`]: `owner/name`, parsed from what users type (`owner/name`, a web
//!   URL) and from remote URLs (their last two path segments, so GitHub Enterprise
//!   hosts and SSH remotes work).
//! - [`Client`]: the REST API through octocrab at a configurable base URL
//!   (`ANYCODE_GITHUB_API`, default `https://api.github.com/`): the user's
//!   repositories, a repository, pull requests (create — returning the existing one
//!   when GitHub says there is one —, find, status with checks and reviews, merge),
//!   branch deletion. Every GET is conditional (ETags), and rate limits become
//!   [`Error::RateLimited`] with the time to wait.
//!
//! Nothing here writes the token anywhere but the OS keyring.

mod client;
pub mod token;

pub use client::{CheckState, Client, Issue, MergeMethod, MergeResult, NewPull, Pull, PullStatus, RepoMeta, ReviewState};

use std::fmt;

/// The default API base URL.
pub const DEFAULT_API: &str = "https://api.github.com/";

/// A secret string (a token): AnyCode's one secret type, see
/// [`anycode_credentials::Secret`]. Tokens users paste and programs print are
/// wrapped with [`Secret::trimmed`].
pub use anycode_credentials::Secret;

/// Errors of the GitHub layer. Messages are sentences a user can act on; none
/// contains the token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No token from any source, and the call needs one.
    #[error("no GitHub token: save one in AnyCode (Settings, or `anycode github login --token-stdin`), set GITHUB_TOKEN, or log in with `gh auth login`")]
    NoToken,
    /// GitHub refused the token (401 `Bad credentials`).
    #[error("GitHub refused the token ({0}): it may be revoked or expired; save a new one")]
    BadCredentials(String),
    /// GitHub forbids this to the token (403, not a rate limit).
    #[error("GitHub refused the request: {0}")]
    Forbidden(String),
    /// GitHub's rate limit; `retry_after` is the wait in seconds when GitHub said.
    #[error("GitHub's rate limit was hit{}: {message}", .retry_after.map(|s| format!(" (retry in {s} s)")).unwrap_or_default())]
    RateLimited {
        /// Seconds to wait before trying again.
        retry_after: Option<u64>,
        /// GitHub's message.
        message: String,
    },
    /// 404: the repository or pull request does not exist, or the token cannot see it.
    #[error("{0} was not found on GitHub (a private repository needs a token with access to it)")]
    NotFound(String),
    /// GitHub will not merge the pull request (405 not mergeable, 409 head moved).
    #[error("GitHub refused to merge: {0}")]
    MergeRefused(String),
    /// 422: GitHub rejected the input.
    #[error("GitHub rejected the request: {0}")]
    Validation(String),
    /// The API could not be reached.
    #[error("GitHub's API at {url} is unreachable: {detail}")]
    Unreachable {
        /// The base URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// Another answer GitHub gave.
    #[error("GitHub answered {status}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// The OS keyring failed, is missing or is turned off; the message says which.
    #[error("{0}; set GITHUB_TOKEN instead")]
    Keyring(String),
    /// Bad input (a repository spec, a base URL).
    #[error("{0}")]
    Invalid(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

/// A repository on GitHub: `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RepoRef {
    /// User or organisation.
    pub owner: String,
    /// Repository name, without `.git`.
    pub name: String,
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

fn valid_segment(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl RepoRef {
    /// `owner/name` from a remote URL's last two path segments (`.git` dropped):
    /// `https://github.com/o/n.git`, `https://ghe.example/o/n`, `git@github.com:o/n.git`,
    /// `ssh://git@host:22/o/n.git`. `None` when there are not two plain segments.
    pub fn from_remote_url(url: &str) -> Option<RepoRef> {
        let url = url.trim().trim_end_matches('/');
        let path = if let Some((_, rest)) = url.split_once("://") {
            rest.split_once('/').map(|(_, p)| p)?
        } else {
            url.rsplit_once(':').map(|(_, p)| p).unwrap_or(url)
        };
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let mut segs = path.rsplit('/').filter(|s| !s.is_empty());
        let name = segs.next()?;
        let owner = segs.next()?;
        let name = name.strip_suffix(".git").unwrap_or(name);
        (valid_segment(owner) && valid_segment(name)).then(|| RepoRef { owner: owner.to_string(), name: name.to_string() })
    }

    /// What a user typed to import a repository: `owner/name` or a URL. Returns the
    /// repository and, for a URL, that URL (cloned as given).
    ///
    /// Errors: [`Error::Invalid`] with what is expected.
    pub fn parse_spec(spec: &str) -> Result<(RepoRef, Option<String>)> {
        let spec = spec.trim();
        let bad = || Error::Invalid(format!("{spec:?} is not a GitHub repository: give owner/name or its URL (https://github.com/owner/name)"));
        if spec.contains("://") || spec.starts_with("git@") {
            if !(spec.starts_with("https://") || spec.starts_with("http://") || spec.starts_with("git@") || spec.starts_with("ssh://")) {
                return Err(bad());
            }
            let r = RepoRef::from_remote_url(spec).ok_or_else(bad)?;
            return Ok((r, Some(spec.to_string())));
        }
        let mut parts = spec.split('/');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(o), Some(n), None) if valid_segment(o) && valid_segment(n.trim_end_matches(".git")) => {
                Ok((RepoRef { owner: o.to_string(), name: n.trim_end_matches(".git").to_string() }, None))
            }
            _ => Err(bad()),
        }
    }
}

/// The API base URL: `ANYCODE_GITHUB_API` when set, else [`DEFAULT_API`]; always
/// ending in `/`.
pub fn api_base_from_env() -> String {
    let v = std::env::var("ANYCODE_GITHUB_API").ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let mut v = v.unwrap_or_else(|| DEFAULT_API.to_string());
    if !v.ends_with('/') {
        v.push('/');
    }
    v
}

/// The web (and git) host that goes with an API base URL: `https://api.github.com/`
/// → `https://github.com/`; GitHub Enterprise's `https://ghe.example/api/v3/` →
/// `https://ghe.example/`.
pub fn web_base(api_base: &str) -> String {
    let trimmed = api_base.trim_end_matches('/');
    if let Some(rest) = trimmed.strip_suffix("/api/v3") {
        return format!("{rest}/");
    }
    if let Some((scheme, host)) = trimmed.split_once("://") {
        let host = host.strip_prefix("api.").unwrap_or(host);
        return format!("{scheme}://{host}/");
    }
    format!("{trimmed}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::trimmed(" ghp_abc\n".to_string());
        assert_eq!(s.expose(), "ghp_abc");
        assert_eq!(format!("{s} {s:?}"), "<redacted> Secret(<redacted>)");
    }

    #[test]
    fn owner_and_name_from_remote_urls() {
        let r = |o: &str, n: &str| Some(RepoRef { owner: o.into(), name: n.into() });
        assert_eq!(RepoRef::from_remote_url("https://github.com/octo/hello.git"), r("octo", "hello"));
        assert_eq!(RepoRef::from_remote_url("https://ghe.example/team/sub/octo/hello"), r("octo", "hello"));
        assert_eq!(RepoRef::from_remote_url("git@github.com:octo/hello.git"), r("octo", "hello"));
        assert_eq!(RepoRef::from_remote_url("ssh://git@ghe.example:2222/octo/hello.git/"), r("octo", "hello"));
        assert_eq!(RepoRef::from_remote_url("https://github.com/hello"), None);
        assert_eq!(RepoRef::from_remote_url("/just/a/path/../x"), None);
    }

    #[test]
    fn specs_users_type() {
        assert_eq!(RepoRef::parse_spec("octo/hello").unwrap().0.to_string(), "octo/hello");
        let (r, url) = RepoRef::parse_spec("https://github.com/octo/hello").unwrap();
        assert_eq!((r.to_string(), url.as_deref()), ("octo/hello".into(), Some("https://github.com/octo/hello")));
        for bad in ["", "octo", "a/b/c", "ftp://x/y/z", "octo/he llo", "../x"] {
            assert!(matches!(RepoRef::parse_spec(bad), Err(Error::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn web_hosts_of_api_hosts() {
        assert_eq!(web_base("https://api.github.com/"), "https://github.com/");
        assert_eq!(web_base("https://ghe.example/api/v3/"), "https://ghe.example/");
        assert_eq!(web_base("http://127.0.0.1:9/api/v3"), "http://127.0.0.1:9/");
    }
}
