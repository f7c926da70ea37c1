//! Claude Code's hooks: the agent's exact state, and approvals from anywhere.
//!
//! At every start of a Claude Code task the engine makes a new random hook token
//! (256 bits; only its SHA-256 is kept, compared in constant time) and hands it over
//! with the credentials (see [`crate::handover`]) together with the hook settings
//! ([`claude_settings`]): start-agent writes those into the sandbox's own
//! `~/.claude/settings.json` (never the host user's) and exports the token, which
//! the settings reference (`$ANYCODE_HOOK_TOKEN`, interpolated by Claude Code into
//! the `Authorization` header). So the token is in no file and not in `docker
//! inspect`, and a stale sandbox's token stops working at its next start.
//!
//! The hooks POST their JSON to the sandbox's loopback ([`SANDBOX_HOOK_URL`]:
//! Claude Code refuses to send HTTP hooks to private addresses), where
//! `anycode-relay` carries them over its exec stream to the server's hook service
//! (see `network.rs` and [`Engine::set_hook_service`]); the
//! server finds the task by the token ([`Engine::hook_task`]), reads the JSON into a
//! [`HookEvent`] ([`HookEvent::from_json`]), calls [`Engine::hook_event`], which sets
//! the agent state, and sends back [`HookAnswer::to_json`]. Claude Code's side of the
//! protocol (the settings it is given, the JSON it sends and reads back) is all in
//! this module; the server only carries the bytes.
//!
//! | hook | state |
//! |---|---|
//! | `SessionStart` | `running` when the task's prompt is submitted with this start, else `waiting_input` |
//! | `UserPromptSubmit`, `PostToolUse` | `running` |
//! | `PermissionRequest` | `needs_approval` (tool and input), then waits for [`Engine::decide_approval`] |
//! | `Notification` `idle_prompt` | `waiting_input` (its message) |
//! | `Notification` `permission_prompt` | `needs_approval` unless already |
//! | `Stop` | `done` |
//! | `StopFailure` | `failed` (the error type as the message) |
//! | `SessionEnd` | nothing: the container's exit says `exited` |
//!
//! A `PermissionRequest` waits up to [`anycode_core::Config::approval_timeout`] for
//! Allow or Deny; then it answers without a decision and Claude Code asks in its
//! terminal (the task stays `needs_approval` until the agent moves on).
//!
//! Crash without loss (issue 14): a waiting approval is also kept in the database
//! (`pending_approvals`: tool, input, since), removed when answered, timed out or
//! the sandbox stops. After `kill -9` of AnyCode the next start shows it again at
//! once ([`Engine::restore_pending_approvals`]), and the agent asks again by itself:
//! the `PermissionRequest` hook is a command hook whose `curl` posts again, every
//! second, while its connection fails (AnyCode down, the relay restarting), until
//! the hook's own deadline. An Allow or Deny given before that second request
//! arrives waits for it ([`RESTORED_WAIT`]).

use crate::handover::Handover;
use crate::{Engine, Error, Result};
use anycode_core::{Attention, Task, TaskStatus};
use anycode_credentials::Secret;
use anycode_store::PendingApproval;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex as StdMutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// The hook route on the hook listener (relative to [`Engine::hook_url`]).
pub const HOOK_PATH: &str = "/hooks/claude";
/// The agent process's variable holding the hook token.
pub const TOKEN_VAR: &str = "ANYCODE_HOOK_TOKEN";
/// The variable carrying the generated settings (JSON) to start-agent, which writes
/// them into `~/.claude/settings.json` and unsets it.
pub const SETTINGS_VAR: &str = "ANYCODE_CLAUDE_SETTINGS";
/// Where the hooks go inside the sandbox: the relay on its loopback
/// (`sandbox-image/bin/hook-relay`), since Claude Code sends HTTP hooks to no private
/// address, and the host is one from a container (`172.17.0.1`).
pub const SANDBOX_HOOK_URL: &str = "http://127.0.0.1:47777";
/// Seconds a hook that only reports a state may take before Claude Code gives up.
const REPORT_TIMEOUT_SECS: u64 = 10;
/// How much longer than the approval timeout the `PermissionRequest` hook's own
/// timeout is, so AnyCode answers (without a decision) before Claude Code gives up.
const APPROVAL_MARGIN_SECS: u64 = 30;
/// How long an Allow or Deny of an approval restored from the database (AnyCode was
/// killed while it waited) waits for the agent's hook to ask again.
pub const RESTORED_WAIT: Duration = Duration::from_secs(20);

/// One hook call from an agent, parsed by the server.
#[derive(Debug, Clone, PartialEq)]
pub enum HookEvent {
    /// A session began: `source` is `startup`, `resume`, `clear` or `compact`.
    SessionStart {
        /// Why the session started.
        source: String,
    },
    /// The user (or the start command) submitted a prompt.
    UserPromptSubmit,
    /// A tool ran (after an approval, wherever it was given).
    PostToolUse,
    /// The agent asks to use a tool: its name (e.g. `Bash`) and input as it sent them.
    PermissionRequest {
        /// The tool, e.g. `Bash`.
        tool: String,
        /// The tool's input, e.g. `{"command": "ls"}`.
        input: Value,
    },
    /// A notification: `kind` is Claude Code's `notification_type` (`idle_prompt`,
    /// `permission_prompt`, …).
    Notification {
        /// The notification's type.
        kind: String,
        /// Its text.
        message: String,
    },
    /// The turn finished.
    Stop,
    /// The turn ended with an API error: `error` is its type (`rate_limit`,
    /// `authentication_failed`, `server_error`, …).
    StopFailure {
        /// The error's type.
        error: String,
        /// Claude Code's details, when given.
        details: Option<String>,
    },
    /// The session ended (`reason`: `clear`, `logout`, `prompt_input_exit`, …).
    SessionEnd {
        /// Why.
        reason: String,
    },
    /// Any other hook event (by name); ignored.
    Other(String),
}

/// Allow or Deny, for a waiting `PermissionRequest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalDecision {
    /// The tool runs.
    Allow,
    /// The tool does not run; the message (if any) is told to the agent.
    Deny {
        /// Why, for the agent.
        message: Option<String>,
    },
}

/// What the hook answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAnswer {
    /// No decision: Claude Code goes on as it would without the hook.
    Nothing,
    /// The answer to a `PermissionRequest`.
    Decision(ApprovalDecision),
}

impl HookEvent {
    /// The typed event of a hook's JSON input (Claude Code's field names); `None`
    /// without `hook_event_name`.
    pub fn from_json(v: &Value) -> Option<HookEvent> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let name = v.get("hook_event_name")?.as_str()?;
        Some(match name {
            "SessionStart" => HookEvent::SessionStart { source: s("source") },
            "UserPromptSubmit" => HookEvent::UserPromptSubmit,
            "PostToolUse" => HookEvent::PostToolUse,
            "PermissionRequest" => HookEvent::PermissionRequest { tool: s("tool_name"), input: v.get("tool_input").cloned().unwrap_or(Value::Null) },
            "Notification" => HookEvent::Notification { kind: s("notification_type"), message: s("message") },
            "Stop" => HookEvent::Stop,
            "StopFailure" => HookEvent::StopFailure {
                error: Some(s("error")).filter(|e| !e.is_empty()).unwrap_or_else(|| "unknown".into()),
                details: v.get("error_details").and_then(Value::as_str).map(str::to_string),
            },
            "SessionEnd" => HookEvent::SessionEnd { reason: s("reason") },
            other => HookEvent::Other(other.to_string()),
        })
    }
}

impl HookAnswer {
    /// The hook's answer as Claude Code reads it: `{}` for none, else the
    /// `PermissionRequest` decision.
    pub fn to_json(self) -> Value {
        let decision = match self {
            HookAnswer::Nothing => return json!({}),
            HookAnswer::Decision(ApprovalDecision::Allow) => json!({"behavior": "allow"}),
            HookAnswer::Decision(ApprovalDecision::Deny { message: Some(m) }) => json!({"behavior": "deny", "message": m}),
            HookAnswer::Decision(ApprovalDecision::Deny { message: None }) => json!({"behavior": "deny"}),
        };
        json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}})
    }
}

/// The hook settings for Claude Code, as the JSON of its `settings.json` (only the
/// `hooks` key): HTTP hooks posting to `<hook_url>/hooks/claude` (in the product
/// [`SANDBOX_HOOK_URL`]) with the token
/// from `$ANYCODE_HOOK_TOKEN`, and a `curl` command hook for `SessionStart` (which
/// takes no HTTP hooks). The `PermissionRequest` hook's timeout is the approval
/// timeout plus a margin, so AnyCode always answers first.
pub fn claude_settings(hook_url: &str, approval_timeout: Duration) -> Value {
    let url = format!("{}{HOOK_PATH}", hook_url.trim_end_matches('/'));
    let http = |timeout: u64| {
        json!([{"hooks": [{
            "type": "http",
            "url": url,
            "headers": {"Authorization": format!("Bearer ${TOKEN_VAR}")},
            "allowedEnvVars": [TOKEN_VAR],
            "timeout": timeout,
        }]}])
    };
    // The command's output would become context for the model: it is dropped. The
    // proxy is bypassed: the hook listener is on this machine.
    let command = format!(
        "curl -s -m {REPORT_TIMEOUT_SECS} --retry 3 --retry-connrefused --retry-delay 1 --noproxy '*' -o /dev/null -H 'Content-Type: application/json' -H \"Authorization: Bearer ${TOKEN_VAR}\" --data-binary @- '{url}' || true"
    );
    let approval = approval_timeout.as_secs() + APPROVAL_MARGIN_SECS;
    // The approval posts again while its connection fails (AnyCode killed and
    // started again, its relay restarting), so a killed AnyCode's question is asked
    // again; it stops at an answer, an HTTP error (22: a wrong token), or 5 s before
    // the hook's own timeout. Its answer (the decision's JSON) is the hook's output.
    let deadline = approval.saturating_sub(5);
    let ask = format!(
        "f=$(mktemp);cat>$f;e=$(($(date +%s)+{deadline}));while t=$((e-$(date +%s)));[ $t -gt 0 ];do o=$(curl -sf -m $t --noproxy '*' -H \"Authorization: Bearer ${TOKEN_VAR}\" --data-binary @$f '{url}');r=$?;[ $r = 0 ]&&{{ printf %s \"$o\";break;}};[ $r = 22 ]&&break;sleep 1;done;rm -f $f"
    );
    json!({"hooks": {
        "SessionStart": [{"hooks": [{"type": "command", "command": command, "timeout": REPORT_TIMEOUT_SECS + 5}]}],
        "UserPromptSubmit": http(REPORT_TIMEOUT_SECS),
        "PostToolUse": http(REPORT_TIMEOUT_SECS),
        "PermissionRequest": [{"hooks": [{"type": "command", "command": ask, "timeout": approval}]}],
        "Notification": http(REPORT_TIMEOUT_SECS),
        "Stop": http(REPORT_TIMEOUT_SECS),
        "StopFailure": http(REPORT_TIMEOUT_SECS),
        "SessionEnd": http(REPORT_TIMEOUT_SECS),
    }})
}

/// The state a hook event leads to, given the current one; `None`: unchanged.
/// `prompt_submitted`: the task's prompt was submitted with this start.
pub(crate) fn next_state(ev: &HookEvent, current: Option<TaskStatus>, prompt_submitted: bool, now: &str) -> Option<(TaskStatus, Option<Attention>)> {
    let attention = |tool: Option<String>, input: Option<Value>, message: Option<String>| Attention { tool, input, message, since: now.to_string() };
    match ev {
        HookEvent::SessionStart { .. } if prompt_submitted => Some((TaskStatus::Running, None)),
        HookEvent::SessionStart { .. } => Some((TaskStatus::WaitingInput, None)),
        HookEvent::UserPromptSubmit | HookEvent::PostToolUse => Some((TaskStatus::Running, None)),
        HookEvent::PermissionRequest { tool, input } => {
            Some((TaskStatus::NeedsApproval, Some(attention(Some(tool.clone()), Some(input.clone()), None))))
        }
        HookEvent::Notification { kind, message } => match kind.as_str() {
            "idle_prompt" => Some((TaskStatus::WaitingInput, Some(attention(None, None, Some(message.clone()))))),
            "permission_prompt" if current != Some(TaskStatus::NeedsApproval) => {
                Some((TaskStatus::NeedsApproval, Some(attention(None, None, Some(message.clone())))))
            }
            _ => None,
        },
        HookEvent::Stop => Some((TaskStatus::Done, None)),
        HookEvent::StopFailure { error, .. } => Some((TaskStatus::Failed, Some(attention(None, None, Some(error.clone()))))),
        HookEvent::SessionEnd { .. } | HookEvent::Other(_) => None,
    }
}

/// The engine's hook state: where the listener is, and per task the token's hash,
/// whether the prompt goes with this start, and the approval waiting for a decision.
#[derive(Default)]
pub(crate) struct Hooks {
    tasks: StdMutex<HashMap<String, TaskHooks>>,
    seq: AtomicU64,
    /// Approvals read back from the database at start (AnyCode was killed while they
    /// waited), by task, until the agent asks again or the sandbox stops.
    restored: StdMutex<HashMap<String, PendingApproval>>,
    /// Woken whenever a `PermissionRequest` starts waiting.
    arrived: tokio::sync::Notify,
}

struct TaskHooks {
    token_hash: [u8; 32],
    prompt_submitted: bool,
    pending: Option<Pending>,
}

struct Pending {
    id: u64,
    tx: oneshot::Sender<ApprovalDecision>,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Removes a waiting approval when its hook call ends (answered, timed out, or the
/// connection dropped), unless a newer one replaced it.
struct PendingGuard<'a> {
    hooks: &'a Hooks,
    store: &'a anycode_store::Store,
    task_id: &'a str,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut tasks = self.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tasks.get_mut(self.task_id) {
            if t.pending.as_ref().is_some_and(|p| p.id == self.id) {
                t.pending = None;
                forget_stored(self.store, self.task_id);
            }
        }
    }
}

/// Removes the task's kept approval from the database, off the async runtime (a
/// failure is logged: the question would be shown again after a restart).
fn forget_stored(store: &anycode_store::Store, task_id: &str) {
    let store = store.clone();
    let id = task_id.to_string();
    let clear = move || {
        if let Err(e) = store.clear_pending_approval(&id) {
            tracing::warn!(task = %id, error = %e, "forgetting a kept approval failed");
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn_blocking(clear)),
        Err(_) => clear(),
    }
}

impl Engine {
    /// The task whose current hook token `token` is (compared as SHA-256 digests in
    /// constant time), if any.
    pub fn hook_task(&self, token: &str) -> Option<String> {
        let h = hash(token);
        let tasks = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = None;
        for (id, t) in tasks.iter() {
            if same(&t.token_hash, &h) {
                found = Some(id.clone());
            }
        }
        found
    }

    /// Applies a hook event of `task_id`'s agent (see the module's table) and returns
    /// the hook's answer. A `PermissionRequest` waits up to the approval timeout for
    /// [`Engine::decide_approval`] (a newer request of the same task ends the wait
    /// of an older one without a decision).
    pub async fn hook_event(&self, task_id: &str, ev: HookEvent) -> HookAnswer {
        let prompt_submitted = {
            let mut tasks = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
            match tasks.get_mut(task_id) {
                // The prompt goes with the first session only.
                Some(t) if matches!(ev, HookEvent::SessionStart { .. }) => std::mem::take(&mut t.prompt_submitted),
                Some(t) => t.prompt_submitted,
                None => false,
            }
        };
        tracing::debug!(task = task_id, event = ?ev, "hook");
        let current = self.agent_state(task_id).map(|(s, _)| s);
        let mut now = anycode_core::now_rfc3339();
        if let HookEvent::PermissionRequest { tool, input } = &ev {
            // Asked again after a restart: the question keeps its first time.
            let restored = self.inner.hooks.restored.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id);
            if let Some(r) = restored.filter(|r| &r.tool == tool && &r.input == input) {
                now = r.since;
            }
            let kept = PendingApproval { task_id: task_id.to_string(), tool: tool.clone(), input: input.clone(), since: now.clone() };
            let store = self.inner.store.clone();
            if let Err(e) = crate::blocking(move || Ok(store.set_pending_approval(&kept)?)).await {
                tracing::warn!(task = task_id, error = %e, "keeping the approval failed: a restart would forget it");
            }
        }
        if let Some((status, attention)) = next_state(&ev, current, prompt_submitted, &now) {
            self.set_agent_state(task_id, status, attention);
        }
        if !matches!(ev, HookEvent::PermissionRequest { .. }) {
            return HookAnswer::Nothing;
        }
        let (tx, rx) = oneshot::channel();
        let id = self.inner.hooks.seq.fetch_add(1, Ordering::Relaxed);
        {
            let mut tasks = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
            match tasks.get_mut(task_id) {
                Some(t) => t.pending = Some(Pending { id, tx }),
                None => return HookAnswer::Nothing,
            }
        }
        self.inner.hooks.arrived.notify_waiters();
        let _guard = PendingGuard { hooks: &self.inner.hooks, store: &self.inner.store, task_id, id };
        match tokio::time::timeout(self.inner.config.approval_timeout, rx).await {
            Ok(Ok(decision)) => HookAnswer::Decision(decision),
            Ok(Err(_)) => HookAnswer::Nothing,
            Err(_) => {
                tracing::info!(task = task_id, "approval timed out; the agent asks in its terminal");
                HookAnswer::Nothing
            }
        }
    }

    /// Whether `task_id`'s agent waits for Allow or Deny from AnyCode now.
    pub fn approval_pending(&self, task_id: &str) -> bool {
        let tasks = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.get(task_id).is_some_and(|t| t.pending.is_some()) || self.restored_approval(task_id)
    }

    /// Whether an approval read back from the database waits for the agent to ask again.
    fn restored_approval(&self, task_id: &str) -> bool {
        self.inner.hooks.restored.lock().unwrap_or_else(|p| p.into_inner()).contains_key(task_id)
    }

    /// Takes the task's waiting approval; for one restored from the database (AnyCode
    /// was killed while it waited), waits up to [`RESTORED_WAIT`] for the agent's hook
    /// to ask again.
    async fn take_pending(&self, task_id: &str) -> Option<Pending> {
        let deadline = tokio::time::Instant::now() + RESTORED_WAIT;
        loop {
            // Registered before the check, so an arrival in between is not missed.
            let arrived = self.inner.hooks.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let taken = {
                let mut tasks = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
                tasks.get_mut(task_id).and_then(|t| t.pending.take())
            };
            if taken.is_some() || !self.restored_approval(task_id) {
                return taken;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }

    /// Answers the task's waiting `PermissionRequest` hook with Allow or Deny; the
    /// agent goes back to `running`. Returns the task.
    ///
    /// Errors: `TASK_NOT_FOUND`; `NO_PENDING_APPROVAL` when no hook waits (answered
    /// already, timed out — the agent then asks in its terminal — or the task is not
    /// running).
    pub async fn decide_approval(&self, task_id: &str, decision: ApprovalDecision) -> Result<Task> {
        let task = self.task(task_id).await?;
        // A paused sandbox (the governor) resumes first, so the agent acts on the
        // answer (and a failed resume leaves the request waiting).
        if task.status == TaskStatus::Paused && (self.has_pending_approval(&task.id) || self.restored_approval(&task.id)) {
            self.ensure_unpaused(&task.id).await?;
        }
        let Some(pending) = self.take_pending(&task.id).await else {
            if self.inner.hooks.restored.lock().unwrap_or_else(|p| p.into_inner()).remove(&task.id).is_some() {
                // The agent did not ask again: it asks in its terminal.
                forget_stored(&self.inner.store, &task.id);
                self.set_agent_state(&task.id, TaskStatus::Running, None);
            }
            return Err(Error::NoPendingApproval(task.id));
        };
        if pending.tx.send(decision.clone()).is_err() {
            return Err(Error::NoPendingApproval(task.id));
        }
        tracing::info!(task = %task.id, allow = decision == ApprovalDecision::Allow, "approval decided");
        self.set_agent_state(&task.id, TaskStatus::Running, None);
        self.task(&task.id).await
    }

    /// For a Claude Code task started while a hook listener is set: a new hook token
    /// (the previous one stops working) and the settings, added to what start-agent
    /// receives.
    pub(crate) fn add_hook_handover(&self, task: &Task, h: &mut Handover) {
        if !task.agent.is_claude() {
            return;
        }
        if !self.hooks_available() {
            return;
        }
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        let settings = claude_settings(SANDBOX_HOOK_URL, self.inner.config.approval_timeout);
        let token_hash = hash(&token);
        {
            let mut tasks = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
            // A waiting approval of the previous run ends (its sender is dropped).
            tasks.insert(task.id.clone(), TaskHooks { token_hash, prompt_submitted: false, pending: None });
        }
        self.save_token_hash(&task.id, &token_hash);
        h.env.push((TOKEN_VAR.to_string(), Secret::new(token)));
        h.env.push((SETTINGS_VAR.to_string(), Secret::new(settings.to_string())));
    }

    /// Marks that this start of the task submits its prompt (the first start of a task
    /// with a prompt), so its `SessionStart` means `running`.
    pub(crate) fn set_prompt_submitted(&self, task_id: &str, submitted: bool) {
        let mut tasks = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = tasks.get_mut(task_id) {
            t.prompt_submitted = submitted;
        }
    }

    /// After the container started: `starting` for an agent that reports through hooks.
    pub(crate) fn agent_starting(&self, task: &Task) {
        let hooked = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner()).contains_key(&task.id);
        if task.agent.is_claude() && hooked {
            self.set_agent_state(&task.id, TaskStatus::Starting, None);
        }
    }

    /// Whether the task's agent waits for a permission decision now.
    fn has_pending_approval(&self, task_id: &str) -> bool {
        self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner()).get(task_id).is_some_and(|t| t.pending.is_some())
    }

    /// The sandbox stopped or exited: a waiting approval ends without a decision.
    pub(crate) fn drop_pending_approval(&self, task_id: &str) {
        let mut tasks = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let live = tasks.get_mut(task_id).and_then(|t| t.pending.take()).is_some();
        let restored = self.inner.hooks.restored.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id).is_some();
        if live || restored {
            forget_stored(&self.inner.store, task_id);
        }
    }

    /// At start: the approvals a killed AnyCode left waiting (see the module's
    /// documentation), shown again as `needs_approval` with their tool, input and
    /// first time, for tasks whose sandbox runs; the others are forgotten.
    pub(crate) async fn restore_pending_approvals(&self) {
        let store = self.inner.store.clone();
        let kept = match crate::blocking(move || Ok((store.pending_approvals()?, store.tasks(None)?))).await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "reading kept approvals failed");
                return;
            }
        };
        let (kept, tasks) = kept;
        for p in kept {
            let running = tasks.iter().any(|t| t.id == p.task_id && matches!(t.status, TaskStatus::Running | TaskStatus::Paused));
            if !running {
                forget_stored(&self.inner.store, &p.task_id);
                continue;
            }
            tracing::info!(task = %p.task_id, tool = %p.tool, "asking again an approval left waiting by the last run");
            let attention = Attention { tool: Some(p.tool.clone()), input: Some(p.input.clone()), message: None, since: p.since.clone() };
            self.inner.hooks.restored.lock().unwrap_or_else(|p| p.into_inner()).insert(p.task_id.clone(), p.clone());
            self.set_agent_state(&p.task_id, TaskStatus::NeedsApproval, Some(attention));
        }
    }

    /// The task was deleted: its token stops working.
    pub(crate) fn forget_hooks(&self, task_id: &str) {
        self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id);
        let _ = std::fs::remove_file(self.hooks_dir().join(task_id));
    }

    /// `<data_dir>/hooks`: one file per task holding the SHA-256 of its current hook
    /// token (hex), so an agent that outlives an AnyCode restart is still recognised.
    /// Only digests are kept: the token itself lives in the agent's environment only.
    fn hooks_dir(&self) -> std::path::PathBuf {
        self.inner.config.data_dir.join("hooks")
    }

    /// Writes the task's token digest (small, so done in place). A failure is logged:
    /// the hooks then work until the next restart of AnyCode.
    fn save_token_hash(&self, task_id: &str, digest: &[u8; 32]) {
        let dir = self.hooks_dir();
        let res = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(task_id), hex::encode(digest)));
        if let Err(e) = res {
            tracing::warn!(task = task_id, error = %e, "keeping the hook token's digest failed");
        }
    }

    /// Reads the digests kept by earlier runs (at open), for tasks that still exist.
    pub(crate) fn load_token_hashes(&self, task_ids: &[String]) {
        let Ok(entries) = std::fs::read_dir(self.hooks_dir()) else { return };
        let mut tasks = self.inner.hooks.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !task_ids.contains(&name) {
                let _ = std::fs::remove_file(e.path());
                continue;
            }
            let digest = std::fs::read_to_string(e.path()).ok().and_then(|h| hex::decode(h.trim()).ok()).and_then(|b| <[u8; 32]>::try_from(b).ok());
            if let Some(token_hash) = digest {
                tasks.entry(name).or_insert(TaskHooks { token_hash, prompt_submitted: false, pending: None });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_claude_codes_hook_input() {
        let pr = json!({"session_id": "s", "hook_event_name": "PermissionRequest", "tool_name": "Bash", "tool_input": {"command": "ls"}});
        assert_eq!(HookEvent::from_json(&pr), Some(HookEvent::PermissionRequest { tool: "Bash".into(), input: json!({"command": "ls"}) }));
        let n = json!({"hook_event_name": "Notification", "notification_type": "idle_prompt", "message": "waiting"});
        assert_eq!(HookEvent::from_json(&n), Some(HookEvent::Notification { kind: "idle_prompt".into(), message: "waiting".into() }));
        let f = json!({"hook_event_name": "StopFailure", "error": "rate_limit", "error_details": "429"});
        assert_eq!(HookEvent::from_json(&f), Some(HookEvent::StopFailure { error: "rate_limit".into(), details: Some("429".into()) }));
        assert_eq!(HookEvent::from_json(&json!({"hook_event_name": "PreCompact"})), Some(HookEvent::Other("PreCompact".into())));
        assert_eq!(HookEvent::from_json(&json!({"tool_name": "Bash"})), None);
    }

    #[test]
    fn answers_in_claude_codes_shape() {
        assert_eq!(HookAnswer::Nothing.to_json(), json!({}));
        assert_eq!(
            HookAnswer::Decision(ApprovalDecision::Allow).to_json(),
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "allow"}}})
        );
        assert_eq!(
            HookAnswer::Decision(ApprovalDecision::Deny { message: Some("not now".into()) }).to_json(),
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": {"behavior": "deny", "message": "not now"}}})
        );
    }

    #[test]
    fn settings_post_every_event_to_the_listener_with_the_token_from_the_environment() {
        let s = claude_settings("http://host.docker.internal:4321/", Duration::from_secs(300));
        let hooks = s["hooks"].as_object().unwrap();
        let mut names: Vec<&str> = hooks.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["Notification", "PermissionRequest", "PostToolUse", "SessionEnd", "SessionStart", "Stop", "StopFailure", "UserPromptSubmit"]);
        for (name, groups) in hooks {
            let hook = &groups[0]["hooks"][0];
            if name == "PermissionRequest" {
                // A command hook that posts again while its connection fails, and
                // prints the answer.
                assert_eq!(hook["type"], "command");
                let cmd = hook["command"].as_str().unwrap();
                assert!(cmd.contains("'http://host.docker.internal:4321/hooks/claude'"), "{cmd}");
                assert!(cmd.contains("Bearer $ANYCODE_HOOK_TOKEN") && cmd.contains("while t=") && cmd.contains("printf %s \"$o\""), "{cmd}");
                assert!(cmd.contains("e=$(($(date +%s)+325))"), "stops 5 s before the hook's timeout: {cmd}");
                assert_eq!(hook["timeout"], 330);
                continue;
            }
            if name == "SessionStart" {
                // Claude Code runs no HTTP hooks for SessionStart.
                assert_eq!(hook["type"], "command");
                let cmd = hook["command"].as_str().unwrap();
                assert!(cmd.contains("'http://host.docker.internal:4321/hooks/claude'"), "{cmd}");
                assert!(cmd.contains("Bearer $ANYCODE_HOOK_TOKEN") && cmd.contains("--data-binary @-"), "{cmd}");
                continue;
            }
            assert_eq!(hook["type"], "http", "{name}");
            assert_eq!(hook["url"], "http://host.docker.internal:4321/hooks/claude", "{name}");
            assert_eq!(hook["headers"]["Authorization"], "Bearer $ANYCODE_HOOK_TOKEN");
            assert_eq!(hook["allowedEnvVars"], json!(["ANYCODE_HOOK_TOKEN"]));
            let timeout = hook["timeout"].as_u64().unwrap();
            assert!(timeout <= 15);
        }
        // Small enough to hand over on one TTY line with a credential.
        assert!(s.to_string().len() < 2000, "{}", s.to_string().len());
        assert!(!s.to_string().contains('\n'));
    }

    #[test]
    fn hook_events_map_to_agent_states() {
        let now = "2026-01-01T00:00:00Z";
        let st = |ev: HookEvent, cur: Option<TaskStatus>, prompt: bool| next_state(&ev, cur, prompt, now).map(|(s, a)| (s, a.and_then(|a| a.message.or(a.tool))));
        let start = HookEvent::SessionStart { source: "startup".into() };
        assert_eq!(st(start.clone(), Some(TaskStatus::Starting), true), Some((TaskStatus::Running, None)));
        assert_eq!(st(start, Some(TaskStatus::Starting), false), Some((TaskStatus::WaitingInput, None)));
        assert_eq!(st(HookEvent::UserPromptSubmit, Some(TaskStatus::WaitingInput), false), Some((TaskStatus::Running, None)));
        let pr = HookEvent::PermissionRequest { tool: "Bash".into(), input: json!({"command": "ls"}) };
        let (s, a) = next_state(&pr, Some(TaskStatus::Running), false, now).unwrap();
        assert_eq!(s, TaskStatus::NeedsApproval);
        let a = a.unwrap();
        assert_eq!((a.tool.as_deref(), a.input, a.since.as_str()), (Some("Bash"), Some(json!({"command": "ls"})), now));
        let idle = HookEvent::Notification { kind: "idle_prompt".into(), message: "Claude is waiting for your input".into() };
        assert_eq!(st(idle, Some(TaskStatus::Done), false), Some((TaskStatus::WaitingInput, Some("Claude is waiting for your input".into()))));
        let perm = HookEvent::Notification { kind: "permission_prompt".into(), message: "Claude needs your permission to use Bash".into() };
        assert_eq!(st(perm.clone(), Some(TaskStatus::NeedsApproval), false), None, "keeps the tool and input it has");
        assert_eq!(st(perm, Some(TaskStatus::Running), false).map(|(s, _)| s), Some(TaskStatus::NeedsApproval));
        assert_eq!(st(HookEvent::Notification { kind: "auth_success".into(), message: String::new() }, None, false), None);
        assert_eq!(st(HookEvent::Stop, Some(TaskStatus::Running), false), Some((TaskStatus::Done, None)));
        let fail = HookEvent::StopFailure { error: "rate_limit".into(), details: Some("429".into()) };
        assert_eq!(st(fail, Some(TaskStatus::Running), false), Some((TaskStatus::Failed, Some("rate_limit".into()))));
        assert_eq!(st(HookEvent::SessionEnd { reason: "prompt_input_exit".into() }, Some(TaskStatus::Done), false), None);
        assert_eq!(st(HookEvent::PostToolUse, Some(TaskStatus::NeedsApproval), false), Some((TaskStatus::Running, None)));
    }

    #[test]
    fn tokens_compare_by_digest() {
        assert!(same(&hash("a"), &hash("a")));
        assert!(!same(&hash("a"), &hash("b")));
    }
}
