//! The configuration loader: `process-config.json`/`.js` files, `--set` and
//! `FINAL_PM_CONFIG_*` overrides → validated, path-resolved
//! [`AppConfig`]s, grouped by daemon socket.
//!
//! # Theory of operation
//!
//! 1. **Overrides first.** `--set` arguments and `FINAL_PM_CONFIG_*`
//!    variables are parsed before any file is read (`overrides`), so a typo
//!    on the command line is reported even without a config file, and the
//!    keys that decide how files are read (`npm-global-config`,
//!    `npm-user-config`) and `ignore-env` are known up front. These three
//!    come only from overrides: in a file they would have no effect, which is
//!    an error.
//! 2. **Discovery.** Each `-c` value (or `.`) is resolved to a file: a file is
//!    itself; a folder is searched for `process-config.js`, then
//!    `process-config.json`, then its parents, stopping after the user's home
//!    or `/` (`discover`). A `-c` that finds nothing is an error; finding
//!    nothing without `-c` gives settings without apps.
//! 3. **Reading.** The config environment (the CLI's environment plus
//!    `npm_package_config_*` from the nearest `package.json`, `npm`) is
//!    built; a `.json` file is parsed, a `.js` file is evaluated by Node with
//!    that environment (`js`). Every key is converted to its type and
//!    validated as soon as it is read (`keys`), with the file as origin.
//! 4. **Overrides applied**, per file, environment variables first and then
//!    `--set`, each in the order given; a failing value is blamed on its
//!    argument or variable. An application override applies to every file
//!    that defines the app and must match in at least one file.
//! 5. **Finishing.** Paths are resolved (`home` and `base-path` against the
//!    CLI's cwd, the socket and `daemon-log` against `home`, `cwd` against
//!    `base-path`, `run` against `cwd`), each app's environment becomes the
//!    config environment with the app's own `env` on top, and `ignore-env`
//!    and the file path are stamped on every app.
//! 6. **Grouping.** Configurations with the same socket talk to the same
//!    daemon: their apps are merged by name (the last definition wins and
//!    keeps the first one's position), the last configuration's `home` and
//!    `daemon-log` are used.
//!
//! Only the first problem is reported, as a [`ConfigError`] that names the
//! file (or `--set` argument, or variable), the application, the key, the
//! value and what was expected. Values are stored typed (`"3"` from the
//! command line becomes `3`), so the daemon compares revisions strictly.
//!
//! The whole load is synchronous: it reads a few small files and, for JS
//! configs, waits for `node`. A JSON config is parsed into a tree that
//! borrows its strings from the file's text (`json`), and each app's
//! environment shares the config environment, so an app costs a few
//! allocations beyond the strings it keeps.

mod discover;
mod error;
mod js;
mod json;
mod keys;
mod npm;
mod overrides;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use final_pm_daemon::paths;
use final_pm_protocol::AppConfig;
use serde_json::Value;

pub(crate) use self::discover::resolve_config;
pub use self::error::{AppLabel, ConfigError, Origin};
use self::error::{describe, suggest};
use self::json::Json;
pub use self::keys::{AppKey, DEFAULT_IGNORE_ENV, Draft, TopKey};
use self::overrides::{Globals, Top};

/// What the CLI knows when it loads configurations.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The CLI's working directory (absolute): base of `-c`, `home` and
    /// `base-path`.
    pub cwd: PathBuf,
    /// The `-c` values as given; empty = search from `.`, and finding nothing
    /// is fine.
    pub configs: Vec<String>,
    /// The `--set` values as given.
    pub sets: Vec<String>,
    /// The CLI's environment, in order (a later duplicate wins). Apps get it,
    /// and `FINAL_PM_CONFIG_*` and `HOME` are read from it, never from the
    /// process, so tests and the daemon see exactly what the CLI saw.
    pub env: Vec<(String, String)>,
}

impl LoadOptions {
    /// The options of this process: its working directory and environment,
    /// with the given `-c` and `--set` values.
    ///
    /// Variables that are not UTF-8 cannot be configuration; they are left
    /// out of what apps inherit too, rather than mangled.
    pub fn from_process(configs: Vec<String>, sets: Vec<String>) -> Self {
        Self {
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            configs,
            sets,
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }
}

/// The configuration for one daemon (one socket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The state directory (absolute).
    pub home: PathBuf,
    /// The control socket (absolute).
    pub socket: PathBuf,
    /// Where the daemon's output goes (absolute).
    pub daemon_log: PathBuf,
    /// The applications, unique by name, in definition order.
    pub apps: Vec<AppConfig>,
    /// The configuration files that contributed, in load order.
    pub config_paths: Vec<PathBuf>,
}

/// Loads, validates and resolves every configuration, grouped by socket.
///
/// Without any configuration file the result is one [`Settings`] with no
/// apps (overrides still set `home`, `socket` and `daemon-log`).
pub fn load(opts: &LoadOptions) -> Result<Vec<Settings>, ConfigError> {
    let overrides = overrides::parse(&opts.sets, &opts.env)?;
    let context = Context::new(opts, &Globals::from_overrides(&overrides));
    let files = locate(opts, &context.user_home)?;
    let mut matched = vec![false; overrides.len()];
    let mut loaded = Vec::with_capacity(files.len().max(1));
    if files.is_empty() {
        loaded.push(load_one(None, &context, &overrides, &mut matched)?);
    }
    for file in &files {
        loaded.push(load_one(Some(file), &context, &overrides, &mut matched)?);
    }
    overrides::check_matched(&overrides, &matched, &files)?;
    Ok(group(loaded))
}

/// Everything that is the same for all files of one load.
struct Context<'a> {
    /// The CLI's cwd.
    cwd: &'a Path,
    /// The user's home directory: where upward searches stop.
    user_home: PathBuf,
    /// final-pm's home unless configured.
    default_home: PathBuf,
    /// The CLI's environment, shared by every app that inherits it unchanged.
    env: Arc<BTreeMap<String, String>>,
    /// `ignore-env`, shared by every app.
    ignore_env: Arc<[String]>,
    /// `npm-global-config`, absolute.
    npm_global_config: PathBuf,
    /// `npm-user-config`, absolute.
    npm_user_config: PathBuf,
}

impl<'a> Context<'a> {
    fn new(opts: &'a LoadOptions, globals: &Globals) -> Self {
        let env: BTreeMap<String, String> = opts.env.iter().cloned().collect();
        // `$HOME`, as decided for bug 12 (FinalPM used the password
        // database, which is now only the fallback when HOME is unset).
        let env_home = env
            .get("HOME")
            .map(String::as_str)
            .filter(|home| !home.is_empty());
        let default_home = paths::default_home(env_home);
        let user_home = match env_home {
            Some(home) => paths::resolve(&opts.cwd, home),
            None => default_home
                .parent()
                .map_or_else(|| PathBuf::from("/"), Path::to_owned),
        };
        let resolve = |value: &Option<String>, default: PathBuf| {
            value
                .as_deref()
                .map_or(default, |path| paths::resolve(&opts.cwd, path))
        };
        Self {
            cwd: &opts.cwd,
            npm_global_config: resolve(&globals.npm_global_config, PathBuf::from("/etc/npmrc")),
            npm_user_config: resolve(&globals.npm_user_config, user_home.join(".npmrc")),
            ignore_env: match &globals.ignore_env {
                Some(names) => names.as_slice().into(),
                None => DEFAULT_IGNORE_ENV
                    .iter()
                    .map(|&name| name.to_owned())
                    .collect(),
            },
            user_home,
            default_home,
            env: Arc::new(env),
        }
    }
}

/// The configuration files to load: one per `-c` value (each must resolve),
/// or the one found from the cwd, if any.
fn locate(opts: &LoadOptions, user_home: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    if opts.configs.is_empty() {
        return Ok(resolve_config(&opts.cwd, Some(user_home))
            .into_iter()
            .collect());
    }
    opts.configs
        .iter()
        .map(|given| {
            let path = opts.cwd.join(given);
            resolve_config(&path, Some(user_home)).ok_or_else(|| ConfigError::NotFound {
                path: given.clone(),
                folder: path.is_dir(),
            })
        })
        .collect()
}

/// Reads one file (or none), applies the overrides and resolves everything.
fn load_one(
    file: Option<&Path>,
    cx: &Context<'_>,
    overrides: &[overrides::Override],
    matched: &mut [bool],
) -> Result<Settings, ConfigError> {
    let mut top = Top::default();
    let mut drafts = Vec::new();
    let mut env = Arc::clone(&cx.env);
    if let Some(file) = file {
        let npm_vars = npm::package_env(
            file,
            Some(&cx.user_home),
            &cx.npm_global_config,
            &cx.npm_user_config,
        )?;
        if !npm_vars.is_empty() {
            Arc::make_mut(&mut env).extend(npm_vars);
        }
        let origin = Origin::File(file.to_owned());
        let content = read_content(file, cx.cwd, &env)?;
        let document = match &content {
            Content::Text(text) => Json::parse(text)
                .map_err(|err| ConfigError::at(&origin, format!("invalid JSON: {err}")))?,
            Content::Evaluated(value) => Json::from(value),
        };
        read_top(&document, &origin, &mut top, &mut drafts)?;
    }
    overrides::apply(overrides, &mut top, &mut drafts, matched)?;
    keys::check_unique_names(&drafts)?;
    for draft in &drafts {
        draft.check()?;
    }
    finish(file, cx, top, drafts, &env)
}

/// What a configuration file holds: JSON text, or what Node evaluated a
/// script to.
enum Content {
    Text(String),
    Evaluated(Value),
}

/// The file's content: read, or evaluated by Node.
fn read_content(
    file: &Path,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Content, ConfigError> {
    let origin = Origin::File(file.to_owned());
    let name = file
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    if name.ends_with(".json") {
        fs::read_to_string(file)
            .map(Content::Text)
            .map_err(|source| ConfigError::Io {
                path: file.to_owned(),
                action: "read the configuration file",
                source,
            })
    } else if name.ends_with(".js") {
        js::evaluate(file, cwd, env).map(Content::Evaluated)
    } else {
        Err(ConfigError::at(
            &origin,
            "unknown file extension: expected a .json or .js configuration file (the extension is case-sensitive)",
        ))
    }
}

/// Reads the top level of a file's configuration object.
fn read_top(
    document: &Json<'_>,
    origin: &Origin,
    top: &mut Top,
    drafts: &mut Vec<Draft>,
) -> Result<(), ConfigError> {
    let Json::Object(map) = document else {
        return Err(ConfigError::at(
            origin,
            format!(
                "expected a configuration object such as {{\"applications\": [...]}}, got {}",
                describe(document)
            ),
        ));
    };
    // Reported before anything else, as FinalPM did: the user put a key in
    // the one place where it cannot work.
    if let Some(key) = TopKey::ALL
        .into_iter()
        .find(|key| key.only_outside_files() && document.get(key.as_str()).is_some())
    {
        return Err(ConfigError::top(
            origin,
            key.as_str(),
            "npm-global-config, npm-user-config and ignore-env will have no effect if specified in a config file \
             (the npm keys are needed before the file is read, ignore-env applies to all files alike); use \
             --set KEY=VALUE or a FINAL_PM_CONFIG_* environment variable instead",
        ));
    }
    for (key, value) in map {
        let string = |value: &Json<'_>| {
            keys::string(value)
                .map(|text| (text, origin.clone()))
                .map_err(|message| ConfigError::top(origin, key, message))
        };
        match key.as_ref() {
            "home" => top.home = Some(string(value)?),
            "socket" => top.socket = Some(string(value)?),
            "daemon-log" => top.daemon_log = Some(string(value)?),
            "applications" => *drafts = keys::applications(value, origin)?,
            "config-path" | "socket-path" | "socket-host" | "socket-port" | "is-local" => {
                return Err(ConfigError::top(
                    origin,
                    key,
                    "is derived by final-pm and cannot be set; remove it",
                ));
            }
            _ => return Err(ConfigError::top(origin, key, unknown_file_key(key))),
        }
    }
    Ok(())
}

fn unknown_file_key(key: &str) -> String {
    const FILE_KEYS: [&str; 4] = ["home", "socket", "daemon-log", "applications"];
    if AppKey::parse(key).is_some() {
        return "is an application key: put it into an object of the \"applications\" array"
            .to_owned();
    }
    let hint = suggest(key, FILE_KEYS)
        .map(|close| format!("; did you mean \"{close}\"?"))
        .unwrap_or_default();
    format!(
        "doesn't match any known configuration key (top-level keys in a file: {}){hint}",
        FILE_KEYS.join(", ")
    )
}

/// Resolves the paths of one configuration and turns its drafts into apps.
fn finish(
    file: Option<&Path>,
    cx: &Context<'_>,
    top: Top,
    drafts: Vec<Draft>,
    env: &Arc<BTreeMap<String, String>>,
) -> Result<Settings, ConfigError> {
    let home = top.home.map_or_else(
        || cx.default_home.clone(),
        |(home, _)| paths::resolve(cx.cwd, &home),
    );
    let socket = match &top.socket {
        Some((value, origin)) => paths::parse_socket(value, &home)
            .map_err(|err| ConfigError::top(origin, TopKey::Socket.as_str(), err.to_string()))?,
        None => home.join(paths::DEFAULT_SOCKET),
    };
    let daemon_log = paths::resolve(
        &home,
        top.daemon_log
            .as_ref()
            .map_or(paths::DEFAULT_DAEMON_LOG, |(log, _)| log),
    );
    let default_base = paths::normalize(file.and_then(Path::parent).unwrap_or(cx.cwd));
    let config_path = match file {
        Some(file) => Some(file.to_str().map(str::to_owned).ok_or_else(|| {
            ConfigError::at(
                &Origin::File(file.to_owned()),
                "the file's path is not valid UTF-8; rename or move it",
            )
        })?),
        None => None,
    };
    let mut apps = Vec::with_capacity(drafts.len());
    for draft in drafts {
        apps.push(finish_app(
            draft,
            cx,
            &default_base,
            env,
            config_path.as_ref(),
        )?);
    }
    Ok(Settings {
        home,
        socket,
        daemon_log,
        apps,
        config_paths: file.map(Path::to_owned).into_iter().collect(),
    })
}

fn finish_app(
    draft: Draft,
    cx: &Context<'_>,
    default_base: &Path,
    env: &Arc<BTreeMap<String, String>>,
    config_path: Option<&String>,
) -> Result<AppConfig, ConfigError> {
    let Draft {
        mut app,
        base_path,
        origin,
        changed_by,
    } = draft;
    let base = match base_path {
        Some(base) => Cow::Owned(paths::resolve(cx.cwd, &base)),
        None => Cow::Borrowed(default_base),
    };
    let cwd = paths::resolve(&base, &app.cwd);
    let run = paths::resolve(&cwd, &app.run);
    let utf8 = |path: PathBuf, key: &str| {
        path.into_os_string().into_string().map_err(|path| {
            ConfigError::app(
                changed_by.as_ref().unwrap_or(&origin),
                AppLabel::Named(app.name.clone()),
                Some(key),
                format!(
                    "the resolved path {} is not valid UTF-8",
                    Path::new(&path).display()
                ),
            )
        })
    };
    let cwd = utf8(cwd, "cwd")?;
    let run = utf8(run, "run")?;
    app.cwd = cwd;
    app.run = run;
    // The app's own variables go over the config environment, which all
    // apps of the file share.
    app.env = std::mem::take(&mut app.env).inheriting(Arc::clone(env));
    app.ignore_env = Arc::clone(&cx.ignore_env);
    app.config_path = config_path.cloned();
    Ok(app)
}

/// Merges configurations that share a socket (spec §3.9).
fn group(loaded: Vec<Settings>) -> Vec<Settings> {
    let mut groups: Vec<Settings> = Vec::with_capacity(loaded.len());
    for settings in loaded {
        let Some(group) = groups
            .iter_mut()
            .find(|group| group.socket == settings.socket)
        else {
            groups.push(settings);
            continue;
        };
        group.home = settings.home;
        group.daemon_log = settings.daemon_log;
        for app in settings.apps {
            match group
                .apps
                .iter_mut()
                .find(|existing| existing.name == app.name)
            {
                Some(existing) => *existing = app,
                None => group.apps.push(app),
            }
        }
        for path in settings.config_paths {
            if !group.config_paths.contains(&path) {
                group.config_paths.push(path);
            }
        }
    }
    groups
}
