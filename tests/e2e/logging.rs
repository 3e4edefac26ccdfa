//! Logging through the real binary: the builtin file-logger writes
//! FinalPM's `log.txt` format, bursts arrive whole and in order, a missing or
//! slow logger never loses a line it could have kept, `--kill` flushes, Node
//! loggers written for FinalPM get records over IPC, and `log -f` followers
//! see lines as they are written without holding anyone back.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::harness::{Home, alive, stdout, wait_for};

/// A process the test started (a `log -f` client), killed when the test ends.
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(home: &Home, name: &str) -> String {
    std::fs::read_to_string(home.dir.path().join(name)).unwrap_or_default()
}

/// Waits until the file `name` in the test directory satisfies `cond`.
fn wait_file(home: &Home, name: &str, timeout_s: u64, cond: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let done = wait_for(Duration::from_secs(timeout_s), || {
        text = read(home, name);
        cond(&text)
    });
    assert!(
        done,
        "{name} never got what was expected; it has {} bytes, ending {:?}",
        text.len(),
        &text[text.len().saturating_sub(300)..]
    );
    text
}

/// Pids of the processes of the logger app `name` (loggers are shown only
/// when named).
fn logger_pids_of(home: &Home, name: &str) -> Vec<u64> {
    let out = home.run(&["show", name, "--json", "--no-upload"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    info["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["app_name"] == name)
        .filter_map(|p| p["pid"].as_u64())
        .collect()
}

fn logger_pids(home: &Home) -> Vec<u64> {
    logger_pids_of(home, "file-logger")
}

/// Numbers `1..=count` of the lines `NNNNNNNN <padding>` in `text`, in file order.
fn numbers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<u64> {
    lines
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// An app printing `count` lines of 100 bytes (`00000001 xxx...`) as fast
/// as awk can, then exiting.
fn burst_app(home: &Home, count: u32) {
    home.script(
        "burst.sh",
        &format!(
            "#!/bin/sh\nexec awk 'BEGIN {{ pad = sprintf(\"%91s\", \"\"); gsub(/ /, \"x\", pad); \
             for (i = 1; i <= {count}; i++) printf \"%08d %s\\n\", i, pad }}'\n"
        ),
    );
}

const NO_RESTART: &str =
    r#""ready-on": "instant", "restart-crashing": false, "restart-new-crashing": false"#;

#[test]
fn app_lines_reach_log_txt_in_finalpms_format() {
    let home = Home::new();
    home.script(
        "app.sh",
        "#!/bin/sh\necho \"hello $$\"\necho 'to stderr' >&2\nprintf 'no newline at the end'\nexit 3\n",
    );
    home.config(&format!(
        r#"{{"applications": [{{"name": "web", "run": "./app.sh", {NO_RESTART}}}]}}"#
    ));
    home.ok(&["start", "web"]);
    let log = wait_file(&home, "log.txt", 10, |t| t.contains("[EXIT]"));
    let line = log.lines().find(|l| l.contains("[STDOUT]: hello")).unwrap();
    // [2026-11-22T03:24:05.117Z] [web/0 15549] [STDOUT]: hello 15549
    let pid = line.rsplit(' ').next().unwrap();
    let expected_tail = format!("] [web/0 {pid}] [STDOUT]: hello {pid}");
    assert!(line.ends_with(&expected_tail), "{line}");
    let stamp = &line[1..25];
    assert_eq!(stamp.len(), 24, "{line}");
    assert!(
        stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T' && stamp.as_bytes()[19] == b'.',
        "ISO-8601 UTC with milliseconds: {line}"
    );
    assert!(
        log.contains(&format!("[web/0 {pid}] [STDERR]: to stderr")),
        "{log}"
    );
    assert!(
        log.contains(&format!("[web/0 {pid}] [STDOUT]: no newline at the end")),
        "the last partial line is kept: {log}"
    );
    assert!(
        log.contains(&format!("[web/0 {pid}] [EXIT]: code=3 signal=null")),
        "{log}"
    );
    assert!(
        log.contains("[web/0 -1] [MOVED]: moved to queue generation"),
        "{log}"
    );
    let order: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("] [").nth(2)?.split(']').next())
        .collect();
    assert_eq!(order.first(), Some(&"MOVED"), "{log}");
    assert_eq!(order.last(), Some(&"EXIT"), "{log}");
}

/// Lines whose `\r` is trimmed or whose end is cut shift the bytes after
/// them in the daemon's read buffer; every line still reaches `log.txt`
/// whole and in order, and `log --json` counts the bytes cut.
#[test]
fn trimmed_and_cut_lines_reach_log_txt_exactly() {
    let home = Home::new();
    home.script(
        "app.sh",
        "#!/bin/sh\nprintf 'a\\r\\nbb\\r\\r\\ncccccccccc\\ndd\\r\\n\\neeeeee\\r\\nf'\n",
    );
    home.config(&format!(
        r#"{{"applications": [{{"name": "web", "run": "./app.sh", "max-log-line-length": 5, {NO_RESTART}}}]}}"#
    ));
    home.ok(&["start", "web"]);
    let log = wait_file(&home, "log.txt", 10, |t| t.contains("[EXIT]"));
    // Split at `\n` only: `lines()` would also eat the kept `\r`.
    let texts: Vec<&str> = log
        .split('\n')
        .filter_map(|l| l.split_once("[STDOUT]: ").map(|(_, text)| text))
        .collect();
    assert_eq!(
        texts,
        ["a", "bb\r", "ccccc", "dd", "", "eeeee", "f"],
        "{log:?}"
    );
    let json = home.ok(&["log", "web", "--json", "-n", "100"]);
    let cut: Vec<(String, u64)> = json
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["type"] == "stdout")
        .map(|r| {
            (
                r["text"].as_str().unwrap_or_default().to_owned(),
                r["truncated"].as_u64().unwrap_or(0),
            )
        })
        .filter(|(_, cut)| *cut > 0)
        .collect();
    assert_eq!(
        cut,
        [("ccccc".to_owned(), 5), ("eeeee".to_owned(), 1)],
        "{json}"
    );
}

#[test]
fn a_burst_arrives_complete_and_in_order() {
    const LINES: u32 = 200_000;
    let home = Home::new();
    burst_app(&home, LINES);
    home.config(&format!(
        r#"{{"applications": [{{"name": "burst", "run": "./burst.sh", {NO_RESTART}}}]}}"#
    ));
    home.ok(&["start", "burst"]);
    let log = wait_file(&home, "log.txt", 120, |t| t.contains("[EXIT]"));
    let got = numbers(
        log.lines()
            .filter_map(|l| l.split_once("[STDOUT]: ").map(|(_, text)| text)),
    );
    assert_eq!(got.len(), LINES as usize, "every line arrived");
    assert!(
        got.iter().zip(1..).all(|(&n, i)| n == i),
        "lines arrived in order"
    );
    assert!(
        log.contains("[EXIT]: code=0 signal=null"),
        "the app was never killed"
    );
}

#[test]
fn a_logger_that_cannot_start_never_blocks_the_app_and_drops_are_reported() {
    let home = Home::new();
    burst_app(&home, 2_000);
    home.config(&format!(
        r#"{{"applications": [
            {{"name": "burst", "run": "./burst.sh", "logger": "broken-logger",
              "max-buffered-log-bytes": 20000, {NO_RESTART}}},
            {{"name": "broken-logger", "type": "logger", "run": "./no-such-program"}}
        ]}}"#
    ));
    // The logger app is uploaded like any app (start uploads only `burst`).
    home.ok(&["add", "broken-logger"]);
    home.ok(&["start", "burst"]);
    let mut text = String::new();
    let reported = wait_for(Duration::from_secs(20), || {
        text = stdout(&home.run(&["log", "burst", "-n", "1000"]));
        text.contains("[EXIT] code=0") && text.contains("[DROPPED] dropped ")
    });
    assert!(
        reported,
        "the app ran to its end and drops were reported:\n{text}"
    );
    let kept = numbers(
        text.lines()
            .filter_map(|l| l.split_once("[STDOUT] ").map(|(_, t)| t)),
    );
    assert!(
        !kept.is_empty() && kept.len() < 2_000,
        "the buffer kept the newest lines only: {}",
        kept.len()
    );
    assert_eq!(kept.last(), Some(&2_000), "the newest line is kept");
    // The daemon is fine and the logger's failure is on record.
    home.ok(&["show"]);
    let all = stdout(&home.run(&["log", "broken-logger", "-n", "100"]));
    assert!(
        all.contains("[ERROR]") && all.contains("no-such-program"),
        "{all}"
    );
    // The same with a logger name that is no app at all.
    home.config(&format!(
        r#"{{"applications": [{{"name": "burst", "run": "./burst.sh", "logger": "nobody",
            "max-buffered-log-bytes": 20000, {NO_RESTART}}}]}}"#
    ));
    home.ok(&["start", "burst", "--force"]);
    let reported = wait_for(Duration::from_secs(20), || {
        text = stdout(&home.run(&["log", "burst", "-n", "10"]));
        text.matches("[EXIT] code=0").count() >= 1 && text.contains("\"nobody\"")
    });
    assert!(reported, "{text}");
}

/// A logger (not Node) that reads its JSON records from stdin slowly: 64 KiB,
/// then a pause, until stdin ends.
const SLOW_LOGGER: &str = "#!/bin/sh\nwhile :; do\n  n=$(dd bs=65536 count=1 iflag=fullblock status=none | tee -a records.jsonl | wc -c)\n  [ \"$n\" -eq 0 ] && exit 0\n  sleep 0.02\ndone\n";

#[test]
fn a_slow_logger_makes_the_app_wait_and_loses_nothing() {
    const LINES: u32 = 100_000;
    let home = Home::new();
    home.script("slow-logger.sh", SLOW_LOGGER);
    home.script(
        "writer.sh",
        &format!(
            "#!/bin/sh\nawk 'BEGIN {{ pad = sprintf(\"%91s\", \"\"); gsub(/ /, \"x\", pad); \
             for (i = 1; i <= {LINES}; i++) printf \"%08d %s\\n\", i, pad }}'\ntouch written\nexec sleep 1000\n"
        ),
    );
    home.config(&format!(
        r#"{{"applications": [
            {{"name": "writer", "run": "./writer.sh", "logger": "slow",
              "max-buffered-log-bytes": 100000, {NO_RESTART}}},
            {{"name": "slow", "type": "logger", "run": "./slow-logger.sh",
              "ready-on": "instant", "stop-signal": "message"}}
        ]}}"#
    ));
    home.ok(&["add", "slow"]);
    home.ok(&["start", "writer"]);
    // When the app has written everything, most of it has already gone
    // through the logger: the app waited for it. Without backpressure the
    // 10 MB would sit in the daemon and the app would finish at once.
    assert!(
        wait_for(Duration::from_secs(120), || home
            .dir
            .path()
            .join("written")
            .exists()),
        "the app finished writing"
    );
    let consumed = read(&home, "records.jsonl").len();
    let total = LINES as usize * 100;
    assert!(
        consumed > total / 2,
        "only {consumed} of {total} bytes had reached the logger when the app finished writing"
    );
    home.ok(&["stop", "writer"]);
    let records = wait_file(&home, "records.jsonl", 60, |t| {
        t.contains("\"type\":\"exit\"")
    });
    let texts: Vec<String> = records
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["type"] == "stdout")
        .map(|r| r["text"].as_str().unwrap().to_owned())
        .collect();
    let got = numbers(texts.iter().map(String::as_str));
    assert_eq!(got.len(), LINES as usize, "nothing lost");
    assert!(got.iter().zip(1..).all(|(&n, i)| n == i), "in order");
}

#[test]
fn kill_flushes_the_last_lines_to_log_txt() {
    let home = Home::new();
    home.script(
        "app.sh",
        "#!/bin/sh\ni=0\nwhile [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); done\necho 'THE LAST LINE'\nexec sleep 1000\n",
    );
    home.config(&format!(
        r#"{{"applications": [{{"name": "app", "run": "./app.sh", {NO_RESTART}}}]}}"#
    ));
    home.ok(&["start", "app"]);
    let mut text = String::new();
    assert!(wait_for(Duration::from_secs(10), || {
        text = stdout(&home.run(&["log", "app", "-n", "5"]));
        text.contains("THE LAST LINE")
    }));
    let pid = home.processes()[0]["pid"].as_u64().unwrap() as u32;
    let daemon = home.daemon_pid().unwrap();
    home.ok(&["--kill"]);
    assert!(wait_for(Duration::from_secs(10), || !alive(daemon)));
    assert!(!alive(pid));
    let log = read(&home, "log.txt");
    assert!(
        log.contains("[STDOUT]: THE LAST LINE"),
        "{}",
        &log[log.len().saturating_sub(500)..]
    );
    assert!(
        log.contains("[KILL]: signal=SIGKILL"),
        "{}",
        &log[log.len().saturating_sub(500)..]
    );
    assert!(
        log.contains("[EXIT]: code=null signal=SIGKILL"),
        "{}",
        &log[log.len().saturating_sub(500)..]
    );
}

#[test]
fn a_node_logger_written_for_finalpm_receives_records_over_ipc() {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: node not installed");
        return;
    }
    let home = Home::new();
    std::fs::write(
        home.dir.path().join("logger.js"),
        "const fs = require('fs');\n\
         process.on('message', (record) => {\n\
           if (record === 'stop') { process.disconnect(); return; }\n\
           fs.appendFileSync('node-log.txt', `${record.app}/${record.process.number} ${record.type} ${record.text}\\n`);\n\
         });\n\
         process.send('ready');\n",
    )
    .unwrap();
    home.script("app.sh", "#!/bin/sh\necho 'hello node logger'\nexit 0\n");
    home.config(&format!(
        r#"{{"applications": [
            {{"name": "app", "run": "./app.sh", "logger": "node-logger", {NO_RESTART}}},
            {{"name": "node-logger", "type": "logger", "run": "./logger.js",
              "ready-on": "message", "stop-signal": "message"}}
        ]}}"#
    ));
    home.ok(&["add", "node-logger"]);
    home.ok(&["start", "app"]);
    let log = wait_file(&home, "node-log.txt", 20, |t| t.contains(" exit "));
    assert!(log.contains("app/0 stdout hello node logger"), "{log}");
    assert!(
        log.contains("app/0 moved moved to queue generation"),
        "{log}"
    );
    // Once the app is done the logger is stopped with its stop message.
    assert!(
        wait_for(Duration::from_secs(10), || logger_pids_of(
            &home,
            "node-logger"
        )
        .is_empty()),
        "the logger stopped"
    );
}

#[test]
fn two_followers_see_lines_as_written_and_a_stuck_one_holds_nobody_back() {
    let home = Home::new();
    home.script(
        "ticker.sh",
        "#!/bin/sh\ni=0\nwhile :; do echo \"tick $i\"; i=$((i+1)); [ -e burst ] && break; sleep 0.05; done\n\
         awk 'BEGIN { for (i = 1; i <= 50000; i++) printf \"burst %d\\n\", i }'\necho 'burst done'\nexec sleep 1000\n",
    );
    home.config(&format!(
        r#"{{"applications": [{{"name": "ticker", "run": "./ticker.sh", {NO_RESTART}}}]}}"#
    ));
    home.ok(&["start", "ticker"]);
    let follow = |stdout: Stdio, stderr: Stdio| {
        Kid(home
            .cmd(&["log", "ticker", "-f", "-n", "0"])
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap())
    };
    let file = |name: &str| -> Stdio {
        std::fs::File::create(home.dir.path().join(name))
            .unwrap()
            .into()
    };
    let _a = follow(file("a.txt"), Stdio::null());
    let _b = follow(file("b.txt"), Stdio::null());
    // A follower that does not read its output (until the end).
    let mut stuck = follow(Stdio::piped(), file("stuck-err.txt"));
    // Both see new ticks while the app runs.
    let ticks = |name: &str| {
        read(&home, name)
            .lines()
            .filter(|l| l.contains("[STDOUT] tick "))
            .count()
    };
    assert!(
        wait_for(Duration::from_secs(20), || ticks("a.txt") >= 5
            && ticks("b.txt") >= 5),
        "both followers see the ticks"
    );
    // A burst much larger than the stuck follower's socket and pipe: the app
    // still gets through it.
    std::fs::write(home.dir.path().join("burst"), "").unwrap();
    let mut text = String::new();
    assert!(
        wait_for(Duration::from_secs(60), || {
            text = stdout(&home.run(&["log", "ticker", "-n", "3"]));
            text.contains("burst done")
        }),
        "the app finished its burst: {text}"
    );
    wait_file(&home, "a.txt", 20, |t| t.contains("burst done"));
    wait_file(&home, "b.txt", 20, |t| t.contains("burst done"));
    // The stuck follower, read at last, is told it missed records.
    let mut out = stuck.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut sink = [0u8; 65536];
        while matches!(out.read(&mut sink), Ok(n) if n > 0) {}
    });
    wait_file(&home, "stuck-err.txt", 20, |t| {
        t.contains("records were skipped")
    });
    let _ = stuck.0.kill();
    let _ = reader.join();
}

#[test]
fn a_logger_killed_midway_is_restarted_and_no_line_is_lost() {
    const LINES: u32 = 200_000;
    let home = Home::new();
    burst_app(&home, LINES);
    home.config(&format!(
        r#"{{"applications": [{{"name": "burst", "run": "./burst.sh", {NO_RESTART}}}]}}"#
    ));
    home.ok(&["start", "burst"]);
    // Kill the file-logger with SIGKILL as soon as it has written something.
    let mut killed = None;
    let found = wait_for(Duration::from_secs(30), || {
        if read(&home, "log.txt").contains("[STDOUT]") {
            let logger = logger_pids(&home).first().copied();
            if let Some(pid) = logger {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
                killed = Some(pid);
                return true;
            }
        }
        false
    });
    assert!(found && killed.is_some(), "the file-logger ran");
    let log = wait_file(&home, "log.txt", 120, |t| t.contains("[EXIT]"));
    let got = numbers(
        log.lines()
            .filter_map(|l| l.split_once("[STDOUT]: ").map(|(_, text)| text)),
    );
    // Everything arrived; after the crash a few lines may come twice (those
    // the killed logger wrote but had not confirmed), never out of order.
    let mut next = 1;
    for n in &got {
        if u64::from(next) == *n {
            next += 1;
        } else {
            assert!(*n < u64::from(next), "line {n} came before line {next}");
        }
    }
    assert_eq!(next, LINES + 1, "every line arrived");
}

/// The builtin file-logger gets the daemon's lines through shared memory
/// (`feed_ring`), not by copying them through its stdin pipe.
#[test]
fn the_file_logger_reads_its_lines_from_shared_memory() {
    let home = Home::new();
    home.script("app.sh", "#!/bin/sh\necho \"up $$\"\nexec sleep 600\n");
    home.config(r#"{"applications": [{"name": "web", "run": "./app.sh", "ready-on": "instant"}]}"#);
    home.ok(&["start", "web", "--wait"]);
    home.processes();
    wait_file(&home, "log.txt", 10, |t| t.contains("[STDOUT]: up"));
    let out = home.run(&["show", "--json", "--verbose", "--no-upload"]);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let logger = info["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["app_name"] == "file-logger")
        .and_then(|p| p["pid"].as_u64())
        .expect("a running file-logger");
    home.adopt(logger as u32);
    let maps = std::fs::read_to_string(format!("/proc/{logger}/maps")).unwrap();
    assert!(maps.contains("memfd:final-pm-feed"), "{maps}");
}
