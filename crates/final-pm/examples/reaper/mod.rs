//! Cleanup for the benchmark drivers: a driver makes itself a child
//! subreaper, so every process it starts (and every daemon that detaches
//! from a CLI it ran) stays below it, and on exit, panic, SIGINT, SIGTERM or
//! SIGHUP it SIGKILLs everything still below it, by pid, and reaps. Nothing
//! is looked up or killed by name. Each driver includes it with `mod reaper;`.

// Each driver uses a different part of this module.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::fs;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// (pid, ppid, state) of every process.
pub(crate) fn process_table() -> Vec<(u32, u32, char)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push((pid, ppid, state));
    }
    out
}

/// Live (not zombie) descendants of `root`, parents before children.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let table = process_table();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut zombie = HashSet::new();
    for &(pid, ppid, state) in &table {
        children.entry(ppid).or_default().push(pid);
        if state == 'Z' || state == 'X' {
            zombie.insert(pid);
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        for &c in children.get(&p).map_or(&[][..], Vec::as_slice) {
            if !zombie.contains(&c) {
                out.push(c);
            }
            queue.push(c);
        }
    }
    out
}

/// SIGKILLs every process below this one, by pid, until none is left, and
/// reaps the ones that became our children. Only called while no `Child`
/// handle is outstanding, since it reaps any child.
pub(crate) fn kill_everything_below() {
    let me = std::process::id();
    for _ in 0..200 {
        let below = descendants(me);
        for &pid in &below {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            if status == WaitStatus::StillAlive {
                break;
            }
        }
        if below.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("warning: processes below the benchmark survived SIGKILL");
}

/// Runs [`kill_everything_below`] when dropped, so a panic cleans up too.
#[derive(Debug)]
pub(crate) struct Reaper;

impl Reaper {
    /// Makes this process a subreaper and installs the signal cleanup; keep
    /// the guard alive in `main`.
    pub(crate) fn install() -> Self {
        nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
        install_signal_cleanup();
        Self
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        kill_everything_below();
    }
}

/// SIGINT, SIGTERM and SIGHUP: clean up and exit.
fn install_signal_cleanup() {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let mut int = signal(SignalKind::interrupt()).unwrap();
            let mut term = signal(SignalKind::terminate()).unwrap();
            let mut hup = signal(SignalKind::hangup()).unwrap();
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        });
        eprintln!("interrupted: killing every process the benchmark started");
        kill_everything_below();
        std::process::exit(130);
    });
}
