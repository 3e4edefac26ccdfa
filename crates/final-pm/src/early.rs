//! The query a read-only invocation sends before it has parsed its
//! arguments or loaded its configuration, so that the daemon works on the
//! answer while the CLI starts (see [`EarlyCall`]).
//!
//! It is a guess, checked later: [`run::group`](crate::run::group) uses the
//! answer only when the configuration names the same socket and the
//! invocation needs the same request; otherwise the connection is closed
//! unread and the invocation goes the usual way. The guess is narrow so it
//! is rarely wrong: the first word is `show`, `inspect` or `log`, every other
//! argument is a selector or an option that changes neither the socket nor
//! the request, and no variable moves the socket away from the default.

use std::ffi::OsString;
use std::path::Path;

use final_pm_daemon::paths;
use final_pm_protocol::Request;
use final_pm_protocol::client::EarlyCall;

use crate::launch::client_name;

/// Options that leave the socket and the request as they are.
const NEUTRAL_OPTIONS: [&str; 3] = ["--json", "-v", "--verbose"];

/// Sends the guessed query when `args` (the whole command line) and `env`
/// make a guess safe and a daemon answers at the default socket.
pub(crate) fn send(args: &[OsString], env: impl Fn(&str) -> Option<OsString>) -> Option<EarlyCall> {
    let (socket, request) = guess(args, env)?;
    EarlyCall::send(&socket, &client_name(), request)
}

/// The socket and request of an early query, if the guess is safe.
fn guess(
    args: &[OsString],
    env: impl Fn(&str) -> Option<OsString>,
) -> Option<(std::path::PathBuf, Request)> {
    let action = args.get(1)?.to_str()?;
    let request = match action {
        "show" => Request::Info { usage: true },
        "inspect" | "log" => Request::Info { usage: false },
        _ => return None,
    };
    let neutral = |arg: &OsString| {
        arg.to_str()
            .is_some_and(|arg| !arg.starts_with('-') || NEUTRAL_OPTIONS.contains(&arg))
    };
    if !args[2..].iter().all(neutral) {
        return None;
    }
    if env("FINAL_PM_CONFIG_SOCKET").is_some() {
        return None;
    }
    // As the configuration decides it when no file sets `home`: the
    // variable (an absolute path; other forms are left to the loader), or
    // `.final-pm` in `$HOME`.
    let home = match env("FINAL_PM_CONFIG_HOME") {
        Some(home) => paths::normalize(Path::new(absolute(&home)?)),
        None => paths::default_home(Some(absolute(&env("HOME")?)?)),
    };
    Some((home.join(paths::DEFAULT_SOCKET), request))
}

/// `value` if it is an absolute path in UTF-8.
fn absolute(value: &OsString) -> Option<&str> {
    value.to_str().filter(|path| path.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    fn home_only(name: &str) -> Option<OsString> {
        (name == "HOME").then(|| OsString::from("/home/u"))
    }

    #[test]
    fn show_asks_for_usage_at_the_default_socket() {
        let (socket, request) = guess(&args("final-pm show web --json"), home_only).unwrap();
        assert_eq!(socket, Path::new("/home/u/.final-pm/daemon.sock"));
        assert_eq!(request, Request::Info { usage: true });
        let (_, request) = guess(&args("final-pm inspect -v web/0"), home_only).unwrap();
        assert_eq!(request, Request::Info { usage: false });
    }

    #[test]
    fn no_guess_where_the_socket_or_the_request_may_differ() {
        for line in [
            "final-pm",
            "final-pm start web",
            "final-pm -v show",
            "final-pm show --config other.json",
            "final-pm show --set socket=x.sock",
            "final-pm log -f",
            "final-pm show --launch",
        ] {
            assert!(guess(&args(line), home_only).is_none(), "{line}");
        }
        let moved = |name: &str| match name {
            "HOME" => Some(OsString::from("/home/u")),
            "FINAL_PM_CONFIG_SOCKET" => Some(OsString::from("/tmp/x.sock")),
            _ => None,
        };
        assert!(guess(&args("final-pm show"), moved).is_none());
        let relative = |name: &str| (name == "HOME").then(|| OsString::from("home"));
        assert!(guess(&args("final-pm show"), relative).is_none());
        let quoted = |name: &str| match name {
            "HOME" => Some(OsString::from("/home/u")),
            "FINAL_PM_CONFIG_HOME" => Some(OsString::from("\"/srv/pm\"")),
            _ => None,
        };
        assert!(guess(&args("final-pm show"), quoted).is_none());
    }

    #[test]
    fn the_home_variable_moves_the_socket() {
        let env = |name: &str| match name {
            "HOME" => Some(OsString::from("/home/u")),
            "FINAL_PM_CONFIG_HOME" => Some(OsString::from("/srv/./pm")),
            _ => None,
        };
        let (socket, _) = guess(&args("final-pm show"), env).unwrap();
        assert_eq!(socket, Path::new("/srv/pm/daemon.sock"));
    }
}
