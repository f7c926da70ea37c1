#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Bad input gets a clear error and changes nothing (issue 2): each case is a
//! request against a real server, with the repository and Docker checked afterwards.

use anycode_testkit::*;
use serde_json::json;

fn branches(repo: &std::path::Path) -> String {
    git(repo, &["branch", "--format=%(refname:short)"])
}

#[tokio::test(flavor = "multi_thread")]
async fn project_paths_that_are_not_repositories() {
    let s = Server::start().await;
    let (st, e) = s.post("/api/projects", json!({"path": "/definitely/not/here"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("PATH_NOT_FOUND")), "{e}");
    let plain = s.data_dir().parent().unwrap().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let (st, e) = s.post("/api/projects", json!({"path": plain})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("NOT_A_REPOSITORY")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("not a git repository"));
    let (st, e) = s.post("/api/projects", json!({"path": ""})).await;
    assert_eq!(st, 422, "{e}");
    // Added once; a second time is a conflict.
    s.add_project().await;
    let (st, e) = s.post("/api/projects", json!({"path": s.repo})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("CONFLICT")), "{e}");
    let (_, list) = s.get("/api/projects").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_and_unknown_ids() {
    let s = Server::start().await;
    let resp = s
        .http
        .post(format!("{}/api/projects", s.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"path\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "INVALID_JSON");
    let (st, e) = s.post("/api/projects", json!({"nopath": 1})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("INVALID_JSON")), "{e}");

    for (path, code) in [
        ("/api/tasks/nope", "TASK_NOT_FOUND"),
        ("/api/projects/nope", "PROJECT_NOT_FOUND"),
        ("/api/tasks/nope/diff", "TASK_NOT_FOUND"),
        ("/api/projects/nope/branches", "PROJECT_NOT_FOUND"),
        ("/api/tasks?project=nope", "PROJECT_NOT_FOUND"),
    ] {
        let (st, e) = s.get(path).await;
        assert_eq!((st, e["error"]["code"].as_str()), (404, Some(code)), "{path}: {e}");
    }
    let (st, e) = s.post("/api/tasks/nope/stop", json!({})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("TASK_NOT_FOUND")));
    let (st, e) = s.post("/api/tasks/nope/terminals", json!({})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("TASK_NOT_FOUND")));
    let (st, e) = s.delete("/api/terminals/nope").await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("TERMINAL_NOT_FOUND")));
    let (st, e) = s.post("/api/projects/nope/tasks", json!({"title": "x", "agent": "shell"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("PROJECT_NOT_FOUND")));
    // A WebSocket to an unknown terminal is refused before the upgrade.
    let url = format!("{}/ws/terminals/nope", s.base.replacen("http", "ws", 1));
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("Authorization", format!("Bearer {TOKEN}").parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_task_requests_change_nothing() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let before = branches(&s.repo);
    let cases = [
        (json!({"title": "x", "agent": "shell", "base": "no-such-branch"}), 422, "UNKNOWN_BRANCH"),
        (json!({"title": "x", "agent": "shell", "branch": "bad..name"}), 422, "INVALID_BRANCH_NAME"),
        (json!({"title": "x", "agent": "shell", "branch": "has space"}), 422, "INVALID_BRANCH_NAME"),
        (json!({"title": "x", "agent": "shell", "branch": "-leading-dash"}), 422, "INVALID_BRANCH_NAME"),
        (json!({"title": "x", "agent": "shell", "branch": "ends.lock"}), 422, "INVALID_BRANCH_NAME"),
        (json!({"title": "x", "agent": "shell", "branch": "dev"}), 409, "BRANCH_EXISTS"),
        (json!({"title": "x", "agent": "emacs"}), 422, "UNKNOWN_AGENT"),
        (json!({"title": "x", "agent": "Not A Name"}), 422, "INVALID_INPUT"),
        (json!({"title": "x", "agent": "codex", "credential": "subscription"}), 422, "INVALID_INPUT"),
        (json!({"title": "   ", "agent": "shell"}), 422, "INVALID_INPUT"),
        (json!({"title": "x".repeat(201), "agent": "shell"}), 422, "INVALID_INPUT"),
        (json!({"agent": "shell"}), 400, "INVALID_JSON"),
    ];
    for (body, status, code) in cases {
        let (st, e) = s.post(&format!("/api/projects/{p}/tasks"), body.clone()).await;
        assert_eq!((st, e["error"]["code"].as_str()), (status, Some(code)), "{body}: {e}");
        assert!(!e["error"]["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(branches(&s.repo), before, "no branch made");
    let (_, tasks) = s.get("/api/tasks").await;
    assert_eq!(tasks, json!([]));
    assert!(!s.data_dir().join("worktrees").join(&p).exists() || std::fs::read_dir(s.data_dir().join("worktrees").join(&p)).unwrap().next().is_none());
    // The default branch name avoids taken names instead of failing.
    let t1 = s.create_task(&p, json!({"title": "Same", "agent": "shell"})).await;
    let t2 = s.create_task(&p, json!({"title": "Same", "agent": "shell"})).await;
    assert_eq!(t1["branch"], "anycode/same");
    assert_eq!(t2["branch"], "anycode/same-2");
    // The agent terminal cannot be closed.
    let (st, e) = s.delete(&format!("/api/terminals/{}", t1["terminals"][0]["id"].as_str().unwrap())).await;
    assert_eq!(st, 422, "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_creation_leaves_no_branch_worktree_or_container() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let mut cfg = config(&dir.path().join("data"));
    // Docker refuses a 1 MiB memory limit when creating the container: the failure
    // comes after the branch and the worktree were made.
    cfg.limits.memory_bytes = 1024 * 1024;
    let s = Server::start_with(dir, repo, cfg).await;
    let p = s.add_project().await;
    let before = branches(&s.repo);
    let (st, e) = s.post(&format!("/api/projects/{p}/tasks"), json!({"title": "doomed", "agent": "shell"})).await;
    assert_eq!(st, 500, "{e}");
    assert_eq!(e["error"]["code"], "DOCKER_ERROR");
    assert!(e["error"]["message"].as_str().unwrap().to_lowercase().contains("memory"), "{e}");
    assert_eq!(branches(&s.repo), before, "branch removed again");
    assert!(!git(&s.repo, &["worktree", "list"]).contains("worktrees"), "worktree removed again");
    let wt_dir = s.data_dir().join("worktrees").join(&p);
    assert!(!wt_dir.exists() || std::fs::read_dir(&wt_dir).unwrap().next().is_none());
    let out = std::process::Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter", &format!("label=dev.anycode.instance={}", s.engine.instance())])
        .output()
        .unwrap();
    // The relay check at start (`anycode-relay-check-…`) comes and goes by itself.
    let left: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().filter(|n| !n.starts_with("anycode-relay-check-")).map(str::to_string).collect();
    assert!(left.is_empty(), "no container left: {left:?}");
    let (_, tasks) = s.get("/api/tasks").await;
    assert_eq!(tasks, json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_unreachable_is_503_with_what_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let mut cfg = config(&dir.path().join("data"));
    cfg.docker_host = Some(format!("unix://{}/no-docker.sock", dir.path().display()));
    let s = Server::start_with(dir, repo, cfg).await;
    let (st, h) = s.get("/api/health").await;
    assert_eq!(st, 200);
    assert_eq!(h["docker"]["ok"], false);
    assert!(h["docker"]["error"].as_str().unwrap().contains("Start Docker"), "{h}");
    let p = s.add_project().await; // projects need no Docker
    let before = branches(&s.repo);
    let (st, e) = s.post(&format!("/api/projects/{p}/tasks"), json!({"title": "x", "agent": "shell"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (503, Some("DOCKER_UNAVAILABLE")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("Start Docker Desktop"));
    assert_eq!(branches(&s.repo), before);
}

/// A client that does not follow redirects.
fn no_redirect() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A new login link from `POST /api/login-code` (Bearer token).
async fn login_link(s: &Server) -> String {
    let (st, v) = s.post("/api/login-code", json!({})).await;
    assert_eq!(st, 200, "{v}");
    let link = v["url"].as_str().unwrap().to_string();
    assert!(link.starts_with(&format!("{}/login?code=", s.base)) && !link.contains(TOKEN), "{link}");
    link
}

/// Logs in with a new login link; returns the session cookie's `name=value`.
async fn login_cookie(s: &Server) -> String {
    let r = no_redirect().get(login_link(s).await).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/", "the code leaves the address bar");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains(TOKEN), "the cookie does not carry the token itself");
    cookie.split(';').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_links_work_once_and_expire_and_the_token_is_never_in_a_url() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let cfg = config(&dir.path().join("data"));
    let opts = anycode_server::ServerOptions {
        login_code_ttl: std::time::Duration::from_millis(700),
        ..anycode_server::ServerOptions::new(anycode_server::AccessToken::new(TOKEN))
    };
    let s = Server::start_with_options(dir, repo, cfg, opts).await;
    // Once: the second use is refused with what to do, and sets no cookie.
    let link = login_link(&s).await;
    let r = no_redirect().get(&link).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let r = no_redirect().get(&link).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("used already") && page.contains("anycode open"), "{page}");
    // Expired: refused the same way.
    let link = login_link(&s).await;
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let r = no_redirect().get(&link).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().await.unwrap().contains("expired"));
    // Made-up codes and no code.
    for bad in ["/login?code=00000000000000000000000000000000", "/login", "/login?code="] {
        let r = no_redirect().get(format!("{}{bad}", s.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{bad}");
        assert!(r.headers().get("set-cookie").is_none(), "{bad}");
    }
    // The old token link logs in no more, right token or not.
    for t in [TOKEN, "wrong"] {
        let r = no_redirect().get(format!("{}/?token={t}", s.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "{t}");
        assert!(r.headers().get("set-cookie").is_none());
    }
    // Bearer tokens work for API clients as before; no session, no login code.
    let r = reqwest::Client::new().post(format!("{}/api/login-code", s.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_host_and_origin_are_enforced() {
    let s = Server::start().await;
    let url = |p: &str| format!("{}{p}", s.base);
    // No token, wrong token.
    let r = s.http.get(url("/api/projects")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = s.http.get(url("/api/projects")).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // A login link sets an HttpOnly, SameSite=Strict session cookie that works.
    let pair = login_cookie(&s).await;
    let r = s.http.get(url("/api/projects")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // DNS rebinding: a foreign Host is refused even with the token.
    let r = s.http.get(url("/api/projects")).bearer_auth(TOKEN).header("host", "evil.example:80").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = s.http.get(url("/")).header("host", "evil.example").send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A page of another site cannot post with the user's cookie.
    let r = s
        .http
        .post(url("/api/projects"))
        .header("cookie", &pair)
        .header("origin", "http://evil.example")
        .json(&json!({"path": s.repo}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (_, list) = s.get("/api/projects").await;
    assert_eq!(list, json!([]));
    // Nor open a terminal WebSocket.
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "ws", "agent": "shell"})).await;
    let term = t["terminals"][0]["id"].as_str().unwrap();
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("{}/ws/terminals/{term}", s.base.replacen("http", "ws", 1)).into_client_request().unwrap();
    req.headers_mut().insert("cookie", pair.parse().unwrap());
    req.headers_mut().insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    // The same page origin works.
    let mut req = format!("{}/ws/terminals/{term}", s.base.replacen("http", "ws", 1)).into_client_request().unwrap();
    req.headers_mut().insert("cookie", pair.parse().unwrap());
    req.headers_mut().insert("origin", s.base.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok());
    // The OpenAPI document is served: the one checked in as docs/openapi.json.
    let (st, doc) = s.get("/api/openapi.json").await;
    assert_eq!(st, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json")).unwrap();
    assert_eq!(doc, serde_json::from_str::<serde_json::Value>(&checked_in).unwrap(), "the served document is docs/openapi.json");
}
