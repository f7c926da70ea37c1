//! "Typing first" (crates/terminal/src/lib.rs): while a person types into one
//! terminal of this process, every other terminal's output is read at most
//! RATE_WHILE_TYPING bytes per second, for TYPING_WINDOW after the last keystroke.
//!
//! Alone in its own test binary: the rule is process-wide (any hub's keystroke slows
//! every other hub), so other tests typing in the same process would skew it.
// Test code: a panic is how a test fails (clippy.toml allows unwrap/expect in
// #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use anycode_terminal::{Terminal, RATE_WHILE_TYPING, TYPING_WINDOW};
use bytes::Bytes;
use common::{connect, flood, scripted};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes per second the hub reads from `read`'s flood over `d`.
async fn rate(read: &AtomicU64, d: Duration) -> f64 {
    let (t0, b0) = (Instant::now(), read.load(Ordering::SeqCst));
    tokio::time::sleep(d).await;
    (read.load(Ordering::SeqCst) - b0) as f64 / t0.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_into_one_terminal_slows_the_flood_in_another() {
    // B floods 64 KiB chunks and has no viewer, so only "typing first" can slow it.
    let b = Terminal::new("flood", 1 << 20);
    let (read, output) = flood(64 * 1024);
    let _b = connect(&b, output);
    // A, where a person types.
    let a = Terminal::new("typed-into", 4096);
    let (_a_output, output) = scripted();
    let _a = connect(&a, output);
    let typist = a.subscribe();

    let free = rate(&read, Duration::from_millis(300)).await;
    assert!(free > 4.0 * RATE_WHILE_TYPING as f64, "unpaced, the flood is read fast: {free:.0} B/s");

    typist.handle().write(Bytes::from_static(b"k")).await.unwrap();
    let while_typing = rate(&read, Duration::from_millis(600)).await;
    assert!(while_typing < 1.5 * RATE_WHILE_TYPING as f64, "while typing elsewhere: {while_typing:.0} B/s");
    assert!(while_typing > 0.0, "slowed, never stopped");

    // Typing into B itself does not slow B.
    let b_viewer = b.subscribe();
    let _ = b_viewer.handle().write(Bytes::from_static(b"k")).await;
    drop(b_viewer);
    let own = rate(&read, Duration::from_millis(300)).await;
    assert!(own > 4.0 * RATE_WHILE_TYPING as f64, "typing into the flooding terminal itself: {own:.0} B/s");

    // Someone types in A again, then stops: after TYPING_WINDOW B is read at full speed.
    typist.handle().write(Bytes::from_static(b"k")).await.unwrap();
    tokio::time::sleep(TYPING_WINDOW + Duration::from_millis(200)).await;
    let after = rate(&read, Duration::from_millis(300)).await;
    assert!(after > 4.0 * RATE_WHILE_TYPING as f64, "after the typing window: {after:.0} B/s");
}
