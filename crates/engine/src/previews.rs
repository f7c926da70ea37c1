//! Previews of dev servers running in a sandbox.
//!
//! - **Which ports listen**: one exec in the sandbox, only when someone asks
//!   (`GET /api/tasks/{id}/ports`): `/proc/net/tcp` and `tcp6` (sockets in the
//!   `LISTEN` state) and which process holds each socket (`/proc/<pid>/fd` links,
//!   `/proc/<pid>/comm`). No polling, so idle tasks cost nothing. The output is the
//!   sandbox's and untrusted: it is bounded, parsed strictly (hex fields, ports
//!   1–65535), process names are cut to printable characters, and AnyCode's own
//!   ports in the sandbox (the relay's hook and proxy ports) are left out.
//! - **Reaching one**: every connection is a `node` process started by exec in the
//!   sandbox that connects to `127.0.0.1:<port>` (then `[::1]:<port>`) and pipes
//!   bytes over the exec stream ([`PreviewStream`]). Traffic goes from the host into
//!   the sandbox, so previews work in every network mode and on a remote engine, and
//!   no port of the sandbox is published. The server speaks HTTP over it.

use crate::{Engine, Error, Result, Task, TaskStatus};
use anycode_sandbox::{PipeChunk, SandboxHost};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes of the port listing read from the sandbox.
const MAX_LISTING: usize = 512 * 1024;
/// The longest process name kept.
const MAX_PROCESS: usize = 64;

/// Lists listening TCP sockets and the sockets each process holds (see the module).
const PORTS_SCRIPT: &str = r#"for f in /proc/net/tcp /proc/net/tcp6; do [ -r "$f" ] && tail -n +2 "$f"; done
echo '-- fds'
find /proc/[0-9]*/fd -maxdepth 1 -lname 'socket:*' -printf '%h %l\n' 2>/dev/null
echo '-- comm'
for p in /proc/[0-9]*; do read -r c < "$p/comm" 2>/dev/null && echo "${p#/proc/} $c"; done
exit 0
"#;

/// Connects to the port in `argv[1]` on 127.0.0.1, then ::1, and pipes stdin and
/// stdout to it.
const CONNECT_JS: &str = r#"const net=require('net');const port=+process.argv[1];
function go(hosts){const h=hosts.shift();const s=net.connect(port,h);let ok=false;
s.on('connect',()=>{ok=true;process.stdin.pipe(s);s.pipe(process.stdout);});
s.on('error',e=>{if(!ok&&hosts.length)return go(hosts);process.stderr.write('preview: '+e.message+'\n');process.exit(1);});
s.on('close',()=>{if(ok)process.exit(0);});
process.stdin.on('end',()=>{if(ok)s.end();});}
go(['127.0.0.1','::1']);"#;

/// A TCP port listening in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ListeningPort {
    /// The port, 1–65535.
    pub port: u16,
    /// The name of the process holding the socket (`node`, `python3`), when the
    /// sandbox user may see it; the sandbox's own text, cut to 64 printable
    /// characters.
    pub process: Option<String>,
    /// Where it listens: `127.0.0.1`, `0.0.0.0`, `::1`, `::` or another address;
    /// empty for a forwarded port nothing listens on yet.
    pub address: String,
    /// Whether something listens on it now (false only for a forwarded port).
    pub listening: bool,
    /// Whether the project's devcontainer.json lists it in `forwardPorts`.
    pub forwarded: bool,
}

/// Parses the output of [`PORTS_SCRIPT`]: listening sockets with their processes,
/// one per port (sorted; the first process seen wins), without `exclude`d ports.
pub fn parse_ports(out: &str, exclude: &[u16]) -> Vec<ListeningPort> {
    let mut sections = out.split("\n-- ");
    let tcp = sections.next().unwrap_or("");
    let (mut fds, mut comm) = ("", "");
    for s in sections {
        if let Some(rest) = s.strip_prefix("fds\n") {
            fds = rest;
        } else if let Some(rest) = s.strip_prefix("comm\n") {
            comm = rest;
        }
    }
    let names: HashMap<&str, String> = comm
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(pid, _)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .map(|(pid, name)| (pid, name.chars().filter(|c| !c.is_control()).take(MAX_PROCESS).collect::<String>()))
        .collect();
    // "/proc/123/fd socket:[4567]"
    let mut owner: HashMap<&str, &str> = HashMap::new();
    for l in fds.lines() {
        let Some((dir, link)) = l.split_once(' ') else { continue };
        let (Some(pid), Some(inode)) = (dir.strip_prefix("/proc/").and_then(|d| d.strip_suffix("/fd")), link.strip_prefix("socket:[").and_then(|i| i.strip_suffix(']'))) else {
            continue;
        };
        owner.entry(inode).or_insert(pid);
    }
    let mut ports: Vec<ListeningPort> = Vec::new();
    for l in tcp.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 10 || f[3] != "0A" {
            continue;
        }
        let Some((addr, port)) = f[1].split_once(':') else { continue };
        let Ok(port) = u16::from_str_radix(port, 16) else { continue };
        if port == 0 || exclude.contains(&port) || ports.iter().any(|p| p.port == port) {
            continue;
        }
        let Some(address) = parse_addr(addr) else { continue };
        let process = owner.get(f[9]).and_then(|pid| names.get(pid)).cloned().filter(|n| !n.is_empty());
        ports.push(ListeningPort { port, process, address, listening: true, forwarded: false });
    }
    ports.sort_by_key(|p| p.port);
    ports
}

/// `/proc/net/tcp*`'s hex address (little-endian 32-bit words) as text.
fn parse_addr(hex: &str) -> Option<String> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let words: Vec<u32> = (0..hex.len() / 8).map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16)).collect::<std::result::Result<_, _>>().ok()?;
    match words.len() {
        1 => Some(std::net::Ipv4Addr::from(words[0].swap_bytes()).to_string()),
        4 => {
            let mut b = [0u8; 16];
            for (i, w) in words.iter().enumerate() {
                b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            Some(std::net::Ipv6Addr::from(b).to_string())
        }
        _ => None,
    }
}

/// A byte stream to a port in a sandbox (an exec'd connector's stdin and stdout).
pub struct PreviewStream {
    read: tokio_util::io::StreamReader<futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>, bytes::Bytes>,
    write: Pin<Box<dyn AsyncWrite + Send>>,
}

impl AsyncRead for PreviewStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for PreviewStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write.as_mut().poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.write.as_mut().poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.write.as_mut().poll_shutdown(cx)
    }
}

impl Engine {
    /// The task's running, unfrozen container (a paused one is resumed: someone
    /// is looking). Errors: `TASK_NOT_FOUND`, `TASK_NOT_RUNNING`.
    async fn preview_container(&self, task_id: &str) -> Result<(SandboxHost, String, Task)> {
        let task = self.task(task_id).await?;
        if task.status == TaskStatus::Paused {
            self.ensure_unpaused(&task.id).await?;
        }
        let not_running = || Error::TaskNotRunning(task.id.clone(), task.status.to_string());
        if !(task.status.is_live() || task.status == TaskStatus::Paused) {
            return Err(not_running());
        }
        let cid = task.container_id.clone().ok_or_else(not_running)?;
        let docker = self.backend_for(&task).await?;
        match docker.inspect(&cid).await? {
            Some(c) if c.running && !c.paused => Ok((docker, cid, task)),
            _ => Err(not_running()),
        }
    }

    /// The TCP ports listening in the task's sandbox now (one exec; see the module).
    ///
    /// Errors: `TASK_NOT_FOUND`, `TASK_NOT_RUNNING`, Docker errors.
    pub async fn listening_ports(&self, task_id: &str) -> Result<Vec<ListeningPort>> {
        let (docker, cid, task) = self.preview_container(task_id).await?;
        let project = self.project(&task.project_id).await?;
        let user = self.task_user(&task, &project);
        let cmd = vec!["sh".to_string(), "-c".to_string(), PORTS_SCRIPT.to_string(), "ports".to_string()];
        let out = docker.exec_output(&cid, cmd, &user, vec![], b"", MAX_LISTING).await?;
        let mut ports = parse_ports(&String::from_utf8_lossy(&out.stdout), &[anycode_egress::HOOK_PORT, anycode_egress::PROXY_PORT]);
        // The devcontainer's forwardPorts show even before anything listens.
        for port in self.forward_ports(&task).await {
            match ports.iter_mut().find(|p| p.port == port) {
                Some(p) => p.forwarded = true,
                None => ports.push(ListeningPort { port, process: None, address: String::new(), listening: false, forwarded: true }),
            }
        }
        ports.sort_by_key(|p| p.port);
        Ok(ports)
    }

    /// A new connection to `port` in the task's sandbox. When nothing listens
    /// there, the stream ends at once (the caller answers 502).
    ///
    /// Errors: `INVALID_INPUT` (port 0), `TASK_NOT_FOUND`, `TASK_NOT_RUNNING`, Docker errors.
    pub async fn preview_connect(&self, task_id: &str, port: u16) -> Result<PreviewStream> {
        if port == 0 {
            return Err(Error::Invalid("port 0: give the port the dev server listens on".into()));
        }
        let (docker, cid, task) = self.preview_container(task_id).await?;
        let project = self.project(&task.project_id).await?;
        let user = self.task_user(&task, &project);
        let cmd = vec!["node".to_string(), "-e".to_string(), CONNECT_JS.to_string(), port.to_string()];
        let pipe = docker.exec_pipe(&cid, cmd, &user, vec![], "/").await?;
        let task_log = task.id.clone();
        let stdout = pipe.output.filter_map(move |c| {
            let task_log = task_log.clone();
            async move {
                match c {
                    Ok(PipeChunk::Stdout(b)) => Some(Ok(b)),
                    Ok(PipeChunk::Stderr(b)) => {
                        tracing::debug!(task = %task_log, port, "{}", anycode_git::taskrepo::sandbox_text(&b));
                        None
                    }
                    Err(e) => Some(Err(e)),
                }
            }
        });
        Ok(PreviewStream { read: tokio_util::io::StreamReader::new(stdout.boxed()), write: pipe.input })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_with_their_processes() {
        let out = "   0: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0000000000000000 100 0 0 10 0\n\
                   1: 0100007F:BAB9 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 222 1\n\
                   2: 0100007F:1F90 0100007F:D2B4 01 00000000:00000000 00:00000000 00000000  1000        0 333 1\n\
                   3: 0100007F:0C38 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 444 1\n\
                   0: 00000000000000000000000001000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 555 1\n\
                   9: ZZZZ:0050 00000000:0000 0A 0 0 0 0 0 666 1\n\
                 -- fds\n/proc/42/fd socket:[111]\n/proc/77/fd socket:[555]\n/proc/x/fd socket:[222]\n\
                 -- comm\n42 node\n77 python3\x1b[31m\n";
        let ports = parse_ports(out, &[3128]);
        assert_eq!(
            ports,
            vec![
                ListeningPort { port: 3000, process: Some("node".into()), address: "0.0.0.0".into(), listening: true, forwarded: false },
                ListeningPort { port: 5432, process: Some("python3[31m".into()), address: "::1".into(), listening: true, forwarded: false },
                ListeningPort { port: 47801, process: None, address: "127.0.0.1".into(), listening: true, forwarded: false },
            ]
        );
    }

    #[test]
    fn garbage_gives_no_ports() {
        assert!(parse_ports("", &[]).is_empty());
        assert!(parse_ports("x y z\n-- fds\n-- comm\n", &[]).is_empty());
    }
}
