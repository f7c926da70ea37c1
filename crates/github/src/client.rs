//! The REST client: octocrab's HTTP stack (auth header, base URL, TLS, timeouts)
//! with AnyCode's own small response types, so only the fields AnyCode reads must
//! be present, and every status code and header (ETag, rate limits) is seen.

use crate::{Error, RepoRef, Result, Secret};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use octocrab::Octocrab;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

/// Most conditional-GET answers remembered per client.
const ETAG_CACHE: usize = 512;

/// An issue of a repository, as a new task starts from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Issue {
    /// Its number.
    pub number: u64,
    /// Its title.
    pub title: String,
    /// Its text (Markdown), possibly empty.
    pub body: String,
    /// Its page, e.g. `https://github.com/octo/hello/issues/7`.
    pub url: String,
    /// `open` or `closed`.
    pub state: String,
}

#[derive(Deserialize)]
struct RawIssue {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    html_url: String,
    state: String,
    /// Present when the "issue" is a pull request.
    #[serde(default)]
    pull_request: Option<Value>,
}

impl From<RawIssue> for Issue {
    fn from(r: RawIssue) -> Issue {
        Issue { number: r.number, title: r.title, body: r.body.unwrap_or_default(), url: r.html_url, state: r.state }
    }
}

/// A repository as AnyCode lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RepoMeta {
    /// `owner/name`.
    pub full_name: String,
    /// HTTPS clone URL.
    pub clone_url: String,
    /// The repository's page.
    pub html_url: String,
    /// The default branch (`main`).
    pub default_branch: String,
    /// Whether it is private.
    #[serde(default)]
    pub private: bool,
    /// Its description.
    #[serde(default)]
    pub description: Option<String>,
    /// When it was last pushed to (RFC 3339).
    #[serde(default)]
    pub pushed_at: Option<String>,
}

/// Input of [`Client::create_pull`].
#[derive(Debug, Clone)]
pub struct NewPull {
    /// The branch with the work (in the same repository).
    pub head: String,
    /// The branch to merge into.
    pub base: String,
    /// Title.
    pub title: String,
    /// Markdown body.
    pub body: String,
    /// Open as a draft.
    pub draft: bool,
}

/// A pull request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pull {
    /// Its number in the repository.
    pub number: u64,
    /// Its page (`html_url`).
    pub url: String,
    /// `open`, `closed` or `merged`.
    pub state: String,
    /// Whether it is a draft.
    pub draft: bool,
    /// Its title.
    pub title: String,
    /// The head branch.
    pub head: String,
    /// The head commit (40 hex digits).
    pub head_sha: String,
    /// The base branch.
    pub base: String,
    /// GitHub's mergeability once computed (`None` while GitHub computes it).
    pub mergeable: Option<bool>,
    /// True when it was there already (create found an open one for the branch).
    #[serde(default)]
    pub existing: bool,
}

/// The combined state of a commit's checks and statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Every check passed.
    Success,
    /// A check failed (or timed out, was cancelled, needs action).
    Failure,
    /// Checks are still running.
    Pending,
    /// No checks, or they could not be read.
    None,
}

/// The pull request's review decision from the latest review of each reviewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// A reviewer approved, none asks for changes.
    Approved,
    /// A reviewer asks for changes.
    ChangesRequested,
    /// No approving or blocking review yet.
    None,
}

/// A pull request with its checks and reviews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullStatus {
    /// The pull request.
    pub pull: Pull,
    /// Its head commit's checks.
    pub checks: CheckState,
    /// Its reviews.
    pub review: ReviewState,
}

/// How to merge a pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    /// A merge commit.
    Merge,
    /// One squashed commit.
    Squash,
    /// The commits rebased onto the base.
    Rebase,
}

impl FromStr for MergeMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "merge" => Ok(MergeMethod::Merge),
            "squash" => Ok(MergeMethod::Squash),
            "rebase" => Ok(MergeMethod::Rebase),
            other => Err(Error::Invalid(format!("unknown merge method {other:?}: choose merge, squash or rebase"))),
        }
    }
}

/// GitHub's answer to a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeResult {
    /// The commit on the base.
    pub sha: String,
    /// Whether it merged.
    pub merged: bool,
    /// GitHub's message.
    pub message: String,
}

#[derive(Deserialize)]
struct RawPull {
    number: u64,
    html_url: String,
    state: String,
    #[serde(default)]
    draft: Option<bool>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    mergeable: Option<bool>,
    head: RawRef,
    base: RawRef,
}

#[derive(Deserialize)]
struct RawRef {
    #[serde(rename = "ref")]
    name: String,
    #[serde(default)]
    sha: String,
}

impl From<RawPull> for Pull {
    fn from(p: RawPull) -> Pull {
        let merged = p.merged.unwrap_or(false) || p.merged_at.is_some();
        Pull {
            number: p.number,
            url: p.html_url,
            state: if merged { "merged".into() } else { p.state },
            draft: p.draft.unwrap_or(false),
            title: p.title,
            head: p.head.name,
            head_sha: p.head.sha,
            base: p.base.name,
            mergeable: p.mergeable,
            existing: false,
        }
    }
}

/// A GitHub REST client for one token (or none) at one API base URL.
pub struct Client {
    octo: Octocrab,
    api: String,
    authenticated: bool,
    etags: Mutex<HashMap<String, (HeaderValue, Bytes)>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("api", &self.api).field("authenticated", &self.authenticated).finish()
    }
}

/// `s` percent-encoded for a URL path or query (`/` and `:` kept).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The message of a GitHub error body: `message`, then each `errors[].message`.
fn error_message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let mut msg = v["message"].as_str().map(str::to_string).unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
    if let Some(errs) = v["errors"].as_array() {
        let details: Vec<String> = errs
            .iter()
            .filter_map(|e| e["message"].as_str().map(str::to_string).or_else(|| e["code"].as_str().map(|c| format!("{} {}", e["field"].as_str().unwrap_or(""), c))))
            .collect();
        if !details.is_empty() {
            msg = format!("{msg}: {}", details.join("; "));
        }
    }
    msg
}

fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// Maps a non-success answer to an [`Error`]; `what` names the thing asked for.
fn error_for(status: u16, headers: &HeaderMap, body: &[u8], what: &str) -> Error {
    let message = error_message(body);
    let limited = header_u64(headers, "x-ratelimit-remaining") == Some(0) || headers.contains_key("retry-after") || message.to_ascii_lowercase().contains("rate limit");
    match status {
        401 => Error::BadCredentials(message),
        403 | 429 if limited => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let retry_after = header_u64(headers, "retry-after").or_else(|| header_u64(headers, "x-ratelimit-reset").map(|r| r.saturating_sub(now)));
            Error::RateLimited { retry_after, message }
        }
        403 => Error::Forbidden(message),
        404 => Error::NotFound(what.to_string()),
        422 => Error::Validation(message),
        _ => Error::Api { status, message },
    }
}

/// Every cause of an octocrab error, joined (octocrab's own text says only "Service Error").
fn transport_detail(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

impl Client {
    /// A client of the API at `api_base` (e.g. `https://api.github.com/` or
    /// `https://ghe.example/api/v3/`), authenticated with `token` when given.
    ///
    /// Errors: [`Error::Invalid`] for a base URL that is not http(s).
    pub fn new(api_base: &str, token: Option<&Secret>) -> Result<Client> {
        let api = api_base.trim().to_string();
        if !(api.starts_with("https://") || api.starts_with("http://")) {
            return Err(Error::Invalid(format!("the GitHub API URL {api:?} must start with https://")));
        }
        let mut b = Octocrab::builder()
            .base_uri(api.as_str())
            .map_err(|e| Error::Invalid(format!("the GitHub API URL {api:?} is not a URL: {e}")))?
            .add_header(HeaderName::from_static("accept"), "application/vnd.github+json".into())
            .add_header(HeaderName::from_static("x-github-api-version"), "2022-11-28".into())
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .set_write_timeout(Some(Duration::from_secs(30)));
        if let Some(t) = token {
            b = b.personal_token(t.expose().to_string());
        }
        let octo = b.build().map_err(|e| Error::Invalid(format!("cannot set up the GitHub client: {}", transport_detail(&e))))?;
        Ok(Client { octo, api, authenticated: token.is_some(), etags: Mutex::new(HashMap::new()) })
    }

    /// The API base URL.
    pub fn api_base(&self) -> &str {
        &self.api
    }

    /// Whether the client sends a token.
    pub fn authenticated(&self) -> bool {
        self.authenticated
    }

    fn need_token(&self) -> Result<()> {
        if self.authenticated {
            Ok(())
        } else {
            Err(Error::NoToken)
        }
    }

    async fn finish(&self, resp: http::Response<impl http_body::Body<Data = Bytes, Error = octocrab::Error>>) -> Result<(u16, HeaderMap, Bytes)> {
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.map_err(|e| self.unreachable(&e))?.to_bytes();
        Ok((parts.status.as_u16(), parts.headers, bytes))
    }

    fn unreachable(&self, e: &octocrab::Error) -> Error {
        Error::Unreachable { url: self.api.clone(), detail: transport_detail(e) }
    }

    /// A conditional GET: sends `If-None-Match` with the ETag of the last answer for
    /// `path`, and on `304 Not Modified` (which GitHub does not count against the
    /// rate limit) returns that answer's body again.
    async fn get(&self, path: &str, what: &str) -> Result<Bytes> {
        let cached = self.etags.lock().unwrap_or_else(|p| p.into_inner()).get(path).cloned();
        let mut headers = HeaderMap::new();
        if let Some((etag, _)) = &cached {
            headers.insert(http::header::IF_NONE_MATCH, etag.clone());
        }
        let resp = self.octo._get_with_headers(path, Some(headers)).await.map_err(|e| self.unreachable(&e))?;
        let (status, headers, body) = self.finish(resp).await?;
        match (status, cached) {
            (304, Some((_, body))) => Ok(body),
            (200..=299, _) => {
                if let Some(etag) = headers.get(http::header::ETAG) {
                    let mut cache = self.etags.lock().unwrap_or_else(|p| p.into_inner());
                    if cache.len() >= ETAG_CACHE {
                        cache.clear();
                    }
                    cache.insert(path.to_string(), (etag.clone(), body.clone()));
                }
                Ok(body)
            }
            (s, _) => Err(error_for(s, &headers, &body, what)),
        }
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T> {
        let body = self.get(path, what).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Api { status: 200, message: format!("unexpected answer for {what}: {e}") })
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, HeaderMap, Bytes)> {
        let resp = match method {
            "POST" => self.octo._post(path, body).await,
            "PUT" => self.octo._put(path, body).await,
            "PATCH" => self.octo._patch(path, body).await,
            _ => self.octo._delete(path, body).await,
        }
        .map_err(|e| self.unreachable(&e))?;
        self.finish(resp).await
    }

    /// The login of the token's user (`GET /user`): checks a token works.
    ///
    /// Errors: [`Error::NoToken`], [`Error::BadCredentials`], [`Error::Unreachable`].
    pub async fn user(&self) -> Result<String> {
        self.need_token()?;
        let v: Value = self.get_json("/user", "the token's user").await?;
        v["login"].as_str().map(str::to_string).ok_or_else(|| Error::Api { status: 200, message: "GET /user has no login".into() })
    }

    /// A repository (`GET /repos/{owner}/{name}`), public ones without a token.
    ///
    /// Errors: [`Error::NotFound`] (also for a private one the token cannot see).
    pub async fn repo(&self, r: &RepoRef) -> Result<RepoMeta> {
        self.get_json(&format!("/repos/{}/{}", enc(&r.owner), enc(&r.name)), &format!("the repository {r}")).await
    }

    /// The token user's repositories, most recently pushed first (up to 300:
    /// `GET /user/repos`, 100 a page).
    pub async fn user_repos(&self) -> Result<Vec<RepoMeta>> {
        self.need_token()?;
        let mut out = Vec::new();
        for page in 1..=3 {
            let list: Vec<RepoMeta> = self.get_json(&format!("/user/repos?per_page=100&sort=pushed&page={page}"), "your repositories").await?;
            let n = list.len();
            out.extend(list);
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// The repository's open issues, newest first, pull requests left out (up to
    /// 100: `GET /repos/{owner}/{name}/issues?state=open`).
    ///
    /// Errors: [`Error::NotFound`], [`Error::BadCredentials`], [`Error::Unreachable`].
    pub async fn open_issues(&self, r: &RepoRef) -> Result<Vec<Issue>> {
        let path = format!("/repos/{}/{}/issues?state=open&per_page=100", enc(&r.owner), enc(&r.name));
        let list: Vec<RawIssue> = self.get_json(&path, &format!("issues of {r}")).await?;
        Ok(list.into_iter().filter(|i| i.pull_request.is_none()).map(Issue::from).collect())
    }

    /// One issue (`GET /repos/{owner}/{name}/issues/{number}`).
    ///
    /// Errors: [`Error::NotFound`] (also for a pull request's number),
    /// [`Error::BadCredentials`], [`Error::Unreachable`].
    pub async fn issue(&self, r: &RepoRef, number: u64) -> Result<Issue> {
        let what = format!("issue {r}#{number}");
        let raw: RawIssue = self.get_json(&format!("/repos/{}/{}/issues/{number}", enc(&r.owner), enc(&r.name)), &what).await?;
        if raw.pull_request.is_some() {
            return Err(Error::NotFound(format!("{what} (it is a pull request)")));
        }
        Ok(raw.into())
    }

    /// Opens a pull request (`POST /repos/{owner}/{name}/pulls`). When GitHub answers
    /// that one already exists for the branch (422), returns that one with
    /// [`Pull::existing`] set instead of failing.
    ///
    /// Errors: [`Error::NoToken`], [`Error::Validation`] (e.g. no commits between
    /// the branches), [`Error::NotFound`], [`Error::BadCredentials`].
    pub async fn create_pull(&self, r: &RepoRef, new: &NewPull) -> Result<Pull> {
        self.need_token()?;
        let body = json!({"title": new.title, "head": new.head, "base": new.base, "body": new.body, "draft": new.draft});
        let (status, headers, bytes) = self.send("POST", &format!("/repos/{}/{}/pulls", enc(&r.owner), enc(&r.name)), Some(&body)).await?;
        if (200..300).contains(&status) {
            let raw: RawPull = serde_json::from_slice(&bytes).map_err(|e| Error::Api { status, message: format!("unexpected pull request: {e}") })?;
            return Ok(raw.into());
        }
        let err = error_for(status, &headers, &bytes, &format!("the repository {r}"));
        if status == 422 && error_message(&bytes).contains("already exists") {
            if let Some(mut p) = self.find_pull(r, &new.head).await? {
                p.existing = true;
                return Ok(p);
            }
        }
        Err(err)
    }

    /// The newest open pull request whose head is `branch` of the same repository
    /// (`GET /repos/{owner}/{name}/pulls?head=owner:branch&state=open`).
    pub async fn find_pull(&self, r: &RepoRef, branch: &str) -> Result<Option<Pull>> {
        let path = format!("/repos/{}/{}/pulls?head={}&state=open", enc(&r.owner), enc(&r.name), enc(&format!("{}:{branch}", r.owner)));
        let list: Vec<RawPull> = self.get_json(&path, &format!("pull requests of {r}")).await?;
        Ok(list.into_iter().next().map(Pull::from))
    }

    /// A pull request (`GET /repos/{owner}/{name}/pulls/{number}`, conditional).
    pub async fn pull(&self, r: &RepoRef, number: u64) -> Result<Pull> {
        let raw: RawPull = self.get_json(&format!("/repos/{}/{}/pulls/{number}", enc(&r.owner), enc(&r.name)), &format!("pull request {r}#{number}")).await?;
        Ok(raw.into())
    }

    /// A pull request with its checks (check runs and commit statuses of its head)
    /// and review decision. Four conditional GETs; checks or reviews the token may
    /// not read count as [`CheckState::None`] / [`ReviewState::None`].
    pub async fn pull_status(&self, r: &RepoRef, number: u64) -> Result<PullStatus> {
        let pull = self.pull(r, number).await?;
        let base = format!("/repos/{}/{}", enc(&r.owner), enc(&r.name));
        let soft = |e: Error| match e {
            Error::RateLimited { .. } | Error::BadCredentials(_) | Error::Unreachable { .. } => Err(e),
            other => {
                tracing::debug!(error = %other, "pull request detail unavailable");
                Ok(Value::Null)
            }
        };
        let runs = match self.get_json::<Value>(&format!("{base}/commits/{}/check-runs", pull.head_sha), "check runs").await {
            Ok(v) => v,
            Err(e) => soft(e)?,
        };
        let status = match self.get_json::<Value>(&format!("{base}/commits/{}/status", pull.head_sha), "commit status").await {
            Ok(v) => v,
            Err(e) => soft(e)?,
        };
        let reviews = match self.get_json::<Value>(&format!("{base}/pulls/{number}/reviews"), "reviews").await {
            Ok(v) => v,
            Err(e) => soft(e)?,
        };
        Ok(PullStatus { checks: combine_checks(&runs, &status), review: review_decision(&reviews), pull })
    }

    /// Merges a pull request (`PUT /repos/{owner}/{name}/pulls/{number}/merge`);
    /// `sha`, when given, makes GitHub refuse if the head moved since.
    ///
    /// Errors: [`Error::MergeRefused`] (405 not mergeable, 409 head modified, 422),
    /// [`Error::NotFound`], [`Error::BadCredentials`], [`Error::NoToken`].
    pub async fn merge_pull(&self, r: &RepoRef, number: u64, method: MergeMethod, sha: Option<&str>) -> Result<MergeResult> {
        self.need_token()?;
        let mut body = json!({"merge_method": method});
        if let Some(s) = sha {
            body["sha"] = json!(s);
        }
        let (status, headers, bytes) = self.send("PUT", &format!("/repos/{}/{}/pulls/{number}/merge", enc(&r.owner), enc(&r.name)), Some(&body)).await?;
        match status {
            200..=299 => serde_json::from_slice(&bytes).map_err(|e| Error::Api { status, message: format!("unexpected merge answer: {e}") }),
            405 | 409 | 422 => Err(Error::MergeRefused(error_message(&bytes))),
            _ => Err(error_for(status, &headers, &bytes, &format!("pull request {r}#{number}"))),
        }
    }

    /// Deletes branch `branch` on GitHub (`DELETE /repos/{owner}/{name}/git/refs/heads/{branch}`);
    /// a branch that is already gone is not an error.
    pub async fn delete_branch(&self, r: &RepoRef, branch: &str) -> Result<()> {
        self.need_token()?;
        let (status, headers, bytes) = self.send("DELETE", &format!("/repos/{}/{}/git/refs/heads/{}", enc(&r.owner), enc(&r.name), enc(branch)), None).await?;
        match status {
            200..=299 => Ok(()),
            422 if error_message(&bytes).contains("does not exist") => Ok(()),
            _ => Err(error_for(status, &headers, &bytes, &format!("branch {branch} of {r}"))),
        }
    }
}

/// Check runs and commit statuses folded into one state.
fn combine_checks(runs: &Value, status: &Value) -> CheckState {
    let mut any = false;
    let mut pending = false;
    for run in runs["check_runs"].as_array().into_iter().flatten() {
        any = true;
        if run["status"].as_str() != Some("completed") {
            pending = true;
            continue;
        }
        if matches!(run["conclusion"].as_str(), Some("failure" | "timed_out" | "cancelled" | "action_required" | "startup_failure")) {
            return CheckState::Failure;
        }
    }
    if status["total_count"].as_u64().unwrap_or(0) > 0 {
        any = true;
        match status["state"].as_str() {
            Some("failure" | "error") => return CheckState::Failure,
            Some("pending") => pending = true,
            _ => {}
        }
    }
    match (any, pending) {
        (false, _) => CheckState::None,
        (true, true) => CheckState::Pending,
        (true, false) => CheckState::Success,
    }
}

/// The latest review of each reviewer decides: any "changes requested" wins, then
/// any approval.
fn review_decision(reviews: &Value) -> ReviewState {
    let mut latest: HashMap<String, String> = HashMap::new();
    for r in reviews.as_array().into_iter().flatten() {
        let who = r["user"]["login"].as_str().unwrap_or("").to_string();
        if let Some(s @ ("APPROVED" | "CHANGES_REQUESTED" | "DISMISSED")) = r["state"].as_str() {
            latest.insert(who, s.to_string());
        }
    }
    if latest.values().any(|s| s == "CHANGES_REQUESTED") {
        ReviewState::ChangesRequested
    } else if latest.values().any(|s| s == "APPROVED") {
        ReviewState::Approved
    } else {
        ReviewState::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_reviews_fold() {
        let runs = json!({"total_count": 2, "check_runs": [{"status": "completed", "conclusion": "success"}, {"status": "in_progress", "conclusion": null}]});
        assert_eq!(combine_checks(&runs, &json!({"state": "pending", "total_count": 0})), CheckState::Pending);
        let done = json!({"check_runs": [{"status": "completed", "conclusion": "success"}]});
        assert_eq!(combine_checks(&done, &json!({"state": "success", "total_count": 1})), CheckState::Success);
        assert_eq!(combine_checks(&done, &json!({"state": "failure", "total_count": 1})), CheckState::Failure);
        assert_eq!(combine_checks(&Value::Null, &json!({"state": "pending", "total_count": 0})), CheckState::None);
        let reviews = json!([
            {"user": {"login": "a"}, "state": "CHANGES_REQUESTED"},
            {"user": {"login": "b"}, "state": "APPROVED"},
            {"user": {"login": "a"}, "state": "APPROVED"},
            {"user": {"login": "c"}, "state": "COMMENTED"}
        ]);
        assert_eq!(review_decision(&reviews), ReviewState::Approved);
        assert_eq!(review_decision(&json!([{"user": {"login": "a"}, "state": "CHANGES_REQUESTED"}])), ReviewState::ChangesRequested);
        assert_eq!(review_decision(&json!([])), ReviewState::None);
    }

    #[test]
    fn encoding_keeps_slashes() {
        assert_eq!(enc("octo:anycode/fix it#1"), "octo:anycode/fix%20it%231");
    }
}
