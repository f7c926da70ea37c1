//! Handing a task's credential to its agent process when it starts.
//!
//! The secret must reach only the agent process's environment: not the container's
//! create-time configuration (`docker inspect` shows it), not its filesystem, not the
//! terminal's output. So the container's main process is
//! `/opt/anycode/bin/start-agent <agent>`, which at every start:
//!
//! 1. turns the TTY's echo off,
//! 2. prints [`MARKER`] (an OSC sequence terminals ignore),
//! 3. reads one line: `anycode-env:` + base64 of NUL-separated `KEY=value` entries,
//! 4. turns echo back on, exports the entries, prints the (non-secret) note as the
//!    terminal's first line, and execs the agent.
//!
//! The engine watches the agent terminal's output for the marker (bounded by
//! [`MARKER_WAIT`]) and writes the line into the TTY over a stdin-only attach of
//! its own ([`anycode_sandbox::Docker::write_stdin`]), so the line passes through no
//! viewer, scrollback, recording or log. Echo being off, the TTY never prints it.

use anycode_credentials::Secret;
use anycode_terminal::{Recv, Viewer};
use base64::Engine as _;
use std::time::Duration;
use zeroize::Zeroizing;

/// What start-agent prints once echo is off and it waits for the line.
pub(crate) const MARKER: &[u8] = b"\x1b]777;anycode-env\x07";
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
    /// The line to write: `anycode-env:<base64>\n`. Errors when it would not fit a
    /// TTY line.
    pub(crate) fn line(&self) -> Result<Secret, String> {
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
        let line = Secret::new(format!("{PREFIX}{}\n", base64::engine::general_purpose::STANDARD.encode(&payload[..])));
        if line.len() > MAX_LINE {
            return Err(format!("the credentials are too long to hand over ({} bytes, at most {MAX_LINE})", line.len()));
        }
        Ok(line)
    }
}

/// Whether a container's log ends with start-agent waiting for its line: the marker
/// and the newline it prints after it (see start-agent).
pub(crate) fn log_shows_waiting(tail: &[u8]) -> bool {
    let mut end = tail.len();
    while end > 0 && matches!(tail[end - 1], b'\r' | b'\n') {
        end -= 1;
    }
    tail[..end].ends_with(MARKER)
}

/// How waiting for the marker ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// start-agent asks for the line.
    Asked,
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
                if scanner.feed(&b) {
                    return Wait::Asked;
                }
            }
            // Fallen behind: start-agent prints nothing after the marker but its
            // newline until it has its line, so a missed marker ends the snapshot.
            Ok(Recv::Resync(snapshot)) => {
                if log_shows_waiting(&snapshot) {
                    return Wait::Asked;
                }
                scanner = Scanner::default();
            }
            Ok(Recv::Exit(_)) | Ok(Recv::Closed) => return Wait::Exited,
            #[allow(unreachable_patterns)]
            Ok(_) => {}
        }
    }
}

/// Finds [`MARKER`] in a byte stream however it is cut into chunks.
#[derive(Default)]
struct Scanner {
    /// The last bytes seen, enough to find a marker split across chunks.
    tail: Vec<u8>,
}

impl Scanner {
    fn feed(&mut self, chunk: &[u8]) -> bool {
        self.tail.extend_from_slice(chunk);
        if contains(&self.tail, MARKER) {
            return true;
        }
        let keep = MARKER.len() - 1;
        if self.tail.len() > keep {
            self.tail.drain(..self.tail.len() - keep);
        }
        false
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_ending_with_the_marker_waits() {
        assert!(log_shows_waiting(b"old output\r\n\x1b]777;anycode-env\x07\r\n"));
        assert!(log_shows_waiting(b"\x1b]777;anycode-env\x07"));
        assert!(!log_shows_waiting(b"\x1b]777;anycode-env\x07\r\n\x1b[AAnyCode: note\r\n$ "));
        assert!(!log_shows_waiting(b""));
    }

    #[test]
    fn the_line_is_base64_of_nul_separated_entries() {
        let h = Handover {
            env: vec![("CLAUDE_CODE_OAUTH_TOKEN".into(), Secret::new("sk-ant-oat01-x"))],
            vars: vec![("ANTHROPIC_BASE_URL".into(), "http://gw:8080".into())],
            note: "hello\nworld".into(),
            warn: true,
        };
        let line = h.line().unwrap();
        let text = line.expose();
        assert!(text.starts_with(PREFIX) && text.ends_with('\n'));
        assert!(!text.contains("sk-ant"), "encoded, so a stray echo would not show it as text either");
        let decoded = base64::engine::general_purpose::STANDARD.decode(text[PREFIX.len()..].trim_end()).unwrap();
        let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
        assert_eq!(parts[0], b"ANTHROPIC_BASE_URL=http://gw:8080");
        assert_eq!(parts[1], b"CLAUDE_CODE_OAUTH_TOKEN=sk-ant-oat01-x");
        assert_eq!(parts[2], b"ANYCODE_CREDENTIAL_NOTE=hello world");
        assert_eq!(parts[3], b"ANYCODE_CREDENTIAL_LEVEL=warn");
        assert_eq!(format!("{line:?}"), "Secret(<redacted>)");
        let long = Handover { env: vec![("X".into(), Secret::new("y".repeat(5000)))], vars: vec![], note: String::new(), warn: false };
        assert!(long.line().is_err());
    }

    #[test]
    fn finds_the_marker_however_it_is_cut() {
        let mut stream = b"prompt text ".to_vec();
        stream.extend_from_slice(MARKER);
        for at in 0..=stream.len() {
            let mut s = Scanner::default();
            let first = s.feed(&stream[..at]);
            let second = s.feed(&stream[at..]);
            assert_eq!(first, at == stream.len(), "cut at {at}");
            assert!(first || second, "cut at {at}");
        }
        let mut s = Scanner::default();
        assert!(!s.feed(b"\x1b]777;anycode-en"), "a partial marker is not one");
        assert!(!s.feed(b"v"));
        assert!(s.feed(b"\x07"));
    }

    #[tokio::test]
    async fn ignores_markers_of_earlier_runs() {
        use anycode_terminal::Terminal;
        let t = Terminal::with_history("t", 4096, b"old run \x1b]777;anycode-env\x07 done", None);
        let mut v = t.subscribe();
        assert!(contains(&v.snapshot, MARKER));
        // No live output: the marker in the history does not count.
        assert_eq!(wait_for_marker(&mut v, Duration::from_millis(200)).await, Wait::TimedOut);
    }
}
