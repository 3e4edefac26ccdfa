//! What the core asks the shell to do, and the small value types that travel
//! with it.
//!
//! Effects are plain data. The shell executes them strictly in the order
//! [`Core::poll_effect`](super::Core::poll_effect) hands them out; the core
//! relies on that order (a `Forget` of a crashed process comes before the
//! `Spawn` of its respawn, which reuses the id).

use std::fmt;
use std::sync::Arc;

use final_pm_protocol::{AppInfo, Generation, KillSignal, LogKind, ProcessId, StopSignal};

/// A signal the core sends to a process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// SIGINT: the default graceful stop.
    Int,
    /// SIGTERM: a graceful stop or a catchable kill.
    Term,
    /// SIGKILL: the kill nothing survives.
    Kill,
}

impl Signal {
    /// The name used in log records (`signal=SIGKILL`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Int => "SIGINT",
            Self::Term => "SIGTERM",
            Self::Kill => "SIGKILL",
        }
    }
}

impl From<KillSignal> for Signal {
    fn from(signal: KillSignal) -> Self {
        match signal {
            KillSignal::Sigterm => Self::Term,
            KillSignal::Sigkill => Self::Kill,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a process ended, as the shell observed it (or as the core made it up
/// for a process that never existed: `code=0 signal=pre-start`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ProcessEnd {
    /// Exit code, if the process exited normally.
    pub code: Option<i32>,
    /// Name of the signal that ended it (`"SIGKILL"`), if any.
    pub signal: Option<String>,
}

impl ProcessEnd {
    /// A normal exit with `code`.
    pub fn code(code: i32) -> Self {
        Self {
            code: Some(code),
            signal: None,
        }
    }

    /// Death by the signal named `signal`.
    pub fn signal(signal: impl Into<String>) -> Self {
        Self {
            code: None,
            signal: Some(signal.into()),
        }
    }
}

/// The text of an `exit` record: `code=<code|null> signal=<signal|null>`.
impl fmt::Display for ProcessEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("code=")?;
        match self.code {
            Some(code) => write!(f, "{code}")?,
            None => f.write_str("null")?,
        }
        f.write_str(" signal=")?;
        match &self.signal {
            Some(signal) => f.write_str(signal),
            None => f.write_str("null"),
        }
    }
}

/// Names one `wait` registration; its [`Effect::WaitDone`] carries it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaitId(pub u64);

/// Something the shell must do. See the module docs of [`core`](super) for
/// the contract.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Create the OS process, then report [`Core::handle_spawned`] or
    /// [`Core::handle_spawn_failed`](super::Core::handle_spawn_failed).
    ///
    /// [`Core::handle_spawned`]: super::Core::handle_spawned
    Spawn {
        /// The process.
        id: ProcessId,
        /// The app revision to run (a respawn runs its predecessor's, even if
        /// the app changed since).
        app: Arc<AppInfo>,
        /// Instance number at creation.
        number: u32,
        /// Arguments after the program.
        args: Vec<String>,
        /// Working directory.
        cwd: String,
        /// `Some(number)` when the app has `unique-instances`: becomes
        /// `FINAL_PM_INSTANCE_NUMBER` in the child's environment.
        instance_number: Option<u32>,
    },
    /// Send `signal` to the process's group. Only ever emitted for a process
    /// whose pid the core knows.
    Signal {
        /// The process.
        id: ProcessId,
        /// The signal.
        signal: Signal,
    },
    /// Close the process's IPC channel (`stop-signal: disconnect`).
    Disconnect {
        /// The process.
        id: ProcessId,
    },
    /// Write one IPC message: `"stop"` for `stop-signal: message`, or what a
    /// client `send`s. Messages sent before the process existed come right
    /// after it was spawned, in order.
    Message {
        /// The process.
        id: ProcessId,
        /// The JSON value.
        message: serde_json::Value,
    },
    /// Append a lifecycle record to the app's log stream (the shell adds the
    /// timestamp).
    Log {
        /// The process the record is about.
        id: ProcessId,
        /// App name.
        app: String,
        /// Instance number.
        number: u32,
        /// OS pid, if the process exists.
        pid: Option<u32>,
        /// Generation when the record was made (for `moved`, the new one).
        generation: Option<Generation>,
        /// Record type.
        kind: LogKind,
        /// Record text (`moved to new generation`, `signal=SIGINT`, ...).
        text: String,
    },
    /// The record is gone: the shell drops what it keeps for this id. A
    /// crash-respawn reuses the id, so a `Spawn` of the same id may follow.
    Forget {
        /// The process.
        id: ProcessId,
    },
    /// A `wait` registration is satisfied.
    WaitDone {
        /// The registration.
        wait: WaitId,
    },
}

impl Effect {
    /// The process the effect is about, if any.
    pub fn process_id(&self) -> Option<ProcessId> {
        match self {
            Self::Spawn { id, .. }
            | Self::Signal { id, .. }
            | Self::Disconnect { id }
            | Self::Message { id, .. }
            | Self::Log { id, .. }
            | Self::Forget { id } => Some(*id),
            Self::WaitDone { .. } => None,
        }
    }
}

/// What a graceful stop delivered, remembered on the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopKind {
    /// A restart delay was cancelled; the process never existed.
    PreStart,
    /// The app's stop signal was delivered.
    Delivered(StopSignal),
}

impl StopKind {
    /// The `signal=` value of the `stop` record.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::PreStart => "pre-start",
            Self::Delivered(signal) => signal.as_str(),
        }
    }
}
