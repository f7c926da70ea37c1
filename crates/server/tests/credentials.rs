#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Credentials (issue 5) through the real server, the real Docker engine and the real
//! sandbox image: the Claude login found on the host reaches only the agent process's
//! environment and leaks nowhere else; a restart hands over the refreshed login;
//! missing and expiring credentials are visible; AnyCode's keyring entries are saved
//! and removed through the API against a real Secret Service.

use anycode_testkit::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ACCESS: &str = "sk-ant-oat01-LEAKTEST-access-7f3a9c2e51d84b6b9e0d1c2b3a4f5e6d";
const REFRESH: &str = "sk-ant-ort01-LEAKTEST-refresh-0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const ACCESS2: &str = "sk-ant-oat01-LEAKTEST-refreshed-99887766554433221100aabbccdd";
const REFRESH2: &str = "sk-ant-ort01-LEAKTEST-refresh2-ffeeddccbbaa00998877665544332211";

/// Writes Claude Code's credentials file (mode 0600) into `dir` (a test
/// CLAUDE_CONFIG_DIR), expiring `expires_in_ms` from now.
fn write_login(dir: &Path, access: &str, refresh: &str, expires_in_ms: i64) {
    std::fs::create_dir_all(dir).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let text = json!({"claudeAiOauth": {
        "accessToken": access, "refreshToken": refresh, "expiresAt": now + expires_in_ms,
        "scopes": ["user:inference", "user:profile"], "subscriptionType": "max"}});
    let path = dir.join(".credentials.json");
    std::fs::write(&path, text.to_string()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// A server whose Claude Code config dir is `<tmp>/claude-config`, returned too.
async fn server_with_claude_dir() -> (Server, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let cfg = config(&dir.path().join("data"));
    let claude_dir = cfg.claude_config_dir.clone().unwrap();
    (Server::start_with(dir, repo, cfg).await, claude_dir)
}

/// Records every API response body the test sees.
#[derive(Default, Clone)]
struct Responses(Arc<Mutex<Vec<String>>>);

impl Responses {
    async fn call(&self, s: &Server, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let (st, v) = s.req(method, path, body).await;
        self.0.lock().unwrap().push(v.to_string());
        (st, v)
    }
    fn all(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// A tracing writer into a shared buffer: the server's log, at debug level and
/// trace for AnyCode's own crates.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> LogBuf {
    let buf = LogBuf::default();
    let b2 = buf.clone();
    let filter = tracing_subscriber::EnvFilter::new("debug,anycode=trace,anycode_engine=trace,anycode_server=trace,anycode_credentials=trace,anycode_sandbox=trace,anycode_terminal=trace");
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(move || b2.clone()).init();
    buf
}

/// Whether `needle` occurs in the bytes `cmd` prints on stdout, streamed (a
/// container export is gigabytes).
fn stream_contains(cmd: &mut Command, needles: &[&str]) -> Vec<bool> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut out = child.stdout.take().unwrap();
    let finders: Vec<memchr::memmem::Finder> = needles.iter().map(|n| memchr::memmem::Finder::new(n.as_bytes())).collect();
    let keep = needles.iter().map(|n| n.len()).max().unwrap_or(1);
    let mut found = vec![false; needles.len()];
    let mut buf = vec![0u8; 4 << 20];
    let mut carry: Vec<u8> = Vec::new();
    let mut total = 0usize;
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        carry.extend_from_slice(&buf[..n]);
        for (i, f) in finders.iter().enumerate() {
            found[i] |= f.find(&carry).is_some();
        }
        if carry.len() > keep {
            carry.drain(..carry.len() - keep);
        }
    }
    assert!(child.wait().unwrap().success(), "{cmd:?} failed");
    assert!(total > 0, "{cmd:?} printed nothing");
    found
}

fn files_containing(root: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        } else if meta.is_file() {
            if let Ok(bytes) = std::fs::read(&p) {
                if memchr::memmem::find(&bytes, needle.as_bytes()).is_some() {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

/// `(pid, cmdline)` of every process in the container.
fn container_processes(cid: &str) -> Vec<(String, String)> {
    let script = r#"for p in /proc/[0-9]*; do printf '%s\t' "${p#/proc/}"; tr '\0' ' ' < "$p/cmdline" 2>/dev/null; echo; done"#;
    let out = Command::new("docker").args(["exec", cid, "bash", "-c", script]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(a, b)| (a.to_string(), b.trim().to_string())))
        .collect()
}

fn environ(cid: &str, pid: &str) -> String {
    let out = Command::new("docker").args(["exec", cid, "cat", &format!("/proc/{pid}/environ")]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Claude Code process of the container (the agent: start-agent exec'd it).
async fn agent_pid(cid: &str) -> String {
    let mut found = None;
    for _ in 0..100 {
        found = container_processes(cid).into_iter().find(|(_, cmd)| cmd.starts_with("claude")).map(|(p, _)| p);
        if found.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    found.expect("claude runs in the sandbox")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_claude_login_reaches_only_the_agent_process_environment() {
    let logs = capture_logs();
    // Claude Code gets no route out of the sandbox (an unusable proxy): the fake token
    // must not travel anywhere, and the test sends traffic only to loopback.
    std::env::set_var("HTTPS_PROXY", "http://127.0.0.1:9");
    std::env::set_var("HTTP_PROXY", "http://127.0.0.1:9");
    std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
    let (s, claude_dir) = server_with_claude_dir().await;
    write_login(&claude_dir, ACCESS, REFRESH, 8 * 3_600_000);
    let r = Responses::default();
    let (_, p) = r.call(&s, reqwest::Method::POST, "/api/projects", Some(json!({"path": s.repo}))).await;
    let project = p["id"].as_str().unwrap().to_string();

    // The status says where the login is, its subscription and expiry, never the token.
    let (st, status) = r.call(&s, reqwest::Method::GET, "/api/credentials/status", None).await;
    assert_eq!(st, 200);
    let claude = status["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "claude").unwrap().clone();
    assert_eq!(claude["state"], "ok", "{claude}");
    assert_eq!(claude["source"], "claude_file");
    assert_eq!(claude["subscription_type"], "max");
    assert!(claude["expires_at"].as_i64().unwrap() > 0);
    assert_eq!(claude["display"], Value::Null, "no display form for Claude Code's own login");

    // A claude task defaults to the subscription.
    let (st, t) = r.call(&s, reqwest::Method::POST, &format!("/api/projects/{project}/tasks"), Some(json!({"title": "Leak test", "agent": "claude"}))).await;
    assert_eq!(st, 201, "{t}");
    assert_eq!(t["credential"], "subscription");
    let cid = t["container_id"].as_str().unwrap().to_string();
    let task_id = t["id"].as_str().unwrap().to_string();
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.resize(120, 40).await;
    term.wait_for(60, "the credential note and Claude Code's banner", |t| {
        let flat: String = t.split_whitespace().collect::<String>().to_lowercase();
        t.contains("AnyCode: Claude subscription login (max)") && flat.contains("claudecode")
    })
    .await;

    // The token is in the agent process's environment, as CLAUDE_CODE_OAUTH_TOKEN.
    let pid = agent_pid(&cid).await;
    let env = environ(&cid, &pid);
    assert!(env.contains(&format!("CLAUDE_CODE_OAUTH_TOKEN={ACCESS}")), "the agent has the token in its environment");
    assert!(!env.contains(REFRESH), "never the refresh token");
    assert!(!env.contains("ANYCODE_CREDENTIAL_NOTE"), "start-agent's own entries are not exported");
    assert!(!environ(&cid, "1").contains(ACCESS), "not in the container's init process");
    let (_, task) = r.call(&s, reqwest::Method::GET, &format!("/api/tasks/{task_id}"), None).await;
    assert_eq!(task["credential_source"], claude_dir.join(".credentials.json").display().to_string());
    assert_eq!(task["credential_warning"], Value::Null, "{task}");

    // A restart hands over the host's current (refreshed) login.
    write_login(&claude_dir, ACCESS2, REFRESH2, 8 * 3_600_000);
    let (st, _) = r.call(&s, reqwest::Method::POST, &format!("/api/tasks/{task_id}/stop"), Some(json!({}))).await;
    assert_eq!(st, 200);
    let (st, _) = r.call(&s, reqwest::Method::POST, &format!("/api/tasks/{task_id}/start"), Some(json!({}))).await;
    assert_eq!(st, 200);
    let mut pid2 = String::new();
    for _ in 0..100 {
        pid2 = agent_pid(&cid).await;
        if environ(&cid, &pid2).contains(ACCESS2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let env2 = environ(&cid, &pid2);
    assert!(env2.contains(&format!("CLAUDE_CODE_OAUTH_TOKEN={ACCESS2}")), "the restarted agent has the refreshed token");
    assert!(!env2.contains(ACCESS), "and not the old one");
    term.wait_for(60, "the restarted agent's banner", |t| t.matches("AnyCode: Claude subscription login").count() >= 2).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Everything else the test can see, for every token and refresh token.
    let mut scrollback = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    scrollback.wait_for(10, "the scrollback", |t| t.contains("AnyCode: Claude subscription")).await;
    let (_, _) = r.call(&s, reqwest::Method::GET, "/api/tasks", None).await;
    let (_, _) = r.call(&s, reqwest::Method::GET, "/api/credentials/status", None).await;
    let inspect = Command::new("docker").args(["inspect", &cid]).output().unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
    assert!(inspect.contains("start-agent"), "inspected the right container");
    let docker_logs = Command::new("docker").args(["logs", &cid]).output().unwrap();
    let docker_logs = String::from_utf8_lossy(&docker_logs.stdout).into_owned() + &String::from_utf8_lossy(&docker_logs.stderr);
    assert!(docker_logs.contains("AnyCode: Claude subscription"), "read Docker's log of the TTY");
    let exported = stream_contains(Command::new("docker").args(["export", &cid]), &[ACCESS, REFRESH, ACCESS2, REFRESH2, "hasCompletedOnboarding"]);
    assert!(exported[4], "the export holds the container's files (a file known to be there was found)");
    let worktree = task["worktree"].as_str().unwrap().to_string();
    let data_dir = s.data_dir();
    assert!(data_dir.join("anycode.db").is_file());
    // The agent terminal is recorded (asciicast) under the data dir, which is searched.
    let casts = files_containing(&data_dir.join("recordings"), "AnyCode: Claude subscription");
    assert!(!casts.is_empty(), "the recording of the agent terminal was searched too");
    let log_text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(log_text.contains("credentials handed over"), "the log was captured at debug level");
    let api_text = r.all();
    let terminal_text = String::from_utf8_lossy(&term.output).into_owned() + &String::from_utf8_lossy(&scrollback.output);

    for (i, secret) in [ACCESS, REFRESH, ACCESS2, REFRESH2].into_iter().enumerate() {
        let short = &secret[..24];
        assert!(!inspect.contains(secret), "{short}… in docker inspect");
        assert!(!exported[i], "{short}… in the container's filesystem (docker export)");
        assert!(files_containing(Path::new(&worktree), secret).is_empty(), "{short}… in the worktree");
        assert!(files_containing(&data_dir, secret).is_empty(), "{short}… in the data dir (SQLite, recordings): {:?}", files_containing(&data_dir, secret));
        assert!(!log_text.contains(secret), "{short}… in the server log");
        assert!(!api_text.contains(secret), "{short}… in an API response");
        assert!(!terminal_text.contains(secret), "{short}… in the terminal output or scrollback");
        assert!(!docker_logs.contains(secret), "{short}… in Docker's log of the TTY");
    }
    // The refresh tokens are nowhere in the sandbox, not even in the agent's environment.
    for (pid, _) in container_processes(&cid) {
        let e = environ(&cid, &pid);
        assert!(!e.contains(REFRESH) && !e.contains(REFRESH2), "a refresh token in process {pid}'s environment");
    }
    std::env::remove_var("HTTPS_PROXY");
    std::env::remove_var("HTTP_PROXY");
    std::env::remove_var("NO_PROXY");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_expired_and_expiring_credentials_are_visible() {
    let (s, claude_dir) = server_with_claude_dir().await;
    let p = s.add_project().await;

    // Nothing on the host: a shell task that asked for the subscription says so, in
    // its first terminal line and in the task.
    let t = s.create_task(&p, json!({"title": "none", "agent": "shell", "credential": "subscription"})).await;
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.wait_for(30, "the missing-credential line", |t| t.contains("no Claude subscription login found on this machine")).await;
    let id = t["id"].as_str().unwrap();
    let (_, task) = s.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(task["credential_warning"], "none found");
    // The shell got nothing and still works.
    term.run("echo \"token:[${CLAUDE_CODE_OAUTH_TOKEN:-unset}]\"", "m1").await;
    assert!(term.text().contains("token:[unset]"), "{}", term.text());

    // Expiring within the hour: handed over, with a warning.
    write_login(&claude_dir, "sk-ant-oat01-EXPIRING-0123456789abcdef", "sk-ant-ort01-x", 40 * 60_000);
    let t = s.create_task(&p, json!({"title": "soon", "agent": "shell", "credential": "subscription"})).await;
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.wait_for(30, "the expiry warning", |t| t.contains("expires in")).await;
    term.run("echo \"len:${#CLAUDE_CODE_OAUTH_TOKEN}\"", "m2").await;
    assert!(term.text().contains(&format!("len:{}", "sk-ant-oat01-EXPIRING-0123456789abcdef".len())), "{}", term.text());
    let (_, task) = s.get(&format!("/api/tasks/{}", t["id"].as_str().unwrap())).await;
    let w = task["credential_warning"].as_str().unwrap().to_string();
    assert!(w.starts_with("expires in 3") || w.starts_with("expires in 4"), "{w}");
    assert!(task["credential_expires_at"].as_i64().is_some());

    // Expired: not handed over, and said so.
    write_login(&claude_dir, "sk-ant-oat01-EXPIRED-0123456789abcdef", "sk-ant-ort01-x", -2 * 3_600_000);
    let t = s.create_task(&p, json!({"title": "old", "agent": "shell", "credential": "subscription"})).await;
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.wait_for(30, "the expired line", |t| t.contains("has expired")).await;
    term.run("echo \"token:[${CLAUDE_CODE_OAUTH_TOKEN:-unset}]\"", "m3").await;
    assert!(term.text().contains("token:[unset]"));
    let (_, task) = s.get(&format!("/api/tasks/{}", t["id"].as_str().unwrap())).await;
    assert_eq!(task["credential_warning"], "expired");

    // A malformed file: a status with a hint, and the task says none was found.
    std::fs::write(claude_dir.join(".credentials.json"), "{\"claudeAiOauth\": {\"accessToken\": \"sk-ant-oat01-TRUNCATED").unwrap();
    let (_, st) = s.get("/api/credentials/status").await;
    let claude = st["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "claude").unwrap().clone();
    assert_eq!(claude["state"], "missing");
    assert!(claude["hint"].as_str().unwrap().contains("truncated"), "{claude}");
    assert!(!st.to_string().contains("TRUNCATED"));

    // Bad input changes nothing.
    let (code, e) = s.post(&format!("/api/projects/{p}/tasks"), json!({"title": "x", "agent": "claude", "credential": "password"})).await;
    assert_eq!(code, 422, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("none, subscription, api_key"));
    let (_, tasks) = s.get("/api/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn keyring_entries_are_saved_and_removed_through_the_api() {
    let _ss = SecretService::start();
    let s = Server::start().await;
    let key = "sk-ant-api03-APIKEYTEST-0123456789abcdefWXYZ";

    // Bad input: a clear error, nothing echoed, nothing saved.
    let (code, e) = s.req(reqwest::Method::PUT, "/api/credentials/anthropic-api-key", Some(json!(key))).await;
    assert_eq!(code, 400);
    assert!(!e.to_string().contains("APIKEYTEST"), "the error does not quote the value: {e}");
    let (code, e) = s.req(reqwest::Method::PUT, "/api/credentials/anthropic-api-key", Some(json!({"value": "  "}))).await;
    assert_eq!((code, e["error"]["code"].as_str()), (422, Some("INVALID_CREDENTIAL")));
    let (code, e) = s.req(reqwest::Method::PUT, "/api/credentials/password", Some(json!({"value": key}))).await;
    assert_eq!((code, e["error"]["code"].as_str()), (422, Some("UNKNOWN_CREDENTIAL")));
    let (code, e) = s.req(reqwest::Method::PUT, "/api/credentials/claude-token", Some(json!({"value": key}))).await;
    assert_eq!(code, 422, "an API key is not a Claude token: {e}");
    let (_, st) = s.get("/api/credentials/status").await;
    assert_eq!(st["keyring_problem"], Value::Null, "{st}");
    assert!(st["providers"].as_array().unwrap().iter().all(|p| p["state"] == "missing"), "{st}");

    // Save: the response and the status show only the display form.
    let (code, saved) = s.req(reqwest::Method::PUT, "/api/credentials/anthropic-api-key", Some(json!({"value": key}))).await;
    assert_eq!(code, 200, "{saved}");
    assert_eq!(saved["display"], "sk-…WXYZ");
    let (_, st) = s.get("/api/credentials/status").await;
    let a = st["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "anthropic").unwrap().clone();
    assert_eq!((a["state"].as_str(), a["source"].as_str(), a["display"].as_str()), (Some("ok"), Some("keyring"), Some("sk-…WXYZ")));
    assert!(!st.to_string().contains("APIKEYTEST"));

    // A claude task with nothing but the key defaults to it; a shell that asks for it
    // gets it in its environment.
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "key", "agent": "shell", "credential": "api_key"})).await;
    let mut term = s.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.wait_for(30, "the note", |t| t.contains("AnyCode: Anthropic API key")).await;
    assert!(term.text().contains("sk-…WXYZ"), "the note names the key by its display form: {}", term.text());
    // Compared by hash: typing the key would echo it.
    term.run("printf %s \"$ANTHROPIC_API_KEY\" | sha256sum", "m").await;
    use sha2::Digest;
    let want = hex::encode(sha2::Sha256::digest(key.as_bytes()));
    assert!(term.text().contains(&want), "{}", term.text());

    // Remove.
    let (code, r) = s.delete("/api/credentials/anthropic-api-key").await;
    assert_eq!((code, r["removed"].as_bool()), (200, Some(true)));
    let (_, r) = s.delete("/api/credentials/anthropic-api-key").await;
    assert_eq!(r["removed"], false);
    let (_, st) = s.get("/api/credentials/status").await;
    assert!(st["providers"].as_array().unwrap().iter().all(|p| p["state"] == "missing"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handover_left_pending_by_a_server_restart_is_answered_after_it() {
    const TOKEN: &str = "sk-ant-oat01-PENDING-HANDOVER-0123456789abcdef";
    let (s, claude_dir) = server_with_claude_dir().await;
    write_login(&claude_dir, TOKEN, "sk-ant-ort01-x", 8 * 3_600_000);
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "pending", "agent": "shell", "credential": "subscription"})).await;
    let cid = t["container_id"].as_str().unwrap().to_string();
    let id = t["id"].as_str().unwrap().to_string();
    let shell_pid = |cid: &str| container_processes(cid).into_iter().find(|(_, c)| c.starts_with("bash -l")).map(|(p, _)| p);
    let mut has_token = false;
    for _ in 0..100 {
        if shell_pid(&cid).is_some_and(|p| environ(&cid, &p).contains(TOKEN)) {
            has_token = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(has_token, "the first start handed the token over");

    // Stopped, then started behind AnyCode's back: start-agent asks, nobody answers.
    let (st, _) = s.post(&format!("/api/tasks/{id}/stop"), json!({})).await;
    assert_eq!(st, 200);
    let (dir, repo) = s.shutdown().await;
    assert!(Command::new("docker").args(["start", &cid]).status().unwrap().success());
    let mut asking = false;
    for _ in 0..100 {
        let logs = Command::new("docker").args(["logs", &cid]).output().unwrap();
        // The marker carries this start's nonce: ESC ] 777 ; anycode-env ; <hex> BEL.
        let tail = String::from_utf8_lossy(&logs.stdout[logs.stdout.len().saturating_sub(120)..]).into_owned();
        let waiting = tail.rsplit_once("\x1b]777;anycode-env;").is_some_and(|(_, rest)| {
            rest.strip_suffix("\x07\r\n").is_some_and(|n| n.len() >= 16 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        });
        if waiting {
            asking = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = Command::new("docker").args(["logs", &cid]).output().unwrap();
    assert!(asking, "start-agent waits for its line: {:?}", String::from_utf8_lossy(&logs.stdout[logs.stdout.len().saturating_sub(300)..]));
    assert!(shell_pid(&cid).is_none(), "no shell yet");

    // The next server answers it when it reconciles, with the host's credential.
    let data = dir.path().join("data");
    let s2 = Server::start_with(dir, repo, config(&data)).await;
    let mut answered = false;
    for _ in 0..100 {
        if shell_pid(&cid).is_some_and(|p| environ(&cid, &p).contains(&format!("CLAUDE_CODE_OAUTH_TOKEN={TOKEN}"))) {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answered, "the shell started with the token after the restart");
    let (_, task) = s2.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(task["status"], "running");
    assert_eq!(task["credential_warning"], Value::Null);

    // A second restart leaves the running shell alone (nothing is typed into it).
    let (dir, repo) = s2.shutdown().await;
    let data = dir.path().join("data");
    let s3 = Server::start_with(dir, repo, config(&data)).await;
    let mut term = s3.ws(t["terminals"][0]["id"].as_str().unwrap()).await;
    term.run("echo still-here", "m").await;
    assert!(!term.text().contains("anycode-env:"), "{}", term.text());
}
