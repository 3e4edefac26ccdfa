//! Zero-downtime restarts under load: FinalPM's quick-start app in cluster
//! mode (its defaults: round-robin, `ready-on: listen`, SIGINT) with 4
//! instances on one port, driven by keep-alive HTTP clients for a while,
//! with `final-pm restart app` in the middle. Run through `bench/run`;
//! prints one JSON line.
//!
//! The restart is timed three ways: until the CLI returns, until four new
//! processes are running (`restart_ms`: the restart took effect, every new
//! connection goes to a new process), and until the old ones have exited
//! (they finish the requests on their open connections first).
//!
//! Counting: a response with status 200 is served. A request is failed when
//! it gets anything else, no answer within 5 s, or when a fresh connection
//! is refused or closed without an answer. A request sent on a reused
//! keep-alive connection that the server closed before answering is sent
//! again on a new connection, as HTTP/1.1 clients do for idempotent requests
//! (RFC 9112 §9.3.1); those are counted as `retried`, not failed.
//!
//! Usage: `bench_cluster PATH_TO_FINAL_PM [SECONDS] [CONNECTIONS]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::rc::Rc;
use std::time::{Duration, Instant};

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

/// How long the restart took, in milliseconds.
struct Restart {
    /// `final-pm restart app` returned (the daemon took the request).
    cli: f64,
    /// Four new processes were running: the restart took effect.
    replaced: f64,
    /// The old processes had exited, having finished their connections.
    drained: f64,
}

/// Restarts the app and times it; `before` are its running processes.
fn restart(exe: &Path, home: &Path, dir: &Path, port: u16, before: &BTreeSet<u64>) -> Restart {
    let begun = Instant::now();
    let ms = || begun.elapsed().as_secs_f64() * 1e3;
    final_pm(exe, home, dir, port, &["restart", "app"]);
    let cli = ms();
    loop {
        let now = running(exe, home, dir, port);
        if now.len() == 4 && now.is_disjoint(before) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let replaced = ms();
    while before
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    Restart {
        cli,
        replaced,
        drained: ms(),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let exe = std::path::PathBuf::from(
        args.next()
            .expect("usage: bench_cluster FINAL_PM [SECONDS] [CONNECTIONS]"),
    );
    let seconds: u64 = args.next().map_or(10, |s| s.parse().unwrap());
    let connections: usize = args.next().map_or(16, |s| s.parse().unwrap());

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/app.js");
    std::fs::copy(app, dir.path().join("app.js")).unwrap();
    std::fs::write(
        dir.path().join("process-config.json"),
        r#"{"applications": [{"name": "app", "run": "./app.js", "instances": 4}]}"#,
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    final_pm(&exe, &home, dir.path(), port, &["start", "app", "--wait"]);
    let before = running(&exe, &home, dir.path(), port);

    let start = Instant::now();
    let until = start + Duration::from_secs(seconds);
    let restart = {
        let (exe, home, cwd) = (exe.clone(), home.clone(), dir.path().to_owned());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(seconds) / 2);
            restart(&exe, &home, &cwd, port, &before)
        })
    };
    let counts = Rc::new(Counts::default());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async {
                let tasks: Vec<_> = (0..connections)
                    .map(|_| tokio::task::spawn_local(client(port, until, counts.clone())))
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            })
            .await;
    });
    let elapsed = start.elapsed().as_secs_f64();
    let Restart {
        cli,
        replaced,
        drained,
    } = restart.join().unwrap();
    final_pm(&exe, &home, dir.path(), port, &["--kill"]);

    let (served, failed, retried) = (
        counts.served.get(),
        counts.failed.get(),
        counts.retried.get(),
    );
    println!(
        "{{\"bench\":\"cluster_restart_under_load\",\"instances\":4,\"connections\":{connections},\
         \"seconds\":{elapsed:.1},\"served\":{served},\"failed\":{failed},\"retried\":{retried},\
         \"restart_cli_ms\":{cli:.0},\"restart_ms\":{replaced:.0},\"old_drained_ms\":{drained:.0}}}"
    );
    eprintln!(
        "cluster: 4 instances, {connections} keep-alive connections, {elapsed:.1} s: {served} served \
         ({:.0}/s), {failed} failed, {retried} retried on a new connection; restart: CLI {cli:.0} ms, \
         4 new running after {replaced:.0} ms, old ones exited after {drained:.0} ms",
        served as f64 / elapsed
    );
}
