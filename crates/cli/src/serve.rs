use anycode_engine::{BuildEvent, Config, Engine};
use anycode_server::launch::{self, Listen};
use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 7878, env = "ANYCODE_PORT")]
    port: u16,
    /// Address to bind (loopback by default; anything else exposes the API to the network).
    #[arg(long, default_value = "127.0.0.1", env = "ANYCODE_BIND")]
    bind: String,
    /// Do not open the browser.
    #[arg(long)]
    no_open: bool,
    /// Add this git repository as a project on start (repeatable; already added is fine).
    #[arg(long = "project", value_name = "PATH")]
    projects: Vec<String>,
    /// Do not build the sandbox image at start (it is built on the first task instead).
    #[arg(long)]
    no_build: bool,
    /// Also serve on the local network, so paired phones can watch and drive tasks
    /// (can also be switched in the web UI's settings).
    #[arg(long, env = "ANYCODE_LAN", value_parser = clap::builder::BoolishValueParser::new())]
    lan: bool,
    /// In LAN mode, serve on this address instead of every local-network address
    /// (repeatable; comma-separated in ANYCODE_LAN_ADDRESSES).
    #[arg(long = "lan-address", value_name = "IP", env = "ANYCODE_LAN_ADDRESSES", value_delimiter = ',')]
    lan_addresses: Vec<std::net::IpAddr>,
}

/// The configuration from the settings file and the environment, with the
/// settings' agent profiles checked ([`launch::load_config`]). A file that cannot
/// be used is said on stderr and gives exit code 2 (nothing started).
pub fn load_config() -> Result<Config, ExitCode> {
    launch::load_config().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = match load_config() {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let ip: std::net::IpAddr = args.bind.parse().with_context(|| format!("--bind {:?} is not an IP address", args.bind))?;
    let launched = launch::launch(config, Listen::Exact(ip, args.port), args.lan_addresses.clone()).await?;
    let engine = launched.engine.clone();

    let health = engine.health().await;
    match health.error {
        None => {
            eprintln!("Docker: {} ({})", health.version.unwrap_or_default(), health.endpoint.unwrap_or_default());
            if !args.no_build {
                build_image(&engine).await?;
            }
        }
        Some(e) => eprintln!("warning: {e}\n         AnyCode serves anyway; tasks need Docker."),
    }

    for p in &args.projects {
        match engine.add_project(p).await {
            Ok(p) => eprintln!("project {} added ({})", p.name, p.path),
            Err(e) if e.kind() == anycode_engine::ErrorKind::Conflict => {}
            Err(e) => eprintln!("warning: {p}: {e}"),
        }
    }

    // A one-time login link, never the token: it logs in once, within minutes, and
    // leaves nothing reusable in the browser's history or this terminal's scrollback.
    println!("{}", launched.banner());
    let login = launched.server.login_codes();
    eprintln!("(the link logs in once, within {} s; `anycode open` makes a new one)", login.ttl().as_secs());
    if !args.no_open && std::env::var_os("CI").is_none() {
        let _ = webbrowser::open(&login.url(&launched.base_url));
    }
    if args.lan {
        // Not fatal: the web UI's settings can turn LAN mode on later (say, once
        // this computer is on Wi-Fi).
        match launched.server.lan().enable().await {
            Ok(st) => {
                for url in &st.urls {
                    println!("On the local network: {url} (pair a phone in the web UI: Settings → Pair a phone)");
                }
            }
            Err(e) => eprintln!("warning: not serving on the local network: {e}"),
        }
    }
    launched.server.run(anycode_server::shutdown_signal()).await?;
    eprintln!("AnyCode stopped; running sandboxes keep running and are found again on the next start.");
    Ok(ExitCode::SUCCESS)
}

/// Builds or checks the sandbox image with a spinner and the build's last line.
pub async fn build_image(engine: &Engine) -> anyhow::Result<String> {
    let (bar, progress) = build_progress("sandbox image");
    let res = engine.ensure_image(progress).await;
    bar.finish();
    let tag = res?;
    eprintln!("sandbox image: {tag}");
    Ok(tag)
}

/// Builds or checks `agent`'s image (the base, then its variant) like [`build_image`].
pub async fn build_agent_image(engine: &Engine, agent: &str) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    let (bar, progress) = build_progress(&format!("{agent} image"));
    let res = engine.ensure_agent_image(agent, progress).await;
    bar.finish();
    let tag = res?;
    eprintln!("{agent} image: {tag} ({:.0} s)", started.elapsed().as_secs_f64());
    Ok(tag)
}

/// A spinner and the progress callback that drives it.
fn build_progress(prefix: &str) -> (ProgressBar, impl FnMut(BuildEvent) + Send) {
    use std::io::IsTerminal;
    // Without a terminal (CI, logs) the spinner is hidden, so steps print as lines.
    let plain = !std::io::stderr().is_terminal();
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {prefix} {wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_prefix(prefix.to_string());
    let b2 = bar.clone();
    let progress = move |e| match e {
        BuildEvent::UpToDate(t) => b2.set_message(format!("{t} is up to date")),
        BuildEvent::Started(t) => {
            let line = format!("building {t} (first run: a few minutes)");
            if plain { eprintln!("{line}") } else { b2.println(line) }
        }
        BuildEvent::Line(l) => {
            if l.starts_with("Step ") {
                if plain { eprintln!("  {l}") } else { b2.println(format!("  {l}")) }
            }
            b2.set_message(l.chars().take(120).collect::<String>());
        }
        BuildEvent::Done(t) => b2.set_message(format!("{t} built")),
    };
    (bar, progress)
}
