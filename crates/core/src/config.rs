use crate::settings::{Settings, SettingsError};
use std::path::PathBuf;
use std::time::Duration;

/// Resource limits applied to every sandbox container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Memory cap in bytes (`ANYCODE_MEMORY_MB`, default 4096 MiB).
    pub memory_bytes: i64,
    /// CPU cap in billionths of a CPU (`ANYCODE_CPUS`, default 2.0 CPUs).
    pub nano_cpus: i64,
    /// Process count cap (`ANYCODE_PIDS`, default 1024).
    pub pids: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 4096 * 1024 * 1024, nano_cpus: 2_000_000_000, pids: 1024 }
    }
}

/// AnyCode's settings. Every field has a default; environment variables override.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where AnyCode keeps its database, token, worktrees and recordings.
    /// `ANYCODE_DATA_DIR`, else the platform's data dir + `anycode`
    /// (`$XDG_DATA_HOME/anycode` or `~/.local/share/anycode` on Linux,
    /// `~/Library/Application Support/anycode` on macOS, `%APPDATA%\anycode` on Windows).
    pub data_dir: PathBuf,
    /// Docker image tag of the sandbox (`ANYCODE_IMAGE`, default `anycode-sandbox`).
    /// A user-set image is used as it is and never rebuilt.
    pub image: Option<String>,
    /// Container limits.
    pub limits: Limits,
    /// Bytes of scrollback each terminal keeps for replay (`ANYCODE_SCROLLBACK_KB`, default 1024 KiB).
    pub scrollback_bytes: usize,
    /// Folder of extra CA certificates (`*.crt`, PEM) trusted in sandboxes
    /// (`ANYCODE_EXTRA_CA_DIR`, default `/usr/local/share/ca-certificates` where it exists).
    pub extra_ca_dir: Option<PathBuf>,
    /// Size cap of one task's terminal recording in bytes (`ANYCODE_RECORDING_MB`,
    /// default 100 MiB).
    pub recording_max_bytes: u64,
    /// Docker endpoint (`DOCKER_HOST`, e.g. `unix:///var/run/docker.sock` or
    /// `tcp://127.0.0.1:2375`); the usual sockets are tried when `None`.
    pub docker_host: Option<String>,
    /// The OS keyring service of AnyCode's own credentials (`ANYCODE_KEYRING_SERVICE`,
    /// default `anycode`; `none` turns the keyring off, e.g. on a headless server).
    pub keyring_service: Option<String>,
    /// Claude Code's config dir, where its login is (`CLAUDE_CONFIG_DIR`; `None`
    /// means `~/.claude`).
    pub claude_config_dir: Option<PathBuf>,
    /// Whether credentials in AnyCode's own environment (`CLAUDE_CODE_OAUTH_TOKEN`,
    /// `ANTHROPIC_API_KEY`, …) are a source (default true; tests turn it off).
    pub credentials_from_env: bool,
    /// Where sandboxes' CPU and memory are read (`ANYCODE_USAGE_SOURCE`): `auto`
    /// (default) reads each container's cgroup files when they are on this machine,
    /// else asks Docker; `docker` always asks Docker (one-shot stats, which cost
    /// dockerd and containerd CPU per running sandbox at every reading).
    pub usage_from_docker: bool,
    /// Whether extra terminals hold their PTY in the sandbox with `anycode-pty`
    /// (`ANYCODE_PTY_HOLDER`, default on; `0`, `off` or `false` make them TTY execs
    /// Docker holds, as with an image that has no holder).
    pub pty_holder: bool,
    /// How often remote hosts with tasks are asked whether they answer
    /// (`ANYCODE_HOST_CHECK_MS`, default 5 s): a host that stops answering marks
    /// its tasks, and one that answers again has them reconciled.
    pub host_check: std::time::Duration,
    /// How many sandboxes may run at once (`ANYCODE_MAX_RUNNING`, `[sandbox]
    /// max_running`, default 8); further tasks are `queued`.
    pub max_running: u32,
    /// How many sandbox relays start at once per host when many start together
    /// (after a restart of AnyCode, reconcile starts every running task's relay):
    /// `ANYCODE_RELAY_STARTS`, default twice this machine's cores, 4 to 16 (a
    /// start also waits on reading files). Each start is a `docker exec` of a
    /// static binary (the Node.js relay before it took 0.15 s of CPU each); in
    /// turns, the first relays listen at once instead of all after the last.
    pub relay_starts_at_once: usize,
    /// Idle time (no terminal input or output) before a sandbox is paused
    /// (`ANYCODE_PAUSE_AFTER_MIN`, `[sandbox] pause_after_min`, default 30 min;
    /// `None` when set to 0: never).
    pub pause_after: Option<Duration>,
    /// Idle time before a sandbox is stopped (`ANYCODE_STOP_AFTER_MIN`, `[sandbox]
    /// stop_after_min`, default 12 h; `None` when set to 0: never).
    pub stop_after: Option<Duration>,
    /// How long a permission request waits for Allow/Deny before the agent asks in
    /// its terminal (`ANYCODE_APPROVAL_TIMEOUT_SECS`, `[approvals] timeout_secs`,
    /// default 300 s).
    pub approval_timeout: Duration,
    /// The settings file's content (its `[env]` and `[agents]` are read by the
    /// engine and the agents crate).
    pub settings: Settings,
    /// Where the settings file is (or would be).
    pub settings_path: PathBuf,
}

impl Config {
    /// Reads the settings file ([`Settings::default_path`]) and the environment
    /// (which wins), with defaults for the rest.
    ///
    /// Errors: the settings file exists but cannot be read or is not valid.
    pub fn load() -> Result<Config, SettingsError> {
        let path = Settings::default_path();
        let settings = Settings::load(&path)?;
        Ok(Config::from_settings(settings, path))
    }

    /// Reads the configuration from the environment only (no settings file), with
    /// defaults.
    pub fn from_env() -> Config {
        Config::from_settings(Settings::default(), Settings::default_path())
    }

    /// The configuration from `settings` (read from `settings_path`) and the
    /// environment, which wins.
    pub fn from_settings(settings: Settings, settings_path: PathBuf) -> Config {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let num = |k: &str| env(k).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| *v > 0.0);
        let data_dir = env("ANYCODE_DATA_DIR").map(PathBuf::from).unwrap_or_else(default_data_dir);
        let mut limits = Limits::default();
        if let Some(mb) = settings.sandbox.memory_mb {
            limits.memory_bytes = (mb as i64) * 1024 * 1024;
        }
        if let Some(c) = settings.sandbox.cpus {
            limits.nano_cpus = (c * 1e9) as i64;
        }
        if let Some(mb) = num("ANYCODE_MEMORY_MB") {
            limits.memory_bytes = (mb * 1024.0 * 1024.0) as i64;
        }
        if let Some(c) = num("ANYCODE_CPUS") {
            limits.nano_cpus = (c * 1e9) as i64;
        }
        if let Some(p) = num("ANYCODE_PIDS") {
            limits.pids = p as i64;
        }
        let scrollback_bytes = num("ANYCODE_SCROLLBACK_KB").map(|k| (k * 1024.0) as usize).unwrap_or(1024 * 1024);
        let extra_ca_dir = env("ANYCODE_EXTRA_CA_DIR").map(PathBuf::from).or_else(|| {
            let p = PathBuf::from("/usr/local/share/ca-certificates");
            p.is_dir().then_some(p)
        });
        let keyring_service = match env("ANYCODE_KEYRING_SERVICE") {
            Some(v) if v.trim().eq_ignore_ascii_case("none") || v.trim().eq_ignore_ascii_case("off") => None,
            Some(v) => Some(v.trim().to_string()),
            None => Some("anycode".to_string()),
        };
        let recording_max_bytes = num("ANYCODE_RECORDING_MB").map(|m| (m * 1024.0 * 1024.0) as u64).unwrap_or(100 * 1024 * 1024);
        // 0 means "never" for the idle timers, so these read 0 as a value.
        let minutes = |k: &str, file: Option<f64>, default: f64| {
            let m = env(k).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| *v >= 0.0).or(file).unwrap_or(default);
            (m > 0.0).then(|| Duration::from_secs_f64(m * 60.0))
        };
        let pause_after = minutes("ANYCODE_PAUSE_AFTER_MIN", settings.sandbox.pause_after_min, 30.0);
        let stop_after = minutes("ANYCODE_STOP_AFTER_MIN", settings.sandbox.stop_after_min, 720.0);
        let max_running = num("ANYCODE_MAX_RUNNING").map(|n| n as u32).or(settings.sandbox.max_running).unwrap_or(8).max(1);
        let relay_starts_at_once = num("ANYCODE_RELAY_STARTS")
            .map(|n| n as usize)
            .unwrap_or_else(|| (2 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)).clamp(4, 16))
            .max(1);
        let approval_timeout =
            Duration::from_secs(num("ANYCODE_APPROVAL_TIMEOUT_SECS").map(|n| n as u64).or(settings.approvals.timeout_secs).unwrap_or(300));
        Config {
            max_running,
            relay_starts_at_once,
            pause_after,
            stop_after,
            approval_timeout,
            settings,
            settings_path,
            data_dir,
            image: env("ANYCODE_IMAGE"),
            limits,
            scrollback_bytes,
            extra_ca_dir,
            recording_max_bytes,
            docker_host: env("DOCKER_HOST"),
            keyring_service,
            claude_config_dir: env("CLAUDE_CONFIG_DIR").map(PathBuf::from),
            credentials_from_env: true,
            usage_from_docker: env("ANYCODE_USAGE_SOURCE").is_some_and(|v| v.eq_ignore_ascii_case("docker")),
            pty_holder: !matches!(env("ANYCODE_PTY_HOLDER").as_deref(), Some("0" | "off" | "false")),
            host_check: std::time::Duration::from_millis(env("ANYCODE_HOST_CHECK_MS").and_then(|v| v.parse().ok()).filter(|&ms: &u64| ms >= 100).unwrap_or(5000)),
        }
    }

    /// A configuration rooted at `data_dir` with every other setting at its default
    /// (tests and embedders).
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Config {
        Config { data_dir: data_dir.into(), ..Config::from_env() }
    }

    /// `<data_dir>/anycode.db`, the SQLite database.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("anycode.db")
    }

    /// `<data_dir>/worktrees`, parent of every task's working tree (each a folder
    /// `<project id>/<task id>` holding the sandbox's own repository).
    pub fn worktrees_dir(&self) -> PathBuf {
        self.data_dir.join("worktrees")
    }

    /// `<data_dir>/mirrors`, parent of AnyCode's bare mirror of each task's
    /// repository (`<task id>.git`), which only AnyCode writes.
    pub fn mirrors_dir(&self) -> PathBuf {
        self.data_dir.join("mirrors")
    }

    /// `<data_dir>/recordings`, parent of every task's recordings.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    /// `<data_dir>/token`, the access token (mode 0600).
    pub fn token_path(&self) -> PathBuf {
        self.data_dir.join("token")
    }
}

fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join(".local/share")))
        .unwrap_or_else(std::env::temp_dir)
        .join("anycode")
}
