//! Encoding log records as the JSON lines loggers read.
//!
//! A record goes to a logger as one line of compact JSON, the object FinalPM
//! sent its loggers (spec §7.2). This is the daemon's hottest path (one call
//! per output line of every app), so it writes bytes directly instead of
//! going through serde: no allocation, no formatting machinery, and the
//! app name is escaped once per buffer rather than once per record. The
//! result is plain JSON that `JSON.parse` and serde read unchanged (a test
//! checks it against serde_json).

use final_pm_protocol::{Generation, LogKind, LogProcess};

/// Appends `s` as a JSON string literal (quotes included).
///
/// Almost every byte of a log line needs no escaping, so the text is
/// scanned eight bytes at a time: a word without a control character, `"`
/// or `\\` is skipped in a few instructions.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    /// Whether any byte of `w` is below 0x20, `"` or `\\` (exact, no false
    /// negatives: the classic "has zero byte" bit trick).
    fn special(w: u64) -> bool {
        let below = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let quote = w ^ (ONES * u64::from(b'"'));
        let quote = quote.wrapping_sub(ONES) & !quote & HIGH;
        let slash = w ^ (ONES * u64::from(b'\\'));
        let slash = slash.wrapping_sub(ONES) & !slash & HIGH;
        (below | quote | slash) != 0
    }
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            if !special(w) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(bytes.len());
        for (j, &b) in bytes.iter().enumerate().take(end).skip(i) {
            if b >= 0x20 && b != b'"' && b != b'\\' {
                continue;
            }
            out.extend_from_slice(&bytes[start..j]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xf)]);
                }
            }
            start = j + 1;
        }
        i = end;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends a number in decimal.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    // Most numbers in a record are small (`truncated`, `bytes`).
    if n < 10 {
        out.push(b'0' + n as u8);
        return;
    }
    if n < 100 {
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    push_u64(out, n.unsigned_abs());
}

/// The fields of one record, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordRef<'a> {
    pub(crate) kind: LogKind,
    pub(crate) text: &'a str,
    pub(crate) timestamp: u64,
    /// The app name, already a JSON string literal (see [`push_str`]).
    pub(crate) app_json: &'a [u8],
    pub(crate) process: Option<&'a LogProcess>,
    pub(crate) truncated: u64,
}

/// Encodes records; remembers the encoded `timestamp`, `app` and `process`
/// fields of the last record, which the lines of one read share, so they
/// are formatted once per read instead of once per line.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    key: Option<(u64, Option<LogProcess>)>,
    middle: Vec<u8>,
    /// Same idea for [`push_line`](Self::push_line): the line up to the
    /// text, for the last record's time, process and type.
    line_key: Option<(u64, Option<LogProcess>, LogKind)>,
    line_prefix: Vec<u8>,
    clock: crate::file_logger::TimeCache,
}

impl Encoder {
    /// Appends one record and its newline.
    pub(crate) fn push(&mut self, out: &mut Vec<u8>, record: RecordRef<'_>) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(record.kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"text\":");
        push_str(out, record.text);
        out.extend_from_slice(b",\"bytes\":");
        push_u64(out, record.text.len() as u64);
        let same = self.key.as_ref().is_some_and(|(timestamp, process)| {
            *timestamp == record.timestamp && process.as_ref() == record.process
        });
        if !same {
            self.middle.clear();
            push_middle(&mut self.middle, &record);
            self.key = Some((record.timestamp, record.process.cloned()));
        }
        out.extend_from_slice(&self.middle);
        out.extend_from_slice(b",\"truncated\":");
        push_u64(out, record.truncated);
        out.extend_from_slice(b"}\n");
    }

    /// Appends the builtin file-logger's line for one record, exactly as
    /// it would format the JSON record itself
    /// (`[2026-11-22T03:24:05.117Z] [web/1 15549] [STDOUT]: hello`), so it
    /// only has to copy it: parsing ~250 bytes of JSON per line was most of
    /// its work, and this line is shorter than the JSON and cheaper to
    /// make (no escaping; the prefix is shared by the lines of one read).
    ///
    /// The file-logger counts one record per line it is given, so a record
    /// whose text or app name holds a newline is encoded as JSON instead
    /// (JSON lines start with `{`, formatted ones with `[`).
    pub(crate) fn push_line(&mut self, out: &mut Vec<u8>, app: &str, record: RecordRef<'_>) {
        if memchr::memchr(b'\n', record.text.as_bytes()).is_some() || app.contains('\n') {
            self.push(out, record);
            return;
        }
        let meta = crate::records::Meta {
            timestamp: record.timestamp,
            kind: record.kind,
            process: record.process.cloned(),
        };
        self.line_prefix(app, &meta);
        out.extend_from_slice(&self.line_prefix);
        out.extend_from_slice(record.text.as_bytes());
        out.push(b'\n');
    }

    /// The file-logger's line up to the text
    /// (`[2026-11-22T03:24:05.117Z] [web/1 15549] [STDOUT]: `) for records
    /// of `app` with these fields; made once for all the lines of a read.
    pub(crate) fn line_prefix(&mut self, app: &str, meta: &crate::records::Meta) -> &[u8] {
        let same = self
            .line_key
            .as_ref()
            .is_some_and(|(timestamp, process, kind)| {
                *timestamp == meta.timestamp && *kind == meta.kind && *process == meta.process
            });
        if !same {
            let prefix = &mut self.line_prefix;
            prefix.clear();
            prefix.push(b'[');
            self.clock.push_iso(prefix, meta.timestamp);
            prefix.extend_from_slice(b"] [");
            prefix.extend_from_slice(app.as_bytes());
            if let Some(p) = &meta.process {
                prefix.push(b'/');
                push_u64(prefix, u64::from(p.number));
                prefix.push(b' ');
                push_i64(prefix, p.pid);
            }
            prefix.extend_from_slice(b"] [");
            prefix.extend(meta.kind.as_str().bytes().map(|c| c.to_ascii_uppercase()));
            prefix.extend_from_slice(b"]: ");
            self.line_key = Some((meta.timestamp, meta.process.clone(), meta.kind));
        }
        &self.line_prefix
    }

    /// Forgets the remembered fields (a new buffer: another app).
    pub(crate) fn reset(&mut self) {
        self.key = None;
        self.line_key = None;
    }
}

/// Appends one record and its newline.
#[cfg(test)]
pub(crate) fn push_record(out: &mut Vec<u8>, record: RecordRef<'_>) {
    Encoder::default().push(out, record);
}

/// `,"timestamp":..,"app":..,"process":..`
fn push_middle(out: &mut Vec<u8>, record: &RecordRef<'_>) {
    out.extend_from_slice(b",\"timestamp\":");
    push_u64(out, record.timestamp);
    out.extend_from_slice(b",\"app\":");
    out.extend_from_slice(record.app_json);
    out.extend_from_slice(b",\"process\":");
    match record.process {
        None => out.extend_from_slice(b"null"),
        Some(p) => {
            out.extend_from_slice(b"{\"pid\":");
            push_i64(out, p.pid);
            out.extend_from_slice(b",\"id\":");
            push_u64(out, p.id.0);
            out.extend_from_slice(b",\"number\":");
            push_u64(out, u64::from(p.number));
            out.extend_from_slice(b",\"generation\":");
            match p.generation {
                None => out.extend_from_slice(b"null"),
                Some(generation) => {
                    out.push(b'"');
                    out.extend_from_slice(generation_name(generation).as_bytes());
                    out.push(b'"');
                }
            }
            out.push(b'}');
        }
    }
}

fn generation_name(generation: Generation) -> &'static str {
    generation.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use final_pm_protocol::{LogRecord, ProcessId};

    fn encode(record: &LogRecord) -> Vec<u8> {
        let mut app_json = Vec::new();
        push_str(&mut app_json, &record.app);
        let mut out = Vec::new();
        push_record(
            &mut out,
            RecordRef {
                kind: record.kind,
                text: &record.text,
                timestamp: record.timestamp,
                app_json: &app_json,
                process: record.process.as_ref(),
                truncated: record.truncated,
            },
        );
        out
    }

    #[test]
    fn records_read_back_with_serde_unchanged() {
        let texts = [
            "plain",
            "exactly8",
            "sixteen bytes ok",
            "a long line of more than eight bytes with a \" quote in the middle and \\ at the end\\",
            "",
            "quotes \" and \\ backslashes",
            "controls \u{1}\u{8}\u{c}\t\r\n\u{1f} end",
            "unicode é ✓ \u{2028} 😀",
        ];
        for (i, text) in texts.into_iter().enumerate() {
            let record = LogRecord {
                kind: if i % 2 == 0 {
                    LogKind::Stdout
                } else {
                    LogKind::StartTimeout
                },
                text: text.to_owned(),
                bytes: text.len() as u64,
                timestamp: 1_764_000_000_123 + i as u64,
                app: "we\"b".to_owned(),
                process: (i != 1).then_some(LogProcess {
                    pid: if i == 2 { -1 } else { 4242 },
                    id: ProcessId(u64::MAX),
                    number: 7,
                    generation: (i != 3).then_some(Generation::Running),
                }),
                truncated: [0, 7, 42, 100, 123_456][i % 5],
            };
            let line = encode(&record);
            assert_eq!(line.last(), Some(&b'\n'));
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let back: LogRecord = serde_json::from_slice(&line).unwrap();
            assert_eq!(back, record);
            let expected = serde_json::to_value(&record).unwrap();
            let got: serde_json::Value = serde_json::from_slice(&line).unwrap();
            assert_eq!(got, expected, "same JSON as serde writes");
        }
    }
}
