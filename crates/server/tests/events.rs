#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `WS /ws/events` (issue 8) against a real server, a real Docker engine and a real
//! git repository: the snapshot first, then the task's changes as they happen
//! (created and running, stopped, started, deleted); a wrong token, a foreign
//! Origin refused; a watch device subscribes and its socket closes when it is
//! revoked; the socket closes when the server stops.

use anycode_server::{AccessToken, PairingLimits, ServerOptions};
use anycode_testkit::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens `/ws/events` with these extra headers; the HTTP status when refused.
async fn connect(base: &str, headers: &[(&'static str, String)]) -> Result<Ws, u16> {
    let url = format!("{}/ws/events", base.replacen("http", "ws", 1));
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(*k, v.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("unexpected websocket error: {e}"),
    }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

/// Every frame received, in order.
struct Events {
    ws: Ws,
    frames: Vec<Value>,
}

impl Events {
    async fn open(base: &str, headers: &[(&'static str, String)]) -> Events {
        Events { ws: connect(base, headers).await.expect("events socket opens"), frames: vec![] }
    }

    /// Reads frames until one satisfies `pred`; returns it. Panics after `secs` or
    /// when the socket closes first, with what was received.
    async fn until(&mut self, secs: u64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}; frames so far: {:#?}", self.frames);
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).expect("frames are JSON");
                    self.frames.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) => panic!("socket closed while waiting for {what}; frames: {:#?}", self.frames),
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(Some(Err(e))) => panic!("websocket error while waiting for {what}: {e}"),
            }
        }
    }

    /// Waits for a `task` frame of `id` with `status`.
    async fn status(&mut self, id: &str, status: &str) -> Value {
        self.until(60, &format!("task {id} {status}"), |v| v["type"] == "task" && v["task"]["id"] == id && v["task"]["status"] == status)
            .await
    }

    /// Statuses of `task` frames of `id` received so far.
    fn statuses(&self, id: &str) -> Vec<String> {
        self.frames
            .iter()
            .filter(|v| v["type"] == "task" && v["task"]["id"] == id)
            .map(|v| v["task"]["status"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// Waits until the server closes the socket; how long it took.
    async fn closed(&mut self, secs: u64) -> Duration {
        let start = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(secs), self.ws.next()).await {
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return start.elapsed(),
                Ok(Some(Ok(_))) => {}
                Err(_) => panic!("the socket stayed open for {secs} s"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_then_live_changes_of_a_task() {
    let s = Server::start().await;
    let p = s.add_project().await;
    // A task from before the subscription appears in the snapshot.
    let before = s.create_task(&p, json!({"title": "before", "agent": "shell"})).await;
    let before_id = before["id"].as_str().unwrap().to_string();

    let mut ev = Events::open(&s.base, &[bearer(TOKEN)]).await;
    let snap = ev.until(10, "the snapshot", |_| true).await;
    assert_eq!(snap["type"], "snapshot", "the first frame is the snapshot: {snap}");
    let tasks = snap["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 1, "{snap}");
    assert_eq!(tasks[0]["id"], before_id.as_str());
    assert_eq!(tasks[0]["status"], "running");
    // The snapshot's tasks are the API's task view (same fields as GET /api/tasks).
    let (_, listed) = s.get("/api/tasks").await;
    let mut a: Vec<_> = tasks[0].as_object().unwrap().keys().cloned().collect();
    let mut b: Vec<_> = listed[0].as_object().unwrap().keys().cloned().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    for k in ["attention", "usage", "queue_position", "permission_mode", "cpus", "memory_mb"] {
        assert!(tasks[0].as_object().unwrap().contains_key(k), "{k} in the task view");
    }

    // Created while subscribed: its events arrive, ending with running.
    let t0 = Instant::now();
    let t = s.create_task(&p, json!({"title": "live", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let running = ev.status(&id, "running").await;
    println!("created → running event after {:?} (the create call included)", t0.elapsed());
    assert_eq!(running["task"]["title"], "live");
    assert_eq!(running["task"]["terminals"][0]["kind"], "agent");
    for st in ev.statuses(&id) {
        assert!(["creating", "starting", "running"].contains(&st.as_str()), "unexpected status {st} while creating: {:?}", ev.statuses(&id));
    }

    // Stopped through the API (another client): the socket tells.
    let t0 = Instant::now();
    let (st, v) = s.post(&format!("/api/tasks/{id}/stop"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    let stopped = ev.status(&id, "stopped").await;
    println!("stop → stopped event after {:?}", t0.elapsed());
    assert!(stopped["task"]["usage"].is_null());

    // Started again.
    let (st, v) = s.post(&format!("/api/tasks/{id}/start"), json!({})).await;
    assert_eq!(st, 200, "{v}");
    ev.status(&id, "running").await;

    // The agent exiting on its own (the shell's `exit`) is an event too.
    let term = t["terminals"][0]["id"].as_str().unwrap();
    let mut sh = s.ws(term).await;
    sh.send("exit 3\r").await;
    let exited = ev.status(&id, "exited").await;
    assert_eq!(exited["task"]["exit_code"], 3);

    // Deleted: task_deleted with its id.
    let (st, _) = s.delete(&format!("/api/tasks/{id}")).await;
    assert_eq!(st, 204);
    let gone = ev.until(30, "task_deleted", |v| v["type"] == "task_deleted").await;
    assert_eq!(gone, json!({"type": "task_deleted", "id": id}));
    // The untouched task never changed state (its live usage may have been
    // announced, with the same status).
    assert!(ev.statuses(&before_id).iter().all(|s| s == "running"), "{:?}", ev.statuses(&before_id));

    // A second subscriber's snapshot is the state now.
    let mut ev2 = Events::open(&s.base, &[bearer(TOKEN)]).await;
    let snap = ev2.until(10, "the snapshot", |_| true).await;
    assert_eq!(snap["type"], "snapshot");
    let ids: Vec<_> = snap["tasks"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, vec![before_id]);

    // Server shutdown closes both sockets.
    let _kept = s.shutdown().await;
    let took = ev.closed(10).await;
    ev2.closed(10).await;
    println!("shutdown closed the events socket after {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_token_and_foreign_origin_are_refused() {
    let s = Server::start().await;
    assert_eq!(connect(&s.base, &[]).await.err(), Some(401), "no token");
    assert_eq!(connect(&s.base, &[bearer("wrong-token-0123456789abcdef0123456789ab")]).await.err(), Some(401));
    assert_eq!(connect(&s.base, &[("Cookie", "anycode_session=nope".into())]).await.err(), Some(401));
    // The right token from another site's page: refused (cross-site WebSocket).
    assert_eq!(connect(&s.base, &[bearer(TOKEN), ("Origin", "http://evil.example".into())]).await.err(), Some(403));
    // The right token and AnyCode's own origin: fine.
    let mut ev = Events::open(&s.base, &[bearer(TOKEN), ("Origin", s.base.clone())]).await;
    let snap = ev.until(10, "the snapshot", |_| true).await;
    assert_eq!(snap, json!({"type": "snapshot", "tasks": []}));
    // The desktop's session cookie works too.
    let cookie = AccessToken::new(TOKEN).session_value();
    let mut ev = Events::open(&s.base, &[("Cookie", format!("anycode_session={cookie}"))]).await;
    assert_eq!(ev.until(10, "the snapshot", |_| true).await["type"], "snapshot");
    // The socket is documented.
    let (_, doc) = s.get("/api/openapi.json").await;
    let frames = &doc["x-websockets"]["/ws/events"]["server text frames"];
    for f in ["snapshot", "task", "task_deleted"] {
        assert_eq!(frames[f]["type"], f, "openapi.json documents the {f} frame");
    }
}

const LAN_IP: &str = "127.0.0.2";

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_device_subscribes_and_is_closed_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let cfg = config(&dir.path().join("data"));
    let opts = ServerOptions { lan_addresses: vec![LAN_IP.parse().unwrap()], pairing: PairingLimits::default(), ..ServerOptions::new(AccessToken::new(TOKEN)) };
    let s = Server::start_with_options(dir, repo, cfg, opts).await;
    let (st, v) = s.post("/api/lan", json!({"enabled": true})).await;
    assert_eq!(st, 200, "{v}");
    let (st, code) = s.post("/api/pairing", json!({"role": "watch"})).await;
    assert_eq!(st, 200, "{code}");
    let port = s.base.rsplit(':').next().unwrap().to_string();
    let lan_base = format!("http://{LAN_IP}:{port}");
    let r = reqwest::Client::new()
        .post(format!("{lan_base}/api/pair"))
        .json(&json!({"code": code["code"], "device_name": "Sofa phone"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    let device: Value = r.json().await.unwrap();
    let device_id = device["device"]["id"].as_str().unwrap().to_string();

    let mut ev = Events::open(&lan_base, &[("Cookie", cookie.clone()), ("Origin", lan_base.clone())]).await;
    assert_eq!(ev.until(10, "the snapshot", |_| true).await["type"], "snapshot");
    // The events socket is not one of the device's terminal sockets.
    let (_, list) = s.get("/api/devices").await;
    let d = list.as_array().unwrap().iter().find(|d| d["id"] == device_id.as_str()).unwrap().clone();
    assert_eq!(d["sockets"], 0, "{list}");

    let (st, _) = s.delete(&format!("/api/devices/{device_id}")).await;
    assert_eq!(st, 204);
    let took = ev.closed(5).await;
    println!("revoked device's events socket closed after {took:?}");
    assert_eq!(connect(&lan_base, &[("Cookie", cookie)]).await.err(), Some(401));
}
