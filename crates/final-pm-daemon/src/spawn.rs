//! Creating a managed process.
//!
//! Every process:
//! - leads its own process group, so stop and kill signals reach everything
//!   it started (and nothing else);
//! - gets the Node-compatible IPC channel: one end of a `SOCK_STREAM`
//!   socketpair as fd 3, `NODE_CHANNEL_FD=3` and
//!   `NODE_CHANNEL_SERIALIZATION_MODE=json` (node-ipc.md §1.1), so
//!   `process.send('ready')` and the `'stop'` message work unchanged;
//! - may get `NOTIFY_SOCKET`, systemd's readiness datagram socket;
//! - a Node cluster worker also gets `NODE_UNIQUE_ID` (node-ipc.md §2.1);
//! - has stdin on `/dev/null` and stdout/stderr piped to the daemon;
//! - runs `run` directly, or through `node` (or `interpreter`) with
//!   `node-args` when `run` is a `.js`, `.cjs` or `.mjs` file;
//! - sees exactly the app's environment plus the variables above (inherited
//!   `NODE_CHANNEL_*` and `NODE_UNIQUE_ID` are removed first, node-ipc.md §5.2).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;

use final_pm_protocol::AppConfig;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

/// The fd number the child finds its IPC channel on (FinalPM used 3 too).
pub(crate) const IPC_FD: i32 = 3;

/// What to start.
#[derive(Debug)]
pub(crate) struct SpawnSpec<'a> {
    pub(crate) app: &'a AppConfig,
    pub(crate) args: &'a [String],
    pub(crate) cwd: &'a str,
    /// `FINAL_PM_INSTANCE_NUMBER`, for apps with unique instances.
    pub(crate) instance_number: Option<u32>,
    /// Value for `NOTIFY_SOCKET` (`@name` for an abstract socket).
    pub(crate) notify_socket: Option<String>,
    /// `NODE_UNIQUE_ID` of a Node cluster worker (node-ipc.md §2.1).
    pub(crate) cluster_worker: Option<u64>,
}

/// A started process and the daemon's ends of its channels.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: tokio::process::Child,
    pub(crate) pid: u32,
    /// The parent end of the IPC socketpair (close-on-exec).
    pub(crate) ipc: std::os::unix::net::UnixStream,
}

/// The program and its arguments for `spec`.
pub(crate) fn command_line(spec: &SpawnSpec<'_>) -> (String, Vec<String>) {
    let app = spec.app;
    if app.is_node_script() {
        let program = app.interpreter.clone().unwrap_or_else(|| "node".to_owned());
        let mut args = app.node_args.clone();
        args.push(app.run.clone());
        args.extend(spec.args.iter().cloned());
        (program, args)
    } else {
        (app.run.clone(), spec.args.to_vec())
    }
}

/// Starts the process. Errors name the program and the working directory.
pub(crate) fn spawn(spec: &SpawnSpec<'_>) -> io::Result<Spawned> {
    let (program, args) = command_line(spec);
    let (parent_end, child_end): (OwnedFd, OwnedFd) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut command = tokio::process::Command::new(&program);
    command
        .args(&args)
        .current_dir(spec.cwd)
        .env_clear()
        .envs(
            spec.app
                .env
                .iter()
                .filter(|(name, _)| !is_channel_variable(name)),
        )
        .env("NODE_CHANNEL_FD", IPC_FD.to_string())
        .env("NODE_CHANNEL_SERIALIZATION_MODE", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if let Some(number) = spec.instance_number {
        command.env("FINAL_PM_INSTANCE_NUMBER", number.to_string());
    }
    if let Some(notify) = &spec.notify_socket {
        command.env("NOTIFY_SOCKET", notify);
    }
    if let Some(worker) = spec.cluster_worker {
        command.env("NODE_UNIQUE_ID", worker.to_string());
    }
    let child_fd = child_end.as_raw_fd();
    install_ipc_fd(&mut command, child_fd);
    let child = command.spawn().map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot start {program} in {}: {err}", spec.cwd),
        )
    })?;
    // The child has its copy; ours must go, or we would never see EOF when
    // the child closes its end (node-ipc.md §3, C3).
    drop(child_end);
    let pid = child
        .id()
        .ok_or_else(|| io::Error::other("the process exited before its pid was read"))?;
    Ok(Spawned {
        child,
        pid,
        ipc: std::os::unix::net::UnixStream::from(parent_end),
    })
}

fn is_channel_variable(name: &str) -> bool {
    name.starts_with("NODE_CHANNEL_") || name == "NODE_UNIQUE_ID" || name == "NOTIFY_SOCKET"
}

#[allow(unsafe_code)]
fn install_ipc_fd(command: &mut tokio::process::Command, child_fd: i32) {
    use nix::libc;
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (dup2, fcntl) on plain integers; it
    // allocates nothing and touches no locks. std has already placed stdio
    // on fds 0-2, and `child_fd` (a socketpair end created after the
    // daemon's own stdio) is never one of them.
    unsafe {
        command.pre_exec(move || {
            if child_fd == IPC_FD {
                // dup2 onto itself is a no-op that would keep close-on-exec.
                let flags = libc::fcntl(IPC_FD, libc::F_GETFD);
                if flags < 0 || libc::fcntl(IPC_FD, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(child_fd, IPC_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    fn app(run: &str) -> AppConfig {
        let mut app = AppConfig::new("t", "/", run);
        app.env
            .insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        app.env.insert("NODE_CHANNEL_FD".into(), "7".into());
        app.env.insert("KEEP".into(), "kept".into());
        app
    }

    #[test]
    fn node_scripts_run_through_the_interpreter_with_node_args() {
        let mut a = app("/srv/app.mjs");
        a.node_args = vec!["--inspect".into()];
        let args = vec!["x".to_owned()];
        let spec = SpawnSpec {
            app: &a,
            args: &args,
            cwd: "/",
            instance_number: None,
            notify_socket: None,
            cluster_worker: None,
        };
        assert_eq!(
            command_line(&spec),
            (
                "node".to_owned(),
                vec!["--inspect".into(), "/srv/app.mjs".into(), "x".into()]
            )
        );
        let b = app("/bin/server");
        let spec = SpawnSpec {
            app: &b,
            args: &args,
            cwd: "/",
            instance_number: None,
            notify_socket: None,
            cluster_worker: None,
        };
        assert_eq!(
            command_line(&spec),
            ("/bin/server".to_owned(), vec!["x".into()])
        );
    }

    #[tokio::test]
    async fn child_gets_fd_3_its_own_group_and_a_clean_environment() {
        let a = app("/bin/sh");
        // The child reports its env and group on fd 3, then echoes one line
        // it reads from fd 3 back on it.
        let script = "echo \"$NODE_CHANNEL_FD $NODE_CHANNEL_SERIALIZATION_MODE $KEEP $FINAL_PM_INSTANCE_NUMBER \
                      $(cut -d' ' -f5 /proc/$$/stat) $$\" >&3; read line <&3; echo \"got $line\" >&3";
        let args = vec!["-c".to_owned(), script.to_owned()];
        let spec = SpawnSpec {
            app: &a,
            args: &args,
            cwd: "/tmp",
            instance_number: Some(2),
            notify_socket: None,
            cluster_worker: None,
        };
        let mut spawned = spawn(&spec).unwrap();
        let mut reader = BufReader::new(spawned.ipc.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let pid = spawned.pid;
        assert_eq!(
            line.trim(),
            format!("3 json kept 2 {pid} {pid}"),
            "fd, env, pgid == pid"
        );
        spawned.ipc.write_all(b"\"stop\"\n").unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "got \"stop\"");
        assert!(spawned.child.wait().await.unwrap().success());
    }

    #[tokio::test]
    async fn missing_program_and_cwd_are_errors_naming_them() {
        let a = app("/nonexistent/program");
        let spec = SpawnSpec {
            app: &a,
            args: &[],
            cwd: "/",
            instance_number: None,
            notify_socket: None,
            cluster_worker: None,
        };
        let err = spawn(&spec).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/program"), "{err}");
        let b = app("/bin/sh");
        let spec = SpawnSpec {
            app: &b,
            args: &[],
            cwd: "/nonexistent-dir",
            instance_number: None,
            notify_socket: None,
            cluster_worker: None,
        };
        let err = spawn(&spec).unwrap_err().to_string();
        assert!(err.contains("/nonexistent-dir"), "{err}");
    }
}
