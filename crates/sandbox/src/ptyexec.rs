//! Exec terminals whose PTY is held in the sandbox by `anycode-pty`
//! (`sandbox-image/relay/anycode-pty.c`).
//!
//! A TTY exec makes Docker relay a terminal's output in the PTY's ~4 KiB reads, each
//! copied by containerd's shim and by dockerd on its own: a flood cost Docker about
//! 28 ms of CPU per MB on the 2-core test machine. `anycode-pty` holds the PTY inside
//! the sandbox and writes its output to a pipe in pieces of up to 64 KiB, so the exec
//! has no TTY and Docker copies large writes (about a third of the CPU per MB).
//!
//! On the wire (a non-TTY exec, hijacked like a TTY one, see `hijack.rs`):
//! - output: Docker's multiplexed stream (`[u8 stream][3 × 0][u32 BE length]` then
//!   the bytes), demultiplexed here by [`Demux`]; stdout starts with [`HELLO`], then
//!   carries the PTY's bytes unchanged; stderr carries `anycode-pty`'s own errors;
//! - input: frames `[u8 kind][u32 BE length][payload]`, kind 0 the terminal's input,
//!   kind 1 a resize (`u16 BE` columns, rows), written by [`pump_input`].
//!
//! Everything the sandbox sends is untrusted: the multiplexing header lengths are
//! never used to size a buffer (payloads are passed on as they come), stderr is kept
//! only up to [`STDERR_KEEP`] bytes, and output after the hello is terminal output
//! like any other. A sandbox that fakes the hello only gets its own input framed.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::stream::{BoxStream, StreamExt};
use std::io;
use std::pin::Pin;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Where the sandbox image puts the holder.
pub(crate) const HOLDER: &str = "/opt/anycode/bin/anycode-pty";
/// The first bytes of the holder's stdout.
pub(crate) const HELLO: &[u8] = b"ACPTY1\n";
/// The most stderr bytes kept (for an error message or a log line).
pub(crate) const STDERR_KEEP: usize = 1024;
/// The largest INPUT payload `anycode-pty` accepts (its `MAX_PAYLOAD`).
const MAX_INPUT: usize = 65536;

/// Asks a held PTY for a new size. Cheap to clone; a request after the terminal
/// ended is dropped.
#[derive(Clone, Debug)]
pub struct PtyResizer(mpsc::UnboundedSender<(u16, u16)>);

impl PtyResizer {
    /// Sends the size (columns, rows) to the PTY, in order with the terminal's input.
    /// Returns false when the terminal has ended.
    pub fn resize(&self, cols: u16, rows: u16) -> bool {
        self.0.send((cols, rows)).is_ok()
    }
}

/// Docker's multiplexed-stream decoder: feeds on the raw bytes, gives stdout and
/// stderr payloads as they come (a frame split across reads comes out in pieces).
#[derive(Default)]
pub(crate) struct Demux {
    header: BytesMut,
    /// Stream of the frame being read (1 stdout, 2 stderr) and its bytes still to come.
    current: Option<(u8, usize)>,
}

/// One piece of demultiplexed output.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Stdout(Bytes),
    Stderr(Bytes),
}

impl Demux {
    /// Splits `chunk` into pieces. Errors: a header with an unknown stream.
    pub(crate) fn feed(&mut self, mut chunk: Bytes, out: &mut Vec<Piece>) -> io::Result<()> {
        while !chunk.is_empty() {
            match self.current {
                Some((stream, left)) => {
                    let n = left.min(chunk.len());
                    let bytes = chunk.split_to(n);
                    self.current = if left > n { Some((stream, left - n)) } else { None };
                    if stream == 2 {
                        out.push(Piece::Stderr(bytes));
                    } else {
                        out.push(Piece::Stdout(bytes));
                    }
                }
                None => {
                    let need = 8 - self.header.len();
                    let n = need.min(chunk.len());
                    self.header.extend_from_slice(&chunk.split_to(n));
                    if self.header.len() == 8 {
                        let stream = self.header[0];
                        let len = (&self.header[4..8]).get_u32() as usize;
                        self.header.clear();
                        // 0 is stdin (never sent back), 1 stdout, 2 stderr.
                        if stream != 1 && stream != 2 {
                            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unknown stream {stream} in Docker's output")));
                        }
                        if len > 0 {
                            self.current = Some((stream, len));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// What came first on a held exec's output.
pub(crate) enum Start {
    /// The hello: the holder runs. Carries the output stream (stdout after the hello).
    Held(BoxStream<'static, io::Result<Bytes>>),
    /// No hello (the image has no holder): stderr and stdout seen, at most
    /// [`STDERR_KEEP`] bytes, for the log.
    Missing(String),
}

/// Reads the start of a held exec's raw output: the hello, or why it is not there.
pub(crate) async fn start(mut raw: BoxStream<'static, io::Result<Bytes>>) -> io::Result<Start> {
    let mut demux = Demux::default();
    let mut seen = Vec::new();
    let mut stdout = BytesMut::new();
    let mut pieces = Vec::new();
    loop {
        let Some(chunk) = raw.next().await else {
            return Ok(Start::Missing(note(&seen, &stdout)));
        };
        demux.feed(chunk?, &mut pieces)?;
        for p in pieces.drain(..) {
            match p {
                Piece::Stdout(b) => stdout.extend_from_slice(&b),
                Piece::Stderr(b) => keep(&mut seen, &b),
            }
        }
        let n = stdout.len().min(HELLO.len());
        if stdout[..n] != HELLO[..n] {
            return Ok(Start::Missing(note(&seen, &stdout)));
        }
        if stdout.len() >= HELLO.len() {
            let first = stdout.split_off(HELLO.len()).freeze();
            return Ok(Start::Held(output(first, demux, raw)));
        }
    }
}

fn keep(seen: &mut Vec<u8>, b: &[u8]) {
    let room = STDERR_KEEP.saturating_sub(seen.len());
    seen.extend_from_slice(&b[..b.len().min(room)]);
}

fn note(seen: &[u8], stdout: &[u8]) -> String {
    let mut all = seen.to_vec();
    keep(&mut all, stdout);
    String::from_utf8_lossy(&all).trim().to_string()
}

/// The terminal's output: stdout's bytes after the hello; stderr goes to the log.
fn output(first: Bytes, demux: Demux, raw: BoxStream<'static, io::Result<Bytes>>) -> BoxStream<'static, io::Result<Bytes>> {
    let state = (demux, raw, 0usize);
    let rest = futures_util::stream::unfold(state, |(mut demux, mut raw, mut logged)| async move {
        loop {
            let chunk = match raw.next().await? {
                Ok(c) => c,
                Err(e) => return Some((Err(e), (demux, raw, logged))),
            };
            let mut pieces = Vec::new();
            if let Err(e) = demux.feed(chunk, &mut pieces) {
                return Some((Err(e), (demux, raw, logged)));
            }
            let mut stdout = Vec::new();
            for p in pieces {
                match p {
                    Piece::Stdout(b) => stdout.push(b),
                    Piece::Stderr(b) if logged < STDERR_KEEP => {
                        let n = b.len().min(STDERR_KEEP - logged);
                        logged += n;
                        tracing::debug!(stderr = ?String::from_utf8_lossy(&b[..n]), "anycode-pty");
                    }
                    Piece::Stderr(_) => {}
                }
            }
            // One read is usually one piece, passed on without a copy.
            let bytes = if stdout.len() == 1 { stdout.pop() } else { Some(Bytes::from(stdout.concat())) };
            if let Some(b) = bytes.filter(|b| !b.is_empty()) {
                return Some((Ok(b), (demux, raw, logged)));
            }
        }
    });
    if first.is_empty() {
        rest.boxed()
    } else {
        futures_util::stream::once(async move { Ok(first) }).chain(rest).boxed()
    }
}

/// Frames the terminal's input and resize requests onto the holder's stdin until the
/// terminal's input ends (then stdin is closed: the holder hangs up the session).
/// Returns the input half to hand to the terminal and the resizer.
pub(crate) fn pump_input(mut raw: Pin<Box<dyn AsyncWrite + Send>>) -> (Pin<Box<dyn AsyncWrite + Send>>, PtyResizer) {
    let (writer, mut reader) = tokio::io::duplex(MAX_INPUT);
    let (tx, mut rx) = mpsc::unbounded_channel::<(u16, u16)>();
    tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_INPUT];
        let mut resizes_open = true;
        loop {
            let frame = tokio::select! {
                biased;
                size = rx.recv(), if resizes_open => match size {
                    Some((cols, rows)) => {
                        let mut f = vec![1u8, 0, 0, 0, 4];
                        f.extend_from_slice(&cols.to_be_bytes());
                        f.extend_from_slice(&rows.to_be_bytes());
                        f
                    }
                    None => {
                        resizes_open = false;
                        continue;
                    }
                },
                n = reader.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut f = Vec::with_capacity(5 + n);
                        f.push(0u8);
                        f.extend_from_slice(&(n as u32).to_be_bytes());
                        f.extend_from_slice(&buf[..n]);
                        f
                    }
                },
            };
            if raw.write_all(&frame).await.is_err() || raw.flush().await.is_err() {
                return;
            }
        }
        let _ = raw.shutdown().await;
    });
    (Box::pin(writer), PtyResizer(tx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn demux_splits_frames_across_any_chunking() {
        let mut wire = frame(1, b"hello ");
        wire.extend(frame(2, b"oops"));
        wire.extend(frame(1, b"world"));
        wire.extend(frame(1, b""));
        for cut in 1..wire.len() {
            let mut d = Demux::default();
            let mut pieces = Vec::new();
            d.feed(Bytes::copy_from_slice(&wire[..cut]), &mut pieces).unwrap_or_else(|e| panic!("{e}"));
            d.feed(Bytes::copy_from_slice(&wire[cut..]), &mut pieces).unwrap_or_else(|e| panic!("{e}"));
            let (mut out, mut err) = (Vec::new(), Vec::new());
            for p in pieces {
                match p {
                    Piece::Stdout(b) => out.extend_from_slice(&b),
                    Piece::Stderr(b) => err.extend_from_slice(&b),
                }
            }
            assert_eq!((out.as_slice(), err.as_slice()), (&b"hello world"[..], &b"oops"[..]), "cut at {cut}");
        }
    }

    #[test]
    fn demux_refuses_an_unknown_stream_and_never_sizes_a_buffer_by_the_header() {
        let mut d = Demux::default();
        let mut pieces = Vec::new();
        assert!(d.feed(Bytes::from_static(&[7, 0, 0, 0, 0, 0, 0, 1, b'x']), &mut pieces).is_err());
        // A header announcing 4 GiB: only what came is passed on.
        let mut d = Demux::default();
        let mut pieces = Vec::new();
        d.feed(Bytes::from_static(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, b'a', b'b']), &mut pieces).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pieces, vec![Piece::Stdout(Bytes::from_static(b"ab"))]);
    }

    #[tokio::test]
    async fn start_tells_a_holder_from_a_missing_one() {
        let wire = [frame(1, b"ACP"), frame(1, b"TY1\nfirst"), frame(1, b" second")].concat();
        let raw = futures_util::stream::iter(vec![Ok(Bytes::from(wire))]).boxed();
        let Ok(Start::Held(mut out)) = start(raw).await else { panic!("no hello seen") };
        let mut got = Vec::new();
        while let Some(b) = out.next().await {
            got.extend_from_slice(&b.unwrap_or_else(|e| panic!("{e}")));
        }
        assert_eq!(got, b"first second");

        let wire = frame(1, b"OCI runtime exec failed: no such file or directory");
        let raw = futures_util::stream::iter(vec![Ok(Bytes::from(wire))]).boxed();
        let Ok(Start::Missing(why)) = start(raw).await else { panic!("a missing holder taken for one") };
        assert!(why.contains("no such file"), "{why}");

        let raw = futures_util::stream::iter(Vec::<io::Result<Bytes>>::new()).boxed();
        assert!(matches!(start(raw).await, Ok(Start::Missing(_))));
    }

    #[tokio::test]
    async fn input_and_resizes_are_framed_in_order_and_the_end_closes_stdin() {
        let (host, mut sandbox) = tokio::io::duplex(1 << 20);
        let (mut input, resizer) = pump_input(Box::pin(host));
        input.write_all(b"ls\r").await.unwrap_or_else(|e| panic!("{e}"));
        input.flush().await.unwrap_or_else(|e| panic!("{e}"));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(resizer.resize(120, 40));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        input.shutdown().await.unwrap_or_else(|e| panic!("{e}"));
        drop(input);
        let mut got = Vec::new();
        sandbox.read_to_end(&mut got).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got, [&[0u8, 0, 0, 0, 3][..], b"ls\r", &[1, 0, 0, 0, 4, 0, 120, 0, 40]].concat());
    }
}
