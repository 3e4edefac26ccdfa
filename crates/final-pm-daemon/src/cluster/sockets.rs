//! Creating the sockets the primary shares, as libuv would in a Node
//! primary: close-on-exec, `SO_REUSEADDR` on TCP, and always non-blocking,
//! because `O_NONBLOCK` lives on the open file shared with every worker and
//! libuv does not set it on descriptors it receives: a blocking listener
//! freezes the event loop of a worker that loses an `accept()` race
//! (node-ipc.md §2.4, B1).
//!
//! Stream sockets are listening before any worker gets them, also under the
//! shared policy (a Node primary only binds there): connections that come
//! while no worker accepts wait in the backlog instead of being refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, UnixAddr, bind, listen,
    setsockopt, socket, sockopt,
};

use super::primary::Bound;
use super::protocol::{BindSpec, EOPNOTSUPP, sockname};

/// The backlog when `listen()` gave none (Node's default).
const DEFAULT_BACKLOG: i32 = 511;

/// Binds `spec`. Errors are positive errno values, for the worker.
pub(crate) fn bind_spec(spec: &BindSpec, backlog: u32) -> Result<(OwnedFd, Bound), i32> {
    let backlog = match i32::try_from(backlog) {
        Ok(0) | Err(_) => DEFAULT_BACKLOG,
        Ok(n) => n,
    };
    let result = match spec {
        BindSpec::Tcp {
            ip: Some(ip),
            port,
            v6_only,
        } => tcp(SocketAddr::new(*ip, *port), *v6_only, backlog),
        // "Every interface": dual-stack `::`, or `0.0.0.0` where IPv6 is
        // unavailable; Node falls back on any error, and so do we.
        BindSpec::Tcp {
            ip: None,
            port,
            v6_only,
        } => tcp(
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), *port),
            *v6_only,
            backlog,
        )
        .or_else(|_| {
            tcp(
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), *port),
                false,
                backlog,
            )
        }),
        BindSpec::Udp {
            ip,
            port,
            v6_only,
            reuse_addr,
        } => udp(SocketAddr::new(*ip, *port), *v6_only, *reuse_addr),
        BindSpec::Unix { path } => unix(path, backlog),
        BindSpec::Fd => Err(Errno::from_raw(EOPNOTSUPP)),
    };
    result.map_err(|errno| errno as i32)
}

fn family(addr: &SocketAddr) -> AddressFamily {
    if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

fn flags() -> SockFlag {
    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC
}

fn tcp(addr: SocketAddr, v6_only: bool, backlog: i32) -> Result<(OwnedFd, Bound), Errno> {
    let fd = socket(family(&addr), SockType::Stream, flags(), None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        setsockopt(&fd, sockopt::Ipv6V6Only, &v6_only)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    listen(&fd, Backlog::new(backlog)?)?;
    let (fd, local) = local_address(fd)?;
    Ok((
        fd,
        Bound {
            sockname: Some(sockname(local)),
        },
    ))
}

fn udp(addr: SocketAddr, v6_only: bool, reuse_addr: bool) -> Result<(OwnedFd, Bound), Errno> {
    let fd = socket(family(&addr), SockType::Datagram, flags(), None)?;
    if reuse_addr {
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    if addr.is_ipv6() && v6_only {
        setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok((fd, Bound { sockname: None }))
}

fn unix(path: &std::path::Path, backlog: i32) -> Result<(OwnedFd, Bound), Errno> {
    let fd = socket(AddressFamily::Unix, SockType::Stream, flags(), None)?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, Backlog::new(backlog)?)?;
    // A pipe server has no `getsockname` in Node; the worker makes do.
    Ok((fd, Bound { sockname: None }))
}

/// The address the kernel gave (the real port for port 0).
fn local_address(fd: OwnedFd) -> Result<(OwnedFd, SocketAddr), Errno> {
    let listener = std::net::TcpListener::from(fd);
    let local = listener
        .local_addr()
        .map_err(|err| Errno::from_raw(err.raw_os_error().unwrap_or(0)))?;
    Ok((OwnedFd::from(listener), local))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonblocking(fd: &OwnedFd) -> bool {
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL).unwrap();
        nix::fcntl::OFlag::from_bits_truncate(flags).contains(nix::fcntl::OFlag::O_NONBLOCK)
    }

    #[test]
    fn tcp_sockets_listen_non_blocking_and_report_the_real_port() {
        let spec = BindSpec::Tcp {
            ip: Some("127.0.0.1".parse().unwrap()),
            port: 0,
            v6_only: false,
        };
        let (fd, bound) = bind_spec(&spec, 0).unwrap();
        assert!(nonblocking(&fd));
        let port = bound.sockname.as_ref().unwrap()["port"].as_u64().unwrap();
        assert_ne!(port, 0);
        assert_eq!(bound.sockname.unwrap()["family"], "IPv4");
        // It listens already: a connection is queued, not refused.
        std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
        // The port is taken now: a second bind fails with EADDRINUSE.
        let again = BindSpec::Tcp {
            ip: Some("127.0.0.1".parse().unwrap()),
            port: port as u16,
            v6_only: false,
        };
        assert_eq!(bind_spec(&again, 0).unwrap_err(), Errno::EADDRINUSE as i32);
    }

    #[test]
    fn every_interface_and_udp_and_unix() {
        let any = BindSpec::Tcp {
            ip: None,
            port: 0,
            v6_only: false,
        };
        let (fd, _) = bind_spec(&any, 0).unwrap();
        assert!(nonblocking(&fd));
        let udp = BindSpec::Udp {
            ip: "127.0.0.1".parse().unwrap(),
            port: 0,
            v6_only: false,
            reuse_addr: true,
        };
        let (fd, bound) = bind_spec(&udp, 0).unwrap();
        assert!(nonblocking(&fd) && bound.sockname.is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let (fd, _) = bind_spec(&BindSpec::Unix { path: path.clone() }, 0).unwrap();
        assert!(nonblocking(&fd));
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        assert_eq!(
            bind_spec(&BindSpec::Unix { path }, 0).unwrap_err(),
            Errno::EADDRINUSE as i32
        );
        assert_eq!(bind_spec(&BindSpec::Fd, 0).unwrap_err(), EOPNOTSUPP);
    }
}
