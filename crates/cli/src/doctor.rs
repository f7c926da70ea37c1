use anycode_engine::{Config, Engine};
use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct DoctorArgs {
    /// Also build the sandbox image when it is missing or outdated.
    #[arg(long)]
    build_image: bool,
}

fn report(ok: bool, what: &str, detail: &str, fix: &str) -> bool {
    if ok {
        println!("  ok    {what}: {detail}");
    } else {
        println!("  FAIL  {what}: {detail}\n        fix: {fix}");
    }
    ok
}

pub async fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    // A bad settings file is reported like any other check; the rest runs on the
    // defaults and the environment.
    let (config, settings) = match Config::load() {
        Ok(c) => (c, Ok(())),
        Err(e) => (Config::from_env(), Err(e)),
    };
    println!("AnyCode {} — data dir {}", env!("CARGO_PKG_VERSION"), config.data_dir.display());
    let mut all_ok = true;
    match settings {
        Ok(()) if config.settings_path.exists() => {
            report(true, "settings", &config.settings_path.display().to_string(), "");
        }
        Ok(()) => {
            report(true, "settings", &format!("defaults (no {})", config.settings_path.display()), "");
        }
        Err(e) => all_ok &= report(false, "settings", &e.to_string(), "correct the file (README, \"Settings\"), or move it away to use the defaults"),
    };
    let engine = Engine::open(config.clone()).await?;

    let health = engine.health().await;
    match health.error {
        None => {
            report(true, "docker", &format!("{} at {}", health.version.unwrap_or_default(), health.endpoint.unwrap_or_default()), "");
            let (tag, exists) = match engine.image_ready().await {
                Ok(r) => r,
                Err(_) => (anycode_engine::sandbox_image_tag(&config)?, false),
            };
            if !exists && args.build_image {
                crate::serve::build_image(&engine).await?;
                report(true, "sandbox image", &format!("{tag} built"), "");
            } else {
                all_ok &= report(exists, "sandbox image", &tag, "run `anycode doctor --build-image` (or `anycode serve`, which builds it)");
            }
            // A throwaway sandbox with no network reaches AnyCode through its relay.
            anycode_server::serve_hooks(&engine);
            match engine.check_relay(false).await {
                Ok(Some(ms)) => {
                    report(true, "sandbox relay", &format!("a sandbox with no network reached AnyCode's hooks through anycode-relay ({ms} ms)"), "");
                }
                Ok(None) => {}
                Err(e) => {
                    all_ok &= report(
                        false,
                        "sandbox relay",
                        &format!("sandboxes cannot reach AnyCode: {e}"),
                        "agent hooks, approvals and the egress proxy will not work; rebuild the image (`anycode image build`) and check that `docker exec` works",
                    )
                }
            }
        }
        Some(e) => {
            all_ok &= report(false, "docker", &e, "start Docker (see above), then run `anycode doctor` again");
        }
    }

    let git = std::process::Command::new("git").arg("config").arg("user.email").output();
    let identity = git.ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    all_ok &= report(
        identity.is_some(),
        "git identity",
        identity.as_deref().unwrap_or("user.email is not set"),
        "git config --global user.name \"Your Name\" && git config --global user.email you@example.com",
    );

    // Credentials are not a failure: shell tasks need none, and Claude Code can log
    // in inside its sandbox. Each provider says where it stands and what to do.
    let creds = crate::credentials::status().await?;
    for p in &creds.providers {
        let (ok, line, hint) = crate::credentials::describe(p);
        if ok && p.hint.is_none() {
            println!("  ok    credentials: {line}");
        } else if ok {
            println!("  ok    credentials: {line}\n        note: {}", hint.unwrap_or_default());
        } else {
            println!("  --    credentials: {line}\n        fix: {}", hint.unwrap_or_default());
        }
    }
    if let Some(k) = &creds.keyring_problem {
        println!("  warn  OS keyring: {k}");
    }

    println!("{}", if all_ok { "All checks passed." } else { "Some checks failed: see the fixes above." });
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
