//! The resource governor: what keeps many parallel tasks from swamping the machine.
//!
//! - **Usage**: every few seconds one reading (its cgroup files on this machine,
//!   else Docker's one-shot stats) per running sandbox whose terminals are busy, and
//!   every 30 s of a quiet or paused one; two readings make the CPU
//!   rate (percent of one CPU). Kept in memory and put into every task answer
//!   ([`Task::usage`]); subscribers hear of it only when it changed noticeably (5
//!   points of CPU, 10 % or 16 MiB of memory), so idle tasks do not flood them.
//! - **The run queue**: at most [`Config::max_running`] sandboxes run (paused ones
//!   do not count). Creating or starting a task beyond that stores it `queued` (its
//!   container made but not started) with a place in line (FIFO, stored, so a
//!   restart keeps it); whenever a sandbox stops, exits, fails, is paused or deleted,
//!   the first in line starts. Counting and setting the status happen under one lock
//!   (`admission`), so two starts never take the same slot.
//! - **Idle pause and stop**: a running sandbox whose terminals had no output and no
//!   input for [`Config::pause_after`] is frozen (`docker pause`, stored `paused`);
//!   an input gate on each of its terminals thaws it before the next keystroke
//!   reaches the TTY ([`Engine::ensure_unpaused`], also called on start and on an
//!   approval). After [`Config::stop_after`] of idleness it is stopped like a user's
//!   stop. A working agent animates its TUI, so it is never idle.
//!
//! The loop wakes every [`tick_interval`] and whenever a slot frees up.
//!
//! [`Config::max_running`]: anycode_core::Config::max_running
//! [`Config::pause_after`]: anycode_core::Config::pause_after
//! [`Config::stop_after`]: anycode_core::Config::stop_after

use crate::{Engine, Error, Result};
use anycode_core::{Config, Task, TaskStatus, Usage};
use anycode_sandbox::SandboxHost;
use anycode_terminal::InputGate;
use futures_util::FutureExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, Notify};

/// Usage changes smaller than these are not announced to subscribers.
const CPU_STEP: f64 = 5.0;
const MEM_STEP_BYTES: u64 = 16 * 1024 * 1024;
const MEM_STEP_RATIO: f64 = 0.10;
/// How often a quiet sandbox's usage is read: one whose terminals had no output and
/// no input for this long (or a paused one). Busy ones are read at every tick, so
/// the reading rate follows the tasks that do something, not all that exist: at
/// 500 idle tasks, reading every one every 3 s cost AnyCode about 2 % of a core.
const QUIET_USAGE_EVERY: Duration = Duration::from_secs(30);

/// How often the governor looks at the sandboxes: every 3 s, or a quarter of the
/// shortest idle timer when that is shorter (tests use seconds), at least 100 ms.
pub fn tick_interval(config: &Config) -> Duration {
    let mut t = Duration::from_secs(3);
    for d in [config.pause_after, config.stop_after].into_iter().flatten() {
        t = t.min(d / 4);
    }
    t.max(Duration::from_millis(100))
}

/// The governor's in-memory state (part of the engine).
#[derive(Default)]
pub(crate) struct GovState {
    /// Held while counting running sandboxes and setting a status from that count.
    admission: Mutex<()>,
    /// Held while draining the queue (one drain at a time).
    drain: Mutex<()>,
    /// Wakes the loop early (a slot freed up).
    kick: Arc<Notify>,
    started: AtomicBool,
    /// The last stats reading per task.
    samples: StdMutex<HashMap<String, Sample>>,
    /// Queued task ids, first in line first (a cache of the stored order).
    queue: StdMutex<Vec<String>>,
}

struct Sample {
    cpu_ns: u64,
    at: Instant,
    usage: Option<Usage>,
    /// The usage last announced to subscribers.
    announced: Option<Usage>,
}

/// Whether a sandbox's usage is read this round: `idle` is how long its terminals
/// have been quiet (`None`: paused, or no live agent terminal: quiet), `age` how
/// old its last reading is (`None`: never read).
fn usage_due(idle: Option<Duration>, age: Option<Duration>) -> bool {
    let quiet = idle.is_none_or(|i| i >= QUIET_USAGE_EVERY);
    !quiet || age.is_none_or(|a| a >= QUIET_USAGE_EVERY)
}

fn noticeable(prev: Option<&Usage>, next: &Usage) -> bool {
    let Some(p) = prev else { return true };
    let mem_step = MEM_STEP_BYTES.max((p.memory_bytes as f64 * MEM_STEP_RATIO) as u64);
    (next.cpu_percent - p.cpu_percent).abs() >= CPU_STEP
        || next.memory_bytes.abs_diff(p.memory_bytes) >= mem_step
        || next.memory_limit_bytes != p.memory_limit_bytes
}

impl Engine {
    /// Starts the governor's loop once per engine; it ends with the engine.
    pub(crate) fn ensure_governor(&self) {
        let gov = &self.inner.gov;
        if gov.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak: Weak<crate::Inner> = Arc::downgrade(&self.inner);
        let kick = gov.kick.clone();
        let tick = tick_interval(&self.inner.config);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = kick.notified() => {}
                }
                let Some(inner) = weak.upgrade() else { return };
                Engine { inner }.govern().await;
            }
        });
    }

    /// Wakes the governor: a slot may have freed up.
    pub(crate) fn kick_queue(&self) {
        self.inner.gov.kick.notify_one();
    }

    /// One round: usage, idle timers, the queue.
    async fn govern(&self) {
        let tasks = match self.db(move |store| Ok(store.tasks(None)?)).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "governor: reading tasks failed");
                return;
            }
        };
        let active = |s: TaskStatus| matches!(s, TaskStatus::Running | TaskStatus::Paused | TaskStatus::Queued);
        if !tasks.iter().any(|t| active(t.status)) {
            self.inner.gov.samples.lock().unwrap_or_else(|p| p.into_inner()).clear();
            return;
        }
        self.sample_usage(&tasks).await;
        self.idle_timers(&tasks).await;
        self.drain_queue().await;
    }

    // ----- usage -----

    async fn sample_usage(&self, tasks: &[Task]) {
        let all: Vec<(&Task, &String)> = tasks
            .iter()
            .filter(|t| matches!(t.status, TaskStatus::Running | TaskStatus::Paused))
            .filter_map(|t| t.container_id.as_ref().map(|c| (t, c)))
            .collect();
        let now = Instant::now();
        // Read this round: the busy, the never read, and the quiet whose reading is
        // [`QUIET_USAGE_EVERY`] old. The others keep their last sample.
        let watched: Vec<(&Task, &String)> = {
            let samples = self.inner.gov.samples.lock().unwrap_or_else(|p| p.into_inner());
            all.iter()
                .filter(|(t, _)| {
                    let idle = if t.status == TaskStatus::Paused { None } else { self.idle_for(t) };
                    usage_due(idle, samples.get(&t.id).map(|s| now.saturating_duration_since(s.at)))
                })
                .copied()
                .collect()
        };
        // Each host's sandboxes read from that host; a host that does not answer
        // (or is known to be down: the host watcher brings it back) reads nothing.
        let mut readings: Vec<std::result::Result<anycode_sandbox::Stats, anycode_sandbox::Error>> = Vec::with_capacity(watched.len());
        let mut hosts: Vec<&str> = watched.iter().map(|(t, _)| t.host.as_str()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let mut by_host = std::collections::HashMap::new();
        for h in hosts {
            let docker = if self.host_down(h) { None } else { self.backend(h).await.ok() };
            let cids: Vec<String> = watched.iter().filter(|(t, _)| t.host == h).map(|(_, c)| (*c).clone()).collect();
            let got = match docker {
                Some(d) => self.read_usage(&d, &cids, h == anycode_core::LOCAL_HOST).await,
                None => cids.iter().map(|_| Err(anycode_sandbox::Error::Unavailable(format!("host {h} does not answer")))).collect(),
            };
            by_host.insert(h, got.into_iter());
        }
        for (t, _) in &watched {
            if let Some(r) = by_host.get_mut(t.host.as_str()).and_then(|it| it.next()) {
                readings.push(r);
            }
        }
        let now = Instant::now();
        let mut announce = Vec::new();
        {
            let mut samples = self.inner.gov.samples.lock().unwrap_or_else(|p| p.into_inner());
            let live: std::collections::HashSet<&str> = all.iter().map(|(t, _)| t.id.as_str()).collect();
            samples.retain(|id, _| live.contains(id.as_str()));
            for ((task, _), reading) in watched.iter().zip(readings) {
                let st = match reading {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(task = %task.id, error = %e, "stats failed");
                        samples.remove(&task.id);
                        continue;
                    }
                };
                let prev = samples.remove(&task.id);
                let cpu_percent = match &prev {
                    Some(p) if st.cpu_total_ns >= p.cpu_ns && now > p.at => {
                        let pct = (st.cpu_total_ns - p.cpu_ns) as f64 / (now - p.at).as_nanos() as f64 * 100.0;
                        Some((pct * 10.0).round() / 10.0)
                    }
                    // The first reading (or a restarted container): a rate needs two.
                    _ => None,
                };
                let mut announced = prev.and_then(|p| p.announced);
                let usage = cpu_percent.map(|cpu_percent| Usage {
                    cpu_percent,
                    memory_bytes: st.memory_bytes,
                    memory_limit_bytes: st.memory_limit_bytes,
                    at: anycode_core::now_rfc3339(),
                });
                if let Some(u) = &usage {
                    if noticeable(announced.as_ref(), u) {
                        announced = Some(u.clone());
                        announce.push(task.id.clone());
                    }
                }
                samples.insert(task.id.clone(), Sample { cpu_ns: st.cpu_total_ns, at: now, usage, announced });
            }
        }
        for id in announce {
            self.task_changed(&id);
        }
    }

    /// One reading per container: from its cgroup files when they are on this
    /// machine (`local`; no call to Docker; see `anycode_sandbox::cgroup`), else
    /// Docker's one-shot stats (always with `ANYCODE_USAGE_SOURCE=docker`, and for a
    /// remote host).
    async fn read_usage(&self, docker: &SandboxHost, cids: &[String], local: bool) -> Vec<std::result::Result<anycode_sandbox::Stats, anycode_sandbox::Error>> {
        let from_cgroup: Vec<Option<anycode_sandbox::Stats>> = if self.inner.config.usage_from_docker || !local {
            vec![None; cids.len()]
        } else {
            let ids = cids.to_vec();
            tokio::task::spawn_blocking(move || ids.iter().map(|id| anycode_sandbox::cgroup::read(id)).collect()).await.unwrap_or_else(|_| vec![None; cids.len()])
        };
        futures_util::future::join_all(cids.iter().zip(from_cgroup).map(|(cid, c)| async move {
            match c {
                Some(s) => Ok(s),
                None => docker.stats(cid).await,
            }
        }))
        .await
    }

    /// Checks a task's CPU cap against what Docker can give (0.01 up to the engine's
    /// CPUs), before anything is made.
    ///
    /// Errors: `INVALID_INPUT` saying the range.
    pub(crate) async fn check_cpus(&self, docker: &SandboxHost, cpus: Option<f64>) -> Result<()> {
        let Some(c) = cpus else { return Ok(()) };
        let max = docker.cpu_count().await.ok().flatten();
        if c < 0.01 || max.is_some_and(|m| c > m as f64) {
            let range = max.map(|m| format!("0.01 to {m}")).unwrap_or_else(|| "at least 0.01".into());
            return Err(Error::Invalid(format!("cpus {c}: Docker can give a sandbox {range} CPUs")));
        }
        Ok(())
    }

    /// Puts the governor's in-memory part (usage, place in the queue) into `t`.
    pub(crate) fn overlay_governor(&self, t: &mut Task) {
        let gov = &self.inner.gov;
        t.usage = if t.status.is_live() || t.status == TaskStatus::Paused {
            gov.samples.lock().unwrap_or_else(|p| p.into_inner()).get(&t.id).and_then(|s| s.usage.clone())
        } else {
            None
        };
        t.queue_position = if t.status == TaskStatus::Queued {
            let queue = gov.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.iter().position(|id| id == &t.id).map(|i| i as u32 + 1)
        } else {
            None
        };
    }

    // ----- the queue -----

    /// Inserts a new task's row as `running` when a slot is free, else as `queued`
    /// (last in line). Returns whether it may start now.
    pub(crate) async fn insert_admitted(&self, task: &mut Task) -> Result<bool> {
        let max = self.inner.config.max_running;
        let admitted = {
            let _slot = self.inner.gov.admission.lock().await;
            let mut row = task.clone();
            let admitted = self.db(move |store| {
                let running = store.count_tasks_with_status(TaskStatus::Running)?;
                let admitted = running < max && host_has_slot(store, &row.host, 0)?;
                row.status = if admitted { TaskStatus::Running } else { TaskStatus::Queued };
                store.insert_task(&row)?;
                if !admitted {
                    store.enqueue_task(&row.id)?;
                }
                Ok(admitted)
            })
            .await?;
            task.status = if admitted { TaskStatus::Running } else { TaskStatus::Queued };
            admitted
        };
        if !admitted {
            tracing::info!(task = %task.id, max, "task queued: the limit of running sandboxes is reached");
            self.refresh_queue().await;
        }
        Ok(admitted)
    }

    /// Takes a slot for an existing task about to start: stores `running` when one is
    /// free (true), else `queued` keeping its place in line (false).
    pub(crate) async fn admit(&self, task_id: &str) -> Result<bool> {
        let max = self.inner.config.max_running;
        let admitted = {
            let _slot = self.inner.gov.admission.lock().await;
            let id = task_id.to_string();
            self.db(move |store| {
                let mut running = store.count_tasks_with_status(TaskStatus::Running)?;
                let task = store.task(&id)?;
                let already = task.as_ref().is_some_and(|t| t.status == TaskStatus::Running);
                if already {
                    running = running.saturating_sub(1);
                }
                let host_ok = match &task {
                    Some(t) => host_has_slot(store, &t.host, u32::from(already))?,
                    None => true,
                };
                if running < max && host_ok {
                    store.set_task_state(&id, TaskStatus::Running, None, None)?;
                    Ok(true)
                } else {
                    store.enqueue_task(&id)?;
                    Ok(false)
                }
            })
            .await?
        };
        if admitted {
            self.touch_terminals(task_id);
        } else {
            tracing::info!(task = task_id, max, "start queued: the limit of running sandboxes is reached");
        }
        self.refresh_queue().await;
        Ok(admitted)
    }

    /// Re-reads the queue's order and tells subscribers about tasks whose place
    /// changed.
    pub(crate) async fn refresh_queue(&self) {
        let ids = match self.db(move |store| Ok(store.queued_task_ids()?)).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "reading the queue failed");
                return;
            }
        };
        let moved: Vec<String> = {
            let mut queue = self.inner.gov.queue.lock().unwrap_or_else(|p| p.into_inner());
            let moved = ids.iter().enumerate().filter(|(i, id)| queue.get(*i) != Some(*id)).map(|(_, id)| id.clone()).collect();
            *queue = ids;
            moved
        };
        for id in moved {
            self.task_changed(&id);
        }
    }

    /// Starts queued tasks, first in line first, while slots are free.
    async fn drain_queue(&self) {
        let Ok(_one) = self.inner.gov.drain.try_lock() else { return };
        let max = self.inner.config.max_running;
        loop {
            let state = self.db(move |store| Ok((store.queued_task_ids()?, store.count_tasks_with_status(TaskStatus::Running)?))).await;
            let (ids, running) = match state {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the queue failed");
                    break;
                }
            };
            let Some(first) = ids.first().cloned() else { break };
            if running >= max {
                break;
            }
            tracing::info!(task = %first, "a slot is free: starting the first queued task");
            match self.start_task(&first).await {
                Ok(t) if t.status == TaskStatus::Queued => break,
                Ok(_) => {}
                Err(e) => {
                    // Out of the queue, or it would be tried forever.
                    tracing::warn!(task = %first, error = %e, "starting a queued task failed");
                    let msg = e.to_string();
                    let id = first.clone();
                    let _ = self.db(move |store| {
                        if store.task(&id)?.is_some_and(|t| t.status == TaskStatus::Queued) {
                            store.set_task_state(&id, TaskStatus::Error, None, Some(&msg))?;
                        }
                        Ok(())
                    })
                    .await;
                    self.task_changed(&first);
                }
            }
        }
        self.refresh_queue().await;
    }

    // ----- idle pause, resume, stop -----

    /// How long the task's terminals have been quiet (no output, no input); `None`
    /// when its agent terminal is not connected to a process.
    fn idle_for(&self, task: &Task) -> Option<Duration> {
        if !self.inner.terminals.is_live(&task.agent_terminal_id) {
            return None;
        }
        self.inner.terminals.of_task(&task.id).iter().map(|t| t.idle_for()).min()
    }

    /// Counts as activity on every terminal of the task (it just started or resumed).
    fn touch_terminals(&self, task_id: &str) {
        for t in self.inner.terminals.of_task(task_id) {
            t.touch();
        }
    }

    /// Sets (or clears) the input gate that thaws the task before input reaches any
    /// of its terminals.
    pub(crate) fn gate_terminals(&self, task_id: &str, on: bool) {
        let gate: Option<InputGate> = on.then(|| {
            let weak = Arc::downgrade(&self.inner);
            let id = task_id.to_string();
            let gate: InputGate = Arc::new(move || {
                let (weak, id) = (weak.clone(), id.clone());
                async move {
                    let Some(inner) = weak.upgrade() else { return };
                    if let Err(e) = (Engine { inner }).ensure_unpaused(&id).await {
                        tracing::warn!(task = %id, error = %e, "resuming on input failed");
                    }
                }
                .boxed()
            });
            gate
        });
        for t in self.inner.terminals.of_task(task_id) {
            t.set_input_gate(gate.clone());
        }
    }

    async fn idle_timers(&self, tasks: &[Task]) {
        let cfg = &self.inner.config;
        for t in tasks.iter().filter(|t| matches!(t.status, TaskStatus::Running | TaskStatus::Paused)) {
            let Some(idle) = self.idle_for(t) else { continue };
            if cfg.stop_after.is_some_and(|s| idle >= s) {
                tracing::info!(task = %t.id, idle_secs = idle.as_secs(), "stopping an idle sandbox");
                if let Err(e) = self.stop_task(&t.id).await {
                    tracing::warn!(task = %t.id, error = %e, "stopping an idle sandbox failed");
                }
            } else if t.status == TaskStatus::Running && cfg.pause_after.is_some_and(|p| idle >= p) {
                if let Err(e) = self.pause_idle(&t.id).await {
                    tracing::warn!(task = %t.id, error = %e, "pausing an idle sandbox failed");
                }
            }
        }
    }

    /// Freezes a running task that is still idle; its slot goes to the queue.
    async fn pause_idle(&self, id: &str) -> Result<()> {
        let Some(pause_after) = self.inner.config.pause_after else { return Ok(()) };
        let lock = self.task_lock(id);
        let _held = lock.lock().await;
        let tid = id.to_string();
        let Some(task) = self.db(move |store| Ok(store.task(&tid)?)).await? else { return Ok(()) };
        if task.status != TaskStatus::Running || self.idle_for(&task).is_none_or(|i| i < pause_after) {
            return Ok(());
        }
        let Some(cid) = task.container_id.clone() else { return Ok(()) };
        let docker = self.backend_for(&task).await?;
        // The gate first: a keystroke arriving during the pause waits for this task's
        // lock, then thaws it.
        self.gate_terminals(id, true);
        if let Err(e) = docker.pause(&cid).await {
            self.gate_terminals(id, false);
            return Err(e.into());
        }
        let tid = id.to_string();
        self.db(move |store| Ok(store.set_task_state(&tid, TaskStatus::Paused, None, None)?)).await?;
        tracing::info!(task = id, idle_secs = pause_after.as_secs(), "paused an idle sandbox");
        self.task_changed(id);
        self.kick_queue();
        Ok(())
    }

    /// Resumes a paused task (`docker unpause`, back to `running`, its agent state
    /// kept); does nothing for a task that is not paused. Called before input reaches
    /// a paused task's terminal, on `start`, and on an approval.
    ///
    /// A resume never waits for a slot: the user is at the keyboard. The running
    /// count may then exceed `max_running` for a while; queued tasks wait until it is
    /// back under.
    ///
    /// Errors: `TASK_NOT_FOUND`; `DOCKER_UNAVAILABLE`; Docker's error.
    pub async fn ensure_unpaused(&self, task_id: &str) -> Result<()> {
        let tid = task_id.to_string();
        let task = self.db(move |store| store.task(&tid)?.ok_or(Error::NotFound { what: "task", id: tid })).await?;
        if task.status != TaskStatus::Paused {
            return Ok(());
        }
        let lock = self.task_lock(task_id);
        let _held = lock.lock().await;
        let tid = task_id.to_string();
        let task = self.db(move |store| store.task(&tid)?.ok_or(Error::NotFound { what: "task", id: tid })).await?;
        self.resume_locked(&task).await
    }

    /// [`Engine::ensure_unpaused`] for a caller holding the task's lock.
    pub(crate) async fn resume_locked(&self, task: &Task) -> Result<()> {
        if task.status != TaskStatus::Paused {
            self.gate_terminals(&task.id, false);
            return Ok(());
        }
        if let Some(cid) = &task.container_id {
            let docker = self.backend_for(task).await?;
            match docker.unpause(cid).await {
                Ok(()) | Err(anycode_sandbox::Error::NoSuchContainer(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let tid = task.id.clone();
        self.db(move |store| Ok(store.set_task_state(&tid, TaskStatus::Running, None, None)?)).await?;
        self.gate_terminals(&task.id, false);
        self.touch_terminals(&task.id);
        tracing::info!(task = %task.id, "resumed a paused sandbox");
        self.task_changed(&task.id);
        Ok(())
    }

    /// Before a paused task's container is stopped or removed: thaws it, so the
    /// stop signal reaches its processes at once.
    pub(crate) async fn thaw_for_stop(&self, docker: &SandboxHost, task: &Task) {
        self.gate_terminals(&task.id, false);
        if task.status == TaskStatus::Paused {
            if let Some(cid) = &task.container_id {
                if let Err(e) = docker.unpause(cid).await {
                    tracing::debug!(task = %task.id, error = %e, "unpausing before the stop failed");
                }
            }
        }
    }
}

/// Whether a container that stopped while AnyCode said it ran was stopped from
/// Whether host `host` is below its own `max_running` (none: always), not
/// counting `own` of its running tasks (the task asking, when it runs already).
fn host_has_slot(store: &anycode_store::Store, host: &str, own: u32) -> Result<bool> {
    if host == anycode_core::LOCAL_HOST {
        return Ok(true);
    }
    let Some(max) = store.host(host)?.and_then(|h| h.max_running) else { return Ok(true) };
    Ok(store.count_running_on_host(host)?.saturating_sub(own) < max)
}

/// outside (a reboot, `docker stop`/`kill`, the daemon going down) rather than ended
/// by its agent: killed by a signal (exit code 128 + n, 255 from a daemon that went
/// away) or no code at all. An agent that exits by itself (0, or its own error code)
/// stays exited.
pub(crate) fn stopped_from_outside(exit_code: Option<i64>) -> bool {
    exit_code.is_none_or(|c| !(0..128).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(cpu: f64, mem_mb: u64) -> Usage {
        Usage { cpu_percent: cpu, memory_bytes: mem_mb * 1024 * 1024, memory_limit_bytes: 512 * 1024 * 1024, at: String::new() }
    }

    #[test]
    fn quiet_sandboxes_are_read_every_30_s_busy_ones_every_round() {
        let s = Duration::from_secs;
        // Busy (output or input in the last 30 s): every round.
        assert!(usage_due(Some(s(2)), Some(s(3))));
        // Quiet: only when the last reading is 30 s old, or there is none.
        assert!(!usage_due(Some(s(31)), Some(s(3))));
        assert!(!usage_due(None, Some(s(29))));
        assert!(usage_due(None, Some(s(30))));
        assert!(usage_due(Some(s(600)), None));
    }

    #[test]
    fn only_noticeable_changes_are_announced() {
        assert!(noticeable(None, &usage(0.0, 10)));
        assert!(!noticeable(Some(&usage(0.1, 10)), &usage(0.3, 12)));
        assert!(noticeable(Some(&usage(0.1, 10)), &usage(6.0, 10)));
        assert!(noticeable(Some(&usage(0.1, 10)), &usage(0.1, 30)));
        // 10 % of a big footprint.
        assert!(!noticeable(Some(&usage(0.0, 1000)), &usage(0.0, 1050)));
        assert!(noticeable(Some(&usage(0.0, 1000)), &usage(0.0, 1150)));
    }

    #[test]
    fn tick_follows_the_idle_timers() {
        let mut c = Config::with_data_dir("/tmp/x");
        c.pause_after = Some(Duration::from_secs(1800));
        c.stop_after = None;
        assert_eq!(tick_interval(&c), Duration::from_secs(3));
        c.pause_after = Some(Duration::from_secs(2));
        assert_eq!(tick_interval(&c), Duration::from_millis(500));
        c.pause_after = Some(Duration::from_millis(10));
        assert_eq!(tick_interval(&c), Duration::from_millis(100));
    }

    #[test]
    fn outside_stops_are_told_from_agent_exits() {
        assert!(stopped_from_outside(Some(137)));
        assert!(stopped_from_outside(Some(143)));
        assert!(stopped_from_outside(Some(255)));
        assert!(stopped_from_outside(None));
        assert!(!stopped_from_outside(Some(0)));
        assert!(!stopped_from_outside(Some(1)));
    }
}
