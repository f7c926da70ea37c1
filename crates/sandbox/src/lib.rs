//! AnyCode's Docker layer, on bollard.
//!
//! - [`Docker::connect`]: finds an engine (DOCKER_HOST, then the usual sockets of
//!   Docker Engine, Docker Desktop, colima, OrbStack, rootless Docker and Podman)
//!   and negotiates the API version.
//! - [`image`]: the sandbox image, built from `sandbox-image/` (embedded in the
//!   binary) plus the host's extra CA certificates, tagged by a hash of its inputs so
//!   an outdated image is rebuilt.
//! - Task containers: [`Docker::create_container`] with AnyCode's labels and
//!   hardening, start/stop/remove, [`Docker::managed_containers`] for reconciling,
//!   [`Docker::attach`] to the main process's TTY and [`Docker::exec`] for extra shells.
//!
//! Every container AnyCode makes carries the labels [`LABEL_INSTANCE`] (which data dir
//! owns it), [`LABEL_TASK`] and [`LABEL_PROJECT`]; containers of other instances are
//! never touched.

mod backend;
pub mod cgroup;
pub mod contexts;
pub mod endpoint;
mod hijack;
pub mod image;
mod network;
mod ptyexec;
pub mod transfer;

pub use backend::{Backend, SandboxHost};
pub use network::DEFAULT_NETWORK;
pub use ptyexec::PtyResizer;

use bollard::container::{
    AttachContainerOptions, Config, CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
    LogsOptions, RemoveContainerOptions, ResizeContainerTtyOptions, StopContainerOptions,
};
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{HostConfig, HostConfigLogConfig};
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::AsyncWrite;


/// Label naming the AnyCode instance (a hash of its data dir) owning a container.
pub const LABEL_INSTANCE: &str = "dev.anycode.instance";
/// Label carrying the task id.
pub const LABEL_TASK: &str = "dev.anycode.task";
/// Label carrying the project id.
pub const LABEL_PROJECT: &str = "dev.anycode.project";

/// Errors of the Docker layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No engine answered; the message says what to start.
    #[error("{0}")]
    Unavailable(String),
    /// The container does not exist (any more).
    #[error("container {0} does not exist")]
    NoSuchContainer(String),
    /// The image build failed; the message carries Docker's last lines.
    #[error("building the sandbox image failed: {0}")]
    Build(String),
    /// The configured image does not exist locally.
    #[error("image {0} not found: build it, or unset ANYCODE_IMAGE to let AnyCode build its own")]
    NoImage(String),
    /// Any other error the engine returned.
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    /// Reading build inputs failed.
    #[error("{0}")]
    Io(String),
    /// A Docker endpoint URL that is malformed or of an unsupported kind; the
    /// message names it and the accepted forms.
    #[error("{0}")]
    BadEndpoint(String),
    /// The engine at `endpoint` did not answer (refused, timed out, TLS handshake
    /// or ssh failed); `reason` says how.
    #[error("the Docker engine at {endpoint} is unreachable: {reason}")]
    Unreachable {
        /// The endpoint URL as given.
        endpoint: String,
        /// What failed, e.g. `Connection refused` or ssh's last words.
        reason: String,
    },
    /// A TLS file of an endpoint is unreadable or not PEM; the message names the
    /// path (never the contents).
    #[error("{0}")]
    TlsFiles(String),
    /// `ssh://` needs the OpenSSH client, which is not there.
    #[error("{0}")]
    SshMissing(String),
    /// An image copy between engines failed; the message says at which end.
    #[error("copying the image: {0}")]
    Copy(String),
    /// A Docker context's files could not be read or parsed; the message names the file.
    #[error("{0}")]
    Context(String),
}

/// A terminal's exec in `/workspace` with all three streams attached; `tty` when
/// Docker holds the TTY.
fn terminal_exec(cmd: Vec<String>, env: Vec<String>, user: &str, tty: bool) -> CreateExecOptions<String> {
    CreateExecOptions {
        cmd: Some(cmd),
        env: Some(env),
        user: Some(user.to_string()),
        working_dir: Some("/workspace".to_string()),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(tty),
        ..Default::default()
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// A connected Docker engine, scoped to one AnyCode instance.
#[derive(Clone)]
pub struct Docker {
    api: bollard::Docker,
    instance: String,
    /// The same engine for raw (hijacked) TTY connections, when it is a Unix socket
    /// or plain TCP; `None` falls back to bollard's streams.
    raw: Option<hijack::Endpoint>,
    /// Where the engine was found, e.g. `unix:///var/run/docker.sock`.
    pub endpoint: String,
    /// The local socket forwarding to an `ssh://` engine, kept while a clone lives.
    _forwarder: Option<std::sync::Arc<endpoint::SshForwarder>>,
    /// Containers found without `anycode-pty` (older images): their exec terminals
    /// are TTY execs. Shared by clones.
    no_pty_holder: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// A TTY byte stream of a container's main process or of an exec session.
pub struct TtyStream {
    /// Output bytes as the engine sends them (a TTY merges stdout and stderr).
    pub output: BoxStream<'static, std::io::Result<Bytes>>,
    /// The process's TTY input.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
    /// How to resize a PTY held in the sandbox (`anycode-pty`, see [`Docker::exec`]);
    /// `None` when Docker holds the TTY and resizes go through its API.
    pub resize: Option<PtyResizer>,
}

/// One piece of a non-TTY exec's output ([`Docker::exec_pipe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipeChunk {
    /// Bytes the process wrote to its stdout.
    Stdout(Bytes),
    /// Bytes the process wrote to its stderr.
    Stderr(Bytes),
}

/// A process started by [`Docker::exec_pipe`]: stdin, and its output in order.
pub struct ExecPipe {
    /// Docker's exec id (for [`Docker::exec_exit_code`]).
    pub exec_id: String,
    /// stdout and stderr chunks as they come; ends when the process closes both.
    pub output: BoxStream<'static, std::io::Result<PipeChunk>>,
    /// The process's stdin; shutting it down closes the process's stdin.
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// What [`Docker::exec_output`] collected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The process's exit code (-1 when Docker did not report one in time).
    pub exit_code: i64,
    /// stdout, at most the asked number of bytes.
    pub stdout: Vec<u8>,
    /// stderr, at most the asked number of bytes.
    pub stderr: Vec<u8>,
    /// Whether either stream had more than was kept.
    pub truncated: bool,
}

/// What AnyCode needs to know of a managed container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Full container id.
    pub id: String,
    /// Value of [`LABEL_TASK`].
    pub task_id: String,
    /// Whether it runs (paused counts as running).
    pub running: bool,
    /// Whether it is frozen (`docker pause`); `running` is then true as well.
    pub paused: bool,
    /// Exit code of the last run when not running.
    pub exit_code: Option<i64>,
    /// The image as the container was created from, `tag@image id` (e.g.
    /// `anycode-sandbox:1a2b…@sha256:…`), when the backend reports it.
    pub image: Option<String>,
}

/// One reading of a container's resource use ([`Docker::stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// CPU time used by the container since it started, nanoseconds (all CPUs).
    pub cpu_total_ns: u64,
    /// Memory in use without the reclaimable page cache (cgroup v1
    /// `total_inactive_file`, v2 `inactive_file`), bytes — as `docker stats` shows.
    pub memory_bytes: u64,
    /// The memory cap, bytes (the host's memory when there is none).
    pub memory_limit_bytes: u64,
}

/// Everything needed to create a task's container.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// Container name, e.g. `anycode-<task id>`.
    pub name: String,
    /// Image tag.
    pub image: String,
    /// Task id (label).
    pub task_id: String,
    /// Project id (label).
    pub project_id: String,
    /// The main process, e.g. `["bash", "-l"]`.
    pub cmd: Vec<String>,
    /// `KEY=value` pairs set at create time (never secrets).
    pub env: Vec<String>,
    /// `uid:gid` the processes run as.
    pub user: String,
    /// Bind mounts in Docker's `host:container[:opts]` form; a source that is a
    /// name rather than an absolute path is a named volume
    /// ([`workspace_volume_bind`]: the working tree on a remote engine).
    pub binds: Vec<String>,
    /// Memory cap in bytes.
    pub memory_bytes: i64,
    /// CPU cap in billionths of a CPU.
    pub nano_cpus: i64,
    /// Process count cap.
    pub pids: i64,
}

/// The [`ContainerSpec::binds`] entry mounting the named volume `volume` (made by
/// [`Docker::create_volume`]) at `/workspace`: Docker reads a bind whose source is
/// a name, not an absolute path, as a named volume, so nothing of AnyCode's machine
/// is mounted.
///
/// Errors: [`Error::Io`] when `volume` is not a
/// Docker volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
pub fn workspace_volume_bind(volume: &str) -> Result<String> {
    let mut chars = volume.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric()) && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        return Err(Error::Io(format!("{volume:?} is not a Docker volume name")));
    }
    Ok(format!("{volume}:/workspace"))
}

impl Docker {
    /// Finds a Docker engine and negotiates the API version. `instance` scopes the
    /// containers this handle lists and owns.
    ///
    /// Tries `docker_host` (the user's `DOCKER_HOST`) when given, else, in order, `/var/run/docker.sock`,
    /// `~/.docker/run/docker.sock` (Docker Desktop), `~/.colima/default/docker.sock`,
    /// `~/.orbstack/run/docker.sock`, `$XDG_RUNTIME_DIR/docker.sock` (rootless),
    /// `$XDG_RUNTIME_DIR/podman/podman.sock`, `/run/podman/podman.sock`; on Windows the
    /// default named pipe. Each gets 5 s to answer a ping.
    ///
    /// Errors: [`Error::Unavailable`] with a sentence saying what to start.
    pub async fn connect(instance: &str, docker_host: Option<&str>) -> Result<Docker> {
        let mut tried = Vec::new();
        for (endpoint, conn) in candidates(docker_host) {
            let Ok(api) = conn else {
                tried.push(endpoint);
                continue;
            };
            let raw = hijack::Endpoint::parse(&endpoint);
            let attempt = async {
                // The API version from `/_ping`, one cheap call (see `hijack::ping`);
                // bollard's `/version` where the engine names none or the endpoint
                // is not one for raw connections.
                if let Some(ep) = &raw {
                    if let Some(version) = hijack::ping(ep).await.map_err(|e| bollard::errors::Error::IOError { err: e })? {
                        if let Some(api) = api_version(&version).and_then(|v| connect_to_version(&endpoint, &v).ok()) {
                            return Ok(api);
                        }
                    }
                }
                let api = api.negotiate_version().await?;
                api.ping().await?;
                Ok::<_, bollard::errors::Error>(api)
            };
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(api)) => {
                    return Ok(Docker { api, instance: instance.to_string(), endpoint, raw, _forwarder: None, no_pty_holder: Default::default() });
                }
                Ok(Err(e)) => tracing::debug!(%endpoint, error = %e, "docker endpoint did not answer"),
                Err(_) => tracing::debug!(%endpoint, "docker endpoint timed out"),
            }
            tried.push(endpoint);
        }
        Err(Error::Unavailable(format!(
            "Docker is not running or not reachable (tried {}). Start Docker Desktop (macOS, Windows), \
             or the Docker engine on Linux (`sudo systemctl start docker`, or `scripts/ensure-docker.sh`), \
             or set DOCKER_HOST.",
            if tried.is_empty() { "no endpoints".to_string() } else { tried.join(", ") }
        )))
    }


    /// `/v1.41`-style prefix of the negotiated API version, for raw requests.
    fn version_prefix(&self) -> String {
        let v = self.api.client_version();
        format!("/v{}.{}", v.major_version, v.minor_version)
    }


    /// The bollard handle (this crate's own: bollard stays behind [`Backend`]).
    pub(crate) fn api(&self) -> &bollard::Docker {
        &self.api
    }


    /// The logged TTY output, byte for byte, over a raw attach that replays the log
    /// and ends (`logs=1&stream=0`): bollard's log decoder holds a last line without
    /// a newline (a shell's prompt) and then fails with "bytes remaining on stream".
    /// Returns the last `max_bytes` (all when `None`: then only the count matters)
    /// and the total length; `None` when the endpoint cannot be hijacked.
    async fn raw_logs(&self, id: &str, max_bytes: Option<usize>) -> Result<Option<(Vec<u8>, u64)>> {
        let Some(ep) = &self.raw else { return Ok(None) };
        let path = format!("{}/containers/{id}/attach?logs=1&stream=0&stdout=1&stderr=1", self.version_prefix());
        let (mut output, _input) = match hijack::hijack(ep, &path, None).await {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoSuchContainer(id.to_string())),
            Err(e) => return Err(Error::Io(format!("reading the log of {id}: {e}"))),
        };
        let mut out: Vec<u8> = Vec::new();
        let mut total = 0u64;
        while let Some(chunk) = output.next().await {
            let chunk = chunk.map_err(|e| Error::Io(format!("reading the log of {id}: {e}")))?;
            total += chunk.len() as u64;
            if let Some(max) = max_bytes {
                out.extend_from_slice(&chunk);
                if out.len() > 2 * max {
                    out.drain(..out.len() - max);
                }
            }
        }
        if let Some(max) = max_bytes {
            if out.len() > max {
                out.drain(..out.len() - max);
            }
        }
        Ok(Some((out, total)))
    }


    /// Creates an exec in container `id`; a missing container is [`Error::NoSuchContainer`].
    async fn create_exec(&self, id: &str, opts: CreateExecOptions<String>) -> Result<bollard::exec::CreateExecResults> {
        self.api.create_exec(id, opts).await.map_err(|e| if is_not_found(&e) { Error::NoSuchContainer(id.to_string()) } else { e.into() })
    }
}

impl Docker {
    /// [`Backend::version`] on this engine.
    pub async fn version(&self) -> Result<String> {
        Ok(self.api.version().await?.version.unwrap_or_else(|| "unknown".into()))
    }

    /// [`Backend::create_container`] on this engine.
    pub async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        let labels = HashMap::from([
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_TASK.to_string(), spec.task_id.clone()),
            (LABEL_PROJECT.to_string(), spec.project_id.clone()),
        ]);
        let host_config = HostConfig {
            binds: Some(spec.binds.clone()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            memory: Some(spec.memory_bytes),
            memory_swap: Some(spec.memory_bytes),
            nano_cpus: Some(spec.nano_cpus),
            pids_limit: Some(spec.pids),
            init: Some(true),
            extra_hosts: Some(vec!["host.docker.internal:host-gateway".into()]),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), "4m".to_string()),
                    ("max-file".to_string(), "2".to_string()),
                ])),
            }),
            ..Default::default()
        };
        let config = Config {
            image: Some(spec.image.clone()),
            cmd: Some(spec.cmd.clone()),
            env: Some(spec.env.clone()),
            user: Some(spec.user.clone()),
            working_dir: Some("/workspace".into()),
            hostname: Some("sandbox".into()),
            tty: Some(true),
            open_stdin: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptions { name: spec.name.clone(), platform: None };
        Ok(self.api.create_container(Some(opts), config).await?.id)
    }

    /// [`Backend::start_helper`] on this engine.
    pub async fn start_helper(&self, name: &str, image: &str, task_id: &str, user: &str, binds: Vec<String>) -> Result<String> {
        let labels = HashMap::from([
            (LABEL_INSTANCE.to_string(), self.instance.clone()),
            (LABEL_TASK.to_string(), format!("helper:{task_id}")),
        ]);
        let host_config = HostConfig {
            binds: Some(binds),
            network_mode: Some("none".into()),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges:true".into()]),
            memory: Some(512 * 1024 * 1024),
            memory_swap: Some(512 * 1024 * 1024),
            nano_cpus: Some(1_000_000_000),
            pids_limit: Some(128),
            init: Some(true),
            auto_remove: Some(true),
            ..Default::default()
        };
        let config = Config {
            image: Some(image.to_string()),
            cmd: Some(vec!["sleep".into(), "600".into()]),
            user: Some(user.to_string()),
            working_dir: Some("/workspace".into()),
            network_disabled: Some(true),
            labels: Some(labels),
            host_config: Some(host_config),
            ..Default::default()
        };
        let opts = CreateContainerOptions { name: name.to_string(), platform: None };
        // A leftover of an earlier attempt is in the way of the name.
        if let Ok(Some(old)) = self.inspect(name).await {
            self.remove(&old.id).await?;
        }
        let id = self.api.create_container(Some(opts), config).await?.id;
        if let Err(e) = self.start(&id).await {
            let _ = self.remove(&id).await;
            return Err(e);
        }
        Ok(id)
    }

    /// Creates the named volume `name` (Docker's `local` driver) with this
    /// instance's label and `dev.anycode.task=<task_id>`: a task's working tree on
    /// an engine where AnyCode cannot bind-mount its own folders (a remote host).
    /// Mount it with [`workspace_volume_bind`]. An existing volume of that name is
    /// kept (creating is idempotent in Docker).
    ///
    /// Errors: engine errors.
    pub async fn create_volume(&self, name: &str, task_id: &str) -> Result<()> {
        use bollard::volume::CreateVolumeOptions;
        let labels = HashMap::from([(LABEL_INSTANCE, self.instance.as_str()), (LABEL_TASK, task_id)]);
        let opts = CreateVolumeOptions { name, driver: "local", labels, ..Default::default() };
        self.api.create_volume(opts).await?;
        Ok(())
    }

    /// Removes the named volume (its container must be gone). Missing is fine.
    ///
    /// Errors: engine errors, e.g. 409 while a container still uses it.
    pub async fn remove_volume(&self, name: &str) -> Result<()> {
        use bollard::volume::RemoveVolumeOptions;
        match self.api.remove_volume(name, Some(RemoveVolumeOptions { force: false })).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Names of this instance's volumes (label [`LABEL_INSTANCE`]), for reconciling.
    ///
    /// Errors: engine errors.
    pub async fn managed_volumes(&self) -> Result<Vec<String>> {
        use bollard::volume::ListVolumesOptions;
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_INSTANCE}={}", self.instance)])]);
        let list = self.api.list_volumes(Some(ListVolumesOptions { filters })).await?;
        Ok(list.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect())
    }

    /// Starts a container (no-op when it runs already).
    pub async fn start(&self, id: &str) -> Result<()> {
        match self.api.start_container::<String>(id, None).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::NoSuchContainer(id.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Backend::stop`] on this engine.
    pub async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let opts = StopContainerOptions { t: grace.as_secs() as i64 };
        match self.api.stop_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::NoSuchContainer(id.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Backend::cpu_count`] on this engine.
    pub async fn cpu_count(&self) -> Result<Option<u64>> {
        Ok(self.api.info().await?.ncpu.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0))
    }

    /// [`Backend::pause`] on this engine.
    pub async fn pause(&self, id: &str) -> Result<()> {
        match self.api.pause_container(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::NoSuchContainer(id.to_string())),
            Err(e) if self.inspect(id).await.ok().flatten().is_some_and(|c| c.paused) => {
                tracing::debug!(container = %id, error = %e, "already paused");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`Backend::unpause`] on this engine.
    pub async fn unpause(&self, id: &str) -> Result<()> {
        match self.api.unpause_container(id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Err(Error::NoSuchContainer(id.to_string())),
            Err(e) if self.inspect(id).await.ok().flatten().is_some_and(|c| !c.paused) => {
                tracing::debug!(container = %id, error = %e, "not paused");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`Backend::stats`] on this engine.
    pub async fn stats(&self, id: &str) -> Result<Stats> {
        use bollard::container::{MemoryStatsStats, StatsOptions};
        let opts = StatsOptions { stream: false, one_shot: true };
        let mut s = self.api.stats(id, Some(opts));
        let st = match s.next().await {
            Some(Ok(st)) => st,
            Some(Err(e)) if is_not_found(&e) => return Err(Error::NoSuchContainer(id.to_string())),
            Some(Err(e)) => return Err(e.into()),
            None => return Err(Error::NoSuchContainer(id.to_string())),
        };
        let m = &st.memory_stats;
        let usage = m.usage.unwrap_or(0);
        // What `docker stats` shows: the usage without the page cache that the
        // kernel can drop (inactive file pages).
        let cache = match m.stats {
            Some(MemoryStatsStats::V1(v1)) => v1.total_inactive_file,
            Some(MemoryStatsStats::V2(v2)) => v2.inactive_file,
            None => 0,
        };
        Ok(Stats {
            cpu_total_ns: st.cpu_stats.cpu_usage.total_usage,
            memory_bytes: if cache < usage { usage - cache } else { usage },
            memory_limit_bytes: m.limit.unwrap_or(0),
        })
    }

    /// [`Backend::remove`] on this engine.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let opts = RemoveContainerOptions { force: true, v: true, ..Default::default() };
        match self.api.remove_container(id, Some(opts)).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Backend::inspect`] on this engine.
    pub async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>> {
        match self.api.inspect_container(id, None::<InspectContainerOptions>).await {
            Ok(c) => {
                let labels = c.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
                let image = match (c.config.as_ref().and_then(|c| c.image.clone()), c.image.clone()) {
                    (Some(t), Some(id)) => Some(format!("{t}@{id}")),
                    (None, Some(id)) => Some(id),
                    _ => None,
                };
                let state = c.state.unwrap_or_default();
                Ok(Some(ContainerInfo {
                    id: c.id.unwrap_or_else(|| id.to_string()),
                    task_id: labels.get(LABEL_TASK).cloned().unwrap_or_default(),
                    running: state.running.unwrap_or(false),
                    paused: state.paused.unwrap_or(false),
                    exit_code: state.exit_code,
                    image,
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Backend::managed_containers`] on this engine.
    pub async fn managed_containers(&self) -> Result<Vec<ContainerInfo>> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_INSTANCE}={}", self.instance)])]);
        let opts = ListContainersOptions { all: true, filters, ..Default::default() };
        let list = self.api.list_containers(Some(opts)).await?;
        let mut out = Vec::new();
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let Some(id) = c.id else { continue };
            out.push(ContainerInfo {
                id,
                task_id: labels.get(LABEL_TASK).cloned().unwrap_or_default(),
                running: c.state.as_deref() == Some("running") || c.state.as_deref() == Some("paused"),
                paused: c.state.as_deref() == Some("paused"),
                exit_code: None,
                image: c.image.zip(c.image_id).map(|(t, id)| format!("{t}@{id}")),
            });
        }
        Ok(out)
    }

    /// [`Backend::attach`] on this engine.
    pub async fn attach(&self, id: &str, logs: bool) -> Result<TtyStream> {
        if let Some(ep) = &self.raw {
            let path = format!("{}/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1&logs={}", self.version_prefix(), u8::from(logs));
            return match hijack::hijack(ep, &path, None).await {
                Ok((output, input)) => Ok(TtyStream { output, input, resize: None }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoSuchContainer(id.to_string())),
                Err(e) => Err(Error::Io(format!("attaching to {id}: {e}"))),
            };
        }
        let opts = AttachContainerOptions::<String> {
            stdin: Some(true),
            stdout: Some(true),
            stderr: Some(true),
            stream: Some(true),
            logs: Some(logs),
            detach_keys: None,
        };
        let res = self.api.attach_container(id, Some(opts)).await.map_err(|e| {
            if is_not_found(&e) {
                Error::NoSuchContainer(id.to_string())
            } else {
                e.into()
            }
        })?;
        Ok(TtyStream { output: output_stream(res.output), input: res.input, resize: None })
    }

    /// [`Backend::write_stdin`] on this engine.
    pub async fn write_stdin(&self, id: &str, bytes: &[u8]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        let opts = AttachContainerOptions::<String> {
            stdin: Some(true),
            stdout: Some(false),
            stderr: Some(false),
            stream: Some(true),
            logs: Some(false),
            detach_keys: None,
        };
        let mut res = self.api.attach_container(id, Some(opts)).await.map_err(|e| {
            if is_not_found(&e) {
                Error::NoSuchContainer(id.to_string())
            } else {
                e.into()
            }
        })?;
        let io = |e: std::io::Error| Error::Io(format!("writing to the container's input: {e}"));
        res.input.write_all(bytes).await.map_err(io)?;
        res.input.flush().await.map_err(io)?;
        // Closing this attach does not close the process's input (no StdinOnce).
        let _ = res.input.shutdown().await;
        Ok(())
    }

    /// [`Backend::logs`] on this engine.
    pub async fn logs(&self, id: &str, max_bytes: usize) -> Result<Vec<u8>> {
        if let Some(out) = self.raw_logs(id, Some(max_bytes)).await? {
            return Ok(out.0);
        }
        let opts = LogsOptions::<String> { stdout: true, stderr: true, follow: false, ..Default::default() };
        let mut s = self.api.logs(id, Some(opts));
        let mut out: Vec<u8> = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(chunk) => out.extend_from_slice(&chunk.into_bytes()),
                Err(e) if is_not_found(&e) => return Err(Error::NoSuchContainer(id.to_string())),
                Err(e) => return Err(e.into()),
            }
            if out.len() > 2 * max_bytes {
                out.drain(..out.len() - max_bytes);
            }
        }
        if out.len() > max_bytes {
            out.drain(..out.len() - max_bytes);
        }
        Ok(out)
    }

    /// [`Backend::logs_len`] on this engine.
    pub async fn logs_len(&self, id: &str) -> Result<u64> {
        if let Some(out) = self.raw_logs(id, None).await? {
            return Ok(out.1);
        }
        let opts = LogsOptions::<String> { stdout: true, stderr: true, follow: false, ..Default::default() };
        let mut s = self.api.logs(id, Some(opts));
        let mut n = 0u64;
        while let Some(item) = s.next().await {
            match item {
                Ok(chunk) => n += chunk.into_bytes().len() as u64,
                Err(e) if is_not_found(&e) => return Err(Error::NoSuchContainer(id.to_string())),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(n)
    }

    /// [`Backend::resize`] on this engine.
    pub async fn resize(&self, id: &str, cols: u16, rows: u16) -> Result<()> {
        let opts = ResizeContainerTtyOptions { width: cols, height: rows };
        Ok(self.api.resize_container_tty(id, opts).await?)
    }

    /// [`Backend::wait`] on this engine.
    pub async fn wait(&self, id: &str, next_exit: bool) -> Result<Option<i64>> {
        use bollard::container::WaitContainerOptions;
        let opts = WaitContainerOptions { condition: if next_exit { "next-exit" } else { "not-running" } };
        let mut s = self.api.wait_container(id, Some(opts));
        match s.next().await {
            Some(Ok(r)) => Ok(Some(r.status_code)),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(Some(code)),
            Some(Err(e)) if is_not_found(&e) => Err(Error::NoSuchContainer(id.to_string())),
            Some(Err(e)) => Err(e.into()),
            None => Ok(None),
        }
    }

    /// [`Backend::exec`] on this engine.
    ///
    /// With `hold_pty`, where AnyCode opens raw connections to the engine and the
    /// container's image has `anycode-pty`, the PTY is held in the sandbox by it and
    /// the exec has no TTY (see `ptyexec.rs`: Docker then relays output in large
    /// pieces); resizes go through [`TtyStream::resize`]. Otherwise (not asked, an
    /// older image, named pipes) it is a TTY exec, resized with [`Docker::resize_exec`].
    #[allow(clippy::too_many_arguments)]
    pub async fn exec(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, cols: u16, rows: u16, hold_pty: bool) -> Result<(String, TtyStream)> {
        if let Some(ep) = self.raw.as_ref().filter(|_| hold_pty) {
            let known_missing = self.no_pty_holder.lock().map(|s| s.contains(id)).unwrap_or(false);
            if !known_missing {
                match self.exec_held(ep, id, &cmd, user, &env, cols, rows).await? {
                    Some(r) => return Ok(r),
                    None => {
                        if let Ok(mut s) = self.no_pty_holder.lock() {
                            s.insert(id.to_string());
                        }
                    }
                }
            }
        }
        self.exec_tty(id, cmd, user, env, cols, rows).await
    }

    /// [`Docker::exec`] through `anycode-pty`; `None` when the container has no holder.
    #[allow(clippy::too_many_arguments)]
    async fn exec_held(
        &self,
        ep: &hijack::Endpoint,
        id: &str,
        cmd: &[String],
        user: &str,
        env: &[String],
        cols: u16,
        rows: u16,
    ) -> Result<Option<(String, TtyStream)>> {
        let mut argv = vec![ptyexec::HOLDER.to_string(), cols.max(1).to_string(), rows.max(1).to_string(), "--".to_string()];
        argv.extend(cmd.iter().cloned());
        let exec = self.create_exec(id, terminal_exec(argv, env.to_vec(), user, false)).await?;
        let path = format!("{}/exec/{}/start", self.version_prefix(), exec.id);
        let (raw_output, raw_input) = hijack::hijack(ep, &path, Some(r#"{"Detach":false,"Tty":false}"#))
            .await
            .map_err(|e| Error::Io(format!("starting exec in {id}: {e}")))?;
        // The holder answers at once; a container busy enough to take longer than this
        // is reported rather than given a second process.
        let first = tokio::time::timeout(Duration::from_secs(30), ptyexec::start(raw_output))
            .await
            .map_err(|_| Error::Io(format!("the terminal's PTY in {id} did not start within 30 s")))?
            .map_err(|e| Error::Io(format!("starting exec in {id}: {e}")))?;
        match first {
            ptyexec::Start::Held(output) => {
                let (input, resize) = ptyexec::pump_input(raw_input);
                Ok(Some((exec.id, TtyStream { output, input, resize: Some(resize) })))
            }
            ptyexec::Start::Missing(why) => {
                tracing::info!(container = %id, output = %why, "no anycode-pty in this container (an older image): TTY execs");
                Ok(None)
            }
        }
    }

    /// [`Docker::exec`] with a TTY Docker holds.
    async fn exec_tty(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, cols: u16, rows: u16) -> Result<(String, TtyStream)> {
        let exec = self.create_exec(id, terminal_exec(cmd, env, user, true)).await?;
        if let Some(ep) = &self.raw {
            let path = format!("{}/exec/{}/start", self.version_prefix(), exec.id);
            let (output, input) = hijack::hijack(ep, &path, Some(r#"{"Detach":false,"Tty":true}"#))
                .await
                .map_err(|e| Error::Io(format!("starting exec in {id}: {e}")))?;
            let _ = self.resize_exec(&exec.id, cols, rows).await;
            return Ok((exec.id, TtyStream { output, input, resize: None }));
        }
        let start = StartExecOptions { detach: false, tty: true, output_capacity: None };
        match self.api.start_exec(&exec.id, Some(start)).await? {
            StartExecResults::Attached { output, input } => {
                let _ = self.resize_exec(&exec.id, cols, rows).await;
                Ok((exec.id, TtyStream { output: output_stream(output), input, resize: None }))
            }
            StartExecResults::Detached => Err(Error::Io("docker started the exec detached".into())),
        }
    }

    /// [`Backend::exec_detached`] on this engine.
    pub async fn exec_detached(&self, id: &str, cmd: Vec<String>, user: &str) -> Result<()> {
        let opts = CreateExecOptions::<String> { cmd: Some(cmd), user: Some(user.to_string()), ..Default::default() };
        let exec = self.create_exec(id, opts).await?;
        self.api.start_exec(&exec.id, Some(StartExecOptions { detach: true, tty: false, output_capacity: None })).await?;
        Ok(())
    }

    /// [`Backend::exec_pipe`] on this engine.
    pub async fn exec_pipe(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, workdir: &str) -> Result<ExecPipe> {
        let opts = CreateExecOptions {
            cmd: Some(cmd),
            env: Some(env),
            user: Some(user.to_string()),
            working_dir: Some(workdir.to_string()),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..Default::default()
        };
        let exec = self.create_exec(id, opts).await?;
        let start = StartExecOptions { detach: false, tty: false, output_capacity: None };
        match self.api.start_exec(&exec.id, Some(start)).await? {
            StartExecResults::Attached { output, input } => {
                use bollard::container::LogOutput;
                let output = output
                    .filter_map(|item| async move {
                        match item {
                            Ok(LogOutput::StdOut { message }) => Some(Ok(PipeChunk::Stdout(message))),
                            Ok(LogOutput::StdErr { message }) => Some(Ok(PipeChunk::Stderr(message))),
                            Ok(LogOutput::Console { message }) => Some(Ok(PipeChunk::Stdout(message))),
                            Ok(LogOutput::StdIn { .. }) => None,
                            Err(e) => Some(Err(std::io::Error::other(e))),
                        }
                    })
                    .boxed();
                Ok(ExecPipe { exec_id: exec.id, output, input })
            }
            StartExecResults::Detached => Err(Error::Io("docker started the exec detached".into())),
        }
    }

    /// Runs `cmd` to its end (see [`Docker::exec_pipe`]) with `stdin` as its input,
    /// and returns its exit code and output. Each of stdout and stderr keeps at most
    /// `max_bytes` (the first bytes; [`ExecOutput::truncated`] says when more came).
    ///
    /// Errors: as [`Docker::exec_pipe`]; [`Error::Io`] when the stream breaks.
    pub async fn exec_output(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, stdin: &[u8], max_bytes: usize) -> Result<ExecOutput> {
        self.exec_output_from(id, cmd, user, env, stdin, max_bytes).await
    }

    /// [`Docker::exec_output`] with the input streamed from `stdin` (e.g. a file:
    /// a git bundle), copied as the process reads it.
    ///
    /// Errors: as [`Docker::exec_output`].
    pub async fn exec_output_from(
        &self,
        id: &str,
        cmd: Vec<String>,
        user: &str,
        env: Vec<String>,
        mut stdin: impl tokio::io::AsyncRead + Send + Unpin,
        max_bytes: usize,
    ) -> Result<ExecOutput> {
        use tokio::io::AsyncWriteExt;
        let mut pipe = self.exec_pipe(id, cmd, user, env, "/workspace").await?;
        let io = |e: std::io::Error| Error::Io(format!("exec in {id}: {e}"));
        // Input is written beside the output reading, so a process that writes
        // before it has read all its input cannot deadlock us.
        let mut input = pipe.input;
        let writer = async move {
            tokio::io::copy(&mut stdin, &mut input).await?;
            input.flush().await?;
            input.shutdown().await
        };
        let reader = async {
            let mut out = ExecOutput::default();
            while let Some(chunk) = pipe.output.next().await {
                let (buf, bytes) = match chunk.map_err(io)? {
                    PipeChunk::Stdout(b) => (&mut out.stdout, b),
                    PipeChunk::Stderr(b) => (&mut out.stderr, b),
                };
                let room = max_bytes.saturating_sub(buf.len());
                if bytes.len() > room {
                    out.truncated = true;
                }
                buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Ok::<_, Error>(out)
        };
        let (written, read) = tokio::join!(writer, reader);
        let mut out = read?;
        if let Err(e) = written {
            tracing::debug!(container = %id, error = %e, "exec input closed early");
        }
        // Docker reports the exit code shortly after the stream ends.
        for _ in 0..50 {
            if let Some(code) = self.exec_exit_code(&pipe.exec_id).await? {
                out.exit_code = code;
                return Ok(out);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        out.exit_code = -1;
        Ok(out)
    }

    /// [`Backend::resize_exec`] on this engine.
    pub async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        Ok(self.api.resize_exec(exec_id, ResizeExecOptions { width: cols, height: rows }).await?)
    }

    /// [`Backend::exec_exit_code`] on this engine.
    pub async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        let r = self.api.inspect_exec(exec_id).await?;
        Ok(if r.running == Some(true) { None } else { r.exit_code })
    }
}

fn output_stream(
    s: Pin<Box<dyn futures_util::Stream<Item = std::result::Result<bollard::container::LogOutput, bollard::errors::Error>> + Send>>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    s.map(|item| item.map(|o| o.into_bytes()).map_err(std::io::Error::other)).boxed()
}

type Candidate = (String, std::result::Result<bollard::Docker, bollard::errors::Error>);

fn connect_to(host: &str) -> std::result::Result<bollard::Docker, bollard::errors::Error> {
    connect_to_version(host, bollard::API_DEFAULT_VERSION)
}

/// A client of `host` speaking API `version`.
fn connect_to_version(host: &str, version: &bollard::ClientVersion) -> std::result::Result<bollard::Docker, bollard::errors::Error> {
    if let Some(path) = host.strip_prefix("unix://") {
        #[cfg(unix)]
        return bollard::Docker::connect_with_socket(path, 120, version);
        #[cfg(not(unix))]
        return Err(bollard::errors::Error::UnsupportedURISchemeError { uri: path.to_string() });
    }
    if host.starts_with("tcp://") || host.starts_with("http://") {
        return bollard::Docker::connect_with_http(host, 120, version);
    }
    #[cfg(windows)]
    if host.starts_with("npipe://") {
        return bollard::Docker::connect_with_named_pipe(host, 120, version);
    }
    Err(bollard::errors::Error::UnsupportedURISchemeError { uri: host.to_string() })
}

/// The API version to speak with an engine whose newest is `server` (`"1.41"`): the
/// older of it and bollard's own. `None` when `server` is not `MAJOR.MINOR`.
fn api_version(server: &str) -> Option<bollard::ClientVersion> {
    let (major, minor) = server.trim().split_once('.')?;
    let theirs = bollard::ClientVersion { major_version: major.parse().ok()?, minor_version: minor.parse().ok()? };
    let ours = *bollard::API_DEFAULT_VERSION;
    Some(if theirs < ours { theirs } else { ours })
}

fn candidates(docker_host: Option<&str>) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    if let Some(host) = docker_host.filter(|h| !h.is_empty()) {
        out.push((host.to_string(), connect_to(host)));
        return out;
    }
    #[cfg(windows)]
    {
        out.push(("npipe:////./pipe/docker_engine".into(), bollard::Docker::connect_with_named_pipe_defaults()));
    }
    #[cfg(unix)]
    {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        let mut paths = vec![PathBuf::from("/var/run/docker.sock")];
        if let Some(h) = &home {
            paths.push(h.join(".docker/run/docker.sock"));
            paths.push(h.join(".colima/default/docker.sock"));
            paths.push(h.join(".orbstack/run/docker.sock"));
        }
        if let Some(r) = &runtime {
            paths.push(r.join("docker.sock"));
            paths.push(r.join("podman/podman.sock"));
        }
        paths.push(PathBuf::from("/run/podman/podman.sock"));
        for p in paths {
            if p.exists() {
                let s = p.to_string_lossy().into_owned();
                let endpoint = format!("unix://{s}");
                let conn = connect_to(&endpoint);
                out.push((endpoint, conn));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_api_version_is_the_older_of_the_engines_and_ours() {
        let v = api_version("1.41").unwrap();
        assert_eq!((v.major_version, v.minor_version), (1, 41));
        let ours = bollard::API_DEFAULT_VERSION;
        let v = api_version("1.999").unwrap();
        assert_eq!((v.major_version, v.minor_version), (ours.major_version, ours.minor_version));
        for bad in ["", "1", "x.y", "1.41.2"] {
            assert!(api_version(bad).is_none(), "{bad}");
        }
    }

    /// The real engine's `/_ping` names its API version, and a client made with it
    /// speaks to the engine (`docker version` as the reference).
    #[tokio::test]
    async fn ping_negotiates_the_version_docker_names() {
        let ep = hijack::Endpoint::parse("unix:///var/run/docker.sock").expect("unix endpoints parse");
        let named = hijack::ping(&ep).await.unwrap().expect("Docker names its API version in /_ping");
        let cli = std::process::Command::new("docker").args(["version", "--format", "{{.Server.APIVersion}}"]).output().unwrap();
        assert_eq!(named, String::from_utf8_lossy(&cli.stdout).trim());
        let d = Docker::connect("test", Some("unix:///var/run/docker.sock")).await.unwrap();
        let want = api_version(&named).unwrap();
        assert_eq!(d.api().client_version(), want);
        assert!(!d.version().await.unwrap().is_empty());
    }
}
