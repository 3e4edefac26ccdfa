//! Reading processes from Linux's `/proc`: liveness, children.
//!
//! Shared by the daemon (orphan reaping, listen detection), the CLI (waiting
//! for a killed daemon to be gone) and the tests, so the parsing lives once.

use std::fs;

/// Whether `pid` exists and has not exited: a zombie (exited, not yet reaped
/// by its parent) counts as gone, since it runs no code and holds no socket.
pub fn is_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        // The state letter follows the parenthesised command name, which
        // may itself contain spaces and parentheses.
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// The direct children of `pid` (of all its threads).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return children;
    };
    for task in tasks.flatten() {
        if let Ok(list) = fs::read_to_string(task.path().join("children")) {
            children.extend(
                list.split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    children
}

/// `pid` and all its descendants (bounded, in case of a fork bomb).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut index = 0;
    while index < all.len() && all.len() < 4096 {
        let children = children_of(all[index]);
        all.extend(children);
        index += 1;
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_is_listed_alive_and_then_gone() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(is_alive(child.id()));
        assert!(children_of(me).contains(&child.id()));
        assert!(descendants(me).contains(&child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!is_alive(child.id()));
    }
}
