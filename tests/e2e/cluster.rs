//! Cluster mode: unmodified Node apps as workers of the daemon's cluster
//! primary (issue 7). Every test is skipped when `node` is not installed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::examples::{free_port, get};
use crate::harness::{Home, alive, stderr, stdout, wait_for};

/// The plainest cluster app there is: answers with its pid.
const SERVER: &str = "require('http').createServer((req, res) => res.end(`${process.pid}`))\
                      .listen(Number(process.env.PORT));\n";

fn node_installed() -> bool {
    let found = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: node is not installed");
    }
    found
}

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
    let out = home
        .cmd(args)
        .env("PORT", port.to_string())
        .output()
        .unwrap();
    home.remember_daemon();
    assert!(
        out.status.success(),
        "final-pm {args:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The pids that answered `requests` GETs on fresh connections.
fn answering(port: u16, requests: usize) -> BTreeSet<u32> {
    (0..requests)
        .filter_map(|_| get(port)?.trim().parse().ok())
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
    let (home, port) = web(r#", "instances": 4, "stop-signal": "disconnect""#);
    cli(&home, port, &["start", "web", "--wait"]);
    let before = pids(&home.settle("web", 4));

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let served = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, failed, served) = (stop.clone(), failed.clone(), served.clone());
            std::thread::spawn(move || {
                let mut seen = BTreeSet::new();
                while !stop.load(Ordering::Relaxed) {
                    match get(port).and_then(|body| body.trim().parse::<u32>().ok()) {
                        Some(pid) => {
                            seen.insert(pid);
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                seen
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
    cli(&home, port, &["restart", "web", "--wait"]);
    let after = pids(&home.settle("web", 4));
    assert!(before.is_disjoint(&after), "every instance was replaced");
    flowing(100);
    stop.store(true, Ordering::Relaxed);
    let mut seen = BTreeSet::new();
    for client in clients {
        seen.extend(client.join().unwrap());
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");
    assert!(
        seen.is_superset(&before) && seen.is_superset(&after),
        "{seen:?}"
    );
}
