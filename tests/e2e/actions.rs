//! Every action, option and selector form, through the real binary, with
//! real processes (POSIX shell scripts), checked by pid, exit status and
//! output.

use std::time::Duration;

use crate::harness::{Home, alive, rss_kib, stderr, stdout, wait_for};

/// An app that prints three lines and then idles; SIGINT (the default stop
/// signal) ends it.
const APP: &str =
    "#!/bin/sh\necho \"first $$\"\necho \"second $$\"\necho \"third $$\"\nexec sleep 1000\n";

fn config(web_instances: u32) -> String {
    format!(
        r#"{{"applications": [
            {{"name": "web", "run": "./app.sh", "ready-on": "instant", "instances": {web_instances}}},
            {{"name": "worker", "run": "./app.sh", "ready-on": "instant", "instances": 1}}
        ]}}"#
    )
}

fn home_with_apps(web_instances: u32) -> Home {
    let home = Home::new();
    home.script("app.sh", APP);
    home.config(&config(web_instances));
    home
}

fn fails(home: &Home, args: &[&str], code: i32) -> String {
    let out = home.run(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "final-pm {args:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

fn gone(pid: u32) -> bool {
    wait_for(Duration::from_secs(10), || !alive(pid))
}

#[test]
fn start_restart_stop_by_every_selector_form() {
    let home = home_with_apps(2);
    let text = home.ok(&["start", "web"]);
    assert!(text.contains("[INFO ] [Config] web added"), "{text}");
    assert!(text.contains("Start 2 processes..."), "{text}");
    assert!(text.contains("[INFO ] [Action] Success"), "{text}");
    let web = home.settle("web", 2);
    assert!(web.iter().all(|(_, pid)| alive(*pid)));

    // restart one process: a new pid for number 0, the old one stopped once
    // the new one is ready, number 1 untouched.
    let text = home.ok(&["restart", "web/0"]);
    assert!(text.contains("Start 1 process..."), "{text}");
    assert!(gone(web[0].1), "old web/0 still alive");
    let after = home.settle("web", 2);
    assert_ne!(after[0].1, web[0].1);
    assert_eq!(after[1], web[1]);

    // stop by pid, by generation + number, by id.
    home.ok(&["stop", &format!("pid={}", after[0].1)]);
    assert!(gone(after[0].1));
    home.ok(&["stop", "running:web/1"]);
    assert!(gone(after[1].1));
    home.ok(&["start", "worker"]);
    let worker = home.settle("worker", 1);
    let id = home
        .processes()
        .iter()
        .find(|p| p["app_name"] == "worker")
        .and_then(|p| p["id"].as_u64())
        .unwrap();
    let text = home.ok(&["stop", &format!("id={id}")]);
    assert!(text.contains("Stop 1 process..."), "{text}");
    assert!(gone(worker[0].1));
    assert!(home.processes().is_empty());
}

#[test]
fn start_all_kill_all_and_wait() {
    let home = home_with_apps(2);
    let text = home.ok(&["start", "all", "--wait"]);
    assert!(
        text.contains("Start 3 processes, then wait for completion..."),
        "{text}"
    );
    // --wait returned only once every process is running.
    let running: Vec<_> = home
        .processes()
        .iter()
        .map(|p| p["generation"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(running, ["running", "running", "running"]);
    let pids: Vec<u32> = home
        .processes()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap() as u32)
        .collect();
    let text = home.ok(&["kill", "all"]);
    assert!(text.contains("Kill 3 processes..."), "{text}");
    for pid in pids {
        assert!(gone(pid), "{pid} survived kill all");
    }
}

#[test]
fn scale_follows_the_edited_instances_and_add_reports_changes() {
    let home = home_with_apps(1);
    home.ok(&["start", "web"]);
    let one = home.settle("web", 1);

    home.config(&config(3));
    let text = home.ok(&["scale", "web"]);
    assert!(
        text.contains("[INFO ] [Config] web{instances} updated"),
        "{text}"
    );
    assert!(text.contains("Start 2 processes..."), "{text}");
    let three = home.settle("web", 3);
    assert_eq!(three[0], one[0], "scaling up leaves web/0 alone");

    home.config(&config(1));
    let text = home.ok(&["scale", "web"]);
    assert!(text.contains("Stop 2 processes..."), "{text}");
    assert!(gone(three[1].1) && gone(three[2].1));
    assert_eq!(home.settle("web", 1), one);

    // An edit that is not applied yet shows the running process as (old).
    home.script("app2.sh", APP);
    std::fs::write(
        home.dir.path().join("process-config.json"),
        config(1).replacen("./app.sh", "./app2.sh", 1),
    )
    .unwrap();
    let text = home.ok(&["add", "web"]);
    assert!(text.contains("web{run} updated"), "{text}");
    let show = home.ok(&["show", "web"]);
    assert!(show.contains("web/0 (old)"), "{show}");
    assert!(
        show.contains("(old) started from an older configuration"),
        "{show}"
    );
    // An identical upload changes nothing and says nothing.
    let text = home.ok(&["add", "web"]);
    assert!(
        !text.contains("updated") && !text.contains("added"),
        "{text}"
    );
    home.ok(&["restart", "web"]);
    assert!(gone(one[0].1));
    home.settle("web", 1);
    let show = home.ok(&["show", "web"]);
    assert!(!show.contains("(old)"), "{show}");
}

#[test]
fn show_and_inspect_print_what_the_daemon_has() {
    let home = home_with_apps(2);
    home.ok(&["add", "all"]);
    home.ok(&["start", "web"]);
    let web = home.settle("web", 2);
    let show = home.ok(&["show"]);
    let lines: Vec<&str> = show.lines().collect();
    assert!(lines[0].starts_with("Process"), "{show}");
    for header in [
        "ID",
        "PID",
        "Generation",
        "Uptime",
        "Crashes",
        "CPU",
        "Memory",
    ] {
        assert!(lines[0].contains(header), "{show}");
    }
    assert!(lines[1].starts_with("web/0 ") && lines[1].contains(&web[0].1.to_string()));
    assert!(lines[1].contains("running"), "{show}");
    assert!(
        lines[1].contains("MiB") || lines[1].contains("KiB"),
        "{show}"
    );
    assert!(lines[2].starts_with("web/1 "), "{show}");
    assert!(
        lines[3].starts_with("worker ") && lines[3].contains("stopped"),
        "{show}"
    );
    assert!(show.lines().all(|l| l.chars().count() <= 80), "{show}");
    assert!(
        !show.contains('\x1b'),
        "no colour without a terminal: {show:?}"
    );
    // Selectors narrow it.
    let only = home.ok(&["show", "web/1"]);
    assert!(!only.contains("web/0") && only.contains("web/1"), "{only}");

    let inspect = home.ok(&["inspect", "web"]);
    assert!(inspect.starts_with("web = {\n"), "{inspect}");
    assert!(inspect.contains("  instances: 2\n"), "{inspect}");
    assert!(inspect.contains("  env: { ... }\n"), "{inspect}");
    assert!(!inspect.contains("running:web/0"), "exact mode: app only");
    let inspect = home.ok(&["inspect", "web/0"]);
    assert!(inspect.starts_with("running:web/0 = {\n"), "{inspect}");
    assert!(
        inspect.contains(&format!("  pid: {}\n", web[0].1)),
        "{inspect}"
    );
    let verbose = home.ok(&["inspect", "web", "-v"]);
    assert!(verbose.contains("  env: {\n"), "{verbose}");

    let json: serde_json::Value =
        serde_json::from_str(&home.ok(&["inspect", "web/1", "--json"])).unwrap();
    assert_eq!(json["processes"][0]["pid"], web[1].1);
    assert_eq!(json["applications"].as_array().unwrap().len(), 0);
    assert!(json["processes"][0].get("usage").is_none(), "{json}");
    // `show --json` has what the table's CPU and memory columns come from:
    // the daemon's reading of the process's own `/proc` entry.
    let json: serde_json::Value =
        serde_json::from_str(&home.ok(&["show", "web/1", "--json"])).unwrap();
    let usage = &json["processes"][0]["usage"];
    let vm_rss_kib = rss_kib(web[1].1);
    let rss = usage["rss_bytes"].as_u64().unwrap();
    assert!(
        rss > 0 && rss.abs_diff(vm_rss_kib * 1024) < 4 * 1024 * 1024,
        "{usage} vs VmRSS {vm_rss_kib} kB"
    );
    assert!(usage["cpu_ms"].as_u64().is_some(), "{usage}");

    let err = fails(&home, &["show", "nosuch"], 1);
    assert!(err.contains("No such application: nosuch"), "{err}");
}

#[test]
fn show_is_coloured_on_a_terminal_only() {
    let home = home_with_apps(1);
    home.ok(&["start", "web"]);
    home.settle("web", 1);
    // `script` gives the CLI a pseudo-terminal.
    let run_in_pty = |no_color: bool| {
        let mut cmd = std::process::Command::new("script");
        cmd.args(["-q", "-e", "-c"])
            .arg(format!("{} show", crate::harness::bin()))
            .arg("/dev/null")
            .current_dir(home.dir.path())
            .env("FINAL_PM_CONFIG_HOME", home.home())
            .env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let coloured = run_in_pty(false);
    assert!(coloured.contains("\x1b[32mrunning"), "{coloured:?}");
    let plain = run_in_pty(true);
    assert!(
        plain.contains("running") && !plain.contains('\x1b'),
        "{plain:?}"
    );
}

#[test]
fn log_prints_by_selector_merges_and_counts_lines() {
    let home = home_with_apps(2);
    home.ok(&["start", "all"]);
    let web = home.settle("web", 2);
    let worker = home.settle("worker", 1);
    let has_third = |pid: u32| {
        let text = stdout(&home.run(&["log", "all", "-n", "100"]));
        text.contains(&format!("third {pid}"))
    };
    for (_, pid) in web.iter().chain(&worker) {
        assert!(wait_for(Duration::from_secs(10), || has_third(*pid)));
    }
    let text = home.ok(&["log", "web", "-n", "2"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines.iter().all(|l| l.starts_with("[LOG  ] [")), "{text}");
    // The last two of the app's records, whichever instance wrote last.
    let everything = home.ok(&["log", "web"]);
    let tail: Vec<&str> = everything.lines().rev().take(2).collect();
    assert_eq!(
        lines,
        tail.into_iter().rev().collect::<Vec<_>>(),
        "{everything}"
    );
    assert!(
        web.iter()
            .any(|(_, pid)| text.contains(&format!("third {pid}"))),
        "{text}"
    );

    let text = home.ok(&["log", "web/0"]);
    assert!(text.contains(&format!("first {}", web[0].1)), "{text}");
    assert!(!text.contains(&format!("first {}", web[1].1)), "{text}");
    let text = home.ok(&["log", &format!("pid={}", worker[0].1)]);
    assert!(
        text.contains("worker/0") && !text.contains("web/"),
        "{text}"
    );

    // Two apps: -n counts per app, and the records are merged by time.
    let text = home.ok(&["log", "web", "worker", "-n", "1"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    let text = home.ok(&["log", "-n", "0"]);
    assert_eq!(text, "");

    let json = home.ok(&["log", "worker", "--json", "-n", "1"]);
    let record: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(record["app"], "worker");
    assert_eq!(record["type"], "stdout");

    let err = fails(&home, &["log", "-n", "-1"], 2);
    assert!(err.contains("0 or more"), "{err}");
    let err = fails(&home, &["log", "nosuch"], 1);
    assert!(err.contains("No such application: nosuch"), "{err}");
}

#[test]
fn log_follow_streams_new_lines_until_interrupted() {
    use std::io::BufRead;
    let home = home_with_apps(1);
    home.ok(&["add", "all"]);
    let mut follower = home
        .cmd(&["log", "-f", "-v", "web", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    home.adopt(follower.id());
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let pipe = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut until = |needle: &str| loop {
        let line = lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no line with {needle:?} in {seen:#?}"));
        seen.push(line.clone());
        if line.contains(needle) {
            break;
        }
    };
    until("Keeping connection open");
    home.ok(&["start", "web", "worker"]);
    let web = home.settle("web", 1);
    until(&format!("[STDOUT] third {}", web[0].1));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(follower.wait().unwrap().code(), Some(0));
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        seen.push(line);
    }
    assert!(
        seen.iter().all(|l| !l.contains("worker/")),
        "only web was followed: {seen:#?}"
    );
}

#[test]
fn delete_removes_apps_and_keeps_their_processes_as_outdated() {
    let home = home_with_apps(1);
    home.ok(&["start", "web"]);
    let web = home.settle("web", 1);
    let text = home.ok(&["delete", "web"]);
    assert!(text.contains("Delete 1 application..."), "{text}");
    let show = home.ok(&["show", "--no-upload"]);
    assert!(show.contains("web/0 (old)"), "{show}");
    assert!(alive(web[0].1));
    home.ok(&["stop", "web"]);
    assert!(gone(web[0].1));
    let err = fails(&home, &["delete", "web/0"], 1);
    assert!(err.contains("delete takes application names"), "{err}");
}

#[test]
fn failures_set_the_exit_status() {
    let home = home_with_apps(1);
    let err = fails(&home, &["start", "nosuch"], 1);
    assert!(
        err.contains("[ERROR] [Selector] No such application: nosuch"),
        "{err}"
    );
    let err = fails(&home, &["add", "nosuch"], 1);
    assert!(err.contains("No application nosuch in"), "{err}");
    let err = fails(&home, &["stop", "id=424242"], 1);
    assert!(err.contains("No process matches id=424242"), "{err}");
    // Nothing to stop in a known app is not a failure.
    home.ok(&["add", "web"]);
    let text = home.ok(&["stop", "web"]);
    assert!(text.contains("No process to stop matches web"), "{text}");

    // An app uploaded from another config file is refused without --force.
    let other = home.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(home.dir.path().join("app.sh"), other.join("app.sh")).unwrap();
    std::fs::write(other.join("process-config.json"), config(1)).unwrap();
    let out = home
        .cmd(&["add", "web"])
        .current_dir(&other)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("Daemon rejected configuration for web because it was uploaded from another configuration file"),
        "{err}"
    );
    assert!(err.contains("Try using --force or --no-upload."), "{err}");
    let out = home
        .cmd(&["add", "web", "--force"])
        .current_dir(&other)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("web{"), "{}", stdout(&out));
}

#[test]
fn usage_errors_exit_2_before_touching_anything() {
    let home = home_with_apps(1);
    for (args, message) in [
        (&["foo", "bar"][..], "Unknown action: foo"),
        (&["foo"][..], "Unknown action: foo"),
        (&["stop"][..], "Selector is missing"),
        (&["stop", "a/b"][..], "Unknown selector: a/b"),
        (&["stop", "runing:web"][..], "Unknown generation \"runing\""),
        (&["--foo"][..], "--foo"),
        (&["show", "-f"][..], "only applies to the log action"),
    ] {
        let err = fails(&home, args, 2);
        assert!(err.contains(message), "{args:?}: {err}");
        assert!(err.contains("Check \"final-pm --help\""), "{err}");
    }
    assert!(!home.socket().exists(), "no daemon was launched");
}

#[test]
fn dry_run_launches_nothing_and_says_what_it_would_do() {
    let home = home_with_apps(2);
    let text = home.ok(&["start", "all", "--dry"]);
    assert!(text.contains("[DRY]"), "{text}");
    assert!(text.contains("start(\"web\", {\"number\":1})"), "{text}");
    assert!(text.contains("Start 3 processes..."), "{text}");
    assert!(!home.socket().exists(), "--dry launched a daemon");
    // Against a running daemon it changes nothing either.
    home.ok(&["--launch"]);
    home.ok(&["start", "web", "--dry"]);
    assert!(home.processes().is_empty());
}

#[test]
fn wait_kill_stops_everything_and_the_daemon() {
    let home = home_with_apps(2);
    home.ok(&["start", "all"]);
    let pids: Vec<u32> = home.settle("web", 2).iter().map(|(_, p)| *p).collect();
    let daemon = home.daemon_pid().unwrap();
    let text = home.ok(&["--wait", "--kill", "stop", "all"]);
    assert!(
        text.contains("Stop 3 processes, then wait for completion, then kill daemon..."),
        "{text}"
    );
    assert!(!alive(daemon), "the daemon survived --kill");
    for pid in pids {
        assert!(!alive(pid), "{pid} survived");
    }
    assert!(!home.socket().exists());
}

/// The process group and session of `pid`, from `/proc/PID/stat` (the fields
/// after the parenthesised command name: state, ppid, pgrp, session).
fn group_and_session(pid: u32) -> (u32, u32) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u32> = after
        .split(' ')
        .skip(1)
        .take(3)
        .map(|f| f.parse().unwrap())
        .collect();
    (fields[1], fields[2])
}

#[test]
fn every_process_leads_its_own_session_and_process_group() {
    let home = home_with_apps(2);
    home.ok(&["start", "web"]);
    let web = home.settle("web", 2);
    let daemon = home.daemon_pid().expect("a daemon runs");
    let (_, daemon_session) = group_and_session(daemon);
    for (_, pid) in web {
        // Its own group, so stop and kill signals reach what it started; its
        // own session, so the scheduler's per-session groups (autogroup)
        // weigh it like any other program instead of lumping every managed
        // process into the daemon's share of the CPU.
        assert_eq!(group_and_session(pid), (pid, pid), "pid {pid}");
        assert_ne!(pid, daemon_session);
    }
}

/// `show` sends its query before it has read the configuration, to the
/// socket the environment names; when the configuration names another one,
/// the answer must come from that other daemon.
#[test]
fn show_asks_the_daemon_the_configuration_names() {
    let home = Home::new();
    let sleeper = |name: &str, socket: Option<&std::path::Path>| {
        let socket = socket.map_or(String::new(), |s| format!(r#""socket":"{}","#, s.display()));
        format!(
            r#"{{{socket}"applications":[{{"name":"{name}","ready-on":"instant",
                "run":"/bin/sh","args":["-c","exec sleep 600"]}}]}}"#
        )
    };
    home.config(&sleeper("near", None));
    home.ok(&["start", "near", "--wait"]);
    let near = home.settle("near", 1)[0].1;

    let elsewhere = home.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let socket = elsewhere.join("ctl.sock");
    std::fs::write(
        elsewhere.join("process-config.json"),
        sleeper("far", Some(&socket)),
    )
    .unwrap();
    let in_elsewhere = |args: &[&str]| {
        let out = home.cmd(args).current_dir(&elsewhere).output().unwrap();
        if let Ok(pid) = std::fs::read_to_string(elsewhere.join("ctl.sock.lock")) {
            home.adopt(pid.trim().parse().unwrap());
        }
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    in_elsewhere(&["start", "far", "--wait"]);
    let info: serde_json::Value = serde_json::from_str(&in_elsewhere(&["show", "--json"])).unwrap();
    let far = info["processes"][0]["pid"].as_u64().unwrap() as u32;
    home.adopt(far);

    let shown = in_elsewhere(&["show"]);
    assert!(shown.contains(&far.to_string()), "{shown}");
    assert!(!shown.contains("near"), "{shown}");
    let shown = home.ok(&["show"]);
    assert!(shown.contains(&near.to_string()), "{shown}");
    assert!(!shown.contains("far"), "{shown}");
    in_elsewhere(&["--kill"]);
    assert!(wait_for(Duration::from_secs(5), || !alive(far)));
}
