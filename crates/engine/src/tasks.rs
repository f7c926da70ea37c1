//! The task lifecycle: list, create (validate → plan → make, undone step by step
//! on failure), stop, start, delete, and the agent's exit.

use crate::runtime::ContainerControl;
use crate::taskrepo::{legacy_worktree_name, prepare_ownership, sandbox_user};
use crate::{remote, agents, blocking, include, container_name, credentials, handover, taskrepo, Agent, Credential, Engine, Error, NetworkRequest, PermissionMode, Project, Result, Task, TaskStatus, Terminal};
use anycode_sandbox::{ContainerSpec, SandboxHost};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

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
    /// An open issue of the project's GitHub repository the task starts from: its
    /// title is the default title, its title, body and link the default prompt,
    /// and the task's pull request says `Closes #N`.
    pub issue: Option<u64>,
    /// The host to run on: `local`, a host's id or name; placed by free capacity
    /// when `None` (see `hosts.rs`).
    pub host: Option<String>,
}

/// A new task's input, checked ([`Engine::validate_new_task`]).
struct ValidTask {
    title: String,
    agent: Agent,
    profile: anycode_agents::Profile,
    permission_mode: Option<PermissionMode>,
    credential: Option<Credential>,
    project: Project,
    network: anycode_core::NetworkPolicy,
    /// The base branch asked for; the repository's current branch when `None`.
    base: Option<String>,
    branch: String,
    prompt: Option<String>,
    record: bool,
    cpus: Option<f64>,
    memory_mb: Option<u64>,
    host: Option<String>,
}

/// What [`Engine::make_task`] makes, decided ([`Engine::plan_task`]).
struct TaskPlan {
    id: String,
    /// The backend the task's sandbox runs on.
    docker: SandboxHost,
    /// The agent's image tag.
    image: String,
    project: Project,
    /// The task's repository (its working tree, mounted at /workspace).
    worktree: PathBuf,
    /// AnyCode's mirror of the task's repository.
    mirror: PathBuf,
    /// The task as it will be stored; `base` is empty when the repository's current
    /// branch is meant, and `base_sha` and `container_id` are filled while making.
    task: Task,
}

impl Engine {
    /// Tasks with their terminals, oldest first; only those of `project` when given.
    pub async fn tasks(&self, project: Option<&str>) -> Result<Vec<Task>> {
        let project = project.map(str::to_string);
        let mut tasks = self.db(move |store| Ok(store.tasks(project.as_deref())?)).await?;
        self.decorate_without_prs(&mut tasks);
        self.fill_prs(&mut tasks).await?;
        Ok(tasks)
    }

    /// One task with its terminals. Errors: `TASK_NOT_FOUND`.
    pub async fn task(&self, id: &str) -> Result<Task> {
        let id = id.to_string();
        let mut t = self.db(move |store| store.task(&id)?.ok_or(Error::NotFound { what: "task", id })).await?;
        self.decorate_without_prs(std::slice::from_mut(&mut t));
        self.fill_prs(std::slice::from_mut(&mut t)).await?;
        Ok(t)
    }

    pub(crate) fn task_lock(&self, id: &str) -> Arc<Mutex<()>> {
        let mut locks = self.inner.task_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(id.to_string()).or_default().clone()
    }

    /// Creates a task in three steps, each its own function: [`Engine::validate_new_task`]
    /// (all input, before anything is made, so bad input fails fast even when
    /// Docker is down), [`Engine::plan_task`] (the backend, the image, the
    /// credential, the new task's id and paths) and [`Engine::make_task`] (the
    /// task's repository, its row, its container, its terminal and the start). A
    /// failure while making is undone by [`Engine::undo_task`]: no stray branch,
    /// repository, row or container.
    ///
    /// Errors: `INVALID_INPUT` (title, agent, limits, credential),
    /// `PROJECT_NOT_FOUND`, `UNKNOWN_BRANCH`, `INVALID_BRANCH_NAME`,
    /// `BRANCH_EXISTS`, `DOCKER_UNAVAILABLE`.
    pub async fn create_task(&self, project_id: &str, req: NewTask) -> Result<Task> {
        // On a task of its own: a caller that goes away (an HTTP client that
        // disconnects) must not cut a creation in half, leaving a branch, a folder
        // or a volume behind. It runs to its end (the task exists, or is undone).
        let (engine, project_id) = (self.clone(), project_id.to_string());
        tokio::spawn(async move { engine.create_task_whole(&project_id, req).await })
            .await
            .map_err(|e| Error::Internal(format!("task creation failed: {e}")))?
    }

    async fn create_task_whole(&self, project_id: &str, req: NewTask) -> Result<Task> {
        let started = std::time::Instant::now();
        let (req, issue) = self.new_task_from_issue(project_id, req).await?;
        let valid = self.validate_new_task(project_id, req).await?;
        let validated = started.elapsed();
        let plan = self.plan_task(valid).await?;
        let planned = started.elapsed();
        let lock = self.task_lock(&plan.id);
        let _held = lock.lock().await;
        match self.make_task(&plan).await {
            Ok(mut t) => {
                self.record_issue(&t.id, issue).await;
                self.decorate_without_prs(std::slice::from_mut(&mut t));
                self.task_changed(&t.id);
                // Where creation's time goes (the checks and git names; the host and
                // image; the repository, container and start), for slow creations.
                tracing::info!(
                    task = %t.id,
                    ms = started.elapsed().as_millis() as u64,
                    validate_ms = validated.as_millis() as u64,
                    plan_ms = (planned - validated).as_millis() as u64,
                    make_ms = (started.elapsed() - planned).as_millis() as u64,
                    "task created"
                );
                Ok(t)
            }
            Err(e) => {
                tracing::warn!(task = %plan.id, error = %e, "task creation failed; undoing");
                self.undo_task(&plan).await;
                Err(e)
            }
        }
    }

    /// Step 1 of [`Engine::create_task`]: checks every input and the git names
    /// against the project's repository. Makes nothing.
    async fn validate_new_task(&self, project_id: &str, req: NewTask) -> Result<ValidTask> {
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
        let base = req.base.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
        let explicit_branch = req.branch.map(|b| b.trim().to_string()).filter(|b| !b.is_empty());
        let branch = {
            let repo = PathBuf::from(&project.path);
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
        Ok(ValidTask {
            title,
            agent,
            profile,
            permission_mode,
            credential,
            project,
            network,
            base,
            branch,
            prompt: req.prompt.filter(|p| !p.trim().is_empty()),
            record: req.record.unwrap_or(true),
            cpus: req.cpus,
            memory_mb: req.memory_mb,
            host: req.host.map(|h| h.trim().to_string()).filter(|h| !h.is_empty()),
        })
    }

    /// Step 2 of [`Engine::create_task`]: the backend (it must answer and have the
    /// CPUs asked for), the agent's image (built when missing), the credential, and
    /// the new task's id and folders. Makes nothing but the image.
    async fn plan_task(&self, v: ValidTask) -> Result<TaskPlan> {
        let (host_id, docker) = self.place(v.host.as_deref()).await?;
        self.check_cpus(&docker, v.cpus).await?;
        let credential = match v.credential {
            Some(c) => c,
            None => self.default_credential_for(&v.profile).await?,
        };
        let id = anycode_core::new_id();
        let worktree = self.workspace_path(&v.project.id, &id);
        let mirror = self.mirror_path(&id);
        let limits = &self.inner.config.limits;
        let task = Task {
            id: id.clone(),
            project_id: v.project.id.clone(),
            title: v.title,
            agent: v.agent,
            branch: v.branch,
            base: v.base.unwrap_or_default(),
            base_sha: String::new(),
            prompt: v.prompt,
            status: TaskStatus::Running,
            exit_code: None,
            error: None,
            container_id: None,
            // A remote task's files are in a volume on its host: no folder here.
            worktree: if host_id == anycode_core::LOCAL_HOST { worktree.to_string_lossy().into_owned() } else { String::new() },
            agent_terminal_id: anycode_core::new_id(),
            record: v.record,
            terminals: vec![],
            created_at: anycode_core::now_rfc3339(),
            pr: None,
            credential,
            credential_source: None,
            credential_expires_at: None,
            credential_problem: None,
            permission_mode: v.permission_mode,
            cpus: Some(v.cpus.unwrap_or(limits.nano_cpus as f64 / 1e9)),
            memory_mb: Some(v.memory_mb.unwrap_or((limits.memory_bytes / (1024 * 1024)) as u64)),
            attention: None,
            usage: None,
            queue_position: None,
            network: v.network,
            messages: Vec::new(),
            setup: Default::default(),
            host: host_id.clone(),
            host_error: None,
        };
        let image = self.task_image(&task, &v.project).await?;
        // Built here; a remote host gets a copy (`remote.rs`).
        self.image_on(&docker, &host_id, &image).await?;
        Ok(TaskPlan { id, docker, image, project: v.project, worktree, mirror, task })
    }

    /// Step 3 of [`Engine::create_task`]: the task's repository (branch from the
    /// base), the container, the task's row (running when a slot is free, else
    /// queued with its container made), its agent terminal, and the start.
    async fn make_task(&self, plan: &TaskPlan) -> Result<Task> {
        let started = std::time::Instant::now();
        let mut task = plan.task.clone();
        let repo = PathBuf::from(&plan.project.path);
        let base = (!task.base.is_empty()).then(|| task.base.clone());
        if remote::is_remote(&task) {
            // The branch and the mirror here; the sandbox's repository is made on
            // its host, in its volume, from a bundle (see `remote.rs`).
            let (repo, branch, mirror) = (repo.clone(), task.branch.clone(), plan.mirror.clone());
            let ((b, sha), identity) = blocking(move || {
                let made = anycode_git::taskrepo::create_task_mirror(&repo, base.as_deref(), &branch, &mirror)?;
                Ok((made, anycode_git::taskrepo::user_identity(&repo).ok()))
            })
            .await?;
            task.base = b;
            task.base_sha = sha;
            self.seed_volume(&plan.docker, &task, &plan.project, &plan.image, &task.base_sha.clone(), false).await?;
            let binds = self.task_binds_for(&task, &plan.project).await?;
            let cid = plan.docker.create_container(&self.container_spec(&task, &plan.project, &plan.image, binds, identity.as_ref())).await?;
            task.container_id = Some(cid);
            return self.admit_and_start(plan, task).await;
        }
        let ((base, base_sha), objects, identity) = {
            let (repo, branch, worktree, mirror) = (repo.clone(), task.branch.clone(), plan.worktree.clone(), plan.mirror.clone());
            let user = sandbox_user(&repo);
            let task_id = plan.id.clone();
            blocking(move || {
                let made = anycode_git::taskrepo::create_task_repo(&repo, base.as_deref(), &branch, &worktree, &mirror)?;
                include::copy_included(&task_id, &repo, &worktree, &made.1);
                // Before the sandbox exists: nothing in the folder is the sandbox's yet.
                prepare_ownership(&user, &worktree);
                let objects = anycode_git::taskrepo::objects_dir(&repo)?;
                Ok((made, objects, anycode_git::taskrepo::user_identity(&repo).ok()))
            })
            .await?
        };
        task.base = base;
        task.base_sha = base_sha;
        let repo_made = started.elapsed();
        let binds = taskrepo::task_binds(&plan.worktree, &objects);
        let container_id = plan.docker.create_container(&self.container_spec(&task, &plan.project, &plan.image, binds, identity.as_ref())).await?;
        task.container_id = Some(container_id);
        let created = started.elapsed();
        let task = self.admit_and_start(plan, task).await?;
        tracing::debug!(
            task = %task.id,
            repo_ms = repo_made.as_millis() as u64,
            container_ms = (created - repo_made).as_millis() as u64,
            start_ms = (started.elapsed() - created).as_millis() as u64,
            "task made"
        );
        Ok(task)
    }

    /// The end of [`Engine::make_task`], local or remote: the row (running or
    /// queued), the agent terminal and the start.
    async fn admit_and_start(&self, plan: &TaskPlan, mut task: Task) -> Result<Task> {
        let docker = &plan.docker;
        // Running when a slot is free, else queued with the container made; the
        // governor starts it when its turn comes.
        let admitted = self.insert_admitted(&mut task).await?;
        self.mark_setup_pending(&mut task).await;
        if !admitted {
            return Ok(task);
        }
        let terminal = self.register_agent_terminal(&task, Terminal::new(&task.agent_terminal_id, self.inner.config.scrollback_bytes));
        let handover = self.prepare_handover(&task).await?;
        // The first start submits the prompt (start-agent), so its session is `running`.
        self.set_prompt_submitted(&task.id, task.prompt.is_some());
        self.attach_and_start(docker, &task, &terminal, handover).await?;
        Ok(task)
    }

    /// Undoes whatever [`Engine::make_task`] made of `plan`, each part on its own
    /// (a missing part is fine): the terminal, the container, the row, the task's
    /// repository and mirror, and the branch.
    async fn undo_task(&self, plan: &TaskPlan) {
        self.forget_terminals(&plan.id);
        if let Ok(Some(c)) = plan.docker.inspect(&container_name(&plan.id)).await {
            let _ = plan.docker.remove(&c.id).await;
        }
        if remote::is_remote(&plan.task) {
            if let Ok(Some(c)) = plan.docker.inspect(&format!("anycode-seed-{}", plan.id)).await {
                let _ = plan.docker.remove(&c.id).await;
            }
            let _ = plan.docker.remove_volume(&remote::volume_name(&plan.id)).await;
        }
        let (id, worktree, mirror) = (plan.id.clone(), plan.worktree.clone(), plan.mirror.clone());
        let (repo, branch) = (PathBuf::from(&plan.project.path), plan.task.branch.clone());
        let res = self
            .db(move |store| {
                store.delete_task(&id)?;
                anycode_git::taskrepo::remove_task_repo(&worktree, &mirror)?;
                anycode_git::delete_branch(&repo, &branch)?;
                Ok(())
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(task = %plan.id, error = %e, "undoing a failed task creation was incomplete");
        }
    }

    /// The container of a task, with `binds` ([`Engine::task_binds_for`]): a local
    /// task's working tree (the sandbox's own repository) at /workspace and the
    /// user's `objects` folder read-only at its own path (where the task
    /// repository's alternates name it), or a remote task's volume. Nothing else of
    /// the host.
    pub(crate) fn container_spec(&self, task: &Task, project: &Project, image: &str, binds: Vec<String>, identity: Option<&(String, String)>) -> ContainerSpec {
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
        let mut spec = ContainerSpec {
            name: container_name(&task.id),
            image: image.to_string(),
            task_id: task.id.clone(),
            project_id: project.id.clone(),
            cmd,
            env,
            user: self.task_user(task, project),
            binds,
            memory_bytes: task.memory_mb.map(|m| (m as i64) * 1024 * 1024).unwrap_or(limits.memory_bytes),
            nano_cpus: task.cpus.map(|c| (c * 1e9) as i64).unwrap_or(limits.nano_cpus),
            pids: limits.pids,
        };
        self.apply_devcontainer(task, project, &mut spec);
        spec
    }

    /// Attaches the agent terminal to the container's main process and starts it
    /// (attaching first, so no output of the new run is missed), then hands over
    /// the credential when start-agent asks for it.
    pub(crate) async fn attach_and_start(&self, docker: &SandboxHost, task: &Task, terminal: &Terminal, handover: Option<handover::Handover>) -> Result<()> {
        let cid = task.container_id.clone().ok_or_else(|| Error::Internal("task has no container".into()))?;
        self.set_settled(&task.id, false);
        self.start_recording(task, terminal, 0).await;
        let stream = docker.attach(&cid, false).await?;
        let control = Arc::new(ContainerControl { docker: docker.clone(), id: cid.clone(), before_start: true });
        let engine = self.clone();
        let task_id = task.id.clone();
        terminal.connect(stream.output, stream.input, control, move |code| {
            crate::tasks::spawn_agent_exited(engine.clone(), task_id.clone(), code);
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
        let relay = self.start_relay(docker, task, &cid, false);
        let ready = self.start_setup(docker, task, &cid, relay);
        self.agent_starting(task);
        terminal.apply_size().await;
        if let (Some(h), Some(v)) = (handover, viewer) {
            self.handover_after_relay(docker.clone(), task.id.clone(), cid, v, h, ready);
        }
        self.watch_screen(task, terminal);
        Ok(())
    }

    pub(crate) async fn agent_exited(&self, task_id: &str, code: Option<i64>) {
        // A remote host that went away ends the attach with no exit code: the
        // sandbox may well run on; the task keeps its state until the host answers
        // again (then reconcile re-attaches or records the real end).
        if code.is_none() {
            if let Ok(t) = self.task(task_id).await {
                if remote::is_remote(&t) && (self.host_down(&t.host) || self.backend(&t.host).await.is_err()) {
                    tracing::warn!(task = task_id, host = %t.host, "lost the sandbox's terminal: its host does not answer; waiting for it");
                    self.forget_relay(task_id);
                    self.task_changed(task_id);
                    return;
                }
            }
        }
        let id = task_id.to_string();
        let res = self.db(move |store| {
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
        let tid = task.id.clone();
        self.db(move |store| Ok(store.set_task_state(&tid, TaskStatus::Stopped, None, None)?)).await?;
        self.kick_queue();
        if let Some(cid) = &task.container_id {
            let docker = self.backend_for(&task).await?;
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
        let docker = self.backend_for(&task).await?;
        let existing = match &task.container_id {
            Some(cid) => docker.inspect(cid).await?,
            None => None,
        };
        if existing.as_ref().is_some_and(|c| c.running) {
            return Ok(task);
        }
        if existing.is_none() {
            let worktree = self.workspace_path(&task.project_id, &task.id);
            if !remote::is_remote(&task) && !worktree.exists() {
                return Err(Error::Conflict(format!("the task's working tree {} is gone; delete the task", worktree.display())));
            }
            self.check_task_repo(&task)?;
            let project = self.project(&task.project_id).await?;
            let image = self.task_image(&task, &project).await?;
            self.image_on(&docker, &task.host, &image).await?;
            let repo = PathBuf::from(&project.path);
            let branch = task.branch.clone();
            let (identity, tip) = blocking(move || {
                Ok((anycode_git::taskrepo::user_identity(&repo).ok(), anycode_git::branch_sha(&repo, &branch).ok()))
            })
            .await?;
            if remote::is_remote(&task) {
                // A volume that survived keeps its work; a lost one is seeded again
                // from the task branch (the work brought out last).
                let tip = tip.ok_or_else(|| anycode_git::Error::UnknownBranch(task.branch.clone()))?;
                self.seed_volume(&docker, &task, &project, &image, &tip, true).await?;
            }
            let binds = self.task_binds_for(&task, &project).await?;
            let cid = docker.create_container(&self.container_spec(&task, &project, &image, binds, identity.as_ref())).await?;
            let (tid, c2) = (task.id.clone(), cid.clone());
            self.db(move |store| Ok(store.set_task_container(&tid, Some(&c2))?)).await?;
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
            let (tid, msg) = (task.id.clone(), e.to_string());
            let _ = self.db(move |store| Ok(store.set_task_state(&tid, TaskStatus::Error, None, Some(&msg))?)).await;
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
            let docker = self.backend_for(&task).await?;
            self.thaw_for_stop(&docker, &task).await;
            docker.remove(cid).await?;
        }
        if remote::is_remote(&task) {
            // The task's files there go with it (the branch keeps its work).
            self.backend_for(&task).await?.remove_volume(&remote::volume_name(&task.id)).await?;
        }
        self.forget_terminals(&task.id);
        let recordings = self.inner.config.recordings_dir().join(&task.id);
        let (workspace, mirror) = (self.workspace_path(&task.project_id, &task.id), self.mirror_path(&task.id));
        self.db(move |store| {
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
        self.forget_messages(id);
        self.forget_setup(id);
        self.task_deleted(id);
        self.refresh_queue().await;
        self.kick_queue();
        Ok(())
    }
}

/// Spawns [`Engine::agent_exited`] (a terminal's end). A plain function on purpose:
/// the agent's end may ask the task's host whether it answers, which may reconcile,
/// which re-attaches terminals; spawning inside those async functions would make
/// their future types depend on themselves.
pub(crate) fn spawn_agent_exited(engine: Engine, task_id: String, code: Option<i64>) {
    tokio::spawn(async move { engine.agent_exited(&task_id, code).await });
}
