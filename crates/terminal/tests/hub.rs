//! The terminal hub driven through its backend seam — a byte stream for the TTY's
//! output, an in-memory pipe for its input and a fake [`Control`] — with no Docker:
//! flow control (watermarks, acks, the fastest viewer paces), resync of a viewer that
//! fell out of the broadcast, input that never waits behind output, the resize rule,
//! and the exit. Each test states the rule of `crates/terminal/src/lib.rs` it checks.
// Test code: a panic is how a test fails (clippy.toml allows unwrap/expect in
// #[test] functions; this covers the helpers too).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use anycode_terminal::{Recv, Terminal, HIGH_WATERMARK, LOW_WATERMARK};
use bytes::Bytes;
use common::{connect, flood, next_output, read_input, scripted, settled};
use std::sync::atomic::Ordering;
use std::time::Duration;

const CHUNK: u64 = 16 * 1024;

/// Rule: the reader stops reading the TTY while the least lagging viewer is more than
/// HIGH_WATERMARK bytes behind, and resumes only once it is back under LOW_WATERMARK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_control_pauses_above_the_high_watermark_and_resumes_under_the_low_one() {
    let t = Terminal::new("flow", 4 << 20);
    let mut viewer = t.subscribe();
    let (read, output) = flood(CHUNK as usize);
    let _hub = connect(&t, output);

    // The viewer takes nothing: reading stops one chunk past the high watermark.
    let paused_at = settled(&read).await;
    assert!((HIGH_WATERMARK..=HIGH_WATERMARK + CHUNK).contains(&paused_at), "paused after {paused_at} bytes");

    // Catch up to just above the low watermark: still paused (hysteresis).
    let mut taken = 0u64;
    while paused_at - taken > LOW_WATERMARK + CHUNK {
        taken += next_output(&mut viewer).await.len() as u64;
    }
    assert_eq!(settled(&read).await, paused_at, "no read while the viewer is between the watermarks");

    // One more chunk puts it at the low watermark: reading resumes, up to the high one.
    taken += next_output(&mut viewer).await.len() as u64;
    assert!(paused_at - taken <= LOW_WATERMARK);
    let again = settled(&read).await;
    assert!(again > paused_at, "reading resumed");
    let behind = again - taken;
    assert!((HIGH_WATERMARK..=HIGH_WATERMARK + CHUNK).contains(&behind), "paused again {behind} bytes behind");
}

/// Rule: for a client that acknowledges, bytes sent to it and not acknowledged count
/// as lag, so its acks (not its socket) pace the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledging_client_is_paced_by_its_acks() {
    let t = Terminal::new("acks", 4 << 20);
    let mut viewer = t.subscribe();
    let handle = viewer.handle();
    handle.ack(0); // "I acknowledge."
    let (read, output) = flood(CHUNK as usize);
    let _hub = connect(&t, output);

    // Take everything as it comes (a fast socket) but acknowledge nothing.
    let mut sent = 0u64;
    while let Ok(Recv::Output(b)) = tokio::time::timeout(Duration::from_millis(500), viewer.recv()).await {
        handle.sent(b.len());
        sent += b.len() as u64;
    }
    let paused_at = settled(&read).await;
    assert_eq!(sent, paused_at, "the viewer took all there was");
    // One chunk more than for a viewer that does not acknowledge: the chunk a client
    // has taken but not yet reported sent (between `recv` and `sent`, a socket write
    // in the server) counts neither as queued nor as unacknowledged, so the hub may
    // read once more while it is in flight (seen under load: HIGH + 2 chunks).
    assert!((HIGH_WATERMARK..=HIGH_WATERMARK + 2 * CHUNK).contains(&paused_at), "paused after {paused_at} unacknowledged bytes");

    // Acknowledging down to the low watermark lets the process go on.
    handle.ack(paused_at - LOW_WATERMARK);
    let more = tokio::time::timeout(Duration::from_secs(5), viewer.recv()).await;
    assert!(matches!(more, Ok(Recv::Output(_))), "{more:?}");
    assert!(read.load(Ordering::SeqCst) > paused_at);
}

/// Rules: the fastest viewer paces the process and a slow one never slows it; the slow
/// one, fallen out of the broadcast, gets a Resync with the scrollback and then the
/// output that follows, with no byte lost or repeated.
/// Rule: an ack that overtakes the count of the bytes it acknowledges (the client read
/// the frame before the server's `sent` ran) is kept as credit, so the order never
/// leaks lag. Leaked, every such frame stayed unacknowledged for good and a few of
/// them stalled the terminal for good (a CI run: Ctrl-C during a flood timed out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_that_overtakes_its_bytes_leaks_no_lag() {
    let t = Terminal::new("ack-first", 4 << 20);
    let mut viewer = t.subscribe();
    let handle = viewer.handle();
    handle.ack(0);
    let (read, output) = flood(CHUNK as usize);
    let _hub = connect(&t, output);
    // The server coalesces a flood into frames of up to 256 KiB: one frame's worth
    // is taken (in flight: counted as neither queued nor unacknowledged), the client
    // acks it, and only then is it counted as sent.
    let mut through = 0u64;
    while through < 8 * HIGH_WATERMARK {
        let mut frame = 0u64;
        while frame < HIGH_WATERMARK {
            frame += tokio::time::timeout(Duration::from_secs(3), next_output(&mut viewer))
                .await
                .unwrap_or_else(|_| panic!("stalled after {} bytes, every frame acknowledged", through + frame))
                .len() as u64;
        }
        handle.ack(frame);
        handle.sent(frame as usize);
        through += frame;
    }
    assert!(read.load(Ordering::SeqCst) >= through);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_viewer_is_resynced_from_the_scrollback_and_does_not_slow_the_fast_one() {
    let t = Terminal::new("resync", 4096);
    let mut fast = t.subscribe();
    let mut slow = t.subscribe();
    let (tx, output) = scripted();
    let _hub = connect(&t, output);

    // 300 lines of 20 bytes: more than the broadcast holds (256 chunks) and than the
    // scrollback keeps (4096 bytes).
    let mut all = Vec::new();
    for i in 0..300 {
        let line = format!("line {i:04} .........\n");
        assert_eq!(line.len(), 20);
        all.extend_from_slice(line.as_bytes());
        tx.send(Bytes::from(line.clone())).unwrap();
        assert_eq!(next_output(&mut fast).await, line.as_bytes(), "the fast viewer gets every line at once");
    }

    let snapshot = match tokio::time::timeout(Duration::from_secs(5), slow.recv()).await {
        Ok(Recv::Resync(s)) => s,
        other => panic!("expected a resync, got {other:?}"),
    };
    assert!(all.ends_with(&snapshot), "the snapshot is the end of the output");
    assert!(snapshot.starts_with(b"line ") && snapshot.len() > 4096 - 20 && snapshot.len() <= 4096, "{} bytes", snapshot.len());
    assert!(snapshot.ends_with(b"line 0299 .........\n"));

    tx.send(Bytes::from_static(b"after\n")).unwrap();
    assert_eq!(next_output(&mut slow).await, &b"after\n"[..], "right after the snapshot, nothing repeated or lost");
    assert_eq!(next_output(&mut fast).await, &b"after\n"[..]);
}

/// Rule: input has its own queue and task, so keystrokes reach the process while its
/// output is held back (here: flow control has paused the reader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystrokes_reach_the_tty_while_output_is_held_back() {
    let t = Terminal::new("input-first", 4 << 20);
    let viewer = t.subscribe(); // Takes no output: the reader pauses.
    let (read, output) = flood(CHUNK as usize);
    let mut hub = connect(&t, output);
    let paused_at = settled(&read).await;

    let started = std::time::Instant::now();
    viewer.handle().write(Bytes::from_static(b"\x03")).await.unwrap();
    t.write(Bytes::from_static(b"q\n")).await.unwrap();
    assert_eq!(read_input(&mut hub.tty_input, Duration::from_millis(300)).await, b"\x03q\n");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_eq!(read.load(Ordering::SeqCst), paused_at, "the output is still held back");
}

/// Rule: the TTY takes the size of the viewer that typed last; until anyone types (or
/// after the typist left), the last size any viewer asked for. Unchanged and zero
/// sizes are not sent.
#[tokio::test]
async fn the_tty_takes_the_size_of_the_viewer_that_typed_last() {
    let t = Terminal::new("resize", 4096);
    let (_tx, output) = scripted();
    let mut hub = connect(&t, output);
    let ctl = hub.control.clone();
    let a = t.subscribe();
    let b = t.subscribe();
    let (ha, hb) = (a.handle(), b.handle());

    // Nobody typed: the last size asked for wins.
    ha.resize(80, 24).await;
    hb.resize(100, 30).await;
    hb.resize(100, 30).await;
    assert_eq!(ctl.resizes(), [(80, 24), (100, 30)], "an unchanged size is not sent again");
    ha.resize(0, 24).await;
    assert_eq!(t.size(), Some((100, 30)), "a zero size is ignored");

    // A types: A's size becomes the TTY's, before its input.
    ha.write(Bytes::from_static(b"ls\n")).await.unwrap();
    assert_eq!(ctl.resizes().last(), Some(&(80, 24)));
    assert_eq!(read_input(&mut hub.tty_input, Duration::from_millis(100)).await, b"ls\n");

    // B resizing does not take the TTY from the typist; A resizing does.
    hb.resize(120, 40).await;
    assert_eq!(t.size(), Some((80, 24)));
    ha.resize(90, 25).await;
    assert_eq!(t.size(), Some((90, 25)));

    // B types: its remembered size is applied.
    hb.write(Bytes::from_static(b"y")).await.unwrap();
    assert_eq!(t.size(), Some((120, 40)));
    assert_eq!(ctl.resizes(), [(80, 24), (100, 30), (80, 24), (90, 25), (120, 40)]);

    // The typist leaves: the last size asked for wins again.
    drop(b);
    ha.resize(70, 20).await;
    assert_eq!(t.size(), Some((70, 20)));

    // The owner's resize, and re-applying it (after a process restart).
    t.resize(132, 43).await;
    t.apply_size().await;
    assert_eq!(ctl.resizes()[ctl.resizes().len() - 3..], [(70, 20), (132, 43), (132, 43)]);
    drop(a);
}

/// Rule: when the process exits, output still in flight is delivered first, then
/// every viewer gets the exit code, `on_exit` runs once, and input is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_comes_after_the_last_output_and_closes_input() {
    let t = Terminal::new("exit", 4096);
    let mut v = t.subscribe();
    let (tx, output) = scripted();
    let mut hub = connect(&t, output);
    assert!(t.is_live());

    tx.send(Bytes::from_static(b"bye\n")).unwrap();
    hub.exit.take().unwrap().send(Some(3)).unwrap();
    assert_eq!(next_output(&mut v).await, &b"bye\n"[..]);
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), v.recv()).await, Ok(Recv::Exit(Some(3))));
    assert_eq!(t.exited(), Some(Some(3)));
    assert!(!t.is_live());
    // `on_exit` runs right after the exit is sent to viewers, on the hub's task.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while hub.exited_with.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*hub.exited_with.lock().unwrap(), [Some(3)]);
    assert!(t.write(Bytes::from_static(b"x")).await.is_err(), "no input after the exit");
    // A late viewer sees the history and the exit.
    let late = t.subscribe();
    assert_eq!((&late.snapshot[..], late.exited), (&b"bye\n"[..], Some(Some(3))));
    drop(hub.t);
}

/// Rule: while an input hold lives (the engine writing the credentials line), input
/// waits, in order, and reaches the TTY when the hold ends.
#[tokio::test]
async fn held_input_waits_and_then_arrives_in_order() {
    let t = Terminal::new("t", 4096);
    let (_tx, output) = scripted();
    let mut hub = connect(&t, output);
    let viewer = t.subscribe().holding_input().await;
    let typist = t.subscribe();
    let handle = typist.handle();
    let writes = tokio::spawn(async move {
        for k in ["a", "b", "c"] {
            handle.write(Bytes::from(k)).await.unwrap();
        }
    });
    assert!(read_input(&mut hub.tty_input, Duration::from_millis(200)).await.is_empty(), "nothing reaches the TTY while held");
    assert!(!writes.is_finished());
    drop(viewer);
    writes.await.unwrap();
    assert_eq!(read_input(&mut hub.tty_input, Duration::from_millis(200)).await, b"abc");
    // Not held: straight through.
    t.write(Bytes::from_static(b"d")).await.unwrap();
    assert_eq!(read_input(&mut hub.tty_input, Duration::from_millis(100)).await, b"d");
}
