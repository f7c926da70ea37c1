//! Byte-transparent TTY streams from Docker's hijacked HTTP connections.
//!
//! bollard decodes attach and exec output with a decoder that guesses the framing
//! from the first byte of each read (a byte 0, 1 or 2 is taken for a multiplexing
//! header) and holds output back until a newline. That corrupts binary output and
//! delays a keystroke's echo until the next newline, so for TTY streams AnyCode talks
//! to the engine's socket itself: it sends the `POST …/attach` or `POST /exec/…/start`
//! request with `Upgrade: tcp`, reads the `101 UPGRADED` response head, and from then
//! on the connection carries the TTY's raw bytes both ways (a TTY stream is never
//! multiplexed).

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where the engine listens, for raw connections.
#[derive(Clone)]
pub(crate) enum Endpoint {
    /// A Unix socket path.
    #[cfg(unix)]
    Unix(String),
    /// `host:port` of a plain-TCP engine (`DOCKER_HOST=tcp://…` without TLS).
    Tcp(String),
    /// `host:port` of a TLS engine, with the name its certificate must carry and
    /// the client configuration (CA, client certificate).
    Tls {
        addr: String,
        server_name: rustls_pki_types::ServerName<'static>,
        config: std::sync::Arc<rustls::ClientConfig>,
    },
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            #[cfg(unix)]
            Endpoint::Unix(p) => write!(f, "unix://{p}"),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Tls { addr, .. } => write!(f, "tcp://{addr} (TLS)"),
        }
    }
}

impl Endpoint {
    /// Parses `unix:///path` or `tcp://host:port` / `http://host:port` (of
    /// `DOCKER_HOST`). Other schemes (named pipes) are not hijacked here; TLS and
    /// ssh endpoints come from [`crate::endpoint`].
    pub(crate) fn parse(endpoint: &str) -> Option<Endpoint> {
        #[cfg(unix)]
        if let Some(p) = endpoint.strip_prefix("unix://") {
            return Some(Endpoint::Unix(p.to_string()));
        }
        let rest = endpoint.strip_prefix("tcp://").or_else(|| endpoint.strip_prefix("http://"))?;
        Some(Endpoint::Tcp(rest.trim_end_matches('/').to_string()))
    }
}

trait Conn: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Conn for T {}

/// A new connection to the engine.
async fn connect(endpoint: &Endpoint) -> io::Result<Box<dyn Conn>> {
    Ok(match endpoint {
        #[cfg(unix)]
        Endpoint::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await?),
        Endpoint::Tcp(addr) => {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            Box::new(s)
        }
        Endpoint::Tls { addr, server_name, config } => {
            let s = tokio::net::TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config.clone()).connect(server_name.clone(), s).await?;
            Box::new(tls)
        }
    })
}

/// Reads from `conn` into `buf` until the HTTP response head is complete; returns
/// where it ends (after its blank line). Whatever follows in `buf` is the body.
///
/// Errors: the connection ends first, or the head passes 64 KiB.
async fn read_head(conn: &mut Box<dyn Conn>, buf: &mut BytesMut) -> io::Result<usize> {
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(i + 4);
        }
        if buf.len() > 64 * 1024 {
            return Err(io::Error::other("the Docker engine sent an oversized response head"));
        }
        if conn.read_buf(buf).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the Docker engine closed the connection"));
        }
    }
}

/// `GET /_ping`: whether the engine answers `200`, and the newest API version it
/// speaks (its `Api-Version` header, e.g. `1.41`; `None` when it sends none). This
/// is how Docker's own CLI negotiates: one cheap call. bollard's negotiation reads
/// `/version`, which also asks containerd and runs `runc --version` and
/// `docker-init --version`: 330 ms right after a `kill -9` of AnyCode at 500
/// sandboxes (dockerd busy closing their streams), on the way to the terminals
/// coming back.
///
/// Errors: the connection fails, or the answer is not `200` with a head under 64 KiB.
pub(crate) async fn ping(endpoint: &Endpoint) -> io::Result<Option<String>> {
    let mut conn = connect(endpoint).await?;
    conn.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: anycode\r\nConnection: close\r\n\r\n").await?;
    conn.flush().await?;
    let mut buf = BytesMut::with_capacity(1024);
    let head_end = read_head(&mut conn, &mut buf).await?;
    let head = String::from_utf8_lossy(&buf[..head_end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 200 {
        return Err(io::Error::other(format!("Docker answered {status} to /_ping")));
    }
    Ok(lines.find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("api-version").then(|| value.trim().to_string())
    }))
}

/// Sends `POST {path}` with `body` (JSON) asking to upgrade, checks the answer, and
/// returns the raw output stream and the input half.
///
/// Errors: the connection fails, or the engine answers with an error status (its
/// message is returned; a 404 is `io::ErrorKind::NotFound`).
pub(crate) async fn hijack(
    endpoint: &Endpoint,
    path: &str,
    body: Option<&str>,
) -> io::Result<(BoxStream<'static, io::Result<Bytes>>, std::pin::Pin<Box<dyn AsyncWrite + Send>>)> {
    let mut conn = connect(endpoint).await?;
    let body = body.unwrap_or("");
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nUser-Agent: anycode\r\nContent-Type: application/json\r\n\
         Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await?;
    conn.flush().await?;

    // Read the response head; whatever follows it is already TTY output.
    let mut buf = BytesMut::with_capacity(4096);
    let head_end = read_head(&mut conn, &mut buf).await?;
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 101 && status != 200 {
        // An error answer: read its (small) body for the engine's message.
        let mut rest = buf.split_off(head_end).to_vec();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn.read_to_end(&mut rest)).await;
        let text = String::from_utf8_lossy(&rest);
        let msg = text
            .lines()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.trim().to_string());
        let kind = if status == 404 { io::ErrorKind::NotFound } else { io::ErrorKind::Other };
        return Err(io::Error::new(kind, format!("Docker answered {status}: {msg}")));
    }
    let leftover = buf.split_off(head_end).freeze();
    let (rd, wr) = tokio::io::split(conn);
    let first = stream::iter((!leftover.is_empty()).then_some(Ok(leftover)));
    // 32 KiB reads: large enough for floods, small enough for hundreds of idle TTYs.
    let rest = tokio_util::io::ReaderStream::with_capacity(rd, 32 * 1024);
    Ok((first.chain(rest).boxed(), Box::pin(wr)))
}
