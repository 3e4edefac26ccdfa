//! The daemon's life: launch, uniqueness, stale sockets, shutdown.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::harness::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn launch_starts_one_daemon_with_private_home_and_socket() {
    let home = Home::new();
    let out = home.run(&["--launch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Starting Daemon"), "{}", stdout(&out));
    let pid = home
        .daemon_pid()
        .expect("the daemon records its pid in the lock");
    assert!(alive(pid));
    assert_eq!(mode(&home.home()), 0o700);
    assert!(
        std::fs::metadata(home.socket())
            .unwrap()
            .file_type()
            .is_socket()
    );
    assert_eq!(mode(&home.socket()), 0o600);
    assert_eq!(mode(&home.home().join("daemon.out")), 0o600);
    assert_eq!(daemons_for(&home.home()), vec![pid]);

    // A second --launch just connects.
    let again = home.run(&["--launch"]);
    assert!(again.status.success());
    assert!(
        !stdout(&again).contains("Starting Daemon"),
        "{}",
        stdout(&again)
    );
    assert_eq!(home.daemon_pid(), Some(pid));
}

#[test]
fn second_daemon_on_the_same_home_refuses() {
    let home = Home::new();
    assert!(home.run(&["--launch"]).status.success());
    let pid = home.daemon_pid().unwrap();
    let out = home
        .cmd(&["__daemon", "--home", home.home().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("daemon already running"), "{err}");
    assert!(
        err.contains(&pid.to_string()),
        "names the running daemon: {err}"
    );
    assert!(alive(pid), "the first daemon is untouched");
    assert!(home.socket().exists());
}

#[test]
fn kill_leaves_no_process_socket_or_lock() {
    let home = Home::new();
    assert!(home.run(&["--launch"]).status.success());
    let pid = home.daemon_pid().unwrap();
    let out = home.run(&["--kill"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Success"), "{}", stdout(&out));
    assert!(!alive(pid), "daemon {pid} still running after --kill");
    assert!(!home.socket().exists(), "socket left behind");
    assert!(!home.lock().exists(), "daemon lock left behind");
    assert!(
        !home.home().join("daemon.sock.launch-lock").exists(),
        "launch lock left behind"
    );
}

#[test]
fn kill_without_a_daemon_says_so_and_launches_none() {
    let home = Home::new();
    let out = home.run(&["--kill"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("No daemon running"),
        "{}",
        stdout(&out)
    );
    assert!(!home.socket().exists());
    assert!(daemons_for(&home.home()).is_empty());
}

#[test]
fn stale_socket_after_kill_9_is_replaced() {
    let home = Home::new();
    assert!(home.run(&["--launch"]).status.success());
    let first = home.daemon_pid().unwrap();
    kill(Pid::from_raw(first as i32), Signal::SIGKILL).unwrap();
    assert!(wait_for(Duration::from_secs(5), || !alive(first)));
    assert!(
        home.socket().exists(),
        "kill -9 leaves the socket file behind"
    );

    let out = home.run(&["--launch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let second = home.daemon_pid().unwrap();
    assert_ne!(first, second);
    assert!(alive(second));
    let info = home.raw().roundtrip(r#"{"type":"info"}"#);
    assert_eq!(info["pid"], second);
}

#[test]
fn ten_simultaneous_launches_end_with_one_daemon() {
    let home = Home::new();
    let children: Vec<_> = (0..10)
        .map(|_| {
            home.cmd(&["--launch"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a launcher failed: {}", stderr(&out));
    }
    home.remember_daemon();
    let daemons = daemons_for(&home.home());
    assert_eq!(daemons.len(), 1, "daemons: {daemons:?}");
    assert_eq!(home.daemon_pid(), Some(daemons[0]));
}

#[test]
fn sigterm_shuts_down_even_with_a_follower_connected() {
    let home = Home::new();
    assert!(home.run(&["--launch"]).status.success());
    let pid = home.daemon_pid().unwrap();
    let mut follower = home.raw();
    assert_eq!(
        follower.roundtrip(r#"{"type":"follow","name":"all"}"#)["type"],
        "ok"
    );
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || !alive(pid)),
        "daemon ignored SIGTERM"
    );
    assert!(!home.socket().exists());
    assert!(!home.lock().exists());
}

#[test]
fn kill_daemon_request_returns_with_other_clients_connected() {
    let home = Home::new();
    assert!(home.run(&["--launch"]).status.success());
    let pid = home.daemon_pid().unwrap();
    let mut follower = home.raw();
    assert_eq!(
        follower.roundtrip(r#"{"type":"logs","name":"all","follow":true}"#)["type"],
        "logs"
    );
    let _idle = home.raw();
    let out = home.run(&["--kill"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(pid));
}

#[test]
fn daemon_that_dies_at_start_is_reported_with_its_log() {
    let home = Home::new();
    std::fs::create_dir_all(home.home()).unwrap();
    // A regular file where the socket belongs: the daemon refuses to delete it.
    std::fs::write(home.socket(), "not a socket").unwrap();
    let out = home.run(&["--launch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("terminated at start"), "{err}");
    assert!(
        err.contains("is not a socket"),
        "the daemon's last log lines are shown: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(home.socket()).unwrap(),
        "not a socket",
        "the file is untouched"
    );
}

#[test]
fn tcp_socket_is_refused_with_a_clear_message() {
    let home = Home::new();
    let out = home
        .cmd(&["--launch"])
        .env("FINAL_PM_CONFIG_SOCKET", "ws://localhost:34253")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Unix socket only"),
        "{}",
        stderr(&out)
    );
    assert!(!home.home().exists(), "nothing was launched");
}

#[test]
fn socket_forms_are_accepted() {
    for form in ["unix:custom.sock", "ws+unix://./custom.sock"] {
        let home = Home::new();
        let out = home
            .cmd(&["--launch"])
            .env("FINAL_PM_CONFIG_SOCKET", form)
            .output()
            .unwrap();
        assert!(out.status.success(), "{form}: {}", stderr(&out));
        let socket = home.home().join("custom.sock");
        assert!(socket.exists(), "{form}");
        let pid: u32 = std::fs::read_to_string(home.home().join("custom.sock.lock"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}

#[test]
fn other_users_are_refused() {
    if !nix::unistd::getuid().is_root() {
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: setpriv not installed");
        return;
    }
    let home = Home::new();
    assert!(home.run(&["--launch"]).status.success());
    // Open the file permissions so the connection reaches the uid check.
    std::fs::set_permissions(home.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(home.home(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(home.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "--launch",
        ])
        .env("FINAL_PM_CONFIG_HOME", home.home())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("may not use it"), "{err}");
    assert_eq!(
        daemons_for(&home.home()).len(),
        1,
        "no second daemon was launched"
    );
    // And the daemon still serves its owner.
    assert_eq!(home.raw().roundtrip(r#"{"type":"info"}"#)["type"], "info");
}

#[test]
fn broken_config_fails_before_any_daemon_is_launched() {
    let home = Home::new();
    std::fs::write(
        home.dir.path().join("process-config.json"),
        r#"{"applications":[{"name":"web","instances":-3}]}"#,
    )
    .unwrap();
    let out = home.run(&["--launch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for part in ["process-config.json", "\"web\"", "\"instances\"", "-3"] {
        assert!(err.contains(part), "missing {part}: {err}");
    }
    assert!(!home.home().exists(), "no daemon home was created");
}

#[test]
fn home_and_socket_come_from_the_config_file() {
    let home = Home::new();
    let custom = home.dir.path().join("elsewhere");
    std::fs::write(
        home.dir.path().join("process-config.json"),
        format!(
            r#"{{"home":"{}","socket":"unix:ctl.sock"}}"#,
            custom.display()
        ),
    )
    .unwrap();
    let out = home
        .cmd(&["--launch"])
        .env_remove("FINAL_PM_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: u32 = std::fs::read_to_string(custom.join("ctl.sock.lock"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    home.adopt(pid);
    let out = home
        .cmd(&["--kill"])
        .env_remove("FINAL_PM_CONFIG_HOME")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(pid));
    assert!(!custom.join("ctl.sock").exists());
}

/// A daemon launched from a shell must not keep the shell's descriptors:
/// here a pipe that the shell passed down as fd 9. Whoever reads that pipe
/// (a `$(...)`, a CI runner collecting output) gets its end of file when
/// the CLI exits, not when the daemon does.
#[test]
fn daemon_keeps_no_descriptor_its_launcher_passed_down() {
    let home = Home::new();
    let mut child = Command::new("sh")
        .args(["-c", "exec 9>&1; \"$0\" --launch >/dev/null 2>&1", bin()])
        .env("FINAL_PM_CONFIG_HOME", home.home())
        .env_remove("FINAL_PM_CONFIG_SOCKET")
        .current_dir(home.dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut out, &mut sink);
        let _ = tx.send(());
    });
    assert!(child.wait().unwrap().success());
    let daemon = home.daemon_pid().expect("the daemon was launched");
    assert!(alive(daemon));
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "the pipe got no end of file: the daemon (pid {daemon}) still holds fd 9"
    );
}

#[test]
fn a_low_open_file_limit_does_not_cap_the_number_of_processes() {
    // Each process holds five of the daemon's descriptors: 40 of them need
    // about 200, twice the soft limit the daemon is launched with here.
    let home = Home::new();
    home.config(
        r#"{"applications": [{"name": "many", "run": "/bin/sleep", "args": ["1000"],
            "ready-on": "instant", "instances": 40}]}"#,
    );
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", "ulimit -S -n 100 && exec \"$0\" \"$@\"", bin()])
        .args(["start", "many"]);
    for (key, value) in home.cmd(&[]).get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.current_dir(home.dir.path());
    let out = cmd.output().unwrap();
    home.remember_daemon();
    assert!(out.status.success(), "{}", stderr(&out));
    let pids = home.settle("many", 40);
    assert!(pids.iter().all(|&(_, pid)| alive(pid)), "{pids:?}");
    let daemon = home.daemon_pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{daemon}/limits")).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(
        numbers[0], numbers[1],
        "soft limit not raised: {open_files}"
    );
}
