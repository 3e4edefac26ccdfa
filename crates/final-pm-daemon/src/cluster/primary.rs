//! The cluster primary's bookkeeping, sans IO: which worker uses which
//! listening socket, which connections wait for a worker, who is owed an
//! answer. It takes worker messages and socket events and returns
//! [`Action`]s; the shell (`cluster::run`) owns the descriptors and the
//! channels and does what the actions say.
//!
//! Descriptors appear here only as [`HandleId`]s (a listening socket) and
//! [`ConnId`]s (an accepted connection, round-robin). Creating a socket is
//! the one synchronous question the primary asks the outside world, through
//! [`Binder`], because the answer decides the reply to the worker.
//!
//! Handles are scoped by app: two apps that listen on the same port do not
//! share connections (a Node primary would mix them). Within an app, the old
//! and the new processes of a restart share one socket, which stays open as
//! long as any of them uses it, or may still ask for it (a worker that has
//! not listened yet): that is what makes restarts lossless.

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde_json::Value;

use super::protocol::{self, BindSpec, Query, WorkerMessage};

/// A worker: one run of a process (its incarnation), also its
/// `NODE_UNIQUE_ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct WorkerId(pub(crate) u64);

/// A listening socket the primary owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct HandleId(pub(crate) u64);

/// An accepted connection waiting to be handed to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnId(pub(crate) u64);

/// How connections reach workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// The primary accepts and hands each connection to the next free worker
    /// (Node's default on Linux).
    RoundRobin,
    /// Every worker gets the listening socket and accepts by itself; the
    /// kernel picks (`NODE_CLUSTER_SCHED_POLICY=none`).
    Shared,
}

impl Policy {
    /// The policy an app asks for with `NODE_CLUSTER_SCHED_POLICY` in its
    /// environment (read by a Node primary from its own environment).
    pub(crate) fn from_env(value: Option<&str>) -> Self {
        match value {
            Some("none") => Self::Shared,
            _ => Self::RoundRobin,
        }
    }
}

/// A descriptor to send along with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fd {
    /// A listening (or UDP) socket, shared policy.
    Handle(HandleId),
    /// An accepted connection, round-robin.
    Conn(ConnId),
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Write `message` (one JSON line) to the worker, with `fd` in the same
    /// `sendmsg` when given.
    Send {
        worker: WorkerId,
        message: Value,
        fd: Option<Fd>,
    },
    /// No worker uses the socket any more: close it (and stop accepting).
    CloseHandle(HandleId),
    /// The primary's copy of a connection is no longer needed.
    CloseConn(ConnId),
    /// A worker's listen failed; say so in the app's log.
    BindFailed {
        worker: WorkerId,
        what: String,
        errno: i32,
    },
    /// A worker sent something the primary does not understand.
    Malformed { worker: WorkerId, why: String },
}

/// A bound socket, as the primary needs to know it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bound {
    /// `getsockname()` in Node's form (IP sockets only), for round-robin
    /// replies.
    pub(crate) sockname: Option<Value>,
}

/// Creates sockets for the primary. A failure is a positive errno.
pub(crate) trait Binder {
    /// Binds `spec` (and listens, for stream sockets) as `handle`; with
    /// `accept`, the shell accepts connections and reports them with
    /// [`Primary::accepted`].
    fn bind(
        &mut self,
        handle: HandleId,
        spec: &BindSpec,
        backlog: u32,
        accept: bool,
    ) -> Result<Bound, i32>;
}

#[derive(Debug)]
struct Worker {
    scope: String,
    policy: Policy,
    /// Set once the worker disconnects: Node ignores its queries from then.
    leaving: bool,
    /// Set with its first `queryServer`. A worker that has not listened yet
    /// may be about to: its app's sockets stay open for it.
    listened: bool,
}

#[derive(Debug)]
struct Handle {
    scope: String,
    key: String,
    data: Value,
    members: BTreeSet<WorkerId>,
    kind: HandleKind,
}

#[derive(Debug)]
enum HandleKind {
    Shared {
        wire_type: &'static str,
    },
    RoundRobin {
        sockname: Option<Value>,
        /// Members with no connection in flight, in hand-out order.
        free: VecDeque<WorkerId>,
        /// Accepted connections no worker took yet.
        pending: VecDeque<ConnId>,
    },
}

/// A connection sent to a worker, until it answers.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    conn: ConnId,
    handle: HandleId,
    worker: WorkerId,
}

/// The primary's state. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct Primary {
    /// One counter for every message to every worker, as in Node.
    seq: u64,
    workers: HashMap<WorkerId, Worker>,
    handles: HashMap<HandleId, Handle>,
    by_key: HashMap<(String, String), HandleId>,
    /// `newconn`s by their `seq`.
    in_flight: HashMap<u64, InFlight>,
    next_handle: u64,
    next_conn: u64,
    actions: VecDeque<Action>,
}

impl Primary {
    /// The next thing to do, in order.
    pub(crate) fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// A worker process was started. `scope` groups the workers that share
    /// sockets (the app's name).
    pub(crate) fn join(&mut self, worker: WorkerId, scope: String, policy: Policy) {
        self.workers.insert(
            worker,
            Worker {
                scope,
                policy,
                leaving: false,
                listened: false,
            },
        );
    }

    /// A `NODE_CLUSTER` message from `worker`.
    pub(crate) fn message(
        &mut self,
        worker: WorkerId,
        message: WorkerMessage,
        binder: &mut impl Binder,
    ) {
        if !self.workers.contains_key(&worker) {
            return;
        }
        match message {
            WorkerMessage::Online | WorkerMessage::Listening | WorkerMessage::Ignored => {}
            WorkerMessage::QueryServer(query) => self.query_server(worker, query, binder),
            WorkerMessage::Close { key } => {
                let scope = self.workers[&worker].scope.clone();
                if let Some(&handle) = self.by_key.get(&(scope, key)) {
                    self.remove_member(handle, worker);
                }
            }
            WorkerMessage::ExitedAfterDisconnect { seq } => {
                if let Some(w) = self.workers.get_mut(&worker) {
                    w.leaving = true;
                }
                let message = protocol::acknowledge(self.next_seq(), seq);
                self.send(worker, message, None);
                self.close_unused(&self.workers[&worker].scope.clone());
            }
            WorkerMessage::Accepted { ack, accepted } => self.accepted_reply(worker, ack, accepted),
            WorkerMessage::Malformed { seq, why } => {
                if let Some(seq) = seq {
                    // The worker waits for this answer; an error makes its
                    // listen fail instead of hanging forever.
                    let message =
                        protocol::query_failed(self.next_seq(), seq, "", protocol::EINVAL);
                    self.send(worker, message, None);
                }
                self.actions.push_back(Action::Malformed { worker, why });
            }
        }
    }

    /// The primary disconnects `worker` gracefully (`stop-signal:
    /// disconnect`): the worker closes its servers and then the channel.
    /// Like Node, the worker gets no new connections from here on.
    pub(crate) fn disconnect(&mut self, worker: WorkerId) {
        let Some(w) = self.workers.get_mut(&worker) else {
            return;
        };
        w.leaving = true;
        let scope = w.scope.clone();
        let message = protocol::disconnect(self.next_seq());
        self.send(worker, message, None);
        self.remove_from_all(worker);
        self.close_unused(&scope);
    }

    /// The worker's channel closed or its process ended: it is no member of
    /// anything any more, and connections it never answered for go to the
    /// others.
    pub(crate) fn gone(&mut self, worker: WorkerId) {
        let Some(w) = self.workers.remove(&worker) else {
            return;
        };
        self.remove_from_all(worker);
        self.close_unused(&w.scope);
        let orphans: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, f)| f.worker == worker)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in orphans {
            if let Some(flight) = self.in_flight.remove(&seq) {
                self.distribute(flight.handle, flight.conn);
            }
        }
    }

    /// A round-robin socket accepted a connection. `None` when the handle
    /// is already closed: the shell then just drops the connection.
    pub(crate) fn accepted(&mut self, handle: HandleId) -> Option<ConnId> {
        if !self.handles.contains_key(&handle) {
            return None;
        }
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        self.distribute(handle, conn);
        Some(conn)
    }

    /// How many sockets are open.
    #[cfg(test)]
    fn open_handles(&self) -> usize {
        self.handles.len()
    }

    // ---- internals ----------------------------------------------------------

    fn next_seq(&mut self) -> u64 {
        let seq = self.seq;
        self.seq += 1;
        seq
    }

    fn send(&mut self, worker: WorkerId, message: Value, fd: Option<Fd>) {
        self.actions.push_back(Action::Send {
            worker,
            message,
            fd,
        });
    }

    fn query_server(&mut self, worker: WorkerId, query: Query, binder: &mut impl Binder) {
        let (scope, leaving) = {
            let w = &self.workers[&worker];
            (w.scope.clone(), w.leaving)
        };
        if leaving {
            // Node ignores queries from a worker that is disconnecting.
            return;
        }
        self.answer_query(worker, query, binder);
        if let Some(w) = self.workers.get_mut(&worker) {
            w.listened = true;
        }
        self.close_unused(&scope);
    }

    fn answer_query(&mut self, worker: WorkerId, query: Query, binder: &mut impl Binder) {
        let (scope, policy) = {
            let w = &self.workers[&worker];
            (w.scope.clone(), w.policy)
        };
        let lookup = (scope.clone(), query.key.clone());
        let handle = match self.by_key.get(&lookup) {
            Some(&handle) => handle,
            None => {
                if query.bind == BindSpec::Fd {
                    return self.query_refused(worker, &query, protocol::EOPNOTSUPP);
                }
                self.next_handle += 1;
                let handle = HandleId(self.next_handle);
                let round_robin = policy == Policy::RoundRobin && query.bind.is_stream();
                match binder.bind(handle, &query.bind, query.backlog, round_robin) {
                    Ok(bound) => {
                        let kind = if round_robin {
                            HandleKind::RoundRobin {
                                sockname: bound.sockname,
                                free: VecDeque::new(),
                                pending: VecDeque::new(),
                            }
                        } else {
                            HandleKind::Shared {
                                wire_type: query.bind.wire_type(),
                            }
                        };
                        self.handles.insert(
                            handle,
                            Handle {
                                scope,
                                key: query.key.clone(),
                                data: Value::Null,
                                members: BTreeSet::new(),
                                kind,
                            },
                        );
                        self.by_key.insert(lookup, handle);
                        handle
                    }
                    // Nothing is kept: the next worker tries again.
                    Err(errno) => return self.query_refused(worker, &query, errno),
                }
            }
        };
        let seq = self.next_seq();
        let h = self
            .handles
            .get_mut(&handle)
            .expect("just found or inserted");
        if h.data.is_null() {
            h.data = query.data.clone();
        }
        h.members.insert(worker);
        match &h.kind {
            HandleKind::Shared { wire_type } => {
                let message = protocol::handle_envelope(
                    wire_type,
                    protocol::query_shared(seq, query.seq, &query.key, &h.data),
                );
                self.send(worker, message, Some(Fd::Handle(handle)));
            }
            HandleKind::RoundRobin { sockname, .. } => {
                let message = protocol::query_round_robin(
                    seq,
                    query.seq,
                    &query.key,
                    &h.data,
                    sockname.as_ref(),
                );
                self.send(worker, message, None);
                // After the reply, so the worker knows the key when the
                // first connection arrives.
                self.handoff(handle, worker);
            }
        }
    }

    fn query_refused(&mut self, worker: WorkerId, query: &Query, errno: i32) {
        let message = protocol::query_failed(self.next_seq(), query.seq, &query.key, errno);
        self.send(worker, message, None);
        self.actions.push_back(Action::BindFailed {
            worker,
            what: query.bind.describe(),
            errno,
        });
    }

    fn accepted_reply(&mut self, worker: WorkerId, ack: u64, accepted: bool) {
        let Some(flight) = self.in_flight.get(&ack).copied() else {
            return;
        };
        if flight.worker != worker {
            // Not this worker's to answer; ignore rather than trust it.
            return;
        }
        self.in_flight.remove(&ack);
        if accepted {
            // The worker has its own copy now.
            self.actions.push_back(Action::CloseConn(flight.conn));
        } else {
            // It is closing; another worker gets the connection.
            self.distribute(flight.handle, flight.conn);
        }
        self.handoff(flight.handle, worker);
    }

    /// Queues `conn` on `handle` and wakes a free worker, if any.
    fn distribute(&mut self, handle: HandleId, conn: ConnId) {
        let Some(Handle {
            kind: HandleKind::RoundRobin { free, pending, .. },
            ..
        }) = self.handles.get_mut(&handle)
        else {
            // The socket closed meanwhile: nobody will take it.
            self.actions.push_back(Action::CloseConn(conn));
            return;
        };
        pending.push_back(conn);
        if let Some(worker) = free.pop_front() {
            self.handoff(handle, worker);
        }
    }

    /// Gives `worker` the next pending connection, or marks it free.
    fn handoff(&mut self, handle: HandleId, worker: WorkerId) {
        let seq = self.seq;
        let Some(Handle {
            key,
            members,
            kind: HandleKind::RoundRobin { free, pending, .. },
            ..
        }) = self.handles.get_mut(&handle)
        else {
            return;
        };
        if !members.contains(&worker) {
            return;
        }
        let Some(conn) = pending.pop_front() else {
            if !free.contains(&worker) {
                free.push_back(worker);
            }
            return;
        };
        let message = protocol::new_connection(seq, key);
        self.seq += 1;
        self.in_flight.insert(
            seq,
            InFlight {
                conn,
                handle,
                worker,
            },
        );
        self.send(
            worker,
            protocol::handle_envelope("net.Native", message),
            Some(Fd::Conn(conn)),
        );
    }

    fn remove_from_all(&mut self, worker: WorkerId) {
        let handles: Vec<HandleId> = self
            .handles
            .iter()
            .filter(|(_, h)| h.members.contains(&worker))
            .map(|(id, _)| *id)
            .collect();
        for handle in handles {
            self.remove_member(handle, worker);
        }
    }

    /// Takes `worker` out of `handle`; the last one out closes it, unless
    /// a worker of the app is still starting.
    fn remove_member(&mut self, handle: HandleId, worker: WorkerId) {
        let Some(h) = self.handles.get_mut(&handle) else {
            return;
        };
        h.members.remove(&worker);
        if let HandleKind::RoundRobin { free, .. } = &mut h.kind {
            free.retain(|w| *w != worker);
        }
        let scope = h.scope.clone();
        self.close_unused(&scope);
    }

    /// Closes the app's sockets that no worker uses, unless one of its
    /// workers has not listened yet: a restart of an app that is ready
    /// before it listens (`ready-on: instant` or `message`) may stop the
    /// old process first, and the new one will ask for the same socket.
    /// Connections meanwhile wait in the backlog or in `pending`.
    fn close_unused(&mut self, scope: &str) {
        let starting = self
            .workers
            .values()
            .any(|w| w.scope == scope && !w.leaving && !w.listened);
        if starting {
            return;
        }
        let unused: Vec<HandleId> = self
            .handles
            .iter()
            .filter(|(_, h)| h.scope == scope && h.members.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for handle in unused {
            self.close(handle);
        }
    }

    /// Closes a socket and every connection still waiting there.
    fn close(&mut self, handle: HandleId) {
        let Some(h) = self.handles.remove(&handle) else {
            return;
        };
        self.by_key.remove(&(h.scope, h.key));
        if let HandleKind::RoundRobin { pending, .. } = h.kind {
            self.actions
                .extend(pending.into_iter().map(Action::CloseConn));
        }
        self.actions.push_back(Action::CloseHandle(handle));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Binds everything, except ports listed in `taken`.
    #[derive(Default)]
    struct FakeBinder {
        bound: Vec<(HandleId, BindSpec, bool)>,
        taken: Vec<u16>,
    }

    impl Binder for FakeBinder {
        fn bind(
            &mut self,
            handle: HandleId,
            spec: &BindSpec,
            _backlog: u32,
            accept: bool,
        ) -> Result<Bound, i32> {
            if let BindSpec::Tcp { port, .. } = spec
                && self.taken.contains(port)
            {
                return Err(98);
            }
            self.bound.push((handle, spec.clone(), accept));
            Ok(Bound {
                sockname: Some(json!({"address": "::", "family": "IPv6", "port": 3000})),
            })
        }
    }

    struct Sim {
        primary: Primary,
        binder: FakeBinder,
    }

    impl Sim {
        fn new() -> Self {
            Self {
                primary: Primary::default(),
                binder: FakeBinder::default(),
            }
        }

        fn worker(&mut self, id: u64, policy: Policy) -> WorkerId {
            let w = WorkerId(id);
            self.primary.join(w, "app".into(), policy);
            w
        }

        fn msg(&mut self, w: WorkerId, text: &str) -> Vec<Action> {
            let message = protocol::parse(&serde_json::from_str(text).unwrap());
            self.primary.message(w, message, &mut self.binder);
            self.drain()
        }

        fn listen(&mut self, w: WorkerId, port: u16, seq: u64) -> Vec<Action> {
            self.msg(
                w,
                &format!(
                    r#"{{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,
                        "port":{port},"addressType":4,"backlog":511,"seq":{seq}}}"#
                ),
            )
        }

        fn drain(&mut self) -> Vec<Action> {
            std::iter::from_fn(|| self.primary.poll_action()).collect()
        }
    }

    fn sends(actions: &[Action]) -> Vec<(WorkerId, Value, Option<Fd>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send {
                    worker,
                    message,
                    fd,
                } => Some((*worker, message.clone(), *fd)),
                _ => None,
            })
            .collect()
    }

    /// The `seq` of a `newconn` sent to a worker.
    fn newconn_seq(message: &Value) -> u64 {
        assert_eq!(message["msg"]["act"], "newconn");
        message["msg"]["seq"].as_u64().unwrap()
    }

    #[test]
    fn shared_policy_binds_once_and_passes_the_socket_to_every_worker() {
        let mut sim = Sim::new();
        let a = sim.worker(1, Policy::Shared);
        let b = sim.worker(2, Policy::Shared);
        let first = sends(&sim.listen(a, 3000, 1));
        let second = sends(&sim.listen(b, 3000, 1));
        assert_eq!(sim.binder.bound.len(), 1, "one socket for both");
        let (_, message, fd) = &first[0];
        assert_eq!(*fd, Some(Fd::Handle(HandleId(1))));
        assert_eq!(message["cmd"], "NODE_HANDLE");
        assert_eq!(message["type"], "net.Native");
        assert_eq!(message["msg"]["errno"], 0);
        assert_eq!(message["msg"]["ack"], 1);
        assert_eq!(message["msg"]["key"], "null:3000:4:undefined:0");
        assert_eq!(second[0].2, Some(Fd::Handle(HandleId(1))));
        // Each message carries a fresh seq from one counter.
        assert_ne!(message["msg"]["seq"], second[0].1["msg"]["seq"]);
    }

    #[test]
    fn round_robin_hands_connections_to_free_workers_in_turn() {
        let mut sim = Sim::new();
        let a = sim.worker(1, Policy::RoundRobin);
        let b = sim.worker(2, Policy::RoundRobin);
        let reply = sends(&sim.listen(a, 3000, 1));
        assert_eq!(
            reply[0].1["errno"],
            Value::Null,
            "rr reply: errno null, no fd"
        );
        assert_eq!(reply[0].1["sockname"]["port"], 3000);
        assert_eq!(reply[0].2, None);
        assert!(sim.binder.bound[0].2, "the primary accepts");
        sim.listen(b, 3000, 1);

        let mut order = Vec::new();
        let mut seqs = HashMap::new();
        for _ in 0..4 {
            let conn = sim.primary.accepted(HandleId(1)).unwrap();
            for (w, message, fd) in sends(&sim.drain()) {
                assert_eq!(fd, Some(Fd::Conn(conn)));
                seqs.insert(w, newconn_seq(&message));
                order.push(w);
            }
        }
        // Two went out at once (one per worker); two wait for answers.
        assert_eq!(order, [a, b]);
        let actions = sim.msg(
            a,
            &format!(
                r#"{{"cmd":"NODE_CLUSTER","ack":{},"accepted":true,"seq":5}}"#,
                seqs[&a]
            ),
        );
        assert_eq!(actions[0], Action::CloseConn(ConnId(1)));
        let next = sends(&actions);
        assert_eq!(next.len(), 1);
        assert_eq!((next[0].0, next[0].2), (a, Some(Fd::Conn(ConnId(3)))));
    }

    #[test]
    fn a_refused_connection_goes_to_another_worker() {
        let mut sim = Sim::new();
        let a = sim.worker(1, Policy::RoundRobin);
        let b = sim.worker(2, Policy::RoundRobin);
        sim.listen(a, 3000, 1);
        sim.primary.accepted(HandleId(1));
        let to_a = sends(&sim.drain());
        sim.listen(b, 3000, 1);
        // a closes its server, then answers that it did not take it.
        sim.msg(
            a,
            r#"{"cmd":"NODE_CLUSTER","act":"close","key":"null:3000:4:undefined:0","seq":3}"#,
        );
        let actions = sim.msg(
            a,
            &format!(
                r#"{{"cmd":"NODE_CLUSTER","ack":{},"accepted":false,"seq":4}}"#,
                newconn_seq(&to_a[0].1)
            ),
        );
        let to_b = sends(&actions);
        assert_eq!((to_b[0].0, to_b[0].2), (b, Some(Fd::Conn(ConnId(1)))));
        assert_eq!(sim.primary.open_handles(), 1, "b still uses it");
    }

    #[test]
    fn connections_of_a_worker_that_died_are_handed_to_the_others() {
        let mut sim = Sim::new();
        let a = sim.worker(1, Policy::RoundRobin);
        let b = sim.worker(2, Policy::RoundRobin);
        sim.listen(a, 3000, 1);
        sim.primary.accepted(HandleId(1));
        sim.drain();
        sim.listen(b, 3000, 1);
        sim.primary.accepted(HandleId(1));
        sim.drain();
        sim.primary.gone(a);
        let actions = sim.drain();
        // b is busy with its own; a's connection waits for b, then goes out.
        assert!(sends(&actions).is_empty(), "{actions:?}");
        let seq = sim.primary.in_flight.keys().copied().next().unwrap();
        let actions = sim.msg(
            b,
            &format!(r#"{{"cmd":"NODE_CLUSTER","ack":{seq},"accepted":true,"seq":9}}"#),
        );
        assert_eq!(actions[0], Action::CloseConn(ConnId(2)));
        assert_eq!(sends(&actions)[0].2, Some(Fd::Conn(ConnId(1))));
    }

    #[test]
    fn the_socket_stays_open_while_any_worker_old_or_new_uses_it() {
        let mut sim = Sim::new();
        let old = sim.worker(1, Policy::RoundRobin);
        sim.listen(old, 3000, 1);
        // A restart: the new worker joins before the old one leaves.
        let new = sim.worker(2, Policy::RoundRobin);
        sim.listen(new, 3000, 1);
        sim.msg(
            old,
            r#"{"cmd":"NODE_CLUSTER","act":"close","key":"null:3000:4:undefined:0","seq":2}"#,
        );
        sim.primary.gone(old);
        assert!(
            !sim.drain()
                .iter()
                .any(|a| matches!(a, Action::CloseHandle(_)))
        );
        assert_eq!(sim.binder.bound.len(), 1, "never re-bound");
        // The last one out closes it, and what still waited there.
        sim.primary.accepted(HandleId(1));
        sim.primary.accepted(HandleId(1));
        sim.drain();
        sim.primary.gone(new);
        let actions = sim.drain();
        assert!(
            actions.contains(&Action::CloseConn(ConnId(2))),
            "{actions:?}"
        );
        assert!(
            actions.contains(&Action::CloseHandle(HandleId(1))),
            "{actions:?}"
        );
        // A connection in flight to the gone worker cannot go anywhere now.
        assert!(
            actions.contains(&Action::CloseConn(ConnId(1))),
            "{actions:?}"
        );
        assert_eq!(sim.primary.open_handles(), 0);
        assert!(sim.primary.accepted(HandleId(1)).is_none());
    }

    #[test]
    fn a_socket_waits_for_a_worker_that_is_still_starting() {
        let mut sim = Sim::new();
        let old = sim.worker(1, Policy::RoundRobin);
        sim.listen(old, 3000, 1);
        // Ready before listening (`ready-on: instant`): the old one leaves
        // before the new one asked for the socket.
        let new = sim.worker(2, Policy::RoundRobin);
        sim.primary.gone(old);
        sim.primary.accepted(HandleId(1));
        let actions = sim.drain();
        assert!(
            actions.is_empty(),
            "kept, the connection waits: {actions:?}"
        );
        let actions = sim.listen(new, 3000, 1);
        assert_eq!(sim.binder.bound.len(), 1, "the same socket");
        let sent = sends(&actions);
        assert_eq!(sent.len(), 2, "the reply, then the waiting connection");
        assert_eq!(sent[1].2, Some(Fd::Conn(ConnId(1))));
        // A worker that listened elsewhere does not hold other sockets open.
        let other = sim.worker(3, Policy::RoundRobin);
        sim.listen(other, 4000, 1);
        sim.primary.gone(new);
        assert!(sim.drain().contains(&Action::CloseHandle(HandleId(1))));
    }

    #[test]
    fn bind_errors_reach_the_worker_as_negative_errno_and_the_log() {
        let mut sim = Sim::new();
        sim.binder.taken.push(3000);
        let a = sim.worker(1, Policy::RoundRobin);
        let actions = sim.listen(a, 3000, 1);
        let reply = sends(&actions);
        assert_eq!(reply[0].1["errno"], -98);
        assert_eq!(reply[0].1["ack"], 1);
        assert_eq!(reply[0].2, None);
        assert!(actions.contains(&Action::BindFailed {
            worker: a,
            what: "port 3000".into(),
            errno: 98
        }));
        // Nothing kept: a later query binds again.
        sim.binder.taken.clear();
        sim.listen(a, 3000, 2);
        assert_eq!(sim.binder.bound.len(), 1);
    }

    #[test]
    fn disconnects_are_acknowledged_and_leave_the_handles() {
        let mut sim = Sim::new();
        let a = sim.worker(1, Policy::Shared);
        sim.listen(a, 3000, 1);
        let actions = sim.msg(
            a,
            r#"{"cmd":"NODE_CLUSTER","act":"exitedAfterDisconnect","seq":7}"#,
        );
        assert_eq!(sends(&actions)[0].1["ack"], 7);
        // Queries from a leaving worker are ignored, as Node does.
        assert!(sim.listen(a, 4000, 8).is_empty());

        let b = sim.worker(2, Policy::Shared);
        sim.listen(b, 5000, 1);
        sim.primary.disconnect(b);
        let actions = sim.drain();
        assert_eq!(sends(&actions)[0].1["act"], "disconnect");
        assert!(actions.contains(&Action::CloseHandle(HandleId(2))));
    }

    #[test]
    fn apps_do_not_share_sockets_and_udp_is_always_shared() {
        let mut sim = Sim::new();
        let a = sim.worker(1, Policy::RoundRobin);
        let b = WorkerId(2);
        sim.primary.join(b, "other".into(), Policy::RoundRobin);
        sim.listen(a, 3000, 1);
        sim.listen(b, 3000, 1);
        assert_eq!(sim.binder.bound.len(), 2);
        let actions = sim.msg(
            a,
            r#"{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"address":"0.0.0.0","port":53,
                "addressType":"udp4","fd":-1,"flags":0,"data":null,"seq":3}"#,
        );
        let reply = sends(&actions);
        assert_eq!(reply[0].1["type"], "dgram.Native");
        assert!(matches!(reply[0].2, Some(Fd::Handle(_))));
    }

    #[test]
    fn malformed_messages_are_reported_and_queries_answered_with_einval() {
        let mut sim = Sim::new();
        let a = sim.worker(1, Policy::RoundRobin);
        let actions = sim.msg(
            a,
            r#"{"cmd":"NODE_CLUSTER","act":"queryServer","port":1,"addressType":"x","seq":4}"#,
        );
        assert_eq!(sends(&actions)[0].1["errno"], -22);
        assert!(matches!(actions.last(), Some(Action::Malformed { .. })));
        // Answers from the wrong worker, or to nothing, are ignored.
        assert!(
            sim.msg(a, r#"{"cmd":"NODE_CLUSTER","ack":99,"accepted":true}"#)
                .is_empty()
        );
        // Unknown workers are ignored entirely.
        let actions = sim.msg(
            WorkerId(42),
            r#"{"cmd":"NODE_CLUSTER","act":"queryServer","port":1,"addressType":4,"seq":1}"#,
        );
        assert!(actions.is_empty());
        // Listening on an inherited fd is refused.
        let actions = sim.msg(
            a,
            r#"{"cmd":"NODE_CLUSTER","act":"queryServer","port":-1,"addressType":-1,"fd":3,"index":0,"seq":5}"#,
        );
        assert_eq!(sends(&actions)[0].1["errno"], -95);
    }

    #[test]
    fn the_first_workers_data_is_given_to_all() {
        let mut sim = Sim::new();
        let a = sim.worker(1, Policy::Shared);
        let b = sim.worker(2, Policy::Shared);
        let q = |data: &str| {
            format!(
                r#"{{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":{data},"address":null,"port":443,"addressType":4,"seq":1}}"#
            )
        };
        sim.msg(a, &q(r#""tickets-a""#));
        let reply = sends(&sim.msg(b, &q(r#""tickets-b""#)));
        assert_eq!(reply[0].1["msg"]["data"], "tickets-a");
    }
}
