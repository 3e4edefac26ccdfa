//! Finding the daemon, and starting it when nobody answers.
//!
//! The daemon is this very executable, started through its hidden `__daemon`
//! entry point (never a `final-pm` found on `PATH`, which might be another
//! version). It runs detached in its own session with stdin closed and
//! stdout/stderr appended to `daemon.out`.
//!
//! Two CLIs launching at the same moment must end up talking to one daemon.
//! The launch lock (an `flock`, which cannot go stale) makes them take turns:
//! the second one finds the first one's daemon answering and just connects.
//! Even without it the daemon's own lock lets only one daemon live, and a CLI
//! whose daemon lost that race connects to the winner.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use final_pm_daemon::lock::LockFile;
use final_pm_daemon::paths;
use final_pm_protocol::client::EarlyCall;
use final_pm_protocol::{Client, ProtocolError, Request, Response};

use crate::output::Output;

/// How long a launch may take before we give up on it.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the daemon is and how it is reached.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) home: PathBuf,
    pub(crate) socket: PathBuf,
    pub(crate) daemon_log: PathBuf,
}

/// The name this CLI gives itself in the handshake.
pub(crate) fn client_name() -> String {
    format!("final-pm {}", final_pm_protocol::VERSION)
}

/// Connects to a running daemon; `Ok(None)` when none answers.
pub(crate) async fn connect(target: &Target) -> anyhow::Result<Option<Client>> {
    match Client::connect(&target.socket, &client_name()).await {
        Ok(client) => Ok(Some(client)),
        Err(ProtocolError::DaemonNotRunning { .. }) => Ok(None),
        Err(err) => Err(err)
            .with_context(|| format!("talking to the daemon at {}", target.socket.display())),
    }
}

/// Connects to a running daemon and sends `request` with the handshake, in
/// one round trip; `Ok(None)` when none answers.
pub(crate) async fn connect_and_call(
    target: &Target,
    request: Request,
) -> anyhow::Result<Option<(Client, Response)>> {
    match Client::connect_and_call(&target.socket, &client_name(), request).await {
        Ok(pair) => Ok(Some(pair)),
        Err(ProtocolError::DaemonNotRunning { .. }) => Ok(None),
        Err(err) => Err(err)
            .with_context(|| format!("talking to the daemon at {}", target.socket.display())),
    }
}

/// Reads the answers to a query sent early (see [`crate::early`]).
pub(crate) async fn finish_early(
    call: EarlyCall,
    target: &Target,
) -> anyhow::Result<(Client, Response)> {
    call.finish()
        .await
        .with_context(|| format!("talking to the daemon at {}", target.socket.display()))
}

/// Connects, launching the daemon first if none answers.
pub(crate) async fn connect_or_launch(target: &Target, out: &Output) -> anyhow::Result<Client> {
    out.debug(
        &["Connection"],
        &format!("Connecting to {}", target.socket.display()),
    );
    if let Some(client) = connect(target).await? {
        return Ok(client);
    }
    // Take turns with other launching CLIs. The lock is blocking with a
    // deadline, taken on a blocking thread so the runtime stays free.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&target.home)
        .with_context(|| format!("creating the home directory {}", target.home.display()))?;
    let lock_path = paths::launch_lock_path(&target.socket);
    let lock = {
        let path = lock_path.clone();
        tokio::task::spawn_blocking(move || LockFile::acquire_with_timeout(&path, LAUNCH_TIMEOUT))
            .await
            .context("waiting for the launch lock")?
            .with_context(|| {
                format!(
                    "waiting for another final-pm to finish launching the daemon ({})",
                    lock_path.display()
                )
            })?
    };
    // Whoever held the lock before us may have launched it already.
    if let Some(client) = connect(target).await? {
        drop(lock);
        return Ok(client);
    }
    out.info(&["Daemon"], "Starting Daemon");
    let launched = launch(target).await;
    drop(lock);
    launched
}

async fn launch(target: &Target) -> anyhow::Result<Client> {
    if let Some(dir) = target.daemon_log.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .ok();
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&target.daemon_log)
        .with_context(|| format!("opening the daemon log {}", target.daemon_log.display()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let exe =
        std::env::current_exe().context("finding the final-pm executable to start the daemon")?;
    let mut child = Command::new(&exe)
        .arg("__daemon")
        .arg("--detach")
        .arg("--home")
        .arg(&target.home)
        .arg("--socket")
        .arg(&target.socket)
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .context("duplicating the daemon log handle")?,
        )
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting the daemon ({})", exe.display()))?;
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(client) = connect(target).await? {
            // The daemon runs on in its own session; the CLI does not wait for it.
            forget(child);
            return Ok(client);
        }
        if let Some(status) = child.try_wait().context("checking on the daemon")? {
            let tail = log_tail(&target.daemon_log, log_start);
            if tail.contains("daemon already running") {
                // Another launcher's daemon won the race; it is ours too.
                if let Some(client) = wait_for_daemon(target, deadline).await? {
                    return Ok(client);
                }
            }
            bail!(
                "the daemon terminated at start ({status}); last lines of {}:\n{}",
                target.daemon_log.display(),
                if tail.is_empty() {
                    "(empty)".to_owned()
                } else {
                    tail
                }
            );
        }
        if Instant::now() >= deadline {
            forget(child);
            bail!(
                "the daemon did not answer on {} within {} s; check {}",
                target.socket.display(),
                LAUNCH_TIMEOUT.as_secs(),
                target.daemon_log.display()
            );
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

async fn wait_for_daemon(target: &Target, deadline: Instant) -> anyhow::Result<Option<Client>> {
    while Instant::now() < deadline {
        if let Some(client) = connect(target).await? {
            return Ok(Some(client));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(None)
}

/// Lets the daemon run on: dropping a `Child` neither kills nor waits for it.
fn forget(child: Child) {
    drop(child);
}

/// The last lines the daemon wrote to its log since `start`.
fn log_tail(path: &Path, start: u64) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut text = String::new();
    let _ = file.take(64 * 1024).read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Waits until the process `pid` is gone (or a zombie), up to `timeout`.
/// Used after `kill_daemon`, so that when `final-pm --kill` returns the daemon
/// really is gone, socket and lock included.
pub(crate) async fn wait_for_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let gone = !final_pm_daemon::procfs::is_alive(pid);
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
