#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Pairing phones and LAN mode (issue 7), against a real server: LAN mode serves a
//! loopback alias (127.0.0.2) as its "local-network address", so the extra
//! listener and the Host allowlist are exercised without any traffic leaving the
//! machine. Covers wrong, expired and reused codes, the brute-force lockout, wrong
//! Host, foreign Origin, a watch device against every kind of mutation (HTTP and
//! terminal input, checked on the server side), and revocation closing sockets.

use anycode_server::{AccessToken, PairingLimits, ServerOptions};
use anycode_testkit::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const LAN_IP: &str = "127.0.0.2";

async fn lan_server(limits: PairingLimits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let cfg = config(&dir.path().join("data"));
    let opts = ServerOptions { lan_addresses: vec![LAN_IP.parse().unwrap()], pairing: limits, ..ServerOptions::new(AccessToken::new(TOKEN)) };
    Server::start_with_options(dir, repo, cfg, opts).await
}

fn port(s: &Server) -> u16 {
    s.base.rsplit(':').next().unwrap().parse().unwrap()
}

fn lan_base(s: &Server) -> String {
    format!("http://{LAN_IP}:{}", port(s))
}

/// A client whose connections come from `source` (another loopback address is
/// another client for the lockout).
fn client_from(source: &str) -> reqwest::Client {
    reqwest::Client::builder().local_address(source.parse::<IpAddr>().unwrap()).build().unwrap()
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let st = r.status().as_u16();
    let text = r.text().await.unwrap();
    (st, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
}

async fn enable_lan(s: &Server) {
    let (st, v) = s.post("/api/lan", json!({"enabled": true})).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["enabled"], true);
    assert_eq!(v["addresses"], json!([format!("{LAN_IP}:{}", port(s))]));
}

async fn new_code(s: &Server, role: &str) -> Value {
    let (st, p) = s.post("/api/pairing", json!({"role": role})).await;
    assert_eq!(st, 200, "{p}");
    p
}

/// `POST /api/pair` on the LAN address from `http`; returns status, body and the
/// `name=value` part of the cookie set, if any.
async fn pair(s: &Server, http: &reqwest::Client, code: &str, name: &str) -> (u16, Value, Option<String>, reqwest::header::HeaderMap) {
    let r = http.post(format!("{}/api/pair", lan_base(s))).json(&json!({"code": code, "device_name": name})).send().await.unwrap();
    let headers = r.headers().clone();
    let cookie = headers.get("set-cookie").map(|c| c.to_str().unwrap().to_string());
    if let Some(c) = &cookie {
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/"), "{c}");
    }
    let (st, v) = json_of(r).await;
    (st, v, cookie.map(|c| c.split(';').next().unwrap().to_string()), headers)
}

/// Pairs a device with a fresh code of `role`; returns its cookie and id.
async fn paired(s: &Server, role: &str, name: &str) -> (String, String) {
    let p = new_code(s, role).await;
    let (st, v, cookie, _) = pair(s, &reqwest::Client::new(), p["code"].as_str().unwrap(), name).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["device"]["role"], role);
    (cookie.expect("a session cookie"), v["device"]["id"].as_str().unwrap().to_string())
}

/// A request on the LAN address with a device cookie and the page's own Origin.
async fn as_device(s: &Server, cookie: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = reqwest::Client::new().request(method, format!("{}{path}", lan_base(s))).header("cookie", cookie).header("origin", lan_base(s));
    if let Some(b) = body {
        r = r.json(&b);
    }
    json_of(r.send().await.unwrap()).await
}

/// A terminal WebSocket on the LAN address with a device cookie.
async fn device_ws(s: &Server, cookie: &str, terminal: &str) -> Result<Term, u16> {
    let url = format!("ws://{LAN_IP}:{}/ws/terminals/{terminal}", port(s));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut().insert("origin", lan_base(s).parse().unwrap());
    match tokio_tungstenite::connect_async_with_config(req, None, true).await {
        Ok((ws, _)) => Ok(Term { ws, output: Vec::new(), exit: None, controls: Vec::new() }),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("websocket failed: {e}"),
    }
}

/// Waits until the socket ends (close frame, end of stream or error); panics after `secs`.
async fn wait_closed(term: &mut Term, secs: u64) -> Duration {
    let start = Instant::now();
    loop {
        let left = Duration::from_secs(secs).saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "the socket stayed open");
        match tokio::time::timeout(left, term.ws.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return start.elapsed(),
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("the socket stayed open for {secs} s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lan_mode_listens_on_the_lan_address_only_while_on() {
    let s = lan_server(PairingLimits::default()).await;
    let lan = lan_base(&s);
    let http = reqwest::Client::new();
    // Off by default: nothing listens on the LAN address, its Host is refused, and
    // no pairing code is made.
    assert!(http.get(format!("{lan}/api/health")).bearer_auth(TOKEN).send().await.is_err(), "nothing listens on {lan}");
    let host = format!("{LAN_IP}:{}", port(&s));
    let r = http.get(format!("{}/api/health", s.base)).bearer_auth(TOKEN).header("host", &host).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (st, e) = s.post("/api/pairing", json!({"role": "watch"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (409, Some("LAN_OFF")), "{e}");
    let (st, v) = s.get("/api/lan").await;
    assert_eq!((st, v["enabled"].as_bool()), (200, Some(false)));

    enable_lan(&s).await;
    let (_, v) = s.get("/api/lan").await;
    assert_eq!(v["urls"], json!([format!("{lan}/")]));
    let r = http.get(format!("{lan}/api/health")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // The web UI is served there too.
    let r = http.get(format!("{lan}/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Hosts other than the served addresses are still refused (DNS rebinding).
    for bad in ["127.0.0.3", "evil.example", "192.168.1.1:80"] {
        let r = http.get(format!("{lan}/api/health")).bearer_auth(TOKEN).header("host", bad).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 403, "Host {bad}");
    }
    // Turning it on twice is fine.
    enable_lan(&s).await;

    // An owner socket through the LAN address closes when LAN mode goes off.
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "lan", "agent": "shell"})).await;
    let term_id = t["terminals"][0]["id"].as_str().unwrap();
    let mut via_lan = Term::connect(&lan, term_id, TOKEN).await;
    let mut via_loopback = s.ws(term_id).await;
    let (st, v) = s.post("/api/lan", json!({"enabled": false})).await;
    assert_eq!((st, v["enabled"].as_bool()), (200, Some(false)), "{v}");
    let took = wait_closed(&mut via_lan, 5).await;
    println!("LAN socket closed {took:?} after LAN mode went off");
    assert!(http.get(format!("{lan}/api/health")).bearer_auth(TOKEN).send().await.is_err(), "the LAN listener stopped");
    let r = http.get(format!("{}/api/health", s.base)).bearer_auth(TOKEN).header("host", &host).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403, "the LAN Host is refused again");
    // The loopback socket is untouched.
    via_loopback.run("echo still", "LOOP").await;
    // The API document describes the new endpoints.
    let (_, doc) = s.get("/api/openapi.json").await;
    for p in ["/api/session", "/api/lan", "/api/pairing", "/api/pair", "/api/devices", "/api/devices/{id}"] {
        assert!(doc["paths"][p].is_object(), "openapi.json lacks {p}");
    }
    // And it can be turned on again (same port).
    enable_lan(&s).await;
    let r = http.get(format!("{lan}/api/health")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_expired_and_reused_codes_are_refused() {
    let s = lan_server(PairingLimits { code_ttl: Duration::from_secs(2), max_failures: 100, ..PairingLimits::default() }).await;
    enable_lan(&s).await;
    let p = new_code(&s, "control").await;
    let code = p["code"].as_str().unwrap();
    assert!(regex_like_code(code), "{code}");
    assert_eq!(p["role"], "control");
    assert_eq!(p["expires_in"], 2);
    assert_eq!(p["url"], format!("{}/#/pair/{code}", lan_base(&s)));
    assert!(p["expires_at"].as_str().unwrap().ends_with('Z'));
    let svg = p["qr_svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<path"), "{svg}");
    let (st, e) = s.post("/api/pairing", json!({"role": "admin"})).await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{e}");

    let http = reqwest::Client::new();
    // A wrong code, and codes of the wrong shape.
    for wrong in ["AAA-AAA-AAA", "", "ABC", &format!("{code}X"), "ÄÄÄ-ÄÄÄ-ÄÄÄ"] {
        let (st, e, cookie, _) = pair(&s, &http, wrong, "phone").await;
        assert_eq!((st, e["error"]["code"].as_str()), (401, Some("PAIRING_CODE_WRONG")), "{wrong}: {e}");
        assert!(cookie.is_none());
    }
    // A bad name changes nothing: the code is not spent.
    let (st, e, _, _) = pair(&s, &http, code, "   ").await;
    assert_eq!((st, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{e}");
    let (st, _, _, _) = pair(&s, &http, code, &"x".repeat(61)).await;
    assert_eq!(st, 422);
    // Missing fields are a JSON error.
    let r = http.post(format!("{}/api/pair", lan_base(&s))).json(&json!({"code": code})).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // The right code (typed in lower case with spaces) pairs once.
    let (st, v, cookie, _) = pair(&s, &http, &code.to_lowercase().replace('-', " "), "Sofa phone").await;
    assert_eq!(st, 201, "{v}");
    let cookie = cookie.unwrap();
    assert_eq!(v["device"]["name"], "Sofa phone");
    let (st, me) = as_device(&s, &cookie, reqwest::Method::GET, "/api/session", None).await;
    assert_eq!((st, me["kind"].as_str(), me["role"].as_str()), (200, Some("device"), Some("control")), "{me}");
    let (st, _) = as_device(&s, &cookie, reqwest::Method::GET, "/api/tasks", None).await;
    assert_eq!(st, 200);
    // Reused.
    let (st, e, cookie2, _) = pair(&s, &http, code, "Another phone").await;
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("PAIRING_CODE_USED")), "{e}");
    assert!(cookie2.is_none());
    // Expired.
    let late = new_code(&s, "watch").await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (st, e, _, _) = pair(&s, &http, late["code"].as_str().unwrap(), "Late phone").await;
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("PAIRING_CODE_EXPIRED")), "{e}");
    // Exactly one device was paired; the owner sees it with its role.
    let (st, list) = s.get("/api/devices").await;
    assert_eq!(st, 200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!((list[0]["name"].as_str(), list[0]["role"].as_str()), (Some("Sofa phone"), Some("control")));
    assert!(list[0]["last_seen"].as_str().is_some(), "{list}");
    // No session: 401; a forged device cookie: 401.
    let (st, _) = as_device(&s, "anycode_device=00", reqwest::Method::GET, "/api/tasks", None).await;
    assert_eq!(st, 401);
    let (st, _) = as_device(&s, &format!("anycode_device={}", "ab".repeat(32)), reqwest::Method::GET, "/api/tasks", None).await;
    assert_eq!(st, 401);
}

fn regex_like_code(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 11
        && b[3] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 3 || i == 7 || b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789".contains(c))
}

#[tokio::test(flavor = "multi_thread")]
async fn brute_force_is_locked_out_with_retry_after() {
    let s = lan_server(PairingLimits { lockout: Duration::from_secs(3), ..PairingLimits::default() }).await;
    enable_lan(&s).await;
    let code = new_code(&s, "watch").await["code"].as_str().unwrap().to_string();
    let attacker = client_from("127.0.0.1");
    for i in 0..5 {
        let (st, e, _, _) = pair(&s, &attacker, &format!("AAA-AAA-AA{}", ["B", "C", "D", "E", "F"][i]), "x").await;
        assert_eq!(st, 401, "try {i}: {e}");
    }
    // Locked: even the right code is refused now, with Retry-After.
    let (st, e, cookie, headers) = pair(&s, &attacker, &code, "x").await;
    assert_eq!((st, e["error"]["code"].as_str()), (429, Some("TOO_MANY_ATTEMPTS")), "{e}");
    assert!(cookie.is_none());
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    // Another client (another source address) is not locked out.
    let other = client_from("127.0.0.5");
    let (st, e, _, _) = pair(&s, &other, "AAA-AAA-AAG", "x").await;
    assert_eq!(st, 401, "{e}");
    // After the lockout the right code works (it was not spent by the refused try).
    tokio::time::sleep(Duration::from_secs(retry) + Duration::from_millis(200)).await;
    let (st, e, cookie, _) = pair(&s, &attacker, &code, "Patient phone").await;
    assert_eq!(st, 201, "{e}");
    assert!(cookie.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_origin_and_wrong_host_are_refused_for_pairing() {
    let s = lan_server(PairingLimits::default()).await;
    enable_lan(&s).await;
    let code = new_code(&s, "control").await["code"].as_str().unwrap().to_string();
    let http = reqwest::Client::new();
    // A page of another site cannot pair itself (login CSRF), nor can a rebound DNS name.
    let r = http
        .post(format!("{}/api/pair", lan_base(&s)))
        .header("origin", "http://evil.example")
        .json(&json!({"code": code, "device_name": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = http
        .post(format!("{}/api/pair", lan_base(&s)))
        .header("host", "evil.example")
        .json(&json!({"code": code, "device_name": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Neither spent the code.
    let (st, v, _, _) = pair(&s, &http, &code, "real phone").await;
    assert_eq!(st, 201, "{v}");
    // A device's socket from a foreign Origin is refused too.
    let (cookie, _) = paired(&s, "control", "p2").await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "origin", "agent": "shell"})).await;
    let url = format!("ws://{LAN_IP}:{}/ws/terminals/{}", port(&s), t["terminals"][0]["id"].as_str().unwrap());
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut().insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status().as_u16(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_device_cannot_change_anything() {
    let s = lan_server(PairingLimits::default()).await;
    enable_lan(&s).await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "watched", "agent": "shell"})).await;
    let task = t["id"].as_str().unwrap().to_string();
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    let (watch, watch_id) = paired(&s, "watch", "Watcher").await;
    let (control, _) = paired(&s, "control", "Driver").await;

    use reqwest::Method as M;
    // Reading works.
    for path in ["/api/tasks", &format!("/api/tasks/{task}"), &format!("/api/tasks/{task}/diff"), "/api/projects", "/api/health"] {
        let (st, v) = as_device(&s, &watch, M::GET, path, None).await;
        assert_eq!(st, 200, "{path}: {v}");
    }
    // Every mutation is refused by the server, whatever the endpoint.
    let mutations: Vec<(M, String, Option<Value>)> = vec![
        (M::POST, format!("/api/tasks/{task}/stop"), Some(json!({}))),
        (M::POST, format!("/api/tasks/{task}/start"), Some(json!({}))),
        (M::POST, format!("/api/tasks/{task}/commit"), Some(json!({"message": "x"}))),
        (M::POST, format!("/api/tasks/{task}/terminals"), Some(json!({}))),
        (M::DELETE, format!("/api/tasks/{task}"), None),
        (M::DELETE, format!("/api/terminals/{term_id}"), None),
        (M::POST, format!("/api/projects/{p}/tasks"), Some(json!({"title": "x", "agent": "shell"}))),
        (M::PUT, format!("/api/tasks/{task}"), Some(json!({}))),
    ];
    for (m, path, body) in &mutations {
        let (st, e) = as_device(&s, &watch, m.clone(), path, body.clone()).await;
        assert_eq!((st, e["error"]["code"].as_str()), (403, Some("WATCH_ONLY")), "{m} {path}: {e}");
    }
    // Owner-only endpoints are closed to every device, control included.
    for cookie in [&watch, &control] {
        for (m, path, body) in [
            (M::POST, "/api/pairing".to_string(), Some(json!({"role": "control"}))),
            (M::GET, "/api/devices".to_string(), None),
            (M::DELETE, format!("/api/devices/{watch_id}"), None),
            (M::GET, "/api/lan".to_string(), None),
            (M::POST, "/api/lan".to_string(), Some(json!({"enabled": false}))),
            (M::PUT, "/api/credentials/anthropic_api_key".to_string(), Some(json!({"value": "sk-ant-api03-x"}))),
            (M::DELETE, "/api/credentials/anthropic_api_key".to_string(), None),
            (M::PUT, "/api/github/token".to_string(), Some(json!({"token": "ghp_x"}))),
            (M::DELETE, "/api/github/token".to_string(), None),
            // A device cannot mint the owner's login links.
            (M::POST, "/api/login-code".to_string(), Some(json!({}))),
            // Projects are folders on the host: adding, importing (to a named folder
            // or not) and removing them is the owner's.
            (M::POST, "/api/projects".to_string(), Some(json!({"path": s.repo}))),
            (M::POST, "/api/projects".to_string(), Some(json!({"url": "octo/hello"}))),
            (M::POST, "/api/projects".to_string(), Some(json!({"url": "octo/hello", "path": "/tmp/anywhere"}))),
            (M::DELETE, format!("/api/projects/{p}"), None),
        ] {
            let (st, e) = as_device(&s, cookie, m.clone(), &path, body).await;
            assert_eq!((st, e["error"]["code"].as_str()), (403, Some("OWNER_ONLY")), "{m} {path}: {e}");
        }
    }
    // The project is still there; a device can list it.
    let (st, v) = as_device(&s, &control, M::GET, &format!("/api/projects/{p}"), None).await;
    assert_eq!(st, 200, "{v}");
    // Reading the credentials' and GitHub's status is fine for a device.
    for path in ["/api/credentials/status", "/api/github"] {
        let (st, v) = as_device(&s, &control, M::GET, path, None).await;
        assert_ne!(st, 403, "{path}: {v}");
    }
    // The task is untouched.
    let (_, now) = s.get(&format!("/api/tasks/{task}")).await;
    assert_eq!(now["status"], "running");
    assert_eq!(now["terminals"].as_array().unwrap().len(), 1);

    // Terminals: the watcher sees output but its keystrokes and resizes never reach the TTY.
    let mut owner = s.ws(&term_id).await;
    owner.resize(100, 30).await;
    owner.run("echo ready", "READY").await;
    let mut watcher = device_ws(&s, &watch, &term_id).await.expect("a watch device may watch");
    watcher.wait_for(10, "the scrollback", |t| t.contains("READY-2")).await;
    watcher.send("touch /workspace/watch-was-here; echo WATCHED-$((40+2))\r").await;
    watcher.resize(20, 5).await;
    // The owner's next command proves the TTY has processed everything before it.
    owner.run("stty size; ls /workspace", "AFTER").await;
    let text = owner.text();
    assert!(!text.contains("watch-was-here"), "the watcher's input reached the TTY:\n{text}");
    assert!(!text.contains("WATCHED-42"));
    assert!(text.contains("30 100"), "the watcher's resize reached the TTY:\n{text}");
    let worktree = std::path::PathBuf::from(t["worktree"].as_str().unwrap());
    assert!(!worktree.join("watch-was-here").exists());
    // The watcher saw the owner's command and its output live.
    watcher.wait_for(10, "the owner's output", |t| t.contains("AFTER-2")).await;
    // A control device's input does reach it.
    let mut driver = device_ws(&s, &control, &term_id).await.expect("control socket");
    driver.run("touch /workspace/control-was-here", "DRIVEN").await;
    assert!(worktree.join("control-was-here").exists());
    // And a control device may change things (here: a commit).
    let (st, v) = as_device(&s, &control, M::POST, &format!("/api/tasks/{task}/commit"), Some(json!({"message": "from the sofa"}))).await;
    assert_eq!(st, 200, "{v}");
    // The device list shows the live sockets.
    let (_, list) = s.get("/api/devices").await;
    let w = list.as_array().unwrap().iter().find(|d| d["id"] == watch_id.as_str()).unwrap();
    assert_eq!(w["sockets"], 1, "{list}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_device_is_shut_out_and_its_sockets_close() {
    let s = lan_server(PairingLimits::default()).await;
    enable_lan(&s).await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "revoke", "agent": "shell"})).await;
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    let (cookie, id) = paired(&s, "control", "Lost phone").await;
    let (other, other_id) = paired(&s, "watch", "Kept phone").await;
    let mut a = device_ws(&s, &cookie, &term_id).await.unwrap();
    let mut b = device_ws(&s, &cookie, &term_id).await.unwrap();
    let mut kept = device_ws(&s, &other, &term_id).await.unwrap();
    a.run("echo before", "BEFORE").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, list) = s.get("/api/devices").await;
        if list.as_array().unwrap().iter().any(|d| d["id"] == id.as_str() && d["sockets"] == 2) {
            break;
        }
        assert!(Instant::now() < deadline, "two sockets should be counted: {list}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (st, _) = s.delete(&format!("/api/devices/{id}")).await;
    assert_eq!(st, 204);
    let took_a = wait_closed(&mut a, 2).await;
    let took_b = wait_closed(&mut b, 2).await;
    println!("revoked sockets closed after {took_a:?} and {took_b:?}");
    // Its cookie no longer works, for HTTP or a new socket.
    let (st, e) = as_device(&s, &cookie, reqwest::Method::GET, "/api/tasks", None).await;
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("UNAUTHORIZED")), "{e}");
    assert_eq!(device_ws(&s, &cookie, &term_id).await.err(), Some(401));
    let (_, list) = s.get("/api/devices").await;
    assert_eq!(list.as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect::<Vec<_>>(), vec![other_id.as_str()]);
    let (st, e) = s.delete(&format!("/api/devices/{id}")).await;
    assert_eq!((st, e["error"]["code"].as_str()), (404, Some("DEVICE_NOT_FOUND")));
    // The other device is untouched.
    let (st, _) = as_device(&s, &other, reqwest::Method::GET, "/api/tasks", None).await;
    assert_eq!(st, 200);
    s.ws(&term_id).await.run("echo after", "AFTER").await;
    kept.wait_for(10, "output after the revocation", |t| t.contains("AFTER-2")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn devices_survive_a_restart_and_codes_do_not() {
    let s = lan_server(PairingLimits::default()).await;
    enable_lan(&s).await;
    let (cookie, _) = paired(&s, "watch", "Phone").await;
    let spare = new_code(&s, "control").await["code"].as_str().unwrap().to_string();
    let (dir, repo) = s.shutdown().await;
    let cfg = config(&dir.path().join("data"));
    let opts = ServerOptions { lan_addresses: vec![LAN_IP.parse().unwrap()], lan: true, ..ServerOptions::new(AccessToken::new(TOKEN)) };
    let s = Server::start_with_options(dir, repo, cfg, opts).await;
    // `lan: true` turns LAN mode on at start (as `anycode serve --lan` does).
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.get("/api/lan").await.1["enabled"] != true {
        assert!(Instant::now() < deadline, "LAN mode did not come on at start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (st, me) = as_device(&s, &cookie, reqwest::Method::GET, "/api/session", None).await;
    assert_eq!((st, me["role"].as_str()), (200, Some("watch")), "{me}");
    let (st, e, _, _) = pair(&s, &reqwest::Client::new(), &spare, "x").await;
    assert_eq!((st, e["error"]["code"].as_str()), (401, Some("PAIRING_CODE_WRONG")), "codes live in memory only: {e}");
}

/// A dev server for the phone preview test: echoes the path, the cookies and the host.
const ECHO_SERVER_JS: &str = "require('http').createServer((q,r)=>{r.setHeader('content-type','text/plain');r.end('path='+q.url+' cookie='+(q.headers.cookie||'')+' host='+q.headers.host);}).listen(4321,'127.0.0.1');";

#[tokio::test(flavor = "multi_thread")]
async fn a_phone_opens_a_preview_on_a_lan_port_of_its_own_and_the_sandbox_never_sees_its_cookies() {
    let s = lan_server(PairingLimits::default()).await;
    enable_lan(&s).await;
    let (device, _) = paired(&s, "control", "Phone").await;
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "Phone preview", "agent": "shell"})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap();
    let started = std::process::Command::new("docker").args(["exec", "-d", cid, "node", "-e", ECHO_SERVER_JS]).status().unwrap();
    assert!(started.success());

    // Open from the phone (its device cookie, on the LAN address): a listener of the
    // preview's own on the LAN address, not `*.localhost` (the phone's own loopback).
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let open = || http.get(format!("{}/api/tasks/{id}/ports/4321/open", lan_base(&s))).header("cookie", &device).send();
    let r = open().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let rest = location.strip_prefix(&format!("http://{LAN_IP}:")).unwrap_or_else(|| panic!("{location}"));
    let (preview_port, login_path) = rest.split_at(rest.find('/').unwrap());
    assert_ne!(preview_port, port(&s).to_string(), "another port than the API's: another origin");
    assert!(login_path.starts_with("/.anycode/preview-login?code="), "{location}");
    let origin = format!("http://{LAN_IP}:{preview_port}");

    // Not logged in: 401; a code works once; its cookie is named after the port.
    assert_eq!(http.get(format!("{origin}/")).header("cookie", &device).send().await.unwrap().status(), 401);
    let r = http.get(format!("{origin}{login_path}")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.starts_with(&format!("anycode_preview_{preview_port}=")) && set.contains("HttpOnly"), "{set}");
    let preview_cookie = set.split(';').next().unwrap().to_string();
    assert_eq!(http.get(format!("{origin}{login_path}")).send().await.unwrap().status(), 401, "a code works once");

    // The dev server answers; the phone's browser sends every cookie of the address
    // to this port too, and none of AnyCode's reaches the sandbox.
    let cookies = format!("{device}; {preview_cookie}; anycode_preview=x; theirs=7");
    let deadline = Instant::now() + Duration::from_secs(15);
    let r = loop {
        let r = http.get(format!("{origin}/deep?x=1")).header("cookie", &cookies).send().await.unwrap();
        // 502 until node listens.
        if r.status() != 502 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(body, format!("path=/deep?x=1 cookie=theirs=7 host={LAN_IP}:{preview_port}"));
    // Only under its own name, and only its own pages.
    let r = http.get(format!("{origin}/")).header("host", format!("rebound.example:{preview_port}")).header("cookie", &cookies).send().await.unwrap();
    assert_eq!(r.status(), 421);
    let r = http.get(format!("{origin}/")).header("cookie", &cookies).header("origin", lan_base(&s)).send().await.unwrap();
    assert_eq!(r.status(), 403, "the API's origin cannot drive the preview");
    // Opening again reuses the listener; the desktop still gets `*.localhost`.
    let again = open().await.unwrap().headers()["location"].to_str().unwrap().to_string();
    assert!(again.starts_with(&format!("{origin}/")), "{again}");
    let r = http.get(format!("{}/api/tasks/{id}/ports/4321/open", s.base)).bearer_auth(TOKEN).send().await.unwrap();
    assert!(r.headers()["location"].to_str().unwrap().starts_with(&format!("http://4321-{id}.localhost:")), "{:?}", r.headers());

    // LAN mode off: the preview's listener stops with it.
    let (st, _) = s.post("/api/lan", json!({"enabled": false})).await;
    assert_eq!(st, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::Client::new().get(format!("{origin}/")).timeout(Duration::from_secs(2)).send().await.is_ok() {
        assert!(Instant::now() < deadline, "the preview's listener outlived LAN mode");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.delete(&format!("/api/tasks/{id}")).await;
}
