//! The Node-compatible IPC channel of a managed process (node-ipc.md §1,
//! §2.4): one JSON value per line in both directions, descriptors passed
//! with `SCM_RIGHTS` inside Node's `NODE_HANDLE` framing.
//!
//! Two tasks per process. The reader splits lines, reports `"ready"` and
//! user messages to the supervisor, acknowledges handles the app sends up,
//! and forwards cluster traffic to the cluster primary. The writer owns the
//! sending side and keeps Node's sender rule ([`Outbox`]): while a handle we
//! sent is unacknowledged, everything after it waits, so the worker sees
//! messages in order and each descriptor arrives with its own line.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use final_pm_protocol::ProcessId;
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::child::{ChildEvent, Incarnation};
use crate::cluster::{ClusterHandle, WorkerId};

/// The largest IPC message accepted from an app.
const MAX_IPC_LINE: usize = 64 * 1024 * 1024;
/// How often a handle the worker NACKs is sent again (Node's limit).
const MAX_HANDLE_RESENDS: u8 = 3;

/// What the writer is asked to do.
#[derive(Debug)]
enum IpcCommand {
    /// A message, in order.
    Send(Value),
    /// A message carrying a descriptor (the value is the whole
    /// `NODE_HANDLE` envelope).
    SendHandle(Value, Arc<OwnedFd>),
    /// Our acknowledgement of a handle the app sent: Node lets these pass
    /// its queue, or two sides waiting for each other's ACK would deadlock.
    Acknowledge(Value),
    /// The worker acknowledged our handle.
    HandleAck,
    /// The worker did not get the descriptor with our handle.
    HandleNack,
    /// Close the channel after everything queued before.
    Disconnect,
    /// Log records for a Node logger: JSON lines, already encoded; their
    /// writing is reported as [`ChildEvent::Fed`].
    Records(Vec<u8>, u64),
}

/// A cloneable way to write to one process's channel.
#[derive(Debug, Clone)]
pub(crate) struct IpcSender(mpsc::UnboundedSender<IpcCommand>);

impl IpcSender {
    /// Queues a message.
    pub(crate) fn send(&self, message: Value) {
        let _ = self.0.send(IpcCommand::Send(message));
    }

    /// Queues a `NODE_HANDLE` envelope and the descriptor it carries. The
    /// writer holds `fd` until the worker acknowledges it.
    pub(crate) fn send_handle(&self, envelope: Value, fd: Arc<OwnedFd>) {
        let _ = self.0.send(IpcCommand::SendHandle(envelope, fd));
    }

    /// Queues encoded log records (one JSON message per line) for a Node
    /// logger; [`ChildEvent::Fed`] follows once they are written.
    pub(crate) fn send_records(&self, bytes: Vec<u8>, records: u64) {
        let _ = self.0.send(IpcCommand::Records(bytes, records));
    }

    /// Closes the channel after the messages queued before: the app sees
    /// EOF, i.e. `'disconnect'`.
    pub(crate) fn disconnect(&self) {
        let _ = self.0.send(IpcCommand::Disconnect);
    }
}

/// What a cluster worker's reader needs to reach the primary.
#[derive(Debug, Clone)]
pub(crate) struct ClusterLink {
    pub(crate) cluster: ClusterHandle,
    pub(crate) worker: WorkerId,
    /// The sockets it may share: the app's name.
    pub(crate) scope: String,
    pub(crate) policy: crate::cluster::Policy,
}

/// Starts the reader and writer of a process's channel. A cluster worker is
/// announced to the primary before its first message can be read.
pub(crate) fn start(
    ipc: std::os::unix::net::UnixStream,
    id: ProcessId,
    inc: Incarnation,
    ready_on_listening: bool,
    cluster: Option<ClusterLink>,
    events: mpsc::Sender<ChildEvent>,
) -> io::Result<(IpcSender, [JoinHandle<()>; 2])> {
    ipc.set_nonblocking(true)?;
    let ipc = tokio::net::UnixStream::from_std(ipc)?;
    let (read, write) = ipc.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = IpcSender(tx);
    if let Some(link) = &cluster {
        link.cluster.join(link, sender.clone(), id, inc);
    }
    let fed = Fed {
        events: events.clone(),
        id,
        inc,
    };
    let reader = Reader {
        id,
        inc,
        ready_on_listening,
        cluster,
        writer: sender.clone(),
        events,
        ready_sent: false,
    };
    Ok((
        sender,
        [
            tokio::spawn(reader.run(read)),
            tokio::spawn(writer(write, rx, fed)),
        ],
    ))
}

struct Reader {
    id: ProcessId,
    inc: Incarnation,
    ready_on_listening: bool,
    cluster: Option<ClusterLink>,
    writer: IpcSender,
    events: mpsc::Sender<ChildEvent>,
    ready_sent: bool,
}

impl Reader {
    async fn run(mut self, read: tokio::net::unix::OwnedReadHalf) {
        let mut reader = BufReader::new(read);
        let mut line = Vec::new();
        loop {
            line.clear();
            match (&mut reader)
                .take(MAX_IPC_LINE as u64)
                .read_until(b'\n', &mut line)
                .await
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if line.last() != Some(&b'\n') {
                // Over the limit or cut off by EOF: not a message we can read.
                debug!(id = %self.id, "dropping an unterminated or oversized IPC message");
                break;
            }
            let Ok(message) = serde_json::from_slice::<Value>(&line) else {
                debug!(id = %self.id, "ignoring an IPC line that is not JSON");
                continue;
            };
            if !self.dispatch(message).await {
                break;
            }
        }
        // EOF: the worker disconnected (or died); it leaves every socket.
        if let Some(link) = &self.cluster {
            link.cluster.gone(link.worker);
        }
    }

    /// Handles one message; false when the supervisor is gone.
    async fn dispatch(&mut self, message: Value) -> bool {
        if message.as_str() == Some("ready") {
            return self.ready().await;
        }
        match message.get("cmd").and_then(Value::as_str) {
            // A handle sent up by the app: the kernel closed its descriptor
            // when our plain read skipped it; the app holds every later
            // message until we acknowledge (node-ipc.md §1.6).
            Some("NODE_HANDLE") => {
                let _ = self.writer.0.send(IpcCommand::Acknowledge(
                    serde_json::json!({"cmd": "NODE_HANDLE_ACK"}),
                ));
                true
            }
            Some("NODE_HANDLE_ACK") => {
                let _ = self.writer.0.send(IpcCommand::HandleAck);
                true
            }
            Some("NODE_HANDLE_NACK") => {
                let _ = self.writer.0.send(IpcCommand::HandleNack);
                true
            }
            Some("NODE_CLUSTER") => {
                let listening = message.get("act").and_then(Value::as_str) == Some("listening");
                if let Some(link) = &self.cluster {
                    link.cluster.message(link.worker, message);
                }
                if listening && self.ready_on_listening && self.cluster.is_some() {
                    return self.ready().await;
                }
                true
            }
            // Node keeps its other internal messages to itself as well.
            Some(cmd) if cmd.len() > 5 && cmd.starts_with("NODE_") => true,
            _ => self
                .events
                .send(ChildEvent::Message {
                    id: self.id,
                    message,
                })
                .await
                .is_ok(),
        }
    }

    async fn ready(&mut self) -> bool {
        if self.ready_sent {
            return true;
        }
        self.ready_sent = true;
        self.events
            .send(ChildEvent::Ready {
                id: self.id,
                inc: self.inc,
            })
            .await
            .is_ok()
    }
}

/// Where the writer reports written log records.
struct Fed {
    events: mpsc::Sender<ChildEvent>,
    id: ProcessId,
    inc: Incarnation,
}

async fn writer(
    mut write: tokio::net::unix::OwnedWriteHalf,
    mut commands: mpsc::UnboundedReceiver<IpcCommand>,
    fed: Fed,
) {
    let mut outbox = Outbox::default();
    loop {
        while let Some(out) = outbox.next() {
            match out {
                Out::Message { bytes, fd } => {
                    if write_message(&mut write, &bytes, fd.as_deref())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Out::Fed(records) => {
                    let event = ChildEvent::Fed {
                        id: fed.id,
                        inc: fed.inc,
                        records,
                    };
                    if fed.events.send(event).await.is_err() {
                        return;
                    }
                }
                Out::Close => {
                    // shutdown acts on the socket itself, so the child sees
                    // EOF even if a copy of our end leaked (node-ipc.md §1.5).
                    let fd = write.as_ref().as_raw_fd();
                    let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
                    return;
                }
            }
        }
        let Some(command) = commands.recv().await else {
            return;
        };
        match command {
            IpcCommand::Send(message) => outbox.push(Out::message(&message, None)),
            IpcCommand::SendHandle(message, fd) => outbox.push(Out::message(&message, Some(fd))),
            IpcCommand::Acknowledge(message) => outbox.push_urgent(Out::message(&message, None)),
            IpcCommand::HandleAck => outbox.ack(),
            IpcCommand::HandleNack => outbox.nack(),
            IpcCommand::Disconnect => outbox.push(Out::Close),
            IpcCommand::Records(bytes, records) => {
                outbox.push(Out::Message { bytes, fd: None });
                outbox.push(Out::Fed(records));
            }
        }
    }
}

/// Writes one line; a descriptor goes with its first byte, in one `sendmsg`
/// (node-ipc.md §2.4), the rest of a partial write follows plainly.
async fn write_message(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    bytes: &[u8],
    fd: Option<&OwnedFd>,
) -> io::Result<()> {
    let mut sent = 0;
    if let Some(fd) = fd {
        let stream = write.as_ref();
        let fds = [fd.as_raw_fd()];
        sent = stream
            .async_io(Interest::WRITABLE, || {
                let iov = [IoSlice::new(bytes)];
                let rights = [ControlMessage::ScmRights(&fds)];
                sendmsg::<()>(
                    stream.as_raw_fd(),
                    &iov,
                    &rights,
                    MsgFlags::MSG_NOSIGNAL,
                    None,
                )
                .map_err(io::Error::from)
            })
            .await?;
    }
    write.write_all(&bytes[sent..]).await
}

/// One item for the writer.
#[derive(Debug, Clone)]
enum Out<F> {
    Message {
        bytes: Vec<u8>,
        fd: Option<F>,
    },
    /// Report this many log records written (they were the message before).
    Fed(u64),
    Close,
}

impl<F> Out<F> {
    fn message(message: &Value, fd: Option<F>) -> Self {
        let mut bytes = serde_json::to_vec(message).unwrap_or_default();
        bytes.push(b'\n');
        Self::Message { bytes, fd }
    }

    fn has_fd(&self) -> bool {
        matches!(self, Self::Message { fd: Some(_), .. })
    }
}

/// Node's sender rule, sans IO: after a message with a descriptor, nothing
/// else goes out until the worker ACKs it; a NACK sends it again (at most
/// [`MAX_HANDLE_RESENDS`] times, then it is given up). Acknowledgements of
/// the app's own handles are urgent and never wait.
#[derive(Debug)]
struct Outbox<F> {
    urgent: VecDeque<Out<F>>,
    queue: VecDeque<Out<F>>,
    unacked: Option<(Out<F>, u8)>,
    resend: bool,
}

impl<F> Default for Outbox<F> {
    fn default() -> Self {
        Self {
            urgent: VecDeque::new(),
            queue: VecDeque::new(),
            unacked: None,
            resend: false,
        }
    }
}

impl<F: Clone> Outbox<F> {
    fn push(&mut self, out: Out<F>) {
        self.queue.push_back(out);
    }

    fn push_urgent(&mut self, out: Out<F>) {
        self.urgent.push_back(out);
    }

    /// The next item that may be written now.
    fn next(&mut self) -> Option<Out<F>> {
        if let Some(out) = self.urgent.pop_front() {
            return Some(out);
        }
        if let Some((out, _)) = &self.unacked {
            if self.resend {
                self.resend = false;
                return Some(out.clone());
            }
            return None;
        }
        let out = self.queue.pop_front()?;
        if out.has_fd() {
            self.unacked = Some((out.clone(), 0));
        }
        Some(out)
    }

    fn ack(&mut self) {
        self.unacked = None;
        self.resend = false;
    }

    fn nack(&mut self) {
        match &mut self.unacked {
            Some((_, resends)) if *resends < MAX_HANDLE_RESENDS => {
                *resends += 1;
                self.resend = true;
            }
            Some(_) => {
                debug!("a handle was refused too often; giving it up");
                self.ack();
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(text: &str, fd: Option<u8>) -> Out<u8> {
        Out::message(&Value::from(text), fd)
    }

    fn text(out: Option<Out<u8>>) -> Option<(String, Option<u8>)> {
        match out? {
            Out::Message { bytes, fd } => Some((String::from_utf8(bytes).unwrap(), fd)),
            Out::Fed(n) => Some((format!("fed {n}"), None)),
            Out::Close => Some(("close".into(), None)),
        }
    }

    #[test]
    fn everything_after_a_handle_waits_for_its_ack() {
        let mut outbox = Outbox::default();
        outbox.push(msg("a", None));
        outbox.push(msg("h", Some(7)));
        outbox.push(msg("b", None));
        outbox.push(Out::Close);
        assert_eq!(text(outbox.next()), Some(("\"a\"\n".into(), None)));
        assert_eq!(text(outbox.next()), Some(("\"h\"\n".into(), Some(7))));
        assert_eq!(text(outbox.next()), None, "held behind the handle");
        // Our ACK of the app's handle is not held.
        outbox.push_urgent(msg("ack", None));
        assert_eq!(text(outbox.next()), Some(("\"ack\"\n".into(), None)));
        outbox.ack();
        assert_eq!(text(outbox.next()), Some(("\"b\"\n".into(), None)));
        assert_eq!(text(outbox.next()), Some(("close".into(), None)));
        assert_eq!(text(outbox.next()), None);
    }

    #[test]
    fn a_nacked_handle_is_sent_again_three_times_then_given_up() {
        let mut outbox = Outbox::default();
        outbox.push(msg("h", Some(1)));
        outbox.push(msg("b", None));
        assert_eq!(text(outbox.next()), Some(("\"h\"\n".into(), Some(1))));
        for _ in 0..3 {
            outbox.nack();
            assert_eq!(text(outbox.next()), Some(("\"h\"\n".into(), Some(1))));
            assert_eq!(text(outbox.next()), None);
        }
        outbox.nack();
        assert_eq!(text(outbox.next()), Some(("\"b\"\n".into(), None)));
        // A stray NACK or ACK changes nothing.
        outbox.nack();
        outbox.ack();
        assert_eq!(text(outbox.next()), None);
    }
}
