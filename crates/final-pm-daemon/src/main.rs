//! `final-pm-daemon`: runs the daemon in the foreground (see `entry`).

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os().skip(1).peekable();
    // The daemon runs its builtin logger from its own executable.
    if args
        .peek()
        .is_some_and(|a| a == final_pm_daemon::file_logger::ENTRY)
    {
        return final_pm_daemon::file_logger::main(args.skip(1)).into();
    }
    final_pm_daemon::entry::main(args).into()
}
