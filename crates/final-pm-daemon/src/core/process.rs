//! The process record (spec §4.1) and the read-only view of it the shell
//! gets.
//!
//! A record's OS side is one [`Os`] value, so data that only exists in one
//! phase lives in that phase's variant: the pid and the start/stop timers
//! only once the OS process exists, the restart-delay deadline only while
//! delayed, and a kill that arrived while the spawn was in flight only while
//! spawning. The generation is separate because it is the *policy* state
//! (what the process is for), while [`Os`] is the *mechanism* state (what
//! exists).

use std::sync::Arc;
use std::time::{Duration, Instant};

use final_pm_protocol::{AppInfo, AppType, Generation, ProcessId};

use super::effect::{Signal, StopKind};

/// What exists of a process outside the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Os {
    /// Queued: not started.
    Unstarted,
    /// Started with a restart delay: the spawn is due at `at`. Nothing exists,
    /// so a stop or kill simply aborts it.
    Delayed { at: Instant },
    /// `Spawn` was emitted and the pid is not known yet. A kill requested now
    /// is remembered in `kill` and delivered by `handle_spawned` (the fix of
    /// the original's bug 4: never lost, never sent before the process
    /// exists).
    Spawning { kill: Option<Signal> },
    /// The OS process exists.
    Alive {
        pid: u32,
        /// Start timeout: armed at creation, cleared by readiness or a kill.
        start_deadline: Option<Instant>,
        /// Stop timeout: armed when the stop signal is delivered, cleared by
        /// a kill.
        stop_deadline: Option<Instant>,
    },
}

/// One managed process.
#[derive(Debug, Clone)]
pub(crate) struct Process {
    pub(crate) id: ProcessId,
    /// The app revision the process was created with; never changes.
    pub(crate) app: Arc<AppInfo>,
    pub(crate) number: u32,
    /// Cumulative along a respawn chain.
    pub(crate) crashes: u32,
    /// Zero, or `restart-crashing-delay` for a respawn.
    pub(crate) start_delay: Duration,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: String,
    pub(crate) create_time: Instant,
    /// `None` until started; in the future while a restart delay runs.
    pub(crate) start_time: Option<Instant>,
    pub(crate) generation: Generation,
    pub(crate) os: Os,
    pub(crate) ready: bool,
    /// A graceful stop was delivered (or a delay aborted).
    pub(crate) stopping: Option<StopKind>,
    /// A kill was requested (delivered, or pending in [`Os::Spawning`]).
    pub(crate) killing: bool,
    /// A start or stop timer fired (and no API stop/kill came since): the
    /// kill that follows still counts as a crash in `new`.
    pub(crate) timeout: bool,
    /// IPC messages sent before the process existed, flushed on spawn.
    pub(crate) outbox: Vec<serde_json::Value>,
}

impl Process {
    pub(crate) fn pid(&self) -> Option<u32> {
        match self.os {
            Os::Alive { pid, .. } => Some(pid),
            Os::Unstarted | Os::Delayed { .. } | Os::Spawning { .. } => None,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.app.config.name
    }

    /// A logging process (its app is of type `logger`).
    pub(crate) fn is_logger(&self) -> bool {
        self.app.config.app_type == AppType::Logger
    }

    /// Spawn was emitted: the process exists or is about to.
    pub(crate) fn created(&self) -> bool {
        match self.os {
            Os::Spawning { .. } | Os::Alive { .. } => true,
            Os::Unstarted | Os::Delayed { .. } => false,
        }
    }

    /// §4.8: newer = greater revision, then later start (never started is
    /// oldest), then greater id. Compare keys, greater is newer.
    pub(crate) fn age_key(&self) -> (u64, Option<Instant>, ProcessId) {
        (self.app.revision, self.start_time, self.id)
    }

    /// Whether `other` competes with `self` in reconciliation (§4.7): same
    /// app name, and for logging processes also the same arguments and
    /// directory (bug 7: two logger objects must not replace each other's
    /// processes). Symmetric, even if an app changed its type between
    /// revisions.
    pub(crate) fn same_group(&self, other: &Self) -> bool {
        let logger = |p: &Self| p.app.config.app_type == AppType::Logger;
        self.name() == other.name()
            && (!(logger(self) || logger(other))
                || (self.args == other.args && self.cwd == other.cwd))
    }
}

/// A read-only snapshot of a process, for `info` and the shell.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessView {
    /// The daemon's id.
    pub id: ProcessId,
    /// OS pid, once the process exists.
    pub pid: Option<u32>,
    /// App name.
    pub app_name: String,
    /// Instance number (non-unique apps are renumbered as processes join).
    pub number: u32,
    /// Current generation.
    pub generation: Generation,
    /// Arguments.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// Crashes along the respawn chain.
    pub crashes: u32,
    /// Past the queue.
    pub started: bool,
    /// Reported ready.
    pub ready: bool,
    /// A kill was requested (a process that survives it is a zombie).
    pub killing: bool,
    /// Revision of the process's own app.
    pub revision: u64,
    /// The app table no longer holds that revision (changed or deleted).
    pub outdated: bool,
    /// `None` while queued; in the future during a restart delay.
    pub start_time: Option<Instant>,
    /// When the record was created.
    pub create_time: Instant,
    /// The process's own app revision.
    pub app: Arc<AppInfo>,
}

impl ProcessView {
    pub(crate) fn new(process: &Process, outdated: bool) -> Self {
        Self {
            id: process.id,
            pid: process.pid(),
            app_name: process.name().to_owned(),
            number: process.number,
            generation: process.generation,
            args: process.args.clone(),
            cwd: process.cwd.clone(),
            crashes: process.crashes,
            started: process.start_time.is_some(),
            ready: process.ready,
            killing: process.killing,
            revision: process.app.revision,
            outdated,
            start_time: process.start_time,
            create_time: process.create_time,
            app: Arc::clone(&process.app),
        }
    }
}
