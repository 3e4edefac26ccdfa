//! CPU and memory of a process, read from `/proc` the way `ps` does: CPU is
//! the average over the process's life, memory is its resident set. One
//! sample, so `show` costs no waiting.

use std::fs;

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
        let uptime = fs::read_to_string("/proc/uptime").ok()?;
        let uptime = uptime.split_whitespace().next()?.parse().ok()?;
        Some(Self {
            ticks_per_second: ticks as f64,
            page_size: u64::try_from(page).ok()?,
            uptime,
        })
    }

    /// The usage of `pid`, or `None` when it is gone (or not readable).
    pub(crate) fn usage(&self, pid: u32) -> Option<Usage> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        self.parse(&stat)
    }

    fn parse(&self, stat: &str) -> Option<Usage> {
        // The command name may contain spaces and parentheses; the fields
        // after the last ')' are fixed. Field 3 (state) is the first of them.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
        let cpu_ticks = field(14)? + field(15)?;
        let started = field(22)? / self.ticks_per_second;
        let rss_pages = field(24)?;
        let elapsed = (self.uptime - started).max(0.01);
        Some(Usage {
            cpu_percent: cpu_ticks / self.ticks_per_second / elapsed * 100.0,
            rss_bytes: (rss_pages as u64).saturating_mul(self.page_size),
        })
    }
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
        let usage = clock.parse(stat).unwrap();
        assert!((usage.cpu_percent - 1.0).abs() < 1e-9, "{usage:?}");
        assert_eq!(usage.rss_bytes, 25 * 4096);
        assert_eq!(clock.usage(u32::MAX), None);
    }
}
