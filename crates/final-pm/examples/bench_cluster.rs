//! Zero-downtime restarts under load: FinalPM's quick-start app in cluster
//! mode (its defaults: round-robin, `ready-on: listen`, SIGINT) with 4
//! instances on one port, driven by keep-alive HTTP clients for a while,
//! with `final-pm restart app --wait` in the middle. The same runs on the
//! original FinalPM when `BENCH_FINALPM` names its executable. Run through
//! `bench/run`; prints JSON lines in the suite's format.
//!
//! The restart is timed until the CLI returns (at rest: the new processes
//! run and the old ones have exited, after finishing the requests on their
//! open connections) and, for final-pm, until four new processes run (the
//! restart took effect: every new connection goes to a new process).
//!
//! Counting: a response with status 200 is served. A request is failed when
//! it gets anything else, no answer within 5 s, or when a fresh connection
//! is refused or closed without an answer. A request sent on a reused
//! keep-alive connection that the server closed before answering is sent
//! again on a new connection, as HTTP/1.1 clients do for idempotent requests
//! (RFC 9112 §9.3.1); those are counted as `retried`, not failed.
//!
//! Usage: `bench_cluster PATH_TO_FINAL_PM [SECONDS] [CONNECTIONS]` (defaults
//! 10 s, 16 connections).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

use figures::report;
use final_pm_protocol::{Client, Generation, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Counts {
    served: Cell<u64>,
    failed: Cell<u64>,
    retried: Cell<u64>,
}

fn bump(cell: &Cell<u64>) {
    cell.set(cell.get() + 1);
}

/// What became of one request.
enum Outcome {
    /// A complete response; `close` when the server ends the connection.
    Response { ok: bool, close: bool },
    /// The connection ended before the first byte of a response.
    ClosedEarly,
    /// Anything else: a broken or late response.
    Broken,
}

/// Sends one request and reads its response (Content-Length bodies only,
/// which is what Node sends for `res.end(text)`).
async fn exchange(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Outcome {
    if stream.write_all(REQUEST).await.is_err() {
        return Outcome::ClosedEarly;
    }
    buffer.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) if buffer.is_empty() => return Outcome::ClosedEarly,
            Ok(0) | Err(_) => return Outcome::Broken,
            Ok(n) => n,
        };
        buffer.extend_from_slice(&chunk[..n]);
        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buffer.len() < end + 4 + length {
            continue;
        }
        return Outcome::Response {
            ok: head.starts_with("http/1.1 200"),
            close: head.contains("connection: close"),
        };
    }
}

/// One keep-alive client until `until`.
async fn client(port: u16, until: Instant, counts: Rc<Counts>) {
    let mut stream: Option<TcpStream> = None;
    let mut buffer = Vec::with_capacity(4096);
    while Instant::now() < until {
        let reused = stream.is_some();
        let mut conn = match stream.take() {
            Some(conn) => conn,
            None => match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(conn) => {
                    conn.set_nodelay(true).unwrap();
                    conn
                }
                Err(_) => {
                    bump(&counts.failed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            },
        };
        match tokio::time::timeout(TIMEOUT, exchange(&mut conn, &mut buffer)).await {
            Ok(Outcome::Response { ok, close }) => {
                bump(if ok { &counts.served } else { &counts.failed });
                if !close {
                    stream = Some(conn);
                }
            }
            Ok(Outcome::ClosedEarly) if reused => bump(&counts.retried),
            Ok(Outcome::ClosedEarly | Outcome::Broken) | Err(_) => bump(&counts.failed),
        }
    }
}

fn final_pm(exe: &Path, home: &Path, dir: &Path, port: u16, args: &[&str]) -> Vec<u8> {
    let out = Command::new(exe)
        .args(args)
        .env("FINAL_PM_CONFIG_HOME", home)
        .env("PORT", port.to_string())
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "final-pm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Pids of the app's running processes.
fn running(exe: &Path, home: &Path, dir: &Path, port: u16) -> BTreeSet<u64> {
    let out = final_pm(exe, home, dir, port, &["show", "--json", "--no-upload"]);
    let info: serde_json::Value = serde_json::from_slice(&out).unwrap();
    info["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["generation"] == "running")
        .filter_map(|p| p["pid"].as_u64())
        .collect()
}

/// Restarts the app with `restart app --wait` (at rest: new processes
/// running, old ones exited); returns its wall time and, for final-pm, when
/// four new processes were running, both in milliseconds. `before` are the
/// app's running processes. The poller asks the daemon over one open
/// connection every 5 ms (~0.1 ms each), so watching costs the machine
/// next to nothing, unlike a `show` invocation per look.
fn restart(m: &Manager, before: Option<BTreeSet<u64>>) -> (f64, Option<f64>) {
    let begun = Instant::now();
    let replaced = before.map(|before| {
        let socket = m.home.join("daemon.sock");
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut client = Client::connect(&socket, "bench_cluster").await.unwrap();
                loop {
                    let Response::Info { processes, .. } =
                        client.call(Request::Info { usage: false }).await.unwrap()
                    else {
                        panic!("info answered with something else");
                    };
                    let now: BTreeSet<u64> = processes
                        .iter()
                        .filter(|p| p.app_name == "app" && p.generation == Generation::Running)
                        .filter_map(|p| p.pid.map(u64::from))
                        .collect();
                    if now.len() == 4 && now.is_disjoint(&before) {
                        return begun.elapsed().as_secs_f64() * 1e3;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
    });
    m.cli(&["restart", "app", "--wait"]);
    let wait = begun.elapsed().as_secs_f64() * 1e3;
    (wait, replaced.map(|poller| poller.join().unwrap()))
}

/// The floor of a restart: four plain `node` processes (no manager, no
/// cluster; each through `setsid`) started at once, each running a minimal HTTP server that exits
/// as soon as it listens; the time until all four exited, in milliseconds.
/// Run while the same load goes on, so it competes for the same cores as
/// the restart's new processes did.
fn bare_starts(dir: &Path) -> f64 {
    let script = dir.join("bare.js");
    std::fs::write(
        &script,
        "require('http').createServer((q, r) => r.end()).listen(0, () => process.exit(0));\n",
    )
    .unwrap();
    let begun = Instant::now();
    // Each in a session of its own, as final-pm starts its processes, so
    // the kernel's per-session CPU groups treat both alike.
    let children: Vec<_> = (0..4)
        .map(|_| {
            Command::new("setsid")
                .arg("node")
                .arg(&script)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success(), "node {}", script.display());
    }
    begun.elapsed().as_secs_f64() * 1e3
}

/// One process manager with its own home and app folder.
struct Manager {
    subject: &'static str,
    exe: PathBuf,
    dir: PathBuf,
    home: PathBuf,
    port: u16,
    _temp: tempfile::TempDir,
}

impl Manager {
    fn new(subject: &'static str, exe: &Path) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/app.js");
        std::fs::copy(app, dir.join("app.js")).unwrap();
        std::fs::write(
            dir.join("process-config.json"),
            r#"{"applications": [{"name": "app", "run": "./app.js", "instances": 4}]}"#,
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self {
            subject,
            exe: std::fs::canonicalize(exe).unwrap(),
            home: dir.join("home"),
            dir,
            port,
            _temp: temp,
        }
    }

    fn cli(&self, args: &[&str]) -> Vec<u8> {
        final_pm(&self.exe, &self.home, &self.dir, self.port, args)
    }
}

/// Stops the manager's daemon and apps, also when the run panics.
impl Drop for Manager {
    fn drop(&mut self) {
        let _ = Command::new(&self.exe)
            .arg("--kill")
            .env("FINAL_PM_CONFIG_HOME", &self.home)
            .current_dir(&self.dir)
            .output();
    }
}

/// The whole scenario on one manager.
fn measure(m: &Manager, seconds: u64, connections: usize) {
    m.cli(&["start", "app", "--wait"]);
    let before = (m.subject == "final-pm").then(|| running(&m.exe, &m.home, &m.dir, m.port));
    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let counts = Rc::new(Counts::default());
    let mut elapsed = 0.0;
    let (wait, replaced, bare) = std::thread::scope(|scope| {
        // For final-pm only (the load and the machine are the same for both
        // managers): the bare floor, a quarter into the load, well before
        // the restart.
        let floor = before.is_some().then(|| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_secs(seconds) / 4);
                bare_starts(&m.dir)
            })
        });
        let restarter = scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(seconds) / 2);
            restart(m, before)
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let local = tokio::task::LocalSet::new();
            local
                .run_until(async {
                    let tasks: Vec<_> = (0..connections)
                        .map(|_| tokio::task::spawn_local(client(m.port, until, counts.clone())))
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                })
                .await;
        });
        // The load's duration; a slow restart may go on after it.
        elapsed = start.elapsed().as_secs_f64();
        let (wait, replaced) = restarter.join().unwrap();
        (wait, replaced, floor.map(|f| f.join().unwrap()))
    });
    if std::env::var_os("BENCH_CLUSTER_LOG").is_some() {
        // For finding where a restart's time goes: the lifecycle records.
        let log = m.cli(&["log", "app", "-n", "80", "--no-upload"]);
        eprintln!("{}", String::from_utf8_lossy(&log));
    }
    let (served, failed, retried) = (
        counts.served.get(),
        counts.failed.get(),
        counts.retried.get(),
    );
    let subject = m.subject;
    let load = format!("{connections} keep-alive connections, {seconds} s, restart halfway");
    report(
        "cluster-served",
        subject,
        &format!("requests served ({load})"),
        "req",
        &[served as f64],
    );
    report(
        "cluster-failed",
        subject,
        &format!("requests failed ({load})"),
        "req",
        &[failed as f64],
    );
    report(
        "cluster-retried",
        subject,
        "requests sent again: keep-alive connection closed unanswered",
        "req",
        &[retried as f64],
    );
    report(
        "cluster-restart",
        subject,
        "`restart app --wait` of 4 under load",
        "ms",
        &[wait],
    );
    if let Some(replaced) = replaced {
        report(
            "cluster-replaced",
            subject,
            "restart until 4 new processes run",
            "ms",
            &[replaced],
        );
    }
    if let Some(bare) = bare {
        report(
            "cluster-replaced",
            "bare",
            "restart until 4 new processes run",
            "ms",
            &[bare],
        );
    }
    eprintln!(
        "cluster {subject:<9} 4 instances, {connections} keep-alive connections, {elapsed:.1} s: \
         {served} served ({:.0}/s), {failed} failed, {retried} retried; restart --wait {wait:.0} ms{}",
        served as f64 / elapsed,
        replaced.map_or_else(String::new, |r| format!(", 4 new running after {r:.0} ms"))
    );
    if let Some(bare) = bare {
        eprintln!(
            "cluster bare      4 plain `node` starts until listening, under the same load: {bare:.0} ms"
        );
    }
}

mod figures;

fn main() {
    let mut args = std::env::args().skip(1);
    let exe = PathBuf::from(
        args.next()
            .expect("usage: bench_cluster FINAL_PM [SECONDS] [CONNECTIONS]"),
    );
    let seconds: u64 = args.next().map_or(10, |s| s.parse().unwrap());
    let connections: usize = args.next().map_or(16, |s| s.parse().unwrap());
    if Command::new("node").arg("--version").output().is_err() {
        for subject in ["final-pm", "finalpm"] {
            println!(
                "{}",
                serde_json::json!({"scenario": "cluster-served", "subject": subject, "skipped": "node is not installed"})
            );
        }
        return;
    }
    measure(&Manager::new("final-pm", &exe), seconds, connections);
    // The original FinalPM runs the same app and config through its own CLI.
    match std::env::var("BENCH_FINALPM") {
        Ok(original) if !original.is_empty() && Path::new(&original).exists() => {
            measure(
                &Manager::new("finalpm", Path::new(&original)),
                seconds,
                connections,
            );
        }
        _ => println!(
            "{}",
            serde_json::json!({"scenario": "cluster-served", "subject": "finalpm", "skipped": "not installed"})
        ),
    }
}
