//! `log`: choosing records by selector and printing them.
//!
//! ```text
//! [LOG  ] [03:24:05.120] [web/1 15549] [STDOUT] listening on 8080
//! [LOG  ] [03:25:24.004] [crash/0 -1] [MOVED] moved to queue generation
//! ```
//!
//! Records of several apps are merged by time; `-n N` keeps the last N of
//! each app. Times are local: the time of day for records of the last 24
//! hours, else the date too.

use std::collections::{BTreeMap, BTreeSet};

use final_pm_protocol::{AppType, LogKind, LogRecord, ProcessId, Request};

use crate::plan::Snapshot;
use crate::selector::{Mode, Selector, Target};

/// What to ask the daemon for, and how to filter its answer.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    /// The apps to ask for; `None` = all of them (one `logs("all")`).
    apps: Option<Vec<String>>,
    /// Per selector, what a record must have to match.
    filters: Vec<Filter>,
    /// Logger apps' own records are left out unless named or `-v`.
    loggers: BTreeSet<String>,
    verbose: bool,
}

#[derive(Debug, Clone)]
enum Filter {
    /// Every record of an app (`None` = of every app).
    App(Option<String>),
    /// Records of processes with this number.
    Number(String, u32),
    /// Records of these processes (resolved from `id=`, `pid=` or a
    /// generation prefix against the current processes).
    Ids(BTreeSet<ProcessId>),
    Pid(u32),
}

impl Query {
    /// Resolves the selectors against the daemon's state. Selectors that
    /// name an unknown app are returned as problems.
    pub(crate) fn new(
        selectors: &[Selector],
        snapshot: &Snapshot,
        verbose: bool,
    ) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut filters = Vec::new();
        let mut apps = Some(Vec::new());
        for selector in selectors {
            let filter = if let Some(generation) = selector.generation {
                // A generation is a property of a process now, not of a record
                // then: keep the records of the processes that are in it now.
                let ids = snapshot
                    .processes
                    .iter()
                    .filter(|p| {
                        p.generation == generation
                            && selector.matches_process(
                                p,
                                snapshot.app_type_of(p),
                                Mode::Loose,
                                verbose,
                            )
                    })
                    .map(|p| p.id)
                    .collect();
                Filter::Ids(ids)
            } else {
                match &selector.target {
                    Target::All => Filter::App(None),
                    Target::App { name, number: None } => Filter::App(Some(name.clone())),
                    Target::App {
                        name,
                        number: Some(n),
                    } => Filter::Number(name.clone(), *n),
                    Target::Id(id) => Filter::Ids(BTreeSet::from([ProcessId(*id)])),
                    Target::Pid(pid) => Filter::Pid(*pid),
                }
            };
            if let Target::App { name, .. } = &selector.target
                && snapshot.app(name).is_none()
                && !snapshot.processes.iter().any(|p| p.app_name == *name)
            {
                problems.push(format!("No such application: {name}"));
            }
            match (&selector.target, &mut apps) {
                (Target::App { name, .. }, Some(apps)) => {
                    if !apps.contains(name) {
                        apps.push(name.clone());
                    }
                }
                (Target::App { .. }, None) => {}
                // Records of processes that are gone are still in the
                // buffer, so ids and pids are looked for in all of them;
                // `all` is one request too.
                _ => apps = None,
            }
            filters.push(filter);
        }
        let loggers = snapshot
            .applications
            .iter()
            .filter(|a| a.config.app_type == AppType::Logger)
            .map(|a| a.config.name.clone())
            .collect();
        (
            Self {
                apps,
                filters,
                loggers,
                verbose,
            },
            problems,
        )
    }

    /// The requests for the buffered records, and whether the answer must be
    /// filtered before `-n` is applied (else the daemon applies it).
    pub(crate) fn requests(&self, lines: u64, follow: bool) -> Vec<Request> {
        let exact = self
            .filters
            .iter()
            .all(|f| matches!(f, Filter::App(Some(_))));
        match &self.apps {
            Some(apps) if !follow || apps.len() == 1 => apps
                .iter()
                .map(|name| Request::Logs {
                    name: name.clone(),
                    ids: Vec::new(),
                    lines: exact.then_some(lines),
                    follow,
                })
                .collect(),
            // Following several apps atomically: one subscription to all,
            // filtered here.
            _ => vec![Request::Logs {
                name: "all".into(),
                ids: Vec::new(),
                lines: None,
                follow,
            }],
        }
    }

    /// Whether a record belongs to the selection.
    pub(crate) fn matches(&self, record: &LogRecord) -> bool {
        self.filters.iter().any(|filter| match filter {
            Filter::App(None) => self.verbose || !self.loggers.contains(&record.app),
            Filter::App(Some(name)) => record.app == *name,
            Filter::Number(name, n) => {
                record.app == *name && record.process.as_ref().is_some_and(|p| p.number == *n)
            }
            Filter::Ids(ids) => record.process.as_ref().is_some_and(|p| ids.contains(&p.id)),
            Filter::Pid(pid) => record
                .process
                .as_ref()
                .is_some_and(|p| p.pid == i64::from(*pid)),
        })
    }
}

/// Keeps the matching records, the last `lines` of each app, merged by
/// time (stable, so each app's order is kept).
pub(crate) fn select(query: &Query, records: Vec<LogRecord>, lines: u64) -> Vec<LogRecord> {
    let mut per_app: BTreeMap<String, Vec<LogRecord>> = BTreeMap::new();
    for record in records.into_iter().filter(|r| query.matches(r)) {
        per_app.entry(record.app.clone()).or_default().push(record);
    }
    let mut merged: Vec<LogRecord> = per_app
        .into_values()
        .flat_map(|mut records| {
            let keep = usize::try_from(lines).unwrap_or(usize::MAX);
            let skip = records.len().saturating_sub(keep);
            records.drain(..skip);
            records
        })
        .collect();
    merged.sort_by_key(|r| r.timestamp);
    merged
}

/// One record as printed (without the trailing newline); several lines when
/// the text has several.
pub(crate) fn format(record: &LogRecord, now_ms: u64, colour: bool) -> String {
    let time = local_time(record.timestamp, now_ms);
    let who = match &record.process {
        Some(p) => format!("{}/{} {}", record.app, p.number, p.pid),
        None => record.app.clone(),
    };
    let kind = record.kind.as_str().to_uppercase();
    let (label, kind) = if colour {
        let kind_colour = match record.kind {
            LogKind::Stderr | LogKind::Error | LogKind::Dropped => "\x1b[31m",
            LogKind::Stdout => "\x1b[37m",
            _ => "\x1b[90m",
        };
        (
            "\x1b[1;90m[LOG  ]\x1b[0m".to_owned(),
            format!("{kind_colour}[{kind}]\x1b[0m"),
        )
    } else {
        ("[LOG  ]".to_owned(), format!("[{kind}]"))
    };
    let mut text = record.text.clone();
    if record.truncated > 0 {
        text.push_str(&format!(" [{} bytes cut]", record.truncated));
    }
    text.split('\n')
        .map(|line| {
            let line = if colour {
                // An app must not drive the user's terminal.
                line.chars()
                    .map(|c| {
                        if c.is_control() && c != '\t' {
                            '\u{fffd}'
                        } else {
                            c
                        }
                    })
                    .collect()
            } else {
                line.to_owned()
            };
            format!("{label} [{time}] [{who}] {kind} {line}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `HH:MM:SS.mmm` in local time, with the date in front when the record is
/// a day old or more (or from the future).
#[allow(
    unsafe_code,
    reason = "localtime_r is the only way to the local time zone without a date crate"
)]
fn local_time(timestamp_ms: u64, now_ms: u64) -> String {
    let secs = (timestamp_ms / 1000) as libc::time_t;
    let millis = timestamp_ms % 1000;
    // SAFETY: `localtime_r` only writes the `tm` it is given; an all-zero
    // `tm` is a valid value of that plain C struct.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return format!("{timestamp_ms}");
        }
        tm
    };
    let time = format!(
        "{:02}:{:02}:{:02}.{millis:03}",
        tm.tm_hour, tm.tm_min, tm.tm_sec
    );
    let age = now_ms.checked_sub(timestamp_ms);
    if age.is_some_and(|age| age < 86_400_000) {
        time
    } else {
        format!(
            "{:04}-{:02}-{:02} {time}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday
        )
    }
}

#[cfg(test)]
mod tests {
    use final_pm_protocol::{AppConfig, AppInfo, Generation, LogProcess};

    use super::*;

    fn record(app: &str, id: u64, number: u32, ts: u64, text: &str) -> LogRecord {
        LogRecord {
            kind: LogKind::Stdout,
            text: text.into(),
            bytes: text.len() as u64,
            timestamp: ts,
            app: app.into(),
            process: Some(LogProcess {
                pid: 100 + id as i64,
                id: ProcessId(id),
                number,
                generation: Some(Generation::Running),
            }),
            truncated: 0,
        }
    }

    fn query(words: &str) -> Query {
        let selectors: Vec<Selector> = words
            .split_whitespace()
            .map(|w| Selector::parse(w).unwrap())
            .collect();
        let mut logger = AppConfig::new("file-logger", "/", "/x");
        logger.app_type = AppType::Logger;
        let snapshot = Snapshot {
            applications: vec![
                AppInfo {
                    revision: 1,
                    config: AppConfig::new("web", "/", "/x"),
                },
                AppInfo {
                    revision: 1,
                    config: AppConfig::new("api", "/", "/x"),
                },
                AppInfo {
                    revision: 1,
                    config: logger,
                },
            ],
            processes: vec![],
        };
        let (query, problems) = Query::new(&selectors, &snapshot, false);
        assert!(problems.is_empty(), "{problems:?}");
        query
    }

    fn texts(records: &[LogRecord]) -> Vec<&str> {
        records.iter().map(|r| r.text.as_str()).collect()
    }

    #[test]
    fn apps_are_merged_by_time_and_cut_per_app() {
        let records = vec![
            record("web", 1, 0, 10, "w1"),
            record("web", 1, 0, 30, "w2"),
            record("api", 2, 0, 20, "a1"),
            record("api", 2, 0, 40, "a2"),
            record("file-logger", 3, 0, 25, "logger"),
        ];
        let q = query("web api");
        assert_eq!(
            texts(&select(&q, records.clone(), 10)),
            ["w1", "a1", "w2", "a2"]
        );
        assert_eq!(texts(&select(&q, records.clone(), 1)), ["w2", "a2"]);
        assert!(select(&q, records.clone(), 0).is_empty());
        assert_eq!(
            texts(&select(&query("all"), records.clone(), 10)),
            ["w1", "a1", "w2", "a2"],
            "all leaves loggers out"
        );
        assert_eq!(
            texts(&select(&query("file-logger"), records, 10)),
            ["logger"]
        );
    }

    #[test]
    fn process_selectors_filter_records() {
        let records = vec![
            record("web", 1, 0, 10, "w0"),
            record("web", 2, 1, 20, "w1"),
            record("api", 3, 0, 30, "a0"),
        ];
        assert_eq!(texts(&select(&query("web/1"), records.clone(), 10)), ["w1"]);
        assert_eq!(texts(&select(&query("id=3"), records.clone(), 10)), ["a0"]);
        assert_eq!(texts(&select(&query("pid=101"), records, 10)), ["w0"]);
        assert!(matches!(
            query("web/1").requests(5, false)[0],
            Request::Logs { lines: None, .. }
        ));
        assert!(matches!(
            query("web").requests(5, false)[0],
            Request::Logs { lines: Some(5), .. }
        ));
        assert_eq!(query("web api").requests(5, true).len(), 1);
    }

    #[test]
    fn lines_are_prefixed_one_by_one() {
        let mut r = record("web", 1, 0, 1_700_000_000_123, "a\nb");
        r.truncated = 7;
        let text = format(&r, 1_700_000_001_000, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("[LOG  ] ["), "{text}");
        assert!(lines[0].ends_with("] [web/0 101] [STDOUT] a"), "{text}");
        assert!(lines[1].ends_with("[STDOUT] b [7 bytes cut]"), "{text}");
        assert!(lines[0].contains(".123]"), "{text}");
        let old = format(&r, 1_800_000_000_000, false);
        assert!(old.contains("2023-11-"), "{old}");
    }
}
