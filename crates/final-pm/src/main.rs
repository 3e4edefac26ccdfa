//! `final-pm`: the command-line client of the final-pm daemon, and the daemon
//! itself when started through the hidden `__daemon` entry point.

mod cli;
mod exit;
mod launch;
mod output;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use final_pm_daemon::paths;
use final_pm_protocol::Request;

use crate::cli::Cli;
use crate::exit::Exit;
use crate::launch::Target;
use crate::output::Output;

/// The hidden first argument that turns this executable into the daemon.
const DAEMON_ENTRY: &str = "__daemon";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == DAEMON_ENTRY) {
        return final_pm_daemon::entry::main(args.split_off(2));
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let out = Output::new(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            out.error(&["CLI"], &format!("cannot start the async runtime: {err}"));
            return Exit::Failure.into();
        }
    };
    match runtime.block_on(run(cli, &out)) {
        Ok(exit) => exit.into(),
        Err(err) => {
            out.error(&["CLI"], &format!("{err:#}"));
            Exit::Failure.into()
        }
    }
}

fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            let out = Output::new(false);
            let text = err.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            out.error(&["Arguments"], first);
            out.error(
                &["Arguments"],
                "Check \"final-pm --help\" for the correct syntax.",
            );
            Exit::Usage.into()
        }
    }
}

async fn run(cli: Cli, out: &Output) -> anyhow::Result<Exit> {
    if cli.words.is_empty() && !(cli.kill || cli.launch || cli.force || cli.wait) {
        use clap::CommandFactory;
        let _ = Cli::command().print_help();
        return Ok(Exit::Success);
    }
    if let Some(action) = cli.words.first() {
        out.error(
            &["Arguments"],
            &format!("the action \"{action}\" is not available in this version of final-pm"),
        );
        return Ok(Exit::Usage);
    }
    let target = target(&cli)?;
    if cli.kill && !cli.launch && !cli.wait {
        // Nothing to kill: say so, and do not launch a daemon just to kill it.
        let Some(client) = launch::connect(&target).await? else {
            out.info(
                &["Daemon"],
                &format!("No daemon running at {}", target.socket.display()),
            );
            return Ok(Exit::Success);
        };
        return kill_daemon(client, out).await;
    }
    let mut client = launch::connect_or_launch(&target, out).await?;
    out.debug(
        &["Version"],
        &format!(
            "Daemon and CLI final-pm version: {}",
            client.daemon_version()
        ),
    );
    if cli.wait {
        out.info(&["Action"], "Wait for completion...");
        client.call(Request::Wait { all: false }).await?;
        out.info(&["Action"], "Success");
    }
    if cli.kill {
        return kill_daemon(client, out).await;
    }
    Ok(Exit::Success)
}

async fn kill_daemon(mut client: final_pm_protocol::Client, out: &Output) -> anyhow::Result<Exit> {
    let pid = client.daemon_pid();
    out.info(&["Action"], "Kill daemon...");
    out.debug(&["Command"], "kill_daemon()");
    client.call(Request::KillDaemon {}).await?;
    if !launch::wait_for_exit(pid, Duration::from_secs(10)).await {
        out.error(
            &["Daemon"],
            &format!("the daemon (pid {pid}) confirmed the kill but is still running after 10 s"),
        );
        return Ok(Exit::Failure);
    }
    out.info(&["Action"], "Success");
    Ok(Exit::Success)
}

/// Where the daemon lives, from `--set`, `FINAL_PM_CONFIG_*` and defaults.
fn target(cli: &Cli) -> anyhow::Result<Target> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let set = |key: &str| {
        cli.set.iter().rev().find_map(|s| {
            s.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_owned)
        })
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let home = set("home")
        .or_else(|| env("FINAL_PM_CONFIG_HOME"))
        .map(|home| paths::resolve(&cwd, &home))
        .unwrap_or_else(|| paths::default_home(std::env::var("HOME").ok().as_deref()));
    let socket = set("socket")
        .or_else(|| env("FINAL_PM_CONFIG_SOCKET"))
        .unwrap_or_else(|| paths::DEFAULT_SOCKET.into());
    let socket = paths::parse_socket(&socket, &home)?;
    let daemon_log = set("daemon-log")
        .or_else(|| env("FINAL_PM_CONFIG_DAEMON_LOG"))
        .unwrap_or_else(|| paths::DEFAULT_DAEMON_LOG.into());
    let daemon_log = paths::resolve(&home, &daemon_log);
    Ok(Target {
        home,
        socket,
        daemon_log,
    })
}
