//! Reading processes from Linux's `/proc`: liveness, children, usage.
//!
//! Shared by the daemon (orphan reaping, listen detection, `info` with
//! usage), the CLI (waiting for a killed daemon to be gone) and the tests,
//! so the parsing lives once.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use final_pm_protocol::Usage;

/// More than the fields [`StatFile::usage`] needs: those up to `rss`
/// (field 24) take at most about 600 bytes even with every number at its
/// widest, so a longer line that does not fit loses only fields not read.
const STAT_BUFFER: usize = 1024;

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

/// A process's `/proc/<pid>/stat`, opened once when the process is
/// spawned and read again for each `info` that asks for usage: a `pread`
/// of an open file skips the path walk, the pid lookup and the close that
/// an open per read costs (about half the time of a fresh read).
///
/// The file stays bound to the process it was opened for: once that
/// process is gone, reads fail even if its pid is given to another one.
#[derive(Debug)]
pub(crate) struct StatFile(File);

impl StatFile {
    pub(crate) fn open(pid: u32) -> Option<Self> {
        File::open(format!("/proc/{pid}/stat")).ok().map(Self)
    }

    /// The usage now, or `None` once the process is gone.
    pub(crate) fn usage(&self) -> Option<Usage> {
        let mut buf = [0; STAT_BUFFER];
        // `/proc` generates the whole line on the first read.
        let n = self.0.read_at(&mut buf, 0).ok()?;
        parse_usage(&buf[..n], machine()?)
    }
}

/// Machine constants needed to interpret `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
struct Machine {
    ticks_per_second: u64,
    page_size: u64,
}

fn machine() -> Option<Machine> {
    static MACHINE: OnceLock<Option<Machine>> = OnceLock::new();
    *MACHINE.get_or_init(|| {
        use nix::unistd::{SysconfVar, sysconf};
        let ticks = sysconf(SysconfVar::CLK_TCK).ok().flatten()?;
        let page = sysconf(SysconfVar::PAGE_SIZE).ok().flatten()?;
        Some(Machine {
            ticks_per_second: u64::try_from(ticks).ok().filter(|&t| t > 0)?,
            page_size: u64::try_from(page).ok()?,
        })
    })
}

fn parse_usage(stat: &[u8], machine: Machine) -> Option<Usage> {
    // The command name may contain spaces, parentheses and bytes that are
    // not UTF-8; the fields after the last ')' are fixed, ASCII numbers.
    // Field 3 (state) is the first of them.
    let rest = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
    let mut fields = std::str::from_utf8(rest).ok()?.split_ascii_whitespace();
    // Fields 14, 15 and 24, counting on from field 3.
    let mut next = |skip: usize| -> Option<u64> { fields.nth(skip)?.parse().ok() };
    let utime = next(14 - 3)?;
    let stime = next(0)?;
    let rss_pages = next(24 - 16)?;
    Some(Usage {
        cpu_ms: (utime + stime).saturating_mul(1000) / machine.ticks_per_second,
        rss_bytes: rss_pages.saturating_mul(machine.page_size),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_has_memory_and_its_usage_ends_with_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        // Opened before the child may have run `exec`, whose new program
        // then faults its pages in: the file follows the process.
        let stat = StatFile::open(child.id()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let usage = loop {
            let usage = stat.usage().unwrap();
            if usage.rss_bytes > 100_000 || std::time::Instant::now() > deadline {
                break usage;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(usage.rss_bytes > 100_000, "{usage:?}");
        assert!(usage.cpu_ms < 5_000, "{usage:?}");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(stat.usage(), None);
        assert!(StatFile::open(child.id()).is_none());
    }

    #[test]
    fn names_with_spaces_and_parentheses_parse() {
        let machine = Machine {
            ticks_per_second: 100,
            page_size: 4096,
        };
        // utime 50 + stime 70 ticks = 1.2 s.
        let stat = "42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 50 70 0 0 20 0 1 0 10000 0 25 0";
        let usage = parse_usage(stat.as_bytes(), machine).unwrap();
        assert_eq!(
            usage,
            Usage {
                cpu_ms: 1200,
                rss_bytes: 25 * 4096
            }
        );
        // A name is any bytes, UTF-8 or not.
        let stat = b"42 (a\xff) S 1 42 42 0 -1 0 0 0 0 0 50 70 0 0 20 0 1 0 10000 0 25 0";
        assert_eq!(parse_usage(stat, machine), Some(usage));
        assert_eq!(parse_usage(b"42 (truncated", machine), None);
    }

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
