//! The in-memory log buffer: per application, the most recent records, up to
//! the app's `max-buffered-log-bytes`.
//!
//! When a record does not fit, the oldest records are evicted until the
//! buffer is at 75 % of its limit (as FinalPM does, so eviction happens in
//! batches rather than on every record); a record larger than the whole
//! buffer is not stored. `final-pm log` reads from here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use final_pm_protocol::{LogRecord, ProcessId};

/// A stored record and its position in the daemon's record stream.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) seq: u64,
    pub(crate) record: Arc<LogRecord>,
}

#[derive(Debug, Default)]
struct AppBuffer {
    records: VecDeque<Stored>,
    bytes: u64,
}

/// All apps' buffers.
#[derive(Debug, Default)]
pub(crate) struct LogStore {
    apps: HashMap<String, AppBuffer>,
}

impl LogStore {
    /// Stores a record of `record.app`, keeping the buffer within `max` bytes.
    pub(crate) fn push(&mut self, stored: Stored, max: u64) {
        let size = stored.record.bytes;
        if size > max {
            return;
        }
        let buffer = self.apps.entry(stored.record.app.clone()).or_default();
        if buffer.bytes + size > max {
            let target = max / 4 * 3;
            while buffer.bytes + size > target {
                let Some(old) = buffer.records.pop_front() else {
                    break;
                };
                buffer.bytes -= old.record.bytes;
            }
        }
        buffer.bytes += size;
        buffer.records.push_back(stored);
    }

    /// Records of `app` (or every app for `all`), optionally only of some
    /// processes, merged by time; the last `lines` of them when given.
    pub(crate) fn query(&self, app: &str, ids: &[ProcessId], lines: Option<u64>) -> Vec<Stored> {
        let mut out: Vec<Stored> = if app == "all" {
            self.apps
                .values()
                .flat_map(|b| b.records.iter().cloned())
                .collect()
        } else {
            self.apps
                .get(app)
                .map(|b| b.records.iter().cloned().collect())
                .unwrap_or_default()
        };
        if !ids.is_empty() {
            out.retain(|s| {
                s.record
                    .process
                    .as_ref()
                    .is_some_and(|p| ids.contains(&p.id))
            });
        }
        out.sort_by_key(|s| (s.record.timestamp, s.seq));
        if let Some(lines) = lines {
            let keep = usize::try_from(lines).unwrap_or(usize::MAX).min(out.len());
            out.drain(..out.len() - keep);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use final_pm_protocol::LogKind;

    fn record(seq: u64, app: &str, text: &str) -> Stored {
        Stored {
            seq,
            record: Arc::new(LogRecord {
                kind: LogKind::Stdout,
                text: text.into(),
                bytes: text.len() as u64,
                timestamp: seq,
                app: app.into(),
                process: None,
                truncated: 0,
            }),
        }
    }

    #[test]
    fn buffer_stays_within_its_limit_and_drops_oldest() {
        let mut store = LogStore::default();
        for i in 0..100 {
            store.push(record(i, "a", "0123456789"), 20);
        }
        let kept = store.query("a", &[], None);
        assert!(kept.len() <= 2, "{}", kept.len());
        assert_eq!(kept.last().unwrap().seq, 99);
        store.push(record(100, "a", "this record is larger than the limit"), 20);
        assert_eq!(store.query("a", &[], None).last().unwrap().seq, 99);
    }

    #[test]
    fn all_merges_apps_by_time_and_lines_keeps_the_last() {
        let mut store = LogStore::default();
        store.push(record(1, "a", "x"), 100);
        store.push(record(2, "b", "y"), 100);
        store.push(record(3, "a", "z"), 100);
        let all: Vec<u64> = store
            .query("all", &[], None)
            .iter()
            .map(|s| s.seq)
            .collect();
        assert_eq!(all, [1, 2, 3]);
        let last: Vec<u64> = store
            .query("all", &[], Some(2))
            .iter()
            .map(|s| s.seq)
            .collect();
        assert_eq!(last, [2, 3]);
        assert!(store.query("all", &[], Some(0)).is_empty());
        assert!(store.query("nope", &[], None).is_empty());
    }
}
