//! Cluster mode: unmodified Node apps as workers of the daemon's cluster
//! primary (issue 7). Every test is skipped when `node` is not installed.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::examples::{free_port, get};
use crate::harness::{Home, alive, node_installed, stderr, stdout, wait_for};

/// The plainest cluster app there is: answers with its pid.
const SERVER: &str = "require('http').createServer((req, res) => res.end(`${process.pid}`))\
                      .listen(Number(process.env.PORT));\n";

/// A home with `server.js` and one app `web` running it in cluster mode
/// (the default) with `extra` config keys, on a free port.
fn web(extra: &str) -> (Home, u16) {
    let home = Home::new();
    std::fs::write(home.dir.path().join("server.js"), SERVER).unwrap();
    home.config(&format!(
        r#"{{"applications": [{{"name": "web", "run": "./server.js"{extra}}}]}}"#
    ));
    (home, free_port())
}

/// Runs the CLI with `PORT` in its environment (apps inherit it); asserts
/// success and returns stdout.
fn cli(home: &Home, port: u16, args: &[&str]) -> String {
    home.ok_with(args, &[("PORT", port.to_string())])
}

/// The pids that answered `requests` GETs on fresh connections (bodies
/// `PID` or `hello from PID`).
fn answering(port: u16, requests: usize) -> BTreeSet<u32> {
    (0..requests)
        .filter_map(|_| get(port)?.trim().rsplit(' ').next()?.parse().ok())
        .collect()
}

fn pids(settled: &[(u64, u32)]) -> BTreeSet<u32> {
    settled.iter().map(|(_, pid)| *pid).collect()
}

fn log(home: &Home, app: &str) -> String {
    stdout(&home.run(&["log", app, "-n", "1000"]))
}

#[test]
fn four_workers_share_one_port_and_every_one_answers() {
    if !node_installed() {
        return;
    }
    let (home, port) = web(r#", "instances": 4"#);
    cli(&home, port, &["start", "web", "--wait"]);
    let workers = pids(&home.settle("web", 4));
    // `ready-on: listen` (the default) made them running: each sent the
    // cluster `listening` message. Round-robin reaches every one.
    assert!(
        wait_for(Duration::from_secs(10), || answering(port, 8) == workers),
        "not every worker answered"
    );
    cli(&home, port, &["--kill"]);
    assert!(workers.iter().all(|pid| !alive(*pid)));
    // The daemon closed the socket with its last worker.
    assert!(get(port).is_none());
}

#[test]
fn the_shared_policy_also_spreads_requests() {
    if !node_installed() {
        return;
    }
    let (home, port) = web(r#", "instances": 2, "env": {"NODE_CLUSTER_SCHED_POLICY": "none"}"#);
    cli(&home, port, &["start", "web", "--wait"]);
    let workers = pids(&home.settle("web", 2));
    // The kernel picks the worker, so only eventually both answer.
    assert!(
        wait_for(Duration::from_secs(20), || answering(port, 20) == workers),
        "not every worker answered"
    );
}

#[test]
fn scale_from_one_to_four_and_back() {
    if !node_installed() {
        return;
    }
    let (home, port) = web("");
    cli(&home, port, &["start", "web", "--wait"]);
    let one = pids(&home.settle("web", 1));
    assert_eq!(answering(port, 3), one);

    cli(
        &home,
        port,
        &["--set", "web:instances=4", "scale", "web", "--wait"],
    );
    let four = pids(&home.settle("web", 4));
    assert!(one.is_subset(&four));
    assert!(wait_for(Duration::from_secs(10), || answering(port, 8) == four));

    cli(
        &home,
        port,
        &["--set", "web:instances=1", "scale", "web", "--wait"],
    );
    let back = pids(&home.settle("web", 1));
    assert!(back.is_subset(&four));
    assert!(wait_for(Duration::from_secs(10), || four
        .difference(&back)
        .all(|pid| !alive(*pid))));
    // The port survived the three leaving: only the one left answers.
    assert_eq!(answering(port, 4), back);
}

#[test]
fn a_worker_that_never_listens_stays_in_new() {
    if !node_installed() {
        return;
    }
    let home = Home::new();
    std::fs::write(
        home.dir.path().join("idle.js"),
        "setTimeout(() => console.log('booted, not listening'), 200);\nsetInterval(() => {}, 1000);\n",
    )
    .unwrap();
    home.config(r#"{"applications": [{"name": "idle", "run": "./idle.js"}]}"#);
    let out = home.run(&["start", "idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(wait_for(Duration::from_secs(10), || log(&home, "idle")
        .contains("booted, not listening")));
    let processes = home.processes();
    let idle: Vec<_> = processes
        .iter()
        .filter(|p| p["app_name"] == "idle")
        .collect();
    assert_eq!(idle.len(), 1);
    assert_eq!(idle[0]["generation"], "new", "{idle:?}");
    assert!(alive(idle[0]["pid"].as_u64().unwrap() as u32));
}

#[test]
fn a_worker_calling_cluster_worker_disconnect_exits_cleanly() {
    if !node_installed() {
        return;
    }
    let home = Home::new();
    // On 'stop' the app leaves the cluster by itself: its server closes, it
    // waits for the primary's acknowledgement, then disconnects and exits.
    std::fs::write(
        home.dir.path().join("leaver.js"),
        "const cluster = require('cluster');\n\
         require('http').createServer((q, r) => r.end('hi')).listen(Number(process.env.PORT));\n\
         process.on('message', (m) => { if (m === 'stop') cluster.worker.disconnect(); });\n\
         cluster.worker.on('disconnect', () => console.log('left the cluster'));\n",
    )
    .unwrap();
    home.config(
        r#"{"applications": [{"name": "leaver", "run": "./leaver.js", "stop-signal": "message"}]}"#,
    );
    let port = free_port();
    cli(&home, port, &["start", "leaver", "--wait"]);
    let pid = home.settle("leaver", 1)[0].1;
    assert_eq!(get(port).as_deref(), Some("hi"));
    cli(&home, port, &["stop", "leaver", "--wait"]);
    assert!(!alive(pid));
    let log = log(&home, "leaver");
    assert!(log.contains("left the cluster"), "{log}");
    assert!(log.contains("code=0 signal=null"), "{log}");
    assert!(
        get(port).is_none(),
        "the socket closed with its last worker"
    );
}

#[test]
fn stop_signal_disconnect_is_the_graceful_cluster_disconnect() {
    if !node_installed() {
        return;
    }
    // A slow request is in flight when the worker is told to disconnect: it
    // is answered before the worker exits (closing the channel instead would
    // make the worker exit at once).
    let home = Home::new();
    std::fs::write(
        home.dir.path().join("slow.js"),
        "require('http').createServer((q, r) => {\n\
           console.log('request in');\n\
           setTimeout(() => r.end('done'), 500);\n\
         }).listen(Number(process.env.PORT));\n",
    )
    .unwrap();
    home.config(
        r#"{"applications": [{"name": "slow", "run": "./slow.js", "stop-signal": "disconnect"}]}"#,
    );
    let port = free_port();
    cli(&home, port, &["start", "slow", "--wait"]);
    let pid = home.settle("slow", 1)[0].1;
    let request = std::thread::spawn(move || get(port));
    assert!(wait_for(Duration::from_secs(10), || log(&home, "slow")
        .contains("request in")));
    cli(&home, port, &["stop", "slow", "--wait"]);
    assert_eq!(request.join().unwrap().as_deref(), Some("done"));
    assert!(!alive(pid));
    let log = log(&home, "slow");
    assert!(log.contains("signal=disconnect"), "{log}");
    assert!(log.contains("code=0 signal=null"), "{log}");
}

#[test]
fn a_bind_error_reaches_the_worker_and_the_apps_log() {
    if !node_installed() {
        return;
    }
    let (home, _) = web(r#", "restart-crashing-delay": 60000"#);
    // Another process holds the port.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    cli(&home, port, &["start", "web"]);
    let found = wait_for(Duration::from_secs(10), || {
        let log = log(&home, "web");
        log.contains("EADDRINUSE") && log.contains("code=1")
    });
    let log = log(&home, "web");
    assert!(found, "{log}");
    // The daemon says which address failed and why ...
    assert!(
        log.contains(&format!(
            "cannot listen on port {port}: EADDRINUSE (Address already in use)"
        )),
        "{log}"
    );
    // ... and Node raised its own error in the worker, as with a Node primary.
    assert!(
        log.contains(&format!("Error: bind EADDRINUSE null:{port}")),
        "{log}"
    );
    drop(holder);
}

#[test]
fn a_restart_under_continuous_load_fails_no_request() {
    if !node_installed() {
        return;
    }
    // FinalPM's defaults, with the graceful cluster disconnect as the stop.
    let (home, port) = web(r#", "instances": 4, "stop-signal": "disconnect""#);
    restart_under_load(&home, port);
}

#[test]
fn a_restart_of_an_app_ready_before_it_listens_fails_no_request() {
    if !node_installed() {
        return;
    }
    // `ready-on: instant`: all old processes are stopped before any new one
    // has asked for the socket. The daemon keeps it open for them; what
    // arrives meanwhile waits and is answered by the new processes.
    let home = Home::new();
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/app.js");
    std::fs::copy(app, home.dir.path().join("app.js")).unwrap();
    home.config(
        r#"{"applications": [{"name": "web", "run": "./app.js", "instances": 4, "ready-on": "instant"}]}"#,
    );
    restart_under_load(&home, free_port());
}

/// Starts `web` (4 instances, answering `hello from PID` or `PID`), restarts
/// it under load from 4 clients on fresh connections, and checks that no
/// request failed and both generations answered.
fn restart_under_load(home: &Home, port: u16) {
    let pid_of = |body: String| -> Option<u32> { body.trim().rsplit(' ').next()?.parse().ok() };
    cli(home, port, &["start", "web", "--wait"]);
    let before = pids(&home.settle("web", 4));
    // With `ready-on: instant` they are running before they listen.
    assert!(wait_for(Duration::from_secs(10), || {
        answering(port, 8).len() == 4
    }));

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, failed, served, seen) =
                (stop.clone(), failed.clone(), served.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match get(port).and_then(pid_of) {
                        Some(pid) => {
                            seen.lock().unwrap().insert(pid);
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    // Load flows before, during and after the restart.
    let flowing = |more: usize| {
        let target = served.load(Ordering::Relaxed) + more;
        assert!(wait_for(Duration::from_secs(10), || {
            served.load(Ordering::Relaxed) >= target
        }));
    };
    flowing(100);
    cli(home, port, &["restart", "web", "--wait"]);
    let after = pids(&home.settle("web", 4));
    assert!(before.is_disjoint(&after), "every instance was replaced");
    flowing(100);
    // Every new process answers in time (with `ready-on: instant` some may
    // only just be listening when the first hundred requests are done).
    let all_answered = wait_for(Duration::from_secs(20), || {
        seen.lock().unwrap().is_superset(&after)
    });
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");
    let seen = seen.lock().unwrap();
    assert!(
        all_answered && seen.is_superset(&before),
        "before {before:?}, after {after:?}, answered {seen:?}"
    );
}

#[test]
fn unix_socket_servers_are_shared_too_and_removed_with_the_last_worker() {
    if !node_installed() {
        return;
    }
    let home = Home::new();
    let path = home.dir.path().join("web.sock");
    std::fs::write(
        home.dir.path().join("unix.js"),
        "require('http').createServer((q, r) => r.end(`${process.pid}`)).listen(process.env.SOCK);\n",
    )
    .unwrap();
    home.config(r#"{"applications": [{"name": "unix", "run": "./unix.js", "instances": 2}]}"#);
    let out = home
        .cmd(&["start", "unix", "--wait"])
        .env("SOCK", &path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let workers = pids(&home.settle("unix", 2));
    let get_unix = || -> Option<u32> {
        use std::io::{Read, Write};
        let mut stream = std::os::unix::net::UnixStream::connect(&path).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_once("\r\n\r\n")?.1.trim().parse().ok()
    };
    assert!(wait_for(Duration::from_secs(10), || {
        (0..6).filter_map(|_| get_unix()).collect::<BTreeSet<_>>() == workers
    }));
    let out = home.run(&["stop", "unix", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!path.exists(), "the socket file outlived its last worker");
}

#[test]
fn udp_sockets_are_shared_between_workers() {
    if !node_installed() {
        return;
    }
    let home = Home::new();
    std::fs::write(
        home.dir.path().join("udp.js"),
        "const s = require('dgram').createSocket('udp4');\n\
         s.on('message', (m, from) => s.send(`${process.pid}`, from.port, from.address));\n\
         s.bind(Number(process.env.PORT));\n",
    )
    .unwrap();
    home.config(r#"{"applications": [{"name": "udp", "run": "./udp.js", "instances": 2}]}"#);
    let port = free_port();
    cli(&home, port, &["start", "udp", "--wait"]);
    // `ready-on: listen` is satisfied by a bound UDP socket as well.
    let workers = pids(&home.settle("udp", 2));
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answered = BTreeSet::new();
    for _ in 0..10 {
        socket.send_to(b"who", ("127.0.0.1", port)).unwrap();
        let mut buffer = [0u8; 64];
        let n = socket.recv(&mut buffer).unwrap();
        answered.insert(
            String::from_utf8_lossy(&buffer[..n])
                .parse::<u32>()
                .unwrap(),
        );
    }
    // The kernel picks the worker for each datagram; every answer comes from
    // one of them.
    assert!(
        answered.is_subset(&workers) && !answered.is_empty(),
        "{answered:?}"
    );
}

#[test]
fn malformed_cluster_messages_from_an_app_never_hurt_the_daemon() {
    if !node_installed() {
        return;
    }
    let home = Home::new();
    // Internal-looking messages an app can send by itself: nonsense queries,
    // answers to nothing, closes of unknown sockets; then a normal listen.
    std::fs::write(
        home.dir.path().join("rogue.js"),
        "const junk = [\n\
           {cmd: 'NODE_CLUSTER'},\n\
           {cmd: 'NODE_CLUSTER', act: 'queryServer', seq: 9000, port: 'x', addressType: {}},\n\
           {cmd: 'NODE_CLUSTER', act: 'queryServer', seq: 9001, address: 'not an ip', port: 1, addressType: 4},\n\
           {cmd: 'NODE_CLUSTER', act: 'queryServer', seq: 9002, port: 99999, addressType: 4},\n\
           {cmd: 'NODE_CLUSTER', ack: 424242, accepted: true},\n\
           {cmd: 'NODE_CLUSTER', act: 'close', key: 'nope'},\n\
           {cmd: 'NODE_CLUSTER', act: 42},\n\
           {cmd: 'NODE_HANDLE_ACK'},\n\
           {cmd: 'NODE_HANDLE_NACK'},\n\
         ];\n\
         for (const m of junk) process.send(m);\n\
         require('http').createServer((q, r) => r.end('still fine')).listen(Number(process.env.PORT));\n",
    )
    .unwrap();
    home.config(r#"{"applications": [{"name": "rogue", "run": "./rogue.js"}]}"#);
    let port = free_port();
    cli(&home, port, &["start", "rogue", "--wait"]);
    home.settle("rogue", 1);
    assert_eq!(get(port).as_deref(), Some("still fine"));
    let daemon = home.daemon_pid().unwrap();
    assert!(alive(daemon));
    cli(&home, port, &["--kill"]);
}

#[test]
fn ipv6_and_port_zero_one_ephemeral_port_for_all_workers() {
    if !node_installed() {
        return;
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    let home = Home::new();
    std::fs::write(
        home.dir.path().join("any.js"),
        "const server = require('http').createServer((q, r) => r.end(`${process.pid}`));\n\
         server.listen(0, '::1', () => console.log('address ' + JSON.stringify(server.address())));\n",
    )
    .unwrap();
    home.config(r#"{"applications": [{"name": "any", "run": "./any.js", "instances": 2}]}"#);
    let out = home.run(&["start", "any", "--wait"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let workers = pids(&home.settle("any", 2));
    // Each worker's `server.address()` comes from the primary's socket.
    let mut addresses = BTreeSet::new();
    assert!(wait_for(Duration::from_secs(10), || {
        addresses = log(&home, "any")
            .lines()
            .filter_map(|l| l.split_once("address ").map(|(_, a)| a.to_owned()))
            .collect();
        addresses.len() == 1 && log(&home, "any").matches("address ").count() == 2
    }));
    let address: serde_json::Value =
        serde_json::from_str(addresses.iter().next().unwrap()).unwrap();
    assert_eq!(address["address"], "::1");
    assert_eq!(address["family"], "IPv6");
    let port = address["port"].as_u64().unwrap() as u16;
    assert_ne!(port, 0);
    let get6 = || -> Option<u32> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("::1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split_once("\r\n\r\n")?.1.trim().parse().ok()
    };
    assert!(wait_for(Duration::from_secs(10), || {
        (0..6).filter_map(|_| get6()).collect::<BTreeSet<_>>() == workers
    }));
}
