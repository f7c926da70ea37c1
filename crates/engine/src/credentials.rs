//! The engine's side of credentials: the status for the API and `doctor`, saving
//! and removing AnyCode's keyring entries, choosing a task's default credential,
//! and handing the chosen one to the agent at every start (see [`crate::handover`]).

use crate::handover::{self, Handover, Wait};
use crate::{blocking, Engine, Error, Result};
use anycode_core::{Credential, Task};
use anycode_credentials::{Found, Name, Provider, Secret, Sources, State};
use anycode_sandbox::SandboxHost;
use anycode_terminal::Viewer;

/// Whether the task's main process is start-agent (which asks for credentials and
/// the agent's variables at every start): every agent but the shell; a shell only
/// when it gets a credential.
pub(crate) fn uses_start_agent(task: &Task) -> bool {
    !task.agent.is_shell() || task.credential != Credential::None
}

impl Engine {
    /// Where credentials are looked up, from the configuration.
    pub fn credential_sources(&self) -> Sources {
        let c = &self.inner.config;
        let mut s = Sources::new(c.keyring_service.clone(), c.claude_config_dir.clone());
        if !c.credentials_from_env {
            s.env.clear();
        }
        s
    }

    /// Where every provider's credential stands (see [`anycode_credentials::status`]);
    /// never a secret. Keyring calls are bounded in time.
    pub async fn credentials_status(&self) -> Result<anycode_credentials::Status> {
        let sources = self.credential_sources();
        blocking(move || Ok(anycode_credentials::status(&sources, anycode_credentials::now_ms()))).await
    }

    /// Saves `value` as AnyCode's keyring entry `name` (`claude-token`,
    /// `anthropic-api-key`, `openai-api-key`, `gemini-api-key`, `github-token`);
    /// returns its display form (`sk-…abcd`).
    ///
    /// Errors: `UNKNOWN_CREDENTIAL`, `INVALID_CREDENTIAL` (empty, spaces, too long,
    /// the wrong kind of token), `KEYRING_DISABLED` (turned off by the settings, 409),
    /// `KEYRING_UNAVAILABLE` (no Secret Service, or locked: 503).
    pub async fn save_credential(&self, name: &str, value: Secret) -> Result<String> {
        let name: Name = name.parse().map_err(Error::Credentials)?;
        let sources = self.credential_sources();
        blocking(move || anycode_credentials::save(&sources, name, &value).map_err(Error::Credentials)).await
    }

    /// Removes AnyCode's keyring entry `name`; returns whether it existed.
    ///
    /// Errors: `UNKNOWN_CREDENTIAL`, `KEYRING_DISABLED`, `KEYRING_UNAVAILABLE`.
    pub async fn delete_credential(&self, name: &str) -> Result<bool> {
        let name: Name = name.parse().map_err(Error::Credentials)?;
        let sources = self.credential_sources();
        blocking(move || anycode_credentials::remove(&sources, name).map_err(Error::Credentials)).await
    }

    /// Looks up the task's credential now (the host's current one, so a restart
    /// picks up a refreshed login), records where it came from, its expiry or why
    /// there is none in the task row, and returns what to hand over. `None` for
    /// tasks whose main process does not ask.
    pub(crate) async fn prepare_handover(&self, task: &Task) -> Result<Option<Handover>> {
        if !uses_start_agent(task) {
            return Ok(None);
        }
        let sources = self.credential_sources();
        let choice = task.credential;
        let providers = crate::agents::providers_for(self.inner.profiles.get(task.agent.as_str()).ok(), choice);
        let found = blocking(move || {
            let now = anycode_credentials::now_ms();
            Ok(providers.into_iter().map(|p| anycode_credentials::lookup(&sources, p, now)).collect::<Vec<_>>())
        })
        .await?;
        let (mut handover, source, expires_at, problem) = handover_for(choice, found);
        handover.vars = self.agent_vars(task);
        self.add_hook_handover(task, &mut handover);
        let id = task.id.clone();
        self.db(move |store| Ok(store.set_task_credential_state(&id, source.as_deref(), expires_at, problem.as_deref())?)).await?;
        Ok(Some(handover))
    }

    /// Waits (in the background) for the agent's start-agent to ask, then writes the
    /// credentials line into its TTY. A failure is recorded as the task's credential
    /// problem (shown by the task view); start-agent itself says so in the terminal
    /// when it gets no line within its own time limit. `viewer` must have subscribed before the
    /// container started, so the marker cannot be missed.
    pub(crate) fn spawn_handover(&self, docker: SandboxHost, task_id: String, container_id: String, mut viewer: Viewer, h: Handover) {
        let engine = self.clone();
        tokio::spawn(async move {
            let outcome = handover::wait_for_marker(&mut viewer, handover::MARKER_WAIT).await;
            let problem = match outcome {
                Wait::Asked(nonce) => match h.line(&nonce) {
                    Ok(line) => match docker.write_stdin(&container_id, line.expose().as_bytes()).await {
                        Ok(()) => {
                            tracing::debug!(task = %task_id, entries = h.env.len(), "credentials handed over");
                            None
                        }
                        Err(e) => Some(format!("handing over the credential failed: {e}")),
                    },
                    Err(e) => Some(e),
                },
                Wait::Exited => None,
                Wait::TimedOut => Some(format!(
                    "the sandbox did not ask for its credential within {} s (a container from an older AnyCode or a custom image?): delete and recreate the task",
                    handover::MARKER_WAIT.as_secs()
                )),
            };
            // The viewer held the terminal's input (see `attach_and_start`): what
            // was typed meanwhile goes to the TTY after the line.
            drop(viewer);
            if let Some(p) = problem {
                tracing::warn!(task = %task_id, problem = %p, "credential handover");
                let store = engine.inner.store.clone();
                let _ = blocking(move || {
                    if let Some(t) = store.task(&task_id)? {
                        store.set_task_credential_state(&task_id, t.credential_source.as_deref(), t.credential_expires_at, Some(&p))?;
                    }
                    Ok(())
                })
                .await;
            }
        });
    }

    /// After a server restart: a start-agent that is still waiting for its line (the
    /// server went away between starting the container and answering) is answered
    /// now. One that already has its environment is left alone: start-agent prints
    /// nothing after the marker until it has its line, so only a log that ends with
    /// the marker means it still waits.
    pub(crate) async fn answer_pending_handover(&self, docker: &SandboxHost, task: &Task, container_id: &str) {
        if !uses_start_agent(task) {
            return;
        }
        let tail = match docker.logs(container_id, 4096).await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(task = %task.id, error = %e, "reading the log for a pending handover failed");
                return;
            }
        };
        let Some(nonce) = handover::pending_nonce(&tail) else {
            return;
        };
        let line = match self.prepare_handover(task).await {
            Ok(Some(h)) => h.line(&nonce),
            Ok(None) => return,
            Err(e) => Err(e.to_string()),
        };
        let result = match line {
            Ok(line) => docker.write_stdin(container_id, line.expose().as_bytes()).await.map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => tracing::info!(task = %task.id, "answered a credential handover left pending by a restart"),
            Err(e) => tracing::warn!(task = %task.id, error = %e, "answering a pending credential handover failed"),
        }
    }
}

/// What to hand over for `choice` given the lookups of its providers (in the
/// profile's order), with the task row's record: `(handover, source, expires_at,
/// problem)`. Every provider with a usable secret is handed over; the record is the
/// first one's. When none has one, the first provider's problem is told.
fn handover_for(choice: Credential, found: Vec<Found>) -> (Handover, Option<String>, Option<i64>, Option<String>) {
    let usable: Vec<Found> = found.iter().filter(|f| f.secret.is_some()).cloned().collect();
    if usable.len() > 1 {
        let mut env = Vec::new();
        let mut notes = Vec::new();
        let mut warn = false;
        for f in &usable {
            let (h, ..) = handover_for_one(choice, Some(f.clone()));
            env.extend(h.env);
            notes.push(h.note.trim_start_matches("AnyCode: ").to_string());
            warn |= h.warn;
        }
        let first = &usable[0].status;
        let note = format!("AnyCode: {}", notes.join("; "));
        return (Handover { env, vars: vec![], note, warn }, first.location.clone(), first.expires_at, None);
    }
    let one = usable.into_iter().next().or_else(|| found.into_iter().next());
    handover_for_one(choice, one)
}

fn handover_for_one(choice: Credential, found: Option<Found>) -> (Handover, Option<String>, Option<i64>, Option<String>) {
    let Some(found) = found else {
        let note = "AnyCode: no credential handed over (this task's credential is none); log in here if the agent needs to.".to_string();
        return (Handover { env: vec![], vars: vec![], note, warn: false }, None, None, None);
    };
    let st = &found.status;
    let what = match st.provider {
        Provider::Claude => "Claude subscription login",
        Provider::Openai => "OpenAI API key",
        Provider::Gemini => "Gemini API key",
        _ => "Anthropic API key",
    };
    let hint = st.hint.clone().unwrap_or_default();
    match (&found.secret, st.state) {
        (Some(secret), state) => {
            let var = st.provider.env_var();
            let mut note = format!("AnyCode: {what}");
            if let Some(t) = &st.subscription_type {
                note.push_str(&format!(" ({t})"));
            }
            if let Some(l) = &st.location {
                note.push_str(&format!(" from {l}"));
            }
            if let Some(d) = &st.display {
                note.push_str(&format!(" [{d}]"));
            }
            note.push_str(&format!(", as ${var}"));
            let warn = state == State::Expiring;
            if warn && !hint.is_empty() {
                note.push_str(&format!(" — {hint}"));
            } else if let Some(at) = st.expires_at {
                note.push_str(&format!("; expires {}", anycode_credentials::relative(at, anycode_credentials::now_ms())));
            }
            let env = vec![(var.to_string(), secret.clone())];
            (Handover { env, vars: vec![], note, warn }, st.location.clone(), st.expires_at, None)
        }
        (None, State::Expired) => {
            let note = format!("AnyCode: the {what} found on this machine has expired, so none was handed over: {hint}. Or log in here with /login.");
            (Handover { env: vec![], vars: vec![], note, warn: true }, st.location.clone(), st.expires_at, Some("expired".into()))
        }
        (None, _) => {
            let note = format!("AnyCode: no {what} found on this machine ({choice} chosen): {hint}; then restart this task. Or log in here with /login.", choice = choice.as_str());
            (Handover { env: vec![], vars: vec![], note, warn: true }, None, None, Some("none found".into()))
        }
    }
}
