//! CPU and memory of a process, read from `/proc` the way `ps` does: CPU is
//! the average over the process's life, memory is its resident set. One
//! sample, so `show` costs no waiting.
//!
//! `show` reads one file per process, so each is read with one `open` and
//! one `read` into a buffer on the stack: `fs::read_to_string` would first
//! stat the file (whose size `/proc` reports as 0) and then grow its buffer
//! from 32 bytes, seven system calls more per process.

use std::fs::File;
use std::io::Read;

/// More than the fields `show` needs: those up to `rss` (field 24) take at
/// most about 600 bytes even with every number at its widest, so a longer
/// line that does not fit loses only fields that are not read.
const STAT_BUFFER: usize = 1024;

/// What `show` prints about a live process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    /// CPU time over wall time since the process started, in percent of one
    /// core.
    pub(crate) cpu_percent: f64,
    /// Resident set size in bytes.
    pub(crate) rss_bytes: u64,
}

/// Machine constants needed to interpret `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    ticks_per_second: f64,
    page_size: u64,
    /// Seconds since boot, when the `show` started.
    uptime: f64,
}

impl Clock {
    pub(crate) fn read() -> Option<Self> {
        use nix::unistd::{SysconfVar, sysconf};
        let ticks = sysconf(SysconfVar::CLK_TCK).ok().flatten()?;
        let page = sysconf(SysconfVar::PAGE_SIZE).ok().flatten()?;
        let mut buf = [0; 64];
        let uptime = read_once("/proc/uptime", &mut buf)?;
        let uptime = std::str::from_utf8(uptime).ok()?;
        let uptime = uptime.split_whitespace().next()?.parse().ok()?;
        Some(Self {
            ticks_per_second: ticks as f64,
            page_size: u64::try_from(page).ok()?,
            uptime,
        })
    }

    /// The usage of `pid`, or `None` when it is gone (or not readable).
    pub(crate) fn usage(&self, pid: u32) -> Option<Usage> {
        let mut buf = [0; STAT_BUFFER];
        self.parse(read_once(&format!("/proc/{pid}/stat"), &mut buf)?)
    }

    fn parse(&self, stat: &[u8]) -> Option<Usage> {
        // The command name may contain spaces, parentheses and bytes that
        // are not UTF-8; the fields after the last ')' are fixed, ASCII
        // numbers. Field 3 (state) is the first of them.
        let rest = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
        let mut fields = std::str::from_utf8(rest).ok()?.split_ascii_whitespace();
        // Fields 14, 15, 22 and 24, counting on from field 3.
        let mut next = |skip: usize| -> Option<f64> { fields.nth(skip)?.parse().ok() };
        let utime = next(14 - 3)?;
        let stime = next(0)?;
        let cpu_ticks = utime + stime;
        let started = next(22 - 16)? / self.ticks_per_second;
        let rss_pages = next(24 - 23)?;
        let elapsed = (self.uptime - started).max(0.01);
        Some(Usage {
            cpu_percent: cpu_ticks / self.ticks_per_second / elapsed * 100.0,
            rss_bytes: (rss_pages as u64).saturating_mul(self.page_size),
        })
    }
}

/// The start of a `/proc` file: one `read` gives as much of it as fits,
/// since `/proc` files like these are generated whole on the first read.
fn read_once<'a>(path: &str, buf: &'a mut [u8]) -> Option<&'a [u8]> {
    let n = File::open(path).ok()?.read(buf).ok()?;
    Some(&buf[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_has_memory_and_a_plausible_cpu_share() {
        let clock = Clock::read().unwrap();
        let usage = clock.usage(std::process::id()).unwrap();
        assert!(usage.rss_bytes > 100_000, "{usage:?}");
        assert!(
            (0.0..=100.0 * 64.0).contains(&usage.cpu_percent),
            "{usage:?}"
        );
    }

    #[test]
    fn names_with_spaces_and_parentheses_parse() {
        let clock = Clock {
            ticks_per_second: 100.0,
            page_size: 4096,
            uptime: 200.0,
        };
        // utime 50 + stime 50 ticks = 1 s over 100 s (started at 100 s).
        let stat = "42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 50 50 0 0 20 0 1 0 10000 0 25 0";
        let usage = clock.parse(stat.as_bytes()).unwrap();
        assert!((usage.cpu_percent - 1.0).abs() < 1e-9, "{usage:?}");
        assert_eq!(usage.rss_bytes, 25 * 4096);
        // A name is any bytes, UTF-8 or not.
        let stat = b"42 (a\xff) S 1 42 42 0 -1 0 0 0 0 0 50 50 0 0 20 0 1 0 10000 0 25 0";
        assert_eq!(clock.parse(stat), Some(usage));
        assert_eq!(clock.usage(u32::MAX), None);
    }
}
