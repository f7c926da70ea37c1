#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Agent profiles end to end (issue 8), with the real Docker engine: a profile from
//! a TOML settings file whose command is a small bash program with a `ready> `
//! prompt drives the screen heuristic (waiting_input after 2 s of quiet, running
//! while it prints); a profile with install lines gets its image variant built on
//! demand; gateway variables from the settings' `[env]` and from AnyCode's
//! environment reach the agent but not `docker inspect`; `host.docker.internal`
//! resolves in the sandbox; an unknown agent is refused with nothing made.

use anycode_engine::{Config, Settings};
use anycode_testkit::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// The agent: prints what it got, then a `ready> ` prompt; `work` prints a line
/// every 0.4 s for about 3 s, anything else is echoed back.
const LOOPER: &str = r#"
echo "prompt:[$1]"
echo "gw-env:[${ANYCODE_TEST_GATEWAY_URL:-unset}] gw-file:[${ANYCODE_TEST_FILE_GATEWAY:-unset}] fixed:[${FIXED_VAR:-unset}]"
echo "host:[$(getent hosts host.docker.internal | awk '{print $1}')]"
[ -f /opt/variant ] && echo "variant:[$(cat /opt/variant)]"
while true; do
  printf 'ready> '
  IFS= read -r line || exit 0
  if [ "$line" = work ]; then
    for i in 1 2 3 4 5 6 7 8; do echo "working $i"; sleep 0.4; done
  else
    echo "got: $line"
  fi
done
"#;

/// A test server whose configuration comes from `toml` written to a settings file.
async fn server_with_settings(toml: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let settings = Settings::load(&path).unwrap();
    let from_file = Config::from_settings(settings, path);
    let cfg = Config { settings: from_file.settings, settings_path: from_file.settings_path, ..config(&dir.path().join("data")) };
    Server::start_with(dir, repo, cfg).await
}

fn looper_profile(name: &str, extra: &str) -> String {
    let cmd = serde_json::to_string(&vec!["bash", "-c", LOOPER, "looper", "{prompt}"]).unwrap();
    format!(
        "[agents.{name}]\ntitle = \"Looper\"\ncommand = {cmd}\nbase_url_env = [\"ANYCODE_TEST_GATEWAY_URL\"]\nprompt_pattern = \"ready>\\\\s*$\"\nenv = {{ FIXED_VAR = \"fixed-value\" }}\n{extra}\n"
    )
}

async fn status(s: &Server, id: &str) -> Value {
    let (code, t) = s.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(code, 200, "{t}");
    t
}

/// Polls the task until its status is `want`; returns the task and when it was seen.
async fn wait_status(s: &Server, id: &str, want: &str, secs: u64) -> (Value, Instant) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = status(s, id).await;
        if t["status"] == want {
            return (t, Instant::now());
        }
        assert!(Instant::now() < deadline, "task never became {want}; it is {}: {t}", t["status"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn screen_heuristic_gateways_and_host_gateway() {
    // A gateway in AnyCode's own environment (one of the profile's base-URL
    // variables) and one in the settings file's [env].
    std::env::set_var("ANYCODE_TEST_GATEWAY_URL", "http://gw-env.invalid:8080");
    let toml = format!("[env]\nANYCODE_TEST_FILE_GATEWAY = \"http://gw-file.invalid:9090\"\n\n{}", looper_profile("looper", ""));
    let s = server_with_settings(&toml).await;
    let p = s.add_project().await;

    let (code, agents) = s.get("/api/agents").await;
    assert_eq!(code, 200, "{agents}");
    let names: Vec<&str> = agents.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["aider", "claude", "codex", "gemini", "goose", "looper", "shell"]);
    let looper = agents.as_array().unwrap().iter().find(|a| a["name"] == "looper").unwrap();
    assert_eq!((looper["title"].as_str(), looper["hooks"].as_bool(), looper["builtin"].as_bool()), (Some("Looper"), Some(false), Some(false)));
    let claude = agents.as_array().unwrap().iter().find(|a| a["name"] == "claude").unwrap();
    assert_eq!(claude["hooks"], true);
    assert!(agents.as_array().unwrap().iter().find(|a| a["name"] == "codex").unwrap()["image"].as_str().unwrap().starts_with("anycode-sandbox-codex:"));

    let t = s.create_task(&p, json!({"title": "loop", "agent": "looper", "prompt": "hello there"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.wait_for(60, "the prompt", |t| t.contains("ready>")).await;
    let prompt_seen = Instant::now();
    let text = term.text();
    assert!(text.contains("prompt:[hello there]"), "{text}");
    assert!(text.contains("gw-env:[http://gw-env.invalid:8080]"), "the environment's gateway reaches the agent: {text}");
    assert!(text.contains("gw-file:[http://gw-file.invalid:9090]"), "[env] reaches the agent: {text}");
    assert!(text.contains("fixed:[fixed-value]"), "{text}");
    let host = text.split("host:[").nth(1).and_then(|r| r.split(']').next()).unwrap_or_default().to_string();
    assert!(host.parse::<std::net::IpAddr>().is_ok(), "host.docker.internal resolves in the sandbox: {text}");

    // Quiet for 2 s with the prompt on screen: waiting for input.
    let (w, at) = wait_status(&s, &id, "waiting_input", 15).await;
    assert!(at.duration_since(prompt_seen) >= Duration::from_millis(1400), "only after the output stayed unchanged: {:?}", at.duration_since(prompt_seen));
    assert!(w["attention"]["message"].as_str().unwrap().contains("ready>"), "{w}");

    // Output flowing again: running, and waiting again once it is quiet.
    term.send("work\r").await;
    let (_, _) = wait_status(&s, &id, "running", 3).await;
    term.wait_for(10, "work output", |t| t.contains("working 4")).await;
    assert_eq!(status(&s, &id).await["status"], "running", "still running while it prints");
    term.wait_for(15, "work done", |t| t.contains("working 8")).await;
    let (_, _) = wait_status(&s, &id, "waiting_input", 10).await;

    // The gateways went through the handover, not the container's configuration.
    let inspect = docker_inspect(&format!("anycode-{id}"));
    let env = inspect["Config"]["Env"].to_string();
    assert!(!env.contains("gw-env.invalid") && !env.contains("gw-file.invalid") && !env.contains("fixed-value"), "{env}");
    assert!(env.contains("ANYCODE_AGENT_CMD="), "{env}");

    // Stopped: the watcher ends with the process, the state is the sandbox's.
    let (code, stopped) = s.post(&format!("/api/tasks/{id}/stop"), json!({})).await;
    assert_eq!((code, stopped["status"].as_str()), (200, Some("stopped")), "{stopped}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(status(&s, &id).await["status"], "stopped");

    // Started again: the resume command (no prompt this time), watched again.
    let (code, _) = s.post(&format!("/api/tasks/{id}/start"), json!({})).await;
    assert_eq!(code, 200);
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.wait_for(60, "the second run", |t| t.matches("prompt:[").count() >= 2).await;
    assert!(term.text().contains("prompt:[]"), "later starts do not submit the prompt again: {}", term.text());
    wait_status(&s, &id, "waiting_input", 15).await;
    std::env::remove_var("ANYCODE_TEST_GATEWAY_URL");
}

#[tokio::test(flavor = "multi_thread")]
async fn install_lines_build_an_image_variant_on_demand() {
    // A fresh line each run, so the variant is really built here.
    let marker = format!("variant-{}", anycode_core_id());
    let toml = looper_profile("varied", &format!("install = \"RUN echo {marker} > /opt/variant\""));
    let s = server_with_settings(&toml).await;
    let p = s.add_project().await;
    let (_, agents) = s.get("/api/agents").await;
    let varied = agents.as_array().unwrap().iter().find(|a| a["name"] == "varied").unwrap().clone();
    let tag = varied["image"].as_str().unwrap().to_string();
    assert!(tag.starts_with("anycode-sandbox-varied:"), "{varied}");
    assert_eq!(varied["image_ready"], false, "not built before the first task");

    let started = Instant::now();
    let t = s.create_task(&p, json!({"title": "variant", "agent": "varied"})).await;
    eprintln!("variant built and task started in {:.1} s", started.elapsed().as_secs_f64());
    let id = t["id"].as_str().unwrap().to_string();
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.wait_for(60, "the variant's file", |t| t.contains(&format!("variant:[{marker}]"))).await;
    assert_eq!(docker_inspect(&format!("anycode-{id}"))["Config"]["Image"], tag.as_str());
    let inspect = docker_inspect(&format!("anycode-{id}"));
    assert_eq!(inspect["Config"]["User"].as_str().map(|u| u != "0" && !u.starts_with("root")), Some(true), "the variant runs as the sandbox user");
    let (_, agents) = s.get("/api/agents").await;
    assert_eq!(agents.as_array().unwrap().iter().find(|a| a["name"] == "varied").unwrap()["image_ready"], true);

    // A second task reuses it (no build): fast.
    let again = Instant::now();
    let t2 = s.create_task(&p, json!({"title": "variant two", "agent": "varied"})).await;
    assert!(again.elapsed() < Duration::from_secs(30), "{:?}", again.elapsed());
    assert_eq!(docker_inspect(&format!("anycode-{}", t2["id"].as_str().unwrap()))["Config"]["Image"], tag.as_str());

    for tid in [&id, t2["id"].as_str().unwrap()] {
        let (code, _) = s.delete(&format!("/api/tasks/{tid}")).await;
        assert_eq!(code, 204);
    }
    let _ = std::process::Command::new("docker").args(["rmi", "-f", &tag]).output();
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_agents_and_bad_profiles_are_refused() {
    let s = server_with_settings(&looper_profile("looper", "")).await;
    let p = s.add_project().await;
    let before = git(&s.repo, &["branch", "--format=%(refname:short)"]);
    let (code, e) = s.post(&format!("/api/projects/{p}/tasks"), json!({"title": "x", "agent": "nope"})).await;
    assert_eq!((code, e["error"]["code"].as_str()), (422, Some("UNKNOWN_AGENT")), "{e}");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(msg.contains("\"nope\"") && msg.contains("codex") && msg.contains("looper"), "{msg}");
    let (code, e) = s.post(&format!("/api/projects/{p}/tasks"), json!({"title": "x", "agent": "looper", "credential": "subscription"})).await;
    assert_eq!((code, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{e}");
    assert_eq!(git(&s.repo, &["branch", "--format=%(refname:short)"]), before, "no branch made");
    assert_eq!(s.get("/api/tasks").await.1, json!([]));

    // A settings file with a bad profile: the engine does not open, naming the key.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[agents.mine]\ncommand = [\"x\"]\nprompt = \"y\"\n").unwrap();
    let cfg = Config { settings: Settings::load(&path).unwrap(), ..config(&dir.path().join("data")) };
    let err = anycode_engine::Engine::open(cfg).await.err().expect("a bad profile is refused");
    assert_eq!(err.code(), "INVALID_SETTINGS");
    assert!(err.to_string().contains("[agents.mine]") && err.to_string().contains("prompt"), "{err}");
    let _ = Path::new(&path);
}

fn anycode_core_id() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}
