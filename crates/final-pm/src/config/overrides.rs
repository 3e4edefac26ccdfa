//! `--set` arguments and `FINAL_PM_CONFIG_*` variables.
//!
//! Both are parsed once, before any file is read, into [`Override`]s: the
//! syntax, JSON values, top-level keys and (for `--set`) application keys and
//! values are checked here, so a typo on the command line is reported even
//! when no configuration file is found. They are then applied to every loaded
//! file in order, environment first (so `--set` wins), after the file's own
//! values.
//!
//! An application override applies to each file that defines the app; it is
//! an error only if no loaded file does (FinalPM demanded the app in *every*
//! file, bug 9). An environment variable names its app only by prefix
//! (`FINAL_PM_CONFIG_WEB_READY_ON` = app `web`, key `ready-on`), so which app
//! it addresses is decided per file: the first app, in file order, whose
//! lower-cased name plus `-` starts the key and leaves a known key.

use std::path::PathBuf;

use serde_json::Value;

use super::error::{AppLabel, ConfigError, Origin, suggest};
use super::json::Json;
use super::keys::{self, AppKey, Draft, TopKey, is_valid_env_name, unknown_app_key};

/// The prefix of configuration variables.
const ENV_PREFIX: &str = "FINAL_PM_CONFIG_";

/// One `--set` argument or `FINAL_PM_CONFIG_*` variable.
#[derive(Debug, Clone)]
pub(crate) struct Override {
    /// The argument or variable, for messages.
    pub(crate) origin: Origin,
    /// What it sets.
    pub(crate) target: Target,
}

/// What an override sets.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A top-level key, already converted.
    Top(TopValue),
    /// `--set APP:KEY=VALUE`: the key of every app of that exact name.
    App {
        /// The app's name.
        name: String,
        /// The key.
        key: AppKey,
        /// The value, already checked against the key's type.
        value: Value,
    },
    /// `FINAL_PM_CONFIG_<APP>_<KEY>`: `<app>-<key>`, lower-cased, resolved
    /// against each file's apps.
    EnvApp {
        /// The variable's key, e.g. `web-ready-on`.
        key: String,
        /// The value, checked once the key is known.
        value: Value,
    },
}

/// A converted top-level value.
#[derive(Debug, Clone)]
pub(crate) enum TopValue {
    /// `home`.
    Home(String),
    /// `socket`.
    Socket(String),
    /// `daemon-log`.
    DaemonLog(String),
    /// `npm-global-config`.
    NpmGlobalConfig(String),
    /// `npm-user-config`.
    NpmUserConfig(String),
    /// `ignore-env`.
    IgnoreEnv(Vec<String>),
    /// `applications`: replaces the whole list.
    Applications(Vec<Draft>),
}

/// Parses the environment's `FINAL_PM_CONFIG_*` variables (in environment
/// order) and then the `--set` arguments, in the order they are applied.
pub(crate) fn parse(
    sets: &[String],
    env: &[(String, String)],
) -> Result<Vec<Override>, ConfigError> {
    let mut overrides = Vec::new();
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let origin = Origin::Environment(name.clone());
        let key = rest.to_ascii_lowercase().replace('_', "-");
        let value = parse_value(raw, &origin)?;
        let target = match TopKey::parse(&key) {
            Some(top) => Target::Top(top_value(top, &value, &origin)?),
            None => Target::EnvApp { key, value },
        };
        overrides.push(Override { origin, target });
    }
    for arg in sets {
        let origin = Origin::CommandLine(arg.clone());
        let Some((key, raw)) = arg.split_once('=') else {
            return Err(ConfigError::at(
                &origin,
                format!("expected '=' in \"{arg}\": write --set KEY=VALUE or --set APP:KEY=VALUE"),
            ));
        };
        let value = parse_value(raw, &origin)?;
        let target = match key.split_once(':') {
            None => {
                let Some(top) = TopKey::parse(key) else {
                    return Err(ConfigError::top(&origin, key, unknown_top_key(key)));
                };
                Target::Top(top_value(top, &value, &origin)?)
            }
            Some((app, key)) => {
                let label = || AppLabel::Named(app.to_owned());
                let Some(app_key) = AppKey::parse(key) else {
                    return Err(ConfigError::app(
                        &origin,
                        label(),
                        Some(key),
                        unknown_app_key(key),
                    ));
                };
                // Check the value now, so a bad value is reported even when
                // no file defines the app.
                Draft::new(&origin)
                    .set(app_key, &Json::from(&value))
                    .map_err(|message| ConfigError::app(&origin, label(), Some(key), message))?;
                Target::App {
                    name: app.to_owned(),
                    key: app_key,
                    value,
                }
            }
        };
        overrides.push(Override { origin, target });
    }
    Ok(overrides)
}

/// A value starting with `"`, `[` or `{` is JSON; anything else is the plain
/// string (which the key's converter may read as a number or boolean).
fn parse_value(raw: &str, origin: &Origin) -> Result<Value, ConfigError> {
    if raw.starts_with(['"', '[', '{']) {
        serde_json::from_str(raw).map_err(|err| {
            ConfigError::at(
                origin,
                format!("invalid JSON value '{raw}': {err} (values starting with '\"', '[' or '{{' are read as JSON)"),
            )
        })
    } else {
        Ok(Value::String(raw.to_owned()))
    }
}

fn top_value(key: TopKey, value: &Value, origin: &Origin) -> Result<TopValue, ConfigError> {
    let wrap = |message: String| ConfigError::top(origin, key.as_str(), message);
    let value = &Json::from(value);
    Ok(match key {
        TopKey::Home => TopValue::Home(keys::string(value).map_err(wrap)?),
        TopKey::Socket => TopValue::Socket(keys::string(value).map_err(wrap)?),
        TopKey::DaemonLog => TopValue::DaemonLog(keys::string(value).map_err(wrap)?),
        TopKey::NpmGlobalConfig => TopValue::NpmGlobalConfig(keys::string(value).map_err(wrap)?),
        TopKey::NpmUserConfig => TopValue::NpmUserConfig(keys::string(value).map_err(wrap)?),
        TopKey::IgnoreEnv => {
            let names = keys::strings(value).map_err(wrap)?;
            if let Some(bad) = names.iter().find(|name| !is_valid_env_name(name)) {
                return Err(wrap(format!(
                    "\"{bad}\" cannot be an environment variable name"
                )));
            }
            TopValue::IgnoreEnv(names)
        }
        TopKey::Applications => TopValue::Applications(keys::applications(value, origin)?),
    })
}

fn unknown_top_key(key: &str) -> String {
    let hint = match suggest(key, TopKey::ALL.map(TopKey::as_str)) {
        Some(close) => format!("; did you mean \"{close}\"?"),
        None => String::new(),
    };
    format!(
        "doesn't match any known configuration key (top-level keys: {}; an application's key is set with \
         APP:KEY=VALUE){hint}",
        keys::top_key_list()
    )
}

/// The settings that must be known before any file is read: they decide how
/// files are read (npm overlays) or apply to all files alike (`ignore-env`).
/// `None` = default.
#[derive(Debug, Default)]
pub(crate) struct Globals {
    /// `npm-global-config`.
    pub(crate) npm_global_config: Option<String>,
    /// `npm-user-config`.
    pub(crate) npm_user_config: Option<String>,
    /// `ignore-env`.
    pub(crate) ignore_env: Option<Vec<String>>,
}

impl Globals {
    /// The last value of each key among `overrides`.
    pub(crate) fn from_overrides(overrides: &[Override]) -> Self {
        let mut globals = Self::default();
        for item in overrides {
            match &item.target {
                Target::Top(TopValue::NpmGlobalConfig(path)) => {
                    globals.npm_global_config = Some(path.clone())
                }
                Target::Top(TopValue::NpmUserConfig(path)) => {
                    globals.npm_user_config = Some(path.clone())
                }
                Target::Top(TopValue::IgnoreEnv(names)) => globals.ignore_env = Some(names.clone()),
                _ => {}
            }
        }
        globals
    }
}

/// The per-file top-level values that overrides can change, each with where
/// it came from so that a later problem (a refused socket) names the right
/// place.
#[derive(Debug, Default)]
pub(crate) struct Top {
    /// `home`.
    pub(crate) home: Option<(String, Origin)>,
    /// `socket`.
    pub(crate) socket: Option<(String, Origin)>,
    /// `daemon-log`.
    pub(crate) daemon_log: Option<(String, Origin)>,
}

/// Applies every override, in order, to one file's top-level values and apps;
/// sets `matched[i]` when override `i` changed an app.
pub(crate) fn apply(
    overrides: &[Override],
    top: &mut Top,
    drafts: &mut Vec<Draft>,
    matched: &mut [bool],
) -> Result<(), ConfigError> {
    for (item, matched) in overrides.iter().zip(matched.iter_mut()) {
        let origin = &item.origin;
        match &item.target {
            Target::Top(value) => match value {
                TopValue::Home(home) => top.home = Some((home.clone(), origin.clone())),
                TopValue::Socket(socket) => top.socket = Some((socket.clone(), origin.clone())),
                TopValue::DaemonLog(log) => top.daemon_log = Some((log.clone(), origin.clone())),
                TopValue::Applications(apps) => drafts.clone_from(apps),
                // Read once before the files, see `Globals`.
                TopValue::NpmGlobalConfig(_)
                | TopValue::NpmUserConfig(_)
                | TopValue::IgnoreEnv(_) => {}
            },
            Target::App { name, key, value } => {
                for draft in drafts.iter_mut().filter(|draft| draft.app.name == *name) {
                    draft.set(*key, &Json::from(value)).map_err(|message| {
                        ConfigError::app(
                            origin,
                            AppLabel::Named(name.clone()),
                            Some(key.as_str()),
                            message,
                        )
                    })?;
                    draft.changed_by = Some(origin.clone());
                    *matched = true;
                }
            }
            Target::EnvApp { key, value } => {
                let found = drafts
                    .iter_mut()
                    .find_map(|draft| env_app_key(key, &draft.app.name).map(|k| (draft, k)));
                if let Some((draft, app_key)) = found {
                    draft.set(app_key, &Json::from(value)).map_err(|message| {
                        ConfigError::app(
                            origin,
                            AppLabel::Named(draft.app.name.clone()),
                            Some(app_key.as_str()),
                            message,
                        )
                    })?;
                    draft.changed_by = Some(origin.clone());
                    *matched = true;
                }
            }
        }
    }
    Ok(())
}

/// The app key that variable key `key` (`web-ready-on`) names for an app
/// called `app_name`, if it addresses that app at all.
fn env_app_key(key: &str, app_name: &str) -> Option<AppKey> {
    let n = app_name.len();
    let bytes = key.as_bytes();
    if bytes.len() > n + 1
        && bytes[..n].eq_ignore_ascii_case(app_name.as_bytes())
        && bytes[n] == b'-'
    {
        AppKey::parse(key.get(n + 1..)?)
    } else {
        None
    }
}

/// Fails for the first application override that changed no app in any
/// loaded file.
pub(crate) fn check_matched(
    overrides: &[Override],
    matched: &[bool],
    files: &[PathBuf],
) -> Result<(), ConfigError> {
    let loaded = if files.is_empty() {
        "no configuration file was found; name one with -c".to_owned()
    } else {
        let list: Vec<String> = files
            .iter()
            .map(|file| file.display().to_string())
            .collect();
        format!("loaded: {}", list.join(", "))
    };
    let unmatched = overrides
        .iter()
        .zip(matched)
        .find(|(item, matched)| !**matched && !matches!(item.target, Target::Top(_)));
    match unmatched.map(|(item, _)| item) {
        Some(Override {
            origin,
            target: Target::App { name, .. },
        }) => Err(ConfigError::app(
            origin,
            AppLabel::Named(name.clone()),
            None,
            format!("unknown application name: no loaded configuration file defines it ({loaded})"),
        )),
        Some(Override {
            origin,
            target: Target::EnvApp { .. },
        }) => Err(ConfigError::at(
            origin,
            format!(
                "doesn't match any known configuration key: expected FINAL_PM_CONFIG_<KEY> for a top-level key \
                 ({}) or FINAL_PM_CONFIG_<APP>_<KEY> for a key of an application of a loaded configuration file \
                 ({loaded})",
                keys::top_key_list()
            ),
        )),
        _ => Ok(()),
    }
}
