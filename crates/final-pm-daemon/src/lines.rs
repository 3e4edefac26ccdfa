//! Splitting a child's output into log lines, byte-exactly.
//!
//! FinalPM lost a newline at the start of a chunk, counted truncated bytes
//! twice and dropped the last line of a process that exited without a final
//! newline (bugs 1–3). Here every `\n` ends a line wherever it falls, one
//! trailing `\r` is trimmed, a line longer than `max` bytes keeps its first
//! `max` bytes and counts exactly how many were dropped, and [`finish`]
//! returns the unterminated rest when the stream closes.
//!
//! [`finish`]: LineSplitter::finish

/// One completed line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// The kept bytes, without `\n` and a trailing `\r`.
    pub(crate) bytes: Vec<u8>,
    /// Bytes dropped beyond the length limit.
    pub(crate) truncated: u64,
}

/// Incremental splitter for one stream.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    max: usize,
    partial: Vec<u8>,
    dropped: u64,
    /// The last byte seen was a dropped `\r`: if a `\n` follows, that `\r`
    /// was the line ending, not content, and does not count as dropped.
    dropped_cr: bool,
}

impl LineSplitter {
    /// A splitter keeping at most `max` bytes per line (at least 1).
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            partial: Vec::new(),
            dropped: 0,
            dropped_cr: false,
        }
    }

    /// Feeds a chunk; completed lines are appended to `out`.
    pub(crate) fn push(&mut self, mut chunk: &[u8], out: &mut Vec<Line>) {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            self.take(&chunk[..pos]);
            out.push(self.complete());
            chunk = &chunk[pos + 1..];
        }
        self.take(chunk);
    }

    /// The unterminated rest of the stream, if any.
    pub(crate) fn finish(&mut self) -> Option<Line> {
        if self.partial.is_empty() && self.dropped == 0 {
            return None;
        }
        Some(self.complete())
    }

    fn take(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.partial.len());
        let kept = bytes.len().min(room);
        self.partial.extend_from_slice(&bytes[..kept]);
        self.dropped += (bytes.len() - kept) as u64;
        if !bytes.is_empty() {
            self.dropped_cr = kept < bytes.len() && bytes.last() == Some(&b'\r');
        }
    }

    fn complete(&mut self) -> Line {
        let mut bytes = std::mem::take(&mut self.partial);
        if self.dropped_cr {
            self.dropped -= 1;
        } else if self.dropped == 0 && bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        self.dropped_cr = false;
        let truncated = std::mem::take(&mut self.dropped);
        Line { bytes, truncated }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, u64)> {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, &mut out);
        }
        out.extend(splitter.finish());
        out.into_iter()
            .map(|l| (String::from_utf8(l.bytes).unwrap(), l.truncated))
            .collect()
    }

    fn plain(lines: &[&str]) -> Vec<(String, u64)> {
        lines.iter().map(|l| ((*l).to_owned(), 0)).collect()
    }

    #[test]
    fn finalpm_line_assembly_example() {
        let out = split(
            5120,
            &[b"TWO LINES\r\nAT ONCE\r\n", b"A LINE IN", b" TWO PARTS\r\n"],
        );
        assert_eq!(out, plain(&["TWO LINES", "AT ONCE", "A LINE IN TWO PARTS"]));
    }

    #[test]
    fn finalpm_trimming_example_counts_dropped_bytes_exactly() {
        let out = split(
            5,
            &[b"TWO LINES\r\nAT ONCE\r\n", b"A LINE IN", b" TWO PARTS\r\n"],
        );
        assert_eq!(
            out,
            vec![
                ("TWO L".to_owned(), 4),
                ("AT ON".to_owned(), 2),
                ("A LIN".to_owned(), 14)
            ]
        );
    }

    #[test]
    fn bug_1_leading_newline_ends_the_previous_line() {
        let out = split(100, &[b"before", b"\nafter empty\n", b"\n"]);
        assert_eq!(out, plain(&["before", "after empty", ""]));
    }

    #[test]
    fn bug_3_last_partial_line_is_kept() {
        assert_eq!(
            split(100, &[b"a\nno newline at exit"]),
            plain(&["a", "no newline at exit"])
        );
        assert_eq!(split(100, &[b"a\n"]), plain(&["a"]));
    }

    #[test]
    fn only_one_carriage_return_is_trimmed() {
        assert_eq!(split(100, &[b"x\r\r\n"]), plain(&["x\r"]));
        assert_eq!(split(100, &[b"x\r", b"\n"]), plain(&["x"]));
    }

    #[test]
    fn carriage_return_split_from_its_newline_is_not_counted_as_dropped() {
        assert_eq!(
            split(2, &[b"abc\r", b"\nde\rf\n"]),
            vec![("ab".to_owned(), 1), ("de".to_owned(), 2)]
        );
    }

    #[test]
    fn bytes_are_not_reinterpreted() {
        let mut splitter = LineSplitter::new(100);
        let mut out = Vec::new();
        splitter.push(b"\xff\xfe\n", &mut out);
        assert_eq!(out[0].bytes, b"\xff\xfe");
    }
}
