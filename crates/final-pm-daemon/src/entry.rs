//! The daemon's command line, shared by the `final-pm-daemon` binary and the
//! `final-pm` CLI's hidden daemon entry point, so both behave the same.
//!
//! ```text
//! final-pm-daemon [--home DIR] [--socket PATH] [--detach]
//! ```
//!
//! `--home` defaults to `FINAL_PM_CONFIG_HOME` or `$HOME/.final-pm`, `--socket`
//! to `FINAL_PM_CONFIG_SOCKET` or `daemon.sock` in the home (any form
//! [`paths::parse_socket`] accepts). `--detach` starts a new session first, so
//! the daemon outlives the terminal and the CLI that launched it.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::{Daemon, DaemonConfig, StartError, paths};

/// Parsed daemon options.
#[derive(Debug, Default)]
struct Options {
    home: Option<PathBuf>,
    socket: Option<String>,
    detach: bool,
}

fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Options, String> {
    let mut options = Options::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let arg = arg
            .into_string()
            .map_err(|a| format!("argument {a:?} is not valid UTF-8"))?;
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(value) => Ok(value),
                None => args
                    .next()
                    .ok_or_else(|| format!("{name} needs a value"))?
                    .into_string()
                    .map_err(|a| format!("{name} value {a:?} is not valid UTF-8")),
            }
        };
        match name.as_str() {
            "--home" => options.home = Some(PathBuf::from(value("--home")?)),
            "--socket" => options.socket = Some(value("--socket")?),
            "--detach" if inline.is_none() => options.detach = true,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown argument \"{arg}\"")),
        }
    }
    Ok(options)
}

const USAGE: &str = "usage: final-pm-daemon [--home DIR] [--socket PATH] [--detach]";

/// Runs the daemon in the foreground; returns when it has shut down.
/// Exit status: 0 after a clean shutdown, 1 when it could not start (for
/// example "daemon already running"), 2 for bad arguments. A number, not an
/// `ExitCode`, because `final-pm` has its own C entry point and passes the
/// status on to the C runtime.
pub fn main(args: impl IntoIterator<Item = OsString>) -> u8 {
    let options = match parse(args) {
        Ok(options) => options,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return 0;
        }
        Err(message) => {
            eprintln!("final-pm-daemon: error: {message}\n{USAGE}");
            return 2;
        }
    };
    close_inherited_fds();
    init_tracing();
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let home = options
        .home
        .or_else(|| {
            std::env::var_os("FINAL_PM_CONFIG_HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
        })
        .map(|home| paths::normalize(&cwd.join(home)))
        .unwrap_or_else(|| paths::default_home(std::env::var("HOME").ok().as_deref()));
    let socket = options
        .socket
        .or_else(|| {
            std::env::var("FINAL_PM_CONFIG_SOCKET")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| paths::DEFAULT_SOCKET.to_owned());
    let socket = match paths::parse_socket(&socket, &home) {
        Ok(socket) => socket,
        Err(err) => {
            eprintln!("final-pm-daemon: error: {err}");
            return 2;
        }
    };
    if options.detach {
        // Fails only if we already lead a process group, in which case we are
        // detached enough; the launcher never makes us one.
        let _ = nix::unistd::setsid();
    }
    // Grandchildren whose parent dies are re-parented to the daemon rather
    // than to init, so they stay visible and are reaped (and killed with
    // their group when their process ends).
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(%err, "cannot become a child subreaper; orphaned grandchildren go to init");
    }
    crate::memory::tune();
    raise_open_file_limit();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("final-pm-daemon: error: cannot start the async runtime: {err}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        // This executable, run as the file-logger, is the builtin logger.
        let file_logger = std::env::current_exe().ok();
        let daemon = Daemon::bind(DaemonConfig {
            home,
            socket,
            file_logger,
        })?;
        daemon
            .run(terminate_signal())
            .await
            .map_err(StartFailure::Run)
    });
    match result {
        Ok(()) => 0,
        Err(StartFailure::Start(err @ StartError::AlreadyRunning { .. })) => {
            eprintln!("final-pm-daemon: {err}");
            1
        }
        Err(err) => {
            eprintln!("final-pm-daemon: error: {err:#}");
            1
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum StartFailure {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("{0:#}")]
    Run(anyhow::Error),
}

/// Raises the soft limit on open files to the hard one.
///
/// Each managed process holds five of the daemon's descriptors (its pidfd,
/// its stdout and stderr pipes, its IPC socket and its `/proc` statm file),
/// so the usual soft limit of 1024 would stop the daemon near 200 processes
/// with "too many open files". Like supervisord's `minfds`, the daemon takes
/// what the hard limit allows; the processes it starts inherit it.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!(soft, hard, "open file limit raised"),
            Err(err) => tracing::warn!(%err, soft, hard, "cannot raise the open file limit"),
        },
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "cannot read the open file limit"),
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn terminate_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with `final-pm --kill`");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = int.recv() => tracing::info!("received SIGINT"),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FINAL_PM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
}

/// Closes every descriptor above stderr that the daemon inherited from
/// whoever launched it.
///
/// The daemon outlives its launcher by design, so an inherited pipe end (a
/// shell's `$(...)`, a CI runner's log pipe, a test harness) would stay
/// open for as long as the daemon runs, and whoever reads the other end
/// would wait for an end of file that never comes. Nothing of the daemon's
/// own exists yet when this runs, so every descriptor above 2 is foreign.
fn close_inherited_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    // The directory's own descriptor is in the list but closed by now:
    // closing it again fails with EBADF, which is harmless.
    for fd in fds {
        // SAFETY: no object of this process owns a descriptor above 2 yet
        // (this runs before logging, the runtime or any file is opened), so
        // closing them cannot invalidate a live handle.
        #[allow(unsafe_code)]
        unsafe {
            nix::libc::close(fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn options_parse_in_both_forms() {
        let o = parse(args(&["--home", "/h", "--socket=/s.sock", "--detach"])).unwrap();
        assert_eq!(o.home, Some(PathBuf::from("/h")));
        assert_eq!(o.socket.as_deref(), Some("/s.sock"));
        assert!(o.detach);
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_eq!(
            parse(args(&["--nope"])).unwrap_err(),
            "unknown argument \"--nope\""
        );
        assert_eq!(
            parse(args(&["--home"])).unwrap_err(),
            "--home needs a value"
        );
    }
}
