#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A task started from a GitHub issue (issue 16, item 7), through the real server
//! against the loopback GitHub stand-in: the open issues listed (pull requests left
//! out), the task's title and prompt from the picked issue, a closed issue refused,
//! and `Closes #N` in the pull request AnyCode opens.

use anycode_engine::{MemoryStore, Tokens};
use anycode_testkit::github::{docs, FakeGitHub, Reply};
use anycode_testkit::*;
use serde_json::{json, Value};
use std::sync::Arc;

const GH_TOKEN: &str = "ghp_fake0123456789abcdefABCDEF01234567";

fn issue(number: u64, title: &str, body: &str, state: &str) -> Value {
    json!({"number": number, "title": title, "body": body, "state": state, "html_url": format!("https://github.com/octo/hello/issues/{number}")})
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_from_an_issue_gets_its_title_and_prompt_and_its_pr_closes_it() {
    let hub = FakeGitHub::start(GH_TOKEN).await;
    let s = Server::start().await;
    hub.publish("octo", "hello", &s.repo);
    git(&s.repo, &["remote", "add", "origin", &hub.clone_url("octo", "hello")]);
    s.engine.configure_github(&hub.api, Tokens::only(Arc::new(MemoryStore::default()))).await;
    hub.on("GET", "/user", Reply::json(200, docs::user("octocat")));
    let (st, g) = s.req(reqwest::Method::PUT, "/api/github/token", Some(json!({"token": GH_TOKEN}))).await;
    assert_eq!(st, 200, "{g}");
    let p = s.add_project().await;

    let mut pr_issue = issue(8, "A pull request", "", "open");
    pr_issue["pull_request"] = json!({"url": "https://api.github.com/repos/octo/hello/pulls/8"});
    hub.on("GET", "/repos/octo/hello/issues", Reply::json(200, json!([issue(7, "Fix the login page", "It fails on Safari.", "open"), pr_issue])));
    let (st, list) = s.get(&format!("/api/projects/{p}/github/issues")).await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "pull requests are left out: {list}");
    assert_eq!((list[0]["number"].as_u64(), list[0]["title"].as_str()), (Some(7), Some("Fix the login page")));
    assert!(hub.requests_to("GET", "/repos/octo/hello/issues")[0].query.contains("state=open"));

    hub.on("GET", "/repos/octo/hello/issues/9", Reply::json(200, issue(9, "Old", "", "closed")));
    let (st, e) = s.post(&format!("/api/projects/{p}/tasks"), json!({"title": "", "agent": "shell", "issue": 9})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("closed"), "{e}");

    hub.on("GET", "/repos/octo/hello/issues/7", Reply::json(200, issue(7, "Fix the login page", "It fails on Safari.", "open")));
    let t = s.create_task(&p, json!({"title": " ", "agent": "shell", "issue": 7})).await;
    assert_eq!(t["title"], "Fix the login page");
    assert_eq!(t["prompt"], "Fix the login page\n\nIt fails on Safari.\n\nhttps://github.com/octo/hello/issues/7");
    assert_eq!(t["branch"], "anycode/fix-the-login-page");
    let id = t["id"].as_str().unwrap().to_string();

    let wt = std::path::PathBuf::from(t["worktree"].as_str().unwrap());
    std::fs::write(wt.join("login.txt"), "fixed\n").unwrap();
    let (st, c) = s.post(&format!("/api/tasks/{id}/commit"), json!({"message": "Fix the login"})).await;
    assert_eq!(st, 200, "{c}");
    let branch = t["branch"].as_str().unwrap();
    hub.on("POST", "/repos/octo/hello/pulls", Reply::json(201, docs::pull("octo", "hello", 12, branch, "0123456789abcdef0123456789abcdef01234567", "main", "open", false)));
    let (st, pr) = s.post(&format!("/api/tasks/{id}/pr"), json!({})).await;
    assert_eq!(st, 201, "{pr}");
    let sent = hub.requests_to("POST", "/repos/octo/hello/pulls").pop().unwrap();
    let body = sent.body["body"].as_str().unwrap();
    assert!(body.starts_with("Closes #7\n"), "{body}");
    assert!(body.contains("It fails on Safari."), "the prompt is in the body: {body}");
    s.delete(&format!("/api/tasks/{id}")).await;
}
