//! AnyCode's task engine: the one place that ties projects, tasks, git worktrees,
//! Docker sandboxes and terminals together.
//!
//! - [`Engine::open`] opens the data dir and database; Docker is connected lazily
//!   (and again after it went away), and the first successful connection reconciles
//!   the database with the containers Docker has ([`Engine::reconcile`]).
//! - Task lifecycle: [`Engine::create_task`] (branch → worktree → container →
//!   attach → start, undone step by step on failure), [`Engine::stop_task`],
//!   [`Engine::start_task`], [`Engine::delete_task`] (keeps the branch).
//! - Terminals: the agent terminal is the container's main process (attached, so it
//!   survives dropped clients and server restarts); extra shells are exec sessions.
//!   [`Engine::terminal`] hands a [`Terminal`] hub to the server for its viewers.
//! - Hosts: `local` (this machine's engine) and remote Docker engines the owner
//!   added ([`Engine::add_host`]); a new task is placed on one ([`Engine::hosts`]
//!   shows their load), and a remote task's repository travels through git (see
//!   `remote.rs`).
//! - Paired devices ([`Engine::add_device`], …): a name, a role and the hash of a
//!   session secret; pairing codes and cookies are the server's.
//! - Blocking work (SQLite, git) runs on `spawn_blocking`.
//!
//! This crate knows nothing of HTTP or JSON.

mod agents;
mod credentials;
mod devcontainer;
mod devices;
mod error;
mod events;
mod github;
mod governor;
mod handover;
mod hooks;
mod host;
mod hosts;
mod include;
mod issues;
mod listing;
mod messages;
mod openin;
mod previews;
mod network;
mod projects;
mod reconcile;
mod remote;
mod review;
mod runtime;
mod taskrepo;
mod tasks;
mod terminals;

pub use anycode_core::{
    check_device_name, Agent, Attention, BlockedHost, Config, Credential, Device, DeviceRole, NetworkMode, NetworkPolicy, PermissionMode, Project,
    QueuedMessage, ReviewComment, Settings, SetupStatus, Task, TaskSetup, TaskStatus, TerminalInfo, TerminalKind, Usage, Host, HostInfo, HostStatus, HostTls,
    ImageCopy, LOCAL_HOST,
};
pub use agents::{AgentInfo, SCREEN_QUIET, SCREEN_TICK};
pub use anycode_agents::{Profile, Profiles};
pub use devices::session_hash;
pub use anycode_credentials::{Name as CredentialName, Secret, Status as CredentialsStatus};
pub use anycode_git::{Branches, Diff, FileDiff};
pub use anycode_sandbox::image::BuildEvent;
pub use anycode_terminal::{Recv, Terminal, Viewer, ViewerHandle};
pub use error::{Error, ErrorKind, Result};
pub use events::{Event, EVENT_BUFFER};
pub use devcontainer::{parse as parse_devcontainer, DevBuild, DevContainer, SetupCommand, DEVCONTAINER_FILE};
pub use openin::{vscode_attached_uri, OpenIn};
pub use previews::{parse_ports, ListeningPort, PreviewStream};
pub use review::{review_message, NewComment, ADDRESSED_WITHIN, MAX_COMMENTS, MAX_COMMENT_CHARS, REVIEW_HEADER};
pub use messages::{check_text as check_message_text, MessageSent, MAX_MESSAGE_CHARS, MAX_QUEUED};
pub use network::{HookService, NetworkRequest, NetworkStatus, BUILTIN_ALLOW};
pub use host::DockerHealth;
pub use hosts::{check_host_name, ContextOffer, NewHost, MAX_HOST_NAME};
pub use tasks::{NewTask, MAX_TITLE};
pub use hooks::{claude_settings, ApprovalDecision, HookAnswer, HookEvent, HOOK_PATH, SANDBOX_HOOK_URL};
pub use governor::tick_interval;
pub use listing::{TaskFilter, TaskPage, MAX_PAGE};
pub use github::{Conflicts, CreatePr, GitHubStatus, Import, ImportRequest, Overlap};
pub use anycode_git::{CloneProgress, MergeCheck, PushOutcome, UpdateOutcome};
pub use anycode_github::token::{MemoryStore, TokenSource, TokenStore, Tokens};
pub use anycode_github::{Issue, MergeMethod, MergeResult, RepoMeta, Secret as GitHubSecret};
pub use anycode_core::PullRequestInfo;

use anycode_sandbox::SandboxHost;
use anycode_store::Store;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex as StdMutex};
use tokio::sync::Mutex;

struct Inner {
    config: Config,
    store: Store,
    instance: String,
    docker: Mutex<Option<SandboxHost>>,
    image: Mutex<Option<String>>,
    /// The live terminal hubs (see `terminals.rs`).
    terminals: terminals::TerminalRegistry,
    task_locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    gh: github::GhState,
    /// Task changes for live views ([`Engine::events`]).
    events: tokio::sync::broadcast::Sender<Event>,
    /// The agents' states by task id (see `events.rs`).
    agent_states: StdMutex<HashMap<String, events::AgentState>>,
    /// Hook tokens, waiting approvals and the hook listener's URL (see `hooks.rs`).
    hooks: hooks::Hooks,
    /// Messages to agents waiting for their turn (see `messages.rs`).
    messages: messages::Messages,
    /// Usage, the run queue, idle timers (see `governor.rs`).
    gov: governor::GovState,
    /// Agent profiles (see `agents.rs`).
    profiles: anycode_agents::Profiles,
    /// Held while an image variant builds.
    variant_build: Mutex<()>,
    /// The generation of each task's screen watcher (see `agents.rs`).
    screen_watchers: StdMutex<HashMap<String, u64>>,
    /// One lock per task around bringing its work out of the sandbox (see `taskrepo.rs`).
    sync_locks: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    /// When each task's work was last brought out.
    synced_at: StdMutex<HashMap<String, std::time::Instant>>,
    /// Tasks whose stopped sandbox's work was brought out since it stopped.
    settled: StdMutex<std::collections::HashSet<String>>,
    /// Network policies in force, relays and the hook service (see `network.rs`).
    net: network::NetState,
    /// Parsed devcontainer.json files and the image build lock (see `devcontainer.rs`).
    dev: devcontainer::DevState,
    /// How many reconciles with a new local Docker connection have finished (see
    /// `host.rs`: [`Engine::connect`] waits for the first).
    reconciled: tokio::sync::watch::Sender<u64>,
    /// Connections to remote hosts and their state (see `hosts.rs`).
    hosts: hosts::HostPool,
    /// One image copy per remote host at a time (see `remote.rs`).
    image_copies: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// The engine. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

/// Runs blocking work (SQLite, git) off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Internal(format!("background work failed: {e}")))?
}

impl Engine {
    /// Opens the data dir (creating it, mode 0700 on Unix) and the database.
    /// Docker is not contacted here.
    ///
    /// Errors: `INVALID_SETTINGS` for an `[agents.NAME]` table that cannot be used.
    pub async fn open(config: Config) -> Result<Engine> {
        let profiles = anycode_agents::Profiles::from_settings(&config.settings.agents).map_err(Error::Agents)?;
        let dir = config.data_dir.clone();
        let db = config.db_path();
        let store = blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| Error::Internal(format!("creating {}: {e}", dir.display())))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            Ok(Store::open(&db)?)
        })
        .await?;
        let instance = instance_id(&config.data_dir);
        // The GitHub token lives next to AnyCode's other credentials in the keyring.
        let keyring_service = config.keyring_service.clone();
        let engine = Engine {
            inner: Arc::new(Inner {
                config,
                store,
                instance,
                docker: Mutex::new(None),
                image: Mutex::new(None),
                terminals: Default::default(),
                task_locks: StdMutex::new(HashMap::new()),
                gh: github::GhState::new(keyring_service.as_deref()),
                events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
                agent_states: StdMutex::new(HashMap::new()),
                hooks: hooks::Hooks::default(),
                messages: messages::Messages::default(),
                gov: Default::default(),
                profiles,
                variant_build: Mutex::new(()),
                screen_watchers: StdMutex::new(HashMap::new()),
                sync_locks: StdMutex::new(HashMap::new()),
                synced_at: StdMutex::new(HashMap::new()),
                settled: StdMutex::new(Default::default()),
                net: Default::default(),
                dev: Default::default(),
                reconciled: tokio::sync::watch::channel(0).0,
                hosts: Default::default(),
                image_copies: StdMutex::new(HashMap::new()),
            }),
        };
        engine.sweep_partial_clones();
        // Agents that outlived the last run keep posting hooks with their token.
        let ids: Vec<String> = engine.db(|s| Ok(s.tasks(None)?)).await?.into_iter().map(|t| t.id).collect();
        engine.load_token_hashes(&ids);
        engine.restore_pending_approvals().await;
        engine.ensure_pr_refresher();
        engine.ensure_governor();
        engine.ensure_host_watcher();
        Ok(engine)
    }

    /// Runs `f` with the database, off the async runtime (SQLite blocks).
    pub(crate) async fn db<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> Result<T> + Send + 'static) -> Result<T> {
        let store = self.inner.store.clone();
        blocking(move || f(&store)).await
    }

    /// The settings this engine runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The label value that marks this instance's containers (12 hex digits derived
    /// from the data dir's path).
    pub fn instance(&self) -> &str {
        &self.inner.instance
    }
}

/// The label value marking the containers of the AnyCode instance whose data dir is
/// `data_dir`: the first 12 hex digits of the sha256 of its canonical path.
pub fn instance_id(data_dir: &Path) -> String {
    let canonical = data_dir.canonicalize().unwrap_or_else(|_| data_dir.to_path_buf());
    hex::encode(&Sha256::digest(canonical.to_string_lossy().as_bytes())[..6])
}

/// The tag of the sandbox image for this configuration, built or not: the user's
/// `ANYCODE_IMAGE`, or `anycode-sandbox:<hash of the build inputs>`.
pub fn sandbox_image_tag(config: &Config) -> Result<String> {
    if let Some(t) = &config.image {
        return Ok(t.clone());
    }
    let files = anycode_sandbox::image::build_context_files(config.extra_ca_dir.as_deref())?;
    Ok(anycode_sandbox::image::image_tag(&files))
}

/// `anycode-<task id>`: the container's name.
pub fn container_name(task_id: &str) -> String {
    format!("anycode-{task_id}")
}

