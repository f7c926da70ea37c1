//! Hosts: the Docker engines AnyCode places sandboxes on.
//!
//! `local` is this machine's engine ([`Engine::docker`]). Others are added by the
//! owner ([`Engine::add_host`], stored in the `hosts` table) and driven as the
//! Docker CLI drives them: `tcp://` with TLS, `ssh://` (through `docker system
//! dial-stdio`), `unix://`, or a Docker context's endpoint. Nothing of AnyCode runs
//! there and nothing of this machine is mounted there (see `remote.rs`).
//!
//! - [`Engine::backend`] connects to a host on first use, keeps the connection while
//!   it answers (pinged at each use) and reconciles that host's tasks on each new
//!   connection (the first, and after it went away).
//! - A watcher asks every remote host that has tasks whether it answers, every
//!   [`anycode_core::Config::host_check`]. A host that stops answering marks its
//!   tasks with `host_error` (their state stays); when it answers again its tasks are
//!   reconciled, so running sandboxes get their terminals and relays back, and only
//!   then is `host_error` cleared (typing into a terminal not attached yet is lost).
//! - Placement ([`Engine::place`]): an explicit host, or the answering host with
//!   the most free CPUs (CPUs minus the caps of its running sandboxes; memory breaks
//!   ties) whose own `max_running` is not reached.

use crate::{Engine, Error, Result, Task, TaskStatus};
use anycode_core::{Host, HostInfo, HostStatus, HostTls, LOCAL_HOST};
use anycode_sandbox::endpoint::{Endpoint, TlsPaths};
use anycode_sandbox::{Docker, SandboxHost};
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::Mutex;

/// How long a connected host has to answer a ping before it counts as gone.
const PING: Duration = Duration::from_secs(3);
/// How long listing hosts waits for one that does not answer.
const LIST_WAIT: Duration = Duration::from_secs(5);
/// Longest host name.
pub const MAX_HOST_NAME: usize = 64;

/// The engine's connections to remote hosts, by host id.
#[derive(Default)]
pub(crate) struct HostPool {
    conns: StdMutex<HashMap<String, Arc<HostConn>>>,
    watcher: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct HostConn {
    docker: Mutex<Option<SandboxHost>>,
    state: StdMutex<HostState>,
}

#[derive(Default, Clone)]
struct HostState {
    /// Why it did not answer the last time it was asked.
    error: Option<String>,
    /// `(cpus, memory bytes)` as it last reported them.
    capacity: Option<(u64, u64)>,
    /// The last image copy to it.
    image: Option<anycode_core::ImageCopy>,
}

/// A host to add ([`Engine::add_host`]).
#[derive(Debug, Clone, Default)]
pub struct NewHost {
    /// 1 to [`MAX_HOST_NAME`] characters of `[A-Za-z0-9._-]`, not `local`.
    pub name: String,
    /// The Docker endpoint (`tcp://`, `ssh://`, `unix://`); or `None` with `context`.
    pub endpoint: Option<String>,
    /// TLS file paths for a `tcp://` endpoint.
    pub tls: Option<HostTls>,
    /// A Docker context (`~/.docker/contexts`) to take the endpoint and TLS files
    /// from, instead of `endpoint`.
    pub context: Option<String>,
    /// The host's own limit of running sandboxes.
    pub max_running: Option<u32>,
}

/// A Docker context of the user's, offered as a host ([`Engine::host_contexts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextOffer {
    /// The context's name.
    pub name: String,
    /// Its endpoint URL.
    pub endpoint: String,
    /// Its description.
    pub description: String,
    /// Whether it is the Docker CLI's current context.
    pub current: bool,
    /// Why AnyCode cannot use it as it is, if so.
    pub problem: Option<String>,
}

fn endpoint_of(h: &Host) -> Endpoint {
    Endpoint {
        url: h.endpoint.clone(),
        tls: h.tls.as_ref().map(|t| TlsPaths { ca: t.ca.clone().into(), cert: t.cert.clone().into(), key: t.key.clone().into() }),
    }
}

/// Checks a host name: 1 to 64 of `[A-Za-z0-9._-]`, starting with a letter or
/// digit, and not `local`. Errors: `INVALID_INPUT` saying so.
pub fn check_host_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_HOST_NAME
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !ok {
        return Err(Error::Invalid(format!(
            "host name {name:?}: use 1 to {MAX_HOST_NAME} letters, digits, '.', '_' or '-', starting with a letter or digit"
        )));
    }
    if name == LOCAL_HOST {
        return Err(Error::Invalid("`local` is this machine's Docker engine and is always there; pick another name".into()));
    }
    Ok(())
}

/// One host as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Candidate {
    pub id: String,
    pub cpus: u64,
    pub memory: u64,
    pub reserved_cpus: f64,
    pub reserved_memory: u64,
    pub running: u32,
    pub max_running: Option<u32>,
}

/// The candidate with the most free CPUs (then memory) among those below their own
/// `max_running`; when every one is full, the one with the most free CPUs anyway
/// (the task then waits in the run queue). `None` without candidates.
pub(crate) fn pick(cands: &[Candidate]) -> Option<String> {
    let free = |c: &Candidate| (c.cpus as f64 - c.reserved_cpus, c.memory.saturating_sub(c.reserved_memory));
    let best = |list: Vec<&Candidate>| {
        list.into_iter()
            .max_by(|a, b| {
                let (fa, ma) = free(a);
                let (fb, mb) = free(b);
                // Ties go to `local` (no image to copy, nothing to reach), then by id.
                fa.total_cmp(&fb).then(ma.cmp(&mb)).then((a.id == LOCAL_HOST).cmp(&(b.id == LOCAL_HOST))).then(b.id.cmp(&a.id))
            })
            .map(|c| c.id.clone())
    };
    let open: Vec<&Candidate> = cands.iter().filter(|c| c.max_running.is_none_or(|m| c.running < m)).collect();
    if open.is_empty() {
        best(cands.iter().collect())
    } else {
        best(open)
    }
}

impl Engine {
    fn host_conn(&self, id: &str) -> Arc<HostConn> {
        let mut conns = self.inner.hosts.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.entry(id.to_string()).or_default().clone()
    }

    /// A stored host by id. Errors: `HOST_NOT_FOUND`.
    pub(crate) async fn stored_host(&self, id: &str) -> Result<Host> {
        let id = id.to_string();
        self.db(move |store| store.host(&id)?.ok_or(Error::NotFound { what: "host", id })).await
    }

    /// The backend of host `host_id` (`local` or a stored host), connecting first
    /// when needed; a new connection to a remote host reconciles its tasks.
    ///
    /// Errors: `DOCKER_UNAVAILABLE` (local), `HOST_UNREACHABLE`, `HOST_NOT_FOUND`.
    pub(crate) async fn backend(&self, host_id: &str) -> Result<SandboxHost> {
        if host_id == LOCAL_HOST {
            return self.docker().await;
        }
        let conn = self.host_conn(host_id);
        let mut guard = conn.docker.lock().await;
        if let Some(d) = guard.as_ref() {
            if d.ping(PING).await.is_ok() {
                return Ok(d.clone());
            }
            *guard = None;
        }
        let host = self.stored_host(host_id).await?;
        match Docker::connect_endpoint(&self.inner.instance, &endpoint_of(&host)).await {
            Ok(d) => {
                let d: SandboxHost = Arc::new(d);
                let capacity = d.capacity().await.ok();
                *guard = Some(d.clone());
                drop(guard);
                // The error (and the tasks' `host_error`) stays until the reconcile
                // below has attached their terminals again: cleared now, a viewer
                // would type into a terminal with no process yet, and lose it.
                let was = {
                    let mut st = conn.state.lock().unwrap_or_else(|p| p.into_inner());
                    st.capacity = capacity.or(st.capacity);
                    st.error.clone()
                };
                tracing::info!(host = %host.name, endpoint = %host.endpoint, back = was.is_some(), "connected to a remote Docker host");
                // Its running sandboxes get their terminals and relays (again). In the
                // background: the caller may hold a task's lock, which reconcile takes.
                spawn_after_connect(self.clone(), d.clone(), host_id.to_string(), was.is_some());
                Ok(d)
            }
            Err(e) => {
                drop(guard);
                let reason = e.to_string();
                let newly = {
                    let mut st = conn.state.lock().unwrap_or_else(|p| p.into_inner());
                    let newly = st.error.is_none();
                    st.error = Some(reason.clone());
                    newly
                };
                if newly {
                    tracing::warn!(host = %host.name, error = %reason, "a remote Docker host does not answer; its tasks wait for it");
                    self.host_tasks_changed(host_id).await;
                }
                Err(Error::HostUnreachable { host: host.name, reason })
            }
        }
    }

    /// The backend of the host a task's sandbox is on.
    ///
    /// Errors: as [`Engine::backend`].
    pub(crate) async fn backend_for(&self, task: &Task) -> Result<SandboxHost> {
        self.backend(&task.host).await
    }

    /// Why the task's host does not answer, when it does not (`Task::host_error`).
    pub(crate) fn overlay_host(&self, t: &mut Task) {
        if t.host == LOCAL_HOST {
            return;
        }
        let conns = self.inner.hosts.conns.lock().unwrap_or_else(|p| p.into_inner());
        t.host_error = conns.get(&t.host).and_then(|c| c.state.lock().unwrap_or_else(|p| p.into_inner()).error.clone());
    }

    /// Whether the host is known not to answer (its last check failed).
    pub(crate) fn host_down(&self, host_id: &str) -> bool {
        if host_id == LOCAL_HOST {
            return false;
        }
        let conns = self.inner.hosts.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.get(host_id).is_some_and(|c| c.state.lock().unwrap_or_else(|p| p.into_inner()).error.is_some())
    }

    async fn host_tasks_changed(&self, host_id: &str) {
        let id = host_id.to_string();
        if let Ok(tasks) = self.db(move |store| Ok(store.tasks(None)?)).await {
            for t in tasks.iter().filter(|t| t.host == id) {
                self.task_changed(&t.id);
            }
        }
    }

    /// Starts the watcher of remote hosts (once per engine).
    pub(crate) fn ensure_host_watcher(&self) {
        if self.inner.hosts.watcher.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.config.host_check;
        tokio::spawn(async move {
            // The first round at once: after a restart, tasks on remote hosts get
            // their terminals and relays back without waiting a round.
            let mut first = true;
            loop {
                if !first {
                    tokio::time::sleep(every).await;
                }
                first = false;
                let Some(inner) = weak.upgrade() else { return };
                let engine = Engine { inner };
                let Ok(tasks) = engine.db(move |store| Ok(store.tasks(None)?)).await else { continue };
                let mut hosts: Vec<String> = tasks.into_iter().map(|t| t.host).filter(|h| h != LOCAL_HOST).collect();
                hosts.sort();
                hosts.dedup();
                for h in hosts {
                    // Its state (and its tasks' `host_error`) follows from the attempt.
                    let _ = tokio::time::timeout(LIST_WAIT * 5, engine.backend(&h)).await;
                }
            }
        });
    }

    /// Adds a remote host after checking that it answers. Its endpoint comes from
    /// `endpoint` (with `tls`), or from the Docker context `context`.
    ///
    /// Errors: `INVALID_INPUT` (name, both or neither of endpoint and context),
    /// `BAD_ENDPOINT`, `BAD_TLS_FILES`, `SSH_MISSING`, `BAD_DOCKER_CONTEXT`,
    /// `ALREADY_EXISTS` (the name is taken), `HOST_UNREACHABLE`. Nothing is stored
    /// on error.
    pub async fn add_host(&self, req: NewHost) -> Result<HostInfo> {
        check_host_name(&req.name)?;
        if req.max_running == Some(0) {
            return Err(Error::Invalid("max_running must be at least 1 (leave it out for no limit of the host's own)".into()));
        }
        let (endpoint, tls) = match (req.endpoint, req.context) {
            (Some(e), None) => (e.trim().to_string(), req.tls),
            (None, Some(ctx)) => {
                if req.tls.is_some() {
                    return Err(Error::Invalid("a context brings its own TLS files: give `context` or `endpoint` with `tls`, not both".into()));
                }
                let c = self.host_contexts().await?.into_iter().find(|c| c.name == ctx).ok_or_else(|| {
                    Error::Invalid(format!("no Docker context named {ctx:?}; `docker context ls` lists them (GET /api/hosts/contexts)"))
                })?;
                if let Some(p) = c.problem {
                    return Err(Error::Invalid(format!("Docker context {ctx:?} cannot be used: {p}")));
                }
                let found = self.context_endpoint(&ctx).await?;
                (found.url.clone(), found.tls.map(|t| HostTls { ca: path_str(&t.ca), cert: path_str(&t.cert), key: path_str(&t.key) }))
            }
            (Some(_), Some(_)) => return Err(Error::Invalid("give either `endpoint` or `context`, not both".into())),
            (None, None) => return Err(Error::Invalid("give the host's Docker `endpoint` (tcp://, ssh://, unix://) or a Docker `context`".into())),
        };
        let host = Host { id: anycode_core::new_id(), name: req.name, endpoint, tls, max_running: req.max_running };
        endpoint_of(&host).parse()?;
        let name = host.name.clone();
        if self.db(move |store| Ok(store.hosts()?.iter().any(|h| h.name == name))).await? {
            return Err(anycode_store::Error::Conflict(format!("a host named {:?} exists already", host.name)).into());
        }
        // It must answer before it is kept, so a typo is found now.
        let d = Docker::connect_endpoint(&self.inner.instance, &endpoint_of(&host)).await.map_err(|e| match e {
            anycode_sandbox::Error::Unreachable { reason, .. } | anycode_sandbox::Error::Unavailable(reason) => {
                Error::HostUnreachable { host: host.name.clone(), reason }
            }
            other => other.into(),
        })?;
        let d: SandboxHost = Arc::new(d);
        let capacity = d.capacity().await.ok();
        let h = host.clone();
        self.db(move |store| Ok(store.insert_host(&h)?)).await?;
        let conn = self.host_conn(&host.id);
        *conn.docker.lock().await = Some(d);
        conn.state.lock().unwrap_or_else(|p| p.into_inner()).capacity = capacity;
        tracing::info!(host = %host.name, endpoint = %host.endpoint, "added a remote Docker host");
        if let Some(d) = conn.docker.lock().await.clone() {
            self.prepare_host_image(&host.id, d);
        }
        self.host_info(&host.id).await
    }

    /// Removes a remote host. Errors: `HOST_NOT_FOUND`; `CONFLICT` for `local` or
    /// while tasks are on it (delete them first).
    pub async fn delete_host(&self, id_or_name: &str) -> Result<()> {
        if id_or_name == LOCAL_HOST {
            return Err(Error::Conflict("`local` is this machine's Docker engine and cannot be removed".into()));
        }
        let id = self.resolve_host(id_or_name).await?;
        let i = id.clone();
        self.db(move |store| Ok(store.delete_host(&i)?)).await.map_err(|e| match e {
            Error::Store(anycode_store::Error::Conflict(m)) => Error::Conflict(m),
            other => other,
        })?;
        self.inner.hosts.conns.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        Ok(())
    }

    /// A host's id from its id or name (`local` is `local`).
    ///
    /// Errors: `HOST_NOT_FOUND`.
    pub(crate) async fn resolve_host(&self, id_or_name: &str) -> Result<String> {
        if id_or_name == LOCAL_HOST {
            return Ok(LOCAL_HOST.to_string());
        }
        let key = id_or_name.to_string();
        self.db(move |store| {
            store.hosts()?.into_iter().find(|h| h.id == key || h.name == key).map(|h| h.id).ok_or(Error::NotFound { what: "host", id: key })
        })
        .await
    }

    /// Every host, `local` first, with whether it answers (each asked, at most
    /// 5 s), its capacity and AnyCode's load on it.
    pub async fn hosts(&self) -> Result<Vec<HostInfo>> {
        let stored = self.db(|store| Ok(store.hosts()?)).await?;
        let mut ids = vec![LOCAL_HOST.to_string()];
        ids.extend(stored.iter().map(|h| h.id.clone()));
        // The tasks read once for every host's load.
        let tasks = self.db(move |store| Ok(store.tasks(None)?)).await?;
        let infos = futures_util::future::join_all(ids.iter().map(|id| self.host_info_with(id, &tasks))).await;
        infos.into_iter().collect()
    }

    /// One host as [`Engine::hosts`] shows it.
    ///
    /// Errors: `HOST_NOT_FOUND`.
    pub async fn host_info(&self, id: &str) -> Result<HostInfo> {
        let tasks = self.db(move |store| Ok(store.tasks(None)?)).await?;
        self.host_info_with(id, &tasks).await
    }

    async fn host_info_with(&self, id: &str, tasks: &[Task]) -> Result<HostInfo> {
        let host = if id == LOCAL_HOST {
            Host { id: LOCAL_HOST.into(), name: LOCAL_HOST.into(), endpoint: String::new(), tls: None, max_running: None }
        } else {
            self.stored_host(id).await?
        };
        let answer = tokio::time::timeout(LIST_WAIT, self.backend(id)).await;
        let (status, error, endpoint, capacity) = match answer {
            Ok(Ok(d)) => {
                let cap = if id == LOCAL_HOST { d.capacity().await.ok() } else { self.cached_capacity(id) };
                (HostStatus::Reachable, None, d.endpoint().to_string(), cap)
            }
            Ok(Err(e)) => (HostStatus::Unreachable, Some(e.to_string()), host.endpoint.clone(), None),
            Err(_) => (HostStatus::Unreachable, Some(format!("no answer within {} s", LIST_WAIT.as_secs())), host.endpoint.clone(), None),
        };
        let mine: Vec<&Task> = tasks.iter().filter(|t| t.host == id).collect();
        let running: Vec<&&Task> = mine.iter().filter(|t| matches!(t.status, TaskStatus::Running | TaskStatus::Paused)).collect();
        Ok(HostInfo {
            id: host.id,
            name: host.name,
            endpoint,
            tls: host.tls,
            max_running: host.max_running,
            status,
            cpus: capacity.map(|c| c.0),
            memory_bytes: capacity.map(|c| c.1),
            running_tasks: running.iter().filter(|t| t.status == TaskStatus::Running).count() as u32,
            tasks: mine.len() as u32,
            reserved_cpus: reserved_cpus(running.iter().map(|t| **t)),
            error,
            image: self.host_image_copy(id),
        })
    }

    fn host_image_copy(&self, id: &str) -> Option<anycode_core::ImageCopy> {
        let conns = self.inner.hosts.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.get(id).and_then(|c| c.state.lock().unwrap_or_else(|p| p.into_inner()).image.clone())
    }

    /// Records how far an image copy to host `id` got ([`HostInfo::image`]).
    pub(crate) fn set_image_copy(&self, id: &str, copy: anycode_core::ImageCopy) {
        let conn = self.host_conn(id);
        conn.state.lock().unwrap_or_else(|p| p.into_inner()).image = Some(copy);
    }

    /// Brings the sandbox image to a newly added host in the background, so its
    /// first task does not wait for it (progress in [`HostInfo::image`]).
    fn prepare_host_image(&self, host_id: &str, docker: SandboxHost) {
        let (engine, id) = (self.clone(), host_id.to_string());
        tokio::spawn(async move {
            let tag = match engine.ensure_image(|e| tracing::debug!(?e, "sandbox image")).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(host = %id, error = %e, "the sandbox image is not ready here, so it was not copied to the new host");
                    return;
                }
            };
            if let Err(e) = engine.image_on(&docker, &id, &tag).await {
                tracing::warn!(host = %id, error = %e, "copying the sandbox image to the new host failed (tried again when a task needs it)");
            }
        });
    }

    fn cached_capacity(&self, id: &str) -> Option<(u64, u64)> {
        let conns = self.inner.hosts.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.get(id).and_then(|c| c.state.lock().unwrap_or_else(|p| p.into_inner()).capacity)
    }

    /// The user's Docker contexts (`~/.docker/contexts`, or `$DOCKER_CONFIG`),
    /// offered as hosts. None when there is no Docker config folder.
    ///
    /// Errors: `BAD_DOCKER_CONTEXT` when a context's files cannot be read.
    pub async fn host_contexts(&self) -> Result<Vec<ContextOffer>> {
        crate::blocking(|| {
            let Some(dir) = anycode_sandbox::contexts::docker_config_dir() else { return Ok(vec![]) };
            let list = anycode_sandbox::contexts::docker_contexts(&dir)?;
            Ok(list
                .into_iter()
                .map(|c| ContextOffer { name: c.name, endpoint: c.endpoint.url, description: c.description, current: c.current, problem: c.problem })
                .collect())
        })
        .await
    }

    async fn context_endpoint(&self, name: &str) -> Result<Endpoint> {
        let name = name.to_string();
        crate::blocking(move || {
            let dir = anycode_sandbox::contexts::docker_config_dir().ok_or_else(|| Error::Invalid("no Docker config folder (~/.docker)".into()))?;
            let list = anycode_sandbox::contexts::docker_contexts(&dir)?;
            list.into_iter().find(|c| c.name == name).map(|c| c.endpoint).ok_or_else(|| Error::Invalid(format!("no Docker context named {name:?}")))
        })
        .await
    }

    /// Where a new task goes: `asked` (a host id or name, which must answer), or the
    /// answering host with the most free capacity (see [`pick`]).
    ///
    /// Errors: `HOST_NOT_FOUND` (as `INVALID_INPUT`: bad input of a create),
    /// `HOST_UNREACHABLE`, `DOCKER_UNAVAILABLE` when no host answers.
    pub(crate) async fn place(&self, asked: Option<&str>) -> Result<(String, SandboxHost)> {
        if let Some(a) = asked {
            let id = self.resolve_host(a).await.map_err(|e| match e {
                Error::NotFound { .. } => Error::Invalid(format!("no host {a:?}: GET /api/hosts lists them (`local` is this machine)")),
                other => other,
            })?;
            let d = self.backend(&id).await?;
            return Ok((id, d));
        }
        let stored = self.db(|store| Ok(store.hosts()?)).await?;
        if stored.is_empty() {
            return Ok((LOCAL_HOST.to_string(), self.docker().await?));
        }
        let tasks = self.db(move |store| Ok(store.tasks(None)?)).await?;
        let mut ids = vec![(LOCAL_HOST.to_string(), None)];
        ids.extend(stored.iter().map(|h| (h.id.clone(), h.max_running)));
        let answers = futures_util::future::join_all(ids.iter().map(|(id, _)| async move {
            let d = tokio::time::timeout(LIST_WAIT, self.backend(id)).await.ok()?.ok()?;
            let cap = if id == LOCAL_HOST { d.capacity().await.ok() } else { self.cached_capacity(id).or(d.capacity().await.ok()) };
            Some((d, cap.unwrap_or((0, 0))))
        }))
        .await;
        let mut cands = Vec::new();
        let mut backends = HashMap::new();
        let mut local_err = None;
        for ((id, max_running), answer) in ids.iter().zip(answers) {
            let Some((d, (cpus, memory))) = answer else {
                if id == LOCAL_HOST {
                    local_err = Some(());
                }
                continue;
            };
            let live: Vec<&Task> = tasks.iter().filter(|t| &t.host == id && matches!(t.status, TaskStatus::Running | TaskStatus::Paused)).collect();
            cands.push(Candidate {
                id: id.clone(),
                cpus,
                memory,
                reserved_cpus: reserved_cpus(live.iter().copied()),
                reserved_memory: live.iter().map(|t| t.memory_mb.unwrap_or(0) * 1024 * 1024).sum(),
                running: live.iter().filter(|t| t.status == TaskStatus::Running).count() as u32,
                max_running: *max_running,
            });
            backends.insert(id.clone(), d);
        }
        match pick(&cands).and_then(|id| backends.remove(&id).map(|d| (id, d))) {
            Some(found) => {
                tracing::debug!(host = %found.0, ?cands, "placed a task");
                Ok(found)
            }
            None if local_err.is_some() => Err(self.docker().await.err().unwrap_or_else(|| Error::DockerUnavailable("no Docker host answers".into()))),
            None => Err(Error::DockerUnavailable("no Docker host answers: start Docker here or on one of your hosts".into())),
        }
    }

    /// After a new connection to a remote host: its tasks reconciled with its
    /// containers (see `reconcile.rs`), and views told when it came back.
    async fn after_connect(self, docker: SandboxHost, host_id: String, came_back: bool) {
        if let Err(e) = self.reconcile_on(&docker, &host_id).await {
            tracing::warn!(host = %host_id, error = %e, "reconciling with a remote host failed");
        }
        if came_back {
            // Back once its terminals are: unless it went away again meanwhile (then
            // the error is the newer one's, or is set again by the next check).
            if docker.ping(PING).await.is_ok() {
                self.host_conn(&host_id).state.lock().unwrap_or_else(|p| p.into_inner()).error = None;
            }
            self.host_tasks_changed(&host_id).await;
        }
    }
}

/// The CPUs running and paused sandboxes are capped at, summed (a task without a
/// cap of its own counts as one CPU); `0.0` for none (never `-0.0`).
fn reserved_cpus<'a>(tasks: impl Iterator<Item = &'a Task>) -> f64 {
    tasks.fold(0.0, |sum, t| sum + t.cpus.unwrap_or(1.0))
}

/// Spawns [`Engine::after_connect`]. A plain function on purpose: reconcile
/// re-attaches terminals whose end calls back into [`Engine::backend`], and
/// spawning from inside `backend` would make its future's type depend on itself.
fn spawn_after_connect(engine: Engine, docker: SandboxHost, host_id: String, came_back: bool) {
    tokio::spawn(engine.after_connect(docker, host_id, came_back));
}

fn path_str(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, cpus: u64, reserved: f64, running: u32, max: Option<u32>) -> Candidate {
        Candidate { id: id.into(), cpus, memory: 8 << 30, reserved_cpus: reserved, reserved_memory: 0, running, max_running: max }
    }

    #[test]
    fn the_host_with_the_most_free_cpus_is_picked_within_its_limit() {
        assert_eq!(pick(&[]), None);
        // Local has 2 CPUs with one sandbox of 1 CPU; the remote has 2 free.
        assert_eq!(pick(&[c("local", 2, 1.0, 1, None), c("box", 2, 0.0, 0, None)]).as_deref(), Some("box"));
        // A bigger box wins while it has more free CPUs...
        assert_eq!(pick(&[c("local", 2, 0.0, 0, None), c("big", 32, 20.0, 20, None)]).as_deref(), Some("big"));
        // ...but not past its own max_running.
        assert_eq!(pick(&[c("local", 2, 0.0, 0, None), c("big", 32, 2.0, 2, Some(2))]).as_deref(), Some("local"));
        // Every host full: the one with the most free CPUs (the task queues there).
        assert_eq!(pick(&[c("a", 4, 3.0, 1, Some(1)), c("b", 4, 1.0, 1, Some(1))]).as_deref(), Some("b"));
        // A tie goes to `local`, whatever the ids.
        assert_eq!(pick(&[c("0a0a0a0a0a0a", 2, 0.0, 0, None), c("local", 2, 0.0, 0, None)]).as_deref(), Some("local"));
        // Ties on CPUs go by memory.
        let mut small = c("small", 2, 0.0, 0, None);
        small.memory = 1 << 30;
        assert_eq!(pick(&[small, c("large", 2, 0.0, 0, None)]).as_deref(), Some("large"));
    }

    #[test]
    fn host_names_are_checked() {
        for ok in ["box", "gpu-1", "build.example", "a"] {
            assert!(check_host_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "local", "-x", "a b", "é", &"x".repeat(65)] {
            assert!(check_host_name(bad).is_err(), "{bad}");
        }
    }
}
