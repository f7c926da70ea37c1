//! The relay's framing: every connection accepted inside the sandbox travels over
//! the relay process's stdin/stdout as frames
//!
//! ```text
//! [u32 BE connection id][u8 kind][u32 BE payload length][payload]
//! ```
//!
//! | kind | value | direction | payload |
//! |---|---|---|---|
//! | `OPEN` | 1 | sandbox → host | the port the sandbox client connected to, u16 BE |
//! | `DATA` | 2 | both | bytes of the connection (1 to [`MAX_PAYLOAD`]) |
//! | `END` | 3 | both | none: the sender writes no more (TCP half-close) |
//! | `RESET` | 4 | both | none: the connection is gone in both directions |
//!
//! Connection ids are chosen by the sandbox side (only it accepts connections) and
//! not reused while open. Back-pressure is the pipes': a side that cannot deliver
//! stops reading.

use crate::Error;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Header bytes before each payload.
pub const HEADER_LEN: usize = 9;
/// The largest payload a frame may carry, bytes (a longer length is a protocol error).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// What a frame says about its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new connection to a port (payload: u16 BE).
    Open,
    /// Bytes.
    Data,
    /// The sender's half is closed.
    End,
    /// The connection is aborted.
    Reset,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Open => 1,
            Kind::Data => 2,
            Kind::End => 3,
            Kind::Reset => 4,
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Open,
            2 => Kind::Data,
            3 => Kind::End,
            4 => Kind::Reset,
            _ => return None,
        })
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The connection's id.
    pub conn: u32,
    /// What it says.
    pub kind: Kind,
    /// Its bytes (empty for `END` and `RESET`).
    pub payload: Bytes,
}

impl Frame {
    /// `OPEN` of `conn` to `port`.
    pub fn open(conn: u32, port: u16) -> Frame {
        Frame { conn, kind: Kind::Open, payload: Bytes::copy_from_slice(&port.to_be_bytes()) }
    }

    /// `DATA` of `conn`.
    pub fn data(conn: u32, payload: Bytes) -> Frame {
        Frame { conn, kind: Kind::Data, payload }
    }

    /// `END` of `conn`.
    pub fn end(conn: u32) -> Frame {
        Frame { conn, kind: Kind::End, payload: Bytes::new() }
    }

    /// `RESET` of `conn`.
    pub fn reset(conn: u32) -> Frame {
        Frame { conn, kind: Kind::Reset, payload: Bytes::new() }
    }

    /// The port of an `OPEN` frame. Errors: [`Error::Protocol`] for a payload that is
    /// not 2 bytes.
    pub fn port(&self) -> Result<u16, Error> {
        let b: [u8; 2] = self.payload[..].try_into().map_err(|_| Error::Protocol(format!("OPEN of connection {} without a port", self.conn)))?;
        Ok(u16::from_be_bytes(b))
    }

    /// Appends the encoded frame to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(HEADER_LEN + self.payload.len());
        out.put_u32(self.conn);
        out.put_u8(self.kind.byte());
        out.put_u32(self.payload.len() as u32);
        out.put_slice(&self.payload);
    }
}

/// Reads the next frame; `Ok(None)` at the end of the stream on a frame boundary.
///
/// Errors: [`Error::Protocol`] for an unknown kind, an oversized length or a stream
/// ending inside a frame; [`Error::Io`].
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, Error> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(Error::Protocol("the stream ended inside a frame header".into())) };
        }
        got += n;
    }
    let conn = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let kind = Kind::from_byte(header[4]).ok_or_else(|| Error::Protocol(format!("unknown frame kind {}", header[4])))?;
    let len = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(Error::Protocol(format!("a frame of {len} bytes (at most {MAX_PAYLOAD})")));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => Error::Protocol("the stream ended inside a frame".into()),
        _ => Error::Io(e),
    })?;
    Ok(Some(Frame { conn, kind, payload: Bytes::from(payload) }))
}

/// Writes one frame (not flushed).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, f: &Frame) -> Result<(), Error> {
    let mut buf = BytesMut::new();
    f.encode(&mut buf);
    w.write_all(&buf).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_in_any_chunking() {
        let frames = vec![Frame::open(7, 47777), Frame::data(7, Bytes::from_static(b"hello")), Frame::end(7), Frame::reset(9)];
        let mut buf = BytesMut::new();
        for f in &frames {
            f.encode(&mut buf);
        }
        assert_eq!(&buf[..HEADER_LEN], &[0, 0, 0, 7, 1, 0, 0, 0, 2]);
        // One byte at a time.
        let (mut a, mut b) = tokio::io::duplex(1);
        let bytes = buf.freeze();
        tokio::spawn(async move { a.write_all(&bytes).await });
        let mut got = Vec::new();
        while let Some(f) = read_frame(&mut b).await.unwrap() {
            got.push(f);
        }
        assert_eq!(got, frames);
        assert_eq!(got[0].port().unwrap(), 47777);
    }

    #[tokio::test]
    async fn bad_frames_are_protocol_errors() {
        let mut r: &[u8] = &[0, 0, 0, 1, 9, 0, 0, 0, 0];
        assert!(matches!(read_frame(&mut r).await, Err(Error::Protocol(_))));
        let mut r: &[u8] = &[0, 0, 0, 1, 2, 0xff, 0, 0, 0];
        assert!(matches!(read_frame(&mut r).await, Err(Error::Protocol(_))));
        let mut r: &[u8] = &[0, 0, 0, 1, 2, 0, 0, 0, 5, b'a'];
        assert!(matches!(read_frame(&mut r).await, Err(Error::Protocol(_))));
        let mut r: &[u8] = &[0, 0];
        assert!(matches!(read_frame(&mut r).await, Err(Error::Protocol(_))));
    }
}
