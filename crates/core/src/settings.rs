//! The user's settings file: TOML at `ANYCODE_CONFIG`, else
//! `<config dir>/anycode/config.toml` (`~/.config/anycode/config.toml` on Linux,
//! `~/Library/Application Support/anycode/config.toml` on macOS,
//! `%APPDATA%\anycode\config.toml` on Windows). A missing file means defaults.
//!
//! ```toml
//! [sandbox]
//! cpus = 2.0              # per-task CPU cap, CPUs
//! memory_mb = 4096        # per-task memory cap, MiB
//! max_running = 4         # sandboxes running at once; more tasks queue
//! pause_after_min = 30    # idle minutes before `docker pause` (0: never)
//! stop_after_min = 720    # idle minutes before stopping (0: never)
//!
//! [approvals]
//! timeout_secs = 300      # how long a permission request waits for Allow/Deny
//!
//! [network]               # the default network policy of new tasks
//! mode = "allowlist"      # allowlist | none | open
//! allow = ["example.com", "*.example.org", "host.docker.internal:8080"]  # added to the built-in list
//!
//! [env]                   # handed to every agent at start (gateways, base URLs)
//! ANTHROPIC_BASE_URL = "https://llm-gateway.example.com"
//!
//! [agents.myagent]        # add or override agent profiles (see the agents crate)
//! command = ["myagent", "--prompt", "{prompt}"]
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Everything the settings file can hold. Unknown keys are errors (a typo should
/// not be silently ignored).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Sandbox defaults and the resource governor.
    #[serde(default)]
    pub sandbox: SandboxSettings,
    /// Approvals from anywhere.
    #[serde(default)]
    pub approvals: ApprovalSettings,
    /// The default network policy of new tasks.
    #[serde(default)]
    pub network: NetworkSettings,
    /// Environment variables handed to every agent at each start (through the same
    /// channel as credentials, so never in `docker inspect`): gateways and base URLs
    /// such as `ANTHROPIC_BASE_URL`, `OPENAI_BASE_URL`, `GOOGLE_GEMINI_BASE_URL`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Agent profiles added or overridden by the user, by name; each value is a
    /// table the agents crate reads (kept raw here so core stays free of profiles).
    #[serde(default)]
    pub agents: BTreeMap<String, toml::Table>,
}

/// `[sandbox]`: per-task caps and the governor. Every field optional; the
/// environment (`ANYCODE_CPUS`, `ANYCODE_MEMORY_MB`, `ANYCODE_MAX_RUNNING`,
/// `ANYCODE_PAUSE_AFTER_MIN`, `ANYCODE_STOP_AFTER_MIN`) overrides the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// Default CPU cap of a task, in CPUs (e.g. 2.0).
    pub cpus: Option<f64>,
    /// Default memory cap of a task, in MiB.
    pub memory_mb: Option<u64>,
    /// How many sandboxes may run at once; further tasks wait in a queue.
    pub max_running: Option<u32>,
    /// Minutes without terminal input or output before a sandbox is paused (0: never).
    pub pause_after_min: Option<f64>,
    /// Minutes without terminal input or output before a sandbox is stopped (0: never).
    pub stop_after_min: Option<f64>,
}

/// `[approvals]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// Seconds a permission request waits for Allow or Deny from AnyCode before the
    /// agent falls back to asking in its terminal.
    pub timeout_secs: Option<u64>,
}

/// `[network]`: the default network policy of new tasks (a project's default and
/// the task's own request come on top).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    /// `allowlist` (the default), `none` or `open`.
    pub mode: Option<crate::NetworkMode>,
    /// Host patterns added to the built-in allow list (the engine checks them).
    #[serde(default)]
    pub allow: Vec<String>,
}

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file exists but cannot be read.
    #[error("cannot read the settings file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types; the message
    /// names the line and key.
    #[error("the settings file {path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The TOML parser's message (line, column, key).
        message: String,
    },
}

impl Settings {
    /// The settings file's path: `ANYCODE_CONFIG`, else the platform's config dir
    /// + `anycode/config.toml`.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os("ANYCODE_CONFIG").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        dirs::config_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".config")))
            .unwrap_or_else(std::env::temp_dir)
            .join("anycode")
            .join("config.toml")
    }

    /// Reads `path`; a missing file gives the defaults.
    ///
    /// Errors: [`SettingsError::Read`] (permissions, a folder), [`SettingsError::Invalid`].
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Settings::parse(&text).map_err(|message| SettingsError::Invalid { path: path.to_path_buf(), message }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(source) => Err(SettingsError::Read { path: path.to_path_buf(), source }),
        }
    }

    /// Parses settings from TOML text; the error is the parser's message.
    pub fn parse(text: &str) -> Result<Settings, String> {
        let s: Settings = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        for k in s.env.keys() {
            let ok = !k.is_empty() && !k.as_bytes()[0].is_ascii_digit() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !ok {
                return Err(format!("[env]: {k:?} is not an environment variable name"));
            }
        }
        if let Some(c) = s.sandbox.cpus {
            if !(c > 0.0 && c <= 1024.0) {
                return Err(format!("[sandbox] cpus = {c}: give a number of CPUs above 0"));
            }
        }
        if s.sandbox.memory_mb == Some(0) {
            return Err("[sandbox] memory_mb = 0: give MiB above 0".into());
        }
        if s.sandbox.max_running == Some(0) {
            return Err("[sandbox] max_running = 0: at least one sandbox must be able to run".into());
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file_parses() {
        let s = Settings::parse(
            r#"
[sandbox]
cpus = 1.5
memory_mb = 2048
max_running = 3
pause_after_min = 10
stop_after_min = 0

[approvals]
timeout_secs = 60

[network]
mode = "none"
allow = ["example.com"]

[env]
ANTHROPIC_BASE_URL = "http://gw.internal:8080"

[agents.mine]
command = ["mine", "{prompt}"]
"#,
        )
        .unwrap();
        assert_eq!(s.sandbox.cpus, Some(1.5));
        assert_eq!(s.sandbox.max_running, Some(3));
        assert_eq!(s.approvals.timeout_secs, Some(60));
        assert_eq!(s.network.mode, Some(crate::NetworkMode::None));
        assert_eq!(s.network.allow, ["example.com"]);
        assert_eq!(s.env["ANTHROPIC_BASE_URL"], "http://gw.internal:8080");
        assert!(s.agents["mine"].contains_key("command"));
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let e = Settings::parse("[sandbox]\ncpu = 2\n").unwrap_err();
        assert!(e.contains("cpu"), "{e}");
        assert!(Settings::parse("[sandbox]\ncpus = -1\n").unwrap_err().contains("cpus"));
        assert!(Settings::parse("[sandbox]\nmax_running = 0\n").unwrap_err().contains("max_running"));
        assert!(Settings::parse("[env]\n\"A B\" = \"x\"\n").unwrap_err().contains("A B"));
        assert!(Settings::parse("[sandbox\n").is_err());
        assert!(Settings::parse("[network]\nmode = \"closed\"\n").unwrap_err().contains("closed"));
    }

    #[test]
    fn missing_file_is_defaults_and_a_folder_is_an_error() {
        let dir = std::env::temp_dir().join(format!("anycode-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Settings::load(&dir.join("nope.toml")).unwrap(), Settings::default());
        assert!(matches!(Settings::load(&dir), Err(SettingsError::Read { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
