use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A git repository on the host that tasks branch from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Which agent profile runs as a task's main process in its sandbox: a profile
/// name such as `claude`, `codex`, `gemini`, `aider`, `goose`, `shell`, or one a user
/// defined in the config file. 1 to 32 of `a-z`, `0-9`, `-`, `_`, starting with a
/// letter. Whether a profile of that name exists is the engine's question (its
/// profiles), not this type's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(try_from = "String", into = "String")]
pub struct Agent(String);

impl Agent {
    /// The login shell profile.
    pub const SHELL: &'static str = "shell";
    /// Claude Code's profile.
    pub const CLAUDE: &'static str = "claude";

    /// The name used in the API, the CLI, the config file and the database.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is Claude Code (`claude`), the agent with hooks and resume.
    pub fn is_claude(&self) -> bool {
        self.0 == Agent::CLAUDE
    }

    /// Whether this is the plain shell profile (`shell`).
    pub fn is_shell(&self) -> bool {
        self.0 == Agent::SHELL
    }

    /// The shell profile.
    pub fn shell() -> Agent {
        Agent(Agent::SHELL.into())
    }

    /// Claude Code's profile.
    pub fn claude() -> Agent {
        Agent(Agent::CLAUDE.into())
    }
}

impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Agent {
    type Err = crate::Error;
    /// Errors: [`crate::Error::UnknownAgent`] when `s` is not a well-formed name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = (1..=32).contains(&s.len())
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Agent(s.to_string()))
        } else {
            Err(crate::Error::UnknownAgent(s.chars().take(60).collect()))
        }
    }
}

impl TryFrom<String> for Agent {
    type Error = crate::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Agent> for String {
    fn from(a: Agent) -> String {
        a.0
    }
}

/// Which credential a task's agent gets in its environment when it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

/// A task's state as the API reports it: the sandbox's state, and while the
/// sandbox runs, the agent's (from its hooks, or from the screen for agents without
/// hooks).
///
/// The database keeps only the sandbox's part (`creating`, `queued`, `running`,
/// `paused`, `stopped`, `exited`, `error`); the agent's part (`starting`,
/// `needs_approval`, `waiting_input`, `done`, `failed`) lives in the engine's memory
/// and stands in for `running` in answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Branch, worktree or container are being made.
    Creating,
    /// Waiting for a free slot: the limit of concurrently running sandboxes is
    /// reached; it starts when another one stops.
    Queued,
    /// The container runs; the agent has not reported yet (before its session
    /// starts).
    Starting,
    /// The container runs and the agent works (or, for agents AnyCode cannot watch,
    /// simply runs).
    Running,
    /// The agent waits for the user to allow or deny a tool call; `attention` has the
    /// tool and its input.
    NeedsApproval,
    /// The agent waits for the user's input (an idle prompt, a question).
    WaitingInput,
    /// The agent finished its turn.
    Done,
    /// The agent's turn ended with an error (API error, rate limit); `attention.reason`
    /// says which.
    Failed,
    /// The container is frozen (`docker pause`) after being idle; the next keystroke
    /// or approval resumes it.
    Paused,
    /// Stopped by the user (or the engine went away); `start` brings it back.
    Stopped,
    /// The agent process ended by itself; `exit_code` says how.
    Exited,
    /// The container is gone or could not be started; `error` says why.
    Error,
}

impl TaskStatus {
    /// Every state.
    pub const ALL: [TaskStatus; 12] = [
        TaskStatus::Creating,
        TaskStatus::Queued,
        TaskStatus::Starting,
        TaskStatus::Running,
        TaskStatus::NeedsApproval,
        TaskStatus::WaitingInput,
        TaskStatus::Done,
        TaskStatus::Failed,
        TaskStatus::Paused,
        TaskStatus::Stopped,
        TaskStatus::Exited,
        TaskStatus::Error,
    ];

    /// The name used in the API and the database (snake_case).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Creating => "creating",
            TaskStatus::Queued => "queued",
            TaskStatus::Starting => "starting",
            TaskStatus::Running => "running",
            TaskStatus::NeedsApproval => "needs_approval",
            TaskStatus::WaitingInput => "waiting_input",
            TaskStatus::Done => "done",
            TaskStatus::Failed => "failed",
            TaskStatus::Paused => "paused",
            TaskStatus::Stopped => "stopped",
            TaskStatus::Exited => "exited",
            TaskStatus::Error => "error",
        }
    }

    /// Whether the container runs (not paused): `running` and every agent state.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            TaskStatus::Starting | TaskStatus::Running | TaskStatus::NeedsApproval | TaskStatus::WaitingInput | TaskStatus::Done | TaskStatus::Failed
        )
    }

    /// Whether this is an agent state (kept in memory, standing in for `running`).
    pub fn is_agent_state(self) -> bool {
        self.is_live() && self != TaskStatus::Running
    }

    /// Whether the user is wanted: `needs_approval`, `waiting_input`, `done`, `failed`.
    pub fn needs_user(self) -> bool {
        matches!(self, TaskStatus::NeedsApproval | TaskStatus::WaitingInput | TaskStatus::Done | TaskStatus::Failed)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TaskStatus {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| crate::Error::UnknownStatus(s.chars().take(60).collect()))
    }
}

/// Claude Code's permission mode for a task (`--permission-mode`), as its CLI names
/// them. `bypassPermissions` is allowed because the agent runs inside the sandbox as
/// a non-root user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum PermissionMode {
    /// Classic approval prompts for tools (the `PermissionRequest` hook fires).
    #[serde(rename = "default")]
    Default,
    /// File edits are accepted without asking; other tools ask.
    #[serde(rename = "acceptEdits")]
    AcceptEdits,
    /// Plan only, no edits.
    #[serde(rename = "plan")]
    Plan,
    /// Claude Code 2.1's automatic mode (its safety check runs on Anthropic's side).
    #[serde(rename = "auto")]
    Auto,
    /// Never asks.
    #[serde(rename = "bypassPermissions")]
    BypassPermissions,
}

impl PermissionMode {
    /// Every mode.
    pub const ALL: [PermissionMode; 5] =
        [PermissionMode::Default, PermissionMode::AcceptEdits, PermissionMode::Plan, PermissionMode::Auto, PermissionMode::BypassPermissions];

    /// The name Claude Code's `--permission-mode` takes, also used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionMode::Default => "default",
            PermissionMode::AcceptEdits => "acceptEdits",
            PermissionMode::Plan => "plan",
            PermissionMode::Auto => "auto",
            PermissionMode::BypassPermissions => "bypassPermissions",
        }
    }
}

impl FromStr for PermissionMode {
    type Err = crate::Error;
    /// Errors: [`crate::Error::UnknownPermissionMode`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PermissionMode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| crate::Error::UnknownPermissionMode(s.chars().take(60).collect()))
    }
}

/// What the agent wants from the user, while `status` is `needs_approval`,
/// `waiting_input` or `failed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
pub struct Attention {
    /// The tool asking for permission (`needs_approval`), e.g. `Bash`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The tool's input as the agent sent it (`needs_approval`), e.g.
    /// `{"command": "ls", "description": "…"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
    /// The agent's message (a notification's text) or, for `failed`, the reason
    /// (`rate_limit`, `authentication_failed`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When this state began, RFC 3339 UTC.
    pub since: String,
}

/// A running sandbox's resource use (Docker stats), refreshed every few seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    /// CPU use in percent of one CPU (200 = two CPUs busy).
    pub cpu_percent: f64,
    /// Memory in use, bytes (Docker's usage minus the page cache).
    pub memory_bytes: u64,
    /// The container's memory cap, bytes.
    pub memory_limit_bytes: u64,
    /// When it was read, RFC 3339 UTC.
    pub at: String,
}

/// What a terminal runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TerminalKind {
    /// The container's main process (the agent), re-attachable across restarts.
    Agent,
    /// An extra `docker exec` session in the same container; ends with the server.
    Shell,
    /// The dev container's setup (`postCreateCommand`, `postStartCommand`): its
    /// live output (an exec's TTY); ends with the commands.
    Setup,
}

/// Where a task's dev container setup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SetupStatus {
    /// Nothing to run: no `.devcontainer/devcontainer.json`, or one without
    /// `postCreateCommand` and `postStartCommand`.
    #[default]
    None,
    /// Commands wait for the sandbox to start.
    Pending,
    /// The commands run now; the agent starts when they end.
    Running,
    /// Every command ended with 0.
    Done,
    /// A command failed (see `exit_code`) or could not run; the task stays usable.
    Failed,
}

impl SetupStatus {
    /// The lowercase name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SetupStatus::None => "none",
            SetupStatus::Pending => "pending",
            SetupStatus::Running => "running",
            SetupStatus::Done => "done",
            SetupStatus::Failed => "failed",
        }
    }

    /// The status named `s` (as [`SetupStatus::as_str`] gives it); `None` for others.
    pub fn parse(s: &str) -> Option<SetupStatus> {
        [SetupStatus::None, SetupStatus::Pending, SetupStatus::Running, SetupStatus::Done, SetupStatus::Failed].into_iter().find(|x| x.as_str() == s)
    }
}

/// A task's dev container setup: the project's `postCreateCommand` (once, after
/// the sandbox is created) and `postStartCommand` (at every start), run before the
/// agent starts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskSetup {
    /// Where it stands.
    pub status: SetupStatus,
    /// The exit code of the command that failed (`failed`), or 0 (`done`).
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// The setup's log (plain text of its terminal output), once it ran:
    /// `/api/tasks/<id>/setup/log`.
    #[serde(default)]
    pub log_url: Option<String>,
    /// Why it failed when no command's exit code says it (the image has no
    /// shell, the sandbox stopped meanwhile).
    #[serde(default)]
    pub error: Option<String>,
}

/// A terminal of a task, as listed in [`Task::terminals`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TerminalInfo {
    /// 12 hex digits; the agent terminal's id is stable for the task's life.
    pub id: String,
    /// Agent or extra shell.
    pub kind: TerminalKind,
    /// Tab title: the agent's name, or the shell's command.
    pub title: String,
}

/// One unit of agent work: a branch, its worktree, one sandbox container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// 12 hex digits.
    pub id: String,
    /// The project this task branches from.
    pub project_id: String,
    /// Free text given by the user.
    pub title: String,
    /// The agent profile running as the container's main process.
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
    /// Claude Code's permission mode (`None`: the profile's default, for agents that
    /// have no such setting).
    #[serde(default)]
    pub permission_mode: Option<PermissionMode>,
    /// The sandbox's CPU cap in CPUs (e.g. 2.0), fixed at creation from the request
    /// or the settings' default.
    #[serde(default)]
    pub cpus: Option<f64>,
    /// The sandbox's memory cap in MiB, fixed at creation from the request or the
    /// settings' default.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// What the agent wants (tool and input for `needs_approval`, message, failure
    /// reason). Filled in by the engine, not stored.
    #[serde(default)]
    pub attention: Option<Attention>,
    /// Live CPU and memory while the sandbox runs. Filled in by the engine, not stored.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// 1-based place in the queue while `status` is `queued`. Filled in by the engine.
    #[serde(default)]
    pub queue_position: Option<u32>,
    /// How the sandbox reaches the network (stored in its own table).
    #[serde(default)]
    pub network: crate::NetworkPolicy,
    /// Messages to the agent waiting for it to finish its turn, oldest first (in
    /// memory: a restart of AnyCode drops them). Filled in by the engine.
    #[serde(default)]
    pub messages: Vec<QueuedMessage>,
    /// The dev container's setup (stored in its own table).
    #[serde(default)]
    pub setup: TaskSetup,
    /// The id of the host whose Docker engine runs the sandbox: [`LOCAL_HOST`] or a
    /// [`Host`]'s id (stored in its own table).
    #[serde(default = "local_host")]
    pub host: String,
    /// Set while the task's host does not answer (a remote engine that went away):
    /// what failed. The task keeps its state; it is reconciled when the host is
    /// back. Filled in by the engine, never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_error: Option<String>,
}

/// A message to a task's agent, queued until the agent waits for input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuedMessage {
    /// 12 hex digits.
    pub id: String,
    /// The text typed into the agent's terminal, followed by Enter.
    pub text: String,
    /// When it was sent, RFC 3339 UTC.
    pub created_at: String,
}

/// A review comment of the owner's on a line of a task's changes, sent to the agent
/// as part of one message (`POST /api/tasks/{id}/comments/send`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReviewComment {
    /// 12 hex digits.
    pub id: String,
    /// The file, relative to the repository root, `/`-separated.
    pub path: String,
    /// The line in the file as the Changes panel showed it (1-based, new side).
    pub line: u32,
    /// The comment.
    pub body: String,
    /// When it was made, RFC 3339 UTC.
    pub created_at: String,
    /// When it was sent to the agent, RFC 3339 UTC (`None`: not yet).
    pub sent_at: Option<String>,
    /// True once a commit on the task branch after the sending changed the lines
    /// around it (within 3 lines).
    pub addressed: bool,
}

/// The id of the Docker engine AnyCode finds on its own machine (`DOCKER_HOST`, or
/// the usual sockets).
pub const LOCAL_HOST: &str = "local";

fn local_host() -> String {
    LOCAL_HOST.to_string()
}

/// A Docker engine AnyCode places sandboxes on, other than the local one: a
/// workstation, a cloud VM, a build server. Driven as the Docker CLI drives one:
/// no AnyCode agent runs there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Host {
    /// 12 hex digits (`local` is the local engine, which has no row).
    pub id: String,
    /// A name the owner gave it, unique, 1 to 64 characters.
    pub name: String,
    /// `ssh://user@box[:port]`, `tcp://box:2376` or `unix:///path/docker.sock`.
    pub endpoint: String,
    /// TLS client files for `tcp://` (paths on this machine; their contents are
    /// never stored or shown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HostTls>,
    /// At most this many of AnyCode's sandboxes run there at once (the governor's
    /// limit applies too); `None`: no limit of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
}

/// Paths of the PEM files of a TLS-protected Docker endpoint, as `docker --tlsverify
/// --tlscacert … --tlscert … --tlskey …` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostTls {
    /// The CA certificate the engine's certificate must chain to.
    pub ca: String,
    /// The client certificate.
    pub cert: String,
    /// The client key (only its path is kept).
    pub key: String,
}

/// Whether a host's Docker engine answered when AnyCode last asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HostStatus {
    /// It answered.
    Reachable,
    /// It did not (refused, timed out, TLS or ssh failed); see `error`.
    Unreachable,
}

/// A host as `GET /api/hosts` shows it: its settings (no secrets: TLS files are
/// paths), whether it answers, its capacity and AnyCode's load on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostInfo {
    /// `local`, or 12 hex digits.
    pub id: String,
    /// `local`, or the name the owner gave it.
    pub name: String,
    /// The Docker endpoint, e.g. `unix:///var/run/docker.sock`, `tcp://box:2376`,
    /// `ssh://user@box`.
    pub endpoint: String,
    /// TLS file paths of a `tcp://` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<HostTls>,
    /// The host's own limit of running sandboxes, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// Whether it answers.
    pub status: HostStatus,
    /// The engine's CPUs (`docker info` NCPU), when it answered.
    pub cpus: Option<u64>,
    /// The engine's memory in bytes (`docker info` MemTotal), when it answered.
    pub memory_bytes: Option<u64>,
    /// AnyCode's running sandboxes there.
    pub running_tasks: u32,
    /// AnyCode's tasks there, whatever their state.
    pub tasks: u32,
    /// CPUs the running sandboxes there are capped at, summed (what placement
    /// counts as used).
    pub reserved_cpus: f64,
    /// Why it does not answer, when it does not (never a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The sandbox image's copy to this host (a remote host lacking it gets one
    /// from this machine's engine when added, and before a task needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ImageCopy>,
}

/// An image copy to a host, as far as it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImageCopy {
    /// The image's tag, e.g. `anycode-sandbox:3f2a…`.
    pub tag: String,
    /// `copying`, `done` or `failed`.
    pub status: String,
    /// Bytes of the image archive sent so far.
    pub copied_bytes: u64,
    /// The image's size as this machine's engine reports it, bytes.
    pub total_bytes: u64,
    /// What failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A task's pull request as AnyCode last saw it on GitHub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
