//! The records of one app's log buffer, each stored once.
//!
//! An app that writes as fast as it can produces millions of lines a second;
//! a record per line, each with its own allocation, made the daemon spend
//! about a third of its time in `malloc` and `free` (bench/README.md). Here
//! the lines of one output read stay together as one [`Chunk`]: the text of
//! all of them in one `String` (the reader's buffer, moved, not copied),
//! their end offsets, and the fields they share (time, stream, process). A
//! lifecycle record is a chunk of one line.
//!
//! Lines leave from the front one at a time (eviction), so a chunk keeps a
//! count of its lines already gone and is freed with its last line.
//! Positions in the store count lines from the front, like a `VecDeque`.

use std::collections::VecDeque;

use final_pm_protocol::{LogKind, LogProcess};

use crate::lines::Batch;

/// What every line of a chunk shares.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) timestamp: u64,
    pub(crate) kind: LogKind,
    pub(crate) process: Option<LogProcess>,
}

/// Lines that arrived together.
#[derive(Debug)]
struct Chunk {
    /// Sequence number of line 0; the others follow one by one.
    first_seq: u64,
    /// Position of line 0 counted from the first line ever stored.
    first: u64,
    meta: Meta,
    /// Every line's text, each followed by `\n` (see [`Batch`]).
    text: String,
    /// Where each line ends in `text` (its `\n` follows).
    ends: Vec<usize>,
    /// `(line, bytes cut)` for lines cut at `max-log-line-length`.
    truncated: Vec<(usize, u64)>,
    /// Lines already evicted.
    head: usize,
    /// Some line holds a newline (only a lifecycle record can).
    multiline: bool,
}

impl Chunk {
    fn start_of(&self, line: usize) -> usize {
        if line == 0 {
            0
        } else {
            self.ends[line - 1] + 1
        }
    }

    fn end(&self) -> u64 {
        self.first + self.ends.len() as u64
    }

    fn truncated_of(&self, line: usize) -> u64 {
        match self.truncated.binary_search_by_key(&line, |&(at, _)| at) {
            Ok(i) => self.truncated[i].1,
            Err(_) => 0,
        }
    }
}

/// One stored record, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    pub(crate) seq: u64,
    pub(crate) timestamp: u64,
    pub(crate) kind: LogKind,
    pub(crate) process: Option<&'a LogProcess>,
    pub(crate) text: &'a str,
    pub(crate) truncated: u64,
}

/// Consecutive stored lines of one chunk: they share time, stream and
/// process, so a logger's line prefix is made once for all of them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run<'a> {
    chunk: &'a Chunk,
    /// The first and one past the last line of the chunk in this run.
    from: usize,
    to: usize,
}

impl<'a> Run<'a> {
    pub(crate) fn meta(&self) -> &'a Meta {
        &self.chunk.meta
    }

    /// How many lines.
    pub(crate) fn len(&self) -> usize {
        self.to - self.from
    }

    /// Some line holds a newline.
    pub(crate) fn multiline(&self) -> bool {
        self.chunk.multiline
    }

    /// The texts of the lines, in order.
    pub(crate) fn texts(self) -> impl Iterator<Item = &'a str> + 'a {
        let chunk = self.chunk;
        let mut start = chunk.start_of(self.from);
        chunk.ends[self.from..self.to].iter().map(move |&end| {
            let text = &chunk.text[start..end];
            start = end + 1;
            text
        })
    }

    /// Each line's text with its newline, in order.
    pub(crate) fn lines_each(self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let chunk = self.chunk;
        let mut start = chunk.start_of(self.from);
        chunk.ends[self.from..self.to].iter().map(move |&end| {
            let line = &chunk.text.as_bytes()[start..=end];
            start = end + 1;
            line
        })
    }

    /// The lines as records.
    pub(crate) fn records(self) -> impl Iterator<Item = RecordView<'a>> + 'a {
        let chunk = self.chunk;
        let from = self.from;
        self.texts().enumerate().map(move |(i, text)| {
            let line = from + i;
            RecordView {
                seq: chunk.first_seq + line as u64,
                timestamp: chunk.meta.timestamp,
                kind: chunk.meta.kind,
                process: chunk.meta.process.as_ref(),
                text,
                truncated: chunk.truncated_of(line),
            }
        })
    }

    /// Text bytes plus one per line (what the lines cost in a budget):
    /// the lines with their newlines.
    pub(crate) fn cost(&self) -> u64 {
        self.lines().len() as u64
    }

    /// The lines' texts, each followed by `\n`, as one slice.
    pub(crate) fn lines(&self) -> &'a [u8] {
        let chunk = self.chunk;
        &chunk.text.as_bytes()[chunk.start_of(self.from)..chunk.start_of(self.to)]
    }
}

/// The records of one buffer, oldest first (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Records {
    chunks: VecDeque<Chunk>,
    /// Lines ever evicted: the position of the current first line.
    front: u64,
    /// Lines stored.
    len: usize,
}

impl Records {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends the lines of one read; returns how many. Text that is not
    /// valid UTF-8 is converted (invalid bytes replaced) line by line.
    pub(crate) fn push_batch(&mut self, first_seq: u64, meta: Meta, batch: Batch) -> usize {
        let Batch {
            data,
            ends,
            truncated,
        } = batch;
        let count = ends.len();
        if count == 0 {
            return 0;
        }
        // Every line is followed by a newline, so valid text is valid line
        // by line (a character split by the length limit is not valid).
        let (text, ends) = match String::from_utf8(data) {
            Ok(text) => (text, ends),
            Err(err) => lossy(err.as_bytes(), &ends),
        };
        self.append(Chunk {
            first_seq,
            first: 0,
            meta,
            text,
            ends,
            truncated,
            head: 0,
            multiline: false,
        });
        count
    }

    /// Appends one record.
    pub(crate) fn push_one(&mut self, seq: u64, meta: Meta, mut text: String, truncated: u64) {
        let end = text.len();
        let multiline = memchr::memchr(b'\n', text.as_bytes()).is_some();
        text.push('\n');
        self.append(Chunk {
            first_seq: seq,
            first: 0,
            meta,
            text,
            ends: vec![end],
            truncated: if truncated > 0 {
                vec![(0, truncated)]
            } else {
                Vec::new()
            },
            head: 0,
            multiline,
        });
    }

    fn append(&mut self, mut chunk: Chunk) {
        // A reader's buffer may be much larger than what it got (its next
        // read was short); the buffer keeps it for a long time.
        if chunk.text.capacity() > 2 * chunk.text.len() + 64 {
            chunk.text.shrink_to_fit();
        }
        chunk.first = self.front + self.len as u64;
        self.len += chunk.ends.len();
        self.chunks.push_back(chunk);
    }

    /// Evicts the oldest lines, at most `max_lines`, until their texts add
    /// up to at least `bytes`; returns how many lines and text bytes went.
    /// The rest of a chunk goes at once when all of it is to go, so a
    /// buffer full of a busy app's lines sheds them a read at a time.
    pub(crate) fn evict(&mut self, max_lines: usize, bytes: u64) -> (usize, u64) {
        let (mut lines, mut freed) = (0, 0);
        while lines < max_lines && freed < bytes {
            let Some(chunk) = self.chunks.front_mut() else {
                break;
            };
            let rest = chunk.ends.len() - chunk.head;
            // Text bytes of the rest, without the newlines.
            let rest_bytes = (chunk.text.len() - chunk.start_of(chunk.head) - rest) as u64;
            if rest <= max_lines - lines && rest_bytes <= bytes - freed {
                lines += rest;
                freed += rest_bytes;
                self.chunks.pop_front();
                continue;
            }
            let line = chunk.head;
            freed += (chunk.ends[line] - chunk.start_of(line)) as u64;
            lines += 1;
            chunk.head += 1;
            if chunk.head == chunk.ends.len() {
                self.chunks.pop_front();
            }
        }
        self.front += lines as u64;
        self.len -= lines;
        (lines, freed)
    }

    /// The lines from position `from` on, a run per chunk.
    pub(crate) fn runs_from(&self, from: usize) -> impl Iterator<Item = Run<'_>> {
        let at = self.front + from as u64;
        let first = self.chunks.partition_point(|c| c.end() <= at);
        self.chunks.range(first..).map(move |chunk| Run {
            chunk,
            from: at.saturating_sub(chunk.first).max(chunk.head as u64) as usize,
            to: chunk.ends.len(),
        })
    }

    /// The lines at positions `from..to`, a run per chunk.
    pub(crate) fn runs(&self, from: usize, to: usize) -> impl Iterator<Item = Run<'_>> {
        let end = self.front + to as u64;
        self.runs_from(from)
            .take_while(move |run| run.chunk.first + (run.from as u64) < end)
            .map(move |mut run| {
                run.to = run.to.min((end - run.chunk.first) as usize);
                run
            })
    }

    /// Every record, oldest first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = RecordView<'_>> {
        self.runs_from(0).flat_map(|run| run.records())
    }
}

/// Each line converted on its own, invalid bytes replaced.
fn lossy(data: &[u8], ends: &[usize]) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(data.len());
    let mut new_ends = Vec::with_capacity(ends.len());
    let mut start = 0;
    for &end in ends {
        text.push_str(&String::from_utf8_lossy(&data[start..end]));
        new_ends.push(text.len());
        text.push('\n');
        start = end + 1;
    }
    (text, new_ends)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lines::LineSplitter;

    fn meta(timestamp: u64) -> Meta {
        Meta {
            timestamp,
            kind: LogKind::Stdout,
            process: None,
        }
    }

    fn batch(max: usize, bytes: &[u8]) -> Batch {
        let mut splitter = LineSplitter::new(max);
        splitter.push(bytes);
        splitter.take_batch().unwrap()
    }

    fn texts(records: &Records) -> Vec<(u64, String, u64)> {
        records
            .iter()
            .map(|r| (r.seq, r.text.to_owned(), r.truncated))
            .collect()
    }

    #[test]
    fn lines_keep_their_order_sequence_numbers_and_cuts_across_chunks() {
        let mut records = Records::default();
        assert_eq!(records.push_batch(1, meta(1), batch(3, b"a\nlong\n\n")), 3);
        records.push_one(4, meta(2), "exit".to_owned(), 0);
        assert_eq!(records.push_batch(5, meta(3), batch(3, b"b\n")), 1);
        assert_eq!(records.len(), 5);
        assert_eq!(
            texts(&records),
            [
                (1, "a".to_owned(), 0),
                (2, "lon".to_owned(), 1),
                (3, String::new(), 0),
                (4, "exit".to_owned(), 0),
                (5, "b".to_owned(), 0),
            ]
        );
    }

    #[test]
    fn eviction_takes_lines_one_by_one_and_positions_follow() {
        let mut records = Records::default();
        records.push_batch(1, meta(1), batch(100, b"aa\nb\n"));
        records.push_batch(3, meta(2), batch(100, b"ccc\n"));
        assert_eq!(records.evict(1, u64::MAX), (1, 2));
        let from_1: Vec<&str> = records.runs_from(1).flat_map(|r| r.texts()).collect();
        assert_eq!(from_1, ["ccc"]);
        let first: Vec<&str> = records.runs(0, 1).flat_map(|r| r.texts()).collect();
        assert_eq!(first, ["b"]);
        assert_eq!(records.runs(0, 2).map(|r| r.cost()).sum::<u64>(), 2 + 4);
        assert_eq!(records.evict(1, u64::MAX), (1, 1));
        assert_eq!(records.evict(1, u64::MAX), (1, 3));
        assert_eq!(records.evict(1, u64::MAX), (0, 0));
        assert_eq!(records.len(), 0);
        records.push_one(4, meta(3), "d".to_owned(), 0);
        assert_eq!(texts(&records), [(4, "d".to_owned(), 0)]);
    }

    #[test]
    fn eviction_stops_at_the_bytes_or_lines_asked_for() {
        let mut records = Records::default();
        records.push_batch(1, meta(1), batch(100, b"aa\nbb\ncc\n"));
        records.push_batch(4, meta(2), batch(100, b"dd\n\nee\n"));
        // 3 bytes: two lines of the first chunk.
        assert_eq!(records.evict(usize::MAX, 3), (2, 4));
        // The rest of the first chunk and all of the second: 3 lines are
        // allowed, so the empty line stops nothing but the count does.
        assert_eq!(records.evict(3, 100), (3, 4));
        let left: Vec<(u64, String, u64)> = texts(&records);
        assert_eq!(left, [(6, "ee".to_owned(), 0)]);
        assert_eq!(records.len(), 1);
        assert_eq!(records.evict(5, 100), (1, 2));
        assert_eq!(records.len(), 0);
        records.push_one(7, meta(3), "f".to_owned(), 0);
        assert_eq!(texts(&records), [(7, "f".to_owned(), 0)]);
    }

    #[test]
    fn invalid_utf8_is_replaced_per_line() {
        let mut records = Records::default();
        records.push_batch(1, meta(1), batch(100, b"ok\n\xff\xfe\n\xc3\xa9\n"));
        let got: Vec<String> = records.iter().map(|r| r.text.to_owned()).collect();
        assert_eq!(got, ["ok", "\u{fffd}\u{fffd}", "é"]);
    }

    #[test]
    fn a_character_split_by_the_length_limit_is_replaced() {
        // "é" cut after its first byte; the next line starts with the byte
        // that would complete it, so the batch as a whole is valid UTF-8.
        let mut records = Records::default();
        records.push_batch(1, meta(1), batch(1, b"\xc3\xa9\n\xa9\n"));
        let got: Vec<(String, u64)> = records
            .iter()
            .map(|r| (r.text.to_owned(), r.truncated))
            .collect();
        assert_eq!(
            got,
            [("\u{fffd}".to_owned(), 1), ("\u{fffd}".to_owned(), 0)]
        );
    }
}
