use crate::client::{Client, ServerArgs};
use anyhow::{anyhow, Context};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::Write;
use std::process::ExitCode;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// Ctrl-] detaches, as in telnet.
const DETACH: u8 = 0x1d;

#[derive(Args)]
pub struct AttachArgs {
    /// Task id (or a terminal id).
    task: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// Restores the terminal mode when dropped, also on errors.
struct RawMode;
impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

pub async fn run(args: AttachArgs) -> anyhow::Result<ExitCode> {
    let c = Client::new(&args.server)?;
    let term_id = match c.get::<Value>(&format!("/api/tasks/{}", args.task)).await {
        Ok(t) => t["terminals"][0]["id"].as_str().ok_or_else(|| anyhow!("task has no terminal"))?.to_string(),
        Err(_) => args.task.clone(),
    };
    let ws_url = format!("{}/ws/terminals/{term_id}", c.base.replacen("http", "ws", 1));
    let mut req = ws_url.as_str().into_client_request()?;
    req.headers_mut().insert("Authorization", format!("Bearer {}", c.token).parse()?);
    // TCP_NODELAY: keystrokes must not wait for the previous frame's ACK (Nagle).
    let (ws, _) = tokio_tungstenite::connect_async_with_config(req, None, true).await.with_context(|| format!("cannot open {ws_url}"))?;
    let (mut sink, mut stream) = ws.split();

    crossterm::terminal::enable_raw_mode().context("this is not a terminal")?;
    let _raw = RawMode;
    eprint!("[attached to {}; detach with Ctrl-]]\r\n", args.task);
    if let Ok((cols, rows)) = crossterm::terminal::size() {
        sink.send(Message::Text(json!({"type":"resize","cols":cols,"rows":rows}).to_string().into())).await?;
    }
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 4096];
    #[cfg(unix)]
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut exit_code = None;
    loop {
        #[cfg(unix)]
        let resized = winch.recv();
        #[cfg(not(unix))]
        let resized = std::future::pending::<Option<()>>();
        tokio::select! {
            n = stdin.read(&mut buf) => {
                let n = n?;
                if n == 0 { break; }
                if let Some(pos) = buf[..n].iter().position(|&b| b == DETACH) {
                    if pos > 0 { sink.send(Message::Binary(buf[..pos].to_vec().into())).await?; }
                    eprint!("\r\n[detached]\r\n");
                    break;
                }
                sink.send(Message::Binary(buf[..n].to_vec().into())).await?;
            }
            _ = resized => {
                if let Ok((cols, rows)) = crossterm::terminal::size() {
                    sink.send(Message::Text(json!({"type":"resize","cols":cols,"rows":rows}).to_string().into())).await?;
                }
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&b)?;
                    out.flush()?;
                }
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["type"] == "exit" {
                        exit_code = v["code"].as_i64();
                        eprint!("\r\n[process exited with code {}]\r\n", exit_code.map(|c| c.to_string()).unwrap_or_else(|| "?".into()));
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => { eprint!("\r\n[connection closed]\r\n"); break; }
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(_)) => {}
            }
        }
    }
    Ok(match exit_code {
        Some(c) if c != 0 => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        _ => ExitCode::SUCCESS,
    })
}
