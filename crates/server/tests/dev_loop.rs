#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The dev loop inside the sandbox (issue 16), against the real Docker engine and
//! real repositories: `.worktreeinclude` copies, messages to the agent (typed at
//! once into a shell; queued while a real Claude Code, talking to a stand-in of
//! Anthropic's API, is busy, then edited, removed and delivered at its next turn),
//! review comments sent as one message and addressed by a later commit, and the
//! open-in answer.

use anycode_testkit::anthropic::{FakeAnthropic, Script};
use anycode_testkit::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn exec(cid: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("docker").args(["exec", cid]).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn worktreeinclude_files_reach_the_sandbox_and_never_show_as_changes() {
    let s = Server::start().await;
    let repo = s.repo.clone();
    std::fs::write(repo.join(".gitignore"), ".env\nlocal/\n").unwrap();
    git(&repo, &["add", ".gitignore"]);
    git(&repo, &["commit", "-q", "-m", "ignore"]);
    std::fs::write(repo.join(".env"), "API_URL=http://localhost:1234\n").unwrap();
    std::fs::create_dir_all(repo.join("local")).unwrap();
    std::fs::write(repo.join("local/settings.json"), "{\"debug\":true}\n").unwrap();
    // Ignored only by the owner's own exclude file, which the task's repository lacks.
    std::fs::write(repo.join(".git/info/exclude"), "owner.secret\n").unwrap();
    std::fs::write(repo.join("owner.secret"), "s3cret\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", repo.join("local/host-link")).unwrap();
    std::fs::write(repo.join(".worktreeinclude"), ".env\nlocal/\nowner.secret\nREADME.md\n").unwrap();
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Include", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap();
    let cid = t["container_id"].as_str().unwrap();

    assert_eq!(exec(cid, &["cat", "/workspace/.env"]), (true, "API_URL=http://localhost:1234\n".into()));
    assert_eq!(exec(cid, &["cat", "/workspace/local/settings.json"]), (true, "{\"debug\":true}\n".into()));
    assert_eq!(exec(cid, &["cat", "/workspace/owner.secret"]), (true, "s3cret\n".into()));
    assert!(!exec(cid, &["test", "-e", "/workspace/local/host-link"]).0, "a symlink is not copied");
    assert_eq!(exec(cid, &["cat", "/workspace/README.md"]).1, "# demo\n", "a tracked file is the branch's");

    // Not changes, not committable, not in git status of the sandbox.
    let (st, d) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["files"], json!([]), "{d}");
    let (st, e) = s.post(&format!("/api/tasks/{id}/commit"), json!({"message": "x"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("NOTHING_TO_COMMIT")), "{e}");
    let (_, status) = exec(cid, &["git", "-C", "/workspace", "status", "--porcelain", "--untracked-files=all"]);
    assert_eq!(status, "");

    // The agent's own work next to them is committed without them.
    exec(cid, &["sh", "-c", "echo work > /workspace/work.txt"]);
    let (st, c) = s.post(&format!("/api/tasks/{id}/commit"), json!({"message": "work"})).await;
    assert_eq!(st, 200, "{c}");
    let files = git(&repo, &["ls-tree", "-r", "--name-only", t["branch"].as_str().unwrap()]);
    assert!(files.contains("work.txt") && !files.contains(".env") && !files.contains("owner.secret") && !files.contains("local/"), "{files}");
    s.delete(&format!("/api/tasks/{id}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_to_a_shell_is_typed_at_once_and_bad_ones_are_refused() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Shell", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    let (st, sent) = s.post(&format!("/api/tasks/{id}/messages"), json!({"text": "echo from-a-message-$((6*7))"})).await;
    assert_eq!(st, 200, "{sent}");
    assert_eq!(sent["delivered"], true);
    assert_eq!(sent["message"]["text"], "echo from-a-message-$((6*7))");
    term.wait_for(30, "the message's command ran", |t| t.contains("from-a-message-42")).await;
    let (_, q) = s.get(&format!("/api/tasks/{id}/messages")).await;
    assert_eq!(q, json!([]));

    for (body, code) in [
        (json!({"text": "   "}), "INVALID_INPUT"),
        (json!({"text": "a\u{1b}[201~b"}), "INVALID_INPUT"),
        (json!({"text": "x".repeat(16_001)}), "INVALID_INPUT"),
    ] {
        let (st, e) = s.post(&format!("/api/tasks/{id}/messages"), body).await;
        assert_eq!((st, e["error"]["code"].as_str()), (422, Some(code)), "{e}");
    }
    let (st, e) = s.post(&format!("/api/tasks/{id}/messages"), json!({"txt": "x"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (400, Some("INVALID_JSON")), "{e}");
    let (st, e) = s.post("/api/tasks/nope/messages", json!({"text": "x"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("TASK_NOT_FOUND")), "{e}");
    let (st, e) = s.req(reqwest::Method::PUT, &format!("/api/tasks/{id}/messages/nope"), Some(json!({"text": "x"}))).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("MESSAGE_NOT_FOUND")), "{e}");
    let (st, e) = s.delete(&format!("/api/tasks/{id}/messages/nope")).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("MESSAGE_NOT_FOUND")), "{e}");

    let (st, _) = s.post(&format!("/api/tasks/{id}/stop"), json!({})).await;
    assert_eq!(st, 200);
    let (st, e) = s.post(&format!("/api/tasks/{id}/messages"), json!({"text": "echo late"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("TASK_NOT_RUNNING")), "{e}");
    s.delete(&format!("/api/tasks/{id}")).await;
}

const API_KEY: &str = "sk-ant-api03-devloop-test-key-0123456789abcdefXYZ";

async fn wait_status(s: &Server, id: &str, want: &str, secs: u64, term: &mut Term) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, t) = s.get(&format!("/api/tasks/{id}")).await;
        if t["status"] == want {
            return t;
        }
        assert!(Instant::now() < deadline, "task never became {want}: {t}\nterminal:\n{}", term.text());
        let _ = tokio::time::timeout(Duration::from_millis(300), term.wait_for(1, "", |_| false)).await;
    }
}

/// A real Claude Code task titled `title`, against a stand-in API that asks to run a
/// Bash command (so the agent waits for an approval, busy) and then answers:
/// the stand-in, the server, the task, its id and its agent terminal.
async fn claude_task(title: &str) -> (FakeAnthropic, Server, Value, String, Term) {
    let fake = FakeAnthropic::start(Script::ToolThenText {
        input: json!({"command": "echo hi > proof.txt", "description": "Write proof.txt"}),
        text: "All done.".into(),
    })
    .await;
    let s = anycode_testkit::anthropic::claude_server(&fake, Duration::from_secs(120), API_KEY).await;
    let p = s.add_project().await;
    let t = s
        .create_task(&p, json!({"title": title, "agent": "claude", "credential": "api_key", "permission_mode": "default", "prompt": "Write proof.txt"}))
        .await;
    let id = t["id"].as_str().unwrap().to_string();
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.resize(120, 40).await;
    (fake, s, t, id, term)
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_to_a_busy_claude_wait_for_its_turn_and_can_be_edited_or_removed() {
    let (fake, s, _, id, mut term) = claude_task("Busy").await;
    wait_status(&s, &id, "needs_approval", 120, &mut term).await;

    // Busy: both messages wait, in order, visible on the task.
    let (st, first) = s.post(&format!("/api/tasks/{id}/messages"), json!({"text": "first draft"})).await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(first["delivered"], false);
    let (_, second) = s.post(&format!("/api/tasks/{id}/messages"), json!({"text": "REMOVED-MESSAGE"})).await;
    assert_eq!(second["delivered"], false);
    let (_, task) = s.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(task["messages"].as_array().unwrap().len(), 2, "{task}");
    let m1 = first["message"]["id"].as_str().unwrap();
    let m2 = second["message"]["id"].as_str().unwrap();
    let (st, edited) = s.req(reqwest::Method::PUT, &format!("/api/tasks/{id}/messages/{m1}"), Some(json!({"text": "QUEUED-FOLLOW-UP please"}))).await;
    assert_eq!((st, edited["text"].as_str()), (200, Some("QUEUED-FOLLOW-UP please")), "{edited}");
    let (st, _) = s.delete(&format!("/api/tasks/{id}/messages/{m2}")).await;
    assert_eq!(st, 204);
    let (_, q) = s.get(&format!("/api/tasks/{id}/messages")).await;
    assert_eq!(q.as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect::<Vec<_>>(), vec!["QUEUED-FOLLOW-UP please"]);
    let turns_before = fake.agent_turns().len();

    // The turn ends (allow → tool → text → done): the queued message is typed and
    // Claude Code sends it to the API as the next user turn.
    let (st, _) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "allow"})).await;
    assert_eq!(st, 200);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let turns = fake.agent_turns();
        if turns.len() > turns_before && turns.iter().any(|r| r.body.to_string().contains("QUEUED-FOLLOW-UP please")) {
            break;
        }
        assert!(Instant::now() < deadline, "the queued message never reached the agent; terminal:\n{}", term.text());
        let _ = tokio::time::timeout(Duration::from_millis(300), term.wait_for(1, "", |_| false)).await;
    }
    assert!(!fake.requests().iter().any(|r| r.body.to_string().contains("REMOVED-MESSAGE")), "a removed message is never typed");
    let (_, q) = s.get(&format!("/api/tasks/{id}/messages")).await;
    assert_eq!(q, json!([]));
    s.delete(&format!("/api/tasks/{id}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn review_comments_reach_a_busy_agent_as_one_message_and_show_addressed_after_its_commit() {
    let (fake, s, t, id, mut term) = claude_task("Review").await;
    let cid = t["container_id"].as_str().unwrap().to_string();
    // The agent's work so far: a committed file of 20 lines.
    let lines: String = (1..=20).map(|i| format!("line {i}\n")).collect();
    let git = "git -C /workspace -c user.name=Agent -c user.email=agent@example.com";
    let (ok, _) = exec(&cid, &["sh", "-c", &format!("printf '{lines}' > /workspace/notes.txt && {git} add notes.txt && {git} commit -qm notes")]);
    assert!(ok);
    wait_status(&s, &id, "needs_approval", 120, &mut term).await;
    // The work comes out of a sandbox whose agent waits (an agent state, not
    // `running`): the diff shows the new file.
    let (st, d) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!(st, 200, "{d}");
    assert_eq!(d["files"][0]["path"], "notes.txt", "{d}");

    // Comments on lines of the work; bad ones are refused and change nothing.
    let url = format!("/api/tasks/{id}/comments");
    let (st, near) = s.post(&url, json!({"path": "notes.txt", "line": 2, "body": "Say why\nline two matters"})).await;
    assert_eq!(st, 201, "{near}");
    assert_eq!((near["sent_at"].clone(), near["addressed"].clone()), (Value::Null, json!(false)));
    let (st, far) = s.post(&url, json!({"path": "notes.txt", "line": 15, "body": "FAR-COMMENT keep this"})).await;
    assert_eq!(st, 201, "{far}");
    let (st, gone) = s.post(&url, json!({"path": "notes.txt", "line": 20, "body": "DELETED-COMMENT"})).await;
    assert_eq!(st, 201, "{gone}");
    for (body, status, code) in [
        (json!({"path": "../notes.txt", "line": 1, "body": "x"}), 422, "INVALID_INPUT"),
        (json!({"path": "missing.txt", "line": 1, "body": "x"}), 422, "INVALID_INPUT"),
        (json!({"path": "notes.txt", "line": 0, "body": "x"}), 422, "INVALID_INPUT"),
        (json!({"path": "notes.txt", "line": 21, "body": "x"}), 422, "INVALID_INPUT"),
        (json!({"path": "notes.txt", "line": 3, "body": "  "}), 422, "INVALID_INPUT"),
        (json!({"path": "notes.txt", "line": 3, "body": "a\u{1b}[201~"}), 422, "INVALID_INPUT"),
        (json!({"path": "notes.txt", "line": 3, "body": "x", "extra": 1}), 400, "INVALID_JSON"),
    ] {
        let (st, e) = s.post(&url, body.clone()).await;
        assert_eq!((st, e["error"]["code"].as_str()), (status, Some(code)), "{body}: {e}");
    }
    let (st, e) = s.post("/api/tasks/nope/comments", json!({"path": "notes.txt", "line": 1, "body": "x"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("TASK_NOT_FOUND")), "{e}");
    let (st, e) = s.delete(&format!("{url}/nope")).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("COMMENT_NOT_FOUND")), "{e}");
    let (st, _) = s.delete(&format!("{url}/{}", gone["id"].as_str().unwrap())).await;
    assert_eq!(st, 204);
    let (_, list) = s.get(&url).await;
    assert_eq!(list.as_array().unwrap().iter().map(|c| c["line"].as_u64().unwrap()).collect::<Vec<_>>(), vec![2, 15], "{list}");

    // Send to agent while it is busy: one queued message listing path:line: comment.
    let (st, sent) = s.post(&format!("{url}/send"), json!({})).await;
    assert_eq!(st, 200, "{sent}");
    assert_eq!(sent["delivered"], false, "{sent}");
    let text = sent["message"]["text"].as_str().unwrap();
    assert_eq!(text, "Review comments on your changes:\n- notes.txt:2: Say why line two matters\n- notes.txt:15: FAR-COMMENT keep this");
    let (_, q) = s.get(&format!("/api/tasks/{id}/messages")).await;
    assert_eq!(q[0]["text"].as_str(), Some(text), "{q}");
    let (_, list) = s.get(&url).await;
    assert!(list.as_array().unwrap().iter().all(|c| c["sent_at"].is_string() && c["addressed"] == false), "{list}");
    let (st, e) = s.post(&format!("{url}/send"), json!({})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "nothing left to send: {e}");

    // The turn ends: the comments reach Claude Code and the API as one user turn.
    let (st, _) = s.post(&format!("/api/tasks/{id}/approval"), json!({"decision": "allow"})).await;
    assert_eq!(st, 200);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let turns = fake.agent_turns();
        if turns.iter().any(|r| {
            let b = r.body.to_string();
            b.contains("notes.txt:2: Say why line two matters") && b.contains("notes.txt:15: FAR-COMMENT keep this")
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "the review comments never reached the agent; terminal:\n{}", term.text());
        let _ = tokio::time::timeout(Duration::from_millis(300), term.wait_for(1, "", |_| false)).await;
    }
    assert!(!fake.requests().iter().any(|r| r.body.to_string().contains("DELETED-COMMENT")), "a deleted comment is never sent");

    // The agent's next commit changes line 2: that comment is addressed, the far one not.
    let (ok, _) = exec(&cid, &["sh", "-c", &format!("sed -i '2s/.*/line two, explained/' /workspace/notes.txt && {git} commit -qam 'explain line two'")]);
    assert!(ok);
    let (st, _) = s.get(&format!("/api/tasks/{id}/diff")).await;
    assert_eq!(st, 200);
    let (_, list) = s.get(&url).await;
    let addressed: Vec<(u64, bool)> = list.as_array().unwrap().iter().map(|c| (c["line"].as_u64().unwrap(), c["addressed"].as_bool().unwrap())).collect();
    assert_eq!(addressed, vec![(2, true), (15, false)], "{list}");
    s.delete(&format!("/api/tasks/{id}")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn open_in_names_the_sandbox_for_vscode_and_the_attach_command() {
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Editor", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap();
    let (st, o) = s.get(&format!("/api/tasks/{id}/open-in")).await;
    assert_eq!(st, 200, "{o}");
    let uri = o["vscode_uri"].as_str().unwrap();
    let hexed = uri.strip_prefix("vscode-remote://attached-container+").and_then(|u| u.strip_suffix("/workspace")).expect(uri);
    let config: Value = serde_json::from_slice(&hex::decode(hexed).unwrap()).unwrap();
    let name = config["containerName"].as_str().unwrap();
    // The name is the task's container's, as Docker knows it.
    assert_eq!(docker_inspect(t["container_id"].as_str().unwrap())["Name"].as_str(), Some(name));
    assert_eq!(o["attach_command"], format!("anycode attach {id}"));
    assert_eq!(o["folder"], t["worktree"]);
    assert!(o["folder_warning"].as_str().unwrap().contains(".git"));
    let (st, e) = s.get("/api/tasks/nope/open-in").await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("TASK_NOT_FOUND")));
    s.delete(&format!("/api/tasks/{id}")).await;
}

/// A dev server for the preview test: echoes the request line, cookies and host,
/// sets a host cookie and a domain cookie, and echoes WebSocket text frames.
const DEV_SERVER_JS: &str = r#"const http=require('http'),crypto=require('crypto');
const s=http.createServer((q,r)=>{r.setHeader('content-type','text/plain');r.setHeader('set-cookie',['app=1; Path=/','wide=2; Domain=localhost; Path=/']);r.end('path='+q.url+' cookie='+(q.headers.cookie||'')+' host='+q.headers.host);});
s.on('upgrade',(q,sock)=>{const k=crypto.createHash('sha1').update(q.headers['sec-websocket-key']+'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
sock.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: '+k+'\r\n\r\n');
sock.on('data',d=>{const len=d[1]&127;const mask=d.slice(2,6);const p=Buffer.alloc(len);for(let i=0;i<len;i++)p[i]=d[6+i]^mask[i%4];const out=Buffer.from('echo:'+p.toString());sock.write(Buffer.concat([Buffer.from([0x81,out.length]),out]));});});
s.listen(4321,'127.0.0.1');"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_dev_server_in_the_sandbox_answers_through_its_preview_with_auth_and_websockets() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = Server::start().await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Preview", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    let (st, e) = s.get(&format!("/api/tasks/{id}/ports")).await;
    assert_eq!(st, 200, "{e}");
    assert!(!e.as_array().unwrap().iter().any(|p| p["port"] == 4321));
    assert!(!e.as_array().unwrap().iter().any(|p| p["port"] == 3128 || p["port"] == 47777), "AnyCode's own ports are not listed: {e}");
    let started = std::process::Command::new("docker").args(["exec", "-d", &cid, "node", "-e", DEV_SERVER_JS]).status().unwrap();
    assert!(started.success());
    let mut ports = Value::Null;
    for _ in 0..50 {
        ports = s.get(&format!("/api/tasks/{id}/ports")).await.1;
        if ports.as_array().is_some_and(|a| a.iter().any(|p| p["port"] == 4321)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let port = ports.as_array().unwrap().iter().find(|p| p["port"] == 4321).unwrap_or_else(|| panic!("{ports}")).clone();
    assert_eq!(port["process"], "node", "{port}");
    assert_eq!(port["address"], "127.0.0.1");
    let server_port = s.base.rsplit(':').next().unwrap().to_string();
    let host = format!("4321-{id}.localhost:{server_port}");
    assert_eq!(port["preview_origin"], format!("http://{host}"));
    assert_eq!(port["url"], format!("/api/tasks/{id}/ports/4321/open"));

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let get = |path: &str, cookie: Option<&str>| {
        let mut r = http.get(format!("{}{path}", s.base)).header("Host", &host);
        if let Some(c) = cookie {
            r = r.header("Cookie", c);
        }
        r
    };
    // No credentials: the preview is refused, and so is the open route.
    assert_eq!(get("/", None).send().await.unwrap().status(), 401);
    assert_eq!(get("/", Some("anycode_preview=00")).send().await.unwrap().status(), 401);
    assert_eq!(http.get(format!("{}/api/tasks/{id}/ports/4321/open", s.base)).send().await.unwrap().status(), 401);
    assert_eq!(http.get(format!("{}/api/tasks/{id}/ports", s.base)).send().await.unwrap().status(), 401);

    // Open: a one-time code on the preview's origin, traded for its cookie.
    let r = http.get(format!("{}/api/tasks/{id}/ports/4321/open", s.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let login_path = location.strip_prefix(&format!("http://{host}")).unwrap_or_else(|| panic!("{location}")).to_string();
    let r = get(&login_path, None).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly"), "{set}");
    let cookie = set.split(';').next().unwrap().to_string();
    assert_eq!(get(&login_path, None).send().await.unwrap().status(), 401, "a code works once");

    // Paths and queries intact; the preview cookie stays with AnyCode; a
    // domain-wide cookie of the dev server is dropped.
    let r = get("/deep/path?x=1&y=a%20b", Some(&format!("{cookie}; theirs=7"))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> = r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert_eq!(cookies, vec!["app=1; Path=/".to_string()]);
    let body = r.text().await.unwrap();
    assert_eq!(body, format!("path=/deep/path?x=1&y=a%20b cookie=theirs=7 host={host}"));
    // The API is not behind a preview host: that path goes to the dev server.
    let body = get("/api/tasks", Some(&cookie)).send().await.unwrap().text().await.unwrap();
    assert!(body.starts_with("path=/api/tasks "), "{body}");
    // Another origin (another preview) is refused.
    let r = get("/", Some(&cookie)).header("Origin", format!("http://4322-{id}.localhost:{server_port}")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    // The cookie is this preview's only.
    let other = format!("4322-{id}.localhost:{server_port}");
    let r = http.get(format!("{}/", s.base)).header("Host", &other).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // A WebSocket (hot reload) through the preview.
    let mut req = format!("ws://127.0.0.1:{server_port}/hmr").into_client_request().unwrap();
    req.headers_mut().insert("host", host.parse().unwrap());
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.expect("websocket through the preview");
    assert_eq!(resp.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text("hello")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(got.into_text().unwrap().as_str(), "echo:hello");

    // A port nothing listens on: 502 with what to do.
    let r = http.get(format!("{}/api/tasks/{id}/ports/4999/open", s.base)).bearer_auth(TOKEN).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let h2 = format!("4999-{id}.localhost:{server_port}");
    let r = http.get(format!("{}{}", s.base, loc.strip_prefix(&format!("http://{h2}")).unwrap())).header("Host", &h2).send().await.unwrap();
    let c2 = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let r = http.get(format!("{}/", s.base)).header("Host", &h2).header("Cookie", &c2).send().await.unwrap();
    assert_eq!(r.status(), 502);
    s.delete(&format!("/api/tasks/{id}")).await;
}
