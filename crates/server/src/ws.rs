//! `WS /ws/terminals/{id}`: one viewer of a terminal hub.
//!
//! Frames (see `docs/terminal-protocol.md`):
//! - binary, both ways: raw terminal bytes;
//! - text, client → server: `{"type":"resize","cols","rows"}`, `{"type":"ack","bytes"}`;
//! - text, server → client: `{"type":"exit","code"}`, `{"type":"resync"}` (then the
//!   scrollback as binary).
//!
//! On connect the server sends the scrollback, then live output.

use crate::{ApiError, AppState};
use anycode_engine::{Recv, Terminal, Viewer, ViewerHandle};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Largest binary frame sent for a scrollback replay.
const REPLAY_FRAME: usize = 256 * 1024;

pub(crate) async fn terminal(ws: WebSocketUpgrade, Path(id): Path<String>, State(st): State<AppState>) -> Result<Response, ApiError> {
    let term = st.engine.terminal(&id).await?;
    let shutdown = st.shutdown.clone();
    // Small buffers: an idle terminal should cost little (tungstenite's defaults are
    // 128 KiB each way), and with no write buffer every frame goes out at once; bulk
    // output is already coalesced into large frames by the pump.
    let ws = ws.read_buffer_size(8 * 1024).write_buffer_size(0);
    Ok(ws.on_upgrade(move |socket| session(socket, term, shutdown)))
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Control {
    Resize { cols: u16, rows: u16 },
    Ack { bytes: u64 },
}

/// Largest frame built by coalescing bulk output.
const COALESCE: usize = 256 * 1024;
/// A chunk at least this big is bulk output (a full read of the TTY): more is waited
/// for, briefly, to build a large frame. Browsers handle about one WebSocket message
/// per rendered frame during a flood, so large frames are what makes xterm.js fast.
const BULK: usize = 16 * 1024;
/// How long bulk output waits for more before its frame is sent.
const BULK_WAIT: std::time::Duration = std::time::Duration::from_millis(3);

async fn send_replay(sink: &mut (impl SinkExt<Message> + Unpin), snapshot: Bytes, handle: &ViewerHandle) -> bool {
    let mut off = 0;
    while off < snapshot.len() {
        let end = (off + REPLAY_FRAME).min(snapshot.len());
        if sink.send(Message::Binary(snapshot.slice(off..end))).await.is_err() {
            return false;
        }
        handle.sent(end - off);
        off = end;
    }
    true
}

fn exit_frame(code: Option<i64>) -> Message {
    Message::Text(json!({"type": "exit", "code": code}).to_string().into())
}

async fn session(socket: WebSocket, term: Terminal, shutdown: CancellationToken) {
    let viewer = term.subscribe();
    let handle = viewer.handle();
    let (sink, mut stream) = socket.split();
    // Output has its own task, so input never waits behind output, even when the
    // socket is full during a flood.
    let mut pump = tokio::spawn(pump_output(viewer, sink, handle.clone()));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = &mut pump => return,
            msg = stream.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if handle.write(b).await.is_err() {
                        tracing::debug!(terminal = %term.id(), "input to an ended process dropped");
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Control>(&t) {
                    Ok(Control::Resize { cols, rows }) => handle.resize(cols, rows).await,
                    Ok(Control::Ack { bytes }) => handle.ack(bytes),
                    Err(_) => tracing::debug!(terminal = %term.id(), "unknown control frame ignored"),
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    pump.abort();
}

async fn pump_output(mut viewer: Viewer, mut sink: SplitSink<WebSocket, Message>, handle: ViewerHandle) {
    if !send_replay(&mut sink, std::mem::take(&mut viewer.snapshot), &handle).await {
        return;
    }
    if let Some(code) = viewer.exited {
        if sink.send(exit_frame(code)).await.is_err() {
            return;
        }
    }
    loop {
        match viewer.recv().await {
            Recv::Output(first) => {
                // Small output (echo, prompts) goes out at once; what is already queued
                // joins it. Bulk output waits up to BULK_WAIT for more to fill a frame.
                let frame = match viewer.try_recv_output(COALESCE.saturating_sub(first.len())) {
                    None if first.len() < BULK => first,
                    next => {
                        let mut buf = bytes::BytesMut::with_capacity(COALESCE.min(4 * first.len().max(BULK)));
                        buf.extend_from_slice(&first);
                        if let Some(next) = next {
                            buf.extend_from_slice(&next);
                        }
                        let deadline = tokio::time::Instant::now() + BULK_WAIT;
                        while buf.len() < COALESCE {
                            if let Some(more) = viewer.try_recv_output(COALESCE - buf.len()) {
                                buf.extend_from_slice(&more);
                                continue;
                            }
                            if buf.len() < BULK || tokio::time::Instant::now() >= deadline {
                                break;
                            }
                            tokio::time::sleep(std::time::Duration::from_micros(500)).await;
                        }
                        buf.freeze()
                    }
                };
                let n = frame.len();
                if sink.send(Message::Binary(frame)).await.is_err() {
                    break;
                }
                handle.sent(n);
            }
            Recv::Exit(code) => {
                if sink.send(exit_frame(code)).await.is_err() {
                    break;
                }
            }
            Recv::Resync(snapshot) => {
                let resync = Message::Text(json!({"type": "resync"}).to_string().into());
                if sink.send(resync).await.is_err() || !send_replay(&mut sink, snapshot, &handle).await {
                    break;
                }
            }
            Recv::Closed => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
}
