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

/// Which credential a task's agent gets in its environment when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// Nothing: the agent logs in by itself (Claude Code's /login) or needs nothing.
    None,
    /// The Claude subscription login (Claude Code's OAuth login, or a
    /// `claude setup-token` token), as `CLAUDE_CODE_OAUTH_TOKEN`.
    Subscription,
    /// The Anthropic API key, as `ANTHROPIC_API_KEY`.
    ApiKey,
}

impl Credential {
    /// Every choice.
    pub const ALL: [Credential; 3] = [Credential::None, Credential::Subscription, Credential::ApiKey];

    /// The name used in the API, the CLI and the database: `none`, `subscription`, `api_key`.
    pub fn as_str(self) -> &'static str {
        match self {
            Credential::None => "none",
            Credential::Subscription => "subscription",
            Credential::ApiKey => "api_key",
        }
    }
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Credential {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Credential::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| crate::Error::UnknownCredential(s.chars().take(60).collect()))
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
    /// Which credential the agent gets at each start.
    #[serde(default = "no_credential")]
    pub credential: Credential,
    /// Where the credential handed over at the last start came from, e.g.
    /// `/home/me/.claude/.credentials.json` or `keyring anycode/claude-token` (never
    /// the secret).
    #[serde(default)]
    pub credential_source: Option<String>,
    /// When the access token handed over at the last start expires, epoch ms.
    #[serde(default)]
    pub credential_expires_at: Option<i64>,
    /// Why the agent got no credential at its last start although one was chosen
    /// (`none found`, `expired`, …).
    #[serde(default)]
    pub credential_problem: Option<String>,
    /// The task branch's pull request on GitHub, once opened (kept in its own table,
    /// filled in by the engine and refreshed in the background).
    #[serde(default)]
    pub pr: Option<PullRequestInfo>,
}

/// A task's pull request as AnyCode last saw it on GitHub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequestInfo {
    /// `owner/name` of the repository on GitHub.
    pub repo: String,
    /// Its number.
    pub number: u64,
    /// Its page, e.g. `https://github.com/octo/hello/pull/7`.
    pub url: String,
    /// `open`, `closed` or `merged`.
    pub state: String,
    /// Whether it is a draft.
    #[serde(default)]
    pub draft: bool,
    /// Its head commit's checks: `success`, `failure`, `pending` or `none`.
    #[serde(default)]
    pub checks: Option<String>,
    /// Its review decision: `approved`, `changes_requested` or `none`.
    #[serde(default)]
    pub review: Option<String>,
    /// GitHub's mergeability (`None` while GitHub computes it).
    #[serde(default)]
    pub mergeable: Option<bool>,
    /// When AnyCode last read it from GitHub, RFC 3339 UTC.
    pub refreshed_at: String,
    /// Why the last refresh failed, if it did (rate limit, revoked token, …).
    #[serde(default)]
    pub refresh_error: Option<String>,
}

fn no_credential() -> Credential {
    Credential::None
}

/// A token expiring within this many milliseconds gets a warning (1 hour).
pub const CREDENTIAL_WARNING_MS: i64 = 60 * 60 * 1000;

impl Task {
    /// What the task view should warn about the agent's credential at `now_ms`
    /// (epoch ms): the problem of its last start (`none found`, `expired`, …), or
    /// `expired` / `expires in 40 min` when the token it got expires within the hour.
    pub fn credential_warning(&self, now_ms: i64) -> Option<String> {
        if let Some(p) = &self.credential_problem {
            return Some(p.clone());
        }
        let at = self.credential_expires_at?;
        let left = at - now_ms;
        if left <= 0 {
            Some("expired".to_string())
        } else if left < CREDENTIAL_WARNING_MS {
            Some(format!("expires in {} min", (left / 60_000).max(1)))
        } else {
            None
        }
    }
}
