//! Terminal recordings in asciicast v2, asciinema's format: a header line
//! `{"version": 2, "width", "height", "timestamp", "env"}` and one JSON array a line,
//! `[seconds, "o", text]` for output and `[seconds, "r", "COLSxROWS"]` for resizes.
//!
//! A [`Recorder`] never blocks the terminal: events go through a bounded queue
//! ([`QUEUE`]) to a writer task; when the disk cannot keep up, events are dropped and a
//! note saying how much was skipped is written. A recording stops at its size cap with
//! a note (and a marker event) saying so. Reopening an existing file continues it,
//! with times still counted from its header's timestamp.
//!
//! Output is split into events on UTF-8 character boundaries (a character split
//! across chunks is carried to the next event), so a recording of valid UTF-8 output
//! plays back to the same bytes; invalid bytes become U+FFFD.

use bytes::Bytes;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Events queued for the writer before new ones are dropped.
pub const QUEUE: usize = 4096;

/// Where and how to record.
#[derive(Debug, Clone)]
pub struct RecordingOptions {
    /// The `.cast` file; its folder is created.
    pub path: PathBuf,
    /// Size cap in bytes; the recording stops with a note when it would pass it.
    pub max_bytes: u64,
    /// Terminal width in columns for the header (until the first resize).
    pub width: u16,
    /// Terminal height in rows for the header.
    pub height: u16,
    /// Title for the header (e.g. the task's title).
    pub title: Option<String>,
}

enum Event {
    Output(Bytes, f64),
    Resize(u16, u16, f64),
}

/// A running recording. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    skip: Arc<AtomicU64>,
    origin: f64,
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64()
}

impl Recorder {
    /// Opens (or continues) the recording at `opts.path` and starts its writer task.
    ///
    /// Errors: the folder or file cannot be created or read.
    pub async fn start(opts: RecordingOptions) -> std::io::Result<Recorder> {
        if let Some(dir) = opts.path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let existing = tokio::fs::read(&opts.path).await.ok();
        let (origin, size) = match existing.as_deref().and_then(header_timestamp) {
            Some(ts) => (ts, existing.as_ref().map_or(0, |e| e.len() as u64)),
            None => (now_secs(), 0),
        };
        let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(&opts.path).await?;
        let mut written = size;
        if size == 0 {
            let mut header = serde_json::json!({
                "version": 2,
                "width": opts.width.max(1),
                "height": opts.height.max(1),
                "timestamp": origin as u64,
                "env": {"TERM": "xterm-256color", "SHELL": "/bin/bash"},
            });
            if let Some(t) = &opts.title {
                header["title"] = serde_json::Value::String(t.clone());
            }
            let line = format!("{header}\n");
            file.write_all(line.as_bytes()).await?;
            written += line.len() as u64;
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(writer(file, rx, dropped.clone(), written, opts.max_bytes, origin));
        Ok(Recorder { tx, dropped, skip: Arc::new(AtomicU64::new(0)), origin })
    }

    /// Leaves the next `n` output bytes out of the recording (output replayed from
    /// Docker's log after a restart, which was recorded before).
    pub fn skip(&self, n: u64) {
        self.skip.store(n, Ordering::Relaxed);
    }

    /// Queues output bytes; drops them (counted) when the queue is full.
    pub fn output(&self, data: &[u8]) {
        let skip = self.skip.load(Ordering::Relaxed);
        let data = if skip > 0 {
            let n = skip.min(data.len() as u64);
            self.skip.store(skip - n, Ordering::Relaxed);
            &data[n as usize..]
        } else {
            data
        };
        if data.is_empty() {
            return;
        }
        let ev = Event::Output(Bytes::copy_from_slice(data), now_secs() - self.origin);
        if self.tx.try_send(ev).is_err() {
            self.dropped.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }

    /// Queues a resize event.
    pub fn resize(&self, cols: u16, rows: u16) {
        let _ = self.tx.try_send(Event::Resize(cols, rows, now_secs() - self.origin));
    }
}

fn header_timestamp(file: &[u8]) -> Option<f64> {
    let first = file.split(|&b| b == b'\n').next()?;
    let v: serde_json::Value = serde_json::from_slice(first).ok()?;
    (v["version"] == 2).then(|| v["timestamp"].as_f64()).flatten()
}

/// Splits `buf` at the last complete UTF-8 character; returns (text, carried bytes).
fn take_text(buf: &[u8]) -> (String, Vec<u8>) {
    // A trailing incomplete sequence is at most 3 bytes of a 4-byte character.
    let mut cut = buf.len();
    for back in 1..=3.min(buf.len()) {
        let b = buf[buf.len() - back];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: look further back for the lead byte
        }
        let need = if b & 0xE0 == 0xC0 {
            2
        } else if b & 0xF0 == 0xE0 {
            3
        } else if b & 0xF8 == 0xF0 {
            4
        } else {
            1
        };
        if need > back {
            cut = buf.len() - back;
        }
        break;
    }
    (String::from_utf8_lossy(&buf[..cut]).into_owned(), buf[cut..].to_vec())
}

async fn writer(
    file: tokio::fs::File,
    mut rx: mpsc::Receiver<Event>,
    dropped: Arc<AtomicU64>,
    mut written: u64,
    max: u64,
    origin: f64,
) {
    let mut out = tokio::io::BufWriter::new(file);
    let mut carry: Vec<u8> = Vec::new();
    let mut cut = false;
    while let Some(ev) = rx.recv().await {
        if cut {
            continue; // drain the queue without writing
        }
        let mut lines = Vec::new();
        let skipped = dropped.swap(0, Ordering::Relaxed);
        let t_of = |ev: &Event| match ev {
            Event::Output(_, t) | Event::Resize(_, _, t) => *t,
        };
        let t = t_of(&ev);
        if skipped > 0 {
            let note = format!("\r\n[recording: {skipped} bytes skipped, the disk was too slow]\r\n");
            lines.push(serde_json::json!([t, "o", note]).to_string());
        }
        match ev {
            Event::Output(b, t) => {
                carry.extend_from_slice(&b);
                let (text, rest) = take_text(&carry);
                carry = rest;
                if !text.is_empty() {
                    lines.push(serde_json::json!([round(t), "o", text]).to_string());
                }
            }
            Event::Resize(c, r, t) => lines.push(serde_json::json!([round(t), "r", format!("{c}x{r}")]).to_string()),
        }
        for line in lines {
            let len = line.len() as u64 + 1;
            if written + len > max.saturating_sub(200) {
                let t = round(now_secs() - origin);
                let note = format!("\r\n[recording cut: it reached its size cap of {} MB]\r\n", max / (1024 * 1024));
                let tail = format!("{}\n{}\n", serde_json::json!([t, "o", note]), serde_json::json!([t, "m", "recording cut at size cap"]));
                let _ = out.write_all(tail.as_bytes()).await;
                cut = true;
                break;
            }
            if out.write_all(line.as_bytes()).await.is_err() || out.write_all(b"\n").await.is_err() {
                cut = true;
                break;
            }
            written += len;
        }
        if rx.is_empty() && out.flush().await.is_err() {
            cut = true;
        }
    }
    let _ = out.flush().await;
}

fn round(t: f64) -> f64 {
    (t.max(0.0) * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_split_is_carried() {
        let s = "aé€😀".as_bytes();
        for cut in 0..=s.len() {
            let (t1, rest) = take_text(&s[..cut]);
            let mut joined = rest;
            joined.extend_from_slice(&s[cut..]);
            let (t2, rest2) = take_text(&joined);
            assert!(rest2.is_empty());
            assert_eq!(format!("{t1}{t2}"), "aé€😀", "cut at {cut}");
        }
    }

    #[tokio::test]
    async fn records_and_continues_and_caps() {
        let dir = tempfile_dir();
        let path = dir.join("t.cast");
        let rec = Recorder::start(RecordingOptions { path: path.clone(), max_bytes: 10_000, width: 80, height: 24, title: Some("x".into()) })
            .await
            .unwrap();
        rec.output("héllo ".as_bytes());
        rec.output(&"wörld".as_bytes()[..2]);
        rec.output(&"wörld".as_bytes()[2..]);
        rec.resize(100, 30);
        drop(rec);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(header["version"], 2);
        assert_eq!(header["width"], 80);
        let events: Vec<serde_json::Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
        let out: String = events.iter().filter(|e| e[1] == "o").map(|e| e[2].as_str().unwrap()).collect();
        assert_eq!(out, "héllo wörld");
        assert!(events.iter().any(|e| e[1] == "r" && e[2] == "100x30"));
        // Continuing appends to the same file, without a second header.
        let rec = Recorder::start(RecordingOptions { path: path.clone(), max_bytes: 10_000, width: 80, height: 24, title: None })
            .await
            .unwrap();
        for _ in 0..500 {
            rec.output(b"0123456789012345678901234567890123456789");
        }
        drop(rec);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with('{')).count(), 1);
        assert!(text.len() <= 10_000, "capped: {}", text.len());
        assert!(text.contains("recording cut"));
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("anycode-rec-{}-{}", std::process::id(), now_secs()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
