//! `final-pm`: the command-line client of the final-pm daemon, the daemon
//! itself when started through the hidden `__daemon` entry point, and the
//! builtin file-logger through `__file-logger`.
//!
//! It has its own C entry point (`#![no_main]`, see [`main`]).

// The unit tests get the test harness's own `main`, so the start-up code
// is unused there.
#![cfg_attr(not(test), no_main)]
#![cfg_attr(test, allow(dead_code))]

mod action;
mod cli;
mod early;
mod exit;
mod help;
mod inspect;
mod launch;
mod logview;
mod output;
mod plan;
mod run;
mod selector;
mod show;

use std::ffi::OsString;

use clap::Parser;
// At the crate root, so that `crate::config` works as it did when the
// loader was a module of the binary.
use final_pm::config;

use crate::cli::Cli;
use crate::exit::Exit;
use crate::output::Output;

/// The hidden first argument that turns this executable into the daemon.
const DAEMON_ENTRY: &str = "__daemon";

/// The entry point the C runtime calls, in place of the wrapper Rust puts
/// around `fn main`.
///
/// That wrapper's start-up work (reading `/proc/self/maps` to find the main
/// thread's stack for its overflow message, an alternate signal stack, a
/// `poll` of fds 0–2) took about a tenth of a whole `final-pm show`, which
/// people run in loops and scripts. What final-pm relies on from it is done
/// here: fds 0–2 are opened on `/dev/null` if they are closed (or the first
/// socket would become stdout), SIGPIPE is ignored (a write to a closed
/// socket or pipe returns an error instead of killing the daemon, a logger
/// or the CLI), a panic ends the process with status 101, and stdout is
/// flushed at the end. Lost: the "has overflowed its stack" message; an
/// overflow still stops the process, by SIGSEGV. Arguments come through
/// `std::env::args_os`, which the standard library fills before any entry
/// point runs on Linux with glibc.
#[allow(
    unsafe_code,
    reason = "an exported C `main` is an unsafe attribute; it replaces Rust's start-up"
)]
#[cfg(not(test))]
#[unsafe(no_mangle)]
extern "C" fn main(
    _argc: std::ffi::c_int,
    _argv: *const *const std::ffi::c_char,
) -> std::ffi::c_int {
    use std::io::Write;
    open_standard_fds();
    ignore_sigpipe();
    let status = std::panic::catch_unwind(entry).unwrap_or(101);
    let _ = std::io::stdout().flush();
    status.into()
}

/// Opens `/dev/null` on each of fds 0–2 that is closed, lowest first, so
/// each lands on its own number.
#[allow(unsafe_code, reason = "probing whether a raw fd number is open")]
fn open_standard_fds() {
    use nix::fcntl::{FcntlArg, OFlag, fcntl, open};
    use nix::sys::stat::Mode;
    use std::os::fd::{BorrowedFd, IntoRawFd};
    for fd in 0..3 {
        // SAFETY: the borrowed fd is only used for F_GETFD, which fails
        // harmlessly (EBADF) when the number is not open, and is not kept.
        let open_already = fcntl(unsafe { BorrowedFd::borrow_raw(fd) }, FcntlArg::F_GETFD).is_ok();
        if !open_already {
            // Kept open for the life of the process, as stdio.
            let _ = open("/dev/null", OFlag::O_RDWR, Mode::empty()).map(IntoRawFd::into_raw_fd);
        }
    }
}

#[allow(
    unsafe_code,
    reason = "setting a signal disposition is unsafe in nix; SIG_IGN runs no code"
)]
fn ignore_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN installs no handler, so nothing can run in signal
    // context; this happens before any thread is started.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// The process: the daemon, the file-logger or the CLI; returns the exit
/// status.
fn entry() -> u8 {
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
    // Before anything else, so the daemon answers while the CLI starts.
    let mut early = early::send(&args, |name| std::env::var_os(name));
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => return clap_error(err),
    };
    if let Some(page) = cli.help_page() {
        Output::new(false, false).result(&page());
        return 0;
    }
    let out = Output::new(cli.verbose, cli.json);
    let invocation = match action::parse(&cli.words) {
        Ok(invocation) => invocation,
        Err(err) => return usage_error(&out, &err.to_string()),
    };
    if invocation.is_none() && !(cli.kill || cli.launch || cli.force || cli.wait) {
        out.result(&help::short());
        return 0;
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
    let result = runtime.block_on(run(&cli, invocation.as_ref(), &mut early, &out));
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

fn clap_error(err: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayVersion => {
            let _ = err.print();
            0
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

fn usage_error(out: &Output, message: &str) -> u8 {
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
    early: &mut Option<final_pm_protocol::client::EarlyCall>,
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
        let group_exit = run::group(cli, invocation, settings, early, out).await?;
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
