//! Handing a task's credential to its agent process when it starts.
//!
//! The secret must reach only the agent process's environment: not the container's
//! create-time configuration (`docker inspect` shows it), not its filesystem, not the
//! terminal's output. So the container's main process is
//! `/opt/anycode/bin/start-agent <agent>`, which at every start:
//!
//! 1. turns the TTY's echo off,
//! 2. makes a random nonce (128 bits) and prints [`MARKER`] with it (an OSC sequence
//!    terminals ignore: `ESC ] 777 ; anycode-env ; <nonce> BEL`),
//! 3. reads one line: `anycode-env:<nonce>:` + base64 of NUL-separated `KEY=value`
//!    entries, and accepts it only with this start's nonce (anything typed into
//!    the TTY meanwhile, or a line meant for an earlier start, is not it),
//! 4. turns echo back on, exports the entries, prints the (non-secret) note as the
//!    terminal's first line, and execs the agent.
//!
//! The engine watches the agent terminal's output for the marker (bounded by
//! [`MARKER_WAIT`]) and writes the line into the TTY over a stdin-only attach of
//! its own ([`anycode_sandbox::Docker::write_stdin`]), so the line passes through no
//! viewer, scrollback, recording or log. Echo being off, the TTY never prints it.
//! Viewers' keystrokes are held by the terminal hub from before the start until the
//! line is written ([`anycode_terminal::Viewer::holding_input`]), then delivered.

use anycode_credentials::Secret;
use anycode_terminal::{Recv, Viewer};
use base64::Engine as _;
use std::time::Duration;
use zeroize::Zeroizing;

/// What start-agent prints once echo is off and it waits for the line, before its
/// nonce (`;<hex>`) and the closing BEL. A start-agent of an older AnyCode prints
/// the BEL right after it (no nonce).
pub(crate) const MARKER: &[u8] = b"\x1b]777;anycode-env";
/// The longest nonce accepted from a marker (hex digits).
const MAX_NONCE: usize = 64;
/// The line's prefix (start-agent drops anything typed before it).
pub(crate) const PREFIX: &str = "anycode-env:";
/// How long the engine waits for the marker after starting the container.
pub(crate) const MARKER_WAIT: Duration = Duration::from_secs(20);
/// The longest line a TTY in canonical mode takes is 4095 bytes (Linux).
const MAX_LINE: usize = 4000;

/// What one start hands over: environment entries and a note for the terminal.
pub(crate) struct Handover {
    /// `(variable, secret)`, e.g. `("CLAUDE_CODE_OAUTH_TOKEN", …)`.
    pub env: Vec<(String, Secret)>,
    /// Other variables for the agent, exported before `env`: gateways and base URLs
    /// (the settings' `[env]`, the profile's base-URL variables), the profile's `env`.
    pub vars: Vec<(String, String)>,
    /// The terminal's first line (never secret).
    pub note: String,
    /// Whether the note is a warning (printed in yellow) or information (dim).
    pub warn: bool,
}

impl Handover {
    /// The line to write for start-agent's `nonce`: `anycode-env:<nonce>:<base64>\n`
    /// (`anycode-env:<base64>\n` for an older start-agent, which sends none).
    /// Errors when it would not fit a TTY line.
    pub(crate) fn line(&self, nonce: &str) -> Result<Secret, String> {
        let mut payload = Zeroizing::new(Vec::<u8>::new());
        for (k, v) in &self.vars {
            payload.extend_from_slice(k.as_bytes());
            payload.push(b'=');
            payload.extend_from_slice(v.as_bytes());
            payload.push(0);
        }
        for (k, v) in &self.env {
            payload.extend_from_slice(k.as_bytes());
            payload.push(b'=');
            payload.extend_from_slice(v.expose().as_bytes());
            payload.push(0);
        }
        let note = self.note.replace(['\0', '\n', '\r'], " ");
        payload.extend_from_slice(format!("ANYCODE_CREDENTIAL_NOTE={note}\0").as_bytes());
        payload.extend_from_slice(format!("ANYCODE_CREDENTIAL_LEVEL={}\0", if self.warn { "warn" } else { "info" }).as_bytes());
        let nonce = if nonce.is_empty() { String::new() } else { format!("{nonce}:") };
        let line = Secret::new(format!("{PREFIX}{nonce}{}\n", base64::engine::general_purpose::STANDARD.encode(&payload[..])));
        if line.len() > MAX_LINE {
            return Err(format!("the credentials are too long to hand over ({} bytes, at most {MAX_LINE})", line.len()));
        }
        Ok(line)
    }
}

/// The marker at the start of `bytes` (which begin with [`MARKER`]):
/// `Ok(Some((nonce, length)))` for a whole one (the nonce empty for an older
/// start-agent), `Ok(None)` when it is no marker after all, `Err(())` when it is
/// incomplete (more bytes may complete it).
fn parse_marker(bytes: &[u8]) -> Result<Option<(String, usize)>, ()> {
    let rest = &bytes[MARKER.len()..];
    match rest.first() {
        None => Err(()),
        Some(b'\x07') => Ok(Some((String::new(), MARKER.len() + 1))),
        Some(b';') => {
            for (i, b) in rest[1..].iter().enumerate() {
                match b {
                    b'\x07' => return Ok(Some((String::from_utf8_lossy(&rest[1..1 + i]).into_owned(), MARKER.len() + 2 + i))),
                    b'0'..=b'9' | b'a'..=b'f' if i < MAX_NONCE => {}
                    _ => return Ok(None),
                }
            }
            Err(())
        }
        Some(_) => Ok(None),
    }
}

/// Whether a container's log ends with start-agent waiting for its line (the
/// marker and the newline it prints after it, see start-agent): the nonce to
/// answer with.
pub(crate) fn pending_nonce(tail: &[u8]) -> Option<String> {
    // What start-agent prints after the marker: a newline (`\r\n` through the TTY)
    // and a cursor-up, which Docker's log holds until a later newline.
    let tail = tail.strip_suffix(b"\x1b[A").unwrap_or(tail);
    let mut end = tail.len();
    while end > 0 && matches!(tail[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    let tail = &tail[..end];
    let start = (0..tail.len()).rev().find(|&i| tail[i..].starts_with(MARKER))?;
    match parse_marker(&tail[start..]) {
        Ok(Some((nonce, len))) if start + len == tail.len() => Some(nonce),
        _ => None,
    }
}

/// How waiting for the marker ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// start-agent asks for the line, with this nonce (empty: an older start-agent).
    Asked(String),
    /// The process ended first.
    Exited,
    /// Nothing within the time limit (an image without AnyCode's start-agent?).
    TimedOut,
}

/// Reads the viewer's live output until [`MARKER`] shows (in any chunking), the
/// process ends, or `limit` passes. The viewer's snapshot (earlier runs) is ignored.
pub(crate) async fn wait_for_marker(viewer: &mut Viewer, limit: Duration) -> Wait {
    let deadline = tokio::time::Instant::now() + limit;
    let mut scanner = Scanner::default();
    loop {
        let next = tokio::time::timeout_at(deadline, viewer.recv()).await;
        match next {
            Err(_) => return Wait::TimedOut,
            Ok(Recv::Output(b)) => {
                if let Some(nonce) = scanner.feed(&b) {
                    return Wait::Asked(nonce);
                }
            }
            // Fallen behind: start-agent prints nothing after the marker but its
            // newline until it has its line, so a missed marker ends the snapshot.
            Ok(Recv::Resync(snapshot)) => {
                if let Some(nonce) = pending_nonce(&snapshot) {
                    return Wait::Asked(nonce);
                }
                scanner = Scanner::default();
            }
            Ok(Recv::Exit(_)) | Ok(Recv::Closed) => return Wait::Exited,
            #[allow(unreachable_patterns)]
            Ok(_) => {}
        }
    }
}

/// Finds a complete marker (with its nonce) in a byte stream however it is cut
/// into chunks.
#[derive(Default)]
struct Scanner {
    /// The last bytes seen, enough to find a marker split across chunks.
    tail: Vec<u8>,
}

impl Scanner {
    /// The marker's nonce once a whole marker has been seen.
    fn feed(&mut self, chunk: &[u8]) -> Option<String> {
        self.tail.extend_from_slice(chunk);
        let mut from = 0;
        while let Some(at) = find(&self.tail[from..], MARKER).map(|i| i + from) {
            match parse_marker(&self.tail[at..]) {
                Ok(Some((nonce, _))) => return Some(nonce),
                // Incomplete: keep it for the next chunk.
                Err(()) => {
                    self.tail.drain(..at);
                    return None;
                }
                Ok(None) => from = at + 1,
            }
        }
        let keep = MARKER.len() - 1;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        None
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}


#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "0123456789abcdef0123456789abcdef";

    fn marker(nonce: &str) -> Vec<u8> {
        [MARKER, format!(";{nonce}\x07").as_bytes()].concat()
    }

    #[test]
    fn a_log_ending_with_the_marker_waits_with_its_nonce() {
        let m = marker(N);
        assert_eq!(pending_nonce(&[b"old output\r\n".as_slice(), &m, b"\r\n\x1b[A"].concat()).as_deref(), Some(N));
        assert_eq!(pending_nonce(&m).as_deref(), Some(N));
        assert_eq!(pending_nonce(b"\x1b]777;anycode-env\x07\r\n").as_deref(), Some(""), "an older start-agent");
        assert_eq!(pending_nonce(&[m.as_slice(), b"\r\n\x1b[AAnyCode: note\r\n$ "].concat()), None);
        assert_eq!(pending_nonce(b"\x1b]777;anycode-env;zz\x07"), None, "not hex");
        assert_eq!(pending_nonce(b""), None);
    }

    #[test]
    fn the_line_is_base64_of_nul_separated_entries() {
        let h = Handover {
            env: vec![("CLAUDE_CODE_OAUTH_TOKEN".into(), Secret::new("sk-ant-oat01-x"))],
            vars: vec![("ANTHROPIC_BASE_URL".into(), "http://gw:8080".into())],
            note: "hello\nworld".into(),
            warn: true,
        };
        let line = h.line(N).unwrap();
        let text = line.expose();
        let start = format!("{PREFIX}{N}:");
        assert!(text.starts_with(&start) && text.ends_with('\n'));
        assert!(!text.contains("sk-ant"), "encoded, so a stray echo would not show it as text either");
        let decoded = base64::engine::general_purpose::STANDARD.decode(text[start.len()..].trim_end()).unwrap();
        let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
        assert_eq!(parts[0], b"ANTHROPIC_BASE_URL=http://gw:8080");
        assert_eq!(parts[1], b"CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-x");
        assert_eq!(parts[2], b"ANYCODE_CREDENTIAL_NOTE=hello world");
        assert_eq!(parts[3], b"ANYCODE_CREDENTIAL_LEVEL=warn");
        assert_eq!(format!("{line:?}"), "Secret(<redacted>)");
        let long = Handover { env: vec![("X".into(), Secret::new("y".repeat(5000)))], vars: vec![], note: String::new(), warn: false };
        assert!(long.line(N).is_err());
        // An older start-agent (no nonce) gets the line without one.
        assert!(!h.line("").unwrap().expose().contains(N));
    }

    #[test]
    fn finds_the_marker_however_it_is_cut() {
        let mut stream = b"prompt text \x1b]777;anycode-env;nothex\x07 ".to_vec();
        stream.extend_from_slice(&marker(N));
        stream.extend_from_slice(b"\r\n");
        for at in 0..=stream.len() {
            let mut s = Scanner::default();
            let first = s.feed(&stream[..at]);
            let second = s.feed(&stream[at..]);
            assert!(first.is_none() || at >= stream.len() - 2, "cut at {at}");
            assert_eq!(first.or(second).as_deref(), Some(N), "cut at {at}");
        }
        let mut s = Scanner::default();
        assert_eq!(s.feed(b"\x1b]777;anycode-en"), None, "a partial marker is not one");
        assert_eq!(s.feed(b"v;0a"), None);
        assert_eq!(s.feed(b"\x07").as_deref(), Some("0a"));
    }

    /// start-agent itself (bash, under a pseudo-terminal from `script`): a line
    /// without this start's nonce is ignored, with a warning, and its variables are
    /// not exported.
    #[test]
    fn start_agent_refuses_a_line_without_its_nonce() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        if Command::new("script").arg("--version").output().is_err() {
            eprintln!("skipped: no `script` (util-linux) for a pseudo-terminal");
            return;
        }
        let home = tempfile::tempdir().unwrap();
        let agent = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sandbox-image/bin/start-agent");
        let mut child = Command::new("script")
            .args(["-qc", &format!("bash {agent} shell"), "/dev/null"])
            .env("HOME", home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let forged = base64::engine::general_purpose::STANDARD.encode(b"FORGED=1\0");
        std::thread::sleep(Duration::from_millis(500));
        stdin.write_all(format!("{PREFIX}{forged}\n").as_bytes()).unwrap();
        std::thread::sleep(Duration::from_millis(500));
        stdin.write_all(b"echo \"FORGED=[$FORGED]\"; exit\n").unwrap();
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(pending_nonce(text.split("\r\n").next().unwrap_or_default().as_bytes()).is_some_and(|n| n.len() == 32), "{text}");
        assert!(text.contains("did not carry this start's nonce"), "{text}");
        assert!(text.contains("FORGED=[]") && !text.contains("FORGED=[1]"), "{text}");
    }

    #[tokio::test]
    async fn ignores_markers_of_earlier_runs() {
        use anycode_terminal::Terminal;
        let t = Terminal::with_history("t", 4096, &[b"old run ".as_slice(), &marker(N), b" done"].concat(), None);
        let mut v = t.subscribe();
        assert!(find(&v.snapshot, MARKER).is_some());
        // No live output: the marker in the history does not count.
        assert_eq!(wait_for_marker(&mut v, Duration::from_millis(200)).await, Wait::TimedOut);
    }
}
