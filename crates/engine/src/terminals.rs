//! Terminals: the registry of live terminal hubs ([`TerminalRegistry`]), extra
//! shells (exec sessions), the agent terminal's recording, and the hub handed to
//! the server's viewers.

use crate::runtime::ExecControl;
use crate::{Engine, Error, Result, Task, TaskStatus, TerminalInfo, TerminalKind, Terminal};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

/// Sends SIGHUP to every process of the container whose environment has
/// `ANYCODE_TERMINAL=$1`: an exec terminal's shell, its jobs, and whatever they
/// started, as a terminal emulator does when its window closes. Docker itself leaves
/// an exec's processes running when its stream closes.
const HANGUP_SCRIPT: &str = r#"for p in /proc/[0-9]*; do
  if tr '\0' '\n' < "$p/environ" 2>/dev/null | grep -qx "ANYCODE_TERMINAL=$1"; then kill -HUP "${p#/proc/}" 2>/dev/null; fi
done"#;

/// One registered terminal.
struct TermEntry {
    task_id: String,
    info: TerminalInfo,
    terminal: Terminal,
    /// Registration order: a task's terminals are listed agent first, then by it.
    seq: u64,
    /// For exec terminals: how to hang up its processes on close.
    hangup: Option<Hangup>,
}

/// An exec terminal's `(backend, container, user)`: where to hang up its processes.
pub(crate) type Hangup = (anycode_sandbox::SandboxHost, String, String);

/// The live terminal hubs by terminal id: each task's agent terminal (the
/// container's main process) and its extra shells (exec sessions). A terminal is
/// here while something may write to it or read it; the hubs themselves are
/// `anycode-terminal`'s.
#[derive(Default)]
pub(crate) struct TerminalRegistry {
    entries: StdMutex<HashMap<String, TermEntry>>,
    seq: AtomicU64,
}

/// Why an extra terminal could not be removed ([`TerminalRegistry::remove_shell`]).
pub(crate) enum RemoveRefused {
    /// No terminal with that id.
    Unknown,
    /// It is an agent terminal, which only stopping or deleting the task ends.
    Agent,
}

impl TerminalRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, TermEntry>> {
        // A panic elsewhere while holding the lock leaves a usable map.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Every registered terminal's info by task id, each task's agent terminal
    /// first, then extra shells in the order they opened: the registry read once for
    /// a list of many tasks.
    pub(crate) fn infos_by_task(&self) -> HashMap<String, Vec<TerminalInfo>> {
        let terms = self.lock();
        let mut by_task: HashMap<String, Vec<&TermEntry>> = HashMap::new();
        for e in terms.values() {
            by_task.entry(e.task_id.clone()).or_default().push(e);
        }
        by_task.into_iter().map(|(task, list)| (task, ordered(list))).collect()
    }

    /// Registers `terminal` as the task's agent terminal unless one is registered
    /// already; returns the registered one.
    pub(crate) fn register_agent(&self, task: &Task, terminal: Terminal) -> Terminal {
        let seq = self.next_seq();
        let mut terms = self.lock();
        let entry = terms.entry(task.agent_terminal_id.clone()).or_insert_with(|| TermEntry {
            task_id: task.id.clone(),
            info: agent_terminal_info(task),
            terminal,
            seq,
            hangup: None,
        });
        entry.terminal.clone()
    }

    /// Registers an extra shell; `hangup` says where its processes are.
    pub(crate) fn register_shell(&self, task_id: &str, info: TerminalInfo, terminal: Terminal, hangup: Hangup) {
        let seq = self.next_seq();
        let entry = TermEntry { task_id: task_id.to_string(), info: info.clone(), terminal, seq, hangup: Some(hangup) };
        self.lock().insert(info.id, entry);
    }

    /// Registers `terminal` as the task's one terminal of `kind` (the setup's),
    /// closing and replacing an earlier one.
    pub(crate) fn replace_kind(&self, task_id: &str, kind: TerminalKind, info: TerminalInfo, terminal: Terminal) {
        let seq = self.next_seq();
        let mut terms = self.lock();
        terms.retain(|_, e| {
            let old = e.task_id == task_id && e.info.kind == kind;
            if old {
                e.terminal.close();
            }
            !old
        });
        terms.insert(info.id.clone(), TermEntry { task_id: task_id.to_string(), info, terminal, seq, hangup: None });
    }

    /// The task's first terminal of `kind`, if registered.
    pub(crate) fn find_kind(&self, task_id: &str, kind: TerminalKind) -> Option<Terminal> {
        self.lock().values().find(|e| e.task_id == task_id && e.info.kind == kind).map(|e| e.terminal.clone())
    }

    /// Whether a terminal with this id is registered.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.lock().contains_key(id)
    }

    /// The hub of terminal `id`, when registered.
    pub(crate) fn get(&self, id: &str) -> Option<Terminal> {
        self.lock().get(id).map(|e| e.terminal.clone())
    }

    /// Whether terminal `id` is registered and connected to a process.
    pub(crate) fn is_live(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|e| e.terminal.is_live())
    }

    /// Every registered terminal of the task.
    pub(crate) fn of_task(&self, task_id: &str) -> Vec<Terminal> {
        self.lock().values().filter(|e| e.task_id == task_id).map(|e| e.terminal.clone()).collect()
    }

    /// Closes and forgets every terminal of the task (viewers get `Closed`).
    pub(crate) fn forget_task(&self, task_id: &str) {
        self.lock().retain(|_, e| {
            if e.task_id == task_id {
                e.terminal.close();
                false
            } else {
                true
            }
        });
    }

    /// Closes and forgets the extra shell `id`; returns where to hang up its
    /// processes.
    pub(crate) fn remove_shell(&self, id: &str) -> std::result::Result<Option<Hangup>, RemoveRefused> {
        let mut terms = self.lock();
        match terms.get(id) {
            None => Err(RemoveRefused::Unknown),
            Some(e) if e.info.kind == TerminalKind::Agent => Err(RemoveRefused::Agent),
            Some(_) => Ok(terms.remove(id).and_then(|e| {
                e.terminal.close();
                e.hangup
            })),
        }
    }
}

/// A task's terminals in the order they are listed: the agent terminal first,
/// then extra shells in the order they opened.
fn ordered(mut list: Vec<&TermEntry>) -> Vec<TerminalInfo> {
    list.sort_by_key(|e| (e.info.kind != TerminalKind::Agent, e.seq));
    list.into_iter().map(|e| e.info.clone()).collect()
}

/// `list` (as [`ordered`] gives it) with a placeholder for the task's agent terminal
/// in front when that is not registered yet.
pub(crate) fn with_agent(t: &Task, mut list: Vec<TerminalInfo>) -> Vec<TerminalInfo> {
    if !list.iter().any(|i| i.kind == TerminalKind::Agent) {
        list.insert(0, agent_terminal_info(t));
    }
    list
}

fn agent_terminal_info(t: &Task) -> TerminalInfo {
    TerminalInfo { id: t.agent_terminal_id.clone(), kind: TerminalKind::Agent, title: t.agent.to_string() }
}

impl Engine {
    pub(crate) fn register_agent_terminal(&self, task: &Task, terminal: Terminal) -> Terminal {
        self.inner.terminals.register_agent(task, terminal)
    }

    pub(crate) fn has_terminal(&self, id: &str) -> bool {
        self.inner.terminals.contains(id)
    }

    pub(crate) fn forget_terminals(&self, task_id: &str) {
        self.inner.terminals.forget_task(task_id);
    }

    /// `<data_dir>/recordings/<task id>/<terminal id>.cast`.
    pub(crate) fn recording_file(&self, task_id: &str, terminal_id: &str) -> PathBuf {
        self.inner.config.recordings_dir().join(task_id).join(format!("{terminal_id}.cast"))
    }

    /// Starts (or continues) the agent terminal's recording when the task records.
    /// A recording that cannot start is logged and skipped: it never stops the task.
    pub(crate) async fn start_recording(&self, task: &Task, terminal: &Terminal, skip: u64) {
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
        let tid = terminal_id.to_string();
        let task = self.db(move |store| Ok(store.task_snapshot()?.iter().find(|t| t.agent_terminal_id == tid).cloned())).await?;
        let Some(task) = task else {
            let known = self.inner.terminals.contains(terminal_id);
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

    /// Opens an extra terminal in the task's running container: `cmd` run by
    /// `bash -lc`, or a login shell when `None`.
    ///
    /// Errors: `TASK_NOT_FOUND`; `CONFLICT` when the task is not running.
    pub async fn open_terminal(&self, task_id: &str, cmd: Option<String>) -> Result<TerminalInfo> {
        self.ensure_unpaused(task_id).await?;
        let task = self.task(task_id).await?;
        let cid = task.container_id.clone().ok_or_else(|| Error::Conflict("the task has no container".into()))?;
        let docker = self.backend_for(&task).await?;
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
        let user = self.task_user(&task, &project);
        let (exec_id, stream) = docker.exec(&cid, argv, &user, env, 80, 24, self.inner.config.pty_holder).await?;
        let info = TerminalInfo { id: id.clone(), kind: TerminalKind::Shell, title: cmd_line.unwrap_or_else(|| "shell".into()) };
        let terminal = Terminal::new(&id, self.inner.config.scrollback_bytes);
        let control = Arc::new(ExecControl { docker: docker.clone(), exec_id, pty: stream.resize.clone() });
        terminal.connect(stream.output, stream.input, control, |_| {});
        self.inner.terminals.register_shell(&task.id, info.clone(), terminal, (docker.clone(), cid, user));
        Ok(info)
    }

    /// Closes an extra terminal: its viewers get `Closed`, and its processes in the
    /// container get SIGHUP (in the background; a process that ignores SIGHUP, like
    /// `nohup`, keeps running, as with any terminal).
    /// Errors: `TERMINAL_NOT_FOUND`; `INVALID_INPUT` for the agent terminal.
    pub fn close_terminal(&self, id: &str) -> Result<()> {
        let hangup = match self.inner.terminals.remove_shell(id) {
            Ok(h) => h,
            Err(RemoveRefused::Unknown) => return Err(Error::NotFound { what: "terminal", id: id.to_string() }),
            Err(RemoveRefused::Agent) => return Err(Error::Invalid("the agent terminal cannot be closed: stop or delete the task".into())),
        };
        if let Some((docker, cid, user)) = hangup {
            let id = id.to_string();
            tokio::spawn(async move {
                let cmd = ["sh", "-c", HANGUP_SCRIPT, "anycode-hangup", &id].map(String::from).to_vec();
                if let Err(e) = docker.exec_detached(&cid, cmd, &user).await {
                    tracing::warn!(terminal = %id, error = %e, "could not hang up the closed terminal's processes");
                }
            });
        }
        Ok(())
    }

    /// The terminal hub for viewers. The agent terminal of a task whose container is
    /// not running shows the container's logged history.
    ///
    /// Errors: `TERMINAL_NOT_FOUND`.
    pub async fn terminal(&self, id: &str) -> Result<Terminal> {
        if let Some(t) = self.inner.terminals.get(id) {
            return Ok(t);
        }
        let tid = id.to_string();
        let task = self.db(move |store| Ok(store.task_snapshot()?.iter().find(|t| t.agent_terminal_id == tid).cloned()))
            .await?
            .ok_or_else(|| Error::NotFound { what: "terminal", id: id.to_string() })?;
        let backend = self.backend_for(&task).await;
        if backend.is_ok() && task.container_id.is_some() && matches!(task.status, TaskStatus::Running | TaskStatus::Paused) {
            // A running sandbox's terminal is attached by its host's reconcile (a
            // remote host's runs once it answers, which `backend_for` just made
            // sure of). A terminal of the log alone registered now would take its
            // place: the attach would replay the log into it a second time, and
            // what is typed before the attach would be lost.
            if let Some(t) = self.attached_by_reconcile(id, &task.id).await {
                return Ok(t);
            }
        }
        let history = match (&task.container_id, backend) {
            (Some(cid), Ok(d)) => d.logs(cid, self.inner.config.scrollback_bytes).await.unwrap_or_default(),
            _ => Vec::new(),
        };
        let t = Terminal::with_history(&task.agent_terminal_id, self.inner.config.scrollback_bytes, &history, task.exit_code);
        Ok(self.register_agent_terminal(&task, t))
    }

    /// Waits (at most [`ATTACH_WAIT`]) for terminal `id` of task `task_id` to be
    /// attached by a reconcile; `None` when it was not: the task is no longer
    /// running or paused, or the time is up.
    async fn attached_by_reconcile(&self, id: &str, task_id: &str) -> Option<Terminal> {
        let deadline = tokio::time::Instant::now() + ATTACH_WAIT;
        loop {
            if self.inner.terminals.is_live(id) {
                return self.inner.terminals.get(id);
            }
            let tid = task_id.to_string();
            let still = self.db(move |store| Ok(store.task(&tid)?.is_some_and(|t| matches!(t.status, TaskStatus::Running | TaskStatus::Paused)))).await;
            if !matches!(still, Ok(true)) || tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// How long opening a running sandbox's terminal waits for its reconcile to attach
/// it (a remote host's, just connected: 500 tasks take about 2 s here).
const ATTACH_WAIT: Duration = Duration::from_secs(10);
