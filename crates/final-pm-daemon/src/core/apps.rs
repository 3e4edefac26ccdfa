//! The app table and the revision rules of `add` (spec §3.10, with the
//! decisions: strict comparison, `ignore-env` names left out of it).
//!
//! The table maps a name to the current [`AppInfo`], in insertion order;
//! replacing an app keeps its position. Stored apps are immutable and shared
//! (`Arc`) with the processes created from them, so a process keeps the
//! revision it was created with and is *outdated* exactly when the table no
//! longer holds that revision.

use std::collections::BTreeMap;
use std::sync::Arc;

use final_pm_protocol::{AppConfig, AppInfo};

use super::error::{CommandError, ConfigProblem};

/// What `add` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddOutcome {
    /// The name was new.
    pub added: bool,
    /// Keys (kebab-case, as in config files) whose values changed; empty when
    /// the app was added or nothing changed.
    pub changed: Vec<String>,
    /// The app's current revision after the call.
    pub revision: u64,
}

/// name → current revision, insertion-ordered.
#[derive(Debug, Default)]
pub(crate) struct AppTable {
    apps: Vec<Arc<AppInfo>>,
    next_revision: u64,
}

impl AppTable {
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<AppInfo>> {
        self.apps.iter().find(|app| app.config.name == name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<AppInfo>> {
        self.apps.iter()
    }

    /// Whether `app` is the table's current revision of its name.
    pub(crate) fn is_current(&self, app: &AppInfo) -> bool {
        self.get(&app.config.name)
            .is_some_and(|current| current.revision == app.revision)
    }

    /// Applies the rules of §3.10. On success the table holds the app the
    /// outcome describes.
    pub(crate) fn add(
        &mut self,
        config: AppConfig,
        force: bool,
    ) -> Result<AddOutcome, CommandError> {
        validate(&config)?;
        let Some(position) = self
            .apps
            .iter()
            .position(|app| app.config.name == config.name)
        else {
            let revision = self.store(None, config);
            return Ok(AddOutcome {
                added: true,
                changed: Vec::new(),
                revision,
            });
        };
        let stored = &self.apps[position];
        if stored.config.builtin && !force {
            return Err(CommandError::BuiltinApp(config.name));
        }
        let changed = changed_keys(&stored.config, &config);
        if changed.is_empty() {
            return Ok(AddOutcome {
                added: false,
                changed,
                revision: stored.revision,
            });
        }
        if stored.config.config_path != config.config_path && !force {
            return Err(CommandError::ConfigPathChanged {
                name: config.name,
                old: stored.config.config_path.clone(),
                new: config.config_path,
            });
        }
        let revision = self.store(Some(position), config);
        Ok(AddOutcome {
            added: false,
            changed,
            revision,
        })
    }

    /// Removes the app; its processes keep their revision (and become
    /// outdated).
    pub(crate) fn delete(&mut self, name: &str, force: bool) -> Result<Arc<AppInfo>, CommandError> {
        let Some(position) = self.apps.iter().position(|app| app.config.name == name) else {
            return Err(CommandError::UnknownApp(name.to_owned()));
        };
        if self.apps[position].config.builtin && !force {
            return Err(CommandError::BuiltinApp(name.to_owned()));
        }
        Ok(self.apps.remove(position))
    }

    fn store(&mut self, position: Option<usize>, config: AppConfig) -> u64 {
        let revision = self.next_revision;
        self.next_revision += 1;
        let app = Arc::new(AppInfo { revision, config });
        match position {
            Some(position) => self.apps[position] = app,
            None => self.apps.push(app),
        }
        revision
    }
}

fn validate(config: &AppConfig) -> Result<(), CommandError> {
    let problem = if config.instances == 0 {
        ConfigProblem::ZeroInstances
    } else if config.max_instances != 0 && config.max_instances <= config.instances {
        ConfigProblem::MaxInstancesTooSmall {
            max: config.max_instances,
            instances: config.instances,
        }
    } else {
        return Ok(());
    };
    Err(CommandError::InvalidConfig {
        name: config.name.clone(),
        problem,
    })
}

/// The keys whose values differ, strictly compared, in a stable order;
/// empty means identical. `env` entries named in either app's `ignore-env`
/// are left out: their values are kept on upload but do not make an app
/// "changed" (decisions.md, bug 10).
///
/// The comparison goes through the JSON form so that a key added to
/// [`AppConfig`] is compared without touching this function, and the names
/// are exactly the config-file keys.
pub(crate) fn changed_keys(old: &AppConfig, new: &AppConfig) -> Vec<String> {
    let ignored: Vec<&str> = old
        .ignore_env
        .iter()
        .chain(new.ignore_env.iter())
        .map(String::as_str)
        .collect();
    let (old, new) = (comparable(old, &ignored), comparable(new, &ignored));
    let mut changed: Vec<String> = old
        .iter()
        .filter(|(key, value)| new.get(*key) != Some(value))
        .map(|(key, _)| key.clone())
        .collect();
    changed.extend(new.keys().filter(|key| !old.contains_key(*key)).cloned());
    changed
}

fn comparable(config: &AppConfig, ignored: &[&str]) -> BTreeMap<String, serde_json::Value> {
    let mut config = config.clone();
    config.env.retain(|name, _| !ignored.contains(&name));
    match serde_json::to_value(&config) {
        Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
        // AppConfig is a struct of strings, numbers, lists and string-keyed
        // maps: it always serializes to an object. Should that ever change,
        // fall back to comparing the whole value under one pseudo-key.
        Ok(other) => BTreeMap::from([("config".to_owned(), other)]),
        Err(err) => BTreeMap::from([("config".to_owned(), err.to_string().into())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str) -> AppConfig {
        AppConfig::new(name, "/srv", "/srv/app")
    }

    #[test]
    fn new_name_is_added_with_a_new_revision() {
        let mut table = AppTable::default();
        let a = table.add(app("a"), false).unwrap();
        let b = table.add(app("b"), false).unwrap();
        assert_eq!((a.added, a.revision), (true, 0));
        assert_eq!((b.added, b.revision), (true, 1));
    }

    #[test]
    fn identical_add_keeps_the_revision() {
        let mut table = AppTable::default();
        table.add(app("a"), false).unwrap();
        let again = table.add(app("a"), false).unwrap();
        assert_eq!(
            again,
            AddOutcome {
                added: false,
                changed: vec![],
                revision: 0
            }
        );
    }

    #[test]
    fn changed_add_lists_kebab_keys_and_keeps_position() {
        let mut table = AppTable::default();
        table.add(app("a"), false).unwrap();
        table.add(app("b"), false).unwrap();
        let mut changed = app("a");
        changed.instances = 3;
        changed.env.insert("X".into(), "1".into());
        changed.stop_timeout = Some(5);
        let outcome = table.add(changed, false).unwrap();
        assert_eq!(outcome.changed, ["env", "instances", "stop-timeout"]);
        assert_eq!(outcome.revision, 2);
        let names: Vec<_> = table.iter().map(|a| a.config.name.clone()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn ignored_env_names_do_not_make_a_change() {
        let mut table = AppTable::default();
        let mut first = app("a");
        first.ignore_env = vec!["HOME".to_owned()].into();
        first.env.insert("HOME".into(), "/home/x".into());
        table.add(first.clone(), false).unwrap();
        let mut second = first.clone();
        second.env.insert("HOME".into(), "/home/y".into());
        assert!(table.add(second, false).unwrap().changed.is_empty());
        let mut third = first;
        third.env.insert("PATH".into(), "/bin".into());
        assert_eq!(table.add(third, false).unwrap().changed, ["env"]);
    }

    #[test]
    fn builtin_needs_force_even_when_identical() {
        let mut table = AppTable::default();
        let mut builtin = app("file-logger");
        builtin.builtin = true;
        table.add(builtin.clone(), false).unwrap();
        assert_eq!(
            table.add(builtin.clone(), false),
            Err(CommandError::BuiltinApp("file-logger".into()))
        );
        assert!(table.add(builtin, true).is_ok());
        assert_eq!(
            table.delete("file-logger", false),
            Err(CommandError::BuiltinApp("file-logger".into()))
        );
        assert!(table.delete("file-logger", true).is_ok());
    }

    #[test]
    fn config_path_change_needs_force() {
        let mut table = AppTable::default();
        let mut first = app("a");
        first.config_path = Some("/x/a.json".into());
        table.add(first.clone(), false).unwrap();
        let mut moved = first;
        moved.config_path = Some("/y/a.json".into());
        let err = table.add(moved.clone(), false).unwrap_err();
        assert_eq!(err.code(), final_pm_protocol::ErrorCode::ConfigPathChanged);
        assert!(err.to_string().contains("/x/a.json"), "{err}");
        assert_eq!(table.add(moved, true).unwrap().changed, ["config-path"]);
    }

    #[test]
    fn invalid_instances_are_refused() {
        let mut table = AppTable::default();
        let mut zero = app("a");
        zero.instances = 0;
        assert!(matches!(
            table.add(zero, false),
            Err(CommandError::InvalidConfig {
                problem: ConfigProblem::ZeroInstances,
                ..
            })
        ));
        let mut capped = app("a");
        capped.instances = 2;
        capped.max_instances = 2;
        assert!(table.add(capped, false).is_err());
        assert!(table.get("a").is_none());
    }
}
