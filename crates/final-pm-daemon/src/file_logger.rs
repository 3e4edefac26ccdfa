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
//! Throughput: stdin is read in large chunks, every complete line in a chunk
//! is parsed without copying (serde borrows the strings) and formatted into
//! one buffered writer, and the file gets one write per chunk.

use std::borrow::Cow;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Deserialize;

/// The hidden first argument that turns the final-pm executable into the
/// file-logger.
pub const ENTRY: &str = "__file-logger";

/// The file written when no argument names one.
const DEFAULT_FILE: &str = "log.txt";
/// Bytes read from stdin at once.
const READ_CHUNK: usize = 1024 * 1024;

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
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let path = args
        .into_iter()
        .next()
        .map_or_else(|| PathBuf::from(DEFAULT_FILE), PathBuf::from);
    match run(&path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("file-logger: {}: {err}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn run(path: &std::path::Path) -> io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let mut out = BufWriter::with_capacity(READ_CHUNK, file);
    let mut ipc = ipc_channel();
    if let Some(ipc) = &mut ipc {
        // Like process.send('ready'): the daemon starts feeding now.
        let _ = ipc.write_all(b"\"ready\"\n");
    }
    let mut stdin = io::stdin().lock();
    let mut buffer = vec![0u8; READ_CHUNK];
    let mut filled = 0;
    let mut written: u64 = 0;
    let mut clock = TimeCache::default();
    let mut line = Vec::with_capacity(1024);
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
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &buffer[start..end]) {
            format_record(&buffer[start..start + pos], &mut clock, &mut line);
            out.write_all(&line)?;
            written += 1;
            start += pos + 1;
        }
        if n == 0 {
            if start < end {
                format_record(&buffer[start..end], &mut clock, &mut line);
                out.write_all(&line)?;
                written += 1;
            }
            out.flush()?;
            acknowledge(&mut ipc, written);
            return Ok(());
        }
        buffer.copy_within(start..end, 0);
        filled = end - start;
        out.flush()?;
        acknowledge(&mut ipc, written);
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
#[allow(unsafe_code)]
fn ipc_channel() -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    let fd: i32 = std::env::var("NODE_CHANNEL_FD").ok()?.parse().ok()?;
    if fd < 3 || nix::fcntl::fcntl(unsafe_borrow(fd), nix::fcntl::FcntlArg::F_GETFD).is_err() {
        return None;
    }
    // SAFETY: the daemon opened `fd` for us as our end of the IPC channel
    // and named it in NODE_CHANNEL_FD; it is open (checked above) and
    // nothing else in this process uses or closes it, so this File becomes
    // its only owner.
    Some(unsafe { std::fs::File::from_raw_fd(fd) })
}

#[allow(unsafe_code)]
fn unsafe_borrow(fd: i32) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: only used for one fcntl(F_GETFD) probe, which is harmless
    // even if the fd is not open (it fails with EBADF).
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}

/// Formats one record line into `out` (cleared first). A line that is not
/// a record is written as it is, so nothing given to the logger vanishes.
fn format_record(raw: &[u8], clock: &mut TimeCache, out: &mut Vec<u8>) {
    out.clear();
    let Ok(record) = serde_json::from_slice::<Record<'_>>(raw) else {
        out.extend_from_slice(raw);
        out.push(b'\n');
        return;
    };
    out.push(b'[');
    clock.push_iso(out, record.timestamp.max(0.0) as u64);
    out.extend_from_slice(b"] [");
    out.extend_from_slice(record.app.as_bytes());
    if let Some(process) = &record.process {
        out.push(b'/');
        match process.number {
            Some(number) => crate::logjson::push_u64(out, number),
            None => out.extend_from_slice(b"undefined"),
        }
        out.push(b' ');
        match process.pid {
            Some(pid) if pid < 0 => {
                out.push(b'-');
                crate::logjson::push_u64(out, pid.unsigned_abs());
            }
            Some(pid) => crate::logjson::push_u64(out, pid as u64),
            None => out.extend_from_slice(b"undefined"),
        }
    }
    out.extend_from_slice(b"] [");
    for c in record.kind.bytes() {
        out.push(c.to_ascii_uppercase());
    }
    out.extend_from_slice(b"]: ");
    out.extend_from_slice(record.text.as_bytes());
    out.push(b'\n');
}

/// Formats epoch milliseconds as ISO-8601 UTC (`2026-11-22T03:24:05.117Z`),
/// reusing the date and time of day while the second does not change.
#[derive(Debug, Default)]
struct TimeCache {
    second: Option<u64>,
    text: Vec<u8>,
}

impl TimeCache {
    fn push_iso(&mut self, out: &mut Vec<u8>, ms: u64) {
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

    #[test]
    fn what_is_not_a_record_is_written_as_it_is() {
        assert_eq!(format("not json"), "not json\n");
    }

    #[test]
    fn iso_dates_across_leap_years() {
        assert_eq!(iso_second(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(iso_second(4_107_542_399), "2100-02-28T23:59:59");
    }
}
