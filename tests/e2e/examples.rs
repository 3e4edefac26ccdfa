//! The bundled examples, run as their README says, from a copy in a
//! temporary directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::harness::{Home, alive, node_installed, wait_for};

/// Copies `examples/<name>` into the test's directory.
fn copy_example(home: &Home, name: &str) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), home.dir.path().join(entry.file_name())).unwrap();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET /` on localhost:`port`, if anything answers.
pub fn get(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some(body.to_owned())
}

#[test]
fn shell_notify_example_serves_and_restarts_gracefully() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let home = Home::new();
    copy_example(&home, "shell-notify");
    let port = free_port().to_string();
    let args = format!("static:args=[\"{port}\"]");
    let port: u16 = port.parse().unwrap();
    home.ok(&["--set", &args, "start", "static", "--wait"]);
    let first = home.settle("static", 2);
    let body = get(port).expect("the example answers");
    assert!(body.starts_with("hello from "), "{body}");

    // READY=1 made them running; a restart replaces both once the new ones
    // sent READY=1.
    home.ok(&["--set", &args, "restart", "static"]);
    let mut answered = 0;
    let replaced = wait_for(Duration::from_secs(15), || {
        if get(port).is_some() {
            answered += 1;
        }
        first.iter().all(|(_, pid)| !alive(*pid))
    });
    assert!(replaced, "the old instances were not stopped");
    assert!(answered > 0);
    let second = home.settle("static", 2);
    assert!(second.iter().all(|s| !first.contains(s)));
    assert!(get(port).is_some());
    home.ok(&["--kill", "--wait", "stop", "all"]);
    for (_, pid) in second {
        assert!(!alive(pid));
    }
}

/// FinalPM's README quick start, step by step, with the example's Node app
/// in cluster mode (its default): start, edit instances to 4, scale,
/// restart one instance, show, log -f, --kill.
#[test]
fn quickstart_as_in_finalpms_readme() {
    use std::io::BufRead;
    if !node_installed() {
        return;
    }
    let home = Home::new();
    copy_example(&home, "quickstart");
    let port = free_port();
    let cli = |args: &[&str]| home.ok_with(args, &[("PORT", port.to_string())]);
    let pids_answering = |requests: usize| {
        let mut pids = std::collections::BTreeSet::new();
        for _ in 0..requests {
            let body = get(port).expect("the app answers");
            let pid: u32 = body.trim().rsplit(' ').next().unwrap().parse().unwrap();
            pids.insert(pid);
        }
        pids
    };

    cli(&["start", "myApp"]);
    let one = home.settle("myApp", 1);
    assert_eq!(pids_answering(3), [one[0].1].into());

    let config = home.dir.path().join("process-config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"instances\": 1", "\"instances\": 4"),
    )
    .unwrap();
    let scaled = cli(&["scale", "myApp"]);
    assert!(scaled.contains("myApp{instances} updated"), "{scaled}");
    let four = home.settle("myApp", 4);
    assert_eq!(four[0], one[0]);
    // Four workers share the port: requests reach every one of them.
    let all: std::collections::BTreeSet<u32> = four.iter().map(|(_, pid)| *pid).collect();
    assert!(
        wait_for(Duration::from_secs(10), || pids_answering(8) == all),
        "not every worker answered"
    );

    let mut follower = home
        .cmd(&["log", "-f", "-v", "-n", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    home.adopt(follower.id());
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let mut next_with = |needle: &str| loop {
        let line = lines.next().expect("the follower ended").unwrap();
        if line.contains(needle) {
            return line;
        }
    };
    next_with("Keeping connection open");

    cli(&["restart", "myApp/0"]);
    assert!(wait_for(Duration::from_secs(10), || !alive(one[0].1)));
    let after = home.settle("myApp", 4);
    assert_ne!(after[0].1, one[0].1);
    assert_eq!(after[1..], four[1..]);
    let line = next_with(&format!(
        "[myApp/0 {}] [MOVED] moved to running",
        after[0].1
    ));
    assert!(line.starts_with("[LOG  ]"), "{line}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(follower.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(follower.wait().unwrap().code(), Some(0));

    let show = cli(&["show"]);
    for n in 0..4 {
        assert!(show.contains(&format!("myApp/{n} ")), "{show}");
    }
    let daemon = home.daemon_pid().unwrap();
    cli(&["--kill"]);
    assert!(!alive(daemon));
    for (_, pid) in after {
        assert!(!alive(pid), "{pid} survived --kill");
    }
}

/// The example of FinalPM's documentation (its `--help-example`): an app
/// `app` running `./sample-app.js` with arguments and node-args, ready on
/// its `ready` message, `instances` from npm's package config or 4, and an
/// HTTP server on port 3334 whose SIGINT handler disconnects its cluster
/// worker. Both the JSON and the JS form start unchanged, serve, restart
/// gracefully and stop.
#[test]
fn finalpms_documented_example_runs_unchanged_as_json_and_js() {
    if !node_installed() {
        return;
    }
    const PORT: u16 = 3334;
    if std::net::TcpListener::bind(("127.0.0.1", PORT)).is_err() {
        eprintln!("skipped: port {PORT}, which the example hard-codes, is in use");
        return;
    }
    const APP: &str = r#"const cluster = require('cluster');
const http = require('http');

console.log('args:', process.argv.slice(2).join(' '));

const server = http.createServer((req, res) => {
    res.end('Hello from ' + process.pid + '\n');
});

server.listen(3334, () => {
    process.send('ready');
});

process.on('SIGINT', () => {
    cluster.worker.disconnect();
});
"#;
    const JSON: &str = r#"{
    "applications": [{
        "name": "app",
        "run": "./sample-app.js",
        "args": ["arg1", "arg2"],
        "node-args": ["--harmony"],
        "ready-on": "message",
        "instances": 4
    }]
}
"#;
    const JS: &str = r#"module.exports = {
    applications: [{
        name: 'app',
        run: './sample-app.js',
        args: ['arg1', 'arg2'],
        'node-args': ['--harmony'],
        'ready-on': 'message',
        instances: process.env.npm_package_config_workers || 4
    }]
};
"#;
    for (file, config, package, instances) in [
        ("process-config.json", JSON, None, 4),
        (
            "process-config.js",
            JS,
            Some(r#"{ "name": "example", "config": { "workers": 2 } }"#),
            2,
        ),
    ] {
        let home = Home::new();
        std::fs::write(home.dir.path().join("sample-app.js"), APP).unwrap();
        std::fs::write(home.dir.path().join(file), config).unwrap();
        if let Some(package) = package {
            std::fs::write(home.dir.path().join("package.json"), package).unwrap();
        }
        let started = home.ok(&["start", "app", "--wait"]);
        assert!(started.contains("Success"), "{file}: {started}");
        let first = home.settle("app", instances);
        let mut answered = std::collections::BTreeSet::new();
        for _ in 0..40 {
            let body = get(PORT).unwrap_or_else(|| panic!("{file}: no answer on {PORT}"));
            answered.insert(body);
        }
        assert!(
            answered.len() > 1 || instances == 1,
            "{file}: only one worker answered: {answered:?}"
        );
        let logs = home.ok(&["log", "app"]);
        assert!(logs.contains("args: arg1 arg2"), "{file}: {logs}");

        home.ok(&["start", "app", "--wait"]);
        let second = home.settle("app", instances);
        for (_, pid) in &first {
            assert!(
                wait_for(Duration::from_secs(10), || !alive(*pid)),
                "{file}: old pid {pid} still alive after the restart"
            );
            assert!(second.iter().all(|(_, p)| p != pid), "{file}: {second:?}");
        }
        assert!(get(PORT).is_some(), "{file}: nothing answers after restart");

        home.ok(&["--kill"]);
        for (_, pid) in &second {
            assert!(wait_for(Duration::from_secs(10), || !alive(*pid)));
        }
    }
}
