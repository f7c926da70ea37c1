//! `--only remote`: the terminal bridge to a sandbox on a remote Docker host (issue
//! 17), against raw `docker -H <host> exec` to the same container, in one run. A
//! second `dockerd` on this machine (testkit's `SecondDockerd`, `tcp://127.0.0.1`)
//! stands in for the host: the figures show what AnyCode adds over the Docker CLI
//! on the same path, not network latency. Also reports the sandbox image's copy to
//! the new host (size, time, MB/s).

use crate::{bridge_echo, bridge_flood, mbps, open_terminal, raw_echo, raw_flood, summary, Setup};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The Docker host the raw baselines (`raw_flood`, `raw_echo`) talk to: `None` is
/// the local engine; this section points it at the second engine while it runs.
static RAW_DOCKER_HOST: Mutex<Option<String>> = Mutex::new(None);

/// The environment of a raw baseline's `docker` command (`DOCKER_HOST` while this
/// section runs).
pub(crate) fn raw_env() -> Vec<(String, String)> {
    let host = RAW_DOCKER_HOST.lock().unwrap_or_else(|p| p.into_inner()).clone();
    host.map(|h| vec![("DOCKER_HOST".to_string(), h)]).unwrap_or_default()
}

/// Runs the section on `s`'s server: adds the host, waits for the image copy,
/// creates a shell task there and measures flood throughput (best of 3,
/// byte-exact) and keystroke echo against raw `docker -H … exec`.
pub(crate) async fn run(s: &mut Setup, flood_mb: u64, echo_samples: usize) -> Result<()> {
    let second = anycode_testkit::dockerd::SecondDockerd::start();
    let started = Instant::now();
    let (st, host) = s.api.req(reqwest::Method::POST, "/api/hosts", Some(json!({"name": "bench-box", "endpoint": second.tcp}))).await;
    if st != 201 {
        bail!("adding the host failed: {host}");
    }
    let image = loop {
        let (_, hosts) = s.api.req(reqwest::Method::GET, "/api/hosts", None).await;
        let h = hosts.as_array().and_then(|a| a.iter().find(|h| h["name"] == "bench-box").cloned()).context("the host is not listed")?;
        match h["image"]["status"].as_str() {
            Some("done") => break h["image"].clone(),
            Some("failed") => bail!("the image copy failed: {}", h["image"]),
            _ if started.elapsed() > Duration::from_secs(900) => bail!("the image copy took over 15 minutes"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let copy_secs = started.elapsed().as_secs_f64();
    let bytes = image["copied_bytes"].as_u64().unwrap_or(0);
    println!("\nRemote host (a second dockerd on tcp://127.0.0.1, the sandbox image copied there)");
    println!("  image copy: {:.0} MB in {copy_secs:.1} s ({:.0} MB/s)", bytes as f64 / 1e6, bytes as f64 / 1e6 / copy_secs);

    let (_, projects) = s.api.req(reqwest::Method::GET, "/api/projects", None).await;
    let pid = projects[0]["id"].as_str().context("no project")?.to_string();
    let t0 = Instant::now();
    let (st, t) = s
        .api
        .req(reqwest::Method::POST, &format!("/api/projects/{pid}/tasks"), Some(json!({"title": "bench remote", "agent": "shell", "record": false, "host": "bench-box"})))
        .await;
    if st != 201 {
        bail!("creating the remote task failed: {t}");
    }
    println!("  task creation there (image present): {:.0} ms", t0.elapsed().as_secs_f64() * 1000.0);
    let (local_task, local_cid) = (s.task.clone(), s.cid.clone());
    s.task = t["id"].as_str().unwrap_or_default().to_string();
    s.cid = t["container_id"].as_str().unwrap_or_default().to_string();
    *RAW_DOCKER_HOST.lock().unwrap_or_else(|p| p.into_inner()) = Some(second.tcp.clone());
    let result = measure(s, flood_mb, echo_samples).await;
    *RAW_DOCKER_HOST.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let _ = s.api.req(reqwest::Method::DELETE, &format!("/api/tasks/{}", s.task), None).await;
    let _ = s.api.req(reqwest::Method::DELETE, "/api/hosts/bench-box", None).await;
    s.task = local_task;
    s.cid = local_cid;
    drop(second);
    result
}

async fn measure(s: &Setup, flood_mb: u64, echo_samples: usize) -> Result<()> {
    let script = format!("yes 'AnyCode flood line 0123456789 abcdefghijklmnopqrstuvwxyz' | head -c {}", flood_mb * 1_000_000);
    let (mut raw_best, mut bridge_best) = (Duration::MAX, Duration::MAX);
    let mut reference = None;
    for _ in 0..3 {
        let (cid, sc) = (s.cid.clone(), script.clone());
        let (n, sha, d) = tokio::task::spawn_blocking(move || raw_flood(&cid, &sc)).await??;
        let (n2, sha2, d2, _) = bridge_flood(s, &script, false).await?;
        if (n2, &sha2) != (n, &sha) {
            bail!("the bridge's output differs from raw docker -H exec: {n2} bytes vs {n}");
        }
        if reference.get_or_insert((n, sha.clone())) != &(n, sha) {
            bail!("raw output differs between runs");
        }
        raw_best = raw_best.min(d);
        bridge_best = bridge_best.min(d2);
    }
    let n = reference.map(|r| r.0).unwrap_or(0);
    let raw_tp = mbps(n, raw_best);
    println!("  throughput, {flood_mb} MB flood, best of 3 (byte-exact)");
    println!("    raw docker -H … exec -t    {raw_tp:>8.1} MB/s");
    println!("    AnyCode                    {:>8.1} MB/s   {:.2} x raw", mbps(n, bridge_best), mbps(n, bridge_best) / raw_tp);
    let term = open_terminal(s, "").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (b50, _, b99) = summary(bridge_echo(&s.serve.base, &term, echo_samples).await?);
    let cid = s.cid.clone();
    let (r50, _, r99) = summary(tokio::task::spawn_blocking(move || raw_echo(&cid, echo_samples)).await??);
    println!("  keystroke echo, {echo_samples} keys (ms)");
    println!("    raw docker -H … exec -it   p50 {r50:.3}  p99 {r99:.3}");
    println!("    AnyCode                    p50 {b50:.3}  p99 {b99:.3}   (p50 {:.2} x raw, p99 {:.2} x raw)", b50 / r50, b99 / r99);
    Ok(())
}
