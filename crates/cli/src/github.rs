//! `anycode github login|logout|status` (the token, in the OS keyring, checked with
//! GitHub first) and `anycode project add` (a path here, or a GitHub repository
//! cloned by a running server, with a progress bar).

use crate::client::{Client, ServerArgs};
use anycode_engine::Config;
use anycode_github::token::Tokens;
use anycode_github::Secret as GitHubSecret;
use anyhow::{anyhow, Context};
use clap::Subcommand;
use serde_json::{json, Value};
use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Subcommand)]
pub enum GitHubCommand {
    /// Save a GitHub token in the OS keyring after checking it with GitHub.
    Login {
        /// Read the token from standard input (e.g. `gh auth token | anycode github login --token-stdin`).
        #[arg(long, required = true)]
        token_stdin: bool,
    },
    /// Remove the saved token from the OS keyring.
    Logout,
    /// Where the token comes from and whether GitHub accepts it.
    Status,
}

#[derive(Subcommand)]
pub enum ProjectCommand {
    /// Add a project: a repository path here, or a GitHub `owner/name` or URL to clone.
    Add {
        /// A path, `owner/name`, or a repository URL.
        source: String,
        /// Where to clone to (default: the data dir's repos/<owner>/<name>).
        #[arg(long)]
        path: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List projects.
    Ls {
        #[command(flatten)]
        server: ServerArgs,
    },
}

fn tokens() -> (String, Tokens) {
    let cfg = Config::from_env();
    (anycode_github::api_base_from_env(), Tokens::with_service(cfg.keyring_service.as_deref()))
}

/// The login of `token`'s user, asking GitHub.
async fn github_user(api: &str, token: &GitHubSecret) -> anyhow::Result<String> {
    Ok(anycode_github::Client::new(api, Some(token))?.user().await?)
}

pub async fn run(cmd: GitHubCommand) -> anyhow::Result<ExitCode> {
    let (api, tokens) = tokens();
    match cmd {
        GitHubCommand::Login { token_stdin: _ } => {
            let mut raw = String::new();
            std::io::stdin().read_to_string(&mut raw).context("reading the token from standard input")?;
            let token = GitHubSecret::trimmed(raw);
            anycode_github::token::check_token_shape(&token)?;
            let login = github_user(&api, &token).await?;
            tokio::task::spawn_blocking(move || tokens.save(&token)).await??;
            eprintln!("saved the token of {login} in the OS keyring");
        }
        GitHubCommand::Logout => {
            tokio::task::spawn_blocking(move || tokens.remove()).await??;
            eprintln!("removed the token from the OS keyring");
            if std::env::var("GITHUB_TOKEN").is_ok_and(|v| !v.trim().is_empty()) {
                eprintln!("note: GITHUB_TOKEN is still set in this environment");
            }
        }
        GitHubCommand::Status => {
            let found = tokio::task::spawn_blocking(move || tokens.resolve()).await?;
            match found {
                None => {
                    println!("no GitHub token (API {api}): run `anycode github login --token-stdin`, set GITHUB_TOKEN, or `gh auth login`");
                    return Ok(ExitCode::FAILURE);
                }
                Some((token, source)) => {
                    let who = github_user(&api, &token).await;
                    match who {
                        Ok(login) => println!("token from {source:?} for {login} (API {api})"),
                        Err(e) => {
                            println!("token from {source:?}: {e}");
                            return Ok(ExitCode::FAILURE);
                        }
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bar(style: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new(0);
    b.set_style(indicatif::ProgressStyle::with_template(style).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()));
    b.enable_steady_tick(Duration::from_millis(120));
    b
}

pub async fn run_project(cmd: ProjectCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ProjectCommand::Ls { server } => {
            let c = Client::new(&server)?;
            let list: Vec<Value> = c.get("/api/projects").await?;
            for p in &list {
                println!(
                    "{:<12}  {:<8}  {:<20}  {}",
                    p["id"].as_str().unwrap_or(""),
                    p["status"].as_str().unwrap_or(""),
                    p["github"].as_str().unwrap_or("-"),
                    p["path"].as_str().unwrap_or("")
                );
            }
        }
        ProjectCommand::Add { source, path, server } => {
            let c = Client::new(&server)?;
            // An existing folder is a repository here; anything else is cloned.
            if std::path::Path::new(&source).exists() {
                let abs = std::fs::canonicalize(&source)?.to_string_lossy().into_owned();
                let p: Value = c.post("/api/projects", &json!({"path": abs})).await?;
                println!("{}  {}", p["id"].as_str().unwrap_or(""), p["path"].as_str().unwrap_or(""));
                return Ok(ExitCode::SUCCESS);
            }
            let imp: Value = c.post("/api/projects", &json!({"url": source, "path": path})).await?;
            let id = imp["id"].as_str().ok_or_else(|| anyhow!("unexpected answer: {imp}"))?.to_string();
            eprintln!("cloning {} into {}", imp["url"].as_str().unwrap_or(&source), imp["path"].as_str().unwrap_or(""));
            let b = bar("{spinner} {msg:12} [{bar:30}] {pos}/{len} {binary_bytes}");
            loop {
                let p: Value = c.get(&format!("/api/projects/{id}")).await?;
                let pr = &p["progress"];
                let phase = pr["phase"].as_str().unwrap_or("");
                b.set_message(phase.to_string());
                match phase {
                    "checkout" => {
                        b.set_length(pr["checkout_total"].as_u64().unwrap_or(0));
                        b.set_position(pr["checkout_done"].as_u64().unwrap_or(0));
                    }
                    "resolving" => {
                        b.set_length(pr["total_deltas"].as_u64().unwrap_or(0));
                        b.set_position(pr["indexed_deltas"].as_u64().unwrap_or(0));
                    }
                    _ => {
                        b.set_length(pr["total_objects"].as_u64().unwrap_or(0));
                        b.set_position(pr["received_objects"].as_u64().unwrap_or(0));
                    }
                }
                match p["status"].as_str() {
                    Some("cloning") => tokio::time::sleep(Duration::from_millis(200)).await,
                    Some("failed") => {
                        b.abandon_with_message("failed");
                        // Forget the failed import so the list stays clean.
                        let _ = c.delete(&format!("/api/projects/{id}")).await;
                        return Err(anyhow!("{}", p["error"].as_str().unwrap_or("the clone failed")));
                    }
                    _ => {
                        b.finish_and_clear();
                        println!("{}  {}  (default branch {})", id, p["path"].as_str().unwrap_or(""), p["default_branch"].as_str().unwrap_or("?"));
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
