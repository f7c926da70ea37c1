use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A git repository on the host that tasks branch from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// 12 hex digits, see [`crate::new_id`].
    pub id: String,
    /// Display name: the repository folder's name.
    pub name: String,
    /// Absolute, canonical path of the repository's working directory on the host.
    pub path: String,
    /// The branch HEAD pointed at when the project was added (`main`, `master`, …);
    /// the default base of new tasks is the repository's current branch at task creation.
    pub default_branch: String,
}

/// Which program runs as a task's main process in its sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agent {
    /// A login bash shell.
    Shell,
    /// Claude Code's interactive TUI (`claude`).
    Claude,
}

impl Agent {
    /// Every agent this version can run.
    pub const ALL: [Agent; 2] = [Agent::Shell, Agent::Claude];

    /// The name used in the API, the CLI and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Agent::Shell => "shell",
            Agent::Claude => "claude",
        }
    }
}

impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Agent {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Agent::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| crate::Error::UnknownAgent(s.to_string()))
    }
}

/// The state of a task's sandbox as AnyCode last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Branch, worktree or container are being made.
    Creating,
    /// The container runs; the agent's terminal is live.
    Running,
    /// Stopped by the user (or the engine went away); `start` brings it back.
    Stopped,
    /// The agent process ended by itself; `exit_code` says how.
    Exited,
    /// The container is gone or could not be started; `error` says why.
    Error,
}

impl TaskStatus {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Creating => "creating",
            TaskStatus::Running => "running",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Exited => "exited",
            TaskStatus::Error => "error",
        }
    }
}

impl FromStr for TaskStatus {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "creating" => TaskStatus::Creating,
            "running" => TaskStatus::Running,
            "stopped" => TaskStatus::Stopped,
            "exited" => TaskStatus::Exited,
            "error" => TaskStatus::Error,
            other => return Err(crate::Error::UnknownStatus(other.to_string())),
        })
    }
}

/// What a terminal runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TerminalKind {
    /// The container's main process (the agent), re-attachable across restarts.
    Agent,
    /// An extra `docker exec` session in the same container; ends with the server.
    Shell,
}

/// A terminal of a task, as listed in [`Task::terminals`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalInfo {
    /// 12 hex digits; the agent terminal's id is stable for the task's life.
    pub id: String,
    /// Agent or extra shell.
    pub kind: TerminalKind,
    /// Tab title: the agent's name, or the shell's command.
    pub title: String,
}

/// One unit of agent work: a branch, its worktree, one sandbox container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// 12 hex digits.
    pub id: String,
    /// The project this task branches from.
    pub project_id: String,
    /// Free text given by the user.
    pub title: String,
    /// The program running as the container's main process.
    pub agent: Agent,
    /// The task's branch in the project's repository, e.g. `anycode/fix-login`.
    pub branch: String,
    /// The branch the task started from; diffs are against it.
    pub base: String,
    /// Commit of `base` when the task was created (40 hex digits).
    pub base_sha: String,
    /// Optional instructions for the agent.
    pub prompt: Option<String>,
    /// Sandbox state, see [`TaskStatus`].
    pub status: TaskStatus,
    /// The agent's exit code when `status` is `exited`.
    pub exit_code: Option<i64>,
    /// What went wrong when `status` is `error`.
    pub error: Option<String>,
    /// The Docker container's full id, once created.
    pub container_id: Option<String>,
    /// Absolute path of the task's git worktree on the host.
    pub worktree: String,
    /// The agent terminal's id.
    pub agent_terminal_id: String,
    /// Whether the agent terminal is recorded (asciicast in the data dir).
    pub record: bool,
    /// Open terminals: the agent's first, then extra shells. Filled in by the engine,
    /// not stored.
    #[serde(default)]
    pub terminals: Vec<TerminalInfo>,
    /// RFC 3339 UTC, e.g. `2026-11-21T20:35:05Z`.
    pub created_at: String,
}
