//! `final-pm`: the command-line client of the final-pm daemon, the daemon
//! itself when started through the hidden `__daemon` entry point, and the
//! builtin file-logger through `__file-logger`.

mod action;
mod cli;
mod exit;
mod help;
mod inspect;
mod launch;
mod logview;
mod output;
mod plan;
mod procstat;
mod run;
mod selector;
mod show;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;
// At the crate root, so that `crate::config` works as it did when the
// loader was a module of the binary.
use final_pm::config;

use crate::cli::Cli;
use crate::exit::Exit;
use crate::output::Output;

/// The hidden first argument that turns this executable into the daemon.
const DAEMON_ENTRY: &str = "__daemon";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == DAEMON_ENTRY) {
        return final_pm_daemon::entry::main(args.split_off(2));
    }
    if args
        .get(1)
        .is_some_and(|a| a == final_pm_daemon::file_logger::ENTRY)
    {
        return final_pm_daemon::file_logger::main(args.split_off(2));
    }
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return clap_error(err),
    };
    if let Some(page) = cli.help_page() {
        Output::new(false, false).result(&page());
        return ExitCode::SUCCESS;
    }
    let out = Output::new(cli.verbose, cli.json);
    let invocation = match action::parse(&cli.words) {
        Ok(invocation) => invocation,
        Err(err) => return usage_error(&out, &err.to_string()),
    };
    if invocation.is_none() && !(cli.kill || cli.launch || cli.force || cli.wait) {
        out.result(&help::short());
        return ExitCode::SUCCESS;
    }
    if cli.lines < 0 {
        return usage_error(
            &out,
            &format!(
                "-n/--lines is how many past lines to print; it must be 0 or more, not {}",
                cli.lines
            ),
        );
    }
    if cli.follow
        && invocation
            .as_ref()
            .is_none_or(|i| i.action != action::Action::Log)
    {
        return usage_error(&out, "-f/--follow only applies to the log action");
    }
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
    let result = runtime.block_on(run(&cli, invocation.as_ref(), &out));
    // The process ends right after this, and the kernel closes what the
    // runtime holds; shutting it down (drivers, blocking pool, handles) was
    // about 1% of a `show`. Nothing is lost: `run` awaits every blocking
    // task it starts, and its connections are closed when it returns.
    std::mem::forget(runtime);
    match result {
        Ok(exit) => exit.into(),
        Err(err) => {
            out.error(&["CLI"], &format!("{err:#}"));
            Exit::Failure.into()
        }
    }
}

fn clap_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = err.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            usage_error(&Output::new(false, false), first)
        }
    }
}

fn usage_error(out: &Output, message: &str) -> ExitCode {
    out.error(&["Arguments"], message);
    out.error(
        &["Arguments"],
        "Check \"final-pm --help\" for the correct syntax.",
    );
    Exit::Usage.into()
}

async fn run(
    cli: &Cli,
    invocation: Option<&action::Invocation>,
    out: &Output,
) -> anyhow::Result<Exit> {
    if cli.dry {
        out.info(
            &["DRY"],
            "Commands with side effects will only be simulated.",
        );
    }
    let groups = match load_config(cli) {
        Ok(groups) => groups,
        Err(err) => {
            out.error(&["Configuration"], &err.to_string());
            out.error(
                &["Configuration"],
                "Check \"final-pm --help-configuration\" for the keys and an example.",
            );
            return Ok(Exit::Failure);
        }
    };
    let mut exit = Exit::Success;
    for settings in &groups {
        let group_exit = run::group(cli, invocation, settings, out).await?;
        if group_exit != Exit::Success {
            exit = group_exit;
        }
    }
    // The process ends right after this; freeing every application's
    // configuration (each with a copy of the environment) would cost more
    // than loading it did.
    std::mem::forget(groups);
    Ok(exit)
}

/// Loads the configuration (files, `FINAL_PM_CONFIG_*`, `--set`): one group
/// per distinct daemon socket.
fn load_config(cli: &Cli) -> Result<Vec<config::Settings>, config::ConfigError> {
    config::load(&config::LoadOptions::from_process(
        cli.config.clone(),
        cli.set.clone(),
    ))
}
