//! Times what issue 4's target names, "loading and validating a config with
//! 200 applications", and nothing else: `final_pm::config`'s
//! `LoadOptions::from_process` and `load`, the two calls the CLI makes
//! before it does anything with the result (capture the cwd and the
//! environment; find, read, parse and validate the file, apply overrides,
//! resolve paths, give each app its environment). Process start-up, the
//! async runtime, connecting and output are not part of it; the whole
//! invocation (`--dry add all`) is `bench_managers config`.
//!
//! Figures, for the 200-app configuration of `apps200` and a 1-app one (the
//! part that does not depend on the number of apps):
//!
//! - **cold**: the first call in a fresh process, which is what a user's
//!   invocation pays: code pages faulted in, an empty allocator, cold caches.
//!   The driver runs itself `RUNS` times as a child (`--calls 1`), each child
//!   timing its one call; the figure is over the children.
//! - **warm**: the same call repeated in one process after a first one, `RUNS`
//!   times: the loader's own work once everything is paged in and the
//!   allocator has its memory.
//!
//! Each timed call ends when `load` returns; freeing its result is not timed
//! (the CLI never frees it, it exits), but done before the next call. Every
//! call is timed twice: wall time, what the target is about, and the CPU
//! time of the thread (user and kernel, so page faults count), which other
//! work on the machine disturbs far less: on shared cores the wall figures
//! swing by 2× between runs while the CPU figures stay put. Children run in the configuration's
//! folder with the driver's environment plus `FINAL_PM_CONFIG_HOME` set to a
//! temporary folder, as `bench_managers` runs the CLI; the environment's size
//! matters, as every app gets a copy, so it is printed.
//!
//! Usage: `bench_config [RUNS]` (default 200). Prints JSON lines on stdout
//! and a readable line per figure on stderr. No process outlives it: each
//! child is waited for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use figures::report;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::time::{ClockId, clock_gettime};

use final_pm::config::{self, LoadOptions};

mod apps200;

mod figures;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, calls, apps] = args.as_slice()
        && flag == "--calls"
    {
        child(calls.parse().unwrap(), apps.parse().unwrap());
        return;
    }
    let runs: usize = args.first().map_or(200, |runs| runs.parse().unwrap());
    let temp = tempfile::tempdir().unwrap();
    let home = temp.path().join("home");
    eprintln!(
        "bench_config: {runs} runs; the environment has {} variables",
        std::env::vars_os().count()
    );
    for apps in [200, 1] {
        let dir = temp.path().join(format!("config-{apps}"));
        apps200::write(&dir, apps);
        let run = |calls: usize| -> Vec<(f64, f64)> {
            let out = Command::new(std::env::current_exe().unwrap())
                .args(["--calls", &calls.to_string(), &apps.to_string()])
                .current_dir(&dir)
                .env("FINAL_PM_CONFIG_HOME", &home)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "the child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|line| {
                    let (wall, cpu) = line.split_once(' ').unwrap();
                    (wall.parse().unwrap(), cpu.parse().unwrap())
                })
                .collect()
        };
        let cold: Vec<(f64, f64)> = (0..runs).map(|_| run(1)[0]).collect();
        let warm = run(runs + 1)[1..].to_vec();
        let suffix = if apps == 1 { "-1" } else { "" };
        let what = if apps == 1 { "1 app" } else { "200 apps" };
        for (kind, samples, when) in [
            ("cold", &cold, "first call of a fresh process"),
            ("warm", &warm, "repeated call"),
        ] {
            let wall: Vec<f64> = samples.iter().map(|&(wall, _)| wall).collect();
            let cpu: Vec<f64> = samples.iter().map(|&(_, cpu)| cpu).collect();
            report(
                &format!("config-load-{kind}{suffix}"),
                "final-pm",
                &format!("load + validate, {what}, in-process: {when}"),
                "ms",
                &wall,
            );
            report(
                &format!("config-load-{kind}-cpu{suffix}"),
                "final-pm",
                &format!("load + validate, {what}, in-process: {when}, thread CPU time"),
                "ms",
                &cpu,
            );
        }
    }
    assert!(
        !home.join("daemon.sock").exists(),
        "loading the configuration launched a daemon"
    );
}

/// Times `calls` loads of the configuration in the cwd, which must yield
/// `apps` apps, and prints the wall and CPU time of each in ms.
fn child(calls: usize, apps: usize) {
    let mut took = Vec::with_capacity(calls);
    for _ in 0..calls {
        let cpu_start = thread_cpu_time();
        let start = Instant::now();
        let opts = LoadOptions::from_process(Vec::new(), Vec::new());
        let loaded = config::load(&opts);
        let wall = start.elapsed();
        took.push((wall, thread_cpu_time() - cpu_start));
        let groups = loaded.unwrap_or_else(|err| panic!("the configuration does not load: {err}"));
        assert_eq!(groups[0].apps.len(), apps);
        assert!(Path::new(&groups[0].apps[0].run).is_absolute());
        // Freed outside the timed part: the CLI never frees it. The next
        // call reuses the memory, as a warm loop does.
        drop((opts, groups));
    }
    for (wall, cpu) in took {
        println!(
            "{:.4} {:.4}",
            wall.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3
        );
    }
}

/// The CPU time this thread has used (user and system).
fn thread_cpu_time() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .unwrap()
        .into()
}
