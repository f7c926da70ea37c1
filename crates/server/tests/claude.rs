#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The real Claude Code CLI starts as the agent of a `claude` task (issue 2). Without
//! credentials it shows "Not logged in, run /login", which is what this test looks for,
//! after AnyCode's own first line saying that no credential was found.

use anycode_testkit::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn claude_code_starts_in_the_sandbox_and_shows_its_login_screen() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Ask Claude", "agent": "claude"})).await;
    assert_eq!(t["agent"], "claude");
    assert_eq!(t["terminals"][0]["title"], "claude");
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.resize(120, 40).await;
    // The TUI places words with cursor moves, so spaces are not in the byte stream.
    term.wait_for(60, "Claude Code's banner and its not-logged-in notice", |t| {
        let t: String = t.split_whitespace().collect::<String>().to_lowercase();
        t.contains("claudecodev2.") && t.contains("notloggedin") && t.contains("/login")
    })
    .await;
    // No credential on the (test's) host: the terminal's first line says so and how to
    // fix it, and the task shows it (issue 5).
    let first = term.text().lines().find(|l| !l.trim().is_empty()).unwrap_or_default().to_string();
    assert!(first.contains("no Claude subscription login found on this machine") && first.contains("anycode credentials set claude-token"), "{first}");
    assert_eq!(t["credential"], "subscription");
    let (_, task) = s.get(&format!("/api/tasks/{}", t["id"].as_str().unwrap())).await;
    // Claude Code keeps running at its login screen; without a login it has reported
    // no session through its hooks (issue 8), so the agent is still `starting`.
    assert!(["starting", "waiting_input"].contains(&task["status"].as_str().unwrap_or_default()), "{task}");
    assert_eq!(task["credential_warning"], "none found");
}
