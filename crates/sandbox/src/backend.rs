//! The seam between the engine and where sandboxes run: [`Backend`].
//!
//! The engine (task lifecycle, terminals, git sync, network policy, the governor)
//! talks to sandboxes only through this trait, as `Arc<dyn Backend>`
//! ([`SandboxHost`]). [`Docker`] implements it for any Docker-compatible engine,
//! local or remote (Docker Engine, Docker Desktop, colima, OrbStack, Podman).
//!
//! A second kind of backend (Kubernetes: a Pod per task, exec and attach through the
//! API server, NetworkPolicy for the network modes; see ARCHITECTURE.md) plugs in by
//! implementing this trait: the engine, the server and the UI do not change. The
//! types it speaks ([`ContainerSpec`], [`TtyStream`], [`ExecPipe`], [`ExecOutput`],
//! [`ContainerInfo`], [`Stats`]) carry no Docker type.

use crate::image::BuildEvent;
use crate::transfer::CopyProgress;
use crate::{ContainerInfo, ContainerSpec, Docker, ExecOutput, ExecPipe, Result, Stats, TtyStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A sandbox backend shared by the engine's tasks: `Arc<dyn Backend>`.
pub type SandboxHost = Arc<dyn Backend>;

/// Everything the engine asks of the place its sandboxes run. Container ids are the
/// backend's own; every call is scoped to the AnyCode instance the backend was made
/// for (its containers carry [`crate::LABEL_INSTANCE`]), and containers of other
/// instances are never touched.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Where the backend is, for logs and health: e.g. `unix:///var/run/docker.sock`,
    /// `tcp://10.0.0.5:2376`. Never carries a secret.
    fn endpoint(&self) -> &str;

    /// Whether the backend answers within `timeout`. Errors: [`crate::Error::Unavailable`].
    async fn ping(&self, timeout: Duration) -> Result<()>;


    /// The engine's version string, e.g. `20.10.24+dfsg1`.
    async fn version(&self) -> Result<String>;

    /// Creates (does not start) a task container with AnyCode's labels and hardening:
    /// a TTY main process, `no-new-privileges`, every capability dropped, the given
    /// memory/CPU/pids limits, an init process, bounded logs (2 × 4 MB, which is also
    /// the agent terminal's history across server restarts), `host.docker.internal`
    /// resolving to the host, and no Docker socket. Returns the container id.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;

    /// Creates and starts a short-lived helper container for git work on a stopped
    /// task's folder: the given image and `binds`, as `user`, with **no network**
    /// (`network_mode: none`), every capability dropped, `no-new-privileges`, 512 MiB,
    /// one CPU, 128 processes, and `sleep` as its main process (work is done by
    /// execs). It carries this instance's label and `dev.anycode.task=helper:<task>`,
    /// so reconcile removes a leftover. Returns its id; the caller removes it.
    ///
    /// Errors: engine errors (e.g. a missing image).
    async fn start_helper(&self, name: &str, image: &str, task_id: &str, user: &str, binds: Vec<String>) -> Result<String>;

    /// Starts a container (no-op when it runs already).
    async fn start(&self, id: &str) -> Result<()>;

    /// Stops a container, giving its processes `grace` to exit after SIGTERM.
    async fn stop(&self, id: &str, grace: Duration) -> Result<()>;

    /// How many CPUs the engine's host (or VM) has: the most a container may be
    /// given. `None` when the engine does not say.
    async fn cpu_count(&self) -> Result<Option<u64>>;

    /// Freezes every process of a running container (`docker pause`, the cgroup
    /// freezer): it keeps its memory and its TTY, and uses no CPU. Already paused is
    /// fine.
    ///
    /// Errors: [`Error::NoSuchContainer`]; Docker's error when it is not running.
    async fn pause(&self, id: &str) -> Result<()>;

    /// Thaws a paused container (`docker unpause`). Not paused is fine.
    ///
    /// Errors: [`Error::NoSuchContainer`].
    async fn unpause(&self, id: &str) -> Result<()>;

    /// One reading of a container's resource use (Docker stats, `one-shot`: no
    /// waiting for a second sample, so a reading costs the engine one cgroup read).
    /// CPU use is a counter: the caller turns two readings into a rate.
    ///
    /// Errors: [`Error::NoSuchContainer`]; Docker's error otherwise.
    async fn stats(&self, id: &str) -> Result<Stats>;

    /// Removes a container and its anonymous volumes, stopping it first. Missing is fine.
    async fn remove(&self, id: &str) -> Result<()>;

    /// The container's state, or `None` when it does not exist.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>>;

    /// Every container of this instance, running or not.
    async fn managed_containers(&self) -> Result<Vec<ContainerInfo>>;

    /// Attaches to the main process's TTY. With `logs`, the stream starts with the
    /// container's logged output (its history, bounded by the log limits), then goes
    /// on live. Attaching before `start` catches every byte of the new run.
    async fn attach(&self, id: &str, logs: bool) -> Result<TtyStream>;

    /// Writes `bytes` to the main process's TTY input over an attach of its own
    /// (stdin only), bypassing the terminal hub: what is written here goes through
    /// no viewer, scrollback, recording or log of AnyCode. Used to hand credentials
    /// to the agent after it turned echo off.
    async fn write_stdin(&self, id: &str, bytes: &[u8]) -> Result<()>;

    /// The container's logged output so far (its TTY history), for terminals of
    /// stopped containers. At most the last `max_bytes`.
    async fn logs(&self, id: &str, max_bytes: usize) -> Result<Vec<u8>>;

    /// How many bytes of output the container's log holds (what an attach with
    /// `logs` replays before the live stream).
    async fn logs_len(&self, id: &str) -> Result<u64>;

    /// Sets the main process's TTY size in character cells.
    async fn resize(&self, id: &str, cols: u16, rows: u16) -> Result<()>;

    /// Waits until the container's main process is not running and returns its exit
    /// code (`None` when Docker does not say). With `next_exit`, waits for the end of
    /// the next run instead: for a container that is created or about to be started,
    /// whose "not running" state would otherwise answer at once.
    async fn wait(&self, id: &str, next_exit: bool) -> Result<Option<i64>>;

    /// Starts `cmd` in the running container with a TTY of `cols`×`rows`, as `user`,
    /// in /workspace. With `hold_pty`, the PTY is held in the sandbox by
    /// `anycode-pty` where the image has it ([`TtyStream::resize`] then resizes it).
    /// Returns the exec id and its stream.
    #[allow(clippy::too_many_arguments)]
    async fn exec(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, cols: u16, rows: u16, hold_pty: bool) -> Result<(String, TtyStream)>;

    /// Starts `cmd` in the running container as `user`, without a TTY and without
    /// waiting for it (Docker's detached exec): housekeeping such as hanging up a
    /// closed terminal's processes. Errors: [`Error::NoSuchContainer`], engine errors.
    async fn exec_detached(&self, id: &str, cmd: Vec<String>, user: &str) -> Result<()>;

    /// Starts `cmd` in the running container as `user` in `workdir`, without a TTY,
    /// with its stdin, stdout and stderr as pipes (Docker multiplexes stdout and
    /// stderr; bollard's decoder splits them, which is exact for non-TTY streams).
    /// Used for byte protocols over the exec stream: git's pack protocol and the
    /// sandbox relay. Closing (shutting down) `input` closes the process's stdin.
    ///
    /// Errors: [`Error::NoSuchContainer`]; engine errors (e.g. the container is not
    /// running).
    async fn exec_pipe(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, workdir: &str) -> Result<ExecPipe>;

    /// Runs `cmd` to its end (see [`Backend::exec_pipe`]) with `stdin` as its input,
    /// and returns its exit code and output. Each of stdout and stderr keeps at most
    /// `max_bytes` (the first bytes; [`ExecOutput::truncated`] says when more came).
    ///
    /// Errors: as [`Backend::exec_pipe`]; [`Error::Io`] when the stream breaks.
    async fn exec_output(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, stdin: &[u8], max_bytes: usize) -> Result<ExecOutput>;

    /// Sets an exec session's TTY size.
    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()>;

    /// An exec session's exit code, `None` while it runs.
    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>>;

    /// Runs `cmd` to its end like [`Backend::exec_output`], its input streamed from
    /// `stdin` (e.g. a file: a git bundle) as the process reads it.
    ///
    /// Errors: as [`Backend::exec_output`].
    async fn exec_output_from(
        &self,
        id: &str,
        cmd: Vec<String>,
        user: &str,
        env: Vec<String>,
        stdin: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        max_bytes: usize,
    ) -> Result<ExecOutput>;

    /// Creates the named volume `name` with this instance's label and the task's: a
    /// task's working tree where AnyCode cannot mount its own folders (a remote
    /// host). Idempotent. Errors: engine errors.
    async fn create_volume(&self, name: &str, task_id: &str) -> Result<()>;

    /// Removes the named volume (its container must be gone); missing is fine.
    /// Errors: engine errors, e.g. 409 while a container still uses it.
    async fn remove_volume(&self, name: &str) -> Result<()>;

    /// The engine's CPUs and memory in bytes (`docker info`'s `NCPU`, `MemTotal`).
    /// Errors: engine errors.
    async fn capacity(&self) -> Result<(u64, u64)>;

    // ----- images -----

    /// Whether an image with this tag exists locally.
    async fn image_exists(&self, tag: &str) -> Result<bool>;

    /// Makes sure the sandbox image exists and is current; returns its tag.
    ///
    /// With `configured` (the user's `ANYCODE_IMAGE`), that image is used as it is
    /// ([`Error::NoImage`] when missing). Otherwise the image is built from the
    /// embedded `sandbox-image/` plus the `*.crt` files of `extra_ca_dir` when its
    /// tag is missing, reporting each output line to `progress`, and also tagged
    /// `anycode-sandbox:latest`.
    ///
    /// Errors: [`Error::Build`] with Docker's message and the last output lines.
    async fn ensure_image(
        &self,
        configured: Option<&str>,
        extra_ca_dir: Option<&Path>,
        progress: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<String>;

    /// Makes sure the image variant `tag` exists, building it from `dockerfile` (a
    /// Dockerfile `FROM` the sandbox image, no other context) when missing; reports
    /// progress like [`Backend::ensure_image`].
    ///
    /// Errors: [`Error::Build`] with Docker's message and the last output lines.
    async fn ensure_variant(&self, tag: &str, dockerfile: &str, progress: &mut (dyn FnMut(BuildEvent) + Send)) -> Result<()>;

    /// Builds `tag` from `context` (a tar archive: the build context) with the
    /// Dockerfile at `dockerfile` (a path inside the context) and `args` as build
    /// arguments, reporting progress like [`Backend::ensure_image`] (`Done` last).
    /// Used for a project's dev container image.
    ///
    /// Errors: [`Error::Build`] with Docker's message and the last output lines.
    async fn build_image(
        &self,
        tag: &str,
        context: Vec<u8>,
        dockerfile: &str,
        args: &[(String, String)],
        progress: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<()>;

    // ----- networks -----

    /// The names of the networks container `id` is connected to.
    ///
    /// Errors: [`Error::NoSuchContainer`]; engine errors.
    async fn container_networks(&self, id: &str) -> Result<Vec<String>>;

    /// Connects container `id` to `network` (already connected is fine).
    ///
    /// Errors: [`Error::NoSuchContainer`] (or a missing network); engine errors.
    async fn network_connect(&self, id: &str, network: &str) -> Result<()>;

    /// Disconnects container `id` from `network` (not connected is fine).
    ///
    /// Errors: [`Error::NoSuchContainer`]; engine errors.
    async fn network_disconnect(&self, id: &str, network: &str) -> Result<()>;

    /// Disconnects container `id` from every network: only loopback is left.
    ///
    /// Errors: as [`Backend::network_disconnect`].
    async fn network_isolate(&self, id: &str) -> Result<()>;

    // ----- between backends -----

    /// Copies `image` (a tag) from this backend to `to`, a backend of the same kind
    /// (Docker streams `GET /images/{name}/get` into `POST /images/load`, see
    /// [`crate::transfer::copy_image`]), calling `progress` as bytes go through.
    ///
    /// Errors: [`crate::Error::Copy`] when `to` is another kind of backend; as
    /// [`crate::transfer::copy_image`].
    async fn copy_image_to(&self, to: &dyn Backend, image: &str, progress: &mut (dyn FnMut(CopyProgress) + Send)) -> Result<()>;

    /// This backend as [`std::any::Any`], so two backends of the same kind can work
    /// together (an image copy).
    fn as_any(&self) -> &dyn std::any::Any;
}

#[async_trait::async_trait]
impl Backend for Docker {
    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    async fn ping(&self, timeout: Duration) -> Result<()> {
        match tokio::time::timeout(timeout, self.api().ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(crate::Error::Unavailable(format!("Docker at {} did not answer: {e}", self.endpoint))),
            Err(_) => Err(crate::Error::Unavailable(format!("Docker at {} did not answer within {} s", self.endpoint, timeout.as_secs()))),
        }
    }

    async fn version(&self) -> Result<String> {
        Docker::version(self).await
    }

    async fn create_container(&self, spec: &ContainerSpec) -> Result<String> {
        Docker::create_container(self, spec).await
    }

    async fn start_helper(&self, name: &str, image: &str, task_id: &str, user: &str, binds: Vec<String>) -> Result<String> {
        Docker::start_helper(self, name, image, task_id, user, binds).await
    }

    async fn start(&self, id: &str) -> Result<()> {
        Docker::start(self, id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        Docker::stop(self, id, grace).await
    }

    async fn cpu_count(&self) -> Result<Option<u64>> {
        Docker::cpu_count(self).await
    }

    async fn pause(&self, id: &str) -> Result<()> {
        Docker::pause(self, id).await
    }

    async fn unpause(&self, id: &str) -> Result<()> {
        Docker::unpause(self, id).await
    }

    async fn stats(&self, id: &str) -> Result<Stats> {
        Docker::stats(self, id).await
    }

    async fn remove(&self, id: &str) -> Result<()> {
        Docker::remove(self, id).await
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerInfo>> {
        Docker::inspect(self, id).await
    }

    async fn managed_containers(&self) -> Result<Vec<ContainerInfo>> {
        Docker::managed_containers(self).await
    }

    async fn attach(&self, id: &str, logs: bool) -> Result<TtyStream> {
        Docker::attach(self, id, logs).await
    }

    async fn write_stdin(&self, id: &str, bytes: &[u8]) -> Result<()> {
        Docker::write_stdin(self, id, bytes).await
    }

    async fn logs(&self, id: &str, max_bytes: usize) -> Result<Vec<u8>> {
        Docker::logs(self, id, max_bytes).await
    }

    async fn logs_len(&self, id: &str) -> Result<u64> {
        Docker::logs_len(self, id).await
    }

    async fn resize(&self, id: &str, cols: u16, rows: u16) -> Result<()> {
        Docker::resize(self, id, cols, rows).await
    }

    async fn wait(&self, id: &str, next_exit: bool) -> Result<Option<i64>> {
        Docker::wait(self, id, next_exit).await
    }

    async fn exec(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, cols: u16, rows: u16, hold_pty: bool) -> Result<(String, TtyStream)> {
        Docker::exec(self, id, cmd, user, env, cols, rows, hold_pty).await
    }

    async fn exec_detached(&self, id: &str, cmd: Vec<String>, user: &str) -> Result<()> {
        Docker::exec_detached(self, id, cmd, user).await
    }

    async fn exec_pipe(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, workdir: &str) -> Result<ExecPipe> {
        Docker::exec_pipe(self, id, cmd, user, env, workdir).await
    }

    async fn exec_output(&self, id: &str, cmd: Vec<String>, user: &str, env: Vec<String>, stdin: &[u8], max_bytes: usize) -> Result<ExecOutput> {
        Docker::exec_output(self, id, cmd, user, env, stdin, max_bytes).await
    }

    async fn resize_exec(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()> {
        Docker::resize_exec(self, exec_id, cols, rows).await
    }

    async fn exec_exit_code(&self, exec_id: &str) -> Result<Option<i64>> {
        Docker::exec_exit_code(self, exec_id).await
    }

    async fn image_exists(&self, tag: &str) -> Result<bool> {
        Docker::image_exists(self, tag).await
    }

    async fn ensure_image(
        &self,
        configured: Option<&str>,
        extra_ca_dir: Option<&Path>,
        progress: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<String> {
        Docker::ensure_image(self, configured, extra_ca_dir, progress).await
    }

    async fn ensure_variant(&self, tag: &str, dockerfile: &str, progress: &mut (dyn FnMut(BuildEvent) + Send)) -> Result<()> {
        Docker::ensure_variant(self, tag, dockerfile, progress).await
    }

    async fn build_image(
        &self,
        tag: &str,
        context: Vec<u8>,
        dockerfile: &str,
        args: &[(String, String)],
        progress: &mut (dyn FnMut(BuildEvent) + Send),
    ) -> Result<()> {
        self.build_tar(tag, context, dockerfile, args, progress).await?;
        progress(BuildEvent::Done(tag.to_string()));
        Ok(())
    }

    async fn container_networks(&self, id: &str) -> Result<Vec<String>> {
        Docker::container_networks(self, id).await
    }

    async fn network_connect(&self, id: &str, network: &str) -> Result<()> {
        Docker::network_connect(self, id, network).await
    }

    async fn network_disconnect(&self, id: &str, network: &str) -> Result<()> {
        Docker::network_disconnect(self, id, network).await
    }

    async fn network_isolate(&self, id: &str) -> Result<()> {
        Docker::network_isolate(self, id).await
    }

    async fn exec_output_from(
        &self,
        id: &str,
        cmd: Vec<String>,
        user: &str,
        env: Vec<String>,
        stdin: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
        max_bytes: usize,
    ) -> Result<ExecOutput> {
        Docker::exec_output_from(self, id, cmd, user, env, stdin, max_bytes).await
    }

    async fn create_volume(&self, name: &str, task_id: &str) -> Result<()> {
        Docker::create_volume(self, name, task_id).await
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        Docker::remove_volume(self, name).await
    }

    async fn capacity(&self) -> Result<(u64, u64)> {
        let info = self.api().info().await?;
        Ok((info.ncpu.unwrap_or(0).max(0) as u64, info.mem_total.unwrap_or(0).max(0) as u64))
    }

    async fn copy_image_to(&self, to: &dyn Backend, image: &str, progress: &mut (dyn FnMut(CopyProgress) + Send)) -> Result<()> {
        let Some(target) = to.as_any().downcast_ref::<Docker>() else {
            return Err(crate::Error::Copy(format!("{} is not a Docker engine", to.endpoint())));
        };
        crate::transfer::copy_image(self, target, image, progress).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
