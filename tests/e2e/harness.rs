//! Test fixture: a private home per test, helpers to run the CLI and to talk
//! to the daemon raw, and a guard that kills the daemon by pid on drop (also
//! when the test fails), so no test leaks a process.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The `final-pm` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_final-pm")
}

/// One test's world: a temporary home and every daemon pid seen in it.
pub struct Home {
    pub dir: tempfile::TempDir,
    pids: std::cell::RefCell<Vec<u32>>,
    /// Managed processes seen by [`Home::processes`]: their process groups
    /// are killed on drop, in case the daemon could not do it.
    groups: std::cell::RefCell<Vec<u32>>,
}

impl Home {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            pids: Default::default(),
            groups: Default::default(),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn socket(&self) -> PathBuf {
        self.home().join("daemon.sock")
    }

    pub fn lock(&self) -> PathBuf {
        self.home().join("daemon.sock.lock")
    }

    /// A `final-pm` command with this home and nothing inherited that could
    /// point it elsewhere.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("FINAL_PM_CONFIG_HOME", self.home())
            .env_remove("FINAL_PM_CONFIG_SOCKET")
            .env_remove("FINAL_PM_CONFIG_DAEMON_LOG")
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path());
        cmd
    }

    /// Runs `final-pm ARGS` to completion and remembers the daemon it left.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.cmd(args).output().unwrap();
        self.remember_daemon();
        out
    }

    /// Runs `final-pm ARGS`, asserts that it succeeded and returns its
    /// stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, &[])
    }

    /// [`Home::ok`] with extra environment variables, which the apps a
    /// launched daemon starts inherit too.
    pub fn ok_with(&self, args: &[&str], vars: &[(&str, String)]) -> String {
        let mut cmd = self.cmd(args);
        for (name, value) in vars {
            cmd.env(name, value);
        }
        let out = cmd.output().unwrap();
        self.remember_daemon();
        assert!(
            out.status.success(),
            "final-pm {args:?} failed\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// The pid recorded in the daemon lock, if a daemon holds it.
    pub fn daemon_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.lock()).ok()?;
        let pid = text.trim().parse().ok()?;
        self.pids.borrow_mut().push(pid);
        Some(pid)
    }

    /// Kills `pid` when the test ends, whatever happens (a daemon this
    /// home's lock file does not name).
    pub fn adopt(&self, pid: u32) {
        self.pids.borrow_mut().push(pid);
    }

    pub fn remember_daemon(&self) {
        let _ = self.daemon_pid();
    }

    /// A raw connection, handshaken.
    pub fn raw(&self) -> Raw {
        let mut raw = Raw::connect(&self.socket());
        let hello = raw.roundtrip(r#"{"type":"hello","protocol_version":1,"client":"e2e"}"#);
        assert_eq!(hello["type"], "hello", "{hello}");
        raw
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        self.remember_daemon();
        // Everything the daemons started (apps, loggers and whatever those
        // started), found through the process tree rather than remembered,
        // so a test that never looked at its processes leaves none behind.
        let mut doomed = Vec::new();
        for &pid in self.pids.borrow().iter() {
            descendants(pid, &mut doomed);
        }
        for &pid in self.pids.borrow().iter() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        for &pid in &doomed {
            let _ = nix::sys::signal::killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        for &pgid in self.groups.borrow().iter() {
            let _ = nix::sys::signal::killpg(Pid::from_raw(pgid as i32), Signal::SIGKILL);
        }
    }
}

impl Home {
    /// Writes `process-config.json` in the test's directory.
    pub fn config(&self, json: &str) {
        std::fs::write(self.dir.path().join("process-config.json"), json).unwrap();
    }

    /// Writes an executable script in the test's directory.
    pub fn script(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The daemon's processes (`show --json`), remembered for cleanup.
    pub fn processes(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["show", "--json", "--no-upload"]);
        assert!(out.status.success(), "show failed: {}", stderr(&out));
        let info: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("show --json: {e}: {}", stdout(&out)));
        let processes = info["processes"].as_array().cloned().unwrap_or_default();
        for p in &processes {
            if let Some(pid) = p["pid"].as_u64() {
                let mut groups = self.groups.borrow_mut();
                if !groups.contains(&(pid as u32)) {
                    groups.push(pid as u32);
                }
            }
        }
        processes
    }

    /// Waits until `app` has exactly `count` running processes with pids and
    /// nothing in new, old or marked; returns them by number.
    pub fn settle(&self, app: &str, count: usize) -> Vec<(u64, u32)> {
        let mut last = Vec::new();
        let ok = wait_for(Duration::from_secs(10), || {
            let all = self.processes();
            let mine: Vec<&serde_json::Value> =
                all.iter().filter(|p| p["app_name"] == app).collect();
            last = mine
                .iter()
                .filter(|p| p["generation"] == "running")
                .filter_map(|p| Some((p["number"].as_u64()?, p["pid"].as_u64()? as u32)))
                .collect();
            last.sort_unstable();
            last.len() == count && mine.len() == count
        });
        assert!(ok, "{app} did not settle at {count} running: {last:?}");
        last
    }
}

/// Adds every descendant of `pid` (children of all its threads, then
/// theirs) to `out`.
fn descendants(pid: u32, out: &mut Vec<u32>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            if !out.contains(&child) {
                out.push(child);
                descendants(child, out);
            }
        }
    }
}

/// Whether `node` can run here; says so on stderr when the calling test is
/// skipped for want of it.
pub fn node_installed() -> bool {
    let found = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: node is not installed");
    }
    found
}

/// Whether a process exists and is not a zombie.
pub use final_pm_daemon::procfs::is_alive as alive;

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Pids of live daemons whose command line mentions `home` (to count them;
/// tests never kill by name).
pub fn daemons_for(home: &Path) -> Vec<u32> {
    let needle = home.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("__daemon") && cmdline.contains(&needle) && alive(pid) {
            found.push(pid);
        }
    }
    found
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A blocking line-oriented connection to the daemon.
pub struct Raw {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Raw {
    pub fn connect(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Self { stream, reader }
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn read(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "incomplete reply line: {line:?}");
        serde_json::from_str(&line).unwrap()
    }

    pub fn roundtrip(&mut self, line: &str) -> serde_json::Value {
        self.send_bytes(line.as_bytes());
        self.send_bytes(b"\n");
        self.read()
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
