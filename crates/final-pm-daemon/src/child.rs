//! Watching one managed process: its output, its IPC channel, its readiness
//! and its end, reported to the supervisor as [`ChildEvent`]s.
//!
//! Each process gets a handful of small tasks. They never touch lifecycle
//! state; they only report. Events carry the process's [`Incarnation`], since
//! a crash-respawn reuses the process id and a late event of the dead
//! predecessor must not be mistaken for the new process's.
//!
//! Output is sent through a bounded channel: when the supervisor (or, later,
//! a logger behind it) falls behind, the reader stops reading and the app's
//! writes wait, as with any pipe into a slow reader. Nothing is dropped here.
//!
//! The end of a process is its leader's exit (`waitpid` on that pid, through
//! tokio; never `waitpid(-1)`). Whatever is left of its process group is then
//! killed, so a grandchild cannot keep a port or the pipes, and the pipes are
//! drained for a short grace period before the exit is reported.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use final_pm_protocol::{ProcessId, ReadyOn};
use nix::sys::signal::{Signal as NixSignal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::core::{ProcessEnd, Signal};
use crate::lines::{Line, LineSplitter};
use crate::spawn::Spawned;

/// How long the pipes may stay open after the leader exited before the exit
/// is reported anyway (a grandchild in another group may hold them).
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// The largest IPC message accepted from an app.
const MAX_IPC_LINE: usize = 64 * 1024 * 1024;

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
    /// It is gone, and so is the rest of its process group.
    Exited {
        id: ProcessId,
        inc: Incarnation,
        end: ProcessEnd,
    },
}

/// What the supervisor can do to a watched process's IPC channel.
#[derive(Debug)]
enum IpcCommand {
    Send(serde_json::Value),
    Disconnect,
}

/// The supervisor's handle on a watched process.
#[derive(Debug)]
pub(crate) struct ChildHandle {
    pub(crate) inc: Incarnation,
    pub(crate) pid: u32,
    ipc: mpsc::UnboundedSender<IpcCommand>,
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
        let _ = self.ipc.send(IpcCommand::Send(message));
    }

    /// Closes the IPC channel after the messages queued before.
    pub(crate) fn disconnect(&self) {
        let _ = self.ipc.send(IpcCommand::Disconnect);
    }
}

/// Starts watching a freshly spawned process.
pub(crate) fn watch(
    spawned: Spawned,
    id: ProcessId,
    inc: Incarnation,
    ready_on: ReadyOn,
    max_line: usize,
    notify: Option<tokio::net::UnixDatagram>,
    events: mpsc::Sender<ChildEvent>,
) -> io::Result<ChildHandle> {
    let Spawned {
        mut child,
        pid,
        ipc,
    } = spawned;
    ipc.set_nonblocking(true)?;
    let ipc = tokio::net::UnixStream::from_std(ipc)?;
    let (ipc_read, ipc_write) = ipc.into_split();
    let (ipc_tx, ipc_rx) = mpsc::unbounded_channel();

    let stdout = child
        .stdout
        .take()
        .map(|s| tokio::spawn(pump(s, Stream::Stdout, id, inc, max_line, events.clone())));
    let stderr = child
        .stderr
        .take()
        .map(|s| tokio::spawn(pump(s, Stream::Stderr, id, inc, max_line, events.clone())));
    let mut helpers: Vec<JoinHandle<()>> = vec![
        tokio::spawn(ipc_reader(
            ipc_read,
            id,
            inc,
            ipc_tx.clone(),
            events.clone(),
        )),
        tokio::spawn(ipc_writer(ipc_write, ipc_rx)),
    ];
    if let Some(notify) = notify {
        helpers.push(tokio::spawn(notify_reader(notify, id, inc, events.clone())));
    }
    match ready_on {
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
        ipc: ipc_tx,
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

async fn ipc_reader(
    read: tokio::net::unix::OwnedReadHalf,
    id: ProcessId,
    inc: Incarnation,
    replies: mpsc::UnboundedSender<IpcCommand>,
    events: mpsc::Sender<ChildEvent>,
) {
    let mut reader = BufReader::new(read);
    let mut line = Vec::new();
    let mut ready_sent = false;
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_IPC_LINE as u64)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line.last() != Some(&b'\n') {
            // Over the limit or cut off by EOF: not a message we can read.
            debug!(%id, "dropping an unterminated or oversized IPC message");
            return;
        }
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(&line) else {
            debug!(%id, "ignoring an IPC line that is not JSON");
            continue;
        };
        if message.as_str() == Some("ready") {
            if !ready_sent {
                ready_sent = true;
                if events.send(ChildEvent::Ready { id, inc }).await.is_err() {
                    return;
                }
            }
            continue;
        }
        // A handle sent up by the app: its fd was discarded by our plain
        // read; the app holds every later message until we acknowledge it.
        if message.get("cmd").and_then(|c| c.as_str()) == Some("NODE_HANDLE") {
            let _ = replies.send(IpcCommand::Send(
                serde_json::json!({"cmd": "NODE_HANDLE_ACK"}),
            ));
            continue;
        }
        if events
            .send(ChildEvent::Message { id, message })
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn ipc_writer(
    mut write: tokio::net::unix::OwnedWriteHalf,
    mut commands: mpsc::UnboundedReceiver<IpcCommand>,
) {
    while let Some(command) = commands.recv().await {
        match command {
            IpcCommand::Send(message) => {
                let mut bytes = serde_json::to_vec(&message).unwrap_or_default();
                bytes.push(b'\n');
                if write.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            IpcCommand::Disconnect => {
                // shutdown acts on the socket itself, so the child sees EOF
                // even if a copy of our end leaked somewhere (node-ipc.md §1.5).
                let fd = write.as_ref().as_raw_fd();
                let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
                return;
            }
        }
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
