#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The main job end to end, against a real Docker engine and real git repositories
//! (issue 2): task lifecycle, the container as Docker shows it, the terminal over a
//! real WebSocket, diff and commit, restart and reconcile.

use anycode_testkit::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn task_lifecycle_branch_worktree_and_hardened_container() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Fix the Login bug!", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap();
    assert_eq!(t["branch"], "anycode/fix-the-login-bug");
    assert_eq!(t["base"], "main");
    assert_eq!(t["status"], "running");
    assert_eq!(t["terminals"][0]["kind"], "agent");
    let worktree = std::path::PathBuf::from(t["worktree"].as_str().unwrap());
    assert!(worktree.starts_with(s.data_dir()), "worktree under the data dir");
    assert!(worktree.join("README.md").exists());
    assert!(git(&s.repo, &["branch", "--list", "anycode/fix-the-login-bug"]).contains("fix-the-login-bug"));

    // The container as Docker shows it.
    let cid = t["container_id"].as_str().unwrap();
    let c = docker_inspect(cid);
    assert_eq!(c["State"]["Running"], true);
    let user = c["Config"]["User"].as_str().unwrap();
    assert!(!user.is_empty() && !user.starts_with("0:") && user != "root", "non-root user, got {user:?}");
    assert_eq!(c["HostConfig"]["SecurityOpt"], json!(["no-new-privileges:true"]));
    assert_eq!(c["HostConfig"]["CapDrop"], json!(["ALL"]));
    assert!(c["HostConfig"]["CapAdd"].is_null() || c["HostConfig"]["CapAdd"] == json!([]));
    assert_eq!(c["HostConfig"]["Memory"], 512 * 1024 * 1024);
    assert_eq!(c["HostConfig"]["NanoCpus"], 1_000_000_000i64);
    assert_eq!(c["HostConfig"]["PidsLimit"], 256);
    assert_eq!(c["HostConfig"]["Privileged"], false);
    assert_eq!(c["Config"]["Labels"]["dev.anycode.task"], id);
    assert_eq!(c["Config"]["Labels"]["dev.anycode.project"], p.as_str());
    let mounts = c["Mounts"].as_array().unwrap();
    assert!(mounts.iter().any(|m| m["Destination"] == "/workspace" && m["Source"] == worktree.to_str().unwrap()));
    assert!(!c.to_string().contains("docker.sock"), "no Docker socket inside the sandbox");
    // Inside: uid is not 0, the workspace is the worktree.
    let out = std::process::Command::new("docker").args(["exec", cid, "sh", "-c", "id -u; cat /workspace/README.md"]).output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(!out.starts_with("0\n"), "runs as non-root: {out}");
    assert!(out.contains("# demo"));

    // Stop, start.
    let (st, t2) = s.post(&format!("/api/tasks/{id}/stop"), json!({})).await;
    assert_eq!(st, 200, "{t2}");
    assert_eq!(t2["status"], "stopped");
    assert_eq!(docker_inspect(cid)["State"]["Running"], false);
    let (st, t3) = s.post(&format!("/api/tasks/{id}/start"), json!({})).await;
    assert_eq!(st, 200, "{t3}");
    assert_eq!(t3["status"], "running");
    assert_eq!(docker_inspect(cid)["State"]["Running"], true);

    // Listing.
    let (_, list) = s.get(&format!("/api/tasks?project={p}")).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Delete removes the container and the worktree, keeps the branch.
    let (st, _) = s.delete(&format!("/api/tasks/{id}")).await;
    assert_eq!(st, 204);
    assert!(docker_inspect(cid).is_null(), "container removed");
    assert!(!worktree.exists(), "worktree removed");
    assert!(!git(&s.repo, &["worktree", "list"]).contains(worktree.to_str().unwrap()));
    assert!(git(&s.repo, &["branch", "--list", "anycode/fix-the-login-bug"]).contains("fix-the-login-bug"), "branch kept");
    let (st, e) = s.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(st, 404);
    assert_eq!(e["error"]["code"], "TASK_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_echo_resize_and_replay() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "term", "agent": "shell"})).await;
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();

    let mut a = s.ws(&term_id).await;
    a.send("echo $((6*7))\r").await;
    a.wait_for(20, "42", |t| t.lines().any(|l| l.trim() == "42")).await;

    a.resize(100, 30).await;
    a.run("stty size", "sized").await;
    assert!(a.text().contains("30 100"), "stty size after resize: {}", a.text());

    // A second viewer sees the scrollback, then live output typed by the first.
    let mut b = s.ws(&term_id).await;
    b.wait_for(10, "replayed scrollback", |t| t.lines().any(|l| l.trim() == "42")).await;
    a.run("echo live-$((2+3))", "both").await;
    b.wait_for(10, "live output in the second viewer", |t| t.contains("live-5")).await;

    // Reconnect: a new socket replays the scrollback.
    drop(a);
    let mut c = s.ws(&term_id).await;
    c.wait_for(10, "replay after reconnect", |t| t.contains("live-5") && t.lines().any(|l| l.trim() == "42")).await;

    // Extra shell tabs are exec sessions in the same container.
    let (st, term) = s.post(&format!("/api/tasks/{}/terminals", t["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(st, 201, "{term}");
    assert_eq!(term["kind"], "shell");
    let mut sh = s.ws(term["id"].as_str().unwrap()).await;
    sh.run("hostname; echo extra > /workspace/from-tab.txt", "tab").await;
    assert!(sh.text().contains("sandbox"));
    let (_, task) = s.get(&format!("/api/tasks/{}", t["id"].as_str().unwrap())).await;
    assert_eq!(task["terminals"].as_array().unwrap().len(), 2);
    sh.send("exit 3\r").await;
    let exit = sh.wait_exit(15).await;
    assert_eq!(exit["code"], 3, "exit code of the shell tab");
    // The ended tab stays readable: a new viewer gets its scrollback and the exit.
    let mut again = s.ws(term["id"].as_str().unwrap()).await;
    assert_eq!(again.wait_exit(10).await["code"], 3);
    assert!(again.text().contains("sandbox"));
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_of_sandbox_edits_and_commit_lands_in_the_repository() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Edit files", "agent": "shell", "base": "dev"})).await;
    assert_eq!(t["base"], "dev");
    let id = t["id"].as_str().unwrap();
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    // Edit from inside the sandbox: add (untracked, in a new folder), modify, delete, rename.
    term.run(
        "mkdir -p src && printf 'fn main() {}\\n' > src/main.rs && printf 'one\\nTWO\\nthree\\nfour\\n' > keep.txt \
         && rm gone.txt && mv old.txt new.txt",
        "edited",
    )
    .await;
    let (st, d) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["base"], t["base_sha"]);
    let files = d["files"].as_array().unwrap();
    let by_path = |p: &str| files.iter().find(|f| f["path"] == p).unwrap_or_else(|| panic!("{p} in diff: {d}")).clone();
    let added = by_path("src/main.rs");
    assert_eq!(added["status"], "added");
    assert_eq!(added["additions"], 1);
    assert!(added["patch"].as_str().unwrap().contains("+fn main() {}"));
    let modified = by_path("keep.txt");
    assert_eq!(modified["status"], "modified");
    assert_eq!((modified["additions"].as_u64(), modified["deletions"].as_u64()), (Some(2), Some(1)));
    assert!(modified["patch"].as_str().unwrap().starts_with("diff --git a/keep.txt b/keep.txt"));
    assert_eq!(by_path("gone.txt")["status"], "deleted");
    let renamed = by_path("new.txt");
    assert_eq!(renamed["status"], "renamed");
    assert_eq!(renamed["old_path"], "old.txt");
    assert_eq!(files.len(), 4, "{d}");

    let (st, c) = s.post(&format!("/api/tasks/{id}/commit"), json!({"message": "Edit files from the sandbox"})).await;
    assert_eq!(st, 200, "{c}");
    let sha = c["sha"].as_str().unwrap();
    assert_eq!(sha.len(), 40);
    // In the user's own repository.
    let log = git(&s.repo, &["log", "--format=%H %an %s", "anycode/edit-files"]);
    assert!(log.starts_with(&format!("{sha} Test User Edit files from the sandbox")), "{log}");
    let show = git(&s.repo, &["show", "--name-status", "--format=", sha]);
    assert!(show.contains("src/main.rs") && show.contains("gone.txt"), "{show}");
    // The diff against the base still shows the branch's work; the worktree is clean.
    let (_, d2) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!(d2["files"].as_array().unwrap().len(), 4);
    let status = git(std::path::Path::new(t["worktree"].as_str().unwrap()), &["status", "--porcelain"]);
    assert_eq!(status, "", "clean after commit");
    // Nothing left: a clear error, not an empty commit.
    let (st, e) = s.post(&format!("/api/tasks/{id}/commit"), json!({"message": "again"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("NOTHING_TO_COMMIT")));
    let (st, e) = s.post(&format!("/api/tasks/{id}/commit"), json!({"message": "  "})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("EMPTY_MESSAGE")));
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_finds_running_containers_and_replays_scrollback() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "survivor", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    let mut term = s.ws(&term_id).await;
    term.run("echo before-$((40+2))", "pre").await;
    drop(term);
    let stopped = s.create_task(&p, json!({"title": "stopped one", "agent": "shell"})).await;
    let (st, _) = s.post(&format!("/api/tasks/{}/stop", stopped["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(st, 200);

    // Restart: a new engine and server on the same data dir.
    let (dir, repo) = s.shutdown().await;
    let cfg = config(&dir.path().join("data"));
    let s2 = Server::start_with(dir, repo, cfg).await;
    let (st, projects) = s2.get("/api/projects").await;
    assert_eq!(st, 200);
    assert_eq!(projects[0]["id"], p.as_str());
    let (_, t2) = s2.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(t2["status"], "running", "{t2}");
    assert_eq!(t2["terminals"][0]["id"], term_id.as_str());
    let (_, t3) = s2.get(&format!("/api/tasks/{}", stopped["id"].as_str().unwrap())).await;
    assert_eq!(t3["status"], "stopped");
    // The terminal reopens with its scrollback and is live.
    let mut term = s2.ws(&term_id).await;
    term.wait_for(15, "scrollback after restart", |t| t.contains("before-42")).await;
    term.run("echo after-$((50+5))", "post").await;
    assert!(term.text().contains("after-55"));
}

/// A client that gives up on `POST /api/projects/{id}/tasks` (a timeout, a closed
/// tab) does not cut the creation in half: each ends as a whole task, or as
/// nothing (no stray branch, folder or container).
#[tokio::test(flavor = "multi_thread")]
async fn a_create_the_client_gives_up_on_completes_whole() {
    let s = Server::start().await;
    let p = s.add_project().await;
    for (i, ms) in [50u64, 150, 300, 600].into_iter().enumerate() {
        let body = json!({"title": format!("cancel {i}"), "agent": "shell"});
        let r = s
            .http
            .post(format!("{}/api/projects/{p}/tasks", s.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .timeout(std::time::Duration::from_millis(ms))
            .send()
            .await;
        let _ = r; // timed out or not: what is left is what counts
    }
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let (_, tasks) = s.get("/api/tasks").await;
    let tasks = tasks.as_array().unwrap().clone();
    for i in 0..4 {
        let branch = format!("anycode/cancel-{i}");
        let has_branch = git(&s.repo, &["branch", "--list", &branch]).contains(&branch);
        let task = tasks.iter().find(|t| t["branch"] == branch.as_str());
        assert_eq!(has_branch, task.is_some(), "branch {branch} without its task, or the reverse: {tasks:?}");
        if let Some(t) = task {
            assert_eq!(t["status"], "running", "{t}");
            assert!(!docker_inspect(t["container_id"].as_str().unwrap()).is_null());
        }
    }
    let folders = std::fs::read_dir(s.data_dir().join("worktrees").join(&p)).map(|d| d.count()).unwrap_or(0);
    assert_eq!(folders, tasks.len(), "one folder per task");
    assert!(!tasks.is_empty(), "at least the slower requests' tasks were made");
}

/// `GET /api/tasks` filtered by status and project, a page at a time, with the
/// total in `X-Total-Count`, and current after every change (the store keeps a
/// copy of the list between writes: issue 14).
#[tokio::test(flavor = "multi_thread")]
async fn task_lists_filter_page_and_follow_each_change() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let t = s.create_task(&p, json!({"title": format!("list {i}"), "agent": "shell", "record": false})).await;
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    let http = reqwest::Client::new();
    let list = |q: &str| {
        let req = http.get(format!("{}/api/tasks{q}", s.base)).bearer_auth(TOKEN);
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let total: usize = r.headers()["x-total-count"].to_str().unwrap().parse().unwrap();
            assert_eq!(r.headers()["content-type"], "application/json");
            let body: serde_json::Value = r.json().await.unwrap();
            let got: Vec<String> = body.as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
            (got, total)
        }
    };
    assert_eq!(list("").await, (ids.clone(), 3));
    // Stopping one is seen at once, by every filter.
    let (st, _) = s.post(&format!("/api/tasks/{}/stop", ids[1]), json!({})).await;
    assert_eq!(st, 200);
    assert_eq!(list("?status=stopped").await, (vec![ids[1].clone()], 1));
    assert_eq!(list("?status=running").await, (vec![ids[0].clone(), ids[2].clone()], 2));
    assert_eq!(list("?status=running,stopped&limit=2").await, (vec![ids[0].clone(), ids[1].clone()], 3));
    assert_eq!(list("?status=running&limit=1&offset=1").await, (vec![ids[2].clone()], 2));
    assert_eq!(list(&format!("?project={p}&limit=2&offset=2")).await, (vec![ids[2].clone()], 3));
    assert_eq!(list("?offset=5").await, (vec![], 3));
    assert_eq!(list("?status=needs_approval").await, (vec![], 0));
    // A deleted task leaves every list.
    let (st, _) = s.delete(&format!("/api/tasks/{}", ids[0])).await;
    assert_eq!(st, 204);
    assert_eq!(list("?status=running").await, (vec![ids[2].clone()], 1));
    assert_eq!(list("").await, (vec![ids[1].clone(), ids[2].clone()], 2));
}
