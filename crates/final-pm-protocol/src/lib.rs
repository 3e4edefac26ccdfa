//! The final-pm control protocol: the contract between the `final-pm` CLI (or
//! any other client) and the daemon.
//!
//! # Transport
//!
//! A Unix stream socket (by default `~/.final-pm/daemon.sock`, mode 0600, in a
//! 0700 directory). The daemon accepts connections only from its own user
//! (checked with `SO_PEERCRED`). There is no TCP transport: the control socket
//! can start any program, so it is local by design.
//!
//! # Framing
//!
//! Newline-delimited JSON: every message is one compact JSON object on one
//! line, UTF-8, terminated by `\n` (a `\r` before it is ignored). A line may be
//! at most [`MAX_LINE_LENGTH`] bytes; a longer one is discarded up to its
//! newline and answered with a `line_too_long` error. See [`codec`].
//!
//! # Conversation
//!
//! 1. The client sends [`Request::Hello`] first; the daemon answers
//!    [`Response::Hello`], or an error `version_mismatch` (the versions differ)
//!    or `handshake_required` (something else came first; the connection stays
//!    open for a proper hello).
//! 2. The client sends requests. The daemon answers every request with exactly
//!    one [`Response`], in request order. A request that cannot be read gets an
//!    error reply (`bad_request`, `invalid_utf8`, `unknown_request`,
//!    `invalid_arguments`, `line_too_long`) and the connection stays usable.
//!    A client need not wait for a reply before it sends the next request:
//!    the CLI sends its first request in the same write as the hello
//!    ([`Client::connect_and_call`](client::Client::connect_and_call)).
//! 3. After `follow` (or `logs` with `follow`), the daemon also pushes
//!    [`Event`]s. Events never come before the reply of the request that
//!    subscribed. A reader distinguishes the two by `type`
//!    ([`DaemonMessage`]). A subscriber that reads too slowly is sent
//!    [`Event::Missed`] with the number of records it did not get.
//!
//! Every request, reply and event, with its JSON form, is documented on the
//! variants of [`Request`], [`Response`] and [`Event`]; the examples are the
//! golden files of the crate's tests, so they cannot drift from the code.
//!
//! A short session:
//!
//! ```text
//! → {"type":"hello","protocol_version":1,"client":"final-pm 0.1.0"}
//! ← {"type":"hello","protocol_version":1,"daemon_version":"0.1.0","pid":4242}
//! → {"type":"start","name":"web","number":0}
//! ← {"type":"started","process":{"id":3,"pid":null,"app_name":"web",...}}
//! → {"type":"stop","id":99}
//! ← {"type":"error","code":"no_such_process","message":"no process with id 99"}
//! ```
//!
//! # Compatibility
//!
//! Within one [`PROTOCOL_VERSION`], changes are additive: new optional fields,
//! new request types, new error codes (unknown codes read as
//! [`ErrorCode::Unknown`]). Neither side rejects unknown fields.

pub mod client;
pub mod codec;
pub mod error;
pub mod model;
pub mod request;
pub mod response;

pub use client::Client;
pub use error::ProtocolError;
pub use model::{
    AppConfig, AppInfo, AppType, Environment, EnvironmentIter, Generation, KillSignal, LogKind,
    LogProcess, LogRecord, Mode, ProcessId, ProcessInfo, ReadyOn, StopSignal, Usage,
};
pub use request::Request;
pub use response::{DaemonMessage, ErrorCode, ErrorResponse, Event, Response};

/// The version both sides must agree on in the handshake.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest line either side accepts, in bytes (8 MiB: an `info` of a few
/// thousand processes fits many times over).
pub const MAX_LINE_LENGTH: usize = 8 * 1024 * 1024;

/// The package version, reported in the handshake.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
