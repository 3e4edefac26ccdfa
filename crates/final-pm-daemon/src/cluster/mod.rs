//! The daemon as a Node cluster primary (node-ipc.md §2, docs/cluster.md).
//!
//! A Node script in `cluster` mode starts as a cluster worker: the IPC
//! channel plus `NODE_UNIQUE_ID`. Its `server.listen()` asks the primary for
//! a socket (`queryServer`); the primary binds it, once per app and address,
//! and either hands out each accepted connection in turn (round-robin,
//! Node's default on Linux) or gives every worker the listening socket itself
//! (shared, `NODE_CLUSTER_SCHED_POLICY=none`). A socket closes when the last
//! worker using it is gone, so during a restart, where the new processes
//! listen before the old ones are stopped, it never closes: no connection is
//! refused.
//!
//! Layout: [`protocol`] reads and writes the messages, [`primary`] keeps the
//! books and decides (sans IO), and this module is the thin shell: one task
//! that owns every shared descriptor, feeds the primary what the workers'
//! readers and the accept loops report, and carries out its actions. Workers
//! are written to through their [`IpcSender`], which keeps Node's ordering
//! rule for handles.
//!
//! The task is started with the first cluster worker and ends when nothing
//! refers to it any more (no worker, no open socket).

mod primary;
mod protocol;
mod sockets;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use final_pm_protocol::ProcessId;
use serde_json::Value;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

pub(crate) use primary::{Policy, WorkerId};

use crate::child::{ChildEvent, Incarnation};
use crate::ipc::{ClusterLink, IpcSender};
use primary::{Action, Binder, Bound, ConnId, Fd, HandleId, Primary};
use protocol::BindSpec;

/// What the primary's task is told.
#[derive(Debug)]
enum Input {
    Join {
        worker: WorkerId,
        scope: String,
        policy: Policy,
        ipc: IpcSender,
        id: ProcessId,
        inc: Incarnation,
    },
    Message {
        worker: WorkerId,
        message: Value,
    },
    Disconnect {
        worker: WorkerId,
    },
    Gone {
        worker: WorkerId,
    },
    Accepted {
        handle: HandleId,
        fd: OwnedFd,
    },
}

/// The way to the primary's task; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct ClusterHandle {
    inputs: mpsc::UnboundedSender<Input>,
}

impl ClusterHandle {
    /// Starts the primary. Lifecycle problems (a worker's failed listen) are
    /// reported on `events`, to land in the app's log.
    pub(crate) fn start(events: mpsc::Sender<ChildEvent>) -> Self {
        let (inputs, rx) = mpsc::unbounded_channel();
        let shell = Shell {
            primary: Primary::default(),
            workers: HashMap::new(),
            handles: HashMap::new(),
            conns: HashMap::new(),
            inputs: inputs.downgrade(),
            events,
        };
        tokio::spawn(shell.run(rx));
        Self { inputs }
    }

    /// Announces a worker; must come before its first message.
    pub(crate) fn join(&self, link: &ClusterLink, ipc: IpcSender, id: ProcessId, inc: Incarnation) {
        let _ = self.inputs.send(Input::Join {
            worker: link.worker,
            scope: link.scope.clone(),
            policy: link.policy,
            ipc,
            id,
            inc,
        });
    }

    /// A `NODE_CLUSTER` message the worker sent.
    pub(crate) fn message(&self, worker: WorkerId, message: Value) {
        let _ = self.inputs.send(Input::Message { worker, message });
    }

    /// Asks the worker to disconnect gracefully (`stop-signal: disconnect`).
    pub(crate) fn disconnect(&self, worker: WorkerId) {
        let _ = self.inputs.send(Input::Disconnect { worker });
    }

    /// The worker's channel closed or its process ended.
    pub(crate) fn gone(&self, worker: WorkerId) {
        let _ = self.inputs.send(Input::Gone { worker });
    }
}

/// A socket the primary holds open.
#[derive(Debug)]
struct Open {
    kind: OpenKind,
    /// A Unix socket's path, removed when the socket closes (libuv does).
    path: Option<PathBuf>,
}

#[derive(Debug)]
enum OpenKind {
    /// Passed to every worker; ours is kept for workers yet to come.
    Shared(Arc<OwnedFd>),
    /// Owned by its accept loop.
    Accepting(JoinHandle<()>),
}

struct Shell {
    primary: Primary,
    workers: HashMap<WorkerId, (IpcSender, ProcessId, Incarnation)>,
    handles: HashMap<HandleId, Open>,
    /// Accepted connections until a worker took them.
    conns: HashMap<ConnId, Arc<OwnedFd>>,
    /// Weak, so the task ends once workers and accept loops are all gone.
    inputs: mpsc::WeakUnboundedSender<Input>,
    events: mpsc::Sender<ChildEvent>,
}

impl Shell {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Input>) {
        while let Some(input) = rx.recv().await {
            self.input(input);
            while let Some(action) = self.primary.poll_action() {
                self.act(action);
            }
        }
        debug!("cluster primary stopped");
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Join {
                worker,
                scope,
                policy,
                ipc,
                id,
                inc,
            } => {
                self.primary.join(worker, scope, policy);
                self.workers.insert(worker, (ipc, id, inc));
            }
            Input::Message { worker, message } => {
                let message = protocol::parse(&message);
                let mut binder = SocketBinder {
                    handles: &mut self.handles,
                    inputs: &self.inputs,
                };
                self.primary.message(worker, message, &mut binder);
            }
            Input::Disconnect { worker } => self.primary.disconnect(worker),
            Input::Gone { worker } => {
                self.primary.gone(worker);
                self.workers.remove(&worker);
            }
            Input::Accepted { handle, fd } => {
                if let Some(conn) = self.primary.accepted(handle) {
                    self.conns.insert(conn, Arc::new(fd));
                }
            }
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Send {
                worker,
                message,
                fd,
            } => {
                let Some((ipc, ..)) = self.workers.get(&worker) else {
                    return;
                };
                let fd = match fd {
                    None => return ipc.send(message),
                    Some(Fd::Handle(handle)) => match self.handles.get(&handle) {
                        Some(Open {
                            kind: OpenKind::Shared(fd),
                            ..
                        }) => fd.clone(),
                        _ => return warn!(?handle, "no descriptor for a shared handle"),
                    },
                    Some(Fd::Conn(conn)) => match self.conns.get(&conn) {
                        Some(fd) => fd.clone(),
                        None => return warn!(?conn, "no descriptor for a connection"),
                    },
                };
                ipc.send_handle(message, fd);
            }
            Action::CloseHandle(handle) => {
                if let Some(open) = self.handles.remove(&handle) {
                    if let OpenKind::Accepting(task) = &open.kind {
                        task.abort();
                    }
                    if let Some(path) = &open.path {
                        let _ = std::fs::remove_file(path);
                    }
                    debug!(?handle, "socket closed: no worker uses it");
                }
            }
            Action::CloseConn(conn) => {
                self.conns.remove(&conn);
            }
            Action::BindFailed {
                worker,
                what,
                errno,
            } => {
                let errno = nix::errno::Errno::from_raw(errno);
                let text = format!(
                    "cluster: cannot listen on {what}: {errno:?} ({})",
                    errno.desc()
                );
                warn!(?worker, "{text}");
                self.report(worker, text);
            }
            Action::Malformed { worker, why } => {
                warn!(?worker, "ignoring a malformed cluster message: {why}");
            }
        }
    }

    /// Puts a line in the worker's app log, without ever waiting on the
    /// supervisor (which may be waiting on us).
    fn report(&self, worker: WorkerId, text: String) {
        let Some(&(_, id, inc)) = self.workers.get(&worker) else {
            return;
        };
        let event = ChildEvent::Problem { id, inc, text };
        if let Err(mpsc::error::TrySendError::Full(event)) = self.events.try_send(event) {
            let events = self.events.clone();
            tokio::spawn(async move { events.send(event).await });
        }
    }
}

/// Binds for the primary and starts accept loops for round-robin sockets.
struct SocketBinder<'a> {
    handles: &'a mut HashMap<HandleId, Open>,
    inputs: &'a mpsc::WeakUnboundedSender<Input>,
}

impl Binder for SocketBinder<'_> {
    fn bind(
        &mut self,
        handle: HandleId,
        spec: &BindSpec,
        backlog: u32,
        accept: bool,
    ) -> Result<Bound, i32> {
        let (fd, bound) = sockets::bind_spec(spec, backlog)?;
        let path = match spec {
            BindSpec::Unix { path } => Some(path.clone()),
            _ => None,
        };
        let kind = if accept {
            let inputs = self.inputs.upgrade().ok_or_else(libc_eio)?;
            #[allow(unsafe_code)]
            // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays
            // open and the same until the AsyncFd is dropped.
            let listener =
                unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                    .map_err(|err| err.into_parts().1.raw_os_error().unwrap_or_else(libc_eio))?;
            OpenKind::Accepting(tokio::spawn(accept_loop(listener, handle, inputs)))
        } else {
            OpenKind::Shared(Arc::new(fd))
        };
        self.handles.insert(handle, Open { kind, path });
        Ok(bound)
    }
}

fn libc_eio() -> i32 {
    nix::errno::Errno::EIO as i32
}

/// Accepts connections on a round-robin socket and gives them to the
/// primary, non-blocking (the worker shares the open file). Sleeps in
/// epoll between connections; ends when aborted, which closes the socket.
async fn accept_loop(
    listener: AsyncFd<OwnedFd>,
    handle: HandleId,
    inputs: mpsc::UnboundedSender<Input>,
) {
    use nix::sys::socket::{SockFlag, accept4};
    use std::os::fd::FromRawFd;
    loop {
        let Ok(mut ready) = listener.readable().await else {
            return;
        };
        loop {
            let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
            match accept4(listener.get_ref().as_raw_fd(), flags) {
                Ok(raw) => {
                    #[allow(unsafe_code)]
                    // SAFETY: accept4 just returned this descriptor; nothing
                    // else owns it.
                    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                    if inputs.send(Input::Accepted { handle, fd }).is_err() {
                        return;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => {
                    ready.clear_ready();
                    break;
                }
                Err(
                    nix::errno::Errno::EMFILE
                    | nix::errno::Errno::ENFILE
                    | nix::errno::Errno::ENOBUFS
                    | nix::errno::Errno::ENOMEM,
                ) => {
                    // Out of descriptors: the connection waits in the
                    // backlog; try again later instead of spinning.
                    warn!(?handle, "accept: out of descriptors; retrying shortly");
                    drop(ready);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                Err(err @ (nix::errno::Errno::EBADF | nix::errno::Errno::EINVAL)) => {
                    warn!(?handle, %err, "accept failed; no more connections");
                    return;
                }
                // The client gave up before we accepted (ECONNABORTED...):
                // nothing to hand out.
                Err(err) => debug!(?handle, %err, "accept failed"),
            }
        }
    }
}
