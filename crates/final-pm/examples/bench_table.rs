//! Prints the summary table of a `bench/run` results file: one row per figure,
//! one column per subject (final-pm, the bare machine, PM2, the original
//! FinalPM), each cell the median and, for repeated runs, the min–max range.
//! Figures it does not know (from scenarios added later) are printed after the
//! known ones, under their own `bench` text.
//!
//! Usage: `bench_table RESULTS.jsonl` (Markdown on stdout).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use serde_json::Value;

/// Known figures in table order: (scenario id, row label, target).
const ROWS: &[(&str, &str, &str)] = &[
    (
        "show-4",
        "`show`, whole invocation, 4 processes up",
        "< 2 ms",
    ),
    (
        "show-50",
        "`show`, whole invocation, 50 processes up",
        "< 2 ms",
    ),
    (
        "invocation-floor",
        "spawn and exit of `/bin/true` (the floor)",
        "",
    ),
    (
        "cli-launch",
        "`final-pm --launch`, daemon running",
        "< 2 ms",
    ),
    ("rpc-roundtrip", "one request on an open connection", ""),
    (
        "config-load-cold",
        "load + validate 200 apps, in-process, fresh process",
        "< 5 ms",
    ),
    (
        "config-load-warm",
        "load + validate 200 apps, in-process, repeated call",
        "",
    ),
    (
        "config-load-cold-cpu",
        "the same, fresh process, thread CPU time",
        "",
    ),
    (
        "config-load-warm-cpu",
        "the same, repeated call, thread CPU time",
        "",
    ),
    (
        "config-load-cold-1",
        "load + validate 1 app, in-process, fresh process",
        "",
    ),
    (
        "config-load-warm-1",
        "load + validate 1 app, in-process, repeated call",
        "",
    ),
    (
        "config-load-cold-cpu-1",
        "the same, 1 app, fresh process, thread CPU time",
        "",
    ),
    (
        "config-load-warm-cpu-1",
        "the same, 1 app, repeated call, thread CPU time",
        "",
    ),
    (
        "config-200",
        "`--dry add all` of 200 apps, whole invocation (no daemon)",
        "",
    ),
    (
        "config-1",
        "`--dry add all` of 1 app, whole invocation (no daemon)",
        "",
    ),
    ("rss-idle", "daemon RSS, idle", "< 4 MB"),
    (
        "proto-rss-idle",
        "daemon RSS, idle (after 20,000 requests)",
        "< 4 MB",
    ),
    ("rss-4", "daemon RSS, 4 processes", ""),
    ("rss-50", "daemon RSS, 50 processes", ""),
    (
        "rss-others-idle",
        "RSS of the daemon's other processes, idle",
        "",
    ),
    (
        "rss-others-4",
        "RSS of the daemon's other processes (loggers), 4",
        "",
    ),
    (
        "rss-others-50",
        "RSS of the daemon's other processes (loggers), 50",
        "",
    ),
    ("rss-total-idle", "all own processes, idle", ""),
    ("rss-total-4", "all own processes, 4 processes", ""),
    ("rss-total-50", "all own processes, 50 processes", ""),
    ("proto-idle-cpu", "daemon CPU while idle, no processes", "0"),
    (
        "idle-cpu-50",
        "CPU of own processes over 30 s, 50 idle",
        "0",
    ),
    ("start-50", "`start` 50 until all ran (CLI)", ""),
    ("start-50-ratio", "`start` 50 / 50 bare spawns", "≤ 1.1×"),
    ("proto-start-50", "start 50 until all ran (protocol)", ""),
    (
        "proto-start-50-ratio",
        "start 50 / 50 bare spawns (protocol)",
        "≤ 1.1×",
    ),
    ("crash", "SIGKILL to replacement's first line", ""),
    ("crash-over", "crash restart minus a bare spawn", "≤ 3 ms"),
    (
        "proto-crash",
        "crash to replacement's first line (protocol)",
        "",
    ),
    (
        "proto-crash-over",
        "crash restart minus a bare spawn (protocol)",
        "≤ 3 ms",
    ),
    (
        "restart-failed",
        "failed requests, 3 restarts of 4 cluster instances under load",
        "0",
    ),
    (
        "restart-served",
        "requests served meanwhile (4 clients)",
        "",
    ),
    (
        "restart-time",
        "one restart of 4 instances, whole command",
        "",
    ),
    (
        "cluster-failed",
        "keep-alive load, restart halfway: requests failed",
        "0",
    ),
    (
        "cluster-served",
        "keep-alive load, restart halfway: requests served",
        "",
    ),
    (
        "cluster-retried",
        "keep-alive load: requests sent again on a new connection",
        "",
    ),
    (
        "cluster-restart",
        "keep-alive load: `restart --wait` of 4",
        "",
    ),
    (
        "cluster-replaced",
        "keep-alive load: restart until 4 new processes run",
        "",
    ),
    (
        "logs-time",
        "2,000,000 lines of 100 B until all in the log file",
        "",
    ),
    (
        "logs-ratio",
        "log time / the program into `cat > file`",
        "≤ 1.5×",
    ),
    ("logs-lost", "log lines lost", "0"),
    (
        "logs-peak-rss",
        "peak RSS of own processes while logging",
        "< 32 MB",
    ),
    ("scale-start-500", "`start` 500 until all ran", ""),
    ("scale-show-500", "`show`, 500 processes up", ""),
    ("scale-rss-500", "daemon RSS, 500 processes", ""),
    (
        "scale-rss-total-500",
        "all own processes, 500 processes",
        "",
    ),
];

const COLUMNS: &[(&str, &str)] = &[
    ("final-pm", "final-pm"),
    ("bare", "bare machine"),
    ("pm2", "PM2"),
    ("finalpm", "FinalPM 2.24"),
];

fn number(x: f64) -> String {
    if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// `1.23 ms (1.10–2.09)`; KiB are shown as MiB.
fn cell(v: &Value) -> String {
    if let Some(reason) = v.get("skipped").and_then(Value::as_str) {
        return format!("skipped: {reason}");
    }
    let get = |k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let (mut median, mut min, mut max) = (get("median"), get("min"), get("max"));
    let mut unit = v
        .get("unit")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if unit == "KiB" {
        (median, min, max) = (median / 1024.0, min / 1024.0, max / 1024.0);
        unit = "MiB".into();
    }
    let unit = match unit.as_str() {
        "x" => "×".to_owned(),
        u => format!(" {u}"),
    };
    if matches!(unit.as_str(), " req" | " lines" | " tick") {
        return format!("{median:.0}{unit}");
    }
    let runs = v.get("runs").and_then(Value::as_u64).unwrap_or(1);
    if runs > 1 && (min - max).abs() > f64::EPSILON {
        format!("{}{unit} ({}–{})", number(median), number(min), number(max))
    } else {
        format!("{}{unit}", number(median))
    }
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: bench_table RESULTS.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    // (scenario, subject) -> line; lines without both are keyed by `bench`.
    let mut figures: BTreeMap<(String, String), Value> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let bench = v.get("bench").and_then(Value::as_str).unwrap_or("");
        let scenario = v
            .get("scenario")
            .and_then(Value::as_str)
            .unwrap_or(bench)
            .to_owned();
        let mut subject = v
            .get("subject")
            .and_then(Value::as_str)
            .unwrap_or("final-pm")
            .to_owned();
        let mut row = scenario.clone();
        // The original FinalPM's baseline spawns Node: its own row.
        if subject == "bare-node" {
            subject = "bare".into();
            row = format!("{scenario} (node)");
            labels.insert(
                row.clone(),
                format!("{} (bare: the same in Node, for FinalPM)", label(&scenario)),
            );
        }
        if !order.contains(&row) {
            order.push(row.clone());
        }
        if !labels.contains_key(&row) {
            let l = label(&scenario);
            labels.insert(
                row.clone(),
                if l == scenario && !bench.is_empty() {
                    bench.to_owned()
                } else {
                    l
                },
            );
        }
        figures.insert((row, subject), v);
    }
    let mut rows: Vec<String> = Vec::new();
    for (id, _, _) in ROWS {
        for r in [id.to_string(), format!("{id} (node)")] {
            if order.contains(&r) {
                rows.push(r);
            }
        }
    }
    rows.extend(
        order
            .iter()
            .filter(|r| !rows.contains(r))
            .cloned()
            .collect::<Vec<_>>(),
    );

    print!("| figure |");
    for (_, title) in COLUMNS {
        print!(" {title} |");
    }
    println!(" target |");
    println!("|---|{}---|", "---|".repeat(COLUMNS.len()));
    for row in &rows {
        print!("| {} |", labels[row]);
        for (subject, _) in COLUMNS {
            match figures.get(&(row.clone(), (*subject).to_owned())) {
                Some(v) => print!(" {} |", cell(v)),
                None => print!(" |"),
            }
        }
        let target = ROWS
            .iter()
            .find(|(id, _, _)| *id == row.as_str())
            .map_or("", |(_, _, t)| t);
        println!(" {target} |");
    }
}

fn label(scenario: &str) -> String {
    ROWS.iter()
        .find(|(id, _, _)| *id == scenario)
        .map_or_else(|| scenario.to_owned(), |(_, l, _)| (*l).to_owned())
}
