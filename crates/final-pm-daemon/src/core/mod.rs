//! The sans-IO lifecycle core: every decision about processes, and nothing
//! else.
//!
//! [`Core`] owns the app table, the process table and all timers. It performs
//! no I/O and reads no clock: the tokio shell feeds it client commands and
//! what happened in the world, and executes what it asks for. That split
//! (after quinn-proto) is what lets the whole lifecycle be tested with a
//! virtual clock and no processes, property tests included.
//!
//! # The generation model
//!
//! Every process is in exactly one generation (spec §4.3):
//!
//! - `queue`: waiting for capacity (`max-instances`).
//! - `new`: started, not yet ready. A crash-respawn waits out its
//!   `restart-crashing-delay` here, with a start time in the future.
//! - `running`: ready and serving. Whenever a process enters running, the
//!   app's running set is reconciled: a unique instance number keeps only its
//!   newest holder, only the newest `instances` stay, non-unique processes are
//!   renumbered newest-first, and every surplus process moves to old.
//! - `old`: replaced or stopped; it gets its stop signal exactly once on
//!   entry, and the kill signal if `stop-timeout` runs out.
//! - `marked`: stopped while starting. It gets its stop signal only after it
//!   reports ready (moving to old), so an app never sees a stop before it
//!   finished starting.
//!
//! A normal life: queue → new → running → old → exit. A crash in new or
//! running (any exit not caused by a stop or kill, whatever its code) is
//! respawned per `restart-new-crashing`/`restart-crashing`, keeping the id,
//! number and the *old* app revision. Separately from the generation, each
//! record tracks what exists in the world (nothing, a pending delay, a spawn
//! in flight, a live pid), so a stop or kill that arrives before the OS
//! process exists is never lost and never sent early.
//!
//! # The handle/poll contract
//!
//! - Inputs are plain `&mut self` calls: client commands (`add_app`, `start`,
//!   `stop`, `kill`, ...) return a typed result at once; world events
//!   (`handle_spawned`, `handle_ready`, `handle_exit`, `handle_timeout`, ...)
//!   return nothing. Each call finishes its whole cascade before returning:
//!   the shell never sees a half-applied transition.
//! - Outputs are [`Effect`]s, drained with [`Core::poll_effect`] after every
//!   call and executed strictly in that order. [`Effect::Spawn`] must be
//!   answered with [`Core::handle_spawned`] or [`Core::handle_spawn_failed`]
//!   (other calls may come in between; the core copes).
//! - Time: every call takes `now`, and `now` must never go backwards between
//!   calls (use one monotonic clock). Timers live inside the core; the shell
//!   sleeps until [`Core::next_deadline`] and then calls
//!   [`Core::handle_timeout`], which fires everything due. A timer whose
//!   process moved on was disarmed, so nothing stale ever fires.
//! - Effects only name processes the core knows, and signals only processes
//!   whose pid it knows. [`Effect::Forget`] ends a record; a crash-respawn
//!   reuses the id, so a `Spawn` of the same id may follow it.
//!
//! Invariants are checked by [`Core::check_invariants`] after every public
//! call in debug builds.

mod apps;
mod effect;
mod error;
mod generations;
mod invariants;
mod process;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use final_pm_protocol::{AppConfig, AppInfo, Generation, LogKind, ProcessId, ReadyOn};

pub use self::apps::AddOutcome;
pub use self::effect::{Effect, ProcessEnd, Signal, WaitId};
pub use self::error::{CommandError, ConfigProblem};
pub use self::process::ProcessView;

use self::apps::AppTable;
use self::generations::{Event, KillMode};
use self::process::{Os, Process};

/// The lifecycle state machine. See the [module docs](self).
#[derive(Debug, Default)]
pub struct Core {
    apps: AppTable,
    /// The process table, in table order (a respawn goes to the end).
    procs: Vec<Process>,
    next_id: u64,
    effects: VecDeque<Effect>,
    waiters: Vec<Waiter>,
    next_wait: u64,
    /// `kill_all` was called: nothing starts or respawns any more.
    shutting_down: bool,
    /// [`Core::kill_applications`] left logging processes alive so they can
    /// take the last records; [`Core::kill_all`] ends that.
    loggers_spared: bool,
    /// The shell's logging is not at rest (see [`Core::set_logging_busy`]).
    logging_busy: bool,
}

#[derive(Debug, Clone, Copy)]
struct Waiter {
    id: WaitId,
    /// Also wait for the process table to be empty.
    all: bool,
}

impl Core {
    /// An empty daemon: no apps, no processes.
    pub fn new() -> Self {
        Self::default()
    }

    // ---- client commands ----------------------------------------------------

    /// Stores an app (spec §3.10): a new name is added; an identical upload
    /// changes nothing (its processes stay current); a changed one becomes a
    /// new revision at the same table position. Builtins and a changed
    /// `config-path` need `force`. Queued processes of the app are
    /// reconsidered, so a raised `max-instances` takes effect at once.
    pub fn add_app(
        &mut self,
        now: Instant,
        app: AppConfig,
        force: bool,
    ) -> Result<AddOutcome, CommandError> {
        let name = app.name.clone();
        let outcome = self.apps.add(app, force)?;
        self.release_queued(now, &name);
        self.finish();
        Ok(outcome)
    }

    /// Removes an app from the table. Its processes keep running with their
    /// revision (now outdated) and keep crash-respawning, as in the original.
    pub fn delete_app(
        &mut self,
        now: Instant,
        name: &str,
        force: bool,
    ) -> Result<(), CommandError> {
        self.apps.delete(name, force)?;
        self.release_queued(now, name);
        self.finish();
        Ok(())
    }

    /// Creates a process of the app's current revision and queues it (it
    /// normally starts at once). `number` defaults to 0.
    pub fn start(
        &mut self,
        now: Instant,
        name: &str,
        number: Option<u32>,
    ) -> Result<ProcessId, CommandError> {
        self.start_with(now, name, number, None, None)
    }

    /// [`start`](Self::start) with explicit `args` and `cwd` instead of the
    /// app's, for logging processes (whose arguments are an app's
    /// `logger-args`).
    pub fn start_with(
        &mut self,
        now: Instant,
        name: &str,
        number: Option<u32>,
        args: Option<Vec<String>>,
        cwd: Option<String>,
    ) -> Result<ProcessId, CommandError> {
        if self.shutting_down {
            return Err(CommandError::ShuttingDown);
        }
        let Some(app) = self.apps.get(name).cloned() else {
            return Err(CommandError::UnknownApp(name.to_owned()));
        };
        let id = ProcessId(self.next_id);
        self.next_id += 1;
        let process = Process {
            id,
            number: number.unwrap_or(0),
            crashes: 0,
            start_delay: Duration::ZERO,
            args: args.unwrap_or_else(|| app.config.args.clone()),
            cwd: cwd.unwrap_or_else(|| app.config.cwd.clone()),
            app,
            create_time: now,
            start_time: None,
            generation: Generation::Queue,
            os: Os::Unstarted,
            ready: false,
            stopping: None,
            killing: false,
            timeout: false,
            outbox: Vec::new(),
        };
        self.create_process(now, process);
        self.finish();
        Ok(id)
    }

    /// API stop (graceful). Running → old (stop signal); starting → marked
    /// (stop signal once ready); a process that does not exist yet is
    /// aborted; queued → removed. Old and marked are already stopping.
    pub fn stop(&mut self, now: Instant, id: ProcessId) -> Result<(), CommandError> {
        let process = self.get_mut(id).ok_or(CommandError::NoSuchProcess(id))?;
        // An explicit stop is never a crash, even after a start timeout.
        process.timeout = false;
        self.on_event(now, id, Event::Stop);
        self.finish();
        Ok(())
    }

    /// API kill: the app's kill signal; if the process is already being
    /// killed and still alive, SIGKILL. Never respawned afterwards.
    pub fn kill(&mut self, now: Instant, id: ProcessId) -> Result<(), CommandError> {
        let process = self.get_mut(id).ok_or(CommandError::NoSuchProcess(id))?;
        process.timeout = false;
        self.on_event(now, id, Event::Kill(KillMode::Api));
        self.finish();
        Ok(())
    }

    /// Sends an IPC message; queued until the process exists.
    pub fn send(
        &mut self,
        now: Instant,
        id: ProcessId,
        message: serde_json::Value,
    ) -> Result<(), CommandError> {
        let _ = now;
        let process = self.get_mut(id).ok_or(CommandError::NoSuchProcess(id))?;
        match process.os {
            Os::Alive { .. } => self.effects.push_back(Effect::Message { id, message }),
            Os::Unstarted | Os::Delayed { .. } | Os::Spawning { .. } => {
                process.outbox.push(message);
            }
        }
        self.finish();
        Ok(())
    }

    /// Daemon shutdown: SIGKILL to every process (resent to those already
    /// being killed), queued and delayed ones removed at once. From now on
    /// nothing starts or respawns, and `start` is refused.
    pub fn kill_all(&mut self, now: Instant) {
        self.shutting_down = true;
        self.loggers_spared = false;
        let ids: Vec<ProcessId> = self.procs.iter().map(|p| p.id).collect();
        for id in ids {
            if let Some(process) = self.get_mut(id) {
                process.timeout = false;
                self.on_event(now, id, Event::Kill(KillMode::Forced));
            }
        }
        self.finish();
    }

    /// The first half of a daemon shutdown that keeps log records: like
    /// [`kill_all`](Self::kill_all), but logging processes (apps of type
    /// `logger`) stay alive, so the shell can hand them the records of the
    /// processes being killed and stop them gracefully (or call `kill_all`
    /// when they take too long). Nothing starts or respawns from now on.
    pub fn kill_applications(&mut self, now: Instant) {
        self.shutting_down = true;
        self.loggers_spared = true;
        let ids: Vec<ProcessId> = self
            .procs
            .iter()
            .filter(|p| !p.is_logger())
            .map(|p| p.id)
            .collect();
        for id in ids {
            if let Some(process) = self.get_mut(id) {
                process.timeout = false;
                self.on_event(now, id, Event::Kill(KillMode::Forced));
            }
        }
        self.finish();
    }

    /// Registers a waiter; [`Effect::WaitDone`] follows once the daemon is at
    /// rest (and, with `all`, has no processes). It may already be queued
    /// when this returns.
    pub fn wait(&mut self, now: Instant, all: bool) -> WaitId {
        let _ = now;
        let id = WaitId(self.next_wait);
        self.next_wait += 1;
        self.waiters.push(Waiter { id, all });
        self.finish();
        id
    }

    /// Tells the core whether the shell's logging is busy (a logger still
    /// has unsent or unacknowledged records of finished apps, spec §4.10).
    /// While busy, the daemon is not at rest.
    pub fn set_logging_busy(&mut self, busy: bool) {
        self.logging_busy = busy;
        self.finish();
    }

    // ---- world events ---------------------------------------------------------

    /// The OS process of a `Spawn` exists. Delivers what waited for it
    /// (queued messages, a kill), arms the start timer, and with
    /// `ready-on: instant` makes it ready.
    pub fn handle_spawned(&mut self, now: Instant, id: ProcessId, pid: u32) {
        let Some(process) = self.get_mut(id) else {
            tracing::debug!(%id, pid, "spawned: no such process");
            return;
        };
        let Os::Spawning { kill } = process.os else {
            tracing::debug!(%id, pid, "spawned: process is not being spawned");
            return;
        };
        let start_deadline = match (kill, process.app.config.start_timeout) {
            (None, Some(ms)) => now.checked_add(Duration::from_millis(ms)),
            (None | Some(_), None) | (Some(_), Some(_)) => None,
        };
        process.os = Os::Alive {
            pid,
            start_deadline,
            stop_deadline: None,
        };
        let outbox = std::mem::take(&mut process.outbox);
        let instant = process.app.config.ready_on == ReadyOn::Instant;
        self.effects.extend(
            outbox
                .into_iter()
                .map(|message| Effect::Message { id, message }),
        );
        if let Some(signal) = kill {
            self.effects.push_back(Effect::Signal { id, signal });
        } else if instant {
            self.become_ready(now, id);
        }
        self.finish();
    }

    /// The `Spawn` failed: an `error` record, then the process is treated as
    /// exited (a crash, by the usual rules).
    pub fn handle_spawn_failed(&mut self, now: Instant, id: ProcessId, error: String) {
        let spawning = self
            .get(id)
            .is_some_and(|p| matches!(p.os, Os::Spawning { .. }));
        if !spawning {
            tracing::debug!(%id, "spawn failed: process is not being spawned");
            return;
        }
        self.log(id, LogKind::Error, error);
        self.on_event(now, id, Event::Exit(ProcessEnd::default()));
        self.finish();
    }

    /// The process reported ready. Ignored if it is stopping, being killed,
    /// timed out, already ready, or not (yet) alive.
    pub fn handle_ready(&mut self, now: Instant, id: ProcessId) {
        self.become_ready(now, id);
        self.finish();
    }

    /// The OS process is gone. Ignored for a record without a process (a
    /// late report for an id that has since been respawned).
    pub fn handle_exit(&mut self, now: Instant, id: ProcessId, end: ProcessEnd) {
        let created = self.get(id).is_some_and(Process::created);
        if !created {
            tracing::debug!(%id, "exit: no such process");
            return;
        }
        self.on_event(now, id, Event::Exit(end));
        self.finish();
    }

    /// Fires every timer due at or before `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, kind, id)) = self.earliest_timer() {
            if at > now {
                break;
            }
            self.fire(now, kind, id);
        }
        self.finish();
    }

    // ---- queries ----------------------------------------------------------------

    /// The stored apps, in table order.
    pub fn apps(&self) -> impl Iterator<Item = &AppInfo> + '_ {
        self.apps.iter().map(|app| &**app)
    }

    /// The current revision of an app.
    pub fn app(&self, name: &str) -> Option<&Arc<AppInfo>> {
        self.apps.get(name)
    }

    /// Every process, in table order.
    pub fn processes(&self) -> Vec<ProcessView> {
        self.procs.iter().map(|p| self.view(p)).collect()
    }

    /// One process.
    pub fn process(&self, id: ProcessId) -> Option<ProcessView> {
        self.get(id).map(|p| self.view(p))
    }

    /// Every process is running and logging is not busy (spec §4.10).
    pub fn is_at_rest(&self) -> bool {
        !self.logging_busy
            && self
                .procs
                .iter()
                .all(|p| p.generation == Generation::Running)
    }

    /// No processes at all.
    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    /// No processes except logging processes (apps of type `logger`).
    pub fn only_loggers_left(&self) -> bool {
        self.procs.iter().all(Process::is_logger)
    }

    /// Whether [`kill_all`](Self::kill_all) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    // ---- outputs ------------------------------------------------------------------

    /// The next thing for the shell to do.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.earliest_timer().map(|(at, _, _)| at)
    }

    // ---- internals ------------------------------------------------------------------

    fn view(&self, process: &Process) -> ProcessView {
        ProcessView::new(process, !self.apps.is_current(&process.app))
    }

    fn index(&self, id: ProcessId) -> Option<usize> {
        self.procs.iter().position(|p| p.id == id)
    }

    fn get(&self, id: ProcessId) -> Option<&Process> {
        self.procs.iter().find(|p| p.id == id)
    }

    fn get_mut(&mut self, id: ProcessId) -> Option<&mut Process> {
        self.procs.iter_mut().find(|p| p.id == id)
    }

    /// End of every public call: the wait check (the original runs it on the
    /// next tick after every move and exit; checking once the cascade has
    /// settled is the same), then the invariants in debug builds.
    fn finish(&mut self) {
        if !self.waiters.is_empty() && self.is_at_rest() {
            let empty = self.procs.is_empty();
            let effects = &mut self.effects;
            self.waiters.retain(|waiter| {
                let done = !waiter.all || empty;
                if done {
                    effects.push_back(Effect::WaitDone { wait: waiter.id });
                }
                !done
            });
        }
        #[cfg(debug_assertions)]
        self.check_invariants();
    }
}

#[cfg(test)]
mod tests;
