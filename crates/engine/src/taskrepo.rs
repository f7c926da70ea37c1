//! The task's repository, engine side (the git side is `anycode_git::taskrepo`).
//!
//! A sandbox works in a repository of its own under the data dir
//! (`worktrees/<project>/<task>`, mounted at /workspace), borrowing the user's
//! objects read-only. Its work comes out through git only:
//!
//! 1. `sh -c SNAPSHOT_SCRIPT` runs in the sandbox (an exec as the sandbox user) and
//!    records the working tree as a commit under `refs/anycode/snapshot`;
//! 2. `git upload-pack /workspace` runs in the sandbox, its stdin/stdout piped over
//!    the exec stream into libgit2's fetch of AnyCode's mirror
//!    (`mirrors/<task>.git`), bounded in bytes and time;
//! 3. the mirror's task branch goes into the user's `refs/heads/<task branch>`
//!    (only that ref; only as a fast-forward or where AnyCode left it).
//!
//! This happens on diff, commit, stop, update from base, push, pull request and
//! delete ([`Engine::sync_task`]); a stopped task answers from its mirror. Commit and
//! update from base run git in the sandbox (no hooks, the owner's identity in the
//! exec's environment), then bring the result out the same way. No step reads a file
//! the sandbox wrote or opens its repository on the host, and none needs a host path
//! in the container besides the read-only objects, so a sandbox on a remote Docker
//! engine can use the same steps.

use crate::{blocking, Engine, Error, Project, Result, Task, TaskStatus};
use anycode_git::taskrepo::{self as tr, PackStream};
use anycode_git::{Diff, MergeCheck, UpdateOutcome};
use anycode_sandbox::{PipeChunk, SandboxHost};
use bytes::Bytes;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// How long one fetch from a sandbox may take before it is cut off.
const FETCH_TIMEOUT: Duration = Duration::from_secs(300);
/// How old a task's last bringing-out may be for the project radar to use it.
const RADAR_FRESH: Duration = Duration::from_secs(2);
/// The most stdout/stderr kept of a git command run in the sandbox.
const EXEC_OUTPUT: usize = 64 * 1024;

/// A task's mounts: its working tree at /workspace and the user's `objects` folder
/// read-only at its own path (where the task repository's alternates name it).
/// The sandbox and the git helper of a stopped task get the same.
pub(crate) fn task_binds(workspace: &Path, objects: &Path) -> Vec<String> {
    let objects = objects.display();
    vec![format!("{}:{}", workspace.display(), tr::SANDBOX_WORKDIR), format!("{objects}:{objects}:ro")]
}

fn sh(script: &str, name: &str, args: &[&str]) -> Vec<String> {
    let mut v = vec!["sh".to_string(), "-c".to_string(), script.to_string(), name.to_string()];
    v.extend(args.iter().map(|a| a.to_string()));
    v
}

/// The owner's identity as the environment of a git command in the sandbox.
fn identity_env((name, email): &(String, String)) -> Vec<String> {
    vec![
        format!("GIT_AUTHOR_NAME={name}"),
        format!("GIT_AUTHOR_EMAIL={email}"),
        format!("GIT_COMMITTER_NAME={name}"),
        format!("GIT_COMMITTER_EMAIL={email}"),
    ]
}

impl Engine {
    /// `<data_dir>/worktrees/<project id>/<task id>`: the task's working tree and the
    /// sandbox's repository. Computed from ids, never read from anywhere a sandbox
    /// could write.
    pub(crate) fn workspace_path(&self, project_id: &str, task_id: &str) -> PathBuf {
        self.inner.config.worktrees_dir().join(project_id).join(task_id)
    }

    /// `<data_dir>/mirrors/<task id>.git`: AnyCode's bare mirror of the task.
    pub(crate) fn mirror_path(&self, task_id: &str) -> PathBuf {
        self.inner.config.mirrors_dir().join(format!("{task_id}.git"))
    }

    fn sync_lock(&self, task_id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.inner.sync_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(task_id.to_string()).or_default().clone()
    }

    /// The task's container when it runs and is not frozen.
    async fn live_container(&self, task: &Task) -> Result<Option<(SandboxHost, String)>> {
        let Some(cid) = task.container_id.clone() else { return Ok(None) };
        // Every agent state (`waiting_input`, `needs_approval`, `done`, …) stands in
        // for `running`: its sandbox runs, and its work must come out like any other.
        if !task.status.is_live() {
            return Ok(None);
        }
        let docker = self.backend_for(task).await?;
        match docker.inspect(&cid).await? {
            Some(c) if c.running && !c.paused => Ok(Some((docker, cid))),
            _ => Ok(None),
        }
    }

    /// Brings the sandbox's work out when its sandbox runs (see the module's notes):
    /// a snapshot of the working tree, a fetch into the mirror, and the user's task
    /// branch set to the sandbox's. Returns whether it could (false: the sandbox is
    /// not running, and the mirror keeps what was brought out last).
    ///
    /// Errors: `TASK_REPO_BROKEN` (the sandbox's repository is unusable or its git
    /// misbehaved), `BRANCH_DIVERGED`, Docker errors.
    pub(crate) async fn sync_task(&self, task: &Task) -> Result<bool> {
        if let Some((docker, cid)) = self.live_container(task).await? {
            let lock = self.sync_lock(&task.id);
            let _held = lock.lock().await;
            let project = self.project(&task.project_id).await?;
            let user = self.task_user(task, &project);
            self.sync_with(&docker, &cid, &user, task, &project).await?;
            return Ok(true);
        }
        self.sync_stopped(task).await
    }

    /// A sandbox that stopped or whose agent exited (it may have worked since the
    /// last time its work was brought out): once per stop, the same steps run in a
    /// helper container of the task's image with the task's folder, **no network**
    /// and no capabilities, removed right after. Its git runs with the sandbox's
    /// config, so it gets the sandbox's isolation, never the host's.
    async fn sync_stopped(&self, task: &Task) -> Result<bool> {
        let Some(cid) = task.container_id.clone() else { return Ok(false) };
        if matches!(task.status, TaskStatus::Paused | TaskStatus::Queued) || self.is_settled(&task.id) || !self.mirror_path(&task.id).exists() {
            return Ok(false);
        }
        let docker = self.backend_for(task).await?;
        if docker.inspect(&cid).await?.is_some_and(|c| c.running) {
            return Ok(false);
        }
        let lock = self.sync_lock(&task.id);
        let _held = lock.lock().await;
        let project = self.project(&task.project_id).await?;
        let user = self.task_user(task, &project);
        let image = self.ensure_agent_image(task.agent.as_str(), |e| tracing::debug!(?e, "sandbox image")).await?;
        self.image_on(&docker, &task.host, &image).await?;
        let binds = self.task_binds_for(task, &project).await?;
        let started = std::time::Instant::now();
        let helper = docker.start_helper(&format!("anycode-git-{}", task.id), &image, &task.id, &user, binds).await?;
        let result = self.sync_with(&docker, &helper, &user, task, &project).await;
        if let Err(e) = docker.remove(&helper).await {
            tracing::warn!(task = %task.id, error = %e, "removing the git helper container failed");
        }
        result?;
        tracing::debug!(task = %task.id, ms = started.elapsed().as_millis() as u64, "brought a stopped sandbox's work out");
        self.set_settled(&task.id, true);
        Ok(true)
    }

    fn is_settled(&self, task_id: &str) -> bool {
        self.inner.settled.lock().unwrap_or_else(|p| p.into_inner()).contains(task_id)
    }

    /// Marks a task's stopped sandbox as brought out (true) or as running again, or
    /// stopped since (false).
    pub(crate) fn set_settled(&self, task_id: &str, settled: bool) {
        let mut s = self.inner.settled.lock().unwrap_or_else(|p| p.into_inner());
        if settled {
            s.insert(task_id.to_string());
        } else {
            s.remove(task_id);
        }
    }

    async fn sync_with(&self, docker: &SandboxHost, cid: &str, user: &str, task: &Task, project: &Project) -> Result<()> {
        let started = std::time::Instant::now();
        let out = docker.exec_output(cid, sh(tr::SNAPSHOT_SCRIPT, "snapshot", &[&task.branch]), user, vec![], b"", EXEC_OUTPUT).await?;
        if out.exit_code != 0 {
            return Err(anycode_git::Error::TaskRepoBroken(tr::sandbox_text(&out.stderr)).into());
        }
        let (head, snapshot) = tr::parse_snapshot_output(&out.stdout)?;
        // The same work gives the same snapshot sha: nothing to fetch when the mirror
        // has it already (the common case of a diff polled while nothing changes).
        let mirror = self.mirror_path(&task.id);
        let known = blocking(move || Ok(tr::mirror_refs(&mirror).ok())).await?;
        if known != Some((head, Some(snapshot))) {
            self.fetch_from_sandbox(docker, cid, user, task).await?;
        }
        let (repo, mirror, branch) = (PathBuf::from(&project.path), self.mirror_path(&task.id), task.branch.clone());
        let back = blocking(move || Ok(tr::bring_back(&repo, &mirror, &branch)?)).await?;
        tracing::debug!(task = %task.id, ?back, ms = started.elapsed().as_millis() as u64, "brought the sandbox's work out");
        self.inner.synced_at.lock().unwrap_or_else(|p| p.into_inner()).insert(task.id.clone(), std::time::Instant::now());
        Ok(())
    }

    /// `git upload-pack` in the sandbox, piped over the exec stream into the mirror.
    async fn fetch_from_sandbox(&self, docker: &SandboxHost, cid: &str, user: &str, task: &Task) -> Result<tr::Fetched> {
        let cmd = ["git", "-c", "core.fsmonitor=false", "upload-pack", "--timeout=60", tr::SANDBOX_WORKDIR].map(String::from).to_vec();
        let pipe = docker.exec_pipe(cid, cmd, user, vec![], tr::SANDBOX_WORKDIR).await?;
        let (to_host, from_sandbox) = tokio::sync::mpsc::channel::<Bytes>(64);
        let (to_sandbox, mut from_host) = tokio::sync::mpsc::channel::<Vec<u8>>(64);
        let stderr = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let mut output = pipe.output;
        let err_buf = stderr.clone();
        let reader = tokio::spawn(async move {
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(PipeChunk::Stdout(b)) => {
                        if to_host.send(b).await.is_err() {
                            break;
                        }
                    }
                    Ok(PipeChunk::Stderr(b)) => {
                        let mut e = err_buf.lock().unwrap_or_else(|p| p.into_inner());
                        let room = 4096usize.saturating_sub(e.len());
                        e.extend_from_slice(&b[..b.len().min(room)]);
                    }
                    Err(_) => break,
                }
            }
        });
        let mut input = pipe.input;
        let writer = tokio::spawn(async move {
            while let Some(v) = from_host.recv().await {
                if input.write_all(&v).await.is_err() || input.flush().await.is_err() {
                    break;
                }
            }
            let _ = input.shutdown().await;
        });
        let stream = PackStream::new(from_sandbox, to_sandbox, tr::MAX_FETCH_BYTES);
        let (mirror, branch) = (self.mirror_path(&task.id), task.branch.clone());
        let fetch = blocking(move || Ok(tr::fetch_into_mirror(&mirror, &branch, stream)?));
        let result = match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
            Ok(r) => r,
            Err(_) => {
                // Ending the reader closes the stream under libgit2, which then fails.
                reader.abort();
                Err(anycode_git::Error::TaskRepoBroken(format!("the sandbox's git did not finish within {} s", FETCH_TIMEOUT.as_secs())).into())
            }
        };
        reader.abort();
        writer.abort();
        match result {
            Err(Error::Git(anycode_git::Error::TaskRepoBroken(m))) => {
                let said = stderr.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let detail = if said.is_empty() { m } else { format!("{m} (git in the sandbox said: {})", tr::sandbox_text(&said)) };
                Err(anycode_git::Error::TaskRepoBroken(detail).into())
            }
            other => other,
        }
    }

    /// Brings the work out before a lifecycle step (stop, delete, push): failures are
    /// logged, never fatal, since the step must still happen.
    pub(crate) async fn sync_best_effort(&self, task: &Task, why: &str) {
        if let Err(e) = self.sync_task(task).await {
            tracing::warn!(task = %task.id, error = %e, "bringing the sandbox's work out before {why} failed");
        }
    }

    /// The task's changes against its base (see [`anycode_git::taskrepo::task_diff`]),
    /// brought out of the sandbox first when it runs.
    ///
    /// Errors: `TASK_NOT_FOUND`, `TASK_REPO_BROKEN`, `BRANCH_DIVERGED`.
    pub async fn diff(&self, task_id: &str) -> Result<Diff> {
        let t = self.task(task_id).await?;
        self.sync_task(&t).await?;
        let project = self.project(&t.project_id).await?;
        let mirror = self.mirror_path(&t.id);
        self.check_task_repo(&t)?;
        blocking(move || Ok(tr::task_diff(Path::new(&project.path), &mirror, &t.base, &t.base_sha)?)).await
    }

    /// A task made by an older AnyCode (a git worktree of the user's repository)
    /// answers `TASK_REPO_BROKEN` until reconcile moved it (see [`Engine::migrate_legacy`]).
    pub(crate) fn check_task_repo(&self, t: &Task) -> Result<()> {
        if !self.mirror_path(&t.id).exists() {
            return Err(anycode_git::Error::TaskRepoBroken("AnyCode has no copy of this task's repository (made by an older AnyCode, or removed); restart AnyCode to move it, or delete the task".into()).into());
        }
        Ok(())
    }

    /// Commits everything in the task's working tree on its branch, in the sandbox
    /// (no hooks run, no signing, the owner's git identity), then brings the commit
    /// out to the user's branch. Returns the commit's sha.
    ///
    /// Errors: `EMPTY_MESSAGE`, `NOTHING_TO_COMMIT`, `NO_GIT_IDENTITY`, `CONFLICT`
    /// when the sandbox is not running, `TASK_REPO_BROKEN`.
    pub async fn commit(&self, task_id: &str, message: &str) -> Result<String> {
        if message.trim().is_empty() {
            return Err(anycode_git::Error::EmptyMessage.into());
        }
        self.ensure_unpaused(task_id).await?;
        let task = self.task(task_id).await?;
        self.check_task_repo(&task)?;
        let Some((docker, cid)) = self.live_container(&task).await? else {
            return Err(Error::Conflict(format!(
                "task {} is not running: start it to commit (its branch already has the commits made before it stopped)",
                task.id
            )));
        };
        let project = self.project(&task.project_id).await?;
        let path = PathBuf::from(&project.path);
        let identity = blocking(move || Ok(tr::user_identity(&path)?)).await?;
        let user = self.task_user(&task, &project);
        let lock = self.sync_lock(&task.id);
        let _held = lock.lock().await;
        self.sync_with(&docker, &cid, &user, &task, &project).await?;
        let mirror = self.mirror_path(&task.id);
        let pending = blocking(move || Ok(tr::uncommitted_in_mirror(&mirror)?)).await?;
        if pending.is_empty() {
            return Err(anycode_git::Error::NothingToCommit.into());
        }
        let argv = sh(tr::COMMIT_SCRIPT, "commit", &[]);
        let head = self.git_in_sandbox(&docker, &cid, &user, &task, &project, argv, &identity, message.as_bytes(), "git commit").await?;
        Ok(head.to_string())
    }

    /// Runs one of the git scripts in the sandbox with the owner's identity (its
    /// failure is `TASK_REPO_BROKEN`, `what` naming the command), brings the result
    /// out, and returns the task branch's new tip. The caller holds the sync lock.
    #[allow(clippy::too_many_arguments)]
    async fn git_in_sandbox(
        &self,
        docker: &SandboxHost,
        cid: &str,
        user: &str,
        task: &Task,
        project: &Project,
        argv: Vec<String>,
        identity: &(String, String),
        stdin: &[u8],
        what: &str,
    ) -> Result<anycode_git::taskrepo::Oid> {
        let out = docker.exec_output(cid, argv, user, identity_env(identity), stdin, EXEC_OUTPUT).await?;
        if out.exit_code != 0 {
            return Err(anycode_git::Error::TaskRepoBroken(format!("{what} failed: {}", tr::sandbox_text(&out.stderr))).into());
        }
        self.sync_with(docker, cid, user, task, project).await?;
        let mirror = self.mirror_path(&task.id);
        let (head, _) = blocking(move || Ok(tr::mirror_refs(&mirror)?)).await?;
        self.task_changed(&task.id);
        Ok(head)
    }

    /// The radar's check of one task, from its mirror (brought out first when
    /// `sync`, the sandbox runs and the last time is over [`RADAR_FRESH`] ago).
    pub(crate) async fn merge_check(&self, task: &Task, sync: bool) -> Result<MergeCheck> {
        let stale = {
            let at = self.inner.synced_at.lock().unwrap_or_else(|p| p.into_inner());
            at.get(&task.id).is_none_or(|t| t.elapsed() > RADAR_FRESH)
        };
        if sync && stale {
            self.sync_task(task).await?;
        }
        self.check_task_repo(task)?;
        let project = self.project(&task.project_id).await?;
        let (mirror, base) = (self.mirror_path(&task.id), task.base.clone());
        blocking(move || Ok(tr::mirror_merge_check(Path::new(&project.path), &mirror, &base)?)).await
    }

    /// Merges the task's base into its branch, in the sandbox, when that is clean
    /// (fast-forward or merge commit); refuses with the reason otherwise, changing
    /// nothing. The base's commits reach a local sandbox through the shared objects,
    /// a remote one as a bundle (`remote.rs`).
    ///
    /// Errors: `UNCOMMITTED_CHANGES`, `MERGE_CONFLICTS`, `UNKNOWN_BRANCH`,
    /// `NO_GIT_IDENTITY`, `CONFLICT` when the sandbox is not running,
    /// `TASK_REPO_BROKEN`.
    pub async fn update_from_base(&self, task_id: &str) -> Result<UpdateOutcome> {
        self.ensure_unpaused(task_id).await?;
        let lock = self.task_lock(task_id);
        let _held = lock.lock().await;
        let task = self.task(task_id).await?;
        self.check_task_repo(&task)?;
        let Some((docker, cid)) = self.live_container(&task).await? else {
            return Err(Error::Conflict(format!("task {} is not running: start it to update it from {}", task.id, task.base)));
        };
        let project = self.project(&task.project_id).await?;
        let user = self.task_user(&task, &project);
        let sync = self.sync_lock(&task.id);
        let _synced = sync.lock().await;
        self.sync_with(&docker, &cid, &user, &task, &project).await?;
        let (path, mirror, base) = (PathBuf::from(&project.path), self.mirror_path(&task.id), task.base.clone());
        let (check, pending, identity) = blocking(move || {
            let check = tr::mirror_merge_check(&path, &mirror, &base)?;
            let pending = tr::uncommitted_in_mirror(&mirror)?;
            let identity = tr::user_identity(&path);
            Ok((check, pending, identity))
        })
        .await?;
        if !pending.is_empty() {
            return Err(anycode_git::Error::Dirty(pending).into());
        }
        if check.behind == 0 {
            return Ok(UpdateOutcome::UpToDate { sha: check.head_sha });
        }
        if !check.clean {
            return Err(anycode_git::Error::MergeConflicts { branch: task.branch.clone(), base: task.base.clone(), files: check.conflicts }.into());
        }
        let identity = identity?;
        if crate::remote::is_remote(&task) {
            // No shared objects there: the base's new commits go in as a bundle.
            self.send_base(&docker, &cid, &task, &project).await?;
        }
        let message = format!("Merge branch '{}' into {}", task.base, task.branch);
        let argv = sh(tr::MERGE_SCRIPT, "merge", &[&check.base_sha, &message]);
        let head = self.git_in_sandbox(&docker, &cid, &user, &task, &project, argv, &identity, b"", "git merge").await?;
        Ok(if head.to_string() == check.base_sha {
            UpdateOutcome::FastForward { sha: head.to_string() }
        } else {
            UpdateOutcome::Merged { sha: head.to_string() }
        })
    }

    /// Moves a task made by an older AnyCode (a `git worktree` of the user's
    /// repository, whose container had the user's `.git` mounted writable) to a
    /// repository of its own: its container is removed (a new one without that
    /// mount is made at the next start), the worktree's `.git` file is replaced by a
    /// new repository on the task branch (the working files stay, uncommitted work
    /// included), a mirror is made, and the registration in the user's repository is
    /// removed by its known path. Returns whether the task was moved.
    pub(crate) async fn migrate_legacy(&self, docker: &SandboxHost, task: &Task) -> Result<bool> {
        let ws = self.workspace_path(&task.project_id, &task.id);
        if !anycode_git::taskrepo::is_legacy_worktree(&ws) {
            return Ok(false);
        }
        tracing::warn!(task = %task.id, "moving a task of an older AnyCode to a repository of its own");
        if let Some(cid) = &task.container_id {
            if let Ok(Some(c)) = docker.inspect(cid).await {
                if c.paused {
                    let _ = docker.unpause(cid).await;
                }
            }
            docker.remove(cid).await?;
        }
        let project = self.project(&task.project_id).await?;
        let (repo, mirror, branch, name) = (PathBuf::from(&project.path), self.mirror_path(&task.id), task.branch.clone(), legacy_worktree_name(&task.id));
        let user = sandbox_user(Path::new(&project.path));
        blocking(move || {
            tr::migrate_legacy_worktree(&repo, &ws, &mirror, &branch)?;
            anycode_git::remove_legacy_registration(&repo, &name)?;
            prepare_ownership(&user, &ws);
            Ok(())
        })
        .await?;
        let tid = task.id.clone();
        self.db(move |store| {
            store.set_task_container(&tid, None)?;
            store.set_task_state(
                &tid,
                TaskStatus::Stopped,
                None,
                Some("AnyCode moved this task to a repository of its own (an older version let the sandbox write your repository's .git); Start makes a new sandbox"),
            )?;
            Ok(())
        })
        .await?;
        Ok(true)
    }
}

/// The name an older AnyCode registered a task's worktree under in the user's
/// repository (`.git/worktrees/anycode-<task id>`), removed when the task goes.
pub(crate) fn legacy_worktree_name(task_id: &str) -> String {
    format!("anycode-{task_id}")
}

/// The `uid:gid` sandbox processes run as: the owner of the repository, so files
/// the agent writes belong to the user; `1000:1000` (the image's `agent`) when the
/// repository belongs to root, since sandboxes never run as root.
pub(crate) fn sandbox_user(repo: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(repo) {
            if m.uid() != 0 {
                return format!("{}:{}", m.uid(), m.gid());
            }
        }
    }
    let _ = repo;
    "1000:1000".to_string()
}

/// When the sandbox runs as the image's `agent` (1000:1000: the repository belongs
/// to root), hands the task's working tree to it so the agent can write its files
/// and its repository. Called only before the task's sandbox first starts (or after
/// it was removed), so every path in the folder is AnyCode's own; `lchown` never
/// follows a symlink and the walk never enters one.
pub(crate) fn prepare_ownership(user: &str, worktree: &Path) {
    #[cfg(unix)]
    {
        if user != "1000:1000" {
            return;
        }
        chown_tree(worktree, 1000, 1000);
    }
    #[cfg(not(unix))]
    let _ = (user, worktree);
}

#[cfg(unix)]
pub(crate) fn chown_tree(root: &Path, uid: u32, gid: u32) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Err(e) = std::os::unix::fs::lchown(&p, Some(uid), Some(gid)) {
            tracing::debug!(path = %p.display(), error = %e, "chown failed");
        }
        if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
}
