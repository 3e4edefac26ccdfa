//! Why the core refuses a client command.
//!
//! One variant per refusal, each with the machine code it maps to on the wire
//! ([`CommandError::code`]), so the mapping happens in exactly one place.

use final_pm_protocol::{ErrorCode, ProcessId};

/// A refused client command. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No app of that name is stored.
    #[error("no app named {0}")]
    UnknownApp(String),
    /// No process has that id (it may have exited).
    #[error("no process with id {0}")]
    NoSuchProcess(ProcessId),
    /// Builtin apps are replaced or deleted only with `force`.
    #[error("app {0} is builtin: replacing or deleting it needs force")]
    BuiltinApp(String),
    /// The app was uploaded from another config file.
    #[error(
        "app {name} was added from {} and now comes from {}: replacing it needs force",
        old.as_deref().unwrap_or("no config file"),
        new.as_deref().unwrap_or("no config file")
    )]
    ConfigPathChanged {
        /// The app.
        name: String,
        /// The stored app's `config-path`.
        old: Option<String>,
        /// The uploaded app's `config-path`.
        new: Option<String>,
    },
    /// The uploaded configuration cannot be run.
    #[error("invalid configuration of app {name}: {problem}")]
    InvalidConfig {
        /// The app.
        name: String,
        /// What is wrong.
        problem: ConfigProblem,
    },
    /// The daemon is killing everything and starts nothing new.
    #[error("the daemon is shutting down")]
    ShuttingDown,
}

impl CommandError {
    /// The wire code of this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::UnknownApp(_) => ErrorCode::UnknownApp,
            Self::NoSuchProcess(_) => ErrorCode::NoSuchProcess,
            Self::BuiltinApp(_) => ErrorCode::BuiltinApp,
            Self::ConfigPathChanged { .. } => ErrorCode::ConfigPathChanged,
            Self::InvalidConfig { .. } => ErrorCode::InvalidConfig,
            Self::ShuttingDown => ErrorCode::ShuttingDown,
        }
    }
}

/// A configuration the lifecycle cannot work with. The CLI's loader rejects
/// these too; the core checks again because the socket accepts any client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigProblem {
    /// `instances` must be at least 1: with 0 every ready process would be
    /// stopped at once.
    #[error("instances must be at least 1")]
    ZeroInstances,
    /// A cap at or below `instances` could never let a replacement start
    /// while the old processes still run.
    #[error("max-instances ({max}) must be 0 or larger than instances ({instances})")]
    MaxInstancesTooSmall {
        /// `max-instances`.
        max: u32,
        /// `instances`.
        instances: u32,
    },
}
