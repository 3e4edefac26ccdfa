//! npm package configuration for the apps' environment (spec §3.6).
//!
//! FinalPM gave config scripts and apps the variables `npm run` would set:
//! `npm_package_config_<key>` for every key of the `config` object of the
//! nearest `package.json` at or above the configuration file, overlaid by
//! `<package-name>:<key>=value` entries of three INI files, in increasing
//! priority: `<package dir>/npmrc`, `npm-global-config` (default
//! `/etc/npmrc`) and `npm-user-config` (default `~/.npmrc`). Apps that read
//! `process.env.npm_package_config_port` keep working. This is plain file
//! parsing; Node is not involved.

use std::fs;
use std::io;
use std::path::Path;

use serde_json::Value;

use super::discover::find_package_dir;
use super::error::{ConfigError, Origin, quoted};
use super::keys::is_valid_env_name;

/// The prefix npm gives package configuration variables.
const PREFIX: &str = "npm_package_config_";

/// The `npm_package_config_*` variables for a configuration file at
/// `config_file`, in the order they are set (later wins).
pub(crate) fn package_env(
    config_file: &Path,
    home_dir: Option<&Path>,
    global_config: &Path,
    user_config: &Path,
) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(dir) = config_file
        .parent()
        .and_then(|start| find_package_dir(start, home_dir))
    else {
        return Ok(Vec::new());
    };
    let manifest_path = dir.join("package.json");
    let manifest = read_optional(&manifest_path)?.unwrap_or_default();
    let origin = Origin::File(manifest_path);
    let manifest: Value = serde_json::from_str(&manifest)
        .map_err(|err| ConfigError::at(&origin, format!("invalid JSON in package.json: {err}")))?;
    let mut vars = Vec::new();
    if let Some(Value::Object(config)) = manifest.get("config") {
        for (key, value) in config {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            push(&mut vars, key, text, &origin)?;
        }
    }
    // Overlays need the package's name: their keys are `<name>:<key>`.
    let Some(name) = manifest.get("name").and_then(Value::as_str) else {
        return Ok(vars);
    };
    for overlay in [
        dir.join("npmrc"),
        global_config.to_owned(),
        user_config.to_owned(),
    ] {
        let Some(text) = read_optional(&overlay)? else {
            continue;
        };
        let origin = Origin::File(overlay);
        for (key, value) in parse_ini(&text) {
            if let Some(key) = key
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(':'))
            {
                push(&mut vars, key, value, &origin)?;
            }
        }
    }
    Ok(vars)
}

fn push(
    vars: &mut Vec<(String, String)>,
    key: &str,
    value: String,
    origin: &Origin,
) -> Result<(), ConfigError> {
    let name = format!("{PREFIX}{key}");
    if !is_valid_env_name(&name) || value.contains('\0') {
        return Err(ConfigError::top(
            origin,
            key,
            format!(
                "cannot be passed as environment variable {}: names must not contain \"=\" or NUL, values not NUL",
                quoted(&name)
            ),
        ));
    }
    vars.push((name, value));
    Ok(())
}

/// A file's text, or `None` when it does not exist (every npm file is
/// optional); other failures are reported, since silently skipping an
/// unreadable overlay would give the apps different values than intended.
fn read_optional(path: &Path) -> Result<Option<String>, ConfigError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Io {
            path: path.to_owned(),
            action: "read the npm configuration file",
            source,
        }),
    }
}

/// The top-level `key = value` entries of an npmrc file, as npm's `ini`
/// reads them: `;`/`#` comment lines, `[section]` headers (whose entries are
/// not top-level and so skipped), a key without `=` meaning `true`, quoted
/// values unquoted, and an unquoted value cut at a `;` or `#` comment.
pub(crate) fn parse_ini(text: &str) -> Vec<(&str, String)> {
    let mut entries = Vec::new();
    let mut in_section = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with([';', '#']) {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            in_section = true;
            continue;
        }
        if in_section {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((key, value)) => (key.trim(), ini_value(value.trim())),
            None => (line, "true".to_owned()),
        };
        if !key.is_empty() && !key.ends_with("[]") {
            entries.push((key, value));
        }
    }
    entries
}

fn ini_value(raw: &str) -> String {
    let quoted = |q: char| raw.len() >= 2 && raw.starts_with(q) && raw.ends_with(q);
    if quoted('"') {
        if let Ok(Value::String(s)) = serde_json::from_str(raw) {
            return s;
        }
        return raw[1..raw.len() - 1].to_owned();
    }
    if quoted('\'') {
        return raw[1..raw.len() - 1].to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut escaped = false;
    for c in raw.chars() {
        if escaped {
            // Only `\;`, `\#` and `\\` are escapes; other backslashes stay.
            if !matches!(c, '\\' | ';' | '#') {
                out.push('\\');
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ';' || c == '#' {
            break;
        } else {
            out.push(c);
        }
    }
    if escaped {
        out.push('\\');
    }
    out.trim().to_owned()
}
