//! The final-pm daemon: it supervises applications and answers the control
//! socket.
//!
//! The daemon is a library so that the `final-pm` CLI can *be* the daemon
//! (one executable to install) and so tests can run it in-process. Its parts:
//!
//! - [`core`]: the sans-IO lifecycle state machine (generations, restarts,
//!   timeouts); pure, synchronous, tested without processes.
//! - `supervisor`: the one task that owns all state and executes the core's
//!   effects.
//! - `cluster`: the Node cluster primary that shares listening sockets
//!   between the workers of an app.
//! - `logging`: log buffers and logger processes; [`file_logger`] is the
//!   builtin logger, run in its own process.
//! - `server` and `api`: the socket, framing and request parsing.
//! - [`lock`] and [`paths`]: the files the daemon keeps and how they are found.
//!
//! [`Daemon::bind`] does everything that can fail at start (directories, the
//! lock, a stale socket, the bind), so a caller can report "already running"
//! before detaching; [`Daemon::run`] then serves until shut down.

pub mod core;
pub mod entry;
pub mod file_logger;
pub mod lock;
pub mod paths;
pub mod procfs;

mod api;
mod child;
mod cluster;
mod feed_ring;
mod ipc;
mod lines;
mod listen;
mod logging;
mod logjson;
mod memory;
mod records;
mod server;
mod spawn;
mod supervisor;

use std::future::Future;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::lock::{LockError, LockFile};

/// Where the daemon lives.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// State directory; created 0700 when missing.
    pub home: PathBuf,
    /// The control socket path (absolute).
    pub socket: PathBuf,
    /// The executable that runs the builtin `file-logger` (the final-pm
    /// executable, through its hidden [`file_logger::ENTRY`] argument).
    /// Without one, apps using `file-logger` have no logger: their records
    /// are kept in memory only.
    pub file_logger: Option<PathBuf>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another daemon holds the lock or answers on the socket.
    #[error("daemon already running{} on {}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), socket.display())]
    AlreadyRunning {
        /// The socket.
        socket: PathBuf,
        /// The other daemon's pid, if known.
        pid: Option<u32>,
    },
    /// Something at the socket path that we must not delete.
    #[error("refusing to replace {}: it exists and is not a socket", .0.display())]
    NotASocket(PathBuf),
    /// Directories, lock or bind failed.
    #[error("{about} {}: {source}", path.display())]
    Io {
        /// What was being done.
        about: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A daemon that holds its lock and listens, ready to [`run`](Self::run).
#[derive(Debug)]
pub struct Daemon {
    config: DaemonConfig,
    listener: std::os::unix::net::UnixListener,
    lock: LockFile,
}

impl Daemon {
    /// Creates the home, takes the daemon lock, replaces a stale socket and
    /// binds. Fails with [`StartError::AlreadyRunning`] when a daemon serves
    /// this socket.
    pub fn bind(config: DaemonConfig) -> Result<Self, StartError> {
        create_private_dir(&config.home)?;
        if let Some(parent) = config.socket.parent() {
            create_private_dir(parent)?;
        }
        let lock_path = paths::daemon_lock_path(&config.socket);
        let mut lock = match LockFile::try_acquire(&lock_path) {
            Ok(lock) => lock,
            Err(LockError::Held { holder, .. }) => {
                return Err(StartError::AlreadyRunning {
                    socket: config.socket,
                    pid: holder,
                });
            }
            Err(err) => {
                return Err(StartError::Io {
                    about: "taking the daemon lock",
                    path: lock_path,
                    source: io::Error::other(err),
                });
            }
        };
        remove_stale_socket(&config.socket)?;
        let listener = bind_private(&config.socket)?;
        lock.write_pid().map_err(|source| StartError::Io {
            about: "writing the daemon lock",
            path: lock_path,
            source,
        })?;
        Ok(Self {
            config,
            listener,
            lock,
        })
    }

    /// The socket this daemon listens on.
    pub fn socket(&self) -> &Path {
        &self.config.socket
    }

    /// Serves until `shutdown` resolves or a client sends `kill_daemon`; then
    /// kills every process, removes the socket and the lock, and returns. Must
    /// be called inside a tokio runtime.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            config,
            listener,
            lock,
        } = self;
        listener
            .set_nonblocking(true)
            .context("making the socket non-blocking")?;
        let listener =
            tokio::net::UnixListener::from_std(listener).context("registering the socket")?;
        let stop_accepting = CancellationToken::new();
        let stop_supervisor = CancellationToken::new();
        let close_connections = CancellationToken::new();
        let tracker = TaskTracker::new();
        let (supervisor, handle) = supervisor::Supervisor::new(config.file_logger.clone());
        let accept = tokio::spawn(server::accept_loop(
            listener,
            handle,
            stop_accepting.clone(),
            tracker.clone(),
            close_connections.clone(),
        ));
        info!(version = final_pm_protocol::VERSION, socket = %config.socket.display(), pid = std::process::id(), "Daemon running.");
        let supervised = supervisor.run(stop_supervisor.clone());
        tokio::pin!(supervised);
        tokio::pin!(shutdown);
        tokio::select! {
            () = &mut supervised => {}
            () = &mut shutdown => {
                stop_supervisor.cancel();
                supervised.await;
            }
        }
        // Nothing is alive any more. Stop taking connections, remove the
        // socket so the next launch starts fresh, and let connections flush
        // their last replies (kill_daemon's) before closing them all, also
        // those of clients that never read or follow logs forever.
        stop_accepting.cancel();
        let _ = accept.await;
        if let Err(err) = std::fs::remove_file(&config.socket) {
            warn!(error = %err, socket = %config.socket.display(), "could not remove the socket");
        }
        tracker.close();
        close_connections.cancel();
        if tokio::time::timeout(Duration::from_secs(2), tracker.wait())
            .await
            .is_err()
        {
            warn!("some clients did not take their last reply within 2 s; closing anyway");
        }
        drop(lock);
        info!("Daemon stopped.");
        Ok(())
    }
}

fn create_private_dir(dir: &Path) -> Result<(), StartError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StartError::Io {
            about: "creating directory",
            path: dir.to_owned(),
            source,
        })
}

fn remove_stale_socket(socket: &Path) -> Result<(), StartError> {
    let meta = match std::fs::symlink_metadata(socket) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StartError::Io {
                about: "inspecting the socket",
                path: socket.to_owned(),
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(StartError::NotASocket(socket.to_owned()));
    }
    // We hold the daemon lock, so no final-pm daemon serves this socket; but
    // something else might (an old FinalPM): never steal a live socket.
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(StartError::AlreadyRunning {
            socket: socket.to_owned(),
            pid: None,
        });
    }
    info!(socket = %socket.display(), "removing the stale socket of a daemon that is gone");
    std::fs::remove_file(socket).map_err(|source| StartError::Io {
        about: "removing the stale socket",
        path: socket.to_owned(),
        source,
    })
}

fn bind_private(socket: &Path) -> Result<std::os::unix::net::UnixListener, StartError> {
    use nix::sys::stat::{Mode, umask};
    // The socket must never be reachable by others, not even for the moment
    // between bind and chmod: bind under a umask that leaves only the owner.
    let previous = umask(Mode::from_bits_truncate(0o177));
    let bound = std::os::unix::net::UnixListener::bind(socket);
    umask(previous);
    let listener = bound.map_err(|source| StartError::Io {
        about: "binding the socket",
        path: socket.to_owned(),
        source,
    })?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        StartError::Io {
            about: "setting the socket's mode",
            path: socket.to_owned(),
            source,
        }
    })?;
    Ok(listener)
}
