#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 17: tasks on a remote Docker engine, end to end. A second `dockerd` on this
//! machine (testkit's `SecondDockerd`: its own data root, exec root, bridge and
//! `tcp://127.0.0.1:PORT` API) stands in for the remote host. Nothing of this
//! machine may be mounted there: the task's repository goes there as a git bundle
//! and comes back through the pack protocol over exec.

use anycode_testkit::dockerd::SecondDockerd;
use anycode_testkit::*;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// `docker -H <host> <args>`: success and stdout.
fn docker_h(host: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").arg("-H").arg(host).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Polls `GET path` until `pred` holds on its JSON, for at most `secs`.
async fn wait_json(s: &Server, path: &str, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (st, v) = s.get(path).await;
        if st == 200 && pred(&v) {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}: {st} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_on_a_remote_host_with_nothing_mounted_placement_and_a_host_that_goes_away() {
    let mut second = SecondDockerd::start();
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let mut cfg = config(&dir.path().join("data"));
    cfg.host_check = Duration::from_millis(300);
    // An ignored file of the owner's checkout that `.worktreeinclude` names.
    std::fs::write(repo.join(".gitignore"), ".env\n").unwrap();
    git(&repo, &["add", ".gitignore"]);
    git(&repo, &["commit", "-q", "-m", "ignore .env"]);
    std::fs::write(repo.join(".env"), "API_URL=http://localhost:1234\n").unwrap();
    std::fs::write(repo.join(".worktreeinclude"), ".env\n").unwrap();
    let s = Server::start_with(dir, repo, cfg.clone()).await;
    let p = s.add_project().await;

    // Bad input changes nothing.
    for (body, status, code) in [
        (json!({"name": "box", "endpoint": "http://127.0.0.1:2375"}), 422, "BAD_ENDPOINT"),
        (json!({"name": "local", "endpoint": second.tcp}), 422, "INVALID_INPUT"),
        (json!({"name": "bad name", "endpoint": second.tcp}), 422, "INVALID_INPUT"),
        (json!({"name": "box"}), 422, "INVALID_INPUT"),
        (json!({"name": "box", "endpoint": "tcp://127.0.0.1:1"}), 503, "HOST_UNREACHABLE"),
        (json!({"name": "box", "endpoint": "tcp://127.0.0.1:2376", "tls": {"ca": "/nope/ca.pem", "cert": "/nope/c.pem", "key": "/nope/k.pem"}}), 422, "BAD_TLS_FILES"),
    ] {
        let (st, e) = s.post("/api/hosts", body.clone()).await;
        assert_eq!((st, e["error"]["code"].as_str().unwrap_or("")), (status, code), "{body} → {e}");
    }
    let (_, hosts) = s.get("/api/hosts").await;
    assert_eq!(hosts.as_array().unwrap().len(), 1, "only local: {hosts}");
    assert_eq!(hosts[0]["id"], "local");
    assert_eq!(hosts[0]["status"], "reachable");

    // The host, added by endpoint.
    let (st, host) = s.post("/api/hosts", json!({"name": "box", "endpoint": second.tcp})).await;
    assert_eq!(st, 201, "{host}");
    let box_id = host["id"].as_str().unwrap().to_string();
    assert_eq!(host["status"], "reachable");
    assert!(host["cpus"].as_u64().unwrap() >= 1 && host["memory_bytes"].as_u64().unwrap() > 0, "{host}");
    // The sandbox image goes there in the background, with progress.
    let hosts = wait_json(&s, "/api/hosts", 600, "the image copied to the host", |h| {
        h.as_array().unwrap().iter().any(|h| h["name"] == "box" && h["image"]["status"] != "copying" && !h["image"].is_null())
    })
    .await;
    let image = hosts.as_array().unwrap().iter().find(|h| h["name"] == "box").unwrap()["image"].clone();
    assert_eq!(image["status"], "done", "{image}");
    assert!(image["copied_bytes"].as_u64().unwrap() >= image["total_bytes"].as_u64().unwrap() / 2, "{image}");
    let (ok, images) = docker_h(&second.tcp, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(ok && images.lines().any(|l| l == image["tag"].as_str().unwrap()), "{images}");

    // A Docker context (made by the Docker CLI) is offered and can be added too.
    let config_dir = tempfile::tempdir().unwrap();
    std::env::set_var("DOCKER_CONFIG", config_dir.path());
    let made = Command::new("docker").env("DOCKER_CONFIG", config_dir.path()).args(["context", "create", "ctx-box", "--docker", &format!("host={}", second.tcp)]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (st, contexts) = s.get("/api/hosts/contexts").await;
    assert_eq!(st, 200, "{contexts}");
    assert!(contexts.as_array().unwrap().iter().any(|c| c["name"] == "ctx-box" && c["endpoint"] == second.tcp.as_str()), "{contexts}");
    let (st, e) = s.post("/api/hosts", json!({"name": "viactx", "context": "nope"})).await;
    assert_eq!((st, e["error"]["code"].as_str().unwrap()), (422, "INVALID_INPUT"), "{e}");
    let (st, via) = s.post("/api/hosts", json!({"name": "viactx", "context": "ctx-box"})).await;
    assert_eq!(st, 201, "{via}");
    assert_eq!(via["endpoint"], second.tcp.as_str());
    let (st, _) = s.delete("/api/hosts/viactx").await;
    assert_eq!(st, 204);

    let (st, dup) = s.post("/api/hosts", json!({"name": "box", "endpoint": second.tcp})).await;
    assert_eq!((st, dup["error"]["code"].as_str().unwrap()), (409, "ALREADY_EXISTS"));
    let (st, e) = s.post(&format!("/api/projects/{p}/tasks"), json!({"title": "x", "agent": "shell", "host": "nope"})).await;
    assert_eq!((st, e["error"]["code"].as_str().unwrap()), (422, "INVALID_INPUT"), "{e}");

    // Placement: with a sandbox on `local`, the next task goes to the emptier host.
    let local = s.create_task(&p, json!({"title": "Here", "agent": "shell", "host": "local"})).await;
    assert_eq!(local["host"], "local");
    let t = s.create_task(&p, json!({"title": "Over there", "agent": "shell"})).await;
    assert_eq!(t["host"], box_id.as_str(), "placed on the emptier host: {t}");
    assert_eq!(t["status"], "running");
    assert_eq!(t["worktree"], "", "no folder of the task on this machine");
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    let branch = t["branch"].as_str().unwrap().to_string();
    // `.worktreeinclude` files reach the remote working tree too, and stay out of git.
    assert_eq!(docker_h(&second.tcp, &["exec", &cid, "cat", "/workspace/.env"]), (true, "API_URL=http://localhost:1234\n".to_string()));
    let (_, status) = docker_h(&second.tcp, &["exec", &cid, "git", "-C", "/workspace", "status", "--porcelain", "--untracked-files=all", "--ignored=no"]);
    assert_eq!(status, "", "the copy is not a change");

    // The container is on the second engine, not the first, with only its volume.
    assert!(docker_inspect(&cid).is_null(), "not on the first engine");
    let (ok, inspect) = docker_h(&second.tcp, &["inspect", &cid]);
    assert!(ok, "on the second engine");
    let c: Value = serde_json::from_str::<Value>(&inspect).unwrap()[0].clone();
    let mounts = c["Mounts"].as_array().unwrap();
    assert!(!mounts.is_empty() && mounts.iter().all(|m| m["Type"] == "volume"), "no bind mount: {mounts:?}");
    assert!(c["HostConfig"]["Binds"].as_array().unwrap().iter().all(|b| !b.as_str().unwrap().starts_with('/')), "{}", c["HostConfig"]["Binds"]);
    assert!(!inspect.contains(s.data_dir().to_str().unwrap()), "no path of this machine in the container");
    let (_, hosts) = s.get("/api/hosts").await;
    let remote = hosts.as_array().unwrap().iter().find(|h| h["id"] == box_id.as_str()).unwrap().clone();
    assert_eq!((remote["running_tasks"].as_u64(), remote["tasks"].as_u64()), (Some(1), Some(1)), "{remote}");

    // The terminal works; the diff sees a new file; Commit lands on the branch.
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    let mut term = s.ws(&term_id).await;
    term.send("echo $((6*7)); echo made-remotely > new.txt\r").await;
    term.wait_for(30, "42 from the remote sandbox", |t| t.lines().any(|l| l.trim() == "42")).await;
    // The governor reads its usage from that host (Docker's stats there).
    let used = wait_json(&s, &format!("/api/tasks/{id}"), 30, "the remote sandbox's usage", |t| t["usage"]["memory_bytes"].as_u64().is_some_and(|m| m > 0)).await;
    assert_eq!(used["usage"]["memory_limit_bytes"], 512 * 1024 * 1024, "{used}");
    let diff = wait_json(&s, &format!("/api/tasks/{id}/diff"), 20, "the new file in the diff", |d| {
        d["files"].as_array().is_some_and(|f| f.iter().any(|f| f["path"] == "new.txt"))
    })
    .await;
    assert!(diff.to_string().contains("made-remotely"), "{diff}");
    let (st, c) = s.post(&format!("/api/tasks/{id}/commit"), json!({"message": "Made over there"})).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(git(&s.repo, &["log", "-1", "--format=%s", &branch]).trim(), "Made over there");
    assert_eq!(git(&s.repo, &["show", &format!("{branch}:new.txt")]), "made-remotely\n");

    // Update from base: the base's new commit goes there as a bundle and merges.
    std::fs::write(s.repo.join("from-base.txt"), "base moved\n").unwrap();
    git(&s.repo, &["add", "from-base.txt"]);
    git(&s.repo, &["commit", "-qm", "Base moved"]);
    let (st, up) = s.post(&format!("/api/tasks/{id}/update-from-base"), json!({})).await;
    assert_eq!(st, 200, "{up}");
    term.run("cat from-base.txt", "merged").await;
    assert!(term.text().contains("base moved"), "{}", term.text());

    // The host stops answering: its task says so and keeps its state; the rest of
    // AnyCode keeps working.
    drop(term);
    second.stop();
    let gone = wait_json(&s, &format!("/api/tasks/{id}"), 30, "host_error on the task", |t| t["host_error"].is_string()).await;
    assert_eq!(gone["status"], "running", "the task keeps its state: {gone}");
    let (_, hosts) = s.get("/api/hosts").await;
    let remote = hosts.as_array().unwrap().iter().find(|h| h["id"] == box_id.as_str()).unwrap().clone();
    assert_eq!(remote["status"], "unreachable", "{remote}");
    assert!(remote["error"].is_string());
    let (st, e) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!((st, e["error"]["code"].as_str().unwrap_or("")), (503, "HOST_UNREACHABLE"), "{e}");
    let mut here = s.ws(local["terminals"][0]["id"].as_str().unwrap()).await;
    here.run("echo still-$((1+1))", "local").await;
    assert!(here.text().contains("still-2"));
    let (st, health) = s.get("/api/health").await;
    assert_eq!(st, 200);
    assert_eq!(health["docker"]["ok"], true, "{health}");
    // A new task is placed on the host that answers.
    let t3 = s.create_task(&p, json!({"title": "While it is away", "agent": "shell"})).await;
    assert_eq!(t3["host"], "local", "{t3}");

    // It comes back: the task is reconciled, its terminal attached again.
    second.restart();
    wait_json(&s, &format!("/api/tasks/{id}"), 60, "the host back", |t| t["host_error"].is_null() && t["status"] == "running").await;
    // `host_error` clears once the terminal is attached again: what is typed then
    // reaches the shell (before, it cleared first and typing could be lost).
    let mut term = s.ws(&term_id).await;
    term.run("cat new.txt", "after").await;
    assert!(term.text().contains("made-remotely"), "{}", term.text());
    drop(term);

    // AnyCode restarts: the remote task's terminal is attached again, its history
    // replayed from the container's log there.
    let (dir, repo) = s.shutdown().await;
    let s = Server::start_with(dir, repo, cfg).await;
    let mut term = s.ws(&term_id).await;
    term.wait_for(30, "the replayed history", |t| t.contains("made-remotely")).await;
    term.run("echo again-$((3+4))", "restarted").await;
    assert!(term.text().contains("again-7"), "{}", term.text());
    let (_, back) = s.get(&format!("/api/tasks/{id}")).await;
    assert_eq!((back["status"].as_str(), back["host"].as_str()), (Some("running"), Some(box_id.as_str())), "{back}");
    drop(term);

    // Removing the host is refused while a task is on it; Delete removes the
    // container and the volume there, and keeps the branch.
    let (st, e) = s.delete(&format!("/api/hosts/{box_id}")).await;
    assert_eq!((st, e["error"]["code"].as_str().unwrap_or("")), (409, "CONFLICT"), "{e}");
    let (st, _) = s.delete(&format!("/api/tasks/{id}")).await;
    assert_eq!(st, 204);
    assert!(!docker_h(&second.tcp, &["inspect", &cid]).0, "the container is gone there");
    let (_, volumes) = docker_h(&second.tcp, &["volume", "ls", "-q"]);
    assert!(!volumes.contains(&format!("anycode-ws-{id}")), "the volume is gone there: {volumes}");
    assert!(git(&s.repo, &["branch", "--list", &branch]).contains(&branch), "the branch stays");
    let (st, _) = s.delete("/api/hosts/box").await;
    assert_eq!(st, 204);
    let (_, hosts) = s.get("/api/hosts").await;
    assert_eq!(hosts.as_array().unwrap().len(), 1);
}

/// Hooks and approvals from a sandbox on a remote host: the real Claude Code CLI
/// there reaches AnyCode's hook service and egress proxy through its relay, which
/// rides the exec stream (no port of this machine is opened to that host), and the
/// credential is handed over at start as locally.
#[tokio::test(flavor = "multi_thread")]
async fn hooks_approvals_and_the_api_reach_anycode_from_a_remote_sandbox() {
    use anycode_testkit::anthropic::{FakeAnthropic, Script};
    let second = SecondDockerd::start();
    let cmd = "echo hi > proof.txt && echo wrote-proof";
    let fake = FakeAnthropic::start(Script::ToolThenText { input: json!({"command": cmd, "description": "Write proof.txt"}), text: "Done.".into() }).await;
    let s = anycode_testkit::anthropic::claude_server(&fake, Duration::from_secs(120), "sk-ant-api03-remote-test-key-0123456789abcdefXYZ").await;
    let p = s.add_project().await;
    let (st, host) = s.post("/api/hosts", json!({"name": "box", "endpoint": second.tcp, "max_running": 2})).await;
    assert_eq!(st, 201, "{host}");
    let t = s.create_task(&p, json!({"title": "Prove it there", "agent": "claude", "credential": "api_key", "permission_mode": "default",
        "prompt": "Write proof.txt", "host": "box"})).await;
    assert_eq!(t["host"], host["id"]);
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    // The credential is not in the container's create-time environment there.
    let (_, env) = docker_h(&second.tcp, &["inspect", "-f", "{{json .Config.Env}}", &cid]);
    assert!(!env.contains("sk-ant-api03-remote-test-key"), "no credential in the container's env: {env}");
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.resize(120, 40).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let t = loop {
        let (_, t) = s.get(&format!("/api/tasks/{id}")).await;
        if t["status"] == "needs_approval" {
            break t;
        }
        let _ = tokio::time::timeout(Duration::from_millis(300), term.wait_for(1, "", |_| false)).await;
        assert!(std::time::Instant::now() < deadline, "never needs_approval: {t}\n{}", term.text());
    };
    assert_eq!(t["attention"]["tool"], "Bash", "{t}");
    assert!(!fake.requests().is_empty(), "the agent reached the API stand-in through AnyCode's egress proxy");
    let (st, after) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "allow"})).await;
    assert_eq!(st, 200, "{after}");
    let t = wait_json(&s, &format!("/api/tasks/{id}"), 120, "done", |t| t["status"] == "done").await;
    assert_eq!(t["host"], host["id"]);
    let (_, out) = docker_h(&second.tcp, &["exec", &cid, "cat", "/workspace/proof.txt"]);
    assert_eq!(out.trim(), "hi", "the approved tool ran there");
    let (st, _) = s.delete(&format!("/api/tasks/{id}")).await;
    assert_eq!(st, 204);
}
