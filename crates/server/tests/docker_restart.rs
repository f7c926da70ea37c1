#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Docker restarting under AnyCode (issue 14, goal 4): with shell tasks running on a
//! second Docker engine of the test's own (`testkit::SecondDockerd`, never the
//! machine's), the engine restarted (`systemctl restart docker`: SIGTERM, which
//! stops its containers, then started again) and killed (`kill -9`, then started
//! again) leaves AnyCode serving: /api/health says Docker is down, then up again by
//! itself; the tasks end `stopped` (or `running` when Docker started them again);
//! Start brings each back with a working terminal; and every file of each task's
//! working tree, uncommitted edits included, is still there.
//!
//! The first call to reach the engine again is a Start, which holds its task's lock
//! while it connects: the reconcile a new connection runs must not wait for that
//! lock (it did, and that task's Start, Stop and every later call on it hung).

use anycode_testkit::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Longest any request may take while Docker restarts (a hang fails the test).
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// `method path` within [`ANSWER_WITHIN`], panicking with `what` when it hangs.
async fn answered(s: &Server, method: reqwest::Method, path: &str, body: Option<Value>, what: &str) -> (u16, Value, Duration) {
    let t0 = Instant::now();
    match tokio::time::timeout(ANSWER_WITHIN, s.req(method, path, body)).await {
        Ok((st, v)) => (st, v, t0.elapsed()),
        Err(_) => panic!("{what}: {path} did not answer within {ANSWER_WITHIN:?} (a task's lock held?)"),
    }
}

/// The status of every task in `ids`.
async fn statuses(s: &Server, ids: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for id in ids {
        let (st, t, _) = answered(s, reqwest::Method::GET, &format!("/api/tasks/{id}"), None, "a task's state").await;
        assert_eq!(st, 200, "AnyCode answers while Docker restarts: {t}");
        out.push(t["status"].as_str().unwrap_or_default().to_string());
    }
    out
}

/// The worktree's files as the host sees them: `precious.txt`'s text, `keep.txt`'s
/// text and `git status --porcelain`.
fn worktree_state(worktree: &str) -> (String, String, String) {
    let dir = std::path::Path::new(worktree);
    let precious = std::fs::read_to_string(dir.join("precious.txt")).unwrap_or_default();
    let keep = std::fs::read_to_string(dir.join("keep.txt")).unwrap_or_default();
    (precious, keep, git(dir, &["status", "--porcelain"]))
}

/// Waits until /api/health says Docker answers and every task is `stopped` or
/// `running`; returns the states.
async fn settled(s: &Server, ids: &[String], docker: &SecondDockerd, when: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, health, _) = answered(s, reqwest::Method::GET, "/api/health", None, when).await;
        let now = statuses(s, ids).await;
        if health["docker"]["ok"] == true && now.iter().all(|st| st == "stopped" || st == "running") {
            return now;
        }
        assert!(Instant::now() < deadline, "{when}: health {health}, tasks {now:?}\n{}", docker.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls /api/health and /api/tasks (each must answer 200 in time) until `done`;
/// returns whether health said Docker was down meanwhile.
async fn serving_while<T>(s: &Server, done: &tokio::task::JoinHandle<T>, when: &str) -> bool {
    let mut saw_down = false;
    while !done.is_finished() {
        let (st, health, _) = answered(s, reqwest::Method::GET, "/api/health", None, when).await;
        assert_eq!(st, 200, "{health}");
        saw_down |= health["docker"]["ok"] == false;
        let (st, list, _) = answered(s, reqwest::Method::GET, "/api/tasks", None, when).await;
        assert_eq!(st, 200, "{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    saw_down
}

/// Starts each task (when not running), checks its terminal answers and sees the
/// work, and the worktree is as `before`; then Stop and Start once more (no lock
/// left held).
async fn start_and_check(s: &Server, tasks: &[Value], before: &[(String, String, String)], when: &str) {
    for (i, (t, b)) in tasks.iter().zip(before).enumerate() {
        let id = t["id"].as_str().unwrap();
        for round in ["start", "stop, then start"] {
            if round != "start" {
                let (st, stopped, _) = answered(s, reqwest::Method::POST, &format!("/api/tasks/{id}/stop"), Some(json!({})), when).await;
                assert_eq!(st, 200, "{when}: {stopped}");
                assert_eq!(stopped["status"], "stopped", "{when}: {stopped}");
            }
            let (st, after, _) = answered(s, reqwest::Method::POST, &format!("/api/tasks/{id}/start"), Some(json!({})), when).await;
            assert_eq!(st, 200, "{when}, {round}: {after}");
            assert_eq!(after["status"], "running", "{when}, {round}: {after}");
            let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
            term.run("cat precious.txt; git status --porcelain", &format!("back-{i}")).await;
            let text = term.text();
            assert!(text.contains(b.0.trim()) && text.contains(" M keep.txt"), "{when}, {round}: the sandbox sees the work:\n{text}");
            assert_eq!(&worktree_state(t["worktree"].as_str().unwrap()), b, "{when}, {round}: the worktree is intact");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_restart_and_kill_9_leave_anycode_serving_and_lose_nothing() {
    let docker = tokio::task::spawn_blocking(SecondDockerd::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let mut cfg = config(&dir.path().join("data"));
    // The machine's engine has the sandbox image (the other tests build it); the
    // second engine gets a copy.
    let builder = anycode_engine::Engine::open(config(&dir.path().join("build-data"))).await.unwrap();
    let tag = builder.ensure_image(|_| {}).await.unwrap();
    let docker = tokio::task::spawn_blocking(move || {
        docker.load_image(&tag);
        docker
    })
    .await
    .unwrap();
    cfg.docker_host = Some(docker.tcp.clone());
    let s = Server::start_with(dir, repo, cfg).await;
    let p = s.add_project().await;

    // Two shell tasks, each with a new file and an uncommitted edit of a tracked one.
    let mut tasks = Vec::new();
    for title in ["first", "second"] {
        let t = s.create_task(&p, json!({"title": title, "agent": "shell"})).await;
        let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
        term.run(&format!("echo 'precious work of {title}' > precious.txt && echo 'edited by {title}' >> keep.txt"), "written").await;
        tasks.push(t);
    }
    let ids: Vec<String> = tasks.iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
    let before: Vec<_> = tasks.iter().map(|t| worktree_state(t["worktree"].as_str().unwrap())).collect();
    for (b, title) in before.iter().zip(["first", "second"]) {
        assert_eq!(b.0, format!("precious work of {title}\n"));
        assert!(b.2.contains(" M keep.txt") && b.2.contains("?? precious.txt"), "{}", b.2);
    }
    assert_eq!(statuses(&s, &ids).await, ["running", "running"]);

    // `systemctl restart docker`, with the gap in the middle held open: the engine
    // stops its containers and exits; AnyCode answers all along and says Docker is
    // down; a Start meanwhile is refused at once (not a 500, not a hang).
    let mut docker = docker;
    let stop = tokio::task::spawn_blocking(move || {
        docker.stop();
        docker
    });
    assert!(serving_while(&s, &stop, "while Docker stops").await, "/api/health said Docker was down");
    let mut docker = stop.await.unwrap();
    let (st, e, _) = answered(&s, reqwest::Method::POST, &format!("/api/tasks/{}/start", ids[0]), Some(json!({})), "a Start while Docker is down").await;
    assert!((400..500).contains(&st) || st == 503, "a Start while Docker is down: {st} {e}");
    let (_, health, _) = answered(&s, reqwest::Method::GET, "/api/health", None, "health while Docker is down").await;
    assert_eq!(health["docker"]["ok"], false, "{health}");
    // The engine back; the first call to reach it is a Start (holding its task's
    // lock while it connects).
    let docker_back = tokio::task::spawn_blocking(move || {
        docker.start_again();
        docker
    });
    let docker = docker_back.await.unwrap();
    let (st, first, _) = answered(&s, reqwest::Method::POST, &format!("/api/tasks/{}/start", ids[0]), Some(json!({})), "the first Start after Docker came back").await;
    assert_eq!(st, 200, "{first}");
    let states = settled(&s, &ids, &docker, "after the restart").await;
    eprintln!("after the restart: {states:?}");
    start_and_check(&s, &tasks, &before, "after the restart").await;

    // `kill -9` of the engine: its containers run on under their shims while it is
    // down, and it kills them when it comes back (no live-restore).
    let mut docker = docker;
    let kill = tokio::task::spawn_blocking(move || {
        docker.kill();
        std::thread::sleep(Duration::from_secs(3));
        docker
    });
    assert!(serving_while(&s, &kill, "while Docker is killed").await, "/api/health said Docker was down");
    let mut docker = kill.await.unwrap();
    let docker_back = tokio::task::spawn_blocking(move || {
        docker.start_again();
        docker
    });
    serving_while(&s, &docker_back, "while Docker starts").await;
    let docker = docker_back.await.unwrap();
    let states = settled(&s, &ids, &docker, "after kill -9").await;
    eprintln!("after kill -9: {states:?}");
    start_and_check(&s, &tasks, &before, "after kill -9").await;
    drop(s);
    drop(docker);
}
