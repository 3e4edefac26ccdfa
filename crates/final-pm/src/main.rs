//! `final-pm`: the command-line client of the final-pm daemon, and the daemon
//! itself when started through the hidden `__daemon` entry point.

mod cli;
mod config;
mod exit;
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "the --help* flags are wired to these pages in the main.rs/cli.rs rewrite"
    )
)]
mod help;
mod launch;
mod output;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
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
    let groups = match load_config(&cli) {
        Ok(groups) => groups,
        Err(err) => {
            out.error(&["Configuration"], &err.to_string());
            out.error(
                &["Configuration"],
                "Check \"final-pm --help\" for example configurations.",
            );
            return Ok(Exit::Failure);
        }
    };
    let mut exit = Exit::Success;
    for settings in &groups {
        let group_exit = run_group(&cli, &target(settings), out).await?;
        if group_exit != Exit::Success {
            exit = group_exit;
        }
    }
    Ok(exit)
}

/// Everything the command does against one daemon.
async fn run_group(cli: &Cli, target: &Target, out: &Output) -> anyhow::Result<Exit> {
    if cli.kill && !cli.launch && !cli.wait {
        // Nothing to kill: say so, and do not launch a daemon just to kill it.
        let Some(client) = launch::connect(target).await? else {
            out.info(
                &["Daemon"],
                &format!("No daemon running at {}", target.socket.display()),
            );
            return Ok(Exit::Success);
        };
        return kill_daemon(client, out).await;
    }
    let mut client = launch::connect_or_launch(target, out).await?;
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

/// Loads the configuration (files, `FINAL_PM_CONFIG_*`, `--set`): one group
/// per distinct daemon socket.
fn load_config(cli: &Cli) -> Result<Vec<config::Settings>, config::ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    // Variables that are not UTF-8 cannot be configuration; they are left out
    // of what apps inherit too, rather than mangled.
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    config::load(&config::LoadOptions {
        cwd,
        configs: cli.config.clone(),
        sets: cli.set.clone(),
        env,
    })
}

fn target(settings: &config::Settings) -> Target {
    Target {
        home: settings.home.clone(),
        socket: settings.socket.clone(),
        daemon_log: settings.daemon_log.clone(),
    }
}
