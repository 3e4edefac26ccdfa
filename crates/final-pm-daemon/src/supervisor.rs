//! The supervisor: the one task that owns the daemon's state.
//!
//! It owns the lifecycle [`Core`] and everything the core's effects act on
//! (the watched children, the log buffer, pending waits). Connections send it
//! `(Request, reply channel)` pairs; children report [`ChildEvent`]s; the
//! core's timers surface as one deadline. The loop:
//!
//! 1. execute every effect the core has queued, in order (spawning reports
//!    back into the core at once, which may queue more effects);
//! 2. stop if shutting down and no process is left;
//! 3. wait for the next request, child event, due timer or shutdown signal,
//!    and feed it to the core.
//!
//! Nothing else touches this state, so there are no locks around it and no
//! races between a client's command and a child's exit. When idle, the loop
//! sleeps in `select!` with no timer unless the core has a deadline: zero CPU.
//!
//! Log records (lifecycle records from the core's effects, output lines
//! from the children) go to [`Logging`], which decides when logging
//! processes start, are fed and stop; the supervisor carries that out after
//! every event (see `logging.rs` for the buffer and overflow rules).
//!
//! Shutdown: a `kill_daemon` request or the `shutdown` token make the core
//! refuse new work and kill every application process; logging processes
//! stay to take the last records and are then stopped gracefully, so the
//! last lines of a killed app reach its log file. After [`FLUSH_TIMEOUT`]
//! whatever is left is killed. Once nothing is left, every pending
//! `kill_daemon` is answered and the loop returns. `Daemon::run` then
//! removes the socket and the lock.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use final_pm_protocol::{
    AppConfig, AppInfo, AppType, ErrorCode, Generation, LogKind, LogProcess, LogRecord, Mode,
    ProcessId, ProcessInfo, ReadyOn, Request, Response, StopSignal, VERSION,
};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::child::{ChildEvent, ChildHandle, FeedMode, Incarnation, OutputSetup, Stream};
use crate::cluster::{ClusterHandle, Policy, WorkerId};
use crate::core::{CommandError, Core, Effect, ProcessView, WaitId};
use crate::ipc::ClusterLink;
pub(crate) use crate::logging::Published;
use crate::logging::{Action, Logging};
use crate::spawn::{SpawnSpec, spawn};

/// How many published records a slow follower may fall behind before it is
/// told it missed some.
const FOLLOW_BACKLOG: usize = 1024;
/// Child events in flight. Output readers take room in their app's log
/// buffer before sending (see `logging.rs`), so this only smooths bursts.
const CHILD_EVENTS: usize = 256;
/// How long a shutdown waits for loggers to take the last records before
/// they are killed too.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The builtin logger's name (spec §3.8).
pub(crate) const FILE_LOGGER: &str = "file-logger";

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

/// A batch (`all`) that is waiting for one of its `wait` entries.
#[derive(Debug)]
struct Batch {
    results: Vec<Response>,
    rest: VecDeque<Request>,
    reply: oneshot::Sender<Reply>,
}

/// Who is waiting for a `WaitDone`.
#[derive(Debug)]
enum Waiter {
    Request(oneshot::Sender<Reply>),
    Batch(Batch),
}

/// Converts the core's monotonic instants to wall-clock milliseconds.
#[derive(Debug, Clone, Copy)]
struct Clock {
    instant: Instant,
    epoch_ms: u64,
}

impl Clock {
    fn new() -> Self {
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            instant: Instant::now(),
            epoch_ms,
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        if at >= self.instant {
            self.epoch_ms + (at - self.instant).as_millis() as u64
        } else {
            self.epoch_ms
                .saturating_sub((self.instant - at).as_millis() as u64)
        }
    }
}

/// A watched process and what records about it need.
#[derive(Debug)]
struct Watched {
    handle: ChildHandle,
    app: String,
}

/// The state owner.
#[derive(Debug)]
pub(crate) struct Supervisor {
    core: Core,
    clock: Clock,
    calls: mpsc::Receiver<Call>,
    child_tx: mpsc::Sender<ChildEvent>,
    child_rx: mpsc::Receiver<ChildEvent>,
    children: HashMap<ProcessId, Watched>,
    next_incarnation: u64,
    waiters: HashMap<WaitId, Waiter>,
    logging: Logging,
    /// `kill_daemon` callers waiting for the last process to go, with the
    /// reply each gets then.
    killers: Vec<(oneshot::Sender<Reply>, Response)>,
    stopping: bool,
    /// The Node cluster primary, started with the first cluster worker.
    cluster: Option<ClusterHandle>,
    /// While stopping: when loggers that have not finished are killed.
    flush_deadline: Option<Instant>,
    /// Spawns that failed, reported to the core on the next turn of the
    /// loop rather than at once: with `restart-crashing-delay: 0` the core
    /// answers a failed spawn with another spawn, and a program or `cwd`
    /// that is missing would otherwise fail and respawn forever inside one
    /// turn, never serving a client or a timer again.
    failed_spawns: Vec<(ProcessId, String)>,
}

impl Supervisor {
    /// Creates the supervisor and the handle connections use.
    /// `file_logger` is the executable that runs the builtin file-logger
    /// (the final-pm executable); without it there is no builtin logger.
    pub(crate) fn new(file_logger: Option<PathBuf>) -> (Self, SupervisorHandle) {
        let (calls_tx, calls) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(FOLLOW_BACKLOG);
        let (child_tx, child_rx) = mpsc::channel(CHILD_EVENTS);
        let handle = SupervisorHandle {
            calls: calls_tx,
            events: events.clone(),
        };
        let mut core = Core::new();
        if let Some(program) = file_logger {
            // The first app, so its revision is 0 (spec §3.8).
            if let Err(err) = core.add_app(Instant::now(), builtin_file_logger(program), true) {
                warn!(%err, "cannot add the builtin file-logger");
            }
        }
        let supervisor = Self {
            core,
            clock: Clock::new(),
            calls,
            logging: Logging::new(events),
            child_tx,
            child_rx,
            children: HashMap::new(),
            next_incarnation: 0,
            waiters: HashMap::new(),
            killers: Vec::new(),
            stopping: false,
            cluster: None,
            flush_deadline: None,
            failed_spawns: Vec::new(),
        };
        (supervisor, handle)
    }

    /// Runs until the daemon has been told to stop and nothing is left alive.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        // Orphans are re-parented to us only when the process is a child
        // subreaper (the daemon entry point makes it one). A daemon embedded
        // in another program (tests) must not reap that program's children.
        let subreaper = nix::sys::prctl::get_child_subreaper().unwrap_or(false);
        let mut sigchld = if subreaper {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child()).ok()
        } else {
            None
        };
        loop {
            self.drain_effects();
            self.drive_logging();
            if self.stopping {
                if self.core.is_empty() {
                    break;
                }
                if self.flush_deadline.is_some_and(|at| at <= Instant::now()) {
                    warn!("loggers did not take the last records in time; killing them");
                    self.flush_deadline = None;
                    self.core.kill_all(Instant::now());
                    self.logging.release_all();
                    continue;
                }
            }
            let deadline = [
                self.core.next_deadline(),
                self.logging.next_deadline(),
                self.flush_deadline,
            ]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std);
            tokio::select! {
                call = self.calls.recv() => match call {
                    Some((request, reply)) => self.handle(request, reply),
                    None => self.begin_stop(),
                },
                Some(event) = self.child_rx.recv() => self.child_event(event),
                () = sleep_until(deadline) => self.core.handle_timeout(Instant::now()),
                _ = shutdown.cancelled(), if !self.stopping => {
                    info!("shutdown requested by signal");
                    self.begin_stop();
                }
                Some(()) = recv_sigchld(&mut sigchld) => self.reap_orphans(),
                // Ready after one yield to the scheduler, so connections,
                // exit watchers and timers run between two retries.
                () = tokio::task::yield_now(), if !self.failed_spawns.is_empty() => {
                    self.report_failed_spawns();
                }
            }
        }
        info!("Daemon stopping.");
        for (killer, response) in self.killers.drain(..) {
            let _ = killer.send(response.into());
        }
    }

    fn begin_stop(&mut self) {
        if !self.stopping {
            self.stopping = true;
            let now = Instant::now();
            self.flush_deadline = Some(now + FLUSH_TIMEOUT);
            self.logging.shut_down();
            self.core.kill_applications(now);
        }
    }

    /// Carries out what logging decides until it has nothing more to do,
    /// then tells the core whether logging keeps the daemon from rest.
    fn drive_logging(&mut self) {
        loop {
            let now = Instant::now();
            let actions = self.logging.drive(now, self.clock.ms(now));
            if actions.is_empty() {
                break;
            }
            for action in actions {
                self.logging_action(now, action);
            }
            self.drain_effects();
        }
        let busy = self.logging.busy();
        self.core.set_logging_busy(busy);
        self.drain_effects();
    }

    fn logging_action(&mut self, now: Instant, action: Action) {
        match action {
            Action::Start(key) => {
                let Some(app) = self.core.app(&key.name).cloned() else {
                    self.logging.start_failed(&key, true, now);
                    return;
                };
                // The logger app's own arguments come first (the builtin's
                // entry point), then the key's `logger-args`.
                let mut args = app.config.args.clone();
                args.extend(key.args.iter().cloned());
                match self.core.start_with(
                    now,
                    &key.name,
                    Some(0),
                    Some(args),
                    Some(key.cwd.clone()),
                ) {
                    Ok(id) => self.logging.started(&key, id, app.config.builtin),
                    Err(err) => {
                        warn!(logger = %key.name, %err, "cannot start a logging process");
                        let missing = matches!(err, CommandError::UnknownApp(_));
                        self.logging.start_failed(&key, missing, now);
                    }
                }
            }
            Action::Feed { id, bytes, records } => {
                if let Some(child) = self.children.get(&id) {
                    child.handle.feed(bytes, records);
                }
            }
            Action::Stop(id) => {
                if let Some(child) = self.children.get(&id) {
                    child.handle.close_feed();
                }
                if let Err(err) = self.core.stop(now, id) {
                    debug!(%id, %err, "stopping a logging process");
                }
                // Its apps are done: what their output needed is free now.
                crate::memory::give_back();
            }
        }
    }

    // ---- requests ----------------------------------------------------------

    fn handle(&mut self, request: Request, reply: oneshot::Sender<Reply>) {
        debug!(request = request.type_name(), "request");
        match request {
            Request::KillDaemon {} => {
                self.begin_stop();
                self.killers.push((reply, Response::Ok {}));
            }
            Request::Wait { all } => {
                let wait = self.core.wait(Instant::now(), all);
                self.waiters.insert(wait, Waiter::Request(reply));
            }
            Request::All { requests } => {
                self.run_batch(Batch {
                    results: Vec::new(),
                    rest: requests.into(),
                    reply,
                });
            }
            other => {
                let reply_value = self.execute(other);
                let _ = reply.send(reply_value);
            }
        }
    }

    /// Runs batch entries in order until one is a `wait`; the batch then
    /// sleeps until that wait is done.
    fn run_batch(&mut self, mut batch: Batch) {
        while let Some(request) = batch.rest.pop_front() {
            match request {
                Request::Wait { all } => {
                    let wait = self.core.wait(Instant::now(), all);
                    batch.results.push(Response::Ok {});
                    self.waiters.insert(wait, Waiter::Batch(batch));
                    return;
                }
                Request::KillDaemon {} => {
                    self.begin_stop();
                    batch.results.push(Response::Ok {});
                    batch
                        .results
                        .extend(batch.rest.drain(..).map(|_| shutting_down()));
                    let response = Response::Batch {
                        results: batch.results,
                    };
                    self.killers.push((batch.reply, response));
                    return;
                }
                other => {
                    let reply = self.execute(other);
                    batch.results.push(reply.response);
                }
            }
        }
        let _ = batch.reply.send(
            Response::Batch {
                results: batch.results,
            }
            .into(),
        );
    }

    fn execute(&mut self, request: Request) -> Reply {
        let now = Instant::now();
        let refused = |err: CommandError| Response::error(err.code(), err.to_string());
        match request {
            Request::Info { usage } => Response::Info {
                applications: self.core.apps().cloned().collect(),
                processes: self
                    .core
                    .processes()
                    .into_iter()
                    .map(|p| {
                        let id = p.id;
                        let mut info = self.process_info(p);
                        if usage {
                            info.usage = self.children.get(&id).and_then(|w| w.handle.usage());
                        }
                        info
                    })
                    .collect(),
                daemon_version: VERSION.to_owned(),
                pid: std::process::id(),
            }
            .into(),
            Request::Add { app, force } => match self.core.add_app(now, *app, force) {
                Ok(outcome) => {
                    self.logging.apps_changed();
                    Response::Added {
                        added: outcome.added,
                        changed: outcome.changed,
                        revision: outcome.revision,
                    }
                    .into()
                }
                Err(err) => refused(err).into(),
            },
            Request::Delete { name, force } => match self.core.delete_app(now, &name, force) {
                Ok(()) => Response::Deleted { name }.into(),
                Err(err) => refused(err).into(),
            },
            Request::Start { name, number } => match self.core.start(now, &name, number) {
                Ok(id) => match self.core.process(id) {
                    Some(view) => Response::Started {
                        process: Box::new(self.process_info(view)),
                    }
                    .into(),
                    // Created and already gone (e.g. shut down): report it as
                    // started, the records tell the rest.
                    None => Response::error(
                        ErrorCode::NoSuchProcess,
                        format!("process {id} ended at once"),
                    )
                    .into(),
                },
                Err(err) => refused(err).into(),
            },
            Request::Stop { id } => self
                .core
                .stop(now, id)
                .map_or_else(refused, |()| Response::Ok {})
                .into(),
            Request::Kill { id } => self
                .core
                .kill(now, id)
                .map_or_else(refused, |()| Response::Ok {})
                .into(),
            Request::Send { id, message } => self
                .core
                .send(now, id, message)
                .map_or_else(refused, |()| Response::Ok {})
                .into(),
            Request::Logs {
                name, ids, lines, ..
            } => Reply {
                response: Response::Logs {
                    records: self.logging.query(&name, &ids, lines),
                },
                seen: Some(self.logging.seq()),
            },
            Request::Follow { .. } | Request::Unfollow { .. } => Response::Ok {}.into(),
            Request::Hello { .. } => Response::error(
                ErrorCode::InvalidArguments,
                "hello is answered by the connection",
            )
            .into(),
            Request::Wait { .. } | Request::KillDaemon {} | Request::All { .. } => {
                Response::error(ErrorCode::Internal, "handled before execute").into()
            }
        }
    }

    /// The view is taken, not borrowed: it is a copy already, and `info`
    /// with many processes would otherwise copy every name, argument list
    /// and directory twice.
    fn process_info(&self, view: ProcessView) -> ProcessInfo {
        ProcessInfo {
            id: view.id,
            pid: view.pid,
            app_name: view.app_name,
            number: view.number,
            generation: view.generation,
            args: view.args,
            cwd: view.cwd,
            crashes: view.crashes,
            started: view.started,
            ready: view.ready,
            killing: view.killing,
            revision: view.revision,
            outdated: view.outdated,
            start_time_ms: view.start_time.map(|t| self.clock.ms(t)),
            create_time_ms: self.clock.ms(view.create_time),
            app: view.outdated.then(|| AppInfo::clone(&view.app)),
            usage: None,
        }
    }

    // ---- effects -----------------------------------------------------------

    fn drain_effects(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            self.execute_effect(effect);
        }
    }

    fn execute_effect(&mut self, effect: Effect) {
        match effect {
            Effect::Spawn {
                id,
                app,
                number,
                args,
                cwd,
                instance_number,
            } => {
                self.spawn(id, &app, number, &args, &cwd, instance_number);
            }
            Effect::Signal { id, signal } => match self.children.get(&id) {
                Some(child) => child.handle.signal(signal),
                None => warn!(%id, %signal, "signal for a process that is not watched"),
            },
            Effect::Disconnect { id } => {
                if let Some(child) = self.children.get(&id) {
                    child.handle.disconnect();
                }
            }
            Effect::Message { id, message } => {
                if let Some(child) = self.children.get(&id) {
                    child.handle.send(message);
                }
            }
            Effect::Log {
                id,
                app,
                number,
                pid,
                generation,
                kind,
                text,
            } => {
                if kind == LogKind::Moved && generation == Some(Generation::Running) {
                    self.logging.on_running(id);
                }
                let process = LogProcess {
                    pid: pid.map_or(-1, i64::from),
                    id,
                    number,
                    generation,
                };
                let record = LogRecord {
                    kind,
                    bytes: text.len() as u64,
                    text,
                    timestamp: self.clock.ms(Instant::now()),
                    app,
                    process: Some(process),
                    truncated: 0,
                };
                // The process's own revision decides its logger; one that
                // is already gone from the table falls back to the app's.
                let info = self
                    .core
                    .process(id)
                    .map(|view| view.app)
                    .or_else(|| self.core.app(&record.app).cloned());
                self.logging.push_record(id, info.as_deref(), record);
            }
            Effect::Forget { id } => {
                self.children.remove(&id);
                self.logging.forget(id, Instant::now());
            }
            Effect::WaitDone { wait } => match self.waiters.remove(&wait) {
                Some(Waiter::Request(reply)) => {
                    let _ = reply.send(Response::Ok {}.into());
                }
                Some(Waiter::Batch(batch)) => self.run_batch(batch),
                None => {}
            },
        }
    }

    fn spawn(
        &mut self,
        id: ProcessId,
        app: &AppInfo,
        number: u32,
        args: &[String],
        cwd: &str,
        instance: Option<u32>,
    ) {
        let now = Instant::now();
        self.next_incarnation += 1;
        let inc = Incarnation(self.next_incarnation);
        // `ready-on: message` also accepts systemd's READY=1; the socket is
        // abstract, so nothing needs cleaning up.
        let notify = match app.config.ready_on {
            ReadyOn::Message => notify_socket(inc),
            ReadyOn::Listen | ReadyOn::Instant => None,
        };
        let (notify_name, notify_socket) = match notify {
            Some((name, socket)) => (Some(name), Some(socket)),
            None => (None, None),
        };
        // A Node script in cluster mode is a worker of our cluster primary;
        // anything else in cluster mode runs as in fork mode.
        let cluster =
            (app.config.mode == Mode::Cluster && app.config.is_node_script()).then(|| {
                let child_tx = &self.child_tx;
                ClusterLink {
                    cluster: self
                        .cluster
                        .get_or_insert_with(|| ClusterHandle::start(child_tx.clone()))
                        .clone(),
                    worker: WorkerId(inc.0),
                    scope: app.config.name.clone(),
                    policy: Policy::from_env(
                        app.config
                            .env
                            .get("NODE_CLUSTER_SCHED_POLICY")
                            .map(String::as_str),
                    ),
                }
            });
        let (budget, feed) = self.logging.on_spawn(id, app);
        // The builtin file-logger gets its lines through shared memory
        // (see `feed_ring`); without one it reads them all from stdin.
        let ring = (feed == FeedMode::Stdin && app.config.builtin)
            .then(crate::feed_ring::Ring::create)
            .and_then(|ring| {
                ring.inspect_err(|err| debug!(%err, "no feed ring; the logger reads stdin"))
                    .ok()
            });
        let spec = SpawnSpec {
            app: &app.config,
            args,
            cwd,
            instance_number: instance,
            notify_socket: notify_name,
            cluster_worker: cluster.as_ref().map(|link| link.worker.0),
            stdin_pipe: feed == FeedMode::Stdin,
            feed_ring: ring.as_ref().map(crate::feed_ring::Ring::fd),
        };
        let output = OutputSetup {
            max_line: usize::try_from(app.config.max_log_line_length).unwrap_or(usize::MAX),
            budget,
            feed,
        };
        let spawned = spawn(&spec).and_then(|spawned| {
            crate::child::watch(
                spawned,
                id,
                inc,
                app.config.ready_on,
                output,
                notify_socket,
                cluster,
                self.child_tx.clone(),
            )
        });
        match spawned {
            Ok(handle) => {
                let pid = handle.pid;
                debug!(%id, pid, app = %app.config.name, number, "spawned");
                self.children.insert(
                    id,
                    Watched {
                        handle,
                        app: app.config.name.clone(),
                    },
                );
                if let Some(ring) = ring {
                    self.logging.attach_ring(id, ring);
                }
                self.core.handle_spawned(now, id, pid);
            }
            Err(err) => {
                warn!(%id, app = %app.config.name, error = %err, "spawn failed");
                self.failed_spawns.push((id, err.to_string()));
            }
        }
    }

    /// Who a record of process `id` (OS pid `pid`) is about, as logs show it.
    fn log_process(&self, id: ProcessId, pid: u32) -> LogProcess {
        let view = self.core.process(id);
        LogProcess {
            pid: i64::from(pid),
            id,
            number: view.as_ref().map_or(0, |v| v.number),
            generation: view.as_ref().map(|v| v.generation),
        }
    }

    /// Tells the core about the spawns that failed since the last turn.
    fn report_failed_spawns(&mut self) {
        let now = Instant::now();
        for (id, error) in std::mem::take(&mut self.failed_spawns) {
            self.core.handle_spawn_failed(now, id, error);
        }
    }

    // ---- child events ------------------------------------------------------

    fn child_event(&mut self, event: ChildEvent) {
        let now = Instant::now();
        match event {
            ChildEvent::Ready { id, inc } => {
                if self.is_current(id, inc) {
                    self.core.handle_ready(now, id);
                }
            }
            ChildEvent::Exited { id, inc, end } => {
                if self.is_current(id, inc) {
                    self.core.handle_exit(now, id, end);
                }
            }
            ChildEvent::Output {
                id,
                inc,
                stream,
                batch,
                held,
            } => {
                let Some(watched) = self.children.get(&id).filter(|w| w.handle.inc == inc) else {
                    self.logging.release(id, held);
                    return;
                };
                let process = self.log_process(id, watched.handle.pid);
                let kind = match stream {
                    Stream::Stdout => LogKind::Stdout,
                    Stream::Stderr => LogKind::Stderr,
                };
                let timestamp = self.clock.ms(now);
                self.logging
                    .push_output(id, &watched.app, process, kind, timestamp, batch, held);
            }
            ChildEvent::Fed { id, inc, records } => {
                if self.is_current(id, inc) {
                    self.logging.on_fed(id, records);
                }
            }
            ChildEvent::Problem { id, inc, text } => {
                let Some(watched) = self.children.get(&id).filter(|w| w.handle.inc == inc) else {
                    return;
                };
                let app = watched.app.clone();
                let process = self.log_process(id, watched.handle.pid);
                let record = LogRecord {
                    kind: LogKind::Error,
                    bytes: text.len() as u64,
                    text,
                    timestamp: self.clock.ms(now),
                    app,
                    process: Some(process),
                    truncated: 0,
                };
                let info = self.core.process(id).map(|view| view.app);
                self.logging.push_record(id, info.as_deref(), record);
            }
            ChildEvent::Message { id, message } => {
                if let Some(message) = self.logging.on_message(id, message) {
                    debug!(%id, %message, "IPC message from a process");
                }
            }
        }
    }

    fn is_current(&self, id: ProcessId, inc: Incarnation) -> bool {
        self.children.get(&id).is_some_and(|w| w.handle.inc == inc)
    }

    /// Reaps processes re-parented to the daemon (it is a child subreaper)
    /// that it does not watch itself: grandchildren whose parent died. Only
    /// pids listed as our children and not ours to watch are waited for, so
    /// tokio's own child handling is never robbed of a status.
    fn reap_orphans(&mut self) {
        use nix::sys::wait::{WaitPidFlag, waitpid};
        let watched: std::collections::HashSet<u32> =
            self.children.values().map(|w| w.handle.pid).collect();
        for pid in crate::procfs::children_of(std::process::id()) {
            if !watched.contains(&pid) {
                let _ = waitpid(
                    nix::unistd::Pid::from_raw(pid as i32),
                    Some(WaitPidFlag::WNOHANG),
                );
            }
        }
    }
}

/// A supervisor dropped while it still watches processes was not shut down
/// cleanly (its runtime was torn down, e.g. an embedding program or test
/// panicked). Its processes would run on unsupervised; kill their groups.
/// After a clean shutdown nothing is watched and this does nothing.
impl Drop for Supervisor {
    fn drop(&mut self) {
        for watched in self.children.values() {
            watched.handle.signal(crate::core::Signal::Kill);
        }
    }
}

/// The builtin logger (spec §3.8): the final-pm executable run through its
/// hidden file-logger entry point; records on stdin, `ready` and
/// acknowledgements on the IPC channel, stopped by the `stop` message.
fn builtin_file_logger(program: PathBuf) -> AppConfig {
    let mut config = AppConfig::new(FILE_LOGGER, "/", program.to_string_lossy());
    config.app_type = AppType::Logger;
    config.mode = Mode::Fork;
    config.args = vec![crate::file_logger::ENTRY.to_owned()];
    config.ready_on = ReadyOn::Message;
    config.stop_signal = StopSignal::Message;
    config.builtin = true;
    config
}

fn notify_socket(inc: Incarnation) -> Option<(String, tokio::net::UnixDatagram)> {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("final-pm/{}/{}", std::process::id(), inc.0);
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).ok()?;
    socket.set_nonblocking(true).ok()?;
    let socket = tokio::net::UnixDatagram::from_std(socket).ok()?;
    Some((format!("@{name}"), socket))
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn recv_sigchld(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}
