//! GitHub in the engine: importing repositories (a clone in progress is a visible
//! state; a failed one leaves nothing), the token (saved in the OS keyring, never
//! stored elsewhere), pushing task branches, opening, refreshing and merging pull
//! requests, and the conflict radar with "update from base".

use crate::{blocking, Engine, Error, Project, Result, Task};
use anycode_core::PullRequestInfo;
use anycode_git::{CloneProgress, HttpAuth, MergeCheck, PushOutcome};
use anycode_github::token::{TokenSource, Tokens};
use anycode_github::{Client, MergeMethod, MergeResult, NewPull, RepoMeta, RepoRef, Secret};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

/// How often open pull requests are refreshed from GitHub (conditional GETs).
pub const PR_REFRESH: Duration = Duration::from_secs(60);
/// The longest back-off after failed refreshes.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// An import (clone) of a repository, while it runs or after it failed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Import {
    /// The project id it will have.
    pub id: String,
    /// The repository's name.
    pub name: String,
    /// Where it is cloned to.
    pub path: String,
    /// What is cloned (URL without credentials).
    pub url: String,
    /// `owner/name` on GitHub, when it is there.
    pub github: Option<String>,
    /// `cloning` or `failed`.
    pub status: &'static str,
    /// The clone's progress.
    pub progress: CloneProgress,
    /// Why it failed.
    pub error: Option<String>,
    /// The error's stable code.
    pub error_code: Option<&'static str>,
}

/// Input of [`Engine::import_project`].
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// `owner/name`, or a repository URL (https, or git@host:owner/name).
    pub url: String,
    /// Where to clone to; `<data_dir>/repos/<owner>/<name>` when `None`.
    pub path: Option<String>,
}

/// The token's state, as settings show it (never the token).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GitHubStatus {
    /// The API base URL in use.
    pub api: String,
    /// Where the token comes from, `None` when there is none.
    pub source: Option<TokenSource>,
    /// The token's user, when GitHub accepted it.
    pub login: Option<String>,
    /// Why the token does not work, when it does not.
    pub error: Option<String>,
}

/// Input of [`Engine::create_pr`].
#[derive(Debug, Clone, Default)]
pub struct CreatePr {
    /// Title; the task's title when `None`.
    pub title: Option<String>,
    /// Body; generated when `None` (prompt, commits, diffstat, provenance).
    pub body: Option<String>,
    /// Base branch; the task's base when `None`.
    pub base: Option<String>,
    /// Open as a draft.
    pub draft: bool,
}

/// Another task that changes some of the same files.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Overlap {
    /// Its id.
    pub task_id: String,
    /// Its title.
    pub title: String,
    /// Its branch.
    pub branch: String,
    /// The files both change, sorted.
    pub files: Vec<String>,
}

/// The conflict radar's answer for one task.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Conflicts {
    /// The task.
    pub task_id: String,
    /// The merge check against the task's base (in memory).
    #[serde(flatten)]
    pub check: MergeCheck,
    /// Other tasks of the project touching the same files.
    pub overlaps: Vec<Overlap>,
}

/// GitHub settings and state of an engine.
pub(crate) struct GhState {
    settings: StdMutex<(String, Tokens)>,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    imports: StdMutex<HashMap<String, (Import, Arc<AtomicBool>)>>,
    refresher: AtomicBool,
}

impl GhState {
    pub(crate) fn new(keyring_service: Option<&str>) -> GhState {
        GhState {
            settings: StdMutex::new((anycode_github::api_base_from_env(), Tokens::with_service(keyring_service))),
            client: tokio::sync::Mutex::new(None),
            imports: StdMutex::new(HashMap::new()),
            refresher: AtomicBool::new(false),
        }
    }
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Engine {
    fn gh(&self) -> &GhState {
        &self.inner.gh
    }

    /// Points the engine at another GitHub API (`api_base`, e.g. a loopback test
    /// server or GitHub Enterprise) and token sources. `ANYCODE_GITHUB_API` and the
    /// keyring are the defaults.
    pub async fn configure_github(&self, api_base: &str, tokens: Tokens) {
        let mut api = api_base.trim().to_string();
        if !api.ends_with('/') {
            api.push('/');
        }
        *lock(&self.gh().settings) = (api, tokens);
        *self.gh().client.lock().await = None;
    }

    fn tokens(&self) -> (String, Tokens) {
        lock(&self.gh().settings).clone()
    }

    async fn token(&self) -> Result<Option<(Secret, TokenSource)>> {
        let (_, tokens) = self.tokens();
        blocking(move || Ok(tokens.resolve())).await
    }

    /// The API client with the current token (or none), made once and kept until
    /// the token changes.
    pub(crate) async fn client(&self) -> Result<Arc<Client>> {
        let mut guard = self.gh().client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let (api, _) = self.tokens();
        let token = self.token().await?.map(|(t, _)| t);
        let c = Arc::new(Client::new(&api, token.as_ref())?);
        *guard = Some(c.clone());
        Ok(c)
    }

    /// The token as git credentials, for the configured GitHub web host only (see
    /// [`anycode_git::token_refusal`]).
    async fn http_auth(&self) -> Result<Option<HttpAuth>> {
        let web = anycode_github::web_base(&self.tokens().0);
        Ok(self.token().await?.map(|(t, _)| HttpAuth::token(t.expose(), &web)))
    }

    // ----- token -----

    /// Where the token comes from and whether GitHub accepts it (one `GET /user`).
    pub async fn github_status(&self) -> Result<GitHubStatus> {
        let (api, _) = self.tokens();
        let source = self.token().await?.map(|(_, s)| s);
        let mut st = GitHubStatus { api, source, login: None, error: None };
        if source.is_some() {
            match self.client().await?.user().await {
                Ok(login) => st.login = Some(login),
                Err(e) => st.error = Some(e.to_string()),
            }
        }
        Ok(st)
    }

    /// Checks `token` with GitHub (`GET /user`) and saves it in the OS keyring; a
    /// token GitHub refuses is not saved. Returns the new status.
    ///
    /// Errors: `INVALID_INPUT` (not a token), `GITHUB_BAD_CREDENTIALS`,
    /// `GITHUB_UNREACHABLE`, `KEYRING_UNAVAILABLE`.
    pub async fn save_github_token(&self, token: &str) -> Result<GitHubStatus> {
        let secret = Secret::trimmed(token.to_string());
        anycode_github::token::check_token_shape(&secret)?;
        let (api, tokens) = self.tokens();
        Client::new(&api, Some(&secret))?.user().await?;
        blocking(move || Ok(tokens.save(&secret)?)).await?;
        *self.gh().client.lock().await = None;
        self.github_status().await
    }

    /// Removes the token from the OS keyring (a `GITHUB_TOKEN` or `gh` login stays).
    pub async fn remove_github_token(&self) -> Result<GitHubStatus> {
        let (_, tokens) = self.tokens();
        blocking(move || Ok(tokens.remove()?)).await?;
        *self.gh().client.lock().await = None;
        self.github_status().await
    }

    /// The token user's repositories, most recently pushed first.
    /// Errors: `GITHUB_NO_TOKEN`, `GITHUB_BAD_CREDENTIALS`, `GITHUB_UNREACHABLE`.
    pub async fn github_repos(&self) -> Result<Vec<RepoMeta>> {
        Ok(self.client().await?.user_repos().await?)
    }

    // ----- import -----

    /// Imports a repository: `owner/name` (looked up on GitHub, cloned from its web
    /// host) or a URL, cloned with the token when there is one into `path` or
    /// `<data_dir>/repos/<owner>/<name>`. Returns at once with the import in state
    /// `cloning`; it becomes a project (same id) when the clone completes, or
    /// `failed` with the reason, leaving nothing on disk.
    ///
    /// Errors (before anything is made): `INVALID_INPUT`, `GITHUB_NOT_FOUND`,
    /// `DESTINATION_EXISTS`, `CONFLICT` (already a project or being imported).
    pub async fn import_project(&self, req: ImportRequest) -> Result<Import> {
        let (repo, url) = RepoRef::parse_spec(&req.url)?;
        let (api, _) = self.tokens();
        let web = anycode_github::web_base(&api);
        let on_github = url.as_deref().is_none_or(|u| anycode_git::https_url(u).is_some_and(|h| h.starts_with(&web)));
        let mut clone_url = match &url {
            Some(u) => anycode_git::https_url(u).ok_or_else(|| Error::Invalid(format!("{u:?} is not a URL git can clone over HTTPS")))?,
            None => format!("{web}{}/{}.git", repo.owner, repo.name),
        };
        if on_github {
            // Ask GitHub first: a clear "not found" before anything is made, and the
            // canonical clone URL. An unreachable API is left to the clone to report.
            match self.client().await?.repo(&repo).await {
                Ok(meta) if url.is_none() => clone_url = meta.clone_url,
                Ok(_) => {}
                Err(e @ anycode_github::Error::NotFound(_)) => return Err(e.into()),
                Err(anycode_github::Error::BadCredentials(m)) => return Err(anycode_github::Error::BadCredentials(m).into()),
                Err(e) => tracing::info!(error = %e, "GitHub lookup failed; cloning anyway"),
            }
        }
        let dest = match req.path.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => {
                let p = PathBuf::from(p);
                if p.is_absolute() {
                    p
                } else {
                    std::env::current_dir().map_err(|e| Error::Internal(e.to_string()))?.join(p)
                }
            }
            None => self.inner.config.data_dir.join("repos").join(&repo.owner).join(&repo.name),
        };
        let dest_s = dest.to_string_lossy().into_owned();
        if std::fs::read_dir(&dest).is_ok_and(|mut d| d.next().is_some()) || dest.is_file() {
            return Err(anycode_git::Error::DestinationExists(dest_s).into());
        }
        if self.projects().await?.iter().any(|p| p.path == dest_s) {
            return Err(Error::Conflict(format!("{dest_s} is already a project")));
        }
        let id = anycode_core::new_id();
        let import = Import {
            id: id.clone(),
            name: repo.name.clone(),
            path: dest_s.clone(),
            url: anycode_git::strip_userinfo(&clone_url),
            github: on_github.then(|| repo.to_string()),
            status: "cloning",
            progress: CloneProgress { phase: "connecting", ..Default::default() },
            error: None,
            error_code: None,
        };
        let cancel = Arc::new(AtomicBool::new(false));
        {
            let mut imports = lock(&self.gh().imports);
            if imports.values().any(|(i, _)| i.path == dest_s && i.status == "cloning") {
                return Err(Error::Conflict(format!("{dest_s} is being imported already")));
            }
            imports.insert(id.clone(), (import.clone(), cancel.clone()));
        }
        let auth = self.http_auth().await?;
        let engine = self.clone();
        tokio::spawn(async move {
            let weak = Arc::downgrade(&engine.inner);
            let (id2, url2, dest2) = (id.clone(), clone_url.clone(), dest.clone());
            let result = blocking(move || {
                let mut report = |p: &CloneProgress| {
                    let Some(inner) = weak.upgrade() else { return false };
                    if let Some((i, _)) = lock(&inner.gh.imports).get_mut(&id2) {
                        i.progress = p.clone();
                    }
                    !cancel.load(Ordering::Relaxed)
                };
                Ok(anycode_git::clone_repo(&url2, &dest2, auth.as_ref(), &mut report)?)
            })
            .await;
            let result = match result {
                Ok(info) => {
                    let store = engine.inner.store.clone();
                    let p = Project {
                        id: id.clone(),
                        name: info.name.clone(),
                        path: info.root.to_string_lossy().into_owned(),
                        default_branch: info.current_branch.clone().unwrap_or_else(|| "main".into()),
                    };
                    let root = info.root.clone();
                    blocking(move || {
                        if let Err(e) = store.insert_project(&p) {
                            // Keep the invariant: a failed import leaves nothing.
                            let _ = std::fs::remove_dir_all(&root);
                            return Err(e.into());
                        }
                        Ok(())
                    })
                    .await
                }
                Err(e) => Err(e),
            };
            let mut imports = lock(&engine.gh().imports);
            match result {
                Ok(()) => {
                    imports.remove(&id);
                    tracing::info!(project = %id, "import complete");
                }
                // Cancelled by the user: nothing is left, so nothing is shown either.
                Err(Error::Git(anycode_git::Error::Cancelled)) => {
                    imports.remove(&id);
                    tracing::info!(project = %id, "import cancelled");
                }
                Err(e) => {
                    tracing::warn!(project = %id, error = %e, "import failed");
                    if let Some((i, _)) = imports.get_mut(&id) {
                        i.status = "failed";
                        i.error = Some(e.to_string());
                        i.error_code = Some(e.code());
                    }
                }
            }
        });
        Ok(import)
    }

    /// Imports running or failed, oldest first.
    pub fn imports(&self) -> Vec<Import> {
        let mut v: Vec<Import> = lock(&self.gh().imports).values().map(|(i, _)| i.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// One import, if `id` is one.
    pub fn import(&self, id: &str) -> Option<Import> {
        lock(&self.gh().imports).get(id).map(|(i, _)| i.clone())
    }

    /// Cancels a running import (it then shows as failed, leaving nothing) or
    /// forgets a failed one. Returns false when `id` is no import.
    pub fn dismiss_import(&self, id: &str) -> bool {
        let mut imports = lock(&self.gh().imports);
        match imports.get(id) {
            Some((i, cancel)) if i.status == "cloning" => {
                cancel.store(true, Ordering::Relaxed);
                true
            }
            Some(_) => {
                imports.remove(id);
                true
            }
            None => false,
        }
    }

    /// Removes staging folders of clones a crash interrupted, under `<data_dir>/repos`.
    pub(crate) fn sweep_partial_clones(&self) {
        let root = self.inner.config.data_dir.join("repos");
        let Ok(owners) = std::fs::read_dir(&root) else { return };
        for owner in owners.flatten() {
            let Ok(entries) = std::fs::read_dir(owner.path()) else { continue };
            for e in entries.flatten() {
                if anycode_git::is_partial_clone(&e.path()) {
                    tracing::info!(path = %e.path().display(), "removing an interrupted clone");
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }

    /// `owner/name` of the project's `origin` on GitHub, from its URL's last two
    /// path segments; `None` without an `origin`.
    pub async fn project_github(&self, project: &Project) -> Option<RepoRef> {
        let path = PathBuf::from(&project.path);
        let url = blocking(move || Ok(anycode_git::remote_url(&path, "origin")?)).await.ok().flatten()?;
        RepoRef::from_remote_url(&url)
    }

    async fn task_repo(&self, task: &Task) -> Result<(Project, RepoRef)> {
        let project = self.project(&task.project_id).await?;
        let repo = self.project_github(&project).await.ok_or_else(|| {
            Error::Invalid(format!("the project {:?} has no GitHub remote named origin (owner/name URL)", project.name))
        })?;
        Ok((project, repo))
    }

    // ----- push, pull requests -----

    /// Pushes the task's branch to `origin` with the token, checking every ref's
    /// verdict, and sets its upstream.
    ///
    /// Errors: `NO_REMOTE`, `PUSH_REJECTED`, `AUTH_FAILED`, `REMOTE_UNREACHABLE`.
    pub async fn push_task(&self, task_id: &str) -> Result<PushOutcome> {
        let task = self.task(task_id).await?;
        // What is pushed is the user's task branch: brought up to the sandbox's work.
        self.sync_task(&task).await?;
        let project = self.project(&task.project_id).await?;
        let auth = self.http_auth().await?;
        blocking(move || Ok(anycode_git::push_branch(Path::new(&project.path), "origin", &task.branch, auth.as_ref())?)).await
    }

    /// Opens the task's pull request (pushing the branch first), or returns the one
    /// already open for the branch, and records it with the task.
    ///
    /// Errors: `GITHUB_NO_TOKEN`, `INVALID_INPUT` (no GitHub remote), push errors,
    /// `GITHUB_VALIDATION` (e.g. no commits between base and branch), `GITHUB_BAD_CREDENTIALS`.
    pub async fn create_pr(&self, task_id: &str, req: CreatePr) -> Result<PullRequestInfo> {
        let task = self.task(task_id).await?;
        let (project, repo) = self.task_repo(&task).await?;
        let client = self.client().await?;
        if !client.authenticated() {
            return Err(anycode_github::Error::NoToken.into());
        }
        self.push_task(task_id).await?;
        let base = req.base.map(|b| b.trim().to_string()).filter(|b| !b.is_empty()).unwrap_or_else(|| task.base.clone());
        let title = req.title.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).unwrap_or_else(|| task.title.clone());
        let body = match req.body.filter(|b| !b.trim().is_empty()) {
            Some(b) => b,
            None => self.pr_body(&task, &project, &base).await,
        };
        let body = self.with_closes(&task.id, body).await;
        let pull = client.create_pull(&repo, &NewPull { head: task.branch.clone(), base, title, body, draft: req.draft }).await?;
        let info = PullRequestInfo {
            repo: repo.to_string(),
            number: pull.number,
            url: pull.url,
            state: pull.state,
            draft: pull.draft,
            checks: None,
            review: None,
            mergeable: pull.mergeable,
            refreshed_at: anycode_core::now_rfc3339(),
            refresh_error: None,
        };
        self.save_pr(&task.id, &info).await?;
        self.ensure_pr_refresher();
        let engine = self.clone();
        let tid = task.id.clone();
        tokio::spawn(async move {
            let _ = engine.refresh_pr(&tid).await;
        });
        Ok(info)
    }

    /// The generated pull request body: the prompt, the commits, a diffstat and
    /// where the work was made (agent, sandbox image digest, task).
    async fn pr_body(&self, task: &Task, project: &Project, base: &str) -> String {
        let (path, base2, branch) = (PathBuf::from(&project.path), base.to_string(), task.branch.clone());
        let (commits, stat) = blocking(move || {
            let commits = anycode_git::commits_since(&path, &base2, &branch, 50).unwrap_or_default();
            let stat = anycode_git::diffstat(&path, &base2, &branch).unwrap_or_default();
            Ok((commits, stat))
        })
        .await
        .unwrap_or_default();
        let image = self.image_digest(task).await;
        let mut b = String::new();
        if let Some(p) = task.prompt.as_deref().filter(|p| !p.trim().is_empty()) {
            b.push_str("## Prompt\n\n");
            for line in p.trim().lines() {
                b.push_str("> ");
                b.push_str(line);
                b.push('\n');
            }
            b.push('\n');
        }
        if !commits.is_empty() {
            b.push_str("## Commits\n\n");
            for (sha, subject) in &commits {
                b.push_str(&format!("- {sha} {subject}\n"));
            }
            b.push('\n');
        }
        if !stat.is_empty() {
            let (adds, dels): (usize, usize) = stat.iter().fold((0, 0), |(a, d), (_, x, y)| (a + x, d + y));
            b.push_str("## Changes\n\n```\n");
            for (path, a, d) in &stat {
                b.push_str(&format!("{path} | +{a} -{d}\n"));
            }
            b.push_str(&format!("{} file(s) changed, +{adds} -{dels}\n```\n\n", stat.len()));
        }
        b.push_str(&format!(
            "---\nMade with AnyCode: agent `{}`, sandbox image `{}`, task `{}` on branch `{}`.\n",
            task.agent, image, task.id, task.branch
        ));
        b
    }

    /// The sandbox image of the task's container, as `tag@sha256:…` when Docker
    /// knows it, else the content-hash tag AnyCode builds.
    async fn image_digest(&self, task: &Task) -> String {
        let tag = crate::sandbox_image_tag(&self.inner.config).unwrap_or_else(|_| "anycode-sandbox".into());
        let Some(cid) = task.container_id.as_deref() else { return tag };
        let Ok(docker) = tokio::time::timeout(Duration::from_secs(3), self.backend_for(task)).await.map_err(|_| ()).and_then(|r| r.map_err(|_| ())) else {
            return tag;
        };
        match docker.inspect(cid).await {
            Ok(Some(c)) => c.image.unwrap_or(tag),
            _ => tag,
        }
    }

    async fn save_pr(&self, task_id: &str, info: &PullRequestInfo) -> Result<()> {
        let (id, info) = (task_id.to_string(), info.clone());
        self.db(move |store| Ok(store.set_task_pr(&id, Some(&info))?)).await
    }

    /// Fills in `task.pr` from the database.
    pub(crate) async fn fill_prs(&self, tasks: &mut [Task]) -> Result<()> {
        let mut prs: HashMap<String, PullRequestInfo> = self.db(move |store| Ok(store.task_prs()?)).await?.into_iter().collect();
        for t in tasks {
            t.pr = prs.remove(&t.id);
        }
        Ok(())
    }

    /// Reads the task's pull request, its checks and reviews from GitHub (conditional
    /// GETs) and records them. A failure is recorded in `refresh_error` and returned.
    pub async fn refresh_pr(&self, task_id: &str) -> Result<PullRequestInfo> {
        let id = task_id.to_string();
        let Some(mut info) = self.db(move |store| Ok(store.task_pr(&id)?)).await? else {
            return Err(Error::Invalid(format!("task {task_id} has no pull request: open one first")));
        };
        let (repo, _) = RepoRef::parse_spec(&info.repo)?;
        let result = async { Ok::<_, Error>(self.client().await?.pull_status(&repo, info.number).await?) }.await;
        match result {
            Ok(st) => {
                info.state = st.pull.state;
                info.draft = st.pull.draft;
                info.mergeable = st.pull.mergeable;
                info.url = st.pull.url;
                info.checks = Some(serde_plain(&st.checks));
                info.review = Some(serde_plain(&st.review));
                info.refreshed_at = anycode_core::now_rfc3339();
                info.refresh_error = None;
                self.save_pr(task_id, &info).await?;
                Ok(info)
            }
            Err(e) => {
                info.refresh_error = Some(e.to_string());
                self.save_pr(task_id, &info).await?;
                Err(e)
            }
        }
    }

    /// Refreshes every open pull request once; returns how long to wait before the
    /// next round (longer after rate limits and failures).
    pub async fn refresh_open_prs(&self, backoff: Duration) -> Duration {
        let prs = self.db(move |store| Ok(store.task_prs()?)).await.unwrap_or_default();
        let mut next = PR_REFRESH;
        for (task_id, pr) in prs.into_iter().filter(|(_, p)| p.state == "open") {
            match self.refresh_pr(&task_id).await {
                Ok(_) => {}
                Err(Error::GitHub(anycode_github::Error::RateLimited { retry_after, .. })) => {
                    // GitHub said how long: wait that long (at least a minute), and
                    // stop this round.
                    let wait = Duration::from_secs(retry_after.unwrap_or(600).clamp(60, 3600));
                    tracing::info!(wait_s = wait.as_secs(), "GitHub rate limit: pausing pull request refresh");
                    return wait;
                }
                Err(e) => {
                    tracing::debug!(task = %task_id, pr = pr.number, error = %e, "pull request refresh failed");
                    next = (backoff * 2).clamp(PR_REFRESH, MAX_BACKOFF);
                }
            }
        }
        next
    }

    /// Starts the background refresh of open pull requests (once per engine; it
    /// ends when the engine is dropped).
    pub(crate) fn ensure_pr_refresher(&self) {
        if self.gh().refresher.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<crate::Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut wait = PR_REFRESH;
            loop {
                tokio::time::sleep(wait).await;
                let Some(inner) = weak.upgrade() else { return };
                wait = Engine { inner }.refresh_open_prs(wait).await;
            }
        });
    }

    /// Merges the task's pull request on GitHub (`merge`, `squash` or `rebase`),
    /// optionally deleting the branch on GitHub (the local branch stays), and
    /// records the new state.
    ///
    /// Errors: `INVALID_INPUT` (no pull request, bad method), `MERGE_REFUSED`,
    /// `GITHUB_BAD_CREDENTIALS`, `GITHUB_NO_TOKEN`.
    pub async fn merge_pr(&self, task_id: &str, method: &str, delete_branch: bool) -> Result<(MergeResult, PullRequestInfo)> {
        let method: MergeMethod = method.parse()?;
        let task = self.task(task_id).await?;
        let info = task.pr.clone().ok_or_else(|| Error::Invalid(format!("task {task_id} has no pull request: open one first")))?;
        let (_, repo) = self.task_repo(&task).await?;
        let client = self.client().await?;
        let result = client.merge_pull(&repo, info.number, method, None).await?;
        if delete_branch {
            if let Err(e) = client.delete_branch(&repo, &task.branch).await {
                tracing::warn!(error = %e, "deleting the merged branch on GitHub failed");
            }
        }
        let mut info = info;
        info.state = "merged".into();
        info.refreshed_at = anycode_core::now_rfc3339();
        self.save_pr(task_id, &info).await?;
        let info = self.refresh_pr(task_id).await.unwrap_or(info);
        Ok((result, info))
    }

    // ----- conflict radar -----

    /// Whether the task's work (committed or not) merges cleanly into its base right
    /// now, which files conflict, and which other tasks of the project change the
    /// same files. Computed in memory from the mirrors: nothing is written. The
    /// task's own work is brought out of its sandbox first.
    ///
    /// Errors: `TASK_NOT_FOUND`, `TASK_REPO_BROKEN`, `UNKNOWN_BRANCH`.
    pub async fn conflicts(&self, task_id: &str) -> Result<Conflicts> {
        let task = self.task(task_id).await?;
        self.sync_task(&task).await?;
        let all = self.project_conflicts(&task.project_id).await?;
        if let Some(c) = all.into_iter().find(|c| c.task_id == task.id) {
            return Ok(c);
        }
        // Left out of the project's radar: say why (a base branch that is gone, a
        // repository the agent broke).
        let check = self.merge_check(&task, false).await?;
        Ok(Conflicts { task_id: task_id.to_string(), check, overlaps: Vec::new() })
    }

    /// [`Engine::conflicts`] for every task of a project whose base branch is there
    /// and whose repository AnyCode can read; each running task's work is brought
    /// out of its sandbox first.
    pub async fn project_conflicts(&self, project_id: &str) -> Result<Vec<Conflicts>> {
        self.project(project_id).await?;
        let tasks = self.tasks(Some(project_id)).await?;
        let mut checks = Vec::new();
        for t in tasks {
            // One task's trouble (its base branch deleted, a broken repository) must
            // not blind the radar for the others.
            match self.merge_check(&t, true).await {
                Ok(check) => checks.push((t, check)),
                Err(e) => tracing::debug!(task = %t.id, error = %e, "no radar for this task"),
            }
        }
        let mut result = Vec::new();
        for (t, check) in &checks {
            let overlaps = checks
                .iter()
                .filter(|(o, _)| o.id != t.id)
                .filter_map(|(o, oc)| {
                    let files: Vec<String> = check.changed.iter().filter(|f| oc.changed.binary_search(f).is_ok()).cloned().collect();
                    (!files.is_empty()).then(|| Overlap { task_id: o.id.clone(), title: o.title.clone(), branch: o.branch.clone(), files })
                })
                .collect();
            result.push(Conflicts { task_id: t.id.clone(), check: check.clone(), overlaps });
        }
        Ok(result)
    }
}

/// An enum's serde name (`changes_requested`).
fn serde_plain<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}
