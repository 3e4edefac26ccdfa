//! The control socket: accepting connections and speaking the protocol on each.
//!
//! Every connection runs in its own task. The task checks the peer's uid,
//! frames lines, answers the handshake and anything malformed by itself, and
//! hands real requests to the supervisor (the only owner of the lifecycle
//! state) over a channel, one at a time, so replies keep request order.
//!
//! A connection never affects another: a client that never reads only blocks
//! its own task (replies wait in the socket buffer; pushed events are skipped
//! and counted), a client that disconnects mid-request just loses its reply.

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use final_pm_protocol::codec::JsonLinesCodec;
use final_pm_protocol::{
    DaemonMessage, ErrorCode, Event, PROTOCOL_VERSION, Request, Response, VERSION,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::supervisor::{Published, SupervisorHandle};

/// Accepts connections until `shutdown` is cancelled.
pub(crate) async fn accept_loop(
    listener: UnixListener,
    supervisor: SupervisorHandle,
    stop_accepting: CancellationToken,
    tracker: TaskTracker,
    close_connections: CancellationToken,
) {
    let my_uid = nix::unistd::getuid().as_raw();
    loop {
        let stream = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of
                    // spinning, and keep serving the connections we have.
                    warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let supervisor = supervisor.clone();
        let shutdown = close_connections.clone();
        tracker.spawn(async move {
            if let Err(err) = connection(stream, my_uid, supervisor, shutdown).await {
                debug!(error = %err, "connection ended with an error");
            }
        });
    }
}

/// What a connection is subscribed to.
#[derive(Debug, Default)]
struct Subscription {
    all: bool,
    apps: BTreeSet<String>,
    /// Records up to this sequence number were already in a `logs` reply.
    seen: u64,
}

impl Subscription {
    fn wants(&self, app: &str) -> bool {
        self.all || self.apps.contains(app)
    }
    fn is_empty(&self) -> bool {
        !self.all && self.apps.is_empty()
    }
    fn add(&mut self, name: &str) {
        if name == "all" {
            self.all = true;
        } else {
            self.apps.insert(name.to_owned());
        }
    }
    fn remove(&mut self, name: &str) {
        if name == "all" {
            self.all = false;
        } else {
            self.apps.remove(name);
        }
    }
}

async fn connection(
    stream: UnixStream,
    my_uid: u32,
    supervisor: SupervisorHandle,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let peer = stream.peer_cred()?;
    let mut framed = Framed::new(stream, JsonLinesCodec::<DaemonMessage>::new());
    if peer.uid() != my_uid {
        warn!(uid = peer.uid(), pid = ?peer.pid(), "refused a connection from another user");
        let refusal = Response::error(
            ErrorCode::PermissionDenied,
            format!(
                "this daemon belongs to uid {my_uid}; uid {} may not use it",
                peer.uid()
            ),
        );
        // Answer the client's first line (usually its hello) rather than
        // closing at once: a client still writing would otherwise see a
        // broken pipe instead of the reason.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = framed.next().await;
            let _ = framed.send(DaemonMessage::Response(refusal)).await;
        })
        .await;
        return Ok(());
    }
    let mut handshaken = false;
    let mut subscription = Subscription::default();
    let mut events: Option<broadcast::Receiver<Published>> = None;
    loop {
        let frame = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            event = recv_event(&mut events) => {
                match event {
                    Ok(published) => {
                        if published.seq > subscription.seen && subscription.wants(&published.record.app) {
                            let record = (*published.record).clone();
                            framed.send(DaemonMessage::Event(Event::Log { record })).await?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(count)) => {
                        framed.send(DaemonMessage::Event(Event::Missed { count })).await?;
                    }
                    Err(broadcast::error::RecvError::Closed) => events = None,
                }
                continue;
            }
            frame = framed.next() => match frame {
                None => return Ok(()),
                Some(frame) => frame?,
            },
        };
        let request = match crate::api::parse(&frame) {
            Ok(request) => request,
            Err(reply) => {
                framed.send(DaemonMessage::Response(reply)).await?;
                continue;
            }
        };
        let reply = match request {
            Request::Hello {
                protocol_version,
                client,
            } => {
                if protocol_version == PROTOCOL_VERSION {
                    handshaken = true;
                    debug!(%client, "client connected");
                    Response::Hello {
                        protocol_version,
                        daemon_version: VERSION.to_owned(),
                        pid: std::process::id(),
                    }
                } else {
                    info!(%client, protocol_version, "refused a client of another protocol version");
                    Response::error(
                        ErrorCode::VersionMismatch,
                        format!(
                            "this daemon (final-pm {VERSION}) speaks protocol version {PROTOCOL_VERSION}, \
                             the client ({client}) speaks {protocol_version}"
                        ),
                    )
                }
            }
            _ if !handshaken => Response::error(
                ErrorCode::HandshakeRequired,
                format!(
                    "send \"hello\" with protocol_version {PROTOCOL_VERSION} before other requests"
                ),
            ),
            Request::Follow { ref name }
            | Request::Logs {
                ref name,
                follow: true,
                ..
            } => {
                // Subscribe before the daemon collects the reply, so nothing
                // falls between the reply and the first event.
                if events.is_none() {
                    events = Some(supervisor.subscribe());
                }
                subscription.add(name);
                let reply = supervisor.call(request).await;
                if let Some(seen) = reply.seen {
                    subscription.seen = subscription.seen.max(seen);
                }
                reply.response
            }
            Request::Unfollow { name } => {
                subscription.remove(&name);
                if subscription.is_empty() {
                    events = None;
                }
                Response::Ok {}
            }
            request => supervisor.call(request).await.response,
        };
        framed.send(DaemonMessage::Response(reply)).await?;
    }
}

async fn recv_event(
    events: &mut Option<broadcast::Receiver<Published>>,
) -> Result<Published, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
