//! Agent profiles: which agent CLIs AnyCode can run in a sandbox, and how.
//!
//! A [`Profile`] says how an agent is installed (Dockerfile lines of an image
//! variant built `FROM` the base sandbox image; none for Claude Code, which the base
//! image ships, and the shell), how it starts with the task's prompt and without
//! one, how it resumes after a restart, which credentials and base-URL variables
//! (gateways) it takes, whether it reports its state through hooks (Claude Code
//! only), and the prompt pattern the screen heuristic looks for when it does not.
//!
//! [`Profiles::from_settings`] starts from the built-ins (`claude`, `codex`,
//! `gemini`, `aider`, `goose`, `shell`) and applies the settings file's
//! `[agents.NAME]` tables: a known name merges the table over the built-in, a new
//! name adds a profile (then `command` is required). Unknown keys, wrong types, bad
//! names and bad regular expressions are [`Error::InvalidProfile`] naming the table
//! and key. [`Profiles::get`] of a name without a profile is
//! [`Error::UnknownAgent`], listing the names.
//!
//! Pure data: no I/O, no Docker; the engine builds the variants and runs the
//! commands (through the sandbox's `start-agent`).

use regex::Regex;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

/// Where the task's prompt goes in a command's argv: an element equal to it is the
/// prompt (dropped when there is none); inside a longer element it is replaced.
pub const PROMPT: &str = "{prompt}";

/// The credential providers a profile can take, as the credentials crate names them:
/// `claude` (the Claude subscription login, `CLAUDE_CODE_OAUTH_TOKEN`), `anthropic`
/// (`ANTHROPIC_API_KEY`), `openai` (`OPENAI_API_KEY`), `gemini` (`GEMINI_API_KEY`).
pub const PROVIDERS: [&str; 4] = ["claude", "anthropic", "openai", "gemini"];

/// Repository prefix of image variants: `anycode-sandbox-<agent>:<hash>`.
pub const VARIANT_REPO_PREFIX: &str = "anycode-sandbox-";

/// Everything that can go wrong with profiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No profile has this name.
    #[error("unknown agent {name:?}: the profiles are {}", known.join(", "))]
    UnknownAgent {
        /// The name asked for (at most 60 characters of it).
        name: String,
        /// Every profile's name, sorted.
        known: Vec<String>,
    },
    /// An `[agents.NAME]` table of the settings file that cannot be used.
    #[error("[agents.{name}]: {message}")]
    InvalidProfile {
        /// The table's name.
        name: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// One agent profile (see the crate docs).
#[derive(Debug, Clone)]
pub struct Profile {
    /// The name tasks use: `claude`, `codex`, … (1 to 32 of `a-z0-9-_`).
    pub name: String,
    /// A human title, e.g. `OpenAI Codex CLI`.
    pub title: String,
    /// Dockerfile lines of the image variant (run as root, after `FROM <base>`);
    /// empty: the base sandbox image is used as it is.
    pub install: Vec<String>,
    /// Why the install may not work everywhere (e.g. goose: no package registry).
    pub install_note: Option<String>,
    /// Start command with the task's prompt; [`PROMPT`] marks where it goes.
    pub command: Vec<String>,
    /// Start command without a prompt.
    pub command_no_prompt: Vec<String>,
    /// Command of later starts (after a stop or a reboot), continuing the agent's
    /// last conversation; `None`: [`Profile::command_no_prompt`].
    pub resume: Option<Vec<String>>,
    /// Credential providers it takes, from [`PROVIDERS`]: `claude` makes the
    /// `subscription` choice possible, the others `api_key` (every one found is
    /// handed over).
    pub credentials: Vec<String>,
    /// Base-URL variables (gateways) handed over from AnyCode's environment when set
    /// there, e.g. `OPENAI_BASE_URL`.
    pub base_url_env: Vec<String>,
    /// Fixed, non-secret variables for the agent (e.g. `AIDER_CHECK_UPDATE=false`).
    pub env: BTreeMap<String, String>,
    /// Whether the agent reports its state through hooks (Claude Code); the others
    /// get the screen heuristic.
    pub hooks: bool,
    /// What the agent's input prompt looks like on screen (matched against the last
    /// lines, escapes stripped); `None`: no screen heuristic.
    pub prompt_pattern: Option<Regex>,
    /// Whether it is one of AnyCode's (possibly overridden by the user).
    pub builtin: bool,
    /// Whether the settings file changed or added it.
    pub customized: bool,
}

impl Profile {
    /// The argv of the first start: [`Profile::command`] with the prompt in place of
    /// [`PROMPT`], or [`Profile::command_no_prompt`] without one.
    pub fn start_argv(&self, prompt: Option<&str>) -> Vec<String> {
        match prompt.filter(|p| !p.trim().is_empty()) {
            Some(p) => self.command.iter().map(|a| if a == PROMPT { p.to_string() } else { a.replace(PROMPT, p) }).collect(),
            None => self.command_no_prompt.clone(),
        }
    }

    /// The argv of later starts: [`Profile::resume`], else the command without a
    /// prompt (the prompt was submitted once already).
    pub fn resume_argv(&self) -> Vec<String> {
        self.resume.clone().unwrap_or_else(|| self.command_no_prompt.clone())
    }

    /// The credential choices that make sense: `none` always, `subscription` when it
    /// takes the Claude login, `api_key` when it takes an API key.
    pub fn credential_choices(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.takes_subscription() {
            v.push("subscription");
        }
        if !self.api_key_providers().is_empty() {
            v.push("api_key");
        }
        v.push("none");
        v
    }

    /// Whether it takes the Claude subscription login.
    pub fn takes_subscription(&self) -> bool {
        self.credentials.iter().any(|c| c == "claude")
    }

    /// Its API-key providers (`anthropic`, `openai`, `gemini`), in its order.
    pub fn api_key_providers(&self) -> Vec<&str> {
        self.credentials.iter().map(String::as_str).filter(|c| *c != "claude").collect()
    }

    /// The Dockerfile of its image variant built on `base`, or `None` when it needs
    /// none. The install lines run as root; the variant runs as the base's `agent`.
    pub fn variant_dockerfile(&self, base: &str) -> Option<String> {
        if self.install.is_empty() {
            return None;
        }
        // HOME is root's while installing, so what an installer writes there (a
        // `--version` run creating ~/.codex, say) does not end up root-owned in the
        // agent's home.
        let mut d = format!("# The {} variant of AnyCode's sandbox ({}).\nFROM {base}\nUSER root\nENV HOME=/root\n", self.name, self.title);
        for line in &self.install {
            d.push_str(line.trim_end());
            d.push('\n');
        }
        d.push_str("ENV HOME=/home/agent\nUSER agent\nWORKDIR /workspace\n");
        Some(d)
    }

    /// The variant's tag on `base`: `anycode-sandbox-<name>:<16 hex digits of a
    /// sha256 over the base tag and the Dockerfile>`, so a new base or changed install
    /// lines give a new tag. `None` when it needs no variant.
    pub fn variant_tag(&self, base: &str) -> Option<String> {
        let dockerfile = self.variant_dockerfile(base)?;
        let mut h = Sha256::new();
        h.update(base.as_bytes());
        h.update([0]);
        h.update(dockerfile.as_bytes());
        Some(format!("{VARIANT_REPO_PREFIX}{}:{}", self.name, &hex::encode(h.finalize())[..16]))
    }

    /// The image a task of this profile runs in: the variant, or `base`.
    pub fn image(&self, base: &str) -> String {
        self.variant_tag(base).unwrap_or_else(|| base.to_string())
    }

    /// Whether the screen heuristic watches this agent: no hooks and a prompt pattern.
    pub fn uses_screen_heuristic(&self) -> bool {
        !self.hooks && self.prompt_pattern.is_some()
    }
}

/// The profiles in force: the built-ins with the settings file's changes.
#[derive(Debug, Clone)]
pub struct Profiles {
    map: BTreeMap<String, Profile>,
}

impl Default for Profiles {
    fn default() -> Self {
        Profiles::builtin()
    }
}

impl Profiles {
    /// The built-in profiles only.
    pub fn builtin() -> Profiles {
        Profiles { map: builtins().into_iter().map(|p| (p.name.clone(), p)).collect() }
    }

    /// The built-ins with the settings file's `[agents.NAME]` tables applied (see the
    /// crate docs).
    ///
    /// Errors: [`Error::InvalidProfile`] for the first table that cannot be used.
    pub fn from_settings(agents: &BTreeMap<String, toml::Table>) -> Result<Profiles, Error> {
        let mut profiles = Profiles::builtin();
        for (name, table) in agents {
            let invalid = |message: String| Error::InvalidProfile { name: name.clone(), message };
            if name.parse::<anycode_core::Agent>().is_err() {
                return Err(invalid("a profile name needs 1 to 32 of a-z, 0-9, - and _, starting with a letter".into()));
            }
            let o = Override::deserialize(toml::Value::Table(table.clone())).map_err(|e| invalid(e.to_string().trim_end().to_string()))?;
            let merged = match profiles.map.remove(name) {
                Some(base) => o.merge_over(base).map_err(invalid)?,
                None => o.into_new(name).map_err(invalid)?,
            };
            profiles.map.insert(name.clone(), merged);
        }
        Ok(profiles)
    }

    /// The profile named `name`.
    ///
    /// Errors: [`Error::UnknownAgent`] listing the names.
    pub fn get(&self, name: &str) -> Result<&Profile, Error> {
        self.map
            .get(name)
            .ok_or_else(|| Error::UnknownAgent { name: name.chars().take(60).collect(), known: self.map.keys().cloned().collect() })
    }

    /// Every profile, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Profile> {
        self.map.values()
    }

    /// Every name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
}

/// An `[agents.NAME]` table. Every key optional when it changes a built-in.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Override {
    title: Option<String>,
    /// Dockerfile lines; one string is one line.
    install: Option<Lines>,
    command: Option<Vec<String>>,
    command_no_prompt: Option<Vec<String>>,
    /// An empty list: no resume command.
    resume: Option<Vec<String>>,
    credentials: Option<Vec<String>>,
    base_url_env: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    /// An empty string turns the screen heuristic off.
    prompt_pattern: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Lines {
    One(String),
    Many(Vec<String>),
}

impl Lines {
    fn into_vec(self) -> Vec<String> {
        match self {
            Lines::One(s) => vec![s],
            Lines::Many(v) => v,
        }
    }
}

impl Override {
    /// Applies the table over a built-in.
    fn merge_over(self, mut p: Profile) -> Result<Profile, String> {
        if p.hooks && (self.command.is_some() || self.command_no_prompt.is_some() || self.resume.is_some()) {
            return Err(format!(
                "command, command_no_prompt and resume of {} are AnyCode's own (hooks, permission mode, --continue); override title, install, credentials, base_url_env or env",
                p.title
            ));
        }
        let had_no_prompt = self.command_no_prompt.is_some();
        let mut rest = self;
        if let Some(c) = rest.command.take() {
            p.command = check_argv("command", c)?;
            if !had_no_prompt {
                p.command_no_prompt = without_prompt(&p.command);
            }
        }
        rest.apply_common(&mut p)?;
        p.customized = true;
        Ok(p)
    }

    /// A profile of the user's own.
    fn into_new(self, name: &str) -> Result<Profile, String> {
        let command = match &self.command {
            Some(c) => check_argv("command", c.clone())?,
            None => return Err("command is missing: give the agent's argv, e.g. command = [\"myagent\", \"{prompt}\"]".into()),
        };
        let mut p = Profile {
            name: name.to_string(),
            title: name.to_string(),
            install: vec![],
            install_note: None,
            command_no_prompt: without_prompt(&command),
            command,
            resume: None,
            credentials: vec![],
            base_url_env: vec![],
            env: BTreeMap::new(),
            hooks: false,
            prompt_pattern: None,
            builtin: false,
            customized: true,
        };
        let rest = Override { command: None, ..self };
        rest.apply_common(&mut p)?;
        Ok(p)
    }

    fn apply_common(self, p: &mut Profile) -> Result<(), String> {
        if let Some(t) = self.title {
            let t = t.trim().to_string();
            if t.is_empty() || t.chars().count() > 60 || t.chars().any(char::is_control) {
                return Err("title needs 1 to 60 characters and no control characters".into());
            }
            p.title = t;
        }
        if let Some(c) = self.command_no_prompt {
            let c = check_argv("command_no_prompt", c)?;
            if c.iter().any(|a| a.contains(PROMPT)) {
                return Err(format!("command_no_prompt has {PROMPT}: that is the command without a prompt"));
            }
            p.command_no_prompt = c;
        }
        if let Some(r) = self.resume {
            p.resume = if r.is_empty() { None } else { Some(check_argv("resume", r)?) };
        }
        if let Some(lines) = self.install {
            let lines = lines.into_vec();
            if lines.iter().any(|l| l.trim().is_empty()) {
                return Err("install has an empty line: give Dockerfile lines such as \"RUN npm install -g myagent\"".into());
            }
            if let Some(l) = lines.iter().find(|l| l.trim_start().to_ascii_uppercase().starts_with("FROM ")) {
                return Err(format!("install line {l:?}: the variant is built FROM the sandbox image; leave FROM out"));
            }
            p.install = lines;
            p.install_note = None;
        }
        if let Some(c) = self.credentials {
            if let Some(bad) = c.iter().find(|c| !PROVIDERS.contains(&c.as_str())) {
                return Err(format!("credentials: unknown provider {bad:?}: choose from {}", PROVIDERS.join(", ")));
            }
            p.credentials = c;
        }
        if let Some(v) = self.base_url_env {
            if let Some(bad) = v.iter().find(|k| !is_env_name(k)) {
                return Err(format!("base_url_env: {bad:?} is not an environment variable name"));
            }
            p.base_url_env = v;
        }
        if let Some(env) = self.env {
            if let Some(bad) = env.keys().find(|k| !is_env_name(k)) {
                return Err(format!("env: {bad:?} is not an environment variable name"));
            }
            if let Some((k, _)) = env.iter().find(|(_, v)| v.contains(['\0', '\n'])) {
                return Err(format!("env.{k}: a value cannot hold a newline or NUL"));
            }
            p.env.extend(env);
        }
        if let Some(pat) = self.prompt_pattern {
            p.prompt_pattern = if pat.is_empty() {
                None
            } else {
                Some(Regex::new(&pat).map_err(|e| format!("prompt_pattern is not a valid regular expression: {e}"))?)
            };
        }
        Ok(())
    }
}

fn check_argv(key: &str, argv: Vec<String>) -> Result<Vec<String>, String> {
    match argv.first() {
        None => Err(format!("{key} is empty: give the program and its arguments, e.g. [\"myagent\", \"{PROMPT}\"]")),
        Some(p) if p.trim().is_empty() => Err(format!("{key}: the program (first element) is empty")),
        Some(_) if argv.iter().any(|a| a.contains('\0')) => Err(format!("{key}: an argument holds a NUL")),
        Some(_) => Ok(argv),
    }
}

/// The command without its prompt: elements equal to [`PROMPT`] dropped, the marker
/// removed from longer ones.
fn without_prompt(command: &[String]) -> Vec<String> {
    command.iter().filter(|a| *a != PROMPT).map(|a| a.replace(PROMPT, "")).collect()
}

fn is_env_name(k: &str) -> bool {
    !k.is_empty() && !k.as_bytes()[0].is_ascii_digit() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn pattern(p: &str) -> Option<Regex> {
    // The built-in patterns are constants covered by the tests.
    Regex::new(p).ok()
}

/// The built-in profiles. Versions are pinned so a variant's tag (a hash of its
/// Dockerfile) names one build.
fn builtins() -> Vec<Profile> {
    let base = |name: &str, title: &str| Profile {
        name: name.into(),
        title: title.into(),
        install: vec![],
        install_note: None,
        command: vec![],
        command_no_prompt: vec![],
        resume: None,
        credentials: vec![],
        base_url_env: vec![],
        env: BTreeMap::new(),
        hooks: false,
        prompt_pattern: None,
        builtin: true,
        customized: false,
    };
    vec![
        // Shipped by the base image; start-agent's claude branch starts it (prompt,
        // permission mode, hook settings, --continue), so these argv describe it.
        Profile {
            command: strs(&["claude", PROMPT]),
            command_no_prompt: strs(&["claude"]),
            resume: Some(strs(&["claude", "--continue"])),
            credentials: strs(&["claude", "anthropic"]),
            base_url_env: strs(&["ANTHROPIC_BASE_URL"]),
            hooks: true,
            ..base("claude", "Claude Code")
        },
        Profile {
            install: strs(&["RUN npm install -g --no-fund --no-audit @openai/codex@0.169.0 && codex --version"]),
            command: strs(&["codex", PROMPT]),
            command_no_prompt: strs(&["codex"]),
            resume: Some(strs(&["codex", "resume", "--last"])),
            credentials: strs(&["openai"]),
            base_url_env: strs(&["OPENAI_BASE_URL"]),
            // The composer's footer while it waits for input; the first run's
            // sign-in screen ("Press enter to continue").
            prompt_pattern: pattern(r"(?i)(context left|for shortcuts|to send|ask codex|press enter to continue)"),
            ..base("codex", "OpenAI Codex CLI")
        },
        Profile {
            // Gemini CLI needs Node.js 20 or later; the base image has Debian's 18, so
            // a Node.js 22 from its npm binary package runs it (only it).
            install: strs(&[
                "RUN a=\"$(dpkg --print-architecture)\"; case \"$a\" in amd64) a=x64;; esac \\\n \
                 && npm install -g --no-fund --no-audit --prefix /opt/node22 \"node-linux-$a@22\" \\\n \
                 && ln -sf \"/opt/node22/lib/node_modules/node-linux-$a/bin/node\" /opt/node22/node \\\n \
                 && PATH=/opt/node22:$PATH npm install -g --no-fund --no-audit --prefix /opt/gemini @google/gemini-cli@0.61.0 \\\n \
                 && printf '#!/bin/sh\\nPATH=/opt/node22:$PATH exec /opt/gemini/bin/gemini \"$@\"\\n' > /usr/local/bin/gemini \\\n \
                 && chmod 0755 /usr/local/bin/gemini && gemini --version",
            ]),
            command: strs(&["gemini", "--prompt-interactive", PROMPT]),
            command_no_prompt: strs(&["gemini"]),
            resume: Some(strs(&["gemini", "--resume", "latest"])),
            credentials: strs(&["gemini"]),
            base_url_env: strs(&["GOOGLE_GEMINI_BASE_URL"]),
            prompt_pattern: pattern(r"(?i)(type your message|@path/to/file)"),
            ..base("gemini", "Gemini CLI")
        },
        Profile {
            install: strs(&[
                "RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/* \\\n \
                 && python3 -m venv /opt/aider && /opt/aider/bin/pip install --no-cache-dir aider-chat==0.86.2 \\\n \
                 && ln -s /opt/aider/bin/aider /usr/local/bin/aider && aider --version",
            ]),
            // aider's --message sends one message and exits; the interactive aider
            // after it continues that chat.
            command: strs(&["bash", "-c", "aider --message \"$1\"; exec aider --restore-chat-history", "aider", PROMPT]),
            command_no_prompt: strs(&["aider"]),
            resume: Some(strs(&["aider", "--restore-chat-history"])),
            credentials: strs(&["anthropic", "openai", "gemini"]),
            base_url_env: strs(&["OPENAI_API_BASE", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_BASE", "GEMINI_API_BASE"]),
            env: [("AIDER_CHECK_UPDATE", "false"), ("AIDER_ANALYTICS", "false"), ("AIDER_GITIGNORE", "false")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            // `> `, or `architect> `, `ask> ` … in other chat modes.
            prompt_pattern: pattern(r"(?m)^[\w-]*>\s*$"),
            ..base("aider", "aider")
        },
        Profile {
            install: strs(&[
                "RUN curl -fsSL https://github.com/block/goose/releases/download/stable/download_cli.sh | CONFIGURE=false GOOSE_BIN_DIR=/usr/local/bin bash && goose --version",
            ]),
            install_note: Some(
                "goose is on no package registry (crates.io's goose-cli is another program): this downloads Block's release binary from GitHub, \
                 so the variant builds only where GitHub is reachable; else override [agents.goose] install"
                    .into(),
            ),
            command: strs(&["goose", "run", "--interactive", "--text", PROMPT]),
            command_no_prompt: strs(&["goose", "session"]),
            resume: Some(strs(&["goose", "session", "--resume"])),
            credentials: strs(&["anthropic", "openai", "gemini"]),
            base_url_env: strs(&["ANTHROPIC_HOST", "OPENAI_HOST", "GOOSE_PROVIDER", "GOOSE_MODEL"]),
            prompt_pattern: pattern(r"\( ?O\)>"),
            ..base("goose", "goose")
        },
        // A login shell is always at its prompt, so no screen heuristic.
        Profile {
            command: strs(&["bash", "-l"]),
            command_no_prompt: strs(&["bash", "-l"]),
            credentials: PROVIDERS.iter().map(|p| p.to_string()).collect(),
            base_url_env: strs(&["ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"]),
            ..base("shell", "Shell")
        },
    ]
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.title)
    }
}

/// The last lines of a terminal's output as text: escape sequences (CSI, OSC, two-
/// byte escapes) removed, a carriage return starting its line over, trailing blanks
/// trimmed, empty lines skipped; at most `lines` lines, oldest first.
pub fn screen_tail(bytes: &[u8], lines: usize) -> Vec<String> {
    let text = strip_escapes(bytes);
    let mut out: Vec<String> = Vec::new();
    for raw in text.split('\n') {
        // A carriage return without a newline redraws the line: keep what followed.
        let line = raw.rsplit('\r').find(|s| !s.trim().is_empty()).unwrap_or("");
        let line = line.trim_end();
        if !line.is_empty() {
            out.push(line.to_string());
        }
    }
    let skip = out.len().saturating_sub(lines);
    out.split_off(skip)
}

/// Removes terminal escape sequences and other control characters (but `\n`, `\r`,
/// `\t`) from output, decoding it as UTF-8 (lossily).
pub fn strip_escapes(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\x1b' => match it.next() {
                Some('[') => {
                    // CSI: parameters, then one final byte in @..~.
                    for c in it.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') | Some('P') | Some('_') | Some('^') => {
                    // OSC/DCS/APC/PM: up to BEL or ST (ESC \).
                    while let Some(c) = it.next() {
                        if c == '\x07' {
                            break;
                        }
                        if c == '\x1b' && it.peek() == Some(&'\\') {
                            it.next();
                            break;
                        }
                    }
                }
                Some('(') | Some(')') | Some('*') | Some('+') => {
                    it.next();
                }
                _ => {}
            },
            '\n' | '\r' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> BTreeMap<String, toml::Table> {
        let t: toml::Table = toml::from_str(text).unwrap();
        t.into_iter().map(|(k, v)| (k, v.as_table().unwrap().clone())).collect()
    }

    #[test]
    fn builtins_are_complete_and_consistent() {
        let p = Profiles::builtin();
        assert_eq!(p.names(), ["aider", "claude", "codex", "gemini", "goose", "shell"]);
        for prof in p.iter() {
            assert!(!prof.command.is_empty() && !prof.command_no_prompt.is_empty(), "{prof}");
            assert!(prof.credentials.iter().all(|c| PROVIDERS.contains(&c.as_str())), "{prof}");
            assert_eq!(prof.hooks, prof.name == "claude");
            assert!(!prof.command_no_prompt.iter().any(|a| a.contains(PROMPT)), "{prof}");
            if !["claude", "shell"].contains(&prof.name.as_str()) {
                assert!(prof.command.iter().any(|a| a.contains(PROMPT)), "{prof} takes the prompt");
                assert!(prof.prompt_pattern.is_some(), "{prof} has a prompt pattern");
                assert!(!prof.install.is_empty(), "{prof} is a variant");
            }
        }
        assert!(p.get("claude").unwrap().install.is_empty());
        assert!(p.get("shell").unwrap().install.is_empty());
        assert!(p.get("goose").unwrap().install_note.is_some());
        assert_eq!(p.get("codex").unwrap().credential_choices(), ["api_key", "none"]);
        assert_eq!(p.get("claude").unwrap().credential_choices(), ["subscription", "api_key", "none"]);
    }

    #[test]
    fn argv_with_and_without_prompt() {
        let p = Profiles::builtin();
        let codex = p.get("codex").unwrap();
        assert_eq!(codex.start_argv(Some("fix the bug")), ["codex", "fix the bug"]);
        assert_eq!(codex.start_argv(None), ["codex"]);
        assert_eq!(codex.start_argv(Some("  ")), ["codex"]);
        assert_eq!(codex.resume_argv(), ["codex", "resume", "--last"]);
        let gemini = p.get("gemini").unwrap();
        assert_eq!(gemini.start_argv(Some("it's \"quoted\"; $(rm -rf /)")), ["gemini", "--prompt-interactive", "it's \"quoted\"; $(rm -rf /)"]);
        let aider = p.get("aider").unwrap();
        assert_eq!(aider.start_argv(Some("x"))[4], "x");
    }

    #[test]
    fn user_profiles_and_overrides_merge() {
        let p = Profiles::from_settings(&settings(
            r#"
[mine]
title = "My agent"
command = ["my-agent", "--task={prompt}"]
install = "RUN echo hi > /opt/hi"
credentials = ["openai"]
base_url_env = ["MY_BASE_URL"]
prompt_pattern = "ready> $"

[codex]
install = ["RUN npm install -g @openai/codex@0.1.0"]
env = { CODEX_HOME = "/home/agent/.codex" }

[claude]
base_url_env = ["ANTHROPIC_BASE_URL", "ANTHROPIC_BEDROCK_BASE_URL"]
"#,
        ))
        .unwrap();
        let mine = p.get("mine").unwrap();
        assert_eq!(mine.title, "My agent");
        assert!(!mine.builtin && mine.customized && !mine.hooks);
        assert_eq!(mine.start_argv(Some("go")), ["my-agent", "--task=go"]);
        assert_eq!(mine.start_argv(None), ["my-agent", "--task="]);
        assert_eq!(mine.resume_argv(), ["my-agent", "--task="]);
        assert_eq!(mine.install, ["RUN echo hi > /opt/hi"]);
        assert!(mine.uses_screen_heuristic());
        let codex = p.get("codex").unwrap();
        assert!(codex.builtin && codex.customized);
        assert_eq!(codex.install, ["RUN npm install -g @openai/codex@0.1.0"]);
        assert_eq!(codex.command, ["codex", PROMPT], "untouched keys keep the built-in's");
        assert_eq!(codex.env["CODEX_HOME"], "/home/agent/.codex");
        let claude = p.get("claude").unwrap();
        assert!(claude.hooks);
        assert_eq!(claude.base_url_env.len(), 2);
        // A new command without its own no-prompt form drops the prompt element.
        let p = Profiles::from_settings(&settings("[x]\ncommand = [\"x\", \"-p\", \"{prompt}\"]\nresume = []\n")).unwrap();
        assert_eq!(p.get("x").unwrap().command_no_prompt, ["x", "-p"]);
        assert_eq!(p.get("x").unwrap().resume, None);
    }

    #[test]
    fn bad_tables_name_the_key() {
        let err = |text: &str| Profiles::from_settings(&settings(text)).unwrap_err().to_string();
        let e = err("[mine]\ncomand = [\"x\"]\n");
        assert!(e.starts_with("[agents.mine]") && e.contains("comand"), "{e}");
        assert!(err("[mine]\ntitle = \"x\"\n").contains("command is missing"));
        assert!(err("[mine]\ncommand = []\n").contains("command is empty"));
        assert!(err("[mine]\ncommand = \"x\"\n").contains("[agents.mine]"));
        assert!(err("[mine]\ncommand = [\"x\"]\ncredentials = [\"aws\"]\n").contains("unknown provider \"aws\""));
        assert!(err("[mine]\ncommand = [\"x\"]\nprompt_pattern = \"(\"\n").contains("prompt_pattern"));
        assert!(err("[mine]\ncommand = [\"x\"]\nbase_url_env = [\"A B\"]\n").contains("base_url_env"));
        assert!(err("[mine]\ncommand = [\"x\"]\ninstall = [\"FROM debian\"]\n").contains("FROM"));
        assert!(err("[mine]\ncommand = [\"x\"]\nenv = { \"1X\" = \"y\" }\n").contains("env"));
        assert!(err("[Bad]\ncommand = [\"x\"]\n").contains("[agents.Bad]"));
        assert!(err("[claude]\ncommand = [\"x\"]\n").contains("AnyCode's own"));
        assert!(err("[mine]\ncommand = [\"x\"]\ntitle = \"\"\n").contains("title"));
    }

    #[test]
    fn unknown_agents_list_the_names() {
        let e = Profiles::builtin().get("nope").unwrap_err();
        assert_eq!(e.to_string(), "unknown agent \"nope\": the profiles are aider, claude, codex, gemini, goose, shell");
    }

    #[test]
    fn variants_are_tagged_by_base_and_lines() {
        let p = Profiles::builtin();
        let codex = p.get("codex").unwrap();
        let a = codex.variant_tag("anycode-sandbox:aaaa").unwrap();
        assert!(a.starts_with("anycode-sandbox-codex:"));
        assert_ne!(a, codex.variant_tag("anycode-sandbox:bbbb").unwrap());
        assert_eq!(a, codex.variant_tag("anycode-sandbox:aaaa").unwrap());
        let d = codex.variant_dockerfile("anycode-sandbox:aaaa").unwrap();
        assert!(d.contains("FROM anycode-sandbox:aaaa\nUSER root\nENV HOME=/root\nRUN npm install"), "{d}");
        assert!(d.ends_with("ENV HOME=/home/agent\nUSER agent\nWORKDIR /workspace\n"), "{d}");
        assert_eq!(p.get("claude").unwrap().image("base:1"), "base:1");
        let changed = Profiles::from_settings(&settings("[codex]\ninstall = \"RUN true\"\n")).unwrap();
        assert_ne!(changed.get("codex").unwrap().variant_tag("anycode-sandbox:aaaa").unwrap(), a);
    }

    #[test]
    fn screen_tail_strips_escapes() {
        let out = b"\x1b[2J\x1b[H\x1b]0;title\x07working...\r\n\x1b[32mdone\x1b[0m\r\n\r\nprogress 10%\rprogress 100%\r\n\x1b[1mready> \x1b[0m";
        assert_eq!(screen_tail(out, 3), ["done", "progress 100%", "ready>"]);
        assert_eq!(screen_tail(out, 1), ["ready>"]);
        assert!(screen_tail(b"", 5).is_empty());
        let aider = Profiles::builtin();
        let re = aider.get("aider").unwrap().prompt_pattern.clone().unwrap();
        assert!(re.is_match(&screen_tail(b"some answer\r\n\r\n> ", 3).join("\n")));
        assert!(re.is_match(&screen_tail(b"architect> ", 3).join("\n")));
        assert!(!re.is_match(&screen_tail(b"Thinking...", 3).join("\n")));
        let codex = aider.get("codex").unwrap().prompt_pattern.clone().unwrap();
        assert!(codex.is_match(&screen_tail(b"  3. Sign in another way\r\n  Press enter to continue\r\n", 6).join("\n")));
        let goose = aider.get("goose").unwrap().prompt_pattern.clone().unwrap();
        assert!(goose.is_match("( O)> "));
    }
}
