//! Splitting a child's output into log lines, byte-exactly.
//!
//! FinalPM lost a newline at the start of a chunk, counted truncated bytes
//! twice and dropped the last line of a process that exited without a final
//! newline (bugs 1–3). Here every `\n` ends a line wherever it falls, one
//! trailing `\r` is trimmed, a line longer than `max` bytes keeps its first
//! `max` bytes and counts exactly how many were dropped, and [`finish`]
//! returns the unterminated rest when the stream closes.
//!
//! Output is the daemon's hot path (an app may write millions of lines a
//! second), so lines are not allocated one by one: the splitter appends them
//! to one [`Batch`] (a byte buffer plus spans) that travels to the
//! supervisor as a single message per read.
//!
//! [`finish`]: LineSplitter::finish

/// Completed lines of one stream, stored back to back: line `i` is
/// `data[ends[i - 1]..ends[i]]` (from 0 for the first). One allocation
/// holds every line of a read, and the log buffer keeps it as it is (see
/// `records.rs`), so a line is never allocated on its own.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The kept bytes of every line (without `\n` and a trailing `\r`).
    pub(crate) data: Vec<u8>,
    /// Where each line ends in `data`.
    pub(crate) ends: Vec<usize>,
    /// `(line, bytes dropped beyond the length limit)` for the lines that
    /// were cut, in order; most batches have none.
    pub(crate) truncated: Vec<(usize, u64)>,
}

impl Batch {
    /// How many lines.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The lines in order: kept bytes and bytes dropped.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], u64)> {
        let mut cut = self.truncated.iter().peekable();
        let mut start = 0;
        self.ends.iter().enumerate().map(move |(i, &end)| {
            let line = &self.data[start..end];
            start = end;
            let dropped = match cut.peek() {
                Some(&&(at, n)) if at == i => {
                    cut.next();
                    n
                }
                _ => 0,
            };
            (line, dropped)
        })
    }

    /// What the lines cost in a log buffer: their kept bytes plus one per
    /// line (so empty lines are not free).
    pub(crate) fn cost(&self) -> u64 {
        (self.data.len() + self.ends.len()) as u64
    }
}

/// Incremental splitter for one stream. The line being assembled lives at
/// the end of the pending batch's buffer, so a line is copied once, from the
/// read buffer into the batch.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    max: usize,
    batch: Batch,
    /// Start of the unfinished line in `batch.data`.
    start: usize,
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
            batch: Batch::default(),
            start: 0,
            dropped: 0,
            dropped_cr: false,
        }
    }

    /// Feeds a chunk; completed lines collect in the pending batch.
    pub(crate) fn push(&mut self, mut chunk: &[u8]) {
        while let Some(pos) = memchr::memchr(b'\n', chunk) {
            self.take(&chunk[..pos]);
            self.complete();
            chunk = &chunk[pos + 1..];
        }
        self.take(chunk);
    }

    /// The completed lines so far, if any; the unfinished line stays.
    pub(crate) fn take_batch(&mut self) -> Option<Batch> {
        if self.batch.ends.is_empty() {
            return None;
        }
        // The next batch's buffer is sized like this one, so a busy stream
        // fills it without reallocating and a quiet one keeps little.
        let mut rest = Vec::with_capacity(self.batch.data.len());
        rest.extend_from_slice(&self.batch.data[self.start..]);
        self.batch.data.truncate(self.start);
        self.start = 0;
        Some(std::mem::replace(
            &mut self.batch,
            Batch {
                data: rest,
                ends: Vec::new(),
                truncated: Vec::new(),
            },
        ))
    }

    /// Ends the stream: the completed lines and the unterminated rest.
    pub(crate) fn finish(&mut self) -> Option<Batch> {
        if self.batch.data.len() > self.start || self.dropped > 0 {
            self.complete();
        }
        self.take_batch()
    }

    fn take(&mut self, bytes: &[u8]) {
        let room = self.max.saturating_sub(self.batch.data.len() - self.start);
        let kept = bytes.len().min(room);
        self.batch.data.extend_from_slice(&bytes[..kept]);
        self.dropped += (bytes.len() - kept) as u64;
        if !bytes.is_empty() {
            self.dropped_cr = kept < bytes.len() && bytes.last() == Some(&b'\r');
        }
    }

    fn complete(&mut self) {
        let mut end = self.batch.data.len();
        if self.dropped_cr {
            self.dropped -= 1;
        } else if self.dropped == 0 && end > self.start && self.batch.data[end - 1] == b'\r' {
            end -= 1;
            self.batch.data.truncate(end);
        }
        self.dropped_cr = false;
        let truncated = std::mem::take(&mut self.dropped);
        if truncated > 0 {
            self.batch
                .truncated
                .push((self.batch.ends.len(), truncated));
        }
        self.batch.ends.push(end);
        self.start = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(batch: &Batch) -> Vec<(String, u64)> {
        batch
            .iter()
            .map(|(line, dropped)| (String::from_utf8(line.to_vec()).unwrap(), dropped))
            .collect()
    }

    /// Splits `chunks`, taking a batch after every chunk (as the pump does).
    fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, u64)> {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk);
            if let Some(batch) = splitter.take_batch() {
                out.extend(lines(&batch));
            }
        }
        if let Some(batch) = splitter.finish() {
            out.extend(lines(&batch));
        }
        out
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
        splitter.push(b"\xff\xfe\n");
        let batch = splitter.take_batch().unwrap();
        assert_eq!(batch.iter().next(), Some((&b"\xff\xfe"[..], 0)));
    }

    #[test]
    fn a_line_split_across_batches_is_whole_and_costs_its_bytes() {
        let mut splitter = LineSplitter::new(100);
        splitter.push(b"ab\ncd");
        let first = splitter.take_batch().unwrap();
        assert_eq!(lines(&first), plain(&["ab"]));
        assert_eq!(first.cost(), 3);
        splitter.push(b"ef\r\n\n");
        let second = splitter.take_batch().unwrap();
        assert_eq!(lines(&second), plain(&["cdef", ""]));
        assert_eq!(second.cost(), 6);
        assert!(splitter.finish().is_none());
    }
}
