//! The supervisor: the one task that owns the daemon's state.
//!
//! Connections send it `(Request, reply channel)` pairs; it answers each in
//! order. Nothing else touches the state, so there are no locks around it and
//! no races between a client's command and a child's exit.
//!
//! Shutdown order: a `kill_daemon` request or the `shutdown` token makes the
//! supervisor refuse new work, kill every process, and once none is left,
//! answer every pending `kill_daemon` and return. `run` then stops the accept
//! loop, gives connections a moment to flush their last replies, and removes
//! the socket and the lock.

use std::sync::Arc;

use final_pm_protocol::{ErrorCode, LogRecord, Request, Response, VERSION};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// How many published records a slow follower may fall behind before it is
/// told it missed some.
const FOLLOW_BACKLOG: usize = 4096;

/// A record as pushed to followers, with its position in the daemon's stream.
#[derive(Debug, Clone)]
pub(crate) struct Published {
    /// Increases by one per record; lets a connection skip records it already
    /// got in a `logs` reply.
    pub(crate) seq: u64,
    /// The record.
    pub(crate) record: Arc<LogRecord>,
}

/// The answer to one request.
#[derive(Debug)]
pub(crate) struct Reply {
    /// What goes on the wire.
    pub(crate) response: Response,
    /// For `logs`: the last sequence number included in the reply.
    pub(crate) seen: Option<u64>,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self {
            response,
            seen: None,
        }
    }
}

type Call = (Request, oneshot::Sender<Reply>);

/// A cheap, cloneable way for connections to reach the supervisor.
#[derive(Debug, Clone)]
pub(crate) struct SupervisorHandle {
    calls: mpsc::Sender<Call>,
    events: broadcast::Sender<Published>,
}

impl SupervisorHandle {
    /// Sends a request and waits for its reply.
    pub(crate) async fn call(&self, request: Request) -> Reply {
        let (tx, rx) = oneshot::channel();
        if self.calls.send((request, tx)).await.is_err() {
            return shutting_down().into();
        }
        rx.await.unwrap_or_else(|_| shutting_down().into())
    }

    /// A receiver of every record published from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.events.subscribe()
    }
}

fn shutting_down() -> Response {
    Response::error(ErrorCode::ShuttingDown, "the daemon is shutting down")
}

/// The state owner.
#[derive(Debug)]
pub(crate) struct Supervisor {
    calls: mpsc::Receiver<Call>,
    events: broadcast::Sender<Published>,
    seq: u64,
    /// `kill_daemon` callers waiting for the last process to go.
    killers: Vec<oneshot::Sender<Reply>>,
    stopping: bool,
}

impl Supervisor {
    /// Creates the supervisor and the handle connections use.
    pub(crate) fn new() -> (Self, SupervisorHandle) {
        let (calls_tx, calls) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(FOLLOW_BACKLOG);
        let handle = SupervisorHandle {
            calls: calls_tx,
            events: events.clone(),
        };
        (
            Self {
                calls,
                events,
                seq: 0,
                killers: Vec::new(),
                stopping: false,
            },
            handle,
        )
    }

    /// Runs until the daemon has been told to stop and nothing is left alive.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            if self.stopping && self.is_empty() {
                break;
            }
            tokio::select! {
                call = self.calls.recv() => match call {
                    Some((request, reply)) => self.handle(request, reply),
                    None => self.begin_stop(),
                },
                _ = shutdown.cancelled(), if !self.stopping => {
                    info!("shutdown requested by signal");
                    self.begin_stop();
                }
            }
        }
        info!("Daemon stopping.");
        for killer in self.killers.drain(..) {
            let _ = killer.send(Response::Ok {}.into());
        }
    }

    fn is_empty(&self) -> bool {
        true
    }

    fn begin_stop(&mut self) {
        self.stopping = true;
    }

    fn handle(&mut self, request: Request, reply: oneshot::Sender<Reply>) {
        debug!(request = request.type_name(), "request");
        if let Request::KillDaemon {} = request {
            self.begin_stop();
            self.killers.push(reply);
            return;
        }
        let response = self.execute(request);
        let _ = reply.send(response);
    }

    fn execute(&mut self, request: Request) -> Reply {
        match request {
            Request::Info {} => Response::Info {
                applications: Vec::new(),
                processes: Vec::new(),
                daemon_version: VERSION.to_owned(),
                pid: std::process::id(),
            }
            .into(),
            Request::Logs { .. } => Reply {
                response: Response::Logs {
                    records: Vec::new(),
                },
                seen: Some(self.seq),
            },
            Request::Follow { .. } | Request::Wait { .. } => Response::Ok {}.into(),
            Request::All { requests } => {
                let results = requests
                    .into_iter()
                    .map(|r| self.execute(r).response)
                    .collect();
                Response::Batch { results }.into()
            }
            _ if self.stopping => shutting_down().into(),
            other => Response::error(
                ErrorCode::Internal,
                format!(
                    "\"{}\" is not available in this build of the daemon",
                    other.type_name()
                ),
            )
            .into(),
        }
    }

    /// Pushes a record to followers.
    #[allow(dead_code)]
    fn publish(&mut self, record: LogRecord) {
        self.seq += 1;
        let _ = self.events.send(Published {
            seq: self.seq,
            record: Arc::new(record),
        });
    }
}
