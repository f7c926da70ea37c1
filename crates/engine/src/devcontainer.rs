//! The project's dev container (`.devcontainer/devcontainer.json`, the
//! containers.dev spec, JSON with comments) and the task's setup.
//!
//! - **Where it is read**: from the task's base commit in the user's repository
//!   (libgit2 blob reads, [`anycode_git::tree`]), never from a working tree a
//!   sandbox can write. The Docker build context of `build.dockerfile` is an
//!   archive of that commit's folder, never the sandbox's files.
//! - **The image** ([`Engine::task_image`], the one place a task's image is
//!   chosen): without `image` and `build`, the agent's image as before. With one of
//!   them, the project's image (pulled by Docker or built from the commit with its
//!   `args`), then a layer `FROM` it that copies in AnyCode's bits from the agent's
//!   image: `/opt/anycode` (start-agent, anycode-relay), Node.js with its own
//!   libraries and loader (`/opt/anycode/node`, linked as `node` only when the
//!   project has none; Debian's externalised builtins go to `/usr/share/nodejs`
//!   when missing there), Claude Code (linked as `claude` when missing), `/home/agent`;
//!   `bash` and `git` are installed with `apt-get` when missing. The project's image
//!   must be a glibc distribution (Debian, Ubuntu, Fedora…) with `sh`.
//! - **The container**: `containerEnv` joins the container's environment
//!   (AnyCode's own variables win); the main process is wrapped so that it starts
//!   in `workspaceFolder` (when under `/workspace`) with `remoteEnv`, and, when the
//!   project has setup commands, only after they ran.
//! - **Setup** ([`Engine::start_setup`]): after each start, once AnyCode's relay
//!   listens (so the commands' HTTP goes through the egress proxy and the task's
//!   network policy), `postCreateCommand` (first start only) then
//!   `postStartCommand` run as the sandbox user through `docker exec`, in one
//!   exec whose TTY is the task's `setup` terminal. Then the held agent starts, and
//!   only then is its credential handed over, so the prompt waits for the setup. A
//!   failed command leaves the task usable: the agent starts all the same and the
//!   task's `setup` says `failed` with the exit code.
//! - Every field AnyCode does not honour is named in the setup log.

use crate::{blocking, container_name, BuildEvent, Engine, Error, Project, Result, Task, TerminalInfo, TerminalKind};
use anycode_core::{SetupStatus, TaskSetup};
use anycode_sandbox::{ContainerSpec, SandboxHost};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// Where the file is, relative to the repository's root.
pub const DEVCONTAINER_FILE: &str = ".devcontainer/devcontainer.json";
/// The largest devcontainer.json read (256 KiB).
const MAX_FILE: usize = 256 << 10;
/// The largest Docker build context sent (512 MiB).
const MAX_CONTEXT: u64 = 512 << 20;
/// The most bytes of a setup's output kept in its log.
const MAX_LOG: usize = 1 << 20;
/// The file the setup creates in the sandbox to let the held agent start.
const SETUP_FLAG: &str = "/tmp/.anycode-setup-done";
/// How long a held agent waits for its setup at most (then it starts anyway).
const HOLD_LIMIT_SECS: u64 = 6 * 3600;
/// The sandbox's working tree.
const WORKSPACE: &str = "/workspace";
/// The name the Dockerfile gets inside a build context AnyCode sends.
const CONTEXT_DOCKERFILE: &str = ".anycode-devcontainer.Dockerfile";

/// A `postCreateCommand` or `postStartCommand`: a shell line or an argv, each
/// labelled for the log (the object form's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupCommand {
    /// `postCreateCommand`, or `postCreateCommand.<name>` for the object form.
    pub label: String,
    /// A string runs with `sh -c`; an array runs as it is.
    pub argv: Vec<String>,
}

/// `build` of devcontainer.json, with paths resolved against the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevBuild {
    /// The Dockerfile, relative to the root (`.devcontainer/Dockerfile`).
    pub dockerfile: String,
    /// The build context folder, relative to the root (`""` is the root).
    pub context: String,
    /// Build arguments.
    pub args: Vec<(String, String)>,
}

/// What AnyCode honours of a devcontainer.json.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DevContainer {
    /// `image`: an image Docker pulls or has.
    pub image: Option<String>,
    /// `build` (or the older top-level `dockerFile` and `context`).
    pub build: Option<DevBuild>,
    /// `containerEnv`, set on the container.
    pub container_env: Vec<(String, String)>,
    /// `remoteEnv`, given to the agent and the setup commands.
    pub remote_env: Vec<(String, String)>,
    /// `postCreateCommand`, run once after the sandbox is created.
    pub post_create: Vec<SetupCommand>,
    /// `postStartCommand`, run at every start.
    pub post_start: Vec<SetupCommand>,
    /// `forwardPorts`, listed with the sandbox's ports even before they listen.
    pub forward_ports: Vec<u16>,
    /// `workspaceFolder` when under /workspace (else /workspace).
    pub workspace_folder: String,
    /// Lines for the setup log: unsupported fields, values left out.
    pub notes: Vec<String>,
}

impl DevContainer {
    /// Whether a setup runs at some start.
    pub fn has_setup(&self) -> bool {
        !self.post_create.is_empty() || !self.post_start.is_empty()
    }
}

/// The fields the containers.dev spec has that AnyCode reads.
const SUPPORTED: &[&str] =
    &["image", "build", "dockerFile", "context", "containerEnv", "remoteEnv", "postCreateCommand", "postStartCommand", "forwardPorts", "workspaceFolder"];
/// Fields that change nothing inside AnyCode's sandbox, so they are not reported.
const IGNORED: &[&str] = &["name", "$schema"];

/// `rel` (a path from devcontainer.json) resolved against `.devcontainer/`, as a
/// `/`-separated path from the repository root (`""` is the root).
///
/// Errors: a path leaving the repository, or an absolute one.
fn resolve(rel: &str) -> std::result::Result<String, String> {
    if rel.starts_with('/') {
        return Err(format!("{rel:?} is absolute: give a path relative to .devcontainer/"));
    }
    let mut parts: Vec<&str> = vec![".devcontainer"];
    for p in rel.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("{rel:?} leaves the repository"));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn string_map(v: &Value, field: &str, notes: &mut Vec<String>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Some(obj) = v.as_object() else {
        notes.push(format!("{field} is not an object: left out"));
        return out;
    };
    for (k, val) in obj {
        let valid_key = !k.is_empty() && !k.contains('=') && !k.contains('\0');
        match val {
            Value::String(s) if valid_key && !s.contains('\0') => {
                if s.contains("${") {
                    notes.push(format!("{field}.{k}: variables (${{...}}) are not substituted"));
                }
                out.push((k.clone(), s.clone()));
            }
            Value::Null => {}
            _ => notes.push(format!("{field}.{k} is not a string: left out")),
        }
    }
    out
}

fn command(v: &Value, field: &str, notes: &mut Vec<String>) -> Vec<SetupCommand> {
    let argv = |v: &Value| -> Option<Vec<String>> {
        match v {
            Value::String(s) if !s.trim().is_empty() => Some(vec!["sh".into(), "-c".into(), s.clone()]),
            Value::Array(a) if !a.is_empty() => a.iter().map(|x| x.as_str().map(str::to_string)).collect(),
            _ => None,
        }
    };
    match v {
        Value::Object(o) => {
            let mut out = Vec::new();
            for (name, c) in o {
                match argv(c) {
                    Some(a) => out.push(SetupCommand { label: format!("{field}.{name}"), argv: a }),
                    None => notes.push(format!("{field}.{name} is neither a string nor an array of strings: left out")),
                }
            }
            if out.len() > 1 {
                notes.push(format!("{field}: the object's commands run one after another, not in parallel"));
            }
            out
        }
        Value::Null => Vec::new(),
        v => match argv(v) {
            Some(a) => vec![SetupCommand { label: field.to_string(), argv: a }],
            None => {
                notes.push(format!("{field} is neither a string nor an array of strings: left out"));
                Vec::new()
            }
        },
    }
}

/// Parses a devcontainer.json (JSON with comments and trailing commas).
///
/// Errors: a file that does not parse or is not an object; a `build.dockerfile`
/// or `build.context` that leaves the repository. Other bad values are left out
/// with a note.
pub fn parse(text: &str) -> std::result::Result<DevContainer, String> {
    let v: Value = json5::from_str(text).map_err(|e| format!("it does not parse: {e}"))?;
    let Value::Object(obj) = v else {
        return Err("it is not a JSON object".to_string());
    };
    let mut dc = DevContainer { workspace_folder: WORKSPACE.into(), ..Default::default() };
    let mut notes = Vec::new();
    for k in obj.keys() {
        if !SUPPORTED.contains(&k.as_str()) && !IGNORED.contains(&k.as_str()) {
            notes.push(format!("{k} is not supported by AnyCode: ignored"));
        }
    }
    dc.image = match obj.get("image") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(_) => {
            notes.push("image is not a string: ignored".into());
            None
        }
        None => None,
    };
    let build = obj.get("build").cloned().unwrap_or(Value::Null);
    let legacy_file = obj.get("dockerFile").and_then(Value::as_str);
    let dockerfile = build.get("dockerfile").and_then(Value::as_str).or(legacy_file);
    if let Some(b) = build.as_object() {
        for k in b.keys().filter(|k| !["dockerfile", "context", "args"].contains(&k.as_str())) {
            notes.push(format!("build.{k} is not supported by AnyCode: ignored"));
        }
    }
    if let Some(file) = dockerfile {
        let context = build.get("context").and_then(Value::as_str).or(obj.get("context").and_then(Value::as_str)).unwrap_or(".");
        let args = match build.get("args") {
            Some(a) => string_map(a, "build.args", &mut notes),
            None => Vec::new(),
        };
        dc.build = Some(DevBuild { dockerfile: resolve(file)?, context: resolve(context)?, args });
        if dc.image.take().is_some() {
            notes.push("image and build.dockerfile are both set: the Dockerfile is built".into());
        }
    }
    if let Some(e) = obj.get("containerEnv") {
        dc.container_env = string_map(e, "containerEnv", &mut notes);
    }
    if let Some(e) = obj.get("remoteEnv") {
        dc.remote_env = string_map(e, "remoteEnv", &mut notes);
    }
    if let Some(c) = obj.get("postCreateCommand") {
        dc.post_create = command(c, "postCreateCommand", &mut notes);
    }
    if let Some(c) = obj.get("postStartCommand") {
        dc.post_start = command(c, "postStartCommand", &mut notes);
    }
    if let Some(ports) = obj.get("forwardPorts") {
        for p in ports.as_array().map(Vec::as_slice).unwrap_or_default() {
            // A number, or "host:port" where only the sandbox's own host is served.
            let port = match p {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => match s.rsplit_once(':') {
                    Some((host, port)) if ["localhost", "127.0.0.1"].contains(&host) => port.parse().ok(),
                    _ => None,
                },
                _ => None,
            };
            match port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p > 0) {
                Some(p) if !dc.forward_ports.contains(&p) => dc.forward_ports.push(p),
                Some(_) => {}
                None => notes.push(format!("forwardPorts: {p} is not a port of the sandbox: left out")),
            }
        }
    }
    if let Some(w) = obj.get("workspaceFolder") {
        match w.as_str().and_then(workspace_folder) {
            Some(f) => dc.workspace_folder = f,
            None => notes.push(format!("workspaceFolder {w} is not under {WORKSPACE}: {WORKSPACE} is used")),
        }
    }
    dc.notes = notes;
    Ok(dc)
}

/// `path` normalised when it is `/workspace` or a folder under it.
fn workspace_folder(path: &str) -> Option<String> {
    let rest = path.strip_prefix(WORKSPACE)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
    if parts.iter().any(|p| *p == ".." || p.contains('\0')) {
        return None;
    }
    Some(std::iter::once(WORKSPACE).chain(parts).collect::<Vec<_>>().join("/"))
}

/// `s` quoted for `sh` (single quotes).
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The Dockerfile that layers AnyCode's bits (from `anycode`, the agent's image)
/// onto `project` (see the module's notes).
fn layer_dockerfile(anycode: &str, project: &str) -> String {
    format!(
        r#"# AnyCode's bits layered onto the project's dev container image.
FROM {anycode} AS anycode
USER root
RUN set -e; mkdir -p /tmp/anycode-node/lib; cp /usr/bin/node /tmp/anycode-node/node; \
    for l in $(ldd /usr/bin/node | awk '$2 == "=>" && $3 ~ /^\// {{print $3}} $1 ~ /^\// {{print $1}}'); do cp -L "$l" /tmp/anycode-node/lib/; done; \
    mkdir -p /tmp/anycode-node/share; \
    for d in acorn acorn-walk cjs-module-lexer undici; do if [ -e "/usr/share/nodejs/$d" ]; then cp -rL "/usr/share/nodejs/$d" /tmp/anycode-node/share/; fi; done

FROM {project}
USER root
COPY --from=anycode /opt/anycode /opt/anycode
COPY --from=anycode /tmp/anycode-node /opt/anycode/node
COPY --from=anycode /usr/local/lib/node_modules/@anthropic-ai/claude-code /opt/anycode/claude-code
COPY --from=anycode /home/agent /home/agent
RUN set -e; \
    loader=$(cd /opt/anycode/node/lib && ls ld-linux* | head -n 1); \
    printf '#!/bin/sh\nexec /opt/anycode/node/lib/%s --library-path /opt/anycode/node/lib /opt/anycode/node/node "$@"\n' "$loader" > /opt/anycode/bin/anycode-node; \
    chmod 0755 /opt/anycode/bin/anycode-node; \
    mkdir -p /usr/local/bin; \
    command -v node >/dev/null 2>&1 || ln -s /opt/anycode/bin/anycode-node /usr/local/bin/node; \
    mkdir -p /usr/share/nodejs; \
    for d in /opt/anycode/node/share/*; do if [ -e "$d" ] && [ ! -e "/usr/share/nodejs/${{d##*/}}" ]; then cp -r "$d" /usr/share/nodejs/; fi; done; \
    command -v claude >/dev/null 2>&1 || ln -s /opt/anycode/claude-code/bin/claude.exe /usr/local/bin/claude; \
    if ! command -v bash >/dev/null 2>&1 || ! command -v git >/dev/null 2>&1; then \
      if command -v apt-get >/dev/null 2>&1; then \
        apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends bash git ca-certificates && rm -rf /var/lib/apt/lists/*; \
      else echo "AnyCode needs bash and git in the dev container image (no apt-get to install them)" >&2; exit 1; fi; \
    fi; \
    git config --system safe.directory '*'; \
    mkdir -p /workspace /home/agent/.claude; \
    chmod 0777 /home/agent /home/agent/.claude; chmod 0666 /home/agent/.claude.json 2>/dev/null || true
ENV HOME=/home/agent
WORKDIR /workspace
"#
    )
}

fn hash16(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..8])
}

/// What the container's main process is wrapped in (see the module): waits for
/// the setup flag when `$1` is `wait`, goes to `$2`, then runs the rest.
const WRAPPER: &str = r#"if [ "$1" = wait ]; then
  printf '\033[2mAnyCode: the agent starts once the dev container setup has run (the setup tab shows it).\033[0m\r\n'
  i=0
  while [ ! -e "$ANYCODE_SETUP_FLAG" ] && [ "$i" -lt "$ANYCODE_HOLD_TICKS" ]; do sleep 0.2; i=$((i+1)); done
  rm -f "$ANYCODE_SETUP_FLAG"
fi
cd "$2" 2>/dev/null || cd /workspace
shift 2
exec "$@"
"#;

/// Parsed devcontainer.json by (repository path, commit); `None`: no file.
type DevCache = HashMap<(PathBuf, String), Option<Arc<DevContainer>>>;

/// What a start waits for before the credential handover: the relay's readiness
/// (once known) and the end of the setup (the sender dropped or sent).
pub(crate) struct Ready {
    /// The relay's readiness, as `start_relay` reports it.
    pub relay: oneshot::Receiver<std::result::Result<(), String>>,
    /// Resolves (or closes) when the setup has ended.
    pub setup: oneshot::Receiver<()>,
}

/// The per-engine state of dev containers.
#[derive(Default)]
pub(crate) struct DevState {
    /// Parsed devcontainer.json files.
    cache: StdMutex<DevCache>,
    /// Held while a dev container image builds.
    build: tokio::sync::Mutex<()>,
    /// Docker's output of the image builds made for a task (by task id, the last
    /// [`MAX_BUILD_LOG`] bytes), shown at the top of its setup tab.
    build_logs: StdMutex<HashMap<String, Vec<u8>>>,
}

/// The most build output kept per task for its setup tab, in bytes.
const MAX_BUILD_LOG: usize = 256 * 1024;

/// The URL path of a task's setup log.
pub(crate) fn log_path_url(task_id: &str) -> String {
    format!("/api/tasks/{task_id}/setup/log")
}

impl Engine {
    fn dev(&self) -> &DevState {
        &self.inner.dev
    }

    /// The project's devcontainer.json at `commit` (40 hex digits) of the user's
    /// repository `repo`, parsed; `None` without one. Cached.
    ///
    /// Errors: `INVALID_INPUT` for a file that does not parse; git errors.
    pub(crate) async fn devcontainer_at(&self, repo: &Path, commit: &str) -> Result<Option<Arc<DevContainer>>> {
        let key = (repo.to_path_buf(), commit.to_string());
        if let Some(dc) = self.dev().cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(dc.clone());
        }
        let (r, c) = key.clone();
        let text = blocking(move || Ok(anycode_git::tree::read_blob_at(&r, &c, DEVCONTAINER_FILE, MAX_FILE)?)).await?;
        let dc = match text {
            Some(t) => Some(Arc::new(
                parse(&String::from_utf8_lossy(&t)).map_err(|e| Error::Invalid(format!("{DEVCONTAINER_FILE} of the base commit: {e}")))?,
            )),
            None => None,
        };
        self.dev().cache.lock().unwrap_or_else(|p| p.into_inner()).insert(key, dc.clone());
        Ok(dc)
    }

    /// The devcontainer.json of a task's base commit (none when the task has no
    /// base commit yet, or the file cannot be read: logged).
    pub(crate) async fn task_devcontainer(&self, task: &Task) -> Option<Arc<DevContainer>> {
        if task.base_sha.is_empty() {
            return None;
        }
        let project = self.project(&task.project_id).await.ok()?;
        match self.devcontainer_at(Path::new(&project.path), &task.base_sha).await {
            Ok(dc) => dc,
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "reading the dev container failed");
                None
            }
        }
    }

    /// The cached devcontainer of a task (no I/O), as read by
    /// [`Engine::task_image`].
    fn cached_devcontainer(&self, project: &Project, commit: &str) -> Option<Arc<DevContainer>> {
        self.dev().cache.lock().unwrap_or_else(|p| p.into_inner()).get(&(PathBuf::from(&project.path), commit.to_string())).cloned().flatten()
    }

    /// Appends a line to the task's build log (see [`DevState::build_logs`]), in
    /// terminal form (`\r\n`), keeping the last [`MAX_BUILD_LOG`] bytes.
    fn build_log_line(&self, task_id: &str, line: &str) {
        let mut logs = self.dev().build_logs.lock().unwrap_or_else(|p| p.into_inner());
        let log = logs.entry(task_id.to_string()).or_default();
        log.extend_from_slice(line.trim_end_matches(['\r', '\n']).as_bytes());
        log.extend_from_slice(b"\r\n");
        if log.len() > MAX_BUILD_LOG {
            let cut = log.len() - MAX_BUILD_LOG;
            log.drain(..cut);
        }
    }

    /// What a build of a task's image reports: to AnyCode's log and the task's
    /// build log.
    fn build_progress<'a>(&'a self, task_id: &'a str) -> impl FnMut(BuildEvent) + 'a {
        move |e: BuildEvent| {
            tracing::info!(?e, "dev container image");
            match e {
                BuildEvent::Started(tag) => self.build_log_line(task_id, &format!("\x1b[1;36mAnyCode: building {tag}\x1b[0m")),
                BuildEvent::Line(l) => self.build_log_line(task_id, &l),
                BuildEvent::Done(tag) => self.build_log_line(task_id, &format!("\x1b[1;36mAnyCode: built {tag}\x1b[0m")),
                BuildEvent::UpToDate(_) => {}
            }
        }
    }

    /// Takes the task's build log (empty when nothing was built for it).
    fn take_build_log(&self, task_id: &str) -> Vec<u8> {
        self.dev().build_logs.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id).unwrap_or_default()
    }

    /// The image a task's sandbox runs: the one place it is chosen. The agent's
    /// image ([`Engine::ensure_agent_image`]), or, when the task's base commit has a
    /// devcontainer.json with `image` or `build`, the project's image with AnyCode's
    /// bits layered on (built on the local engine when missing, progress in the
    /// log). `task.base_sha` may be empty (a task being planned): the tip of
    /// `task.base`, or of the current branch, is read then. Returns the tag.
    ///
    /// Errors: `UNKNOWN_AGENT`, `DOCKER_UNAVAILABLE`, `INVALID_INPUT` for a
    /// devcontainer.json that does not parse, a failed build with Docker's message.
    pub(crate) async fn task_image(&self, task: &Task, project: &Project) -> Result<String> {
        let progress = |e: BuildEvent| tracing::info!(?e, "sandbox image");
        let base = self.ensure_agent_image(task.agent.as_str(), progress).await?;
        let repo = PathBuf::from(&project.path);
        let commit = if task.base_sha.is_empty() {
            let (r, b) = (repo.clone(), task.base.clone());
            blocking(move || {
                let branch = if b.is_empty() { anycode_git::branches(&r)?.current.ok_or(anycode_git::Error::NoCurrentBranch)? } else { b };
                Ok(anycode_git::taskrepo::base_tip_sha(&r, &branch)?)
            })
            .await?
        } else {
            task.base_sha.clone()
        };
        let Some(dc) = self.devcontainer_at(&repo, &commit).await? else { return Ok(base) };
        let docker = self.docker().await?;
        let _one = self.dev().build.lock().await;
        let project_image = match (&dc.build, &dc.image) {
            (Some(b), _) => {
                let (r, c, b2) = (repo.clone(), commit.clone(), b.clone());
                let (context, dockerfile) = blocking(move || {
                    let file = anycode_git::tree::read_blob_at(&r, &c, &b2.dockerfile, MAX_FILE)?
                        .ok_or_else(|| Error::Invalid(format!("{DEVCONTAINER_FILE}: build.dockerfile {} is not a file of the base commit", b2.dockerfile)))?;
                    Ok((anycode_git::tree::tar_tree_at(&r, &c, &b2.context, MAX_CONTEXT, &[(CONTEXT_DOCKERFILE.to_string(), file.clone())])?, file))
                })
                .await?;
                let args: Vec<u8> = b.args.iter().flat_map(|(k, v)| [k.as_bytes(), b"=", v.as_bytes(), b"\0"].concat()).collect();
                let tag = format!("anycode-devcontainer-project:{}", hash16(&[&context, &dockerfile, &args]));
                if docker.image_exists(&tag).await? {
                    self.build_log_line(&task.id, &format!("AnyCode: the project's image {tag} ({}) is built already", b.dockerfile));
                } else {
                    tracing::info!(%tag, dockerfile = %b.dockerfile, context = %b.context, "building the project's dev container image");
                    docker.build_image(&tag, context, CONTEXT_DOCKERFILE, &b.args, &mut self.build_progress(&task.id)).await?;
                }
                tag
            }
            (None, Some(image)) => image.clone(),
            (None, None) => return Ok(base),
        };
        let dockerfile = layer_dockerfile(&base, &project_image);
        let tag = format!("anycode-devcontainer:{}", hash16(&[dockerfile.as_bytes()]));
        if docker.image_exists(&tag).await? {
            self.build_log_line(&task.id, &format!("AnyCode: {tag} (AnyCode's parts layered onto {project_image}) is built already"));
        } else {
            tracing::info!(%tag, project = %project_image, "layering AnyCode onto the dev container image");
            docker.ensure_variant(&tag, &dockerfile, &mut self.build_progress(&task.id)).await?;
        }
        Ok(tag)
    }

    /// Applies the task's devcontainer to its container: `containerEnv` (AnyCode's
    /// own variables win) and the main process wrapped (see [`WRAPPER`]).
    pub(crate) fn apply_devcontainer(&self, task: &Task, project: &Project, spec: &mut ContainerSpec) {
        let Some(dc) = self.cached_devcontainer(project, &task.base_sha) else { return };
        let taken: Vec<String> = spec.env.iter().filter_map(|e| e.split_once('=').map(|(k, _)| k.to_string())).collect();
        for (k, v) in &dc.container_env {
            if !taken.contains(k) && !k.starts_with("ANYCODE_") {
                spec.env.push(format!("{k}={v}"));
            }
        }
        spec.env.push(format!("ANYCODE_SETUP_FLAG={SETUP_FLAG}"));
        spec.env.push(format!("ANYCODE_HOLD_TICKS={}", HOLD_LIMIT_SECS * 5));
        let mut cmd = vec!["sh".to_string(), "-c".into(), WRAPPER.into(), "anycode-devcontainer".into()];
        cmd.push(if dc.has_setup() { "wait" } else { "go" }.into());
        cmd.push(dc.workspace_folder.clone());
        if !dc.remote_env.is_empty() {
            cmd.push("env".into());
            cmd.extend(dc.remote_env.iter().map(|(k, v)| format!("{k}={v}")));
        }
        cmd.append(&mut spec.cmd);
        spec.cmd = cmd;
    }

    /// Marks a new task's setup `pending` when its devcontainer has commands.
    pub(crate) async fn mark_setup_pending(&self, task: &mut Task) {
        let Some(dc) = self.task_devcontainer(task).await else { return };
        if !dc.has_setup() {
            return;
        }
        let id = task.id.clone();
        if let Err(e) = self.db(move |s| Ok(s.set_task_setup(&id, SetupStatus::Pending, None, None, false)?)).await {
            tracing::warn!(task = %task.id, error = %e, "recording the setup failed");
        }
        task.setup = TaskSetup { status: SetupStatus::Pending, ..Default::default() };
    }

    /// Runs the task's setup after a start (see the module). Takes the relay's
    /// readiness and returns it again once known, with a receiver that resolves
    /// (or closes) when the setup has ended and the agent may be handed its
    /// credential. Without setup commands both resolve at once.
    pub(crate) fn start_setup(
        &self,
        docker: &SandboxHost,
        task: &Task,
        cid: &str,
        relay: oneshot::Receiver<std::result::Result<(), String>>,
    ) -> Ready {
        let (relay_tx, relay_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let (engine, docker, task, cid) = (self.clone(), docker.clone(), task.clone(), cid.to_string());
        tokio::spawn(async move {
            let dc = engine.task_devcontainer(&task).await;
            let ready = tokio::time::timeout(crate::network::RELAY_READY + Duration::from_secs(1), relay).await;
            let _ = relay_tx.send(match ready {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => Err("the relay was not started".to_string()),
                Err(_) => Err("the relay did not answer".to_string()),
            });
            match dc.filter(|d| d.has_setup()) {
                Some(dc) => engine.run_setup(&docker, &task, &cid, &dc).await,
                // No setup tab to show the build in.
                None => drop(engine.take_build_log(&task.id)),
            }
            let _ = done_tx.send(());
        });
        Ready { relay: relay_rx, setup: done_rx }
    }

    async fn run_setup(&self, docker: &SandboxHost, task: &Task, cid: &str, dc: &DevContainer) {
        let tid = task.id.clone();
        let created = match self.db(move |s| Ok(s.task_setup(&tid)?.1)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "reading the setup state failed");
                false
            }
        };
        let mut commands: Vec<&SetupCommand> = Vec::new();
        if !created {
            commands.extend(&dc.post_create);
        }
        commands.extend(&dc.post_start);
        let user = match self.project(&task.project_id).await {
            Ok(p) => crate::taskrepo::sandbox_user(Path::new(&p.path)),
            Err(_) => "1000:1000".to_string(),
        };
        let set = |status: SetupStatus, code: Option<i64>, error: Option<String>, created: bool| {
            let (engine, id) = (self.clone(), task.id.clone());
            async move {
                let rid = id.clone();
                let res = engine.db(move |s| Ok(s.set_task_setup(&rid, status, code, error.as_deref(), created)?)).await;
                if let Err(e) = res {
                    tracing::warn!(task = %id, error = %e, "recording the setup failed");
                }
                engine.task_changed(&id);
            }
        };
        set(SetupStatus::Running, None, None, false).await;
        let script = setup_script(dc, &commands);
        let id = anycode_core::new_id();
        let terminal = anycode_terminal::Terminal::new(&id, self.inner.config.scrollback_bytes);
        // The image build's output first (made at create, before any tab existed).
        let built = self.take_build_log(&task.id);
        if !built.is_empty() {
            terminal.notice(&String::from_utf8_lossy(&built));
        }
        let mut env = vec!["TERM=xterm-256color".to_string(), "COLORTERM=truecolor".into(), format!("ANYCODE_TERMINAL={id}")];
        env.extend(dc.remote_env.iter().map(|(k, v)| format!("{k}={v}")));
        let argv = vec!["sh".to_string(), "-c".into(), script, "anycode-setup".into()];
        let (exit_tx, exit_rx) = oneshot::channel();
        let outcome = match docker.exec(cid, argv, &user, env, 120, 32, self.inner.config.pty_holder).await {
            Ok((exec_id, stream)) => {
                let control = Arc::new(crate::runtime::ExecControl { docker: docker.clone(), exec_id, pty: stream.resize.clone() });
                terminal.connect(stream.output, stream.input, control, move |code| {
                    let _ = exit_tx.send(code);
                });
                let info = TerminalInfo { id: id.clone(), kind: TerminalKind::Setup, title: "setup".into() };
                self.inner.terminals.register_setup(&task.id, info, terminal.clone());
                self.task_changed(&task.id);
                Ok(exit_rx.await.ok().flatten())
            }
            Err(e) => Err(e.to_string()),
        };
        let log = terminal.tail(MAX_LOG);
        let file = self.setup_log_file(&task.id);
        let saved = blocking(move || {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir).map_err(|e| Error::Internal(format!("creating {}: {e}", dir.display())))?;
            }
            std::fs::write(&file, &log).map_err(|e| Error::Internal(format!("writing {}: {e}", file.display())))
        })
        .await;
        if let Err(e) = saved {
            tracing::warn!(task = %task.id, error = %e, "saving the setup log failed");
        }
        // The held agent may start now, whatever the outcome.
        let release = vec!["sh".to_string(), "-c".into(), format!("touch {SETUP_FLAG}")];
        if let Err(e) = docker.exec_output(cid, release, &user, vec![], b"", 4096).await {
            tracing::warn!(task = %task.id, error = %e, "releasing the agent after setup failed");
        }
        let ran_create = !created && !dc.post_create.is_empty();
        match outcome {
            Ok(Some(0)) => set(SetupStatus::Done, Some(0), None, ran_create).await,
            Ok(code) => {
                let why = match code {
                    Some(c) => format!("a setup command exited with {c}: see the setup log"),
                    None => "the setup ended without an exit code (the sandbox stopped?)".to_string(),
                };
                tracing::info!(task = %task.id, ?code, "dev container setup failed");
                set(SetupStatus::Failed, code, Some(why), ran_create).await
            }
            Err(e) => set(SetupStatus::Failed, None, Some(format!("the setup could not run: {e}")), false).await,
        }
        tracing::info!(task = %task.id, container = %container_name(&task.id), "dev container setup ended");
    }

    /// A setup that an earlier AnyCode process left `running` (it stopped or was
    /// killed mid-setup, so nothing will finish it): marked `failed`, saying why, and
    /// the agent held for it released when the sandbox runs (it would wait up to
    /// 6 hours otherwise). Called by reconcile for tasks whose terminals this process
    /// does not hold; Stop and Start run the setup again (`postCreateCommand` too,
    /// since it never completed).
    pub(crate) async fn settle_interrupted_setup(&self, docker: &SandboxHost, task: &Task, running: Option<&str>) {
        if task.setup.status != SetupStatus::Running {
            return;
        }
        tracing::info!(task = %task.id, "the setup was interrupted by a stop of AnyCode; marking it failed");
        if let Some(cid) = running {
            let user = match self.project(&task.project_id).await {
                Ok(p) => crate::taskrepo::sandbox_user(Path::new(&p.path)),
                Err(_) => "1000:1000".to_string(),
            };
            let release = vec!["sh".to_string(), "-c".into(), format!("touch {SETUP_FLAG}")];
            if let Err(e) = docker.exec_output(cid, release, &user, vec![], b"", 4096).await {
                tracing::warn!(task = %task.id, error = %e, "releasing the agent after an interrupted setup failed");
            }
        }
        let id = task.id.clone();
        let why = "AnyCode stopped while the setup ran, so it did not finish (the agent was let go): Stop and Start the task to run it again";
        if let Err(e) = self.db(move |s| Ok(s.set_task_setup(&id, SetupStatus::Failed, None, Some(why), false)?)).await {
            tracing::warn!(task = %task.id, error = %e, "recording the setup failed");
        }
        self.task_changed(&task.id);
    }

    /// `<data_dir>/setup/<task id>.log`.
    fn setup_log_file(&self, task_id: &str) -> PathBuf {
        self.inner.config.data_dir.join("setup").join(format!("{task_id}.log"))
    }

    /// The task's setup log: the live terminal's output while it runs, else the
    /// saved log of its last run (raw terminal bytes, at most 1 MiB).
    ///
    /// Errors: `TASK_NOT_FOUND`; `NOT_FOUND` (`setup log`) when no setup ran yet.
    pub async fn setup_log(&self, task_id: &str) -> Result<Vec<u8>> {
        let task = self.task(task_id).await?;
        if task.setup.status == SetupStatus::Running {
            if let Some(t) = self.inner.terminals.setup_of(&task.id) {
                return Ok(t.tail(MAX_LOG));
            }
        }
        let file = self.setup_log_file(&task.id);
        let id = task.id.clone();
        blocking(move || std::fs::read(&file).map_err(|_| Error::NotFound { what: "setup log", id })).await
    }

    /// Deletes a task's saved setup log (with the task).
    pub(crate) fn forget_setup(&self, task_id: &str) {
        self.take_build_log(task_id);
        let _ = std::fs::remove_file(self.setup_log_file(task_id));
    }

    /// The ports of a task's `forwardPorts`.
    pub(crate) async fn forward_ports(&self, task: &Task) -> Vec<u16> {
        self.task_devcontainer(task).await.map(|d| d.forward_ports.clone()).unwrap_or_default()
    }
}

/// The one script the setup exec runs: the unsupported fields named, then each
/// command in `dc.workspace_folder`, stopping at the first failure with its code.
fn setup_script(dc: &DevContainer, commands: &[&SetupCommand]) -> String {
    let mut s = String::from("say() { printf '\\033[1;36m%s\\033[0m\\n' \"$*\"; }\n");
    s.push_str(&format!("say {}\n", sh_quote(&format!("AnyCode: dev container setup ({DEVCONTAINER_FILE} of the task's base commit)"))));
    for n in &dc.notes {
        s.push_str(&format!("printf '\\033[33m%s\\033[0m\\n' {}\n", sh_quote(&format!("  unsupported or left out: {n}"))));
    }
    s.push_str(&format!("cd {} 2>/dev/null || {{ say 'no {}: running in {WORKSPACE}'; cd {WORKSPACE}; }}\n", sh_quote(&dc.workspace_folder), dc.workspace_folder.replace('\'', "")));
    if commands.is_empty() {
        s.push_str("say 'nothing to run at this start'\n");
    }
    for c in commands {
        let line = c.argv.iter().map(|a| sh_quote(a)).collect::<Vec<_>>().join(" ");
        s.push_str(&format!("say {}\n", sh_quote(&format!("▶ {}", c.label))));
        s.push_str(&format!(
            "{line}\ncode=$?\nif [ \"$code\" -ne 0 ]; then printf '\\033[1;31m%s\\033[0m\\n' {}\" exited with $code\"; exit \"$code\"; fi\n",
            sh_quote(&c.label)
        ));
    }
    s.push_str("say 'setup done'\nexit 0\n");
    s
}

impl crate::terminals::TerminalRegistry {
    /// Registers the task's setup terminal in place of an earlier one.
    pub(crate) fn register_setup(&self, task_id: &str, info: TerminalInfo, terminal: anycode_terminal::Terminal) {
        self.replace_kind(task_id, TerminalKind::Setup, info, terminal);
    }

    /// The task's setup terminal, if registered.
    pub(crate) fn setup_of(&self, task_id: &str) -> Option<anycode_terminal::Terminal> {
        self.find_kind(task_id, TerminalKind::Setup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_honoured_fields_and_names_the_rest() {
        let dc = parse(
            r#"// comments and trailing commas are fine
            {
              "name": "demo",
              "build": { "dockerfile": "Dockerfile", "context": "..", "args": { "MARK": "m1" }, "target": "dev" },
              "containerEnv": { "A": "1", "B": "${localEnv:HOME}" },
              "remoteEnv": { "R": "r", "N": null },
              "postCreateCommand": "npm ci",
              "postStartCommand": ["echo", "it's up"],
              "forwardPorts": [3000, "localhost:5173", "db:5432", 70000],
              "workspaceFolder": "/workspace/app/./",
              "customizations": { "vscode": {} },
              "mounts": [],
            }"#,
        )
        .unwrap();
        assert_eq!(dc.build, Some(DevBuild { dockerfile: ".devcontainer/Dockerfile".into(), context: "".into(), args: vec![("MARK".into(), "m1".into())] }));
        assert_eq!(dc.container_env, vec![("A".into(), "1".into()), ("B".into(), "${localEnv:HOME}".into())]);
        assert_eq!(dc.remote_env, vec![("R".into(), "r".into())]);
        assert_eq!(dc.post_create[0].argv, ["sh", "-c", "npm ci"]);
        assert_eq!(dc.post_start[0].argv, ["echo", "it's up"]);
        assert_eq!(dc.forward_ports, [3000, 5173]);
        assert_eq!(dc.workspace_folder, "/workspace/app");
        let notes = dc.notes.join("\n");
        for n in ["customizations", "mounts", "build.target", "db:5432", "70000", "variables"] {
            assert!(notes.contains(n), "{n} not named in {notes}");
        }
        assert!(!notes.contains("name is"), "{notes}");
    }

    #[test]
    fn bad_paths_and_files_are_refused() {
        assert!(parse("{ \"build\": { \"dockerfile\": \"../../x\" } }").is_err());
        assert!(parse("{ \"build\": { \"dockerfile\": \"/etc/x\" } }").is_err());
        assert!(parse("[1]").is_err());
        assert!(parse("{ nope").is_err());
        let dc = parse("{ \"workspaceFolder\": \"/home/x\", \"postCreateCommand\": { \"a\": \"x\", \"b\": [\"y\"] } }").unwrap();
        assert_eq!(dc.workspace_folder, "/workspace");
        assert_eq!(dc.post_create.iter().map(|c| c.label.as_str()).collect::<Vec<_>>(), ["postCreateCommand.a", "postCreateCommand.b"]);
        assert_eq!(workspace_folder("/workspace/../etc"), None);
        assert_eq!(workspace_folder("/workspaces/x"), None);
        assert_eq!(resolve("Dockerfile").unwrap(), ".devcontainer/Dockerfile");
        assert_eq!(resolve("..").unwrap(), "");
    }

    #[test]
    fn the_setup_script_quotes_every_argument() {
        let dc = parse(r#"{ "postStartCommand": ["printf", "%s\n", "a'b $HOME"] }"#).unwrap();
        let cmds: Vec<&SetupCommand> = dc.post_start.iter().collect();
        let script = setup_script(&dc, &cmds);
        let out = std::process::Command::new("sh").arg("-c").arg(script.replace("cd '/workspace'", "cd /").replace("cd /workspace", "cd /")).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("a'b $HOME\n"), "{}", String::from_utf8_lossy(&out.stdout));
    }
}
