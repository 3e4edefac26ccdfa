//! A spawned process as the daemon holds it: its output pipes and its exit.
//!
//! The exit is awaited on a pidfd: the kernel makes it readable when the
//! process exits, tokio's reactor watches it like any socket, and
//! `waitid(P_PIDFD)` then reaps exactly this process. Nothing here waits for
//! "any child" (`waitpid(-1)`), which would steal the statuses of processes
//! the daemon does not own (decisions.md, "Processes never leak"). It needs
//! Linux 5.4 (`pidfd_open` and `P_PIDFD`).
//!
//! Signals go to the process group, whose id is the leader's pid. That id is
//! only safe to use while the leader is not reaped: an exited but unreaped
//! leader (a zombie) keeps its pid, so no other process can get it and no
//! other group can have that id. Once reaped, the pid is free, and on a busy
//! machine (`pid_max` is 32768 by default) a new process may get it and lead
//! a group of the same id; a `killpg` then would hit a stranger. So the
//! leftovers of a group are killed before its leader is reaped, and every
//! later signal goes through a [`Group`], which refuses once it is reaped.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};

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
    /// The daemon's end of the stdout pipe, until taken.
    pub(crate) stdout: Option<ChildStdout>,
    /// The daemon's end of the stderr pipe, until taken.
    pub(crate) stderr: Option<ChildStderr>,
    pidfd: AsyncFd<OwnedFd>,
    status: Option<ExitStatus>,
    group: Group,
}

/// The process group of a spawned process, for signalling from elsewhere
/// (stop and kill signals) while [`Child::wait`] may reap its leader at any
/// moment on another task. Signalling and reaping exclude each other, so a
/// signal either reaches the right group or is not sent at all.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    leader: Pid,
    /// Whether the leader has been reaped (its pid may be reused).
    pub(super) reaped: Arc<Mutex<bool>>,
}

impl Group {
    fn new(leader: Pid) -> Self {
        Self {
            leader,
            reaped: Arc::new(Mutex::new(false)),
        }
    }

    /// Sends `signal` to the group. `ESRCH` (no member is left) and a
    /// reaped leader both count as delivered: the exit is on its way.
    pub(crate) fn signal(&self, signal: Signal) -> Result<(), Errno> {
        let reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if *reaped {
            return Ok(());
        }
        match killpg(self.leader, signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// CPU time the leader's process has used (all its threads), or `None`
    /// once it is reaped: the clock is looked up by pid, which would then
    /// name whoever got it next.
    pub(crate) fn cpu_time(&self) -> Option<std::time::Duration> {
        use nix::time::{ClockId, clock_gettime};
        // Linux's id of a process's CPU clock (`MAKE_PROCESS_CPUCLOCK(pid,
        // CPUCLOCK_SCHED)` in the kernel's ABI): what `clock_getcpuclockid`
        // returns, without the `clock_getres` call glibc makes to check it.
        let clock = ClockId::from_raw((!self.leader.as_raw() << 3) | 2);
        let reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        if *reaped {
            return None;
        }
        clock_gettime(clock).ok().map(Into::into)
    }

    /// Reaps the leader with `reap` while no signal can be in flight, and
    /// marks the group as no longer addressable if it succeeded.
    fn reap<T>(&self, reap: impl FnOnce() -> nix::Result<T>) -> nix::Result<T> {
        let mut reaped = self.reaped.lock().unwrap_or_else(PoisonError::into_inner);
        let result = reap();
        if result.is_ok() {
            *reaped = true;
        }
        result
    }
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
            stdout: None,
            stderr: None,
            pidfd: watch_pidfd(pidfd)?,
            status: None,
            group: Group::new(pid),
        };
        child.stdout = Some(ChildStdout::from_std(std::process::ChildStdout::from(
            stdout,
        ))?);
        child.stderr = Some(ChildStderr::from_std(std::process::ChildStderr::from(
            stderr,
        ))?);
        Ok(child)
    }

    /// The process group, to signal while this child is waited for.
    pub(crate) fn group(&self) -> Group {
        self.group.clone()
    }

    /// Waits until the process exits, kills what is left of its group, and
    /// reaps it. Returns the same status again if called after that.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let pidfd = || Id::PIDFd(self.pidfd.get_ref().as_fd());
        loop {
            let mut ready = self.pidfd.readable().await?;
            // Look without reaping: the leader's pid stays taken, so the
            // group id still names this group for the kill below.
            let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            match waitid(pidfd(), peek) {
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => break,
                // Readable but not yet waitable (or a spurious wake-up).
                Ok(_) => ready.clear_ready(),
                Err(Errno::EINTR) => {}
                Err(err) => return Err(err.into()),
            }
        }
        // Leftovers of the group die with their leader (a grandchild must
        // not keep a port or the output pipes).
        let _ = self.group.signal(Signal::SIGKILL);
        let reap = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG;
        let status = loop {
            match self.group.reap(|| waitid(pidfd(), reap)) {
                Ok(WaitStatus::Exited(_, code)) => break ExitStatus::from_raw((code & 0xff) << 8),
                Ok(WaitStatus::Signaled(_, signal, core)) => {
                    break ExitStatus::from_raw(signal as i32 | if core { 0x80 } else { 0 });
                }
                // Seen exited a moment ago, so this does not happen; if it
                // did, the next try finds it.
                Ok(_) | Err(Errno::EINTR) => tokio::task::yield_now().await,
                Err(err) => return Err(err.into()),
            }
        };
        Ok(*self.status.insert(status))
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
            // Not reaped by us, so the group id is still this group's.
            let _ = self.group.signal(Signal::SIGKILL);
        }
    }
}
