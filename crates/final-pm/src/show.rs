//! `show`: one line per process, grouped by application, at most 80 columns
//! for typical names.
//!
//! ```text
//! Process       ID  PID    Generation  Uptime   Crashes  CPU    Memory
//! web/0          4  16905  running     1m 3s          0  0.3%   12.1 MiB
//! web/1 (old)    5  16906  running     22s            0  0.0%   11.8 MiB
//! worker/0       2  -      new         in 2s          4  -      -
//! api            -  -      stopped     -              -  -      -
//! ```

use final_pm_protocol::{AppType, Generation, ProcessInfo};

use crate::plan::Snapshot;
use crate::selector::{Mode, Selector};

/// How to render.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    pub(crate) colour: bool,
    /// Loggers and builtin apps too.
    pub(crate) verbose: bool,
    /// Wall clock, in ms since the epoch (the daemon's time base).
    pub(crate) now_ms: u64,
}

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const YELLOW: &str = "\x1b[33m";
const BLUE: &str = "\x1b[34m";
const GREY: &str = "\x1b[90m";
const RESET: &str = "\x1b[0m";

/// One table row before padding: plain cells plus the colour of each.
struct Row {
    cells: [String; 8],
    colours: [Option<&'static str>; 8],
}

const HEADER: [&str; 8] = [
    "Process",
    "ID",
    "PID",
    "Generation",
    "Uptime",
    "Crashes",
    "CPU",
    "Memory",
];
/// Numeric columns are right-aligned.
const RIGHT: [bool; 8] = [false, true, false, false, false, true, false, false];

/// Renders the table of the selected apps and processes.
pub(crate) fn render(snapshot: &Snapshot, selectors: &[Selector], style: Style) -> String {
    let apps = snapshot.selected_apps(selectors, style.verbose);
    let processes = snapshot.selected_processes(selectors, Mode::Loose, style.verbose);
    let mut rows = Vec::new();
    let mut legend_old = false;
    let mut legend_killing = false;
    // Apps in table order; then processes of apps that no longer exist.
    let mut names: Vec<&str> = apps.iter().map(|a| a.config.name.as_str()).collect();
    for p in &processes {
        if !names.contains(&p.app_name.as_str()) {
            names.push(&p.app_name);
        }
    }
    for name in names {
        let mut own: Vec<&ProcessInfo> = processes
            .iter()
            .copied()
            .filter(|p| p.app_name == name)
            .collect();
        // Stable: processes keep table order within a generation.
        own.sort_by_key(|p| {
            Generation::DISPLAY_ORDER
                .iter()
                .position(|g| *g == p.generation)
        });
        if own.is_empty() {
            let mut cells: [String; 8] = Default::default();
            cells[0] = name.to_owned();
            for cell in &mut cells[1..] {
                *cell = "-".into();
            }
            cells[3] = "stopped".into();
            rows.push(Row {
                cells,
                colours: [None, None, None, Some(GREY), None, None, None, None],
            });
        }
        for p in own {
            legend_old |= p.outdated;
            legend_killing |= p.killing;
            rows.push(process_row(snapshot, p, style));
        }
    }
    let mut out = String::new();
    let header = Row {
        cells: HEADER.map(str::to_owned),
        colours: [Some(BOLD); 8],
    };
    let widths: Vec<usize> = (0..8)
        .map(|i| {
            std::iter::once(&header)
                .chain(&rows)
                .map(|r| r.cells[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.cells.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            let last = i == 7;
            if RIGHT[i] {
                line.push_str(&" ".repeat(pad));
            }
            match row.colours[i] {
                Some(colour) if style.colour => {
                    line.push_str(colour);
                    line.push_str(cell);
                    line.push_str(RESET);
                }
                _ => line.push_str(cell),
            }
            if !RIGHT[i] && !last {
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("No applications. Define them in process-config.json and run final-pm add all, or final-pm start all.\n");
    }
    let mut legend = Vec::new();
    if legend_old {
        legend.push("(old) started from an older configuration; restart to apply the current one");
    }
    if legend_killing {
        legend.push("(killing) killed, not exited yet; kill it again to send SIGKILL");
    }
    for line in legend {
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn process_row(snapshot: &Snapshot, p: &ProcessInfo, style: Style) -> Row {
    let mut name = format!("{}/{}", p.app_name, p.number);
    let is_logger = snapshot.app_type_of(p) == AppType::Logger;
    if is_logger && !p.args.is_empty() {
        let args = p.args.join(" ");
        let args = if args.chars().count() > 30 {
            format!("{}...", args.chars().take(27).collect::<String>())
        } else {
            args
        };
        name.push_str(&format!(" [{args}]"));
    }
    if p.outdated {
        name.push_str(" (old)");
    }
    if p.killing {
        name.push_str(" (killing)");
    }
    let cells = [
        name,
        p.id.to_string(),
        p.pid.map_or_else(|| "-".into(), |pid| pid.to_string()),
        p.generation.as_str().to_owned(),
        uptime(p, style.now_ms),
        p.crashes.to_string(),
        cpu_percent(p, style.now_ms).map_or_else(|| "-".into(), |c| format!("{c:.1}%")),
        p.usage.map_or_else(|| "-".into(), |u| memory(u.rss_bytes)),
    ];
    let generation_colour = match p.generation {
        Generation::Running => GREEN,
        Generation::New => YELLOW,
        Generation::Queue => BLUE,
        Generation::Old | Generation::Marked => GREY,
    };
    let name_colour = if p.outdated || p.killing {
        Some(RED)
    } else if is_logger {
        Some(GREY)
    } else {
        None
    };
    let crash_colour = (p.crashes > 0).then_some(RED);
    Row {
        cells,
        colours: [
            name_colour,
            None,
            None,
            Some(generation_colour),
            None,
            crash_colour,
            None,
            None,
        ],
    }
}

/// `1h 3m`: the two largest units, so the column stays narrow.
fn uptime(p: &ProcessInfo, now_ms: u64) -> String {
    let Some(start) = p.start_time_ms else {
        return if p.generation == Generation::Queue {
            "queued".into()
        } else {
            "-".into()
        };
    };
    if start > now_ms {
        return format!("in {}", duration((start - now_ms).div_ceil(1000)));
    }
    duration((now_ms - start) / 1000)
}

pub(crate) fn duration(seconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")];
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (size, unit) in UNITS {
        if rest >= size || (size == 1 && parts.is_empty()) {
            parts.push(format!("{}{unit}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 {
            break;
        }
    }
    parts.join(" ")
}

/// CPU time over wall time since the process started, in percent of one
/// core: the average over its life, as `ps` shows it. At least 10 ms of
/// life, so a process that just started does not show a wild figure.
fn cpu_percent(p: &ProcessInfo, now_ms: u64) -> Option<f64> {
    let usage = p.usage?;
    let alive_ms = now_ms.saturating_sub(p.start_time_ms?).max(10);
    Some(usage.cpu_ms as f64 * 100.0 / alive_ms as f64)
}

fn memory(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b >= KIB * KIB * KIB {
        format!("{:.1} GiB", b / KIB / KIB / KIB)
    } else if b >= KIB * KIB {
        format!("{:.1} MiB", b / KIB / KIB)
    } else {
        format!("{:.0} KiB", b / KIB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_two_units() {
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(63), "1m 3s");
        assert_eq!(duration(3600), "1h");
        assert_eq!(duration(3661), "1h 1m");
        assert_eq!(duration(90_061), "1d 1h");
    }

    #[test]
    fn cpu_is_the_average_over_the_process_life() {
        let mut p = crate::plan::tests::process(1, "web", 0, Generation::Running);
        p.start_time_ms = Some(1_000_000);
        p.usage = Some(final_pm_protocol::Usage {
            cpu_ms: 1500,
            rss_bytes: 4096,
        });
        // 1.5 s of CPU over 10 s of life.
        assert_eq!(cpu_percent(&p, 1_010_000), Some(15.0));
        p.usage = None;
        assert_eq!(cpu_percent(&p, 1_010_000), None);
    }

    #[test]
    fn memory_is_human() {
        assert_eq!(memory(12 * 1024 * 1024 + 104_858), "12.1 MiB");
        assert_eq!(memory(3000), "3 KiB");
    }
}
