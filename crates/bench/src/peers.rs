//! The peers section: the same flood and the same keystrokes, in one run and against
//! the same container, through
//! - raw `docker exec` (the baseline),
//! - AnyCode with this benchmark's Rust client,
//! - AnyCode with a standard Python `websockets` client,
//! - terminado (Jupyter's terminal server, `docker exec -it <container> bash` in its
//!   PTY) with the same Python client.
//!
//! terminado and websockets come from PyPI, installed by the benchmark into its own
//! venv (kept in the user's cache directory and reused). The Python side is
//! `peers.py`, written next to the run's temporary data.

use super::{bridge_echo, bridge_flood, mbps, median_frame, open_terminal, raw_echo, raw_flood, summary, Setup};
use anycode_testkit::TOKEN;
use anyhow::{bail, Context, Result};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PEERS_PY: &str = include_str!("peers.py");
/// Pinned, so runs on different days measure the same peers.
const REQUIREMENTS: [&str; 2] = ["terminado==0.18.1", "websockets==17.4"];

/// The venv's python, made (and the requirements installed from PyPI) if needed.
fn venv_python() -> Result<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .context("no cache directory (set XDG_CACHE_HOME or HOME)")?;
    // One venv per set of requirements: changing a pin makes a fresh one.
    let tag = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(REQUIREMENTS.join(" ").as_bytes())[..6]);
    let venv = cache.join("anycode-bench").join(format!("venv-{tag}"));
    let python = venv.join("bin").join("python");
    let ready = |p: &Path| Command::new(p).args(["-c", "import terminado, websockets"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if python.exists() && ready(&python) {
        return Ok(python);
    }
    eprintln!("installing {} from PyPI into {} …", REQUIREMENTS.join(", "), venv.display());
    let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().context("running python3 -m venv")?;
    if !made.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let pip = Command::new(venv.join("bin").join("pip")).args(["install", "-q"]).args(REQUIREMENTS).status().context("running pip")?;
    if !pip.success() || !ready(&python) {
        bail!("installing {} into {} failed", REQUIREMENTS.join(", "), venv.display());
    }
    Ok(python)
}

/// terminado serving on a loopback port; killed when dropped.
struct Terminado {
    child: Child,
    port: u16,
}

impl Terminado {
    fn start(python: &Path, script: &Path, cid: &str) -> Result<Terminado> {
        let mut child = Command::new(python).arg(script).args(["terminado", cid]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let out = child.stdout.take().context("terminado's stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(out).read_line(&mut line)?;
        match line.trim().parse() {
            Ok(port) => Ok(Terminado { child, port }),
            Err(_) => {
                let _ = child.kill();
                bail!("terminado did not start (said {line:?})")
            }
        }
    }
}

impl Drop for Terminado {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one `peers.py` client command and parses its JSON line.
async fn py(python: &Path, script: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let out = tokio::process::Command::new(python)
        .arg(script)
        .args(args)
        .env("ANYCODE_BENCH_TOKEN", TOKEN)
        .output()
        .await
        .context("running peers.py")?;
    if !out.status.success() {
        bail!("peers.py {} failed:\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("peers.py output: {}", String::from_utf8_lossy(&out.stdout)))
}

/// One flood of `bytes` through the Python client, which checks the output against
/// what the TTY makes of it (`\n` → `\r\n`, so `tty_bytes` arrive): (MB/s, median frame).
async fn py_flood(python: &Path, script: &Path, url: &str, proto: &str, bytes: u64, tty_bytes: u64) -> Result<(f64, f64)> {
    let v = py(python, script, &["flood", url, proto, &bytes.to_string()]).await?;
    if v["exact"] != true || v["bytes"].as_u64() != Some(tty_bytes) {
        bail!("{proto} through the Python client was not byte-exact: {v}");
    }
    let secs = v["secs"].as_f64().context("secs")?;
    Ok((tty_bytes as f64 / 1e6 / secs, v["median_frame"].as_f64().unwrap_or(f64::NAN)))
}

async fn py_echo(python: &Path, script: &Path, url: &str, proto: &str, keys: usize) -> Result<Vec<f64>> {
    let v = py(python, script, &["echo", url, proto, &keys.to_string()]).await?;
    Ok(v["echo_ms"].as_array().map(|a| a.iter().filter_map(|x| x.as_f64()).collect()).unwrap_or_default())
}

fn spread(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{lo:.1}–{hi:.1}")
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

pub(crate) async fn run(s: &Setup, work: &Path, mb: u64, rounds: usize, keys: usize) -> Result<()> {
    let python = tokio::task::spawn_blocking(venv_python).await??;
    let script = work.join("peers.py");
    std::fs::write(&script, PEERS_PY)?;
    let terminado = Terminado::start(&python, &script, &s.cid)?;
    let terminado_url = format!("ws://127.0.0.1:{}/websocket", terminado.port);
    let ws_base = s.serve.base.replacen("http://", "ws://", 1);
    let bytes = mb * 1_000_000;
    let script_line = format!("yes 'AnyCode flood line 0123456789 abcdefghijklmnopqrstuvwxyz' | head -c {bytes}");

    let (mut raw, mut rust, mut py_any, mut py_term) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut rust_frames, mut py_any_frames, mut py_term_frames) = (Vec::new(), Vec::new(), Vec::new());
    // The raw run's byte count and sha256: what every path must deliver.
    let mut raw_first: Option<(u64, String)> = None;
    // Rounds alternate the paths, so drift in the machine's load hits all alike.
    for _ in 0..rounds {
        let cid = s.cid.clone();
        let line = script_line.clone();
        let (n, sha, d) = tokio::task::spawn_blocking(move || raw_flood(&cid, &line)).await??;
        let (tty_n, raw_sha) = raw_first.get_or_insert((n, sha.clone())).clone();
        if (n, &sha) != (tty_n, &raw_sha) {
            bail!("raw docker exec output differs between rounds");
        }
        raw.push(mbps(n, d));

        let (n, sha2, d, frames) = bridge_flood(s, &script_line, false).await?;
        if (n, &sha2) != (tty_n, &raw_sha) {
            bail!("AnyCode with the Rust client was not byte-exact");
        }
        rust.push(mbps(n, d));
        rust_frames.push(median_frame(frames) as f64);

        let term = open_terminal(s, "").await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (tp, frame) = py_flood(&python, &script, &format!("{ws_base}/ws/terminals/{term}"), "anycode", bytes, tty_n).await?;
        let _ = s.api.req(reqwest::Method::DELETE, &format!("/api/terminals/{term}"), None).await;
        py_any.push(tp);
        py_any_frames.push(frame);

        let (tp, frame) = py_flood(&python, &script, &terminado_url, "terminado", bytes, tty_n).await?;
        py_term.push(tp);
        py_term_frames.push(frame);
    }

    // Echo: the same keys through each path, one after the other.
    let term = open_terminal(s, "").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e_py_any = summary(py_echo(&python, &script, &format!("{ws_base}/ws/terminals/{term}"), "anycode", keys).await?);
    let e_rust = summary(bridge_echo(&s.serve.base, &term, keys).await?);
    let _ = s.api.req(reqwest::Method::DELETE, &format!("/api/terminals/{term}"), None).await;
    let e_py_term = summary(py_echo(&python, &script, &terminado_url, "terminado", keys).await?);
    let cid = s.cid.clone();
    let e_raw = summary(tokio::task::spawn_blocking(move || raw_echo(&cid, keys)).await??);
    drop(terminado);

    let raw_best = best(&raw);
    let mid = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!("\nPeers: {mb} MB flood, best of {rounds} (spread in brackets), byte-exact (sha256 checked); same container, same run");
    println!("  path                                   MB/s               x raw   median frame");
    println!("  raw docker exec -t                     {:>6.1} [{}]", raw_best, spread(&raw));
    for (name, v, frames) in [
        ("AnyCode, its Rust client (no acks)   ", &rust, &rust_frames),
        ("AnyCode, Python websockets client    ", &py_any, &py_any_frames),
        ("terminado, Python websockets client  ", &py_term, &py_term_frames),
    ] {
        println!("  {name}  {:>6.1} [{}]   {:.2}    {:.0} bytes", best(v), spread(v), best(v) / raw_best, mid(frames));
    }
    println!(
        "  AnyCode ÷ terminado, both with the Python client: {:.2} x (goal: ≥ 1.3); AnyCode (Python) ÷ raw: {:.2} x (goal: ≥ 0.95)",
        best(&py_any) / best(&py_term),
        best(&py_any) / raw_best
    );
    println!("  per round, AnyCode (Python) ÷ terminado: {}", ratios(&py_any, &py_term));
    println!("  per round, AnyCode (Python) ÷ raw:       {}", ratios(&py_any, &raw));
    println!("\nPeers: keystroke echo through bash, {keys} keys (ms)");
    for (name, (p50, p95, p99)) in [
        ("raw docker exec -it                ", e_raw),
        ("AnyCode, Python websockets client  ", e_py_any),
        ("AnyCode, its Rust client           ", e_rust),
        ("terminado, Python websockets client", e_py_term),
    ] {
        println!("  {name}  p50 {p50:.3}  p95 {p95:.3}  p99 {p99:.3}   (p50 {:.2} x raw, p99 {:.2} x raw)", p50 / e_raw.0, p99 / e_raw.2);
    }
    println!("  goal for AnyCode with the Python client: p50 ≤ 0.6 ms, p99 ≤ 1.0 ms");
    Ok(())
}

fn ratios(a: &[f64], b: &[f64]) -> String {
    a.iter().zip(b).map(|(x, y)| format!("{:.2}", x / y)).collect::<Vec<_>>().join(", ")
}
