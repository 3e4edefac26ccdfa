//! The generation state machine: the transition table of spec §4.3 as one
//! `match`, and the process operations it calls (start, create, sendStop,
//! sendKill, exit; §4.2), restart rules (§4.4), the queue (§4.5), respawn
//! (§4.6) and reconciliation (§4.7).
//!
//! Everything here runs synchronously inside one public call of
//! [`Core`]: a move runs the new generation's `added` rule at once, which may
//! move other processes, emit signals and arm timers, and so on until the
//! cascade settles. Processes are addressed by id and looked up again after
//! every step, because any step may remove a record (a synthetic exit) or
//! replace it (a respawn reuses the id).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use final_pm_protocol::{AppType, Generation, LogKind, ProcessId, StopSignal};

use super::Core;
use super::effect::{Effect, ProcessEnd, Signal, StopKind};
use super::process::{Os, Process};

/// An event raised on a process's generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The process just entered its generation.
    Added,
    /// The process was started (it leaves the queue).
    Start,
    /// The process reported ready.
    Ready,
    /// API stop.
    Stop,
    /// API kill, daemon kill, or an internal kill.
    Kill(KillMode),
    /// The start timer fired.
    StartTimeout,
    /// The stop timer fired.
    StopTimeout,
    /// The process is gone.
    Exit(ProcessEnd),
}

/// Which kill, deciding the signal and what a repeated kill does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KillMode {
    /// The app's kill signal; nothing if already killing (timeouts, stop of
    /// a queued process).
    Internal,
    /// A client's `kill`: the app's kill signal, and SIGKILL if the process
    /// is already being killed and still alive (decisions.md, bug 26).
    Api,
    /// Daemon shutdown: SIGKILL, resent even to processes already killing.
    Forced,
}

/// What the generation does after a process left it by exiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterExit {
    /// Queued processes were never counted: nothing to release.
    Nothing,
    /// Release one queued process of the app.
    StartQueued,
    /// Release one queued process, then respawn by the given rule.
    StartQueuedAndRespawn(Respawn),
}

/// Which restart rule of §4.4 applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Respawn {
    /// Exit while starting: `restart-new-crashing`, and a start timeout
    /// counts as a crash even though it killed the process.
    New,
    /// Exit while running: `restart-crashing`.
    Running,
}

/// Which timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// A restart delay ended: spawn.
    Delay,
    /// Not ready in time.
    Start,
    /// Not gone in time after the stop signal.
    Stop,
}

impl Core {
    /// The transition table (spec §4.3). Exhaustive over generation × event
    /// on purpose: a new generation or event must be placed in every row.
    pub(crate) fn on_event(&mut self, now: Instant, id: ProcessId, event: Event) {
        use Generation::{Marked, New, Old, Queue, Running};
        let Some(generation) = self.get(id).map(|p| p.generation) else {
            return;
        };
        match (generation, event) {
            // add (entered)
            (Queue, Event::Added) => self.start_if_capacity(now, id),
            (Running, Event::Added) => self.reconcile(now, id),
            (Old, Event::Added) => self.send_stop(now, id),
            (New | Marked, Event::Added) => {}
            // start
            (Queue, Event::Start) => self.move_to(now, id, New),
            (New | Running | Old | Marked, Event::Start) => {}
            // ready
            (New, Event::Ready) => self.move_to(now, id, Running),
            (Marked, Event::Ready) => self.move_to(now, id, Old),
            (Queue | Running | Old, Event::Ready) => {}
            // API stop
            (Queue, Event::Stop) => self.send_kill(now, id, KillMode::Internal),
            (New, Event::Stop) => {
                // A created (or being created) process may not get its stop
                // signal before it is ready: park it in marked. One that does
                // not exist yet is aborted (pre-start), which also covers a
                // start whose spawn is still pending (bug 5).
                if self.get(id).is_some_and(Process::created) {
                    self.move_to(now, id, Marked);
                } else {
                    self.send_stop(now, id);
                }
            }
            (Running, Event::Stop) => self.move_to(now, id, Old),
            (Old | Marked, Event::Stop) => {}
            // kill
            (Queue | New | Running | Old | Marked, Event::Kill(mode)) => {
                self.send_kill(now, id, mode);
            }
            // start timeout
            (New | Marked, Event::StartTimeout) => self.send_kill(now, id, KillMode::Internal),
            (Queue | Running | Old, Event::StartTimeout) => {}
            // stop timeout
            (Old, Event::StopTimeout) => self.send_kill(now, id, KillMode::Internal),
            (Queue | New | Running | Marked, Event::StopTimeout) => {}
            // exit
            (Queue, Event::Exit(end)) => self.exit(now, id, end, AfterExit::Nothing),
            (New, Event::Exit(end)) => {
                self.exit(now, id, end, AfterExit::StartQueuedAndRespawn(Respawn::New));
            }
            (Running, Event::Exit(end)) => {
                self.exit(
                    now,
                    id,
                    end,
                    AfterExit::StartQueuedAndRespawn(Respawn::Running),
                );
            }
            (Old | Marked, Event::Exit(end)) => self.exit(now, id, end, AfterExit::StartQueued),
        }
    }

    /// Creates a record and puts it in the queue, which starts it if the
    /// app's capacity allows.
    pub(crate) fn create_process(&mut self, now: Instant, process: Process) {
        let id = process.id;
        debug_assert!(self.get(id).is_none(), "process {id} already exists");
        self.procs.push(process);
        self.enter(now, id, Generation::Queue);
    }

    /// A move: log it, change the generation, run the new one's `added` rule.
    pub(crate) fn move_to(&mut self, now: Instant, id: ProcessId, to: Generation) {
        let Some(process) = self.get_mut(id) else {
            return;
        };
        process.generation = to;
        self.enter(now, id, to);
    }

    fn enter(&mut self, now: Instant, id: ProcessId, to: Generation) {
        self.log(id, LogKind::Moved, format!("moved to {to} generation"));
        self.on_event(now, id, Event::Added);
    }

    // ---- the queue and max-instances (§4.5) ----------------------------

    /// Whether one more process of `candidate`'s app may leave the queue.
    ///
    /// Counts the app's processes in new, running, old and marked, and takes
    /// `max-instances` from the latest revision among them, the candidate and
    /// the app table's current entry. The table entry is our addition: it is
    /// what lets a re-add that raises `max-instances` release queued
    /// processes (decisions.md, bug 29).
    fn capacity_allows(&self, candidate: &Process) -> bool {
        let name = candidate.name();
        let mut latest = &candidate.app;
        let mut count: u64 = 0;
        for process in self.procs.iter().filter(|p| p.name() == name) {
            match process.generation {
                Generation::Queue => continue,
                Generation::New | Generation::Running | Generation::Old | Generation::Marked => {
                    count += 1;
                }
            }
            if process.app.revision > latest.revision {
                latest = &process.app;
            }
        }
        if let Some(current) = self.apps.get(name)
            && current.revision > latest.revision
        {
            latest = current;
        }
        let max = u64::from(latest.config.max_instances);
        max == 0 || max > count
    }

    fn start_if_capacity(&mut self, now: Instant, id: ProcessId) {
        if self.shutting_down {
            return;
        }
        if self.get(id).is_some_and(|p| self.capacity_allows(p)) {
            self.start_process(now, id);
        }
    }

    /// The oldest queued process of the app (§4.8), the next to release.
    fn oldest_queued(&self, name: &str) -> Option<ProcessId> {
        self.procs
            .iter()
            .filter(|p| p.generation == Generation::Queue && p.name() == name)
            .min_by_key(|p| p.age_key())
            .map(|p| p.id)
    }

    /// startQueued: after an exit, release at most one queued process.
    fn start_queued(&mut self, now: Instant, name: &str) {
        if let Some(id) = self.oldest_queued(name) {
            self.start_if_capacity(now, id);
        }
    }

    /// Releases queued processes of the app, oldest first, while capacity
    /// allows. Run when the app is added, replaced or deleted, so a raised
    /// `max-instances` takes effect without waiting for an exit.
    pub(crate) fn release_queued(&mut self, now: Instant, name: &str) {
        while let Some(id) = self.oldest_queued(name) {
            if self.shutting_down || !self.get(id).is_some_and(|p| self.capacity_allows(p)) {
                break;
            }
            self.start_process(now, id);
            debug_assert!(
                self.get(id)
                    .is_none_or(|p| p.generation != Generation::Queue),
                "a started process left the queue"
            );
        }
    }

    // ---- process operations (§4.2) ---------------------------------------

    /// start: leave the queue. With a restart delay the process sits in new
    /// with a future start time until the delay timer spawns it; without one
    /// it is spawned at once.
    fn start_process(&mut self, now: Instant, id: ProcessId) {
        let Some(process) = self.get_mut(id) else {
            return;
        };
        if process.start_time.is_some() || process.killing {
            return;
        }
        let delay = process.start_delay;
        let start_time = now.checked_add(delay).unwrap_or(now);
        process.start_time = Some(start_time);
        if delay > Duration::ZERO {
            process.os = Os::Delayed { at: start_time };
        }
        self.log(id, LogKind::Start, "starting");
        self.on_event(now, id, Event::Start);
        if self.get(id).is_some_and(|p| p.os == Os::Unstarted) {
            self.spawn(id);
        }
    }

    /// create: ask the shell for the OS process.
    pub(crate) fn spawn(&mut self, id: ProcessId) {
        let Some(process) = self.get_mut(id) else {
            return;
        };
        process.os = Os::Spawning { kill: None };
        let effect = Effect::Spawn {
            id,
            app: process.app.clone(),
            number: process.number,
            args: process.args.clone(),
            cwd: process.cwd.clone(),
            instance_number: process
                .app
                .config
                .unique_instances
                .then_some(process.number),
        };
        self.effects.push_back(effect);
    }

    /// The process became ready (already checked: alive, not stopping,
    /// killing or timed out).
    pub(crate) fn become_ready(&mut self, now: Instant, id: ProcessId) {
        let Some(process) = self.get_mut(id) else {
            return;
        };
        let ready_allowed = !process.ready
            && process.stopping.is_none()
            && !process.killing
            && !process.timeout
            && matches!(process.os, Os::Alive { .. });
        if !ready_allowed {
            return;
        }
        if let Os::Alive { start_deadline, .. } = &mut process.os {
            *start_deadline = None;
        }
        process.ready = true;
        self.on_event(now, id, Event::Ready);
    }

    /// sendStop: the graceful stop. Only a ready process gets its stop
    /// signal; a delayed one is aborted with the synthetic `pre-start` exit;
    /// anything else is left alone (its generation keeps the stop pending,
    /// see marked).
    fn send_stop(&mut self, now: Instant, id: ProcessId) {
        let Some(process) = self.get_mut(id) else {
            return;
        };
        if process.stopping.is_some() || process.killing {
            return;
        }
        match process.os {
            Os::Delayed { .. } => {
                let kind = StopKind::PreStart;
                process.stopping = Some(kind);
                process.os = Os::Unstarted;
                self.log(id, LogKind::Stop, format!("signal={}", kind.as_str()));
                let end = ProcessEnd {
                    code: Some(0),
                    signal: Some(kind.as_str().to_owned()),
                };
                self.on_event(now, id, Event::Exit(end));
            }
            Os::Alive { .. } if process.ready => {
                let signal = process.app.config.stop_signal;
                let stop_deadline = process
                    .app
                    .config
                    .stop_timeout
                    .and_then(|ms| now.checked_add(Duration::from_millis(ms)));
                let kind = StopKind::Delivered(signal);
                process.stopping = Some(kind);
                if let Os::Alive {
                    stop_deadline: deadline,
                    ..
                } = &mut process.os
                {
                    *deadline = stop_deadline;
                }
                self.log(id, LogKind::Stop, format!("signal={}", kind.as_str()));
                let effect = match signal {
                    StopSignal::Sigint => Effect::Signal {
                        id,
                        signal: Signal::Int,
                    },
                    StopSignal::Sigterm => Effect::Signal {
                        id,
                        signal: Signal::Term,
                    },
                    StopSignal::Disconnect => Effect::Disconnect { id },
                    StopSignal::Message => Effect::Message {
                        id,
                        message: serde_json::Value::from("stop"),
                    },
                };
                self.effects.push_back(effect);
            }
            Os::Unstarted | Os::Spawning { .. } | Os::Alive { .. } => {}
        }
    }

    /// sendKill. A process that does not exist yet exits at once
    /// (synthetically); one whose spawn is in flight gets the signal as soon
    /// as its pid is known.
    fn send_kill(&mut self, now: Instant, id: ProcessId, mode: KillMode) {
        let Some(process) = self.get_mut(id) else {
            return;
        };
        let signal = if process.killing {
            match mode {
                KillMode::Internal => return,
                KillMode::Api | KillMode::Forced => Signal::Kill,
            }
        } else {
            match mode {
                KillMode::Internal | KillMode::Api => process.app.config.kill_signal.into(),
                KillMode::Forced => Signal::Kill,
            }
        };
        process.killing = true;
        let mut synthetic_exit = false;
        match &mut process.os {
            Os::Alive {
                start_deadline,
                stop_deadline,
                ..
            } => {
                // The kill supersedes both timers: a late start timeout must
                // not turn an explicit kill into a crash (respawn), and the
                // stop timeout would only repeat the kill.
                *start_deadline = None;
                *stop_deadline = None;
                self.effects.push_back(Effect::Signal { id, signal });
            }
            Os::Spawning { kill } => *kill = Some(signal),
            Os::Unstarted | Os::Delayed { .. } => {
                process.os = Os::Unstarted;
                synthetic_exit = true;
            }
        }
        self.log(id, LogKind::Kill, format!("signal={signal}"));
        if synthetic_exit {
            let end = ProcessEnd {
                code: Some(0),
                signal: Some(signal.as_str().to_owned()),
            };
            self.on_event(now, id, Event::Exit(end));
        }
    }

    /// The process is gone: log, drop the record, then run the generation's
    /// exit rule (after the record is gone, so capacity no longer counts it).
    fn exit(&mut self, now: Instant, id: ProcessId, end: ProcessEnd, after: AfterExit) {
        let Some(index) = self.index(id) else {
            return;
        };
        let process = self.procs.remove(index);
        self.log_process(&process, LogKind::Exit, end.to_string());
        self.effects.push_back(Effect::Forget { id });
        let respawn = match after {
            AfterExit::Nothing => return,
            AfterExit::StartQueued => None,
            AfterExit::StartQueuedAndRespawn(rule) => Some(rule),
        };
        self.start_queued(now, process.name());
        if let Some(rule) = respawn
            && self.should_respawn(&process, rule)
        {
            self.respawn(now, process);
        }
    }

    /// The restart rules of §4.4. Any exit not caused by a stop or kill is a
    /// crash, whatever its code (kept from the original, item 27).
    fn should_respawn(&self, process: &Process, rule: Respawn) -> bool {
        let config = &process.app.config;
        if self.shutting_down {
            return false;
        }
        match config.app_type {
            AppType::Logger => return false,
            AppType::Application => {}
        }
        let quiet = !process.killing && process.stopping.is_none();
        match rule {
            Respawn::New => config.restart_new_crashing && (process.timeout || quiet),
            Respawn::Running => config.restart_crashing && quiet,
        }
    }

    /// spawnCopy (§4.6): same id, number, args, cwd and app revision, one
    /// more crash, started after `restart-crashing-delay`.
    fn respawn(&mut self, now: Instant, crashed: Process) {
        let delay = Duration::from_millis(crashed.app.config.restart_crashing_delay);
        let copy = Process {
            id: crashed.id,
            app: crashed.app,
            number: crashed.number,
            crashes: crashed.crashes.saturating_add(1),
            start_delay: delay,
            args: crashed.args,
            cwd: crashed.cwd,
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
        self.create_process(now, copy);
    }

    // ---- reconciliation (§4.7) --------------------------------------------

    /// A process entered running: settle the running set of its group.
    /// Unique numbers keep their newest holder, the newest `instances` of
    /// the latest revision are kept, non-unique processes are renumbered
    /// newest-first, and everything else (possibly the newcomer) goes to old.
    fn reconcile(&mut self, now: Instant, newcomer: ProcessId) {
        let Some(joined) = self.get(newcomer) else {
            return;
        };
        let group: Vec<&Process> = self
            .procs
            .iter()
            .filter(|p| p.generation == Generation::Running && joined.same_group(p))
            .collect();
        let Some(latest) = group.iter().map(|p| &p.app).max_by_key(|app| app.revision) else {
            return;
        };
        let instances = usize::try_from(latest.config.instances).unwrap_or(usize::MAX);

        // 1. Unique conflicts: per number, only the newest survives.
        let mut superfluous: HashSet<ProcessId> = HashSet::new();
        let mut holder: HashMap<u32, &Process> = HashMap::new();
        for &process in group.iter().filter(|p| p.app.config.unique_instances) {
            match holder.get(&process.number) {
                Some(&other) if other.age_key() > process.age_key() => {
                    superfluous.insert(process.id);
                }
                Some(&other) => {
                    superfluous.insert(other.id);
                    holder.insert(process.number, process);
                }
                None => {
                    holder.insert(process.number, process);
                }
            }
        }

        // 2. Excess: keep the newest `instances`.
        let mut kept: Vec<&Process> = group
            .iter()
            .copied()
            .filter(|p| !superfluous.contains(&p.id))
            .collect();
        kept.sort_by_key(|p| std::cmp::Reverse(p.age_key()));
        for process in kept.iter().skip(instances) {
            superfluous.insert(process.id);
        }
        kept.truncate(instances);

        // 3. Renumber non-unique processes newest-first around the numbers
        //    the kept unique ones hold.
        let taken: HashSet<u32> = kept
            .iter()
            .filter(|p| p.app.config.unique_instances)
            .map(|p| p.number)
            .collect();
        let mut renumber: Vec<(ProcessId, u32)> = Vec::new();
        let mut counter: u32 = 0;
        for process in kept.iter().filter(|p| !p.app.config.unique_instances) {
            let mut number = counter;
            while taken.contains(&number) && number < u32::MAX {
                number += 1;
            }
            renumber.push((process.id, number));
            counter = number.saturating_add(1);
        }
        // Table order, so the stop signals go out in a predictable order.
        let to_old: Vec<ProcessId> = group
            .iter()
            .filter(|p| superfluous.contains(&p.id))
            .map(|p| p.id)
            .collect();

        for (id, number) in renumber {
            if let Some(process) = self.get_mut(id) {
                process.number = number;
            }
        }
        // 4. Superfluous processes go to old (and get their stop signal).
        for id in to_old {
            if self
                .get(id)
                .is_some_and(|p| p.generation == Generation::Running)
            {
                self.move_to(now, id, Generation::Old);
            }
        }
    }

    // ---- timers ------------------------------------------------------------

    /// The earliest armed timer, with its process.
    pub(crate) fn earliest_timer(&self) -> Option<(Instant, TimerKind, ProcessId)> {
        self.procs
            .iter()
            .flat_map(|p| {
                let (delay, start, stop) = match p.os {
                    Os::Delayed { at } => (Some(at), None, None),
                    Os::Alive {
                        start_deadline,
                        stop_deadline,
                        ..
                    } => (None, start_deadline, stop_deadline),
                    Os::Unstarted | Os::Spawning { .. } => (None, None, None),
                };
                [
                    delay.map(|at| (at, TimerKind::Delay, p.id)),
                    start.map(|at| (at, TimerKind::Start, p.id)),
                    stop.map(|at| (at, TimerKind::Stop, p.id)),
                ]
            })
            .flatten()
            .min()
    }

    /// Fires one timer. It is disarmed first, so a cascade never sees it
    /// again.
    pub(crate) fn fire(&mut self, now: Instant, kind: TimerKind, id: ProcessId) {
        let Some(process) = self.get_mut(id) else {
            return;
        };
        match (kind, &mut process.os) {
            (TimerKind::Delay, Os::Delayed { .. }) => self.spawn(id),
            (
                TimerKind::Start,
                Os::Alive {
                    start_deadline: deadline @ Some(_),
                    ..
                },
            ) => {
                *deadline = None;
                process.timeout = true;
                self.log(id, LogKind::StartTimeout, "start timeout");
                self.on_event(now, id, Event::StartTimeout);
            }
            (
                TimerKind::Stop,
                Os::Alive {
                    stop_deadline: deadline @ Some(_),
                    ..
                },
            ) => {
                *deadline = None;
                process.timeout = true;
                self.log(id, LogKind::StopTimeout, "stop timeout");
                self.on_event(now, id, Event::StopTimeout);
            }
            (
                TimerKind::Delay | TimerKind::Start | TimerKind::Stop,
                Os::Unstarted | Os::Delayed { .. } | Os::Spawning { .. } | Os::Alive { .. },
            ) => {
                debug_assert!(
                    false,
                    "timer {kind:?} of process {id} fired but is not armed"
                );
            }
        }
    }

    // ---- records -------------------------------------------------------------

    /// Emits a lifecycle record about a process in the table.
    pub(crate) fn log(&mut self, id: ProcessId, kind: LogKind, text: impl Into<String>) {
        let Some(index) = self.index(id) else {
            return;
        };
        let effect = log_effect(&self.procs[index], kind, text.into());
        self.effects.push_back(effect);
    }

    /// Emits a lifecycle record about a process already removed.
    fn log_process(&mut self, process: &Process, kind: LogKind, text: String) {
        self.effects.push_back(log_effect(process, kind, text));
    }
}

fn log_effect(process: &Process, kind: LogKind, text: String) -> Effect {
    Effect::Log {
        id: process.id,
        app: process.name().to_owned(),
        number: process.number,
        pid: process.pid(),
        generation: Some(process.generation),
        kind,
        text,
    }
}
