//! Where the daemon keeps its files: the home directory, the control socket,
//! the daemon log and the lock files, and how their configured forms are read.
//!
//! FinalPM wrote the socket as a URL (`ws+unix://./daemon.sock`) and parsed it
//! with a legacy URL parser that lower-cased and mangled paths. final-pm takes a
//! plain path, `unix:PATH` or `ws+unix://PATH`, resolves relative paths against
//! `home`, and refuses TCP: the control socket can start any program, so it
//! stays local.

use std::path::{Path, PathBuf};

/// The socket's file name inside `home` unless configured otherwise.
pub const DEFAULT_SOCKET: &str = "daemon.sock";
/// The daemon log's file name inside `home` unless configured otherwise.
pub const DEFAULT_DAEMON_LOG: &str = "daemon.out";

/// A configured socket value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    /// The value is empty.
    #[error("the socket must not be empty")]
    Empty,
    /// `ws://host:port`: TCP control sockets are refused.
    #[error(
        "\"{0}\" is a TCP address; final-pm's control socket is a Unix socket only (it can start any \
         program, so it is never exposed on a network): use a path, \"unix:PATH\" or \"ws+unix://PATH\""
    )]
    TcpRefused(String),
    /// Some other `scheme://`.
    #[error("unknown socket protocol in \"{0}\": use a path, \"unix:PATH\" or \"ws+unix://PATH\"")]
    UnknownProtocol(String),
    /// A percent escape that is not two hex digits.
    #[error("invalid percent escape in socket \"{0}\"")]
    BadEscape(String),
}

/// The default home: `$HOME/.final-pm`, or the password database's home
/// directory when `HOME` is unset or empty.
pub fn default_home(env_home: Option<&str>) -> PathBuf {
    let base = match env_home {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => nix::unistd::User::from_uid(nix::unistd::getuid())
            .ok()
            .flatten()
            .map(|user| user.dir)
            .unwrap_or_else(|| PathBuf::from("/")),
    };
    base.join(".final-pm")
}

/// Resolves a configured socket value to an absolute path; relative paths are
/// relative to `home`.
pub fn parse_socket(value: &str, home: &Path) -> Result<PathBuf, SocketError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(SocketError::Empty);
    }
    let raw = if let Some(rest) = value.strip_prefix("ws+unix://") {
        percent_decode(rest).ok_or_else(|| SocketError::BadEscape(value.to_owned()))?
    } else if let Some(rest) = value.strip_prefix("unix:") {
        rest.strip_prefix("//").unwrap_or(rest).to_owned()
    } else if value.starts_with("ws://")
        || value.starts_with("wss://")
        || value.starts_with("tcp://")
    {
        return Err(SocketError::TcpRefused(value.to_owned()));
    } else if value.contains("://") {
        return Err(SocketError::UnknownProtocol(value.to_owned()));
    } else {
        value.to_owned()
    };
    if raw.is_empty() {
        return Err(SocketError::Empty);
    }
    Ok(normalize(&home.join(raw)))
}

/// Resolves a path relative to `base` and removes `.` and `..` components
/// lexically (the file may not exist yet, so no `canonicalize`).
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    normalize(&base.join(path))
}

/// Lexical normalisation: drops `.`, applies `..`, keeps the path absolute.
pub fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    // Never longer than the input: one allocation.
    let mut out = PathBuf::with_capacity(path.as_os_str().len());
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The lock a running daemon holds for its whole life (see `lock`).
pub fn daemon_lock_path(socket: &Path) -> PathBuf {
    sibling(socket, ".lock")
}

/// The lock a CLI holds while it launches a daemon.
pub fn launch_lock_path(socket: &Path) -> PathBuf {
    sibling(socket, ".launch-lock")
}

fn sibling(socket: &Path, suffix: &str) -> PathBuf {
    let mut name = socket.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home() -> PathBuf {
        PathBuf::from("/home/u/.final-pm")
    }

    #[test]
    fn finalpm_default_socket_is_in_home() {
        assert_eq!(
            parse_socket("ws+unix://./daemon.sock", &home()).unwrap(),
            home().join("daemon.sock")
        );
    }

    #[test]
    fn absolute_ws_unix_path() {
        assert_eq!(
            parse_socket("ws+unix:///run/x.sock", &home()).unwrap(),
            PathBuf::from("/run/x.sock")
        );
    }

    #[test]
    fn relative_forms_resolve_against_home_without_mangling() {
        assert_eq!(
            parse_socket("ws+unix://A/b.sock", &home()).unwrap(),
            home().join("A/b.sock")
        );
        assert_eq!(
            parse_socket("ws+unix://x.sock", &home()).unwrap(),
            home().join("x.sock")
        );
        assert_eq!(
            parse_socket("unix:x.sock", &home()).unwrap(),
            home().join("x.sock")
        );
        assert_eq!(
            parse_socket("../y.sock", &home()).unwrap(),
            PathBuf::from("/home/u/y.sock")
        );
    }

    #[test]
    fn plain_and_unix_absolute_paths() {
        assert_eq!(
            parse_socket("/tmp/a.sock", &home()).unwrap(),
            PathBuf::from("/tmp/a.sock")
        );
        assert_eq!(
            parse_socket("unix:/tmp/a.sock", &home()).unwrap(),
            PathBuf::from("/tmp/a.sock")
        );
        assert_eq!(
            parse_socket("unix:///tmp/a.sock", &home()).unwrap(),
            PathBuf::from("/tmp/a.sock")
        );
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(
            parse_socket("ws+unix:///tmp/a%20b.sock", &home()).unwrap(),
            PathBuf::from("/tmp/a b.sock")
        );
        assert!(matches!(
            parse_socket("ws+unix:///tmp/%zz", &home()),
            Err(SocketError::BadEscape(_))
        ));
    }

    #[test]
    fn tcp_is_refused_with_a_reason() {
        let err = parse_socket("ws://localhost:34253", &home()).unwrap_err();
        assert!(matches!(err, SocketError::TcpRefused(_)));
        assert!(err.to_string().contains("Unix socket only"), "{err}");
        assert!(matches!(
            parse_socket("http://x", &home()),
            Err(SocketError::UnknownProtocol(_))
        ));
        assert_eq!(parse_socket("  ", &home()), Err(SocketError::Empty));
    }

    #[test]
    fn lock_paths_sit_beside_the_socket() {
        let socket = PathBuf::from("/h/daemon.sock");
        assert_eq!(
            daemon_lock_path(&socket),
            PathBuf::from("/h/daemon.sock.lock")
        );
        assert_eq!(
            launch_lock_path(&socket),
            PathBuf::from("/h/daemon.sock.launch-lock")
        );
    }

    #[test]
    fn default_home_follows_the_home_variable() {
        assert_eq!(
            default_home(Some("/home/x")),
            PathBuf::from("/home/x/.final-pm")
        );
        assert!(default_home(None).ends_with(".final-pm"));
    }
}
