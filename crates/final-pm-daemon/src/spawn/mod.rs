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
//! - has no other fds open (even ones the daemon inherited without
//!   close-on-exec);
//! - has stdin on `/dev/null` (a pipe for loggers that read their records
//!   there) and stdout/stderr piped to the daemon;
//! - runs `run` directly, or through `node` (or `interpreter`) with
//!   `node-args` when `run` is a `.js`, `.cjs` or `.mjs` file;
//! - sees exactly the app's environment plus the variables above (inherited
//!   `NODE_CHANNEL_*` and `NODE_UNIQUE_ID` are removed first, node-ipc.md §5.2).

//!
//! The process is started with glibc's `posix_spawn` (see [`posix`] for why
//! not std's `Command`), and its end is awaited on a pidfd ([`Child`]).

mod exit;
mod posix;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use final_pm_protocol::AppConfig;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::waitpid;
use nix::unistd::{AccessFlags, Pid, access, pipe2};

pub(crate) use exit::{Child, Group};

use crate::feed_ring::{RING_FD, RING_VAR};

/// The fd number the child finds its IPC channel on (FinalPM used 3 too).
pub(crate) const IPC_FD: i32 = 3;
/// Kernel buffer of a process's stdout and stderr pipes.
const OUTPUT_PIPE_SIZE: i32 = 1024 * 1024;
/// glibc's search path for a program name when the environment has no
/// `PATH` (`confstr(_CS_PATH)`), as `execvp` would use.
const DEFAULT_PATH: &str = "/bin:/usr/bin";

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
    /// Give the process a pipe as stdin (a logger that reads its records
    /// there) instead of `/dev/null`.
    pub(crate) stdin_pipe: bool,
    /// A feed ring for the builtin file-logger, passed as
    /// [`feed_ring::RING_FD`](crate::feed_ring::RING_FD).
    pub(crate) feed_ring: Option<BorrowedFd<'a>>,
}

/// A started process and the daemon's ends of its channels.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) child: Child,
    pub(crate) pid: u32,
    /// The parent end of the IPC socketpair (close-on-exec).
    pub(crate) ipc: std::os::unix::net::UnixStream,
    /// The writing end of its stdin, when asked for a pipe.
    pub(crate) stdin: Option<tokio::process::ChildStdin>,
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
    start(spec, &program, &args).map_err(|err| {
        let message = if enterable(spec.cwd) {
            format!("cannot start {program} in {}: {err}", spec.cwd)
        } else {
            format!(
                "cannot start {program}: cannot enter its working directory {}: {err}",
                spec.cwd
            )
        };
        io::Error::new(err.kind(), message)
    })
}

fn start(spec: &SpawnSpec<'_>, program: &str, args: &[String]) -> io::Result<Spawned> {
    let path = c_string(
        resolve(program, spec)?
            .into_os_string()
            .into_encoded_bytes(),
    )?;
    let mut argv = Vec::with_capacity(args.len() + 1);
    argv.push(c_string(program)?);
    for arg in args {
        argv.push(c_string(arg.as_str())?);
    }
    let envp = environment(spec)?;
    let cwd = c_string(spec.cwd)?;

    let (parent_end, child_end): (OwnedFd, OwnedFd) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let (stdout, stdout_child) = output_pipe()?;
    let (stderr, stderr_child) = output_pipe()?;
    // dup2 onto fds 0-3 happens in order, so no source may be one of them.
    let ipc_child = above_child_fds(child_end)?;
    let stdout_child = above_child_fds(stdout_child)?;
    let stderr_child = above_child_fds(stderr_child)?;
    let stdin = if spec.stdin_pipe {
        let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
        Some((above_child_fds(read)?, write))
    } else {
        None
    };
    let ring = match spec.feed_ring {
        Some(fd) => Some(above_child_fds(fd.try_clone_to_owned()?)?),
        None => None,
    };

    let mut actions = posix::FileActions::new()?;
    actions.chdir(&cwd)?;
    match &stdin {
        Some((read, _)) => actions.dup2(read.as_fd(), 0)?,
        None => actions.open(0, c"/dev/null", libc::O_RDONLY)?,
    }
    actions.dup2(stdout_child.as_fd(), 1)?;
    actions.dup2(stderr_child.as_fd(), 2)?;
    actions.dup2(ipc_child.as_fd(), IPC_FD)?;
    let mut last = IPC_FD;
    if let Some(ring) = &ring {
        actions.dup2(ring.as_fd(), RING_FD)?;
        last = RING_FD;
    }
    // And nothing else: an fd the daemon inherited without close-on-exec
    // (its launcher's pipe, say) would otherwise reach every app and stay
    // open as long as any of them runs.
    actions.close_from(last + 1)?;
    let attrs = posix::Attributes::session_leader()?;
    let pid = match posix::spawn(&path, &actions, &attrs, &argv, &envp) {
        // A file without a `#!` line: `execvp` (what std used here, and
        // Node's libuv for FinalPM) runs it with the shell; posix_spawn
        // does not, so do it here.
        Err(err) if err.raw_os_error() == Some(libc::ENOEXEC) => {
            let mut shell_argv = vec![c"/bin/sh".to_owned(), path.clone()];
            shell_argv.extend(argv.into_iter().skip(1));
            posix::spawn(c"/bin/sh", &actions, &attrs, &shell_argv, &envp)?
        }
        result => result?,
    };
    // The child has its copies; ours must go, or we would never see EOF when
    // the child closes its end (node-ipc.md §3, C3).
    drop(actions);
    drop((ipc_child, stdout_child, stderr_child, ring));
    let stdin = stdin.map(|(_, write)| write);
    let pid = Pid::from_raw(pid);
    let child = posix::pidfd_open(pid.as_raw())
        .and_then(|pidfd| Child::new(pid, pidfd, stdout, stderr))
        .inspect_err(|_| {
            // Unwatchable (no pidfd: a kernel before 5.3, or out of fds):
            // it must not run unsupervised.
            let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
        })?;
    let stdin = match stdin {
        Some(write) => Some(tokio::process::ChildStdin::from_std(
            std::process::ChildStdin::from(write),
        )?),
        None => None,
    };
    Ok(Spawned {
        child,
        pid: pid.as_raw().unsigned_abs(),
        ipc: std::os::unix::net::UnixStream::from(parent_end),
        stdin,
    })
}

/// Whether the child could `chdir` into `cwd`; decides which error message
/// a failed spawn gets (glibc reports a failed `chdir` and a failed `exec`
/// the same way).
fn enterable(cwd: &str) -> bool {
    Path::new(cwd).is_dir() && access(cwd, AccessFlags::X_OK).is_ok()
}

/// The file to execute for `program`: itself if it contains a `/` (relative
/// to the working directory, which the child enters first), otherwise the
/// first executable file of that name in the app's `PATH`, as `execvp` in
/// the child would find it. posix_spawnp would search the daemon's own PATH.
fn resolve(program: &str, spec: &SpawnSpec<'_>) -> io::Result<PathBuf> {
    if program.contains('/') {
        return Ok(PathBuf::from(program));
    }
    if program.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "empty program name",
        ));
    }
    let search = spec
        .app
        .env
        .get("PATH")
        .map_or(DEFAULT_PATH, String::as_str);
    let mut denied = false;
    for dir in search.split(':') {
        // An empty entry means the working directory, as for execvp.
        let candidate = Path::new(spec.cwd).join(dir).join(program);
        if candidate.is_file() {
            if access(&candidate, AccessFlags::X_OK).is_ok() {
                return Ok(candidate);
            }
            denied = true;
        }
    }
    Err(if denied {
        io::Error::from_raw_os_error(libc::EACCES)
    } else {
        io::Error::new(io::ErrorKind::NotFound, "not found in PATH")
    })
}

/// `NAME=value` for exactly the app's environment plus ours.
fn environment(spec: &SpawnSpec<'_>) -> io::Result<Vec<CString>> {
    let mut envp = Vec::with_capacity(spec.app.env.len() + 4);
    let ours = [
        Some(("NODE_CHANNEL_FD", IPC_FD.to_string())),
        Some(("NODE_CHANNEL_SERIALIZATION_MODE", "json".to_owned())),
        spec.instance_number
            .map(|number| ("FINAL_PM_INSTANCE_NUMBER", number.to_string())),
        spec.notify_socket
            .clone()
            .map(|socket| ("NOTIFY_SOCKET", socket)),
        spec.cluster_worker
            .map(|worker| ("NODE_UNIQUE_ID", worker.to_string())),
        spec.feed_ring.map(|_| (RING_VAR, RING_FD.to_string())),
    ];
    let set_by_us = |name: &str| ours.iter().flatten().any(|(ours, _)| *ours == name);
    for (name, value) in &spec.app.env {
        if !is_channel_variable(name) && !set_by_us(name) {
            envp.push(c_string(format!("{name}={value}"))?);
        }
    }
    for (name, value) in ours.iter().flatten() {
        envp.push(c_string(format!("{name}={value}"))?);
    }
    Ok(envp)
}

/// A pipe for a process's stdout or stderr: (the daemon's read end, the
/// child's write end). Made large, so that an app that writes fast runs
/// ahead of the daemon's reads: fewer, larger reads and fewer wake-ups on
/// both sides. The kernel takes the pages only while data waits there, and
/// caps the size at `pipe-max-size`, which is fine.
fn output_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = pipe2(OFlag::O_CLOEXEC)?;
    let _ = nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_SETPIPE_SZ(OUTPUT_PIPE_SIZE));
    Ok((read, write))
}

fn is_channel_variable(name: &str) -> bool {
    name.starts_with("NODE_CHANNEL_")
        || name == "NODE_UNIQUE_ID"
        || name == "NOTIFY_SOCKET"
        || name == RING_VAR
}

fn c_string(text: impl Into<Vec<u8>>) -> io::Result<CString> {
    CString::new(text).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a program name, argument, environment variable or directory contains a NUL byte",
        )
    })
}

/// `fd`, or a copy of it numbered above the fds the child gets (0-4).
/// Copies come from the lowest free number of at least 3 (close-on-exec),
/// so at most three extra copies are needed; they are closed again.
fn above_child_fds(fd: OwnedFd) -> io::Result<OwnedFd> {
    let mut fd = fd;
    let mut held = Vec::new();
    while fd.as_raw_fd() <= RING_FD {
        let copy = fd.try_clone()?;
        held.push(fd);
        fd = copy;
    }
    Ok(fd)
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

    /// A plain process in `/`: no instance number, notify socket, cluster
    /// or stdin pipe.
    fn plain<'a>(app: &'a AppConfig, args: &'a [String]) -> SpawnSpec<'a> {
        SpawnSpec {
            app,
            args,
            cwd: "/",
            instance_number: None,
            notify_socket: None,
            cluster_worker: None,
            stdin_pipe: false,
            feed_ring: None,
        }
    }

    #[test]
    fn node_scripts_run_through_the_interpreter_with_node_args() {
        let mut a = app("/srv/app.mjs");
        a.node_args = vec!["--inspect".into()];
        let args = vec!["x".to_owned()];
        let spec = plain(&a, &args);
        assert_eq!(
            command_line(&spec),
            (
                "node".to_owned(),
                vec!["--inspect".into(), "/srv/app.mjs".into(), "x".into()]
            )
        );
        let b = app("/bin/server");
        let spec = plain(&b, &args);
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
            stdin_pipe: false,
            feed_ring: None,
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
    async fn leftovers_die_before_the_leader_is_reaped_and_then_nothing_is_signalled() {
        let a = app("/bin/sh");
        // The leader leaves a member of its group behind and exits.
        let args = vec!["-c".to_owned(), "sleep 1000 & echo $! >&3".to_owned()];
        let mut spawned = spawn(&plain(&a, &args)).unwrap();
        let mut line = String::new();
        BufReader::new(spawned.ipc.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        let leftover: i32 = line.trim().parse().unwrap();
        let group = spawned.child.group();
        assert!(spawned.child.wait().await.unwrap().success());
        // Sent SIGKILL (so gone, or a zombie for whoever reaps it, once
        // the signal lands), never left running.
        let state = || {
            std::fs::read_to_string(format!("/proc/{leftover}/stat"))
                .map(|stat| stat.rsplit(')').next().unwrap_or("").trim().chars().next())
                .unwrap_or(None)
        };
        for _ in 0..200 {
            if matches!(state(), None | Some('Z')) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(
            matches!(state(), None | Some('Z')),
            "{leftover}: {:?}",
            state()
        );
        // The leader is reaped: its pid may be anyone's now, so the group
        // is not addressed any more (no ESRCH, no signal).
        assert!(*group.reaped.lock().unwrap());
        assert_eq!(group.signal(nix::sys::signal::Signal::SIGKILL), Ok(()));
    }

    #[tokio::test]
    async fn the_cpu_clock_counts_the_process_and_ends_with_its_reaping() {
        let a = app("/bin/sh");
        // Busy for a moment, then says so and waits for its end.
        let args = vec![
            "-c".to_owned(),
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo >&3; exec sleep 1000"
                .to_owned(),
        ];
        let mut spawned = spawn(&plain(&a, &args)).unwrap();
        let mut line = String::new();
        BufReader::new(spawned.ipc.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        let group = spawned.child.group();
        let cpu = group.cpu_time().unwrap();
        assert!(cpu >= std::time::Duration::from_millis(10), "{cpu:?}");
        assert!(cpu < std::time::Duration::from_secs(60), "{cpu:?}");
        group.signal(nix::sys::signal::Signal::SIGKILL).unwrap();
        spawned.child.wait().await.unwrap();
        // Reaped: the pid may be anyone's now.
        assert_eq!(group.cpu_time(), None);
    }

    #[tokio::test]
    async fn missing_program_and_cwd_are_errors_naming_them() {
        let a = app("/nonexistent/program");
        let err = spawn(&plain(&a, &[])).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/program"), "{err}");
        let b = app("/bin/sh");
        let spec = SpawnSpec {
            cwd: "/nonexistent-dir",
            ..plain(&b, &[])
        };
        let err = spawn(&spec).unwrap_err().to_string();
        assert!(err.contains("/nonexistent-dir"), "{err}");
        assert!(err.contains("working directory"), "{err}");
    }

    /// Runs `sh -c script` in `cwd` with the test app's environment (plus
    /// `extra`) and returns what it wrote on stdout and stderr, and how it
    /// ended.
    async fn run_sh(
        script: &str,
        cwd: &str,
        extra: &[(&str, &str)],
    ) -> (String, String, std::process::ExitStatus) {
        let mut a = app("/bin/sh");
        for (name, value) in extra {
            a.env.insert((*name).into(), (*value).into());
        }
        let args = vec!["-c".to_owned(), script.to_owned()];
        let spec = SpawnSpec {
            app: &a,
            args: &args,
            cwd,
            instance_number: None,
            notify_socket: Some("@test".into()),
            cluster_worker: None,
            stdin_pipe: false,
            feed_ring: None,
        };
        output(spawn(&spec).unwrap()).await
    }

    async fn output(mut spawned: Spawned) -> (String, String, std::process::ExitStatus) {
        use tokio::io::AsyncReadExt;
        let (mut out, mut err) = (String::new(), String::new());
        let mut stdout = spawned.child.stdout.take().unwrap();
        let mut stderr = spawned.child.stderr.take().unwrap();
        let (read_out, read_err) = tokio::join!(
            stdout.read_to_string(&mut out),
            stderr.read_to_string(&mut err)
        );
        read_out.unwrap();
        read_err.unwrap();
        let status = spawned.child.wait().await.unwrap();
        (out, err, status)
    }

    #[tokio::test]
    async fn stdin_is_dev_null_output_is_piped_and_the_exit_is_reported() {
        let (out, err, status) = run_sh(
            "readlink /proc/$$/fd/0; pwd; echo oops >&2; exit 3",
            "/tmp",
            &[],
        )
        .await;
        assert_eq!(out, "/dev/null\n/tmp\n");
        assert_eq!(err, "oops\n");
        assert_eq!(status.code(), Some(3));
    }

    #[tokio::test]
    async fn a_signal_ends_the_process_with_that_signal() {
        use std::os::unix::process::ExitStatusExt;
        let (_, _, status) = run_sh("kill -KILL $$", "/", &[]).await;
        assert_eq!(status.signal(), Some(9));
    }

    #[tokio::test]
    async fn signals_start_unblocked_and_at_their_defaults() {
        // The test harness, like the daemon, ignores SIGPIPE; a child must
        // not inherit that. `exec` so the status is grep's, not the shell's.
        let (out, _, _) = run_sh("exec grep -E '^Sig(Blk|Ign)' /proc/self/status", "/", &[]).await;
        let mask = |name: &str| {
            let line = out.lines().find(|l| l.starts_with(name)).unwrap();
            u64::from_str_radix(line[name.len()..].trim(), 16).unwrap()
        };
        assert_eq!(mask("SigBlk:"), 0, "{out}");
        // Except the two signals glibc reserves for itself (32 and 33),
        // which its posix_spawn leaves ignored in every program it starts.
        assert_eq!(mask("SigIgn:") & !(0b11 << 31), 0, "{out}");
    }

    #[tokio::test]
    async fn the_environment_is_exactly_the_apps_plus_ours() {
        // The shell's environment as it was exec'd (it adds PWD itself).
        let (out, _, _) = run_sh(
            "tr '\\0' '\\n' < /proc/$$/environ",
            "/",
            &[
                ("NODE_UNIQUE_ID", "1"),
                ("NOTIFY_SOCKET", "/inherited"),
                ("FINAL_PM_INSTANCE_NUMBER", "9"),
            ],
        )
        .await;
        let mut lines: Vec<&str> = out.lines().collect();
        lines.sort_unstable();
        let path = format!("PATH={}", std::env::var("PATH").unwrap_or_default());
        let mut expected = vec![
            "FINAL_PM_INSTANCE_NUMBER=9",
            "KEEP=kept",
            "NODE_CHANNEL_FD=3",
            "NODE_CHANNEL_SERIALIZATION_MODE=json",
            "NOTIFY_SOCKET=@test",
            &path,
        ];
        expected.sort_unstable();
        assert_eq!(lines, expected);
    }

    #[tokio::test]
    async fn program_names_are_looked_up_in_the_apps_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        // No `#!` line: run by the shell, as execvp does.
        std::fs::write(bin.join("greet"), "echo hello from greet \"$1\"\n").unwrap();
        std::fs::set_permissions(bin.join("greet"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let mut a = app("greet");
        a.env
            .insert("PATH".into(), format!("/nonexistent:{}", bin.display()));
        let args = vec!["you".to_owned()];
        let spec = plain(&a, &args);
        let (out, _, status) = output(spawn(&spec).unwrap()).await;
        assert_eq!(out, "hello from greet you\n");
        assert!(status.success());

        let mut b = a.clone();
        b.env.insert("PATH".into(), "/nonexistent".into());
        let spec = SpawnSpec { app: &b, ..spec };
        let err = spawn(&spec).unwrap_err().to_string();
        assert!(
            err.contains("greet") && err.contains("not found in PATH"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_file_without_execute_permission_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "echo never\n").unwrap();
        let a = app(file.to_str().unwrap());
        let spec = SpawnSpec {
            app: &a,
            args: &[],
            cwd: "/",
            instance_number: None,
            notify_socket: None,
            cluster_worker: None,
            stdin_pipe: false,
            feed_ring: None,
        };
        let err = spawn(&spec).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains(file.to_str().unwrap()), "{err}");
    }

    #[tokio::test]
    async fn a_dropped_process_is_killed_with_its_group() {
        let a = app("/bin/sh");
        // A grandchild in the same group, and the leader, both sleep.
        let args = vec![
            "-c".to_owned(),
            "sleep 1000 & echo $!; exec sleep 1000".to_owned(),
        ];
        let mut spawned = spawn(&plain(&a, &args)).unwrap();
        let pid = spawned.pid;
        let mut stdout = spawned.child.stdout.take().unwrap();
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while byte[0] != b'\n' {
            use tokio::io::AsyncReadExt;
            assert_eq!(stdout.read(&mut byte).await.unwrap(), 1);
            line.push(byte[0]);
        }
        let grandchild: u32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
        drop(spawned);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while crate::procfs::is_alive(pid) || crate::procfs::is_alive(grandchild) {
            assert!(std::time::Instant::now() < deadline, "group still alive");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // Reap the leader; the grandchild is its child and went with it.
        let _ = waitpid(Pid::from_raw(pid as i32), None);
    }

    #[tokio::test]
    async fn the_child_gets_no_fds_but_its_own() {
        // An fd without close-on-exec, as a daemon may inherit from whoever
        // launched it.
        let null = std::fs::File::open("/dev/null").unwrap();
        let inherited = nix::unistd::dup(&null).unwrap();
        let (out, _, _) = run_sh("ls /proc/$$/fd", "/", &[]).await;
        drop(inherited);
        let mut fds: Vec<u32> = out.lines().map(|l| l.parse().unwrap()).collect();
        fds.sort_unstable();
        assert_eq!(fds, [0, 1, 2, 3]);
    }
}
