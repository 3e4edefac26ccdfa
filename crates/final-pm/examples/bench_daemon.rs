//! Measures the daemon's basic costs: one request's round trip on an open
//! connection, a whole `final-pm` invocation, and the idle daemon's memory and
//! CPU. Run through `bench/run` (release build); prints one JSON line per
//! figure and a table.
//!
//! Usage: `bench_daemon PATH_TO_FINAL_PM [IDLE_SECONDS]`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use figures::report;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use final_pm_protocol::{Client, Request};

fn proc_field(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap()
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

mod figures;
mod reaper;

fn main() {
    // Whatever happens, every process this run started is killed at the end.
    let _reaper = reaper::Reaper::install();
    let mut args = std::env::args().skip(1);
    let exe = PathBuf::from(
        args.next()
            .expect("usage: bench_daemon PATH_TO_FINAL_PM [IDLE_SECONDS]"),
    );
    let idle_secs: u64 = args.next().map_or(10, |s| s.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let cli = |args: &[&str]| {
        let status = Command::new(&exe)
            .args(args)
            .env("FINAL_PM_CONFIG_HOME", &home)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
    };
    cli(&["--launch"]);
    let pid: u32 = std::fs::read_to_string(home.join("daemon.sock.lock"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let socket = home.join("daemon.sock");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let round_trips = runtime.block_on(async {
        let mut client = Client::connect(&socket, "bench").await.unwrap();
        for _ in 0..1000 {
            client.call(Request::Info { usage: false }).await.unwrap();
        }
        let mut samples = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let start = Instant::now();
            client.call(Request::Info { usage: false }).await.unwrap();
            samples.push(start.elapsed().as_secs_f64() * 1e6);
        }
        samples
    });
    report(
        "rpc-roundtrip",
        "final-pm",
        "request round trip (info, open connection)",
        "us",
        &round_trips,
    );

    let mut invocations = Vec::new();
    for i in 0..520 {
        let start = Instant::now();
        cli(&["--launch"]);
        if i >= 20 {
            invocations.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    report(
        "cli-launch",
        "final-pm",
        "whole CLI invocation (final-pm --launch)",
        "ms",
        &invocations,
    );

    std::thread::sleep(Duration::from_millis(500));
    let rss = proc_field(pid, "VmRSS:") as f64;
    report(
        "proto-rss-idle",
        "final-pm",
        "daemon RSS, idle",
        "KiB",
        &[rss],
    );

    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(idle_secs));
    let ticks = (cpu_ticks(pid) - before) as f64;
    report(
        "proto-idle-cpu",
        "final-pm",
        &format!("daemon CPU over {idle_secs} s idle"),
        "tick",
        &[ticks],
    );

    cli(&["--kill"]);
}
