//! Network policy and the sandbox relay.
//!
//! - A task's [`NetworkPolicy`] is fixed at creation from, in order, the built-in
//!   default list ([`BUILTIN_ALLOW`], the agents' gateways, the GitHub host), the
//!   settings' `[network]`, the project's default and the request's `network`;
//!   [`Engine::set_task_network`] changes it (the allow list at once, the mode at
//!   the next start).
//! - Before each start ([`Engine::prepare_network`]) an `allowlist`/`none` sandbox
//!   is disconnected from every Docker network (only loopback is left); an `open` one
//!   is connected to `bridge`.
//! - After each start, and when re-attaching after a restart, [`Engine::start_relay`]
//!   runs `anycode-relay` in the sandbox over `docker exec` and serves its
//!   connections: port 47777 to the server's hook service, port 3128 to the egress
//!   proxy with the task's policy. A relay that dies while the container runs is
//!   restarted with a backoff (logged).

use crate::{Engine, Error, Result};
use anycode_core::{BlockedHost, NetworkMode, NetworkPolicy, Task};
use anycode_egress::{Handler, Policy, Upstream, HOOK_PORT, PROXY_PORT};
use anycode_sandbox::{PipeChunk, SandboxHost};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};

/// Serves one hook connection from a sandbox (set by the server: its hook router).
pub type HookService = Arc<dyn Fn(DuplexStream) + Send + Sync>;

/// Always in the default allow list: the agents' API hosts, GitHub and the common
/// package registries.
pub const BUILTIN_ALLOW: &[&str] = &[
    // Agent APIs (crates/agents' profiles).
    "api.anthropic.com",
    "console.anthropic.com",
    "api.openai.com",
    "auth.openai.com",
    "chatgpt.com",
    "generativelanguage.googleapis.com",
    "oauth2.googleapis.com",
    "cloudcode-pa.googleapis.com",
    "openrouter.ai",
    // GitHub.
    "github.com",
    "api.github.com",
    "codeload.github.com",
    "*.githubusercontent.com",
    // Package registries.
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "pypi.org",
    "files.pythonhosted.org",
    "crates.io",
    "static.crates.io",
    "index.crates.io",
    "deb.debian.org",
    "security.debian.org",
    "archive.ubuntu.com",
    "security.ubuntu.com",
    "proxy.golang.org",
    "sum.golang.org",
    "rubygems.org",
    "index.rubygems.org",
    "repo.maven.apache.org",
    "repo1.maven.org",
];

/// The sandbox's relay command (as the container's user): a static binary built
/// from `sandbox-image/relay/anycode-relay.c` in the image's build (about 1 ms to
/// start and 768 KB of RSS in a running sandbox, where the Node.js relay before
/// it took 0.12 s of CPU and 43 MB).
const RELAY_CMD: [&str; 1] = ["/opt/anycode/bin/anycode-relay"];
/// How long the relay may take to listen on both ports.
pub(crate) const RELAY_READY: Duration = Duration::from_secs(10);
/// How much longer a relay that did not listen within [`RELAY_READY`] is kept
/// before it is restarted.
const RELAY_LATE: Duration = Duration::from_secs(50);
/// Longest wait between restarts of a relay that keeps dying.
const RELAY_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// The request's `network`: each part optional.
#[derive(Debug, Clone, Default)]
pub struct NetworkRequest {
    /// `allowlist`, `none` or `open`.
    pub mode: Option<String>,
    /// Replaces the allow list (after the defaults for a new task).
    pub allow: Option<Vec<String>>,
    /// Added to the allow list.
    pub add: Vec<String>,
}

/// `GET /api/tasks/{id}/network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkStatus {
    /// The stored policy.
    pub policy: NetworkPolicy,
    /// The mode the running sandbox started with, when it runs with a relay.
    pub running_mode: Option<NetworkMode>,
    /// Hosts the proxy refused, most recent first.
    pub blocked: Vec<BlockedHost>,
}

/// The engine's network state.
pub(crate) struct NetState {
    /// AnyCode's own upstream proxy, read once at start.
    upstream: Option<Upstream>,
    /// Allow lists compiled, by task (refreshed on change), and each relay's run.
    tasks: StdMutex<HashMap<String, TaskNet>>,
    /// The server's hook service.
    hook_service: StdMutex<Option<HookService>>,
    seq: std::sync::atomic::AtomicU64,
    /// Relays starting in turn, by host id (see [`Engine::start_relay`]).
    starts: StdMutex<HashMap<String, Arc<Turns>>>,
}

/// The line of relays starting in turn on one host.
pub(crate) struct Turns {
    /// At most the configuration's `relay_starts_at_once` starting at a time
    /// (fair: first come, first served).
    starts: tokio::sync::Semaphore,
    /// Written while the host's tasks reconcile: relays in line wait until every
    /// terminal is back, since they compete with it for the CPU and for Docker
    /// (a `node` each; at 500 tasks on 2 cores they slowed the reconcile).
    pub(crate) reconciling: tokio::sync::RwLock<()>,
}

impl Default for NetState {
    fn default() -> Self {
        NetState {
            upstream: Upstream::from_env(),
            tasks: Default::default(),
            hook_service: Default::default(),
            seq: Default::default(),
            starts: Default::default(),
        }
    }
}

struct TaskNet {
    /// The relay's generation (a newer start supersedes it).
    generation: u64,
    /// The mode this run started with.
    mode: NetworkMode,
    /// The current allow list.
    allow: Arc<Vec<String>>,
    /// The relay's supervising task.
    abort: Option<tokio::task::AbortHandle>,
}

fn mode_of(s: &str) -> Result<NetworkMode> {
    s.trim().parse::<NetworkMode>().map_err(|e| Error::Invalid(format!("network.mode: {e}")))
}

fn merge(into: &mut Vec<String>, more: impl IntoIterator<Item = String>) {
    for e in more {
        let e = e.trim().to_ascii_lowercase();
        if !e.is_empty() && !into.contains(&e) {
            into.push(e);
        }
    }
}

/// The allow entry of a base URL: its host, with the port when it is not the
/// scheme's default or the host is this machine (a gateway); `None` for something
/// that is not an http(s) URL.
pub(crate) fn url_entry(url: &str) -> Option<String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a).to_ascii_lowercase();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h.to_string(), p.parse::<u16>().ok()?),
        _ => (authority.clone(), default),
    };
    if host.is_empty() {
        return None;
    }
    let entry = if port != default || host == anycode_egress::HOST_GATEWAY { format!("{host}:{port}") } else { host };
    anycode_egress::Pattern::parse(&entry).ok().map(|_| entry)
}

impl Engine {
    /// The default allow list of new tasks: [`BUILTIN_ALLOW`], the hosts of every
    /// gateway and base URL the agents get (the settings' `[env]`, the profiles' fixed
    /// `env` and their base-URL variables in AnyCode's environment, even on
    /// `host.docker.internal`), the GitHub host (`ANYCODE_GITHUB_API`), and the
    /// settings' `[network] allow`.
    pub fn default_allow(&self) -> Vec<String> {
        let mut out: Vec<String> = BUILTIN_ALLOW.iter().map(|s| s.to_string()).collect();
        let cfg = &self.inner.config;
        let mut urls: Vec<String> = cfg.settings.env.values().cloned().collect();
        for p in self.inner.profiles.iter() {
            urls.extend(p.env.values().cloned());
            urls.extend(p.base_url_env.iter().filter_map(|k| std::env::var(k).ok()));
        }
        urls.push(anycode_github::api_base_from_env());
        merge(&mut out, urls.iter().filter_map(|u| url_entry(u)));
        merge(&mut out, cfg.settings.network.allow.iter().cloned());
        out
    }

    /// The policy of a new task in `project_id` for the request's `network`
    /// (validated: nothing is made on error).
    ///
    /// Errors: `INVALID_INPUT` naming the bad mode or entries and the fix.
    pub(crate) async fn new_task_network(&self, project_id: &str, req: Option<NetworkRequest>) -> Result<NetworkPolicy> {
        let pid = project_id.to_string();
        let project = self.db(move |store| Ok(store.project_network(&pid)?)).await?;
        let mut policy = NetworkPolicy { mode: self.inner.config.settings.network.mode.unwrap_or_default(), allow: self.default_allow().into() };
        if let Some(p) = project {
            policy.mode = p.mode;
            merge(Arc::make_mut(&mut policy.allow), p.allow.iter().cloned());
        }
        if let Some(r) = req {
            if let Some(m) = r.mode.as_deref() {
                policy.mode = mode_of(m)?;
            }
            merge(Arc::make_mut(&mut policy.allow), r.allow.unwrap_or_default().into_iter().chain(r.add));
        }
        anycode_egress::check_allow(&policy.allow).map_err(|e| Error::Invalid(format!("network.allow: {e}")))?;
        Ok(policy)
    }

    /// A task's network policy and the hosts refused for it.
    ///
    /// Errors: `TASK_NOT_FOUND`.
    pub async fn task_network(&self, task_id: &str) -> Result<NetworkStatus> {
        let task = self.task(task_id).await?;
        let id = task.id.clone();
        let blocked = self.db(move |store| Ok(store.blocked_hosts(&id)?)).await?;
        let running_mode = self.inner.net.tasks.lock().unwrap_or_else(|p| p.into_inner()).get(&task.id).map(|t| t.mode);
        Ok(NetworkStatus { policy: task.network, running_mode, blocked })
    }

    /// Changes a task's policy: `allow` replaces the list, `add` adds to it (at once
    /// for a running sandbox; hosts now allowed leave the blocked list); `mode` takes
    /// effect at the next start.
    ///
    /// Errors: `TASK_NOT_FOUND`; `INVALID_INPUT` naming the bad mode or entries.
    pub async fn set_task_network(&self, task_id: &str, req: NetworkRequest) -> Result<NetworkStatus> {
        let task = self.task(task_id).await?;
        let mut policy = task.network.clone();
        if let Some(m) = req.mode.as_deref() {
            policy.mode = mode_of(m)?;
        }
        if let Some(a) = req.allow {
            Arc::make_mut(&mut policy.allow).clear();
            merge(Arc::make_mut(&mut policy.allow), a);
        }
        merge(Arc::make_mut(&mut policy.allow), req.add);
        anycode_egress::check_allow(&policy.allow).map_err(|e| Error::Invalid(format!("network.allow: {e}")))?;
        let compiled = Policy::new(policy.mode, &policy.allow).map_err(|e| Error::Invalid(e.to_string()))?;
        let (id, p2) = (task.id.clone(), policy.clone());
        self.db(move |store| {
            store.set_task_network(&id, &p2)?;
            let now_allowed: Vec<String> = store
                .blocked_hosts(&id)?
                .into_iter()
                .map(|b| b.host)
                .filter(|h| [80u16, 443].iter().any(|port| matches!(compiled.decide(h, *port), anycode_egress::Decision::Allow { .. })) || compiled.allow.iter().any(|p| p.host == *h))
                .collect();
            store.clear_blocked(&id, &now_allowed)?;
            Ok(())
        })
        .await?;
        if let Some(t) = self.inner.net.tasks.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&task.id) {
            t.allow = policy.allow.clone();
        }
        tracing::info!(task = %task.id, mode = %policy.mode, entries = policy.allow.len(), "network policy changed");
        self.task_changed(&task.id);
        self.task_network(&task.id).await
    }

    /// A project's default network policy for new tasks (`None`: the settings').
    ///
    /// Errors: `PROJECT_NOT_FOUND`.
    pub async fn project_network(&self, project_id: &str) -> Result<Option<NetworkPolicy>> {
        let p = self.project(project_id).await?;
        self.db(move |store| Ok(store.project_network(&p.id)?)).await
    }

    /// Sets (or with `None` removes) a project's default network policy; its
    /// `allow` is added to the default list of its new tasks.
    ///
    /// Errors: `PROJECT_NOT_FOUND`; `INVALID_INPUT` naming the bad mode or entries.
    pub async fn set_project_network(&self, project_id: &str, req: Option<NetworkRequest>) -> Result<Option<NetworkPolicy>> {
        let p = self.project(project_id).await?;
        let policy = match req {
            Some(r) => {
                let mut allow = Vec::new();
                merge(&mut allow, r.allow.unwrap_or_default().into_iter().chain(r.add));
                anycode_egress::check_allow(&allow).map_err(|e| Error::Invalid(format!("network.allow: {e}")))?;
                let mode = match r.mode.as_deref() {
                    Some(m) => mode_of(m)?,
                    None => self.inner.config.settings.network.mode.unwrap_or_default(),
                };
                Some(NetworkPolicy { mode, allow: allow.into() })
            }
            None => None,
        };
        let p2 = policy.clone();
        self.db(move |store| Ok(store.set_project_network(&p.id, p2.as_ref())?)).await?;
        Ok(policy)
    }

    /// Sets the service hook connections from sandboxes go to (the server's hook
    /// router); `None` turns hooks off for tasks started from now on. Hooks work
    /// whenever a task's relay runs and this is set.
    pub fn set_hook_service(&self, service: Option<HookService>) {
        *self.inner.net.hook_service.lock().unwrap_or_else(|p| p.into_inner()) = service;
    }

    /// Whether sandboxes' hooks reach AnyCode (a hook service is set; each sandbox
    /// reaches it through its relay).
    pub fn hooks_available(&self) -> bool {
        self.inner.net.hook_service.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Before a start: the container's Docker networks for the task's mode.
    pub(crate) async fn prepare_network(&self, docker: &SandboxHost, task: &Task, cid: &str) -> Result<()> {
        match task.network.mode {
            NetworkMode::Open => docker.network_connect(cid, anycode_sandbox::DEFAULT_NETWORK).await?,
            NetworkMode::Allowlist | NetworkMode::None => docker.network_isolate(cid).await?,
        }
        Ok(())
    }

    /// Runs the task's relay in container `cid` (just started, or re-attached) and
    /// keeps it running while the container runs. The receiver says whether the
    /// first relay listens (`Err` with what went wrong, also logged).
    ///
    /// `in_turn`: the relay waits its turn among the host's relays starting in turn
    /// (`Config::relay_starts_at_once` at a time). Reconcile starts every running
    /// task's relay after a restart: all together, on 2 cores, 100 relays all
    /// listened only 11–13 s later; in turn, the first listen at once. A relay a user
    /// waits for (a task starting, the relay check) starts at once, beside them.
    /// The line moves only once a reconcile of the host is over ([`Turns`]).
    pub(crate) fn start_relay(&self, docker: &SandboxHost, task: &Task, cid: &str, in_turn: bool) -> oneshot::Receiver<std::result::Result<(), String>> {
        let generation = self.inner.net.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let engine = self.clone();
        let (docker, task_id, cid) = (docker.clone(), task.id.clone(), cid.to_string());
        let starts = in_turn.then(|| self.relay_turns(&task.host));
        let mut tasks = self.inner.net.tasks.lock().unwrap_or_else(|p| p.into_inner());
        // Spawned under the lock, so the loop sees its own generation.
        let handle = tokio::spawn(async move { engine.relay_loop(docker, task_id, cid, generation, starts, tx).await });
        let old = tasks.insert(
            task.id.clone(),
            TaskNet { generation, mode: task.network.mode, allow: task.network.allow.clone(), abort: Some(handle.abort_handle()) },
        );
        // An earlier run's relay (its exec closes, so its process ends).
        if let Some(a) = old.and_then(|o| o.abort) {
            a.abort();
        }
        rx
    }

    /// Host `host_id`'s line of relays starting in turn.
    pub(crate) fn relay_turns(&self, host_id: &str) -> Arc<Turns> {
        self.inner
            .net
            .starts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host_id.to_string())
            .or_insert_with(|| {
                Arc::new(Turns { starts: tokio::sync::Semaphore::new(self.inner.config.relay_starts_at_once), reconciling: tokio::sync::RwLock::new(()) })
            })
            .clone()
    }

    fn relay_current(&self, task_id: &str, generation: u64) -> bool {
        self.inner.net.tasks.lock().unwrap_or_else(|p| p.into_inner()).get(task_id).is_some_and(|t| t.generation == generation)
    }

    async fn relay_loop(
        &self,
        docker: SandboxHost,
        task_id: String,
        cid: String,
        generation: u64,
        starts: Option<Arc<Turns>>,
        ready: oneshot::Sender<std::result::Result<(), String>>,
    ) {
        let mut ready = Some(ready);
        let mut backoff = Duration::from_secs(1);
        loop {
            let outcome = self.relay_once(&docker, &task_id, &cid, generation, starts.as_deref(), &mut ready).await;
            if let Some(tx) = ready.take() {
                let msg = match &outcome {
                    Err(e) => e.clone(),
                    Ok(()) => "the relay ended before it listened".to_string(),
                };
                tracing::warn!(task = %task_id, error = %msg, "the sandbox relay could not start: hooks and the egress proxy do not reach AnyCode");
                let _ = tx.send(Err(msg));
            }
            if !self.relay_current(&task_id, generation) {
                return;
            }
            // The wait comes before the check: a sandbox being stopped or removed
            // ends its relay a moment before Docker reports it stopped, which is
            // not a relay failure to log.
            tokio::time::sleep(backoff).await;
            if !self.relay_current(&task_id, generation) {
                return;
            }
            let running = docker.inspect(&cid).await.ok().flatten().is_some_and(|c| c.running);
            if !running {
                return;
            }
            tracing::warn!(task = %task_id, error = ?outcome.err(), waited_s = backoff.as_secs(), "the sandbox relay ended while the sandbox runs; restarting it");
            backoff = (backoff * 2).min(RELAY_BACKOFF_MAX);
        }
    }

    /// One relay process: started, served until its output ends.
    async fn relay_once(
        &self,
        docker: &SandboxHost,
        task_id: &str,
        cid: &str,
        generation: u64,
        starts: Option<&Turns>,
        ready: &mut Option<oneshot::Sender<std::result::Result<(), String>>>,
    ) -> std::result::Result<(), String> {
        // Held until this relay listens, fails, or is late (in line, first come
        // first served: the semaphore is fair). Never closed; a closed one would
        // just not limit. A reconcile of the host goes first: terminals, then relays.
        let mut start_permit = match starts {
            Some(t) => {
                drop(t.reconciling.read().await);
                t.starts.acquire().await.ok()
            }
            None => None,
        };
        let cmd = RELAY_CMD.iter().map(|s| s.to_string()).collect();
        // The container's own user (""): the relay needs no rights.
        let pipe = docker.exec_pipe(cid, cmd, "", vec![], "/").await.map_err(|e| format!("starting anycode-relay: {e}"))?;
        let (out_tx, mut out_rx) = mpsc::channel::<std::io::Result<bytes::Bytes>>(16);
        let (listen_tx, mut listen_rx) = mpsc::unbounded_channel::<String>();
        let mut output = pipe.output;
        let task_log = task_id.to_string();
        // stdout carries frames; stderr says when it listens, and why it failed.
        // Aborted with this function's future: the reader holds the exec's
        // connection open, so while it lives the relay never sees its stdin end and
        // keeps the ports a later relay (after a restart) needs.
        let _reader = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let mut err_text = String::new();
            while let Some(chunk) = output.next().await {
                match chunk {
                    Ok(PipeChunk::Stdout(b)) => {
                        if out_tx.send(Ok(b)).await.is_err() {
                            break;
                        }
                    }
                    Ok(PipeChunk::Stderr(b)) => {
                        err_text.push_str(&String::from_utf8_lossy(&b));
                        while let Some(i) = err_text.find('\n') {
                            let line: String = err_text.drain(..=i).collect();
                            let line = line.trim().to_string();
                            if !line.contains("listening on") {
                                tracing::warn!(task = %task_log, "{line}");
                            }
                            let _ = listen_tx.send(line);
                        }
                    }
                    Err(e) => {
                        let _ = out_tx.send(Err(e)).await;
                        break;
                    }
                }
            }
        }));
        let reader = tokio_util_reader(futures_util::stream::poll_fn(move |cx| out_rx.poll_recv(cx)));
        let handler = self.relay_handler(task_id, generation);
        let serving = anycode_egress::run_relay(reader, pipe.input, handler);
        tokio::pin!(serving);
        if ready.is_none() {
            // A restart of a relay that listened before: nobody waits for it.
            start_permit.take();
        }
        if let Some(tx) = ready.take() {
            // Wait for both ports while already serving (a hook may come at once).
            let wait = async {
                let mut seen = Vec::new();
                while let Some(line) = listen_rx.recv().await {
                    if line.contains("listening on") {
                        seen.push(line);
                        if seen.len() == 2 {
                            return Ok(());
                        }
                    } else if line.starts_with("anycode-relay:") {
                        return Err(line);
                    }
                }
                Err("anycode-relay exited (is this AnyCode's sandbox image?)".to_string())
            };
            tokio::pin!(wait);
            let waited = tokio::select! {
                r = tokio::time::timeout(RELAY_READY, &mut wait) => r,
                r = &mut serving => { let _ = tx.send(Err(format!("anycode-relay ended at once: {}", r.err().map(|e| e.to_string()).unwrap_or_default()))); return Ok(()); }
            };
            // Listening, failed or late: the next relay in line may start.
            start_permit.take();
            match waited {
                Ok(Ok(())) => {
                    tracing::debug!(task = %task_id, "sandbox relay listening");
                    let _ = tx.send(Ok(()));
                }
                Ok(Err(e)) => {
                    let _ = tx.send(Err(e.clone()));
                    return Err(e);
                }
                // Slow, not failed (a hundred relays starting at once after a
                // restart, on a busy machine): the waiters hear of it, and this
                // relay is given [`RELAY_LATE`] more, serving meanwhile. Killing it
                // at once to start another would double the work that made it slow.
                Err(_) => {
                    let e = format!("anycode-relay did not listen within {} s", RELAY_READY.as_secs());
                    tracing::warn!(task = %task_id, "{e}; waiting longer");
                    let _ = tx.send(Err(e));
                    let late = tokio::select! {
                        r = tokio::time::timeout(RELAY_LATE, &mut wait) => r,
                        r = &mut serving => return r.map_err(|e| e.to_string()),
                    };
                    match late {
                        Ok(Ok(())) => tracing::info!(task = %task_id, "sandbox relay listening after all"),
                        Ok(Err(e)) => return Err(e),
                        Err(_) => return Err(format!("anycode-relay did not listen within {} s", (RELAY_READY + RELAY_LATE).as_secs())),
                    }
                }
            }
        }
        serving.await.map_err(|e| e.to_string())
    }

    /// Where a relayed connection goes, by the port the sandbox client used.
    fn relay_handler(&self, task_id: &str, generation: u64) -> Handler {
        let engine = self.clone();
        let task_id = task_id.to_string();
        Arc::new(move |port, stream| match port {
            HOOK_PORT => {
                let service = engine.inner.net.hook_service.lock().unwrap_or_else(|p| p.into_inner()).clone();
                match service {
                    Some(s) => s(stream),
                    None => tracing::warn!(task = %task_id, "a hook arrived but AnyCode serves no hooks now"),
                }
            }
            PROXY_PORT => {
                let engine = engine.clone();
                let task_id = task_id.clone();
                tokio::spawn(async move { engine.serve_proxy_conn(&task_id, generation, stream).await });
            }
            other => tracing::debug!(task = %task_id, port = other, "relayed connection to an unknown port dropped"),
        })
    }

    async fn serve_proxy_conn(&self, task_id: &str, generation: u64, stream: DuplexStream) {
        let policy = {
            let tasks = self.inner.net.tasks.lock().unwrap_or_else(|p| p.into_inner());
            tasks.get(task_id).filter(|t| t.generation == generation).map(|t| Policy::new(t.mode, &t.allow))
        };
        // A superseded relay's connections get the strictest answer.
        let policy = match policy {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                tracing::warn!(task = task_id, error = %e, "the task's allow list is not usable; refusing");
                Policy { mode: NetworkMode::None, allow: Default::default() }
            }
            None => Policy { mode: NetworkMode::None, allow: Default::default() },
        };
        let engine = self.clone();
        let tid = task_id.to_string();
        let on_blocked = move |host: &str| engine.record_blocked(&tid, host);
        if let Err(e) = anycode_egress::serve_proxy(stream, task_id, &policy, self.inner.net.upstream.as_ref(), on_blocked).await {
            tracing::debug!(task = task_id, error = %e, "proxy connection ended");
        }
    }

    /// Counts a refused host on the task (stored in the background).
    fn record_blocked(&self, task_id: &str, host: &str) {
        tracing::info!(task = task_id, host, "egress proxy refused a host");
        let store = self.inner.store.clone();
        let (id, host) = (task_id.to_string(), host.to_string());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = store.record_blocked(&id, &host, &anycode_core::now_rfc3339()) {
                tracing::warn!(task = %id, error = %e, "recording a refused host failed");
            }
        });
    }

    /// Hands the credentials over once the relay listens (start-agent waits for
    /// them, so the first output is not delayed): the hook settings in the handover
    /// only work through it. A relay that did not start is said in the terminal's
    /// first line (a warning) and the log; hooks are then off for this run.
    pub(crate) fn handover_after_relay(
        &self,
        docker: SandboxHost,
        task_id: String,
        cid: String,
        viewer: anycode_terminal::Viewer,
        mut h: crate::handover::Handover,
        ready: crate::devcontainer::Ready,
    ) {
        let engine = self.clone();
        let crate::devcontainer::Ready { relay, setup } = ready;
        tokio::spawn(async move {
            let problem = match tokio::time::timeout(RELAY_READY + Duration::from_secs(1), relay).await {
                Ok(Ok(Ok(()))) => None,
                Ok(Ok(Err(e))) => Some(e),
                Ok(Err(_)) => Some("the relay was not started".to_string()),
                Err(_) => Some("the relay did not answer".to_string()),
            };
            // The dev container's setup runs first: the agent (and its prompt) waits.
            let _ = setup.await;
            if let Some(p) = problem {
                let note = format!(
                    "AnyCode's relay did not start in this sandbox ({p}): agent hooks, approvals and the network proxy do not reach AnyCode. Restart the task; `anycode doctor` checks the relay."
                );
                h.note = if h.note.is_empty() { note } else { format!("{note} {}", h.note) };
                h.warn = true;
            }
            engine.spawn_handover(docker, task_id, cid, viewer, h);
        });
    }

    /// Checks that a sandbox reaches AnyCode: starts a throwaway container of the
    /// sandbox image with no network, runs the relay in it and posts a hook-style
    /// request (without a token, so the hook service must answer 401) through it.
    /// Returns the milliseconds it took; `None` when the image is not built and
    /// `build` is false.
    ///
    /// Errors: `DOCKER_UNAVAILABLE`; `INTERNAL` with what failed (no hook service,
    /// the relay not starting, the request not arriving).
    pub async fn check_relay(&self, build: bool) -> Result<Option<u64>> {
        let started = std::time::Instant::now();
        let docker = self.docker().await?;
        let image = if build {
            self.ensure_image(|_| {}).await?
        } else {
            let tag = crate::sandbox_image_tag(&self.inner.config)?;
            if !docker.image_exists(&tag).await? {
                return Ok(None);
            }
            tag
        };
        if !self.hooks_available() {
            return Err(Error::Internal("no hook service is set (AnyCode's server is not running)".into()));
        }
        let id = format!("relay-check-{}", anycode_core::new_id());
        // A helper container: no network, and removed by Docker itself once it ends
        // (so a server that stops in the middle of the check leaves nothing behind).
        let cid = docker.start_helper(&format!("anycode-{id}"), &image, &id, "1000:1000", vec![]).await?;
        let result = async {
            let task = Task { network: NetworkPolicy { mode: NetworkMode::None, allow: Default::default() }, ..check_task(&id) };
            let ready = self.start_relay(&docker, &task, &cid, false);
            match tokio::time::timeout(RELAY_READY + Duration::from_secs(1), ready).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(Error::Internal(format!("the relay did not start in the sandbox: {e}"))),
                _ => return Err(Error::Internal("the relay did not start in the sandbox".into())),
            }
            let url = format!("http://127.0.0.1:{HOOK_PORT}{}", crate::HOOK_PATH);
            let cmd = ["curl", "-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "-H", "Content-Type: application/json", "--data", "{}", &url];
            let out = docker.exec_output(&cid, cmd.iter().map(|s| s.to_string()).collect(), "", vec![], &[], 4096).await?;
            let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if code != "401" {
                return Err(Error::Internal(format!(
                    "a hook request from the sandbox did not reach AnyCode (curl exit {}, HTTP {code:?}, {})",
                    out.exit_code,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            Ok(())
        }
        .await;
        self.forget_relay(&id);
        if let Err(e) = docker.remove(&cid).await {
            tracing::warn!(container = %cid, error = %e, "removing the relay check's container failed");
        }
        result.map(|()| Some(started.elapsed().as_millis() as u64))
    }

    /// The task's relay stops being served (its container stopped or is deleted).
    pub(crate) fn forget_relay(&self, task_id: &str) {
        let old = self.inner.net.tasks.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id);
        if let Some(a) = old.and_then(|o| o.abort) {
            a.abort();
        }
    }

    /// Stops serving every relay and hooks (the server is shutting down): each
    /// relay's exec stream closes, so its process in the sandbox ends and a later
    /// AnyCode starts a new one.
    pub fn shutdown_relays(&self) {
        self.set_hook_service(None);
        let all: Vec<TaskNet> = self.inner.net.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain().map(|(_, t)| t).collect();
        for a in all.into_iter().filter_map(|t| t.abort) {
            a.abort();
        }
    }
}

/// A stand-in task for the relay check (only its id and network matter).
fn check_task(id: &str) -> Task {
    Task {
        id: id.to_string(),
        project_id: id.to_string(),
        title: "relay check".into(),
        agent: anycode_core::Agent::shell(),
        branch: String::new(),
        base: String::new(),
        base_sha: String::new(),
        prompt: None,
        status: anycode_core::TaskStatus::Running,
        exit_code: None,
        error: None,
        container_id: None,
        worktree: String::new(),
        agent_terminal_id: String::new(),
        record: false,
        terminals: vec![],
        created_at: String::new(),
        credential: anycode_core::Credential::None,
        credential_source: None,
        credential_expires_at: None,
        credential_problem: None,
        pr: None,
        permission_mode: None,
        cpus: None,
        memory_mb: None,
        attention: None,
        usage: None,
        queue_position: None,
        network: NetworkPolicy::default(),
        messages: Vec::new(),
        setup: Default::default(),
        host: anycode_core::LOCAL_HOST.to_string(),
        host_error: None,
    }
}

/// An `AsyncRead` over a stream of byte chunks.
fn tokio_util_reader<S>(s: S) -> impl tokio::io::AsyncRead + Unpin + Send
where
    S: futures_util::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin + Send,
{
    tokio_util::io::StreamReader::new(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_become_allow_entries() {
        assert_eq!(url_entry("https://llm.example.com/v1").as_deref(), Some("llm.example.com"));
        assert_eq!(url_entry("http://host.docker.internal:4000").as_deref(), Some("host.docker.internal:4000"));
        assert_eq!(url_entry("http://host.docker.internal/x").as_deref(), Some("host.docker.internal:80"));
        assert_eq!(url_entry("https://gw.example.com:8443/").as_deref(), Some("gw.example.com:8443"));
        assert_eq!(url_entry("https://user:pw@gw.example.com").as_deref(), Some("gw.example.com"));
        assert_eq!(url_entry("claude-3-opus"), None);
        assert_eq!(url_entry("ftp://x.example"), None);
        for e in BUILTIN_ALLOW {
            anycode_egress::Pattern::parse(e).unwrap();
        }
    }
}
