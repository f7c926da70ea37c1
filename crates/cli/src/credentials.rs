//! `anycode credentials status | set NAME --stdin | rm NAME`: AnyCode's credentials,
//! straight from the OS keyring, Claude Code's login and the environment (no server
//! needed). Nothing here prints a secret.

use anycode_core::Config;
use anycode_credentials::{Name, Provider, ProviderStatus, Secret, Sources, State, Status};
use clap::Subcommand;
use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use zeroize::Zeroize;

#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// Where each provider's credential stands: source, subscription, expiry, fix.
    Status {
        /// Print the status as JSON (the same as GET /api/credentials/status).
        #[arg(long)]
        json: bool,
    },
    /// Save a key or token in the OS keyring (service `anycode`).
    ///
    /// NAME is one of claude-token (from `claude setup-token`), anthropic-api-key,
    /// openai-api-key, gemini-api-key, github-token.
    Set {
        /// Which credential.
        name: String,
        /// Read the value from standard input (a pipe, or pasted with echo off).
        #[arg(long)]
        stdin: bool,
    },
    /// Remove one of AnyCode's keyring entries.
    Rm {
        /// Which credential.
        name: String,
    },
}

/// The sources of this machine's configuration.
pub fn sources() -> Sources {
    let c = Config::from_env();
    let mut s = Sources::new(c.keyring_service.clone(), c.claude_config_dir.clone());
    if !c.credentials_from_env {
        s.env.clear();
    }
    s
}

/// Looks everything up off the async runtime (keyring calls block, bounded).
pub async fn status() -> anyhow::Result<Status> {
    let s = sources();
    Ok(tokio::task::spawn_blocking(move || anycode_credentials::status(&s, anycode_credentials::now_ms())).await?)
}

/// One line (and a fix line when there is something to do) per provider.
pub fn describe(p: &ProviderStatus) -> (bool, String, Option<String>) {
    let now = anycode_credentials::now_ms();
    let what = match p.provider {
        Provider::Claude => "Claude subscription",
        Provider::Anthropic => "Anthropic API key",
        Provider::Openai => "OpenAI API key",
        Provider::Gemini => "Gemini API key",
        Provider::Github => "GitHub token",
    };
    let mut detail = match p.state {
        State::Missing => "none found".to_string(),
        state => {
            let mut d = String::new();
            if let Some(t) = &p.subscription_type {
                d.push_str(&format!("{t}, "));
            }
            if let Some(disp) = &p.display {
                d.push_str(&format!("{disp}, "));
            }
            d.push_str(&format!("from {}", p.location.as_deref().unwrap_or("?")));
            if let Some(at) = p.expires_at {
                let verb = if state == State::Expired { "expired" } else { "expires" };
                d.push_str(&format!(", {verb} {}", anycode_credentials::relative(at, now)));
            }
            d
        }
    };
    if p.state == State::Ok && p.hint.is_some() {
        detail.push_str(" (see the note)");
    }
    let ok = matches!(p.state, State::Ok | State::Expiring);
    (ok, format!("{what}: {detail}"), p.hint.clone())
}

fn print_human(s: &Status) {
    for p in &s.providers {
        let (_, line, hint) = describe(p);
        let tag = match p.state {
            State::Ok => "ok   ",
            State::Expiring => "soon ",
            State::Expired => "EXPIRED",
            State::Missing => "--   ",
        };
        println!("  {tag} {line}");
        if let Some(h) = hint {
            println!("        {}: {h}", if p.state == State::Ok { "note" } else { "fix" });
        }
    }
    if let Some(k) = &s.keyring_problem {
        println!("  keyring: {k}");
    } else if s.keyring_service.is_none() {
        println!("  keyring: turned off (ANYCODE_KEYRING_SERVICE=none)");
    }
}

/// Reads the value: all of stdin for a pipe; for a terminal, one line with echo off.
fn read_value(name: Name) -> anyhow::Result<Secret> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Paste the {name} and press Enter (input hidden): ");
        crossterm::terminal::enable_raw_mode()?;
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        let res = loop {
            match stdin.lock().read(&mut byte) {
                Ok(0) => break Ok(()),
                Ok(_) => match byte[0] {
                    b'\r' | b'\n' => break Ok(()),
                    3 | 4 => break Err(anyhow::anyhow!("cancelled; nothing saved")),
                    8 | 127 => {
                        buf.pop();
                    }
                    b => buf.push(b),
                },
                Err(e) => break Err(e.into()),
            }
        };
        let _ = crossterm::terminal::disable_raw_mode();
        eprintln!();
        if let Err(e) = res {
            buf.zeroize();
            return Err(e);
        }
        let text = String::from_utf8(buf).map_err(|e| {
            let mut b = e.into_bytes();
            b.zeroize();
            anyhow::anyhow!("the value is not text; nothing saved")
        })?;
        Ok(Secret::new(text))
    } else {
        let mut text = String::new();
        if let Err(e) = stdin.lock().read_to_string(&mut text) {
            text.zeroize();
            anyhow::bail!("reading standard input: {e}");
        }
        Ok(Secret::new(text))
    }
}

pub async fn run(cmd: CredentialsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CredentialsCommand::Status { json } => {
            let s = status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print_human(&s);
            }
            Ok(ExitCode::SUCCESS)
        }
        CredentialsCommand::Set { name, stdin } => {
            let name: Name = name.parse()?;
            if !stdin {
                anyhow::bail!(
                    "give the value on standard input: `anycode credentials set {name} --stdin` (paste it, or pipe it from a password manager), \
                     so it never appears in your shell history or the process list"
                );
            }
            let value = read_value(name)?;
            let s = sources();
            let display = tokio::task::spawn_blocking(move || anycode_credentials::save(&s, name, &value)).await??;
            println!("saved {name} ({display}) in the OS keyring");
            Ok(ExitCode::SUCCESS)
        }
        CredentialsCommand::Rm { name } => {
            let name: Name = name.parse()?;
            let s = sources();
            let existed = tokio::task::spawn_blocking(move || anycode_credentials::remove(&s, name)).await??;
            println!("{}", if existed { format!("removed {name}") } else { format!("{name} was not saved") });
            Ok(ExitCode::SUCCESS)
        }
    }
}
