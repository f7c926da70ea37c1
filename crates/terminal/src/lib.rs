//! AnyCode's terminal hub: one process TTY (a container's main process or an exec
//! session), a bounded scrollback, and any number of viewers (browser tabs, phones,
//! `anycode attach`).
//!
//! ```text
//!  TTY output stream ──reader task──▶ scrollback (bounded ring) ──▶ broadcast ──▶ viewers
//!  viewers' input ──▶ bounded queue ──writer task──▶ TTY input
//! ```
//!
//! Invariants:
//! - The reader appends to the scrollback and broadcasts under one lock, and a new
//!   viewer takes its scrollback snapshot and subscribes under the same lock: a
//!   viewer sees every byte exactly once, in order.
//! - Every buffer is bounded: the scrollback by its capacity, the broadcast by
//!   [`BROADCAST_CHUNKS`] chunks. A viewer that falls further behind is told
//!   [`Recv::Resync`] and restarts from a fresh snapshot; it never slows the process
//!   or the other viewers.
//! - Input has its own queue and task, so keystrokes never wait behind output.
//!
//! The hub knows nothing of Docker or WebSockets: the backend supplies byte streams
//! and a [`Control`]; the server crate turns viewers into WebSocket frames.

mod scrollback;

pub use scrollback::Scrollback;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

/// Chunks the live broadcast holds for slow viewers before they must resync.
pub const BROADCAST_CHUNKS: usize = 256;
/// Input chunks queued for the TTY before writers wait.
pub const INPUT_QUEUE: usize = 256;

/// What a backend (Docker attach or exec) does besides moving bytes.
pub trait Control: Send + Sync + 'static {
    /// Sets the TTY size in character cells.
    fn resize(&self, cols: u16, rows: u16) -> BoxFuture<'static, ()>;
    /// Resolves when the process has exited, with its exit code. May never resolve
    /// for backends whose output stream reliably ends at exit.
    fn wait_exit(&self) -> BoxFuture<'static, Option<i64>>;
    /// The exit code, asked once the output stream has ended.
    fn exit_code(&self) -> BoxFuture<'static, Option<i64>>;
}

/// What a viewer receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recv {
    /// Output bytes, exactly as the TTY produced them.
    Output(Bytes),
    /// The process ended with this exit code (`None`: unknown).
    Exit(Option<i64>),
    /// The viewer fell behind: clear the screen and write this snapshot of the
    /// scrollback, then go on receiving.
    Resync(Bytes),
    /// The terminal was closed for good.
    Closed,
}

#[derive(Debug, Clone)]
enum Event {
    Output(Bytes),
    Exit(Option<i64>),
    Closed,
}

struct State {
    scrollback: Scrollback,
    exit: Option<Option<i64>>,
    size: Option<(u16, u16)>,
    input: Option<mpsc::Sender<Bytes>>,
    control: Option<Arc<dyn Control>>,
    tasks: Vec<JoinHandle<()>>,
}

struct Inner {
    id: String,
    state: Mutex<State>,
    tx: broadcast::Sender<Event>,
}

/// A terminal hub. Cheap to clone; clones share the hub.
#[derive(Clone)]
pub struct Terminal {
    inner: Arc<Inner>,
}

/// A viewer of a [`Terminal`].
pub struct Viewer {
    terminal: Terminal,
    rx: broadcast::Receiver<Event>,
    /// The scrollback at the moment of subscribing: write it first.
    pub snapshot: Bytes,
    /// Set when the process had already exited when subscribing.
    pub exited: Option<Option<i64>>,
}

impl Viewer {
    /// The next thing to show. Never blocks the process or other viewers.
    pub async fn recv(&mut self) -> Recv {
        match self.rx.recv().await {
            Ok(Event::Output(b)) => Recv::Output(b),
            Ok(Event::Exit(c)) => Recv::Exit(c),
            Ok(Event::Closed) => Recv::Closed,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let state = self.terminal.lock();
                self.rx = self.terminal.inner.tx.subscribe();
                Recv::Resync(state.scrollback.snapshot())
            }
            Err(broadcast::error::RecvError::Closed) => Recv::Closed,
        }
    }

    /// The terminal this viewer watches.
    pub fn terminal(&self) -> &Terminal {
        &self.terminal
    }
}

/// The process has no TTY input any more (exited or not connected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl Terminal {
    /// A hub with no process yet, keeping at most `scrollback_bytes` of output.
    pub fn new(id: impl Into<String>, scrollback_bytes: usize) -> Terminal {
        let (tx, _) = broadcast::channel(BROADCAST_CHUNKS);
        Terminal {
            inner: Arc::new(Inner {
                id: id.into(),
                state: Mutex::new(State {
                    scrollback: Scrollback::new(scrollback_bytes),
                    exit: None,
                    size: None,
                    input: None,
                    control: None,
                    tasks: Vec::new(),
                }),
                tx,
            }),
        }
    }

    /// A hub showing `history` (e.g. a stopped container's logs), already exited.
    pub fn with_history(id: impl Into<String>, scrollback_bytes: usize, history: &[u8], exit: Option<i64>) -> Terminal {
        let t = Terminal::new(id, scrollback_bytes);
        {
            let mut s = t.lock();
            s.scrollback.push(history);
            s.exit = Some(exit);
        }
        t
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Critical sections only move bytes and handles; a panic in one cannot leave
        // the state inconsistent, so a poisoned lock is taken over.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The terminal's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Connects a (new) process TTY. The scrollback is kept, so a restarted container
    /// continues the same terminal. `on_exit` runs with the exit code when the process
    /// ends (after the exit was broadcast).
    pub fn connect(
        &self,
        mut output: BoxStream<'static, std::io::Result<Bytes>>,
        mut input: Pin<Box<dyn AsyncWrite + Send>>,
        control: Arc<dyn Control>,
        on_exit: impl FnOnce(Option<i64>) + Send + 'static,
    ) {
        let (in_tx, mut in_rx) = mpsc::channel::<Bytes>(INPUT_QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(b) = in_rx.recv().await {
                if input.write_all(&b).await.is_err() || input.flush().await.is_err() {
                    break;
                }
            }
        });
        let me = self.clone();
        let ctl = control.clone();
        let reader = tokio::spawn(async move {
            let mut exited = ctl.wait_exit();
            let code = loop {
                tokio::select! {
                    biased;
                    item = output.next() => match item {
                        Some(Ok(chunk)) => me.publish(chunk),
                        Some(Err(e)) => {
                            tracing::debug!(terminal = %me.id(), error = %e, "tty stream error");
                            break ctl.exit_code().await;
                        }
                        None => break ctl.exit_code().await,
                    },
                    code = &mut exited => {
                        // The process is gone; take what is still in flight, briefly.
                        while let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_millis(300), output.next()).await {
                            me.publish(chunk);
                        }
                        break code;
                    }
                }
            };
            {
                let mut s = me.lock();
                s.exit = Some(code);
                s.input = None;
                let _ = me.inner.tx.send(Event::Exit(code));
            }
            on_exit(code);
        });
        let mut s = self.lock();
        for t in s.tasks.drain(..) {
            t.abort();
        }
        s.exit = None;
        s.input = Some(in_tx);
        s.control = Some(control);
        s.tasks = vec![writer, reader];
    }

    fn publish(&self, chunk: Bytes) {
        let mut s = self.lock();
        s.scrollback.push(&chunk);
        // No receivers is fine: output still lands in the scrollback.
        let _ = self.inner.tx.send(Event::Output(chunk));
    }

    /// A new viewer: the scrollback snapshot, then every later byte.
    pub fn subscribe(&self) -> Viewer {
        let s = self.lock();
        let rx = self.inner.tx.subscribe();
        Viewer { terminal: self.clone(), rx, snapshot: s.scrollback.snapshot(), exited: s.exit }
    }

    /// Sends input bytes to the process.
    pub async fn write(&self, bytes: Bytes) -> Result<(), Closed> {
        let tx = self.lock().input.clone().ok_or(Closed)?;
        tx.send(bytes).await.map_err(|_| Closed)
    }

    /// Resizes the TTY (remembered and re-applied by [`Terminal::apply_size`]).
    pub async fn resize(&self, cols: u16, rows: u16) {
        if cols == 0 || rows == 0 {
            return;
        }
        let control = {
            let mut s = self.lock();
            s.size = Some((cols, rows));
            s.control.clone()
        };
        if let Some(c) = control {
            c.resize(cols, rows).await;
        }
    }

    /// Re-applies the last size a viewer asked for (after a process restart).
    pub async fn apply_size(&self) {
        let (size, control) = {
            let s = self.lock();
            (s.size, s.control.clone())
        };
        if let (Some((c, r)), Some(ctl)) = (size, control) {
            ctl.resize(c, r).await;
        }
    }

    /// The last size a viewer asked for.
    pub fn size(&self) -> Option<(u16, u16)> {
        self.lock().size
    }

    /// `Some(exit code)` once the process has ended.
    pub fn exited(&self) -> Option<Option<i64>> {
        self.lock().exit
    }

    /// Whether a process is connected and running.
    pub fn is_live(&self) -> bool {
        let s = self.lock();
        s.input.is_some() && s.exit.is_none()
    }

    /// Stops the hub's tasks and tells every viewer [`Recv::Closed`]; dropping the
    /// TTY input ends a shell (end of input). The process itself is the backend's
    /// business.
    pub fn close(&self) {
        let mut s = self.lock();
        for t in s.tasks.drain(..) {
            t.abort();
        }
        s.input = None;
        let _ = self.inner.tx.send(Event::Closed);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        for t in s.tasks.drain(..) {
            t.abort();
        }
    }
}
