//! Reconcile: bringing the database in line with what the sandbox backend has,
//! after a (re)connection or a restart of AnyCode. Running sandboxes are attached
//! again (their logged output becomes the scrollback), stopped ones mark their task
//! exited or queue it again, missing ones mark it `error`, and containers of no
//! known task are removed.

use crate::runtime::ContainerControl;
use crate::{governor, Engine, Result, Task, TaskStatus, Terminal};
use anycode_core::LOCAL_HOST;
use anycode_sandbox::{ContainerInfo, SandboxHost};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

/// How long input waits for a re-attached sandbox's relay to listen (after that it
/// goes through anyway, and the relay's failure is logged).
pub(crate) const RELAY_READY_WAIT: Duration = Duration::from_secs(15);

/// How many tasks reconcile at once (each is a few calls to Docker: the log's
/// length, the attach, the relay's exec).
const RECONCILE_AT_ONCE: usize = 16;

impl Engine {
    /// Brings the database in line with Docker: running containers are attached again
    /// (their logged output becomes the scrollback), stopped ones mark their task
    /// exited, missing ones mark it `error`, and containers of this instance whose
    /// task is unknown (a crash during creation) are removed.
    pub async fn reconcile(&self) -> Result<()> {
        let d = self.docker().await?;
        self.reconcile_with(&d).await
    }

    /// Reconciles the local engine's tasks (see [`Engine::reconcile_on`]).
    pub(crate) async fn reconcile_with(&self, docker: &SandboxHost) -> Result<()> {
        self.reconcile_on(docker, LOCAL_HOST).await
    }

    /// Brings the tasks placed on host `host_id` in line with that host's
    /// containers (`docker`). A container of this instance whose task is unknown
    /// on every host is removed, unless a task of that id is being made right now
    /// (its lock exists: the container is made before the task's row) or it is a
    /// git helper of a task whose work is being brought out.
    pub(crate) async fn reconcile_on(&self, docker: &SandboxHost, host_id: &str) -> Result<()> {
        let all = self.db(move |store| Ok(store.tasks(None)?)).await?;
        let listing = std::time::Instant::now();
        let containers = docker.managed_containers().await?;
        let list_ms = listing.elapsed().as_millis() as u64;
        for c in &containers {
            // A git helper (`helper:<task>`) at work for a task is in use too.
            let tid = c.task_id.strip_prefix("helper:").unwrap_or(&c.task_id);
            let making = self.inner.task_locks.lock().unwrap_or_else(|p| p.into_inner()).contains_key(tid)
                || (tid != c.task_id && self.inner.sync_locks.lock().unwrap_or_else(|p| p.into_inner()).contains_key(tid));
            if !all.iter().any(|t| t.id == c.task_id) && !making {
                tracing::info!(container = %c.id, host = host_id, "removing a container of no known task");
                let _ = docker.remove(&c.id).await;
            }
        }
        let tasks: Vec<_> = all.into_iter().filter(|t| t.host == host_id).collect();
        let started = std::time::Instant::now();
        let count = tasks.len();
        // Relays in line wait for the end (terminals first); a paused sandbox's own
        // relay is not in line (see `reconcile_task`).
        let turns = self.relay_turns(host_id);
        let reconciling = turns.reconciling.write().await;
        // Each task's calls to Docker wait on the engine, not on this process: a few
        // tasks at a time keep it busy without a queue of hundreds of calls.
        let results: Vec<Result<()>> = futures_util::stream::iter(tasks)
            .map(|task| self.reconcile_task(docker, task, &containers))
            .buffer_unordered(RECONCILE_AT_ONCE)
            .collect()
            .await;
        drop(reconciling);
        // `list_ms`: Docker's list of the containers, before `ms` (after a kill -9 of
        // AnyCode at 500 sandboxes it took seconds: dockerd closes the old streams).
        tracing::info!(host = host_id, tasks = count, list_ms, ms = started.elapsed().as_millis() as u64, "reconciled");
        self.refresh_queue().await;
        self.kick_queue();
        // Every task had its turn; the first failure is the answer.
        results.into_iter().collect::<Result<Vec<()>>>().map(|_| ())
    }

    /// Brings one task in line with its container (`containers`: the host's, listed
    /// once), under the task's lock.
    async fn reconcile_task(&self, docker: &SandboxHost, task: Task, containers: &[ContainerInfo]) -> Result<()> {
        let lock = self.task_lock(&task.id);
        let _held = lock.lock().await;
        // A task of an older AnyCode had the user's .git mounted writable: its
        // sandbox is removed and it gets a repository of its own before anything
        // else happens to it.
        match self.migrate_legacy(docker, &task).await {
            Ok(false) => {}
            Ok(true) => {
                self.task_changed(&task.id);
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "moving an older AnyCode's task failed");
                let (tid, msg) = (task.id.clone(), format!("moving this task to a repository of its own failed: {e}"));
                let _ = self.db(move |store| Ok(store.set_task_state(&tid, TaskStatus::Error, None, Some(&msg))?)).await;
                self.task_changed(&task.id);
                return Ok(());
            }
        }
        let live = self.inner.terminals.is_live(&task.agent_terminal_id);
        if live {
            return Ok(());
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
                // recorded before the restart (read only for a task that records).
                let replayed = if task.record { docker.logs_len(&c.id).await.unwrap_or(0) } else { 0 };
                self.start_recording(&task2, &terminal, replayed).await;
                let stream = docker.attach(&c.id, true).await?;
                let control = Arc::new(ContainerControl { docker: docker.clone(), id: c.id.clone(), before_start: false });
                let engine = self.clone();
                let task_id = task.id.clone();
                terminal.connect(stream.output, stream.input, control, move |code| {
                    crate::tasks::spawn_agent_exited(engine.clone(), task_id.clone(), code);
                });
                // In line with the others after the reconcile, unless frozen: that
                // one is waited for below (its exec needs the thawed container),
                // so it starts now.
                let relay = self.start_relay(docker, &task2, &c.id, !c.paused);
                self.answer_pending_handover(docker, &task2, &c.id).await;
                self.settle_interrupted_setup(docker, &task2, Some(&c.id)).await;
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
                self.settle_interrupted_setup(docker, &task, None).await;
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
        let tid = task.id.clone();
        let err = err.map(str::to_string);
        let cid = found.map(|c| c.id.clone());
        // After a restart of AnyCode most tasks are as it left them: no write (each
        // is a commit, and at 500 tasks they queued behind one another on the
        // database's connection while the terminals came back).
        let same_container = cid.is_none() || cid == task.container_id;
        if status == task.status && status != TaskStatus::Queued && code == task.exit_code && err == task.error && same_container {
            self.task_changed(&task.id);
            return Ok(());
        }
        self.db(move |store| {
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
        Ok(())
    }
}
