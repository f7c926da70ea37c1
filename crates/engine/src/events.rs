//! What changed, for live views: the server streams these on `WS /ws/events`, the
//! desktop tray and notifications read them in-process.
//!
//! Also the agent-state overlay: an agent's state (`starting`, `needs_approval`,
//! `waiting_input`, `done`, `failed`, from hooks or the screen) is kept in memory
//! and stands in for the stored `running` in every answer, so a restart forgets
//! only what the agent will report again.

use crate::Engine;
use anycode_core::{Attention, Task, TaskStatus};
use serde::Serialize;

/// How many events a slow subscriber may fall behind before it misses some (it
/// then gets `Lagged` and should list the tasks again).
pub const EVENT_BUFFER: usize = 1024;

/// One change.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A task was created or changed (status, agent state, attention, usage, queue
    /// position): the whole task, as `GET /api/tasks/{id}` shows it.
    Task {
        /// The task now.
        task: Box<Task>,
    },
    /// A task was deleted.
    TaskDeleted {
        /// Its id.
        id: String,
    },
}

/// The agent's part of a task's state, kept in memory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AgentState {
    pub status: TaskStatus,
    pub attention: Option<Attention>,
}

impl Engine {
    /// Subscribes to changes from now on.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Sends the task's current state to subscribers (in the background: the caller
    /// may hold the task's lock).
    pub(crate) fn task_changed(&self, id: &str) {
        if self.inner.events.receiver_count() == 0 {
            return;
        }
        let engine = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            match engine.task(&id).await {
                Ok(task) => {
                    let _ = engine.inner.events.send(Event::Task { task: Box::new(task) });
                }
                Err(e) if e.code() == "TASK_NOT_FOUND" => {
                    let _ = engine.inner.events.send(Event::TaskDeleted { id });
                }
                Err(e) => tracing::debug!(task = %id, error = %e, "reading a changed task failed"),
            }
        });
    }

    pub(crate) fn task_deleted(&self, id: &str) {
        let _ = self.inner.events.send(Event::TaskDeleted { id: id.to_string() });
    }

    /// Sets the agent's state of a running task (`starting`, `running`,
    /// `needs_approval`, `waiting_input`, `done`, `failed`) with what it wants, and
    /// tells subscribers when it changed. Ignored (false) for a task whose sandbox
    /// is not running, and for states that are not agent states.
    pub fn set_agent_state(&self, task_id: &str, status: TaskStatus, attention: Option<Attention>) -> bool {
        if !status.is_live() {
            return false;
        }
        let next = AgentState { status, attention };
        let changed = {
            let mut states = self.inner.agent_states.lock().unwrap_or_else(|p| p.into_inner());
            let prev = states.insert(task_id.to_string(), next.clone());
            prev.as_ref() != Some(&next)
        };
        if changed {
            tracing::info!(task = task_id, status = %status, "agent state");
            self.task_changed(task_id);
            self.agent_became(task_id, status);
        }
        changed
    }

    /// The agent's state of a task, if it reported one since its sandbox started.
    pub fn agent_state(&self, task_id: &str) -> Option<(TaskStatus, Option<Attention>)> {
        let states = self.inner.agent_states.lock().unwrap_or_else(|p| p.into_inner());
        states.get(task_id).map(|s| (s.status, s.attention.clone()))
    }

    /// Forgets the agent's state (its sandbox stopped, exited or restarts).
    pub(crate) fn clear_agent_state(&self, task_id: &str) {
        self.inner.agent_states.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id);
        self.drop_pending_approval(task_id);
    }

    /// Puts the agent's state over the stored `running` of `t`.
    pub(crate) fn overlay_agent_state(&self, t: &mut Task) {
        self.overlay_messages(t);
        if t.status != TaskStatus::Running {
            return;
        }
        let states = self.inner.agent_states.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = states.get(&t.id) {
            t.status = s.status;
            t.attention = s.attention.clone();
        }
    }
}
