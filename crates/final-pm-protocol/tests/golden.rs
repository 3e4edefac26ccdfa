//! Golden-file tests: every message's JSON form is pinned in `tests/golden/`.
//!
//! Each value is serialized and compared with its file, and each file is parsed
//! and compared with the value, so both directions of every message are
//! covered. The same files are the examples in the crate's rustdoc. To
//! regenerate after a deliberate change: `UPDATE_GOLDEN=1 cargo test -p final-pm-protocol`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use final_pm_protocol::{
    AppConfig, AppInfo, DaemonMessage, Environment, ErrorCode, Event, Generation, LogKind,
    LogProcess, LogRecord, ProcessId, ProcessInfo, ReadyOn, Request, Response, StopSignal, Usage,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

fn app() -> AppConfig {
    let mut app = AppConfig::new("web", "/srv/web", "/srv/web/server.js");
    app.args = vec!["--port".into(), "8080".into()];
    app.env = BTreeMap::from([("NODE_ENV".to_owned(), "production".to_owned())]).into();
    app.ready_on = ReadyOn::Message;
    app.stop_signal = StopSignal::Sigterm;
    app.instances = 2;
    app.stop_timeout = Some(5000);
    app.config_path = Some("/srv/web/process-config.json".into());
    app
}

fn process() -> ProcessInfo {
    ProcessInfo {
        id: ProcessId(3),
        pid: Some(4242),
        app_name: "web".into(),
        number: 0,
        generation: Generation::Running,
        args: vec!["--port".into(), "8080".into()],
        cwd: "/srv/web".into(),
        crashes: 0,
        started: true,
        ready: true,
        killing: false,
        revision: 1,
        outdated: false,
        start_time_ms: Some(1_795_000_000_000),
        create_time_ms: 1_795_000_000_000,
        app: None,
        usage: Some(Usage {
            cpu_ms: 1520,
            rss_bytes: 48_234_496,
        }),
    }
}

fn record() -> LogRecord {
    LogRecord {
        kind: LogKind::Stdout,
        text: "listening on 8080".into(),
        bytes: 17,
        timestamp: 1_795_000_000_123,
        app: "web".into(),
        process: Some(LogProcess {
            pid: 4242,
            id: ProcessId(3),
            number: 0,
            generation: Some(Generation::Running),
        }),
        truncated: 0,
    }
}

fn check<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(name: &str, value: &T) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let json = serde_json::to_string(value).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, format!("{json}\n")).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        !text.trim().contains('\n'),
        "{name}: a wire message is one line"
    );
    let golden: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ours: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        ours,
        golden,
        "{name}: serialized form differs from {}",
        path.display()
    );
    let parsed: T = serde_json::from_str(&text).unwrap();
    assert_eq!(
        &parsed, value,
        "{name}: parsing the golden file gives another value"
    );
}

#[test]
fn requests() {
    let cases = [
        (
            "hello",
            Request::Hello {
                protocol_version: 1,
                client: "final-pm 0.1.0".into(),
            },
        ),
        (
            "add",
            Request::Add {
                app: Box::new(app()),
                force: false,
            },
        ),
        (
            "delete",
            Request::Delete {
                name: "web".into(),
                force: false,
            },
        ),
        (
            "start",
            Request::Start {
                name: "web".into(),
                number: Some(0),
            },
        ),
        ("stop", Request::Stop { id: ProcessId(3) }),
        ("kill", Request::Kill { id: ProcessId(3) }),
        (
            "send",
            Request::Send {
                id: ProcessId(3),
                message: serde_json::json!({"cmd": "reload"}),
            },
        ),
        ("info", Request::Info { usage: true }),
        ("wait", Request::Wait { all: false }),
        (
            "logs",
            Request::Logs {
                name: "web".into(),
                ids: vec![],
                lines: Some(10),
                follow: true,
            },
        ),
        ("follow", Request::Follow { name: "all".into() }),
        ("unfollow", Request::Unfollow { name: "all".into() }),
        ("kill_daemon", Request::KillDaemon {}),
        (
            "all",
            Request::All {
                requests: vec![
                    Request::Start {
                        name: "web".into(),
                        number: Some(0),
                    },
                    Request::Stop { id: ProcessId(3) },
                    Request::Wait { all: false },
                ],
            },
        ),
    ];
    let names: Vec<&str> = cases.iter().map(|(_, r)| r.type_name()).collect();
    assert_eq!(
        names,
        Request::TYPES,
        "every request type has a golden file"
    );
    for (name, request) in &cases {
        check(&format!("request/{name}"), request);
    }
}

#[test]
fn responses() {
    let cases = [
        (
            "hello",
            Response::Hello {
                protocol_version: 1,
                daemon_version: "0.1.0".into(),
                pid: 4242,
            },
        ),
        ("ok", Response::Ok {}),
        (
            "added",
            Response::Added {
                added: false,
                changed: vec!["instances".into(), "env".into()],
                revision: 4,
            },
        ),
        ("deleted", Response::Deleted { name: "web".into() }),
        (
            "started",
            Response::Started {
                process: Box::new(process()),
            },
        ),
        (
            "info",
            Response::Info {
                applications: vec![AppInfo {
                    revision: 1,
                    config: app(),
                }],
                processes: vec![process()],
                daemon_version: "0.1.0".into(),
                pid: 4241,
            },
        ),
        (
            "logs",
            Response::Logs {
                records: vec![record()],
            },
        ),
        (
            "batch",
            Response::Batch {
                results: vec![
                    Response::Started {
                        process: Box::new(process()),
                    },
                    Response::error(ErrorCode::NoSuchProcess, "no process with id 99"),
                    Response::Ok {},
                ],
            },
        ),
        (
            "error",
            Response::error(ErrorCode::UnknownApp, "no application named \"api\""),
        ),
    ];
    let names: Vec<&str> = cases.iter().map(|(_, r)| r.type_name()).collect();
    assert_eq!(
        names,
        Response::TYPES,
        "every response type has a golden file"
    );
    for (name, response) in &cases {
        check(&format!("response/{name}"), response);
    }
}

#[test]
fn events() {
    check("event/log", &Event::Log { record: record() });
    check("event/missed", &Event::Missed { count: 1200 });
}

#[test]
fn daemon_message_tells_replies_from_events() {
    let event: DaemonMessage = serde_json::from_str(r#"{"type":"missed","count":3}"#).unwrap();
    assert_eq!(event, DaemonMessage::Event(Event::Missed { count: 3 }));
    let reply: DaemonMessage = serde_json::from_str(r#"{"type":"ok"}"#).unwrap();
    assert_eq!(reply, DaemonMessage::Response(Response::Ok {}));
}

#[test]
fn daemon_message_decodes_every_golden_reply_and_event_like_its_type() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    for (kind, is_event) in [("response", false), ("event", true)] {
        for entry in std::fs::read_dir(dir.join(kind)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let expected = if is_event {
                DaemonMessage::Event(serde_json::from_str(&text).unwrap())
            } else {
                DaemonMessage::Response(serde_json::from_str(&text).unwrap())
            };
            let line = text.trim_end().as_bytes();
            assert_eq!(
                DaemonMessage::from_json(line).unwrap(),
                expected,
                "{}",
                path.display()
            );
            assert_eq!(
                serde_json::from_slice::<DaemonMessage>(line).unwrap(),
                expected
            );
        }
    }
    // Fields this version does not know are ignored, in any order.
    let info = r#"{"processes":[],"later":1,"pid":7,"applications":[],"type":"info","daemon_version":"9"}"#;
    assert_eq!(
        DaemonMessage::from_json(info.as_bytes()).unwrap(),
        DaemonMessage::Response(Response::Info {
            applications: Vec::new(),
            processes: Vec::new(),
            daemon_version: "9".into(),
            pid: 7,
        })
    );
    // A type name with an escape in it is read the slow way, and still read.
    assert_eq!(
        DaemonMessage::from_json(br#"{"type":"\u006fk"}"#).unwrap(),
        DaemonMessage::Response(Response::Ok {})
    );
    assert!(DaemonMessage::from_json(br#"{"type":"info","pid":7}"#).is_err());
    assert!(DaemonMessage::from_json(br#"{"type":"info"#).is_err());
    assert!(DaemonMessage::from_json(br#"{"pid":7}"#).is_err());
}

#[test]
fn unknown_error_codes_are_accepted() {
    let reply: Response =
        serde_json::from_str(r#"{"type":"error","code":"from_the_future","message":"x"}"#).unwrap();
    assert_eq!(reply, Response::error(ErrorCode::Unknown, "x"));
}

#[test]
fn unknown_fields_are_ignored_for_forward_compatibility() {
    let request: Request =
        serde_json::from_str(r#"{"type":"stop","id":3,"reason":"later version"}"#).unwrap();
    assert_eq!(request, Request::Stop { id: ProcessId(3) });
}

#[test]
fn app_config_defaults_match_finalpm() {
    let app: AppConfig = serde_json::from_str(r#"{"name":"a","cwd":"/","run":"/a.js"}"#).unwrap();
    assert_eq!(app, AppConfig::new("a", "/", "/a.js"));
    let json = serde_json::to_value(&app).unwrap();
    assert_eq!(json["ready-on"], "listen");
    assert_eq!(json["stop-signal"], "SIGINT");
    assert_eq!(json["kill-signal"], "SIGKILL");
    assert_eq!(json["restart-crashing-delay"], 1000);
    assert_eq!(json["max-buffered-log-bytes"], 262_144);
    assert_eq!(json["logger-args"], serde_json::json!(["log.txt"]));
}

#[test]
fn app_config_debug_hides_environment_values() {
    let text = format!("{:?}", app());
    assert!(text.contains("NODE_ENV"));
    assert!(!text.contains("production"), "{text}");
}

/// The CLI shares its environment between apps; the daemon must not be able
/// to tell: on the wire and in comparisons an app that inherits variables is
/// the app with the merged map, its own variables winning.
#[test]
fn inherited_environment_is_the_merged_map() {
    let pair = |name: &str, value: &str| (name.to_owned(), value.to_owned());
    let shared = Arc::new(BTreeMap::from([
        pair("NODE_ENV", "development"),
        pair("PATH", "/bin"),
    ]));
    let mut inheriting = app();
    inheriting.env = Environment::from(BTreeMap::from([pair("NODE_ENV", "production")]))
        .inheriting(Arc::clone(&shared));
    let mut flat = app();
    flat.env = BTreeMap::from([pair("NODE_ENV", "production"), pair("PATH", "/bin")]).into();

    let json = serde_json::to_string(&inheriting).unwrap();
    assert_eq!(json, serde_json::to_string(&flat).unwrap());
    assert_eq!(inheriting, flat);
    assert_eq!(serde_json::from_str::<AppConfig>(&json).unwrap(), flat);
    assert_eq!(inheriting.env.len(), 2);
    assert_eq!(inheriting.env["NODE_ENV"], "production");
    assert_eq!(
        inheriting.env.keys().collect::<Vec<_>>(),
        ["NODE_ENV", "PATH"]
    );

    // Leaving a variable out (as change detection does for `ignore-env`)
    // removes it, not just the app's own value over the inherited one.
    inheriting.env.retain(|name, _| name != "NODE_ENV");
    assert_eq!(inheriting.env.get("NODE_ENV"), None);
    assert_eq!(inheriting.env.len(), 1);
    assert_eq!(shared.len(), 2, "the shared map is not changed");
}
