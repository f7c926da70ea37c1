//! Sessions that outlive everything (issue 8): a Claude Code task survives `kill -9`
//! of the server with its scrollback, and after a "reboot" (the server down and the
//! container stopped from outside while the database says running) the next start
//! of the server starts the sandbox again; an agent that exited by itself stays
//! exited.

use anycode_testkit::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_anycode");

/// A server on a fresh fixture with its repository as the project: (server, API
/// client, project id).
async fn serve_with_project(fx: &Fixture) -> (ServeProcess, Api, String) {
    let serve = ServeProcess::start(Path::new(BIN), &fx.data, &["--project", fx.repo.to_str().unwrap()]);
    let api = Api::new(&serve.base);
    let (_, projects) = api.req(reqwest::Method::GET, "/api/projects", None).await;
    let pid = projects[0]["id"].as_str().unwrap().to_string();
    (serve, api, pid)
}

async fn get_task(base: &str, id: &str) -> Value {
    Api::new(base).req(reqwest::Method::GET, &format!("/api/tasks/{id}"), None).await.1
}

async fn status_becomes(base: &str, id: &str, status: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = get_task(base, id).await;
        if t["status"] == status {
            return t;
        }
        assert!(Instant::now() < deadline, "task {id} did not become {status}: {t}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn squash(t: &str) -> String {
    t.split_whitespace().collect::<String>().to_lowercase()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claude_session_survives_kill_9_and_a_reboot() {
    let fx = fixture();
    let (serve, api, pid) = serve_with_project(&fx).await;
    let (st, t) = api.req(reqwest::Method::POST, &format!("/api/projects/{pid}/tasks"), Some(json!({"title": "durable claude", "agent": "claude"}))).await;
    assert_eq!(st, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    let mut term = Term::connect(&serve.base, &term_id, TOKEN).await;
    term.resize(120, 40).await;
    term.wait_for(90, "Claude Code's login screen", |t| squash(t).contains("notloggedin")).await;
    drop(term);

    // kill -9 while the agent runs: the session and its scrollback are there after.
    serve.kill9();
    assert_eq!(docker_inspect(&cid)["State"]["Running"], true, "the agent outlives the server");
    let serve = ServeProcess::start(Path::new(BIN), &fx.data, &[]);
    let t2 = get_task(&serve.base, &id).await;
    assert!(t2["status"] != "exited" && t2["status"] != "error" && t2["status"] != "queued", "{t2}");
    let started_at = docker_inspect(&cid)["State"]["StartedAt"].clone();
    let mut term = Term::connect(&serve.base, &term_id, TOKEN).await;
    term.wait_for(20, "the scrollback after kill -9", |t| squash(t).contains("notloggedin")).await;
    // How often the screen says it so far (the TUI may draw it more than once).
    let before = squash(&term.text()).matches("notloggedin").count();
    assert_eq!(docker_inspect(&cid)["State"]["StartedAt"], started_at, "the same process, not a new one");
    drop(term);

    // A reboot: the server is gone and the container is stopped from outside.
    serve.kill9();
    let out = Command::new("docker").args(["kill", &cid]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(docker_inspect(&cid)["State"]["Running"], false);
    let serve = ServeProcess::start(Path::new(BIN), &fx.data, &[]);
    let t3 = status_becomes(&serve.base, &id, "running", 60)
        .await
        .clone();
    assert_eq!(t3["container_id"], cid.as_str(), "the same container, started again");
    // `running` is set when the task is admitted, just before Docker starts it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while docker_inspect(&cid)["State"]["Running"] != true {
        assert!(Instant::now() < deadline, "the container did not start again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(docker_inspect(&cid)["State"]["StartedAt"], started_at);
    // The terminal shows what came before and the agent's new start.
    let mut term = Term::connect(&serve.base, &term_id, TOKEN).await;
    term.wait_for(90, "the history and the new start's login screen", |t| squash(t).matches("notloggedin").count() > before).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_reboot_killed_shells_start_again_and_finished_agents_stay_exited() {
    let fx = fixture();
    let (serve, api, pid) = serve_with_project(&fx).await;
    let mut made = Vec::new();
    for title in ["killed", "finished"] {
        let (st, t) = api.req(reqwest::Method::POST, &format!("/api/projects/{pid}/tasks"), Some(json!({"title": title, "agent": "shell"}))).await;
        assert_eq!(st, 201, "{t}");
        made.push(t);
    }
    let (killed, finished) = (&made[0], &made[1]);
    let mut term = Term::connect(&serve.base, killed["terminals"][0]["id"].as_str().unwrap(), TOKEN).await;
    term.run("echo before-reboot-$((3*3))", "pre").await;
    drop(term);
    // The second agent ends by itself (exit 0) while the server is down.
    let mut term = Term::connect(&serve.base, finished["terminals"][0]["id"].as_str().unwrap(), TOKEN).await;
    term.run("echo armed", "armed").await;
    term.send("sleep 3; exit 0\r").await;
    // Echoed: the shell has the line before the server goes down.
    term.wait_for(10, "the echo of the last command", |t| t.contains("sleep 3; exit 0")).await;
    drop(term);
    serve.kill9();
    let kcid = killed["container_id"].as_str().unwrap().to_string();
    let fcid = finished["container_id"].as_str().unwrap().to_string();
    let out = Command::new("docker").args(["stop", "-t", "1", &kcid]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually(20, "the finished agent's exit", || docker_inspect(&fcid)["State"]["Running"] == false).await;
    assert_eq!(docker_inspect(&fcid)["State"]["ExitCode"], 0);

    let serve = ServeProcess::start(Path::new(BIN), &fx.data, &[]);
    let k = status_becomes(&serve.base, killed["id"].as_str().unwrap(), "running", 60).await;
    assert_eq!(docker_inspect(&kcid)["State"]["Running"], true);
    let f = get_task(&serve.base, finished["id"].as_str().unwrap()).await;
    assert_eq!(f["status"], "exited", "{f}");
    assert_eq!(f["exit_code"], 0);
    assert_eq!(docker_inspect(&fcid)["State"]["Running"], false, "not started again");
    // The restarted shell's terminal keeps the history and takes input.
    let mut term = Term::connect(&serve.base, k["terminals"][0]["id"].as_str().unwrap(), TOKEN).await;
    term.wait_for(20, "the history from before the reboot", |t| t.contains("before-reboot-9")).await;
    term.run("echo after-reboot-$((5*5))", "post").await;
}

/// Issue 14: `kill -9` while Claude Code waits for an approval. The next start of
/// AnyCode shows the question again at once (kept in the database), the agent's hook
/// asks again by itself, and an Allow given then runs the tool.
#[tokio::test(flavor = "multi_thread")]
async fn an_approval_waiting_at_kill_9_is_asked_again_and_its_answer_reaches_the_agent() {
    use anycode_testkit::anthropic::{FakeAnthropic, Script};
    const KEY: &str = "sk-ant-api03-sessions-test-key-0123456789abcdefXYZ";
    const CMD: &str = "echo hi > proof.txt && echo wrote-proof";
    let fake = FakeAnthropic::start(Script::ToolThenText { input: json!({"command": CMD, "description": "Write proof.txt"}), text: "All done.".into() }).await;
    let fx = fixture();
    let settings = fx.data.with_file_name("config.toml");
    std::fs::write(
        &settings,
        format!(
            "[approvals]\ntimeout_secs = 120\n[env]\nANTHROPIC_BASE_URL = \"{}\"\nDISABLE_TELEMETRY = \"1\"\nCLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = \"1\"\nCLAUDE_CODE_MAX_RETRIES = \"0\"\n",
            fake.sandbox_url()
        ),
    )
    .unwrap();
    let env = [("ANTHROPIC_API_KEY", KEY), ("ANYCODE_CONFIG", settings.to_str().unwrap())];
    let project = ["--project", fx.repo.to_str().unwrap()];
    let serve = ServeProcess::start_with_env(Path::new(BIN), &fx.data, &project, &env);
    let api = Api::new(&serve.base);
    let (_, projects) = api.req(reqwest::Method::GET, "/api/projects", None).await;
    let pid = projects[0]["id"].as_str().unwrap().to_string();
    let body = json!({"title": "ask again", "agent": "claude", "credential": "api_key", "permission_mode": "default", "prompt": "Write proof.txt"});
    let (st, t) = api.req(reqwest::Method::POST, &format!("/api/projects/{pid}/tasks"), Some(body)).await;
    assert_eq!(st, 201, "{t}");
    let id = t["id"].as_str().unwrap().to_string();
    let proof = Path::new(t["worktree"].as_str().unwrap()).join("proof.txt");
    let mut term = Term::connect(&serve.base, t["terminals"][0]["id"].as_str().unwrap(), TOKEN).await;
    term.resize(120, 40).await;
    let asked = status_becomes(&serve.base, &id, "needs_approval", 120).await;
    assert_eq!(asked["attention"]["input"]["command"], CMD, "{asked}");
    drop(term);

    serve.kill9();
    let started = Instant::now();
    let serve = ServeProcess::start_with_env(Path::new(BIN), &fx.data, &project, &env);
    let again = get_task(&serve.base, &id).await;
    assert_eq!(again["status"], "needs_approval", "asked again as soon as AnyCode is back: {again}");
    assert_eq!(again["attention"]["tool"], "Bash", "{again}");
    assert_eq!(again["attention"]["input"]["command"], CMD, "{again}");
    assert_eq!(again["attention"]["since"], asked["attention"]["since"], "the question keeps its first time");
    assert!(!proof.exists(), "nothing ran before the answer");

    let api = Api::new(&serve.base);
    let (st, after) = api.req(reqwest::Method::POST, &format!("/api/tasks/{id}/approval"), Some(json!({"decision": "allow"}))).await;
    assert_eq!(st, 200, "the answer reaches the agent asking again: {after}");
    eprintln!("kill -9 to the answer accepted: {:?}", started.elapsed());
    status_becomes(&serve.base, &id, "done", 120).await;
    assert_eq!(std::fs::read_to_string(&proof).unwrap(), "hi\n", "the allowed tool ran");
    let (st, e) = api.req(reqwest::Method::POST, &format!("/api/tasks/{id}/approval"), Some(json!({"decision": "allow"}))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("NO_PENDING_APPROVAL")), "{e}");
}
