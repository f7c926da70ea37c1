//! AnyCode's terminal hub: one process TTY (a container's main process or an exec
//! session), a bounded scrollback, and any number of viewers (browser tabs, phones,
//! `anycode attach`), optionally recorded as an asciicast.
//!
//! ```text
//!  TTY output ──reader task──▶ scrollback (bounded ring) ──▶ broadcast ──▶ viewers
//!                     │                                  └──▶ recorder (asciicast, never blocks)
//!                     └── paused while even the fastest viewer is a high watermark behind
//!  viewers' input ──▶ bounded queue ──writer task──▶ TTY input
//! ```
//!
//! Invariants:
//! - The reader appends to the scrollback and broadcasts under one lock, and a new
//!   viewer takes its scrollback snapshot and subscribes under the same lock: a
//!   viewer sees every byte exactly once, in order.
//! - Every buffer is bounded: the scrollback by its capacity, the broadcast by
//!   [`BROADCAST_CHUNKS`] chunks, the input queue by [`INPUT_QUEUE`] chunks, the
//!   recorder's queue by [`recording::QUEUE`] chunks.
//! - Flow control: each viewer's lag is what it has not yet taken from the broadcast
//!   plus, for clients that acknowledge ([`Viewer::ack`]), what was sent to it but not
//!   acknowledged. The reader stops reading the TTY while the *least* lagging viewer is
//!   more than [`HIGH_WATERMARK`] bytes behind and resumes below [`LOW_WATERMARK`]. So
//!   the fastest viewer paces the process (a client that never acks is paced by TCP
//!   alone), and a slower viewer never slows the process or the others: it falls out
//!   of the broadcast and is resynchronised from the scrollback ([`Recv::Resync`]).
//! - Input has its own queue and task, so keystrokes never wait behind output.
//! - Typing first: while a person types into one terminal of this process (viewer
//!   input in the last [`TYPING_WINDOW`]), every *other* terminal's output is read at
//!   most [`RATE_WHILE_TYPING`] bytes per second. A flood in one tab otherwise takes
//!   both cores of a small machine (the process, Docker's relay, this server) and the
//!   keystrokes typed elsewhere wait for the CPU. The flood is slowed, never dropped:
//!   the TTY pushes back as it does for a slow viewer.
//! - Resizing: the TTY takes the size of the viewer that typed last; until anyone
//!   types, the last size any viewer asked for.
//! - Activity: every output chunk and every input write counts ([`Terminal::idle_for`]);
//!   an input gate ([`Terminal::set_input_gate`]) runs before input is queued, so the
//!   owner can wake a frozen process first (the engine unpauses a paused sandbox).
//! - Held input: while an [`InputHold`] lives ([`Terminal::hold_input`],
//!   [`Viewer::holding_input`]), input waits, in order, and goes to the TTY when the
//!   last hold ends (the engine holds it while it writes the credentials line).
//!
//! The hub knows nothing of Docker or WebSockets: the backend supplies byte streams
//! and a [`Control`]; the server crate turns viewers into WebSocket frames. The
//! tests (`tests/hub.rs`, `tests/typing_first.rs`) drive it through that seam with a
//! fake `Control`.

pub mod recording;
mod scrollback;

pub use recording::{Recorder, RecordingOptions};
pub use scrollback::Scrollback;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::task::JoinHandle;

/// The longest [`Viewer::holding_input`] waits to take the input hold.
pub const HOLD_WAIT: Duration = Duration::from_secs(2);

/// Chunks the live broadcast holds for slow viewers before they must resync.
pub const BROADCAST_CHUNKS: usize = 256;
/// Input chunks queued for the TTY before writers wait.
pub const INPUT_QUEUE: usize = 256;
/// Bytes the fastest viewer may be behind before the TTY stops being read.
pub const HIGH_WATERMARK: u64 = 256 * 1024;
/// Bytes the fastest viewer must be back under before reading resumes.
pub const LOW_WATERMARK: u64 = 64 * 1024;

/// How long after a keystroke the terminal typed into has priority over the others.
pub const TYPING_WINDOW: Duration = Duration::from_millis(1500);
/// Bytes per second other terminals are read at while someone types (see the
/// "typing first" invariant): 1 MiB/s, some 13,000 lines of 80 columns, still far more
/// than anyone reads, and a flood then costs a few per cent of a core.
pub const RATE_WHILE_TYPING: u64 = 1024 * 1024;

/// The last keystroke any viewer of any terminal in this process typed: when (ms
/// after [`typing_epoch`]) and into which terminal (its serial). Shared by all hubs.
static TYPED_MS: AtomicU64 = AtomicU64::new(0);
static TYPED_TERMINAL: AtomicU64 = AtomicU64::new(0);
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(1);

fn typing_epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// Runs before input is queued for the process while it is set (see
/// [`Terminal::set_input_gate`]); the input waits until the future resolves.
pub type InputGate = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

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

/// Flow-control state of one viewer, shared between the hub and the viewer's tasks.
#[derive(Debug, Default)]
struct Flow {
    /// Hub byte position up to which this viewer has taken output from the broadcast.
    taken: AtomicU64,
    /// Hub chunk position likewise.
    taken_chunks: AtomicU64,
    /// Bytes sent to an acknowledging client and not acknowledged yet. Negative (down
    /// to `-HIGH_WATERMARK`) while an ack has overtaken the count of what it acks.
    unacked: AtomicI64,
    /// Whether this client acknowledges (it has sent at least one ack).
    acking: AtomicBool,
    /// The size this viewer asked for, as `cols << 16 | rows` (0: none).
    size: AtomicU64,
}

struct State {
    scrollback: Scrollback,
    exit: Option<Option<i64>>,
    input: Option<mpsc::Sender<Bytes>>,
    control: Option<Arc<dyn Control>>,
    tasks: Vec<JoinHandle<()>>,
    viewers: Vec<(u64, Arc<Flow>)>,
    next_viewer: u64,
    /// The viewer that typed last (its size wins), if any.
    typist: Option<u64>,
    /// The size last applied, `(cols, rows)`.
    size: Option<(u16, u16)>,
    recorder: Option<Recorder>,
    /// Awaited before input is queued, while set.
    gate: Option<InputGate>,
}

struct Inner {
    id: String,
    /// Process-unique number (for "typing first").
    serial: u64,
    state: Mutex<State>,
    tx: broadcast::Sender<Event>,
    /// Bytes and chunks published so far.
    produced: AtomicU64,
    produced_chunks: AtomicU64,
    /// Set while the reader waits for viewers to catch up; viewers then notify.
    paused: AtomicBool,
    resume: Notify,
    /// When the hub was made; `activity_ms` counts from here.
    born: std::time::Instant,
    /// Milliseconds after `born` of the last output or input.
    activity_ms: AtomicU64,
    /// 1 + milliseconds after `born` of the last output; 0 before any.
    output_ms: AtomicU64,
    /// Input takes it for reading; an [`InputHold`] holds it for writing.
    hold: Arc<tokio::sync::RwLock<()>>,
}

/// While it lives, input to its terminal waits (see [`Terminal::hold_input`]).
pub struct InputHold {
    _guard: tokio::sync::OwnedRwLockWriteGuard<()>,
}

/// A terminal hub. Cheap to clone; clones share the hub.
#[derive(Clone)]
pub struct Terminal {
    inner: Arc<Inner>,
}

/// A viewer of a [`Terminal`]. Dropping it unregisters it.
pub struct Viewer {
    terminal: Terminal,
    rx: broadcast::Receiver<Event>,
    id: u64,
    flow: Arc<Flow>,
    /// What `try_recv_output` took that was not plain output (an event, or the news
    /// that this viewer lagged), handed out by the next `recv()`.
    pending: Option<Result<Event, broadcast::error::RecvError>>,
    /// The scrollback at the moment of subscribing: write it first.
    pub snapshot: Bytes,
    /// Set when the process had already exited when subscribing.
    pub exited: Option<Option<i64>>,
    /// Input held while this viewer lives ([`Viewer::holding_input`]).
    hold: Option<InputHold>,
}

/// A handle for the input side of a viewer (acks, typing, resizing), usable from
/// another task than the one receiving output.
#[derive(Clone)]
pub struct ViewerHandle {
    terminal: Terminal,
    id: u64,
    flow: Arc<Flow>,
}

impl Viewer {
    /// The next thing to show. Never blocks the process or other viewers. Cancel
    /// safe: dropping the future before it resolves loses nothing.
    pub async fn recv(&mut self) -> Recv {
        let next = match self.pending.take() {
            Some(p) => p,
            None => self.rx.recv().await,
        };
        let r = match next {
            Ok(Event::Output(b)) => {
                self.flow.taken.fetch_add(b.len() as u64, Ordering::Relaxed);
                self.flow.taken_chunks.fetch_add(1, Ordering::Relaxed);
                Recv::Output(b)
            }
            Ok(Event::Exit(c)) => Recv::Exit(c),
            Ok(Event::Closed) => Recv::Closed,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let state = self.terminal.lock();
                self.rx = self.terminal.inner.tx.subscribe();
                self.flow.taken.store(self.terminal.inner.produced.load(Ordering::Relaxed), Ordering::Relaxed);
                self.flow.taken_chunks.store(self.terminal.inner.produced_chunks.load(Ordering::Relaxed), Ordering::Relaxed);
                Recv::Resync(state.scrollback.snapshot())
            }
            Err(broadcast::error::RecvError::Closed) => Recv::Closed,
        };
        self.terminal.wake_reader();
        r
    }

    /// Takes whatever output is already queued, without waiting, up to `max` bytes
    /// (coalescing bulk output into fewer frames; never delays anything).
    pub fn try_recv_output(&mut self, max: usize) -> Option<Bytes> {
        if max == 0 {
            return None;
        }
        if self.pending.is_some() {
            return None;
        }
        match self.rx.try_recv() {
            Ok(Event::Output(b)) if b.len() <= max => {
                self.flow.taken.fetch_add(b.len() as u64, Ordering::Relaxed);
                self.flow.taken_chunks.fetch_add(1, Ordering::Relaxed);
                self.terminal.wake_reader();
                Some(b)
            }
            Ok(other) => {
                // Not output, or too big for this frame: recv() hands it out next.
                self.pending = Some(Ok(other));
                None
            }
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                // recv() turns this into a resync.
                self.pending = Some(Err(broadcast::error::RecvError::Lagged(n)));
                None
            }
            Err(broadcast::error::TryRecvError::Closed) => {
                self.pending = Some(Err(broadcast::error::RecvError::Closed));
                None
            }
            Err(broadcast::error::TryRecvError::Empty) => None,
        }
    }

    /// A handle for acks, input and resizing from another task.
    pub fn handle(&self) -> ViewerHandle {
        ViewerHandle { terminal: self.terminal.clone(), id: self.id, flow: self.flow.clone() }
    }

    /// This viewer, holding the terminal's input while it lives (see
    /// [`Terminal::hold_input`]): keystrokes typed meanwhile wait and are delivered
    /// when it is dropped. Waits at most [`HOLD_WAIT`] for a write in flight (or
    /// another hold); past that the input is not held, and it says so in the log.
    pub async fn holding_input(mut self) -> Viewer {
        match tokio::time::timeout(HOLD_WAIT, self.terminal.hold_input()).await {
            Ok(h) => self.hold = Some(h),
            Err(_) => tracing::warn!(terminal = %self.terminal.id(), "input could not be held (a write is stuck)"),
        }
        self
    }

    /// The terminal this viewer watches.
    pub fn terminal(&self) -> &Terminal {
        &self.terminal
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let mut s = self.terminal.lock();
        s.viewers.retain(|(id, _)| *id != self.id);
        if s.typist == Some(self.id) {
            s.typist = None;
        }
        drop(s);
        self.terminal.wake_reader();
    }
}

impl ViewerHandle {
    /// Records that `n` bytes are being handed to the client. Call it before the
    /// socket write: for acknowledging clients they count as unacknowledged until
    /// [`ViewerHandle::ack`], and bytes in the write count as nothing otherwise. An ack
    /// that overtakes this count anyway (up to [`HIGH_WATERMARK`] bytes) is kept as
    /// credit, so the order of the two never leaks lag.
    pub fn sent(&self, n: usize) {
        if self.flow.acking.load(Ordering::Relaxed) {
            self.flow.unacked.fetch_add(i64::try_from(n).unwrap_or(i64::MAX / 2), Ordering::Relaxed);
        }
    }

    /// The client has processed `n` more bytes. The first ack turns this viewer into
    /// an acknowledging one (`ack(0)` announces it without acknowledging anything).
    pub fn ack(&self, n: u64) {
        if !self.flow.acking.swap(true, Ordering::Relaxed) {
            self.flow.unacked.store(0, Ordering::Relaxed);
        }
        // A client acking more than it was sent gains at most one high watermark of
        // credit: enough for an ack that raced ahead of `sent`, too little to turn off
        // its own pacing for good.
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let floor = -(HIGH_WATERMARK as i64);
        let _ = self.flow.unacked.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(n).max(floor.min(u))));
        self.terminal.wake_reader();
    }

    /// Sends input typed by this viewer; its size becomes the TTY's if it differs.
    pub async fn write(&self, bytes: Bytes) -> Result<(), Closed> {
        self.terminal.typed();
        let resize = {
            let mut s = self.terminal.lock();
            s.typist = Some(self.id);
            let wanted = unpack(self.flow.size.load(Ordering::Relaxed));
            match wanted {
                Some(sz) if s.size != Some(sz) => {
                    s.size = Some(sz);
                    s.control.clone().map(|c| (c, sz))
                }
                _ => None,
            }
        };
        if let Some((c, (cols, rows))) = resize {
            c.resize(cols, rows).await;
            self.terminal.record_resize(cols, rows);
        }
        self.terminal.write(bytes).await
    }

    /// This viewer's window size. It is applied when this viewer typed last, or when
    /// nobody has typed yet.
    pub async fn resize(&self, cols: u16, rows: u16) {
        if cols == 0 || rows == 0 {
            return;
        }
        self.flow.size.store(pack(cols, rows), Ordering::Relaxed);
        let apply = {
            let mut s = self.terminal.lock();
            let mine = s.typist.is_none() || s.typist == Some(self.id);
            if mine && s.size != Some((cols, rows)) {
                s.size = Some((cols, rows));
                s.control.clone()
            } else {
                None
            }
        };
        if let Some(c) = apply {
            c.resize(cols, rows).await;
            self.terminal.record_resize(cols, rows);
        }
    }
}

/// "Typing first" for one reader: the time it owes while someone types into another
/// terminal, slept off in steps of at least [`Pace::STEP`] (timers are coarse).
#[derive(Default)]
struct Pace {
    owed: Duration,
}

impl Pace {
    const STEP: Duration = Duration::from_millis(2);
    const MAX_SLEEP: Duration = Duration::from_millis(50);

    /// `n` bytes were just read from `term`'s TTY.
    async fn after_read(&mut self, term: &Terminal, n: usize) {
        if !term.typing_elsewhere() {
            self.owed = Duration::ZERO;
            return;
        }
        self.owed += Duration::from_nanos((n as u64).saturating_mul(1_000_000_000) / RATE_WHILE_TYPING);
        if self.owed >= Self::STEP {
            let nap = self.owed.min(Self::MAX_SLEEP);
            tokio::time::sleep(nap).await;
            self.owed -= nap;
        }
    }
}

fn pack(cols: u16, rows: u16) -> u64 {
    (u64::from(cols) << 16) | u64::from(rows)
}

fn unpack(v: u64) -> Option<(u16, u16)> {
    (v != 0).then_some(((v >> 16) as u16, (v & 0xffff) as u16))
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
                serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
                state: Mutex::new(State {
                    scrollback: Scrollback::new(scrollback_bytes),
                    exit: None,
                    input: None,
                    control: None,
                    tasks: Vec::new(),
                    viewers: Vec::new(),
                    next_viewer: 0,
                    typist: None,
                    size: None,
                    recorder: None,
                    gate: None,
                }),
                tx,
                produced: AtomicU64::new(0),
                produced_chunks: AtomicU64::new(0),
                paused: AtomicBool::new(false),
                resume: Notify::new(),
                born: std::time::Instant::now(),
                activity_ms: AtomicU64::new(0),
                output_ms: AtomicU64::new(0),
                hold: Arc::new(tokio::sync::RwLock::new(())),
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

    /// Records this terminal's output from now on (replacing any recorder).
    pub fn set_recorder(&self, recorder: Option<Recorder>) {
        let mut s = self.lock();
        if let (Some(r), Some((c, rows))) = (&recorder, s.size) {
            r.resize(c, rows);
        }
        s.recorder = recorder;
    }

    fn record_resize(&self, cols: u16, rows: u16) {
        if let Some(r) = &self.lock().recorder {
            r.resize(cols, rows);
        }
    }

    fn wake_reader(&self) {
        if self.inner.paused.load(Ordering::Relaxed) {
            self.inner.resume.notify_one();
        }
    }

    /// Waits while even the least lagging viewer is too far behind (flow control).
    async fn wait_for_viewers(&self) {
        let mut threshold = HIGH_WATERMARK;
        loop {
            let produced = self.inner.produced.load(Ordering::Relaxed);
            let produced_chunks = self.inner.produced_chunks.load(Ordering::Relaxed);
            let behind = {
                let s = self.lock();
                s.viewers
                    .iter()
                    .map(|(_, f)| {
                        let queued = produced.saturating_sub(f.taken.load(Ordering::Relaxed));
                        let chunks = produced_chunks.saturating_sub(f.taken_chunks.load(Ordering::Relaxed));
                        let bytes = queued.saturating_add_signed(f.unacked.load(Ordering::Relaxed));
                        // Keep the fastest viewer well inside the broadcast, too.
                        if chunks as usize > BROADCAST_CHUNKS / 2 { u64::MAX } else { bytes }
                    })
                    .min()
            };
            match behind {
                None => break,
                Some(b) if b <= threshold => break,
                Some(_) => {}
            }
            threshold = LOW_WATERMARK;
            self.inner.paused.store(true, Ordering::Relaxed);
            // The timeout covers a wake-up that raced with setting `paused`.
            let _ = tokio::time::timeout(Duration::from_millis(20), self.inner.resume.notified()).await;
        }
        self.inner.paused.store(false, Ordering::Relaxed);
    }

    /// A person typed into this terminal: it has priority for [`TYPING_WINDOW`].
    fn typed(&self) {
        TYPED_TERMINAL.store(self.inner.serial, Ordering::Relaxed);
        TYPED_MS.store(typing_epoch().elapsed().as_millis() as u64 + 1, Ordering::Relaxed);
    }

    /// Whether someone typed into another terminal of this process within
    /// [`TYPING_WINDOW`].
    fn typing_elsewhere(&self) -> bool {
        let at = TYPED_MS.load(Ordering::Relaxed);
        at != 0
            && TYPED_TERMINAL.load(Ordering::Relaxed) != self.inner.serial
            && (typing_epoch().elapsed().as_millis() as u64 + 1).saturating_sub(at) < TYPING_WINDOW.as_millis() as u64
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
            let mut pace = Pace::default();
            let code = loop {
                me.wait_for_viewers().await;
                tokio::select! {
                    biased;
                    item = output.next() => match item {
                        Some(Ok(chunk)) => {
                            let n = chunk.len();
                            me.publish(chunk);
                            pace.after_read(&me, n).await;
                        }
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
        if chunk.is_empty() {
            return;
        }
        // One clock read stamps both: activity (idle timers) and output (screen watch).
        let ms = self.touch();
        self.inner.output_ms.fetch_max(ms + 1, Ordering::Relaxed);
        let mut s = self.lock();
        s.scrollback.push(&chunk);
        if let Some(r) = &s.recorder {
            r.output(&chunk);
        }
        self.inner.produced.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.inner.produced_chunks.fetch_add(1, Ordering::Relaxed);
        // No receivers is fine: output still lands in the scrollback.
        let _ = self.inner.tx.send(Event::Output(chunk));
    }

    /// Adds text to the terminal's output as if the process had printed it (notices
    /// such as "[credentials expired]"); it reaches viewers, scrollback and recording.
    pub fn notice(&self, text: &str) {
        self.publish(Bytes::copy_from_slice(text.as_bytes()));
    }

    /// The last `max` bytes of the scrollback (for the screen heuristic; copies only
    /// those bytes, under the hub's lock).
    pub fn tail(&self, max: usize) -> Vec<u8> {
        self.lock().scrollback.tail(max)
    }

    /// When output (or a notice) last arrived; `None` before any.
    pub fn last_output(&self) -> Option<std::time::Instant> {
        let v = self.inner.output_ms.load(Ordering::Relaxed);
        (v > 0).then(|| self.inner.born + Duration::from_millis(v - 1))
    }

    /// A new viewer: the scrollback snapshot, then every later byte.
    pub fn subscribe(&self) -> Viewer {
        let mut s = self.lock();
        let rx = self.inner.tx.subscribe();
        let flow = Arc::new(Flow::default());
        flow.taken.store(self.inner.produced.load(Ordering::Relaxed), Ordering::Relaxed);
        flow.taken_chunks.store(self.inner.produced_chunks.load(Ordering::Relaxed), Ordering::Relaxed);
        let id = s.next_viewer;
        s.next_viewer += 1;
        s.viewers.push((id, flow.clone()));
        Viewer { terminal: self.clone(), rx, id, flow, pending: None, snapshot: s.scrollback.snapshot(), exited: s.exit, hold: None }
    }

    /// Holds this terminal's input until the returned guard is dropped: writes wait
    /// (in the order they came) and then go to the TTY. Waits for a write in flight.
    pub async fn hold_input(&self) -> InputHold {
        InputHold { _guard: self.inner.hold.clone().write_owned().await }
    }



    /// Sends input bytes to the process (not on behalf of a viewer). Waits for the
    /// input gate first, when one is set.
    pub async fn write(&self, bytes: Bytes) -> Result<(), Closed> {
        let gate = {
            let s = self.lock();
            s.input.as_ref().ok_or(Closed)?;
            s.gate.clone()
        };
        if let Some(g) = gate {
            g().await;
        }
        // Waits while input is held; fair, so held writes keep their order.
        let _held = self.inner.hold.read().await;
        let tx = self.lock().input.clone().ok_or(Closed)?;
        self.touch();
        tx.send(bytes).await.map_err(|_| Closed)
    }

    /// Sets (or clears) the input gate: a function awaited before any input is
    /// queued for the process, e.g. to thaw a frozen process first. Cheap when unset.
    pub fn set_input_gate(&self, gate: Option<InputGate>) {
        self.lock().gate = gate;
    }

    /// Whether an input gate is set.
    pub fn has_input_gate(&self) -> bool {
        self.lock().gate.is_some()
    }

    /// Counts as activity now (output, input, or the owner's say-so, e.g. a resume);
    /// returns the stamp (milliseconds since the hub was made).
    pub fn touch(&self) -> u64 {
        let ms = self.inner.born.elapsed().as_millis() as u64;
        self.inner.activity_ms.fetch_max(ms, Ordering::Relaxed);
        ms
    }

    /// How long since the last output or input (or since the hub was made, or the
    /// last [`Terminal::touch`]).
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.inner.activity_ms.load(Ordering::Relaxed));
        self.inner.born.elapsed().saturating_sub(last)
    }

    /// Resizes the TTY (not on behalf of a viewer); remembered and re-applied by
    /// [`Terminal::apply_size`].
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
            self.record_resize(cols, rows);
        }
    }

    /// Re-applies the last size (after a process restart).
    pub async fn apply_size(&self) {
        let (size, control) = {
            let s = self.lock();
            (s.size, s.control.clone())
        };
        if let (Some((c, r)), Some(ctl)) = (size, control) {
            ctl.resize(c, r).await;
        }
    }

    /// The size last applied to the TTY.
    pub fn size(&self) -> Option<(u16, u16)> {
        self.lock().size
    }

    /// Number of viewers watching now.
    pub fn viewer_count(&self) -> usize {
        self.lock().viewers.len()
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
        s.recorder = None;
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
