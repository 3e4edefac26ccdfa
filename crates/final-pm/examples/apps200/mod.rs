//! The 200-application `process-config.json` of issue 4's target ("loading
//! and validating a config with 200 applications takes under 5 ms"), with the
//! keys real configurations use: args, env, instances, logger-args and
//! timeouts. `bench_managers config` times a whole `--dry add all` of it,
//! `bench_config` the loader alone. Each driver includes it with
//! `mod apps200;`.

use std::fs;
use std::path::Path;

/// Writes a configuration of `count` apps (`app-000`, `app-001`, …) and the
/// `server.js` they name (never run) into `dir`.
pub(crate) fn write(dir: &Path, count: usize) {
    let apps: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            serde_json::json!({
                "name": format!("app-{i:03}"),
                "run": "./server.js",
                "args": ["--port", format!("{}", 8000 + i), "--verbose"],
                "instances": 1 + i % 4,
                "ready-on": if i % 2 == 0 { "listen" } else { "message" },
                "stop-signal": "SIGTERM",
                "restart-crashing-delay": 500,
                "logger-args": [format!("logs/app-{i:03}.log")],
                "stop-timeout": 10000,
                "env": {"NODE_ENV": "production", "PORT": 8000 + i, "SERVICE": format!("svc-{i}")},
            })
        })
        .collect();
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("process-config.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "applications": apps })).unwrap(),
    )
    .unwrap();
    fs::write(dir.join("server.js"), "// never run\n").unwrap();
}
