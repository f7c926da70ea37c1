//! The engine's side of agent profiles (`anycode-agents`): the profiles in force,
//! the image a task runs in (the base sandbox image, or a profile's variant built on
//! demand), the variables handed to the agent besides its credential (the settings'
//! `[env]`, the profile's base-URL variables from AnyCode's environment, its fixed
//! `env`), the list for `GET /api/agents`, and the screen heuristic for agents
//! without hooks.
//!
//! The screen heuristic: one watcher per live task whose profile has a prompt
//! pattern and no hooks, ticking every [`SCREEN_TICK`]. Output since the last tick
//! → `running`; no output for [`SCREEN_QUIET`] and the prompt pattern matching the
//! last lines of the screen (escapes stripped, from the scrollback's tail only) →
//! `waiting_input` with the prompt's line as the message. It ends with the process
//! (stop, exit) or when a newer watcher of the same task starts.

use crate::{blocking, BuildEvent, Engine, Error, Result};
use anycode_agents::{Profile, Profiles};
use anycode_core::{Attention, Credential, Task, TaskStatus};
use anycode_credentials::{Provider, Sources, State};
use anycode_terminal::Terminal;
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// How often a screen watcher looks at its terminal.
pub const SCREEN_TICK: Duration = Duration::from_millis(500);
/// How long the output must stay unchanged before a visible prompt means the agent
/// waits for input.
pub const SCREEN_QUIET: Duration = Duration::from_secs(2);
/// Bytes of the scrollback's tail the heuristic reads.
const SCREEN_TAIL_BYTES: usize = 4096;
/// Lines of the screen's bottom the prompt pattern is matched against.
const SCREEN_LINES: usize = 6;

/// An agent profile as `GET /api/agents` and `anycode agents` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// The profile's name (`claude`, `codex`, …).
    pub name: String,
    /// Its title (`OpenAI Codex CLI`).
    pub title: String,
    /// Whether it reports its state through hooks (else: the screen heuristic).
    pub hooks: bool,
    /// The image its tasks run in: the base sandbox image or its variant's tag.
    pub image: String,
    /// Whether that image exists now (a variant is built on the first task).
    pub image_ready: bool,
    /// The credential a new task of it gets by default: `subscription`, `api_key`, `none`.
    pub credential: String,
    /// The credential choices it takes (`none` always).
    pub credentials: Vec<String>,
    /// One of AnyCode's built-ins (possibly changed by the settings file).
    pub builtin: bool,
    /// Changed or added by the settings file.
    pub customized: bool,
    /// Why its install may fail here, if it may (goose).
    pub install_note: Option<String>,
}

/// The credential provider of a profile's provider name.
fn provider(name: &str) -> Option<Provider> {
    Provider::ALL.into_iter().find(|p| p.as_str() == name)
}

/// The providers whose credential a task of `profile` with `choice` gets, in order.
pub(crate) fn providers_for(profile: Option<&Profile>, choice: Credential) -> Vec<Provider> {
    match (choice, profile) {
        (Credential::None, _) => vec![],
        (Credential::Subscription, _) => vec![Provider::Claude],
        (Credential::ApiKey, Some(p)) => p.api_key_providers().into_iter().filter_map(provider).collect(),
        (Credential::ApiKey, None) => vec![Provider::Anthropic],
    }
}

/// base64 of the NUL-terminated elements of `argv` (what start-agent decodes into
/// an argv, so any argument survives: spaces, quotes, newlines).
pub(crate) fn encode_argv(argv: &[String]) -> String {
    let mut raw = Vec::new();
    for a in argv {
        raw.extend_from_slice(a.as_bytes());
        raw.push(0);
    }
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// The default credential of `profile` given what is found: none when it takes
/// none; the subscription when it takes it and a Claude login or token is found
/// (even an expired one: the task then says so); the API key when one of its
/// providers has one; else its first choice, so the task says none was found.
fn default_for(profile: &Profile, found: &mut impl FnMut(Provider) -> (State, bool)) -> Credential {
    if profile.name == anycode_core::Agent::SHELL || profile.credentials.is_empty() {
        return Credential::None;
    }
    if profile.takes_subscription() && found(Provider::Claude).0 != State::Missing {
        return Credential::Subscription;
    }
    let keys: Vec<Provider> = profile.api_key_providers().into_iter().filter_map(provider).collect();
    if keys.iter().any(|p| found(*p).1) {
        return Credential::ApiKey;
    }
    if profile.takes_subscription() {
        Credential::Subscription
    } else {
        Credential::ApiKey
    }
}

/// A lookup of each provider at most once: `(state, whether a secret was found)`.
fn cached_lookup(sources: &Sources) -> impl FnMut(Provider) -> (State, bool) + '_ {
    let mut cache: HashMap<Provider, (State, bool)> = HashMap::new();
    let now = anycode_credentials::now_ms();
    move |p| {
        *cache.entry(p).or_insert_with(|| {
            let f = anycode_credentials::lookup(sources, p, now);
            (f.status.state, f.secret.is_some())
        })
    }
}

impl Engine {
    /// The agent profiles in force (built-ins and the settings file's `[agents]`).
    pub fn profiles(&self) -> &Profiles {
        &self.inner.profiles
    }

    /// The profile named `name`. Errors: `UNKNOWN_AGENT`, listing the names.
    pub fn profile(&self, name: &str) -> Result<&Profile> {
        self.inner.profiles.get(name).map_err(Error::Agents)
    }

    /// Every profile with its image and whether that exists (false when Docker does
    /// not answer), and its default credential.
    pub async fn agents(&self) -> Result<Vec<AgentInfo>> {
        let base = crate::sandbox_image_tag(&self.inner.config)?;
        let docker = self.docker().await.ok();
        let profiles: Vec<Profile> = self.inner.profiles.iter().cloned().collect();
        let sources = self.credential_sources();
        let defaults = {
            let profiles = profiles.clone();
            blocking(move || {
                let mut found = cached_lookup(&sources);
                Ok(profiles.iter().map(|p| default_for(p, &mut found)).collect::<Vec<_>>())
            })
            .await?
        };
        let mut out = Vec::new();
        for (p, credential) in profiles.iter().zip(defaults) {
            let image = p.image(&base);
            let image_ready = match &docker {
                Some(d) => d.image_exists(&image).await.unwrap_or(false),
                None => false,
            };
            out.push(AgentInfo {
                name: p.name.clone(),
                title: p.title.clone(),
                hooks: p.hooks,
                image,
                image_ready,
                credential: credential.as_str().to_string(),
                credentials: p.credential_choices().into_iter().map(str::to_string).collect(),
                builtin: p.builtin,
                customized: p.customized,
                install_note: p.install_note.clone(),
            });
        }
        Ok(out)
    }

    /// Makes sure the image of `agent`'s tasks exists: the base sandbox image
    /// ([`Engine::ensure_image`]), then the profile's variant built `FROM` it when it
    /// has install lines and is missing (one build at a time), reporting progress.
    /// Returns the tag.
    ///
    /// Errors: `UNKNOWN_AGENT`; `DOCKER_UNAVAILABLE`; a failed build with Docker's
    /// message and the last output lines.
    pub async fn ensure_agent_image(&self, agent: &str, mut progress: impl FnMut(BuildEvent) + Send) -> Result<String> {
        let profile = self.profile(agent)?.clone();
        let base = self.ensure_image(&mut progress).await?;
        let (Some(tag), Some(dockerfile)) = (profile.variant_tag(&base), profile.variant_dockerfile(&base)) else {
            return Ok(base);
        };
        let docker = self.docker().await?;
        // Two tasks of the same new variant must not build it twice.
        let _one_build = self.inner.variant_build.lock().await;
        docker.ensure_variant(&tag, &dockerfile, &mut progress).await?;
        Ok(tag)
    }

    /// Checks a task's credential choice against its profile.
    ///
    /// Errors: `INVALID_INPUT` naming the choices the profile takes.
    pub(crate) fn check_credential(&self, profile: &Profile, choice: Credential) -> Result<()> {
        let ok = match choice {
            Credential::None => true,
            Credential::Subscription => profile.takes_subscription(),
            Credential::ApiKey => !profile.api_key_providers().is_empty(),
        };
        if ok {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "{} takes no {} credential: choose {}",
                profile.name,
                choice.as_str(),
                profile.credential_choices().join(" or ")
            )))
        }
    }

    /// The default credential of a new task of `profile` (see [`default_for`]).
    pub(crate) async fn default_credential_for(&self, profile: &Profile) -> Result<Credential> {
        let sources = self.credential_sources();
        let profile = profile.clone();
        blocking(move || Ok(default_for(&profile, &mut cached_lookup(&sources)))).await
    }

    /// What the agent gets besides its credential, at every start through the
    /// handover (never `docker inspect`): the profile's fixed `env`, then the
    /// settings' `[env]`, then the profile's base-URL variables from AnyCode's own
    /// environment (which wins, as for every setting).
    pub(crate) fn agent_vars(&self, task: &Task) -> Vec<(String, String)> {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        let profile = self.inner.profiles.get(task.agent.as_str()).ok();
        if let Some(p) = profile {
            vars.extend(p.env.clone());
        }
        vars.extend(self.inner.config.settings.env.clone());
        if let Some(p) = profile {
            for k in &p.base_url_env {
                if let Some(v) = std::env::var(k).ok().filter(|v| !v.trim().is_empty()) {
                    vars.insert(k.clone(), v);
                }
            }
        }
        vars.into_iter().collect()
    }

    /// Starts the screen watcher of a task whose agent has no hooks (see the module
    /// docs); a watcher of an earlier run of the task stops.
    pub(crate) fn watch_screen(&self, task: &Task, terminal: &Terminal) {
        let Ok(profile) = self.inner.profiles.get(task.agent.as_str()) else { return };
        let Some(pattern) = profile.prompt_pattern.clone().filter(|_| profile.uses_screen_heuristic()) else { return };
        let generation = {
            let mut w = self.inner.screen_watchers.lock().unwrap_or_else(|p| p.into_inner());
            let g = w.entry(task.id.clone()).or_default();
            *g += 1;
            *g
        };
        let engine = self.clone();
        let task_id = task.id.clone();
        let terminal = terminal.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SCREEN_TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen: Option<Instant> = None;
            let mut state: Option<TaskStatus> = None;
            // The output stamp whose quiet screen was already read.
            let mut checked = None;
            loop {
                tick.tick().await;
                let current = engine.inner.screen_watchers.lock().unwrap_or_else(|p| p.into_inner()).get(&task_id).copied();
                if current != Some(generation) || terminal.exited().is_some() || !terminal.is_live() {
                    break;
                }
                let last = terminal.last_output();
                if last != seen {
                    seen = last;
                    if state != Some(TaskStatus::Running) && engine.set_agent_state(&task_id, TaskStatus::Running, None) {
                        state = Some(TaskStatus::Running);
                    }
                    continue;
                }
                let quiet = last.is_none_or(|t| t.elapsed() >= SCREEN_QUIET);
                // The screen is read once per quiet spell: until output comes, it stays
                // what it was.
                if !quiet || state == Some(TaskStatus::WaitingInput) || checked == Some(last) {
                    continue;
                }
                checked = Some(last);
                let lines = anycode_agents::screen_tail(&terminal.tail(SCREEN_TAIL_BYTES), SCREEN_LINES);
                if pattern.is_match(&lines.join("\n")) {
                    let message = lines.last().map(|l| l.chars().take(200).collect::<String>());
                    let attention = Attention { tool: None, input: None, message, since: anycode_core::now_rfc3339() };
                    engine.set_agent_state(&task_id, TaskStatus::WaitingInput, Some(attention));
                    state = Some(TaskStatus::WaitingInput);
                }
            }
            let mut w = engine.inner.screen_watchers.lock().unwrap_or_else(|p| p.into_inner());
            if w.get(&task_id) == Some(&generation) {
                w.remove(&task_id);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_encoding_keeps_every_argument() {
        let argv = vec!["bash".to_string(), "-c".into(), "echo \"$1\"; x='y z'\nnext".into(), "".into()];
        let raw = base64::engine::general_purpose::STANDARD.decode(encode_argv(&argv)).unwrap();
        let back: Vec<String> = raw.split(|b| *b == 0).map(|s| String::from_utf8(s.to_vec()).unwrap()).collect();
        assert_eq!(&back[..4], &argv[..]);
        assert_eq!(back[4], "", "every element ends with a NUL");
    }

    #[test]
    fn default_credentials_follow_the_profile() {
        let p = Profiles::builtin();
        let none_found = |_: Provider| (State::Missing, false);
        let key_for = |want: Provider| move |p: Provider| if p == want { (State::Ok, true) } else { (State::Missing, false) };
        assert_eq!(default_for(p.get("shell").unwrap(), &mut { key_for(Provider::Anthropic) }), Credential::None);
        assert_eq!(default_for(p.get("claude").unwrap(), &mut { none_found }), Credential::Subscription);
        assert_eq!(default_for(p.get("claude").unwrap(), &mut key_for(Provider::Anthropic)), Credential::ApiKey);
        assert_eq!(default_for(p.get("claude").unwrap(), &mut key_for(Provider::Claude)), Credential::Subscription);
        assert_eq!(default_for(p.get("codex").unwrap(), &mut { none_found }), Credential::ApiKey);
        assert_eq!(default_for(p.get("codex").unwrap(), &mut key_for(Provider::Anthropic)), Credential::ApiKey);
        assert_eq!(providers_for(p.get("aider").ok(), Credential::ApiKey), [Provider::Anthropic, Provider::Openai, Provider::Gemini]);
        assert_eq!(providers_for(p.get("codex").ok(), Credential::ApiKey), [Provider::Openai]);
        assert_eq!(providers_for(p.get("codex").ok(), Credential::None), []);
    }
}
