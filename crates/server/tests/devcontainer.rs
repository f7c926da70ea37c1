#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The project's dev container and its setup (issue 16, items 1 and 2), against
//! the real Docker engine and real repositories: an image built from the project's
//! Dockerfile with build args (on top of AnyCode's sandbox image), another from a
//! plain Debian image with AnyCode's bits layered on, containerEnv and remoteEnv
//! in the sandbox and the agent, workspaceFolder, forwardPorts listed before they
//! listen, unsupported fields named in the setup log, postCreateCommand once and
//! postStartCommand at every start, a failing setup leaving the task usable, and
//! the agent starting only after the setup.

use anycode_engine::{Config, Settings};
use anycode_testkit::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn exec(cid: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(["exec", cid]).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A test server whose settings file holds `toml`.
async fn server_with_settings(toml: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let path = dir.path().join("config.toml");
    std::fs::write(&path, toml).unwrap();
    let from_file = Config::from_settings(Settings::load(&path).unwrap(), path);
    let cfg = Config { settings: from_file.settings, settings_path: from_file.settings_path, ..config(&dir.path().join("data")) };
    Server::start_with(dir, repo, cfg).await
}

/// The sandbox image this build of AnyCode uses (built by the server if missing).
async fn sandbox_tag(s: &Server) -> String {
    let (st, agents) = s.get("/api/agents").await;
    assert_eq!(st, 200, "{agents}");
    agents.as_array().unwrap().iter().find(|a| a["name"] == "shell").unwrap()["image"].as_str().unwrap().to_string()
}

fn commit_all(repo: &Path, msg: &str) {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", msg]);
}

/// Polls the task until its setup's status is `want`.
async fn wait_setup(s: &Server, id: &str, want: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, t) = s.get(&format!("/api/tasks/{id}")).await;
        if t["setup"]["status"] == want {
            return t;
        }
        assert!(Instant::now() < deadline, "setup never became {want}: {}", t["setup"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn get_text(s: &Server, path: &str) -> (u16, String) {
    let r = s.http.get(format!("{}{path}", s.base)).bearer_auth(TOKEN).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The agent: prints what it sees at its start (the setup's marks, its variables,
/// its folder), then waits.
const PROBE: &str = r#"echo "probe-start marks:[$(tr '\n' , < /workspace/app/.marks 2>/dev/null)] remote:[$DC_REMOTE] container:[$DC_CONTAINER] pwd:[$PWD]"; exec sleep infinity"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_projects_dev_container_is_built_set_up_and_honoured() {
    let cmd = serde_json::to_string(&vec!["bash", "-c", PROBE]).unwrap();
    let s = server_with_settings(&format!("[agents.probe]\ntitle = \"Probe\"\ncommand = {cmd}\n")).await;
    let base = sandbox_tag(&s).await;
    let repo = s.repo.clone();
    std::fs::create_dir_all(repo.join(".devcontainer")).unwrap();
    std::fs::create_dir_all(repo.join("app")).unwrap();
    std::fs::write(repo.join("app/index.txt"), "app\n").unwrap();
    std::fs::write(
        repo.join(".devcontainer/Dockerfile"),
        "ARG BASE\nFROM ${BASE}\nARG MARK\nARG RUN\nUSER root\nCOPY hello.txt /opt/hello.txt\nRUN echo \"$MARK\" > /opt/project-mark && echo \"this run: $RUN\"\n",
    )
    .unwrap();
    // A new value each run: the image is built by this test, not found in Docker's cache.
    let run = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    std::fs::write(repo.join(".devcontainer/hello.txt"), "from the build context\n").unwrap();
    let dc = format!(
        r#"// The project's dev container (JSON with comments).
{{
  "name": "demo",
  "build": {{ "dockerfile": "Dockerfile", "args": {{ "BASE": "{base}", "MARK": "built-with-args", "RUN": "{run}" }} }},
  "containerEnv": {{ "DC_CONTAINER": "c-env" }},
  "remoteEnv": {{ "DC_REMOTE": "r-env" }},
  "postCreateCommand": "echo create >> .marks && echo CREATE-OUTPUT-$((40+2))",
  "postStartCommand": ["sh", "-c", "sleep 2; echo start >> .marks; echo \"setup-saw:[$DC_REMOTE][$PWD]\""],
  "forwardPorts": [4321],
  "workspaceFolder": "/workspace/app",
  "customizations": {{ "vscode": {{ "extensions": [] }} }},
}}
"#
    );
    std::fs::write(repo.join(".devcontainer/devcontainer.json"), dc).unwrap();
    commit_all(&repo, "dev container");
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Dev container", "agent": "probe"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    assert!(["pending", "running"].contains(&t["setup"]["status"].as_str().unwrap()), "{}", t["setup"]);
    let mut agent = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;

    // The setup's live terminal is listed as its own kind.
    let deadline = Instant::now() + Duration::from_secs(60);
    let setup_term = loop {
        let (_, t) = s.get(&format!("/api/tasks/{id}")).await;
        if let Some(term) = t["terminals"].as_array().unwrap().iter().find(|x| x["kind"] == "setup") {
            break term["id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no setup terminal: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut setup = s.ws(&setup_term).await;
    setup.wait_for(60, "the setup's output", |t| t.contains("CREATE-OUTPUT-42") && t.contains("setup-saw:[r-env][/workspace/app]")).await;

    // The agent starts after the setup: its first look sees both marks.
    agent
        .wait_for(60, "the agent's start", |t| t.contains("probe-start marks:[create,start,] remote:[r-env] container:[c-env] pwd:[/workspace/app]"))
        .await;
    let t = wait_setup(&s, &id, "done", 30).await;
    assert_eq!(t["setup"]["exit_code"], 0, "{}", t["setup"]);
    let log_url = t["setup"]["log_url"].as_str().unwrap().to_string();
    assert_eq!(log_url, format!("/api/tasks/{id}/setup/log"));
    let (st, log) = get_text(&s, &log_url).await;
    assert_eq!(st, 200);
    assert!(log.contains("CREATE-OUTPUT-42") && log.contains("customizations is not supported"), "{log}");
    assert!(!log.contains("name is not supported"), "{log}");
    // The image build's output comes first in the setup tab.
    let built = log.find("AnyCode: building anycode-devcontainer-project:").unwrap_or_else(|| panic!("no build output: {log}"));
    assert!(log.contains("COPY hello.txt") && log.contains(&format!("this run: {run}")), "{log}");
    assert!(built < log.find("CREATE-OUTPUT-42").unwrap(), "{log}");

    // The image: the project's Dockerfile, its context and args from the commit.
    assert_eq!(exec(&cid, &["cat", "/opt/project-mark"]).1, "built-with-args\n");
    assert_eq!(exec(&cid, &["cat", "/opt/hello.txt"]).1, "from the build context\n");
    let image = docker_inspect(&cid)["Config"]["Image"].as_str().unwrap().to_string();
    assert!(image.starts_with("anycode-devcontainer:"), "{image}");
    let env = exec(&cid, &["env"]).1;
    assert!(env.contains("DC_CONTAINER=c-env") && !env.contains("DC_REMOTE"), "containerEnv on the container, remoteEnv not: {env}");

    // forwardPorts shows before anything listens.
    let (st, ports) = s.get(&format!("/api/tasks/{id}/ports")).await;
    assert_eq!(st, 200, "{ports}");
    let fwd = ports.as_array().unwrap().iter().find(|p| p["port"] == 4321).unwrap_or_else(|| panic!("4321 not listed: {ports}"));
    assert_eq!((fwd["listening"].clone(), fwd["forwarded"].clone()), (json!(false), json!(true)), "{fwd}");

    // The next start runs postStartCommand again, not postCreateCommand.
    let (st, _) = s.post(&format!("/api/tasks/{id}/stop"), json!({})).await;
    assert_eq!(st, 200);
    let (st, t2) = s.post(&format!("/api/tasks/{id}/start"), json!({})).await;
    assert_eq!(st, 200, "{t2}");
    let mut agent = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    agent.wait_for(60, "the agent's second start", |t| t.contains("marks:[create,start,start,]")).await;
    wait_setup(&s, &id, "done", 30).await;
    assert_eq!(exec(&cid, &["cat", "/workspace/app/.marks"]).1, "create\nstart\nstart\n");
    s.delete(&format!("/api/tasks/{id}")).await;
    // This run's images go (a new one is built each run).
    let project = log.split("AnyCode: building ").nth(1).and_then(|r| r.split(['\x1b', '\r', '\n']).next()).unwrap().to_string();
    let _ = Command::new("docker").args(["rmi", "-f", &image, &project]).output();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_setup_leaves_the_task_usable_on_a_plain_debian_image() {
    let s = Server::start().await;
    let repo = s.repo.clone();
    std::fs::create_dir_all(repo.join(".devcontainer")).unwrap();
    std::fs::write(
        repo.join(".devcontainer/devcontainer.json"),
        r#"{ "image": "debian:bookworm-slim", "postCreateCommand": "echo about-to-fail; sleep 3; exit 7", "mounts": ["x"] }"#,
    )
    .unwrap();
    commit_all(&repo, "dev container");
    // The working tree's copy is not what counts: the base commit's is.
    std::fs::write(repo.join(".devcontainer/devcontainer.json"), r#"{ "image": "debian:bookworm-slim", "postCreateCommand": "exit 0" }"#).unwrap();
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Failing setup", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    // The shell (the agent here) is held while the setup runs: no prompt yet.
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    wait_setup(&s, &id, "running", 60).await;
    let _ = tokio::time::timeout(Duration::from_millis(1500), term.wait_for(2, "", |_| false)).await;
    assert!(term.text().contains("the agent starts once the dev container setup has run"), "{}", term.text());
    assert!(!term.text().contains("@failing-setup"), "the shell started during the setup: {}", term.text());
    let t = wait_setup(&s, &id, "failed", 120).await;
    term.wait_for(30, "the shell's prompt after the setup", |t| t.contains("@failing-setup")).await;
    assert_eq!(t["setup"]["exit_code"], 7, "{}", t["setup"]);
    assert!(t["setup"]["error"].as_str().unwrap().contains("7"), "{}", t["setup"]);
    assert_eq!(t["status"], "running", "the task stays usable: {t}");
    let (_, log) = get_text(&s, &format!("/api/tasks/{id}/setup/log")).await;
    assert!(log.contains("about-to-fail") && log.contains("exited with 7") && log.contains("mounts is not supported"), "{log}");

    // Debian with AnyCode's bits: the shell works, git and node are there, and the
    // relay (AnyCode's node) carries the sandbox's ports listing.
    assert!(exec(&cid, &["grep", "-q", "bookworm", "/etc/os-release"]).0);
    term.run("git --version && node -e 'console.log(\"node-\" + (6*7))'", "usable").await;
    assert!(term.text().contains("node-42"), "{}", term.text());
    let (st, ports) = s.get(&format!("/api/tasks/{id}/ports")).await;
    assert_eq!(st, 200, "{ports}");
    s.delete(&format!("/api/tasks/{id}")).await;
    let (st, _) = s.get(&format!("/api/tasks/{id}/setup/log")).await;
    assert_eq!(st, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_dev_container_nothing_changes_and_a_broken_one_is_refused() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Plain", "agent": "shell"})).await;
    assert_eq!(t["setup"], json!({"status": "none", "exit_code": null, "log_url": null, "error": null}));
    assert!(t["terminals"].as_array().unwrap().iter().all(|x| x["kind"] != "setup"), "{t}");
    let (st, e) = s.get(&format!("/api/tasks/{}/setup/log", t["id"].as_str().unwrap())).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("SETUP_LOG_NOT_FOUND")), "{e}");
    s.delete(&format!("/api/tasks/{}", t["id"].as_str().unwrap())).await;

    let repo = s.repo.clone();
    std::fs::create_dir_all(repo.join(".devcontainer")).unwrap();
    std::fs::write(repo.join(".devcontainer/devcontainer.json"), "{ \"build\": { \"dockerfile\": \"../../../etc/passwd\" } }").unwrap();
    commit_all(&repo, "bad dev container");
    let (st, e) = s.post(&format!("/api/projects/{p}/tasks"), json!({"title": "Bad", "agent": "shell"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("leaves the repository"), "{e}");
    let (_, tasks) = s.get("/api/tasks").await;
    assert_eq!(tasks.as_array().map(Vec::len), Some(0), "no partial task: {tasks}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_setup_cut_short_by_a_restart_of_anycode_is_marked_failed_and_lets_the_agent_go() {
    let s = Server::start().await;
    let repo = s.repo.clone();
    std::fs::create_dir_all(repo.join(".devcontainer")).unwrap();
    std::fs::write(repo.join(".devcontainer/devcontainer.json"), r#"{ "image": "debian:bookworm-slim", "postCreateCommand": "echo setup-started; sleep 600" }"#).unwrap();
    commit_all(&repo, "a long setup");
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Cut short", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    wait_setup(&s, &id, "running", 120).await;

    // AnyCode stops mid-setup; the next one finds the setup `running` with nothing
    // left to finish it.
    let data = s.data_dir();
    let (dir, repo) = s.shutdown().await;
    let s = Server::start_with(dir, repo, config(&data)).await;
    let t = wait_setup(&s, &id, "failed", 60).await;
    assert!(t["setup"]["error"].as_str().unwrap().contains("AnyCode stopped while the setup ran"), "{}", t["setup"]);
    assert_eq!(t["status"], "running", "{t}");
    // The agent held for the setup is let go: the shell's prompt comes.
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.wait_for(30, "the shell's prompt once the agent is let go", |t| t.contains("@cut-short")).await;
    s.delete(&format!("/api/tasks/{id}")).await;
}
