//! Messages to the agent: `POST /api/tasks/{id}/messages` types a line into the
//! agent's terminal, followed by Enter.
//!
//! The rule: a message is typed at once when the agent waits (`waiting_input`,
//! `done`, `failed`, or an agent that reports no state) and for the `shell` agent
//! always. While the agent is busy (`starting`, `running`, `needs_approval`) it is
//! queued, and the first queued message is typed when the agent next reports
//! `waiting_input` or `done` (one per turn: the agent is `running` again once it
//! has it). The queue is in memory (a restart of AnyCode drops it), shown in the
//! task's `messages`, and each queued message can be edited or removed until it is
//! typed. A stopped task takes no messages (`TASK_NOT_RUNNING`).
//!
//! The text comes from the owner or a paired control device, never from a sandbox.
//! Control characters are refused (an escape could end the bracketed paste early
//! or drive the terminal); a message with several lines goes in as one bracketed
//! paste, so the agent gets it as one message.

use crate::{Engine, Error, QueuedMessage, Result, Task, TaskStatus};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex as StdMutex;
use std::time::Duration;

/// The longest message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 16_000;
/// The most messages queued for one task.
pub const MAX_QUEUED: usize = 50;
/// The pause between a message's text and its Enter, so a TUI that takes quick
/// input as a paste sees the Enter as a key of its own.
const ENTER_AFTER: Duration = Duration::from_millis(500);

/// The queues of every task, and one lock that orders typing.
#[derive(Default)]
pub(crate) struct Messages {
    queues: StdMutex<HashMap<String, Vec<QueuedMessage>>>,
    typing: tokio::sync::Mutex<()>,
}

/// What `POST /api/tasks/{id}/messages` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct MessageSent {
    /// True when it was typed into the agent's terminal now; false when it waits in
    /// the queue.
    pub delivered: bool,
    /// The message.
    pub message: QueuedMessage,
}

/// The message's text checked: trimmed, not empty, at most [`MAX_MESSAGE_CHARS`],
/// no control characters but newlines and tabs (`\r\n` becomes `\n`).
///
/// Errors: `INVALID_INPUT` with what is wrong.
pub fn check_text(text: &str) -> Result<String> {
    let text = text.replace("\r\n", "\n");
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::Invalid("the message is empty: give the text to type to the agent".into()));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Error::Invalid(format!("the message is longer than {MAX_MESSAGE_CHARS} characters: shorten it or put the details in a file")));
    }
    if let Some(c) = text.chars().find(|c| c.is_control() && *c != '\n' && *c != '\t') {
        return Err(Error::Invalid(format!("the message holds the control character U+{:04X}: send plain text (newlines and tabs are fine)", c as u32)));
    }
    Ok(text.to_string())
}

/// The bytes typed for `text`: the shell gets the lines as typed; other agents get
/// several lines as one bracketed paste. The Enter is sent separately.
fn typed_bytes(text: &str, shell: bool) -> Vec<u8> {
    if shell || !text.contains('\n') {
        return text.replace('\n', "\r").into_bytes();
    }
    format!("\x1b[200~{text}\x1b[201~").into_bytes()
}

impl Engine {
    /// Sends `text` to the task's agent: typed now, or queued while the agent is
    /// busy (see the module's rule).
    ///
    /// Errors: `TASK_NOT_FOUND`, `INVALID_INPUT` (empty, too long, control
    /// characters), `TASK_NOT_RUNNING`, `CONFLICT` when [`MAX_QUEUED`] wait already.
    pub async fn send_message(&self, task_id: &str, text: &str) -> Result<MessageSent> {
        let text = check_text(text)?;
        let task = self.task(task_id).await?;
        self.check_live(&task)?;
        let message = QueuedMessage { id: anycode_core::new_id(), text, created_at: anycode_core::now_rfc3339() };
        let waiting = self.queue_len(&task.id) > 0;
        if !waiting && !agent_busy(&task) {
            self.type_message(&task, &message.text).await?;
            return Ok(MessageSent { delivered: true, message });
        }
        {
            let mut queues = self.inner.messages.queues.lock().unwrap_or_else(|p| p.into_inner());
            let q = queues.entry(task.id.clone()).or_default();
            if q.len() >= MAX_QUEUED {
                return Err(Error::Conflict(format!("{MAX_QUEUED} messages already wait for this agent: remove some or wait until it takes them")));
            }
            q.push(message.clone());
        }
        self.task_changed(&task.id);
        // Older messages were waiting while the agent is idle (a typing failure left
        // them): the first goes now.
        if !agent_busy(&task) {
            self.deliver_next(&task.id).await;
        }
        Ok(MessageSent { delivered: false, message })
    }

    /// The task's queued messages, oldest first. Errors: `TASK_NOT_FOUND`.
    pub async fn messages(&self, task_id: &str) -> Result<Vec<QueuedMessage>> {
        let task = self.task(task_id).await?;
        Ok(task.messages)
    }

    /// Replaces the text of a queued message. Errors: `TASK_NOT_FOUND`,
    /// `MESSAGE_NOT_FOUND` (typed already, removed, or never there), `INVALID_INPUT`.
    pub async fn edit_message(&self, task_id: &str, message_id: &str, text: &str) -> Result<QueuedMessage> {
        let text = check_text(text)?;
        let task = self.task(task_id).await?;
        let edited = {
            let mut queues = self.inner.messages.queues.lock().unwrap_or_else(|p| p.into_inner());
            let m = queues.get_mut(&task.id).and_then(|q| q.iter_mut().find(|m| m.id == message_id));
            m.map(|m| {
                m.text = text;
                m.clone()
            })
        };
        let edited = edited.ok_or_else(|| Error::NotFound { what: "message", id: message_id.to_string() })?;
        self.task_changed(&task.id);
        Ok(edited)
    }

    /// Removes a queued message. Errors: `TASK_NOT_FOUND`, `MESSAGE_NOT_FOUND`.
    pub async fn remove_message(&self, task_id: &str, message_id: &str) -> Result<()> {
        let task = self.task(task_id).await?;
        let removed = {
            let mut queues = self.inner.messages.queues.lock().unwrap_or_else(|p| p.into_inner());
            let q = queues.entry(task.id.clone()).or_default();
            let before = q.len();
            q.retain(|m| m.id != message_id);
            before != q.len()
        };
        if !removed {
            return Err(Error::NotFound { what: "message", id: message_id.to_string() });
        }
        self.task_changed(&task.id);
        Ok(())
    }

    /// Puts the task's queue into `t.messages`.
    pub(crate) fn overlay_messages(&self, t: &mut Task) {
        let queues = self.inner.messages.queues.lock().unwrap_or_else(|p| p.into_inner());
        t.messages = queues.get(&t.id).cloned().unwrap_or_default();
    }

    /// Drops a deleted task's queue.
    pub(crate) fn forget_messages(&self, task_id: &str) {
        self.inner.messages.queues.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id);
    }

    /// The agent reported `status`: when it waits now, the first queued message is
    /// typed (in the background).
    pub(crate) fn agent_became(&self, task_id: &str, status: TaskStatus) {
        if matches!(status, TaskStatus::WaitingInput | TaskStatus::Done) && self.queue_len(task_id) > 0 {
            let engine = self.clone();
            let id = task_id.to_string();
            tokio::spawn(async move { engine.deliver_next(&id).await });
        }
    }

    fn queue_len(&self, task_id: &str) -> usize {
        self.inner.messages.queues.lock().unwrap_or_else(|p| p.into_inner()).get(task_id).map_or(0, Vec::len)
    }

    /// Types the first queued message when the agent still waits; a failure puts it
    /// back at the head of the queue.
    async fn deliver_next(&self, task_id: &str) {
        let _typing = self.inner.messages.typing.lock().await;
        let Ok(task) = self.task(task_id).await else { return };
        if agent_busy(&task) || self.check_live(&task).is_err() {
            return;
        }
        let next = {
            let mut queues = self.inner.messages.queues.lock().unwrap_or_else(|p| p.into_inner());
            queues.get_mut(task_id).filter(|q| !q.is_empty()).map(|q| q.remove(0))
        };
        let Some(message) = next else { return };
        match self.type_now(&task, &message.text).await {
            Ok(()) => tracing::info!(task = task_id, message = %message.id, "queued message typed to the agent"),
            Err(e) => {
                tracing::warn!(task = task_id, error = %e, "typing a queued message failed; it stays queued");
                self.inner.messages.queues.lock().unwrap_or_else(|p| p.into_inner()).entry(task_id.to_string()).or_default().insert(0, message);
            }
        }
        self.task_changed(task_id);
    }

    /// Types `text` and Enter into the agent's terminal, under the typing lock.
    async fn type_message(&self, task: &Task, text: &str) -> Result<()> {
        let _typing = self.inner.messages.typing.lock().await;
        self.type_now(task, text).await
    }

    async fn type_now(&self, task: &Task, text: &str) -> Result<()> {
        let terminal = self.terminal(&task.agent_terminal_id).await?;
        let closed = |_| Error::Conflict(format!("task {}'s agent terminal is closed: start the task again", task.id));
        terminal.write(Bytes::from(typed_bytes(text, task.agent.is_shell()))).await.map_err(closed)?;
        if !task.agent.is_shell() {
            tokio::time::sleep(ENTER_AFTER).await;
        }
        terminal.write(Bytes::from_static(b"\r")).await.map_err(closed)?;
        // The agent has its next turn: busy until it reports otherwise.
        if !task.agent.is_shell() && self.agent_state(&task.id).is_some() {
            self.set_agent_state(&task.id, TaskStatus::Running, None);
        }
        Ok(())
    }

    fn check_live(&self, task: &Task) -> Result<()> {
        if task.status.is_live() || task.status == TaskStatus::Paused {
            return Ok(());
        }
        Err(Error::TaskNotRunning(task.id.clone(), task.status.to_string()))
    }
}

/// Whether the agent is in the middle of a turn (its state as the task shows it).
fn agent_busy(task: &Task) -> bool {
    !task.agent.is_shell() && matches!(task.status, TaskStatus::Starting | TaskStatus::Running | TaskStatus::NeedsApproval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_checked() {
        assert_eq!(check_text("  fix the test \r\nthen commit ").unwrap(), "fix the test \nthen commit");
        assert!(check_text("   ").is_err());
        assert!(check_text("a\x1b[201~b").is_err());
        assert!(check_text(&"x".repeat(MAX_MESSAGE_CHARS + 1)).is_err());
        assert!(check_text("tab\tok").is_ok());
    }

    #[test]
    fn several_lines_go_as_one_paste_except_to_the_shell() {
        assert_eq!(typed_bytes("one", false), b"one");
        assert_eq!(typed_bytes("a\nb", false), b"\x1b[200~a\nb\x1b[201~");
        assert_eq!(typed_bytes("a\nb", true), b"a\rb");
    }
}
