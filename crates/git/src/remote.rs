//! Talking to remotes over HTTPS: cloning with progress and pushing a branch, with
//! an access token handed to libgit2 only through its credential callback (never
//! written into a URL, the repository's config or a log).
//!
//! The token goes only where it belongs ([`token_refusal`]): the configured GitHub
//! web host, compared exactly (scheme, host, port, parsed by the `url` crate) with
//! the URL libgit2 is about to send credentials to, whatever the repository's remote
//! URL says; over HTTPS, plain HTTP only on loopback. Any other host gets its own
//! credentials from a credential helper of the user's git configuration (global,
//! XDG and system files only: never the repository's, which a sandbox could write),
//! or nothing ([`Error::TokenNotSent`]).

use crate::{open, Error, RepoInfo, Result};
use git2::{build::RepoBuilder, Cred, CredentialType, FetchOptions, PushOptions, RemoteCallbacks};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// HTTP Basic credentials for GitHub: any user name (AnyCode sends
/// `x-access-token`), the token as the password, and the GitHub web host the
/// token belongs to (the only host it is sent to). `Debug` never shows the password.
#[derive(Clone)]
pub struct HttpAuth {
    /// The user name sent with the token.
    pub username: String,
    /// The token (secret).
    pub password: String,
    /// The GitHub web base URL the token is for (`https://github.com/`, or the web
    /// host of GitHub Enterprise); see [`token_refusal`].
    pub github: String,
}

impl HttpAuth {
    /// `x-access-token` with `token` as the password, as GitHub expects for tokens,
    /// for the GitHub web host `github` (e.g. `https://github.com/`).
    pub fn token(token: &str, github: &str) -> HttpAuth {
        HttpAuth { username: "x-access-token".into(), password: token.to_string(), github: github.to_string() }
    }
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpAuth").field("username", &self.username).field("password", &"<redacted>").field("github", &self.github).finish()
    }
}

/// Whether `host` is a loopback address (an IP literal in 127.0.0.0/8 or `::1`, or
/// `localhost`).
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        url::Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
        url::Host::Domain(d) => *d == "localhost",
    }
}

/// Why the GitHub token for web host `github` must not be sent to `url` (the URL
/// libgit2 is about to authenticate to), or `None` when it may: same scheme, host
/// and port as `github` (hosts compared exactly after the `url` crate's parsing:
/// case, IP forms; a trailing dot is another host), and HTTPS, or plain HTTP to a
/// loopback address. User names, passwords, paths and queries in `url` do not
/// matter.
pub fn token_refusal(url: &str, github: &str) -> Option<String> {
    let Ok(target) = url::Url::parse(url.trim()) else {
        return Some("is not a URL AnyCode can check".into());
    };
    let Ok(gh) = url::Url::parse(github.trim()) else {
        return Some(format!("cannot be compared with the GitHub host {github:?}, which is not a URL"));
    };
    let (Some(host), Some(gh_host)) = (target.host(), gh.host()) else {
        return Some("has no host".into());
    };
    if host != gh_host || target.port_or_known_default() != gh.port_or_known_default() {
        return Some(format!("is another host ({})", target.host_str().unwrap_or_default()));
    }
    match target.scheme() {
        "https" if gh.scheme() == "https" => None,
        "http" if gh.scheme() == "http" && is_loopback(&host) => None,
        "http" => Some("is plain HTTP (the token would travel unencrypted)".into()),
        s => Some(format!("uses {s}:// (the token only goes over HTTPS)")),
    }
}

/// Where a clone is, as libgit2 reports it; sent to the UI and the CLI's progress bar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CloneProgress {
    /// `connecting`, `receiving` (objects), `resolving` (deltas), `checkout` or `done`.
    pub phase: &'static str,
    /// Objects received so far.
    pub received_objects: usize,
    /// Objects the remote is sending.
    pub total_objects: usize,
    /// Deltas resolved so far.
    pub indexed_deltas: usize,
    /// Deltas to resolve.
    pub total_deltas: usize,
    /// Bytes received so far.
    pub received_bytes: usize,
    /// Files checked out so far.
    pub checkout_done: usize,
    /// Files to check out.
    pub checkout_total: usize,
}

/// What [`push_branch`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PushOutcome {
    /// The remote's name (`origin`).
    pub remote: String,
    /// The branch pushed.
    pub branch: String,
    /// The commit now at the branch on the remote (40 hex digits).
    pub sha: String,
    /// The branch's upstream after the push, e.g. `origin/anycode/fix-login`.
    pub upstream: String,
}

/// The URL of remote `name` of the repository at `repo_path`, with any user name
/// or password in it removed; `None` when there is no such remote.
pub fn remote_url(repo_path: &Path, name: &str) -> Result<Option<String>> {
    let repo = open(repo_path)?;
    let url = match repo.find_remote(name) {
        Ok(r) => r.url().map(strip_userinfo),
        Err(_) => None,
    };
    Ok(url)
}

/// `url` without a `user:password@` part (so it is safe to show and log).
pub fn strip_userinfo(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = rest.split_once('/').map(|(a, p)| (a, Some(p))).unwrap_or((rest, None));
        if let Some((_, host)) = authority.rsplit_once('@') {
            return match path {
                Some(p) => format!("{scheme}://{host}/{p}"),
                None => format!("{scheme}://{host}"),
            };
        }
    }
    url.to_string()
}

/// The HTTPS form of a remote URL: `http(s)://…` as it is; `git@host:owner/name.git`
/// and `ssh://git@host/owner/name` become `https://host/owner/name.git`. Tokens only
/// work over HTTP(S), so pushes go there.
pub fn https_url(url: &str) -> Option<String> {
    let url = strip_userinfo(url.trim());
    if url.starts_with("https://") || url.starts_with("http://") {
        return Some(url);
    }
    let rest = url.strip_prefix("ssh://").map(|r| r.split_once('@').map(|(_, h)| h).unwrap_or(r).to_string());
    let (host, path) = match rest {
        Some(r) => {
            let (host, path) = r.split_once('/')?;
            // ssh://host:port/path: the port is SSH's, not HTTPS's.
            (host.split(':').next()?.to_string(), path.to_string())
        }
        None => {
            let (user_host, path) = url.split_once(':')?;
            let host = user_host.rsplit('@').next()?;
            if host.is_empty() || host.contains('/') {
                return None;
            }
            (host.to_string(), path.to_string())
        }
    };
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return None;
    }
    let path = if path.ends_with(".git") { path.to_string() } else { format!("{path}.git") };
    Some(format!("https://{host}/{path}"))
}

/// What the credential callback did, for the error message afterwards.
#[derive(Default)]
struct Asked {
    /// How often libgit2 asked.
    count: Cell<u32>,
    /// Why the token was withheld from the URL asked for, when it was and no
    /// credential helper answered.
    withheld: RefCell<Option<(String, String)>>,
}

/// The user's own git credentials for `url` (another host than GitHub): a
/// credential helper of the global, XDG or system git configuration; never the
/// repository's configuration, which a sandbox may have written.
fn helper_credentials(url: &str, user: Option<&str>) -> Option<Cred> {
    if url::Url::parse(url).is_ok_and(|u| u.scheme() == "http" && !u.host().is_some_and(|h| is_loopback(&h))) {
        return None;
    }
    let cfg = git2::Config::open_default().ok()?;
    Cred::credential_helper(&cfg, url, user).ok()
}

/// Credentials for libgit2: the token on the first request for it when the URL is
/// the token's GitHub host (see [`token_refusal`]), else the host's own credentials
/// from the user's credential helper; a second request means the remote refused
/// them (libgit2 would otherwise ask forever).
fn credentials_callback<'a>(auth: Option<&'a HttpAuth>, asked: &'a Asked) -> impl FnMut(&str, Option<&str>, CredentialType) -> std::result::Result<Cred, git2::Error> + 'a {
    move |url, user, allowed| {
        asked.count.set(asked.count.get() + 1);
        if asked.count.get() > 1 {
            return Err(git2::Error::from_str("the credentials were refused"));
        }
        if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            return Err(git2::Error::from_str("the remote does not accept a token over HTTPS (use an https:// URL)"));
        }
        let Some(a) = auth else {
            return helper_credentials(url, user).ok_or_else(|| git2::Error::from_str("the remote asked for credentials and no token is set"));
        };
        match token_refusal(url, &a.github) {
            None => Cred::userpass_plaintext(&a.username, &a.password),
            Some(reason) => match helper_credentials(url, user) {
                Some(c) => Ok(c),
                None => {
                    *asked.withheld.borrow_mut() = Some((strip_userinfo(url), reason));
                    Err(git2::Error::from_str("the GitHub token does not go to this host"))
                }
            },
        }
    }
}

/// Turns a libgit2 failure talking to `url` into a sentence the user can act on.
fn remote_error(e: git2::Error, url: &str, auth: Option<&HttpAuth>, asked: &Asked) -> Error {
    if let (Some((url, reason)), Some(a)) = (asked.withheld.borrow_mut().take(), auth) {
        return Error::TokenNotSent { url, github: a.github.clone(), reason };
    }
    let had_token = auth.is_some();
    let asked = asked.count.get();
    let msg = e.message().to_string();
    let lower = msg.to_ascii_lowercase();
    // The callback is asked once per 401; a second time means the token was refused,
    // and its own errors say "token" or "credentials".
    if asked > 1 || e.code() == git2::ErrorCode::Auth || lower.contains("401") || lower.contains("authentication") || lower.contains("credentials") || lower.contains("token was refused") {
        return Error::AuthFailed {
            url: url.to_string(),
            hint: if had_token {
                "the token was refused: it may be revoked, expired or lack access to this repository".into()
            } else {
                "the repository is private or does not exist: set a GitHub token (`anycode github login --token-stdin`, or GITHUB_TOKEN)".into()
            },
        };
    }
    if lower.contains("404") || lower.contains("not found") {
        return Error::RemoteNotFound(url.to_string());
    }
    if e.class() == git2::ErrorClass::Net
        || e.class() == git2::ErrorClass::Os
        || e.class() == git2::ErrorClass::Ssl
        || lower.contains("failed to connect")
        || lower.contains("failed to resolve")
        || lower.contains("could not resolve")
        || lower.contains("timed out")
    {
        return Error::Unreachable { url: url.to_string(), detail: msg };
    }
    Error::Remote(format!("{url}: {msg}"))
}

/// Clones `url` (HTTPS, or a local path) into `dest`, which must not exist or be an
/// empty folder, with `auth` when given; `progress` is called as objects arrive and
/// files are checked out, and cancels the clone by returning false.
///
/// The clone is made in a hidden sibling folder (`.<name>.anycode-clone-<pid>`) and
/// renamed into place when complete, so a failed or cancelled clone leaves nothing
/// behind (and a crash leaves only that folder, which [`is_partial_clone`] names).
/// Returns what [`crate::inspect_repo`] says of the result; its current branch is
/// the remote's default branch.
///
/// Errors: [`Error::DestinationExists`], [`Error::AuthFailed`],
/// [`Error::RemoteNotFound`], [`Error::Unreachable`], [`Error::Cancelled`],
/// [`Error::Remote`].
pub fn clone_repo(url: &str, dest: &Path, auth: Option<&HttpAuth>, progress: &mut dyn FnMut(&CloneProgress) -> bool) -> Result<RepoInfo> {
    crate::disable_owner_validation();
    let shown_url = strip_userinfo(url);
    let dest_empty_dir = match std::fs::read_dir(dest) {
        Ok(mut rd) => {
            if rd.next().is_some() {
                return Err(Error::DestinationExists(dest.display().to_string()));
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(_) => return Err(Error::DestinationExists(dest.display().to_string())),
    };
    let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).ok_or_else(|| Error::Io(format!("{} is not a folder path", dest.display())))?;
    std::fs::create_dir_all(parent).map_err(|e| Error::Io(format!("creating {}: {e}", parent.display())))?;
    let staging = parent.join(format!(".{name}.anycode-clone-{}", std::process::id()));
    if staging.symlink_metadata().is_ok() {
        std::fs::remove_dir_all(&staging).map_err(|e| Error::Io(format!("removing {}: {e}", staging.display())))?;
    }

    let asked = Asked::default();
    let state = RefCell::new(CloneProgress { phase: "connecting", ..Default::default() });
    let progress = RefCell::new(progress);
    let cancelled = Cell::new(false);
    let result = {
        let mut cb = RemoteCallbacks::new();
        cb.credentials(credentials_callback(auth, &asked));
        cb.transfer_progress(|p| {
            let mut s = state.borrow_mut();
            s.phase = if p.received_objects() < p.total_objects() || p.total_deltas() == 0 { "receiving" } else { "resolving" };
            s.received_objects = p.received_objects();
            s.total_objects = p.total_objects();
            s.indexed_deltas = p.indexed_deltas();
            s.total_deltas = p.total_deltas();
            s.received_bytes = p.received_bytes();
            let go = (progress.borrow_mut())(&s);
            cancelled.set(!go);
            go
        });
        let mut fo = FetchOptions::new();
        fo.remote_callbacks(cb);
        let mut co = git2::build::CheckoutBuilder::new();
        co.progress(|_, done, total| {
            let mut s = state.borrow_mut();
            s.phase = "checkout";
            s.checkout_done = done;
            s.checkout_total = total;
            let _ = (progress.borrow_mut())(&s);
        });
        RepoBuilder::new().fetch_options(fo).with_checkout(co).clone(url, &staging)
    };
    let finish = || -> Result<()> {
        if dest_empty_dir {
            std::fs::remove_dir(dest).map_err(|e| Error::Io(format!("replacing the empty folder {}: {e}", dest.display())))?;
        }
        std::fs::rename(&staging, dest).map_err(|e| Error::Io(format!("moving the clone to {}: {e}", dest.display())))
    };
    let outcome = match result {
        Ok(repo) => {
            drop(repo);
            finish()
        }
        Err(_) if cancelled.get() => Err(Error::Cancelled),
        Err(e) => Err(remote_error(e, &shown_url, auth, &asked)),
    };
    if let Err(e) = outcome {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    let mut s = state.into_inner();
    s.phase = "done";
    let _ = (progress.borrow_mut())(&s);
    crate::inspect_repo(dest)
}

/// Whether `path` is the staging folder of a clone that never finished (a crash
/// during [`clone_repo`]), which is safe to remove.
pub fn is_partial_clone(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.') && n.contains(".anycode-clone-"))
}

/// Pushes local branch `branch` to the same name on remote `remote` (over HTTPS with
/// `auth`), checks the remote's verdict on the ref (libgit2's push succeeds even when
/// the remote rejects a ref), and sets the branch's upstream to `<remote>/<branch>`.
/// An `ssh`/scp-style remote URL is pushed to its HTTPS form; the repository's
/// configured URL is never changed and no credential is written anywhere.
///
/// Errors: [`Error::NoRemote`], [`Error::UnknownBranch`], [`Error::PushRejected`]
/// (non-fast-forward, a hook refused it, a protected branch), [`Error::AuthFailed`],
/// [`Error::RemoteNotFound`], [`Error::Unreachable`], [`Error::Remote`].
pub fn push_branch(repo_path: &Path, remote: &str, branch: &str, auth: Option<&HttpAuth>) -> Result<PushOutcome> {
    let repo = open(repo_path)?;
    let local = repo.find_branch(branch, git2::BranchType::Local).map_err(|_| Error::UnknownBranch(branch.to_string()))?;
    let sha = local.get().target().ok_or_else(|| Error::UnknownBranch(branch.to_string()))?;
    let configured = repo.find_remote(remote).map_err(|_| Error::NoRemote(remote.to_string()))?;
    let configured_url = configured.url().map(str::to_string).ok_or_else(|| Error::NoRemote(remote.to_string()))?;
    let url = https_url(&configured_url).unwrap_or_else(|| configured_url.clone());
    let shown_url = strip_userinfo(&url);
    // A local path or http(s) remote is pushed by name (libgit2 then updates the
    // remote-tracking ref itself); anything else through an anonymous remote at its
    // HTTPS URL, so the configuration keeps the user's URL.
    let by_name = url == strip_userinfo(&configured_url) || !configured_url.contains("://") && Path::new(&configured_url).exists();
    let mut target = if by_name { configured } else { repo.remote_anonymous(&url)? };
    let refname = format!("refs/heads/{branch}");
    let asked = Asked::default();
    let rejected: RefCell<Vec<(String, String)>> = RefCell::new(Vec::new());
    let pushed = {
        let mut cb = RemoteCallbacks::new();
        cb.credentials(credentials_callback(auth, &asked));
        cb.push_update_reference(|name, status| {
            if let Some(msg) = status {
                rejected.borrow_mut().push((name.to_string(), msg.to_string()));
            }
            Ok(())
        });
        let mut po = PushOptions::new();
        po.remote_callbacks(cb);
        target.push(&[format!("{refname}:{refname}")], Some(&mut po))
    };
    if let Err(e) = pushed {
        // libgit2 refuses a non-fast-forward itself, before sending anything.
        if e.code() == git2::ErrorCode::NotFastForward {
            return Err(Error::PushRejected {
                refname,
                reason: "non-fast-forward: the remote branch has commits this branch lacks (pushed from elsewhere)".into(),
            });
        }
        return Err(remote_error(e, &shown_url, auth, &asked));
    }
    if let Some((name, reason)) = rejected.into_inner().into_iter().next() {
        return Err(Error::PushRejected { refname: name, reason });
    }
    let tracking = format!("refs/remotes/{remote}/{branch}");
    repo.reference(&tracking, sha, true, "push")?;
    let mut local = repo.find_branch(branch, git2::BranchType::Local)?;
    let upstream = format!("{remote}/{branch}");
    local.set_upstream(Some(&upstream))?;
    Ok(PushOutcome { remote: remote.to_string(), branch: branch.to_string(), sha: sha.to_string(), upstream })
}

/// The commit of `refs/remotes/<remote>/<branch>` if the repository has it.
pub fn remote_tracking_sha(repo_path: &Path, remote: &str, branch: &str) -> Result<Option<String>> {
    let repo = open(repo_path)?;
    Ok(repo.find_reference(&format!("refs/remotes/{remote}/{branch}")).ok().and_then(|r| r.target()).map(|o| o.to_string()))
}

/// The commit at the tip of local branch `branch`.
///
/// Errors: [`Error::UnknownBranch`].
pub fn branch_sha(repo_path: &Path, branch: &str) -> Result<String> {
    let repo = open(repo_path)?;
    let b = repo.find_branch(branch, git2::BranchType::Local).map_err(|_| Error::UnknownBranch(branch.to_string()))?;
    b.get().target().map(|o| o.to_string()).ok_or_else(|| Error::UnknownBranch(branch.to_string()))
}

/// The staging folder [`clone_repo`] uses for `dest` in this process (for tests).
pub fn staging_dir(dest: &Path) -> PathBuf {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    parent.join(format!(".{name}.anycode-clone-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_the_github_host_over_https() {
        let gh = "https://github.com/";
        for ok in [
            "https://github.com/octo/hello.git",
            "https://GitHub.COM/octo/hello.git",
            "https://github.com:443/octo/hello",
            "https://someone:pw@github.com/octo/hello.git",
        ] {
            assert_eq!(token_refusal(ok, gh), None, "{ok}");
        }
        for bad in [
            "http://github.com/octo/hello.git",
            "https://github.com./octo/hello.git",
            "https://github.com:8443/octo/hello.git",
            "https://github.com@evil.example/octo/hello.git",
            "https://evil.example/github.com/octo/hello.git",
            "https://github.com.evil.example/o/n.git",
            "https://api.github.com/o/n.git",
            "https://140.82.112.3/o/n.git",
            "ssh://git@github.com/o/n.git",
            "git@github.com:o/n.git",
            "file:///tmp/x",
            "not a url",
            "https://127.0.0.1/o/n.git",
        ] {
            assert!(token_refusal(bad, gh).is_some(), "{bad}");
        }
        // GitHub Enterprise: its web host, exactly.
        let ghe = "https://ghe.example/";
        assert_eq!(token_refusal("https://ghe.example/o/n.git", ghe), None);
        assert!(token_refusal("https://github.com/o/n.git", ghe).is_some());
        assert!(token_refusal("https://sub.ghe.example/o/n.git", ghe).is_some());
        // Plain HTTP only on loopback, and only to the configured port.
        let local = "http://127.0.0.1:4000/";
        assert_eq!(token_refusal("http://127.0.0.1:4000/o/n.git", local), None);
        assert!(token_refusal("http://127.0.0.1:4001/o/n.git", local).is_some());
        assert!(token_refusal("http://127.0.0.2:4000/o/n.git", local).is_some());
        assert!(token_refusal("http://localhost:4000/o/n.git", local).is_some(), "another host name is another host");
        assert_eq!(token_refusal("http://[::1]:4000/o/n.git", "http://[::1]:4000/"), None);
        assert_eq!(token_refusal("http://0x7f.1:4000/o/n.git", local), None, "the same address written differently");
        assert!(token_refusal("http://ghe.corp/o/n.git", "http://ghe.corp/").is_some(), "never plain HTTP off loopback");
        assert!(token_refusal("https://github.com/o/n.git", "not a url").is_some());
    }

    #[test]
    fn debug_hides_the_token() {
        let a = HttpAuth::token("ghp_secret", "https://github.com/");
        assert!(!format!("{a:?}").contains("ghp_secret"));
    }
}
