//! `anycode-bench`: measures AnyCode's terminal bridge (container TTY → Docker →
//! AnyCode → WebSocket) against raw `docker exec` on the same machine, in the same
//! container, in one run, and prints the figures and their ratios.
//!
//! ```text
//! cargo build --release -p anycode -p anycode-bench
//! target/release/anycode-bench            # the full run (a few minutes)
//! target/release/anycode-bench --quick    # smaller sizes, for a smoke run
//! ```
//!
//! It starts a real `anycode serve` (the release binary next to this one) on a
//! loopback port with a temporary data dir, creates a shell task, and measures:
//! throughput of a flood (byte-exact, sha256 checked against raw) with the median
//! WebSocket frame, the same flood and keystrokes against peers (terminado from PyPI,
//! a standard Python `websockets` client, see `peers.rs`), keystroke echo round trips, server memory during a long flood with an acknowledging client and
//! Ctrl-C latency, the memory of idle terminals, and echo latency beside a flood;
//! with `--only scale`, many running tasks on one server (see `scale.rs`).

mod peers;
mod remote;
mod scale;
mod stall;

use anycode_testkit::{make_repo, remove_instance_containers, Api, ServeProcess, Term, TOKEN};
use anyhow::{bail, Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
#[command(about = "Benchmarks AnyCode's terminal bridge against raw docker exec")]
struct Args {
    /// Smaller sizes and shorter runs (a smoke run, not for the README).
    #[arg(long)]
    quick: bool,
    /// Flood size in MB for the throughput test.
    #[arg(long)]
    flood_mb: Option<u64>,
    /// Seconds of the long flood (server memory, Ctrl-C latency).
    #[arg(long)]
    flood_secs: Option<u64>,
    /// Idle terminals to open.
    #[arg(long)]
    idle: Option<usize>,
    /// Seconds to hold the idle terminals.
    #[arg(long)]
    idle_secs: Option<u64>,
    /// The `anycode` binary (default: next to this one).
    #[arg(long)]
    anycode: Option<PathBuf>,
    /// Also measure in headless Chromium through the real web UI (needs Debian's
    /// chromium and `npm ci` in frontend/).
    #[arg(long)]
    browser: bool,
    /// Flood size in MB for the peers section (terminado, Python websockets).
    #[arg(long)]
    peer_mb: Option<u64>,
    /// Runs only these sections (comma-separated): create, throughput, peers (raw,
    /// AnyCode with the Rust and a Python client, terminado), echo (alone and beside a
    /// flood), flood (the long flood: memory, Ctrl-C), stall (the same against a viewer
    /// that never reads), idle, browser;
    /// `scale` and `remote` too: run only when named in --only (many sandboxes; a
    /// second Docker engine with the sandbox image copied to it).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Task counts of the scale section (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [10usize, 100])]
    scale: Vec<usize>,
    /// Seconds of each idle-CPU window of the scale section.
    #[arg(long)]
    scale_idle_secs: Option<u64>,
}

/// The sections `--only` can choose.
const SECTIONS: [&str; 10] = ["create", "throughput", "peers", "echo", "flood", "stall", "idle", "browser", "scale", "remote"];

/// `GET /api/tasks/{id}/diff` of the bench's running task, `n` times with nothing
/// changed and `n` times right after a file changed in the sandbox: milliseconds.
async fn diff_times(s: &Setup, n: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let path = format!("/api/tasks/{}/diff", s.task);
    let (st, d) = s.api.req(reqwest::Method::GET, &path, None).await;
    if st != 200 {
        bail!("diff failed: {d}");
    }
    let (mut unchanged, mut changed) = (Vec::new(), Vec::new());
    for i in 0..n {
        let t = Instant::now();
        s.api.req(reqwest::Method::GET, &path, None).await;
        unchanged.push(t.elapsed().as_secs_f64() * 1000.0);
        let ok = Command::new("docker").args(["exec", &s.cid, "sh", "-c", &format!("echo {i} > /workspace/bench-diff.txt")]).status()?.success();
        if !ok {
            bail!("writing a file in the sandbox failed");
        }
        let t = Instant::now();
        let (st, d) = s.api.req(reqwest::Method::GET, &path, None).await;
        changed.push(t.elapsed().as_secs_f64() * 1000.0);
        if st != 200 || !d.to_string().contains("bench-diff.txt") {
            bail!("the diff does not show the change: {d}");
        }
    }
    Ok((unchanged, changed))
}

/// Task creation as a user sees it: from the `POST /api/projects/{id}/tasks` call to
/// the first byte of the agent terminal's output on its WebSocket (a shell task: its
/// task repository, container, start and prompt), `n` times; the tasks are deleted
/// after. Returns the times in milliseconds.
async fn create_times(s: &Setup, n: usize) -> Result<Vec<f64>> {
    let (_, projects) = s.api.req(reqwest::Method::GET, "/api/projects", None).await;
    let pid = projects[0]["id"].as_str().context("no project")?.to_string();
    let mut out = Vec::new();
    for i in 0..n {
        let started = Instant::now();
        let body = json!({"title": format!("create {i}"), "agent": "shell", "record": false});
        let (st, t) = s.api.req(reqwest::Method::POST, &format!("/api/projects/{pid}/tasks"), Some(body)).await;
        if st != 201 {
            bail!("creating a task failed: {t}");
        }
        let term = t["agent_terminal_id"].as_str().or(t["terminals"][0]["id"].as_str()).context("no agent terminal")?.to_string();
        let mut ws = Term::connect(&s.serve.base, &term, TOKEN).await;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), ws.ws.next()).await {
                Ok(Some(Ok(Message::Binary(b)))) if !b.is_empty() => break,
                Ok(Some(Ok(_))) => continue,
                _ => bail!("no terminal output from a new task within 30 s"),
            }
        }
        out.push(started.elapsed().as_secs_f64() * 1000.0);
        let id = t["id"].as_str().unwrap_or_default();
        s.api.req(reqwest::Method::DELETE, &format!("/api/tasks/{id}"), None).await;
    }
    Ok(out)
}

struct Setup {
    dir: tempfile::TempDir,
    serve: ServeProcess,
    api: Api,
    task: String,
    cid: String,
    instance: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        remove_instance_containers(&self.instance);
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

async fn setup(bin: &Path) -> Result<Setup> {
    let dir = tempfile::tempdir()?;
    let repo = make_repo(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;
    let instance = instance_of(&data);
    let serve = ServeProcess::start(bin, &data, &["--project", repo.to_str().unwrap_or_default()]);
    let api = Api::new(&serve.base);
    let (_, projects) = api.req(reqwest::Method::GET, "/api/projects", None).await;
    let pid = projects[0]["id"].as_str().context("no project")?.to_string();
    let (st, t) = api.req(reqwest::Method::POST, &format!("/api/projects/{pid}/tasks"), Some(json!({"title": "bench", "agent": "shell", "record": false}))).await;
    if st != 201 {
        bail!("creating the task failed: {t}");
    }
    Ok(Setup {
        task: t["id"].as_str().unwrap_or_default().to_string(),
        cid: t["container_id"].as_str().unwrap_or_default().to_string(),
        dir,
        serve,
        api,
        instance,
    })
}

fn instance_of(data: &Path) -> String {
    let canonical = data.canonicalize().unwrap_or_else(|_| data.to_path_buf());
    hex::encode(&Sha256::digest(canonical.to_string_lossy().as_bytes())[..6])
}

async fn open_terminal(s: &Setup, cmd: &str) -> Result<String> {
    let (st, t) = s.api.req(reqwest::Method::POST, &format!("/api/tasks/{}/terminals", s.task), Some(json!({"cmd": cmd}))).await;
    if st != 201 {
        bail!("opening a terminal failed: {t}");
    }
    Ok(t["id"].as_str().unwrap_or_default().to_string())
}

/// Raw baseline: `docker exec -t <cid> sh -c <script>` piped into this process.
fn raw_flood(cid: &str, script: &str) -> Result<(u64, String, Duration)> {
    let start = Instant::now();
    let mut child = Command::new("docker").envs(remote::raw_env()).args(["exec", "-t", cid, "sh", "-c", script]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let mut out = child.stdout.take().context("stdout")?;
    let mut hasher = Sha256::new();
    let mut n = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let k = out.read(&mut buf)?;
        if k == 0 {
            break;
        }
        hasher.update(&buf[..k]);
        n += k as u64;
    }
    child.wait()?;
    Ok((n, hex::encode(hasher.finalize()), start.elapsed()))
}

/// Through AnyCode: a terminal running `script` once a key arrives, read to its exit.
/// The terminal prints `READY` once its echo is off; the timing starts with the key.
async fn bridge_flood(s: &Setup, script: &str, ack: bool) -> Result<(u64, String, Duration, Vec<usize>)> {
    let id = open_terminal(s, &format!("stty -echo; printf READY; read -r -n1 _; stty echo; {script}")).await?;
    let mut term = Term::connect(&s.serve.base, &id, TOKEN).await;
    if ack {
        term.ws.send(Message::Text(json!({"type":"ack","bytes":0}).to_string().into())).await?;
    }
    let mut prefix = Vec::new();
    while !prefix.ends_with(b"READY") {
        match tokio::time::timeout(Duration::from_secs(20), term.ws.next()).await? {
            Some(Ok(Message::Binary(b))) => prefix.extend_from_slice(&b),
            Some(Ok(_)) => {}
            other => bail!("socket ended before READY: {other:?}"),
        }
    }
    let start = Instant::now();
    term.ws.send(Message::Binary(b"g".to_vec().into())).await?;
    let mut hasher = Sha256::new();
    let mut n = 0u64;
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(60), term.ws.next()).await? {
            Some(Ok(Message::Binary(b))) => {
                hasher.update(&b);
                n += b.len() as u64;
                frames.push(b.len());
                if ack {
                    term.ws.send(Message::Text(json!({"type":"ack","bytes":b.len()}).to_string().into())).await?;
                }
            }
            Some(Ok(Message::Text(t))) if t.contains("\"exit\"") => break,
            Some(Ok(_)) => {}
            other => bail!("socket ended: {other:?}"),
        }
    }
    Ok((n, hex::encode(hasher.finalize()), start.elapsed(), frames))
}

/// The median of frame sizes.
fn median_frame(mut frames: Vec<usize>) -> usize {
    frames.sort_unstable();
    frames.get(frames.len() / 2).copied().unwrap_or(0)
}

fn mbps(n: u64, d: Duration) -> f64 {
    n as f64 / 1e6 / d.as_secs_f64()
}

/// Echo round trips through bash's line editor: type `a`, wait for it, erase it.
async fn bridge_echo(base: &str, term_id: &str, samples: usize) -> Result<Vec<f64>> {
    let mut term = Term::connect(base, term_id, TOKEN).await;
    term.ws.send(Message::Text(json!({"type":"ack","bytes":0}).to_string().into())).await?;
    term.ws.send(Message::Binary(b"\x15".to_vec().into())).await?; // clear the line
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Drain the replay and prompt.
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), term.ws.next()).await {}
    let mut rtts = Vec::with_capacity(samples);
    for i in 0..samples {
        let (key, expect): (&[u8], &[u8]) = if i % 2 == 0 { (b"a", b"a") } else { (b"\x7f", b"\x08") };
        let t0 = Instant::now();
        term.ws.send(Message::Binary(key.to_vec().into())).await?;
        let mut got = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(5), term.ws.next()).await? {
                Some(Ok(Message::Binary(b))) => {
                    got.extend_from_slice(&b);
                    term.ws.send(Message::Text(json!({"type":"ack","bytes":b.len()}).to_string().into())).await?;
                    if got.windows(expect.len()).any(|w| w == expect) {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                other => bail!("socket ended: {other:?}"),
            }
        }
        rtts.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(rtts)
}

/// The same round trips through `docker exec -it <cid> bash` in a host PTY.
fn raw_echo(cid: &str, samples: usize) -> Result<Vec<f64>> {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    let pty = native_pty_system().openpty(PtySize { rows: 24, cols: 80, pixel_width: 0, pixel_height: 0 })?;
    let mut cmd = CommandBuilder::new("docker");
    for (k, v) in remote::raw_env() {
        cmd.env(k, v);
    }
    cmd.args(["exec", "-it", "-e", "TERM=xterm-256color", cid, "bash", "--norc"]);
    let mut child = pty.slave.spawn_command(cmd)?;
    drop(pty.slave);
    let mut reader = pty.master.try_clone_reader()?;
    let mut writer = pty.master.take_writer()?;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(800));
    while rx.try_recv().is_ok() {}
    let mut rtts = Vec::with_capacity(samples);
    for i in 0..samples {
        let (key, expect): (&[u8], &[u8]) = if i % 2 == 0 { (b"a", b"a") } else { (b"\x7f", b"\x08") };
        let t0 = Instant::now();
        writer.write_all(key)?;
        writer.flush()?;
        let mut got = Vec::new();
        loop {
            let chunk = rx.recv_timeout(Duration::from_secs(5)).context("raw echo timed out")?;
            got.extend_from_slice(&chunk);
            if got.windows(expect.len()).any(|w| w == expect) {
                break;
            }
        }
        rtts.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = writer.write_all(b"\x15exit\r");
    let _ = child.kill();
    Ok(rtts)
}

fn summary(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    (pct(&v, 0.5), pct(&v, 0.95), pct(&v, 0.99))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = match args.anycode {
        Some(b) => b,
        None => std::env::current_exe()?.with_file_name("anycode"),
    };
    if !bin.exists() {
        bail!("{} not found: build it with `cargo build --release -p anycode`", bin.display());
    }
    let flood_mb = args.flood_mb.unwrap_or(if args.quick { 20 } else { 100 });
    let flood_secs = args.flood_secs.unwrap_or(if args.quick { 10 } else { 60 });
    let idle = args.idle.unwrap_or(if args.quick { 50 } else { 200 });
    let idle_secs = args.idle_secs.unwrap_or(if args.quick { 10 } else { 60 });
    let echo_samples = if args.quick { 200 } else { 1000 };
    for o in &args.only {
        if !SECTIONS.contains(&o.as_str()) {
            bail!("unknown section {o:?} for --only; the sections are {}", SECTIONS.join(", "));
        }
    }
    let want = |section: &str| args.only.is_empty() || args.only.iter().any(|o| o == section);
    if args.only.iter().any(|o| o == "scale") {
        let secs = args.scale_idle_secs.unwrap_or(if args.quick { 10 } else { 30 });
        for &n in &args.scale {
            scale::run(&bin, n.max(1), secs).await?;
        }
        if args.only.len() == 1 {
            return Ok(());
        }
    }

    let mut s = setup(&bin).await?;
    let pid = s.serve.child.id();
    if args.only.iter().any(|o| o == "remote") {
        remote::run(&mut s, flood_mb, echo_samples).await?;
        if args.only.len() == 1 {
            return Ok(());
        }
    }
    println!("AnyCode terminal bridge benchmark — server pid {pid}, container {}", &s.cid[..12]);

    // 0. Task creation: API call to the first terminal output.
    if want("create") {
        let n = if args.quick { 5 } else { 20 };
        let (p50, p95, p99) = summary(create_times(&s, n).await?);
        println!("\nTask creation (POST to first terminal output, {n} shell tasks): p50 {p50:.0} ms, p95 {p95:.0} ms, p99 {p99:.0} ms (goal: ≤ 350 ms)");
    }

    // 0b. Bringing the sandbox's work out: the diff of a running task (a snapshot
    // exec in the sandbox, a fetch over the exec stream when something changed).
    if want("create") {
        let n = if args.quick { 5 } else { 20 };
        let (unchanged, changed) = diff_times(&s, n).await?;
        let (u50, u95, _) = summary(unchanged);
        let (c50, c95, _) = summary(changed);
        println!("Diff of a running task ({n} each): unchanged p50 {u50:.0} ms, p95 {u95:.0} ms; after a file changed p50 {c50:.0} ms, p95 {c95:.0} ms");
    }

    // 1. Throughput, byte-exact.
    if want("throughput") {
        let script = format!("yes 'AnyCode flood line 0123456789 abcdefghijklmnopqrstuvwxyz' | head -c {}", flood_mb * 1_000_000);
        // CPU of Docker's daemons (dockerd, containerd, the shims) during each kind of
        // flood, summed over the rounds: the TTY exec relays the PTY's ~4 KiB reads,
        // AnyCode's terminals a holder's large pipe writes (`ANYCODE_PTY_HOLDER=off`
        // makes them TTY execs too).
        let parts = scale::docker_pids(&s.cid);
        if !parts.iter().any(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.starts_with("containerd-shim"))) {
            bail!("no containerd shim found for container {}", s.cid);
        }
        let docker_cpu = || scale::pids_ticks(&parts);
        let (mut raw_cpu, mut bridge_cpu, mut bridge_own) = (0u64, 0u64, 0u64);
        let c0 = docker_cpu();
        let (raw_n, raw_sha, mut raw_best) = raw_flood(&s.cid, &script)?;
        raw_cpu += docker_cpu() - c0;
        let mut bridge_best = Duration::MAX;
        let mut bridge_ack_best = Duration::MAX;
        let (mut frames, mut frames_ack) = (Vec::new(), Vec::new());
        for round in 0..3 {
            if round > 0 {
                let c0 = docker_cpu();
                let (n, sha, d) = raw_flood(&s.cid, &script)?;
                raw_cpu += docker_cpu() - c0;
                if (n, &sha) != (raw_n, &raw_sha) {
                    bail!("raw docker exec output differs between runs");
                }
                raw_best = raw_best.min(d);
            }
            let (c0, a0) = (docker_cpu(), scale::pids_ticks(&[pid]));
            let (n2, sha2, d2, f2) = bridge_flood(&s, &script, false).await?;
            bridge_cpu += docker_cpu() - c0;
            bridge_own += scale::pids_ticks(&[pid]) - a0;
            frames.extend(f2);
            if (n2, &sha2) != (raw_n, &raw_sha) {
                bail!("bridge output differs from raw: {n2} bytes {sha2} vs {raw_n} bytes {raw_sha}");
            }
            bridge_best = bridge_best.min(d2);
            let (n3, sha3, d3, f3) = bridge_flood(&s, &script, true).await?;
            frames_ack.extend(f3);
            if (n3, &sha3) != (raw_n, &raw_sha) {
                bail!("bridge (acking) output differs from raw");
            }
            bridge_ack_best = bridge_ack_best.min(d3);
        }
        let raw_tp = mbps(raw_n, raw_best);
        println!("\nThroughput, {flood_mb} MB flood, best of 3 (byte-exact: sha256 equal to raw)");
        println!("  raw docker exec -t             {:>8.1} MB/s", raw_tp);
        println!("  AnyCode, client without acks   {:>8.1} MB/s   {:.2} x raw", mbps(raw_n, bridge_best), mbps(raw_n, bridge_best) / raw_tp);
        println!("  AnyCode, acking client         {:>8.1} MB/s   {:.2} x raw", mbps(raw_n, bridge_ack_best), mbps(raw_n, bridge_ack_best) / raw_tp);
        println!(
            "  median WebSocket frame: {} bytes without acks, {} bytes with acks (goal: ≥ 65536)",
            median_frame(frames),
            median_frame(frames_ack)
        );
        // Ticks are 10 ms; the rounds moved 3 × flood_mb MB each way.
        let per_mb = |ticks: u64| ticks as f64 * 10.0 / (3 * flood_mb) as f64;
        println!(
            "  Docker's daemons' CPU per MB: raw docker exec -t {:.1} ms, AnyCode {:.1} ms ({:.2} x raw); AnyCode itself {:.1} ms",
            per_mb(raw_cpu),
            per_mb(bridge_cpu),
            per_mb(bridge_cpu) / per_mb(raw_cpu).max(f64::MIN_POSITIVE),
            per_mb(bridge_own)
        );
    }

    // 1b. The same against peers and through a standard Python client.
    if want("peers") {
        let mb = args.peer_mb.unwrap_or(if args.quick { 20 } else { 50 });
        peers::run(&s, s.dir.path(), mb, 3, if args.quick { 200 } else { 1000 }).await?;
    }

    // 2. Echo round trips.
    if want("echo") {
        let echo_term = open_terminal(&s, "").await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (b50, b95, b99) = summary(bridge_echo(&s.serve.base, &echo_term, echo_samples).await?);
        let cid = s.cid.clone();
        let (r50, r95, r99) = summary(tokio::task::spawn_blocking(move || raw_echo(&cid, echo_samples)).await??);
        println!("\nKeystroke echo round trip through bash, {echo_samples} keys (ms)");
        println!("  raw docker exec -it   p50 {r50:.3}  p95 {r95:.3}  p99 {r99:.3}");
        println!("  AnyCode WebSocket     p50 {b50:.3}  p95 {b95:.3}  p99 {b99:.3}   (p99 {:.2} x raw)", b99 / r99);

        // 3. Echo beside a flooding terminal, in rounds that alternate with quiet ones,
        // so that drift in the machine's load hits both alike.
        let rounds = 5;
        let per_round = (echo_samples / 2 / rounds).max(20);
        let (mut quiet, mut beside) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            quiet.extend(bridge_echo(&s.serve.base, &echo_term, per_round).await?);
            let flood_term = open_terminal(&s, "yes 'flooding the other terminal 0123456789'").await?;
            let base = s.serve.base.clone();
            let id = flood_term.clone();
            let flood_reader = tokio::spawn(async move {
                let mut t = Term::connect(&base, &id, TOKEN).await;
                let _ = t.ws.send(Message::Text(json!({"type":"ack","bytes":0}).to_string().into())).await;
                while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), t.ws.next()).await {
                    if let Message::Binary(b) = m {
                        let _ = t.ws.send(Message::Text(json!({"type":"ack","bytes":b.len()}).to_string().into())).await;
                    }
                }
            });
            tokio::time::sleep(Duration::from_millis(500)).await;
            beside.extend(bridge_echo(&s.serve.base, &echo_term, per_round).await?);
            flood_reader.abort();
            // Closing the terminal hangs up its `yes`.
            let _ = s.api.req(reqwest::Method::DELETE, &format!("/api/terminals/{flood_term}"), None).await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let (_, _, q99) = summary(quiet);
        // The raw baseline beside a raw flood (unpaced: its reader discards as fast as it can).
        let cid = s.cid.clone();
        let raw_beside = tokio::task::spawn_blocking(move || -> Result<Vec<f64>> {
            let mut flood = Command::new("docker")
                .args(["exec", "-t", &cid, "sh", "-c", "yes 'flooding the other terminal 0123456789'"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?;
            let mut out = flood.stdout.take().context("stdout")?;
            let drain = std::thread::spawn(move || {
                let mut buf = vec![0u8; 256 * 1024];
                while matches!(out.read(&mut buf), Ok(n) if n > 0) {}
            });
            std::thread::sleep(Duration::from_secs(1));
            let r = raw_echo(&cid, echo_samples / 2);
            let _ = flood.kill();
            let _ = drain.join();
            r
        })
        .await??;
        let (rf50, _, rf99) = summary(raw_beside);
        // The flooding command was started with `docker exec`; stop it inside the container too.
        let _ = Command::new("docker").args(["exec", &s.cid, "pkill", "-f", "flooding the other terminal"]).status();
        println!("  raw beside a raw flood p50 {rf50:.3}  p99 {rf99:.3}   (p99 {:.2} x quiet raw)", rf99 / r99);
        let (f50, _f95, f99) = summary(beside);
        println!(
            "  AnyCode beside a flood p50 {f50:.3}  p99 {f99:.3}   (p99 {:.2} x quiet p99 {q99:.3} of the alternating rounds)",
            f99 / q99
        );
    }

    // 4. Long flood: server memory, Ctrl-C latency.
    if want("flood") {
        let term_id = open_terminal(&s, "").await?;
        let mut term = Term::connect(&s.serve.base, &term_id, TOKEN).await;
        term.ws.send(Message::Text(json!({"type":"ack","bytes":0}).to_string().into())).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_before = rss_kb(pid);
        let mut rss_max = rss_before;
        let mut ctrl_c = Vec::new();
        let mut flooded = 0u64;
        let end = Instant::now() + Duration::from_secs(flood_secs);
        let mut round = 0;
        while Instant::now() < end {
            round += 1;
            term.ws.send(Message::Binary(b"yes 'long flood 0123456789 abcdefghijklmnopqrstuvwxyz'\r".to_vec().into())).await?;
            let until = Instant::now() + Duration::from_secs(3).min(end.saturating_duration_since(Instant::now()).max(Duration::from_millis(500)));
            while Instant::now() < until {
                if let Ok(Some(Ok(Message::Binary(b)))) = tokio::time::timeout(Duration::from_secs(1), term.ws.next()).await {
                    flooded += b.len() as u64;
                    term.ws.send(Message::Text(json!({"type":"ack","bytes":b.len()}).to_string().into())).await?;
                }
                rss_max = rss_max.max(rss_kb(pid));
            }
            // Only the command's output has the computed value; its echo has `$((1+1))`.
            let marker = format!("ctrlc-{round}-2");
            let t0 = Instant::now();
            term.ws.send(Message::Binary(b"\x03".to_vec().into())).await?;
            term.ws.send(Message::Binary(format!("echo ctrlc-{round}-$((1+1))\r").into_bytes().into())).await?;
            let mut tail: Vec<u8> = Vec::new();
            loop {
                match tokio::time::timeout(Duration::from_secs(20), term.ws.next()).await? {
                    Some(Ok(Message::Binary(b))) => {
                        flooded += b.len() as u64;
                        term.ws.send(Message::Text(json!({"type":"ack","bytes":b.len()}).to_string().into())).await?;
                        tail.extend_from_slice(&b);
                        if tail.len() > 8192 {
                            tail.drain(..tail.len() - 8192);
                        }
                        if String::from_utf8_lossy(&tail).contains(&marker) {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    other => bail!("socket ended: {other:?}"),
                }
            }
            ctrl_c.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        let (c50, c95, _) = summary(ctrl_c.clone());
        println!("\nLong flood, {flood_secs} s, acking client ({:.0} MB delivered)", flooded as f64 / 1e6);
        println!("  server RSS before {:.1} MB, max during {:.1} MB, growth {:.1} MB", rss_before as f64 / 1024.0, rss_max as f64 / 1024.0, (rss_max.saturating_sub(rss_before)) as f64 / 1024.0);
        println!("  Ctrl-C to prompt over {} floods: p50 {c50:.1} ms, p95 {c95:.1} ms", ctrl_c.len());
        drop(term);
    }

    // 4b. The same against a viewer that never reads.
    if want("stall") {
        stall::run(&s, pid, flood_secs).await?;
    }

    // 5. Idle terminals.
    if want("idle") {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let rss0 = rss_kb(pid);
        let mut idle_terms = Vec::new();
        for _ in 0..idle {
            let id = open_terminal(&s, "").await?;
            let t = Term::connect(&s.serve.base, &id, TOKEN).await;
            idle_terms.push((id, t));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss1 = rss_kb(pid);
        eprintln!("holding {idle} idle terminals for {idle_secs} s…");
        tokio::time::sleep(Duration::from_secs(idle_secs)).await;
        let rss2 = rss_kb(pid);
        let mut alive = 0;
        for (_, t) in idle_terms.iter_mut() {
            t.send("echo alive-$((1+1))\r").await;
        }
        for (_, t) in idle_terms.iter_mut() {
            let ok = tokio::time::timeout(Duration::from_secs(10), async {
                while !t.text().contains("alive-2") {
                    match t.ws.next().await {
                        Some(Ok(Message::Binary(b))) => t.output.extend_from_slice(&b),
                        Some(Ok(_)) => {}
                        _ => return false,
                    }
                }
                true
            })
            .await
            .unwrap_or(false);
            if ok {
                alive += 1;
            }
        }
        let per = (rss1.saturating_sub(rss0)) as f64 / idle as f64;
        for (id, t) in idle_terms {
            drop(t);
            let _ = s.api.req(reqwest::Method::DELETE, &format!("/api/terminals/{id}"), None).await;
        }
        println!("\nIdle terminals: {idle} open with a viewer each, held {idle_secs} s");
        println!("  server RSS +{:.1} MB, {per:.1} KiB per terminal (each prompt's scrollback included); {alive}/{idle} answered afterwards", (rss1.saturating_sub(rss0)) as f64 / 1024.0);
        println!("  server RSS after the hold {:+.1} MB against just after opening", (rss2 as f64 - rss1 as f64) / 1024.0);
    }

    if args.browser || args.only.iter().any(|o| o == "browser") {
        browser(&s, pid, flood_mb, flood_secs).await?;
    }
    Ok(())
}

/// Runs frontend/bench/browser.mjs against this server and prints its figures.
async fn browser(s: &Setup, pid: u32, flood_mb: u64, flood_secs: u64) -> Result<()> {
    let frontend = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../frontend"));
    let url = s.serve.login_url().await;
    let rss_before = rss_kb(pid);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop2, max) = (stop.clone(), std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_before)));
    let max2 = max.clone();
    let sampler = std::thread::spawn(move || {
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            max2.fetch_max(rss_kb(pid), std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let out = tokio::process::Command::new("node")
        .arg("bench/browser.mjs")
        .args([&url, &s.task, &flood_mb.to_string(), &flood_secs.to_string()])
        .current_dir(&frontend)
        .output()
        .await
        .context("running node bench/browser.mjs")?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    if !out.status.success() {
        bail!("the browser benchmark failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    // What the page script reports on the side (PROFILE=<file>: the page's top self times).
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("browser benchmark output")?;
    let nums = |k: &str| -> Vec<f64> { v[k].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default() };
    let path_ms = v["path_ms"].as_f64().unwrap_or(f64::NAN);
    let mem_ms = v["memory_ms"].as_f64().unwrap_or(f64::NAN);
    let (e50, e95, e99) = summary(nums("echo_ms"));
    let (_, c95, _) = summary(nums("ctrl_c_ms"));
    let (l50, _, l99) = summary(nums("lag_ms"));
    println!(
        "\nIn headless Chromium through the web UI (xterm.js renderer asked: {}, used: {}; raster: {})",
        v["renderer"].as_str().unwrap_or("?"),
        v["renderer_used"].as_str().unwrap_or("?"),
        v["raster"].as_str().unwrap_or("?")
    );
    println!("  {flood_mb} MB through the whole path {:.0} ms ({:.1} MB/s); from memory {:.0} ms ({:.1} MB/s): {:.2} x memory",
        path_ms, flood_mb as f64 * 1000.0 / path_ms, mem_ms, flood_mb as f64 * 1000.0 / mem_ms, mem_ms / path_ms);
    println!("  echo measured in the page: p50 {e50:.2} ms  p95 {e95:.2} ms  p99 {e99:.2} ms");
    println!("  {flood_secs} s of floods with the page attached: server RSS growth {:.1} MB; page event-loop lag p50 {l50:.0} ms, p99 {l99:.0} ms; Ctrl-C to prompt p95 {c95:.0} ms",
        (max.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(rss_before)) as f64 / 1024.0);
    Ok(())
}
