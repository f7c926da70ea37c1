//! The `stall` section (issue 14, goal 5): a flood against a viewer that never reads
//! its WebSocket (not a byte, so its TCP buffers fill and the server's writes to it
//! block). Floods of 3 s for `secs` in all; after each, Ctrl-C is typed through that
//! same viewer and the time until `yes` is gone from the sandbox (`pgrep` through
//! `docker exec`, polled every 10 ms) is the Ctrl-C latency. Reports the server's RSS
//! growth over the run.

use super::{open_terminal, rss_kb, summary, Setup};
use anycode_testkit::TOKEN;
use anyhow::{bail, Result};
use futures_util::SinkExt;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Whether a `yes` runs in container `cid`.
fn yes_runs(cid: &str) -> bool {
    Command::new("docker").args(["exec", cid, "pgrep", "-x", "yes"]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Runs the section on the bench's task (server `pid`).
pub async fn run(s: &Setup, pid: u32, secs: u64) -> Result<()> {
    let term_id = open_terminal(s, "").await?;
    let url = format!("{}/ws/terminals/{term_id}", s.serve.base.replacen("http", "ws", 1));
    let mut req = url.into_client_request()?;
    req.headers_mut().insert("Authorization", format!("Bearer {TOKEN}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await?;
    // Never read from here on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kb(pid);
    let mut rss_max = rss_before;
    let mut ctrl_c = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        ws.send(Message::Binary(b"yes 'stalled flood 0123456789 abcdefghijklmnopqrstuvwxyz'\r".to_vec().into())).await?;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(200)).await;
            rss_max = rss_max.max(rss_kb(pid));
        }
        if !yes_runs(&s.cid) {
            bail!("the flood did not start (is the viewer's input blocked?)");
        }
        let t0 = Instant::now();
        ws.send(Message::Binary(b"\x03".to_vec().into())).await?;
        while yes_runs(&s.cid) {
            if t0.elapsed() > Duration::from_secs(20) {
                bail!("Ctrl-C did not stop the flood within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ctrl_c.push(t0.elapsed().as_secs_f64() * 1000.0);
        rss_max = rss_max.max(rss_kb(pid));
    }
    let (c50, c95, _) = summary(ctrl_c.clone());
    println!("\nFlood against a viewer that never reads, {secs} s ({} floods of 3 s)", ctrl_c.len());
    println!(
        "  server RSS before {:.1} MB, max during {:.1} MB, growth {:.1} MB (goal < 20 MB)",
        rss_before as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        rss_max.saturating_sub(rss_before) as f64 / 1024.0
    );
    println!("  Ctrl-C (typed by that viewer) to the flood's end in the sandbox: p50 {c50:.1} ms, p95 {c95:.1} ms (goal p95 ≤ 300 ms; includes a docker exec per 10 ms poll)");
    drop(ws);
    Ok(())
}
