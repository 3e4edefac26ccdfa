//! Log throughput: an app writes 2,000,000 lines of 100 bytes as fast as it
//! can; how long until every line is in the file-logger's `log.txt`, whether
//! any was lost or reordered, and the peak memory of the daemon and its
//! logger, against `app | cat > file` on the same machine. Each run uses a
//! fresh daemon (so its peak RSS is this run's). Run through `bench/run`;
//! prints JSON lines.
//!
//! Usage: `bench_logs PATH_TO_FINAL_PM [RUNS (5)] [LINES (2000000)]`
//!
//! The app is this executable: `bench_logs --generate LINES` writes
//! `00000001 xxx…` lines (99 bytes and a newline) through an 8 KiB buffer,
//! as a C program's stdio would into a pipe.
//!
//! A second baseline is the floor of final-pm's design, a process that
//! reads the app's pipe and formats lines feeding another that writes the
//! file: `app | bench_logs --prefix | cat > file`, where `--prefix` does only
//! that (64 KiB reads, each line behind a fixed prefix as long as the
//! file-logger's, one write per read) and nothing final-pm does besides
//! (records, buffer, followers, acknowledgements).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use figures::report;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use final_pm_protocol::{AppConfig, Client, ReadyOn, Request, Response};

const LINE_BYTES: usize = 100;

fn generate(lines: u64) {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(8192, stdout.lock());
    let pad = "x".repeat(LINE_BYTES - 10);
    for i in 1..=lines {
        if writeln!(out, "{i:08} {pad}").is_err() {
            return;
        }
    }
    let _ = out.flush();
}

/// Copies stdin to stdout with every line behind a prefix of the
/// file-logger's length: the least a formatting stage can do.
fn prefix() {
    const PREFIX: &[u8] = b"[2026-12-02T02:17:36.980Z] [spam/0 23573] [STDOUT]: ";
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let mut input = vec![0u8; 128 * 1024];
    let mut out = Vec::with_capacity(256 * 1024);
    let mut kept = 0;
    loop {
        let n = match stdin.read(&mut input[kept..kept + 64 * 1024]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let end = kept + n;
        let mut start = 0;
        while let Some(pos) = memchr::memchr(b'\n', &input[start..end]) {
            out.extend_from_slice(PREFIX);
            out.extend_from_slice(&input[start..=start + pos]);
            start += pos + 1;
        }
        if stdout.write_all(&out).is_err() {
            return;
        }
        out.clear();
        input.copy_within(start..end, 0);
        kept = end - start;
    }
}

/// `VmHWM` (peak resident set) of a live process, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system) a live process has used, in seconds.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// What a live process has used so far: user and system CPU seconds, read
/// and write syscalls (`/proc/PID/io`), and context switches it asked for
/// (blocking) or suffered (preempted). Printed per run, to see where the
/// time goes, not reported as figures.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    user: f64,
    system: f64,
    reads: u64,
    writes: u64,
    voluntary: u64,
    involuntary: u64,
}

impl Usage {
    fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |text: &str, name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Some(Self {
            user: ticks(11)? as f64 / 100.0,
            system: ticks(12)? as f64 / 100.0,
            reads: field(&io, "syscr:"),
            writes: field(&io, "syscw:"),
            voluntary: field(&status, "voluntary_ctxt_switches:"),
            involuntary: field(&status, "nonvoluntary_ctxt_switches:"),
        })
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "user {:.2} s sys {:.2} s, {} reads {} writes, {} + {} switches",
            self.user, self.system, self.reads, self.writes, self.voluntary, self.involuntary
        )
    }
}

/// Whether the last few KiB of `path` hold the app's exit record.
fn ends_with_exit(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(4096);
    if file.seek(SeekFrom::Start(from)).is_err() {
        return false;
    }
    let mut tail = Vec::new();
    let _ = file.read_to_end(&mut tail);
    String::from_utf8_lossy(&tail).contains("[EXIT]: ")
}

/// Lines `1..=lines` in the file in order: (found, out of order).
fn check(path: &Path, lines: u64, marker: &str) -> (u64, u64) {
    let text = std::fs::read(path).unwrap_or_default();
    let mut found = 0;
    let mut disorder = 0;
    let mut next = 1u64;
    for line in text.split(|&b| b == b'\n') {
        let line = String::from_utf8_lossy(line);
        let body = match line.split_once(marker) {
            Some((_, body)) => body,
            None if marker.is_empty() => &line,
            None => continue,
        };
        let Some(n) = body.split(' ').next().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        found += 1;
        if n == next {
            next += 1;
        } else {
            disorder += 1;
        }
    }
    (found.min(lines), disorder)
}

/// `app | cat > file`: seconds until cat has written everything.
fn bare(generator: &Path, dir: &Path, lines: u64) -> f64 {
    shell_pipeline(generator, dir, lines, "", "")
}

/// `app | bench_logs --prefix | cat > file`: seconds until cat has written
/// everything.
fn floor(generator: &Path, dir: &Path, lines: u64) -> f64 {
    let prefixer = format!("'{}' --prefix | ", generator.display());
    shell_pipeline(generator, dir, lines, &prefixer, "]: ")
}

/// `app | MIDDLE cat > file` through `sh`: seconds until it is done, after
/// checking that every line arrived in order (after `marker`, if any).
fn shell_pipeline(generator: &Path, dir: &Path, lines: u64, middle: &str, marker: &str) -> f64 {
    let file = dir.join("pipeline.txt");
    let script = format!(
        "'{}' --generate {lines} | {middle}cat > '{}'",
        generator.display(),
        file.display()
    );
    let start = Instant::now();
    let status = Command::new("/bin/sh")
        .args(["-c", &script])
        .status()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(status.success(), "{script}");
    let (found, disorder) = check(&file, lines, marker);
    assert_eq!((found, disorder), (lines, 0), "{script} lost lines");
    let _ = std::fs::remove_file(&file);
    elapsed
}

struct Run {
    seconds: f64,
    lost: u64,
    disorder: u64,
    daemon_kib: u64,
    logger_kib: u64,
    daemon_cpu: f64,
    logger_cpu: f64,
    daemon_usage: Usage,
    logger_usage: Usage,
}

/// One run through a fresh daemon.
fn through_final_pm(exe: &Path, generator: &Path, dir: &Path, lines: u64) -> Run {
    let home = dir.join("home");
    let launched = Command::new(exe)
        .arg("--launch")
        .env("FINAL_PM_CONFIG_HOME", &home)
        .output()
        .unwrap();
    assert!(launched.status.success(), "{launched:?}");
    let socket = home.join("daemon.sock");
    let log = dir.join("log.txt");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut daemon_pid = 0;
    let result = runtime.block_on(async {
        let mut client = Client::connect(&socket, "bench-logs").await.unwrap();
        daemon_pid = client.daemon_pid();
        let mut app = AppConfig::new("spam", dir.to_str().unwrap(), generator.to_str().unwrap());
        app.args = vec!["--generate".into(), lines.to_string()];
        app.ready_on = ReadyOn::Instant;
        app.restart_crashing = false;
        app.restart_new_crashing = false;
        client
            .call(Request::Add {
                app: Box::new(app),
                force: false,
            })
            .await
            .unwrap();
        let start = Instant::now();
        client
            .call(Request::Start {
                name: "spam".into(),
                number: Some(0),
            })
            .await
            .unwrap();
        let mut logger_kib = 0;
        let mut daemon_kib = 0;
        let mut logger_pid = None;
        let mut logger_cpu = 0.0;
        let mut logger_usage = Usage::default();
        let deadline = start + Duration::from_secs(300);
        loop {
            if logger_pid.is_none()
                && let Ok(Response::Info { processes, .. }) =
                    client.call(Request::Info { usage: false }).await
            {
                logger_pid = processes
                    .iter()
                    .find(|p| p.app_name == "file-logger")
                    .and_then(|p| p.pid);
            }
            if let Some(pid) = logger_pid {
                logger_kib = logger_kib.max(peak_rss_kib(pid).unwrap_or(0));
                logger_cpu = cpu_seconds(pid).unwrap_or(logger_cpu);
                logger_usage = Usage::of(pid).unwrap_or(logger_usage);
            }
            daemon_kib = daemon_kib.max(peak_rss_kib(daemon_pid).unwrap_or(0));
            if ends_with_exit(&log) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "log.txt never got the exit record"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let seconds = start.elapsed().as_secs_f64();
        daemon_kib = daemon_kib.max(peak_rss_kib(daemon_pid).unwrap_or(0));
        let daemon_cpu = cpu_seconds(daemon_pid).unwrap_or(0.0);
        let daemon_usage = Usage::of(daemon_pid).unwrap_or_default();
        let _ = client.call(Request::KillDaemon {}).await;
        (
            seconds,
            daemon_kib,
            logger_kib,
            daemon_cpu,
            logger_cpu,
            daemon_usage,
            logger_usage,
        )
    });
    // The daemon exits after its reply; make sure before the next run.
    let gone = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{daemon_pid}")).exists() && Instant::now() < gone {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (found, disorder) = check(&log, lines, "[STDOUT]: ");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_dir_all(&home);
    Run {
        seconds: result.0,
        lost: lines - found,
        disorder,
        daemon_kib: result.1,
        logger_kib: result.2,
        daemon_cpu: result.3,
        logger_cpu: result.4,
        daemon_usage: result.5,
        logger_usage: result.6,
    }
}

mod figures;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--prefix") {
        prefix();
        return;
    }
    if args.get(1).map(String::as_str) == Some("--generate") {
        generate(
            args.get(2)
                .and_then(|n| n.parse().ok())
                .unwrap_or(2_000_000),
        );
        return;
    }
    let exe = PathBuf::from(
        args.get(1)
            .expect("usage: bench_logs PATH_TO_FINAL_PM [RUNS] [LINES]"),
    );
    let runs: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(5);
    let lines: u64 = args
        .get(3)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000);
    let generator = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut ours, mut theirs, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut daemon, mut logger, mut both) = (Vec::new(), Vec::new(), Vec::new());
    let (mut lost, mut disorder) = (0, 0);
    let (mut daemon_cpu, mut logger_cpu) = (Vec::new(), Vec::new());
    let (mut floors, mut floor_ratio) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let pipe = bare(&generator, dir.path(), lines);
        let least = floor(&generator, dir.path(), lines);
        floors.push(least);
        floor_ratio.push(least / pipe);
        let r = through_final_pm(&exe, &generator, dir.path(), lines);
        eprintln!(
            "run {run}: final-pm {:.3} s, pipe {pipe:.3} s, floor {least:.3} s, lost {}, out of order {}, daemon peak {} KiB, logger peak {} KiB, cpu daemon {:.2} s logger {:.2} s",
            r.seconds, r.lost, r.disorder, r.daemon_kib, r.logger_kib, r.daemon_cpu, r.logger_cpu
        );
        eprintln!("  daemon: {}", r.daemon_usage);
        eprintln!("  logger: {}", r.logger_usage);
        daemon_cpu.push(r.daemon_cpu);
        logger_cpu.push(r.logger_cpu);
        ours.push(r.seconds);
        theirs.push(pipe);
        ratio.push(r.seconds / pipe);
        daemon.push(r.daemon_kib as f64);
        logger.push(r.logger_kib as f64);
        both.push((r.daemon_kib + r.logger_kib) as f64);
        lost += r.lost;
        disorder += r.disorder;
    }
    report(
        "logs-2m-cpu",
        "final-pm",
        "CPU time, daemon",
        "s",
        &daemon_cpu,
    );
    report(
        "logs-2m-cpu",
        "logger",
        "CPU time, file-logger",
        "s",
        &logger_cpu,
    );
    let s = "logs-2m";
    report(
        s,
        "final-pm",
        "2M lines into log.txt (final-pm)",
        "s",
        &ours,
    );
    report(s, "bare", "2M lines: app | cat > file", "s", &theirs);
    report(
        "logs-2m-ratio",
        "final-pm",
        "2M lines: final-pm / pipe",
        "x",
        &ratio,
    );
    report(
        "logs-2m-floor",
        "bare",
        "2M lines: app, a prefixer, cat > file (the design's floor)",
        "s",
        &floors,
    );
    report(
        "logs-2m-floor-ratio",
        "bare",
        "2M lines: the design's floor / pipe",
        "x",
        &floor_ratio,
    );
    report(
        "logs-2m-rss",
        "final-pm",
        "peak RSS, daemon",
        "KiB",
        &daemon,
    );
    report(
        "logs-2m-rss",
        "logger",
        "peak RSS, file-logger",
        "KiB",
        &logger,
    );
    report(
        "logs-2m-rss-sum",
        "final-pm",
        "peak RSS, daemon + logger",
        "KiB",
        &both,
    );
    report(
        "logs-2m-lost",
        "final-pm",
        "lines lost (all runs)",
        "lines",
        &[lost as f64],
    );
    report(
        "logs-2m-order",
        "final-pm",
        "lines out of order (all runs)",
        "lines",
        &[disorder as f64],
    );
}
