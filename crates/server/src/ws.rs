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
        let _watchers = access.watch(true);
        session(socket, term, shutdown, access.read_only).await
    }))
}

/// What a socket may do and what ends it early (also used by `WS /ws/events`).
pub(crate) struct Access {
    /// A watch device: its input and resize frames are dropped.
    read_only: bool,
    device: Option<std::sync::Arc<crate::devices::DeviceSession>>,
    lan: Option<CancellationToken>,
    close: CancellationToken,
}

impl Access {
    pub(crate) fn new(who: &Principal, lan: Option<CancellationToken>, close: CancellationToken) -> Access {
        let device = match who {
            Principal::Device(d) => Some(d.clone()),
            Principal::Owner => None,
        };
        Access { read_only: who.read_only(), device, lan, close }
    }

    /// Cancels `close` when the device is revoked or LAN mode goes off; with `count`,
    /// counts the socket for the device list (terminal sockets are counted, the
    /// events socket is not). Dropping the result ends both.
    pub(crate) fn watch(&self, count: bool) -> (Option<crate::devices::SocketGuard>, tokio_util::sync::DropGuard) {
        let guard = if count { self.device.as_ref().map(|d| d.socket_opened()) } else { None };
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

/// Largest frame built by coalescing sustained output. Every client pays per frame
/// (browsers handle about one WebSocket message per rendered frame during a flood; a
/// Python client pays its event loop per message), so floods go out in large frames.
const COALESCE: usize = 256 * 1024;
/// Output is sustained while the recent byte count (bytes decayed with a half-life
/// of [`RATE_HALF_LIFE`]) is at least this: about 2.3 MB/s held, or one large read.
/// Echo and prompts stay far below it, so they go out at once.
const SUSTAINED: f64 = 16.0 * 1024.0;
/// Half-life of the recent byte count. With the count capped at 4 × [`SUSTAINED`],
/// about 10 ms of quiet after a flood make a terminal interactive again.
const RATE_HALF_LIFE: std::time::Duration = std::time::Duration::from_millis(5);
/// How long a frame of sustained output waits, at most, for more output.
const BULK_WAIT: std::time::Duration = std::time::Duration::from_millis(5);
/// A frame of sustained output goes out as soon as no output came for this long (the
/// flood ended, or the hub paused it for flow control).
const BULK_LULL: std::time::Duration = std::time::Duration::from_millis(2);

/// The terminal's recent output, for telling a flood from interactive output. The
/// size of a single read says little: Docker relays a flood in reads of about 4 KiB
/// (the kernel's PTY buffer), so a rule keyed on one read's size never coalesced and
/// a flood went out in 4 KiB frames that every client pays for.
struct Recent {
    bytes: f64,
    at: tokio::time::Instant,
}

impl Recent {
    fn new() -> Recent {
        Recent { bytes: 0.0, at: tokio::time::Instant::now() }
    }

    /// Counts `n` bytes that arrived now.
    fn add(&mut self, n: usize) {
        let now = tokio::time::Instant::now();
        let halves = now.duration_since(self.at).as_secs_f64() / RATE_HALF_LIFE.as_secs_f64();
        self.bytes = (self.bytes * (-halves).exp2() + n as f64).min(4.0 * SUSTAINED);
        self.at = now;
    }

    fn sustained(&self) -> bool {
        self.bytes >= SUSTAINED
    }
}

async fn send_replay(sink: &mut (impl SinkExt<Message> + Unpin), snapshot: Bytes, handle: &ViewerHandle) -> bool {
    let mut off = 0;
    while off < snapshot.len() {
        let end = (off + REPLAY_FRAME).min(snapshot.len());
        // Counted before it goes out: see `pump_output`.
        handle.sent(end - off);
        if sink.send(Message::Binary(snapshot.slice(off..end))).await.is_err() {
            return false;
        }
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
    let mut recent = Recent::new();
    // What the coalescing of a frame received and could not put into it.
    let mut next: Option<Recv> = None;
    loop {
        let item = match next.take() {
            Some(item) => item,
            None => viewer.recv().await,
        };
        match item {
            Recv::Output(first) => {
                recent.add(first.len());
                let frame = if recent.sustained() {
                    let (frame, rest) = fill_frame(&mut viewer, first, &mut recent).await;
                    next = rest;
                    frame
                } else {
                    // Interactive output (echo, prompts) goes out at once, with whatever
                    // is already queued.
                    take_queued(&mut viewer, first, &mut recent)
                };
                // Counted as unacknowledged before it goes out. Counted after, a client
                // could ack the frame before it was counted: the ack finds nothing to
                // take off, the count then keeps the frame for good, and two such
                // frames stall the terminal above the high watermark (seen in CI).
                handle.sent(frame.len());
                if sink.send(Message::Binary(frame)).await.is_err() {
                    break;
                }
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

/// `first` and whatever output is already queued, up to [`COALESCE`], without waiting.
fn take_queued(viewer: &mut Viewer, first: Bytes, recent: &mut Recent) -> Bytes {
    let Some(more) = viewer.try_recv_output(COALESCE.saturating_sub(first.len())) else {
        return first;
    };
    let mut buf = bytes::BytesMut::with_capacity(first.len() + more.len());
    buf.extend_from_slice(&first);
    recent.add(more.len());
    buf.extend_from_slice(&more);
    while let Some(more) = viewer.try_recv_output(COALESCE.saturating_sub(buf.len())) {
        recent.add(more.len());
        buf.extend_from_slice(&more);
    }
    buf.freeze()
}

/// A frame of sustained output: `first`, then more output until the frame holds
/// [`COALESCE`] bytes, [`BULK_WAIT`] has passed, or no output came for [`BULK_LULL`].
/// Returns what it received and could not add (output too big for the frame, an exit,
/// a resync) for the caller to handle next.
async fn fill_frame(viewer: &mut Viewer, first: Bytes, recent: &mut Recent) -> (Bytes, Option<Recv>) {
    let mut buf = bytes::BytesMut::with_capacity(COALESCE);
    buf.extend_from_slice(&first);
    let deadline = tokio::time::Instant::now() + BULK_WAIT;
    let mut last = tokio::time::Instant::now();
    while buf.len() < COALESCE {
        if let Some(more) = viewer.try_recv_output(COALESCE - buf.len()) {
            recent.add(more.len());
            buf.extend_from_slice(&more);
            last = tokio::time::Instant::now();
            continue;
        }
        // `Viewer::recv` is cancel safe: a timeout loses nothing.
        match tokio::time::timeout_at(deadline.min(last + BULK_LULL), viewer.recv()).await {
            Err(_) => break,
            Ok(Recv::Output(more)) if more.len() <= COALESCE - buf.len() => {
                recent.add(more.len());
                buf.extend_from_slice(&more);
                last = tokio::time::Instant::now();
            }
            Ok(other) => return (buf.freeze(), Some(other)),
        }
    }
    (buf.freeze(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn echo_is_interactive_a_flood_is_sustained_and_a_pause_ends_it() {
        let mut r = Recent::new();
        // Keystroke echo, a key every 100 µs (faster than anyone types): never bulk.
        for _ in 0..1000 {
            r.add(3);
            assert!(!r.sustained());
            tokio::time::advance(std::time::Duration::from_micros(100)).await;
        }
        // A flood as Docker relays it: 4 KiB reads, back to back.
        let mut reads = 0;
        while !r.sustained() {
            r.add(4095);
            reads += 1;
            tokio::time::advance(std::time::Duration::from_micros(150)).await;
        }
        assert!(reads <= 5, "a flood is seen as one within {reads} reads");
        // One large read is bulk at once, as before.
        let mut big = Recent::new();
        big.add(32 * 1024);
        assert!(big.sustained());
        // However long the flood, about 10 ms of quiet make the terminal interactive again.
        for _ in 0..10_000 {
            r.add(4095);
            tokio::time::advance(std::time::Duration::from_micros(150)).await;
        }
        tokio::time::advance(std::time::Duration::from_millis(11)).await;
        r.add(1);
        assert!(!r.sustained());
    }
}
