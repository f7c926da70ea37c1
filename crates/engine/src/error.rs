/// What kind of failure an [`Error`] is; the server maps kinds to HTTP statuses and
/// the CLI to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: nothing was changed.
    Invalid,
    /// A project, task or terminal id that does not exist.
    NotFound,
    /// The request conflicts with the current state (branch exists, task not running).
    Conflict,
    /// Docker is not reachable.
    Unavailable,
    /// A failure of AnyCode or its environment.
    Internal,
}

/// Every error of the engine, folding the errors of the crates it drives.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, with a sentence saying what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// `what` (`project`, `task`, `terminal`) with this id does not exist.
    #[error("{what} {id} does not exist")]
    NotFound {
        /// `project`, `task` or `terminal`.
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Docker is not reachable; the sentence says what to start.
    #[error("{0}")]
    DockerUnavailable(String),
    /// An approval was decided for a task that waits for none (`NO_PENDING_APPROVAL`).
    #[error("task {0} is not waiting for an approval (already answered, timed out, or the agent moved on)")]
    NoPendingApproval(String),
    /// A message was sent to a task whose sandbox does not run (`TASK_NOT_RUNNING`):
    /// its id and status.
    #[error("task {0} is {1}, so its agent cannot take messages: start the task first")]
    TaskNotRunning(String, String),
    /// A git failure (including bad branch names and paths, which are bad input).
    #[error(transparent)]
    Git(#[from] anycode_git::Error),
    /// A database failure.
    #[error(transparent)]
    Store(#[from] anycode_store::Error),
    /// A GitHub failure (token, API).
    #[error(transparent)]
    GitHub(#[from] anycode_github::Error),
    /// A credentials failure: an unknown name, a bad value, the OS keyring.
    #[error(transparent)]
    Credentials(anycode_credentials::Error),
    /// A Docker failure other than "unreachable".
    #[error(transparent)]
    Sandbox(anycode_sandbox::Error),
    /// An agent profile problem: an unknown agent, a bad `[agents.NAME]` table.
    #[error(transparent)]
    Agents(anycode_agents::Error),
    /// A host's Docker engine does not answer (`HOST_UNREACHABLE`): its name and
    /// what failed.
    #[error("host {host} does not answer: {reason}")]
    HostUnreachable {
        /// The host's name (`local` for this machine's engine).
        host: String,
        /// What failed (refused, timed out, TLS, ssh), never a secret.
        reason: String,
    },
    /// Anything else (a task that panicked, I/O around the data dir).
    #[error("{0}")]
    Internal(String),
}

impl From<anycode_sandbox::Error> for Error {
    fn from(e: anycode_sandbox::Error) -> Self {
        match e {
            anycode_sandbox::Error::Unavailable(m) => Error::DockerUnavailable(m),
            other => Error::Sandbox(other),
        }
    }
}

impl From<anycode_core::Error> for Error {
    fn from(e: anycode_core::Error) -> Self {
        Error::Invalid(e.to_string())
    }
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        use anycode_git::Error as G;
        match self {
            Error::Invalid(_) | Error::Agents(_) => ErrorKind::Invalid,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict(_) | Error::NoPendingApproval(_) | Error::TaskNotRunning(..) => ErrorKind::Conflict,
            Error::DockerUnavailable(_) | Error::HostUnreachable { .. } => ErrorKind::Unavailable,
            Error::Git(g) => match g {
                G::PathNotFound(_)
                | G::NotARepo(_)
                | G::Bare(_)
                | G::UnknownBranch(_)
                | G::InvalidBranchName(_)
                | G::NoCurrentBranch
                | G::EmptyMessage
                | G::NoIdentity => ErrorKind::Invalid,
                G::BranchExists(_) | G::NothingToCommit => ErrorKind::Conflict,
                G::DestinationExists(_) | G::NoRemote(_) => ErrorKind::Invalid,
                G::AuthFailed { .. } | G::RemoteNotFound(_) | G::TokenNotSent { .. } => ErrorKind::Invalid,
                G::PushRejected { .. } | G::Dirty(_) | G::MergeConflicts { .. } | G::Cancelled => ErrorKind::Conflict,
                G::TaskRepoBroken(_) | G::BranchDiverged(_) => ErrorKind::Conflict,
                // The remote answered and refused: the caller's remote, not AnyCode, is
                // in the way (the message has its words).
                G::Remote(_) => ErrorKind::Conflict,
                G::Unreachable { .. } => ErrorKind::Unavailable,
                G::Git(_) | G::Io(_) => ErrorKind::Internal,
            },
            Error::GitHub(g) => {
                use anycode_github::Error as H;
                match g {
                    H::NoToken | H::BadCredentials(_) | H::Forbidden(_) | H::NotFound(_) | H::Validation(_) | H::Invalid(_) => ErrorKind::Invalid,
                    H::MergeRefused(_) => ErrorKind::Conflict,
                    H::RateLimited { .. } | H::Unreachable { .. } | H::Keyring(_) => ErrorKind::Unavailable,
                    H::Api { .. } => ErrorKind::Internal,
                }
            }
            Error::Credentials(c) => match c {
                anycode_credentials::Error::UnknownName(_) | anycode_credentials::Error::InvalidValue(_) => ErrorKind::Invalid,
                // Turned off by the settings: the request conflicts with them.
                anycode_credentials::Error::KeyringDisabled => ErrorKind::Conflict,
                anycode_credentials::Error::Keyring(_) => ErrorKind::Unavailable,
            },
            Error::Store(anycode_store::Error::Conflict(_)) => ErrorKind::Conflict,
            Error::Sandbox(anycode_sandbox::Error::NoImage(_)) => ErrorKind::Unavailable,
            Error::Sandbox(
                anycode_sandbox::Error::BadEndpoint(_)
                | anycode_sandbox::Error::TlsFiles(_)
                | anycode_sandbox::Error::SshMissing(_)
                | anycode_sandbox::Error::Context(_),
            ) => ErrorKind::Invalid,
            Error::Sandbox(anycode_sandbox::Error::Unreachable { .. }) => ErrorKind::Unavailable,
            Error::Store(_) | Error::Sandbox(_) | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A stable machine-readable code, e.g. `DOCKER_UNAVAILABLE`, `BRANCH_EXISTS`.
    pub fn code(&self) -> &'static str {
        use anycode_git::Error as G;
        match self {
            Error::Invalid(_) => "INVALID_INPUT",
            Error::Agents(anycode_agents::Error::UnknownAgent { .. }) => "UNKNOWN_AGENT",
            Error::Agents(anycode_agents::Error::InvalidProfile { .. }) => "INVALID_SETTINGS",
            Error::NotFound { what: "project", .. } => "PROJECT_NOT_FOUND",
            Error::NotFound { what: "task", .. } => "TASK_NOT_FOUND",
            Error::NotFound { what: "terminal", .. } => "TERMINAL_NOT_FOUND",
            Error::NotFound { what: "recording", .. } => "RECORDING_NOT_FOUND",
            Error::NotFound { what: "device", .. } => "DEVICE_NOT_FOUND",
            Error::NotFound { what: "message", .. } => "MESSAGE_NOT_FOUND",
            Error::NotFound { what: "comment", .. } => "COMMENT_NOT_FOUND",
            Error::NotFound { what: "setup log", .. } => "SETUP_LOG_NOT_FOUND",
            Error::NotFound { what: "host", .. } => "HOST_NOT_FOUND",
            Error::NotFound { .. } => "NOT_FOUND",
            Error::Conflict(_) => "CONFLICT",
            Error::NoPendingApproval(_) => "NO_PENDING_APPROVAL",
            Error::TaskNotRunning(..) => "TASK_NOT_RUNNING",
            Error::DockerUnavailable(_) => "DOCKER_UNAVAILABLE",
            Error::HostUnreachable { .. } | Error::Sandbox(anycode_sandbox::Error::Unreachable { .. }) => "HOST_UNREACHABLE",
            Error::Sandbox(anycode_sandbox::Error::BadEndpoint(_)) => "BAD_ENDPOINT",
            Error::Sandbox(anycode_sandbox::Error::TlsFiles(_)) => "BAD_TLS_FILES",
            Error::Sandbox(anycode_sandbox::Error::SshMissing(_)) => "SSH_MISSING",
            Error::Sandbox(anycode_sandbox::Error::Context(_)) => "BAD_DOCKER_CONTEXT",
            Error::Sandbox(anycode_sandbox::Error::Copy(_)) => "IMAGE_COPY_FAILED",
            Error::Git(G::PathNotFound(_)) => "PATH_NOT_FOUND",
            Error::Git(G::NotARepo(_)) | Error::Git(G::Bare(_)) => "NOT_A_REPOSITORY",
            Error::Git(G::UnknownBranch(_)) => "UNKNOWN_BRANCH",
            Error::Git(G::InvalidBranchName(_)) => "INVALID_BRANCH_NAME",
            Error::Git(G::BranchExists(_)) => "BRANCH_EXISTS",
            Error::Git(G::NoCurrentBranch) => "NO_CURRENT_BRANCH",
            Error::Git(G::NothingToCommit) => "NOTHING_TO_COMMIT",
            Error::Git(G::EmptyMessage) => "EMPTY_MESSAGE",
            Error::Git(G::NoIdentity) => "NO_GIT_IDENTITY",
            Error::Git(G::AuthFailed { .. }) => "AUTH_FAILED",
            Error::Git(G::TokenNotSent { .. }) => "PUSH_HOST_NOT_GITHUB",
            Error::Git(G::RemoteNotFound(_)) => "REPOSITORY_NOT_FOUND",
            Error::Git(G::Unreachable { .. }) => "REMOTE_UNREACHABLE",
            Error::Git(G::Remote(_)) => "REMOTE_ERROR",
            Error::Git(G::PushRejected { .. }) => "PUSH_REJECTED",
            Error::Git(G::NoRemote(_)) => "NO_REMOTE",
            Error::Git(G::DestinationExists(_)) => "DESTINATION_EXISTS",
            Error::Git(G::Cancelled) => "CANCELLED",
            Error::Git(G::Dirty(_)) => "UNCOMMITTED_CHANGES",
            Error::Git(G::MergeConflicts { .. }) => "MERGE_CONFLICTS",
            Error::Git(G::TaskRepoBroken(_)) => "TASK_REPO_BROKEN",
            Error::Git(G::BranchDiverged(_)) => "BRANCH_DIVERGED",
            Error::Git(_) => "GIT_ERROR",
            Error::GitHub(g) => {
                use anycode_github::Error as H;
                match g {
                    H::NoToken => "GITHUB_NO_TOKEN",
                    H::BadCredentials(_) => "GITHUB_BAD_CREDENTIALS",
                    H::Forbidden(_) => "GITHUB_FORBIDDEN",
                    H::RateLimited { .. } => "GITHUB_RATE_LIMITED",
                    H::NotFound(_) => "GITHUB_NOT_FOUND",
                    H::MergeRefused(_) => "MERGE_REFUSED",
                    H::Validation(_) => "GITHUB_VALIDATION",
                    H::Unreachable { .. } => "GITHUB_UNREACHABLE",
                    H::Api { .. } => "GITHUB_ERROR",
                    H::Keyring(_) => "KEYRING_UNAVAILABLE",
                    H::Invalid(_) => "INVALID_INPUT",
                }
            }
            Error::Credentials(anycode_credentials::Error::UnknownName(_)) => "UNKNOWN_CREDENTIAL",
            Error::Credentials(anycode_credentials::Error::InvalidValue(_)) => "INVALID_CREDENTIAL",
            Error::Credentials(anycode_credentials::Error::KeyringDisabled) => "KEYRING_DISABLED",
            Error::Credentials(_) => "KEYRING_UNAVAILABLE",
            Error::Store(anycode_store::Error::Conflict(_)) => "ALREADY_EXISTS",
            Error::Store(_) => "DATABASE_ERROR",
            Error::Sandbox(anycode_sandbox::Error::NoImage(_)) => "IMAGE_MISSING",
            Error::Sandbox(_) => "DOCKER_ERROR",
            Error::Internal(_) => "INTERNAL",
        }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
