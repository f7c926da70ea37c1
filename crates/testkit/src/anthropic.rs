//! A stand-in for Anthropic's Messages API, for tests that drive the real Claude
//! Code CLI in a sandbox (`ANTHROPIC_BASE_URL=http://host.docker.internal:<port>`).
//!
//! It listens on the Docker bridge's gateway address (where `host.docker.internal`
//! points on Linux) and on loopback, on the same port, and answers
//! `POST /v1/messages` from a script, streaming with Anthropic's documented
//! server-sent events (`message_start`, `content_block_start`,
//! `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`)
//! when the request asks for a stream, else one JSON message:
//!
//! - the agent's turn (a request offering the `Bash` tool) without a `tool_result`
//!   yet: one `tool_use` of `Bash` with the scripted command;
//! - the same conversation carrying the `tool_result`: a text answer;
//! - any other request (titles, quota checks): a short text;
//! - in [`Script::Fail`] mode, every `/v1/messages` request gets the scripted API
//!   error (with `x-should-retry: false`).
//!
//! `count_tokens` is answered; every other request is recorded and gets 404. Every
//! request is recorded (path, headers, JSON body) for the test to check.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// What `/v1/messages` answers.
#[derive(Debug, Clone)]
pub enum Script {
    /// A `Bash` tool_use with this input, then (after the tool_result) this text.
    ToolThenText {
        /// The tool's input, e.g. `{"command": "echo hi > proof.txt", "description": "…"}`.
        input: Value,
        /// The final answer.
        text: String,
    },
    /// An API error: HTTP status, Anthropic's error type (`rate_limit_error`,
    /// `authentication_error`, …) and message.
    Fail {
        /// HTTP status, e.g. 429.
        status: u16,
        /// The error's `type`.
        kind: String,
        /// The error's `message`.
        message: String,
    },
}

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `POST`, …
    pub method: String,
    /// The path, e.g. `/v1/messages`.
    pub path: String,
    /// Request headers (lowercase names).
    pub headers: HeaderMap,
    /// The JSON body, `Null` when none or not JSON.
    pub body: Value,
}

impl Recorded {
    /// The `x-api-key` header, if any.
    pub fn api_key(&self) -> Option<&str> {
        self.headers.get("x-api-key").and_then(|v| v.to_str().ok())
    }

    /// Whether this is an agent turn: a messages request offering the `Bash` tool.
    pub fn is_agent_turn(&self) -> bool {
        self.path == "/v1/messages"
            && self.body["tools"].as_array().is_some_and(|t| t.iter().any(|t| t["name"] == "Bash"))
    }

    /// The `tool_result` blocks in the request's messages.
    pub fn tool_results(&self) -> Vec<Value> {
        let mut out = vec![];
        for m in self.body["messages"].as_array().into_iter().flatten() {
            for b in m["content"].as_array().into_iter().flatten() {
                if b["type"] == "tool_result" {
                    out.push(b.clone());
                }
            }
        }
        out
    }
}

struct Hub {
    script: Mutex<Script>,
    requests: Mutex<Vec<Recorded>>,
    seq: Mutex<u64>,
}

/// The stand-in; stops when dropped.
pub struct FakeAnthropic {
    /// The port, the same on the bridge address and on loopback.
    pub port: u16,
    hub: Arc<Hub>,
    stop: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeAnthropic {
    fn drop(&mut self) {
        for h in &self.stop {
            h.abort();
        }
    }
}

/// The Docker bridge's gateway address (`docker network inspect bridge`), where
/// containers reach this machine as `host.docker.internal` on Linux.
pub fn bridge_gateway() -> Option<IpAddr> {
    let out = std::process::Command::new("docker")
        .args(["network", "inspect", "bridge", "--format", "{{range .IPAM.Config}}{{.Gateway}} {{end}}"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|s| s.parse::<IpAddr>().ok()).find(|ip| ip.is_ipv4())
}

impl FakeAnthropic {
    /// Starts the stand-in with `script`.
    pub async fn start(script: Script) -> FakeAnthropic {
        let hub = Arc::new(Hub { script: Mutex::new(script), requests: Mutex::new(vec![]), seq: Mutex::new(0) });
        let app = axum::Router::new().fallback(handle).with_state(hub.clone());
        let mut listeners = vec![];
        let first = match bridge_gateway() {
            Some(ip) => tokio::net::TcpListener::bind((ip, 0)).await.ok(),
            None => None,
        };
        let port = match first {
            Some(l) => {
                let port = l.local_addr().unwrap().port();
                listeners.push(l);
                listeners.push(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap());
                port
            }
            None => {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let port = l.local_addr().unwrap().port();
                listeners.push(l);
                port
            }
        };
        let stop = listeners
            .into_iter()
            .map(|l| {
                let app = app.clone();
                tokio::spawn(async move {
                    let _ = axum::serve(l, app).await;
                })
            })
            .collect();
        FakeAnthropic { port, hub, stop }
    }

    /// `http://host.docker.internal:<port>`: the base URL for the sandbox.
    pub fn sandbox_url(&self) -> String {
        format!("http://host.docker.internal:{}", self.port)
    }

    /// Replaces the script (for requests from now on).
    pub fn set_script(&self, script: Script) {
        *self.hub.script.lock().unwrap() = script;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.hub.requests.lock().unwrap().clone()
    }

    /// The agent turns so far (see [`Recorded::is_agent_turn`]).
    pub fn agent_turns(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.is_agent_turn()).collect()
    }
}

async fn handle(State(hub): State<Arc<Hub>>, req: Request) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req.headers().clone();
    let bytes = axum::body::to_bytes(req.into_body(), 64 << 20).await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let rec = Recorded { method: method.clone(), path: path.clone(), headers, body: body.clone() };
    hub.requests.lock().unwrap().push(rec.clone());
    if method != "POST" {
        return json_response(404, &json!({"type": "error", "error": {"type": "not_found_error", "message": "not here"}}));
    }
    if path == "/v1/messages/count_tokens" {
        return json_response(200, &json!({"input_tokens": 42}));
    }
    if path != "/v1/messages" {
        return json_response(404, &json!({"type": "error", "error": {"type": "not_found_error", "message": "not here"}}));
    }
    let script = hub.script.lock().unwrap().clone();
    let n = {
        let mut s = hub.seq.lock().unwrap();
        *s += 1;
        *s
    };
    let model = body["model"].as_str().unwrap_or("claude-sonnet-4-5").to_string();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let (content, stop_reason) = match script {
        Script::Fail { status, kind, message } => {
            let mut r = json_response(status, &json!({"type": "error", "error": {"type": kind, "message": message}}));
            r.headers_mut().insert("x-should-retry", "false".parse().unwrap());
            r.headers_mut().insert("request-id", format!("req_fake_{n}").parse().unwrap());
            return r;
        }
        Script::ToolThenText { input, text } => {
            if rec.is_agent_turn() && rec.tool_results().is_empty() {
                (json!({"type": "tool_use", "id": format!("toolu_fake_{n:04}"), "name": "Bash", "input": input}), "tool_use")
            } else if rec.is_agent_turn() {
                (json!({"type": "text", "text": text}), "end_turn")
            } else {
                (json!({"type": "text", "text": "Proof file"}), "end_turn")
            }
        }
    };
    let id = format!("msg_fake_{n:04}");
    if !stream {
        let msg = json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": [content],
            "stop_reason": stop_reason, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 8}});
        return json_response(200, &msg);
    }
    let mut events: Vec<(&str, Value)> = vec![(
        "message_start",
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    )];
    if content["type"] == "tool_use" {
        let mut block = content.clone();
        block["input"] = json!({});
        events.push(("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": block})));
        let partial = content["input"].to_string();
        // Two deltas, as the real API splits the input JSON.
        let cut = partial.len() / 2;
        let cut = (cut..partial.len()).find(|i| partial.is_char_boundary(*i)).unwrap_or(partial.len());
        for part in [&partial[..cut], &partial[cut..]] {
            events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}})));
        }
    } else {
        events.push(("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
        events.push(("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": content["text"]}})));
    }
    events.push(("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
    events.push(("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 8}})));
    events.push(("message_stop", json!({"type": "message_stop"})));
    let mut sse = String::new();
    for (name, data) in events {
        sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    }
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .header("request-id", format!("req_fake_{n}"))
        .body(Body::from(sse))
        .unwrap()
}

fn json_response(status: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

/// A server whose tasks reach `fake` as their Anthropic API, with `api_key` in
/// AnyCode's environment (handed to `api_key` tasks) and the given approval timeout;
/// Claude Code's telemetry, nonessential traffic and retries off.
pub async fn claude_server(fake: &FakeAnthropic, approval_timeout: std::time::Duration, api_key: &str) -> crate::Server {
    std::env::set_var("ANTHROPIC_API_KEY", api_key);
    let dir = tempfile::tempdir().unwrap();
    let repo = crate::make_repo(dir.path());
    let mut cfg = crate::config(&dir.path().join("data"));
    cfg.credentials_from_env = true;
    cfg.keyring_service = None;
    cfg.approval_timeout = approval_timeout;
    for (k, v) in [
        ("ANTHROPIC_BASE_URL", fake.sandbox_url()),
        ("DISABLE_TELEMETRY", "1".into()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
        ("CLAUDE_CODE_MAX_RETRIES", "0".into()),
    ] {
        cfg.settings.env.insert(k.to_string(), v);
    }
    crate::Server::start_with(dir, repo, cfg).await
}
