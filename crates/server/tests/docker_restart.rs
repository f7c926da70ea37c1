//! Docker restarting under AnyCode (issue 14, goal 4): with tasks running on a
//! second Docker engine of the test's own (`testkit::SecondDockerd`, never the
//! machine's), `systemctl restart docker` (SIGTERM, then start) and `kill -9` of the
//! engine leave AnyCode serving; it reconnects by itself, shows the tasks as Docker
//! reports them (stopped), starts them again on request, and nothing in the
//! worktrees is lost.

use anycode_testkit::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A server on `docker` with its test repository as the project: (server, project).
async fn server_on(docker: &SecondDockerd) -> (Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let mut cfg = config(&dir.path().join("data"));
    cfg.docker_host = Some(docker.host());
    // The machine's engine has the sandbox image (other tests build it); this one
    // gets a copy.
    let tag = anycode_engine::sandbox_image_tag(&cfg).unwrap();
    let main = Engine::open(config(&dir.path().join("build-data"))).await.unwrap();
    main.ensure_image(|_| {}).await.unwrap();
    docker.load_image(&tag);
    let s = Server::start_with(dir, repo, cfg).await;
    let p = s.add_project().await;
    (s, p)
}

use anycode_engine::Engine;

async fn status_of(s: &Server, id: &str) -> (u16, Value) {
    s.get(&format!("/api/tasks/{id}")).await
}

/// Polls until every task in `ids` has status `want`, asserting that every answer on
/// the way is a 200 (AnyCode keeps serving).
async fn all_become(s: &Server, ids: &[String], want: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let mut done = true;
        for id in ids {
            let (st, t) = status_of(s, id).await;
            assert_eq!(st, 200, "AnyCode answers while Docker restarts: {t}");
            done &= t["status"] == want;
        }
        if done {
            return;
        }
        let (_, list) = s.get("/api/tasks").await;
        assert!(Instant::now() < deadline, "tasks did not become {want}: {list}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Starts each task and checks its terminal answers and the work written before is
/// there, in the worktree and in the sandbox.
async fn start_and_check(s: &Server, tasks: &[Value], round: &str) {
    for t in tasks {
        let id = t["id"].as_str().unwrap();
        let (st, after) = s.post(&format!("/api/tasks/{id}/start"), json!({})).await;
        assert_eq!(st, 200, "start on request: {after}");
        assert_eq!(after["status"], "running", "{after}");
        let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
        term.run("cat precious.txt", &format!("back-{round}")).await;
        assert!(term.text().contains("precious work"), "the sandbox sees the work: {}", term.text());
        let file = std::path::Path::new(t["worktree"].as_str().unwrap()).join("precious.txt");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious work\n");
    }
}

// Known failure (issue 14, goal 4, left open): after `systemctl restart docker` the
// API keeps serving, reconnects (health ok) and both tasks show `stopped`, and the
// second task starts on request; but the first task's lock stays held (its Start and
// Stop never answer, and Docker sees no call for it), most likely by a reconcile that
// began while the engine was shutting down and waits on a Docker call that never
// ends. Run it with `--ignored` while fixing that.
#[ignore = "a task's lock stays held after a Docker restart (see the comment above)"]
#[tokio::test(flavor = "multi_thread")]
async fn docker_restarts_and_kill_9_leave_anycode_serving_and_lose_nothing() {
    let mut docker = tokio::task::spawn_blocking(|| SecondDockerd::start_cached("sandbox")).await.unwrap();
    let (s, p) = server_on(&docker).await;
    let mut tasks = Vec::new();
    for title in ["first", "second"] {
        let t = s.create_task(&p, json!({"title": title, "agent": "shell"})).await;
        let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
        term.run("echo 'precious work' > precious.txt", "written").await;
        tasks.push(t);
    }
    let ids: Vec<String> = tasks.iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
    all_become(&s, &ids, "running", 10).await;

    // `systemctl restart docker`: the engine stops the containers (SIGTERM), exits and
    // comes back. AnyCode answers all along.
    let restart = tokio::task::spawn_blocking(move || {
        docker.restart();
        docker
    });
    while !restart.is_finished() {
        let (st, list) = s.get("/api/tasks").await;
        assert_eq!(st, 200, "{list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut docker = restart.await.unwrap();
    all_become(&s, &ids, "stopped", 30).await;
    let (_, health) = s.get("/api/health").await;
    assert_eq!(health["docker"]["ok"], true, "reconnected by itself: {health}");
    start_and_check(&s, &tasks, "restart").await;

    // `kill -9` of the engine: the containers run on under their shims while it is
    // down, and it kills them when it comes back (no live-restore).
    docker.kill();
    for _ in 0..10 {
        let (st, list) = s.get("/api/tasks").await;
        assert_eq!(st, 200, "{list}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (st, e) = s.post(&format!("/api/tasks/{}/stop", ids[0]), json!({})).await;
    assert!(st != 500, "no 500 while Docker is down: {st} {e}");
    let docker = tokio::task::spawn_blocking(move || {
        docker.start_again();
        docker
    })
    .await
    .unwrap();
    all_become(&s, &ids, "stopped", 30).await;
    start_and_check(&s, &tasks, "kill").await;
    drop(s);
    drop(docker);
}
