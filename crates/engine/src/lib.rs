//! AnyCode's task engine: the one place that ties projects, tasks, git worktrees,
//! Docker sandboxes and terminals together.
//!
//! - [`Engine::open`] opens the data dir and database; Docker is connected lazily
//!   (and again after it went away), and the first successful connection reconciles
//!   the database with the containers Docker has ([`Engine::reconcile`]).
//! - Task lifecycle: [`Engine::create_task`] (branch → worktree → container →
//!   attach → start, undone step by step on failure), [`Engine::stop_task`],
//!   [`Engine::start_task`], [`Engine::delete_task`] (keeps the branch).
//! - Terminals: the agent terminal is the container's main process (attached, so it
//!   survives dropped clients and server restarts); extra shells are exec sessions.
//!   [`Engine::terminal`] hands a [`Terminal`] hub to the server for its viewers.
//! - Paired devices ([`Engine::add_device`], …): a name, a role and the hash of a
//!   session secret; pairing codes and cookies are the server's.
//! - Blocking work (SQLite, git) runs on `spawn_blocking`.
//!
//! This crate knows nothing of HTTP or JSON.

mod agents;
mod credentials;
mod devices;
mod error;
mod events;
mod github;
mod governor;
mod handover;
mod hooks;
mod listing;
mod network;
mod runtime;
mod taskrepo;

pub use anycode_core::{
    check_device_name, Agent, Attention, BlockedHost, Config, Credential, Device, DeviceRole, NetworkMode, NetworkPolicy, PermissionMode, Project,
    Settings, Task, TaskStatus, TerminalInfo, TerminalKind, Usage,
};
pub use agents::{AgentInfo, SCREEN_QUIET, SCREEN_TICK};
pub use anycode_agents::{Profile, Profiles};
pub use devices::session_hash;
pub use anycode_credentials::{Name as CredentialName, Secret, Status as CredentialsStatus};
pub use anycode_git::{Branches, Diff, FileDiff};
pub use anycode_sandbox::image::BuildEvent;
pub use anycode_terminal::{Recv, Terminal, Viewer, ViewerHandle};
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, EVENT_BUFFER};
pub use network::{HookService, NetworkRequest, NetworkStatus, BUILTIN_ALLOW};
pub use hooks::{claude_settings, ApprovalDecision, HookAnswer, HookEvent, HOOK_PATH, SANDBOX_HOOK_URL};
pub use governor::tick_interval;
pub use listing::{TaskFilter, TaskPage, MAX_PAGE};
pub use github::{Conflicts, CreatePr, GitHubStatus, Import, ImportRequest, Overlap};
pub use anycode_git::{CloneProgress, MergeCheck, PushOutcome, UpdateOutcome};
pub use anycode_github::token::{MemoryStore, TokenSource, TokenStore, Tokens};
pub use anycode_github::{MergeMethod, MergeResult, RepoMeta, Secret as GitHubSecret};
pub use anycode_core::PullRequestInfo;

use anycode_sandbox::{ContainerSpec, Docker};
use anycode_store::Store;
use runtime::{ContainerControl, ExecControl};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::Mutex;

/// How long input waits for a re-attached sandbox's relay to listen (after that it
/// goes through anyway, and the relay's failure is logged).
const RELAY_READY_WAIT: Duration = Duration::from_secs(15);

/// Longest task title accepted, in characters.
pub const MAX_TITLE: usize = 200;

/// Input of [`Engine::create_task`].
#[derive(Debug, Clone, Default)]
pub struct NewTask {
    /// Free text, 1 to [`MAX_TITLE`] characters.
    pub title: String,
    /// Agent name: `shell` or `claude`.
    pub agent: String,
    /// Base branch; the repository's current branch when `None`.
    pub base: Option<String>,
    /// Branch to create; `anycode/<slug of title>` when `None` (with `-2`, `-3`, …
    /// appended while that name is taken).
    pub branch: Option<String>,
    /// Instructions handed to the agent on its first start.
    pub prompt: Option<String>,
    /// Which credential the agent gets: `none`, `subscription` or `api_key`; the
    /// agent's default when `None` (see [`Engine::create_task`]).
    pub credential: Option<String>,
    /// Record the agent terminal as an asciicast (default: yes).
    pub record: Option<bool>,
    /// Claude Code's permission mode: `default`, `acceptEdits`, `plan`, `auto`,
    /// `bypassPermissions` (Claude Code's own default when `None`).
    pub permission_mode: Option<String>,
    /// CPU cap in CPUs (the settings' default when `None`).
    pub cpus: Option<f64>,
    /// Memory cap in MiB (the settings' default when `None`).
    pub memory_mb: Option<u64>,
    /// The network policy (added to the defaults, see `network.rs`).
    pub network: Option<NetworkRequest>,
}

/// Docker's state as [`Engine::health`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerHealth {
    /// Whether the engine answered.
    pub ok: bool,
    /// The engine's version when it answered.
    pub version: Option<String>,
    /// What to do when it did not.
    pub error: Option<String>,
}

struct TermEntry {
    task_id: String,
    info: TerminalInfo,
    terminal: Terminal,
    seq: u64,
    /// For exec terminals: `(container, user)` to hang up its processes on close.
    hangup: Option<(String, String)>,
}

/// Sends SIGHUP to every process of the container whose environment has
/// `ANYCODE_TERMINAL=$1`: an exec terminal's shell, its jobs, and whatever they
/// started, as a terminal emulator does when its window closes. Docker itself leaves
/// an exec's processes running when its stream closes.
const HANGUP_SCRIPT: &str = r#"for p in /proc/[0-9]*; do
  if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx "ANYCODE_TERMINAL=$1"; then kill -HUP "${p#/proc/}" 2>/dev/null; fi
done"#;

struct Inner {
    config: Config,
    store: Store,
    instance: String,
    docker: Mutex<Option<Docker>>,
    image: Mutex<Option<String>>,
    terminals: StdMutex<HashMap<String, TermEntry>>,
    task_locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    seq: std::sync::atomic::AtomicU64,
    gh: github::GhState,
    /// Task changes for live views ([`Engine::events`]).
    events: tokio::sync::broadcast::Sender<Event>,
    /// The agents' states by task id (see `events.rs`).
    agent_states: StdMutex<HashMap<String, events::AgentState>>,
    /// Hook tokens, waiting approvals and the hook listener's URL (see `hooks.rs`).
    hooks: hooks::Hooks,
    /// Usage, the run queue, idle timers (see `governor.rs`).
    gov: governor::GovState,
    /// Agent profiles (see `agents.rs`).
    profiles: anycode_agents::Profiles,
    /// Held while an image variant builds.
    variant_build: Mutex<()>,
    /// The generation of each task's screen watcher (see `agents.rs`).
    screen_watchers: StdMutex<HashMap<String, u64>>,
    /// One lock per task around bringing its work out of the sandbox (see `taskrepo.rs`).
    sync_locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    /// When each task's work was last brought out.
    synced_at: StdMutex<HashMap<String, std::time::Instant>>,
    /// Tasks whose stopped sandbox's work was brought out since it stopped.
    settled: StdMutex<std::collections::HashSet<String>>,
    /// Network policies in force, relays and the hook service (see `network.rs`).
    net: network::NetState,
}

/// The engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// Runs blocking work (SQLite, git) off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("background work failed: {e}")))?
}

impl Engine {
    /// Opens the data dir (creating it, mode 0700 on Unix) and the database.
    /// Docker is not contacted here.
    ///
    /// Errors: `INVALID_SETTINGS` for an `[agents.NAME]` table that cannot be used.
    pub async fn open(config: Config) -> Result<Engine> {
        let profiles = anycode_agents::Profiles::from_settings(&config.settings.agents).map_err(Error::Agents)?;
        let dir = config.data_dir.clone();
        let db = config.db_path();
        let store = blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| Error::Internal(format!("creating {}: {e}", dir.display())))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            Ok(Store::open(&db)?)
        })
        .await?;
        let instance = instance_id(&config.data_dir);
        // The GitHub token lives next to AnyCode's other credentials in the keyring.
        let keyring_service = config.keyring_service.clone();
        let engine = Engine {
            inner: Arc::new(Inner {
                config,
                store,
                instance,
                docker: Mutex::new(None),
                image: Mutex::new(None),
                terminals: StdMutex::new(HashMap::new()),
                task_locks: StdMutex::new(HashMap::new()),
                seq: Default::default(),
                gh: github::GhState::new(keyring_service.as_deref()),
                events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
                agent_states: StdMutex::new(HashMap::new()),
                hooks: hooks::Hooks::default(),
                gov: Default::default(),
                profiles,
                variant_build: Mutex::new(()),
                screen_watchers: StdMutex::new(HashMap::new()),
                sync_locks: StdMutex::new(HashMap::new()),
                synced_at: StdMutex::new(HashMap::new()),
                settled: StdMutex::new(Default::default()),
                net: Default::default(),
            }),
        };
        engine.sweep_partial_clones();
        // Agents that outlived the last run keep posting hooks with their token.
        let store = engine.inner.store.clone();
        let ids: Vec<String> = blocking(move || Ok(store.tasks(None)?)).await?.into_iter().map(|t| t.id).collect();
        engine.load_token_hashes(&ids);
        engine.restore_pending_approvals().await;
        engine.ensure_pr_refresher();
        engine.ensure_governor();
        Ok(engine)
    }

    /// The settings this engine runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The label value that marks this instance's containers (12 hex digits derived
    /// from the data dir's path).
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    /// The connected Docker engine, connecting (and reconciling) first if needed.
    ///
    /// Errors: [`Error::DockerUnavailable`] with a sentence saying what to start.
    pub async fn docker(&self) -> Result<Docker> {
        let mut guard = self.inner.docker.lock().await;
        let mut reconnect = false;
        if let Some(d) = guard.as_ref() {
            if tokio::time::timeout(Duration::from_secs(3), d.api().ping()).await.is_ok_and(|r| r.is_ok()) {
                return Ok(d.clone());
            }
            *guard = None;
            reconnect = true;
        }
        let d = Docker::connect(&self.inner.instance, self.inner.config.docker_host.as_deref()).await?;
        *guard = Some(d.clone());
        drop(guard);
        tracing::info!(endpoint = %d.endpoint, reconnect, "connected to Docker");
        if reconnect {
            // Docker came back (restarted under AnyCode): the caller may hold a task's
            // lock (a start), which reconcile takes too, so it runs on its own.
            let (engine, d2) = (self.clone(), d.clone());
            tokio::spawn(async move {
                if let Err(e) = engine.reconcile_with(&d2).await {
                    tracing::warn!(error = %e, "reconciling with Docker failed");
                }
            });
        } else if let Err(e) = self.reconcile_with(&d).await {
            tracing::warn!(error = %e, "reconciling with Docker failed");
        }
        Ok(d)
    }

    /// Whether Docker answers, with its version or what to do.
    pub async fn health(&self) -> DockerHealth {
        match self.docker().await {
            Ok(d) => match d.version().await {
                Ok(v) => DockerHealth { ok: true, version: Some(v), error: None },
                Err(e) => DockerHealth { ok: false, version: None, error: Some(e.to_string()) },
            },
            Err(e) => DockerHealth { ok: false, version: None, error: Some(e.to_string()) },
        }
    }

    /// Makes sure the sandbox image exists (building it when missing or outdated,
    /// reporting progress) and returns its tag.
    pub async fn ensure_image(&self, progress: impl FnMut(BuildEvent) + Send) -> Result<String> {
        let docker = self.docker().await?;
        let mut guard = self.inner.image.lock().await;
        if let Some(tag) = guard.as_ref() {
            if docker.image_exists(tag).await? {
                return Ok(tag.clone());
            }
        }
        let cfg = &self.inner.config;
        let tag = docker.ensure_image(cfg.image.as_deref(), cfg.extra_ca_dir.as_deref(), progress).await?;
        *guard = Some(tag.clone());
        Ok(tag)
    }

    // ----- projects -----

    /// Adds the git repository at `path` (absolute, or relative to the server's
    /// working directory) as a project.
    ///
    /// Errors: `PATH_NOT_FOUND`, `NOT_A_REPOSITORY`, `ALREADY_EXISTS`.
    pub async fn add_project(&self, path: &str) -> Result<Project> {
        let path = path.trim().to_string();
        if path.is_empty() {
            return Err(Error::Invalid("path is empty: give the path of a git repository".into()));
        }
        let store = self.inner.store.clone();
        blocking(move || {
            let info = anycode_git::inspect_repo(Path::new(&path))?;
            let root = info.root.to_string_lossy().into_owned();
            if let Some(existing) = store.projects()?.into_iter().find(|p| p.path == root) {
                return Err(Error::Conflict(format!("{root} is already the project {:?}", existing.name)));
            }
            let default_branch = info.current_branch.unwrap_or_else(|| "main".into());
            let p = Project { id: anycode_core::new_id(), name: info.name, path: root, default_branch };
            store.insert_project(&p)?;
            Ok(p)
        })
        .await
    }

    /// All projects, oldest first.
    pub async fn projects(&self) -> Result<Vec<Project>> {
        let store = self.inner.store.clone();
        blocking(move || Ok(store.projects()?)).await
    }

    /// One project. Errors: `PROJECT_NOT_FOUND`.
    pub async fn project(&self, id: &str) -> Result<Project> {
        let store = self.inner.store.clone();
        let id = id.to_string();
        blocking(move || store.project(&id)?.ok_or(Error::NotFound { what: "project", id })).await
    }

    /// Removes a project from AnyCode (the repository is untouched).
    /// Errors: `PROJECT_NOT_FOUND`; `CONFLICT` while it has tasks.
    pub async fn delete_project(&self, id: &str) -> Result<()> {
        let p = self.project(id).await?;
        let store = self.inner.store.clone();
        blocking(move || {
            let n = store.tasks(Some(&p.id))?.len();
            if n > 0 {
                return Err(Error::Conflict(format!("project {:?} still has {n} task(s): delete them first", p.name)));
            }
            store.delete_project(&p.id)?;
            Ok(())
        })
        .await
    }

    /// The project's local branches and its current branch.
    pub async fn branches(&self, project_id: &str) -> Result<Branches> {
        let p = self.project(project_id).await?;
        blocking(move || Ok(anycode_git::branches(Path::new(&p.path))?)).await
    }

    // ----- tasks -----

    /// Tasks with their terminals, oldest first; only those of `project` when given.
    pub async fn tasks(&self, project: Option<&str>) -> Result<Vec<Task>> {
        let store = self.inner.store.clone();
        let project = project.map(str::to_string);
        let mut tasks = blocking(move || Ok(store.tasks(project.as_deref())?)).await?;
        self.decorate_without_prs(&mut tasks);
        self.fill_prs(&mut tasks).await?;
        Ok(tasks)
    }

    /// One task with its terminals. Errors: `TASK_NOT_FOUND`.
    pub async fn task(&self, id: &str) -> Result<Task> {
        let store = self.inner.store.clone();
        let id = id.to_string();
        let mut t = blocking(move || store.task(&id)?.ok_or(Error::NotFound { what: "task", id })).await?;
        t.terminals = self.task_terminals(&t);
        self.overlay_agent_state(&mut t);
        self.overlay_governor(&mut t);
        self.fill_prs(std::slice::from_mut(&mut t)).await?;
        Ok(t)
    }

    fn task_terminals(&self, t: &Task) -> Vec<TerminalInfo> {
        let terms = self.inner.terminals.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<&TermEntry> = terms.values().filter(|e| e.task_id == t.id).collect();
        list.sort_by_key(|e| (e.info.kind != TerminalKind::Agent, e.seq));
        let mut out: Vec<TerminalInfo> = list.into_iter().map(|e| e.info.clone()).collect();
        if !out.iter().any(|i| i.kind == TerminalKind::Agent) {
            out.insert(0, agent_terminal_info(t));
        }
        out
    }

    fn task_lock(&self, id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.inner.task_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    /// Creates a task: validates everything first, then the branch from the base, a
    /// worktree of it under the data dir, and a started container with the worktree
    /// at /workspace. Any failure undoes what was made (no stray branch, worktree or
    /// container).
    ///
    /// Errors: `INVALID_INPUT` (title, agent), `PROJECT_NOT_FOUND`, `UNKNOWN_BRANCH`,
    /// `INVALID_BRANCH_NAME`, `BRANCH_EXISTS`, `DOCKER_UNAVAILABLE`.
    pub async fn create_task(&self, project_id: &str, req: NewTask) -> Result<Task> {
        let title = req.title.trim().to_string();
        if title.is_empty() {
            return Err(Error::Invalid("title is empty".into()));
        }
        if title.chars().count() > MAX_TITLE {
            return Err(Error::Invalid(format!("title is longer than {MAX_TITLE} characters")));
        }
        let agent: Agent = req.agent.trim().parse()?;
        let profile = self.profile(agent.as_str())?.clone();
        let permission_mode: Option<PermissionMode> = match req.permission_mode.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
            Some(m) => Some(m.parse()?),
            None => None,
        };
        if let Some(c) = req.cpus {
            if !(c.is_finite() && c > 0.0 && c <= 1024.0) {
                return Err(Error::Invalid(format!("cpus {c}: give a number of CPUs above 0 (e.g. 1.5)")));
            }
        }
        if let Some(m) = req.memory_mb {
            if !(64..=16 * 1024 * 1024).contains(&m) {
                return Err(Error::Invalid(format!("memory_mb {m}: give at least 64 MiB")));
            }
        }
        let credential: Option<Credential> = match req.credential.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => Some(c.parse()?),
            None => None,
        };
        if let Some(c) = credential {
            self.check_credential(&profile, c)?;
        }
        let project = self.project(project_id).await?;
        let network = self.new_task_network(&project.id, req.network).await?;
        let repo = PathBuf::from(&project.path);
        let base = req.base.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
        let prompt = req.prompt.filter(|p| !p.trim().is_empty());
        let explicit_branch = req.branch.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());

        // Validate git input before touching Docker, so bad input fails fast even
        // when Docker is down.
        let branch = {
            let repo = repo.clone();
            let base = base.clone();
            let title = title.clone();
            blocking(move || {
                let branches = anycode_git::branches(&repo)?;
                match &base {
                    Some(b) if !branches.branches.contains(b) => return Err(anycode_git::Error::UnknownBranch(b.clone()).into()),
                    None if branches.current.is_none() => return Err(anycode_git::Error::NoCurrentBranch.into()),
                    _ => {}
                }
                match explicit_branch {
                    Some(b) => {
                        anycode_git::check_new_branch(&repo, &b)?;
                        Ok(b)
                    }
                    None => {
                        let stem = format!("anycode/{}", anycode_core::slugify(&title));
                        let mut candidate = stem.clone();
                        let mut n = 2;
                        while branches.branches.contains(&candidate) {
                            candidate = format!("{stem}-{n}");
                            n += 1;
                        }
                        anycode_git::check_new_branch(&repo, &candidate)?;
                        Ok(candidate)
                    }
                }
            })
            .await?
        };

        let docker = self.docker().await?;
        self.check_cpus(&docker, req.cpus).await?;
        let image = self.ensure_agent_image(agent.as_str(), |e| tracing::info!(?e, "sandbox image")).await?;
        let credential = match credential {
            Some(c) => c,
            None => self.default_credential_for(&profile).await?,
        };

        let id = anycode_core::new_id();
        let worktree = self.workspace_path(&project.id, &id);
        let mirror = self.mirror_path(&id);
        let ((base, base_sha), objects, identity) = {
            let (repo, branch, worktree, mirror) = (repo.clone(), branch.clone(), worktree.clone(), mirror.clone());
            let base = base.clone();
            let user = sandbox_user(&repo);
            blocking(move || {
                let made = anycode_git::taskrepo::create_task_repo(&repo, base.as_deref(), &branch, &worktree, &mirror)?;
                // Before the sandbox exists: nothing in the folder is the sandbox's yet.
                prepare_ownership(&user, &worktree);
                let objects = anycode_git::taskrepo::objects_dir(&repo)?;
                Ok((made, objects, anycode_git::taskrepo::user_identity(&repo).ok()))
            })
            .await?
        };
        let task = Task {
            id: id.clone(),
            project_id: project.id.clone(),
            title,
            agent,
            branch: branch.clone(),
            base,
            base_sha,
            prompt,
            status: TaskStatus::Running,
            exit_code: None,
            error: None,
            container_id: None,
            worktree: worktree.to_string_lossy().into_owned(),
            agent_terminal_id: anycode_core::new_id(),
            record: req.record.unwrap_or(true),
            terminals: vec![],
            created_at: anycode_core::now_rfc3339(),
            pr: None,
            credential,
            credential_source: None,
            credential_expires_at: None,
            credential_problem: None,
            permission_mode,
            cpus: Some(req.cpus.unwrap_or(self.inner.config.limits.nano_cpus as f64 / 1e9)),
            memory_mb: Some(req.memory_mb.unwrap_or((self.inner.config.limits.memory_bytes / (1024 * 1024)) as u64)),
            attention: None,
            usage: None,
            queue_position: None,
            network,
        };
        let lock = self.task_lock(&id);
        let _held = lock.lock().await;
        let result = async {
            let container_id = docker.create_container(&self.container_spec(&task, &project, &image, &objects, identity.as_ref())).await?;
            let mut task = task.clone();
            task.container_id = Some(container_id.clone());
            // Running when a slot is free, else queued with the container made; the
            // governor starts it when its turn comes.
            if !self.insert_admitted(&mut task).await? {
                return Ok::<Task, Error>(task);
            }
            let terminal = self.register_agent_terminal(&task, Terminal::new(&task.agent_terminal_id, self.inner.config.scrollback_bytes));
            let handover = self.prepare_handover(&task).await?;
            // The first start submits the prompt (start-agent), so its session is `running`.
            self.set_prompt_submitted(&task.id, task.prompt.is_some());
            self.attach_and_start(&docker, &task, &terminal, handover).await?;
            Ok::<Task, Error>(task)
        }
        .await;
        match result {
            Ok(mut t) => {
                t.terminals = self.task_terminals(&t);
                self.overlay_agent_state(&mut t);
                self.overlay_governor(&mut t);
                self.task_changed(&t.id);
                Ok(t)
            }
            Err(e) => {
                tracing::warn!(task = %id, error = %e, "task creation failed; undoing");
                self.forget_terminals(&id);
                if let Ok(Some(c)) = docker.inspect(&container_name(&id)).await {
                    let _ = docker.remove(&c.id).await;
                }
                let store = self.inner.store.clone();
                let undo_id = id.clone();
                let _ = blocking(move || {
                    store.delete_task(&undo_id)?;
                    anycode_git::taskrepo::remove_task_repo(&worktree, &mirror)?;
                    anycode_git::delete_branch(&repo, &branch)?;
                    Ok(())
                })
                .await;
                Err(e)
            }
        }
    }

    /// The container of a task: its working tree (the sandbox's own repository) at
    /// /workspace, and the user's `objects` folder read-only at its own path (where
    /// the task repository's alternates name it). Nothing else of the host.
    fn container_spec(&self, task: &Task, project: &Project, image: &str, objects: &Path, identity: Option<&(String, String)>) -> ContainerSpec {
        let mut env = vec![
            "TERM=xterm-256color".to_string(),
            "COLORTERM=truecolor".to_string(),
            format!("ANYCODE_TASK={}", anycode_core::slugify(&task.title)),
            format!("ANYCODE_AGENT={}", task.agent),
        ];
        if let Some(p) = &task.prompt {
            env.push(format!("ANYCODE_PROMPT={p}"));
        }
        if let Some(m) = task.permission_mode {
            env.push(format!("ANYCODE_PERMISSION_MODE={}", m.as_str()));
        }
        // The agent's own commits carry the owner's identity (not a secret).
        if let Some((name, email)) = identity {
            for who in ["AUTHOR", "COMMITTER"] {
                env.push(format!("GIT_{who}_NAME={name}"));
                env.push(format!("GIT_{who}_EMAIL={email}"));
            }
        }
        // The profile's commands for start-agent: base64 of NUL-terminated argv, so
        // any argument survives (first start with the prompt, later starts resume).
        if let Ok(profile) = self.inner.profiles.get(task.agent.as_str()) {
            env.push(format!("ANYCODE_AGENT_CMD={}", agents::encode_argv(&profile.start_argv(task.prompt.as_deref()))));
            env.push(format!("ANYCODE_AGENT_RESUME={}", agents::encode_argv(&profile.resume_argv())));
        }
        // Every sandbox's HTTP(S) goes through AnyCode's egress proxy, reached over
        // its relay on loopback (not secret). The host's own proxies never enter it:
        // the egress proxy goes through them itself.
        for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
            env.push(format!("{k}=http://127.0.0.1:{}", anycode_egress::PROXY_PORT));
        }
        env.extend(["NO_PROXY=localhost,127.0.0.1".to_string(), "no_proxy=localhost,127.0.0.1".to_string()]);
        // start-agent receives the credential at every start (see handover.rs); a
        // shell without one stays a plain login shell.
        let cmd = if credentials::uses_start_agent(task) {
            vec!["/opt/anycode/bin/start-agent".to_string(), task.agent.to_string()]
        } else {
            vec!["bash".to_string(), "-l".to_string()]
        };
        let limits = &self.inner.config.limits;
        ContainerSpec {
            name: container_name(&task.id),
            image: image.to_string(),
            task_id: task.id.clone(),
            project_id: project.id.clone(),
            cmd,
            env,
            user: sandbox_user(Path::new(&project.path)),
            binds: taskrepo::task_binds(&self.workspace_path(&project.id, &task.id), objects),
            memory_bytes: task.memory_mb.map(|m| (m as i64) * 1024 * 1024).unwrap_or(limits.memory_bytes),
            nano_cpus: task.cpus.map(|c| (c * 1e9) as i64).unwrap_or(limits.nano_cpus),
            pids: limits.pids,
        }
    }

    fn register_agent_terminal(&self, task: &Task, terminal: Terminal) -> Terminal {
        let mut terms = self.inner.terminals.lock().unwrap_or_else(|p| p.into_inner());
        let seq = self.inner.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entry = terms.entry(task.agent_terminal_id.clone()).or_insert_with(|| TermEntry {
            task_id: task.id.clone(),
            info: agent_terminal_info(task),
            terminal,
            seq,
            hangup: None,
        });
        entry.terminal.clone()
    }

    fn has_terminal(&self, id: &str) -> bool {
        self.inner.terminals.lock().unwrap_or_else(|p| p.into_inner()).contains_key(id)
    }

    fn forget_terminals(&self, task_id: &str) {
        let mut terms = self.inner.terminals.lock().unwrap_or_else(|p| p.into_inner());
        terms.retain(|_, e| {
            if e.task_id == task_id {
                e.terminal.close();
                false
            } else {
                true
            }
        });
    }

    /// Attaches the agent terminal to the container's main process and starts it
    /// (attaching first, so no output of the new run is missed), then hands over
    /// the credential when start-agent asks for it.
    async fn attach_and_start(&self, docker: &Docker, task: &Task, terminal: &Terminal, handover: Option<handover::Handover>) -> Result<()> {
        let cid = task.container_id.clone().ok_or_else(|| Error::Internal("task has no container".into()))?;
        self.set_settled(&task.id, false);
        self.start_recording(task, terminal, 0).await;
        let stream = docker.attach(&cid, false).await?;
        let control = Arc::new(ContainerControl { docker: docker.clone(), id: cid.clone(), before_start: true });
        let engine = self.clone();
        let task_id = task.id.clone();
        terminal.connect(stream.output, stream.input, control, move |code| {
            tokio::spawn(async move { engine.agent_exited(&task_id, code).await });
        });
        // Subscribed before the start, so start-agent's request cannot be missed;
        // viewers' input waits until the credentials line is written.
        let viewer = handover.as_ref().map(|_| terminal.subscribe());
        self.prepare_network(docker, task, &cid).await?;
        let viewer = match viewer {
            Some(v) => Some(v.holding_input().await),
            None => None,
        };
        docker.start(&cid).await?;
        let relay = self.start_relay(docker, task, &cid);
        self.agent_starting(task);
        terminal.apply_size().await;
        if let (Some(h), Some(v)) = (handover, viewer) {
            self.handover_after_relay(docker.clone(), task.id.clone(), cid, v, h, relay);
        }
        self.watch_screen(task, terminal);
        Ok(())
    }

    /// `<data_dir>/recordings/<task id>/<terminal id>.cast`.
    fn recording_file(&self, task_id: &str, terminal_id: &str) -> PathBuf {
        self.inner.config.recordings_dir().join(task_id).join(format!("{terminal_id}.cast"))
    }

    /// Starts (or continues) the agent terminal's recording when the task records.
    /// A recording that cannot start is logged and skipped: it never stops the task.
    async fn start_recording(&self, task: &Task, terminal: &Terminal, skip: u64) {
        if !task.record {
            terminal.set_recorder(None);
            return;
        }
        let (cols, rows) = terminal.size().unwrap_or((80, 24));
        let opts = anycode_terminal::RecordingOptions {
            path: self.recording_file(&task.id, &task.agent_terminal_id),
            max_bytes: self.inner.config.recording_max_bytes,
            width: cols,
            height: rows,
            title: Some(task.title.clone()),
        };
        match anycode_terminal::Recorder::start(opts).await {
            Ok(r) => {
                r.skip(skip);
                terminal.set_recorder(Some(r));
            }
            Err(e) => tracing::warn!(task = %task.id, error = %e, "recording could not start"),
        }
    }

    /// The asciicast file of a terminal's recording.
    ///
    /// Errors: `TERMINAL_NOT_FOUND`; `RECORDING_NOT_FOUND` when that terminal is not
    /// recorded (recording off for its task, or an extra shell).
    pub async fn recording(&self, terminal_id: &str) -> Result<PathBuf> {
        let store = self.inner.store.clone();
        let tid = terminal_id.to_string();
        let task = blocking(move || Ok(store.tasks(None)?.into_iter().find(|t| t.agent_terminal_id == tid))).await?;
        let Some(task) = task else {
            let known = self.inner.terminals.lock().unwrap_or_else(|p| p.into_inner()).contains_key(terminal_id);
            return Err(if known {
                Error::NotFound { what: "recording", id: terminal_id.to_string() }
            } else {
                Error::NotFound { what: "terminal", id: terminal_id.to_string() }
            });
        };
        let path = self.recording_file(&task.id, terminal_id);
        if tokio::fs::metadata(&path).await.is_ok() {
            Ok(path)
        } else {
            Err(Error::NotFound { what: "recording", id: terminal_id.to_string() })
        }
    }

    async fn agent_exited(&self, task_id: &str, code: Option<i64>) {
        let store = self.inner.store.clone();
        let id = task_id.to_string();
        let res = blocking(move || {
            if let Some(t) = store.task(&id)? {
                if t.status == TaskStatus::Running {
                    // Killed from outside (SIGKILL: Docker restarting, `docker kill`;
                    // no code: Docker went away): stopped, and Start brings it back.
                    // Any other end, a SIGTERM included (Claude Code's `/exit` ends
                    // with 143), is the agent's own: exited.
                    let status = if matches!(code, None | Some(137)) { TaskStatus::Stopped } else { TaskStatus::Exited };
                    store.set_task_state(&id, status, code, None)?;
                }
            }
            Ok(())
        })
        .await;
        if let Err(e) = res {
            tracing::warn!(task = task_id, error = %e, "recording the agent's exit failed");
        }
        self.clear_agent_state(task_id);
        self.forget_relay(task_id);
        self.task_changed(task_id);
        self.kick_queue();
        tracing::info!(task = task_id, ?code, "agent exited");
    }

    /// Stops the task's container (SIGTERM, then SIGKILL after 5 s). The worktree,
    /// branch and scrollback stay.
    pub async fn stop_task(&self, id: &str) -> Result<Task> {
        let lock = self.task_lock(id);
        let _held = lock.lock().await;
        let task = self.task(id).await?;
        // The work goes to the user's branch before the sandbox stops (a stopped
        // task's diff is its mirror's).
        self.sync_best_effort(&task, "stopping").await;
        self.forget_relay(&task.id);
        let store = self.inner.store.clone();
        let tid = task.id.clone();
        blocking(move || Ok(store.set_task_state(&tid, TaskStatus::Stopped, None, None)?)).await?;
        self.kick_queue();
        if let Some(cid) = &task.container_id {
            let docker = self.docker().await?;
            self.thaw_for_stop(&docker, &task).await;
            match docker.stop(cid, Duration::from_secs(5)).await {
                Ok(()) | Err(anycode_sandbox::Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // What the agent wrote during its grace period is brought out on next need.
        self.set_settled(id, false);
        self.clear_agent_state(id);
        self.task_changed(id);
        self.task(id).await
    }

    /// Starts a stopped or exited task again: the same container (re-created from
    /// the task when it went missing), the same worktree, the same terminal and its
    /// scrollback.
    pub async fn start_task(&self, id: &str) -> Result<Task> {
        let lock = self.task_lock(id);
        let _held = lock.lock().await;
        let mut task = self.task(id).await?;
        if task.status == TaskStatus::Paused {
            self.resume_locked(&task).await?;
            return self.task(id).await;
        }
        let docker = self.docker().await?;
        let existing = match &task.container_id {
            Some(cid) => docker.inspect(cid).await?,
            None => None,
        };
        if existing.as_ref().is_some_and(|c| c.running) {
            return Ok(task);
        }
        if existing.is_none() {
            let worktree = self.workspace_path(&task.project_id, &task.id);
            if !worktree.exists() {
                return Err(Error::Conflict(format!("the task's working tree {} is gone; delete the task", worktree.display())));
            }
            self.check_task_repo(&task)?;
            let project = self.project(&task.project_id).await?;
            let image = self.ensure_agent_image(task.agent.as_str(), |e| tracing::info!(?e, "sandbox image")).await?;
            let repo = PathBuf::from(&project.path);
            let (objects, identity) = blocking(move || {
                Ok((anycode_git::taskrepo::objects_dir(&repo)?, anycode_git::taskrepo::user_identity(&repo).ok()))
            })
            .await?;
            let cid = docker.create_container(&self.container_spec(&task, &project, &image, &objects, identity.as_ref())).await?;
            let store = self.inner.store.clone();
            let (tid, c2) = (task.id.clone(), cid.clone());
            blocking(move || Ok(store.set_task_container(&tid, Some(&c2))?)).await?;
            task.container_id = Some(cid);
        }
        if !self.admit(&task.id).await? {
            // Queued: the governor starts it when a slot frees up.
            self.task_changed(id);
            return self.task(id).await;
        }
        self.clear_agent_state(&task.id);
        // The terminal goes on from the container's logged history (a restart after
        // a reboot shows what came before).
        let history = match &task.container_id {
            Some(cid) if !self.has_terminal(&task.agent_terminal_id) => match docker.logs(cid, self.inner.config.scrollback_bytes).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(task = %task.id, error = %e, "reading the container's log failed");
                    Vec::new()
                }
            },
            _ => Vec::new(),
        };
        tracing::info!(task = %task.id, history = history.len(), registered = self.has_terminal(&task.agent_terminal_id), "starting the sandbox");
        let fresh = Terminal::with_history(&task.agent_terminal_id, self.inner.config.scrollback_bytes, &history, None);
        let terminal = self.register_agent_terminal(&task, fresh);
        let handover = self.prepare_handover(&task).await?;
        if let Err(e) = self.attach_and_start(&docker, &task, &terminal, handover).await {
            let store = self.inner.store.clone();
            let (tid, msg) = (task.id.clone(), e.to_string());
            let _ = blocking(move || Ok(store.set_task_state(&tid, TaskStatus::Error, None, Some(&msg))?)).await;
            self.task_changed(id);
            self.kick_queue();
            return Err(e);
        }
        self.task_changed(id);
        self.task(id).await
    }

    /// Deletes a task: removes its container and worktree, keeps its branch.
    pub async fn delete_task(&self, id: &str) -> Result<()> {
        let lock = self.task_lock(id);
        let _held = lock.lock().await;
        let task = self.task(id).await?;
        let project = self.project(&task.project_id).await?;
        // Delete keeps the branch: with the sandbox's last work on it.
        self.sync_best_effort(&task, "deleting").await;
        // The relay's end is expected now, not a failure to restart from.
        self.forget_relay(&task.id);
        if let Some(cid) = &task.container_id {
            let docker = self.docker().await?;
            self.thaw_for_stop(&docker, &task).await;
            docker.remove(cid).await?;
        }
        self.forget_terminals(&task.id);
        let store = self.inner.store.clone();
        let recordings = self.inner.config.recordings_dir().join(&task.id);
        let (workspace, mirror) = (self.workspace_path(&task.project_id, &task.id), self.mirror_path(&task.id));
        blocking(move || {
            // The recordings belong to the task; its branch is what the user keeps.
            let _ = std::fs::remove_dir_all(&recordings);
            // Only the folders AnyCode made, by the paths it computes (never one a
            // sandbox could name), and an older AnyCode's worktree registration.
            anycode_git::taskrepo::remove_task_repo(&workspace, &mirror)?;
            anycode_git::remove_legacy_registration(Path::new(&project.path), &legacy_worktree_name(&task.id))?;
            store.delete_task(&task.id)?;
            Ok(())
        })
        .await?;
        self.inner.task_locks.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        self.clear_agent_state(id);
        self.forget_hooks(id);
        self.task_deleted(id);
        self.refresh_queue().await;
        self.kick_queue();
        Ok(())
    }

    // ----- terminals -----

    /// Opens an extra terminal in the task's running container: `cmd` run by
    /// `bash -lc`, or a login shell when `None`.
    ///
    /// Errors: `TASK_NOT_FOUND`; `CONFLICT` when the task is not running.
    pub async fn open_terminal(&self, task_id: &str, cmd: Option<String>) -> Result<TerminalInfo> {
        self.ensure_unpaused(task_id).await?;
        let task = self.task(task_id).await?;
        let cid = task.container_id.clone().ok_or_else(|| Error::Conflict("the task has no container".into()))?;
        let docker = self.docker().await?;
        if !docker.inspect(&cid).await?.is_some_and(|c| c.running) {
            return Err(Error::Conflict(format!("task {} is not running: start it first", task.id)));
        }
        let project = self.project(&task.project_id).await?;
        let cmd_line = cmd.filter(|c| !c.trim().is_empty());
        let argv = match &cmd_line {
            Some(c) => vec!["bash".to_string(), "-lc".to_string(), c.clone()],
            None => vec!["bash".to_string(), "-l".to_string()],
        };
        let id = anycode_core::new_id();
        // ANYCODE_TERMINAL marks the terminal's processes for the hang-up on close.
        let env = vec!["TERM=xterm-256color".to_string(), "COLORTERM=truecolor".to_string(), format!("ANYCODE_TERMINAL={id}")];
        let user = sandbox_user(Path::new(&project.path));
        let (exec_id, stream) = docker.exec(&cid, argv, &user, env, 80, 24).await?;
        let info = TerminalInfo { id: id.clone(), kind: TerminalKind::Shell, title: cmd_line.unwrap_or_else(|| "shell".into()) };
        let terminal = Terminal::new(&id, self.inner.config.scrollback_bytes);
        let control = Arc::new(ExecControl { docker: docker.clone(), exec_id });
        terminal.connect(stream.output, stream.input, control, |_| {});
        let seq = self.inner.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner
            .terminals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, TermEntry { task_id: task.id, info: info.clone(), terminal, seq, hangup: Some((cid, user)) });
        Ok(info)
    }

    /// Closes an extra terminal: its viewers get `Closed`, and its processes in the
    /// container get SIGHUP (in the background; a process that ignores SIGHUP, like
    /// `nohup`, keeps running, as with any terminal).
    /// Errors: `TERMINAL_NOT_FOUND`; `INVALID_INPUT` for the agent terminal.
    pub fn close_terminal(&self, id: &str) -> Result<()> {
        let mut terms = self.inner.terminals.lock().unwrap_or_else(|p| p.into_inner());
        match terms.get(id) {
            None => Err(Error::NotFound { what: "terminal", id: id.to_string() }),
            Some(e) if e.info.kind == TerminalKind::Agent => {
                Err(Error::Invalid("the agent terminal cannot be closed: stop or delete the task".into()))
            }
            Some(_) => {
                if let Some(e) = terms.remove(id) {
                    e.terminal.close();
                    if let Some((cid, user)) = e.hangup {
                        let engine = self.clone();
                        let id = id.to_string();
                        tokio::spawn(async move {
                            let cmd = ["sh", "-c", HANGUP_SCRIPT, "anycode-hangup", &id].map(String::from).to_vec();
                            let res = match engine.docker().await {
                                Ok(d) => d.exec_detached(&cid, cmd, &user).await.map_err(Error::from),
                                Err(e) => Err(e),
                            };
                            if let Err(e) = res {
                                tracing::warn!(terminal = %id, error = %e, "could not hang up the closed terminal's processes");
                            }
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// The terminal hub for viewers. The agent terminal of a task whose container is
    /// not running shows the container's logged history.
    ///
    /// Errors: `TERMINAL_NOT_FOUND`.
    pub async fn terminal(&self, id: &str) -> Result<Terminal> {
        if let Some(t) = self.inner.terminals.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            return Ok(t.terminal.clone());
        }
        let store = self.inner.store.clone();
        let tid = id.to_string();
        let task = blocking(move || Ok(store.tasks(None)?.into_iter().find(|t| t.agent_terminal_id == tid)))
            .await?
            .ok_or_else(|| Error::NotFound { what: "terminal", id: id.to_string() })?;
        let history = match (&task.container_id, self.docker().await) {
            (Some(cid), Ok(d)) => d.logs(cid, self.inner.config.scrollback_bytes).await.unwrap_or_default(),
            _ => Vec::new(),
        };
        let t = Terminal::with_history(&task.agent_terminal_id, self.inner.config.scrollback_bytes, &history, task.exit_code);
        Ok(self.register_agent_terminal(&task, t))
    }

    // ----- reconcile -----

    /// Brings the database in line with Docker: running containers are attached again
    /// (their logged output becomes the scrollback), stopped ones mark their task
    /// exited, missing ones mark it `error`, and containers of this instance whose
    /// task is unknown (a crash during creation) are removed.
    pub async fn reconcile(&self) -> Result<()> {
        let d = self.docker().await?;
        self.reconcile_with(&d).await
    }

    async fn reconcile_with(&self, docker: &Docker) -> Result<()> {
        let store = self.inner.store.clone();
        let tasks = blocking(move || Ok(store.tasks(None)?)).await?;
        let containers = docker.managed_containers().await?;
        for c in &containers {
            if !tasks.iter().any(|t| t.id == c.task_id) {
                tracing::info!(container = %c.id, "removing a container of no known task");
                let _ = docker.remove(&c.id).await;
            }
        }
        for task in tasks {
            let lock = self.task_lock(&task.id);
            let _held = lock.lock().await;
            // A task of an older AnyCode had the user's .git mounted writable: its
            // sandbox is removed and it gets a repository of its own before anything
            // else happens to it.
            match self.migrate_legacy(docker, &task).await {
                Ok(false) => {}
                Ok(true) => {
                    self.task_changed(&task.id);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(task = %task.id, error = %e, "moving an older AnyCode's task failed");
                    let store = self.inner.store.clone();
                    let (tid, msg) = (task.id.clone(), format!("moving this task to a repository of its own failed: {e}"));
                    let _ = blocking(move || Ok(store.set_task_state(&tid, TaskStatus::Error, None, Some(&msg))?)).await;
                    self.task_changed(&task.id);
                    continue;
                }
            }
            let live = self
                .inner
                .terminals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&task.agent_terminal_id)
                .is_some_and(|e| e.terminal.is_live());
            if live {
                continue;
            }
            let found = containers.iter().find(|c| Some(&c.id) == task.container_id.as_ref() || c.task_id == task.id);
            let (status, code, err) = match found {
                Some(c) if c.running => {
                    // Docker refuses to attach to a frozen container: thawed for the
                    // attach, frozen again below.
                    if c.paused {
                        docker.unpause(&c.id).await?;
                    }
                    let t = Terminal::new(&task.agent_terminal_id, self.inner.config.scrollback_bytes);
                    let mut task2 = task.clone();
                    task2.container_id = Some(c.id.clone());
                    let terminal = self.register_agent_terminal(&task2, t);
                    // The attach replays the container's log first; that part was
                    // recorded before the restart.
                    let replayed = docker.logs_len(&c.id).await.unwrap_or(0);
                    self.start_recording(&task2, &terminal, replayed).await;
                    let stream = docker.attach(&c.id, true).await?;
                    let control = Arc::new(ContainerControl { docker: docker.clone(), id: c.id.clone(), before_start: false });
                    let engine = self.clone();
                    let task_id = task.id.clone();
                    terminal.connect(stream.output, stream.input, control, move |code| {
                        tokio::spawn(async move { engine.agent_exited(&task_id, code).await });
                    });
                    let relay = self.start_relay(docker, &task2, &c.id);
                    self.answer_pending_handover(docker, &task2, &c.id).await;
                    self.watch_screen(&task2, &terminal);
                    if c.paused {
                        // The relay's exec needs the thawed container.
                        let _ = tokio::time::timeout(RELAY_READY_WAIT, relay).await;
                        self.gate_terminals(&task.id, true);
                        docker.pause(&c.id).await?;
                        (TaskStatus::Paused, None, None)
                    } else {
                        // Until the new relay listens, what a viewer types (a prompt
                        // submitted at once, which fires a hook and an API call) waits,
                        // in order, instead of meeting a refused connection.
                        let hold = terminal.hold_input().await;
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(RELAY_READY_WAIT, relay).await;
                            drop(hold);
                        });
                        (TaskStatus::Running, None, None)
                    }
                }
                Some(c) => {
                    let code = docker.inspect(&c.id).await?.and_then(|i| i.exit_code);
                    match task.status {
                        TaskStatus::Stopped => (TaskStatus::Stopped, None, None),
                        TaskStatus::Queued => (TaskStatus::Queued, None, None),
                        // Stopped from outside while it ran (a reboot, `docker stop`):
                        // it goes back in line and starts again, its agent resuming.
                        TaskStatus::Running | TaskStatus::Paused if governor::stopped_from_outside(code) => {
                            tracing::info!(task = %task.id, ?code, "the sandbox was stopped from outside; starting it again");
                            (TaskStatus::Queued, None, None)
                        }
                        _ => (TaskStatus::Exited, code, None),
                    }
                }
                None if task.container_id.is_some() => {
                    (TaskStatus::Error, None, Some("the container is gone (removed outside AnyCode); Start makes a new one"))
                }
                None => (task.status, task.exit_code, task.error.as_deref()),
            };
            let store = self.inner.store.clone();
            let tid = task.id.clone();
            let err = err.map(str::to_string);
            let cid = found.map(|c| c.id.clone());
            blocking(move || {
                if status == TaskStatus::Queued {
                    store.enqueue_task(&tid)?;
                } else {
                    store.set_task_state(&tid, status, code, err.as_deref())?;
                }
                if let Some(cid) = cid {
                    store.set_task_container(&tid, Some(&cid))?;
                }
                Ok(())
            })
            .await?;
            self.task_changed(&task.id);
        }
        self.refresh_queue().await;
        self.kick_queue();
        Ok(())
    }
}

/// The label value marking the containers of the AnyCode instance whose data dir is
/// `data_dir`: the first 12 hex digits of the sha256 of its canonical path.
pub fn instance_id(data_dir: &Path) -> String {
    let canonical = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
    hex::encode(&Sha256::digest(canonical.to_string_lossy().as_bytes())[..6])
}

/// The tag of the sandbox image for this configuration, built or not: the user's
/// `ANYCODE_IMAGE`, or `anycode-sandbox:<hash of the build inputs>`.
pub fn sandbox_image_tag(config: &Config) -> Result<String> {
    if let Some(t) = &config.image {
        return Ok(t.clone());
    }
    let files = anycode_sandbox::image::build_context_files(config.extra_ca_dir.as_deref())?;
    Ok(anycode_sandbox::image::image_tag(&files))
}

fn agent_terminal_info(t: &Task) -> TerminalInfo {
    TerminalInfo { id: t.agent_terminal_id.clone(), kind: TerminalKind::Agent, title: t.agent.to_string() }
}

/// `anycode-<task id>`: the container's name.
pub fn container_name(task_id: &str) -> String {
    format!("anycode-{task_id}")
}

/// The name an older AnyCode registered a task's worktree under in the user's
/// repository (`.git/worktrees/anycode-<task id>`), removed when the task goes.
fn legacy_worktree_name(task_id: &str) -> String {
    format!("anycode-{task_id}")
}

/// The `uid:gid` sandbox processes run as: the owner of the repository, so files
/// the agent writes belong to the user; `1000:1000` (the image's `agent`) when the
/// repository belongs to root, since sandboxes never run as root.
fn sandbox_user(repo: &Path) -> String {
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
fn prepare_ownership(user: &str, worktree: &Path) {
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
fn chown_tree(root: &Path, uid: u32, gid: u32) {
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
