//! Finding configuration files and `package.json` by walking up from a
//! folder.
//!
//! Both walks stop after checking the user's home directory or the root, so a
//! project's configuration is found from any of its subfolders while a stray
//! `~/../process-config.json` of another user is never picked up.

use std::fs;
use std::path::{Path, PathBuf};

use final_pm_daemon::paths;

/// The file names looked for in each folder; the `.js` wins when both exist.
const CONFIG_NAMES: [&str; 2] = ["process-config.js", "process-config.json"];

/// Resolves a `-c` value (or `.`) to a configuration file (spec §1.7).
///
/// A relative `path` is taken relative to the process's working directory
/// (the CLI passes absolute paths, made from its own `cwd`). A path that is not a directory is returned as
/// is, whatever its name (an unknown extension is reported when it is read).
/// A directory is searched for `process-config.js`/`.json`, then its parents
/// up to `home_dir` or `/`. Candidates must not be directories: FinalPM
/// recursed forever on a *folder* named `process-config.js` (bug 35).
pub(crate) fn resolve_config(path: &Path, home_dir: Option<&Path>) -> Option<PathBuf> {
    let path = if path.is_absolute() {
        paths::normalize(path)
    } else {
        paths::normalize(&std::env::current_dir().ok()?.join(path))
    };
    if !fs::metadata(&path).ok()?.is_dir() {
        return Some(path);
    }
    walk_up(&path, home_dir, |dir| {
        CONFIG_NAMES
            .iter()
            .map(|name| dir.join(name))
            .find(|candidate| is_non_directory(candidate))
    })
}

/// The nearest folder at or above `start` that holds a `package.json`.
pub(crate) fn find_package_dir(start: &Path, home_dir: Option<&Path>) -> Option<PathBuf> {
    walk_up(start, home_dir, |dir| {
        is_non_directory(&dir.join("package.json")).then(|| dir.to_owned())
    })
}

/// Calls `check` on `start` and each parent until it returns something, or
/// until the home directory or the root has been checked.
fn walk_up<T>(
    start: &Path,
    home_dir: Option<&Path>,
    mut check: impl FnMut(&Path) -> Option<T>,
) -> Option<T> {
    let home_dir = home_dir.map(paths::normalize);
    let mut dir = start;
    loop {
        if let Some(found) = check(dir) {
            return Some(found);
        }
        if home_dir.as_deref() == Some(dir) {
            return None;
        }
        dir = dir.parent()?;
    }
}

/// Exists (following symlinks) and is not a directory.
fn is_non_directory(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| !meta.is_dir())
}
