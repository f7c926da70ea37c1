//! Test support shared by AnyCode's integration tests: a real git repository, a
//! real engine on a temporary data dir, a real server on a loopback port, and
//! clients for its HTTP API and terminal WebSockets. Nothing here is a stub.
//!
//! Test code: a failure here is a test failure, so it panics (unwrap/expect) with
//! what went wrong instead of returning errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod anthropic;
pub mod dockerd;
pub mod github;
pub mod secret_service;
pub use dockerd::SecondDockerd;
pub use secret_service::SecretService;

use anycode_engine::{Config, Engine};
use anycode_server::{AccessToken, ServerOptions};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The access token of every [`Server`] the helpers start (`Authorization: Bearer`).
pub const TOKEN: &str = "test-token-0123456789abcdef0123456789abcdef";

/// Runs git in `dir`, panicking with its stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    // Root-run tests hand worktrees to the sandbox user; git would call them dubious.
    let out = Command::new("git").args(["-c", "safe.directory=*"]).args(args).current_dir(dir).output().expect("git runs");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A repository with two commits on `main` and a second branch `dev`.
pub fn make_repo(root: &Path) -> PathBuf {
    let repo = root.join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "user.name", "Test User"]);
    git(&repo, &["config", "user.email", "test@example.com"]);
    std::fs::write(repo.join("README.md"), "# demo\n").unwrap();
    std::fs::write(repo.join("keep.txt"), "one\ntwo\nthree\n").unwrap();
    std::fs::write(repo.join("old.txt"), "a file that will be renamed\nwith enough lines\nto be detected\nas a rename\n").unwrap();
    std::fs::write(repo.join("gone.txt"), "to be deleted\n").unwrap();
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "first"]);
    git(&repo, &["branch", "dev"]);
    repo
}

/// A real engine and server on a temporary data dir, listening on a loopback port.
/// Dropping it removes the containers of its engine's instance.
pub struct Server {
    dir: Option<tempfile::TempDir>,
    data: PathBuf,
    cleanup: bool,
    /// The test repository (see [`make_repo`]).
    pub repo: PathBuf,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub base: String,
    /// The server's engine, for driving it (or looking at it) directly.
    pub engine: Engine,
    /// LAN mode of this server.
    pub lan: anycode_server::LanControl,
    /// An HTTP client without the token (for requests the helpers do not make).
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

/// A configuration on `data_dir` with small limits suitable for tests.
pub fn config(data_dir: &Path) -> Config {
    let mut c = Config::with_data_dir(data_dir);
    c.limits.memory_bytes = 512 * 1024 * 1024;
    c.limits.nano_cpus = 1_000_000_000;
    c.limits.pids = 256;
    c.scrollback_bytes = 256 * 1024;
    // Credentials: none of the machine's. A keyring service of this test's own (in
    // whatever Secret Service the process sees), no Claude Code login, no
    // credentials from the environment. Tests that want one put it there.
    c.keyring_service = Some(format!("anycode-test-{}", anycode_core::new_id()));
    c.claude_config_dir = Some(data_dir.with_file_name("claude-config"));
    c.credentials_from_env = false;
    c
}

impl Server {
    /// A fresh data dir and repository, and a server on them.
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let repo = make_repo(dir.path());
        let cfg = config(&dir.path().join("data"));
        Server::start_with(dir, repo, cfg).await
    }

    /// A server on `cfg`, with `dir` (kept alive with it) and `repo`, token [`TOKEN`].
    pub async fn start_with(dir: tempfile::TempDir, repo: PathBuf, cfg: Config) -> Server {
        Server::start_with_options(dir, repo, cfg, ServerOptions::new(AccessToken::new(TOKEN))).await
    }

    /// A server with these options (LAN mode, pairing limits); `opts.token` should
    /// be [`TOKEN`] for the helpers to work.
    pub async fn start_with_options(dir: tempfile::TempDir, repo: PathBuf, cfg: Config, opts: ServerOptions) -> Server {
        let engine = Engine::open(cfg).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = anycode_server::Server::new(engine.clone(), listener, opts).unwrap();
        let lan = server.lan();
        let handle = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        let data = dir.path().join("data");
        Server { dir: Some(dir), data, cleanup: true, repo, base, engine, lan, http: reqwest::Client::new(), stop: Some(tx), handle: Some(handle) }
    }

    /// Stops the server (as a restart would), keeping the data dir and repository.
    pub async fn shutdown(mut self) -> (tempfile::TempDir, PathBuf) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), h).await;
        }
        self.cleanup = false;
        (self.dir.take().expect("dir"), self.repo.clone())
    }

    /// The data dir (`<dir>/data`).
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    /// Sends a request with the test token; returns status and JSON (or Null).
    pub async fn req(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        Api::new(&self.base).req(method, path, body).await
    }

    /// `GET path` with the test token: status and JSON body (`Null` when not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.req(reqwest::Method::GET, path, None).await
    }

    /// `POST path` with a JSON body and the test token: status and JSON body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.req(reqwest::Method::POST, path, Some(body)).await
    }

    /// `DELETE path` with the test token: status and JSON body.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.req(reqwest::Method::DELETE, path, None).await
    }

    /// Adds the test repository as a project and returns its id.
    pub async fn add_project(&self) -> String {
        let (s, p) = self.post("/api/projects", json!({"path": self.repo})).await;
        assert_eq!(s, 201, "{p}");
        p["id"].as_str().unwrap().to_string()
    }

    /// Creates a task and asserts it was created.
    pub async fn create_task(&self, project: &str, body: Value) -> Value {
        let (s, t) = self.post(&format!("/api/projects/{project}/tasks"), body).await;
        assert_eq!(s, 201, "{t}");
        t
    }

    /// A WebSocket viewer of terminal `terminal` (its id), with the test token.
    pub async fn ws(&self, terminal: &str) -> Term {
        Term::connect(&self.base, terminal, TOKEN).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Remove the containers of this test's instance, whatever the test did.
        if self.cleanup {
            remove_instance_containers(self.engine.instance());
        }
    }
}

/// A WebSocket viewer of a terminal that accumulates output.
pub struct Term {
    /// The socket.
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every output byte received so far (binary frames), in order.
    pub output: Vec<u8>,
    /// The `{"type":"exit",…}` frame, once received.
    pub exit: Option<Value>,
    /// Every other text (control) frame received, in order.
    pub controls: Vec<Value>,
}

impl Term {
    /// Opens `/ws/terminals/{terminal}` on `base` (`http://…`) with `token` as a
    /// Bearer token and `TCP_NODELAY`; panics when the upgrade fails.
    pub async fn connect(base: &str, terminal: &str, token: &str) -> Term {
        let url = format!("{}/ws/terminals/{terminal}", base.replacen("http", "ws", 1));
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert("Authorization", format!("Bearer {token}").parse().unwrap());
        // TCP_NODELAY like browsers: otherwise Nagle's algorithm holds a small frame
        // that follows another (key after ack) for a delayed ACK, about 40 ms.
        let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await.expect("websocket connects");
        Term { ws, output: Vec::new(), exit: None, controls: Vec::new() }
    }

    /// Types `text` (one binary frame of its UTF-8 bytes).
    pub async fn send(&mut self, text: &str) {
        self.ws.send(Message::Binary(text.as_bytes().to_vec().into())).await.unwrap();
    }

    /// Asks for a window of `cols` × `rows` character cells (a `resize` text frame).
    pub async fn resize(&mut self, cols: u16, rows: u16) {
        self.ws.send(Message::Text(json!({"type":"resize","cols":cols,"rows":rows}).to_string().into())).await.unwrap();
    }

    /// The output so far as text, escape sequences and carriage returns removed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&strip_ansi_escapes::strip(&self.output)).replace('\r', "")
    }

    /// Reads one frame within `left`: output is appended, control frames are kept (an
    /// exit frame also in `exit`). Returns false when the socket has closed.
    async fn read_frame(&mut self, left: Duration, what: &str) -> bool {
        match tokio::time::timeout(left, self.ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) => self.output.extend_from_slice(&b),
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "exit" {
                    self.exit = Some(v.clone());
                }
                self.controls.push(v);
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(Some(Err(e))) => panic!("websocket error while waiting for {what}: {e}"),
            Ok(None) => return false,
        }
        true
    }

    /// Reads until `pred(output text)` holds; panics with the output after `secs`.
    pub async fn wait_for(&mut self, secs: u64, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !pred(&self.text()) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}; output so far:\n{}\nraw: {:?}", self.text(), String::from_utf8_lossy(&self.output));
            if !self.read_frame(left, what).await {
                assert!(pred(&self.text()), "socket closed while waiting for {what}; output:\n{}", self.text());
            }
        }
    }

    /// Reads until the server reports the process's exit; returns that frame.
    pub async fn wait_exit(&mut self, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.exit.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for the exit frame; output:\n{}", self.text());
            if !self.read_frame(left, "the exit frame").await {
                panic!("socket closed without an exit frame; output:\n{}", self.text());
            }
        }
        self.exit.clone().unwrap()
    }

    /// Types a command and waits for a marker echoed only by its completion.
    pub async fn run(&mut self, cmd: &str, marker: &str) {
        self.send(&format!("{cmd}; echo {marker}-$((1+1))\r")).await;
        let done = format!("{marker}-2");
        self.wait_for(30, marker, |t| t.contains(&done)).await;
    }
}

/// `docker inspect` of a container as JSON.
pub fn docker_inspect(id: &str) -> Value {
    let out = Command::new("docker").args(["inspect", id]).output().unwrap();
    if !out.status.success() {
        return Value::Null;
    }
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].clone()
}

/// Waits until `f` is true, polling every 100 ms, for at most `secs`.
pub async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A real `anycode serve` process on a loopback port.
pub struct ServeProcess {
    /// The child process.
    pub child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The data dir it runs on.
    pub data_dir: PathBuf,
}

impl ServeProcess {
    /// Starts `bin serve --no-open --port 0` on `data_dir` with the test token and
    /// waits for the URL it prints. Extra arguments follow `serve`.
    pub fn start(bin: &Path, data_dir: &Path, extra: &[&str]) -> ServeProcess {
        Self::start_with_env(bin, data_dir, extra, &[])
    }

    /// [`ServeProcess::start`] with extra environment variables (set after the ones
    /// it removes, so `ANTHROPIC_API_KEY` can be given back on purpose).
    pub fn start_with_env(bin: &Path, data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        use std::io::BufRead;
        let mut child = Command::new(bin)
            .args(["serve", "--no-open", "--port", "0"])
            .args(extra)
            .env("ANYCODE_DATA_DIR", data_dir)
            .env("ANYCODE_TOKEN", TOKEN)
            // None of the machine's credentials (see `config`).
            .env("ANYCODE_KEYRING_SERVICE", format!("anycode-test-{}", anycode_core::new_id()))
            .env("CLAUDE_CONFIG_DIR", data_dir.with_file_name("claude-config"))
            .env_remove("CLAUDE_CODE_OAUTH_TOKEN")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .env_remove("GEMINI_API_KEY")
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("anycode serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let line = lines.next().expect("a line").expect("readable");
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no URL in {line:?}")).to_string();
        assert!(url.contains("/login?code=") && !url.contains(TOKEN), "a one-time login link, never the token: {url}");
        let base = url.split("/login?").next().unwrap().to_string();
        ServeProcess { child, base, data_dir: data_dir.to_path_buf() }
    }

    /// A new one-time login link (`POST /api/login-code` with the test token), for a
    /// browser.
    pub async fn login_url(&self) -> String {
        let r = reqwest::Client::new().post(format!("{}/api/login-code", self.base)).bearer_auth(TOKEN).send().await.expect("login-code answers");
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.expect("login-code JSON");
        v["url"].as_str().expect("a url").to_string()
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal API client for a server at `base` with the test token.
pub struct Api {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    /// A client of `base`.
    pub fn new(base: &str) -> Api {
        Api { base: base.to_string(), http: reqwest::Client::new() }
    }

    /// Sends a request with the test token; returns status and JSON (or Null).
    pub async fn req(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, v)
    }
}

/// Removes every container of the AnyCode instance owning `data_dir`.
pub fn remove_instance_containers(instance: &str) {
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("docker ps -aq --filter label=dev.anycode.instance={instance} | xargs -r docker rm -f >/dev/null 2>&1"))
        .status();
}

/// Removes the containers of one AnyCode instance (by its data dir's instance label)
/// when dropped, whatever the test did.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        remove_instance_containers(&self.0);
    }
}

/// A repository and a data dir in a temporary folder, for tests that run the
/// `anycode` binary; the data dir's containers are removed when it is dropped.
pub struct Fixture {
    _cleanup: Cleanup,
    /// The repository (see [`make_repo`]).
    pub repo: PathBuf,
    /// The data dir (made, empty).
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

/// A new [`Fixture`].
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    Fixture { _cleanup: Cleanup(anycode_engine::instance_id(&data)), repo, data, _dir: dir }
}
