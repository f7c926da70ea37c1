#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Agent states from Claude Code's hooks and approvals from anywhere (issue 8), with
//! the real Claude Code CLI in the real sandbox image, talking to a stand-in of
//! Anthropic's Messages API (`anycode_testkit::anthropic`) that scripts one `Bash`
//! tool_use and then a text answer. AnyCode hands the task an API key from its own
//! environment and `ANTHROPIC_BASE_URL` from the settings' `[env]`.

use anycode_testkit::anthropic::{FakeAnthropic, Script};
use anycode_testkit::*;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The API key AnyCode finds in its environment and hands to the agent.
const API_KEY: &str = "sk-ant-api03-agentstates-test-key-0123456789abcdefXYZ";
const PROOF_CMD: &str = "echo hi > proof.txt && echo wrote-proof";

fn tool_script() -> Script {
    Script::ToolThenText { input: json!({"command": PROOF_CMD, "description": "Write proof.txt"}), text: "All done: proof.txt is written.".into() }
}

/// A server whose tasks reach `fake` as their Anthropic API, with an API key from
/// AnyCode's environment, and the given approval timeout.
async fn server(fake: &FakeAnthropic, approval_timeout: Duration) -> Server {
    anycode_testkit::anthropic::claude_server(fake, approval_timeout, API_KEY).await
}

/// Every status the engine reported for any task, in order.
fn record_statuses(s: &Server) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut rx = s.engine.events();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok(ev) = rx.recv().await {
            if let anycode_engine::Event::Task { task } = ev {
                let st = task.status.to_string();
                let mut v = seen2.lock().unwrap();
                if v.last() != Some(&st) {
                    v.push(st);
                }
            }
        }
    });
    seen
}

/// Polls the task until its status is `want`; panics with the task, the terminal's
/// text and the stand-in's requests after `secs`.
async fn wait_status(s: &Server, id: &str, want: &str, secs: u64, term: &mut Term, fake: &FakeAnthropic) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, t) = s.get(&format!("/api/tasks/{id}")).await;
        if t["status"] == want {
            return t;
        }
        if Instant::now() > deadline {
            let paths: Vec<String> = fake.requests().iter().map(|r| format!("{} {}", r.method, r.path)).collect();
            panic!("task never became {want}: {t}\nrequests: {paths:?}\nterminal:\n{}", term.text());
        }
        // Keep reading the terminal so its text is there for a failure message.
        let _ = tokio::time::timeout(Duration::from_millis(300), term.wait_for(1, "", |_| false)).await;
    }
}

/// Flat lowercase text of the terminal (the TUI places words with cursor moves).
fn flat(t: &str) -> String {
    t.split_whitespace().collect::<String>().to_lowercase()
}

async fn create(s: &Server, project: &str, body: Value) -> (Value, Term) {
    let t = s.create_task(project, body).await;
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.resize(120, 40).await;
    (t, term)
}

/// POSTs a hook from inside the task's sandbox to its relay, as Claude Code would.
fn post_hook(cid: &str, token: Option<&str>, body: Value) -> u16 {
    let url = format!("{}/hooks/claude", anycode_engine::SANDBOX_HOOK_URL);
    let mut cmd = std::process::Command::new("docker");
    cmd.args(["exec", cid, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Content-Type: application/json", "--data", &body.to_string()]);
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.arg(&url).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

fn proof(t: &Value) -> std::path::PathBuf {
    Path::new(t["worktree"].as_str().unwrap()).join("proof.txt")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prompted_task_asks_for_approval_runs_the_tool_when_allowed_and_is_done() {
    let fake = FakeAnthropic::start(tool_script()).await;
    let s = server(&fake, Duration::from_secs(120)).await;
    let statuses = record_statuses(&s);
    let p = s.add_project().await;
    let (t, mut term) = create(&s, &p, json!({"title": "Prove it", "agent": "claude", "credential": "api_key",
        "permission_mode": "default", "prompt": "Write proof.txt"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    assert_eq!(t["status"], "starting", "{t}");
    assert_eq!(t["permission_mode"], "default");

    let t = wait_status(&s, &id, "needs_approval", 120, &mut term, &fake).await;
    assert_eq!(t["attention"]["tool"], "Bash", "{t}");
    assert_eq!(t["attention"]["input"]["command"], PROOF_CMD, "{t}");
    assert!(!proof(&t).exists(), "nothing runs before the approval");
    let (_, list) = s.get("/api/tasks").await;
    assert_eq!(list[0]["status"], "needs_approval", "the task list shows it too");
    assert_eq!(list[0]["attention"]["tool"], "Bash");

    // The hook token: a wrong or missing one gets 401 and changes nothing.
    let stop = json!({"hook_event_name": "Stop", "session_id": "x"});
    let cid = t["container_id"].as_str().unwrap().to_string();
    assert_eq!(post_hook(&cid, None, stop.clone()), 401);
    assert_eq!(post_hook(&cid, Some("not-the-token"), stop.clone()), 401);
    assert_eq!(post_hook(&cid, Some(""), stop), 401);
    let (_, still) = s.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(still["status"], "needs_approval");

    // Bad decisions are refused without answering the hook.
    let (st, e) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "maybe"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("INVALID_INPUT")), "{e}");
    let (st, e) = s.post("/api/tasks/nope/approval", json!({"decision": "allow"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("TASK_NOT_FOUND")));

    let (st, after) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "allow"})).await;
    assert_eq!(st, 200, "{after}");
    assert_eq!(after["status"], "running", "{after}");
    assert_eq!(after["attention"], Value::Null);
    let (st, e) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "allow"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("NO_PENDING_APPROVAL")), "{e}");

    let t = wait_status(&s, &id, "done", 120, &mut term, &fake).await;
    assert_eq!(std::fs::read_to_string(proof(&t)).unwrap(), "hi\n", "the allowed tool ran in the worktree");
    term.wait_for(30, "the answer in the terminal", |x| flat(x).contains("alldone")).await;

    // What Claude Code sent: the API key handed over, the tool's output back.
    let turns = fake.agent_turns();
    assert!(turns.len() >= 2, "{turns:?}");
    assert!(turns.iter().all(|r| r.api_key() == Some(API_KEY)));
    let results = turns.last().unwrap().tool_results();
    assert!(results.iter().any(|r| r.to_string().contains("wrote-proof")), "{results:?}");

    // Every state on the way, in order.
    let seen = statuses.lock().unwrap().clone();
    let order = ["starting", "running", "needs_approval", "running", "done"];
    let mut at = 0;
    for st in &seen {
        if at < order.len() && st == order[at] {
            at += 1;
        }
    }
    assert_eq!(at, order.len(), "states seen: {seen:?}");

    // /exit ends Claude Code, so the container: exited.
    term.send("/exit").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    term.send("\r").await;
    let t = wait_status(&s, &id, "exited", 60, &mut term, &fake).await;
    assert_eq!(t["attention"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denied_tool_does_not_run_and_the_agent_hears_why() {
    let fake = FakeAnthropic::start(tool_script()).await;
    let s = server(&fake, Duration::from_secs(120)).await;
    let p = s.add_project().await;
    let (t, mut term) = create(&s, &p, json!({"title": "Deny it", "agent": "claude", "credential": "api_key",
        "permission_mode": "default", "prompt": "Write proof.txt"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    wait_status(&s, &id, "needs_approval", 120, &mut term, &fake).await;
    let (st, after) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "deny", "message": "not in this repository"})).await;
    assert_eq!(st, 200, "{after}");
    let t = wait_status(&s, &id, "done", 120, &mut term, &fake).await;
    assert!(!proof(&t).exists(), "a denied tool does not run");
    let results = fake.agent_turns().last().unwrap().tool_results();
    let r = results.first().expect("a tool_result for the denied call");
    assert_eq!(r["is_error"], true, "{r}");
    assert!(r.to_string().contains("not in this repository"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timed_out_approval_falls_back_to_claude_codes_own_prompt() {
    let fake = FakeAnthropic::start(tool_script()).await;
    let s = server(&fake, Duration::from_secs(3)).await;
    let p = s.add_project().await;
    let (t, mut term) = create(&s, &p, json!({"title": "Ask me here", "agent": "claude", "credential": "api_key",
        "permission_mode": "default", "prompt": "Write proof.txt"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    wait_status(&s, &id, "needs_approval", 120, &mut term, &fake).await;
    // AnyCode answers without a decision after 3 s: the approval is no longer AnyCode's.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!s.engine.approval_pending(&id));
    let (st, e) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "allow"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("NO_PENDING_APPROVAL")), "the hook has been answered: {e}");
    // Claude Code asks in its TUI; the task still needs the user.
    term.wait_for(60, "Claude Code's permission prompt", |x| {
        let f = flat(x);
        f.contains("doyouwanttoproceed") && f.contains("1.yes")
    })
    .await;
    let (_, t) = s.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(t["status"], "needs_approval", "still waiting for the user: {t}");
    assert!(!proof(&t).exists());
    // Answered in the terminal: the first option, "Yes".
    term.send("1").await;
    let t = wait_status(&s, &id, "done", 120, &mut term, &fake).await;
    assert_eq!(std::fs::read_to_string(proof(&t)).unwrap(), "hi\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_error_fails_the_turn_with_its_reason() {
    let fake = FakeAnthropic::start(Script::Fail { status: 429, kind: "rate_limit_error".into(), message: "Number of requests has exceeded your rate limit".into() }).await;
    let s = server(&fake, Duration::from_secs(120)).await;
    let p = s.add_project().await;
    let (t, mut term) = create(&s, &p, json!({"title": "Too fast", "agent": "claude", "credential": "api_key",
        "permission_mode": "default", "prompt": "Write proof.txt"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let t = wait_status(&s, &id, "failed", 120, &mut term, &fake).await;
    assert_eq!(t["attention"]["message"], "rate_limit", "{t}");
    assert!(fake.requests().iter().any(|r| r.path == "/v1/messages"));
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_prompt_the_agent_waits_for_input_with_the_generated_settings() {
    let fake = FakeAnthropic::start(tool_script()).await;
    let s = server(&fake, Duration::from_secs(120)).await;
    let p = s.add_project().await;
    let (t, mut term) = create(&s, &p, json!({"title": "Idle", "agent": "claude", "credential": "api_key", "permission_mode": "default"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    wait_status(&s, &id, "waiting_input", 120, &mut term, &fake).await;

    // Claude Code started with the generated hooks in the sandbox's own settings:
    // the listener's URL, the token only as a variable reference.
    let exec = |args: &[&str]| {
        let out = std::process::Command::new("docker").args(["exec", &cid]).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let settings: Value = serde_json::from_str(&exec(&["cat", "/home/agent/.claude/settings.json"])).unwrap();
    let url = format!("{}/hooks/claude", anycode_engine::SANDBOX_HOOK_URL);
    assert_eq!(settings["hooks"]["Stop"][0]["hooks"][0]["url"], url.as_str(), "{settings}");
    assert_eq!(settings["hooks"]["Stop"][0]["hooks"][0]["headers"]["Authorization"], "Bearer $ANYCODE_HOOK_TOKEN");
    // The approval is a command hook that posts again while AnyCode is away.
    let ask = settings["hooks"]["PermissionRequest"][0]["hooks"][0]["command"].as_str().unwrap_or_default();
    assert!(ask.contains(&format!("'{url}'")) && ask.contains("Bearer $ANYCODE_HOOK_TOKEN"), "{settings}");
    // The API key is pre-approved by its last 20 characters; the key itself is in no file.
    let state: Value = serde_json::from_str(&exec(&["cat", "/home/agent/.claude.json"])).unwrap();
    let tail = &API_KEY[API_KEY.len() - 20..];
    assert!(state["customApiKeyResponses"]["approved"].as_array().unwrap().iter().any(|k| k == tail), "{state}");
    assert!(!exec(&["cat", "/home/agent/.claude.json", "/home/agent/.claude/settings.json"]).contains(API_KEY));
    let inspect = std::process::Command::new("docker").args(["inspect", &cid]).output().unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout);
    assert!(!inspect.contains("ANYCODE_HOOK_TOKEN=") && !inspect.contains(API_KEY), "neither token nor key in docker inspect");
    assert!(inspect.contains("ANYCODE_PERMISSION_MODE=default"));

    // A prompt typed in the terminal makes it work again (UserPromptSubmit).
    term.send("Write proof.txt").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    term.send("\r").await;
    let t = wait_status(&s, &id, "needs_approval", 120, &mut term, &fake).await;
    assert_eq!(t["attention"]["tool"], "Bash");

    let (st, _) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "deny"})).await;
    assert_eq!(st, 200);
    wait_status(&s, &id, "done", 120, &mut term, &fake).await;
    // The agent process ending (killed inside the sandbox) makes the task exited.
    let kill = std::process::Command::new("docker").args(["exec", &cid, "pkill", "-TERM", "-x", "claude"]).status().unwrap();
    assert!(kill.success(), "claude was running");
    let t = wait_status(&s, &id, "exited", 60, &mut term, &fake).await;
    assert_eq!(t["attention"], Value::Null);
}

/// Issue 8, "sessions that outlive everything": an agent that keeps running across an
/// AnyCode restart keeps reporting through its hooks (the new server starts the
/// sandbox's relay again; the token's digest is kept in the data dir), and
/// approvals work on the new server.
#[tokio::test(flavor = "multi_thread")]
async fn hooks_keep_working_after_anycode_restarts() {
    let fake = FakeAnthropic::start(tool_script()).await;
    let s = server(&fake, Duration::from_secs(120)).await;
    let cfg = s.engine.config().clone();
    let p = s.add_project().await;
    let (t, mut term) = create(&s, &p, json!({"title": "Outlives", "agent": "claude", "credential": "api_key", "permission_mode": "default"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    wait_status(&s, &id, "waiting_input", 120, &mut term, &fake).await;
    drop(term);

    let cid = t["container_id"].as_str().unwrap().to_string();
    let relays = || {
        let out = std::process::Command::new("docker").args(["exec", &cid, "pgrep", "-f", "anycode-relay"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    assert_eq!(relays(), 1, "one relay runs in the sandbox");

    let (dir, repo) = s.shutdown().await;
    // The old server's relay ends with it (its exec stream closes), freeing the
    // ports for the next server's relay; in-process, as here, nothing else ends it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while relays() != 0 {
        assert!(std::time::Instant::now() < deadline, "the relay outlived the server that started it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = Server::start_with(dir, repo, cfg).await;
    let mut term = s.ws(&term_id).await;
    term.send("Write proof.txt").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    term.send("\r").await;
    let t = wait_status(&s, &id, "needs_approval", 120, &mut term, &fake).await;
    assert_eq!(t["attention"]["tool"], "Bash", "{t}");
    let (st, _) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "allow"})).await;
    assert_eq!(st, 200);
    let t = wait_status(&s, &id, "done", 120, &mut term, &fake).await;
    assert_eq!(std::fs::read_to_string(proof(&t)).unwrap().trim(), "hi");
}
