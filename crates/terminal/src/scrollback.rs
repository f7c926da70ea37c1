use bytes::Bytes;
use std::collections::VecDeque;

/// A bounded byte ring: keeps the last `capacity` bytes of a terminal's output.
#[derive(Debug)]
pub struct Scrollback {
    buf: VecDeque<u8>,
    capacity: usize,
    truncated: bool,
}

/// How far into a truncated scrollback a snapshot looks for a line start, so that a
/// replay does not begin in the middle of a line or escape sequence.
const LINE_SEARCH: usize = 4096;

impl Scrollback {
    /// An empty ring of `capacity` bytes (at least 1).
    pub fn new(capacity: usize) -> Scrollback {
        Scrollback { buf: VecDeque::new(), capacity: capacity.max(1), truncated: false }
    }

    /// Appends output, dropping the oldest bytes beyond capacity.
    pub fn push(&mut self, data: &[u8]) {
        if data.len() >= self.capacity {
            self.buf.clear();
            self.buf.extend(&data[data.len() - self.capacity..]);
            self.truncated = true;
            return;
        }
        let overflow = (self.buf.len() + data.len()).saturating_sub(self.capacity);
        if overflow > 0 {
            self.buf.drain(..overflow);
            self.truncated = true;
        }
        self.buf.extend(data);
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// A copy of the last `max` bytes held (cheap: only those are copied).
    pub fn tail(&self, max: usize) -> Vec<u8> {
        let skip = self.buf.len().saturating_sub(max);
        self.buf.range(skip..).copied().collect()
    }

    /// A copy of the held bytes for replay. When older output was dropped, the copy
    /// starts after the first newline within the first 4 KiB (if any).
    pub fn snapshot(&self) -> Bytes {
        let (a, b) = self.buf.as_slices();
        let mut v = Vec::with_capacity(self.buf.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        if self.truncated {
            if let Some(nl) = v.iter().take(LINE_SEARCH).position(|&c| c == b'\n') {
                v.drain(..=nl);
            }
        }
        Bytes::from(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_tail() {
        let mut s = Scrollback::new(10);
        s.push(b"hello ");
        s.push(b"world!");
        assert_eq!(s.len(), 10);
        assert_eq!(&s.snapshot()[..], b"llo world!");
        assert_eq!(s.tail(3), b"ld!");
        assert_eq!(s.tail(100), b"llo world!");
    }

    #[test]
    fn truncated_snapshot_starts_at_a_line() {
        let mut s = Scrollback::new(12);
        s.push(b"aaaa\nbbbb\ncccc\n");
        assert_eq!(&s.snapshot()[..], b"bbbb\ncccc\n");
    }

    #[test]
    fn untruncated_snapshot_is_exact() {
        let mut s = Scrollback::new(100);
        s.push(b"ab\ncd");
        assert_eq!(&s.snapshot()[..], b"ab\ncd");
    }

    #[test]
    fn huge_chunk_keeps_its_end() {
        let mut s = Scrollback::new(4);
        s.push(b"0123456789");
        assert_eq!(s.len(), 4);
    }
}
