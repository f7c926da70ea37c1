#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Network policy with real Docker (issue 13): from inside real sandboxes (`curl`
//! run by `docker exec`), for each mode, against a host service bound on 0.0.0.0
//! and an "allowed" upstream on the host's loopback reached as a configured gateway
//! (`host.docker.internal:PORT`) through AnyCode's egress proxy, which sandboxes
//! reach over their relay. Traffic stays on loopback and this machine's Docker
//! bridge.

use anycode_testkit::*;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP server answering every request with `200` and `text`.
async fn http_service(bind: &str, text: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind(bind).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
                let _ = s.write_all(answer.as_bytes()).await;
            });
        }
    });
    port
}

/// `sh -c script` in the container as its user: (exit code, stdout).
fn sh(cid: &str, script: &str) -> (i32, String) {
    let out = std::process::Command::new("docker").args(["exec", cid, "sh", "-c", script]).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The host's addresses other than loopback (the bridge gateway, LAN addresses).
fn host_addresses() -> Vec<IpAddr> {
    let out = std::process::Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|s| s.parse::<IpAddr>().ok()).filter(|ip| ip.is_ipv4()).collect()
}

/// Waits until the sandbox's relay answers on its proxy port.
async fn wait_relay(cid: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, code) = sh(cid, "curl -s -o /dev/null -w '%{http_code}' --noproxy '*' -m 2 http://127.0.0.1:3128/");
        if code != "000" && !code.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "the relay never listened in {cid}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Setup {
    s: Server,
    project: String,
    service: u16,
    upstream: u16,
}

async fn setup() -> Setup {
    let s = Server::start().await;
    let project = s.add_project().await;
    let service = http_service("0.0.0.0:0", "host-service").await;
    let upstream = http_service("127.0.0.1:0", "upstream-ok").await;
    Setup { s, project, service, upstream }
}

async fn shell_task(st: &Setup, network: Value) -> (String, String) {
    let t = st.s.create_task(&st.project, json!({"title": "net", "agent": "shell", "network": network})).await;
    let id = t["id"].as_str().unwrap().to_string();
    let cid = t["container_id"].as_str().unwrap().to_string();
    wait_relay(&cid).await;
    (id, cid)
}

/// Every direct way to the host service fails (no route of its own).
fn no_direct_route(cid: &str, service: u16) {
    let mut targets = vec!["host.docker.internal".to_string()];
    targets.extend(host_addresses().iter().map(|ip| ip.to_string()));
    for host in targets {
        let (code, out) = sh(cid, &format!("curl -s --noproxy '*' -m 3 http://{host}:{service}/"));
        assert_ne!(code, 0, "{host}:{service} reached directly: {out}");
        assert!(!out.contains("host-service"));
    }
    let (code, _) = sh(cid, "ip route 2>/dev/null | grep -q default || cat /proc/net/route | awk 'NR>1 && $2==\"00000000\"' | grep -q .");
    assert_ne!(code, 0, "the sandbox has a default route");
}

/// The host service through the proxy: 403, by any of its names.
fn not_through_the_proxy(cid: &str, service: u16) {
    let mut targets = vec!["host.docker.internal".to_string(), "localhost".to_string()];
    targets.extend(host_addresses().iter().map(|ip| ip.to_string()));
    for host in targets {
        let (_, code) = sh(cid, &format!("curl -s -o /dev/null -w '%{{http_code}}' -m 5 --noproxy '' --proxy http://127.0.0.1:3128 http://{host}:{service}/"));
        assert_eq!(code, "403", "{host}:{service} through the proxy");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn allowlist_mode_allows_listed_hosts_only_through_the_proxy_and_records_the_rest() {
    let st = setup().await;
    let gw = format!("host.docker.internal:{}", st.upstream);
    let (id, cid) = shell_task(&st, json!({"mode": "allowlist", "allow": [gw]})).await;
    let (_, t) = st.s.get(&format!("/api/tasks/{id}")).await;
    assert_eq!(t["network"]["mode"], "allowlist", "{t}");
    let allow: Vec<&str> = t["network"]["allow"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(allow.contains(&gw.as_str()) && allow.contains(&"api.anthropic.com") && allow.contains(&"registry.npmjs.org"), "{allow:?}");

    // The proxy is in the environment; the allowed gateway works through it.
    let (_, env) = sh(&cid, "env | grep -i _proxy | sort");
    assert!(env.contains("HTTPS_PROXY=http://127.0.0.1:3128") && env.contains("NO_PROXY=localhost,127.0.0.1"), "{env}");
    let (code, out) = sh(&cid, &format!("curl -s -m 10 http://{gw}/v1/messages"));
    assert_eq!((code, out.as_str()), (0, "upstream-ok"));

    // A name that is not allowed: 403 at once, naming the setting; recorded.
    let started = Instant::now();
    let (_, body) = sh(&cid, "curl -s -m 10 http://example.net/");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(body.contains("refused example.net:80") && body.contains("Network panel") && body.contains("[network] allow"), "{body}");
    let (_, code) = sh(&cid, "curl -s -o /dev/null -w '%{http_connect}' -m 10 https://example.net/");
    assert_eq!(code, "403", "CONNECT refused too");
    let (st_code, net) = st.s.get(&format!("/api/tasks/{id}/network")).await;
    assert_eq!(st_code, 200, "{net}");
    let blocked = net["blocked"].as_array().unwrap();
    let b = blocked.iter().find(|b| b["host"] == "example.net").unwrap_or_else(|| panic!("{net}"));
    assert_eq!(b["count"], 2, "{net}");
    assert!(b["last_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(net["running_mode"], "allowlist");

    // No host service: neither directly nor through the proxy (AnyCode's own port too).
    no_direct_route(&cid, st.service);
    not_through_the_proxy(&cid, st.service);
    let main_port: u16 = st.s.base.rsplit(':').next().unwrap().parse().unwrap();
    not_through_the_proxy(&cid, main_port);

    // Allowing a refused host takes effect at once and clears it from the list.
    let (code, net) = st.s.req(reqwest::Method::PUT, &format!("/api/tasks/{id}/network"), Some(json!({"add": ["example.net"]}))).await;
    assert_eq!(code, 200, "{net}");
    assert!(net["allow"].as_array().unwrap().iter().any(|h| h == "example.net"));
    assert!(!net["blocked"].as_array().unwrap().iter().any(|b| b["host"] == "example.net"), "{net}");
    let (code, net) = st.s.req(reqwest::Method::PUT, &format!("/api/tasks/{id}/network"), Some(json!({"add": [format!("host.docker.internal:{}", st.service)]}))).await;
    assert_eq!(code, 200, "{net}");
    let (_, out) = sh(&cid, &format!("curl -s -m 10 http://host.docker.internal:{}/", st.service));
    assert_eq!(out, "host-service", "a gateway the user allowed works at once");
}

#[tokio::test(flavor = "multi_thread")]
async fn none_mode_has_no_network_at_all() {
    let st = setup().await;
    let gw = format!("host.docker.internal:{}", st.upstream);
    let (id, cid) = shell_task(&st, json!({"mode": "none", "allow": [gw]})).await;
    let (_, body) = sh(&cid, &format!("curl -s -m 10 http://{gw}/"));
    assert!(body.contains("`none`") && body.contains("network.mode"), "{body}");
    let (_, code) = sh(&cid, "curl -s -o /dev/null -w '%{http_connect}' -m 10 https://api.anthropic.com/");
    assert_eq!(code, "403");
    no_direct_route(&cid, st.service);
    no_direct_route(&cid, st.upstream);
    let (_, net) = st.s.get(&format!("/api/tasks/{id}/network")).await;
    assert_eq!(net["mode"], "none");
    assert!(net["blocked"].as_array().unwrap().iter().any(|b| b["host"] == "api.anthropic.com"), "{net}");
}

#[tokio::test(flavor = "multi_thread")]
async fn open_mode_keeps_the_direct_route_and_the_proxy_still_guards_host_services() {
    let st = setup().await;
    let gw = format!("host.docker.internal:{}", st.upstream);
    let (_, cid) = shell_task(&st, json!({"mode": "open", "allow": [gw]})).await;
    // Today's behaviour: a direct route to the bridge.
    let (code, out) = sh(&cid, &format!("curl -s --noproxy '*' -m 5 http://host.docker.internal:{}/", st.service));
    assert_eq!((code, out.as_str()), (0, "host-service"));
    let (_, out) = sh(&cid, &format!("curl -s -m 10 http://{gw}/"));
    assert_eq!(out, "upstream-ok");
    not_through_the_proxy(&cid, st.service);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_network_input_is_refused_before_anything_is_made() {
    let st = setup().await;
    for (network, says) in [
        (json!({"mode": "closed"}), "allowlist, none, open"),
        (json!({"allow": ["https://example.com/x"]}), "without scheme"),
        (json!({"allow": ["host.docker.internal"]}), "host.docker.internal:PORT"),
    ] {
        let (code, e) = st.s.post(&format!("/api/projects/{}/tasks", st.project), json!({"title": "x", "agent": "shell", "network": network})).await;
        assert_eq!((code, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{e}");
        assert!(e["error"]["message"].as_str().unwrap().contains(says), "{e}");
    }
    let (_, tasks) = st.s.get("/api/tasks").await;
    assert_eq!(tasks.as_array().unwrap().len(), 0, "nothing made");

    // The project's default applies to its new tasks.
    let (code, p) = st.s.req(reqwest::Method::PUT, &format!("/api/projects/{}/network", st.project), Some(json!({"mode": "none", "allow": ["example.org"]}))).await;
    assert_eq!(code, 200, "{p}");
    let (code, e) = st.s.req(reqwest::Method::PUT, &format!("/api/projects/{}/network", st.project), Some(json!({"mode": "wide"}))).await;
    assert_eq!((code, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")));
    let t = st.s.create_task(&st.project, json!({"title": "dflt", "agent": "shell"})).await;
    assert_eq!(t["network"]["mode"], "none", "{t}");
    assert!(t["network"]["allow"].as_array().unwrap().iter().any(|h| h == "example.org"));
    let (code, e) = st.s.req(reqwest::Method::PUT, &format!("/api/tasks/{}/network", t["id"].as_str().unwrap()), Some(json!({"allow": ["a b"]}))).await;
    assert_eq!((code, e["error"]["code"].as_str()), (422, Some("INVALID_INPUT")), "{e}");
}

/// Issue 14: after a restart, reconcile starts every running sandbox's relay in
/// turn (here one at a time, `relay_starts_at_once = 1`): each relay comes back,
/// its egress proxy listening and its hook port reaching the new server (a hook
/// without the task's token gets the server's 401).
#[tokio::test(flavor = "multi_thread")]
async fn every_relay_comes_back_in_turn_after_anycode_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let repo = make_repo(dir.path());
    let mut cfg = config(&dir.path().join("data"));
    cfg.relay_starts_at_once = 1;
    let s = Server::start_with(dir, repo, cfg.clone()).await;
    let project = s.add_project().await;
    let mut cids = Vec::new();
    for i in 0..4 {
        let t = s.create_task(&project, json!({"title": format!("relay {i}"), "agent": "shell"})).await;
        let cid = t["container_id"].as_str().unwrap().to_string();
        wait_relay(&cid).await;
        cids.push(cid);
    }
    let relays = |cid: &str| sh(cid, "pgrep -f 'anycode-[r]elay' | wc -l").1.trim().parse::<u32>().unwrap_or(0);
    let (dir, repo) = s.shutdown().await;
    // The old server's relays end with it (their exec streams close), freeing the
    // ports for the new server's.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cids.iter().any(|c| relays(c) != 0) {
        assert!(Instant::now() < deadline, "a relay outlived the server that started it");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = Server::start_with(dir, repo, cfg).await;
    let hook = format!("http://127.0.0.1:47777{}", anycode_engine::HOOK_PATH);
    for cid in &cids {
        wait_relay(cid).await;
        let (_, code) = sh(cid, &format!("curl -s -o /dev/null -w '%{{http_code}}' --noproxy '*' -m 5 -X POST -H 'Content-Type: application/json' --data '{{}}' {hook}"));
        assert_eq!(code, "401", "a hook from {cid} reaches the new server");
        assert_eq!(relays(cid), 1, "one relay runs in {cid}");
    }
    drop(s);
}

/// The byte at `i` of a `/blob/N` answer.
fn blob_byte(i: usize) -> u8 {
    (i.wrapping_mul(7) ^ (i >> 11)) as u8
}

/// A bulk upstream on the host's loopback (HTTP/1.1, one request a connection):
/// `GET /blob/N` answers N pattern bytes ([`blob_byte`]); `PUT` answers the
/// sha256 of its body in hex; any other first line that is not HTTP (a raw
/// connection through a CONNECT tunnel) is read to its EOF and answered in upper
/// case, then closed: a client that half-closes gets its answer only if every hop
/// keeps the other half open.
async fn bulk_service() -> u16 {
    use sha2::{Digest, Sha256};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && !head.starts_with(b"raw ") {
                    if s.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                if head.starts_with(b"raw ") {
                    let mut rest = Vec::new();
                    s.read_to_end(&mut rest).await.unwrap();
                    head.extend_from_slice(&rest);
                    let _ = s.write_all(&head.to_ascii_uppercase()).await;
                    let _ = s.shutdown().await;
                    return;
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let first = head.lines().next().unwrap_or_default().to_string();
                let body: Vec<u8> = if let Some(n) = first.strip_prefix("GET /blob/") {
                    let n: usize = n.split(' ').next().unwrap().parse().unwrap();
                    (0..n).map(blob_byte).collect()
                } else {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                        .unwrap_or(0);
                    let mut got = vec![0u8; len];
                    s.read_exact(&mut got).await.unwrap();
                    hex::encode(Sha256::digest(&got)).into_bytes()
                };
                let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    port
}

/// The relay (a static binary in the sandbox, `sandbox-image/relay/anycode-relay.c`)
/// carries bulk both ways byte-exact, many connections at once, and TCP
/// half-close (the Node.js relay before it closed a connection as soon as its
/// client half-closed, losing the answer).
#[tokio::test(flavor = "multi_thread")]
async fn the_relay_carries_bulk_both_ways_byte_exact_and_keeps_half_closed_connections() {
    use sha2::{Digest, Sha256};
    let st = setup().await;
    let bulk = bulk_service().await;
    let gw = format!("host.docker.internal:{bulk}");
    let (_, cid) = shell_task(&st, json!({"mode": "allowlist", "allow": [gw]})).await;
    let (_, rss) = sh(&cid, "ps -o rss= -C anycode-relay");
    let rss_kb: u64 = rss.trim().parse().unwrap_or_else(|_| panic!("no anycode-relay process: {rss:?}"));
    assert!(rss_kb < 8 * 1024, "the relay holds {rss_kb} KB");

    // 24 MB down through the proxy, byte-exact.
    let want = hex::encode(Sha256::digest((0..24_000_000).map(blob_byte).collect::<Vec<u8>>()));
    let (code, got) = sh(&cid, &format!("curl -sf -m 60 http://{gw}/blob/24000000 | sha256sum | cut -d' ' -f1"));
    assert_eq!((code, got.trim()), (0, want.as_str()));

    // 16 MB up: the upstream's sum of what arrived is the sandbox's sum of what left.
    let (code, out) = sh(
        &cid,
        &format!("head -c 16000000 /dev/urandom > /tmp/up && sha256sum /tmp/up | cut -d' ' -f1 && curl -sf -m 60 -H 'Expect:' -T /tmp/up http://{gw}/sum"),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(code, 0, "{out}");
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0], lines[1], "the upload arrived changed");

    // 40 connections at once, 1 MB each, every one byte-exact.
    let want = hex::encode(Sha256::digest((0..1_000_000).map(blob_byte).collect::<Vec<u8>>()));
    let (code, out) = sh(
        &cid,
        &format!("for i in $(seq 40); do (curl -sf -m 60 http://{gw}/blob/1000000 | sha256sum | cut -d' ' -f1) & done; wait"),
    );
    assert_eq!(code, 0, "{out}");
    let sums: Vec<&str> = out.lines().collect();
    assert_eq!(sums.len(), 40, "{out}");
    assert!(sums.iter().all(|s| *s == want), "{out}");

    // A tunnel whose client half-closes after its request still gets the answer.
    let script = format!(
        r#"const s = require("net").connect(3128, "127.0.0.1", () => s.write("CONNECT {gw} HTTP/1.1\r\nHost: {gw}\r\n\r\n"));
let got = "", open = false;
s.on("data", (d) => {{ got += d; if (!open && got.includes("\r\n\r\n")) {{ open = true; got = ""; s.write("raw half-closed request"); s.end(); }} }});
s.on("end", () => {{ console.log(got); process.exit(0); }});
setTimeout(() => {{ console.log("timeout:" + got); process.exit(1); }}, 10000);"#
    );
    let out = std::process::Command::new("docker").args(["exec", &cid, "node", "-e", &script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "RAW HALF-CLOSED REQUEST", "{}", String::from_utf8_lossy(&out.stderr));
}

/// A relay killed inside a running sandbox (by the agent, or the OOM killer) is
/// started again by AnyCode, and the proxy works through the new one.
#[tokio::test(flavor = "multi_thread")]
async fn a_relay_killed_in_a_running_sandbox_is_started_again() {
    let st = setup().await;
    let gw = format!("host.docker.internal:{}", st.upstream);
    let (_, cid) = shell_task(&st, json!({"mode": "allowlist", "allow": [gw]})).await;
    let (_, before) = sh(&cid, "pgrep -x anycode-relay");
    let before = before.trim().to_string();
    assert!(!before.is_empty(), "no relay runs in the sandbox");
    // As the agent's own user (root in the sandbox has no CAP_KILL).
    let (code, _) = sh(&cid, &format!("kill -9 {before}"));
    assert_eq!(code, 0, "the agent could not kill its relay {before}");
    // The first restart comes after a 1 s wait (then 2, 4, ... up to 30 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, now) = sh(&cid, "pgrep -x anycode-relay");
        let now = now.trim();
        if !now.is_empty() && now != before {
            break;
        }
        assert!(Instant::now() < deadline, "no new relay within 20 s of killing {before}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_relay(&cid).await;
    let (code, body) = sh(&cid, &format!("curl -sf -m 10 http://{gw}/"));
    assert_eq!((code, body.as_str()), (0, "upstream-ok"), "the proxy does not work through the new relay");
}
