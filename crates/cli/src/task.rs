use crate::client::{Client, ServerArgs};
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Create a task (a branch, its worktree and a sandbox).
    New {
        /// Task title.
        title: String,
        /// Project id, or the repository path (added as a project when new). Default: the current directory.
        #[arg(long, short)]
        project: Option<String>,
        /// The agent profile: claude, codex, gemini, aider, goose, shell or one of the
        /// settings file's (`anycode agents` lists them).
        #[arg(long, short, default_value = "shell")]
        agent: String,
        /// Base branch (default: the repository's current branch).
        #[arg(long)]
        base: Option<String>,
        /// Branch to create (default: anycode/<slug of title>).
        #[arg(long)]
        branch: Option<String>,
        /// Instructions for the agent, submitted when it starts.
        #[arg(long)]
        prompt: Option<String>,
        /// Claude Code's permission mode: default, acceptEdits, plan, auto, bypassPermissions.
        #[arg(long)]
        permission_mode: Option<String>,
        /// CPU cap in CPUs (e.g. 1.5; default from the settings).
        #[arg(long)]
        cpus: Option<f64>,
        /// Memory cap in MiB (default from the settings).
        #[arg(long, value_name = "MIB")]
        memory: Option<u64>,
        /// Which credential the agent gets: subscription, api_key or none (default: the agent's).
        #[arg(long)]
        credential: Option<String>,
        /// The Docker host to run on (`anycode host ls`; `local` is this machine).
        /// Default: the answering host with the most free CPUs.
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List tasks.
    Ls {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stop a task's sandbox.
    Stop {
        /// Task id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Start a stopped task again.
    Start {
        /// Task id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Allow (or with --deny, deny) the tool a task's agent asks to use (status
    /// needs_approval).
    Approve {
        /// Task id.
        id: String,
        /// Deny instead of allow.
        #[arg(long)]
        deny: bool,
        /// With --deny: why, told to the agent.
        #[arg(long)]
        message: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a task: its container and worktree go, its branch stays.
    Rm {
        /// Task id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `anycode agents`: the profiles of a running server.
pub async fn agents(server: ServerArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&server)?;
    let list: Vec<Value> = c.get("/api/agents").await?;
    println!("{:<10}  {:<20}  {:<5}  {:<11}  {:<12}  IMAGE", "NAME", "TITLE", "HOOKS", "IMAGE READY", "CREDENTIAL");
    for a in &list {
        println!(
            "{:<10}  {:<20}  {:<5}  {:<11}  {:<12}  {}",
            a["name"].as_str().unwrap_or(""),
            a["title"].as_str().unwrap_or(""),
            if a["hooks"] == true { "yes" } else { "no" },
            if a["image_ready"] == true { "yes" } else { "no" },
            a["credential"].as_str().unwrap_or(""),
            a["image"].as_str().unwrap_or(""),
        );
        if let Some(n) = a["install_note"].as_str() {
            println!("            note: {n}");
        }
    }
    if list.iter().any(|a| a["image_ready"] != true) {
        eprintln!("an image that is not ready is built on the agent's first task (or now: anycode image build --agent NAME)");
    }
    Ok(ExitCode::SUCCESS)
}

fn print_task(t: &Value) {
    println!(
        "{:<12}  {:<8}  {:<7}  {:<32}  {}",
        t["id"].as_str().unwrap_or(""),
        t["status"].as_str().unwrap_or(""),
        t["agent"].as_str().unwrap_or(""),
        t["branch"].as_str().unwrap_or(""),
        t["title"].as_str().unwrap_or("")
    );
}

/// A host's name from its id (the id itself when the list cannot be read).
async fn host_name(c: &Client, id: &str) -> String {
    let hosts: Vec<Value> = c.get("/api/hosts").await.unwrap_or_default();
    hosts.iter().find(|h| h["id"] == id).and_then(|h| h["name"].as_str()).unwrap_or(id).to_string()
}

async fn resolve_project(c: &Client, project: Option<String>) -> anyhow::Result<String> {
    let projects: Vec<Value> = c.get("/api/projects").await?;
    let wanted = project.unwrap_or_else(|| ".".into());
    if projects.iter().any(|p| p["id"] == wanted.as_str()) {
        return Ok(wanted);
    }
    let path = std::fs::canonicalize(&wanted).map_err(|_| anyhow!("{wanted} is neither a project id nor an existing path"))?;
    let path = path.to_string_lossy().into_owned();
    if let Some(p) = projects.iter().find(|p| p["path"] == path.as_str()) {
        return Ok(p["id"].as_str().unwrap_or_default().to_string());
    }
    let p: Value = c.post("/api/projects", &json!({"path": path})).await?;
    Ok(p["id"].as_str().unwrap_or_default().to_string())
}

pub async fn run(cmd: TaskCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TaskCommand::New { title, project, agent, base, branch, prompt, permission_mode, cpus, memory, credential, host, server } => {
            let c = Client::new(&server)?;
            let pid = resolve_project(&c, project).await?;
            let body = json!({
                "title": title, "agent": agent, "base": base, "branch": branch, "prompt": prompt,
                "permission_mode": permission_mode, "cpus": cpus, "memory_mb": memory, "credential": credential,
                "host": host,
            });
            let t: Value = c.post(&format!("/api/projects/{pid}/tasks"), &body).await?;
            print_task(&t);
            if let Some(h) = t["host"].as_str().filter(|h| *h != "local") {
                eprintln!("on host {}", host_name(&c, h).await);
            }
            eprintln!("attach with: anycode attach {}", t["id"].as_str().unwrap_or(""));
        }
        TaskCommand::Ls { server } => {
            let c = Client::new(&server)?;
            let tasks: Vec<Value> = c.get("/api/tasks").await?;
            if tasks.is_empty() {
                eprintln!("no tasks; create one with `anycode task new \"title\"`");
            }
            for t in &tasks {
                print_task(t);
            }
        }
        TaskCommand::Stop { id, server } => print_task(&Client::new(&server)?.post(&format!("/api/tasks/{id}/stop"), &json!({})).await?),
        TaskCommand::Start { id, server } => print_task(&Client::new(&server)?.post(&format!("/api/tasks/{id}/start"), &json!({})).await?),
        TaskCommand::Approve { id, deny, message, server } => {
            let body = json!({"decision": if deny { "deny" } else { "allow" }, "message": message});
            print_task(&Client::new(&server)?.post(&format!("/api/tasks/{id}/approval"), &body).await?)
        }
        TaskCommand::Rm { id, server } => {
            Client::new(&server)?.delete(&format!("/api/tasks/{id}")).await?;
            eprintln!("task {id} deleted (its branch is kept)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
