//! The host side of the sandbox relay: [`run_relay`] reads frames (see
//! [`crate::frame`]) from the relay process's stdout and hands every connection the
//! sandbox opened to a [`Handler`] as one end of a [`DuplexStream`], by the port it
//! was opened to.

use crate::frame::{read_frame, Frame, Kind};
use crate::Error;
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

/// Bytes buffered inside each connection's duplex pipe.
const PIPE_BYTES: usize = 64 * 1024;
/// Largest `DATA` payload this side sends, bytes.
const CHUNK: usize = 16 * 1024;
/// Chunks queued towards one connection before the demultiplexer waits for it
/// (back-pressure: the relay's stdout is then not read, so its clients pause).
const CONN_QUEUE: usize = 8;
/// Frames queued towards the relay's stdin before connections wait.
const OUT_QUEUE: usize = 64;

/// Serves one connection opened in the sandbox: `(port, stream)`. Called on the
/// demultiplexer's task, so it must not block: spawn the serving.
pub type Handler = Arc<dyn Fn(u16, DuplexStream) + Send + Sync>;

enum Msg {
    Data(Bytes),
    End,
}

/// Runs the relay's host side until the sandbox side's output ends (the relay
/// process exited, or the container stopped): frames are read from `from_sandbox`
/// (the relay's stdout) and written to `to_sandbox` (its stdin). Open connections
/// are reset when it returns.
///
/// Errors: [`Error::Protocol`] for a malformed frame stream, [`Error::Io`].
pub async fn run_relay<R, W>(mut from_sandbox: R, to_sandbox: W, handler: Handler) -> Result<(), Error>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out_tx, out_rx) = mpsc::channel::<Frame>(OUT_QUEUE);
    let mut spawned = Spawned { writer: tokio::spawn(write_frames(to_sandbox, out_rx)).abort_handle(), conns: HashMap::new() };
    let conns = &mut spawned.conns;
    let result = loop {
        let frame = match read_frame(&mut from_sandbox).await {
            Ok(Some(f)) => f,
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        };
        match frame.kind {
            Kind::Open => {
                let port = match frame.port() {
                    Ok(p) => p,
                    Err(e) => break Err(e),
                };
                // Finished pumps only: one whose sandbox side ended (END) may still
                // be sending, and a later RESET must reach it.
                conns.retain(|_, (_, task)| !task.is_finished());
                if let Some((_, old)) = conns.remove(&frame.conn) {
                    old.abort();
                }
                let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
                let (tx, rx) = mpsc::channel(CONN_QUEUE);
                let task = tokio::spawn(pump(frame.conn, ours, rx, out_tx.clone()));
                conns.insert(frame.conn, (tx, task.abort_handle()));
                handler(port, theirs);
            }
            Kind::Data => {
                if let Some((tx, _)) = conns.get(&frame.conn) {
                    if tx.send(Msg::Data(frame.payload)).await.is_err() {
                        conns.remove(&frame.conn);
                    }
                }
            }
            Kind::End => {
                // Kept: the other direction may still be open, and a RESET after the
                // END (the sandbox client went away before the answer) aborts it.
                if let Some((tx, _)) = conns.get(&frame.conn) {
                    let _ = tx.send(Msg::End).await;
                }
            }
            Kind::Reset => {
                if let Some((_, task)) = conns.remove(&frame.conn) {
                    task.abort();
                }
            }
        }
    };
    drop(out_tx);
    drop(spawned);
    result
}

/// The tasks [`run_relay`] spawned: the writer (it owns the relay's stdin) and each
/// connection's pump (each holds a sender to the writer). All are aborted when
/// `run_relay` returns *or its future is dropped*, so a cancelled relay closes the
/// relay's stdin and its process ends, freeing the sandbox's ports. A pump left
/// running (an agent's keep-alive connection through the proxy) would otherwise
/// keep the writer, and the stdin, alive.
struct Spawned {
    writer: AbortHandle,
    conns: HashMap<u32, (mpsc::Sender<Msg>, AbortHandle)>,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.writer.abort();
        for (_, (_, task)) in self.conns.drain() {
            task.abort();
        }
    }
}

/// Writes queued frames, flushing whenever the queue is empty.
async fn write_frames<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::Receiver<Frame>) {
    let mut buf = BytesMut::new();
    while let Some(f) = rx.recv().await {
        f.encode(&mut buf);
        while let Ok(more) = rx.try_recv() {
            more.encode(&mut buf);
        }
        if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
}

/// Moves one connection's bytes between its duplex pipe and the frames.
async fn pump(conn: u32, stream: DuplexStream, mut rx: mpsc::Receiver<Msg>, out: mpsc::Sender<Frame>) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let out2 = out.clone();
    let to_sandbox = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) => {
                    let _ = out2.send(Frame::end(conn)).await;
                    return;
                }
                Ok(n) => {
                    if out2.send(Frame::data(conn, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                        return;
                    }
                }
                Err(_) => {
                    let _ = out2.send(Frame::reset(conn)).await;
                    return;
                }
            }
        }
    };
    let from_sandbox = async move {
        while let Some(m) = rx.recv().await {
            match m {
                Msg::Data(b) => {
                    if wr.write_all(&b).await.is_err() {
                        // The handler dropped its end: the sandbox client is told.
                        let _ = out.send(Frame::reset(conn)).await;
                        return;
                    }
                }
                Msg::End => {
                    let _ = wr.shutdown().await;
                    return;
                }
            }
        }
    };
    tokio::join!(to_sandbox, from_sandbox);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::write_frame;

    /// An echo handler: uppercases what it reads, answers with the port first.
    fn echo() -> Handler {
        Arc::new(|port, mut s: DuplexStream| {
            tokio::spawn(async move {
                s.write_all(format!("port {port}\n").as_bytes()).await.unwrap();
                let mut all = Vec::new();
                s.read_to_end(&mut all).await.unwrap();
                s.write_all(&all.to_ascii_uppercase()).await.unwrap();
                s.shutdown().await.unwrap();
            });
        })
    }

    #[tokio::test]
    async fn connections_are_demultiplexed_by_id_with_half_close() {
        let (sandbox_out, host_in) = tokio::io::duplex(1024);
        let (host_out, mut sandbox_in) = tokio::io::duplex(1024);
        let relay = tokio::spawn(run_relay(host_in, host_out, echo()));
        let mut w = sandbox_out;
        for (id, port) in [(1u32, 47777u16), (2, 3128)] {
            write_frame(&mut w, &Frame::open(id, port)).await.unwrap();
        }
        write_frame(&mut w, &Frame::data(2, Bytes::from_static(b"second "))).await.unwrap();
        write_frame(&mut w, &Frame::data(1, Bytes::from_static(b"first"))).await.unwrap();
        write_frame(&mut w, &Frame::data(2, Bytes::from_static(b"two"))).await.unwrap();
        write_frame(&mut w, &Frame::end(1)).await.unwrap();
        write_frame(&mut w, &Frame::end(2)).await.unwrap();
        let mut got: HashMap<u32, Vec<u8>> = HashMap::new();
        let mut ended = 0;
        while ended < 2 {
            let f = read_frame(&mut sandbox_in).await.unwrap().unwrap();
            match f.kind {
                Kind::Data => got.entry(f.conn).or_default().extend_from_slice(&f.payload),
                Kind::End => ended += 1,
                k => panic!("unexpected {k:?}"),
            }
        }
        assert_eq!(String::from_utf8_lossy(&got[&1]), "port 47777\nFIRST");
        assert_eq!(String::from_utf8_lossy(&got[&2]), "port 3128\nSECOND TWO");
        drop(w);
        relay.await.unwrap().unwrap();
    }

    /// Cancelling the relay (AnyCode stopping) closes its stdin even while a
    /// connection is open, so the sandbox's relay process ends.
    #[tokio::test]
    async fn a_dropped_relay_closes_the_sandbox_side_with_a_connection_open() {
        let kept = Arc::new(std::sync::Mutex::new(Vec::new()));
        let k = kept.clone();
        // The handler keeps its end open, as a keep-alive proxy connection does.
        let handler: Handler = Arc::new(move |_, s: DuplexStream| k.lock().unwrap().push(s));
        let (mut w, host_in) = tokio::io::duplex(1024);
        let (host_out, mut sandbox_in) = tokio::io::duplex(1024);
        let relay = tokio::spawn(run_relay(host_in, host_out, handler));
        write_frame(&mut w, &Frame::open(1, 3128)).await.unwrap();
        write_frame(&mut w, &Frame::data(1, Bytes::from_static(b"GET / HTTP/1.1\r\n"))).await.unwrap();
        while kept.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        relay.abort();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), sandbox_in.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the sandbox side's stdin did not close");
        assert_eq!(kept.lock().unwrap().len(), 1, "the connection was open while the relay was cancelled");
    }

    /// A sandbox client that half-closed and then went away (END, then RESET): the
    /// connection's other direction is aborted too, so the handler stops sending
    /// (it used to keep streaming an answer the relay threw away).
    #[tokio::test]
    async fn a_reset_after_end_aborts_the_answer_still_being_sent() {
        let (err_tx, err_rx) = tokio::sync::oneshot::channel::<u64>();
        let err_tx = std::sync::Mutex::new(Some(err_tx));
        let handler: Handler = Arc::new(move |_, mut s: DuplexStream| {
            let tx = err_tx.lock().unwrap().take();
            tokio::spawn(async move {
                // An endless answer, until the connection is gone.
                let mut sent = 0u64;
                while s.write_all(&[b'x'; 1024]).await.is_ok() {
                    sent += 1024;
                }
                if let Some(tx) = tx {
                    let _ = tx.send(sent);
                }
            });
        });
        let (mut w, host_in) = tokio::io::duplex(1024);
        let (host_out, mut sandbox_in) = tokio::io::duplex(64 * 1024);
        let relay = tokio::spawn(run_relay(host_in, host_out, handler));
        // The sandbox side reads everything, as a relay that discards would.
        let drain = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while sandbox_in.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        });
        write_frame(&mut w, &Frame::open(7, 3128)).await.unwrap();
        write_frame(&mut w, &Frame::end(7)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        write_frame(&mut w, &Frame::reset(7)).await.unwrap();
        let sent = tokio::time::timeout(std::time::Duration::from_secs(5), err_rx).await;
        assert!(sent.is_ok(), "the handler was still sending 5 s after the RESET");
        drop(w);
        relay.await.unwrap().unwrap();
        drain.abort();
    }

    #[tokio::test]
    async fn a_reset_aborts_the_connection_and_a_bad_stream_is_an_error() {
        let (tx, rx) = tokio::sync::oneshot::channel::<Vec<u8>>();
        let tx = std::sync::Mutex::new(Some(tx));
        let handler: Handler = Arc::new(move |_, mut s: DuplexStream| {
            let tx = tx.lock().unwrap().take();
            tokio::spawn(async move {
                let mut all = Vec::new();
                let _ = s.read_to_end(&mut all).await;
                if let Some(tx) = tx {
                    let _ = tx.send(all);
                }
            });
        });
        let (mut w, host_in) = tokio::io::duplex(1024);
        let (host_out, _keep) = tokio::io::duplex(1024);
        let relay = tokio::spawn(run_relay(host_in, host_out, handler));
        write_frame(&mut w, &Frame::open(5, 1)).await.unwrap();
        write_frame(&mut w, &Frame::data(5, Bytes::from_static(b"partial"))).await.unwrap();
        write_frame(&mut w, &Frame::reset(5)).await.unwrap();
        // The handler's read ends (the pipe's other end is gone).
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), rx).await.unwrap().unwrap();
        assert!(got.is_empty() || got == b"partial");
        w.write_all(&[0, 0, 0, 1, 77, 0, 0, 0, 0]).await.unwrap();
        assert!(matches!(relay.await.unwrap(), Err(Error::Protocol(_))));
    }
}
