//! The bundled examples, run as their README says, from a copy in a
//! temporary directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use crate::harness::{Home, alive, stderr, stdout, wait_for};

/// Copies `examples/<name>` into the test's directory.
fn copy_example(home: &Home, name: &str) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), home.dir.path().join(entry.file_name())).unwrap();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET /` on localhost:`port`, if anything answers.
pub fn get(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some(body.to_owned())
}

fn ok(home: &Home, args: &[&str]) -> String {
    let out = home.run(args);
    assert!(
        out.status.success(),
        "final-pm {args:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn shell_notify_example_serves_and_restarts_gracefully() {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let home = Home::new();
    copy_example(&home, "shell-notify");
    let port = free_port().to_string();
    let args = format!("static:args=[\"{port}\"]");
    let port: u16 = port.parse().unwrap();
    ok(&home, &["--set", &args, "start", "static", "--wait"]);
    let first = home.settle("static", 2);
    let body = get(port).expect("the example answers");
    assert!(body.starts_with("hello from "), "{body}");

    // READY=1 made them running; a restart replaces both once the new ones
    // sent READY=1.
    ok(&home, &["--set", &args, "restart", "static"]);
    let mut answered = 0;
    let replaced = wait_for(Duration::from_secs(15), || {
        if get(port).is_some() {
            answered += 1;
        }
        first.iter().all(|(_, pid)| !alive(*pid))
    });
    assert!(replaced, "the old instances were not stopped");
    assert!(answered > 0);
    let second = home.settle("static", 2);
    assert!(second.iter().all(|s| !first.contains(s)));
    assert!(get(port).is_some());
    ok(&home, &["--kill", "--wait", "stop", "all"]);
    for (_, pid) in second {
        assert!(!alive(pid));
    }
}
