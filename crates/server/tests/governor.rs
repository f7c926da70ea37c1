#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The resource governor (issue 8) with real Docker: the run queue (`max_running`),
//! idle pause and resume on a keystroke or on start, idle stop, per-task caps in
//! `docker inspect`, live usage from Docker stats.

use anycode_testkit::*;
use serde_json::{json, Value};
use std::future::Future;
use std::time::{Duration, Instant};

async fn server(tune: impl FnOnce(&mut anycode_engine::Config)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let mut cfg = config(&dir.path().join("data"));
    cfg.pause_after = None;
    cfg.stop_after = None;
    tune(&mut cfg);
    Server::start_with(dir, repo, cfg).await
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `secs`.
async fn until<T, F: Future<Output = Option<T>>>(secs: u64, what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn task(s: &Server, id: &str) -> Value {
    let (st, t) = s.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(st, 200, "{t}");
    t
}

async fn status_becomes(s: &Server, id: &str, status: &str, secs: u64) -> Value {
    until(secs, &format!("task {id} to be {status}"), || async move {
        let t = task(s, id).await;
        (t["status"] == status).then_some(t)
    })
    .await
}

fn id(t: &Value) -> String {
    t["id"].as_str().unwrap().to_string()
}

fn cid(t: &Value) -> String {
    t["container_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_max_running_tasks_queue_in_order_and_start_when_a_slot_frees() {
    let s = server(|c| c.max_running = 1).await;
    let p = s.add_project().await;
    let a = s.create_task(&p, json!({"title": "first", "agent": "shell"})).await;
    assert_eq!(a["status"], "running", "{a}");
    assert_eq!(a["queue_position"], Value::Null);

    let b = s.create_task(&p, json!({"title": "second", "agent": "shell"})).await;
    assert_eq!(b["status"], "queued", "{b}");
    assert_eq!(b["queue_position"], 1);
    let c = s.create_task(&p, json!({"title": "third", "agent": "shell"})).await;
    assert_eq!(c["status"], "queued");
    assert_eq!(c["queue_position"], 2);
    // A queued task's container exists (creation is done) but does not run.
    let ib = docker_inspect(&cid(&b));
    assert_eq!(ib["State"]["Running"], false, "a queued sandbox is created, not started");
    assert_eq!(ib["State"]["Status"], "created");

    // Stopping a queued task takes it out of the queue; the one behind moves up.
    let (st, sc) = s.post(&format!("/api/tasks/{}/stop", id(&c)), json!({})).await;
    assert_eq!(st, 200, "{sc}");
    assert_eq!(sc["status"], "stopped");
    assert_eq!(sc["queue_position"], Value::Null);
    assert_eq!(task(&s, &id(&b)).await["queue_position"], 1);
    // Starting a task while the slot is taken queues it (again, at the end).
    let (st, sc) = s.post(&format!("/api/tasks/{}/start", id(&c)), json!({})).await;
    assert_eq!(st, 200, "{sc}");
    assert_eq!(sc["status"], "queued", "{sc}");
    assert_eq!(sc["queue_position"], 2);

    // The running task stops: the first in line starts.
    let (st, _) = s.post(&format!("/api/tasks/{}/stop", id(&a)), json!({})).await;
    assert_eq!(st, 200);
    let b2 = status_becomes(&s, &id(&b), "running", 30).await;
    assert_eq!(b2["queue_position"], Value::Null);
    assert_eq!(docker_inspect(&cid(&b))["State"]["Running"], true);
    assert_eq!(task(&s, &id(&c)).await["queue_position"], 1);
    assert_eq!(task(&s, &id(&c)).await["status"], "queued", "one slot: the second stays queued");

    // The started one is a working terminal.
    let mut term = s.ws(b2["terminals"][0]["id"].as_str().unwrap()).await;
    term.run("echo from-queue-$((40+2))", "q").await;

    // Its agent exits by itself: the next in line starts.
    term.send("exit 0\r").await;
    term.wait_exit(20).await;
    status_becomes(&s, &id(&c), "running", 30).await;
    assert_eq!(task(&s, &id(&b)).await["status"], "exited");

    // Deleting a queued task removes it from the queue and its container.
    let d = s.create_task(&p, json!({"title": "fourth", "agent": "shell"})).await;
    assert_eq!(d["status"], "queued");
    assert_eq!(d["queue_position"], 1);
    let (st, _) = s.delete(&format!("/api/tasks/{}", id(&d))).await;
    assert!(st == 200 || st == 204, "{st}");
    assert_eq!(docker_inspect(&cid(&d)), Value::Null, "the queued container is gone");
    assert_eq!(task(&s, &id(&c)).await["status"], "running");
    let (_, all) = s.get("/api/tasks").await;
    assert_eq!(all.as_array().unwrap().iter().filter(|t| t["status"] == "queued").count(), 0, "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_sandbox_is_paused_and_resumes_on_a_keystroke_and_on_start() {
    let s = server(|c| c.pause_after = Some(Duration::from_secs(2))).await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "idle", "agent": "shell"})).await;
    let tid = id(&t);
    let container = cid(&t);
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.run("echo ready-$((1+1))", "ready").await;

    let paused = status_becomes(&s, &tid, "paused", 20).await;
    assert_eq!(docker_inspect(&container)["State"]["Paused"], true, "docker pause froze it");
    assert_eq!(paused["terminals"][0]["id"], t["terminals"][0]["id"]);

    // A keystroke thaws it before it reaches the TTY; the echo arrives.
    let sent = Instant::now();
    term.send("echo back-$((2+2))\r").await;
    term.wait_for(15, "the echo after the resume", |t| t.contains("back-4")).await;
    let resumed_in = sent.elapsed();
    let now = task(&s, &tid).await;
    assert_eq!(now["status"], "running", "{now}");
    assert_eq!(docker_inspect(&container)["State"]["Paused"], false);
    eprintln!("keystroke → echo from a paused sandbox: {resumed_in:?}");

    // Idle again → paused again; POST start resumes it too.
    status_becomes(&s, &tid, "paused", 20).await;
    let (st, started) = s.post(&format!("/api/tasks/{tid}/start"), json!({})).await;
    assert_eq!(st, 200, "{started}");
    assert_eq!(started["status"], "running", "{started}");
    assert_eq!(docker_inspect(&container)["State"]["Paused"], false);
    // The same shell (not restarted): its history goes on.
    term.run("echo still-$((3+3))", "still").await;

    // A busy terminal is not idle: output keeps it running.
    term.send("for i in $(seq 1 25); do echo tick-$i; sleep 0.2; done\r").await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(task(&s, &tid).await["status"], "running", "output counts as activity");
    term.wait_for(15, "the loop's end", |t| t.contains("tick-25")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_idle_sandbox_is_stopped_and_starts_again() {
    let s = server(|c| {
        c.pause_after = Some(Duration::from_secs(1));
        c.stop_after = Some(Duration::from_secs(4));
    })
    .await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "sleepy", "agent": "shell"})).await;
    let tid = id(&t);
    status_becomes(&s, &tid, "paused", 20).await;
    status_becomes(&s, &tid, "stopped", 20).await;
    let container = cid(&t);
    eventually(20, "the container to stop", || docker_inspect(&container)["State"]["Running"] == false).await;
    let (st, again) = s.post(&format!("/api/tasks/{tid}/start"), json!({})).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["status"], "running");
}

#[tokio::test(flavor = "multi_thread")]
async fn caps_reach_docker_and_bad_caps_are_refused_before_anything_is_made() {
    let s = server(|_| {}).await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "capped", "agent": "shell", "cpus": 0.5, "memory_mb": 300})).await;
    assert_eq!(t["cpus"], 0.5);
    assert_eq!(t["memory_mb"], 300);
    let hc = &docker_inspect(&cid(&t))["HostConfig"];
    assert_eq!(hc["NanoCpus"], 500_000_000i64);
    assert_eq!(hc["Memory"], 300i64 * 1024 * 1024);

    // Defaults from the configuration (the test config: 1 CPU, 512 MiB).
    let d = s.create_task(&p, json!({"title": "defaults", "agent": "shell"})).await;
    assert_eq!(d["cpus"], 1.0);
    assert_eq!(d["memory_mb"], 512);
    let hc = &docker_inspect(&cid(&d))["HostConfig"];
    assert_eq!(hc["NanoCpus"], 1_000_000_000i64);
    assert_eq!(hc["Memory"], 512i64 * 1024 * 1024);

    let branches_before = git(&s.repo, &["branch", "--list"]);
    let out = std::process::Command::new("docker").args(["info", "--format", "{{.NCPU}}"]).output().unwrap();
    let host_cpus: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    // Out of range: INVALID_INPUT; not a number of the right kind: INVALID_JSON.
    for (bad, code) in [
        (json!({"cpus": 0}), "INVALID_INPUT"),
        (json!({"cpus": -1}), "INVALID_INPUT"),
        (json!({"cpus": 5000}), "INVALID_INPUT"),
        // More than the Docker host has (Docker would refuse it at creation).
        (json!({"cpus": host_cpus + 1}), "INVALID_INPUT"),
        (json!({"cpus": 0.001}), "INVALID_INPUT"),
        (json!({"memory_mb": 10}), "INVALID_INPUT"),
        (json!({"cpus": "two"}), "INVALID_JSON"),
        (json!({"memory_mb": -5}), "INVALID_JSON"),
    ] {
        let mut body = json!({"title": "bad caps", "agent": "shell"});
        for (k, v) in bad.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (st, e) = s.post(&format!("/api/projects/{p}/tasks"), body).await;
        assert_eq!(st, if code == "INVALID_INPUT" { 422 } else { 400 }, "{bad}: {e}");
        assert_eq!(e["error"]["code"], code, "{bad}: {e}");
    }
    assert_eq!(git(&s.repo, &["branch", "--list"]), branches_before, "no branch was made for refused input");
    let (_, all) = s.get("/api/tasks").await;
    assert_eq!(all.as_array().unwrap().len(), 2, "no task was made for refused input");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_sandbox_shows_its_cpu_and_memory() {
    let s = server(|_| {}).await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "busy", "agent": "shell"})).await;
    let tid = id(&t);
    let mut events = s.engine.events();
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.run("yes > /dev/null & true", "bg").await;
    let usage = until(30, "CPU above 10 %", || async {
        let u = task(&s, &tid).await["usage"].clone();
        (u["cpu_percent"].as_f64().unwrap_or(0.0) > 10.0).then_some(u)
    })
    .await;
    eprintln!("usage of a `yes` task: {usage}");
    assert!(usage["cpu_percent"].as_f64().unwrap() <= 130.0, "capped at 1 CPU: {usage}");
    assert!(usage["memory_bytes"].as_u64().unwrap() > 0, "{usage}");
    assert_eq!(usage["memory_limit_bytes"], 512u64 * 1024 * 1024, "{usage}");
    assert!(usage["at"].as_str().unwrap().ends_with('Z'));
    // Subscribers heard of it.
    let heard = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match events.recv().await {
                Ok(anycode_engine::Event::Task { task }) if task.id == tid && task.usage.as_ref().is_some_and(|u| u.cpu_percent > 10.0) => return true,
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    assert_eq!(heard, Ok(true), "a task event carried the usage");

    // Idle: the CPU goes back down.
    term.run("kill %1", "killed").await;
    until(30, "CPU back under 5 %", || async {
        let u = task(&s, &tid).await["usage"].clone();
        (u["cpu_percent"].as_f64().is_some_and(|c| c < 5.0)).then_some(())
    })
    .await;
    // A stopped task has no usage.
    let (_, stopped) = s.post(&format!("/api/tasks/{tid}/stop"), json!({})).await;
    assert_eq!(stopped["usage"], Value::Null, "{stopped}");
}

/// A sandbox paused when AnyCode restarts is found paused again, at once (its relay
/// starts during the reconcile, not in the line that waits for the reconcile's
/// end), and a keystroke resumes it with a working relay.
#[tokio::test(flavor = "multi_thread")]
async fn a_paused_sandbox_stays_paused_across_a_restart_and_resumes_on_a_keystroke() {
    let s = server(|c| c.pause_after = Some(Duration::from_secs(2))).await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "sleeper", "agent": "shell"})).await;
    let (tid, container) = (id(&t), cid(&t));
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    let mut term = s.ws(&term_id).await;
    term.run("echo ready-$((1+1))", "ready").await;
    drop(term);
    status_becomes(&s, &tid, "paused", 20).await;

    let (dir, repo) = s.shutdown().await;
    let mut cfg = config(&dir.path().join("data"));
    cfg.pause_after = None;
    cfg.stop_after = None;
    let restarted = Instant::now();
    let s2 = Server::start_with(dir, repo, cfg).await;
    // Answers once the reconcile is over. A relay waiting for the end of the
    // reconcile that waits for it would hold it for its 15 s timeout.
    let now = task(&s2, &tid).await;
    let serving = restarted.elapsed();
    assert!(serving < Duration::from_secs(10), "serving again took {serving:?}");
    assert_eq!(now["status"], "paused", "{now}");
    assert_eq!(docker_inspect(&container)["State"]["Paused"], true, "frozen again after the re-attach");

    let mut term = s2.ws(&term_id).await;
    term.wait_for(15, "the history", |t| t.contains("ready-2")).await;
    term.send("echo back-$((2+2))\r").await;
    term.wait_for(20, "the echo after the resume", |t| t.contains("back-4")).await;
    assert_eq!(task(&s2, &tid).await["status"], "running");
    // The relay listens: a hook from inside reaches AnyCode (refused without a token).
    term.send("until exec 3<>/dev/tcp/127.0.0.1/47777; do sleep 0.2; done; exec 3>&-; echo relay-$((3+4))\r").await;
    term.wait_for(20, "the relay's port", |t| t.contains("relay-7")).await;
}
