#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The terminal bridge under load, against a real container and a real WebSocket
//! (issue 3): byte-exact transfers with and without acks, UTF-8 split across chunks,
//! Ctrl-C during a flood, a slow viewer beside a fast one, two viewers resizing, and
//! a recording that plays back to the same bytes.

use anycode_testkit::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

async fn shell_task(s: &Server) -> Value {
    let p = s.add_project().await;
    s.create_task(&p, json!({"title": "bridge", "agent": "shell"})).await
}

async fn open(s: &Server, task: &Value, cmd: &str) -> String {
    let (st, t) = s.post(&format!("/api/tasks/{}/terminals", task["id"].as_str().unwrap()), json!({"cmd": cmd})).await;
    assert_eq!(st, 201, "{t}");
    t["id"].as_str().unwrap().to_string()
}

fn docker_sh(cid: &str, script: &str) -> String {
    let out = std::process::Command::new("docker").args(["exec", cid, "sh", "-c", script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads binary frames until the exit frame; acks each frame when `ack` is set, and
/// sleeps `delay` per frame (a slow client). Returns the bytes, the exit frame and
/// the median binary frame's size.
async fn drain(term: &mut Term, ack: bool, delay: Duration) -> (Vec<u8>, Value, usize) {
    if ack {
        term.ws.send(Message::Text(json!({"type":"ack","bytes":0}).to_string().into())).await.unwrap();
    }
    let mut out = Vec::new();
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "no exit after {} bytes", out.len());
        match tokio::time::timeout(Duration::from_secs(30), term.ws.next()).await.expect("output keeps coming") {
            Some(Ok(Message::Binary(b))) => {
                out.extend_from_slice(&b);
                frames.push(b.len());
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if ack {
                    term.ws.send(Message::Text(json!({"type":"ack","bytes":b.len()}).to_string().into())).await.unwrap();
                }
            }
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_ne!(v["type"], "resync", "a lone viewer is never resynced: flow control paces the process");
                if v["type"] == "exit" {
                    frames.sort_unstable();
                    let median = frames.get(frames.len() / 2).copied().unwrap_or(0);
                    return (out, v, median);
                }
            }
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_megabytes_arrive_byte_exact_with_and_without_acks() {
    let s = Server::start().await;
    let t = shell_task(&s).await;
    let cid = t["container_id"].as_str().unwrap();
    // Random bytes, so every byte value (and invalid UTF-8) is in the stream.
    let want = docker_sh(cid, "head -c 10485760 /dev/urandom > /tmp/blob && sha256sum /tmp/blob | cut -d' ' -f1");
    // Raw mode: the TTY passes bytes through unchanged. The process says READY once
    // echo is off, then waits for one key, so the viewer is there for the first byte.
    let cmd = "stty raw -echo; printf READY; read -r -n1 _; cat /tmp/blob";
    for (ack, delay) in [(false, Duration::ZERO), (true, Duration::ZERO), (true, Duration::from_micros(300)), (false, Duration::from_micros(300))] {
        let id = open(&s, &t, cmd).await;
        let mut term = s.ws(&id).await;
        term.wait_for(20, "READY", |t| t.contains("READY")).await;
        assert_eq!(term.output, b"READY", "nothing but the marker before the key");
        term.send("g").await;
        let (bytes, exit, median_frame) = drain(&mut term, ack, delay).await;
        assert_eq!(exit["code"], 0);
        // Coalescing follows the flood, not the size of Docker's reads (about 4 KiB):
        // the benchmark's goal is a median of 64 KiB; a loaded machine only makes
        // frames larger (more is queued per send), so half that is a safe floor.
        assert!(median_frame >= 32 * 1024, "median frame {median_frame} bytes (ack={ack} delay={delay:?})");
        assert_eq!(bytes.len(), 10 * 1024 * 1024, "ack={ack} delay={delay:?}");
        assert_eq!(hex::encode(Sha256::digest(&bytes)), want.trim(), "ack={ack} delay={delay:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn utf8_split_at_every_offset_arrives_whole_and_records_whole() {
    let s = Server::start().await;
    let t = shell_task(&s).await;
    let term_id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    let mut term = s.ws(&term_id).await;
    // 2-, 3- and 4-byte characters, each written in two parts with a pause between,
    // at every split offset, so they cross Docker's chunks.
    let chars = ["é", "€", "😀"];
    let mut script = String::from("stty -echo; ");
    let mut expected = String::new();
    for c in chars {
        let b = c.as_bytes();
        for cut in 1..b.len() {
            let esc = |x: &[u8]| x.iter().map(|v| format!("\\{:03o}", v)).collect::<String>();
            script.push_str(&format!("printf '[{}'; sleep 0.05; printf '{}]'; ", esc(&b[..cut]), esc(&b[cut..])));
            expected.push_str(&format!("[{c}]"));
        }
    }
    script.push_str("printf '\\n'; stty echo\r");
    term.send(&script).await;
    let raw = {
        let exp = expected.clone();
        term.wait_for(20, "split characters", move |t| t.contains(&exp)).await;
        term.output.clone()
    };
    assert!(String::from_utf8(raw).unwrap().contains(&expected), "bytes arrive whole and in order");
    // The recording has them whole too. It is written beside the live stream, not
    // before it, so the last bytes the viewer saw may reach it a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let played = loop {
        let body = s.http.get(format!("{}/api/terminals/{term_id}/recording", s.base)).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(body.status().as_u16(), 200);
        assert_eq!(body.headers()["content-type"], "application/x-asciicast");
        let text = body.text().await.unwrap();
        let mut lines = text.lines();
        let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(header["version"], 2);
        assert_eq!(header["title"], "bridge");
        let played: String = lines
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e[1] == "o")
            .map(|e| e[2].as_str().unwrap().to_string())
            .collect();
        if played.contains(&expected) || std::time::Instant::now() > deadline {
            break played;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(played.contains(&expected), "recording plays back the same text");
    // The recording plays back to the same bytes as the live stream.
    // The recording may already hold bytes the socket has not delivered yet (or the
    // reverse): compare what both have.
    let n = played.len().min(term.output.len());
    assert_eq!(&played.as_bytes()[..n], &term.output[..n], "recording == live bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_reaches_the_process_during_a_flood() {
    let s = Server::start().await;
    let t = shell_task(&s).await;
    let id = open(&s, &t, "").await;
    let mut term = s.ws(&id).await;
    term.ws.send(Message::Text(json!({"type":"ack","bytes":0}).to_string().into())).await.unwrap();
    term.send("yes flood-flood-flood-flood\r").await;
    // Read a few megabytes of flood, acking like xterm.js does.
    let mut seen = 0usize;
    while seen < 4 * 1024 * 1024 {
        if let Some(Ok(Message::Binary(b))) = tokio::time::timeout(Duration::from_secs(20), term.ws.next()).await.unwrap() {
            seen += b.len();
            term.ws.send(Message::Text(json!({"type":"ack","bytes":b.len()}).to_string().into())).await.unwrap();
        }
    }
    let sent = Instant::now();
    term.send("\x03").await;
    term.send("echo stopped-$((20+22))\r").await;
    let mut tail = Vec::new();
    loop {
        assert!(sent.elapsed() < Duration::from_secs(20), "Ctrl-C did not stop the flood");
        if let Some(Ok(Message::Binary(b))) = tokio::time::timeout(Duration::from_secs(20), term.ws.next()).await.unwrap() {
            term.ws.send(Message::Text(json!({"type":"ack","bytes":b.len()}).to_string().into())).await.unwrap();
            tail.extend_from_slice(&b);
            if tail.len() > 64 * 1024 {
                tail.drain(..tail.len() - 64 * 1024);
            }
            if String::from_utf8_lossy(&tail).contains("stopped-42") {
                break;
            }
        }
    }
    eprintln!("prompt back {:?} after Ctrl-C", sent.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_viewer_never_slows_a_fast_one() {
    let s = Server::start().await;
    let t = shell_task(&s).await;
    let id = open(&s, &t, "").await;
    let mut fast = s.ws(&id).await;
    let mut slow = s.ws(&id).await;
    slow.ws.send(Message::Text(json!({"type":"ack","bytes":0}).to_string().into())).await.unwrap();
    fast.send("yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 60000000; echo; echo flood-$((1+1))-done\r").await;
    // The slow viewer acknowledges nothing; the fast one reads everything.
    let mut got = 0usize;
    let mut tail = Vec::new();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < Duration::from_secs(90), "fast viewer stalled after {got} bytes");
        match tokio::time::timeout(Duration::from_secs(20), fast.ws.next()).await.expect("fast viewer keeps receiving") {
            Some(Ok(Message::Binary(b))) => {
                got += b.len();
                tail.extend_from_slice(&b);
                if tail.len() > 4096 {
                    tail.drain(..tail.len() - 4096);
                }
                if String::from_utf8_lossy(&tail).contains("flood-2-done") {
                    break;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(got > 60_000_000, "the fast viewer got the whole flood: {got}");
    // The slow viewer fell behind and is resynchronised from the scrollback.
    let mut resynced = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), slow.ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("resync") => {
                resynced = true;
                break;
            }
            Ok(Some(Ok(_))) => {}
            _ => break,
        }
    }
    assert!(resynced, "the slow viewer gets a resync");
    // And ends up showing the end of the flood.
    slow.wait_for(20, "the end of the flood after resync", |t| t.contains("flood-2-done")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_two_viewers_the_last_one_that_typed_sets_the_size() {
    let s = Server::start().await;
    let t = shell_task(&s).await;
    let id = t["terminals"][0]["id"].as_str().unwrap().to_string();
    let mut desk = s.ws(&id).await;
    let mut phone = s.ws(&id).await;
    desk.resize(160, 50).await;
    desk.run("stty size", "d1").await;
    assert!(desk.text().contains("50 160"), "{}", desk.text());
    // The phone joins and reports its small screen: the desk typed last, so its size stays.
    phone.resize(40, 20).await;
    desk.run("echo $(stty size)-one", "d2").await;
    assert!(desk.text().contains("50 160-one"), "{}", desk.text());
    // The phone types: its size wins.
    phone.run("echo $(stty size)-two", "p1").await;
    assert!(phone.text().contains("20 40-two"), "{}", phone.text());
    // The desk types again: back to the desk's size.
    desk.run("echo $(stty size)-three", "d3").await;
    assert!(desk.text().contains("50 160-three"), "{}", desk.text());
}

/// "Typing first": while someone types into one terminal, a flood in another is read
/// at most `RATE_WHILE_TYPING` bytes per second, and still arrives whole.
#[tokio::test(flavor = "multi_thread")]
async fn typing_in_one_terminal_slows_a_flood_in_another_and_loses_nothing() {
    let s = Server::start().await;
    let t = shell_task(&s).await;
    let flood_id = open(&s, &t, "").await;
    let typed_id = open(&s, &t, "").await;
    let mut flood = s.ws(&flood_id).await;
    let mut typed = s.ws(&typed_id).await;
    flood.wait_for(20, "a prompt", |t| t.contains('$')).await;
    // 2 MB at 1 MiB/s: about 1.9 s while the other terminal is typed into.
    let bytes: usize = 2_000_000;
    // The flood's own command makes its terminal the one typed into; the keystrokes
    // that follow, every 20 ms, move the priority to the other one.
    flood.send(&format!("yes 0123456789 | head -c {bytes}; echo; echo flood-$((2+2))-done\r")).await;
    let typing = tokio::spawn(async move {
        loop {
            typed.send(" \x7f").await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let start = Instant::now();
    let mut got = Vec::new();
    loop {
        assert!(start.elapsed() < Duration::from_secs(60), "the flood stalled after {} bytes", got.len());
        if let Some(Ok(Message::Binary(b))) = tokio::time::timeout(Duration::from_secs(20), flood.ws.next()).await.expect("output keeps coming") {
            got.extend_from_slice(&b);
            if String::from_utf8_lossy(&got[got.len().saturating_sub(4096)..]).contains("flood-4-done") {
                break;
            }
        }
    }
    let took = start.elapsed();
    typing.abort();
    let lines = String::from_utf8_lossy(&got).matches("0123456789\r\n").count();
    // Every whole line of the flood arrived (yes | head cuts the last one).
    assert_eq!(lines, bytes / 11, "the paced flood lost nothing");
    assert!(took >= Duration::from_millis(1200), "the flood was paced while the other terminal was typed into: {took:?}");
    eprintln!("2 MB beside typing took {took:?}");
}

/// Closing a terminal hangs up its processes, as closing a terminal window does:
/// Docker leaves an exec's processes running when its stream closes.
#[tokio::test(flavor = "multi_thread")]
async fn closing_a_terminal_hangs_up_its_processes() {
    let s = Server::start().await;
    let t = shell_task(&s).await;
    let cid = t["container_id"].as_str().unwrap().to_string();
    let id = open(&s, &t, "").await;
    let other = open(&s, &t, "").await;
    let mut term = s.ws(&id).await;
    term.wait_for(20, "a prompt", |t| t.contains('$')).await;
    // A background job and a foreground one, in different process groups.
    term.send("sleep 4242 & sleep 4343\r").await;
    let running = |pat: &str| docker_sh(&cid, "ps -eo args").lines().any(|l| l.starts_with(pat));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !(running("sleep 4242") && running("sleep 4343")) {
        assert!(Instant::now() < deadline, "the sleeps never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (st, _) = s.delete(&format!("/api/terminals/{id}")).await;
    assert_eq!(st, 204);
    let deadline = Instant::now() + Duration::from_secs(20);
    while running("sleep 4242") || running("sleep 4343") {
        assert!(Instant::now() < deadline, "the closed terminal's processes still run:\n{}", docker_sh(&cid, "ps -eo args"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other terminal of the same task is untouched.
    let mut o = s.ws(&other).await;
    o.send("echo still-$((20+22))\r").await;
    o.wait_for(20, "the other terminal answering", |t| t.contains("still-42")).await;
}

/// Extra terminals hold their PTY in the sandbox (`anycode-pty` under a non-TTY exec,
/// so Docker relays output in large pieces): the shell's parent is the holder, the
/// size a viewer asks for reaches the shell, and the process's exit code comes back.
#[tokio::test(flavor = "multi_thread")]
async fn an_extra_terminal_holds_its_pty_in_the_sandbox() {
    let s = Server::start().await;
    let t = shell_task(&s).await;
    let cid = t["container_id"].as_str().unwrap().to_string();
    let id = open(&s, &t, "").await;
    let mut term = s.ws(&id).await;
    term.wait_for(20, "a prompt", |t| t.contains('$')).await;
    term.resize(133, 41).await;
    term.run("stty size", "sized").await;
    assert!(term.text().contains("41 133"), "the asked size reached the PTY:\n{}", term.text());
    // The shell's parent is the holder, run with the terminal's first size.
    term.run("echo parent=$(tr '\\0' ' ' < /proc/$PPID/cmdline)", "parent").await;
    assert!(term.text().contains("parent=/opt/anycode/bin/anycode-pty 80 24 -- bash -l"), "{}", term.text());
    // Docker holds no TTY for it: the holder's stdout is a pipe, not a PTY.
    let holder_stdout = docker_sh(&cid, "for p in $(pgrep -f '^/opt/anycode/bin/anycode-pty'); do readlink /proc/$p/fd/1; done");
    assert!(holder_stdout.lines().next().is_some_and(|l| l.starts_with("pipe:")), "{holder_stdout}");

    let done = open(&s, &t, "printf 'bye-%s' $((40+2)); exit 7").await;
    let mut d = s.ws(&done).await;
    let exit = d.wait_exit(30).await;
    assert_eq!(exit["code"], 7, "{exit}");
    assert!(d.text().contains("bye-42"), "{}", d.text());
}

/// A sandbox controls what runs in it, the holder included (a dev container can run
/// as root). Without a holder terminals fall back to Docker's TTY; a fake one that
/// floods stderr and writes what it likes gets its stdout shown as terminal output,
/// nothing more, and the server keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_or_hostile_pty_holder_changes_nothing_on_the_host() {
    let s = Server::start().await;
    let holder = "/opt/anycode/bin/anycode-pty";

    // No holder: a TTY exec that Docker resizes.
    let p = s.add_project().await;
    let t = s.create_task(&p, json!({"title": "no holder", "agent": "shell"})).await;
    let cid = t["container_id"].as_str().unwrap().to_string();
    let out = std::process::Command::new("docker").args(["exec", "-u", "0", &cid, "rm", holder]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = open(&s, &t, "").await;
    let mut term = s.ws(&id).await;
    term.wait_for(20, "a prompt", |t| t.contains('$')).await;
    term.resize(120, 33).await;
    term.run("stty size; tty", "sized").await;
    assert!(term.text().contains("33 120"), "{}", term.text());
    term.run("echo parent=$(cat /proc/$PPID/comm)", "parent").await;
    assert!(!term.text().contains("parent=anycode-pty"), "{}", term.text());

    // A fake holder: the hello, 4 MB of stderr, then its own output and input echo.
    let t2 = s.create_task(&p, json!({"title": "fake holder", "agent": "shell"})).await;
    let cid2 = t2["container_id"].as_str().unwrap().to_string();
    let fake = format!(
        "printf '#!/bin/sh\\nprintf \"ACPTY1\\\\n\"\\nhead -c 4000000 /dev/zero | tr \"\\\\\\\\0\" E >&2\\nprintf \"fake-%%s\" $((40+2))\\nexec cat\\n' > {holder}; chmod 755 {holder}"
    );
    let out = std::process::Command::new("docker").args(["exec", "-u", "0", &cid2, "sh", "-c", &fake]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = docker_sh(&cid2, &format!("cat {holder}"));
    assert!(shown.contains("ACPTY1") && shown.contains("exec cat"), "{shown}");
    let rss_before = server_rss_kb(&s);
    let fid = open(&s, &t2, "").await;
    let mut f = s.ws(&fid).await;
    f.wait_for(30, "the fake's stdout", |t| t.contains("fake-42")).await;
    // Its input arrives framed (kind 0, u32 length): the fake's `cat` shows it.
    f.send("typed").await;
    f.wait_for(20, "the framed input echoed by the fake", |t| t.contains("typed")).await;
    assert!(!f.text().contains("EEEE"), "stderr is never terminal output");
    let (st, _) = s.get("/api/tasks").await;
    assert_eq!(st, 200);
    let grown = server_rss_kb(&s).saturating_sub(rss_before);
    assert!(grown < 20 * 1024, "the server grew {grown} KiB reading the fake's stderr");
}

/// RSS of this process, which runs the server (`Server::start` serves in-process).
fn server_rss_kb(_s: &Server) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok()).unwrap()
}
