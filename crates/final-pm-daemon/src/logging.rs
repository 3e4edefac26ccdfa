//! Log records: the per-app buffers, the logger processes that take them,
//! and the rules that keep memory bounded without losing lines.
//!
//! # Theory of operation
//!
//! Every application process has a *logger key*: its app's `logger`, `cwd`
//! and `logger-args` (spec §7.4; `cwd` included to fix bug 7). There is one
//! [`Logger`] per key, holding one [`AppBuffer`] per app name and at most one
//! logging process, a normal managed process of the logger app, started with
//! the first record that needs it and stopped (gracefully) once every buffer
//! is delivered and has no live process left.
//!
//! A buffer is a queue of records, split by two marks: records before
//! `delivered` have reached the logger (for the builtin file-logger: are in
//! its file, it acknowledges them); records before `sent` were handed to the
//! logging process's feeder; the rest wait. Delivered records stay for
//! `final-pm log` until they are evicted (oldest first, down to 75 % of
//! `max-buffered-log-bytes`) or the buffer expires `log-retention-timeout`
//! after its app's last process ended.
//!
//! # The overflow rule
//!
//! - While the logger can take records (its process runs or is starting),
//!   undelivered records are never evicted. Output readers take room from
//!   the buffer's [`Budget`] before they send lines and get it back when the
//!   lines are delivered, so a logger that falls behind makes the app's
//!   writes wait, exactly as a pipe into a slow reader would. No line is
//!   lost, and memory stays within the budget.
//! - When no logger can take records (the logger app does not exist, or its
//!   process keeps failing), the app is never held back: room is given back
//!   at once, the oldest records are evicted whether delivered or not, and
//!   the number of lost records is reported as a `dropped` record.
//! - A logging process that dies is restarted at once (after three deaths
//!   within ten seconds, or one before it ever became ready, it is retried
//!   with a growing pause, and records are dropped meanwhile). Records it
//!   had not acknowledged are sent again, so none is lost; a few may reach
//!   the file twice.
//!
//! `final-pm log -f` followers get every record through a broadcast channel
//! that never waits: a follower that falls behind is told how many records
//! it missed (see `server.rs`), and nobody else notices.
//!
//! Records of logging processes themselves go to the daemon log (spec §7.8)
//! and to a plain buffer that no logger reads.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use final_pm_protocol::{AppInfo, AppType, LogKind, LogProcess, LogRecord, ProcessId};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::child::{Budget, FeedMode};
use crate::feed_ring::Ring;
use crate::lines::Batch;
use crate::logjson;
use crate::records::{Meta, RecordView, Records};

/// Encoded bytes handed to one feeder write.
const CHUNK_BYTES: usize = 256 * 1024;
/// Encoded bytes a logging process may have in flight (written to its
/// feeder but not yet reported written).
const FEED_WINDOW: usize = 1024 * 1024;
/// A logging process that dies this many times within [`CRASH_WINDOW`] is
/// considered failing.
const CRASHES_BEFORE_FAILING: usize = 3;
const CRASH_WINDOW: Duration = Duration::from_secs(10);
/// Pauses between attempts to start a failing logger: doubled each time.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How often a running count of dropped records is reported.
const DROP_REPORT_EVERY_MS: u64 = 1000;

/// A record as pushed to followers, with its position in the daemon's stream.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// Increases by one per record; lets a connection skip records it already
    /// got in a `logs` reply.
    pub(crate) seq: u64,
    /// The record.
    pub(crate) record: Arc<LogRecord>,
}

/// Which logger an app's records go to (spec §7.4, with `cwd` for bug 7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct LoggerKey {
    pub(crate) name: String,
    pub(crate) cwd: String,
    pub(crate) args: Vec<String>,
}

impl LoggerKey {
    fn of(app: &AppInfo) -> Self {
        Self {
            name: app.config.logger.clone(),
            cwd: app.config.cwd.clone(),
            args: app.config.logger_args.clone(),
        }
    }
}

/// One app's records at one logger (see the module docs).
#[derive(Debug)]
struct AppBuffer {
    app: String,
    /// The app name as a JSON string literal, encoded once.
    app_json: Vec<u8>,
    entries: Records,
    /// Sum of the texts' bytes.
    bytes: u64,
    max: u64,
    retention: Duration,
    sent: usize,
    delivered: usize,
    /// Records whose room in the budget was given back (see `release_sent`).
    released: usize,
    live: HashSet<ProcessId>,
    budget: Arc<Budget>,
    /// Room taken by readers for records not yet delivered.
    held: u64,
    /// Records lost since the last `dropped` report.
    dropped: u64,
    last_drop_report: u64,
    expires: Option<Instant>,
}

impl AppBuffer {
    fn new(app: &AppInfo) -> Self {
        let mut app_json = Vec::new();
        logjson::push_str(&mut app_json, &app.config.name);
        Self {
            app: app.config.name.clone(),
            app_json,
            entries: Records::default(),
            bytes: 0,
            max: app.config.max_buffered_log_bytes,
            retention: retention_of(app),
            sent: 0,
            delivered: 0,
            released: 0,
            live: HashSet::new(),
            budget: Budget::new(app.config.max_buffered_log_bytes),
            held: 0,
            dropped: 0,
            last_drop_report: 0,
            expires: None,
        }
    }

    /// Applies a newer revision's limits (spec §7.5: the highest applies).
    fn update(&mut self, app: &AppInfo) {
        self.max = app.config.max_buffered_log_bytes;
        self.retention = retention_of(app);
        self.budget.grow_to(self.max);
    }

    /// Makes room for `size` more bytes of text by evicting the oldest
    /// records (down to 75 % of the limit once it is reached).
    fn make_room(&mut self, size: u64, accepting: bool) {
        self.expires = None;
        if self.bytes + size <= self.max {
            return;
        }
        let target = self.max / 4 * 3;
        while self.bytes + size > target {
            // Undelivered records wait for an accepting logger; the budget
            // bounds them.
            let max_lines = if accepting {
                self.delivered
            } else {
                usize::MAX
            };
            if max_lines == 0 {
                break;
            }
            let (lines, freed) = self.entries.evict(max_lines, self.bytes + size - target);
            if lines == 0 {
                break;
            }
            self.bytes -= freed;
            self.dropped += lines.saturating_sub(self.delivered) as u64;
            self.delivered = self.delivered.saturating_sub(lines);
            self.sent = self.sent.saturating_sub(lines);
            self.released = self.released.saturating_sub(lines);
        }
    }

    /// Stores one record.
    fn push(&mut self, seq: u64, meta: Meta, text: String, truncated: u64, accepting: bool) {
        let size = text.len() as u64;
        if size > self.max {
            // Spec §7.5: a record larger than the whole buffer is not kept.
            return;
        }
        self.make_room(size, accepting);
        self.bytes += size;
        self.entries.push_one(seq, meta, text, truncated);
    }

    /// Stores the lines of one read, numbered from `first_seq`.
    fn push_batch(&mut self, first_seq: u64, meta: Meta, batch: Batch, accepting: bool) {
        let size = batch.text_bytes();
        if size > self.max && batch.iter().any(|(line, _)| line.len() as u64 > self.max) {
            // A line larger than the whole buffer (`max-log-line-length`
            // above `max-buffered-log-bytes`): line by line, so each line
            // gets the rule for one record. A read larger than the buffer
            // but made of smaller lines is stored whole: the older records
            // make room, and what is still too much is trimmed as for any
            // buffer over its limit.
            for (i, (line, truncated)) in batch.iter().enumerate() {
                let text = String::from_utf8_lossy(line).into_owned();
                self.push(
                    first_seq + i as u64,
                    meta.clone(),
                    text,
                    truncated,
                    accepting,
                );
            }
            return;
        }
        self.make_room(size, accepting);
        self.bytes += size;
        self.entries.push_batch(first_seq, meta, batch);
    }

    /// Marks the next `n` sent records delivered.
    fn deliver(&mut self, n: usize) {
        self.delivered = (self.delivered + n).min(self.sent);
    }

    /// Gives back the room of records up to `sent`: once handed to the
    /// logger's feeder they are bounded by its window and pipe instead.
    /// Releasing here rather than at delivery keeps the app, the daemon and
    /// the logger working in parallel instead of taking turns.
    fn release_sent(&mut self) {
        if self.released >= self.sent {
            return;
        }
        let cost: u64 = self
            .entries
            .runs(self.released, self.sent)
            .map(|run| run.cost())
            .sum();
        self.released = self.sent;
        let give = cost.min(self.held);
        self.held -= give;
        self.budget.release(give);
    }

    /// Gives back all room held (no logger will take these records soon).
    fn release_held(&mut self) {
        self.budget.release(self.held);
        self.held = 0;
    }

    fn undelivered(&self) -> bool {
        self.delivered < self.entries.len()
    }

    fn record(&self, entry: RecordView<'_>) -> LogRecord {
        LogRecord {
            kind: entry.kind,
            text: entry.text.to_owned(),
            bytes: entry.text.len() as u64,
            timestamp: entry.timestamp,
            app: self.app.clone(),
            process: entry.process.cloned(),
            truncated: entry.truncated,
        }
    }
}

fn retention_of(app: &AppInfo) -> Duration {
    Duration::from_millis(u64::try_from(app.config.log_retention_timeout).unwrap_or(0))
}

/// Can the logger take records?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// Yes, or it is about to (its process is starting).
    Ok,
    /// The logger app does not exist; retried when apps change.
    Missing,
    /// Its process keeps dying; retried at `retry`.
    Failing { retry: Instant, pause: Duration },
}

/// The logging process of a logger.
#[derive(Debug)]
struct LoggingProcess {
    id: ProcessId,
    /// It reported ready: records may be sent.
    running: bool,
    /// It acknowledges records once they are written (the builtin
    /// file-logger); otherwise a completed write counts as delivered. Only
    /// the builtin does, and it is also fed its formatted lines rather than
    /// JSON (see `logjson::Encoder::push_line`).
    acks: bool,
    /// We asked it to stop.
    stopping: bool,
    /// Each feeder write still in flight, in order: its encoded bytes and
    /// records. A write lands when the feeder reports it done or, for a
    /// process that acknowledges, when its records are acknowledged: the
    /// builtin file-logger reads its lines from a shared ring that only
    /// has room for what it has written (see `feed_ring`).
    in_flight: VecDeque<(usize, u64)>,
    in_flight_bytes: usize,
    /// Records of the oldest write in flight already acknowledged.
    acked_of_oldest: u64,
    /// Records sent and not yet delivered: (app, count), in send order.
    segments: VecDeque<(String, usize)>,
    acked: u64,
    /// The builtin file-logger's feed ring: its lines are formatted into
    /// it, and only a header per chunk is written to its stdin.
    ring: Option<Ring>,
}

/// One logger object (spec §7.4).
#[derive(Debug)]
struct Logger {
    buffers: HashMap<String, AppBuffer>,
    process: Option<LoggingProcess>,
    health: Health,
    recent_crashes: VecDeque<Instant>,
}

impl Logger {
    fn new() -> Self {
        Self {
            buffers: HashMap::new(),
            process: None,
            health: Health::Ok,
            recent_crashes: VecDeque::new(),
        }
    }

    /// Records are held for this logger (rather than dropped when full).
    fn accepting(&self) -> bool {
        self.health == Health::Ok
    }

    /// Marks `n` records delivered, oldest sent first.
    fn deliver(&mut self, mut n: u64) {
        let Some(process) = &mut self.process else {
            return;
        };
        while n > 0 {
            let Some((app, count)) = process.segments.front_mut() else {
                break;
            };
            let take = (*count as u64).min(n) as usize;
            if let Some(buffer) = self.buffers.get_mut(app.as_str()) {
                buffer.deliver(take);
            }
            *count -= take;
            n -= take as u64;
            if *count == 0 {
                process.segments.pop_front();
            }
        }
    }
}

/// What the supervisor must do for logging (it owns the core and the
/// children; this module only decides).
#[derive(Debug)]
pub(crate) enum Action {
    /// Start a logging process for this key.
    Start(LoggerKey),
    /// Write these encoded records to a logging process (for the builtin
    /// file-logger, often the header of a chunk already in its feed ring).
    Feed {
        id: ProcessId,
        bytes: Vec<u8>,
        records: u64,
    },
    /// Close the process's record stream and stop it gracefully.
    Stop(ProcessId),
}

/// Where a process's records go.
#[derive(Debug, Clone)]
enum Route {
    Logger(LoggerKey),
    /// A logging process (or a logger app started by hand): daemon log and a
    /// plain buffer.
    Plain,
}

/// All logging state. Owned by the supervisor.
#[derive(Debug)]
pub(crate) struct Logging {
    loggers: HashMap<LoggerKey, Logger>,
    /// Records of logging processes, by app: kept for `log`, never sent.
    plain: HashMap<String, VecDeque<(u64, LogRecord)>>,
    routes: HashMap<ProcessId, Route>,
    /// Logging processes and the logger each serves.
    serving: HashMap<ProcessId, LoggerKey>,
    seq: u64,
    followers: broadcast::Sender<Published>,
    shutting_down: bool,
}

/// Records kept per logging-process app for `log` (they also go to the
/// daemon log).
const PLAIN_KEEP: usize = 1000;

impl Logging {
    pub(crate) fn new(followers: broadcast::Sender<Published>) -> Self {
        Self {
            loggers: HashMap::new(),
            plain: HashMap::new(),
            routes: HashMap::new(),
            serving: HashMap::new(),
            seq: 0,
            followers,
            shutting_down: false,
        }
    }

    /// The sequence number of the latest record.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    // ---- processes ----------------------------------------------------------

    /// A process of `app` is about to be spawned: returns how its output is
    /// handled. Creates its buffer (spec §7.6 "app process added").
    pub(crate) fn on_spawn(
        &mut self,
        id: ProcessId,
        app: &AppInfo,
    ) -> (Option<Arc<Budget>>, FeedMode) {
        if let Some(key) = self.serving.get(&id) {
            let _ = key;
            self.routes.insert(id, Route::Plain);
            let mode = if app.config.is_node_script() {
                FeedMode::Ipc
            } else {
                FeedMode::Stdin
            };
            return (None, mode);
        }
        if app.config.app_type == AppType::Logger {
            self.routes.insert(id, Route::Plain);
            return (None, FeedMode::None);
        }
        let key = LoggerKey::of(app);
        let buffer = self.buffer_for(&key, app);
        buffer.live.insert(id);
        buffer.expires = None;
        let budget = Arc::clone(&buffer.budget);
        self.routes.insert(id, Route::Logger(key));
        (Some(budget), FeedMode::None)
    }

    fn buffer_for(&mut self, key: &LoggerKey, app: &AppInfo) -> &mut AppBuffer {
        let logger = self.loggers.entry(key.clone()).or_insert_with(Logger::new);
        let buffer = logger
            .buffers
            .entry(app.config.name.clone())
            .or_insert_with(|| AppBuffer::new(app));
        if app.config.max_buffered_log_bytes > buffer.max {
            buffer.update(app);
        }
        buffer
    }

    /// The process's record is gone (its last records were pushed).
    pub(crate) fn forget(&mut self, id: ProcessId, now: Instant) {
        if let Some(Route::Logger(key)) = self.routes.remove(&id)
            && let Some(logger) = self.loggers.get_mut(&key)
        {
            for buffer in logger.buffers.values_mut() {
                buffer.live.remove(&id);
            }
        }
        if let Some(key) = self.serving.remove(&id) {
            self.logging_process_gone(&key, id, now);
        }
    }

    /// A logging process was created for `key`.
    pub(crate) fn started(&mut self, key: &LoggerKey, id: ProcessId, acks: bool) {
        self.serving.insert(id, key.clone());
        if let Some(logger) = self.loggers.get_mut(key) {
            logger.process = Some(LoggingProcess {
                id,
                running: false,
                acks,
                stopping: false,
                in_flight: VecDeque::new(),
                in_flight_bytes: 0,
                acked_of_oldest: 0,
                segments: VecDeque::new(),
                acked: 0,
                ring: None,
            });
        }
    }

    /// The logging process `id` was spawned with this feed ring.
    pub(crate) fn attach_ring(&mut self, id: ProcessId, ring: Ring) {
        if let Some(process) = self.logger_of(id).and_then(|l| l.process.as_mut()) {
            process.ring = Some(ring);
        }
    }

    /// Starting a logging process for `key` failed at once; `missing` when
    /// the logger app does not exist.
    pub(crate) fn start_failed(&mut self, key: &LoggerKey, missing: bool, now: Instant) {
        let Some(logger) = self.loggers.get_mut(key) else {
            return;
        };
        if missing {
            if logger.health != Health::Missing {
                warn!(logger = %key.name, cwd = %key.cwd, "no logger app named {:?}: records beyond the buffer are dropped until it is added", key.name);
            }
            logger.health = Health::Missing;
        } else {
            logger.health = next_failing(logger.health, now);
        }
        for buffer in logger.buffers.values_mut() {
            buffer.release_held();
        }
    }

    /// The app table changed: a missing logger may exist now.
    pub(crate) fn apps_changed(&mut self) {
        for logger in self.loggers.values_mut() {
            if logger.health == Health::Missing {
                logger.health = Health::Ok;
            }
        }
    }

    /// A process moved to the running generation.
    pub(crate) fn on_running(&mut self, id: ProcessId) {
        let Some(key) = self.serving.get(&id) else {
            return;
        };
        if let Some(logger) = self.loggers.get_mut(key)
            && let Some(process) = &mut logger.process
            && process.id == id
        {
            process.running = true;
            logger.health = Health::Ok;
        }
    }

    /// A feeder write of `records` records completed. For a process that
    /// acknowledges, that changes nothing: its records count until it
    /// acknowledges them.
    pub(crate) fn on_fed(&mut self, id: ProcessId, records: u64) {
        let Some(logger) = self.logger_of(id) else {
            return;
        };
        let Some(process) = &mut logger.process else {
            return;
        };
        if !process.acks {
            if let Some((bytes, _)) = process.in_flight.pop_front() {
                process.in_flight_bytes -= bytes;
            }
            logger.deliver(records);
        }
    }

    /// An IPC message from a process; acknowledgements of logging processes
    /// are consumed (`{"ack": <records written so far>}`), anything else is
    /// returned.
    pub(crate) fn on_message(
        &mut self,
        id: ProcessId,
        message: serde_json::Value,
    ) -> Option<serde_json::Value> {
        let ack = message.get("ack").and_then(serde_json::Value::as_u64);
        let (Some(total), Some(logger)) = (ack, self.logger_of(id)) else {
            return Some(message);
        };
        let Some(process) = &mut logger.process else {
            return None;
        };
        let new = total.saturating_sub(process.acked);
        process.acked = process.acked.max(total);
        let mut acked = process.acked_of_oldest + new;
        while let Some(&(bytes, records)) = process.in_flight.front()
            && acked >= records
        {
            acked -= records;
            process.in_flight.pop_front();
            process.in_flight_bytes -= bytes;
        }
        process.acked_of_oldest = acked;
        logger.deliver(new);
        None
    }

    fn logger_of(&mut self, id: ProcessId) -> Option<&mut Logger> {
        let key = self.serving.get(&id)?;
        let logger = self.loggers.get_mut(key)?;
        logger
            .process
            .as_ref()
            .is_some_and(|p| p.id == id)
            .then_some(logger)
    }

    fn logging_process_gone(&mut self, key: &LoggerKey, id: ProcessId, now: Instant) {
        let Some(logger) = self.loggers.get_mut(key) else {
            return;
        };
        let Some(process) = logger.process.take_if(|p| p.id == id) else {
            return;
        };
        // What was not acknowledged is sent again to the next process.
        for buffer in logger.buffers.values_mut() {
            buffer.sent = buffer.delivered;
        }
        if process.stopping {
            return;
        }
        if !process.running {
            logger.health = next_failing(logger.health, now);
        } else {
            logger.recent_crashes.push_back(now);
            while logger
                .recent_crashes
                .front()
                .is_some_and(|&t| now.duration_since(t) > CRASH_WINDOW)
            {
                logger.recent_crashes.pop_front();
            }
            if logger.recent_crashes.len() >= CRASHES_BEFORE_FAILING {
                logger.health = next_failing(logger.health, now);
            }
        }
        if !logger.accepting() {
            warn!(logger = %key.name, cwd = %key.cwd, "the logging process keeps failing; records beyond the buffer are dropped until it runs");
            for buffer in logger.buffers.values_mut() {
                buffer.release_held();
            }
        }
    }

    /// Gives back room taken for output that will not be stored (it came
    /// from a process that has since been replaced).
    pub(crate) fn release(&mut self, id: ProcessId, held: u64) {
        if let Some(Route::Logger(key)) = self.routes.get(&id)
            && let Some(logger) = self.loggers.get_mut(key)
        {
            for buffer in logger.buffers.values_mut() {
                if buffer.live.contains(&id) {
                    buffer.budget.release(held);
                    return;
                }
            }
        }
    }

    /// From now on no logging process is started (daemon shutdown).
    pub(crate) fn shut_down(&mut self) {
        self.shutting_down = true;
    }

    /// Lets every waiting output reader go: nothing will take records any
    /// more (the daemon is about to exit).
    pub(crate) fn release_all(&mut self) {
        for logger in self.loggers.values_mut() {
            for buffer in logger.buffers.values_mut() {
                buffer.release_held();
                buffer.budget.close();
            }
        }
    }

    // ---- records ----------------------------------------------------------------

    /// Stores a lifecycle record of process `id` of `app` (`app_info` is the
    /// app's revision, used when the process was never spawned).
    pub(crate) fn push_record(
        &mut self,
        id: ProcessId,
        app_info: Option<&AppInfo>,
        record: LogRecord,
    ) {
        let route = match self.routes.get(&id) {
            Some(route) => route.clone(),
            None => match app_info {
                Some(app) if app.config.app_type == AppType::Application => {
                    let key = LoggerKey::of(app);
                    self.buffer_for(&key, app);
                    Route::Logger(key)
                }
                _ => Route::Plain,
            },
        };
        self.seq += 1;
        let seq = self.seq;
        match route {
            Route::Plain => self.push_plain(seq, record),
            Route::Logger(key) => {
                let Some(logger) = self.loggers.get_mut(&key) else {
                    return;
                };
                let accepting = logger.accepting();
                let Some(buffer) = logger.buffers.get_mut(&record.app) else {
                    return;
                };
                publish(&self.followers, seq, || record.clone());
                let meta = Meta {
                    timestamp: record.timestamp,
                    kind: record.kind,
                    process: record.process,
                };
                buffer.push(seq, meta, record.text, record.truncated, accepting);
                if !accepting {
                    buffer.release_held();
                }
            }
        }
    }

    fn push_plain(&mut self, seq: u64, record: LogRecord) {
        match &record.process {
            Some(p) => info!(
                "[Process={}/{} id={} pid={}] [{}] {}",
                record.app,
                p.number,
                p.id,
                p.pid,
                record.kind.as_str(),
                record.text
            ),
            None => info!(
                "[{}] [{}] {}",
                record.app,
                record.kind.as_str(),
                record.text
            ),
        }
        publish(&self.followers, seq, || record.clone());
        let buffer = self.plain.entry(record.app.clone()).or_default();
        if buffer.len() >= PLAIN_KEEP {
            buffer.pop_front();
        }
        buffer.push_back((seq, record));
    }

    /// Stores the lines of one output read of process `id`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_output(
        &mut self,
        id: ProcessId,
        app: &str,
        process: LogProcess,
        kind: LogKind,
        timestamp: u64,
        batch: Batch,
        held: u64,
    ) {
        let Some(route) = self.routes.get(&id) else {
            return;
        };
        let key = match route {
            Route::Logger(key) => key,
            Route::Plain => {
                for (line, truncated) in batch.iter() {
                    self.seq += 1;
                    let record = line_record(kind, line, truncated, timestamp, app, &process);
                    self.push_plain(self.seq, record);
                }
                return;
            }
        };
        let Some(logger) = self.loggers.get_mut(key) else {
            return;
        };
        let accepting = logger.accepting();
        let Some(buffer) = logger.buffers.get_mut(app) else {
            return;
        };
        buffer.held += held;
        let first_seq = self.seq + 1;
        self.seq += batch.len() as u64;
        if self.followers.receiver_count() > 0 {
            for (i, (line, truncated)) in batch.iter().enumerate() {
                publish(&self.followers, first_seq + i as u64, || {
                    line_record(kind, line, truncated, timestamp, app, &process)
                });
            }
        }
        let meta = Meta {
            timestamp,
            kind,
            process: Some(process),
        };
        buffer.push_batch(first_seq, meta, batch, accepting);
        if !accepting {
            buffer.release_held();
            if buffer.dropped > 0
                && timestamp.saturating_sub(buffer.last_drop_report) >= DROP_REPORT_EVERY_MS
            {
                self.seq += 1;
                report_dropped(&self.followers, buffer, &key.name, self.seq, timestamp);
            }
        }
    }

    // ---- driving ----------------------------------------------------------------

    /// Decides what to do now: start loggers that are needed, feed running
    /// ones, stop idle ones, expire buffers. Call after every event.
    pub(crate) fn drive(&mut self, now: Instant, now_ms: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut empty = Vec::new();
        for (key, logger) in &mut self.loggers {
            if let Health::Failing { retry, .. } = logger.health
                && now >= retry
                && logger.process.is_none()
            {
                // Try again; records are held again only once it runs.
                logger.health = Health::Failing {
                    retry: now + MAX_RETRY * 1000,
                    pause: match logger.health {
                        Health::Failing { pause, .. } => pause,
                        Health::Ok | Health::Missing => FIRST_RETRY,
                    },
                };
                if !self.shutting_down {
                    actions.push(Action::Start(key.clone()));
                }
            }
            let needed = logger.buffers.values().any(AppBuffer::undelivered);
            match &mut logger.process {
                None => {
                    if needed && logger.health == Health::Ok && !self.shutting_down {
                        actions.push(Action::Start(key.clone()));
                    }
                }
                Some(process) if process.running && !process.stopping => {
                    feed(process, &mut logger.buffers, &mut actions);
                    let idle = logger
                        .buffers
                        .values()
                        .all(|b| b.live.is_empty() && !b.undelivered());
                    if idle && process.segments.is_empty() {
                        process.stopping = true;
                        actions.push(Action::Stop(process.id));
                    }
                }
                Some(_) => {}
            }
            if !logger.accepting() {
                for buffer in logger.buffers.values_mut() {
                    // Records held while the logger was expected (a read can
                    // bring more than the whole buffer at once) are now over
                    // the bound with nobody to take them: drop the oldest.
                    buffer.make_room(0, false);
                    if buffer.dropped > 0 && buffer.live.is_empty() {
                        self.seq += 1;
                        report_dropped(&self.followers, buffer, &key.name, self.seq, now_ms);
                    }
                }
            }
            // Retention (spec §7.5): a finished, delivered buffer expires.
            logger.buffers.retain(|_, buffer| {
                let finished = buffer.live.is_empty()
                    && (!buffer.undelivered() || logger.health != Health::Ok);
                if !finished {
                    buffer.expires = None;
                    return true;
                }
                match buffer.expires {
                    None => {
                        buffer.expires = Some(now + buffer.retention);
                        !buffer.retention.is_zero()
                    }
                    Some(at) => at > now,
                }
            });
            if logger.buffers.is_empty() && logger.process.is_none() {
                empty.push(key.clone());
            }
        }
        for key in empty {
            self.loggers.remove(&key);
        }
        actions
    }

    /// When [`drive`](Self::drive) must run again without any event.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Instant| next = Some(next.map_or(at, |n| n.min(at)));
        for logger in self.loggers.values() {
            if let Health::Failing { retry, .. } = logger.health
                && logger.process.is_none()
                && logger.buffers.values().any(AppBuffer::undelivered)
            {
                consider(retry);
            }
            for buffer in logger.buffers.values() {
                if let Some(at) = buffer.expires {
                    consider(at);
                }
            }
        }
        next
    }

    /// Some finished app still has records on their way to a working logger
    /// (the daemon is not at rest, spec §4.10).
    pub(crate) fn busy(&self) -> bool {
        self.loggers.values().any(|logger| {
            logger.accepting()
                && logger
                    .buffers
                    .values()
                    .any(|b| b.live.is_empty() && b.undelivered())
        })
    }

    // ---- queries ----------------------------------------------------------------

    /// Records of `app` (or every app for `all`), optionally only of some
    /// processes, merged by time; the last `lines` of them when given.
    pub(crate) fn query(&self, app: &str, ids: &[ProcessId], lines: Option<u64>) -> Vec<LogRecord> {
        let wanted = |name: &str| app == "all" || app == name;
        let by_id = |p: &Option<LogProcess>| {
            ids.is_empty() || p.as_ref().is_some_and(|p| ids.contains(&p.id))
        };
        let mut out: Vec<(u64, u64, LogRecord)> = Vec::new();
        for logger in self.loggers.values() {
            for buffer in logger.buffers.values().filter(|b| wanted(&b.app)) {
                out.extend(
                    buffer
                        .entries
                        .iter()
                        .filter(|e| {
                            ids.is_empty() || e.process.is_some_and(|p| ids.contains(&p.id))
                        })
                        .map(|e| (e.timestamp, e.seq, buffer.record(e))),
                );
            }
        }
        for (name, records) in &self.plain {
            if wanted(name) {
                out.extend(
                    records
                        .iter()
                        .filter(|(_, r)| by_id(&r.process))
                        .map(|(seq, r)| (r.timestamp, *seq, r.clone())),
                );
            }
        }
        out.sort_by_key(|(timestamp, seq, _)| (*timestamp, *seq));
        if let Some(lines) = lines {
            let keep = usize::try_from(lines).unwrap_or(usize::MAX).min(out.len());
            out.drain(..out.len() - keep);
        }
        out.into_iter().map(|(_, _, record)| record).collect()
    }
}

fn next_failing(health: Health, now: Instant) -> Health {
    let pause = match health {
        Health::Failing { pause, .. } => (pause * 2).min(MAX_RETRY),
        Health::Ok | Health::Missing => FIRST_RETRY,
    };
    Health::Failing {
        retry: now + pause,
        pause,
    }
}

/// Hands the unsent records of every buffer to the logging process, in
/// chunks, while its window has room.
fn feed(
    process: &mut LoggingProcess,
    buffers: &mut HashMap<String, AppBuffer>,
    actions: &mut Vec<Action>,
) {
    let mut encoder = logjson::Encoder::default();
    for buffer in buffers.values_mut() {
        encoder.reset();
        // The builtin file-logger: its lines, formatted here (see
        // `logjson::Encoder::push_line`); a newline in the app name would
        // split them, so such an app's records go as JSON.
        let lines = process.acks && !buffer.app.contains('\n');
        while buffer.sent < buffer.entries.len() && process.in_flight_bytes < FEED_WINDOW {
            let start = buffer.sent;
            let in_ring = match &mut process.ring {
                Some(ring) if lines => ring_chunk(ring, &mut encoder, buffer),
                _ => None,
            };
            let (bytes, size) = match in_ring {
                Some((header, size)) => (header.into_bytes(), size),
                None => {
                    let ring = process.ring.is_some();
                    let bytes = encode_chunk(&mut encoder, buffer, lines, ring);
                    let size = bytes.len();
                    (bytes, size)
                }
            };
            let records = buffer.sent - start;
            buffer.release_sent();
            process.in_flight.push_back((size, records as u64));
            process.in_flight_bytes += size;
            match process.segments.back_mut() {
                Some((app, count)) if *app == buffer.app => *count += records,
                _ => process.segments.push_back((buffer.app.clone(), records)),
            }
            actions.push(Action::Feed {
                id: process.id,
                bytes,
                records: records as u64,
            });
        }
    }
}

/// Formats `buffer`'s next unsent records straight into the builtin
/// file-logger's feed ring while they are plain lines and fit (see
/// `feed_ring`): returns the header line that hands them over and their
/// size, or `None` if not even the first one is such a line or fits (it
/// then goes on stdin, in its place in the order).
fn ring_chunk(
    ring: &mut Ring,
    encoder: &mut logjson::Encoder,
    buffer: &mut AppBuffer,
) -> Option<(String, usize)> {
    let start = buffer.sent;
    let space = ring.space(CHUNK_BYTES);
    let mut len = 0;
    'runs: for run in buffer.entries.runs_from(start) {
        if run.multiline() {
            break;
        }
        let prefix = encoder.line_prefix(&buffer.app, run.meta());
        for line in run.lines_each() {
            let end = len + prefix.len() + line.len();
            let Some(out) = space.get_mut(len..end) else {
                break 'runs;
            };
            out[..prefix.len()].copy_from_slice(prefix);
            out[prefix.len()..].copy_from_slice(line);
            len = end;
            buffer.sent += 1;
            if len >= CHUNK_BYTES {
                break 'runs;
            }
        }
    }
    let lines = (buffer.sent - start) as u64;
    (lines > 0).then(|| (ring.commit(len, Some(lines)), len))
}

/// Encodes `buffer`'s next unsent records, one chunk, for stdin or the IPC
/// channel: as the builtin file-logger's lines if `lines`, else as JSON.
/// With a `ring`, plain lines after the first records are left for it.
fn encode_chunk(
    encoder: &mut logjson::Encoder,
    buffer: &mut AppBuffer,
    lines: bool,
    ring: bool,
) -> Vec<u8> {
    let start = buffer.sent;
    let mut bytes = Vec::with_capacity(chunk_estimate(buffer, lines));
    'runs: for run in buffer.entries.runs_from(start) {
        if lines && !run.multiline() {
            if ring && buffer.sent > start {
                break;
            }
            let prefix = encoder.line_prefix(&buffer.app, run.meta());
            for line in run.lines_each() {
                bytes.extend_from_slice(prefix);
                bytes.extend_from_slice(line);
                buffer.sent += 1;
                if bytes.len() >= CHUNK_BYTES {
                    break 'runs;
                }
            }
            continue;
        }
        for entry in run.records() {
            let record = logjson::RecordRef {
                kind: entry.kind,
                text: entry.text,
                timestamp: entry.timestamp,
                app_json: &buffer.app_json,
                process: entry.process,
                truncated: entry.truncated,
            };
            if lines {
                encoder.push_line(&mut bytes, &buffer.app, record);
            } else {
                encoder.push(&mut bytes, record);
            }
            buffer.sent += 1;
            if bytes.len() >= CHUNK_BYTES {
                break 'runs;
            }
        }
    }
    bytes
}

/// Room for the next feeder write of `buffer`'s unsent records: their text
/// plus what each line adds, at most one chunk. Sized to what is there
/// rather than a whole chunk, since most writes are of one read's lines and
/// a larger allocation would be mapped and faulted in for nothing.
fn chunk_estimate(buffer: &AppBuffer, lines: bool) -> usize {
    let per_line = if lines { 64 } else { 256 };
    let mut estimate = 0;
    for run in buffer.entries.runs_from(buffer.sent) {
        estimate += run.cost() as usize + run.len() * per_line;
        if estimate >= CHUNK_BYTES {
            break;
        }
    }
    estimate.min(CHUNK_BYTES) + 8 * 1024
}

/// Appends a `dropped` record with the count of records lost so far.
fn report_dropped(
    followers: &broadcast::Sender<Published>,
    buffer: &mut AppBuffer,
    logger: &str,
    seq: u64,
    timestamp: u64,
) {
    let count = std::mem::take(&mut buffer.dropped);
    buffer.last_drop_report = timestamp;
    let text = format!(
        "dropped {count} record{} that no logger could take (logger {logger:?} is missing or failing)",
        if count == 1 { "" } else { "s" }
    );
    warn!(app = %buffer.app, "{text}");
    let record = LogRecord {
        kind: LogKind::Dropped,
        bytes: text.len() as u64,
        text: text.clone(),
        timestamp,
        app: buffer.app.clone(),
        process: None,
        truncated: 0,
    };
    publish(followers, seq, || record);
    let meta = Meta {
        timestamp,
        kind: LogKind::Dropped,
        process: None,
    };
    // Pushed as accepting, so the report itself never counts as dropped.
    buffer.push(seq, meta, text, 0, true);
}

/// One output line as the record `log` and `log -f` see (invalid UTF-8
/// replaced).
fn line_record(
    kind: LogKind,
    line: &[u8],
    truncated: u64,
    timestamp: u64,
    app: &str,
    process: &LogProcess,
) -> LogRecord {
    let text = String::from_utf8_lossy(line).into_owned();
    LogRecord {
        kind,
        bytes: text.len() as u64,
        text,
        timestamp,
        app: app.to_owned(),
        process: Some(process.clone()),
        truncated,
    }
}

fn publish(followers: &broadcast::Sender<Published>, seq: u64, record: impl FnOnce() -> LogRecord) {
    if followers.receiver_count() > 0 {
        let _ = followers.send(Published {
            seq,
            record: Arc::new(record()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use final_pm_protocol::AppConfig;

    fn app(name: &str, max: u64) -> AppInfo {
        let mut config = AppConfig::new(name, "/srv", "/bin/true");
        config.max_buffered_log_bytes = max;
        config.log_retention_timeout = 1000;
        AppInfo {
            revision: 1,
            config,
        }
    }

    fn lines(texts: &[&str]) -> Batch {
        let mut splitter = crate::lines::LineSplitter::new(1000);
        for text in texts {
            splitter.push(text.as_bytes());
            splitter.push(b"\n");
        }
        splitter.take_batch().unwrap()
    }

    fn process(id: u64) -> LogProcess {
        LogProcess {
            pid: 10,
            id: ProcessId(id),
            number: 0,
            generation: None,
        }
    }

    /// Lines of process 0 of "web" on stdout, read at `timestamp`, holding
    /// `held` bytes of the app's budget.
    fn web_output(logging: &mut Logging, timestamp: u64, texts: &[&str], held: u64) {
        logging.push_output(
            ProcessId(0),
            "web",
            process(0),
            LogKind::Stdout,
            timestamp,
            lines(texts),
            held,
        );
    }

    fn texts(logging: &Logging, app: &str) -> Vec<String> {
        logging
            .query(app, &[], None)
            .into_iter()
            .map(|r| r.text)
            .collect()
    }

    fn setup(max: u64) -> (Logging, AppInfo, LoggerKey, Instant) {
        let (tx, _) = broadcast::channel(16);
        let mut logging = Logging::new(tx);
        let web = app("web", max);
        logging.on_spawn(ProcessId(0), &web);
        (logging, web.clone(), LoggerKey::of(&web), Instant::now())
    }

    #[test]
    fn a_logger_is_started_fed_in_order_and_stopped_when_done() {
        let (mut logging, _web, key, now) = setup(1000);
        web_output(&mut logging, 1, &["a", "b"], 0);
        let actions = logging.drive(now, 1);
        assert!(matches!(&actions[..], [Action::Start(k)] if *k == key));
        logging.started(&key, ProcessId(1), false);
        assert!(logging.drive(now, 1).is_empty(), "not fed before it runs");
        logging.on_running(ProcessId(1));
        let actions = logging.drive(now, 1);
        let [Action::Feed { id, bytes, records }] = &actions[..] else {
            panic!("{actions:?}");
        };
        assert_eq!((*id, *records), (ProcessId(1), 2));
        let text = String::from_utf8(bytes.clone()).unwrap();
        let got: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<LogRecord>(l).unwrap().text)
            .collect();
        assert_eq!(got, ["a", "b"]);
        logging.on_fed(ProcessId(1), 2);
        assert!(logging.drive(now, 1).is_empty(), "the app still runs");
        logging.forget(ProcessId(0), now);
        let actions = logging.drive(now, 1);
        assert!(
            matches!(&actions[..], [Action::Stop(ProcessId(1))]),
            "{actions:?}"
        );
        assert_eq!(texts(&logging, "web"), ["a", "b"], "kept for log");
    }

    #[test]
    fn unacknowledged_records_are_sent_again_after_a_logger_crash() {
        let (mut logging, _web, key, now) = setup(1000);
        web_output(&mut logging, 1, &["a", "b", "c"], 0);
        logging.drive(now, 1);
        logging.started(&key, ProcessId(1), true);
        logging.on_running(ProcessId(1));
        logging.drive(now, 1);
        logging.on_fed(ProcessId(1), 3);
        assert!(
            logging
                .on_message(ProcessId(1), serde_json::json!({"ack": 1}))
                .is_none()
        );
        logging.forget(ProcessId(1), now);
        let actions = logging.drive(now, 1);
        assert!(matches!(&actions[..], [Action::Start(_)]), "{actions:?}");
        logging.started(&key, ProcessId(2), true);
        logging.on_running(ProcessId(2));
        let actions = logging.drive(now, 1);
        let [Action::Feed { records, .. }] = &actions[..] else {
            panic!("{actions:?}");
        };
        assert_eq!(*records, 2, "b and c again");
    }

    /// The builtin file-logger's plain lines are formatted straight into
    /// its feed ring, and only a header counting them goes on stdin; a
    /// record with a newline in its text goes on stdin as JSON, in its
    /// place in the order.
    #[test]
    fn the_file_loggers_lines_go_through_its_ring() {
        use crate::feed_ring::RingReader;
        let (mut logging, web, key, now) = setup(1000);
        web_output(&mut logging, 1, &["a", "b"], 0);
        logging.drive(now, 1);
        logging.started(&key, ProcessId(1), true);
        let ring = Ring::create().unwrap();
        let reader = RingReader::open(ring.fd().try_clone_to_owned().unwrap()).unwrap();
        logging.attach_ring(ProcessId(1), ring);
        logging.on_running(ProcessId(1));
        let sent = |actions: Vec<Action>| -> Vec<String> {
            actions
                .into_iter()
                .filter_map(|action| match action {
                    Action::Feed { bytes, .. } => Some(String::from_utf8(bytes).unwrap()),
                    _ => None,
                })
                .collect()
        };
        let ring_lines = |header: &str| -> String {
            let chunk = reader.chunk(header.trim_end().as_bytes()).unwrap();
            String::from_utf8(chunk.data.to_vec()).unwrap()
        };
        let headers = sent(logging.drive(now, 1));
        let [header] = &headers[..] else {
            panic!("{headers:?}");
        };
        assert!(
            header.starts_with("#0 ") && header.ends_with(" 2\n"),
            "{header}"
        );
        let texts: Vec<String> = ring_lines(header)
            .lines()
            .map(|l| l.split_once("]: ").unwrap().1.to_owned())
            .collect();
        assert_eq!(texts, ["a", "b"]);
        logging.push_record(
            ProcessId(0),
            Some(&web),
            LogRecord {
                kind: LogKind::Exit,
                text: "two\nlines".into(),
                bytes: 9,
                timestamp: 2,
                app: "web".into(),
                process: None,
                truncated: 0,
            },
        );
        web_output(&mut logging, 3, &["c"], 0);
        let fed = sent(logging.drive(now, 3));
        let [json, header] = &fed[..] else {
            panic!("{fed:?}");
        };
        assert!(json.starts_with("{\"type\":\"exit\""), "{json}");
        assert!(ring_lines(header).ends_with("]: c\n"), "{header}");
    }

    /// The ring never takes lines the file-logger has not written out: once
    /// it is full, lines go on stdin.
    #[test]
    fn lines_go_on_stdin_while_the_ring_is_full() {
        let (mut logging, _web, key, now) = setup(64 * 1024 * 1024);
        logging.drive(now, 1);
        logging.started(&key, ProcessId(1), true);
        // Kept open, never marked done: the logger never finishes a chunk.
        let ring = Ring::create().unwrap();
        logging.attach_ring(ProcessId(1), ring);
        logging.on_running(ProcessId(1));
        let line = "y".repeat(999);
        let many: Vec<&str> = vec![line.as_str(); 300];
        let (mut in_ring, mut on_stdin, mut acked) = (0, 0, 0);
        for round in 0..12 {
            web_output(&mut logging, round, &many, 0);
            for action in logging.drive(now, round) {
                if let Action::Feed { bytes, records, .. } = action {
                    if bytes.starts_with(b"#") {
                        in_ring += records;
                    } else {
                        assert!(bytes.starts_with(b"["), "formatted lines");
                        on_stdin += records;
                    }
                    acked += records;
                }
            }
            logging.on_message(ProcessId(1), serde_json::json!({ "ack": acked }));
        }
        // 2 MiB of ~1 KiB lines fit in the ring; the rest went on stdin.
        assert!((1900..2100).contains(&in_ring), "{in_ring}");
        assert_eq!(in_ring + on_stdin, 12 * 300);
    }

    /// The builtin file-logger reads from a ring that has room only for what
    /// it has written: what it was given counts until it acknowledges it,
    /// whatever the feeder reports.
    #[test]
    fn an_acknowledging_logger_gets_one_window_until_it_acknowledges() {
        let (mut logging, _web, key, now) = setup(64 * 1024 * 1024);
        let line = "y".repeat(999);
        let many: Vec<&str> = vec![line.as_str(); 3000];
        web_output(&mut logging, 1, &many, 0);
        logging.drive(now, 1);
        logging.started(&key, ProcessId(1), true);
        logging.on_running(ProcessId(1));
        let fed = |actions: Vec<Action>| -> (usize, u64) {
            actions.iter().fold((0, 0), |(b, r), action| match action {
                Action::Feed { bytes, records, .. } => (b + bytes.len(), r + records),
                _ => (b, r),
            })
        };
        let (bytes, records) = fed(logging.drive(now, 1));
        assert!(
            (FEED_WINDOW..FEED_WINDOW + CHUNK_BYTES + 2048).contains(&bytes),
            "{bytes}"
        );
        assert!(records < 3000);
        logging.on_fed(ProcessId(1), records);
        assert_eq!(fed(logging.drive(now, 1)), (0, 0), "written is not done");
        logging.on_message(ProcessId(1), serde_json::json!({ "ack": records }));
        let (_, more) = fed(logging.drive(now, 1));
        assert!(more > 0 && records + more <= 3000, "{more}");
    }

    /// A read can bring more than the whole buffer while the logger is
    /// still expected; when it then fails to start, the buffer goes back to
    /// its bound and the drops are reported.
    #[test]
    fn a_read_larger_than_the_buffer_keeps_its_newest_lines_without_a_logger() {
        let (mut logging, _web, key, now) = setup(1000);
        logging.drive(now, 1);
        logging.start_failed(&key, true, now);
        let lines: Vec<String> = (0..50)
            .map(|i| format!("{i:02}{}", "z".repeat(97)))
            .collect();
        let many: Vec<&str> = lines.iter().map(String::as_str).collect();
        web_output(&mut logging, 1, &many, 0);
        logging.drive(now, 2);
        let kept: Vec<String> = texts(&logging, "web")
            .into_iter()
            .filter(|t| t.ends_with('z'))
            .collect();
        assert!(!kept.is_empty() && kept.len() * 99 <= 1000, "{kept:?}");
        assert_eq!(kept[..], lines[50 - kept.len()..], "the newest, in order");
    }

    #[test]
    fn records_held_for_a_logger_that_fails_are_trimmed_and_reported() {
        let (mut logging, _web, key, now) = setup(1000);
        let line = "z".repeat(99);
        let many: Vec<&str> = vec![line.as_str(); 50];
        web_output(&mut logging, 1, &many, 0);
        assert_eq!(texts(&logging, "web").len(), 50, "held for the logger");
        logging.drive(now, 1);
        logging.start_failed(&key, false, now);
        logging.forget(ProcessId(0), now);
        logging.drive(now, 2);
        let kept = texts(&logging, "web");
        let lines = kept.iter().filter(|t| **t == line).count();
        assert!(lines * 100 <= 1000, "{lines} lines kept");
        assert!(kept.iter().any(|t| t.starts_with("dropped ")), "{kept:?}");
    }

    #[test]
    fn a_missing_logger_drops_the_oldest_and_reports_the_count() {
        let (mut logging, _web, key, now) = setup(200);
        logging.start_failed(&key, true, now);
        let line = "x".repeat(39);
        for i in 0..10 {
            web_output(&mut logging, i, &[&line], 40);
        }
        let kept = texts(&logging, "web");
        assert!(kept.len() <= 5, "{kept:?}");
        logging.forget(ProcessId(0), now);
        logging.drive(now, 5000);
        let kept = texts(&logging, "web");
        assert!(kept.iter().any(|t| t.starts_with("dropped ")), "{kept:?}");
    }

    #[test]
    fn while_a_logger_runs_undelivered_records_are_never_evicted() {
        let (mut logging, _web, key, now) = setup(20);
        for i in 0..5 {
            web_output(&mut logging, i, &["0123456789"], 0);
        }
        assert_eq!(texts(&logging, "web").len(), 5);
        logging.drive(now, 1);
        logging.started(&key, ProcessId(1), false);
        logging.on_running(ProcessId(1));
        logging.drive(now, 1);
        logging.on_fed(ProcessId(1), 5);
        web_output(&mut logging, 9, &["0123456789"], 0);
        assert!(texts(&logging, "web").len() <= 2, "delivered ones go");
    }

    #[test]
    fn finished_buffers_expire_after_the_retention_timeout() {
        let (mut logging, _web, key, now) = setup(1000);
        web_output(&mut logging, 1, &["a"], 0);
        logging.drive(now, 1);
        logging.started(&key, ProcessId(1), false);
        logging.on_running(ProcessId(1));
        logging.drive(now, 1);
        logging.on_fed(ProcessId(1), 1);
        logging.forget(ProcessId(0), now);
        logging.drive(now, 1);
        assert_eq!(texts(&logging, "web"), ["a"]);
        let at = logging.next_deadline().unwrap();
        assert_eq!(at, now + Duration::from_secs(1));
        logging.drive(at, 2);
        assert!(texts(&logging, "web").is_empty());
    }
}
