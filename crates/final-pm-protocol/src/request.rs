//! Requests a client sends to the daemon.

use serde::{Deserialize, Serialize};

use crate::model::{AppConfig, ProcessId};

/// One request line. The `type` field names the call; the daemon answers every
/// request with exactly one [`Response`](crate::Response), in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Must be the first request on every connection; the daemon answers with
    /// its own versions, or `version_mismatch`.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/hello.json")]
    /// ```
    Hello {
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the client.
        protocol_version: u32,
        /// Free text naming the client, for the daemon's log.
        client: String,
    },
    /// Store an application configuration. Answered by
    /// [`Response::Added`](crate::Response::Added), or `builtin_app` /
    /// `config_path_changed` unless `force` is set.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/add.json")]
    /// ```
    Add {
        /// The complete configuration.
        app: Box<AppConfig>,
        /// Replace a builtin app, or an app from another config file.
        #[serde(default)]
        force: bool,
    },
    /// Remove an application. Its processes keep running and show as outdated.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/delete.json")]
    /// ```
    Delete {
        /// App name.
        name: String,
        /// Needed to delete a builtin app.
        #[serde(default)]
        force: bool,
    },
    /// Create one process of an app. Answered by
    /// [`Response::Started`](crate::Response::Started).
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/start.json")]
    /// ```
    Start {
        /// App name.
        name: String,
        /// Instance number; 0 when absent.
        #[serde(default)]
        number: Option<u32>,
    },
    /// Stop one process gracefully (see the generations).
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/stop.json")]
    /// ```
    Stop {
        /// Process id.
        id: ProcessId,
    },
    /// Send the app's kill signal to one process; a second kill of a process
    /// that is still alive sends SIGKILL.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/kill.json")]
    /// ```
    Kill {
        /// Process id.
        id: ProcessId,
    },
    /// Send a JSON message over a process's IPC channel (queued until the
    /// process exists).
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/send.json")]
    /// ```
    Send {
        /// Process id.
        id: ProcessId,
        /// Any JSON value.
        message: serde_json::Value,
    },
    /// Everything the daemon knows: apps and processes. Answered by
    /// [`Response::Info`](crate::Response::Info).
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/info.json")]
    /// ```
    Info {
        /// Also each live process's CPU time and memory
        /// ([`ProcessInfo::usage`](crate::ProcessInfo::usage)), which costs
        /// the daemon a read of `/proc` per process: asked for by `show`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        usage: bool,
    },
    /// Answered once the daemon is at rest: every process running, every log
    /// buffer of a finished app delivered. With `all`, once no process is left.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/wait.json")]
    /// ```
    Wait {
        /// Wait until no process is left at all.
        #[serde(default)]
        all: bool,
    },
    /// Buffered log records of an app (or `all`), oldest first. With `follow`,
    /// the connection then receives [`Event::Log`](crate::Event::Log) for every
    /// new record, after this reply.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/logs.json")]
    /// ```
    Logs {
        /// App name, or `all`.
        name: String,
        /// Only records of these processes; all when empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ids: Vec<ProcessId>,
        /// Keep only the last `lines` records; all when absent.
        #[serde(default)]
        lines: Option<u64>,
        /// Subscribe to new records.
        #[serde(default)]
        follow: bool,
    },
    /// Subscribe to new records of an app (or `all`).
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/follow.json")]
    /// ```
    Follow {
        /// App name, or `all`.
        name: String,
    },
    /// End a subscription made by `follow` or `logs`.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/unfollow.json")]
    /// ```
    Unfollow {
        /// App name, or `all`.
        name: String,
    },
    /// Kill every process and shut the daemon down. Answered once every process
    /// is gone; the daemon then exits.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/kill_daemon.json")]
    /// ```
    KillDaemon {},
    /// Run requests in order. Entries run one after the other without waiting
    /// for each other's effects, except that a `wait` entry is awaited before
    /// the next entry runs. Answered by [`Response::Batch`](crate::Response::Batch)
    /// with one result per entry, errors included.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/request/all.json")]
    /// ```
    All {
        /// The entries; `hello` and nested `all` are refused.
        requests: Vec<Self>,
    },
}

impl Request {
    /// Every request type name, as written in the `type` field.
    pub const TYPES: [&'static str; 14] = [
        "hello",
        "add",
        "delete",
        "start",
        "stop",
        "kill",
        "send",
        "info",
        "wait",
        "logs",
        "follow",
        "unfollow",
        "kill_daemon",
        "all",
    ];

    /// The request's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Add { .. } => "add",
            Self::Delete { .. } => "delete",
            Self::Start { .. } => "start",
            Self::Stop { .. } => "stop",
            Self::Kill { .. } => "kill",
            Self::Send { .. } => "send",
            Self::Info { .. } => "info",
            Self::Wait { .. } => "wait",
            Self::Logs { .. } => "logs",
            Self::Follow { .. } => "follow",
            Self::Unfollow { .. } => "unfollow",
            Self::KillDaemon {} => "kill_daemon",
            Self::All { .. } => "all",
        }
    }
}
