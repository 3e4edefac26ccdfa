//! Lifecycle costs against the bare machine: how long after a crash the
//! replacement runs its first line, and how long 50 instant-ready processes
//! take until all ran their first line, each against plain spawns of the same
//! program from a loop. Run through `bench/run`; prints JSON lines.
//!
//! Usage: `bench_lifecycle PATH_TO_FINAL_PM`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use figures::report;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use final_pm_protocol::{AppConfig, Client, Event, LogKind, ReadyOn, Request, Response};

const PROGRAM: &str = "echo up; exec sleep 1000";

/// Spawns `n` copies like the daemon does (own group, piped output) and waits
/// for each one's first line; returns the time and kills them.
fn bare(n: usize) -> f64 {
    let start = Instant::now();
    let mut children: Vec<_> = (0..n)
        .map(|_| {
            Command::new("/bin/sh")
                .args(["-c", PROGRAM])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .unwrap()
        })
        .collect();
    for child in &mut children {
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    elapsed
}

async fn next_up(client: &mut Client) -> final_pm_protocol::LogRecord {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), client.next_event())
            .await
            .unwrap()
            .unwrap()
        {
            Some(Event::Log { record })
                if record.kind == LogKind::Stdout && record.text == "up" =>
            {
                return record;
            }
            Some(_) => {}
            None => panic!("daemon closed the connection"),
        }
    }
}

mod figures;
mod reaper;

fn main() {
    // Whatever happens, every process this run started is killed at the end.
    let _reaper = reaper::Reaper::install();
    let exe = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: bench_lifecycle PATH_TO_FINAL_PM"),
    );
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let status = Command::new(&exe)
        .arg("--launch")
        .env("FINAL_PM_CONFIG_HOME", &home)
        .output()
        .unwrap();
    assert!(status.status.success());
    let socket = home.join("daemon.sock");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = Client::connect(&socket, "bench").await.unwrap();
        let mut follower = Client::connect(&socket, "bench-follow").await.unwrap();
        follower
            .call(Request::Follow { name: "all".into() })
            .await
            .unwrap();

        // --- start 50 -----------------------------------------------------
        let mut app = AppConfig::new("many", dir.path().to_str().unwrap(), "/bin/sh");
        app.args = vec!["-c".into(), PROGRAM.into()];
        app.ready_on = ReadyOn::Instant;
        app.instances = 50;
        app.unique_instances = true;
        app.restart_crashing = false;
        app.restart_new_crashing = false;
        client
            .call(Request::Add {
                app: Box::new(app),
                force: false,
            })
            .await
            .unwrap();
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..6 {
            let start = Instant::now();
            let requests = (0..50)
                .map(|n| Request::Start {
                    name: "many".into(),
                    number: Some(n),
                })
                .collect();
            client.call(Request::All { requests }).await.unwrap();
            for _ in 0..50 {
                next_up(&mut follower).await;
            }
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            let bare_ms = bare(50);
            if round > 0 {
                ours.push(elapsed);
                theirs.push(bare_ms);
            }
            // Stop them all and let the daemon settle before the next round.
            if let Response::Info { processes, .. } =
                client.call(Request::Info { usage: false }).await.unwrap()
            {
                // Only the app's own: its logger stops by itself once they
                // are gone, and may be gone already.
                for p in processes.iter().filter(|p| p.app_name == "many") {
                    client.call(Request::Kill { id: p.id }).await.unwrap();
                }
            }
            client.call(Request::Wait { all: true }).await.unwrap();
        }
        let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
        report(
            "proto-start-50",
            "final-pm",
            "start 50 instant-ready (final-pm)",
            "ms",
            &ours,
        );
        report(
            "proto-start-50",
            "bare",
            "start 50 bare spawns",
            "ms",
            &theirs,
        );
        report(
            "proto-start-50-ratio",
            "final-pm",
            "start 50: final-pm / bare",
            "x",
            &ratios,
        );

        // --- crash restart -------------------------------------------------
        let mut app = AppConfig::new("crash", dir.path().to_str().unwrap(), "/bin/sh");
        app.args = vec!["-c".into(), PROGRAM.into()];
        app.ready_on = ReadyOn::Instant;
        app.restart_crashing_delay = 0;
        client
            .call(Request::Add {
                app: Box::new(app),
                force: false,
            })
            .await
            .unwrap();
        client
            .call(Request::Start {
                name: "crash".into(),
                number: Some(0),
            })
            .await
            .unwrap();
        let mut record = next_up(&mut follower).await;
        let (mut restart, mut spawn) = (Vec::new(), Vec::new());
        for round in 0..31 {
            let pid = record.process.as_ref().unwrap().pid;
            let start = Instant::now();
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            )
            .unwrap();
            record = next_up(&mut follower).await;
            let elapsed = start.elapsed().as_secs_f64() * 1e3;
            let bare_ms = bare(1);
            if round > 0 {
                restart.push(elapsed);
                spawn.push(bare_ms);
            }
        }
        let over: Vec<f64> = restart.iter().zip(&spawn).map(|(a, b)| a - b).collect();
        report(
            "proto-crash",
            "final-pm",
            "crash to replacement's first line (delay 0)",
            "ms",
            &restart,
        );
        report(
            "proto-crash",
            "bare",
            "bare spawn to first line",
            "ms",
            &spawn,
        );
        report(
            "proto-crash-over",
            "final-pm",
            "crash restart: final-pm minus bare spawn",
            "ms",
            &over,
        );
        client.call(Request::KillDaemon {}).await.unwrap();
    });
}
