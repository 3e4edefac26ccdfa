//! Errors of the client side of the protocol.

use std::path::PathBuf;

use crate::response::ErrorResponse;

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// Nothing listens on the socket (no file, or a stale one).
    #[error("cannot connect to the daemon at {}", socket.display())]
    DaemonNotRunning {
        /// The socket path tried.
        socket: PathBuf,
        /// The connect error (`ENOENT`, `ECONNREFUSED`, ...).
        source: std::io::Error,
    },
    /// Reading or writing the socket failed.
    #[error("{about}")]
    Io {
        /// What was being done.
        about: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The daemon closed the connection before answering.
    #[error("the daemon closed the connection")]
    Closed,
    /// A line from the daemon was not a message this client understands.
    #[error("unreadable message from the daemon: {line_excerpt}")]
    Json {
        /// The start of the offending line.
        line_excerpt: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A line from the daemon exceeded the length limit.
    #[error("a message from the daemon exceeded {max} bytes")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// The daemon answered with a reply of the wrong kind.
    #[error("unexpected reply from the daemon: expected {expected}, got {got}")]
    UnexpectedResponse {
        /// What the request calls for.
        expected: &'static str,
        /// The type that arrived.
        got: String,
    },
    /// Client and daemon speak different protocol versions.
    #[error(
        "the daemon speaks protocol version {theirs} but this final-pm speaks {ours}: \
         stop the old daemon with `final-pm --kill` (from the version that started it) and retry"
    )]
    VersionMismatch {
        /// This client's version.
        ours: u32,
        /// The daemon's version.
        theirs: u32,
    },
    /// The daemon refused the request.
    #[error("{0}")]
    Refused(#[from] ErrorResponse),
}
