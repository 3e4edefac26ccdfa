//! Scenarios that drive each process manager through its own command line,
//! exactly as a user does, so final-pm, PM2 and the original FinalPM are
//! measured the same way, each beside the bare machine:
//!
//! - `show` (PM2: `pm2 ls`) as a whole invocation with 4 and 50 processes up;
//! - the RSS of the daemon idle, with 4 and with 50 processes, of the logger
//!   processes, and of all the manager's own processes together;
//! - the CPU time of the manager's own processes over `IDLE_SECONDS` (default
//!   30) with 50 idle processes;
//! - `start` of 50 instant-ready instances until each ran its first line,
//!   against 50 spawns of the same program from a plain loop;
//! - SIGKILL of a running process until its replacement ran its first line,
//!   against one bare spawn;
//! - 500 processes of a tiny program: start, `show`, daemon RSS;
//! - loading a 200-app `process-config.json` (`final-pm --dry add all`), and a
//!   1-app one for the fixed part;
//! - zero-downtime restart: 4 cluster instances of a Node HTTP app restarted
//!   3 times under load from 4 clients: requests served and failed;
//! - log throughput: 2,000,000 lines of 100 bytes from one process until all
//!   are in the log file, lines lost, peak RSS, against the program piped into
//!   `cat > file` (3 runs each for final-pm and PM2, one for FinalPM).
//!
//! How "ran its first line" is seen: every managed program writes `up PID` to a
//! FIFO that this driver keeps open, so the moment is the same for every
//! manager and independent of its log pipeline. final-pm and PM2 run
//! `sh -c 'echo up $$ > FIFO; exec sleep …'`; the original FinalPM runs Node
//! programs only, so it runs the same thing as a three-line `tiny.js`, and its
//! bare baseline spawns `node tiny.js`.
//!
//! Cleanup (module `reaper`): the driver makes itself a child subreaper, so every daemon the
//! managers detach stays below it. After each manager (and on panic, SIGINT,
//! SIGTERM or SIGHUP) it asks the manager to quit (`final-pm --kill`,
//! `pm2 kill`), then SIGKILLs every process still below it, by pid, and reaps.
//!
//! Usage: `bench_managers PATH_TO_FINAL_PM [SCENARIO…]` with `BENCH_PM2` and
//! `BENCH_FINALPM` naming the peers' executables (unset: "skipped: not
//! installed"). Scenarios: `managers` (show, memory, idle, start, crash),
//! `scale`, `config`, `restart`, `logs`; none given means all. Prints JSON lines on stdout and a
//! readable line per figure on stderr.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use figures::report;
use std::cell::Cell;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod apps200;
mod figures;
mod reaper;
use reaper::{Reaper, descendants, kill_everything_below, process_table};

/// The program final-pm and PM2 run: report the pid on the FIFO (`$0`), then idle.
const SH_PROGRAM: &str = "echo up $$ > \"$0\"; exec sleep 100000";
/// The same for the original FinalPM, which runs Node programs only.
const NODE_PROGRAM: &str = "require('fs').appendFileSync(process.argv[2], 'up ' + process.pid + '\\n');\nsetInterval(() => {}, 1 << 30);\n";

// ---------------------------------------------------------------------------
// Reporting

fn skip(scenario: &str, subject: &str, reason: &str) {
    println!(
        "{}",
        serde_json::json!({"scenario": scenario, "subject": subject, "skipped": reason})
    );
    eprintln!("{scenario:<14} {subject:<9} skipped: {reason}");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---------------------------------------------------------------------------
// /proc

/// Our live children (daemons that detached from a CLI end up here).
fn children() -> HashSet<u32> {
    let me = std::process::id();
    process_table()
        .into_iter()
        .filter(|&(_, ppid, st)| ppid == me && st != 'Z' && st != 'X')
        .map(|(pid, _, _)| pid)
        .collect()
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X")
    })
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU ticks (1/100 s) of one process.
fn cpu_ticks(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit_once(')')?.1.to_owned();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------
// The FIFO every managed program reports on

/// Receives `up PID` lines with the time each arrived.
struct Marks {
    path: PathBuf,
    rx: Receiver<(Instant, u32)>,
}

impl Marks {
    fn new(dir: &Path) -> Self {
        let path = dir.join("marks.fifo");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Read and write: the FIFO never reports end-of-file between writers,
        // and writers never block on open.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(file).lines() {
                let Ok(line) = line else { return };
                if let Some(pid) = line.strip_prefix("up ").and_then(|p| p.trim().parse().ok())
                    && tx.send((Instant::now(), pid)).is_err()
                {
                    return;
                }
            }
        });
        Self { path, rx }
    }

    /// Forgets marks that arrived so far.
    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    /// Waits for `n` marks; returns when the last arrived and all pids.
    fn wait(&self, n: usize, timeout: Duration) -> Option<(Instant, Vec<u32>)> {
        let deadline = Instant::now() + timeout;
        let mut pids = Vec::with_capacity(n);
        let mut last = Instant::now();
        while pids.len() < n {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((at, pid)) => {
                    last = at;
                    pids.push(pid);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
        Some((last, pids))
    }
}

// ---------------------------------------------------------------------------
// Managers

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    FinalPm,
    Pm2,
    Original,
}

impl Kind {
    /// The `subject` of the JSON lines.
    fn subject(self) -> &'static str {
        match self {
            Self::FinalPm => "final-pm",
            Self::Pm2 => "pm2",
            Self::Original => "finalpm",
        }
    }

    /// The subject of this manager's bare baseline.
    fn bare(self) -> &'static str {
        match self {
            Self::FinalPm | Self::Pm2 => "bare",
            Self::Original => "bare-node",
        }
    }
}

/// One manager with its own home, app folder and FIFO.
#[derive(Debug)]
struct Manager {
    kind: Kind,
    exe: PathBuf,
    home: PathBuf,
    app: PathBuf,
    fifo: PathBuf,
    daemon: Option<u32>,
    /// Whether any CLI command ran, so a daemon may be up.
    used: Cell<bool>,
}

impl Manager {
    fn new(kind: Kind, exe: &Path, root: &Path, fifo: &Path) -> Self {
        let home = root.join(format!("{}-home", kind.subject()));
        let app = root.join(format!("{}-app", kind.subject()));
        fs::create_dir_all(&home).unwrap();
        fs::create_dir_all(&app).unwrap();
        fs::write(app.join("tiny.js"), NODE_PROGRAM).unwrap();
        Self {
            kind,
            // Commands run in the app folder: a relative path would break.
            exe: fs::canonicalize(exe).unwrap(),
            home,
            app,
            fifo: fifo.to_owned(),
            daemon: None,
            used: Cell::new(false),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.used.set(true);
        let mut cmd = Command::new(&self.exe);
        cmd.args(args)
            .current_dir(&self.app)
            .env("FINAL_PM_CONFIG_HOME", &self.home)
            .env("PM2_HOME", &self.home)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs the manager's CLI to completion; returns how long it took.
    fn run(&self, args: &[&str]) -> Duration {
        let start = Instant::now();
        let out = self.command(args).output().unwrap();
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "{:?} {args:?} failed: {}{}",
            self.kind,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        took
    }

    /// Writes the configuration of app `tiny` with `instances` instances.
    fn configure(&self, instances: usize) {
        let fifo = self.fifo.to_str().unwrap();
        let config = match self.kind {
            Kind::FinalPm => serde_json::json!({"applications": [{
                "name": "tiny", "run": "/bin/sh", "args": ["-c", SH_PROGRAM, fifo],
                "mode": "fork", "ready-on": "instant", "instances": instances,
                "restart-crashing-delay": 0,
            }]}),
            // The original needs a delay of at least 1 ms.
            Kind::Original => serde_json::json!({"applications": [{
                "name": "tiny", "run": "./tiny.js", "args": [fifo],
                "mode": "fork", "ready-on": "instant", "instances": instances,
                "restart-crashing-delay": 1,
            }]}),
            Kind::Pm2 => serde_json::json!({"apps": [{
                "name": "tiny", "script": "/bin/sh", "args": ["-c", SH_PROGRAM, fifo],
                "interpreter": "none", "exec_mode": "fork", "instances": instances,
                "autorestart": true, "restart_delay": 0,
            }]}),
        };
        self.write_config(&config);
    }

    /// Writes `config` as the manager's configuration file.
    fn write_config(&self, config: &serde_json::Value) {
        let file = match self.kind {
            Kind::Pm2 => "ecosystem.json",
            Kind::FinalPm | Kind::Original => "process-config.json",
        };
        fs::write(self.app.join(file), config.to_string()).unwrap();
    }

    fn launch(&mut self) {
        // The original's daemon detaches from the CLI and becomes our child:
        // the one child that was not there before.
        let before = children();
        match self.kind {
            Kind::FinalPm | Kind::Original => self.run(&["--launch"]),
            Kind::Pm2 => self.run(&["ping"]),
        };
        let pid = match self.kind {
            Kind::FinalPm => read_pid(&self.home.join("daemon.sock.lock")),
            Kind::Pm2 => read_pid(&self.home.join("pm2.pid")),
            // The daemon detached from the CLI, so it is now our child.
            Kind::Original => {
                let orphans: Vec<u32> = children().difference(&before).copied().collect();
                assert_eq!(orphans.len(), 1, "expected one daemon, found {orphans:?}");
                orphans[0]
            }
        };
        assert!(alive(pid), "{:?}: daemon {pid} not running", self.kind);
        self.daemon = Some(pid);
    }

    fn daemon(&self) -> u32 {
        self.daemon.expect("daemon launched")
    }

    /// Starts `tiny` (its `instances` processes); returns the CLI's time.
    fn start(&self) -> Duration {
        match self.kind {
            Kind::FinalPm | Kind::Original => self.run(&["start", "tiny"]),
            Kind::Pm2 => self.run(&["start", "ecosystem.json"]),
        }
    }

    /// One `show` (PM2: `pm2 ls`).
    fn show(&self) -> Duration {
        match self.kind {
            Kind::FinalPm | Kind::Original => self.run(&["show"]),
            Kind::Pm2 => self.run(&["ls"]),
        }
    }

    /// Kills every process of `tiny` and waits until `pids` are gone.
    fn kill_apps(&self, pids: &[u32]) {
        match self.kind {
            Kind::FinalPm | Kind::Original => self.run(&["kill", "all"]),
            Kind::Pm2 => self.run(&["delete", "all"]),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while pids.iter().any(|&p| alive(p)) {
            assert!(
                Instant::now() < deadline,
                "{:?}: processes survived kill",
                self.kind
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Asks the daemon to quit; whatever survives is killed by
    /// [`kill_everything_below`], which the caller runs once every manager
    /// that is up was asked.
    fn quit(&mut self) {
        let args: &[&str] = match self.kind {
            Kind::FinalPm | Kind::Original => &["--kill"],
            Kind::Pm2 => &["kill"],
        };
        if self.used.replace(false) {
            let _ = self
                .command(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            self.used.set(false);
        }
        self.daemon = None;
    }

    /// The daemon and its descendants except the managed programs (and theirs):
    /// the manager's own processes, daemon first.
    fn own_processes(&self, apps: &[u32]) -> Vec<u32> {
        let daemon = self.daemon();
        let apps: HashSet<u32> = apps.iter().copied().collect();
        let mut excluded: HashSet<u32> = apps.clone();
        for &a in &apps {
            excluded.extend(descendants(a));
        }
        let mut own = vec![daemon];
        own.extend(
            descendants(daemon)
                .into_iter()
                .filter(|p| !excluded.contains(p)),
        );
        own
    }

    fn program(&self) -> Program {
        match self.kind {
            Kind::FinalPm | Kind::Pm2 => Program::Sh,
            Kind::Original => Program::Node(self.app.join("tiny.js")),
        }
    }
}

fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------
// The bare machine

#[derive(Debug, Clone)]
enum Program {
    Sh,
    Node(PathBuf),
}

/// Spawns `n` copies of `program` from a plain loop, as a manager would
/// (own process group, piped output), until each reported on the FIFO;
/// returns the time and kills them.
fn bare_spawns(program: &Program, n: usize, marks: &Marks) -> f64 {
    marks.drain();
    let fifo = marks.path.to_str().unwrap();
    let start = Instant::now();
    let children: Vec<Child> = (0..n)
        .map(|_| {
            let mut cmd = match program {
                Program::Sh => {
                    let mut c = Command::new("/bin/sh");
                    c.args(["-c", SH_PROGRAM, fifo]);
                    c
                }
                Program::Node(script) => {
                    let mut c = Command::new("node");
                    c.arg(script).arg(fifo);
                    c
                }
            };
            cmd.stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .spawn()
                .unwrap()
        })
        .collect();
    let (last, _) = marks
        .wait(n, Duration::from_secs(300))
        .expect("bare spawns reported");
    let took = ms(last - start);
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    took
}

/// Spawn and exit of `/bin/true`: the floor of any command's invocation.
fn bare_invocations(runs: usize) -> Vec<f64> {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            let out = Command::new("/bin/true").output().unwrap();
            assert!(out.status.success());
            ms(start.elapsed())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Scenarios

/// How many times each manager's slow operations are repeated: final-pm's take
/// milliseconds, the Node managers' take hundreds.
fn reps(kind: Kind, fast: usize, slow: usize) -> usize {
    match kind {
        Kind::FinalPm => fast,
        Kind::Pm2 => slow,
        // The slowest by far (a `show` takes ~0.6 s, 50 starts ~4 s on an
        // idle machine): half as often, to keep the suite within 10 minutes.
        Kind::Original => slow.div_ceil(2),
    }
}

fn timed(runs: usize, warmup: usize, mut f: impl FnMut() -> Duration) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    (0..runs).map(|_| ms(f())).collect()
}

/// Memory figures of the manager with `apps` up; `label` is "idle", "4", "50".
fn memory(m: &Manager, apps: &[u32], label: &str) {
    std::thread::sleep(Duration::from_secs(1));
    let s = m.kind.subject();
    let own = m.own_processes(apps);
    let daemon = rss_kib(own[0]) as f64;
    let loggers: Vec<f64> = own[1..].iter().map(|&p| rss_kib(p) as f64).collect();
    // `+ 0.0`: an empty sum is -0.0.
    let others = loggers.iter().sum::<f64>() + 0.0;
    let total = daemon + others;
    let scenario = format!("rss-{label}");
    report(&scenario, s, "daemon RSS", "KiB", &[daemon]);
    report(
        &format!("rss-others-{label}"),
        s,
        &format!("RSS of the daemon's other processes ({})", loggers.len()),
        "KiB",
        &[others],
    );
    report(
        &format!("rss-total-{label}"),
        s,
        &format!("RSS of all the manager's own processes ({})", own.len()),
        "KiB",
        &[total],
    );
}

/// show, memory, and start 50 for one manager; leaves the 50 up and returns
/// their pids.
fn managers_scenario(m: &mut Manager, marks: &Marks) -> Vec<u32> {
    let s = m.kind.subject();
    m.launch();
    memory(m, &[], "idle");

    // --- 4 processes up: memory and show ----------------------------------
    m.configure(4);
    marks.drain();
    m.start();
    let (_, pids4) = marks.wait(4, Duration::from_secs(60)).expect("4 up");
    memory(m, &pids4, "4");
    let runs = reps(m.kind, 200, 10);
    report(
        "show-4",
        s,
        "whole `show` invocation, 4 processes up",
        "ms",
        &timed(runs, 3, || m.show()),
    );
    m.kill_apps(&pids4);

    // --- start 50, alternating with 50 bare spawns -------------------------
    m.configure(50);
    // Each round: 50 bare spawns (while none of the manager's run), then
    // `start`. final-pm's rounds are cheap and get one warm-up round; a Node
    // manager's round takes seconds (the original's spawns 50 Node processes
    // twice).
    let warmup = reps(m.kind, 1, 0);
    let rounds = reps(m.kind, 8, 4) + warmup;
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let mut pids50 = Vec::new();
    for round in 0..rounds {
        let b = bare_spawns(&m.program(), 50, marks);
        marks.drain();
        let start = Instant::now();
        m.start();
        let (last, pids) = marks.wait(50, Duration::from_secs(120)).expect("50 up");
        if round >= warmup {
            ours.push(ms(last - start));
            bare.push(b);
        }
        if round + 1 < rounds {
            m.kill_apps(&pids);
        } else {
            pids50 = pids;
        }
    }
    report(
        "start-50",
        s,
        "`start` of 50 until all ran their first line",
        "ms",
        &ours,
    );
    if m.kind != Kind::Pm2 {
        // PM2 runs the same program as final-pm: one sh baseline is enough.
        report(
            "start-50",
            m.kind.bare(),
            "50 spawns from a loop until all ran",
            "ms",
            &bare,
        );
    }
    let ratio: Vec<f64> = ours.iter().zip(&bare).map(|(a, b)| a / b).collect();
    report(
        "start-50-ratio",
        s,
        "start 50 / bare spawns (pairwise)",
        "x",
        &ratio,
    );

    // --- 50 up: memory, show, idle CPU -------------------------------------
    memory(m, &pids50, "50");
    let runs = reps(m.kind, 200, 10);
    report(
        "show-50",
        s,
        "whole `show` invocation, 50 processes up",
        "ms",
        &timed(runs, 3, || m.show()),
    );
    pids50
}

/// CPU of every manager's own processes over one window of `idle_secs`, with
/// 50 idle processes each: all managers at once, since idle processes cost
/// each other nothing and the suite saves a minute.
fn idle_window(live: &[(Manager, Vec<u32>)], idle_secs: u64) {
    let own: Vec<Vec<u32>> = live.iter().map(|(m, pids)| m.own_processes(pids)).collect();
    std::thread::sleep(Duration::from_secs(1));
    let ticks = |own: &[u32]| own.iter().map(|&p| cpu_ticks(p)).sum::<u64>();
    let before: Vec<u64> = own.iter().map(|o| ticks(o)).collect();
    std::thread::sleep(Duration::from_secs(idle_secs));
    for (((m, _), own), before) in live.iter().zip(&own).zip(before) {
        report(
            "idle-cpu-50",
            m.kind.subject(),
            &format!("CPU of own processes over {idle_secs} s, 50 idle"),
            "ms",
            &[(ticks(own) - before) as f64 * 10.0],
        );
    }
}

/// Crash restarts with the 50 processes `pids50` up, then quits the manager.
fn crash_scenario(m: &mut Manager, marks: &Marks, pids50: &[u32]) {
    let s = m.kind.subject();
    // --- crash restart: SIGKILL one of the 50 (each a different one) -------
    let crashes = reps(m.kind, 20, 10);
    let (mut restart, mut spawn) = (Vec::new(), Vec::new());
    for pid in pids50.iter().take(crashes) {
        marks.drain();
        let start = Instant::now();
        kill(Pid::from_raw(*pid as i32), Signal::SIGKILL).unwrap();
        let (at, _) = marks
            .wait(1, Duration::from_secs(30))
            .expect("replacement up");
        restart.push(ms(at - start));
        spawn.push(bare_spawns(&m.program(), 1, marks));
        std::thread::sleep(Duration::from_millis(20));
    }
    report(
        "crash",
        s,
        "SIGKILL until the replacement ran its first line",
        "ms",
        &restart,
    );
    if m.kind != Kind::Pm2 {
        report(
            "crash",
            m.kind.bare(),
            "one spawn until it ran",
            "ms",
            &spawn,
        );
    }
    let over: Vec<f64> = restart.iter().zip(&spawn).map(|(a, b)| a - b).collect();
    report(
        "crash-over",
        s,
        "crash restart minus a bare spawn (pairwise)",
        "ms",
        &over,
    );

    m.quit();
}

/// 500 processes of the tiny program: start, show, daemon RSS.
fn scale_scenario(m: &mut Manager, marks: &Marks) {
    let s = m.kind.subject();
    if m.kind == Kind::FinalPm {
        // PM2 runs the same program: one baseline for both.
        let bare = bare_spawns(&Program::Sh, 500, marks);
        report(
            "scale-start-500",
            "bare",
            "500 spawns from a loop until all ran",
            "ms",
            &[bare],
        );
    }
    m.launch();
    m.configure(500);
    marks.drain();
    let start = Instant::now();
    m.start();
    let (last, pids) = marks.wait(500, Duration::from_secs(300)).expect("500 up");
    report(
        "scale-start-500",
        s,
        "`start` of 500 until all ran their first line",
        "ms",
        &[ms(last - start)],
    );
    let runs = reps(m.kind, 30, 3);
    report(
        "scale-show-500",
        s,
        "whole `show` invocation, 500 processes up",
        "ms",
        &timed(runs, 1, || m.show()),
    );
    std::thread::sleep(Duration::from_secs(1));
    let own = m.own_processes(&pids);
    report(
        "scale-rss-500",
        s,
        "daemon RSS, 500 processes up",
        "KiB",
        &[rss_kib(own[0]) as f64],
    );
    let total: u64 = own.iter().map(|&p| rss_kib(p)).sum();
    report(
        "scale-rss-total-500",
        s,
        "RSS of all own processes, 500 up",
        "KiB",
        &[total as f64],
    );
    m.quit();
}

/// `--dry add all` of the 200-app configuration.
fn config_scenario(m: &mut Manager) {
    let s = m.kind.subject();
    let dir = m.app.join("config-200");
    apps200::write(&dir, 200);
    let one = m.app.join("config-1");
    apps200::write(&one, 1);
    let home = m.home.clone();
    let dry = |dir: &Path| {
        let start = Instant::now();
        let out = m
            .command(&["--dry", "add", "all"])
            .current_dir(dir)
            .env("FINAL_PM_CONFIG_HOME", &home)
            .output()
            .unwrap();
        let took = start.elapsed();
        assert!(
            out.status.success(),
            "--dry add all failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        took
    };
    match m.kind {
        Kind::FinalPm => {
            let samples = timed(100, 5, || dry(&dir));
            // The same for one app: what an invocation costs besides the
            // 200 apps (start-up, finding the file, the environment).
            let baseline = timed(100, 5, || dry(&one));
            assert!(
                !home.join("daemon.sock").exists(),
                "--dry add all launched a daemon"
            );
            report(
                "config-200",
                s,
                "whole `--dry add all`, 200 apps, no daemon",
                "ms",
                &samples,
            );
            report(
                "config-1",
                s,
                "whole `--dry add all`, 1 app, no daemon",
                "ms",
                &baseline,
            );
        }
        Kind::Original => {
            // The original's --dry still connects (and launches a daemon), so it
            // is measured against a running daemon.
            let samples = timed(5, 1, || dry(&dir));
            report(
                "config-200",
                s,
                "whole `--dry add all`, 200 apps (daemon running)",
                "ms",
                &samples,
            );
            m.quit();
        }
        Kind::Pm2 => skip("config-200", s, "PM2 has no dry run"),
    }
}

// ---------------------------------------------------------------------------
// Zero-downtime restart under HTTP load

/// A Node HTTP app that answers with its pid and, on SIGINT (every manager's
/// graceful stop here), stops accepting and exits once its requests are done.
const HTTP_APP: &str = "const server = require('http').createServer((req, res) => res.end(`${process.pid}`));\n\
                        server.listen(Number(process.argv[2]));\n\
                        process.on('SIGINT', () => server.close(() => process.exit(0)));\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET on a fresh connection (HTTP/1.0: the server closes it); the pid
/// that answered, or `None` for any failure (refused, reset, short, not 200).
fn get(port: u16) -> Option<u32> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    if !response.starts_with("HTTP/1.1 200") && !response.starts_with("HTTP/1.0 200") {
        return None;
    }
    response.split_once("\r\n\r\n")?.1.trim().parse().ok()
}

/// `clients` threads each sending one request after the other until stopped.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<(usize, usize, HashSet<u32>)>>,
}

impl Load {
    fn start(port: u16, clients: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..clients)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let (mut served, mut failed, mut pids) = (0, 0, HashSet::new());
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        match get(port) {
                            Some(pid) => {
                                served += 1;
                                pids.insert(pid);
                            }
                            None => failed += 1,
                        }
                    }
                    (served, failed, pids)
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops the clients: requests served, failed, and the pids that answered.
    fn finish(self) -> (usize, usize, HashSet<u32>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = (0, 0, HashSet::new());
        for t in self.threads {
            let (s, f, p) = t.join().unwrap();
            total.0 += s;
            total.1 += f;
            total.2.extend(p);
        }
        total
    }
}

/// 4 cluster instances of [`HTTP_APP`] under load from 4 clients, restarted
/// `RESTARTS` times (final-pm and FinalPM: `restart web --wait`; PM2: `pm2
/// reload web`, its zero-downtime reload).
fn restart_scenario(m: &mut Manager) {
    const RESTARTS: usize = 3;
    let s = m.kind.subject();
    fs::write(m.app.join("server.js"), HTTP_APP).unwrap();
    let port = free_port();
    let script = m.app.join("server.js");
    let config = match m.kind {
        Kind::FinalPm | Kind::Original => serde_json::json!({"applications": [{
            "name": "web", "run": "./server.js", "args": [port.to_string()],
            "mode": "cluster", "ready-on": "listen", "instances": 4,
        }]}),
        Kind::Pm2 => serde_json::json!({"apps": [{
            "name": "web", "script": script, "args": [port.to_string()],
            "exec_mode": "cluster", "instances": 4,
        }]}),
    };
    m.write_config(&config);
    m.launch();
    match m.kind {
        Kind::FinalPm | Kind::Original => m.run(&["start", "web", "--wait"]),
        Kind::Pm2 => m.run(&["start", "ecosystem.json"]),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port).is_none() {
        assert!(Instant::now() < deadline, "{s}: web never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let load = Load::start(port, 4);
    std::thread::sleep(Duration::from_secs(1));
    let mut restarts = Vec::new();
    for _ in 0..RESTARTS {
        restarts.push(ms(match m.kind {
            Kind::FinalPm | Kind::Original => m.run(&["restart", "web", "--wait"]),
            Kind::Pm2 => m.run(&["reload", "web"]),
        }));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (served, failed, pids) = load.finish();
    report(
        "restart-failed",
        s,
        &format!("failed requests, {RESTARTS} restarts of 4 under load"),
        "req",
        &[failed as f64],
    );
    report(
        "restart-served",
        s,
        &format!(
            "requests served meanwhile ({} workers answered)",
            pids.len()
        ),
        "req",
        &[served as f64],
    );
    report(
        "restart-time",
        s,
        "one restart of 4 instances (whole command)",
        "ms",
        &restarts,
    );
    m.quit();
}

// ---------------------------------------------------------------------------
// Log throughput

const LOG_LINES: usize = 2_000_000;

/// Prints `LOG_LINES` numbered lines of 100 bytes.
fn awk_lines() -> String {
    format!("awk 'BEGIN {{ for (i = 0; i < {LOG_LINES}; i++) printf \"%08d %090d\\n\", i, 0 }}'")
}

/// The same in Node, for the original FinalPM.
const NODE_LINES: &str = "const n = Number(process.argv[2]), pad = '0'.repeat(90);\n\
                          let chunk = [];\n\
                          for (let i = 0; i < n; i++) {\n\
                          chunk.push(String(i).padStart(8, '0') + ' ' + pad);\n\
                          if (chunk.length === 10000) { process.stdout.write(chunk.join('\\n') + '\\n'); chunk = []; }\n\
                          }\n\
                          if (chunk.length) process.stdout.write(chunk.join('\\n') + '\\n');\n";

/// Counts our lines in a growing file: lines ending in the 90-digit pad
/// (loggers may put a prefix in front).
struct LineCounter {
    file: Option<File>,
    path: PathBuf,
    partial: Vec<u8>,
    lines: usize,
    bytes: u64,
}

impl LineCounter {
    fn new(path: PathBuf) -> Self {
        Self {
            file: None,
            path,
            partial: Vec::new(),
            lines: 0,
            bytes: 0,
        }
    }

    /// Reads what was appended; returns whether anything was.
    fn poll(&mut self) -> bool {
        use std::io::Read;
        if self.file.is_none() {
            self.file = File::open(&self.path).ok();
        }
        let Some(file) = &mut self.file else {
            return false;
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut grew = false;
        loop {
            let n = file.read(&mut buf).unwrap();
            if n == 0 {
                return grew;
            }
            grew = true;
            self.bytes += n as u64;
            self.partial.extend_from_slice(&buf[..n]);
            let mut start = 0;
            while let Some(end) = memchr::memchr(b'\n', &self.partial[start..]) {
                let line = &self.partial[start..start + end];
                if line.len() >= 99 && line.ends_with(b"0000000000") {
                    self.lines += 1;
                }
                start += end + 1;
            }
            self.partial.drain(..start);
        }
    }
}

/// Whether the last 4 KiB of `path` hold `text`.
fn tail_holds(path: &Path, text: &str) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = File::open(path) else {
        return false;
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if file
        .seek(SeekFrom::Start(len.saturating_sub(4096)))
        .is_err()
    {
        return false;
    }
    let mut tail = Vec::new();
    let _ = file.read_to_end(&mut tail);
    memchr::memmem::find(&tail, text.as_bytes()).is_some()
}

/// 2,000,000 lines of 100 bytes from one process into the manager's log
/// file: time until all are there, lines lost, peak RSS of the manager's own
/// processes; against the program piped into `cat > file`.
fn logs_scenario(m: &mut Manager) {
    let s = m.kind.subject();
    let log = m.app.join("log.txt");
    let config = match m.kind {
        Kind::FinalPm => serde_json::json!({"applications": [{
            "name": "lines", "run": "/bin/sh", "args": ["-c", awk_lines()],
            "mode": "fork", "ready-on": "instant",
            "restart-crashing": false, "restart-new-crashing": false,
        }]}),
        Kind::Original => serde_json::json!({"applications": [{
            "name": "lines", "run": "./lines.js", "args": [LOG_LINES.to_string()],
            "mode": "fork", "ready-on": "instant",
            "restart-crashing": false, "restart-new-crashing": false,
        }]}),
        Kind::Pm2 => serde_json::json!({"apps": [{
            "name": "lines", "script": "/bin/sh", "args": ["-c", awk_lines()],
            "interpreter": "none", "exec_mode": "fork", "autorestart": false,
            "out_file": log, "error_file": m.app.join("err.txt"),
        }]}),
    };
    fs::write(m.app.join("lines.js"), NODE_LINES).unwrap();
    m.write_config(&config);
    // A single run of a pipe of two busy processes on 2 cores swings by up
    // to 2x (`awk | cat` took 0.62-1.14 s in four runs of the suite), so
    // each manager gets a few runs, each against a bare pipe of its own;
    // FinalPM only one, as it takes ~47 s.
    let runs = match m.kind {
        Kind::FinalPm | Kind::Pm2 => LOG_RUNS,
        Kind::Original => 1,
    };
    let (mut bares, mut tooks, mut ratios, mut peaks) = (vec![], vec![], vec![], vec![]);
    let mut lost = 0;
    for _ in 0..runs {
        let bare = logs_bare(m);
        let Some((took, run_lost, peak)) = logs_run(m, &log) else {
            for id in figures_of("logs") {
                skip(id, s, "wrote no log file (no file logger on this branch)");
            }
            return;
        };
        bares.push(bare);
        tooks.push(took);
        ratios.push(took / bare);
        peaks.push(peak as f64);
        lost += run_lost;
    }
    if m.kind != Kind::Pm2 {
        report(
            "logs-time",
            m.kind.bare(),
            "the program into `cat > file`",
            "ms",
            &bares,
        );
    }
    report(
        "logs-time",
        s,
        "2,000,000 lines of 100 B until all in the log file",
        "ms",
        &tooks,
    );
    report(
        "logs-lost",
        s,
        "lines lost (all runs)",
        "lines",
        &[lost as f64],
    );
    report(
        "logs-peak-rss",
        s,
        "peak RSS of own processes while logging",
        "KiB",
        &peaks,
    );
    report(
        "logs-ratio",
        s,
        "log time / the program into `cat > file`",
        "x",
        &ratios,
    );
}

/// Runs of the log scenario for final-pm and PM2.
const LOG_RUNS: usize = 3;

/// The bare machine: the log scenario's program into `cat > file`; ms.
fn logs_bare(m: &Manager) -> f64 {
    let piped = m.app.join("piped.txt");
    let program = match m.kind {
        Kind::FinalPm | Kind::Pm2 => awk_lines(),
        Kind::Original => format!("node ./lines.js {LOG_LINES}"),
    };
    let start = Instant::now();
    let status = Command::new("/bin/sh")
        .args(["-c", &format!("{program} | cat > piped.txt")])
        .current_dir(&m.app)
        .status()
        .unwrap();
    assert!(status.success());
    let bare = ms(start.elapsed());
    let mut counter = LineCounter::new(piped.clone());
    counter.poll();
    assert_eq!(counter.lines, LOG_LINES, "the bare pipe lost lines");
    fs::remove_file(&piped).unwrap();
    bare
}

/// One run through a freshly launched manager: ms until the last line is in
/// `log`, lines lost, peak RSS of its own processes in KiB; `None` if no
/// log file was written. Quits the manager and removes the file after.
fn logs_run(m: &mut Manager, log: &Path) -> Option<(f64, usize, u64)> {
    m.launch();
    let daemon = m.daemon();
    let start = Instant::now();
    match m.kind {
        Kind::FinalPm | Kind::Original => m.run(&["start", "lines"]),
        Kind::Pm2 => m.run(&["start", "ecosystem.json"]),
    };
    // While the manager works, only the file's size and its last 4 KiB are
    // looked at: counting the lines as they come read the whole file on the
    // same cores as the manager, and slowed it. They are counted at the end.
    let last_line = format!("{:08} {}", LOG_LINES - 1, "0".repeat(90));
    let (mut peak, mut size, mut last_growth, mut done) = (0u64, 0, Instant::now(), None);
    while done.is_none() {
        // Own processes: the daemon and its descendants except the app.
        let own: u64 = std::iter::once(daemon)
            .chain(descendants(daemon))
            .filter(|&p| !is_lines_program(p))
            .map(rss_kib)
            .sum();
        peak = peak.max(own);
        let len = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
        if len > size {
            size = len;
            last_growth = Instant::now();
        }
        if len > 0 && tail_holds(log, &last_line) {
            done = Some(start.elapsed());
        } else if last_growth.elapsed() > Duration::from_secs(10)
            || start.elapsed() > Duration::from_secs(240)
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    m.quit();
    let mut counter = LineCounter::new(log.to_path_buf());
    counter.poll();
    let _ = fs::remove_file(log);
    if counter.bytes == 0 {
        return None;
    }
    let took = done.unwrap_or_else(|| last_growth - start);
    Some((ms(took), LOG_LINES - counter.lines.min(LOG_LINES), peak))
}

/// Whether `pid` is the log scenario's program (sh, awk or node lines.js).
fn is_lines_program(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        String::from_utf8_lossy(&c).contains("%090d")
            || String::from_utf8_lossy(&c).contains("lines.js")
    })
}

/// The figures (`scenario` of the JSON lines) a scenario reports.
fn figures_of(scenario: &str) -> &'static [&'static str] {
    match scenario {
        "managers" => &[
            "rss-idle",
            "rss-others-idle",
            "rss-total-idle",
            "rss-4",
            "rss-others-4",
            "rss-total-4",
            "show-4",
            "start-50",
            "start-50-ratio",
            "rss-50",
            "rss-others-50",
            "rss-total-50",
            "show-50",
            "idle-cpu-50",
            "crash",
            "crash-over",
        ],
        "scale" => &[
            "scale-start-500",
            "scale-show-500",
            "scale-rss-500",
            "scale-rss-total-500",
        ],
        "config" => &["config-200"],
        "restart" => &["restart-failed", "restart-served", "restart-time"],
        "logs" => &["logs-time", "logs-lost", "logs-peak-rss", "logs-ratio"],
        _ => &[],
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let final_pm = PathBuf::from(
        args.next()
            .expect("usage: bench_managers PATH_TO_FINAL_PM [managers|scale|config|restart|logs…]"),
    );
    let mut scenarios: Vec<String> = args.collect();
    if scenarios.is_empty() {
        scenarios = ["managers", "scale", "config", "restart", "logs"]
            .map(String::from)
            .to_vec();
    }
    let idle_secs: u64 = std::env::var("IDLE_SECONDS")
        .ok()
        .map_or(30, |s| s.parse().expect("IDLE_SECONDS is a number"));
    let peer = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let subjects = [
        (Kind::FinalPm, Some(final_pm)),
        (Kind::Pm2, peer("BENCH_PM2")),
        (Kind::Original, peer("BENCH_FINALPM")),
    ];

    let _reaper = Reaper::install();
    let root = tempfile::tempdir().unwrap();
    let marks = Marks::new(root.path());

    // BENCH_ONLY=pm2,finalpm limits the subjects (for developing a scenario).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let mut live: Vec<(Manager, Vec<u32>)> = Vec::new();
    for scenario in &scenarios {
        for (kind, exe) in &subjects {
            if !only.is_empty() && !only.split(',').any(|o| o == kind.subject()) {
                continue;
            }
            let Some(exe) = exe else {
                for id in figures_of(scenario) {
                    skip(id, kind.subject(), "not installed");
                }
                continue;
            };
            let dir = root.path().join(format!("{scenario}-{}", kind.subject()));
            let mut m = Manager::new(*kind, exe, &dir, &marks.path);
            match scenario.as_str() {
                "managers" => {
                    let pids50 = managers_scenario(&mut m, &marks);
                    // Stays up for the shared idle window.
                    live.push((m, pids50));
                    continue;
                }
                "scale" if *kind == Kind::Original => {
                    for id in figures_of(scenario) {
                        skip(
                            id,
                            kind.subject(),
                            "runs Node programs only: 500 Node processes need ~20 GB",
                        );
                    }
                }
                "scale" => scale_scenario(&mut m, &marks),
                "config" => config_scenario(&mut m),
                "restart" => restart_scenario(&mut m),
                "logs" => logs_scenario(&mut m),
                other => panic!("unknown scenario {other}"),
            }
            m.quit();
            kill_everything_below();
        }
        if !live.is_empty() {
            idle_window(&live, idle_secs);
            for (m, pids50) in &mut live {
                crash_scenario(m, &marks, pids50);
            }
            // Every manager is asked to quit before any process is killed.
            for (m, _) in &mut live {
                m.quit();
            }
            live.clear();
            kill_everything_below();
        }
    }
    report(
        "invocation-floor",
        "bare",
        "spawn and exit of /bin/true",
        "ms",
        &bare_invocations(200),
    );
}
