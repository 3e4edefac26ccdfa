//! What can go wrong while loading a configuration, said so that the user can
//! fix it without reading the loader.
//!
//! Every value carries an [`Origin`] from the moment it is read, so a problem
//! is reported against the place the user must edit: the file, the `--set`
//! argument or the environment variable. The message then names the
//! application and the key, shows the offending value and says what was
//! expected:
//!
//! ```text
//! /p/process-config.json: application "web": key "instances": expected an integer from 1 to 65536, got -3
//! ```

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::json::Json;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A configuration file (absolute path).
    File(PathBuf),
    /// A `--set` argument (the argument as given, shown in messages so the
    /// user sees which of several `--set` is meant).
    CommandLine(String),
    /// A `FINAL_PM_CONFIG_*` variable (the name only: values may be secrets).
    Environment(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::CommandLine(arg) => write!(f, "command line (--set {arg})"),
            Self::Environment(var) => write!(f, "environment ({var})"),
        }
    }
}

/// How an application is named in a message: by its name once that is known,
/// else by its position in `applications` (an app whose `name` is not a
/// string has no name to show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppLabel {
    /// The app's name (possibly invalid, shown as written).
    Named(String),
    /// Zero-based index in the `applications` array.
    Index(usize),
}

impl fmt::Display for AppLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Named(name) => write!(f, "application \"{name}\""),
            Self::Index(index) => write!(f, "applications[{index}]"),
        }
    }
}

/// A configuration that cannot be used.
///
/// The CLI prints it once (`final-pm: error: {err}`) and exits 1; nothing in
/// the message depends on how the loader works inside.
#[derive(Debug)]
pub enum ConfigError {
    /// A `-c` path that names no file, and no configuration file was found
    /// by searching upwards from it.
    NotFound {
        /// The path as the user gave it.
        path: String,
        /// Whether it is a folder (searched in vain) rather than nothing.
        folder: bool,
    },
    /// A file that exists but cannot be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done, for the message ("read the configuration file").
        action: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// A value, key, syntax or script problem.
    Invalid {
        /// The file, `--set` argument or variable to edit.
        origin: Origin,
        /// The application concerned, if any.
        app: Option<AppLabel>,
        /// The key concerned, if any.
        key: Option<String>,
        /// The problem and what was expected; lowercase, no trailing period.
        message: String,
    },
}

impl ConfigError {
    /// A problem that is not about one application or key.
    pub(crate) fn at(origin: &Origin, message: impl Into<String>) -> Self {
        Self::Invalid {
            origin: origin.clone(),
            app: None,
            key: None,
            message: message.into(),
        }
    }

    /// A problem with a top-level key.
    pub(crate) fn top(origin: &Origin, key: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            origin: origin.clone(),
            app: None,
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// A problem with a key of an application.
    pub(crate) fn app(
        origin: &Origin,
        app: AppLabel,
        key: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid {
            origin: origin.clone(),
            app: Some(app),
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound { path, folder: true } => write!(
                f,
                "no configuration file found at: {path} (no process-config.js or process-config.json in it or in \
                 the folders above)"
            ),
            Self::NotFound {
                path,
                folder: false,
            } => {
                write!(
                    f,
                    "no configuration file found at: {path} (the path does not exist)"
                )
            }
            Self::Io {
                path,
                action,
                source,
            } => write!(f, "{}: cannot {action}: {source}", path.display()),
            Self::Invalid {
                origin,
                app,
                key,
                message,
            } => {
                write!(f, "{origin}: ")?;
                if let Some(app) = app {
                    write!(f, "{app}: ")?;
                }
                if let Some(key) = key {
                    write!(f, "key \"{key}\": ")?;
                }
                f.write_str(message)
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A short rendering of a JSON value for "got …" in messages: scalars as
/// JSON text, long strings cut, containers by kind only (they can be large
/// and the key already says where to look).
pub(crate) fn describe(value: &Json<'_>) -> String {
    const MAX: usize = 60;
    match value {
        Json::Null => "null".to_owned(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) if s.chars().count() > MAX => {
            let cut: String = s.chars().take(MAX).collect();
            format!("{}…", quoted(&cut))
        }
        Json::String(s) => quoted(s),
        Json::Array(items) if items.is_empty() => "an empty array".to_owned(),
        Json::Array(_) => "an array".to_owned(),
        Json::Object(_) => "an object".to_owned(),
    }
}

/// `text` as a JSON string, quoted and escaped.
pub(crate) fn quoted(text: &str) -> String {
    // Serializing a string cannot fail; the fallback only avoids a panic path.
    serde_json::to_string(text).unwrap_or_else(|_| format!("{text:?}"))
}

/// The known name closest to `unknown`, if it is close enough to be a typo
/// (edit distance at most a third of its length, and at most 3).
pub(crate) fn suggest<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (unknown.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .map(|candidate| (edit_distance(unknown, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance over chars; the inputs are key names, a few dozen
/// chars at most.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}
