//! `WS /ws/events`: live task states for the web UI, tray and phones.
//!
//! Text frames, JSON, server → client only:
//! - first `{"type":"snapshot","tasks":[Task…]}`: every task, as `GET /api/tasks`;
//! - then `{"type":"task","task":Task}` whenever a task was created or changed
//!   (status, agent state, attention, usage, queue position), and
//!   `{"type":"task_deleted","id":"…"}`;
//! - a fresh `snapshot` when this subscriber fell behind the engine's event buffer
//!   (the events it missed are dropped, the snapshot replaces them).
//!
//! Any device may subscribe (watching is reading). The socket closes when the server
//! stops, when its device is revoked, and, when it came in through a LAN address,
//! when LAN mode is turned off. Frames from the client are ignored (pings are
//! answered by the WebSocket layer).

use crate::api::TaskView;
use crate::auth::Principal;
use crate::lan::LanConn;
use crate::ws::Access;
use crate::AppState;
use anycode_engine::{Engine, Event};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// How often the server pings an idle events socket, so a phone that vanished
/// (Wi-Fi gone, no FIN) is noticed and its socket freed.
const PING_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) async fn events(
    ws: WebSocketUpgrade,
    State(st): State<AppState>,
    Extension(who): Extension<Principal>,
    lan: Option<Extension<LanConn>>,
) -> Response {
    let close = st.shutdown.child_token();
    let access = Access::new(&who, lan.map(|Extension(l)| l.0), close.clone());
    let engine = st.engine.clone();
    ws.read_buffer_size(8 * 1024).on_upgrade(move |socket| async move {
        // Revocation and LAN-off close this socket too; it is not counted among a
        // device's terminal sockets.
        let _watchers = access.watch(false);
        session(socket, engine, close).await
    })
}

/// `{"type":"snapshot","tasks":[…]}` of every task now.
async fn snapshot(engine: &Engine) -> Option<Message> {
    match engine.tasks(None).await {
        Ok(tasks) => {
            let tasks: Vec<TaskView> = tasks.into_iter().map(Into::into).collect();
            Some(Message::Text(json!({"type": "snapshot", "tasks": tasks}).to_string().into()))
        }
        Err(e) => {
            tracing::warn!(error = %e, "listing tasks for the events socket failed");
            None
        }
    }
}

fn frame(ev: Event) -> Message {
    let v = match ev {
        Event::Task { task } => json!({"type": "task", "task": TaskView::from(*task)}),
        Event::TaskDeleted { id } => json!({"type": "task_deleted", "id": id}),
    };
    Message::Text(v.to_string().into())
}

async fn session(socket: WebSocket, engine: Engine, close: CancellationToken) {
    let (mut sink, mut stream) = socket.split();
    // Subscribe before listing, so no change between the list and the stream is lost
    // (one seen twice is harmless: every event carries the whole task).
    let mut rx = engine.events();
    let Some(first) = snapshot(&engine).await else {
        let _ = sink.send(Message::Close(None)).await;
        return;
    };
    if sink.send(first).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        let out = tokio::select! {
            _ = close.cancelled() => {
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
            ev = rx.recv() => match ev {
                Ok(ev) => frame(ev),
                Err(RecvError::Lagged(n)) => {
                    // What is still buffered is older than a snapshot taken now:
                    // drop it, and start over from the current state.
                    tracing::debug!(missed = n, "events subscriber lagged; sending a fresh snapshot");
                    rx = rx.resubscribe();
                    match snapshot(&engine).await {
                        Some(m) => m,
                        None => break,
                    }
                }
                Err(RecvError::Closed) => {
                    let _ = sink.send(Message::Close(None)).await;
                    break;
                }
            },
        };
        if sink.send(out).await.is_err() {
            break;
        }
    }
}
