//! `ready-on: listen` for processes that are not Node cluster workers: a
//! process is ready once it, or a descendant, holds a listening socket (TCP
//! or Unix stream in LISTEN state, or a bound UDP socket). Read from `/proc`:
//! the socket inodes of the processes' fds, matched against the kernel's
//! socket tables.

use std::collections::HashSet;
use std::fs;

/// Whether `pid` or any of its descendants has a listening socket.
pub(crate) fn group_listens(pid: u32) -> bool {
    let inodes = socket_inodes(&crate::procfs::descendants(pid));
    if inodes.is_empty() {
        return false;
    }
    let tables = [("tcp", 3), ("tcp6", 3), ("udp", 3), ("udp6", 3)];
    for (table, _) in tables {
        let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            let (Some(state), Some(inode)) = (fields.get(3), fields.get(9)) else {
                continue;
            };
            let listening = if table.starts_with("tcp") {
                *state == "0A"
            } else {
                *state == "07"
            };
            if listening && inode.parse().is_ok_and(|i: u64| inodes.contains(&i)) {
                return true;
            }
        }
    }
    if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/unix")) {
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode [Path]; Flags has
            // __SO_ACCEPTCON (0x10000) on listening sockets.
            let (Some(flags), Some(inode)) = (fields.get(3), fields.get(6)) else {
                continue;
            };
            let accepting = u32::from_str_radix(flags, 16).is_ok_and(|f| f & 0x1_0000 != 0);
            if accepting && inode.parse().is_ok_and(|i: u64| inodes.contains(&i)) {
                return true;
            }
        }
    }
    false
}

fn socket_inodes(pids: &[u32]) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    for pid in pids {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if let Some(Ok(inode)) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .map(str::parse)
            {
                inodes.insert(inode);
            }
        }
    }
    inodes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listening_tcp_socket_of_this_process_is_found() {
        let me = std::process::id();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(group_listens(me));
        drop(listener);
    }

    #[test]
    fn a_process_without_sockets_does_not_listen() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(!group_listens(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_listening_unix_socket_of_a_child_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.sock");
        let script = format!(
            "import socket,time\ns=socket.socket(socket.AF_UNIX)\ns.bind('{}')\ns.listen()\ntime.sleep(5)",
            path.display()
        );
        let Ok(mut child) = std::process::Command::new("python3")
            .args(["-c", &script])
            .spawn()
        else {
            eprintln!("skipped: python3 not installed");
            return;
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut found = false;
        while !found && std::time::Instant::now() < deadline {
            found = group_listens(child.id());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(found);
    }
}
