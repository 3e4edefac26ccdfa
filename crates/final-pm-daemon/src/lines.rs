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
//! second), so lines are neither allocated nor copied one by one: the pipe
//! is read straight into the pending [`Batch`]'s buffer, where lines are
//! split in place (bytes move only after a trimmed `\r` or a cut line), and
//! the batch travels to the supervisor as a single message per read.
//!
//! [`finish`]: LineSplitter::finish

/// Completed lines of one stream, each followed by `\n`: line `i` is
/// `data[start..ends[i]]`, where `start` is 0 for the first line and
/// `ends[i - 1] + 1` for the others. One allocation, the buffer the pipe
/// was read into, holds every line of a read, and the log buffer keeps it
/// as it is (see `records.rs`): a line is never allocated on its own, and
/// a line with its newline is one slice, ready for a logger.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// The kept bytes of every line (without its `\n` and a trailing
    /// `\r`), each followed by one `\n`.
    pub(crate) data: Vec<u8>,
    /// Where each line's text ends in `data` (its `\n` is there).
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
            start = end + 1;
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

    /// The bytes of the lines' texts.
    pub(crate) fn text_bytes(&self) -> u64 {
        (self.data.len() - self.ends.len()) as u64
    }

    /// What the lines cost in a log buffer: their kept bytes plus one per
    /// line (so empty lines are not free), which is the batch's size.
    pub(crate) fn cost(&self) -> u64 {
        self.data.len() as u64
    }
}

/// Incremental splitter for one stream. The bytes read are appended to the
/// pending batch's buffer ([`buffer`](Self::buffer)) and split there
/// ([`scan`](Self::scan)); the line being assembled stays at its end.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    max: usize,
    batch: Batch,
    /// Start of the unfinished line in `batch.data`.
    start: usize,
    /// Room the last [`buffer`](Self::buffer) call asked for: the next
    /// batch's buffer is allocated with it, so reading never reallocates.
    room: usize,
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
            room: 0,
            dropped: 0,
            dropped_cr: false,
        }
    }

    /// The buffer to append what is read to, with room for `room` more
    /// bytes; call [`scan`](Self::scan) with its length from before.
    pub(crate) fn buffer(&mut self, room: usize) -> &mut Vec<u8> {
        self.room = room;
        self.batch.data.reserve(room);
        &mut self.batch.data
    }

    /// Splits what was appended to the buffer after its first `from` bytes;
    /// completed lines collect in the pending batch.
    pub(crate) fn scan(&mut self, from: usize) {
        let len = self.batch.data.len();
        // Bytes before `write` are kept; those from `read` on are not yet
        // looked at. They differ only once something was left out.
        let mut write = from;
        let mut read = from;
        while let Some(found) = memchr::memchr(b'\n', &self.batch.data[read..len]) {
            let pos = read + found;
            if write == read
                && self.dropped == 0
                && pos - self.start <= self.max
                && (pos == self.start || self.batch.data[pos - 1] != b'\r')
            {
                // The common line: nothing to cut or trim, so it stays
                // where it is, and its newline is the one it came with.
                self.batch.ends.push(pos);
                self.start = pos + 1;
                read = pos + 1;
                write = read;
                continue;
            }
            write = self.keep(write, read, pos);
            write = self.complete(write);
            read = pos + 1;
        }
        write = self.keep(write, read, len);
        self.batch.data.truncate(write);
    }

    /// Feeds a chunk (a copy of it; the pump reads in place instead).
    #[cfg(test)]
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        let buffer = self.buffer(chunk.len());
        let from = buffer.len();
        buffer.extend_from_slice(chunk);
        self.scan(from);
    }

    /// The completed lines so far, if any; the unfinished line stays.
    pub(crate) fn take_batch(&mut self) -> Option<Batch> {
        if self.batch.ends.is_empty() {
            return None;
        }
        let mut rest = Vec::with_capacity(self.batch.data.len() - self.start + self.room);
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
            let end = self.batch.data.len();
            self.complete(end);
        }
        self.take_batch()
    }

    /// Keeps what the line being assembled has room for of the bytes
    /// `data[read..end]` (no `\n` among them), moved to `write`; returns
    /// where the kept bytes end.
    fn keep(&mut self, write: usize, read: usize, end: usize) -> usize {
        let data = &mut self.batch.data;
        let len = end - read;
        let room = self.max.saturating_sub(write - self.start);
        let kept = len.min(room);
        if len > 0 {
            self.dropped_cr = kept < len && data[end - 1] == b'\r';
        }
        if write != read {
            data.copy_within(read..read + kept, write);
        }
        self.dropped += (len - kept) as u64;
        write + kept
    }

    /// Ends the line whose kept bytes end at `end` (at most where its `\n`
    /// was, or the buffer's length); returns where the next line starts.
    fn complete(&mut self, mut end: usize) -> usize {
        let data = &mut self.batch.data;
        if self.dropped_cr {
            self.dropped -= 1;
        } else if self.dropped == 0 && end > self.start && data[end - 1] == b'\r' {
            end -= 1;
        }
        self.dropped_cr = false;
        let truncated = std::mem::take(&mut self.dropped);
        if truncated > 0 {
            self.batch
                .truncated
                .push((self.batch.ends.len(), truncated));
        }
        if end < data.len() {
            data[end] = b'\n';
        } else {
            data.push(b'\n');
        }
        self.batch.ends.push(end);
        self.start = end + 1;
        self.start
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

    /// The rules of the module docs applied to the whole input at once.
    fn reference(max: usize, input: &[u8]) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let last = parts.pop().unwrap_or_default();
        if !last.is_empty() {
            parts.push(last);
        }
        for line in parts {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let kept = line.len().min(max);
            out.push((
                String::from_utf8_lossy(&line[..kept]).into_owned(),
                (line.len() - kept) as u64,
            ));
        }
        out
    }

    #[test]
    fn splitting_in_place_agrees_with_the_rules_for_any_input_and_reads() {
        // A fixed pseudo-random sequence: lines of `a`, `\r` and `\n` in
        // every mix, cut into reads of every size, under small limits, so
        // that trimmed `\r`s and cut lines move the bytes after them.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for _ in 0..2000 {
            let len = next(60) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| match next(6) {
                    0 => b'\r',
                    1 => b'\n',
                    _ => b'a' + next(3) as u8,
                })
                .collect();
            let max = 1 + next(8) as usize;
            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = (1 + next(10) as usize).min(rest.len());
                chunks.push(&rest[..n]);
                rest = &rest[n..];
            }
            let mut splitter = LineSplitter::new(max);
            let mut got = Vec::new();
            let mut check = |batch: Batch| {
                let mut start = 0;
                for &end in &batch.ends {
                    assert_eq!(batch.data[end], b'\n', "{input:?}");
                    start = end + 1;
                }
                assert_eq!(start, batch.data.len(), "{input:?}");
                got.extend(lines(&batch));
            };
            for chunk in &chunks {
                splitter.push(chunk);
                if let Some(batch) = splitter.take_batch() {
                    check(batch);
                }
            }
            if let Some(batch) = splitter.finish() {
                check(batch);
            }
            assert_eq!(got, reference(max, &input), "{input:?} max {max}");
        }
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
