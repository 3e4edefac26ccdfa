//! The keys of a configuration, their types, defaults and validation.
//!
//! Values arrive as JSON (from a file, from a JS config's output, or from a
//! `--set`/environment value, which is a plain string unless it starts with
//! `"`, `[` or `{`). Each key has one converter that accepts the JSON form and
//! the string form FinalPM accepted (numeric strings with surrounding blanks
//! are numbers, `true`/`false` in any case are booleans) and stores a typed
//! value, so the daemon never sees `"3"` where it expects `3`.
//!
//! Converters return the bare problem text ("expected …, got …"); the caller
//! knows the origin, the application and the key and wraps it into a
//! [`ConfigError`].

use std::collections::{BTreeMap, HashMap};

use super::error::{AppLabel, ConfigError, Origin, describe, quoted, suggest};
use super::json::Json;
use final_pm_protocol::{AppConfig, AppType, KillSignal, Mode, ReadyOn, StopSignal};

/// The largest integer JSON numbers carry exactly (2^53 − 1); the limit of
/// FinalPM's byte counts, and a sane bound for every millisecond value.
const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// Upper bound of `instances` and `max-instances`, as in FinalPM.
const MAX_INSTANCES: i64 = 65_536;

/// The variables FinalPM's `ignore-env` lists by default: values that differ
/// between shells of the same user and so must not make an app "changed".
pub const DEFAULT_IGNORE_ENV: [&str; 34] = [
    "PWD",
    "OLDPWD",
    "_",
    "WINDOWPATH",
    "WINDOWID",
    "DESKTOP_STARTUP_ID",
    "XDG_VTNR",
    "XDG_SESSION_ID",
    "XDG_SEAT",
    "XDG_RUNTIME_DIR",
    "TERM",
    "SHELL",
    "SSH_CLIENT",
    "SSH_TTY",
    "SSH_CONNECTION",
    "USER",
    "LANG",
    "LOGNAME",
    "SHLVL",
    "MAIL",
    "HOME",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "PROMPT_COMMAND",
    "XAUTHORITY",
    "COLORFGBG",
    "GITAWAREPROMPT",
    "LC_MESSAGES",
    "DISPLAY",
    "EDITOR",
    "COLORTERM",
    "DBUS_SESSION_BUS_ADDRESS",
];

/// A top-level key that `--set` and `FINAL_PM_CONFIG_*` may address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopKey {
    /// `home`.
    Home,
    /// `socket`.
    Socket,
    /// `daemon-log`.
    DaemonLog,
    /// `npm-global-config` (not in files).
    NpmGlobalConfig,
    /// `npm-user-config` (not in files).
    NpmUserConfig,
    /// `ignore-env` (not in files).
    IgnoreEnv,
    /// `applications`.
    Applications,
}

impl TopKey {
    /// Every top-level key, in the order the docs list them.
    pub const ALL: [Self; 7] = [
        Self::Home,
        Self::Socket,
        Self::DaemonLog,
        Self::NpmGlobalConfig,
        Self::NpmUserConfig,
        Self::IgnoreEnv,
        Self::Applications,
    ];

    /// The key as written in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Home => "home",
            Self::Socket => "socket",
            Self::DaemonLog => "daemon-log",
            Self::NpmGlobalConfig => "npm-global-config",
            Self::NpmUserConfig => "npm-user-config",
            Self::IgnoreEnv => "ignore-env",
            Self::Applications => "applications",
        }
    }

    /// The key named `name`, if any.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.as_str() == name)
    }

    /// Keys that decide how files are read (npm overlays) or apply to every
    /// file alike (`ignore-env`): a file setting them would have no effect.
    pub(crate) fn only_outside_files(self) -> bool {
        matches!(
            self,
            Self::NpmGlobalConfig | Self::NpmUserConfig | Self::IgnoreEnv
        )
    }
}

/// `"a, b, c"` of all top-level keys, for "expected one of" messages.
pub(crate) fn top_key_list() -> String {
    TopKey::ALL.map(TopKey::as_str).join(", ")
}

/// An application key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKey {
    Name,
    Type,
    Mode,
    BasePath,
    Cwd,
    Run,
    Args,
    NodeArgs,
    Interpreter,
    Env,
    ReadyOn,
    StopSignal,
    KillSignal,
    Instances,
    MaxInstances,
    UniqueInstances,
    RestartCrashing,
    RestartNewCrashing,
    RestartCrashingDelay,
    Logger,
    LoggerArgs,
    MaxBufferedLogBytes,
    LogRetentionTimeout,
    MaxLogLineLength,
    StopTimeout,
    StartTimeout,
    Builtin,
}

impl AppKey {
    /// Every application key, in the order the docs list them.
    pub const ALL: [Self; 27] = [
        Self::Name,
        Self::Type,
        Self::Mode,
        Self::BasePath,
        Self::Cwd,
        Self::Run,
        Self::Args,
        Self::NodeArgs,
        Self::Interpreter,
        Self::Env,
        Self::ReadyOn,
        Self::StopSignal,
        Self::KillSignal,
        Self::Instances,
        Self::MaxInstances,
        Self::UniqueInstances,
        Self::RestartCrashing,
        Self::RestartNewCrashing,
        Self::RestartCrashingDelay,
        Self::Logger,
        Self::LoggerArgs,
        Self::MaxBufferedLogBytes,
        Self::LogRetentionTimeout,
        Self::MaxLogLineLength,
        Self::StopTimeout,
        Self::StartTimeout,
        Self::Builtin,
    ];

    /// The key as written in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Type => "type",
            Self::Mode => "mode",
            Self::BasePath => "base-path",
            Self::Cwd => "cwd",
            Self::Run => "run",
            Self::Args => "args",
            Self::NodeArgs => "node-args",
            Self::Interpreter => "interpreter",
            Self::Env => "env",
            Self::ReadyOn => "ready-on",
            Self::StopSignal => "stop-signal",
            Self::KillSignal => "kill-signal",
            Self::Instances => "instances",
            Self::MaxInstances => "max-instances",
            Self::UniqueInstances => "unique-instances",
            Self::RestartCrashing => "restart-crashing",
            Self::RestartNewCrashing => "restart-new-crashing",
            Self::RestartCrashingDelay => "restart-crashing-delay",
            Self::Logger => "logger",
            Self::LoggerArgs => "logger-args",
            Self::MaxBufferedLogBytes => "max-buffered-log-bytes",
            Self::LogRetentionTimeout => "log-retention-timeout",
            Self::MaxLogLineLength => "max-log-line-length",
            Self::StopTimeout => "stop-timeout",
            Self::StartTimeout => "start-timeout",
            Self::Builtin => "builtin",
        }
    }

    /// The key named `name`, if any.
    ///
    /// A `match` rather than a search of [`Self::ALL`]: it runs for every key
    /// of every app of a configuration. A test checks it against `as_str`.
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "name" => Self::Name,
            "type" => Self::Type,
            "mode" => Self::Mode,
            "base-path" => Self::BasePath,
            "cwd" => Self::Cwd,
            "run" => Self::Run,
            "args" => Self::Args,
            "node-args" => Self::NodeArgs,
            "interpreter" => Self::Interpreter,
            "env" => Self::Env,
            "ready-on" => Self::ReadyOn,
            "stop-signal" => Self::StopSignal,
            "kill-signal" => Self::KillSignal,
            "instances" => Self::Instances,
            "max-instances" => Self::MaxInstances,
            "unique-instances" => Self::UniqueInstances,
            "restart-crashing" => Self::RestartCrashing,
            "restart-new-crashing" => Self::RestartNewCrashing,
            "restart-crashing-delay" => Self::RestartCrashingDelay,
            "logger" => Self::Logger,
            "logger-args" => Self::LoggerArgs,
            "max-buffered-log-bytes" => Self::MaxBufferedLogBytes,
            "log-retention-timeout" => Self::LogRetentionTimeout,
            "max-log-line-length" => Self::MaxLogLineLength,
            "stop-timeout" => Self::StopTimeout,
            "start-timeout" => Self::StartTimeout,
            "builtin" => Self::Builtin,
            _ => return None,
        })
    }
}

/// Why a key that FinalPM knew may not be set by the user, if it is one.
pub(crate) fn reserved_app_key(name: &str) -> Option<&'static str> {
    match name {
        "revision" => Some("is assigned by the daemon when the application is added; remove it"),
        "config-path" => Some("is set by final-pm to the configuration file's path; remove it"),
        _ => None,
    }
}

/// The message for an application key that does not exist.
pub(crate) fn unknown_app_key(name: &str) -> String {
    if let Some(reason) = reserved_app_key(name) {
        return reason.to_owned();
    }
    match suggest(name, AppKey::ALL.map(AppKey::as_str)) {
        Some(close) => format!(
            "doesn't match any known application configuration key; did you mean \"{close}\"?"
        ),
        None => format!(
            "doesn't match any known application configuration key (known keys: {})",
            AppKey::ALL.map(AppKey::as_str).join(", ")
        ),
    }
}

/// An application as read so far: typed values, paths still as written.
///
/// `app.cwd` and `app.run` hold the configured (maybe relative) strings and
/// `app.env` only the app's own `env` object; `super::finish_app` resolves
/// the paths and puts the app's variables over the CLI's environment.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The typed application.
    pub app: AppConfig,
    /// `base-path` as written; `None` = the config file's folder.
    pub(crate) base_path: Option<String>,
    /// Where the application object was written.
    pub(crate) origin: Origin,
    /// The last override that changed it: a problem found only after the
    /// overrides is blamed on it (the file alone was fine).
    pub(crate) changed_by: Option<Origin>,
}

impl Draft {
    /// An application with every key at its default, written at `origin`.
    pub fn new(origin: &Origin) -> Self {
        Self {
            app: AppConfig::new("default", "./", "./server.js"),
            base_path: None,
            origin: origin.clone(),
            changed_by: None,
        }
    }

    /// Where to point the user for a problem of the app as a whole.
    pub(crate) fn blame(&self) -> &Origin {
        self.changed_by.as_ref().unwrap_or(&self.origin)
    }

    fn label(&self) -> AppLabel {
        AppLabel::Named(self.app.name.clone())
    }

    /// Checks that need several keys: run once on the file's own values and
    /// again after the overrides.
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        let app = &self.app;
        if app.max_instances > 0 && app.max_instances <= app.instances {
            return Err(ConfigError::app(
                self.blame(),
                self.label(),
                Some("max-instances"),
                format!(
                    "max-instances must be larger than instances ({}) or 0 for no limit, got {}",
                    app.instances, app.max_instances
                ),
            ));
        }
        if !app.is_node_script() {
            let unused = if !app.node_args.is_empty() {
                Some(("node-args", "pass options to the program in \"args\""))
            } else if app.interpreter.is_some() {
                Some(("interpreter", "name the program itself in \"run\""))
            } else {
                None
            };
            if let Some((key, fix)) = unused {
                return Err(ConfigError::app(
                    self.blame(),
                    self.label(),
                    Some(key),
                    format!(
                        "{key} only applies to Node scripts (\"run\" ending in .js, .cjs or .mjs), but \"run\" is \
                         \"{}\": {fix}, or remove {key}",
                        app.run
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Sets `key` from `value`, converting and validating it.
    pub(crate) fn set(&mut self, key: AppKey, value: &Json<'_>) -> Result<(), String> {
        let app = &mut self.app;
        match key {
            AppKey::Name => app.name = name(value)?,
            AppKey::Type => {
                app.app_type = choice(
                    value,
                    &[
                        ("application", AppType::Application),
                        ("logger", AppType::Logger),
                    ],
                )?;
            }
            AppKey::Mode => {
                app.mode = choice(value, &[("cluster", Mode::Cluster), ("fork", Mode::Fork)])?
            }
            AppKey::BasePath => self.base_path = optional_string(value)?,
            AppKey::Cwd => app.cwd = string(value)?,
            AppKey::Run => app.run = string(value)?,
            AppKey::Args => app.args = strings(value)?,
            AppKey::NodeArgs => app.node_args = strings(value)?,
            AppKey::Interpreter => app.interpreter = optional_string(value)?,
            AppKey::Env => app.env = environment(value)?.into(),
            AppKey::ReadyOn => {
                app.ready_on = choice(
                    value,
                    &[
                        ("listen", ReadyOn::Listen),
                        ("message", ReadyOn::Message),
                        ("instant", ReadyOn::Instant),
                    ],
                )?;
            }
            AppKey::StopSignal => {
                app.stop_signal = choice(
                    value,
                    &[
                        ("SIGINT", StopSignal::Sigint),
                        ("SIGTERM", StopSignal::Sigterm),
                        ("disconnect", StopSignal::Disconnect),
                        ("message", StopSignal::Message),
                    ],
                )?;
            }
            AppKey::KillSignal => {
                app.kill_signal = choice(
                    value,
                    &[
                        ("SIGTERM", KillSignal::Sigterm),
                        ("SIGKILL", KillSignal::Sigkill),
                    ],
                )?;
            }
            AppKey::Instances => {
                app.instances = narrow(integer(
                    value,
                    1,
                    MAX_INSTANCES,
                    "an integer from 1 to 65536",
                )?);
            }
            AppKey::MaxInstances => {
                // Negative values passed FinalPM's schema and then blocked
                // every start (bug 28).
                app.max_instances = narrow(integer(
                    value,
                    0,
                    MAX_INSTANCES,
                    "an integer from 0 (no limit) to 65536",
                )?);
            }
            AppKey::UniqueInstances => app.unique_instances = boolean(value)?,
            AppKey::RestartCrashing => app.restart_crashing = boolean(value)?,
            AppKey::RestartNewCrashing => app.restart_new_crashing = boolean(value)?,
            AppKey::RestartCrashingDelay => {
                // 0 is allowed: FinalPM demanded at least 1 ms for no reason.
                app.restart_crashing_delay = unsigned(integer(
                    value,
                    0,
                    MAX_SAFE_INTEGER,
                    "a number of milliseconds, 0 or more",
                )?);
            }
            AppKey::Logger => app.logger = string(value)?,
            AppKey::LoggerArgs => app.logger_args = strings(value)?,
            AppKey::MaxBufferedLogBytes => {
                app.max_buffered_log_bytes = unsigned(integer(
                    value,
                    1,
                    MAX_SAFE_INTEGER,
                    "a positive integer (bytes)",
                )?);
            }
            AppKey::LogRetentionTimeout => {
                app.log_retention_timeout = integer(
                    value,
                    -MAX_SAFE_INTEGER,
                    MAX_SAFE_INTEGER,
                    "an integer (milliseconds)",
                )?;
            }
            AppKey::MaxLogLineLength => {
                app.max_log_line_length = unsigned(integer(
                    value,
                    1,
                    MAX_SAFE_INTEGER,
                    "a positive integer (bytes)",
                )?);
            }
            AppKey::StopTimeout => app.stop_timeout = optional_milliseconds(value)?,
            AppKey::StartTimeout => app.start_timeout = optional_milliseconds(value)?,
            AppKey::Builtin => app.builtin = boolean(value)?,
        }
        Ok(())
    }

    /// Reads one element of `applications`. `name` is read first so that
    /// every later problem can name the application.
    pub(crate) fn from_json(
        value: &Json<'_>,
        index: usize,
        origin: &Origin,
    ) -> Result<Self, ConfigError> {
        let Json::Object(map) = value else {
            return Err(ConfigError::app(
                origin,
                AppLabel::Index(index),
                None,
                format!("expected an application object, got {}", describe(value)),
            ));
        };
        let mut draft = Self::new(origin);
        if let Some(value) = value.get("name") {
            let label = match value {
                Json::String(written) => AppLabel::Named(written.to_string()),
                _ => AppLabel::Index(index),
            };
            draft
                .set(AppKey::Name, value)
                .map_err(|message| ConfigError::app(origin, label, Some("name"), message))?;
        }
        for (key_name, value) in map {
            let Some(key) = AppKey::parse(key_name) else {
                return Err(ConfigError::app(
                    origin,
                    draft.label(),
                    Some(key_name),
                    unknown_app_key(key_name),
                ));
            };
            if key != AppKey::Name {
                draft.set(key, value).map_err(|message| {
                    ConfigError::app(origin, draft.label(), Some(key_name), message)
                })?;
            }
        }
        draft.check()?;
        Ok(draft)
    }
}

/// Reads an `applications` array and checks that names are unique in it.
pub(crate) fn applications(value: &Json<'_>, origin: &Origin) -> Result<Vec<Draft>, ConfigError> {
    let Json::Array(items) = value else {
        return Err(ConfigError::top(
            origin,
            "applications",
            format!(
                "expected an array of application objects, got {}",
                describe(value)
            ),
        ));
    };
    // Sized up front: collecting `Result`s cannot, and a draft is large.
    let mut drafts = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        drafts.push(Draft::from_json(item, index, origin)?);
    }
    check_unique_names(&drafts)?;
    Ok(drafts)
}

/// Two apps of one name in one file would silently replace each other in the
/// daemon; FinalPM kept the last. A copy-paste slip is far more likely than
/// intent, so it is an error.
pub(crate) fn check_unique_names(drafts: &[Draft]) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(drafts.len());
    for (index, draft) in drafts.iter().enumerate() {
        if let Some(first) = seen.insert(&draft.app.name, index) {
            return Err(ConfigError::app(
                draft.blame(),
                draft.label(),
                Some("name"),
                format!(
                    "defined twice (applications[{first}] and applications[{index}]); names must be unique \
                     within a file"
                ),
            ));
        }
    }
    Ok(())
}

fn expected(what: &str, value: &Json<'_>) -> String {
    format!("expected {what}, got {}", describe(value))
}

/// A non-empty string.
pub(crate) fn string(value: &Json<'_>) -> Result<String, String> {
    match value {
        Json::String(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(expected("a non-empty string", value)),
    }
}

fn optional_string(value: &Json<'_>) -> Result<Option<String>, String> {
    match value {
        Json::Null => Ok(None),
        Json::String(s) if !s.is_empty() => Ok(Some(s.to_string())),
        _ => Err(expected("a non-empty string or null", value)),
    }
}

/// An array of non-empty strings (FinalPM refused empty arguments too).
pub(crate) fn strings(value: &Json<'_>) -> Result<Vec<String>, String> {
    const WHAT: &str = "an array of non-empty strings such as [\"a\", \"b\"]";
    let Json::Array(items) = value else {
        return Err(expected(WHAT, value));
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Json::String(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(format!(
                "expected {WHAT}, got {} at index {index}",
                describe(item)
            )),
        })
        .collect()
}

fn name(value: &Json<'_>) -> Result<String, String> {
    const WHAT: &str = "a name of letters, digits, \"_\" and \"-\" that does not start with \"-\" and is not \"all\"";
    match value {
        Json::String(s) if is_valid_name(s) => Ok(s.to_string()),
        _ => Err(expected(WHAT, value)),
    }
}

/// `[A-Za-z0-9_-]+`, not starting with `-` (it would read as an option) and
/// not `all` (a selector keyword).
pub(crate) fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name != "all"
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn choice<T: Copy>(value: &Json<'_>, options: &[(&str, T)]) -> Result<T, String> {
    if let Json::String(s) = value
        && let Some((_, parsed)) = options.iter().find(|(option, _)| option == s)
    {
        return Ok(*parsed);
    }
    let listed: Vec<String> = options
        .iter()
        .map(|(option, _)| format!("\"{option}\""))
        .collect();
    Err(expected(&format!("one of {}", listed.join(", ")), value))
}

/// A boolean, or `"true"`/`"false"` in any case (the form `--set` gives).
pub(crate) fn boolean(value: &Json<'_>) -> Result<bool, String> {
    match value {
        Json::Bool(b) => Ok(*b),
        Json::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
        Json::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(expected("true or false", value)),
    }
}

/// An integer in `min..=max`, from a JSON number or a numeric string.
fn integer(value: &Json<'_>, min: i64, max: i64, what: &str) -> Result<i64, String> {
    let number = match value {
        Json::Number(n) => n.as_i64().or_else(|| whole(n.as_f64())),
        Json::String(s) => whole(s.trim().parse::<f64>().ok()),
        _ => None,
    };
    match number {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(expected(what, value)),
    }
}

/// `x` as an integer if it is finite and whole (JSON's `3.0` is 3, and
/// numeric strings may be written `"1e3"`).
fn whole(x: Option<f64>) -> Option<i64> {
    let x = x?;
    #[expect(
        clippy::cast_possible_truncation,
        reason = "x is whole and within ±2^53, so exact"
    )]
    (x.is_finite() && x.fract() == 0.0 && x.abs() <= MAX_SAFE_INTEGER as f64).then_some(x as i64)
}

fn optional_milliseconds(value: &Json<'_>) -> Result<Option<u64>, String> {
    if value.is_null() {
        return Ok(None);
    }
    integer(
        value,
        1,
        MAX_SAFE_INTEGER,
        "a positive number of milliseconds or null",
    )
    .map(|n| Some(unsigned(n)))
}

/// `n` as u64; callers pass values already checked to be ≥ 0.
fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `n` as u32; callers pass values already checked to be in 0..=65536.
fn narrow(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

/// An `env` object: names that a process environment can hold, values that
/// are strings, numbers or booleans (numbers and booleans as their JSON text,
/// which is what Node's spawn made of them).
fn environment(value: &Json<'_>) -> Result<BTreeMap<String, String>, String> {
    let Json::Object(map) = value else {
        return Err(expected(
            "an object of environment variables such as {\"PORT\": \"8080\"}",
            value,
        ));
    };
    let mut env = BTreeMap::new();
    for (name, value) in map {
        if !is_valid_env_name(name) {
            return Err(format!(
                "variable {}: expected a name that is not empty and has no \"=\" or NUL",
                quoted(name)
            ));
        }
        let text = match value {
            Json::String(s) => s.to_string(),
            Json::Number(n) => n.to_string(),
            Json::Bool(b) => b.to_string(),
            _ => {
                return Err(format!(
                    "variable \"{name}\": expected a string, number or boolean, got {}",
                    describe(value)
                ));
            }
        };
        if text.contains('\0') {
            return Err(format!(
                "variable \"{name}\": the value contains a NUL character"
            ));
        }
        env.insert(name.to_string(), text);
    }
    Ok(env)
}

/// Whether `name` can be an environment variable name.
pub(crate) fn is_valid_env_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}
