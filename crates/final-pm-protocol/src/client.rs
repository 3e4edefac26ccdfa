//! A small async client: connect, handshake, one request at a time.

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use futures_util::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Encoder as _, Framed};

use crate::codec::{Frame, JsonLinesCodec};
use crate::error::ProtocolError;
use crate::request::Request;
use crate::response::{DaemonMessage, Event, Response};
use crate::{MAX_LINE_LENGTH, PROTOCOL_VERSION};

/// An open, handshaken connection to the daemon.
///
/// Replies come back in request order; events pushed in between (after a
/// `follow`) are kept in arrival order for [`Client::next_event`].
#[derive(Debug)]
pub struct Client {
    framed: Framed<UnixStream, JsonLinesCodec<Request>>,
    events: VecDeque<Event>,
    daemon_version: String,
    daemon_pid: u32,
}

/// Whether a connect error means "no daemon there" (as opposed to, say,
/// permission denied): these are the errors a stale or missing socket gives.
pub fn is_not_running(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    ) || err.raw_os_error() == Some(88) // ENOTSOCK: a regular file where the socket should be
}

impl Client {
    /// Connects to the socket at `path` and performs the version handshake.
    /// `client` names the caller in the daemon's log.
    pub async fn connect(path: &Path, client: &str) -> Result<Self, ProtocolError> {
        Self::handshake(open(path).await?, client).await
    }

    /// Like [`connect`](Self::connect) followed by [`call`](Self::call), in
    /// one round trip: the hello and `request` go out in one write, and the
    /// daemon, which answers in request order, replies to both.
    pub async fn connect_and_call(
        path: &Path,
        client: &str,
        request: Request,
    ) -> Result<(Self, Response), ProtocolError> {
        let mut this = Self::new(open(path).await?);
        this.framed.feed(hello(client)).await.map_err(sending)?;
        this.framed.feed(request).await.map_err(sending)?;
        this.framed.flush().await.map_err(sending)?;
        this.read_hello_and_reply().await
    }

    /// The replies to a hello and one request already sent.
    async fn read_hello_and_reply(mut self) -> Result<(Self, Response), ProtocolError> {
        self.read_hello().await?;
        let response = match self.read_response().await? {
            Response::Error(err) => return Err(err.into()),
            response => response,
        };
        Ok((self, response))
    }

    /// Performs the handshake on an already connected stream.
    pub async fn handshake(stream: UnixStream, client: &str) -> Result<Self, ProtocolError> {
        let mut this = Self::new(stream);
        this.framed.send(hello(client)).await.map_err(sending)?;
        this.read_hello().await?;
        Ok(this)
    }

    fn new(stream: UnixStream) -> Self {
        Self {
            framed: Framed::new(stream, JsonLinesCodec::new()),
            events: VecDeque::new(),
            daemon_version: String::new(),
            daemon_pid: 0,
        }
    }

    /// Reads the daemon's half of the handshake.
    async fn read_hello(&mut self) -> Result<(), ProtocolError> {
        match self.read_response().await? {
            Response::Hello {
                protocol_version,
                daemon_version,
                pid,
            } => {
                if protocol_version != PROTOCOL_VERSION {
                    return Err(ProtocolError::VersionMismatch {
                        ours: PROTOCOL_VERSION,
                        theirs: protocol_version,
                    });
                }
                self.daemon_version = daemon_version;
                self.daemon_pid = pid;
                Ok(())
            }
            Response::Error(err) if err.code == crate::ErrorCode::VersionMismatch => {
                Err(ProtocolError::VersionMismatch {
                    ours: PROTOCOL_VERSION,
                    theirs: 0,
                })
            }
            Response::Error(err) => Err(err.into()),
            other => Err(ProtocolError::UnexpectedResponse {
                expected: "hello",
                got: other.type_name().to_owned(),
            }),
        }
    }

    /// The daemon's package version, from the handshake.
    pub fn daemon_version(&self) -> &str {
        &self.daemon_version
    }

    /// The daemon's OS pid, from the handshake.
    pub fn daemon_pid(&self) -> u32 {
        self.daemon_pid
    }

    /// Sends one request and returns its reply, error replies included.
    pub async fn request(&mut self, request: Request) -> Result<Response, ProtocolError> {
        self.framed.send(request).await.map_err(sending)?;
        self.read_response().await
    }

    /// The reply to the oldest unanswered request; events that come first
    /// are kept for [`next_event`](Self::next_event).
    async fn read_response(&mut self) -> Result<Response, ProtocolError> {
        loop {
            match self.read_message().await? {
                Some(DaemonMessage::Response(response)) => return Ok(response),
                Some(DaemonMessage::Event(event)) => self.events.push_back(event),
                None => return Err(ProtocolError::Closed),
            }
        }
    }

    /// Sends one request; an error reply becomes [`ProtocolError::Refused`].
    pub async fn call(&mut self, request: Request) -> Result<Response, ProtocolError> {
        match self.request(request).await? {
            Response::Error(err) => Err(err.into()),
            response => Ok(response),
        }
    }

    /// The next pushed event; `None` when the daemon closed the connection.
    pub async fn next_event(&mut self) -> Result<Option<Event>, ProtocolError> {
        if let Some(event) = self.events.pop_front() {
            return Ok(Some(event));
        }
        match self.read_message().await? {
            Some(DaemonMessage::Event(event)) => Ok(Some(event)),
            Some(DaemonMessage::Response(response)) => Err(ProtocolError::UnexpectedResponse {
                expected: "an event",
                got: response.type_name().to_owned(),
            }),
            None => Ok(None),
        }
    }

    async fn read_message(&mut self) -> Result<Option<DaemonMessage>, ProtocolError> {
        let frame = match self.framed.next().await {
            None => return Ok(None),
            Some(Err(source)) => {
                return Err(ProtocolError::Io {
                    about: "reading from the daemon",
                    source,
                });
            }
            Some(Ok(frame)) => frame,
        };
        match frame {
            Frame::TooLong { .. } => Err(ProtocolError::LineTooLong {
                max: MAX_LINE_LENGTH,
            }),
            Frame::Line(line) => {
                DaemonMessage::from_json(&line)
                    .map(Some)
                    .map_err(|source| ProtocolError::Json {
                        line_excerpt: String::from_utf8_lossy(&line[..line.len().min(200)])
                            .into_owned(),
                        source,
                    })
            }
        }
    }
}

/// A hello and one request, sent on a new connection by plain blocking
/// system calls, before the caller has a runtime to read the replies with.
///
/// Why: a one-shot query such as `final-pm show` spends about as long in the
/// daemon as the CLI spends starting (parsing its arguments, loading the
/// configuration, building its runtime). Sent first, the two can happen at
/// the same time instead of one after the other (where the scheduler puts
/// them on different cores; on the 2-core benchmark machine it often does
/// not, and `show` gained a fifth rather than half).
#[derive(Debug)]
pub struct EarlyCall {
    stream: std::os::unix::net::UnixStream,
    socket: PathBuf,
    request: Request,
}

impl EarlyCall {
    /// Connects to `socket` and writes the hello and `request`. `None` when
    /// that cannot be done at once (no daemon there, a refused connection,
    /// a full socket buffer): the caller then goes the usual way, which
    /// reports any error properly.
    pub fn send(socket: &Path, client: &str, request: Request) -> Option<Self> {
        let mut stream = std::os::unix::net::UnixStream::connect(socket).ok()?;
        // Never wait here: the messages are a few hundred bytes and fit any
        // socket buffer; if they did not, the daemon would see a cut line
        // and then the end of the connection, and the caller reconnects.
        stream.set_nonblocking(true).ok()?;
        let mut codec = JsonLinesCodec::new();
        let mut bytes = BytesMut::new();
        codec.encode(hello(client), &mut bytes).ok()?;
        codec.encode(request.clone(), &mut bytes).ok()?;
        stream.write_all(&bytes).ok()?;
        Some(Self {
            stream,
            socket: socket.to_owned(),
            request,
        })
    }

    /// The socket it was sent to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The request it sent after the hello.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Reads the replies, as [`Client::connect_and_call`] would have; needs
    /// a tokio runtime with I/O enabled.
    pub async fn finish(self) -> Result<(Client, Response), ProtocolError> {
        let stream = UnixStream::from_std(self.stream).map_err(|source| ProtocolError::Io {
            about: "reading from the daemon",
            source,
        })?;
        Client::new(stream).read_hello_and_reply().await
    }
}

async fn open(path: &Path) -> Result<UnixStream, ProtocolError> {
    UnixStream::connect(path).await.map_err(|source| {
        if is_not_running(&source) {
            ProtocolError::DaemonNotRunning {
                socket: path.to_owned(),
                source,
            }
        } else {
            ProtocolError::Io {
                about: "connecting to the daemon",
                source,
            }
        }
    })
}

fn hello(client: &str) -> Request {
    Request::Hello {
        protocol_version: PROTOCOL_VERSION,
        client: client.to_owned(),
    }
}

fn sending(source: io::Error) -> ProtocolError {
    ProtocolError::Io {
        about: "sending a request to the daemon",
        source,
    }
}
