#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Issue 4 end to end through the real server: import from "GitHub" (a loopback
//! stand-in serving real git over HTTP and GitHub's documented REST answers, at a
//! configured API base URL), push, pull requests (new, already existing, status
//! with ETags, rate limits), merge (refused, then done), the token (saved, refused,
//! never shown or stored), the conflict radar across tasks and "update from base",
//! and imports that fail leaving nothing behind.

use anycode_engine::{MemoryStore, Tokens};
use anycode_testkit::github::{docs, files_containing, FakeGitHub, Reply};
use anycode_testkit::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const GH_TOKEN: &str = "ghp_fake0123456789abcdefABCDEF01234567";

/// Polls `GET /api/projects/{id}` until it is no longer cloning.
async fn wait_import(s: &Server, id: &str) -> Value {
    for _ in 0..300 {
        let (st, p) = s.get(&format!("/api/projects/{id}")).await;
        assert_eq!(st, 200, "{p}");
        if p["status"] != "cloning" {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the import did not finish");
}

async fn fake_with_repo() -> (FakeGitHub, tempfile::TempDir) {
    let hub = FakeGitHub::start(GH_TOKEN).await;
    let src_dir = tempfile::tempdir().unwrap();
    let src = make_repo(src_dir.path());
    std::fs::write(src.join("shared.txt"), "1\n2\n3\n4\n5\n6\n7\n8\n").unwrap();
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "shared"]);
    hub.publish("octo", "hello", &src);
    hub.make_private("octo", "hello");
    hub.on("GET", "/repos/octo/hello", Reply::json(200, docs::repo("octo", "hello", &hub.clone_url("octo", "hello"), "main", true)));
    hub.on("GET", "/user", Reply::json(200, docs::user("octocat")));
    (hub, src_dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn import_push_pull_request_merge_and_radar() {
    let (hub, _src) = fake_with_repo().await;
    let s = Server::start().await;
    s.engine.configure_github(&hub.api, Tokens::only(Arc::new(MemoryStore::default()))).await;
    let mut responses: Vec<String> = Vec::new();

    // No token yet: the status says so; listing repositories needs one.
    let (st, g) = s.get("/api/github").await;
    assert_eq!(st, 200, "{g}");
    assert!(g["source"].is_null() && g["api"] == hub.api.as_str(), "{g}");
    let (st, e) = s.get("/api/github/repos").await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("GITHUB_NO_TOKEN")), "{e}");

    // A token GitHub refuses is not saved.
    hub.set("GET", "/user", Reply::json(401, docs::bad_credentials()));
    hub.on("GET", "/user", Reply::json(200, docs::user("octocat")));
    let (st, e) = s.req(reqwest::Method::PUT, "/api/github/token", Some(json!({"token": "ghp_revoked"}))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("GITHUB_BAD_CREDENTIALS")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("revoked"), "{e}");
    assert!(s.get("/api/github").await.1["source"].is_null(), "nothing saved");
    let (st, e) = s.req(reqwest::Method::PUT, "/api/github/token", Some(json!({"token": "two words"}))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{e}");

    // A good one is checked with GET /user (Bearer auth) and saved.
    let (st, g) = s.req(reqwest::Method::PUT, "/api/github/token", Some(json!({"token": GH_TOKEN}))).await;
    assert_eq!(st, 200, "{g}");
    assert_eq!((g["source"].as_str(), g["login"].as_str()), (Some("keyring"), Some("octocat")), "{g}");
    let user_req = hub.requests_to("GET", "/user").pop().unwrap();
    assert_eq!(user_req.auth(), Some(format!("Bearer {GH_TOKEN}").as_str()));
    responses.push(g.to_string());

    // The user's repositories for the picker.
    hub.on("GET", "/user/repos", Reply::json(200, json!([docs::repo("octo", "hello", &hub.clone_url("octo", "hello"), "main", true)])));
    let (st, repos) = s.get("/api/github/repos").await;
    assert_eq!(st, 200, "{repos}");
    assert_eq!(repos[0]["full_name"], "octo/hello");
    assert!(hub.requests_to("GET", "/user/repos")[0].query.contains("per_page=100"));

    // Import by owner/name: a visible cloning state, then a ready project.
    let (st, imp) = s.post("/api/projects", json!({"url": "octo/hello"})).await;
    assert_eq!(st, 202, "{imp}");
    assert_eq!(imp["status"], "cloning");
    assert_eq!(imp["github"], "octo/hello");
    let pid = imp["id"].as_str().unwrap().to_string();
    let p = wait_import(&s, &pid).await;
    assert_eq!(p["status"], "ready", "{p}");
    assert_eq!(p["default_branch"], "main");
    assert_eq!(p["github"], "octo/hello");
    let clone = std::path::PathBuf::from(p["path"].as_str().unwrap());
    assert!(clone.starts_with(s.data_dir().join("repos/octo")), "{}", clone.display());
    assert!(clone.join("shared.txt").exists());
    assert!(hub.git_requests().iter().any(|(_, pw)| pw.as_deref() == Some(GH_TOKEN)), "the private clone used the token");
    responses.push(p.to_string());
    // Importing it again: refused, the clone untouched.
    let (st, e) = s.post("/api/projects", json!({"url": "https://github.com/octo/hello"})).await;
    assert!(st == 422 || st == 409, "{st} {e}");
    assert!(clone.join("shared.txt").exists());

    // Two tasks that touch the same file, differently.
    git(&clone, &["config", "user.name", "Test User"]);
    git(&clone, &["config", "user.email", "test@example.com"]);
    let a = s.create_task(&pid, json!({"title": "Feature A", "agent": "shell", "prompt": "Make shared.txt say A"})).await;
    let b = s.create_task(&pid, json!({"title": "Feature B", "agent": "shell"})).await;
    let (aid, bid) = (a["id"].as_str().unwrap().to_string(), b["id"].as_str().unwrap().to_string());
    let (awt, bwt) = (std::path::PathBuf::from(a["worktree"].as_str().unwrap()), std::path::PathBuf::from(b["worktree"].as_str().unwrap()));
    std::fs::write(awt.join("shared.txt"), "1 (A)\n2\n3\n4\n5\n6\n7\n8\n").unwrap();
    let (st, c) = s.post(&format!("/api/tasks/{aid}/commit"), json!({"message": "A changes line 1"})).await;
    assert_eq!(st, 200, "{c}");
    std::fs::write(bwt.join("shared.txt"), "1 (B)\n2\n3\n4\n5\n6\n7\n8\n").unwrap();

    // Radar: both merge cleanly into main now; they overlap on shared.txt.
    let (st, ca) = s.get(&format!("/api/tasks/{aid}/conflicts")).await;
    assert_eq!(st, 200, "{ca}");
    assert_eq!(ca["clean"], true, "{ca}");
    assert_eq!(ca["overlaps"][0]["task_id"], bid.as_str(), "{ca}");
    assert_eq!(ca["overlaps"][0]["files"], json!(["shared.txt"]));
    // Main moves on line 1: A now conflicts; B's uncommitted change too.
    std::fs::write(clone.join("shared.txt"), "1 (main)\n2\n3\n4\n5\n6\n7\n8\n").unwrap();
    git(&clone, &["commit", "-q", "-am", "main changes line 1"]);
    let b_file = std::fs::read(bwt.join("shared.txt")).unwrap();
    let (st, all) = s.get(&format!("/api/projects/{pid}/conflicts")).await;
    assert_eq!(st, 200, "{all}");
    for c in all.as_array().unwrap() {
        assert_eq!(c["clean"], false, "{c}");
        assert_eq!(c["conflicts"], json!(["shared.txt"]));
    }
    assert_eq!(std::fs::read(bwt.join("shared.txt")).unwrap(), b_file, "the radar wrote nothing");
    // Update from base: refused with the reason, nothing changed.
    let head_a = git(&awt, &["rev-parse", "HEAD"]);
    let (st, e) = s.post(&format!("/api/tasks/{aid}/update-from-base"), json!({})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("MERGE_CONFLICTS")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("shared.txt"));
    assert_eq!(git(&awt, &["rev-parse", "HEAD"]), head_a);
    let (st, e) = s.post(&format!("/api/tasks/{bid}/update-from-base"), json!({})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("UNCOMMITTED_CHANGES")), "{e}");
    // B drops its change: a fast-forward to main.
    git(&bwt, &["checkout", "--", "shared.txt"]);
    let (st, u) = s.post(&format!("/api/tasks/{bid}/update-from-base"), json!({})).await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["result"], "fast_forward");
    assert_eq!(std::fs::read_to_string(bwt.join("shared.txt")).unwrap(), "1 (main)\n2\n3\n4\n5\n6\n7\n8\n");
    // A resolves in its terminal the usual way; then it is clean again.
    git(&clone, &["reset", "-q", "--hard", "HEAD~1"]);
    let (_, ca) = s.get(&format!("/api/tasks/{aid}/conflicts")).await;
    assert_eq!(ca["clean"], true, "{ca}");

    // Push: the branch on "GitHub" (Basic auth with the token), upstream set.
    let (st, pushed) = s.post(&format!("/api/tasks/{aid}/push"), json!({})).await;
    assert_eq!(st, 200, "{pushed}");
    let branch = a["branch"].as_str().unwrap().to_string();
    let bare = hub.root.join("octo/hello.git");
    assert_eq!(git(&bare, &["rev-parse", &branch]).trim(), git(&clone, &["rev-parse", &branch]).trim());
    assert_eq!(pushed["upstream"], format!("origin/{branch}"));

    // Pull request: POST /pulls with the branch, base, title and a generated body.
    let head_sha = git(&clone, &["rev-parse", &branch]).trim().to_string();
    hub.on("POST", "/repos/octo/hello/pulls", Reply::json(201, docs::pull("octo", "hello", 7, &branch, &head_sha, "main", "open", false)));
    hub.on("POST", "/repos/octo/hello/pulls", Reply::json(422, docs::pull_exists("octo", &branch)));
    hub.on("GET", "/repos/octo/hello/pulls", Reply::json(200, json!([docs::pull("octo", "hello", 7, &branch, &head_sha, "main", "open", false)])));
    let (st, pr) = s.post(&format!("/api/tasks/{aid}/pr"), json!({})).await;
    assert_eq!(st, 201, "{pr}");
    assert_eq!((pr["number"].as_u64(), pr["state"].as_str()), (Some(7), Some("open")), "{pr}");
    assert_eq!(pr["url"], "https://github.com/octo/hello/pull/7");
    let sent = hub.requests_to("POST", "/repos/octo/hello/pulls").pop().unwrap();
    assert_eq!(sent.auth(), Some(format!("Bearer {GH_TOKEN}").as_str()));
    assert_eq!(sent.body["head"], branch.as_str());
    assert_eq!(sent.body["base"], "main");
    assert_eq!(sent.body["title"], "Feature A");
    assert_eq!(sent.body["draft"], false);
    let body = sent.body["body"].as_str().unwrap();
    for part in ["Make shared.txt say A", "A changes line 1", "shared.txt | +1 -1", "agent `shell`", "sandbox image", &aid] {
        assert!(body.contains(part), "the body has {part:?}:\n{body}");
    }
    responses.push(pr.to_string());
    // Again: GitHub says it exists; AnyCode shows that one.
    let (st, pr2) = s.post(&format!("/api/tasks/{aid}/pr"), json!({"title": "Other"})).await;
    assert_eq!(st, 201, "{pr2}");
    assert_eq!(pr2["number"], 7);
    let find = hub.requests_to("GET", "/repos/octo/hello/pulls").pop().unwrap();
    assert!(find.query.contains(&format!("head=octo:{branch}")), "{}", find.query);
    let (_, t) = s.get(&format!("/api/tasks/{aid}")).await;
    assert_eq!(t["pr"]["number"], 7, "the task shows its pull request: {t}");

    // Status with checks and reviews; the second read is conditional (ETag → 304).
    hub.set("GET", "/repos/octo/hello/pulls/7", Reply::json(200, docs::pull("octo", "hello", 7, &branch, &head_sha, "main", "open", false)).header("ETag", "\"pr7-v1\""));
    hub.on("GET", "/repos/octo/hello/pulls/7", Reply::json(304, Value::Null));
    hub.on("GET", &format!("/repos/octo/hello/commits/{head_sha}/check-runs"), Reply::json(200, docs::check_runs(&head_sha, "in_progress", None)));
    hub.on("GET", &format!("/repos/octo/hello/commits/{head_sha}/status"), Reply::json(200, docs::combined_status(&head_sha, "pending", 0)));
    hub.on("GET", "/repos/octo/hello/pulls/7/reviews", Reply::json(200, docs::reviews("hubot", "APPROVED")));
    let (st, pr) = s.get(&format!("/api/tasks/{aid}/pr")).await;
    assert_eq!(st, 200, "{pr}");
    assert_eq!((pr["state"].as_str(), pr["checks"].as_str(), pr["review"].as_str()), (Some("open"), Some("pending"), Some("approved")), "{pr}");
    let (st, pr) = s.get(&format!("/api/tasks/{aid}/pr")).await;
    assert_eq!((st, pr["state"].as_str()), (200, Some("open")), "304 keeps the last answer: {pr}");
    let gets = hub.requests_to("GET", "/repos/octo/hello/pulls/7");
    let last = gets.last().unwrap();
    assert_eq!(last.headers.get("if-none-match").and_then(|v| v.to_str().ok()), Some("\"pr7-v1\""), "conditional GET");

    // Rate limited: a clear error, the refresh loop backs off for as long as GitHub says.
    let reset = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 900;
    hub.set(
        "GET",
        "/repos/octo/hello/pulls/7",
        Reply::json(403, docs::rate_limited()).header("x-ratelimit-remaining", "0").header("x-ratelimit-reset", &reset.to_string()),
    );
    let (st, e) = s.get(&format!("/api/tasks/{aid}/pr")).await;
    assert_eq!((st, e["error"]["code"].as_str()), (503, Some("GITHUB_RATE_LIMITED")), "{e}");
    let wait = s.engine.refresh_open_prs(Duration::from_secs(60)).await;
    assert!(wait >= Duration::from_secs(850) && wait <= Duration::from_secs(3600), "{wait:?}");
    let (_, t) = s.get(&format!("/api/tasks/{aid}")).await;
    assert!(t["pr"]["refresh_error"].as_str().unwrap().contains("rate limit"), "{t}");

    // Merge: GitHub refuses (405, then 409), then merges; the branch goes on GitHub only.
    hub.on("PUT", "/repos/octo/hello/pulls/7/merge", Reply::json(405, docs::not_mergeable()));
    hub.on("PUT", "/repos/octo/hello/pulls/7/merge", Reply::json(409, docs::head_modified()));
    hub.on("PUT", "/repos/octo/hello/pulls/7/merge", Reply::json(200, docs::merged(&head_sha)));
    hub.on("DELETE", &format!("/repos/octo/hello/git/refs/heads/{branch}"), Reply::json(204, Value::Null));
    hub.set("GET", "/repos/octo/hello/pulls/7", Reply::json(200, docs::pull("octo", "hello", 7, &branch, &head_sha, "main", "closed", true)));
    let (st, e) = s.post(&format!("/api/tasks/{aid}/merge"), json!({"method": "bogus"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{e}");
    let (st, e) = s.post(&format!("/api/tasks/{aid}/merge"), json!({"method": "squash"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("MERGE_REFUSED")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("not mergeable"), "{e}");
    let (st, e) = s.post(&format!("/api/tasks/{aid}/merge"), json!({"method": "squash"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("MERGE_REFUSED")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("Head branch was modified"), "{e}");
    assert_eq!(hub.requests_to("PUT", "/repos/octo/hello/pulls/7/merge")[0].body["merge_method"], "squash");
    let (st, m) = s.post(&format!("/api/tasks/{aid}/merge"), json!({"method": "squash", "delete_branch": true})).await;
    assert_eq!(st, 200, "{m}");
    assert_eq!((m["merged"].as_bool(), m["pr"]["state"].as_str()), (Some(true), Some("merged")), "{m}");
    assert_eq!(hub.requests_to("DELETE", &format!("/repos/octo/hello/git/refs/heads/{branch}")).len(), 1);
    assert!(git(&clone, &["branch", "--list", &branch]).contains(&branch), "the local branch is kept");
    responses.push(m.to_string());

    // A revoked token: a clear error on the next call.
    hub.set("GET", "/repos/octo/hello/pulls/7", Reply::json(401, docs::bad_credentials()));
    let (st, e) = s.get(&format!("/api/tasks/{aid}/pr")).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("GITHUB_BAD_CREDENTIALS")), "{e}");

    // The token is in no API answer, nowhere in the data dir (database, clone's
    // .git/config, worktrees), and not in the sandboxes.
    for r in &responses {
        assert!(!r.contains(GH_TOKEN), "the token leaked into an API answer: {r}");
    }
    let (_, tasks) = s.get("/api/tasks").await;
    assert!(!tasks.to_string().contains(GH_TOKEN));
    assert!(files_containing(&s.data_dir(), GH_TOKEN).is_empty(), "{:?}", files_containing(&s.data_dir(), GH_TOKEN));
    let cid = a["container_id"].as_str().unwrap();
    assert!(!docker_inspect(cid).to_string().contains(GH_TOKEN), "the sandbox never sees it");

    // Logout: the saved token goes.
    let (st, g) = s.delete("/api/github/token").await;
    assert_eq!((st, g["source"].is_null()), (200, true), "{g}");
}

#[tokio::test(flavor = "multi_thread")]
async fn imports_that_fail_leave_nothing_behind() {
    let (hub, _src) = fake_with_repo().await;
    let s = Server::start().await;
    s.engine.configure_github(&hub.api, Tokens::only(Arc::new(MemoryStore::default()))).await;
    let repos = s.data_dir().join("repos");

    // Unknown repository (GitHub's 404, also what a private one without a token gets).
    let (st, e) = s.post("/api/projects", json!({"url": "octo/missing"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("GITHUB_NOT_FOUND")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("token"), "{e}");
    // Not a repository spec at all.
    for bad in ["", "just-a-name", "a/b/c", "ftp://example.com/a/b"] {
        let (st, e) = s.post("/api/projects", json!({"url": bad})).await;
        assert_eq!((st, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{bad}: {e}");
    }
    // Private, no token: GitHub's API would say 404; here the API lookup passes and
    // git itself refuses. The import fails visibly and leaves nothing.
    let (st, imp) = s.post("/api/projects", json!({"url": "octo/hello"})).await;
    assert_eq!(st, 202, "{imp}");
    let p = wait_import(&s, imp["id"].as_str().unwrap()).await;
    assert_eq!(p["status"], "failed", "{p}");
    assert_eq!(p["error_code"], "AUTH_FAILED", "{p}");
    assert!(p["error"].as_str().unwrap().contains("token"), "{p}");
    assert!(!repos.join("octo/hello").exists());
    assert!(std::fs::read_dir(repos.join("octo")).map(|mut d| d.next().is_none()).unwrap_or(true), "no partial clone");
    // Dismissed, it is gone from the list.
    let (st, _) = s.delete(&format!("/api/projects/{}", imp["id"].as_str().unwrap())).await;
    assert_eq!(st, 204);
    let (_, list) = s.get("/api/projects").await;
    assert!(list.as_array().unwrap().is_empty(), "{list}");

    // An unreachable host.
    let (st, imp) = s.post("/api/projects", json!({"url": "http://127.0.0.1:9/octo/hello.git"})).await;
    assert_eq!(st, 202, "{imp}");
    let p = wait_import(&s, imp["id"].as_str().unwrap()).await;
    assert_eq!((p["status"].as_str(), p["error_code"].as_str()), (Some("failed"), Some("REMOTE_UNREACHABLE")), "{p}");
    assert!(!repos.join("octo/hello").exists());

    // A folder the user picked that is not empty: refused before anything is made.
    let picked = s.data_dir().parent().unwrap().join("picked");
    std::fs::create_dir_all(&picked).unwrap();
    std::fs::write(picked.join("mine.txt"), "keep me\n").unwrap();
    let (st, e) = s.post("/api/projects", json!({"url": "octo/hello", "path": picked})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("DESTINATION_EXISTS")), "{e}");
    assert_eq!(std::fs::read_to_string(picked.join("mine.txt")).unwrap(), "keep me\n");

    // Into a picked empty folder, with a saved token.
    std::fs::remove_file(picked.join("mine.txt")).unwrap();
    let store = Arc::new(MemoryStore::default());
    s.engine.configure_github(&hub.api, Tokens::only(store.clone())).await;
    anycode_engine::TokenStore::set(&*store, &anycode_github_secret(GH_TOKEN)).unwrap();
    let (st, imp) = s.post("/api/projects", json!({"url": "octo/hello", "path": picked})).await;
    assert_eq!(st, 202, "{imp}");
    let p = wait_import(&s, imp["id"].as_str().unwrap()).await;
    assert_eq!(p["status"], "ready", "{p}");
    assert_eq!(std::path::PathBuf::from(p["path"].as_str().unwrap()), picked.canonicalize().unwrap());
    assert!(picked.join("shared.txt").exists());

    // Push without a GitHub remote: a project from a local path.
    let local = s.add_project().await;
    let (_, projects) = s.get("/api/projects").await;
    let lp = projects.as_array().unwrap().iter().find(|p| p["id"] == local.as_str()).unwrap().clone();
    assert!(lp["github"].is_null(), "{lp}");
}

fn anycode_github_secret(s: &str) -> anycode_engine::GitHubSecret {
    anycode_engine::GitHubSecret::new(s)
}
