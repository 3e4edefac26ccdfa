//! Watching one managed process: its output, its IPC channel, its readiness
//! and its end, reported to the supervisor as [`ChildEvent`]s.
//!
//! Each process gets a handful of small tasks (its IPC channel's are in
//! [`crate::ipc`]). They never touch lifecycle
//! state; they only report. Events carry the process's [`Incarnation`], since
//! a crash-respawn reuses the process id and a late event of the dead
//! predecessor must not be mistaken for the new process's.
//!
//! Output is sent through a bounded channel: when the supervisor (or, later,
//! a logger behind it) falls behind, the reader stops reading and the app's
//! writes wait, as with any pipe into a slow reader. Nothing is dropped here.
//!
//! The end of a process is its leader's exit (`waitid` on its pidfd, see
//! [`crate::spawn::Child`]; never `waitpid(-1)`). Whatever is left of its
//! process group is then killed, so a grandchild cannot keep a port or the
//! pipes, and the pipes are drained for a short grace period before the exit
//! is reported.

use std::io;
use std::time::Duration;

use final_pm_protocol::{ProcessId, ReadyOn};
use nix::sys::signal::{Signal as NixSignal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::cluster::{ClusterHandle, WorkerId};
use crate::core::{ProcessEnd, Signal};
use crate::ipc::{ClusterLink, IpcSender};
use crate::lines::{Line, LineSplitter};
use crate::spawn::Spawned;

/// How long the pipes may stay open after the leader exited before the exit
/// is reported anyway (a grandchild in another group may hold them).
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// One run of a process id: increases with every spawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Incarnation(pub(crate) u64);

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// What a process did.
#[derive(Debug)]
pub(crate) enum ChildEvent {
    /// It reported ready (IPC `"ready"`, `READY=1`, or a listening socket).
    Ready { id: ProcessId, inc: Incarnation },
    /// It wrote a line.
    Output {
        id: ProcessId,
        inc: Incarnation,
        stream: Stream,
        line: Line,
    },
    /// It sent an IPC message other than `"ready"`.
    Message {
        id: ProcessId,
        message: serde_json::Value,
    },
    /// Something went wrong on its behalf (a cluster listen failed): a line
    /// for the app's log.
    Problem {
        id: ProcessId,
        inc: Incarnation,
        text: String,
    },
    /// It is gone, and so is the rest of its process group.
    Exited {
        id: ProcessId,
        inc: Incarnation,
        end: ProcessEnd,
    },
}

/// The supervisor's handle on a watched process.
#[derive(Debug)]
pub(crate) struct ChildHandle {
    pub(crate) inc: Incarnation,
    pub(crate) pid: u32,
    ipc: IpcSender,
    /// Set for a Node cluster worker.
    cluster: Option<(ClusterHandle, WorkerId)>,
}

impl ChildHandle {
    /// Sends `signal` to the process group. A group that is already gone
    /// (`ESRCH`) counts as success: the exit event is on its way.
    pub(crate) fn signal(&self, signal: Signal) {
        let sig = match signal {
            Signal::Int => NixSignal::SIGINT,
            Signal::Term => NixSignal::SIGTERM,
            Signal::Kill => NixSignal::SIGKILL,
        };
        if let Err(err) = killpg(Pid::from_raw(self.pid as i32), sig) {
            debug!(pid = self.pid, %err, "signal not delivered (process group gone)");
        }
    }

    /// Queues an IPC message; written in order by the channel's writer.
    pub(crate) fn send(&self, message: serde_json::Value) {
        self.ipc.send(message);
    }

    /// `stop-signal: disconnect`. A cluster worker is asked to disconnect
    /// gracefully (it closes its servers first); closing its channel would
    /// make it exit at once (node-ipc.md §2.6). Any other process gets its
    /// channel closed after the messages queued before.
    pub(crate) fn disconnect(&self) {
        match &self.cluster {
            Some((cluster, worker)) => cluster.disconnect(*worker),
            None => self.ipc.disconnect(),
        }
    }
}

/// Starts watching a freshly spawned process.
// Each argument is a separate part of the process the supervisor set up;
// a struct only for this one call would add nothing.
#[allow(clippy::too_many_arguments)]
pub(crate) fn watch(
    spawned: Spawned,
    id: ProcessId,
    inc: Incarnation,
    ready_on: ReadyOn,
    max_line: usize,
    notify: Option<tokio::net::UnixDatagram>,
    cluster: Option<ClusterLink>,
    events: mpsc::Sender<ChildEvent>,
) -> io::Result<ChildHandle> {
    let Spawned {
        mut child,
        pid,
        ipc,
    } = spawned;
    let is_worker = cluster.is_some();
    let gone = cluster.as_ref().map(|l| (l.cluster.clone(), l.worker));
    let (ipc, ipc_tasks) = crate::ipc::start(
        ipc,
        id,
        inc,
        ready_on == ReadyOn::Listen,
        cluster,
        events.clone(),
    )?;

    let stdout = child
        .stdout
        .take()
        .map(|s| tokio::spawn(pump(s, Stream::Stdout, id, inc, max_line, events.clone())));
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(s, Stream::Stderr, id, inc, max_line, events.clone())));
    let mut helpers: Vec<JoinHandle<()>> = ipc_tasks.into();
    let leaves = gone.clone();
    if let Some(notify) = notify {
        helpers.push(tokio::spawn(notify_reader(notify, id, inc, events.clone())));
    }
    match ready_on {
        // A cluster worker's readiness is its `listening` message.
        ReadyOn::Listen if is_worker => {}
        ReadyOn::Listen => {
            helpers.push(tokio::spawn(listen_detector(pid, id, inc, events.clone())))
        }
        // `instant` is decided by the core as soon as the process exists.
        ReadyOn::Instant | ReadyOn::Message => {}
    }

    tokio::spawn(async move {
        let status = child.wait().await;
        // Leftovers of the group die with their leader.
        let _ = killpg(Pid::from_raw(pid as i32), NixSignal::SIGKILL);
        for pump in [stdout, stderr].into_iter().flatten() {
            let abort = pump.abort_handle();
            if tokio::time::timeout(DRAIN_GRACE, pump).await.is_err() {
                abort.abort();
            }
        }
        for helper in helpers {
            helper.abort();
        }
        // The primary may hand its connections to the other workers now.
        if let Some((cluster, worker)) = &leaves {
            cluster.gone(*worker);
        }
        let end = match status {
            Ok(status) => end_of(status),
            Err(err) => {
                debug!(pid, %err, "waiting for the process failed");
                ProcessEnd::default()
            }
        };
        let _ = events.send(ChildEvent::Exited { id, inc, end }).await;
    });
    Ok(ChildHandle {
        inc,
        pid,
        ipc,
        cluster: gone,
    })
}

fn end_of(status: std::process::ExitStatus) -> ProcessEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ProcessEnd::code(code),
        (None, Some(signal)) => match NixSignal::try_from(signal) {
            Ok(signal) => ProcessEnd::signal(signal.as_str()),
            Err(_) => ProcessEnd::signal(signal.to_string()),
        },
        (None, None) => ProcessEnd::default(),
    }
}

async fn pump(
    mut pipe: impl AsyncRead + Unpin,
    stream: Stream,
    id: ProcessId,
    inc: Incarnation,
    max_line: usize,
    events: mpsc::Sender<ChildEvent>,
) {
    let mut splitter = LineSplitter::new(max_line);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut lines = Vec::new();
    loop {
        let n = match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        splitter.push(&buffer[..n], &mut lines);
        for line in lines.drain(..) {
            if events
                .send(ChildEvent::Output {
                    id,
                    inc,
                    stream,
                    line,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }
    if let Some(line) = splitter.finish() {
        let _ = events
            .send(ChildEvent::Output {
                id,
                inc,
                stream,
                line,
            })
            .await;
    }
}

async fn notify_reader(
    socket: tokio::net::UnixDatagram,
    id: ProcessId,
    inc: Incarnation,
    events: mpsc::Sender<ChildEvent>,
) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let Ok(n) = socket.recv(&mut buffer).await else {
            return;
        };
        let text = String::from_utf8_lossy(&buffer[..n]);
        if text.lines().any(|l| l.trim() == "READY=1") {
            let _ = events.send(ChildEvent::Ready { id, inc }).await;
            return;
        }
    }
}

/// Polls `/proc` until a process of the group listens on a socket. Runs only
/// while the process starts (the watcher aborts it at exit, and it ends once
/// it found a socket), backing off to 250 ms, so an idle daemon does no work.
async fn listen_detector(
    pid: u32,
    id: ProcessId,
    inc: Incarnation,
    events: mpsc::Sender<ChildEvent>,
) {
    let mut pause = Duration::from_millis(5);
    loop {
        let found = tokio::task::spawn_blocking(move || crate::listen::group_listens(pid))
            .await
            .unwrap_or(false);
        if found {
            let _ = events.send(ChildEvent::Ready { id, inc }).await;
            return;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}
