//! Property tests: random interleavings of client commands and world events
//! through the [`Sim`], with the safety properties checked after every step
//! and liveness checked at the end.
//!
//! Safety (every step): the core's invariants; no signal, disconnect or
//! message before the process exists and no record forgotten while its OS
//! process runs (both checked by the `Sim`'s fake OS); a stopped or killed
//! process is never spawned again; a kill reaches the process once it
//! exists; nothing is spawned after `kill_all`; `max-instances` holds.
//!
//! Liveness: after the random phase, `kill_all` (or stopping everything)
//! and answering the signals ends every process; with only starts and
//! readiness, each app's running set converges to `instances`.

use std::collections::{BTreeSet, HashMap, HashSet};

use final_pm_protocol::{
    AppConfig, AppType, Generation, KillSignal, ProcessId, ReadyOn, StopSignal,
};
use proptest::prelude::*;
use proptest::sample::Index;

use super::sim::{Sim, app};
use crate::core::{Effect, ProcessEnd, Signal};

const NAMES: [&str; 3] = ["a", "b", "log"];

#[derive(Debug, Clone)]
struct AppSpec {
    name: usize,
    instances: u32,
    /// 0 = unlimited, else `instances + extra`.
    max_extra: u32,
    unique: bool,
    restart_crashing: bool,
    restart_new_crashing: bool,
    delay: u64,
    start_timeout: Option<u64>,
    stop_timeout: Option<u64>,
    kill_sigterm: bool,
    stop_signal: StopSignal,
    instant: bool,
}

impl AppSpec {
    fn config(&self) -> AppConfig {
        let mut config = app(NAMES[self.name]);
        if self.name == 2 {
            config.app_type = AppType::Logger;
        }
        config.instances = self.instances;
        config.max_instances = if self.max_extra == 0 {
            0
        } else {
            self.instances + self.max_extra
        };
        config.unique_instances = self.unique;
        config.restart_crashing = self.restart_crashing;
        config.restart_new_crashing = self.restart_new_crashing;
        config.restart_crashing_delay = self.delay;
        config.start_timeout = self.start_timeout;
        config.stop_timeout = self.stop_timeout;
        config.kill_signal = if self.kill_sigterm {
            KillSignal::Sigterm
        } else {
            KillSignal::Sigkill
        };
        config.stop_signal = self.stop_signal;
        config.ready_on = if self.instant {
            ReadyOn::Instant
        } else {
            ReadyOn::Message
        };
        config
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(AppSpec),
    Delete(usize),
    Start {
        name: usize,
        number: Option<u32>,
        args: bool,
    },
    Stop(Index),
    Kill(Index),
    Send(Index),
    KillAll,
    Wait(bool),
    SpawnOk(Index),
    SpawnFail(Index),
    Ready(Index),
    Exit {
        pick: Index,
        code: Option<i32>,
        signal: Option<Signal>,
    },
    AdvanceToDeadline,
    Advance(u64),
}

fn app_spec() -> impl Strategy<Value = AppSpec> {
    (
        (
            0..3usize,
            1..=3u32,
            prop_oneof![Just(0u32), 1..=2u32],
            any::<bool>(),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just(0u64), Just(10), Just(100)],
        ),
        (
            proptest::option::of(5..100u64),
            proptest::option::of(5..100u64),
            any::<bool>(),
            prop_oneof![
                Just(StopSignal::Sigint),
                Just(StopSignal::Sigterm),
                Just(StopSignal::Disconnect),
                Just(StopSignal::Message)
            ],
            prop::bool::weighted(0.2),
        ),
    )
        .prop_map(
            |(
                (name, instances, max_extra, unique),
                (restart_crashing, restart_new_crashing, delay),
                (start_timeout, stop_timeout, kill_sigterm, stop_signal, instant),
            )| AppSpec {
                name,
                instances,
                max_extra,
                unique,
                restart_crashing,
                restart_new_crashing,
                delay,
                start_timeout,
                stop_timeout,
                kill_sigterm,
                stop_signal,
                instant,
            },
        )
}

fn signal() -> impl Strategy<Value = Option<Signal>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Signal::Int)),
        1 => Just(Some(Signal::Term)),
        1 => Just(Some(Signal::Kill)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // kill_all ends the interesting part of a sequence, so it is rare.
    prop_oneof![
        12 => app_spec().prop_map(Op::Add),
        2 => (0..3usize).prop_map(Op::Delete),
        32 => (0..3usize, proptest::option::of(0..4u32), any::<bool>())
            .prop_map(|(name, number, args)| Op::Start { name, number, args }),
        14 => any::<Index>().prop_map(Op::Stop),
        8 => any::<Index>().prop_map(Op::Kill),
        4 => any::<Index>().prop_map(Op::Send),
        1 => Just(Op::KillAll),
        4 => any::<bool>().prop_map(Op::Wait),
        20 => any::<Index>().prop_map(Op::SpawnOk),
        4 => any::<Index>().prop_map(Op::SpawnFail),
        24 => any::<Index>().prop_map(Op::Ready),
        16 => (any::<Index>(), proptest::option::of(-1..3i32), signal())
            .prop_map(|(pick, code, signal)| Op::Exit { pick, code, signal }),
        8 => Just(Op::AdvanceToDeadline),
        8 => (0..200u64).prop_map(Op::Advance),
    ]
}

/// What the property checks remember between steps.
#[derive(Debug, Default)]
struct Tracker {
    /// Effects already checked.
    seen: usize,
    /// Stopped or killed: never spawned again.
    ended: HashSet<ProcessId>,
    /// Killed while the spawn was in flight: the signal is still owed.
    owed_kill: HashSet<ProcessId>,
    shut_down: bool,
    /// Every `max-instances` ever stored per app name.
    caps: HashMap<String, Vec<u32>>,
    waits: Vec<crate::core::WaitId>,
}

impl Tracker {
    /// Checks the effects up to `upto` not checked yet, in order.
    fn scan(&mut self, sim: &Sim, upto: usize) -> Result<(), TestCaseError> {
        for effect in &sim.effects[self.seen..upto] {
            match effect {
                Effect::Spawn { id, .. } => {
                    prop_assert!(
                        !self.ended.contains(id),
                        "stopped/killed {id} spawned again"
                    );
                    prop_assert!(!self.shut_down, "{id} spawned after kill_all");
                }
                Effect::Signal { id, .. } | Effect::Forget { id } => {
                    self.owed_kill.remove(id);
                }
                Effect::Disconnect { .. }
                | Effect::Message { .. }
                | Effect::Log { .. }
                | Effect::WaitDone { .. } => {}
            }
        }
        self.seen = upto;
        Ok(())
    }

    /// Checks the effects emitted since the last check and the state now.
    fn check(&mut self, sim: &Sim) -> Result<(), TestCaseError> {
        self.scan(sim, sim.effects.len())?;
        for id in &self.owed_kill {
            prop_assert!(
                sim.pending_spawns.contains(id),
                "kill of {id} was lost: no signal, and no spawn in flight"
            );
        }
        let processes = sim.core.processes();
        for (name, caps) in &self.caps {
            if caps.contains(&0) {
                continue;
            }
            let cap = caps.iter().copied().max().unwrap_or(0) as usize;
            let counted = processes
                .iter()
                .filter(|p| &p.app_name == name && p.generation != Generation::Queue)
                .count();
            prop_assert!(
                counted <= cap,
                "{name}: {counted} processes > max-instances {cap}"
            );
        }
        Ok(())
    }

    /// After a stop or kill of `id` that the core accepted; `before` is where
    /// the effects of that call begin.
    fn ended(
        &mut self,
        sim: &Sim,
        id: ProcessId,
        before: usize,
        kill: bool,
    ) -> Result<(), TestCaseError> {
        // What happened before the call is judged without this stop/kill.
        self.scan(sim, before)?;
        self.ended.insert(id);
        let answered = sim.effects[before..].iter().any(
            |e| matches!(e, Effect::Signal { id: of, .. } | Effect::Forget { id: of } if *of == id),
        );
        if kill && !answered {
            self.owed_kill.insert(id);
        }
        Ok(())
    }
}

fn pick<T: Copy>(items: &[T], index: Index) -> Option<T> {
    (!items.is_empty()).then(|| items[index.index(items.len())])
}

fn all_ids(sim: &Sim) -> Vec<ProcessId> {
    sim.core.processes().iter().map(|p| p.id).collect()
}

fn alive_ids(sim: &Sim) -> Vec<ProcessId> {
    sim.alive.keys().copied().collect()
}

fn apply(sim: &mut Sim, tracker: &mut Tracker, op: &Op) -> Result<(), TestCaseError> {
    let now = sim.now;
    let before = sim.effects.len();
    match op {
        Op::Add(spec) => {
            let config = spec.config();
            let name = config.name.clone();
            let cap = config.max_instances;
            if sim.core.add_app(now, config, false).is_ok() {
                tracker.caps.entry(name).or_default().push(cap);
            }
        }
        Op::Delete(name) => {
            let _ = sim.core.delete_app(now, NAMES[*name], false);
        }
        Op::Start { name, number, args } => {
            let name = NAMES[*name];
            let result = if *args {
                sim.core
                    .start_with(now, name, *number, Some(vec!["x.txt".into()]), None)
            } else {
                sim.core.start(now, name, *number)
            };
            if tracker.shut_down {
                prop_assert!(result.is_err(), "start accepted after kill_all");
            }
        }
        Op::Stop(index) => {
            if let Some(id) = pick(&all_ids(sim), *index) {
                prop_assert!(sim.core.stop(now, id).is_ok());
                sim.step();
                tracker.ended(sim, id, before, false)?;
            }
        }
        Op::Kill(index) => {
            if let Some(id) = pick(&all_ids(sim), *index) {
                prop_assert!(sim.core.kill(now, id).is_ok());
                sim.step();
                tracker.ended(sim, id, before, true)?;
            }
        }
        Op::Send(index) => {
            if let Some(id) = pick(&all_ids(sim), *index) {
                prop_assert!(sim.core.send(now, id, serde_json::json!("hi")).is_ok());
            }
        }
        Op::KillAll => {
            let ids = all_ids(sim);
            sim.core.kill_all(now);
            tracker.shut_down = true;
            sim.step();
            for id in ids {
                tracker.ended(sim, id, before, true)?;
            }
        }
        Op::Wait(all) => tracker.waits.push(sim.core.wait(now, *all)),
        Op::SpawnOk(index) => {
            if let Some(id) = pick(&sim.pending_spawns, *index) {
                sim.answer_spawn(id);
            }
        }
        Op::SpawnFail(index) => {
            if let Some(id) = pick(&sim.pending_spawns, *index) {
                sim.fail_spawn(id, "spawn failed");
            }
        }
        Op::Ready(index) => {
            if let Some(id) = pick(&alive_ids(sim), *index) {
                sim.ready(id);
            }
        }
        Op::Exit {
            pick: index,
            code,
            signal,
        } => {
            if let Some(id) = pick(&alive_ids(sim), *index) {
                let end = ProcessEnd {
                    code: *code,
                    signal: signal.map(|s| s.as_str().to_owned()),
                };
                sim.exit(id, end);
            }
        }
        Op::AdvanceToDeadline => {
            sim.advance_to_next_deadline();
        }
        Op::Advance(ms) => sim.advance(*ms),
    }
    sim.step();
    tracker.check(sim)
}

/// Answers everything the shell would: pending spawns succeed, and every
/// process that got a kill signal dies of it.
fn drive_kills(sim: &mut Sim, tracker: &mut Tracker) -> Result<(), TestCaseError> {
    for _ in 0..200 {
        if sim.core.is_empty() && sim.pending_spawns.is_empty() {
            break;
        }
        while let Some(&id) = sim.pending_spawns.first() {
            sim.answer_spawn(id);
        }
        for id in alive_ids(sim) {
            if sim.signals(id).contains(&Signal::Kill) {
                sim.exit(id, ProcessEnd::signal("SIGKILL"));
            }
        }
        tracker.check(sim)?;
        sim.advance_to_next_deadline();
    }
    Ok(())
}

/// Stops everything, readies what must be ready to get its stop signal, and
/// lets stopped or killed processes exit.
fn drive_stops(sim: &mut Sim, tracker: &mut Tracker) -> Result<(), TestCaseError> {
    for _ in 0..200 {
        if sim.core.is_empty() && sim.pending_spawns.is_empty() {
            break;
        }
        for id in all_ids(sim) {
            let before = sim.effects.len();
            prop_assert!(sim.core.stop(sim.now, id).is_ok());
            sim.step();
            tracker.ended(sim, id, before, false)?;
        }
        while let Some(&id) = sim.pending_spawns.first() {
            sim.answer_spawn(id);
        }
        for id in alive_ids(sim) {
            sim.ready(id);
        }
        for id in alive_ids(sim) {
            let view = sim.view(id);
            if view.generation == Generation::Old || view.killing {
                sim.exit(id, ProcessEnd::code(0));
            }
        }
        tracker.check(sim)?;
        sim.advance_to_next_deadline();
    }
    Ok(())
}

fn assert_quiescent(sim: &Sim, tracker: &Tracker) -> Result<(), TestCaseError> {
    prop_assert!(
        sim.core.is_empty(),
        "left alive: {:?}",
        sim.core.processes()
    );
    prop_assert!(sim.alive.is_empty(), "OS processes left: {:?}", sim.alive);
    prop_assert!(sim.pending_spawns.is_empty());
    prop_assert_eq!(sim.core.next_deadline(), None);
    prop_assert!(
        tracker.owed_kill.is_empty(),
        "kills owed: {:?}",
        tracker.owed_kill
    );
    let mut done = HashSet::new();
    for effect in &sim.effects {
        if let Effect::WaitDone { wait } = effect {
            prop_assert!(done.insert(*wait), "{wait:?} resolved twice");
        }
    }
    for wait in &tracker.waits {
        prop_assert!(done.contains(wait), "{wait:?} never resolved");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    /// Random commands and events keep every safety property, and ending
    /// everything afterwards leaves nothing alive.
    #[test]
    fn random_interleavings_are_safe_and_end_cleanly(
        initial in proptest::collection::vec(app_spec(), 3),
        auto_spawn in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..60),
        by_kill_all in any::<bool>(),
    ) {
        let mut sim = Sim::new();
        sim.auto_spawn = auto_spawn;
        let mut tracker = Tracker::default();
        for (name, mut spec) in initial.into_iter().enumerate() {
            spec.name = name;
            apply(&mut sim, &mut tracker, &Op::Add(spec))?;
        }
        for op in &ops {
            apply(&mut sim, &mut tracker, op)?;
        }
        // Liveness: end everything and answer what the core asks.
        sim.auto_spawn = false;
        tracker.waits.push(sim.core.wait(sim.now, true));
        sim.step();
        if by_kill_all {
            sim.core.kill_all(sim.now);
            sim.step();
            drive_kills(&mut sim, &mut tracker)?;
        } else {
            drive_stops(&mut sim, &mut tracker)?;
        }
        assert_quiescent(&sim, &tracker)?;
    }
}

#[derive(Debug, Clone)]
enum GrowOp {
    Start {
        app: usize,
        number: Option<u32>,
    },
    SpawnOk(Index),
    Ready(Index),
    /// A process that got its stop signal exits.
    ExitStopped(Index),
    Advance(u64),
}

fn grow_op() -> impl Strategy<Value = GrowOp> {
    prop_oneof![
        4 => (0..2usize, proptest::option::of(0..4u32))
            .prop_map(|(app, number)| GrowOp::Start { app, number }),
        3 => any::<Index>().prop_map(GrowOp::SpawnOk),
        3 => any::<Index>().prop_map(GrowOp::Ready),
        2 => any::<Index>().prop_map(GrowOp::ExitStopped),
        1 => (0..50u64).prop_map(GrowOp::Advance),
    ]
}

/// Processes that were sent their stop signal (or message/disconnect).
fn stopped(sim: &Sim) -> Vec<ProcessId> {
    alive_ids(sim)
        .into_iter()
        .filter(|&id| sim.generation(id) == Some(Generation::Old))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    /// With only starts and readiness (and stopped processes exiting), each
    /// app settles with `min(instances, distinct numbers)` running processes
    /// (non-unique: `min(instances, starts)`).
    #[test]
    fn running_converges_to_instances(
        specs in proptest::collection::vec((1..=3u32, any::<bool>(), prop_oneof![Just(0u32), 1..=2u32]), 2),
        ops in proptest::collection::vec(grow_op(), 1..60),
    ) {
        let mut sim = Sim::new();
        sim.auto_spawn = false;
        for (i, &(instances, unique, max_extra)) in specs.iter().enumerate() {
            let mut config = app(NAMES[i]);
            config.instances = instances;
            config.unique_instances = unique;
            config.max_instances = if max_extra == 0 { 0 } else { instances + max_extra };
            sim.add(config);
        }
        let mut numbers: [BTreeSet<u32>; 2] = Default::default();
        let mut starts = [0usize; 2];
        for op in &ops {
            match op {
                GrowOp::Start { app, number } => {
                    sim.start_n(NAMES[*app], *number);
                    numbers[*app].insert(number.unwrap_or(0));
                    starts[*app] += 1;
                }
                GrowOp::SpawnOk(index) => {
                    if let Some(id) = pick(&sim.pending_spawns, *index) {
                        sim.answer_spawn(id);
                    }
                }
                GrowOp::Ready(index) => {
                    if let Some(id) = pick(&alive_ids(&sim), *index) {
                        sim.ready(id);
                    }
                }
                GrowOp::ExitStopped(index) => {
                    if let Some(id) = pick(&stopped(&sim), *index) {
                        sim.exit(id, ProcessEnd::code(0));
                    }
                }
                GrowOp::Advance(ms) => sim.advance(*ms),
            }
        }
        // Settle.
        let wait = sim.core.wait(sim.now, false);
        sim.step();
        for _ in 0..500 {
            if sim.wait_done(wait) {
                break;
            }
            while let Some(&id) = sim.pending_spawns.first() {
                sim.answer_spawn(id);
            }
            for id in alive_ids(&sim) {
                sim.ready(id);
            }
            for id in stopped(&sim) {
                sim.exit(id, ProcessEnd::code(0));
            }
            sim.advance_to_next_deadline();
        }
        prop_assert!(sim.wait_done(wait), "never at rest: {:?}", sim.core.processes());
        for (i, &(instances, unique, _)) in specs.iter().enumerate() {
            let running = sim.running(NAMES[i]).len();
            let candidates = if unique { numbers[i].len() } else { starts[i] };
            prop_assert_eq!(
                running,
                candidates.min(instances as usize),
                "app {} (unique {})", NAMES[i], unique
            );
            prop_assert_eq!(sim.core.processes().iter().filter(|p| p.app_name == NAMES[i]).count(), running);
        }
    }
}
