//! Watching one managed process: its output, its IPC channel, its readiness
//! and its end, reported to the supervisor as [`ChildEvent`]s.
//!
//! Each process gets a handful of small tasks (its IPC channel's are in
//! [`crate::ipc`]). They never touch lifecycle
//! state; they only report. Events carry the process's [`Incarnation`], since
//! a crash-respawn reuses the process id and a late event of the dead
//! predecessor must not be mistaken for the new process's.
//!
//! Output is read in chunks and sent as one [`Batch`] of lines per read.
//! Before sending, a reader takes room in its app's log buffer from the
//! buffer's [`Budget`]: when a logger falls behind and the buffer is full,
//! the reader stops reading and the app's writes wait, as with any pipe into
//! a slow reader. Nothing is dropped here (when no logger can take records,
//! the supervisor gives the room back at once and drops old records itself).
//!
//! A logging process is also fed: records arrive as JSON lines on its stdin
//! (or on its IPC channel for Node loggers; for the builtin file-logger,
//! mostly headers of chunks in its feed ring), written by a feeder task that
//! reports every completed write as [`ChildEvent::Fed`].
//!
//! The end of a process is its leader's exit (`waitid` on its pidfd, see
//! [`crate::spawn::Child`]; never `waitpid(-1)`). Whatever is left of its
//! process group is then killed, so a grandchild cannot keep a port or the
//! pipes, and the pipes are drained for a short grace period before the exit
//! is reported.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use final_pm_protocol::{ProcessId, ReadyOn};
use nix::sys::signal::Signal as NixSignal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::cluster::{ClusterHandle, WorkerId};
use crate::core::{ProcessEnd, Signal};
use crate::ipc::{ClusterLink, IpcSender};
use crate::lines::{Batch, LineSplitter};
use crate::spawn::{Group, Spawned};

/// How long the pipes may stay open after the leader exited before the exit
/// is reported anyway (a grandchild in another group may hold them).
const DRAIN_GRACE: Duration = Duration::from_millis(500);
/// Bytes read from an output pipe at once (one batch of lines at most).
/// Only what a read fills is faulted in, so a quiet process costs a page.
const READ_CHUNK: usize = 256 * 1024;
/// Kernel buffer of a logger's stdin pipe: large writes, few wake-ups.
const FEED_PIPE_SIZE: i32 = 1024 * 1024;

/// Room in one app's log buffer, in bytes (see the module docs). Output
/// readers take room before they send lines; the supervisor gives it back
/// when the lines have reached a logger, or at once when no logger can take
/// them.
#[derive(Debug)]
pub(crate) struct Budget {
    room: Semaphore,
    /// The room when empty; a reader never asks for more than this.
    total: AtomicU32,
}

impl Budget {
    /// Budgets above this are capped (the semaphore counts in `u32`).
    const CAP: u64 = 1 << 30;

    /// A budget of `bytes` (at least 1).
    pub(crate) fn new(bytes: u64) -> Arc<Self> {
        let total = bytes.clamp(1, Self::CAP) as u32;
        Arc::new(Self {
            room: Semaphore::new(total as usize),
            total: AtomicU32::new(total),
        })
    }

    /// Gives back `bytes` of room.
    pub(crate) fn release(&self, bytes: u64) {
        if bytes > 0 {
            self.room.add_permits(bytes.min(Self::CAP) as usize);
        }
    }

    /// Raises the total (an app revision with a larger buffer).
    pub(crate) fn grow_to(&self, bytes: u64) {
        let bytes = bytes.clamp(1, Self::CAP) as u32;
        let old = self.total.fetch_max(bytes, Ordering::Relaxed);
        if bytes > old {
            self.room.add_permits((bytes - old) as usize);
        }
    }

    /// Stops all waiting: readers get no room and send anyway. Used when the
    /// daemon shuts down and no logger will take records any more.
    pub(crate) fn close(&self) {
        self.room.close();
    }

    /// Takes up to `bytes` of room (never more than the total), waiting for
    /// it; returns what was taken (0 once closed).
    async fn take(&self, bytes: u64) -> u64 {
        let want = bytes.min(u64::from(self.total.load(Ordering::Relaxed))) as u32;
        match self.room.acquire_many(want).await {
            Ok(permit) => {
                permit.forget();
                u64::from(want)
            }
            Err(_) => 0,
        }
    }
}

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
    /// It wrote lines.
    Output {
        id: ProcessId,
        inc: Incarnation,
        stream: Stream,
        batch: Batch,
        /// Room taken from the app's [`Budget`] for these lines.
        held: u64,
    },
    /// A logging process's feeder wrote `records` records to it.
    Fed {
        id: ProcessId,
        inc: Incarnation,
        records: u64,
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

/// What a logging process's stdin feeder does.
#[derive(Debug)]
enum FeedCommand {
    /// Encoded records (or a feed ring header), and how many.
    Records(Vec<u8>, u64),
    Close,
}

/// Where a logging process reads its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FeedMode {
    /// Not a logging process.
    None,
    /// JSON lines on stdin.
    Stdin,
    /// JSON messages on the Node IPC channel (the same bytes).
    Ipc,
}

/// The supervisor's handle on a watched process.
#[derive(Debug)]
pub(crate) struct ChildHandle {
    pub(crate) inc: Incarnation,
    pub(crate) pid: u32,
    /// Its process group, addressable only until the exit is reaped.
    group: Group,
    ipc: IpcSender,
    /// Set for a Node cluster worker.
    cluster: Option<(ClusterHandle, WorkerId)>,
    feed: Option<mpsc::UnboundedSender<FeedCommand>>,
    /// Its `/proc/<pid>/statm`, for `info` with usage.
    statm: Option<crate::procfs::StatmFile>,
}

impl ChildHandle {
    /// Sends `signal` to the process group. A group that is already gone,
    /// or whose leader was reaped, gets nothing: the exit event is on its
    /// way, and the pid may already belong to someone else.
    pub(crate) fn signal(&self, signal: Signal) {
        let sig = match signal {
            Signal::Int => NixSignal::SIGINT,
            Signal::Term => NixSignal::SIGTERM,
            Signal::Kill => NixSignal::SIGKILL,
        };
        if let Err(err) = self.group.signal(sig) {
            debug!(pid = self.pid, %err, "signal not delivered");
        }
    }

    /// CPU time and memory now; `None` once the process is gone.
    pub(crate) fn usage(&self) -> Option<final_pm_protocol::Usage> {
        let rss_bytes = self.statm.as_ref()?.rss_bytes()?;
        let cpu = self.group.cpu_time()?;
        Some(final_pm_protocol::Usage {
            cpu_ms: u64::try_from(cpu.as_millis()).unwrap_or(u64::MAX),
            rss_bytes,
        })
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

    /// Queues encoded records for a logging process; [`ChildEvent::Fed`]
    /// follows once they are written.
    pub(crate) fn feed(&self, bytes: Vec<u8>, records: u64) {
        match &self.feed {
            Some(feed) => {
                let _ = feed.send(FeedCommand::Records(bytes, records));
            }
            None => self.ipc.send_records(bytes, records),
        }
    }

    /// Closes a logging process's stdin after the records queued before, so
    /// it reads to the end and exits. Nothing for IPC loggers (their stop
    /// message follows the records on the same channel).
    pub(crate) fn close_feed(&self) {
        if let Some(feed) = &self.feed {
            let _ = feed.send(FeedCommand::Close);
        }
    }
}

/// How a watched process's output and records are handled.
#[derive(Debug)]
pub(crate) struct OutputSetup {
    /// Bytes kept per output line.
    pub(crate) max_line: usize,
    /// Room in the app's log buffer; `None` for output that is never held
    /// back (that of logging processes).
    pub(crate) budget: Option<Arc<Budget>>,
    /// Whether and how the process is fed records.
    pub(crate) feed: FeedMode,
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
    output: OutputSetup,
    notify: Option<tokio::net::UnixDatagram>,
    cluster: Option<ClusterLink>,
    events: mpsc::Sender<ChildEvent>,
) -> io::Result<ChildHandle> {
    let Spawned {
        mut child,
        pid,
        ipc,
        stdin,
    } = spawned;
    let group = child.group();
    let statm = crate::procfs::StatmFile::open(pid);
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

    let pumps: Vec<(JoinHandle<()>, Arc<AtomicBool>)> = [
        (child.stdout.take().map(Pipe::Out), Stream::Stdout),
        (child.stderr.take().map(Pipe::Err), Stream::Stderr),
    ]
    .into_iter()
    .filter_map(|(pipe, stream)| {
        let pipe = pipe?;
        let waiting = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(pump(
            pipe,
            Pump {
                stream,
                id,
                inc,
                max_line: output.max_line,
                budget: output.budget.clone(),
                waiting: Arc::clone(&waiting),
                events: events.clone(),
            },
        ));
        Some((task, waiting))
    })
    .collect();
    let mut helpers: Vec<JoinHandle<()>> = ipc_tasks.into();
    let mut feed = None;
    if output.feed == FeedMode::Stdin
        && let Some(stdin) = stdin
    {
        // A larger pipe means fewer, larger writes and wake-ups on both
        // sides; the kernel caps it (pipe-max-size), which is fine.
        let _ = nix::fcntl::fcntl(&stdin, nix::fcntl::FcntlArg::F_SETPIPE_SZ(FEED_PIPE_SIZE));
        let (feed_tx, feed_rx) = mpsc::unbounded_channel();
        helpers.push(tokio::spawn(feeder(
            stdin,
            feed_rx,
            id,
            inc,
            events.clone(),
        )));
        feed = Some(feed_tx);
    }
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
        // Also kills the leftovers of the group, before the leader's pid
        // is given back.
        let status = child.wait().await;
        for (mut pump, waiting) in pumps {
            // A reader waiting for room in the log buffer is not stuck: its
            // lines are on their way to a logger. Only a pipe that stays
            // silent (held open by a grandchild) is given up on.
            loop {
                match tokio::time::timeout(DRAIN_GRACE, &mut pump).await {
                    Ok(_) => break,
                    Err(_) if waiting.load(Ordering::Relaxed) => {}
                    Err(_) => {
                        pump.abort();
                        break;
                    }
                }
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
        group,
        ipc,
        cluster: gone,
        feed,
        statm,
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

/// A child's stdout or stderr.
enum Pipe {
    Out(tokio::process::ChildStdout),
    Err(tokio::process::ChildStderr),
}

impl Pipe {
    /// Appends what the pipe holds, at most `buffer`'s spare capacity.
    async fn read_buf(&mut self, buffer: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Self::Out(pipe) => pipe.read_buf(buffer).await,
            Self::Err(pipe) => pipe.read_buf(buffer).await,
        }
    }
}

/// What an output reader needs besides its pipe.
struct Pump {
    stream: Stream,
    id: ProcessId,
    inc: Incarnation,
    max_line: usize,
    budget: Option<Arc<Budget>>,
    /// Set while waiting for room in the log buffer.
    waiting: Arc<AtomicBool>,
    events: mpsc::Sender<ChildEvent>,
}

impl Pump {
    /// Takes room for the batch and sends it; false once nobody listens.
    async fn send(&self, batch: Batch) -> bool {
        let held = match &self.budget {
            Some(budget) => {
                self.waiting.store(true, Ordering::Relaxed);
                let held = budget.take(batch.cost()).await;
                self.waiting.store(false, Ordering::Relaxed);
                held
            }
            None => 0,
        };
        self.events
            .send(ChildEvent::Output {
                id: self.id,
                inc: self.inc,
                stream: self.stream,
                batch,
                held,
            })
            .await
            .is_ok()
    }
}

async fn pump(mut pipe: Pipe, pump: Pump) {
    let mut splitter = LineSplitter::new(pump.max_line);
    loop {
        // Read straight into the pending batch (see `lines`). Not zeroed:
        // the kernel fills it, and only the pages it touches are ever
        // faulted in. Zeroing the whole chunk for both streams of every
        // process cost about a tenth of the time to start 50 processes,
        // most of which never write more than a page at once
        // (bench/README.md).
        let buffer = splitter.buffer(READ_CHUNK);
        let from = buffer.len();
        match pipe.read_buf(buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        splitter.scan(from);
        if let Some(batch) = splitter.take_batch()
            && !pump.send(batch).await
        {
            return;
        }
    }
    if let Some(batch) = splitter.finish() {
        pump.send(batch).await;
    }
}

/// Writes records to a logging process's stdin, in order, and reports each
/// completed write. Ends when the process stops reading or is told to close.
/// (For the builtin file-logger, most writes are headers of chunks already
/// in its feed ring; see `logging`.)
async fn feeder(
    mut stdin: tokio::process::ChildStdin,
    mut commands: mpsc::UnboundedReceiver<FeedCommand>,
    id: ProcessId,
    inc: Incarnation,
    events: mpsc::Sender<ChildEvent>,
) {
    while let Some(command) = commands.recv().await {
        match command {
            FeedCommand::Records(bytes, records) => {
                if stdin.write_all(&bytes).await.is_err() {
                    return;
                }
                if events
                    .send(ChildEvent::Fed { id, inc, records })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            FeedCommand::Close => return,
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
