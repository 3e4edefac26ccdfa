//! Replies and pushed events the daemon sends to a client.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{AppInfo, LogRecord, ProcessInfo};

/// The reply to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// The daemon's half of the handshake.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/response/hello.json")]
    /// ```
    Hello {
        /// [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION) of the daemon.
        protocol_version: u32,
        /// The daemon's package version.
        daemon_version: String,
        /// The daemon's OS pid.
        pid: u32,
    },
    /// The request was carried out; nothing more to say (stop, kill, send,
    /// wait, follow, unfollow, kill_daemon).
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/response/ok.json")]
    /// ```
    Ok {},
    /// The result of `add`.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/response/added.json")]
    /// ```
    Added {
        /// The app did not exist before.
        added: bool,
        /// Keys whose values changed; empty when the upload changed nothing.
        changed: Vec<String>,
        /// The app's revision after the call.
        revision: u64,
    },
    /// The result of `delete`.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/response/deleted.json")]
    /// ```
    Deleted {
        /// The app that was removed.
        name: String,
    },
    /// The result of `start`: the new process record.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/response/started.json")]
    /// ```
    Started {
        /// The process, as `info` would show it.
        process: Box<ProcessInfo>,
    },
    /// The result of `info`.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/response/info.json")]
    /// ```
    Info {
        /// Every stored app, in table order.
        applications: Vec<AppInfo>,
        /// Every process, in table order.
        processes: Vec<ProcessInfo>,
        /// The daemon's package version.
        daemon_version: String,
        /// The daemon's OS pid.
        pid: u32,
    },
    /// The result of `logs`.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/response/logs.json")]
    /// ```
    Logs {
        /// Records, oldest first.
        records: Vec<LogRecord>,
    },
    /// The result of `all`: one entry per request, in order.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/response/batch.json")]
    /// ```
    Batch {
        /// Each entry's reply, errors included.
        results: Vec<Self>,
    },
    /// The request failed; nothing was changed unless the code says otherwise.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/response/error.json")]
    /// ```
    Error(ErrorResponse),
}

impl Response {
    /// Every response type name, as written in the `type` field.
    pub const TYPES: [&'static str; 9] = [
        "hello", "ok", "added", "deleted", "started", "info", "logs", "batch", "error",
    ];

    /// Builds an error reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error(ErrorResponse {
            code,
            message: message.into(),
        })
    }

    /// The reply's type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Ok {} => "ok",
            Self::Added { .. } => "added",
            Self::Deleted { .. } => "deleted",
            Self::Started { .. } => "started",
            Self::Info { .. } => "info",
            Self::Logs { .. } => "logs",
            Self::Batch { .. } => "batch",
            Self::Error(_) => "error",
        }
    }
}

/// A failed request: a code to branch on and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What failed, naming the object involved.
    pub message: String,
}

impl fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorResponse {}

/// Machine-readable failure kinds. Clients must accept codes they do not know
/// (they arrive as [`ErrorCode::Unknown`]), so new codes can be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line was not a JSON object with a string `type`.
    BadRequest,
    /// The line was longer than [`MAX_LINE_LENGTH`](crate::MAX_LINE_LENGTH);
    /// it was discarded up to its newline.
    LineTooLong,
    /// The line was not valid UTF-8.
    InvalidUtf8,
    /// The `type` names no request.
    UnknownRequest,
    /// The request's fields are missing or have the wrong type.
    InvalidArguments,
    /// The first request on a connection must be `hello`.
    HandshakeRequired,
    /// Client and daemon speak different protocol versions.
    VersionMismatch,
    /// The peer is not the user the daemon runs as.
    PermissionDenied,
    /// No app of that name.
    UnknownApp,
    /// No process with that id.
    NoSuchProcess,
    /// Builtin apps are replaced or deleted only with `force`.
    BuiltinApp,
    /// The app was uploaded from another config file; replace it with `force`.
    ConfigPathChanged,
    /// The configuration is not acceptable.
    InvalidConfig,
    /// A message could not be handed to the process.
    SendFailed,
    /// The daemon is shutting down and takes no new work.
    ShuttingDown,
    /// A bug in the daemon; the message says what.
    Internal,
    /// A code this client does not know.
    #[serde(other)]
    Unknown,
}

/// A message the daemon pushes without being asked (to `follow` subscribers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A new log record.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/event/log.json")]
    /// ```
    Log {
        /// The record.
        record: LogRecord,
    },
    /// This subscriber read too slowly and `count` records were not sent to it.
    /// Nobody else was slowed down.
    ///
    /// ```json
    #[doc = include_str!("../tests/golden/event/missed.json")]
    /// ```
    Missed {
        /// Records skipped since the last delivered one.
        count: u64,
    },
}

impl Event {
    /// Every event type name, as written in the `type` field.
    pub const TYPES: [&'static str; 2] = ["log", "missed"];
}

/// Anything the daemon writes on a connection: a reply or an event.
#[derive(Debug, Clone, PartialEq)]
pub enum DaemonMessage {
    /// The reply to the oldest unanswered request.
    Response(Response),
    /// A pushed event.
    Event(Event),
}

impl Serialize for DaemonMessage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Response(r) => r.serialize(serializer),
            Self::Event(e) => e.serialize(serializer),
        }
    }
}

impl DaemonMessage {
    /// Decodes one line from the daemon.
    ///
    /// The `type` is read first: from the start of the line, where the
    /// daemon writes it, or else from a pass over the line that keeps
    /// nothing else; then the line is decoded straight into the type it
    /// names. The replies that can be large (`info`, `logs`) are
    /// decoded field by field into their variant, without the intermediate
    /// copy of the whole message that an internally tagged enum makes while
    /// it looks for its tag (for `info` with 50 processes that copy was most
    /// of the CLI's decoding time).
    pub fn from_json(line: &[u8]) -> serde_json::Result<Self> {
        #[derive(Deserialize)]
        struct Tag<'a> {
            #[serde(rename = "type", borrow)]
            ty: std::borrow::Cow<'a, str>,
        }
        #[derive(Deserialize)]
        struct Info {
            applications: Vec<AppInfo>,
            processes: Vec<ProcessInfo>,
            daemon_version: String,
            pid: u32,
        }
        #[derive(Deserialize)]
        struct Logs {
            records: Vec<LogRecord>,
        }
        // `{"type":"info",...`: a name without escapes, as every type is.
        let leading = line
            .strip_prefix(br#"{"type":""#)
            .and_then(|rest| rest.split(|&b| b == b'"').next())
            .filter(|name| !name.contains(&b'\\'))
            .and_then(|name| std::str::from_utf8(name).ok());
        let tag = match leading {
            Some(name) => std::borrow::Cow::Borrowed(name),
            None => serde_json::from_slice::<Tag<'_>>(line)?.ty,
        };
        match tag.as_ref() {
            "info" => {
                let Info {
                    applications,
                    processes,
                    daemon_version,
                    pid,
                } = serde_json::from_slice(line)?;
                Ok(Self::Response(Response::Info {
                    applications,
                    processes,
                    daemon_version,
                    pid,
                }))
            }
            "logs" => {
                let Logs { records } = serde_json::from_slice(line)?;
                Ok(Self::Response(Response::Logs { records }))
            }
            ty if Event::TYPES.contains(&ty) => serde_json::from_slice(line).map(Self::Event),
            _ => serde_json::from_slice(line).map(Self::Response),
        }
    }
}

impl<'de> Deserialize<'de> for DaemonMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let raw = Box::<serde_json::value::RawValue>::deserialize(deserializer)?;
        Self::from_json(raw.get().as_bytes()).map_err(D::Error::custom)
    }
}
