//! One scenario per row of the transition table (spec §4.3) and per
//! lifecycle rule (§4.4–§4.10), plus the record sequences the original's
//! lifecycle tests expect (§9.6, §7.3). Names say the row or rule.

use std::time::Duration;

use final_pm_protocol::{
    AppType, ErrorCode, Generation, KillSignal, LogKind, ProcessId, ReadyOn, StopSignal,
};
use serde_json::json;

use super::sim::{Sim, app};
use crate::core::{CommandError, Effect, ProcessEnd, Signal};

use Generation::{Marked, New, Old, Queue, Running};

/// `needle` occurs in `haystack` in order (not necessarily adjacent).
fn assert_subsequence<T: PartialEq + std::fmt::Debug>(haystack: &[T], needle: &[T]) {
    let mut rest = haystack.iter();
    for wanted in needle {
        assert!(
            rest.any(|x| x == wanted),
            "{needle:?} is not a subsequence of {haystack:?} (missing {wanted:?})"
        );
    }
}

/// A sim with `app` started and ready.
fn running_app(config: final_pm_protocol::AppConfig) -> (Sim, ProcessId) {
    let name = config.name.clone();
    let mut sim = Sim::with([config]);
    let id = sim.start(&name);
    sim.ready(id);
    assert_eq!(sim.generation(id), Some(Running));
    (sim, id)
}

// ---- ids and commands -------------------------------------------------------------

#[test]
fn ids_start_at_zero_and_increase() {
    let mut sim = Sim::with([app("a"), app("b")]);
    let ids = [sim.start("a"), sim.start("b"), sim.start("a")];
    assert_eq!(ids, [ProcessId(0), ProcessId(1), ProcessId(2)]);
}

#[test]
fn unknown_names_and_ids_are_typed_errors() {
    let mut sim = Sim::with([app("a")]);
    let now = sim.now;
    let core = &mut sim.core;
    assert_eq!(
        core.start(now, "nope", None),
        Err(CommandError::UnknownApp("nope".into()))
    );
    let missing = ProcessId(99);
    let err = core.stop(now, missing).unwrap_err();
    assert_eq!(err, CommandError::NoSuchProcess(missing));
    assert_eq!(err.code(), ErrorCode::NoSuchProcess);
    assert_eq!(err.to_string(), "no process with id 99");
    assert!(core.kill(now, missing).is_err());
    assert!(core.send(now, missing, json!("x")).is_err());
    assert_eq!(
        core.delete_app(now, "nope", false),
        Err(CommandError::UnknownApp("nope".into()))
    );
    assert!(
        core.poll_effect().is_none(),
        "a refused command did something"
    );
}

// ---- add / start rows ---------------------------------------------------------------

#[test]
fn queue_added_starts_when_capacity_allows() {
    let mut sim = Sim::with([app("a")]);
    let id = sim.start("a");
    assert_eq!(sim.generation(id), Some(New));
    assert_eq!(
        sim.kinds_gens(id),
        [("moved", "queue"), ("start", "queue"), ("moved", "new")]
    );
    assert_eq!(
        sim.texts(id, LogKind::Moved),
        ["moved to queue generation", "moved to new generation"]
    );
    assert_eq!(sim.texts(id, LogKind::Start), ["starting"]);
    let view = sim.view(id);
    assert!(view.started && !view.ready && view.pid.is_some());
    assert_eq!(view.start_time, Some(sim.now));
    // The spawn comes after the move into new.
    let last_log = sim
        .effects
        .iter()
        .rposition(|e| matches!(e, Effect::Log { .. }))
        .unwrap();
    let spawn = sim
        .effects
        .iter()
        .position(|e| matches!(e, Effect::Spawn { .. }))
        .unwrap();
    assert!(spawn > last_log);
}

#[test]
fn queue_added_waits_when_at_capacity() {
    let mut capped = app("a");
    capped.max_instances = 2;
    let mut sim = Sim::with([capped]);
    let ids = [sim.start("a"), sim.start("a"), sim.start("a")];
    assert_eq!(sim.generation(ids[2]), Some(Queue));
    assert_eq!(sim.kinds(ids[2]), ["moved"]);
    let view = sim.view(ids[2]);
    assert!(!view.started && view.start_time.is_none() && view.pid.is_none());
    assert_eq!(sim.spawns(ids[2]), 0);
}

#[test]
fn new_added_does_nothing_until_ready() {
    let mut sim = Sim::with([app("a")]);
    let id = sim.start("a");
    sim.advance(60_000);
    assert_eq!(sim.generation(id), Some(New));
    assert!(sim.signals(id).is_empty());
}

#[test]
fn new_ready_moves_to_running() {
    let mut sim = Sim::with([app("a")]);
    let id = sim.start("a");
    sim.ready(id);
    assert_eq!(sim.generation(id), Some(Running));
    assert!(sim.view(id).ready);
    assert_eq!(
        sim.records(id).last().unwrap().text,
        "moved to running generation"
    );
}

#[test]
fn running_added_sends_surplus_to_old() {
    let (mut sim, first) = running_app(app("a"));
    let second = sim.start("a");
    sim.ready(second);
    assert_eq!(sim.generation(first), Some(Old));
    assert_eq!(sim.generation(second), Some(Running));
    assert_eq!(sim.signals(first), [Signal::Int]);
}

#[test]
fn old_added_sends_stop_signal_once() {
    let mut config = app("a");
    config.stop_timeout = Some(500);
    let (mut sim, id) = running_app(config);
    sim.stop(id);
    sim.stop(id);
    assert_eq!(sim.generation(id), Some(Old));
    assert_eq!(sim.signals(id), [Signal::Int]);
    assert_eq!(sim.texts(id, LogKind::Stop), ["signal=SIGINT"]);
    assert_eq!(
        sim.core.next_deadline(),
        Some(sim.now + Duration::from_millis(500))
    );
}

#[test]
fn ready_ignored_outside_new_and_marked() {
    let (mut sim, id) = running_app(app("a"));
    let before = sim.effects.len();
    sim.ready(id);
    assert_eq!(sim.effects.len(), before, "a second ready did something");
    sim.stop(id);
    sim.ready(id);
    assert_eq!(sim.generation(id), Some(Old));
    // Queued processes are not alive, so readiness cannot apply.
    let mut capped = app("b");
    capped.max_instances = 2;
    sim.add(capped);
    let b = [sim.start("b"), sim.start("b"), sim.start("b")];
    sim.ready(b[2]);
    assert_eq!(sim.generation(b[2]), Some(Queue));
}

#[test]
fn ready_ignored_when_killing_or_timed_out() {
    let mut config = app("a");
    config.kill_signal = KillSignal::Sigterm;
    config.start_timeout = Some(100);
    let mut sim = Sim::with([config]);
    let killed = sim.start("a");
    sim.kill(killed);
    sim.ready(killed);
    assert_eq!(sim.generation(killed), Some(New));
    let timed_out = sim.start("a");
    sim.advance(100);
    assert!(sim.view(timed_out).killing);
    sim.ready(timed_out);
    assert_eq!(sim.generation(timed_out), Some(New));
}

// ---- stop row -------------------------------------------------------------------------

#[test]
fn queue_stop_removes_at_once() {
    let mut capped = app("a");
    capped.max_instances = 2;
    let mut sim = Sim::with([capped]);
    let ids = [sim.start("a"), sim.start("a"), sim.start("a")];
    sim.stop(ids[2]);
    assert_eq!(sim.generation(ids[2]), None);
    assert_eq!(
        sim.kinds_gens(ids[2]),
        [("moved", "queue"), ("kill", "queue"), ("exit", "queue")]
    );
    assert_eq!(sim.texts(ids[2], LogKind::Exit), ["code=0 signal=SIGKILL"]);
    assert!(sim.effects.contains(&Effect::Forget { id: ids[2] }));
    assert_eq!(sim.spawns(ids[2]), 0);
}

#[test]
fn new_stop_created_moves_to_marked() {
    let mut sim = Sim::with([app("a")]);
    let id = sim.start("a");
    sim.stop(id);
    assert_eq!(sim.generation(id), Some(Marked));
    assert!(sim.signals(id).is_empty(), "marked got a stop before ready");
    assert!(sim.texts(id, LogKind::Stop).is_empty());
}

#[test]
fn marked_ready_moves_to_old_and_gets_stop_signal() {
    let mut sim = Sim::with([app("a")]);
    let id = sim.start("a");
    sim.stop(id);
    sim.ready(id);
    assert_eq!(sim.generation(id), Some(Old));
    assert_eq!(sim.signals(id), [Signal::Int]);
    sim.exit(id, ProcessEnd::code(0));
    assert_subsequence(
        &sim.kinds_gens(id),
        &[
            ("moved", "marked"),
            ("moved", "old"),
            ("stop", "old"),
            ("exit", "old"),
        ],
    );
    assert!(sim.core.is_empty());
}

#[test]
fn running_stop_moves_to_old() {
    let (mut sim, id) = running_app(app("a"));
    sim.stop(id);
    assert_eq!(sim.generation(id), Some(Old));
    assert_eq!(sim.signals(id), [Signal::Int]);
}

#[test]
fn old_and_marked_stop_do_nothing() {
    let (mut sim, old) = running_app(app("a"));
    sim.stop(old);
    let marked = sim.start("a");
    sim.stop(marked);
    let before = sim.effects.len();
    sim.stop(old);
    sim.stop(marked);
    assert_eq!(sim.effects.len(), before);
    assert_eq!(sim.generation(old), Some(Old));
    assert_eq!(sim.generation(marked), Some(Marked));
}

#[test]
fn stop_before_spawned_moves_to_marked() {
    // Bug 5: a stop between start and creation must not be forgotten.
    let mut sim = Sim::with([app("a")]);
    sim.auto_spawn = false;
    let id = sim.start("a");
    assert_eq!(sim.pending_spawns, [id]);
    sim.stop(id);
    assert_eq!(sim.generation(id), Some(Marked));
    sim.answer_spawn(id);
    assert!(sim.signals(id).is_empty());
    sim.ready(id);
    assert_eq!(sim.generation(id), Some(Old));
    assert_eq!(sim.signals(id), [Signal::Int]);
    sim.exit(id, ProcessEnd::code(0));
    assert!(sim.core.is_empty());
}

#[test]
fn stop_during_restart_delay_is_pre_start() {
    let (mut sim, id) = running_app(app("a"));
    sim.exit(id, ProcessEnd::code(1));
    assert_eq!(sim.generation(id), Some(New));
    sim.clear();
    sim.stop(id);
    assert_eq!(sim.generation(id), None);
    assert_eq!(
        sim.kinds_gens(id),
        [("stop", "new"), ("exit", "new")],
        "{:?}",
        sim.records(id)
    );
    assert_eq!(sim.texts(id, LogKind::Stop), ["signal=pre-start"]);
    assert_eq!(sim.texts(id, LogKind::Exit), ["code=0 signal=pre-start"]);
    sim.advance(10_000);
    assert_eq!(sim.spawns(id), 0, "the aborted respawn was spawned");
    assert!(sim.core.is_empty());
    assert_eq!(sim.core.next_deadline(), None);
}

// ---- kill row ----------------------------------------------------------------------------

#[test]
fn kill_in_each_generation_sends_kill_signal() {
    let mut config = app("a");
    config.max_instances = 3;
    config.instances = 2;
    let mut sim = Sim::with([config]);
    let running = sim.start("a");
    sim.ready(running);
    let old = sim.start_n("a", Some(1));
    sim.ready(old);
    sim.stop(old);
    let marked = sim.start_n("a", Some(2));
    sim.stop(marked);
    let queued = sim.start("a");
    assert_eq!(
        [running, old, marked, queued].map(|id| sim.generation(id)),
        [Some(Running), Some(Old), Some(Marked), Some(Queue)]
    );
    for id in [running, old, marked] {
        sim.kill(id);
        assert_eq!(sim.signals(id).last(), Some(&Signal::Kill));
        assert_eq!(sim.texts(id, LogKind::Kill), ["signal=SIGKILL"]);
        assert!(sim.view(id).killing);
    }
    sim.kill(queued);
    assert_eq!(sim.generation(queued), None);
    assert_eq!(sim.texts(queued, LogKind::Exit), ["code=0 signal=SIGKILL"]);
    // The kill of new:
    let new = sim.start("a");
    assert_eq!(sim.generation(new), Some(Queue), "still at capacity");
    for id in [running, old, marked] {
        sim.exit(id, ProcessEnd::signal("SIGKILL"));
        assert_eq!(sim.spawns(id), 1, "a killed process was respawned");
    }
    assert_eq!(sim.generation(new), Some(New), "released by the exits");
    sim.kill(new);
    assert_eq!(sim.signals(new), [Signal::Kill]);
    sim.exit(new, ProcessEnd::signal("SIGKILL"));
    assert!(sim.core.is_empty());
}

#[test]
fn kill_uses_app_kill_signal() {
    let mut config = app("a");
    config.kill_signal = KillSignal::Sigterm;
    let (mut sim, id) = running_app(config);
    sim.kill(id);
    assert_eq!(sim.signals(id), [Signal::Term]);
    assert_eq!(sim.texts(id, LogKind::Kill), ["signal=SIGTERM"]);
}

#[test]
fn second_kill_sends_sigkill() {
    let mut config = app("a");
    config.kill_signal = KillSignal::Sigterm;
    let (mut sim, id) = running_app(config);
    sim.kill(id);
    sim.kill(id);
    assert_eq!(sim.signals(id), [Signal::Term, Signal::Kill]);
    assert_eq!(
        sim.texts(id, LogKind::Kill),
        ["signal=SIGTERM", "signal=SIGKILL"]
    );
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    assert!(sim.core.is_empty());
}

#[test]
fn kill_before_spawned_is_delivered_after_spawn() {
    // Bug 4: a kill between start and creation must reach the process once
    // it exists, and never before.
    let mut sim = Sim::with([app("a")]);
    sim.auto_spawn = false;
    let id = sim.start("a");
    sim.kill(id);
    assert!(sim.signals(id).is_empty());
    assert_eq!(sim.texts(id, LogKind::Kill), ["signal=SIGKILL"]);
    assert!(sim.view(id).killing);
    sim.answer_spawn(id);
    assert_eq!(sim.signals(id), [Signal::Kill]);
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    assert!(sim.core.is_empty());
    assert_eq!(sim.spawns(id), 1);
}

#[test]
fn kill_before_spawned_then_spawn_failure_does_not_respawn() {
    let mut sim = Sim::with([app("a")]);
    sim.auto_spawn = false;
    let id = sim.start("a");
    sim.kill(id);
    sim.fail_spawn(id, "spawn /srv/app/run ENOENT");
    assert!(sim.core.is_empty());
    assert!(sim.signals(id).is_empty());
}

#[test]
fn kill_during_restart_delay_exits_at_once() {
    let (mut sim, id) = running_app(app("a"));
    sim.exit(id, ProcessEnd::code(1));
    sim.clear();
    sim.kill(id);
    assert!(sim.core.is_empty());
    assert_eq!(sim.kinds(id), ["kill", "exit"]);
    assert_eq!(sim.texts(id, LogKind::Exit), ["code=0 signal=SIGKILL"]);
    assert_eq!(sim.core.next_deadline(), None);
}

// ---- timeouts ---------------------------------------------------------------------------

#[test]
fn start_timeout_kills_and_respawns() {
    let mut config = app("a");
    config.start_timeout = Some(1);
    config.restart_crashing_delay = 300;
    let mut sim = Sim::with([config]);
    let id = sim.start("a");
    sim.advance(1);
    assert_eq!(sim.signals(id), [Signal::Kill]);
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    let records = sim.kinds_gens(id);
    assert_subsequence(
        &records,
        &[
            ("start-timeout", "new"),
            ("kill", "new"),
            ("exit", "new"),
            ("moved", "queue"),
            ("start", "queue"),
            ("moved", "new"),
        ],
    );
    assert_eq!(sim.texts(id, LogKind::StartTimeout), ["start timeout"]);
    let view = sim.view(id);
    assert_eq!(view.generation, New);
    assert_eq!(view.crashes, 1);
    assert!(
        view.start_time.unwrap() > sim.now,
        "start time not in the future"
    );
}

#[test]
fn start_timer_runs_from_creation() {
    let mut config = app("a");
    config.start_timeout = Some(500);
    config.restart_crashing_delay = 1000;
    let (mut sim, id) = running_app(config);
    sim.exit(id, ProcessEnd::code(1));
    // Delay (1000) then start timeout (500) from the respawn's creation.
    sim.advance(1000);
    assert_eq!(sim.spawns(id), 2);
    sim.advance(499);
    assert!(!sim.view(id).killing);
    sim.advance(1);
    assert!(sim.view(id).killing);
}

#[test]
fn marked_start_timeout_kills_without_respawn() {
    let mut config = app("a");
    config.start_timeout = Some(600);
    let mut sim = Sim::with([config]);
    let id = sim.start("a");
    sim.stop(id);
    sim.advance(600);
    assert_eq!(sim.signals(id), [Signal::Kill]);
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    assert!(sim.core.is_empty());
    assert_subsequence(
        &sim.kinds_gens(id),
        &[
            ("moved", "marked"),
            ("start-timeout", "marked"),
            ("exit", "marked"),
        ],
    );
}

#[test]
fn api_stop_after_start_timeout_cancels_respawn() {
    let mut config = app("a");
    config.start_timeout = Some(10);
    config.kill_signal = KillSignal::Sigterm;
    let mut sim = Sim::with([config]);
    let id = sim.start("a");
    sim.advance(10);
    assert_eq!(sim.signals(id), [Signal::Term]);
    sim.stop(id);
    assert_eq!(sim.generation(id), Some(Marked));
    sim.exit(id, ProcessEnd::signal("SIGTERM"));
    assert!(
        sim.core.is_empty(),
        "an explicitly stopped process respawned"
    );
}

#[test]
fn api_kill_after_start_timeout_cancels_respawn() {
    let mut config = app("a");
    config.start_timeout = Some(10);
    config.kill_signal = KillSignal::Sigterm;
    let mut sim = Sim::with([config]);
    let id = sim.start("a");
    sim.advance(10);
    sim.kill(id);
    assert_eq!(sim.signals(id), [Signal::Term, Signal::Kill]);
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    assert!(sim.core.is_empty());
}

#[test]
fn old_stop_timeout_kills() {
    let mut config = app("a");
    config.stop_timeout = Some(1);
    let (mut sim, id) = running_app(config);
    sim.stop(id);
    sim.advance(1);
    assert_eq!(sim.signals(id), [Signal::Int, Signal::Kill]);
    assert_eq!(sim.texts(id, LogKind::StopTimeout), ["stop timeout"]);
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    assert_subsequence(
        &sim.kinds_gens(id),
        &[
            ("stop", "old"),
            ("stop-timeout", "old"),
            ("kill", "old"),
            ("exit", "old"),
        ],
    );
    assert!(sim.core.is_empty());
}

#[test]
fn stop_timer_runs_from_stop_signal() {
    let mut config = app("a");
    config.stop_timeout = Some(100);
    let (mut sim, id) = running_app(config);
    sim.advance(5000);
    sim.stop(id);
    sim.advance(99);
    assert_eq!(sim.signals(id), [Signal::Int]);
    sim.advance(1);
    assert_eq!(sim.signals(id), [Signal::Int, Signal::Kill]);
}

#[test]
fn kill_disarms_stop_timer() {
    let mut config = app("a");
    config.stop_timeout = Some(100);
    config.kill_signal = KillSignal::Sigterm;
    let (mut sim, id) = running_app(config);
    sim.stop(id);
    sim.kill(id);
    assert_eq!(sim.core.next_deadline(), None);
    sim.advance(1000);
    assert_eq!(sim.signals(id), [Signal::Int, Signal::Term]);
}

// ---- exit and the restart rules ---------------------------------------------------------

#[test]
fn exit_code_zero_in_running_is_a_crash() {
    let (mut sim, id) = running_app(app("a"));
    sim.exit(id, ProcessEnd::code(0));
    let view = sim.view(id);
    assert_eq!((view.generation, view.crashes), (New, 1));
}

#[test]
fn running_crash_respawns_after_delay_with_same_id_number_and_revision() {
    let mut config = app("a");
    config.restart_crashing_delay = 300;
    let mut sim = Sim::with([config.clone()]);
    let id = sim.start_n("a", Some(7));
    sim.ready(id);
    config.instances = 2;
    sim.add(config);
    assert!(sim.view(id).outdated);
    let revision = sim.view(id).revision;
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    let view = sim.view(id);
    assert_eq!(view.number, 7);
    assert_eq!(
        view.revision, revision,
        "a respawn uses the crashed process's app"
    );
    assert!(view.outdated);
    assert_eq!(view.start_time, Some(sim.now + Duration::from_millis(300)));
    assert_eq!(view.create_time, sim.now);
    assert!(view.pid.is_none());
    assert_eq!(sim.spawns(id), 1);
    sim.advance(299);
    assert_eq!(sim.spawns(id), 1);
    sim.advance(1);
    assert_eq!(sim.spawns(id), 2);
    // The respawn goes to the end of the table.
    let other = sim.start("a");
    let order: Vec<_> = sim.core.processes().iter().map(|p| p.id).collect();
    assert_eq!(order, [id, other]);
}

#[test]
fn crashes_accumulate_along_the_respawn_chain() {
    let (mut sim, id) = running_app(app("a"));
    for crashes in 1..=3 {
        sim.exit(id, ProcessEnd::code(1));
        assert_eq!(sim.view(id).crashes, crashes);
        sim.advance(1000);
        sim.ready(id);
    }
    assert_eq!(sim.generation(id), Some(Running));
}

#[test]
fn zero_restart_delay_respawns_immediately() {
    let mut config = app("a");
    config.restart_crashing_delay = 0;
    let (mut sim, id) = running_app(config);
    sim.exit(id, ProcessEnd::code(1));
    assert_eq!(sim.spawns(id), 2);
    assert_eq!(sim.view(id).start_time, Some(sim.now));
}

#[test]
fn new_crash_respawns() {
    let mut sim = Sim::with([app("a")]);
    let id = sim.start("a");
    sim.exit(id, ProcessEnd::code(3));
    assert_eq!(sim.view(id).crashes, 1);
}

#[test]
fn restart_new_crashing_disabled_no_respawn() {
    let mut config = app("a");
    config.restart_new_crashing = false;
    let mut sim = Sim::with([config]);
    let id = sim.start("a");
    sim.exit(id, ProcessEnd::code(3));
    assert!(sim.core.is_empty());
}

#[test]
fn restart_crashing_disabled_no_respawn() {
    let mut config = app("a");
    config.restart_crashing = false;
    let (mut sim, id) = running_app(config);
    sim.exit(id, ProcessEnd::code(1));
    assert!(sim.core.is_empty());
}

#[test]
fn old_and_marked_exits_never_respawn() {
    let (mut sim, old) = running_app(app("a"));
    sim.stop(old);
    let marked = sim.start("a");
    sim.stop(marked);
    sim.exit(old, ProcessEnd::code(1));
    sim.exit(marked, ProcessEnd::code(1));
    assert!(sim.core.is_empty());
}

#[test]
fn logger_apps_never_respawn() {
    let mut config = app("log");
    config.app_type = AppType::Logger;
    let (mut sim, id) = running_app(config);
    sim.exit(id, ProcessEnd::code(1));
    assert!(sim.core.is_empty());
}

#[test]
fn spawn_failure_is_logged_and_is_a_crash() {
    let mut sim = Sim::with([app("a")]);
    sim.auto_spawn = false;
    let id = sim.start("a");
    sim.fail_spawn(id, "spawn /srv/app/run ENOENT");
    assert_eq!(sim.texts(id, LogKind::Error), ["spawn /srv/app/run ENOENT"]);
    assert_subsequence(
        &sim.kinds(id),
        &["error", "exit", "moved", "start", "moved"],
    );
    assert_eq!(sim.texts(id, LogKind::Exit), ["code=null signal=null"]);
    assert_eq!(sim.view(id).crashes, 1);
}

#[test]
fn late_exit_of_a_respawned_id_is_ignored() {
    let (mut sim, id) = running_app(app("a"));
    sim.exit(id, ProcessEnd::code(1));
    let before = sim.effects.len();
    sim.core.handle_exit(sim.now, id, ProcessEnd::code(1));
    sim.step();
    assert_eq!(sim.effects.len(), before);
    assert_eq!(sim.generation(id), Some(New));
}

// ---- max-instances and the queue -----------------------------------------------------------

#[test]
fn max_instances_queue_released_on_exit() {
    // §9.6 "max-instances": never-ready app, three starts in one batch.
    let mut config = app("never-starts");
    config.max_instances = 2;
    let mut sim = Sim::with([config]);
    let ids = [
        sim.start("never-starts"),
        sim.start("never-starts"),
        sim.start("never-starts"),
    ];
    assert_eq!(sim.in_generation("never-starts", New).len(), 2);
    assert_eq!(sim.in_generation("never-starts", Queue).len(), 1);
    sim.kill(ids[0]);
    sim.exit(ids[0], ProcessEnd::signal("SIGKILL"));
    assert_eq!(sim.in_generation("never-starts", New).len(), 2);
    assert_eq!(sim.in_generation("never-starts", Queue).len(), 0);
    assert!(sim.core.processes().iter().all(|p| p.crashes == 0));
}

#[test]
fn queue_releases_oldest_first_one_per_exit() {
    let mut config = app("a");
    config.max_instances = 2;
    let mut sim = Sim::with([config]);
    let ids: Vec<_> = (0..5).map(|_| sim.start("a")).collect();
    sim.kill(ids[0]);
    sim.exit(ids[0], ProcessEnd::signal("SIGKILL"));
    assert_eq!(sim.generation(ids[2]), Some(New));
    assert_eq!(sim.generation(ids[3]), Some(Queue));
    assert_eq!(sim.generation(ids[4]), Some(Queue));
}

#[test]
fn queue_released_when_max_instances_rises() {
    let mut config = app("a");
    config.max_instances = 2;
    let mut sim = Sim::with([config.clone()]);
    let ids: Vec<_> = (0..4).map(|_| sim.start("a")).collect();
    assert_eq!(sim.in_generation("a", Queue).len(), 2);
    config.max_instances = 3;
    sim.add(config.clone());
    assert_eq!(sim.generation(ids[2]), Some(New));
    assert_eq!(sim.generation(ids[3]), Some(Queue));
    config.max_instances = 0;
    sim.add(config);
    assert_eq!(sim.generation(ids[3]), Some(New));
}

#[test]
fn lowered_max_instances_applies_to_later_starts() {
    let mut config = app("a");
    config.max_instances = 4;
    let mut sim = Sim::with([config.clone()]);
    let _ = [sim.start("a"), sim.start("a")];
    config.max_instances = 2;
    sim.add(config);
    let third = sim.start("a");
    assert_eq!(sim.generation(third), Some(Queue));
}

#[test]
fn exit_releases_queued_before_respawn() {
    let mut config = app("a");
    config.max_instances = 2;
    let mut sim = Sim::with([config]);
    let ids = [sim.start("a"), sim.start("a"), sim.start("a")];
    sim.exit(ids[0], ProcessEnd::code(1));
    assert_eq!(
        sim.generation(ids[2]),
        Some(New),
        "the queued one starts first"
    );
    assert_eq!(sim.generation(ids[0]), Some(Queue), "the respawn waits");
    assert_eq!(sim.view(ids[0]).crashes, 1);
}

// ---- reconciliation ---------------------------------------------------------------------------

#[test]
fn unique_replacement_keeps_newest() {
    // §9.6 "1:1 replacement".
    let mut config = app("a");
    config.instances = 3;
    let mut sim = Sim::with([config]);
    let first: Vec<_> = (0..3)
        .map(|n| {
            let id = sim.start_n("a", Some(n));
            sim.ready(id);
            id
        })
        .collect();
    assert_eq!(sim.running("a").len(), 3);
    let replacement = sim.start_n("a", Some(1));
    sim.ready(replacement);
    assert_eq!(sim.generation(first[1]), Some(Old));
    sim.exit(first[1], ProcessEnd::code(0));
    let running: Vec<_> = sim.running("a").iter().map(|p| p.id).collect();
    assert_eq!(running, [first[0], first[2], replacement]);
    let four = sim.start_n("a", Some(4));
    sim.ready(four);
    assert_eq!(sim.generation(first[0]), Some(Old), "the oldest goes");
    assert_eq!(sim.running("a").len(), 3);
}

#[test]
fn older_newcomer_is_itself_superfluous() {
    // An older process can never displace a newer one.
    let mut sim = Sim::with([app("a")]);
    let older = sim.start("a");
    sim.advance(10);
    let newer = sim.start("a");
    sim.ready(newer);
    sim.ready(older);
    assert_eq!(sim.generation(older), Some(Old));
    assert_eq!(sim.generation(newer), Some(Running));
    assert_eq!(sim.signals(older), [Signal::Int]);
}

#[test]
fn non_unique_renumbered_newest_first() {
    let mut config = app("a");
    config.instances = 3;
    config.unique_instances = false;
    let mut sim = Sim::with([config]);
    let ids: Vec<_> = (0..3)
        .map(|_| {
            let id = sim.start("a");
            sim.ready(id);
            sim.advance(1);
            id
        })
        .collect();
    let numbers: Vec<_> = ids.iter().map(|&id| sim.view(id).number).collect();
    assert_eq!(numbers, [2, 1, 0], "newest is number 0");
}

#[test]
fn non_unique_spec_sequence() {
    // §9.6 "non-unique": every extra start, once ready, stops the oldest.
    let mut config = app("app-uniform");
    config.instances = 3;
    config.unique_instances = false;
    let mut sim = Sim::with([config]);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = sim.start("app-uniform");
        sim.ready(id);
        ids.push(id);
    }
    let fourth = sim.start("app-uniform");
    assert_eq!(sim.running("app-uniform").len(), 3);
    sim.ready(fourth);
    let fifth = sim.start("app-uniform");
    sim.ready(fifth);
    assert_eq!(sim.running("app-uniform").len(), 3);
    assert_eq!(sim.generation(ids[0]), Some(Old));
    let sixth = sim.start("app-uniform");
    sim.ready(sixth);
    assert_eq!(sim.running("app-uniform").len(), 3);
    assert_eq!(sim.generation(ids[1]), Some(Old));
}

#[test]
fn non_unique_numbers_avoid_unique_ones() {
    let mut unique = app("a");
    unique.instances = 3;
    let mut sim = Sim::with([unique.clone()]);
    let kept = sim.start_n("a", Some(0));
    sim.ready(kept);
    let mut uniform = unique;
    uniform.unique_instances = false;
    sim.add(uniform);
    let newer = sim.start("a");
    sim.ready(newer);
    assert_eq!(sim.view(kept).number, 0);
    assert_eq!(sim.view(newer).number, 1);
}

#[test]
fn reconcile_uses_latest_revision_instances() {
    let mut config = app("a");
    config.instances = 3;
    config.unique_instances = false;
    let mut sim = Sim::with([config.clone()]);
    let ids: Vec<_> = (0..3)
        .map(|_| {
            let id = sim.start("a");
            sim.ready(id);
            id
        })
        .collect();
    config.instances = 1;
    sim.add(config);
    assert_eq!(
        sim.running("a").len(),
        3,
        "lowering instances alone stops nothing"
    );
    let newest = sim.start("a");
    sim.ready(newest);
    let running: Vec<_> = sim.running("a").iter().map(|p| p.id).collect();
    assert_eq!(running, [newest]);
    assert!(ids.iter().all(|&id| sim.generation(id) == Some(Old)));
}

#[test]
fn logger_groups_by_args_and_cwd() {
    // Bug 7: logging processes for different logger objects must not
    // replace each other.
    let mut config = app("log");
    config.app_type = AppType::Logger;
    let mut sim = Sim::with([config]);
    let now = sim.now;
    let start = |sim: &mut Sim, args: &[&str], cwd: &str| {
        let args = args.iter().map(|s| (*s).to_owned()).collect();
        let id = sim
            .core
            .start_with(now, "log", None, Some(args), Some(cwd.to_owned()))
            .unwrap();
        sim.step();
        sim.ready(id);
        id
    };
    let a = start(&mut sim, &["log.txt"], "/a");
    let b = start(&mut sim, &["log.txt"], "/b");
    let c = start(&mut sim, &["other.txt"], "/a");
    assert_eq!(sim.running("log").len(), 3);
    assert_eq!(sim.view(b).cwd, "/b");
    let a2 = start(&mut sim, &["log.txt"], "/a");
    assert_eq!(sim.generation(a), Some(Old));
    assert_eq!([b, c, a2].map(|id| sim.generation(id)), [Some(Running); 3]);
}

#[test]
fn instance_number_env_only_for_unique() {
    let mut uniform = app("u");
    uniform.unique_instances = false;
    let mut sim = Sim::with([app("a"), uniform]);
    sim.start_n("a", Some(4));
    sim.start_n("u", Some(4));
    let numbers: Vec<_> = sim
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Spawn {
                instance_number,
                number,
                ..
            } => Some((*number, *instance_number)),
            _ => None,
        })
        .collect();
    assert_eq!(numbers, [(4, Some(4)), (4, None)]);
}

// ---- signals and readiness ------------------------------------------------------------------

#[test]
fn stop_signal_variants() {
    for (signal, expected) in [
        (
            StopSignal::Sigint,
            Effect::Signal {
                id: ProcessId(0),
                signal: Signal::Int,
            },
        ),
        (
            StopSignal::Sigterm,
            Effect::Signal {
                id: ProcessId(0),
                signal: Signal::Term,
            },
        ),
        (
            StopSignal::Disconnect,
            Effect::Disconnect { id: ProcessId(0) },
        ),
        (
            StopSignal::Message,
            Effect::Message {
                id: ProcessId(0),
                message: json!("stop"),
            },
        ),
    ] {
        let mut config = app("a");
        config.stop_signal = signal;
        let (mut sim, id) = running_app(config);
        sim.clear();
        sim.stop(id);
        assert!(
            sim.effects.contains(&expected),
            "{signal:?}: {:?}",
            sim.effects
        );
        assert_eq!(
            sim.texts(id, LogKind::Stop),
            [format!("signal={}", signal.as_str())]
        );
    }
}

#[test]
fn ready_on_instant_is_ready_when_spawned() {
    let mut config = app("a");
    config.ready_on = ReadyOn::Instant;
    let mut sim = Sim::with([config]);
    let id = sim.start("a");
    assert_eq!(sim.generation(id), Some(Running));
    // A stop while the spawn is in flight parks it in marked; readiness at
    // spawn then delivers the stop.
    sim.auto_spawn = false;
    let second = sim.start("a");
    sim.stop(second);
    sim.answer_spawn(second);
    assert_eq!(sim.generation(second), Some(Old));
    assert_eq!(sim.signals(second), [Signal::Int]);
    assert_eq!(sim.generation(id), Some(Running));
}

#[test]
fn messages_before_spawn_are_flushed_in_order() {
    let mut sim = Sim::with([app("a")]);
    sim.auto_spawn = false;
    let id = sim.start("a");
    let now = sim.now;
    sim.core.send(now, id, json!("one")).unwrap();
    sim.core.send(now, id, json!({"two": 2})).unwrap();
    sim.step();
    assert!(
        !sim.effects
            .iter()
            .any(|e| matches!(e, Effect::Message { .. }))
    );
    sim.answer_spawn(id);
    sim.core.send(now, id, json!(3)).unwrap();
    sim.step();
    let messages: Vec<_> = sim
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Message { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(messages, [json!("one"), json!({"two": 2}), json!(3)]);
}

// ---- revisions -----------------------------------------------------------------------------

#[test]
fn identical_add_keeps_processes_current() {
    let (mut sim, id) = running_app(app("a"));
    let outcome = sim.core.add_app(sim.now, app("a"), false).unwrap();
    assert!(!outcome.added && outcome.changed.is_empty());
    assert!(!sim.view(id).outdated);
}

#[test]
fn changed_add_makes_processes_outdated() {
    let (mut sim, id) = running_app(app("a"));
    let mut changed = app("a");
    changed.args = vec!["--fast".into()];
    let outcome = sim.core.add_app(sim.now, changed, false).unwrap();
    assert_eq!(outcome.changed, ["args"]);
    assert_eq!(outcome.revision, 1);
    let view = sim.view(id);
    assert!(view.outdated);
    assert_eq!(view.app.revision, 0);
    let names: Vec<_> = sim.core.apps().map(|a| a.config.name.clone()).collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn deleted_app_processes_keep_running_and_respawning() {
    let (mut sim, id) = running_app(app("a"));
    sim.core.delete_app(sim.now, "a", false).unwrap();
    sim.step();
    assert!(sim.view(id).outdated);
    assert_eq!(sim.generation(id), Some(Running));
    sim.exit(id, ProcessEnd::code(1));
    assert_eq!(sim.view(id).crashes, 1);
    assert_eq!(
        sim.core.start(sim.now, "a", None),
        Err(CommandError::UnknownApp("a".into()))
    );
}

// ---- kill_all -----------------------------------------------------------------------------------

#[test]
fn kill_all_kills_everything_and_nothing_respawns() {
    let mut config = app("a");
    config.max_instances = 3;
    config.kill_signal = KillSignal::Sigterm;
    let mut sim = Sim::with([config]);
    let running = sim.start_n("a", Some(0));
    sim.ready(running);
    let starting = sim.start_n("a", Some(1));
    sim.kill(starting);
    let crashed = sim.start_n("a", Some(2));
    sim.exit(crashed, ProcessEnd::code(1));
    let queued = sim.start_n("a", Some(3));
    let queued2 = sim.start_n("a", Some(4));
    assert_eq!(sim.generation(queued), Some(Queue));
    sim.auto_spawn = false;
    sim.kill_all();
    assert!(sim.core.is_shutting_down());
    assert_eq!(sim.signals(running), [Signal::Kill]);
    assert_eq!(
        sim.signals(starting),
        [Signal::Term, Signal::Kill],
        "resent, forced"
    );
    for id in [crashed, queued, queued2] {
        assert_eq!(sim.generation(id), None, "{id} still there");
    }
    for id in [running, starting] {
        sim.exit(id, ProcessEnd::signal("SIGKILL"));
    }
    assert!(sim.core.is_empty());
    assert!(sim.pending_spawns.is_empty(), "something was started");
    assert_eq!(
        sim.core.start(sim.now, "a", None),
        Err(CommandError::ShuttingDown)
    );
}

#[test]
fn kill_all_during_spawn_is_delivered_after_spawn() {
    let mut sim = Sim::with([app("a")]);
    sim.auto_spawn = false;
    let id = sim.start("a");
    sim.kill_all();
    assert!(sim.signals(id).is_empty());
    sim.answer_spawn(id);
    assert_eq!(sim.signals(id), [Signal::Kill]);
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    assert!(sim.core.is_empty());
}

// ---- at rest and wait ------------------------------------------------------------------------

#[test]
fn wait_resolves_immediately_at_rest() {
    let mut sim = Sim::new();
    let wait = sim.wait(false);
    let all = sim.wait(true);
    assert!(sim.wait_done(wait) && sim.wait_done(all));
}

#[test]
fn wait_resolves_when_everything_running() {
    let mut sim = Sim::with([app("a")]);
    let id = sim.start("a");
    let wait = sim.wait(false);
    let all = sim.wait(true);
    assert!(!sim.core.is_at_rest() && !sim.wait_done(wait));
    sim.ready(id);
    assert!(sim.core.is_at_rest());
    assert!(sim.wait_done(wait));
    assert!(!sim.wait_done(all), "wait(all) needs no processes");
    sim.stop(id);
    sim.exit(id, ProcessEnd::code(0));
    assert!(sim.wait_done(all));
    let done: Vec<_> = sim
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::WaitDone { .. }))
        .collect();
    assert_eq!(done.len(), 2, "a waiter resolved twice");
}

#[test]
fn wait_blocked_by_crash_loop() {
    let (mut sim, id) = running_app(app("a"));
    sim.exit(id, ProcessEnd::code(1));
    let wait = sim.wait(false);
    sim.advance(1000);
    sim.exit(id, ProcessEnd::code(1));
    sim.advance(1000);
    assert!(!sim.wait_done(wait));
    sim.ready(id);
    assert!(sim.wait_done(wait));
}

#[test]
fn logging_busy_blocks_rest() {
    let mut sim = Sim::new();
    sim.core.set_logging_busy(true);
    let wait = sim.wait(true);
    assert!(!sim.wait_done(wait));
    sim.core.set_logging_busy(false);
    sim.step();
    assert!(sim.wait_done(wait));
}

// ---- the original's lifecycle tests (§9.6) and record sequences (§7.3) ---------------------------

#[test]
fn spec_start_stop_record_sequence() {
    let mut sim = Sim::with([app("app")]);
    let id = sim.start("app");
    let wait = sim.wait(false);
    sim.ready(id);
    assert!(sim.wait_done(wait));
    assert_eq!(sim.running("app").len(), 1);
    assert_eq!(sim.view(id).crashes, 0);
    sim.stop(id);
    sim.exit(id, ProcessEnd::code(0));
    let wait = sim.wait(false);
    assert!(sim.wait_done(wait));
    assert!(sim.core.is_empty());
    assert_eq!(
        sim.kinds_gens(id),
        [
            ("moved", "queue"),
            ("start", "queue"),
            ("moved", "new"),
            ("moved", "running"),
            ("moved", "old"),
            ("stop", "old"),
            ("exit", "old"),
        ]
    );
    assert_eq!(sim.texts(id, LogKind::Exit), ["code=0 signal=null"]);
}

#[test]
fn spec_mark_starting_apps() {
    let mut golem = app("golem");
    golem.start_timeout = Some(600);
    let mut sim = Sim::with([golem]);
    // Round 1: never ready → start timeout in marked.
    let first = sim.start("golem");
    sim.stop(first);
    sim.advance(600);
    sim.exit(first, ProcessEnd::signal("SIGKILL"));
    assert_subsequence(
        &sim.kinds_gens(first),
        &[
            ("moved", "marked"),
            ("start-timeout", "marked"),
            ("exit", "marked"),
        ],
    );
    // Round 2: becomes ready after the stop → old, stop signal, exit.
    let second = sim.start("golem");
    sim.stop(second);
    sim.core
        .send(sim.now, second, json!("become-ready"))
        .unwrap();
    sim.ready(second);
    sim.exit(second, ProcessEnd::code(0));
    assert_subsequence(
        &sim.kinds_gens(second),
        &[
            ("moved", "marked"),
            ("moved", "old"),
            ("stop", "old"),
            ("exit", "old"),
        ],
    );
    assert!(sim.core.is_empty());
}

#[test]
fn spec_restart_crashing() {
    let mut config = app("app");
    config.restart_crashing_delay = 300;
    let (mut sim, id) = running_app(config);
    for crashes in 1..=2 {
        sim.exit(id, ProcessEnd::signal("SIGKILL"));
        let view = sim.view(id);
        assert_eq!((view.generation, view.crashes), (New, crashes));
        assert!(view.start_time.unwrap() > sim.now);
        let wait = sim.wait(false);
        sim.advance(300);
        sim.ready(id);
        assert!(sim.wait_done(wait));
    }
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    sim.stop(id);
    let wait = sim.wait(false);
    assert!(sim.wait_done(wait));
    assert!(sim.core.is_empty());
    assert_eq!(sim.texts(id, LogKind::Stop), ["signal=pre-start"]);
}

#[test]
fn spec_stop_timeout() {
    let mut config = app("stop-timeout");
    config.stop_timeout = Some(1);
    let (mut sim, id) = running_app(config);
    sim.stop(id);
    // The app ignores SIGINT; only the kill after the timeout ends it.
    sim.advance_to_next_deadline();
    sim.exit(id, ProcessEnd::signal("SIGKILL"));
    assert_eq!(sim.kinds(id).last(), Some(&"exit"));
    assert_eq!(sim.ms(), 1);
}
