//! `anycode host add | ls | rm | contexts`: the Docker hosts of a running server
//! (`/api/hosts`), where its sandboxes run. `local` is this machine's engine.

use crate::client::{Client, ServerArgs};
use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand)]
pub enum HostCommand {
    /// Add a remote Docker engine as a host (it must answer first).
    ///
    /// ENDPOINT is `ssh://user@box[:port]` (your ssh config and agent; the box needs
    /// `docker`), `tcp://box:2376` (with --tls-ca/--tls-cert/--tls-key) or
    /// `unix:///path/docker.sock`. Or give --context NAME to take a Docker context's
    /// endpoint and TLS files (`anycode host contexts` lists them).
    Add {
        /// The host's name: 1 to 64 of letters, digits, `.`, `_`, `-` (not `local`).
        name: String,
        /// The Docker endpoint (or use --context).
        #[arg(required_unless_present = "context", conflicts_with = "context")]
        endpoint: Option<String>,
        /// A Docker context's name instead of ENDPOINT.
        #[arg(long, value_name = "CTX")]
        context: Option<String>,
        /// The CA certificate (PEM) the engine's certificate must chain to.
        #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_key"], conflicts_with = "context")]
        tls_ca: Option<PathBuf>,
        /// The client certificate (PEM).
        #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_key"])]
        tls_cert: Option<PathBuf>,
        /// The client key (PEM); only its path is kept.
        #[arg(long, value_name = "FILE", requires_all = ["tls_ca", "tls_cert"])]
        tls_key: Option<PathBuf>,
        /// At most this many sandboxes run there at once.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        max_running: Option<u32>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the hosts: whether each answers, its CPUs and memory, AnyCode's load there.
    Ls {
        /// Print the hosts as JSON (the same as GET /api/hosts).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Remove a remote host (by name or id); refused while tasks are on it.
    Rm {
        /// The host's name or id.
        name: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List your Docker contexts (`docker context ls`), which can be added as hosts.
    Contexts {
        /// Print them as JSON (the same as GET /api/hosts/contexts).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// An absolute form of a TLS file path the server reads (it may run elsewhere than
/// this shell's folder). The file must exist here.
fn absolute(p: &Path) -> anyhow::Result<String> {
    let abs = std::fs::canonicalize(p).with_context(|| format!("TLS file {}", p.display()))?;
    Ok(abs.to_string_lossy().into_owned())
}

/// `12.5 GiB`, or `-` when unknown.
fn gib(bytes: Option<u64>) -> String {
    bytes.map(|b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)).unwrap_or_else(|| "-".into())
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// `running/max` (`2/4`, or `2/-` without a limit of the host's own).
fn load(h: &Value) -> String {
    let max = h["max_running"].as_u64().map(|m| m.to_string()).unwrap_or_else(|| "-".into());
    format!("{}/{max}", h["running_tasks"].as_u64().unwrap_or(0))
}

fn print_hosts(hosts: &[Value]) {
    let rows: Vec<[String; 7]> = hosts
        .iter()
        .map(|h| {
            [
                str_of(h, "name").to_string(),
                str_of(h, "endpoint").to_string(),
                str_of(h, "status").to_string(),
                h["cpus"].as_u64().map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                gib(h["memory_bytes"].as_u64()),
                load(h),
                h["tasks"].as_u64().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    let head = ["NAME", "ENDPOINT", "STATUS", "CPUS", "MEMORY", "RUNNING/MAX", "TASKS"];
    let mut w: Vec<usize> = head.iter().map(|s| s.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        println!("{}", s.trim_end());
    };
    line(&head);
    for (r, h) in rows.iter().zip(hosts) {
        line(&r.iter().map(String::as_str).collect::<Vec<_>>());
        if let Some(e) = h["error"].as_str() {
            println!("  {}: {e}", str_of(h, "name"));
        }
    }
}

pub async fn run(cmd: HostCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        HostCommand::Add { name, endpoint, context, tls_ca, tls_cert, tls_key, max_running, server } => {
            let c = Client::new(&server)?;
            let tls = match (tls_ca, tls_cert, tls_key) {
                (Some(ca), Some(cert), Some(key)) => Some(json!({"ca": absolute(&ca)?, "cert": absolute(&cert)?, "key": absolute(&key)?})),
                _ => None,
            };
            let mut body = json!({"name": name});
            if let Some(e) = endpoint {
                body["endpoint"] = json!(e);
            }
            if let Some(ctx) = context {
                body["context"] = json!(ctx);
            }
            if let Some(t) = tls {
                body["tls"] = t;
            }
            if let Some(m) = max_running {
                body["max_running"] = json!(m);
            }
            let h: Value = c.post("/api/hosts", &body).await?;
            print_hosts(std::slice::from_ref(&h));
            eprintln!("added host {}: `anycode task new TITLE --host {}` runs a task there", str_of(&h, "name"), str_of(&h, "name"));
        }
        HostCommand::Ls { json, server } => {
            let hosts: Vec<Value> = Client::new(&server)?.get("/api/hosts").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hosts)?);
            } else {
                print_hosts(&hosts);
            }
        }
        HostCommand::Rm { name, server } => {
            Client::new(&server)?.delete(&format!("/api/hosts/{}", urlencode(&name))).await?;
            eprintln!("host {name} removed");
        }
        HostCommand::Contexts { json, server } => {
            let list: Vec<Value> = Client::new(&server)?.get("/api/hosts/contexts").await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                eprintln!("no Docker contexts (`docker context create NAME --docker host=ssh://user@box` makes one)");
            } else {
                let w = list.iter().map(|c| str_of(c, "name").len() + 2).max().unwrap_or(4).max(4);
                let we = list.iter().map(|c| str_of(c, "endpoint").len()).max().unwrap_or(8).max(8);
                println!("{:<w$}  {:<we$}  NOTE", "NAME", "ENDPOINT");
                for ctx in &list {
                    let name = format!("{}{}", str_of(ctx, "name"), if ctx["current"] == true { " *" } else { "" });
                    let note = match ctx["problem"].as_str() {
                        Some(p) => format!("cannot be used: {p}"),
                        None => str_of(ctx, "description").to_string(),
                    };
                    println!("{}", format!("{name:<w$}  {:<we$}  {note}", str_of(ctx, "endpoint")).trim_end());
                }
                eprintln!("add one with `anycode host add NAME --context CTX` (* is the Docker CLI's current context)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Percent-encodes a path segment (a host name is `[A-Za-z0-9._-]`, but the user
/// may type anything).
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"._-~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}
