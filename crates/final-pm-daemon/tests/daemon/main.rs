//! The daemon library driven in-process: `Daemon::bind` and `Daemon::run`
//! with an injected shutdown future, talking to it through the protocol
//! crate's client.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod fixture;
mod lifecycle;

use std::path::PathBuf;
use std::time::Duration;

use final_pm_daemon::{Daemon, DaemonConfig, StartError};
use final_pm_protocol::{Client, ErrorCode, ProtocolError, Request, Response};
use tokio_util::sync::CancellationToken;

fn config(dir: &tempfile::TempDir) -> DaemonConfig {
    let home = dir.path().join("home");
    DaemonConfig {
        socket: home.join("daemon.sock"),
        home,
        file_logger: None,
    }
}

/// Runs a daemon with its home in `dir`, in this test's runtime, until the
/// returned token is cancelled; returns its socket too.
fn spawn(
    dir: &tempfile::TempDir,
) -> (
    PathBuf,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let config = config(dir);
    let socket = config.socket.clone();
    let daemon = Daemon::bind(config).unwrap();
    let token = CancellationToken::new();
    let shutdown = token.clone();
    let task =
        tokio::spawn(async move { daemon.run(async move { shutdown.cancelled().await }).await });
    (socket, token, task)
}

#[tokio::test]
async fn bind_twice_is_already_running() {
    let dir = tempfile::tempdir().unwrap();
    let first = Daemon::bind(config(&dir)).unwrap();
    match Daemon::bind(config(&dir)) {
        Err(StartError::AlreadyRunning { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        other => panic!("expected AlreadyRunning, got {other:?}"),
    }
    drop(first);
}

#[tokio::test]
async fn shutdown_future_stops_the_daemon_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, token, task) = spawn(&dir);
    let mut client = Client::connect(&socket, "test").await.unwrap();
    assert_eq!(client.daemon_pid(), std::process::id());
    assert!(matches!(
        client.call(Request::Info { usage: false }).await.unwrap(),
        Response::Info { .. }
    ));
    token.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!socket.exists());
    assert!(!socket.with_extension("sock.lock").exists());
    // The connection was closed by the daemon.
    assert!(matches!(
        client.call(Request::Info { usage: false }).await,
        Err(ProtocolError::Closed | ProtocolError::Io { .. })
    ));
}

#[tokio::test]
async fn kill_daemon_is_answered_before_the_daemon_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, _token, task) = spawn(&dir);
    let mut client = Client::connect(&socket, "test").await.unwrap();
    let mut follower = Client::connect(&socket, "follower").await.unwrap();
    assert!(matches!(
        follower
            .call(Request::Follow { name: "all".into() })
            .await
            .unwrap(),
        Response::Ok {}
    ));
    assert_eq!(
        client.call(Request::KillDaemon {}).await.unwrap(),
        Response::Ok {}
    );
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!socket.exists());
    // The follower is disconnected rather than keeping the daemon alive.
    assert!(matches!(follower.next_event().await, Ok(None) | Err(_)));
}

#[tokio::test]
async fn a_request_sent_with_the_hello_is_answered_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, token, task) = spawn(&dir);
    let (mut client, info) =
        Client::connect_and_call(&socket, "test", Request::Info { usage: false })
            .await
            .unwrap();
    assert_eq!(client.daemon_pid(), std::process::id());
    match info {
        Response::Info { pid, processes, .. } => {
            assert_eq!(pid, std::process::id());
            assert!(processes.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // The connection goes on like any other.
    assert!(matches!(
        client.call(Request::Info { usage: false }).await.unwrap(),
        Response::Info { .. }
    ));
    // A refused request is an error, as from call.
    let refused = Client::connect_and_call(
        &socket,
        "test",
        Request::Stop {
            id: final_pm_protocol::ProcessId(99),
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&refused, ProtocolError::Refused(e) if e.code == ErrorCode::NoSuchProcess),
        "{refused:?}"
    );
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn version_mismatch_is_refused_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let (socket, token, task) = spawn(&dir);
    let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    write
        .write_all(b"{\"type\":\"hello\",\"protocol_version\":0,\"client\":\"old\"}\n")
        .await
        .unwrap();
    let line = tokio::io::BufReader::new(read)
        .lines()
        .next_line()
        .await
        .unwrap()
        .unwrap();
    let reply: Response = serde_json::from_str(&line).unwrap();
    match reply {
        Response::Error(e) => assert_eq!(e.code, ErrorCode::VersionMismatch),
        other => panic!("{other:?}"),
    }
    token.cancel();
    task.await.unwrap().unwrap();
}
