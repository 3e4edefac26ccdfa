//! The shared vocabulary of the protocol: application configurations, process
//! records, generations and log records.
//!
//! These types are used by the daemon's core, by the CLI's `--json` output and by
//! loggers, so the same JSON shape is seen everywhere. Application configuration
//! keys keep the kebab-case names of FinalPM's `process-config.json` (`ready-on`,
//! `max-instances`, ...) so a user reads the same key in a config file, in
//! `inspect` and on the wire; protocol message fields are snake_case.

use std::cmp::Ordering;
use std::collections::{BTreeMap, btree_map};
use std::fmt;
use std::iter::Peekable;
use std::ops::Index;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The daemon's own identifier of a managed process.
///
/// Ids are handed out by the daemon, never reused except by a crash-respawn
/// (which keeps the id of the process it replaces, as FinalPM does), and are the
/// only key of a process: the OS pid is data, since pids are recycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProcessId(pub u64);

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a process stands in its lifecycle.
///
/// A process moves queue → new → running → old, or new → marked → old when it
/// is stopped before it became ready. See `docs/generations.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generation {
    /// Waiting for capacity (`max-instances`).
    Queue,
    /// Started (or waiting out a restart delay), not yet ready.
    New,
    /// Ready and serving.
    Running,
    /// Replaced or stopped: has been sent its stop signal and is exiting.
    Old,
    /// Stopped while starting: it gets its stop signal only once it is ready,
    /// so an app never sees a stop before it finished starting.
    Marked,
}

impl Generation {
    /// All generations in the order `show` lists them.
    pub const DISPLAY_ORDER: [Self; 5] = [
        Self::Queue,
        Self::New,
        Self::Marked,
        Self::Running,
        Self::Old,
    ];

    /// The lowercase name used in selectors (`running:web`) and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::New => "new",
            Self::Running => "running",
            Self::Old => "old",
            Self::Marked => "marked",
        }
    }

    /// Parses a selector prefix; `None` for anything that is not a generation.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "queue" => Self::Queue,
            "new" => Self::New,
            "running" => Self::Running,
            "old" => Self::Old,
            "marked" => Self::Marked,
            _ => return None,
        })
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an app is a normal application or a log sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppType {
    /// A supervised program.
    #[default]
    Application,
    /// A log sink: receives other apps' records, never restarted on crash,
    /// never selected by `all`.
    Logger,
}

/// How a process is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A Node script becomes a worker of the daemon's cluster primary and shares
    /// listening sockets with its siblings; anything else behaves like `fork`.
    #[default]
    Cluster,
    /// A plain child process.
    Fork,
}

/// When a new process counts as ready (and its predecessor may be stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyOn {
    /// A listening socket appears (cluster `listening` message, or a socket of
    /// the process group in `/proc`).
    #[default]
    Listen,
    /// The IPC message `"ready"`, or `READY=1` on `NOTIFY_SOCKET`.
    Message,
    /// As soon as the process exists.
    Instant,
}

/// How a process is asked to stop gracefully.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum StopSignal {
    /// Send SIGINT to the process group.
    #[default]
    #[serde(rename = "SIGINT")]
    Sigint,
    /// Send SIGTERM to the process group.
    #[serde(rename = "SIGTERM")]
    Sigterm,
    /// Disconnect the IPC channel (a cluster worker disconnects gracefully).
    #[serde(rename = "disconnect")]
    Disconnect,
    /// Send the IPC message `"stop"`.
    #[serde(rename = "message")]
    Message,
}

impl StopSignal {
    /// The name used in log records (`signal=SIGINT`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sigint => "SIGINT",
            Self::Sigterm => "SIGTERM",
            Self::Disconnect => "disconnect",
            Self::Message => "message",
        }
    }
}

/// The signal that ends a process that would not stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum KillSignal {
    /// SIGTERM: lets the program clean up, but it may ignore it.
    #[serde(rename = "SIGTERM")]
    Sigterm,
    /// SIGKILL: cannot be caught.
    #[default]
    #[serde(rename = "SIGKILL")]
    Sigkill,
}

impl KillSignal {
    /// The name used in log records (`signal=SIGKILL`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sigterm => "SIGTERM",
            Self::Sigkill => "SIGKILL",
        }
    }
}

/// One application's configuration, as uploaded by the CLI with `add`.
///
/// Every path is absolute by the time it reaches the daemon: the CLI resolves
/// `base-path`, `cwd` and `run` against the config file, so the daemon never
/// depends on the CLI's working directory.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AppConfig {
    /// Identity of the app (`[A-Za-z0-9_-]`, not starting with `-`, not `all`).
    pub name: String,
    /// `application` or `logger`.
    #[serde(rename = "type", default)]
    pub app_type: AppType,
    /// `cluster` or `fork`.
    #[serde(default)]
    pub mode: Mode,
    /// Working directory of the processes (absolute).
    pub cwd: String,
    /// The program (absolute). A `.js`, `.cjs` or `.mjs` file runs through `interpreter`.
    pub run: String,
    /// Arguments after the program.
    #[serde(default)]
    pub args: Vec<String>,
    /// Options for the interpreter of a Node script.
    #[serde(default)]
    pub node_args: Vec<String>,
    /// Interpreter of Node scripts; `node` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<String>,
    /// The complete environment of the processes.
    #[serde(default)]
    pub env: Environment,
    /// Variables whose changes do not count as a configuration change.
    /// Apps loaded together share one list.
    #[serde(default)]
    pub ignore_env: Arc<[String]>,
    /// When a new process counts as ready.
    #[serde(default)]
    pub ready_on: ReadyOn,
    /// The graceful stop.
    #[serde(default)]
    pub stop_signal: StopSignal,
    /// The forced stop.
    #[serde(default)]
    pub kill_signal: KillSignal,
    /// Target number of running processes.
    #[serde(default = "defaults::instances")]
    pub instances: u32,
    /// Cap on processes in new, running, old and marked together; 0 = no cap.
    #[serde(default)]
    pub max_instances: u32,
    /// Numbered 1:1 replacement and `FINAL_PM_INSTANCE_NUMBER`.
    #[serde(default = "defaults::yes")]
    pub unique_instances: bool,
    /// Respawn a process that exits while running.
    #[serde(default = "defaults::yes")]
    pub restart_crashing: bool,
    /// Respawn a process that exits while starting.
    #[serde(default = "defaults::yes")]
    pub restart_new_crashing: bool,
    /// Delay before a respawned process starts, in milliseconds.
    #[serde(default = "defaults::restart_delay")]
    pub restart_crashing_delay: u64,
    /// Name of the logger app that receives this app's records.
    #[serde(default = "defaults::logger")]
    pub logger: String,
    /// Arguments of the logging process.
    #[serde(default = "defaults::logger_args")]
    pub logger_args: Vec<String>,
    /// Bytes of records kept per app and logger.
    #[serde(default = "defaults::max_buffered_log_bytes")]
    pub max_buffered_log_bytes: u64,
    /// How long records are kept after the app's last process ended, in
    /// milliseconds.
    #[serde(default = "defaults::log_retention_timeout")]
    pub log_retention_timeout: i64,
    /// Bytes per output line before truncation.
    #[serde(default = "defaults::max_log_line_length")]
    pub max_log_line_length: u64,
    /// Milliseconds after the stop signal before the kill signal; none = wait.
    #[serde(default)]
    pub stop_timeout: Option<u64>,
    /// Milliseconds from creation to readiness before the process is killed.
    #[serde(default)]
    pub start_timeout: Option<u64>,
    /// Set on apps the daemon brings itself; protects them from `add`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub builtin: bool,
    /// The config file the app came from; a change needs `--force`.
    #[serde(default)]
    pub config_path: Option<String>,
}

/// Defaults of [`AppConfig`], shared by serde and the config loader.
pub mod defaults {
    /// `instances`.
    pub fn instances() -> u32 {
        1
    }
    /// Boolean keys that default to on.
    pub fn yes() -> bool {
        true
    }
    /// `restart-crashing-delay`.
    pub fn restart_delay() -> u64 {
        1000
    }
    /// `logger`.
    pub fn logger() -> String {
        "file-logger".to_owned()
    }
    /// `logger-args`.
    pub fn logger_args() -> Vec<String> {
        vec!["log.txt".to_owned()]
    }
    /// `max-buffered-log-bytes`.
    pub fn max_buffered_log_bytes() -> u64 {
        262_144
    }
    /// `log-retention-timeout`.
    pub fn log_retention_timeout() -> i64 {
        86_400_000
    }
    /// `max-log-line-length`.
    pub fn max_log_line_length() -> u64 {
        5120
    }
}

impl AppConfig {
    /// An app with every key at its default, running `run` in `cwd`.
    pub fn new(name: impl Into<String>, cwd: impl Into<String>, run: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            app_type: AppType::Application,
            mode: Mode::Cluster,
            cwd: cwd.into(),
            run: run.into(),
            args: Vec::new(),
            node_args: Vec::new(),
            interpreter: None,
            env: Environment::new(),
            ignore_env: Arc::default(),
            ready_on: ReadyOn::Listen,
            stop_signal: StopSignal::Sigint,
            kill_signal: KillSignal::Sigkill,
            instances: defaults::instances(),
            max_instances: 0,
            unique_instances: true,
            restart_crashing: true,
            restart_new_crashing: true,
            restart_crashing_delay: defaults::restart_delay(),
            logger: defaults::logger(),
            logger_args: defaults::logger_args(),
            max_buffered_log_bytes: defaults::max_buffered_log_bytes(),
            log_retention_timeout: defaults::log_retention_timeout(),
            max_log_line_length: defaults::max_log_line_length(),
            stop_timeout: None,
            start_timeout: None,
            builtin: false,
            config_path: None,
        }
    }

    /// Whether `run` names a Node script (run through the interpreter).
    pub fn is_node_script(&self) -> bool {
        [".js", ".cjs", ".mjs"]
            .iter()
            .any(|ext| self.run.ends_with(ext))
    }
}

/// Environment values can hold secrets: `Debug` prints only the variable names.
impl fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppConfig")
            .field("name", &self.name)
            .field("type", &self.app_type)
            .field("mode", &self.mode)
            .field("cwd", &self.cwd)
            .field("run", &self.run)
            .field("args", &self.args)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("ready_on", &self.ready_on)
            .field("instances", &self.instances)
            .finish_non_exhaustive()
    }
}

/// The environment of an app's processes: the variables inherited from where
/// the configuration was loaded, with the app's own `env` on top.
///
/// Inherited variables are shared: the CLI gives its 200 apps one copy of
/// its environment rather than 200. Everywhere else it is one map of the
/// merged variables: on the wire (a JSON object sorted by name, so the
/// protocol does not see the difference), in equality, iteration and
/// lookups. A map read from the wire is the app's own, inheriting nothing.
#[derive(Clone, Default)]
pub struct Environment {
    /// Shared with other apps; `None` when nothing is inherited.
    inherited: Option<Arc<BTreeMap<String, String>>>,
    /// The app's own variables, over the inherited ones.
    own: BTreeMap<String, String>,
}

impl Environment {
    /// An empty environment.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same variables of its own, inheriting `inherited` below them
    /// (instead of whatever it inherited before).
    pub fn inheriting(self, inherited: Arc<BTreeMap<String, String>>) -> Self {
        Self {
            inherited: Some(inherited),
            own: self.own,
        }
    }

    /// The value of variable `name`.
    pub fn get(&self, name: &str) -> Option<&String> {
        self.own
            .get(name)
            .or_else(|| self.inherited.as_deref()?.get(name))
    }

    /// Whether variable `name` is set.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets variable `name` over any inherited value.
    pub fn insert(&mut self, name: String, value: String) {
        self.own.insert(name, value);
    }

    /// Keeps only the variables for which `keep` is true. The result
    /// inherits nothing: this is for one-off comparisons, not the hot path.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        let mut merged: BTreeMap<String, String> = match self.inherited.take() {
            Some(inherited) => Arc::unwrap_or_clone(inherited),
            None => BTreeMap::new(),
        };
        merged.append(&mut self.own);
        merged.retain(|name, value| keep(name, value));
        self.own = merged;
    }

    /// The variables, sorted by name.
    pub fn iter(&self) -> EnvironmentIter<'_> {
        EnvironmentIter {
            inherited: self.inherited.as_deref().map(|map| map.iter().peekable()),
            own: self.own.iter().peekable(),
        }
    }

    /// The names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.iter().map(|(name, _)| name)
    }

    /// The number of variables.
    pub fn len(&self) -> usize {
        match &self.inherited {
            None => self.own.len(),
            Some(inherited) => {
                inherited.len()
                    + self
                        .own
                        .keys()
                        .filter(|name| !inherited.contains_key(*name))
                        .count()
            }
        }
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The variables of an [`Environment`], sorted by name, an own variable
/// in place of an inherited one of the same name.
#[derive(Debug)]
pub struct EnvironmentIter<'a> {
    inherited: Option<Peekable<btree_map::Iter<'a, String, String>>>,
    own: Peekable<btree_map::Iter<'a, String, String>>,
}

impl<'a> Iterator for EnvironmentIter<'a> {
    type Item = (&'a String, &'a String);

    fn next(&mut self) -> Option<Self::Item> {
        let Some(inherited) = &mut self.inherited else {
            return self.own.next();
        };
        match (inherited.peek(), self.own.peek()) {
            (Some((a, _)), Some((b, _))) => match a.cmp(b) {
                Ordering::Less => inherited.next(),
                Ordering::Equal => {
                    inherited.next();
                    self.own.next()
                }
                Ordering::Greater => self.own.next(),
            },
            (Some(_), None) => inherited.next(),
            (None, _) => self.own.next(),
        }
    }
}

impl<'a> IntoIterator for &'a Environment {
    type Item = (&'a String, &'a String);
    type IntoIter = EnvironmentIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl From<BTreeMap<String, String>> for Environment {
    fn from(own: BTreeMap<String, String>) -> Self {
        Self {
            inherited: None,
            own,
        }
    }
}

impl FromIterator<(String, String)> for Environment {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        BTreeMap::from_iter(iter).into()
    }
}

impl PartialEq for Environment {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Environment {}

impl Index<&str> for Environment {
    type Output = String;

    fn index(&self, name: &str) -> &String {
        match self.get(name) {
            Some(value) => value,
            None => panic!("environment variable {name:?} is not set"),
        }
    }
}

/// Values can hold secrets: only the names are printed.
impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys()).finish()
    }
}

impl Serialize for Environment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Environment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Self::from)
    }
}

/// An application as the daemon stores it: a configuration plus its revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Increases with every stored change of any app; orders processes.
    pub revision: u64,
    /// The configuration of this revision.
    #[serde(flatten)]
    pub config: AppConfig,
}

/// A managed process as `info` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The daemon's id of the process.
    pub id: ProcessId,
    /// The OS pid, absent until the process exists.
    pub pid: Option<u32>,
    /// Name of the app the process belongs to.
    pub app_name: String,
    /// Instance number.
    pub number: u32,
    /// Current generation.
    pub generation: Generation,
    /// Arguments the process was started with.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Crashes along this process's respawn chain.
    pub crashes: u32,
    /// Whether the process has been started (is past the queue).
    pub started: bool,
    /// Whether the process reported ready.
    pub ready: bool,
    /// Whether a kill signal was sent (a process that survives it is a zombie).
    pub killing: bool,
    /// Revision of the app configuration the process was started from.
    pub revision: u64,
    /// Whether that revision is no longer the app's current one (or the app was
    /// deleted): `show` marks it `(old)`.
    pub outdated: bool,
    /// Start time in ms since the epoch; absent while queued; in the future
    /// while a restart delay runs.
    pub start_time_ms: Option<u64>,
    /// When the record was created, in ms since the epoch.
    pub create_time_ms: u64,
    /// The process's own app configuration, present only when outdated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppInfo>,
    /// What the process uses, present only when the `info` request asked
    /// for it and the process is alive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// CPU and memory of a live process, as Linux accounts them: the resident
/// set from `/proc/PID/statm`, the CPU time from the process's CPU clock.
///
/// The daemon reads them, not the CLI, because it keeps each process's
/// `statm` open from the spawn on: a `show` of many processes then costs a
/// read and a clock call per process in a warm process instead of an open,
/// a read and a close each in a fresh one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// CPU time used so far, user and system, all threads, in ms.
    pub cpu_ms: u64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// What a log record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogKind {
    /// A line the process wrote to stdout.
    Stdout,
    /// A line the process wrote to stderr.
    Stderr,
    /// The process moved to another generation.
    Moved,
    /// A start was requested.
    Start,
    /// A graceful stop was delivered (or a delayed start aborted).
    Stop,
    /// A kill signal was sent.
    Kill,
    /// The process ended.
    Exit,
    /// The start timeout fired.
    StartTimeout,
    /// The stop timeout fired.
    StopTimeout,
    /// Spawning or talking to the process failed.
    Error,
    /// Records were dropped because no logger could take them.
    Dropped,
}

impl LogKind {
    /// The record type as FinalPM's loggers know it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
            Self::Moved => "moved",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Kill => "kill",
            Self::Exit => "exit",
            Self::StartTimeout => "start-timeout",
            Self::StopTimeout => "stop-timeout",
            Self::Error => "error",
            Self::Dropped => "dropped",
        }
    }
}

/// The process a log record belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogProcess {
    /// The OS pid, `-1` before the process exists (as FinalPM's loggers expect).
    pub pid: i64,
    /// The daemon's id.
    pub id: ProcessId,
    /// Instance number.
    pub number: u32,
    /// Generation when the record was made.
    pub generation: Option<Generation>,
}

/// One log record. Its JSON form is exactly what FinalPM sends its loggers, so
/// loggers written for FinalPM read final-pm's records unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// What the record is about.
    #[serde(rename = "type")]
    pub kind: LogKind,
    /// The line or the lifecycle text (`moved to running generation`).
    pub text: String,
    /// UTF-8 length of `text`.
    pub bytes: u64,
    /// Milliseconds since the epoch, daemon clock.
    pub timestamp: u64,
    /// App name.
    pub app: String,
    /// The process, if the record is about one.
    pub process: Option<LogProcess>,
    /// Bytes cut from an overlong output line.
    #[serde(default)]
    pub truncated: u64,
}
