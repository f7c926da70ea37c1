//! `anycode`: the command line of AnyCode. A thin binary over the library crates:
//! `serve` runs the engine and the server; `task`, `host` and `attach` talk to a running
//! server over its API; `doctor` checks the machine.

mod attach;
mod client;
mod credentials;
mod doctor;
mod github;
mod host;
mod open;
mod serve;
mod task;

use clap::{Parser, Subcommand};

/// Run AI coding agents in parallel, each in its own Docker sandbox.
#[derive(Parser)]
#[command(name = "anycode", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web UI and the API (default http://127.0.0.1:7878).
    Serve(serve::ServeArgs),
    /// Open the web UI of a running server in the browser with a new one-time login
    /// link (and print the link).
    Open(open::OpenArgs),
    /// Check Docker, the sandbox image, git and credentials, with a fix for each problem.
    Doctor(doctor::DoctorArgs),
    /// Create, list, stop and delete tasks on a running server.
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Docker hosts the sandboxes run on: add a remote engine (ssh://, tcp:// with TLS,
    /// a Docker context), list them with their load, remove one.
    #[command(subcommand)]
    Host(host::HostCommand),
    /// Open a task's agent terminal in this terminal (detach with Ctrl-]).
    Attach(attach::AttachArgs),
    /// Credentials for agents: status, and AnyCode's own OS keyring entries.
    #[command(subcommand)]
    Credentials(credentials::CredentialsCommand),
    /// The GitHub token: save it in the OS keyring (checked first), remove it, show it.
    #[command(subcommand)]
    Github(github::GitHubCommand),
    /// Add projects (a path here, or a GitHub repository to clone) and list them.
    #[command(subcommand)]
    Project(github::ProjectCommand),
    /// Build the sandbox image now (it is also built by `serve` when missing or outdated).
    #[command(subcommand)]
    Image(ImageCommand),
    /// List the agent profiles of a running server (name, title, hooks, image ready).
    Agents {
        #[command(flatten)]
        server: client::ServerArgs,
    },
    /// Print the API's OpenAPI document (what `GET /api/openapi.json` serves; checked
    /// in as docs/openapi.json: `anycode openapi > docs/openapi.json`).
    Openapi,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the sandbox image if it is missing or outdated, and print its tag.
    Build {
        /// Also build this agent's image variant (e.g. codex) on top of it.
        #[arg(long)]
        agent: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    anycode_server::launch::init_tracing("anycode=info,anycode_engine=info,anycode_server=info,warn");
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve(a) => serve::run(a).await,
            Command::Doctor(a) => doctor::run(a).await,
            Command::Open(a) => open::run(a).await,
            Command::Task(c) => task::run(c).await,
            Command::Host(c) => host::run(c).await,
            Command::Attach(a) => attach::run(a).await,
            Command::Github(c) => github::run(c).await,
            Command::Project(c) => github::run_project(c).await,
            Command::Credentials(c) => credentials::run(c).await,
            Command::Image(ImageCommand::Build { agent }) => {
                let config = match serve::load_config() {
                    Ok(c) => c,
                    Err(code) => return Ok(code),
                };
                let engine = anycode_engine::Engine::open(config).await?;
                engine.connect().await?;
                let mut tag = serve::build_image(&engine).await?;
                if let Some(agent) = agent {
                    tag = serve::build_agent_image(&engine, &agent).await?;
                }
                println!("{tag}");
                Ok(std::process::ExitCode::SUCCESS)
            }
            Command::Agents { server } => task::agents(server).await,
            Command::Openapi => {
                print!("{}", anycode_server::openapi::document_json());
                Ok(std::process::ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
