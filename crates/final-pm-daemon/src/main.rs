//! `final-pm-daemon`: runs the daemon in the foreground (see `entry`).

fn main() -> std::process::ExitCode {
    final_pm_daemon::entry::main(std::env::args_os().skip(1))
}
