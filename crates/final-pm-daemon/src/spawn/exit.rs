//! A spawned process as the daemon holds it: its output pipes and its exit.
//!
//! The exit is awaited on a pidfd: the kernel makes it readable when the
//! process exits, tokio's reactor watches it like any socket, and
//! `waitid(P_PIDFD)` then reaps exactly this process. Nothing here waits for
//! "any child" (`waitpid(-1)`), which would steal the statuses of processes
//! the daemon does not own (decisions.md, "Processes never leak"). It needs
//! Linux 5.4 (`pidfd_open` and `P_PIDFD`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::process::{ChildStderr, ChildStdout};

/// A started process, shaped like tokio's `Child` where the watcher uses it.
///
/// Dropped before its exit was collected (its watcher never started, or the
/// runtime went away), it kills its process group rather than leave a
/// process running unsupervised; the daemon's orphan reaping collects it.
#[derive(Debug)]
pub(crate) struct Child {
    pid: Pid,
    /// The daemon's end of the stdout pipe, until taken.
    pub(crate) stdout: Option<ChildStdout>,
    /// The daemon's end of the stderr pipe, until taken.
    pub(crate) stderr: Option<ChildStderr>,
    pidfd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
}

impl Child {
    /// Takes over the freshly spawned `pid` and the daemon's pipe ends.
    /// Must run inside the tokio runtime (the pipes and the pidfd register
    /// with its reactor).
    pub(super) fn new(
        pid: Pid,
        pidfd: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    ) -> io::Result<Self> {
        let mut child = Self {
            pid,
            stdout: None,
            stderr: None,
            pidfd: watch_pidfd(pidfd)?,
            status: None,
        };
        child.stdout = Some(ChildStdout::from_std(std::process::ChildStdout::from(
            stdout,
        ))?);
        child.stderr = Some(ChildStderr::from_std(std::process::ChildStderr::from(
            stderr,
        ))?);
        Ok(child)
    }

    /// Waits until the process exits and reaps it. Returns the same status
    /// again if called after that.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        loop {
            let mut ready = self.pidfd.readable().await?;
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
            match waitid(Id::PIDFd(self.pidfd.get_ref().as_fd()), flags) {
                Ok(WaitStatus::Exited(_, code)) => {
                    return Ok(*self.status.insert(ExitStatus::from_raw((code & 0xff) << 8)));
                }
                Ok(WaitStatus::Signaled(_, signal, core)) => {
                    let raw = signal as i32 | if core { 0x80 } else { 0 };
                    return Ok(*self.status.insert(ExitStatus::from_raw(raw)));
                }
                // Readable but not yet waitable (or a spurious wake-up).
                Ok(_) => ready.clear_ready(),
                Err(Errno::EINTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
    }
}

/// Registers `pidfd` with tokio's reactor: readable once the process exits.
#[allow(unsafe_code)]
fn watch_pidfd(pidfd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: an `OwnedFd` is an open fd that nothing else closes, and it
    // always returns the same number; the `AsyncFd` owns it from here on.
    Ok(unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }?)
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_none() {
            // ESRCH: the group is already gone, which is what we want.
            let _ = killpg(self.pid, Signal::SIGKILL);
        }
    }
}
