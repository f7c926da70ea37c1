//! What the hub tests share: a fake [`Control`], a hub connected to in-memory pipes,
//! scripted and endless TTY output, and readers of the TTY's input.
#![allow(dead_code)] // Each test binary uses its own part.

use anycode_terminal::{Control, Recv, Terminal, Viewer};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, DuplexStream};
use tokio::sync::{mpsc, oneshot};

/// A fake backend control: records every resize, exits when told.
#[derive(Default)]
pub struct FakeControl {
    resizes: Mutex<Vec<(u16, u16)>>,
    exit: Mutex<Option<oneshot::Receiver<Option<i64>>>>,
}

impl FakeControl {
    pub fn resizes(&self) -> Vec<(u16, u16)> {
        self.resizes.lock().unwrap().clone()
    }
}

impl Control for FakeControl {
    fn resize(&self, cols: u16, rows: u16) -> BoxFuture<'static, ()> {
        self.resizes.lock().unwrap().push((cols, rows));
        Box::pin(async {})
    }
    fn wait_exit(&self) -> BoxFuture<'static, Option<i64>> {
        let rx = self.exit.lock().unwrap().take();
        Box::pin(async move {
            match rx {
                Some(rx) => match rx.await {
                    Ok(code) => code,
                    Err(_) => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        })
    }
    fn exit_code(&self) -> BoxFuture<'static, Option<i64>> {
        Box::pin(async { None })
    }
}

/// A connected hub: the fake control, the TTY's input side (what the hub writes to
/// the process), the exit trigger and the codes `on_exit` was called with.
pub struct Hub {
    pub t: Terminal,
    pub control: Arc<FakeControl>,
    pub tty_input: DuplexStream,
    pub exit: Option<oneshot::Sender<Option<i64>>>,
    pub exited_with: Arc<Mutex<Vec<Option<i64>>>>,
}

pub fn connect(t: &Terminal, output: BoxStream<'static, std::io::Result<Bytes>>) -> Hub {
    let (exit_tx, exit_rx) = oneshot::channel();
    let control = Arc::new(FakeControl { resizes: Mutex::default(), exit: Mutex::new(Some(exit_rx)) });
    let (hub_side, tty_input) = tokio::io::duplex(64 * 1024);
    let exited_with = Arc::new(Mutex::new(Vec::new()));
    let log = exited_with.clone();
    t.connect(output, Box::pin(hub_side), control.clone(), move |code| log.lock().unwrap().push(code));
    Hub { t: t.clone(), control, tty_input, exit: Some(exit_tx), exited_with }
}

/// Output the test writes chunk by chunk.
pub fn scripted() -> (mpsc::UnboundedSender<Bytes>, BoxStream<'static, std::io::Result<Bytes>>) {
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) });
    (tx, stream.boxed())
}

/// A process printing without end, `chunk` bytes at a time; the counter says how many
/// bytes the hub has read from its TTY so far.
pub fn flood(chunk: usize) -> (Arc<AtomicU64>, BoxStream<'static, std::io::Result<Bytes>>) {
    let read = Arc::new(AtomicU64::new(0));
    let counter = read.clone();
    let data = Bytes::from(vec![b'x'; chunk]);
    let stream = futures_util::stream::unfold((), move |()| {
        let (counter, data) = (counter.clone(), data.clone());
        async move {
            // A real TTY read suspends now and then; this keeps a worker free.
            tokio::task::yield_now().await;
            counter.fetch_add(data.len() as u64, Ordering::SeqCst);
            Some((Ok(data), ()))
        }
    });
    (read, stream.boxed())
}

/// Waits until `counter` has not moved for 200 ms (the reader is paused) and returns it.
pub async fn settled(counter: &AtomicU64) -> u64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let before = counter.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after = counter.load(Ordering::SeqCst);
        if after == before {
            return after;
        }
        assert!(tokio::time::Instant::now() < deadline, "the reader never paused: {after} bytes read");
    }
}

/// Everything that arrives at the TTY's input within `wait` of the last byte.
pub async fn read_input(r: &mut DuplexStream, wait: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while let Ok(Ok(n)) = tokio::time::timeout(wait, r.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

pub async fn next_output(v: &mut Viewer) -> Bytes {
    match tokio::time::timeout(Duration::from_secs(5), v.recv()).await {
        Ok(Recv::Output(b)) => b,
        other => panic!("expected output, got {other:?}"),
    }
}

