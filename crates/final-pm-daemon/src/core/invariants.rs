//! The core's invariants, checked after every public call in debug builds and
//! by the property tests. A failure is a bug in the core, never a client's
//! fault, so it panics with a message naming the process and the rule.

use std::collections::HashSet;

use final_pm_protocol::Generation;

use super::Core;
use super::process::{Os, Process};

impl Core {
    /// Panics if the state is inconsistent.
    pub fn check_invariants(&self) {
        let mut ids = HashSet::new();
        for process in &self.procs {
            assert!(
                ids.insert(process.id),
                "process id {} is in the table twice",
                process.id
            );
            assert!(
                process.id.0 < self.next_id,
                "process id {} was never handed out",
                process.id
            );
            check_process(process);
            if self.shutting_down && !(self.loggers_spared && process.is_logger()) {
                assert!(
                    process.killing,
                    "process {} is not being killed after kill_all",
                    process.id
                );
            }
        }
        self.check_running_numbers();
    }

    /// Reconciliation leaves every running group with distinct numbers, and
    /// leaving running cannot create a duplicate.
    fn check_running_numbers(&self) {
        let running: Vec<&Process> = self
            .procs
            .iter()
            .filter(|p| p.generation == Generation::Running)
            .collect();
        for (i, a) in running.iter().enumerate() {
            for b in &running[i + 1..] {
                assert!(
                    !(a.same_group(b) && a.number == b.number),
                    "running processes {} and {} of {} share number {}",
                    a.id,
                    b.id,
                    a.name(),
                    a.number
                );
            }
        }
    }
}

fn check_process(p: &Process) {
    let id = p.id;
    let generation = p.generation;
    let fail = |rule: &str| -> ! {
        panic!(
            "invariant broken for process {id} ({generation}, {:?}): {rule}",
            p.os
        )
    };
    match generation {
        Generation::Queue => {
            if p.os != Os::Unstarted || p.start_time.is_some() {
                fail("a queued process was started");
            }
            if p.ready || p.killing || p.stopping.is_some() {
                fail("a queued process is ready, stopping or killing");
            }
        }
        Generation::New => {
            if p.ready {
                fail("a process in new is ready");
            }
            if p.start_time.is_none() || p.os == Os::Unstarted {
                fail("a process in new was not started");
            }
            if p.stopping.is_some() {
                fail("a process in new is stopping (a pre-start abort exits at once)");
            }
        }
        Generation::Running => {
            if !p.ready || !matches!(p.os, Os::Alive { .. }) {
                fail("a running process is not alive and ready");
            }
            if p.stopping.is_some() {
                fail("a running process is stopping");
            }
        }
        Generation::Old => {
            if !p.ready || !matches!(p.os, Os::Alive { .. }) {
                fail("an old process is not alive and ready");
            }
            if p.stopping.is_none() && !p.killing {
                fail("an old process got neither its stop signal nor a kill");
            }
        }
        Generation::Marked => {
            if p.ready {
                fail("a marked process is ready (it belongs in old)");
            }
            if !p.created() {
                fail("a marked process was never created");
            }
            if p.stopping.is_some() {
                fail("a marked process got its stop signal before it was ready");
            }
        }
    }
    match &p.os {
        Os::Unstarted => {
            if p.killing {
                fail("a kill of a process that does not exist did not end it");
            }
        }
        Os::Delayed { .. } => {
            if generation != Generation::New || p.killing {
                fail("a restart delay outside new, or a killed one still pending");
            }
        }
        Os::Spawning { kill } => {
            if kill.is_some() != p.killing {
                fail("a kill requested during spawn is not pending (or vice versa)");
            }
        }
        Os::Alive {
            start_deadline,
            stop_deadline,
            ..
        } => {
            if start_deadline.is_some() && (p.ready || p.killing) {
                fail("a start timer is armed on a ready or killed process");
            }
            if stop_deadline.is_some() && (p.stopping.is_none() || p.killing) {
                fail("a stop timer is armed without a stop, or after a kill");
            }
            if !p.outbox.is_empty() {
                fail("messages wait for a process that exists");
            }
        }
    }
}
