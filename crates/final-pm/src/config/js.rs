//! JavaScript configuration files, evaluated by Node (spec §3.7).
//!
//! A `.js` config may export an object, a promise of one, or a function
//! (called with a frozen, prototype-less `this`) returning either. final-pm
//! runs `node -e <EVALUATOR> -- <result file> <config file>` with the config
//! environment and reads the outcome from the result file, one JSON message
//! per line:
//!
//! - `{"result": …}` when the export has settled;
//! - `{"error": {"message": …}}` for anything thrown, rejected, or raised
//!   later as an uncaught exception or unhandled rejection (the evaluator
//!   then exits 1);
//! - whatever the script itself passes to `process.send` (there is no IPC
//!   channel, so the evaluator provides `process.send`), as FinalPM's config
//!   runner received it over IPC.
//!
//! A file rather than stdout carries the result, so the script's own output
//! cannot be mistaken for it and a grandchild holding stdout open cannot
//! hang the load; the script's stdout goes to our stderr, so the CLI's
//! `--json` output stays clean. The evaluator is left to exit by itself, so
//! an error thrown after the result (a late timer) is still seen: an error
//! beats a result, as in FinalPM.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::error::{ConfigError, Origin, describe};

/// After this long a still-running config script gets a warning: it probably
/// keeps a timer or a socket open and will never exit.
const SLOW: Duration = Duration::from_secs(10);

/// The evaluator run by `node -e`. `process.argv` is `[node, out, file]`.
const EVALUATOR: &str = r#"'use strict';
const fs = require('fs');
const [, out, file] = process.argv;
const emit = (message) => {
  let line;
  try {
    line = JSON.stringify(message === undefined ? null : message);
  } catch (error) {
    line = JSON.stringify({ error: { message: 'the configuration cannot be converted to JSON: ' + error.message } });
  }
  fs.appendFileSync(out, line + '\n');
};
const fail = (error) => {
  const message = error && typeof error.message === 'string' ? error.message
    : typeof error === 'string' ? error : null;
  emit({ error: { message } });
  process.exit(1);
};
process.on('uncaughtException', fail);
process.on('unhandledRejection', fail);
if (typeof process.send !== 'function') {
  process.send = (message, ...rest) => {
    emit(message);
    const callback = rest.find((arg) => typeof arg === 'function');
    if (callback) process.nextTick(callback, null);
    return true;
  };
}
const load = () => {
  let exported;
  try {
    exported = require(file);
  } catch (error) {
    if (error && error.code === 'ERR_REQUIRE_ESM') {
      return import(require('url').pathToFileURL(file).href).then((ns) => ns.default);
    }
    throw error;
  }
  return exported && exported[Symbol.toStringTag] === 'Module' ? exported.default : exported;
};
Promise.resolve()
  .then(load)
  .then((exported) => typeof exported === 'function' ? exported.call(Object.freeze(Object.create(null))) : exported)
  .then((result) => emit({ result: result === undefined ? null : result }), fail);
"#;

/// Evaluates the JS config at `path` in `cwd` with environment `env` and
/// returns its configuration object.
pub(crate) fn evaluate(
    path: &Path,
    cwd: &Path,
    env: &BTreeMap<String, String>,
) -> Result<Value, ConfigError> {
    let origin = Origin::File(path.to_owned());
    let results = ResultFile::create().map_err(|source| ConfigError::Io {
        path: std::env::temp_dir(),
        action: "create a temporary file for the result of a JavaScript configuration",
        source,
    })?;
    let spawned = Command::new("node")
        .arg("-e")
        .arg(EVALUATOR)
        .arg("--")
        .arg(&results.path)
        .arg(path)
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::from(io::stderr()))
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) if err.kind() == io::ErrorKind::NotFound && cwd.is_dir() => {
            return Err(ConfigError::at(
                &origin,
                "JavaScript configuration files need Node.js, but \"node\" was not found on PATH: install \
                 Node.js, or write the configuration as JSON (process-config.json)",
            ));
        }
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_owned(),
                action: "start node to evaluate",
                source,
            });
        }
    };
    let (done, finished) = mpsc::channel::<()>();
    let shown = path.display().to_string();
    let watcher = std::thread::spawn(move || {
        if finished.recv_timeout(SLOW) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!(
                "final-pm: warning: loading {shown} is taking a long time; make sure it terminates"
            );
        }
    });
    let status = child.wait();
    drop(done);
    let _ = watcher.join();
    let status = status.map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        action: "wait for node",
        source,
    })?;
    let text = fs::read_to_string(&results.path).map_err(|source| ConfigError::Io {
        path: results.path.clone(),
        action: "read the result of a JavaScript configuration",
        source,
    })?;
    let messages = text
        .lines()
        .map(serde_json::from_str::<Value>)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            ConfigError::at(
                &origin,
                format!("the config process sent an unreadable result: {err}"),
            )
        })?;
    outcome(messages, status, &origin)
}

/// What the script's messages and exit status amount to; the rules of
/// FinalPM's config runner, with the file path always attached (bug 13).
fn outcome(
    messages: Vec<Value>,
    status: ExitStatus,
    origin: &Origin,
) -> Result<Value, ConfigError> {
    enum State {
        Nothing,
        One(Value),
        Second,
        Failed(String),
    }
    let mut state = State::Nothing;
    for message in messages {
        if matches!(state, State::Failed(_)) {
            break;
        }
        if let Some(error) = reported_error(&message) {
            state = State::Failed(error);
            continue;
        }
        state = match state {
            State::Nothing => State::One(message),
            _ => State::Second,
        };
    }
    let failed = |message: String| Err(ConfigError::at(origin, message));
    match state {
        State::Failed(message) => failed(format!("the configuration script failed: {message}")),
        _ if !status.success() => match (status.code(), status.signal()) {
            (Some(code), _) => failed(format!("config process terminated with non-zero exit code: {code}")),
            (None, Some(signal)) => failed(format!("config process was killed by signal {signal}")),
            (None, None) => failed("config process terminated abnormally".to_owned()),
        },
        State::Nothing => failed(
            "config process terminated without any result (did the script call process.exit before its \
             configuration was ready?)"
                .to_owned(),
        ),
        State::Second => failed(
            "config process produced a second result: the script sent a message with process.send besides \
             exporting its configuration"
                .to_owned(),
        ),
        State::One(message) => match message.get("result") {
            Some(config @ Value::Object(_)) => Ok(config.clone()),
            other => failed(format!(
                "expected the script to export an object (or a promise of one, or a function returning \
                 either), got {}",
                other.map_or_else(|| "no value".to_owned(), |value| describe(&value.into()))
            )),
        },
    }
}

/// The error a message reports, if it is an error message: an object with a
/// truthy `error`, whose `message` (or itself, if a string) is the text.
fn reported_error(message: &Value) -> Option<String> {
    let error = message.get("error")?;
    let truthy = match error {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    };
    if !truthy {
        return None;
    }
    let text = match error {
        Value::String(s) => Some(s.as_str()),
        _ => error
            .get("message")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty()),
    };
    Some(
        text.unwrap_or("unknown error (the script reported an error without a message)")
            .to_owned(),
    )
}

/// A private, uniquely named file for the evaluator's messages; removed on
/// drop.
struct ResultFile {
    path: PathBuf,
}

impl ResultFile {
    fn create() -> io::Result<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir();
        let mut last_error = None;
        for _ in 0..16 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let count = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dir.join(format!(
                "final-pm-config-{}-{count}-{nanos}.ndjson",
                std::process::id()
            ));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => return Ok(Self { path }),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free temporary file name")))
    }
}

impl Drop for ResultFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}
