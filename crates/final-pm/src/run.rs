//! What one invocation does against one daemon: connect (or launch), upload
//! the configuration, read the daemon's state, then show it or send the
//! action's calls as one batch.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use final_pm_protocol::client::EarlyCall;
use final_pm_protocol::{
    AppConfig, AppInfo, Client, ErrorCode, Event, Generation, Request, Response,
};

use crate::action::{Action, Invocation};
use crate::cli::Cli;
use crate::config::Settings;
use crate::exit::Exit;
use crate::launch::{self, Target};
use crate::output::Output;
use crate::plan::{self, Snapshot};
use crate::{inspect, logview, show};

/// How often `--wait` reports what it is waiting for.
const WAIT_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the invocation against the daemon of `settings`.
pub(crate) async fn group(
    cli: &Cli,
    invocation: Option<&Invocation>,
    settings: &Settings,
    early: &mut Option<EarlyCall>,
    out: &Output,
) -> anyhow::Result<Exit> {
    let target = Target {
        home: settings.home.clone(),
        socket: settings.socket.clone(),
        daemon_log: settings.daemon_log.clone(),
    };
    let action = invocation.map(|i| i.action);
    let launches = !cli.dry
        && (cli.launch
            || action.is_some_and(Action::creates)
            || (action == Some(Action::Log) && cli.follow)
            || (action.is_none() && cli.force));
    out.debug(
        &["Connection"],
        &format!("Connecting to {}", target.socket.display()),
    );
    // Without a launch nothing is uploaded either (only actions that create
    // processes upload, and they launch unless it is a dry run, which
    // uploads nothing), so the daemon's state is asked for with the
    // handshake, in the same round trip.
    let info_request = Request::Info {
        // Only `show` prints CPU and memory, and reading them costs the
        // daemon a `/proc` read per process.
        usage: action == Some(Action::Show),
    };
    let mut early_info = None;
    let mut client = if launches {
        Some(launch::connect_or_launch(&target, out).await?)
    } else if invocation.is_some() {
        // The query sent before the arguments were parsed, if it is the one
        // this invocation needs from this daemon.
        let early =
            early.take_if(|call| call.socket() == target.socket && *call.request() == info_request);
        let answer = match early {
            Some(call) => Some(launch::finish_early(call, &target).await?),
            None => launch::connect_and_call(&target, info_request.clone()).await?,
        };
        match answer {
            Some((client, info)) => {
                early_info = Some(info);
                Some(client)
            }
            None => None,
        }
    } else {
        launch::connect(&target).await?
    };
    let mut exit = Exit::Success;
    if client.is_none() {
        let prefix = if cli.dry {
            &["DRY"][..]
        } else {
            &["Daemon"][..]
        };
        out.info(
            prefix,
            &format!("No daemon running at {}", target.socket.display()),
        );
        if invocation.is_none() {
            return Ok(exit);
        }
    }
    if let Some(client) = &client {
        let version = env!("CARGO_PKG_VERSION");
        if client.daemon_version() == version {
            out.debug(
                &["Version"],
                &format!("Daemon and CLI final-pm version: {version}"),
            );
        } else {
            out.warn(
                &["Version"],
                &format!(
                    "Daemon final-pm version ({}) differs from CLI ({version}); \
                     restart the daemon with final-pm --kill to update it",
                    client.daemon_version()
                ),
            );
        }
    }

    // Upload.
    let mut uploaded: Vec<&AppConfig> = Vec::new();
    if let Some(invocation) = invocation
        && invocation.action.uploads()
        && !cli.no_upload
    {
        let (apps, problems) = upload_set(invocation, settings);
        for problem in &problems {
            out.error(&["Config"], problem);
        }
        if !problems.is_empty() {
            return Ok(Exit::Failure);
        }
        if !apps.is_empty() {
            match &mut client {
                Some(client) if !cli.dry => {
                    if !upload(client, &apps, cli, out).await? {
                        return Ok(Exit::Failure);
                    }
                }
                _ => {
                    // One message of many lines: one write, not one per app.
                    let adds: Vec<String> = apps
                        .iter()
                        .map(|app| format!("add({:?})", app.name))
                        .collect();
                    out.info(&["DRY"], &adds.join("\n"));
                }
            }
            uploaded = apps;
        }
    }

    // The daemon's state (after the upload), which every action reads; the
    // options alone (`--launch`, `--kill`, `--wait`) need none of it.
    let mut snapshot = Snapshot::default();
    if let Some(client) = &mut client
        && invocation.is_some()
    {
        out.debug(&["Command"], "info()");
        let info = match early_info {
            Some(info) => info,
            None => client.call(info_request).await?,
        };
        if let Response::Info {
            applications,
            processes,
            ..
        } = info
        {
            snapshot = Snapshot {
                applications,
                processes,
            };
        }
    }
    // Simulate against the configuration that would have been uploaded
    // (not needed for `add`, which plans nothing beyond the upload).
    if cli.dry && invocation.is_some_and(|i| i.action != Action::Add) {
        for app in uploaded {
            let info = AppInfo {
                revision: 0,
                config: app.clone(),
            };
            match snapshot
                .applications
                .iter_mut()
                .find(|a| a.config.name == app.name)
            {
                Some(existing) => *existing = info,
                None => snapshot.applications.push(info),
            }
        }
    }

    let mut calls = Vec::new();
    if let Some(invocation) = invocation {
        let selectors = &invocation.selectors;
        match invocation.action {
            Action::Show => return print_show(cli, &snapshot, invocation, out),
            Action::Inspect => return print_inspect(cli, &snapshot, invocation, out),
            Action::Log => return log(cli, client.as_mut(), &snapshot, invocation, out).await,
            Action::Add => {}
            action => {
                let planned = plan::plan(action, selectors, &snapshot, cli.force);
                for problem in &planned.problems {
                    out.error(&["Selector"], problem);
                }
                for note in &planned.notes {
                    out.info(&["Selector"], note);
                }
                if !planned.problems.is_empty() {
                    exit = Exit::Failure;
                }
                calls = planned.calls;
            }
        }
    }
    if client.is_some() || cli.dry {
        if cli.wait {
            calls.push(Request::Wait { all: false });
        }
        if cli.kill && client.is_some() {
            calls.push(Request::KillDaemon {});
        }
    }
    if calls.is_empty() {
        return Ok(exit);
    }
    out.info(&["Action"], &plan::summary(&calls));
    for call in &calls {
        out.debug(&["Command"], &plan::describe(call));
    }
    let Some(client) = client else {
        // Dry run without a daemon.
        let described: Vec<String> = calls.iter().map(plan::describe).collect();
        out.info(&["DRY"], &described.join("\n"));
        out.info(&["Action"], "Success (simulated)");
        return Ok(exit);
    };
    if cli.dry {
        let described: Vec<String> = calls.iter().map(plan::describe).collect();
        out.info(&["DRY"], &described.join("\n"));
        out.info(&["Action"], "Success (simulated)");
        return Ok(exit);
    }
    let batch_exit = run_batch(client, calls, &target, cli, out).await?;
    if batch_exit != Exit::Success {
        exit = batch_exit;
    }
    Ok(exit)
}

/// The config apps the selectors name (all of them for `all`); `add` of a
/// name the configuration does not have is a problem.
fn upload_set<'a>(
    invocation: &Invocation,
    settings: &'a Settings,
) -> (Vec<&'a AppConfig>, Vec<String>) {
    let mut problems = Vec::new();
    let names: BTreeSet<&str> = invocation
        .selectors
        .iter()
        .filter_map(|s| s.app_part())
        .collect();
    let all = names.contains("all");
    if invocation.action == Action::Add {
        if settings.apps.is_empty() {
            problems.push(
                "No configuration file with applications was found (looked for \
                 process-config.js and process-config.json from the current directory up); \
                 use -c to name one"
                    .to_owned(),
            );
        }
        for name in &names {
            if *name != "all" && !settings.apps.iter().any(|a| a.name == *name) {
                problems.push(format!(
                    "No application {name} in {}",
                    describe_paths(settings)
                ));
            }
        }
    }
    let apps = settings
        .apps
        .iter()
        .filter(|a| all || names.contains(a.name.as_str()))
        .collect();
    (apps, problems)
}

fn describe_paths(settings: &Settings) -> String {
    if settings.config_paths.is_empty() {
        return "the configuration".to_owned();
    }
    settings
        .config_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sends one `add` per app in one batch; reports what was added and
/// changed. `false` when the daemon refused any of them.
async fn upload(
    client: &mut Client,
    apps: &[&AppConfig],
    cli: &Cli,
    out: &Output,
) -> anyhow::Result<bool> {
    let force = cli.force;
    out.debug(
        &["Upload"],
        &format!(
            "Uploading application configuration: {}",
            apps.iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    );
    let requests: Vec<Request> = apps
        .iter()
        .map(|app| Request::Add {
            app: Box::new((*app).clone()),
            force,
        })
        .collect();
    for request in &requests {
        out.debug(&["Command"], &plan::describe(request));
    }
    let results = batch_results(client.call(Request::All { requests }).await?)?;
    if cli.json && invocation_is_add(cli) {
        out.result(&serde_json::to_string(&Response::Batch {
            results: results.clone(),
        })?);
    }
    let mut added = Vec::new();
    let mut updated = Vec::new();
    let mut ok = true;
    for (app, result) in apps.iter().zip(results) {
        match result {
            Response::Added { added: true, .. } => added.push(app.name.clone()),
            Response::Added { changed, .. } if !changed.is_empty() => {
                updated.push(format!("{}{{{}}}", app.name, changed.join(",")));
            }
            Response::Added { .. } => {}
            Response::Error(err) => {
                ok = false;
                let reason = match err.code {
                    ErrorCode::ConfigPathChanged => {
                        "because it was uploaded from another configuration file".to_owned()
                    }
                    ErrorCode::BuiltinApp => {
                        "because builtin apps are replaced only with --force".to_owned()
                    }
                    _ => format!("({})", err.message),
                };
                out.error(
                    &["Upload"],
                    &format!("Daemon rejected configuration for {} {reason}.", app.name),
                );
                out.debug(&["Upload"], &err.message);
            }
            other => anyhow::bail!("the daemon answered add with {}", other.type_name()),
        }
    }
    if !added.is_empty() {
        out.info(&["Config"], &format!("{} added", added.join(" ")));
    }
    if !updated.is_empty() {
        out.info(&["Config"], &format!("{} updated", updated.join(" ")));
    }
    if !ok {
        out.error(&["Upload"], "Try using --force or --no-upload.");
    }
    Ok(ok)
}

/// `add` prints its upload's results with `--json`; the other uploading
/// actions print their own batch.
fn invocation_is_add(cli: &Cli) -> bool {
    cli.words.first().is_some_and(|w| w == "add")
}

fn batch_results(response: Response) -> anyhow::Result<Vec<Response>> {
    match response {
        Response::Batch { results } => Ok(results),
        other => anyhow::bail!("the daemon answered a batch with {}", other.type_name()),
    }
}

/// Sends the action's calls as one batch and reports the outcome.
async fn run_batch(
    mut client: Client,
    calls: Vec<Request>,
    target: &Target,
    cli: &Cli,
    out: &Output,
) -> anyhow::Result<Exit> {
    let daemon_pid = client.daemon_pid();
    let kills_daemon = calls.iter().any(|c| matches!(c, Request::KillDaemon {}));
    let response = {
        let batch = client.call(Request::All {
            requests: calls.clone(),
        });
        tokio::pin!(batch);
        let mut report = tokio::time::interval_at(
            tokio::time::Instant::now() + WAIT_REPORT_INTERVAL,
            WAIT_REPORT_INTERVAL,
        );
        loop {
            tokio::select! {
                response = &mut batch => break response,
                _ = report.tick(), if cli.wait => report_progress(target, out).await,
            }
        }
    };
    let results = batch_results(response?)?;
    if cli.json {
        println!(
            "{}",
            serde_json::to_string(&Response::Batch {
                results: results.clone()
            })?
        );
    }
    let failures: Vec<String> = calls
        .iter()
        .zip(&results)
        .filter_map(|(call, result)| match result {
            Response::Error(err) => Some(format!("{}: {}", plan::describe(call), err.message)),
            _ => None,
        })
        .collect();
    if kills_daemon
        && failures.is_empty()
        && !launch::wait_for_exit(daemon_pid, Duration::from_secs(10)).await
    {
        out.error(
            &["Daemon"],
            &format!(
                "the daemon (pid {daemon_pid}) confirmed the kill but is still running after 10 s"
            ),
        );
        return Ok(Exit::Failure);
    }
    if failures.is_empty() {
        out.info(&["Action"], "Success");
        Ok(Exit::Success)
    } else {
        out.error(&["Action"], &format!("Failed: {}", failures.join("; ")));
        Ok(Exit::Failure)
    }
}

/// `--wait`'s progress line, from a second connection.
async fn report_progress(target: &Target, out: &Output) {
    let Ok(Some(mut client)) = launch::connect(target).await else {
        return;
    };
    if let Ok(Response::Info { processes, .. }) = client.call(Request::Info { usage: false }).await
    {
        let starting = processes
            .iter()
            .filter(|p| p.generation == Generation::New)
            .count();
        let stopping = processes
            .iter()
            .filter(|p| matches!(p.generation, Generation::Old | Generation::Marked))
            .count();
        out.info(
            &["Wait"],
            &format!("Processes: {starting} starting, {stopping} stopping"),
        );
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn print_show(
    cli: &Cli,
    snapshot: &Snapshot,
    invocation: &Invocation,
    out: &Output,
) -> anyhow::Result<Exit> {
    let problems = snapshot.unknown_targets(&invocation.selectors);
    for problem in &problems {
        out.error(&["Selector"], problem);
    }
    if cli.json {
        let filtered = Response::Info {
            applications: snapshot
                .selected_apps(&invocation.selectors, cli.verbose)
                .into_iter()
                .cloned()
                .collect(),
            processes: snapshot
                .selected_processes(
                    &invocation.selectors,
                    crate::selector::Mode::Loose,
                    cli.verbose,
                )
                .into_iter()
                .cloned()
                .collect(),
            daemon_version: String::new(),
            pid: 0,
        };
        out.result(&serde_json::to_string(&filtered)?);
    } else {
        let text = show::render(
            snapshot,
            &invocation.selectors,
            show::Style {
                colour: out.colour(),
                verbose: cli.verbose,
                now_ms: now_ms(),
            },
        );
        out.result(&text);
    }
    Ok(if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

fn print_inspect(
    cli: &Cli,
    snapshot: &Snapshot,
    invocation: &Invocation,
    out: &Output,
) -> anyhow::Result<Exit> {
    let problems = snapshot.unknown_targets(&invocation.selectors);
    for problem in &problems {
        out.error(&["Selector"], problem);
    }
    if cli.json {
        let filtered = Response::Info {
            applications: snapshot
                .selected_apps(&invocation.selectors, cli.verbose)
                .into_iter()
                .cloned()
                .collect(),
            processes: snapshot
                .selected_processes(
                    &invocation.selectors,
                    crate::selector::Mode::Exact,
                    cli.verbose,
                )
                .into_iter()
                .cloned()
                .collect(),
            daemon_version: String::new(),
            pid: 0,
        };
        out.result(&serde_json::to_string(&filtered)?);
    } else {
        out.result(&inspect::render(
            snapshot,
            &invocation.selectors,
            cli.verbose,
            out.colour(),
        ));
    }
    Ok(if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// `log`: the buffered records of the selection, then (with `-f`) new ones
/// until Ctrl-C or the daemon goes away.
async fn log(
    cli: &Cli,
    client: Option<&mut Client>,
    snapshot: &Snapshot,
    invocation: &Invocation,
    out: &Output,
) -> anyhow::Result<Exit> {
    let (query, problems) = logview::Query::new(&invocation.selectors, snapshot, cli.verbose);
    for problem in &problems {
        out.error(&["Selector"], problem);
    }
    let exit = if problems.is_empty() {
        Exit::Success
    } else {
        Exit::Failure
    };
    let Some(client) = client else {
        return Ok(exit);
    };
    let lines = u64::try_from(cli.lines).unwrap_or(0);
    let mut records = Vec::new();
    for request in query.requests(lines, cli.follow) {
        out.debug(&["Command"], &format!("{request:?}"));
        match client.call(request).await.context("reading the logs")? {
            Response::Logs { records: mut got } => records.append(&mut got),
            other => anyhow::bail!("the daemon answered logs with {}", other.type_name()),
        }
    }
    let print = |record: &final_pm_protocol::LogRecord| -> anyhow::Result<()> {
        if cli.json {
            out.result(&serde_json::to_string(record)?);
        } else {
            out.result(&logview::format(record, now_ms(), out.colour()));
        }
        Ok(())
    };
    for record in logview::select(&query, records, lines) {
        print(&record)?;
    }
    if !cli.follow {
        return Ok(exit);
    }
    out.debug(&["Connection"], "Keeping connection open until CTRL-C");
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => break,
            event = client.next_event() => match event? {
                Some(Event::Log { record }) => {
                    if query.matches(&record) {
                        print(&record)?;
                    }
                }
                Some(Event::Missed { count }) => {
                    out.warn(&["Log"], &format!(
                        "{count} records were skipped: this terminal read more slowly than the apps wrote"
                    ));
                }
                None => {
                    out.info(&["Daemon"], "The daemon closed the connection");
                    break;
                }
            }
        }
    }
    Ok(exit)
}
