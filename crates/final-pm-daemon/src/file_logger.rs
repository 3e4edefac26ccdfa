//! The builtin `file-logger`: appends every record it is given to a file, in
//! FinalPM's line format (spec §7.7).
//!
//! It runs as its own process (the final-pm executable started with the
//! hidden [`ENTRY`] argument), one per logger key, in the apps' `cwd`:
//!
//! ```text
//! final-pm __file-logger [FILE]        FILE defaults to log.txt
//! ```
//!
//! - Records arrive on stdin as JSON lines (the record objects of spec
//!   §7.2); each becomes one line
//!   `[2026-11-22T03:24:05.117Z] [web/1 15549] [STDOUT]: hello`.
//! - On the IPC channel (fd 3, `NODE_CHANNEL_FD`) it says `"ready"` once the
//!   file is open, and after every write to the file it acknowledges how
//!   many records are in the file so far: `{"ack":1234}`. The daemon keeps
//!   records until they are acknowledged, so a file-logger killed halfway
//!   loses nothing: its successor gets the unacknowledged records again.
//! - It exits when stdin ends (the daemon closes it to stop the logger),
//!   after everything is written.
//!
//! - The daemon sends it each record already formatted as its line (JSON
//!   only for a record whose text holds a newline, since every line given
//!   counts as one record); such lines, starting with `[`, are copied.
//!
//! Throughput: stdin is read in large chunks, every complete line in a chunk
//! is copied or parsed without copying (serde borrows the strings) and
//! formatted into one buffered writer, and the file gets one write per chunk.

use std::borrow::Cow;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use serde::Deserialize;

/// The hidden first argument that turns the final-pm executable into the
/// file-logger.
pub const ENTRY: &str = "__file-logger";

/// The file written when no argument names one.
const DEFAULT_FILE: &str = "log.txt";
/// Bytes read from stdin at once. Small enough that what was read is still
/// in the CPU's cache when it is written to the file, and that the file
/// gets each part soon after the daemon sent it: with 1 MiB reads the same
/// work took longer (bench/README.md).
const READ_CHUNK: usize = 128 * 1024;

/// The fields of a record the line format needs; the rest is ignored.
#[derive(Debug, Deserialize)]
struct Record<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Cow<'a, str>,
    #[serde(default)]
    timestamp: f64,
    #[serde(borrow, default)]
    app: Cow<'a, str>,
    #[serde(default)]
    process: Option<Process>,
}

#[derive(Debug, Deserialize)]
struct Process {
    #[serde(default)]
    pid: Option<i64>,
    #[serde(default)]
    number: Option<u64>,
}

/// Runs the file-logger; returns when stdin ends.
pub fn main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let path = args
        .into_iter()
        .next()
        .map_or_else(|| PathBuf::from(DEFAULT_FILE), PathBuf::from);
    match run(&path) {
        Ok(()) => 0,
        Err(err) => {
            eprintln!("file-logger: {}: {err}", path.display());
            1
        }
    }
}

fn run(path: &std::path::Path) -> io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut ipc = ipc_channel();
    if let Some(ipc) = &mut ipc {
        // Like process.send('ready'): the daemon starts feeding now.
        let _ = ipc.write_all(b"\"ready\"\n");
        if let Ok(incoming) = ipc.try_clone() {
            std::thread::spawn(move || watch_for_stop(incoming));
        }
    }
    let ring = feed_ring()?;
    let mut sink = Sink::new(file, ipc);
    let mut stdin = io::stdin().lock();
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut filled = 0;
    loop {
        if filled == buffer.len() {
            // One record longer than the buffer: make room.
            buffer.resize(buffer.len() * 2, 0);
        }
        let n = match stdin.read(&mut buffer[filled..]) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        let end = filled + n;
        // At the end of stdin, an unterminated last line counts too.
        let used = match &ring {
            Some(ring) => drain_with_ring(&buffer[..end], n == 0, ring, &mut sink)?,
            None => sink.write(&buffer[..end], n == 0)?,
        };
        if n == 0 {
            return Ok(());
        }
        buffer.copy_within(used..end, 0);
        filled = end - used;
    }
}

/// Where converted records go: the file, then an acknowledgement.
struct Sink {
    file: std::fs::File,
    /// Lines that needed formatting, gathered for one write.
    out: Vec<u8>,
    clock: TimeCache,
    /// Records in the file so far.
    written: u64,
    ipc: Option<std::fs::File>,
}

impl Sink {
    fn new(file: std::fs::File, ipc: Option<std::fs::File>) -> Self {
        Self {
            file,
            out: Vec::with_capacity(2 * READ_CHUNK),
            clock: TimeCache::default(),
            written: 0,
            ipc,
        }
    }

    /// Writes the records of the complete lines of `lines` (with `last`,
    /// an unterminated last line too) and acknowledges them; returns how
    /// many bytes of `lines` they took.
    fn write(&mut self, lines: &[u8], last: bool) -> io::Result<usize> {
        let (used, records) = convert(lines, last, &mut self.clock, &mut self.out);
        if records == 0 {
            return Ok(used);
        }
        // The daemon's lines are copied from where they were read; `out`
        // holds the lines only when some needed formatting.
        if self.out.is_empty() {
            self.file.write_all(&lines[..used])?;
        } else {
            self.file.write_all(&self.out)?;
            self.out.clear();
        }
        self.written += records;
        acknowledge(&mut self.ipc, self.written);
        Ok(used)
    }

    /// Writes `lines` formatted lines, already the file's bytes, and
    /// acknowledges them.
    fn write_formatted(&mut self, data: &[u8], lines: u64) -> io::Result<()> {
        self.file.write_all(data)?;
        self.written += lines;
        acknowledge(&mut self.ipc, self.written);
        Ok(())
    }
}

/// Handles what stdin gave with a feed ring: plain lines are records as
/// without one, and a header line `#<start> <len> [<lines>]` stands for a
/// chunk of lines in the ring, written from there (as it is, if the daemon
/// counted its lines: they are all formatted). Everything is written in
/// stdin's order. Returns how much of `input` was used (all of it when
/// `last`).
fn drain_with_ring(
    input: &[u8],
    last: bool,
    ring: &crate::feed_ring::RingReader,
    sink: &mut Sink,
) -> io::Result<usize> {
    // The plain lines not yet written start at `plain`.
    let mut plain = 0;
    let mut pos = 0;
    while let Some(found) = memchr::memchr(b'\n', &input[pos..]) {
        let line = &input[pos..pos + found];
        if line.first() == Some(&b'#')
            && let Some(chunk) = ring.chunk(line)
        {
            sink.write(&input[plain..pos], false)?;
            match chunk.lines {
                Some(lines) => sink.write_formatted(chunk.data, lines)?,
                // This daemon counts every chunk; one of the build before,
                // still running after an upgrade, starts this executable as
                // its logger and does not.
                None => {
                    sink.write(chunk.data, true)?;
                }
            }
            // Only now may the daemon reuse that part of the ring.
            ring.done(chunk.end);
            plain = pos + found + 1;
        }
        pos += found + 1;
    }
    let used = if last { input.len() } else { pos };
    sink.write(&input[plain..used], last)?;
    Ok(used)
}

/// The feed ring the daemon passed, if it did (see [`crate::feed_ring`]).
/// One it passed but that cannot be mapped is an error: its headers would
/// stand for lines this logger cannot read.
fn feed_ring() -> io::Result<Option<crate::feed_ring::RingReader>> {
    let Some(fd) = inherited_fd(crate::feed_ring::RING_VAR) else {
        return Ok(None);
    };
    crate::feed_ring::RingReader::open(fd)
        .map(Some)
        .map_err(|err| io::Error::new(err.kind(), format!("cannot map the feed ring: {err}")))
}

/// Turns the complete lines at the start of `input` (all of it when
/// `last`) into the file's lines; returns how many bytes of `input` they
/// took and how many records they were. Lines the daemon formatted (they
/// start with `[`) need no work: as long as every line is one, `out` stays
/// empty and `input[..used]` is what the file gets. Otherwise `out` holds
/// every line, converted or copied, in order.
fn convert(input: &[u8], last: bool, clock: &mut TimeCache, out: &mut Vec<u8>) -> (usize, u64) {
    let mut records = 0;
    let mut start = 0;
    // Where the copied lines not yet in `out` begin.
    let mut copied = 0;
    loop {
        let end = match memchr::memchr(b'\n', &input[start..]) {
            Some(pos) => start + pos,
            None if last && start < input.len() => input.len(),
            None => break,
        };
        let line = &input[start..end];
        if line.first() != Some(&b'[') {
            out.extend_from_slice(&input[copied..start]);
            format_record(line, clock, out);
            copied = (end + 1).min(input.len());
        }
        records += 1;
        start = (end + 1).min(input.len());
        if start == input.len() {
            break;
        }
    }
    if !out.is_empty() {
        out.extend_from_slice(&input[copied..start]);
        if last && start == input.len() && input.last() != Some(&b'\n') && copied < start {
            // A copied unterminated last line gets its newline.
            out.push(b'\n');
        }
    } else if last && start == input.len() && records > 0 && input.last() != Some(&b'\n') {
        // The only case where the input itself is not the file's bytes: an
        // unterminated copied last line.
        out.extend_from_slice(input);
        out.push(b'\n');
    }
    (start, records)
}

/// The daemon stops its logger by closing stdin (and then sends `"stop"`);
/// a `"stop"` alone (`final-pm stop file-logger`) ends it too, after a grace
/// period for the end of stdin. Leaving with records unwritten loses
/// nothing: they were not acknowledged, so the daemon sends them again.
fn watch_for_stop(incoming: std::fs::File) {
    use std::io::BufRead;
    for line in io::BufReader::new(incoming).lines() {
        let Ok(line) = line else {
            return;
        };
        if line.trim() == "\"stop\"" {
            std::thread::sleep(std::time::Duration::from_secs(2));
            std::process::exit(0);
        }
    }
}

fn acknowledge(ipc: &mut Option<std::fs::File>, written: u64) {
    if let Some(channel) = ipc {
        let message = format!("{{\"ack\":{written}}}\n");
        if channel.write_all(message.as_bytes()).is_err() {
            // The daemon is gone; keep writing the file.
            *ipc = None;
        }
    }
}

/// The IPC channel the daemon gave us, if any.
fn ipc_channel() -> Option<std::fs::File> {
    inherited_fd("NODE_CHANNEL_FD").map(std::fs::File::from)
}

/// The fd the daemon opened for us and named in the variable `name`, if it
/// is there and open.
#[allow(unsafe_code)]
fn inherited_fd(name: &str) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let fd: i32 = std::env::var(name).ok()?.parse().ok()?;
    if fd < 3 || nix::fcntl::fcntl(unsafe_borrow(fd), nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return None;
    }
    // SAFETY: the daemon opened `fd` for us and named it in `name`; it is
    // open (checked above) and nothing else in this process uses or closes
    // it (each variable is read once), so this OwnedFd becomes its only
    // owner.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

#[allow(unsafe_code)]
fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for one fcntl(F_GETFD) probe, which is harmless
    // even if the fd is not open (it fails with EBADF).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// The fields of a record the line format needs.
#[derive(Debug)]
struct Fields<'a> {
    kind: Cow<'a, [u8]>,
    text: Cow<'a, [u8]>,
    timestamp: u64,
    app: Cow<'a, [u8]>,
    /// `(number, pid)`, when the record has a process.
    process: Option<(Option<u64>, Option<i64>)>,
}

/// Appends the line for one record to `out`. A line that is not a record is
/// written as it is, so nothing given to the logger vanishes.
///
/// A line starting with `[` is not a record object: it is copied as it is,
/// which is also how the daemon feeds this logger (it sends each record
/// already formatted, see `logjson::Encoder::push_line`), so the hot path
/// is a copy.
fn format_record(raw: &[u8], clock: &mut TimeCache, out: &mut Vec<u8>) {
    if raw.first() == Some(&b'[') {
        out.extend_from_slice(raw);
        out.push(b'\n');
        return;
    }
    let fields = match fast::parse(raw) {
        Some(fields) => fields,
        None => match serde_json::from_slice::<Record<'_>>(raw) {
            Ok(record) => Fields {
                kind: cow_bytes(record.kind),
                text: cow_bytes(record.text),
                timestamp: record.timestamp.max(0.0) as u64,
                app: cow_bytes(record.app),
                process: record.process.map(|p| (p.number, p.pid)),
            },
            Err(_) => {
                out.extend_from_slice(raw);
                out.push(b'\n');
                return;
            }
        },
    };
    out.push(b'[');
    clock.push_iso(out, fields.timestamp);
    out.extend_from_slice(b"] [");
    out.extend_from_slice(&fields.app);
    if let Some((number, pid)) = fields.process {
        out.push(b'/');
        match number {
            Some(number) => crate::logjson::push_u64(out, number),
            None => out.extend_from_slice(b"undefined"),
        }
        out.push(b' ');
        match pid {
            Some(pid) if pid < 0 => {
                out.push(b'-');
                crate::logjson::push_u64(out, pid.unsigned_abs());
            }
            Some(pid) => crate::logjson::push_u64(out, pid as u64),
            None => out.extend_from_slice(b"undefined"),
        }
    }
    out.extend_from_slice(b"] [");
    for &c in fields.kind.iter() {
        out.push(c.to_ascii_uppercase());
    }
    out.extend_from_slice(b"]: ");
    out.extend_from_slice(&fields.text);
    out.push(b'\n');
}

fn cow_bytes(s: Cow<'_, str>) -> Cow<'_, [u8]> {
    match s {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// A small JSON reader for exactly what the line format needs, several
/// times faster than a general deserializer on the hot path (strings
/// without escapes are borrowed, unknown fields skipped). Anything it does
/// not understand returns `None` and goes through serde instead.
mod fast {
    use std::borrow::Cow;

    use super::Fields;

    struct Reader<'a> {
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Reader<'a> {
        fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\r' | b'\n') = self.b.get(self.i) {
                self.i += 1;
            }
        }

        fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
        }

        fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        fn string(&mut self) -> Option<Cow<'a, [u8]>> {
            self.eat(b'"')?;
            let rest = &self.b[self.i..];
            // Keys and most values are short: a plain scan beats setting up
            // a vectorised search.
            let end = match rest.iter().take(16).position(|&c| c == b'"' || c == b'\\') {
                Some(end) => end,
                None => memchr::memchr2(b'"', b'\\', rest)?,
            };
            if rest[end] == b'"' {
                self.i += end + 1;
                return Some(Cow::Borrowed(&rest[..end]));
            }
            let mut out = rest[..end].to_vec();
            self.i += end;
            loop {
                let c = *self.b.get(self.i)?;
                self.i += 1;
                match c {
                    b'"' => return Some(Cow::Owned(out)),
                    b'\\' => {
                        let e = *self.b.get(self.i)?;
                        self.i += 1;
                        match e {
                            b'"' | b'\\' | b'/' => out.push(e),
                            b'b' => out.push(8),
                            b'f' => out.push(12),
                            b'n' => out.push(b'\n'),
                            b'r' => out.push(b'\r'),
                            b't' => out.push(b'\t'),
                            b'u' => {
                                let mut code = self.hex4()?;
                                if (0xd800..0xdc00).contains(&code) {
                                    if self.b.get(self.i..self.i + 2)? != b"\\u" {
                                        return None;
                                    }
                                    self.i += 2;
                                    let low = self.hex4()?;
                                    if !(0xdc00..0xe000).contains(&low) {
                                        return None;
                                    }
                                    code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
                                }
                                let c = char::from_u32(code)?;
                                let mut buf = [0u8; 4];
                                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                            }
                            _ => return None,
                        }
                    }
                    _ => out.push(c),
                }
            }
        }

        fn hex4(&mut self) -> Option<u32> {
            let digits = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
            self.i += 4;
            u32::from_str_radix(digits, 16).ok()
        }

        /// An integer (a fraction or exponent is cut off).
        fn integer(&mut self) -> Option<i64> {
            self.ws();
            let n = self.digits()?;
            while let Some(b'.' | b'e' | b'E' | b'+' | b'-' | b'0'..=b'9') = self.b.get(self.i) {
                self.i += 1;
            }
            Some(n)
        }

        fn literal(&mut self, word: &[u8]) -> Option<()> {
            self.ws();
            self.lit(word)
        }

        fn skip(&mut self, depth: u32) -> Option<()> {
            if depth > 64 {
                return None;
            }
            match self.peek()? {
                b'"' => self.string().map(drop),
                b'{' => self.object(|r, _| r.skip(depth + 1)),
                b'[' => {
                    self.eat(b'[')?;
                    if self.eat(b']').is_some() {
                        return Some(());
                    }
                    loop {
                        self.skip(depth + 1)?;
                        if self.eat(b',').is_none() {
                            return self.eat(b']');
                        }
                    }
                }
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                _ => self.integer().map(drop),
            }
        }

        fn object(&mut self, mut field: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
            self.eat(b'{')?;
            if self.eat(b'}').is_some() {
                return Some(());
            }
            loop {
                let key = self.string()?;
                self.eat(b':')?;
                field(self, &key)?;
                if self.eat(b',').is_none() {
                    return self.eat(b'}');
                }
            }
        }
    }

    /// The record's fields, if `raw` is a plain record object.
    pub(super) fn parse(raw: &[u8]) -> Option<Fields<'_>> {
        in_daemon_order(raw).or_else(|| any_order(raw))
    }

    impl Reader<'_> {
        /// Consumes `lit` exactly (no whitespace).
        fn lit(&mut self, lit: &[u8]) -> Option<()> {
            (self.b.get(self.i..self.i + lit.len())? == lit).then(|| self.i += lit.len())
        }

        fn digits(&mut self) -> Option<i64> {
            let negative = self.b.get(self.i) == Some(&b'-');
            if negative {
                self.i += 1;
            }
            let start = self.i;
            let mut n: i64 = 0;
            while let Some(&d @ b'0'..=b'9') = self.b.get(self.i) {
                n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
                self.i += 1;
            }
            (self.i > start).then_some(if negative { -n } else { n })
        }
    }

    /// The layout the daemon writes, field by field with no key lookups:
    /// `{"type":..,"text":..,"bytes":..,"timestamp":..,"app":..,
    /// "process":{"pid":..,"id":..,"number":..,"generation":..},"truncated":..}`.
    pub(super) fn in_daemon_order(raw: &[u8]) -> Option<Fields<'_>> {
        let mut r = Reader { b: raw, i: 0 };
        r.lit(b"{\"type\":")?;
        let kind = r.string()?;
        r.lit(b",\"text\":")?;
        let text = r.string()?;
        r.lit(b",\"bytes\":")?;
        r.digits()?;
        r.lit(b",\"timestamp\":")?;
        let timestamp = u64::try_from(r.digits()?).ok()?;
        r.lit(b",\"app\":")?;
        let app = r.string()?;
        r.lit(b",\"process\":")?;
        let process = if r.lit(b"null").is_some() {
            None
        } else {
            r.lit(b"{\"pid\":")?;
            let pid = r.digits()?;
            r.lit(b",\"id\":")?;
            r.digits()?;
            r.lit(b",\"number\":")?;
            let number = u64::try_from(r.digits()?).ok()?;
            r.lit(b",\"generation\":")?;
            if r.lit(b"null").is_none() {
                r.string()?;
            }
            r.lit(b"}")?;
            Some((Some(number), Some(pid)))
        };
        r.lit(b",\"truncated\":")?;
        r.digits()?;
        r.lit(b"}")?;
        (r.i == raw.len()).then_some(Fields {
            kind,
            text,
            timestamp,
            app,
            process,
        })
    }

    /// Any object with the record's fields, in any order.
    fn any_order(raw: &[u8]) -> Option<Fields<'_>> {
        let mut r = Reader { b: raw, i: 0 };
        let mut fields = Fields {
            kind: Cow::Borrowed(&[]),
            text: Cow::Borrowed(&[]),
            timestamp: 0,
            app: Cow::Borrowed(&[]),
            process: None,
        };
        let mut has_kind = false;
        r.object(|r, key| {
            match key {
                b"type" => {
                    fields.kind = r.string()?;
                    has_kind = true;
                }
                b"text" => fields.text = r.string()?,
                b"app" => fields.app = r.string()?,
                b"timestamp" => fields.timestamp = u64::try_from(r.integer()?).unwrap_or(0),
                b"process" => {
                    if r.peek()? == b'n' {
                        r.literal(b"null")?;
                    } else {
                        let (mut number, mut pid) = (None, None);
                        r.object(|r, key| {
                            match key {
                                b"number" => number = u64::try_from(r.integer()?).ok(),
                                b"pid" => pid = Some(r.integer()?),
                                _ => r.skip(1)?,
                            }
                            Some(())
                        })?;
                        fields.process = Some((number, pid));
                    }
                }
                _ => r.skip(0)?,
            }
            Some(())
        })?;
        r.ws();
        (has_kind && r.i == raw.len()).then_some(fields)
    }
}

/// Formats epoch milliseconds as ISO-8601 UTC (`2026-11-22T03:24:05.117Z`),
/// reusing the date and time of day while the second does not change.
/// Formats times as ISO 8601 UTC with milliseconds, the date and clock
/// part computed once per second. Shared with the daemon, which formats the
/// file-logger's lines itself (see `logjson::Encoder::push_line`).
#[derive(Debug, Default)]
pub(crate) struct TimeCache {
    second: Option<u64>,
    text: Vec<u8>,
}

impl TimeCache {
    /// Appends `ms` (milliseconds since the epoch), e.g.
    /// `2026-11-22T03:24:05.117Z`.
    pub(crate) fn push_iso(&mut self, out: &mut Vec<u8>, ms: u64) {
        let second = ms / 1000;
        if self.second != Some(second) {
            self.second = Some(second);
            self.text = iso_second(second).into_bytes();
        }
        out.extend_from_slice(&self.text);
        let millis = ms % 1000;
        out.push(b'.');
        out.push(b'0' + (millis / 100) as u8);
        out.push(b'0' + (millis / 10 % 10) as u8);
        out.push(b'0' + (millis % 10) as u8);
        out.push(b'Z');
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time in seconds (UTC).
fn iso_second(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(raw: &str) -> String {
        let mut out = Vec::new();
        format_record(raw.as_bytes(), &mut TimeCache::default(), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// Lines from the ring and lines from stdin reach the file in stdin's
    /// order, and count as records whether or not the daemon counted them;
    /// the ring is handed back only once its lines are in the file.
    #[test]
    fn ring_chunks_and_plain_lines_are_written_in_order() {
        use crate::feed_ring::{Ring, RingReader};
        let mut ring = Ring::create().unwrap();
        let reader = RingReader::open(ring.fd().try_clone_to_owned().unwrap()).unwrap();
        let (one, two) = (
            b"[t] [a/0 1] [STDOUT]: one\n[t] [a/0 1] [STDOUT]: two\n".as_slice(),
            b"[t] [a/0 1] [STDOUT]: four\n".as_slice(),
        );
        // The first chunk's lines are counted by the daemon, the second's
        // by the logger.
        let first = ring.put(one, Some(2));
        let second = ring.put(two, None);
        let mut input = Vec::new();
        input.extend_from_slice(first.unwrap().as_bytes());
        input.extend_from_slice(b"[t] [a/0 1] [STDOUT]: three\n#bad header\n");
        input.extend_from_slice(second.unwrap().as_bytes());
        input.extend_from_slice(b"[t] [a/0 1] [STDOUT]: unfinish");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.txt");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let mut sink = Sink::new(file, None);
        let used = drain_with_ring(&input, false, &reader, &mut sink).unwrap();
        assert_eq!(&input[used..], b"[t] [a/0 1] [STDOUT]: unfinish");
        drain_with_ring(&input[used..], true, &reader, &mut sink).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let got: Vec<&str> = text
            .lines()
            .map(|l| l.rsplit(": ").next().unwrap())
            .collect();
        assert_eq!(
            got,
            ["one", "two", "three", "#bad header", "four", "unfinish"]
        );
        assert_eq!(sink.written, 6);
        // Both chunks are done with: after filling the rest of this turn,
        // the ring takes as many bytes again at its start.
        let used_by_chunks = one.len() + two.len();
        let rest = 2 * 1024 * 1024 - used_by_chunks;
        assert!(ring.put(&vec![b'z'; rest], None).is_some());
        assert!(ring.put(&vec![b'z'; used_by_chunks], None).is_some());
        assert!(ring.put(b"z", None).is_none(), "the ring is full now");
    }

    #[test]
    fn the_fast_reader_agrees_with_serde() {
        let texts = [
            "plain",
            "",
            "quotes \" and \\ backslashes",
            "controls \u{1}\u{8}\u{c}\t\r\n\u{1f} end",
            "unicode é ✓ \u{2028} 😀",
        ];
        for text in texts {
            let record = serde_json::json!({
                "type": "stdout", "text": text, "bytes": text.len(), "timestamp": 1_795_317_845_117_u64,
                "app": "web", "extra": [1, {"a": [true, null]}, "x"],
                "process": {"pid": -1, "id": 3, "number": 1, "generation": null}, "truncated": 0
            });
            let raw = serde_json::to_vec(&record).unwrap();
            let fast = fast::parse(&raw).unwrap();
            assert_eq!(&*fast.text, text.as_bytes());
            assert_eq!(fast.timestamp, 1_795_317_845_117);
            assert_eq!(fast.process, Some((Some(1), Some(-1))));
            // serde_json escapes U+2028 not at all, Node does; both parse.
            let escaped = String::from_utf8(raw.clone())
                .unwrap()
                .replace('\u{2028}', "\\u2028");
            assert_eq!(
                &*fast::parse(escaped.as_bytes()).unwrap().text,
                text.as_bytes()
            );
        }
        // What the daemon writes takes the positional path.
        let mut encoded = Vec::new();
        crate::logjson::push_record(
            &mut encoded,
            crate::logjson::RecordRef {
                kind: final_pm_protocol::LogKind::Stdout,
                text: "tab\there",
                timestamp: 5,
                app_json: b"\"web\"",
                process: None,
                truncated: 0,
            },
        );
        encoded.pop();
        let fields = fast::in_daemon_order(&encoded).unwrap();
        assert_eq!((&*fields.text, fields.process), (&b"tab\there"[..], None));
        assert!(fast::parse(b"{\"type\":\"stdout\"} trailing").is_none());
        assert!(fast::parse(b"not json").is_none());
    }

    #[test]
    fn lines_have_finalpms_format() {
        assert_eq!(
            format(
                r#"{"type":"stdout","text":"hello","bytes":5,"timestamp":1795317845117,"app":"web","process":{"pid":15549,"id":3,"number":1,"generation":"running"},"truncated":0}"#
            ),
            "[2026-11-22T03:24:05.117Z] [web/1 15549] [STDOUT]: hello\n"
        );
        assert_eq!(
            format(
                r#"{"type":"start-timeout","text":"a\nb \"q\"","timestamp":0,"app":"w","process":{"pid":-1,"id":0,"number":0,"generation":null}}"#
            ),
            "[1970-01-01T00:00:00.000Z] [w/0 -1] [START-TIMEOUT]: a\nb \"q\"\n"
        );
    }

    /// The daemon's preformatted lines must be byte for byte what this
    /// logger makes of the same record as JSON, and count as one record each.
    #[test]
    fn preformatted_lines_equal_the_formatted_json() {
        use final_pm_protocol::{Generation, LogKind, LogProcess, ProcessId};
        let kinds = [
            LogKind::Stdout,
            LogKind::Stderr,
            LogKind::Moved,
            LogKind::Start,
            LogKind::Stop,
            LogKind::Kill,
            LogKind::Exit,
            LogKind::StartTimeout,
            LogKind::StopTimeout,
            LogKind::Error,
            LogKind::Dropped,
        ];
        let texts = [
            "hello",
            "",
            "[starts like a line] {\"and\":\"json\"}",
            "quotes \" \\ tab\t cr\r controls \u{1}\u{1f} unicode é ✓ \u{2028} 😀",
            "two\nlines",
            "\n",
        ];
        let processes = [
            None,
            Some(LogProcess {
                pid: 15549,
                id: ProcessId(3),
                number: 1,
                generation: Some(Generation::Running),
            }),
            Some(LogProcess {
                pid: -1,
                id: ProcessId(u64::MAX),
                number: u32::MAX,
                generation: None,
            }),
        ];
        for app in ["web", "we\"b [x]", "new\nline"] {
            let mut app_json = Vec::new();
            crate::logjson::push_str(&mut app_json, app);
            let mut encoder = crate::logjson::Encoder::default();
            let (mut lines, mut expected) = (Vec::new(), Vec::new());
            let mut clock = TimeCache::default();
            let mut records = 0;
            for (i, kind) in kinds.into_iter().enumerate() {
                for text in texts {
                    for process in &processes {
                        let record = crate::logjson::RecordRef {
                            kind,
                            text,
                            timestamp: 1_795_317_845_117 + (i as u64 % 3) * 999,
                            app_json: &app_json,
                            process: process.as_ref(),
                            truncated: 7,
                        };
                        encoder.push_line(&mut lines, app, record);
                        let mut json = Vec::new();
                        crate::logjson::push_record(&mut json, record);
                        json.pop();
                        format_record(&json, &mut clock, &mut expected);
                        records += 1;
                    }
                }
            }
            let mut got = Vec::new();
            let mut count = 0;
            for line in lines.split(|&b| b == b'\n') {
                if line.is_empty() && count == records {
                    break;
                }
                format_record(line, &mut clock, &mut got);
                count += 1;
            }
            assert_eq!(count, records, "one line per record ({app:?})");
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn what_is_not_a_record_is_written_as_it_is() {
        assert_eq!(format("not json"), "not json\n");
    }

    /// What the file gets from one read of `input`: (bytes, records, bytes
    /// of the input left for the next read).
    fn convert_read(input: &str, last: bool) -> (String, u64, usize) {
        let mut out = Vec::new();
        let (used, records) = convert(input.as_bytes(), last, &mut TimeCache::default(), &mut out);
        let file = if out.is_empty() {
            &input.as_bytes()[..used]
        } else {
            &out[..]
        };
        (
            String::from_utf8(file.to_vec()).unwrap(),
            records,
            input.len() - used,
        )
    }

    #[test]
    fn formatted_lines_are_written_from_the_read_and_partial_ones_wait() {
        assert_eq!(
            convert_read("[a] x\n[b] y\n[c", false),
            ("[a] x\n[b] y\n".to_owned(), 2, 2)
        );
        assert_eq!(convert_read("[c", false), (String::new(), 0, 2));
        assert_eq!(convert_read("[c] z", true), ("[c] z\n".to_owned(), 1, 0));
        assert_eq!(convert_read("", true), (String::new(), 0, 0));
    }

    #[test]
    fn json_records_among_formatted_lines_keep_their_place() {
        let json = r#"{"type":"exit","text":"a\nb","timestamp":0,"app":"web","process":null}"#;
        let input = format!("[a] x\n{json}\n\n[b] y\nnot json");
        let expected = format!("[a] x\n{}\n[b] y\n", format(json));
        assert_eq!(convert_read(&input, false), (expected.clone(), 4, 8));
        assert_eq!(
            convert_read(&input, true),
            (format!("{expected}not json\n"), 5, 0)
        );
        assert_eq!(convert_read("[a] x\nnot json", true).0, "[a] x\nnot json\n");
    }

    #[test]
    fn iso_dates_across_leap_years() {
        assert_eq!(iso_second(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(iso_second(4_107_542_399), "2100-02-28T23:59:59");
    }
}
