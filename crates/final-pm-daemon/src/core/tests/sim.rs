//! `Sim`: a [`Core`] plus a virtual clock and a fake OS, like quinn's `Pair`.
//!
//! `step()` drains the effects, records them, and plays the shell: it answers
//! `Spawn` with `handle_spawned` and a fake pid (or parks it when
//! `auto_spawn` is off, so a test can put other calls between the spawn and
//! its answer). The fake OS also checks the shell-side promises of the core
//! on every effect: signals only reach processes that exist, and no record is
//! forgotten while its OS process still runs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use final_pm_protocol::{AppConfig, Generation, LogKind, ProcessId, ReadyOn};

use crate::core::{Core, Effect, ProcessEnd, ProcessView, Signal, WaitId};

/// A lifecycle record as the tests read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) kind: LogKind,
    pub(super) generation: Generation,
    pub(super) text: String,
}

#[derive(Debug)]
pub(super) struct Sim {
    pub(super) core: Core,
    pub(super) t0: Instant,
    pub(super) now: Instant,
    /// Answer `Spawn` at once with `handle_spawned`.
    pub(super) auto_spawn: bool,
    /// Spawns not answered yet (when `auto_spawn` is off), oldest first.
    pub(super) pending_spawns: Vec<ProcessId>,
    /// Every effect seen, in order.
    pub(super) effects: Vec<Effect>,
    /// OS processes that exist: id → pid.
    pub(super) alive: BTreeMap<ProcessId, u32>,
    next_pid: u32,
}

/// An app with test-friendly defaults: readiness only when the test says so
/// (`ready-on: message`), a one-second restart delay.
pub(super) fn app(name: &str) -> AppConfig {
    let mut app = AppConfig::new(name, "/srv/app", "/srv/app/run");
    app.ready_on = ReadyOn::Message;
    app
}

impl Sim {
    pub(super) fn new() -> Self {
        let t0 = Instant::now();
        Self {
            core: Core::new(),
            t0,
            now: t0,
            auto_spawn: true,
            pending_spawns: Vec::new(),
            effects: Vec::new(),
            alive: BTreeMap::new(),
            next_pid: 1000,
        }
    }

    /// A sim with these apps added.
    pub(super) fn with(apps: impl IntoIterator<Item = AppConfig>) -> Self {
        let mut sim = Self::new();
        for app in apps {
            sim.add(app);
        }
        sim
    }

    /// Milliseconds since the start of the sim.
    pub(super) fn ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    // ---- driving --------------------------------------------------------------

    /// Drains and plays the effects until there are none.
    pub(super) fn step(&mut self) {
        while let Some(effect) = self.core.poll_effect() {
            self.observe(&effect);
            self.effects.push(effect.clone());
            if let Effect::Spawn { id, .. } = effect {
                if self.auto_spawn {
                    self.answer_spawn(id);
                } else {
                    self.pending_spawns.push(id);
                }
            }
        }
        self.core.check_invariants();
    }

    /// What a real shell would find impossible to do.
    fn observe(&self, effect: &Effect) {
        match effect {
            Effect::Signal { id, .. } | Effect::Disconnect { id } | Effect::Message { id, .. } => {
                assert!(
                    self.alive.contains_key(id),
                    "{effect:?} names a process that does not exist (yet)"
                );
            }
            Effect::Forget { id } => assert!(
                !self.alive.contains_key(id),
                "process {id} forgotten while its OS process runs (leak)"
            ),
            Effect::Spawn { id, .. } => assert!(
                !self.alive.contains_key(id) && !self.pending_spawns.contains(id),
                "process {id} spawned twice"
            ),
            Effect::Log { .. } | Effect::WaitDone { .. } => {}
        }
    }

    /// Answers a parked or just emitted spawn with success.
    pub(super) fn answer_spawn(&mut self, id: ProcessId) {
        self.pending_spawns.retain(|p| *p != id);
        self.next_pid += 1;
        self.alive.insert(id, self.next_pid);
        self.core.handle_spawned(self.now, id, self.next_pid);
        self.step();
    }

    /// Answers a parked spawn with failure.
    pub(super) fn fail_spawn(&mut self, id: ProcessId, error: &str) {
        self.pending_spawns.retain(|p| *p != id);
        self.core
            .handle_spawn_failed(self.now, id, error.to_owned());
        self.step();
    }

    pub(super) fn add(&mut self, app: AppConfig) {
        self.core.add_app(self.now, app, false).expect("add");
        self.step();
    }

    pub(super) fn start(&mut self, name: &str) -> ProcessId {
        self.start_n(name, None)
    }

    pub(super) fn start_n(&mut self, name: &str, number: Option<u32>) -> ProcessId {
        let id = self.core.start(self.now, name, number).expect("start");
        self.step();
        id
    }

    pub(super) fn stop(&mut self, id: ProcessId) {
        self.core.stop(self.now, id).expect("stop");
        self.step();
    }

    pub(super) fn kill(&mut self, id: ProcessId) {
        self.core.kill(self.now, id).expect("kill");
        self.step();
    }

    pub(super) fn kill_all(&mut self) {
        self.core.kill_all(self.now);
        self.step();
    }

    pub(super) fn ready(&mut self, id: ProcessId) {
        self.core.handle_ready(self.now, id);
        self.step();
    }

    /// The OS process ends.
    pub(super) fn exit(&mut self, id: ProcessId, end: ProcessEnd) {
        assert!(
            self.alive.remove(&id).is_some(),
            "process {id} is not alive"
        );
        self.core.handle_exit(self.now, id, end);
        self.step();
    }

    pub(super) fn wait(&mut self, all: bool) -> WaitId {
        let wait = self.core.wait(self.now, all);
        self.step();
        wait
    }

    /// Moves the clock and fires what is due.
    pub(super) fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        self.core.handle_timeout(self.now);
        self.step();
    }

    /// Jumps to the next deadline and fires it; false if there is none.
    pub(super) fn advance_to_next_deadline(&mut self) -> bool {
        let Some(at) = self.core.next_deadline() else {
            return false;
        };
        self.now = self.now.max(at);
        self.core.handle_timeout(self.now);
        self.step();
        true
    }

    // ---- reading ----------------------------------------------------------------

    pub(super) fn view(&self, id: ProcessId) -> ProcessView {
        self.core.process(id).expect("no such process")
    }

    pub(super) fn generation(&self, id: ProcessId) -> Option<Generation> {
        self.core.process(id).map(|p| p.generation)
    }

    pub(super) fn in_generation(&self, name: &str, generation: Generation) -> Vec<ProcessView> {
        self.core
            .processes()
            .into_iter()
            .filter(|p| p.app_name == name && p.generation == generation)
            .collect()
    }

    pub(super) fn running(&self, name: &str) -> Vec<ProcessView> {
        self.in_generation(name, Generation::Running)
    }

    /// The lifecycle records of a process, in order.
    pub(super) fn records(&self, id: ProcessId) -> Vec<Record> {
        self.effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Log {
                    id: of,
                    kind,
                    generation,
                    text,
                    ..
                } if *of == id => Some(Record {
                    kind: *kind,
                    generation: generation.expect("the core always names the generation"),
                    text: text.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    /// The record types of a process, in order.
    pub(super) fn kinds(&self, id: ProcessId) -> Vec<&'static str> {
        self.records(id).iter().map(|r| r.kind.as_str()).collect()
    }

    /// `(type, generation)` of a process's records.
    pub(super) fn kinds_gens(&self, id: ProcessId) -> Vec<(&'static str, &'static str)> {
        self.records(id)
            .iter()
            .map(|r| (r.kind.as_str(), r.generation.as_str()))
            .collect()
    }

    /// Texts of the records of one type.
    pub(super) fn texts(&self, id: ProcessId, kind: LogKind) -> Vec<String> {
        self.records(id)
            .into_iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.text)
            .collect()
    }

    /// Signals sent to a process, in order.
    pub(super) fn signals(&self, id: ProcessId) -> Vec<Signal> {
        self.effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Signal { id: of, signal } if *of == id => Some(*signal),
                _ => None,
            })
            .collect()
    }

    /// How often the process was spawned.
    pub(super) fn spawns(&self, id: ProcessId) -> usize {
        self.effects
            .iter()
            .filter(|e| matches!(e, Effect::Spawn { id: of, .. } if *of == id))
            .count()
    }

    pub(super) fn wait_done(&self, wait: WaitId) -> bool {
        self.effects
            .iter()
            .any(|e| matches!(e, Effect::WaitDone { wait: w } if *w == wait))
    }

    /// Forgets the effects seen so far (keeps the fake OS).
    pub(super) fn clear(&mut self) {
        self.effects.clear();
    }
}
