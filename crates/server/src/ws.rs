//! `WS /ws/terminals/{id}`: one viewer of a terminal hub.
//!
//! Frames (see `docs/terminal-protocol.md`):
//! - binary, both ways: raw terminal bytes;
//! - text, client → server: `{"type":"resize","cols","rows"}`, `{"type":"ack","bytes"}`;
//! - text, server → client: `{"type":"exit","code"}`, `{"type":"resync"}` (then the
//!   scrollback as binary).
//!
//! On connect the server sends the scrollback, then live output. A watch device's
//! binary and resize frames are dropped; its socket closes when it is revoked.

use crate::auth::Principal;
use crate::lan::LanConn;
use crate::{ApiError, AppState};
use anycode_engine::{Recv, Terminal, Viewer, ViewerHandle};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::Extension;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Largest binary frame sent for a scrollback replay.
const REPLAY_FRAME: usize = 256 * 1024;

pub(crate) async fn terminal(
    ws: WebSocketUpgrade,
    Path(id): Path<String>,
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    lan: Option<Extension<LanConn>>,
) -> Result<Response, ApiError> {
    let term = st.engine.terminal(&id).await?;
    // The socket closes when the server stops, when its device is revoked, and when
    // LAN mode is turned off if it came in through a LAN address.
    let shutdown = st.shutdown.child_token();
    let access = Access::new(&who, lan.map(|Extension(l)| l.0), shutdown.clone());
    // Small buffers: an idle terminal should cost little (tungstenite's defaults are
    // 128 KiB each way), and with no write buffer every frame goes out at once; bulk
    // output is already coalesced into large frames by the pump.
    let ws = ws.read_buffer_size(8 * 1024).write_buffer_size(0);
    Ok(ws.on_upgrade(move |socket| async move {
        let _watchers = access.watch();
        session(socket, term, shutdown, access.read_only).await
    }))
}

/// What a socket may do and what ends it early.
struct Access {
    /// A watch device: its input and resize frames are dropped.
    read_only: bool,
    device: Option<std::sync::Arc<crate::devices::DeviceSession>>,
    lan: Option<CancellationToken>,
    close: CancellationToken,
}

impl Access {
    fn new(who: &Principal, lan: Option<CancellationToken>, close: CancellationToken) -> Access {
        let device = match who {
            Principal::Device(d) => Some(d.clone()),
            Principal::Owner => None,
        };
        Access { read_only: who.read_only(), device, lan, close }
    }

    /// Cancels `close` when the device is revoked or LAN mode goes off; counts the
    /// socket for the device list. Dropping the result ends both.
    fn watch(&self) -> (Option<crate::devices::SocketGuard>, tokio_util::sync::DropGuard) {
        let guard = self.device.as_ref().map(|d| d.socket_opened());
        let (close, revoked, lan) = (self.close.clone(), self.device.as_ref().map(|d| d.revoked.clone()), self.lan.clone());
        let done = CancellationToken::new();
        let done2 = done.clone();
        tokio::spawn(async move {
            let revoked = async { if let Some(r) = revoked { r.cancelled_owned().await } else { std::future::pending().await } };
            let lan_off = async { if let Some(l) = lan { l.cancelled_owned().await } else { std::future::pending().await } };
            tokio::select! {
                _ = revoked => close.cancel(),
                _ = lan_off => close.cancel(),
                _ = done2.cancelled() => {}
            }
        });
        (guard, done.drop_guard())
    }
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

async fn session(socket: WebSocket, term: Terminal, shutdown: CancellationToken, read_only: bool) {
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
                // A watch device's keystrokes never reach the TTY.
                Some(Ok(Message::Binary(_))) if read_only => {}
                Some(Ok(Message::Binary(b))) => {
                    if handle.write(b).await.is_err() {
                        tracing::debug!(terminal = %term.id(), "input to an ended process dropped");
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Control>(&t) {
                    // Nor do its resizes: watching must not change the desk's terminal.
                    Ok(Control::Resize { .. }) if read_only => {}
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
