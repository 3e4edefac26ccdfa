//! Tests of the configuration loader: one per broken-config case of the
//! behaviour spec (§9.1, §9.2, §9.3) and one per rule of the loader. They
//! assert on the substance of messages (what is named), not exact wording,
//! except `error_format_*`, which pins the format itself.

use std::fs;
use std::path::{Path, PathBuf};

use final_pm_protocol::{AppType, KillSignal, Mode, ReadyOn, StopSignal};
use tempfile::TempDir;

use super::*;

/// A home directory that does not exist, so that the developer's own
/// `~/.npmrc` and `~/.final-pm` never take part.
const FAKE_HOME: &str = "/nonexistent-final-pm-test-home";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs")
}

fn fixture(name: &str) -> String {
    fixtures().join(name).display().to_string()
}

/// The environment every test starts from: a fake home and the real PATH
/// (JS tests need `node`).
fn base_env() -> Vec<(String, String)> {
    vec![
        ("HOME".to_owned(), FAKE_HOME.to_owned()),
        ("PATH".to_owned(), std::env::var("PATH").unwrap_or_default()),
    ]
}

fn options(cwd: &Path, configs: &[&str], sets: &[&str], env: &[(&str, &str)]) -> LoadOptions {
    let mut all_env = base_env();
    all_env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    LoadOptions {
        cwd: cwd.to_owned(),
        configs: configs.iter().map(|c| (*c).to_owned()).collect(),
        sets: sets.iter().map(|s| (*s).to_owned()).collect(),
        env: all_env,
    }
}

/// Loads fixture `name` with overrides.
fn load_fixture(
    name: &str,
    sets: &[&str],
    env: &[(&str, &str)],
) -> Result<Vec<Settings>, ConfigError> {
    load(&options(&fixtures(), &[&fixture(name)], sets, env))
}

fn one(result: Result<Vec<Settings>, ConfigError>) -> Settings {
    let mut groups = result.unwrap_or_else(|err| panic!("expected success, got: {err}"));
    assert_eq!(groups.len(), 1, "{groups:?}");
    groups.remove(0)
}

fn app<'a>(settings: &'a Settings, name: &str) -> &'a AppConfig {
    settings
        .apps
        .iter()
        .find(|app| app.name == name)
        .unwrap_or_else(|| panic!("no app {name}: {settings:?}"))
}

/// The message of a failed load.
fn message(result: Result<Vec<Settings>, ConfigError>) -> String {
    match result {
        Ok(settings) => panic!("expected an error, got {settings:?}"),
        Err(err) => err.to_string(),
    }
}

/// Asserts that `text` contains each of `parts`, ignoring case.
#[track_caller]
fn assert_mentions(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            text.to_lowercase().contains(&part.to_lowercase()),
            "{text:?} should mention {part:?}"
        );
    }
}

fn node_installed() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("node").is_file()))
}

/// Skips a test that needs Node when it is not installed.
macro_rules! require_node {
    () => {
        if !node_installed() {
            eprintln!("skipped: node not installed");
            return;
        }
    };
}

/// A temporary folder with a config file `name` holding `text`.
fn temp_config(name: &str, text: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join(name);
    fs::write(&path, text).expect("write config");
    (dir, path)
}

/// Loads a JSON config text from a temporary folder (cwd = that folder).
fn load_json(
    text: &str,
    sets: &[&str],
    env: &[(&str, &str)],
) -> Result<Vec<Settings>, ConfigError> {
    let (dir, path) = temp_config("process-config.json", text);
    load(&options(
        dir.path(),
        &[path.to_str().expect("utf-8")],
        sets,
        env,
    ))
}

/// Loads a config of one app given as a JSON object body (without braces).
fn load_app(body: &str) -> Result<Vec<Settings>, ConfigError> {
    load_json(&format!("{{\"applications\": [{{{body}}}]}}"), &[], &[])
}

fn load_app_ok(body: &str) -> AppConfig {
    one(load_app(body)).apps.remove(0)
}

// ---------------------------------------------------------------------------
// §9.1 Malformed config files

#[test]
fn broken1_json_syntax_error_names_file_and_position() {
    let text = message(load_fixture("broken1.json", &[], &[]));
    assert_mentions(&text, &["broken1.json", "invalid json", "line"]);
}

#[test]
fn broken2_unknown_app_key_is_refused() {
    let text = message(load_fixture("broken2.json", &[], &[]));
    assert_mentions(
        &text,
        &[
            "broken2.json",
            "application \"app\"",
            "$$$ERROR$$$",
            "doesn't match any known",
        ],
    );
}

#[test]
fn broken3_invalid_name_shows_the_name() {
    let text = message(load_fixture("broken3.json", &[], &[]));
    assert_mentions(
        &text,
        &[
            "broken3.json",
            "key \"name\"",
            "\"app/0\"",
            "letters, digits",
        ],
    );
}

#[test]
fn broken4_async_function_throws() {
    require_node!();
    let text = message(load_fixture("broken4.js", &[], &[]));
    assert_mentions(&text, &["broken4.js", "$$$ERROR$$$"]);
}

#[test]
fn broken5_late_error_beats_the_result() {
    require_node!();
    let text = message(load_fixture("broken5.js", &[], &[]));
    assert_mentions(&text, &["broken5.js", "$$$ERROR$$$"]);
}

#[test]
fn broken6_unhandled_rejection_of_sync_function() {
    require_node!();
    let text = message(load_fixture("broken6.js", &[], &[]));
    assert_mentions(&text, &["broken6.js", "$$$ERROR$$$"]);
}

#[test]
fn broken7_unhandled_rejection_of_async_function() {
    require_node!();
    let text = message(load_fixture("broken7.js", &[], &[]));
    assert_mentions(&text, &["broken7.js", "$$$ERROR$$$"]);
}

#[test]
fn broken8_module_throws_at_load() {
    require_node!();
    let text = message(load_fixture("broken8.js", &[], &[]));
    assert_mentions(&text, &["broken8.js", "$$$ERROR$$$"]);
}

#[test]
fn broken9_npm_user_config_in_file_has_no_effect() {
    let text = message(load_fixture("broken9.json", &[], &[]));
    assert_mentions(
        &text,
        &[
            "broken9.json",
            "npm-user-config",
            "will have no effect",
            "--set",
        ],
    );
}

#[test]
fn broken10_fork_with_ready_on_listen_is_allowed() {
    // decisions.md: listen works for any process (sockets in /proc).
    let settings = one(load_fixture("broken10.json", &[], &[]));
    let app = app(&settings, "app");
    assert_eq!((app.mode, app.ready_on), (Mode::Fork, ReadyOn::Listen));
}

#[test]
fn broken11_max_instances_must_be_larger_than_instances() {
    let text = message(load_fixture("broken11.json", &[], &[]));
    assert_mentions(
        &text,
        &[
            "broken11.json",
            "application \"app\"",
            "max-instances must be larger",
            "got 1",
        ],
    );
}

#[test]
fn broken12_applications_null_must_be_an_array() {
    let text = message(load_fixture("broken12.json", &[], &[]));
    assert_mentions(
        &text,
        &[
            "broken12.json",
            "key \"applications\"",
            "expected an array",
            "got null",
        ],
    );
}

#[test]
fn broken13_non_zero_exit_names_the_file() {
    require_node!();
    let text = message(load_fixture("broken13.js", &[], &[]));
    // FinalPM attached no file here and then crashed (bug 13).
    assert_mentions(&text, &["broken13.js", "non-zero exit code: 1"]);
}

#[test]
fn broken14_exit_without_result() {
    require_node!();
    let text = message(load_fixture("broken14.js", &[], &[]));
    assert_mentions(&text, &["broken14.js", "without any result"]);
}

#[test]
fn broken15_second_result() {
    require_node!();
    let text = message(load_fixture("broken15.js", &[], &[]));
    assert_mentions(&text, &["broken15.js", "produced a second result"]);
}

#[test]
fn broken16_error_without_message() {
    require_node!();
    let text = message(load_fixture("broken16.js", &[], &[]));
    assert_mentions(&text, &["broken16.js", "unknown error"]);
}

#[test]
fn invalid_extension_is_refused() {
    let text = message(load_fixture("invalid-extension.ASF", &[], &[]));
    assert_mentions(&text, &["invalid-extension.ASF", "unknown file extension"]);
}

#[test]
fn extension_check_is_case_sensitive() {
    let (dir, path) = temp_config("config.JSON", "{}");
    let text = message(load(&options(
        dir.path(),
        &[path.to_str().expect("utf-8")],
        &[],
        &[],
    )));
    assert_mentions(&text, &["config.JSON", "unknown file extension"]);
}

#[test]
fn missing_c_path_is_not_found() {
    let text = message(load(&options(&fixtures(), &["404.json"], &[], &[])));
    assert_eq!(
        text,
        "no configuration file found at: 404.json (the path does not exist)"
    );
    assert!(matches!(
        load(&options(&fixtures(), &["404.json"], &[], &[])),
        Err(ConfigError::NotFound { .. })
    ));
}

#[test]
fn c_folder_without_config_is_not_found() {
    let dir = TempDir::new().expect("temp dir");
    let mut opts = options(dir.path(), &["."], &[], &[]);
    opts.env
        .push(("HOME".to_owned(), dir.path().display().to_string()));
    let text = message(load(&opts));
    assert_mentions(
        &text,
        &[
            "no configuration file found at: .",
            "process-config.json",
            "folders above",
        ],
    );
}

#[test]
fn unreadable_file_is_an_io_error() {
    // A file that disappears between discovery and reading (the spec's
    // `404.json` case: an OS error, not a config error).
    let Err(err) = read_content(&fixtures().join("404.json"), &fixtures(), &BTreeMap::new()) else {
        panic!("missing file");
    };
    assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
    assert_mentions(&err.to_string(), &["404.json", "no such file"]);
}

#[test]
fn node_missing_gives_a_clear_error() {
    let empty = TempDir::new().expect("temp dir");
    let mut opts = options(&fixtures(), &[&fixture("working.js")], &[], &[]);
    opts.env.retain(|(name, _)| name != "PATH");
    opts.env
        .push(("PATH".to_owned(), empty.path().display().to_string()));
    let text = message(load(&opts));
    assert_mentions(
        &text,
        &[
            "working.js",
            "need node.js",
            "not found on path",
            "process-config.json",
        ],
    );
}

// ---------------------------------------------------------------------------
// §9.2 Overrides (the spec's `working.js` has an app `app`)

#[test]
fn set_app_logger_and_logger_args() {
    let settings = one(load_fixture(
        "working.json",
        &["app:logger=fake-logger", "app:logger-args=[\"CUSTOM\"]"],
        &[],
    ));
    let changed = app(&settings, "app");
    assert_eq!(changed.logger, "fake-logger");
    assert_eq!(changed.logger_args, ["CUSTOM"]);
    assert_eq!(
        app(&settings, "zombie").logger,
        "file-logger",
        "other apps keep their values"
    );
}

#[test]
fn env_app_logger_and_logger_args_unrelated_ignored() {
    let settings = one(load_fixture(
        "working.json",
        &[],
        &[
            ("FINAL_PM_CONFIG_APP_LOGGER", "fake-logger"),
            ("FINAL_PM_CONFIG_APP_LOGGER_ARGS", "[\"CUSTOM\"]"),
            ("SOMETHING_ELSE", "x"),
        ],
    ));
    let app = app(&settings, "app");
    assert_eq!(app.logger, "fake-logger");
    assert_eq!(app.logger_args, ["CUSTOM"]);
}

#[test]
fn env_unknown_app_key_is_an_error() {
    let text = message(load_fixture(
        "working.json",
        &[],
        &[("FINAL_PM_CONFIG_APP_UNKNOWN_KEY", "value")],
    ));
    assert_mentions(
        &text,
        &[
            "environment (FINAL_PM_CONFIG_APP_UNKNOWN_KEY)",
            "doesn't match any known configuration key",
        ],
    );
}

#[test]
fn set_unknown_app_key_is_an_error() {
    let text = message(load_fixture(
        "working.json",
        &["app:unknown-key=value"],
        &[],
    ));
    assert_mentions(
        &text,
        &[
            "--set app:unknown-key=value",
            "key \"unknown-key\"",
            "doesn't match any known application configuration key",
        ],
    );
}

#[test]
fn set_unknown_top_level_key_is_an_error() {
    let text = message(load_fixture("working.json", &["unknown-key=value"], &[]));
    assert_mentions(
        &text,
        &[
            "command line",
            "key \"unknown-key\"",
            "doesn't match any known configuration key",
        ],
    );
}

#[test]
fn set_unknown_top_level_key_fails_even_without_a_file() {
    let dir = TempDir::new().expect("temp dir");
    let text = message(load(&options(dir.path(), &[], &["sockett=x"], &[])));
    assert_mentions(
        &text,
        &[
            "doesn't match any known configuration key",
            "did you mean \"socket\"",
        ],
    );
}

#[test]
fn set_unknown_application_is_an_error() {
    let text = message(load_fixture(
        "working.json",
        &["unknown-app:logger=fake-logger"],
        &[],
    ));
    assert_mentions(
        &text,
        &[
            "command line",
            "application \"unknown-app\"",
            "unknown application name",
            "working.json",
        ],
    );
}

#[test]
fn set_without_equals_is_an_error() {
    let text = message(load_fixture("working.json", &["unknown"], &[]));
    assert_mentions(&text, &["command line (--set unknown)", "expected '='"]);
}

#[test]
fn env_json_error_names_the_value() {
    let text = message(load_fixture(
        "working.json",
        &[],
        &[("FINAL_PM_CONFIG_APP_LOGGER", "\"asdf")],
    ));
    assert_mentions(
        &text,
        &[
            "environment (FINAL_PM_CONFIG_APP_LOGGER)",
            "invalid json",
            "'\"asdf'",
        ],
    );
}

#[test]
fn set_json_error_names_the_value() {
    let text = message(load_fixture("working.json", &["app:logger=\"asdf"], &[]));
    assert_mentions(&text, &["command line", "invalid json", "'\"asdf'"]);
}

#[test]
fn npm_package_config_from_package_json() {
    let settings = one(load_fixture("working.json", &[], &[]));
    assert_eq!(
        app(&settings, "app")
            .env
            .get("npm_package_config_test")
            .map(String::as_str),
        Some("a")
    );
}

#[test]
fn npm_user_config_overlay_from_set_and_env() {
    let custom = fixture("customconfig");
    let set = format!("npm-user-config={custom}");
    let settings = one(load_fixture("working.json", &[&set], &[]));
    assert_eq!(app(&settings, "app").env["npm_package_config_test"], "b");
    let settings = one(load_fixture(
        "working.json",
        &[],
        &[("FINAL_PM_CONFIG_NPM_USER_CONFIG", &custom)],
    ));
    assert_eq!(app(&settings, "app").env["npm_package_config_test"], "b");
}

#[test]
fn npm_global_config_overlay_from_set_and_env() {
    let custom = fixture("customconfig");
    let set = format!("npm-global-config={custom}");
    let settings = one(load_fixture("working.json", &[&set], &[]));
    assert_eq!(app(&settings, "app").env["npm_package_config_test"], "b");
    let settings = one(load_fixture(
        "working.json",
        &[],
        &[("FINAL_PM_CONFIG_NPM_GLOBAL_CONFIG", &custom)],
    ));
    assert_eq!(app(&settings, "app").env["npm_package_config_test"], "b");
}

#[test]
fn npm_overlays_priority_and_project_npmrc() {
    let dir = TempDir::new().expect("temp dir");
    let project = dir.path().join("project");
    fs::create_dir_all(project.join("sub")).expect("mkdir");
    fs::write(
        project.join("package.json"),
        r#"{"name": "@scope/pkg", "config": {"a": "pkg", "b": "pkg", "n": 3}}"#,
    )
    .expect("write");
    fs::write(
        project.join("npmrc"),
        "@scope/pkg:a = project\n@scope/pkg:b=project\nother:a=x\n",
    )
    .expect("write");
    fs::write(
        dir.path().join("global"),
        "; comment\n@scope/pkg:b = \"global\" \n[section]\n@scope/pkg:a=hidden\n",
    )
    .expect("write");
    let config = project.join("sub/process-config.json");
    fs::write(&config, r#"{"applications": [{"name": "x"}]}"#).expect("write");
    let global = format!("npm-global-config={}", dir.path().join("global").display());
    let settings = one(load(&options(
        dir.path(),
        &[config.to_str().expect("utf-8")],
        &[&global],
        &[],
    )));
    let env = &settings.apps[0].env;
    assert_eq!(env["npm_package_config_a"], "project");
    assert_eq!(env["npm_package_config_b"], "global");
    assert_eq!(
        env["npm_package_config_n"], "3",
        "non-strings become their JSON text"
    );
}

// ---------------------------------------------------------------------------
// §9.3 Other config tests

#[test]
fn no_config_file_gives_settings_without_apps() {
    let dir = TempDir::new().expect("temp dir");
    let groups = load(&options(dir.path(), &[], &[], &[])).expect("load");
    assert_eq!(groups.len(), 1);
    assert!(groups[0].apps.is_empty());
    assert!(groups[0].config_paths.is_empty());
    assert_eq!(groups[0].home, PathBuf::from(FAKE_HOME).join(".final-pm"));
}

#[test]
fn resolve_config_cases() {
    let dir = TempDir::new().expect("temp dir");
    let root = dir.path();
    let home = root.join("home");
    let project = home.join("project");
    fs::create_dir_all(project.join("child")).expect("mkdir");
    fs::write(project.join("process-config.json"), "{}").expect("write");
    fs::write(project.join("process-config.js"), "module.exports = {}").expect("write");
    fs::write(project.join("other.txt"), "").expect("write");
    let found = |path: &Path| resolve_config(path, Some(&home));
    assert_eq!(
        found(&project),
        Some(project.join("process-config.js")),
        ".js wins over .json"
    );
    assert_eq!(
        found(&project.join("child")),
        Some(project.join("process-config.js")),
        "parent's file"
    );
    assert_eq!(
        found(&project.join("other.txt")),
        Some(project.join("other.txt")),
        "a file is itself"
    );
    assert_eq!(found(&home), None, "home without config");
    assert_eq!(found(Path::new("/INVALID")), None);
    assert_eq!(found(&project.join("missing.json")), None);
    assert_eq!(
        found(&project.join("child/./../child")),
        Some(project.join("process-config.js"))
    );
}

#[test]
fn resolve_config_stops_at_home() {
    let dir = TempDir::new().expect("temp dir");
    let home = dir.path().join("home");
    fs::create_dir_all(home.join("a/b")).expect("mkdir");
    // Above the home: must not be found from inside it.
    fs::write(dir.path().join("process-config.json"), "{}").expect("write");
    assert_eq!(resolve_config(&home.join("a/b"), Some(&home)), None);
    assert_eq!(
        resolve_config(&home.join("a/b"), None),
        Some(dir.path().join("process-config.json"))
    );
}

#[test]
fn issue_35_directory_named_like_a_config_does_not_loop() {
    // FinalPM recursed forever on a *folder* called process-config.js.
    let dir = TempDir::new().expect("temp dir");
    let home = dir.path().join("home");
    fs::create_dir_all(home.join("p/process-config.js")).expect("mkdir");
    fs::write(home.join("p/process-config.json"), "{}").expect("write");
    assert_eq!(
        resolve_config(&home.join("p"), Some(&home)),
        Some(home.join("p/process-config.json"))
    );
    fs::remove_file(home.join("p/process-config.json")).expect("rm");
    assert_eq!(resolve_config(&home.join("p"), Some(&home)), None);
}

#[test]
fn discovery_from_cwd_and_c_folder() {
    let dir = TempDir::new().expect("temp dir");
    let project = dir.path().join("project");
    fs::create_dir_all(project.join("deep/er")).expect("mkdir");
    fs::write(
        project.join("process-config.json"),
        r#"{"applications": [{"name": "found"}]}"#,
    )
    .expect("write");
    let from_cwd = one(load(&options(&project.join("deep/er"), &[], &[], &[])));
    assert_eq!(from_cwd.apps[0].name, "found");
    assert_eq!(from_cwd.config_paths, [project.join("process-config.json")]);
    let from_c = one(load(&options(dir.path(), &["project/deep"], &[], &[])));
    assert_eq!(from_c.apps[0].name, "found");
}

#[test]
fn js_exports_equal_the_json_config() {
    require_node!();
    let reference = one(load_fixture("working.json", &[], &[]));
    for name in [
        "working.js",
        "working-promise.js",
        "working-fn.js",
        "working-promise-fn.js",
    ] {
        let settings = one(load_fixture(name, &[], &[]));
        assert_eq!(settings.apps.len(), reference.apps.len(), "{name}");
        for (got, want) in settings.apps.iter().zip(&reference.apps) {
            let mut got = got.clone();
            got.config_path.clone_from(&want.config_path);
            assert_eq!(&got, want, "{name}");
        }
    }
}

#[test]
fn js_config_sees_the_config_environment_and_a_frozen_this() {
    require_node!();
    let settings = one(load_fixture(
        "env.js",
        &[],
        &[("FINAL_PM_TEST_MARKER", "marker")],
    ));
    let env = &app(&settings, "envapp").env;
    assert_eq!(env["SEEN_NPM"], "a");
    assert_eq!(env["SEEN_MARKER"], "marker");
    assert_eq!(env["THIS_FROZEN"], "true");
}

#[test]
fn js_esm_config_is_imported() {
    require_node!();
    let dir = TempDir::new().expect("temp dir");
    fs::write(dir.path().join("package.json"), r#"{"type": "module"}"#).expect("write");
    fs::write(
        dir.path().join("process-config.js"),
        "export default async () => ({ applications: [{ name: 'esm', 'ready-on': 'instant' }] });\n",
    )
    .expect("write");
    let settings = one(load(&options(dir.path(), &[], &[], &[])));
    assert_eq!(settings.apps[0].name, "esm");
}

#[test]
fn js_config_must_export_an_object() {
    require_node!();
    let (dir, path) = temp_config("process-config.js", "module.exports = () => 42;\n");
    let text = message(load(&options(
        dir.path(),
        &[path.to_str().expect("utf-8")],
        &[],
        &[],
    )));
    assert_mentions(
        &text,
        &[
            "process-config.js",
            "expected the script to export an object",
            "got 42",
        ],
    );
}

#[test]
fn two_configs_with_the_same_socket_are_one_group() {
    require_node!();
    let groups = load(&options(
        &fixtures(),
        &[&fixture("working.js"), &fixture("stdout.js")],
        &[],
        &[],
    ))
    .expect("load");
    assert_eq!(groups.len(), 1);
    let names: Vec<&str> = groups[0].apps.iter().map(|app| app.name.as_str()).collect();
    assert_eq!(
        names,
        ["app", "app-listen", "neverStarts", "zombie", "stdout"],
        "first position kept"
    );
    assert!(
        app(&groups[0], "app").run.ends_with("other-app.js"),
        "last definition wins"
    );
    assert_eq!(groups[0].config_paths.len(), 2);
}

#[test]
fn configs_with_different_sockets_are_separate_groups() {
    let dir = TempDir::new().expect("temp dir");
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    fs::write(
        &a,
        r#"{"socket": "a.sock", "applications": [{"name": "x"}]}"#,
    )
    .expect("write");
    fs::write(
        &b,
        r#"{"socket": "b.sock", "applications": [{"name": "x"}]}"#,
    )
    .expect("write");
    let groups = load(&options(dir.path(), &["a.json", "b.json"], &[], &[])).expect("load");
    assert_eq!(groups.len(), 2);
    assert!(groups[0].socket.ends_with("a.sock") && groups[1].socket.ends_with("b.sock"));
}

#[test]
fn group_keeps_the_last_configs_home_and_log() {
    let dir = TempDir::new().expect("temp dir");
    fs::write(
        dir.path().join("a.json"),
        r#"{"socket": "/tmp/fpm-x.sock", "daemon-log": "a.log"}"#,
    )
    .expect("write");
    fs::write(
        dir.path().join("b.json"),
        r#"{"socket": "/tmp/fpm-x.sock", "daemon-log": "b.log"}"#,
    )
    .expect("write");
    let groups = load(&options(dir.path(), &["a.json", "b.json"], &[], &[])).expect("load");
    assert_eq!(groups.len(), 1);
    assert!(groups[0].daemon_log.ends_with("b.log"));
}

// ---------------------------------------------------------------------------
// Keys: types, defaults, validation

#[test]
fn defaults_of_every_key() {
    let app = load_app_ok("");
    assert_eq!(app.name, "default");
    assert_eq!(app.app_type, AppType::Application);
    assert_eq!(app.mode, Mode::Cluster);
    assert!(app.cwd.ends_with('/') || Path::new(&app.cwd).is_absolute());
    assert!(app.run.ends_with("/server.js"));
    assert!(app.args.is_empty() && app.node_args.is_empty() && app.interpreter.is_none());
    assert_eq!(app.ready_on, ReadyOn::Listen);
    assert_eq!(app.stop_signal, StopSignal::Sigint);
    assert_eq!(app.kill_signal, KillSignal::Sigkill);
    assert_eq!((app.instances, app.max_instances), (1, 0));
    assert!(app.unique_instances && app.restart_crashing && app.restart_new_crashing);
    assert_eq!(app.restart_crashing_delay, 1000);
    assert_eq!(app.logger, "file-logger");
    assert_eq!(app.logger_args, ["log.txt"]);
    assert_eq!(app.max_buffered_log_bytes, 262_144);
    assert_eq!(app.log_retention_timeout, 86_400_000);
    assert_eq!(app.max_log_line_length, 5120);
    assert_eq!((app.stop_timeout, app.start_timeout), (None, None));
    assert!(!app.builtin);
    assert_eq!(app.ignore_env.len(), 34);
    assert!(
        app.config_path
            .as_deref()
            .is_some_and(|p| p.ends_with("process-config.json"))
    );
}

#[test]
fn every_key_is_read_typed() {
    let app = load_app_ok(
        r#""name": "all_keys-1", "type": "logger", "mode": "fork", "base-path": "/srv", "cwd": "app",
           "run": "bin/server.mjs", "args": ["--port", "80"], "node-args": ["--inspect"],
           "interpreter": "/opt/node/bin/node", "env": {"A": "x", "N": 5, "B": true},
           "ready-on": "message", "stop-signal": "disconnect", "kill-signal": "SIGTERM",
           "instances": 4, "max-instances": 8, "unique-instances": false, "restart-crashing": false,
           "restart-new-crashing": false, "restart-crashing-delay": 0, "logger": "journal",
           "logger-args": ["a.txt", "b"], "max-buffered-log-bytes": 1024, "log-retention-timeout": -5,
           "max-log-line-length": 80, "stop-timeout": 3000, "start-timeout": 1, "builtin": true"#,
    );
    assert_eq!(app.name, "all_keys-1");
    assert_eq!(app.app_type, AppType::Logger);
    assert_eq!(app.mode, Mode::Fork);
    assert_eq!(app.cwd, "/srv/app");
    assert_eq!(app.run, "/srv/app/bin/server.mjs");
    assert_eq!(app.args, ["--port", "80"]);
    assert_eq!(app.node_args, ["--inspect"]);
    assert_eq!(app.interpreter.as_deref(), Some("/opt/node/bin/node"));
    assert_eq!(
        (
            app.env["A"].as_str(),
            app.env["N"].as_str(),
            app.env["B"].as_str()
        ),
        ("x", "5", "true")
    );
    assert_eq!(app.ready_on, ReadyOn::Message);
    assert_eq!(app.stop_signal, StopSignal::Disconnect);
    assert_eq!(app.kill_signal, KillSignal::Sigterm);
    assert_eq!((app.instances, app.max_instances), (4, 8));
    assert!(!app.unique_instances && !app.restart_crashing && !app.restart_new_crashing);
    assert_eq!(app.restart_crashing_delay, 0);
    assert_eq!(app.logger, "journal");
    assert_eq!(
        app.logger_args,
        ["a.txt", "b"],
        "logger-args are left as given"
    );
    assert_eq!(app.max_buffered_log_bytes, 1024);
    assert_eq!(app.log_retention_timeout, -5);
    assert_eq!(app.max_log_line_length, 80);
    assert_eq!((app.stop_timeout, app.start_timeout), (Some(3000), Some(1)));
    assert!(app.builtin);
}

#[test]
fn numeric_and_boolean_strings_are_converted() {
    let app = load_app_ok(
        r#""instances": " 3 ", "max-instances": "4", "unique-instances": "FALSE", "restart-crashing": "True",
           "stop-timeout": "1e3", "log-retention-timeout": "-7", "start-timeout": 2.0"#,
    );
    assert_eq!((app.instances, app.max_instances), (3, 4));
    assert!(!app.unique_instances && app.restart_crashing);
    assert_eq!(app.stop_timeout, Some(1000));
    assert_eq!(app.log_retention_timeout, -7);
    assert_eq!(app.start_timeout, Some(2));
}

#[test]
fn set_values_are_stored_typed() {
    let settings = one(load_fixture(
        "working.json",
        &[
            "app:instances=3",
            "app:unique-instances=false",
            "app:stop-timeout=250",
        ],
        &[],
    ));
    let app = app(&settings, "app");
    assert_eq!(
        (app.instances, app.unique_instances, app.stop_timeout),
        (3, false, Some(250))
    );
}

#[test]
fn wrong_types_are_refused() {
    for (body, key, got) in [
        (r#""instances": "abc""#, "instances", "\"abc\""),
        (r#""instances": 1.5"#, "instances", "1.5"),
        (r#""instances": true"#, "instances", "true"),
        (r#""args": "--port""#, "args", "\"--port\""),
        (r#""args": ["ok", 5]"#, "args", "5 at index 1"),
        (r#""args": [""]"#, "args", "\"\" at index 0"),
        (r#""env": {"A": {"nested": 1}}"#, "env", "an object"),
        (r#""env": {"A": null}"#, "env", "null"),
        (r#""env": ["A=1"]"#, "env", "an array"),
        (
            r#""unique-instances": "yes""#,
            "unique-instances",
            "\"yes\"",
        ),
        (r#""cwd": """#, "cwd", "\"\""),
        (r#""run": null"#, "run", "null"),
        (r#""logger": 5"#, "logger", "5"),
        (r#""stop-timeout": 0"#, "stop-timeout", "0"),
        (r#""stop-timeout": "null""#, "stop-timeout", "\"null\""),
        (
            r#""max-buffered-log-bytes": 0"#,
            "max-buffered-log-bytes",
            "0",
        ),
        (r#""max-log-line-length": -1"#, "max-log-line-length", "-1"),
        (
            r#""log-retention-timeout": 0.5"#,
            "log-retention-timeout",
            "0.5",
        ),
        (
            r#""restart-crashing-delay": -1"#,
            "restart-crashing-delay",
            "-1",
        ),
        (r#""base-path": 7"#, "base-path", "7"),
        (r#""builtin": "maybe""#, "builtin", "\"maybe\""),
    ] {
        let text = message(load_app(body));
        assert_mentions(
            &text,
            &[
                "process-config.json",
                &format!("key \"{key}\""),
                "expected",
                got,
            ],
        );
    }
}

#[test]
fn bad_enum_values_list_the_choices() {
    for (key, value, choice) in [
        ("type", "service", "\"logger\""),
        ("mode", "cluster2", "\"fork\""),
        ("ready-on", "Listen", "\"instant\""),
        ("stop-signal", "SIGKILL", "\"disconnect\""),
        ("kill-signal", "SIGINT", "\"SIGKILL\""),
    ] {
        let text = message(load_app(&format!(
            "\"name\": \"web\", \"{key}\": \"{value}\""
        )));
        assert_mentions(
            &text,
            &[
                "application \"web\"",
                &format!("key \"{key}\""),
                choice,
                &format!("got \"{value}\""),
            ],
        );
    }
}

#[test]
fn instances_range() {
    assert_mentions(
        &message(load_app(r#""instances": 0"#)),
        &["key \"instances\"", "from 1 to 65536", "got 0"],
    );
    assert_mentions(
        &message(load_app(r#""instances": 65537"#)),
        &["key \"instances\"", "got 65537"],
    );
    assert_eq!(
        load_app_ok(r#""instances": 65536, "max-instances": 0"#).instances,
        65_536
    );
}

#[test]
fn issue_28_negative_max_instances_is_refused() {
    let text = message(load_app(r#""name": "web", "max-instances": -1"#));
    assert_mentions(
        &text,
        &["application \"web\"", "key \"max-instances\"", "got -1"],
    );
}

#[test]
fn max_instances_zero_means_no_limit_and_larger_is_fine() {
    assert_eq!(
        load_app_ok(r#""instances": 5, "max-instances": 0"#).max_instances,
        0
    );
    assert_eq!(
        load_app_ok(r#""instances": 5, "max-instances": 6"#).max_instances,
        6
    );
}

#[test]
fn restart_crashing_delay_may_be_zero() {
    assert_eq!(
        load_app_ok(r#""restart-crashing-delay": 0"#).restart_crashing_delay,
        0
    );
}

#[test]
fn stop_and_start_timeout_may_be_null() {
    let app = load_app_ok(r#""stop-timeout": null, "start-timeout": null"#);
    assert_eq!((app.stop_timeout, app.start_timeout), (None, None));
}

#[test]
fn revision_in_a_file_is_refused() {
    let text = message(load_app(r#""name": "web", "revision": 3"#));
    assert_mentions(
        &text,
        &[
            "application \"web\"",
            "key \"revision\"",
            "assigned by the daemon",
        ],
    );
}

#[test]
fn config_path_in_a_file_is_refused() {
    let text = message(load_app(r#""name": "web", "config-path": "/x""#));
    assert_mentions(&text, &["key \"config-path\"", "set by final-pm"]);
    let text = message(load_json(r#"{"config-path": "/x"}"#, &[], &[]));
    assert_mentions(&text, &["key \"config-path\"", "derived"]);
}

#[test]
fn unknown_app_key_suggests_the_closest() {
    let text = message(load_app(r#""name": "web", "intances": 2"#));
    assert_mentions(&text, &["key \"intances\"", "did you mean \"instances\""]);
}

#[test]
fn duplicate_names_in_one_file_are_refused() {
    let text = message(load_json(
        r#"{"applications": [{"name": "web"}, {"name": "api"}, {"name": "web"}]}"#,
        &[],
        &[],
    ));
    assert_mentions(
        &text,
        &[
            "application \"web\"",
            "defined twice",
            "applications[0]",
            "applications[2]",
        ],
    );
}

#[test]
fn duplicate_default_names_are_refused() {
    let text = message(load_json(r#"{"applications": [{}, {}]}"#, &[], &[]));
    assert_mentions(&text, &["application \"default\"", "defined twice"]);
}

#[test]
fn invalid_names_are_refused() {
    for name in ["-web", "all", "a b", "", "wéb", "a.b"] {
        let text = message(load_app(&format!("\"name\": \"{name}\"")));
        assert_mentions(
            &text,
            &[
                "key \"name\"",
                "not start with \"-\"",
                &format!("got \"{name}\""),
            ],
        );
    }
    let text = message(load_app(r#""name": 5"#));
    assert_mentions(&text, &["applications[0]", "key \"name\"", "got 5"]);
    assert_eq!(load_app_ok(r#""name": "Web_2-x""#).name, "Web_2-x");
}

#[test]
fn application_entry_must_be_an_object() {
    let text = message(load_json(
        r#"{"applications": [{"name": "a"}, "b"]}"#,
        &[],
        &[],
    ));
    assert_mentions(
        &text,
        &[
            "applications[1]",
            "expected an application object",
            "got \"b\"",
        ],
    );
}

#[test]
fn top_level_must_be_an_object() {
    let text = message(load_json("[]", &[], &[]));
    assert_mentions(
        &text,
        &[
            "process-config.json",
            "expected a configuration object",
            "got an empty array",
        ],
    );
}

#[test]
fn unknown_top_level_key_in_a_file_is_refused() {
    let text = message(load_json(r#"{"applicatons": []}"#, &[], &[]));
    assert_mentions(
        &text,
        &["key \"applicatons\"", "did you mean \"applications\""],
    );
    let text = message(load_json(r#"{"run": "x.js"}"#, &[], &[]));
    assert_mentions(&text, &["key \"run\"", "application key"]);
}

#[test]
fn wrong_top_level_types_are_refused() {
    assert_mentions(
        &message(load_json(r#"{"home": 5}"#, &[], &[])),
        &["key \"home\"", "non-empty string", "got 5"],
    );
    assert_mentions(
        &message(load_json(r#"{"socket": ""}"#, &[], &[])),
        &["key \"socket\"", "got \"\""],
    );
}

#[test]
fn fork_with_listen_is_allowed() {
    let app = load_app_ok(r#""mode": "fork", "ready-on": "listen""#);
    assert_eq!((app.mode, app.ready_on), (Mode::Fork, ReadyOn::Listen));
}

#[test]
fn node_args_on_a_non_node_program_are_refused() {
    let text = message(load_app(
        r#""name": "redis", "run": "/usr/bin/redis-server", "node-args": ["--inspect"]"#,
    ));
    assert_mentions(
        &text,
        &[
            "application \"redis\"",
            "key \"node-args\"",
            "only applies to node scripts",
            "redis-server",
        ],
    );
    for run in ["a.js", "a.cjs", "a.mjs"] {
        assert_eq!(
            load_app_ok(&format!("\"run\": \"{run}\", \"node-args\": [\"--x\"]")).node_args,
            ["--x"]
        );
    }
    // An empty list changes nothing and is fine.
    assert!(
        load_app_ok(r#""run": "/bin/sh", "node-args": []"#)
            .node_args
            .is_empty()
    );
}

#[test]
fn interpreter_on_a_non_node_program_is_refused() {
    let text = message(load_app(
        r#""run": "/bin/sh", "interpreter": "/usr/bin/node""#,
    ));
    assert_mentions(
        &text,
        &["key \"interpreter\"", "only applies to node scripts"],
    );
}

#[test]
fn ignore_env_in_a_file_has_no_effect() {
    // Bug 11: FinalPM named ignore-env in this message but accepted it.
    let text = message(load_json(
        r#"{"ignore-env": ["X"], "applications": []}"#,
        &[],
        &[],
    ));
    assert_mentions(&text, &["key \"ignore-env\"", "will have no effect"]);
    let text = message(load_json(r#"{"npm-global-config": "/x"}"#, &[], &[]));
    assert_mentions(&text, &["key \"npm-global-config\"", "will have no effect"]);
}

// ---------------------------------------------------------------------------
// Overrides

#[test]
fn app_override_applies_only_where_the_app_is_defined() {
    // Bug 9: FinalPM required the app in every -c file.
    let dir = TempDir::new().expect("temp dir");
    fs::write(
        dir.path().join("a.json"),
        r#"{"applications": [{"name": "web"}]}"#,
    )
    .expect("write");
    fs::write(
        dir.path().join("b.json"),
        r#"{"applications": [{"name": "api"}]}"#,
    )
    .expect("write");
    let settings = one(load(&options(
        dir.path(),
        &["a.json", "b.json"],
        &["web:instances=2"],
        &[("FINAL_PM_CONFIG_API_INSTANCES", "3")],
    )));
    assert_eq!(app(&settings, "web").instances, 2);
    assert_eq!(app(&settings, "api").instances, 3);
}

#[test]
fn app_override_without_any_file_is_an_error() {
    let dir = TempDir::new().expect("temp dir");
    let text = message(load(&options(dir.path(), &[], &["web:instances=2"], &[])));
    assert_mentions(
        &text,
        &[
            "application \"web\"",
            "unknown application name",
            "no configuration file was found",
        ],
    );
    let text = message(load(&options(
        dir.path(),
        &[],
        &[],
        &[("FINAL_PM_CONFIG_WEB_INSTANCES", "2")],
    )));
    assert_mentions(
        &text,
        &[
            "FINAL_PM_CONFIG_WEB_INSTANCES",
            "doesn't match any known configuration key",
        ],
    );
}

#[test]
fn set_value_errors_name_the_argument() {
    let text = message(load_fixture("working.json", &["app:instances=-3"], &[]));
    assert_mentions(
        &text,
        &[
            "command line (--set app:instances=-3)",
            "application \"app\"",
            "key \"instances\"",
            "got \"-3\"",
        ],
    );
}

#[test]
fn env_value_errors_name_the_variable() {
    let text = message(load_fixture(
        "working.json",
        &[],
        &[("FINAL_PM_CONFIG_APP_READY_ON", "soon")],
    ));
    assert_mentions(
        &text,
        &[
            "environment (FINAL_PM_CONFIG_APP_READY_ON)",
            "application \"app\"",
            "key \"ready-on\"",
            "got \"soon\"",
        ],
    );
}

#[test]
fn override_creating_a_conflict_is_blamed_on_the_override() {
    let text = message(load_fixture(
        "working.json",
        &["neverStarts:instances=2"],
        &[],
    ));
    assert_mentions(
        &text,
        &[
            "--set neverStarts:instances=2",
            "max-instances must be larger",
        ],
    );
}

#[test]
fn env_is_applied_before_set() {
    let dir = TempDir::new().expect("temp dir");
    let settings = one(load(&options(
        dir.path(),
        &[],
        &["home=from-set"],
        &[
            ("FINAL_PM_CONFIG_HOME", "from-env"),
            ("FINAL_PM_CONFIG_DAEMON_LOG", "env.log"),
        ],
    )));
    assert_eq!(settings.home, dir.path().join("from-set"));
    assert_eq!(settings.daemon_log, dir.path().join("from-set/env.log"));
}

#[test]
fn overrides_beat_the_file() {
    let settings = one(load_json(
        r#"{"home": "/file-home", "applications": [{"name": "web", "instances": 2}]}"#,
        &["web:instances=5"],
        &[("FINAL_PM_CONFIG_HOME", "/env-home")],
    ));
    assert_eq!(settings.home, PathBuf::from("/env-home"));
    assert_eq!(app(&settings, "web").instances, 5);
}

#[test]
fn env_override_addresses_the_first_matching_app_case_insensitively() {
    let settings = one(load_json(
        r#"{"applications": [{"name": "Web"}, {"name": "web-api"}]}"#,
        &[],
        &[
            ("FINAL_PM_CONFIG_WEB_API_INSTANCES", "4"),
            ("FINAL_PM_CONFIG_WEB_INSTANCES", "2"),
        ],
    ));
    // `web-api-instances`: app "Web" + key "api-instances" is no key, so the
    // variable goes to "web-api".
    assert_eq!(app(&settings, "web-api").instances, 4);
    assert_eq!(app(&settings, "Web").instances, 2);
}

#[test]
fn set_applications_replaces_the_list() {
    let settings = one(load_fixture(
        "working.json",
        &[r#"applications=[{"name": "only", "run": "x.sh"}]"#],
        &[],
    ));
    assert_eq!(settings.apps.len(), 1);
    assert_eq!(settings.apps[0].name, "only");
    assert_eq!(
        settings.apps[0].run,
        fixtures().join("x.sh").display().to_string()
    );
}

#[test]
fn set_applications_is_validated() {
    let text = message(load_fixture(
        "working.json",
        &[r#"applications=[{"name": "x", "nope": 1}]"#],
        &[],
    ));
    assert_mentions(
        &text,
        &["command line", "application \"x\"", "key \"nope\""],
    );
}

#[test]
fn set_can_rename_an_app() {
    let settings = one(load_fixture(
        "working.json",
        &["zombie:name=walker", "walker:instances=2"],
        &[],
    ));
    assert_eq!(app(&settings, "walker").instances, 2);
}

#[test]
fn set_top_level_type_errors_are_reported() {
    let dir = TempDir::new().expect("temp dir");
    let text = message(load(&options(dir.path(), &[], &["ignore-env=PWD"], &[])));
    assert_mentions(
        &text,
        &[
            "--set ignore-env=PWD",
            "key \"ignore-env\"",
            "expected an array",
        ],
    );
}

#[test]
fn unknown_env_top_level_variables_only_fail_when_nothing_matches() {
    let text = message(load_fixture(
        "working.json",
        &[],
        &[("FINAL_PM_CONFIG_NOPE", "1")],
    ));
    assert_mentions(
        &text,
        &[
            "FINAL_PM_CONFIG_NOPE",
            "doesn't match any known configuration key",
            "working.json",
        ],
    );
}

// ---------------------------------------------------------------------------
// Paths

#[test]
fn home_resolves_against_the_cli_cwd_and_defaults_to_dollar_home() {
    let dir = TempDir::new().expect("temp dir");
    let settings = one(load(&options(dir.path(), &[], &["home=state"], &[])));
    assert_eq!(settings.home, dir.path().join("state"));
    assert_eq!(settings.socket, dir.path().join("state/daemon.sock"));
    assert_eq!(settings.daemon_log, dir.path().join("state/daemon.out"));
    let mut opts = options(dir.path(), &[], &[], &[]);
    opts.env
        .push(("HOME".to_owned(), "/home/someone".to_owned()));
    assert_eq!(
        one(load(&opts)).home,
        PathBuf::from("/home/someone/.final-pm"),
        "the last HOME wins"
    );
}

#[test]
fn home_in_a_file_is_relative_to_the_cli_cwd_not_the_file() {
    let dir = TempDir::new().expect("temp dir");
    fs::create_dir(dir.path().join("conf")).expect("mkdir");
    fs::write(
        dir.path().join("conf/process-config.json"),
        r#"{"home": "state"}"#,
    )
    .expect("write");
    let settings = one(load(&options(dir.path(), &["conf"], &[], &[])));
    assert_eq!(settings.home, dir.path().join("state"));
}

#[test]
fn socket_forms() {
    for (value, want) in [
        ("ws+unix://./daemon.sock", "/h/daemon.sock"),
        ("ws+unix:///run/x.sock", "/run/x.sock"),
        ("unix:rel/x.sock", "/h/rel/x.sock"),
        ("/abs/y.sock", "/abs/y.sock"),
        ("plain.sock", "/h/plain.sock"),
    ] {
        let set = format!("socket={value}");
        let settings = one(load(&options(Path::new("/"), &[], &["home=/h", &set], &[])));
        assert_eq!(settings.socket, PathBuf::from(want), "{value}");
    }
}

#[test]
fn tcp_socket_is_refused_with_a_reason() {
    let text = message(load_json(r#"{"socket": "ws://localhost:34253"}"#, &[], &[]));
    assert_mentions(
        &text,
        &[
            "process-config.json",
            "key \"socket\"",
            "ws://localhost:34253",
            "unix socket only",
        ],
    );
    let dir = TempDir::new().expect("temp dir");
    let text = message(load(&options(
        dir.path(),
        &[],
        &[],
        &[("FINAL_PM_CONFIG_SOCKET", "ws://127.0.0.1:1")],
    )));
    assert_mentions(
        &text,
        &[
            "environment (FINAL_PM_CONFIG_SOCKET)",
            "key \"socket\"",
            "tcp",
        ],
    );
}

#[test]
fn app_paths_resolve_base_path_cwd_and_run() {
    let (dir, path) = temp_config(
        "process-config.json",
        r#"{"applications": [
            {"name": "a", "cwd": "sub", "run": "bin/app.js"},
            {"name": "b", "base-path": "elsewhere", "cwd": "../x", "run": "/usr/bin/env"},
            {"name": "c", "base-path": "/opt/base", "run": "../run.sh"},
            {"name": "d", "base-path": null}
        ]}"#,
    );
    let cli_cwd = dir.path().join("cli");
    fs::create_dir(&cli_cwd).expect("mkdir");
    let settings = one(load(&options(
        &cli_cwd,
        &[path.to_str().expect("utf-8")],
        &[],
        &[],
    )));
    let root = dir.path().display().to_string();
    let cli = cli_cwd.display().to_string();
    assert_eq!(
        app(&settings, "a").cwd,
        format!("{root}/sub"),
        "base-path defaults to the file's folder"
    );
    assert_eq!(
        app(&settings, "a").run,
        format!("{root}/sub/bin/app.js"),
        "run is relative to cwd"
    );
    assert_eq!(
        app(&settings, "b").cwd,
        format!("{cli}/x"),
        "base-path is relative to the CLI cwd"
    );
    assert_eq!(app(&settings, "b").run, "/usr/bin/env");
    assert_eq!(app(&settings, "c").cwd, "/opt/base");
    assert_eq!(app(&settings, "c").run, "/opt/run.sh");
    assert_eq!(app(&settings, "d").cwd, root);
    assert_eq!(app(&settings, "d").config_path.as_deref(), path.to_str());
}

#[test]
fn apps_without_a_file_resolve_against_the_cli_cwd() {
    let dir = TempDir::new().expect("temp dir");
    let settings = one(load(&options(
        dir.path(),
        &[],
        &[r#"applications=[{"name": "x"}]"#],
        &[],
    )));
    assert_eq!(settings.apps[0].cwd, dir.path().display().to_string());
    assert_eq!(settings.apps[0].config_path, None);
}

// ---------------------------------------------------------------------------
// Environment

#[test]
fn app_env_is_the_cli_env_with_the_app_env_on_top() {
    let settings = one(load_json(
        r#"{"applications": [{"name": "web", "env": {"PORT": 8080, "DEBUG": false, "SHARED": "app"}}]}"#,
        &[],
        &[
            ("SHARED", "cli"),
            ("ONLY_CLI", "1"),
            ("USER", "me"),
            ("TERM", "xterm"),
        ],
    ));
    let env = &app(&settings, "web").env;
    assert_eq!(env["PORT"], "8080");
    assert_eq!(env["DEBUG"], "false");
    assert_eq!(env["SHARED"], "app");
    assert_eq!(env["ONLY_CLI"], "1");
    // Bug 10: ignore-env names keep their values (FinalPM blanked them).
    assert_eq!(env["USER"], "me");
    assert_eq!(env["TERM"], "xterm");
    assert_eq!(env["HOME"], FAKE_HOME);
}

#[test]
fn ignore_env_is_copied_into_every_app() {
    let settings = one(load_fixture("working.json", &[], &[]));
    let defaults: Vec<String> = DEFAULT_IGNORE_ENV.iter().map(|s| (*s).to_owned()).collect();
    assert!(settings.apps.iter().all(|app| *app.ignore_env == defaults));
    assert!(
        defaults.contains(&"DBUS_SESSION_BUS_ADDRESS".to_owned())
            && defaults.contains(&"PWD".to_owned())
    );
    let settings = one(load_fixture(
        "working.json",
        &[r#"ignore-env=["A","B"]"#],
        &[],
    ));
    assert!(
        settings
            .apps
            .iter()
            .all(|app| *app.ignore_env == ["A", "B"])
    );
    let settings = one(load_fixture(
        "working.json",
        &[],
        &[("FINAL_PM_CONFIG_IGNORE_ENV", r#"["C"]"#)],
    ));
    assert!(settings.apps.iter().all(|app| *app.ignore_env == ["C"]));
}

#[test]
fn env_names_and_values_are_checked() {
    assert_mentions(
        &message(load_app(r#""env": {"A=B": "x"}"#)),
        &["key \"env\"", "\"A=B\""],
    );
    assert_mentions(
        &message(load_app(r#""env": {"": "x"}"#)),
        &["key \"env\"", "not empty"],
    );
}

// ---------------------------------------------------------------------------
// Error format and scale

#[test]
fn error_format_file_app_key_value_expected() {
    let (dir, path) = temp_config(
        "process-config.json",
        r#"{"applications": [{"name": "web", "instances": -3}]}"#,
    );
    let err = load(&options(
        dir.path(),
        &[path.to_str().expect("utf-8")],
        &[],
        &[],
    ))
    .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        format!(
            "{}: application \"web\": key \"instances\": expected an integer from 1 to 65536, got -3",
            path.display()
        )
    );
}

#[test]
fn error_format_command_line_and_environment() {
    let dir = TempDir::new().expect("temp dir");
    let err = load(&options(dir.path(), &[], &["web:mode=spawn"], &[])).expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "command line (--set web:mode=spawn): application \"web\": key \"mode\": expected one of \"cluster\", \
         \"fork\", got \"spawn\""
    );
    let err = load(&options(
        dir.path(),
        &[],
        &[],
        &[("FINAL_PM_CONFIG_DAEMON_LOG", "")],
    ))
    .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "environment (FINAL_PM_CONFIG_DAEMON_LOG): key \"daemon-log\": expected a non-empty string, got \"\""
    );
}

#[test]
fn two_hundred_apps_load() {
    let apps: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"name": "app-{i}", "run": "apps/app{i}.js", "args": ["--id", "{i}"], "instances": {},
                    "ready-on": "message", "env": {{"INDEX": {i}}}, "stop-timeout": 5000}}"#,
                i % 8 + 1
            )
        })
        .collect();
    let settings = one(load_json(
        &format!("{{\"applications\": [{}]}}", apps.join(",")),
        &["app-199:instances=9"],
        &[],
    ));
    assert_eq!(settings.apps.len(), 200);
    assert_eq!(settings.apps[0].name, "app-0");
    assert_eq!(settings.apps[199].instances, 9);
    assert_eq!(settings.apps[42].env["INDEX"], "42");
    assert!(settings.apps[7].run.ends_with("/apps/app7.js"));
}

#[test]
fn ini_parsing() {
    let entries = npm::parse_ini(
        "# c\n; c\nplain=1\nspaced = two words \nquoted=\"q;#\"\nsingle='s'\ncomment=v ; trailing\nesc=a\\;b\\x\nflag\narr[]=x\n[sec]\nin=sec\n",
    );
    let got: Vec<(&str, &str)> = entries.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        got,
        [
            ("plain", "1"),
            ("spaced", "two words"),
            ("quoted", "q;#"),
            ("single", "s"),
            ("comment", "v"),
            ("esc", "a;b\\x"),
            ("flag", "true"),
        ]
    );
}

#[test]
fn invalid_package_json_names_the_file() {
    let dir = TempDir::new().expect("temp dir");
    fs::write(dir.path().join("package.json"), "{ nope").expect("write");
    fs::write(dir.path().join("process-config.json"), "{}").expect("write");
    let text = message(load(&options(dir.path(), &[], &[], &[])));
    assert_mentions(&text, &["package.json", "invalid json"]);
}

/// JSON objects are read as FinalPM's `JSON.parse` reads them: a key written
/// twice keeps its last value, whatever the first one was.
#[test]
fn a_key_written_twice_keeps_its_last_value() {
    let app = load_app_ok(
        r#""name": "web", "instances": -3, "run": "a.sh", "instances": 2, "env": {"A": null, "A": "x"}"#,
    );
    assert_eq!(app.instances, 2);
    assert_eq!(app.env["A"], "x");
    let text = message(load_json(
        r#"{"applications": [{"name": "web", "run": "a.sh"}], "applications": "none"}"#,
        &[],
        &[],
    ));
    assert_mentions(&text, &["key \"applications\"", "got \"none\""]);
}

/// With several problems in one object, the first by key name is reported,
/// wherever it is written, so the message does not depend on key order.
#[test]
fn of_several_bad_keys_the_first_by_name_is_reported() {
    for body in [
        r#""name": "web", "stop-timeout": 0, "args": 5"#,
        r#""name": "web", "args": 5, "stop-timeout": 0"#,
    ] {
        let text = message(load_app(body));
        assert_mentions(&text, &["application \"web\"", "key \"args\"", "got 5"]);
    }
}

/// Strings with escapes are read like any other (they cannot be borrowed
/// from the file's text, so they take another path through the parser).
#[test]
fn escaped_strings_and_keys_are_read() {
    let app = load_app_ok(r#""na\u006de": "w\u0065b", "run": "a\"b.sh", "env": {"T\tAB": "x\ny"}"#);
    assert_eq!(app.name, "web");
    assert!(app.run.ends_with("a\"b.sh"), "{}", app.run);
    assert_eq!(app.env["T\tAB"], "x\ny");
}

#[test]
fn every_key_is_parsed_by_its_name_and_no_other() {
    for key in AppKey::ALL {
        assert_eq!(AppKey::parse(key.as_str()), Some(key));
    }
    for key in TopKey::ALL {
        assert_eq!(TopKey::parse(key.as_str()), Some(key));
    }
    for unknown in [
        "",
        "Name",
        "name ",
        "args-",
        "restart",
        "revision",
        "applications",
    ] {
        assert_eq!(AppKey::parse(unknown), None, "{unknown:?}");
    }
}
