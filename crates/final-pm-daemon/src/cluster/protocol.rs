//! The wire side of Node's internal cluster protocol (node-ipc.md §2): what
//! a worker's `NODE_CLUSTER` messages mean, and the exact shape of the
//! primary's answers. Pure: values in, values out, no sockets.
//!
//! Every message from an app is untrusted. Parsing never panics; a message
//! that cannot be understood becomes [`WorkerMessage::Malformed`], which the
//! primary logs and, when the worker waits for an answer, answers with an
//! error so the worker's `listen()` fails instead of hanging.

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::{Value, json};

/// `EINVAL`: what a query that makes no sense is answered with.
pub(crate) const EINVAL: i32 = 22;
/// `EOPNOTSUPP`: what a query for something the primary cannot do (a listen
/// on an inherited fd) is answered with.
pub(crate) const EOPNOTSUPP: i32 = 95;

/// libuv's `UV_TCP_IPV6ONLY` and `UV_UDP_IPV6ONLY` (both 1).
const IPV6_ONLY: u64 = 1;
/// libuv's `UV_UDP_REUSEADDR`.
const UDP_REUSEADDR: u64 = 4;

/// One `NODE_CLUSTER` message from a worker, by what the primary must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WorkerMessage {
    /// The worker booted (sent before any user code runs).
    Online,
    /// `server.listen()` or `socket.bind()`: the worker waits for the answer.
    QueryServer(Query),
    /// The worker's server is listening: the cluster `listening` event.
    Listening,
    /// The worker closed its server with this key.
    Close {
        /// The handle key the primary gave it.
        key: String,
    },
    /// The worker is disconnecting by itself; it waits for an acknowledgement
    /// of `seq` before it closes the channel (node-ipc.md §2.6, A1). Very old
    /// Node versions called this `suicide`.
    ExitedAfterDisconnect {
        /// The sequence number to acknowledge.
        seq: u64,
    },
    /// The answer to a `newconn` the primary sent (round-robin).
    Accepted {
        /// The `seq` of the `newconn`.
        ack: u64,
        /// Whether the worker took the connection (`false`: it is closing).
        accepted: bool,
    },
    /// Anything else with a known shape but no meaning for us.
    Ignored,
    /// Not understandable.
    Malformed {
        /// The sequence number of a `queryServer`: the worker waits for an
        /// answer to it.
        seq: Option<u64>,
        /// What was wrong, for the daemon log.
        why: String,
    },
}

/// What a `queryServer` asks for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    /// The worker's sequence number: the answer carries it as `ack`.
    pub(crate) seq: u64,
    /// The handle key, built exactly as a Node primary builds it.
    pub(crate) key: String,
    /// What to bind.
    pub(crate) bind: BindSpec,
    /// `listen()`'s backlog; 0 when not given.
    pub(crate) backlog: u32,
    /// Server data (TLS ticket keys); the first worker's is kept per handle.
    pub(crate) data: Value,
}

/// A socket to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindSpec {
    /// A TCP listener. `ip: None` is "every interface": `::` dual-stack,
    /// falling back to `0.0.0.0`, as Node does.
    Tcp {
        ip: Option<IpAddr>,
        port: u16,
        v6_only: bool,
    },
    /// A UDP socket; always shared, never round-robin (Node does the same).
    Udp {
        ip: IpAddr,
        port: u16,
        v6_only: bool,
        reuse_addr: bool,
    },
    /// A Unix stream listener at an absolute path (the worker resolves it).
    Unix { path: PathBuf },
    /// A listen on a descriptor the worker inherited: meaningless in our
    /// process, refused with `EOPNOTSUPP`.
    Fd,
}

impl BindSpec {
    /// Whether connections to this socket can be handed out round-robin.
    pub(crate) fn is_stream(&self) -> bool {
        matches!(self, Self::Tcp { .. } | Self::Unix { .. })
    }

    /// `type` of the `NODE_HANDLE` that carries this socket.
    pub(crate) fn wire_type(&self) -> &'static str {
        match self {
            Self::Udp { .. } => "dgram.Native",
            Self::Tcp { .. } | Self::Unix { .. } | Self::Fd => "net.Native",
        }
    }

    /// How the address reads in messages (`[::]:3000`, `/run/app.sock`).
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Tcp { ip: None, port, .. } => format!("port {port}"),
            Self::Tcp {
                ip: Some(ip), port, ..
            } => format!("tcp {}", std::net::SocketAddr::new(*ip, *port)),
            Self::Udp { ip, port, .. } => format!("udp {}", std::net::SocketAddr::new(*ip, *port)),
            Self::Unix { path } => path.display().to_string(),
            Self::Fd => "an inherited descriptor".to_owned(),
        }
    }
}

/// Reads one `NODE_CLUSTER` message (the caller checked `cmd`).
pub(crate) fn parse(message: &Value) -> WorkerMessage {
    let seq = message.get("seq").and_then(Value::as_u64);
    // A reply to something we sent: it carries `ack` and no `act`.
    if message.get("act").is_none() {
        return match (message.get("ack").and_then(Value::as_u64), seq) {
            (Some(ack), _) => WorkerMessage::Accepted {
                ack,
                accepted: message.get("accepted").and_then(Value::as_bool) == Some(true),
            },
            _ => malformed(None, "a cluster message with neither act nor ack"),
        };
    }
    match message.get("act").and_then(Value::as_str) {
        Some("online") => WorkerMessage::Online,
        Some("listening") => WorkerMessage::Listening,
        Some("queryServer") => match seq {
            Some(seq) => query(message, seq)
                .map_or_else(|why| malformed(Some(seq), why), WorkerMessage::QueryServer),
            None => malformed(None, "queryServer without seq"),
        },
        Some("close") => match message.get("key").and_then(Value::as_str) {
            Some(key) => WorkerMessage::Close {
                key: key.to_owned(),
            },
            None => malformed(None, "close without a key"),
        },
        Some("exitedAfterDisconnect" | "suicide") => match seq {
            Some(seq) => WorkerMessage::ExitedAfterDisconnect { seq },
            None => malformed(None, "exitedAfterDisconnect without seq"),
        },
        Some(_) => WorkerMessage::Ignored,
        None => malformed(None, "act is not a string"),
    }
}

fn malformed(seq: Option<u64>, why: impl Into<String>) -> WorkerMessage {
    WorkerMessage::Malformed {
        seq,
        why: why.into(),
    }
}

fn query(message: &Value, seq: u64) -> Result<Query, String> {
    let address = message.get("address");
    let port = message.get("port").and_then(Value::as_i64).unwrap_or(-1);
    let address_type = message.get("addressType");
    let flags = message.get("flags").and_then(Value::as_u64).unwrap_or(0);
    let fd = message.get("fd").and_then(Value::as_i64).unwrap_or(-1);
    let port_u16 = || u16::try_from(port).map_err(|_| format!("port {port} out of range"));
    let ip = || -> Result<Option<IpAddr>, String> {
        match address {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| format!("address {text:?} is not an IP address")),
            Some(other) => Err(format!("address {other} is not a string")),
        }
    };
    let bind = if fd >= 0 {
        BindSpec::Fd
    } else {
        match address_type {
            Some(Value::Number(n)) if n.as_i64() == Some(4) || n.as_i64() == Some(6) => {
                BindSpec::Tcp {
                    ip: ip()?,
                    port: port_u16()?,
                    v6_only: flags & IPV6_ONLY != 0,
                }
            }
            Some(Value::Number(n)) if n.as_i64() == Some(-1) => match address {
                Some(Value::String(path)) if path.starts_with('/') => BindSpec::Unix {
                    path: PathBuf::from(path),
                },
                _ => return Err("a Unix socket query without an absolute path".to_owned()),
            },
            Some(Value::String(udp)) if udp == "udp4" || udp == "udp6" => {
                let ip = match ip()? {
                    Some(ip) => ip,
                    None if udp == "udp6" => IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
                    None => IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
                };
                BindSpec::Udp {
                    ip,
                    port: port_u16()?,
                    v6_only: flags & IPV6_ONLY != 0,
                    reuse_addr: flags & UDP_REUSEADDR != 0,
                }
            }
            other => return Err(format!("unknown addressType {other:?}")),
        }
    };
    Ok(Query {
        seq,
        key: handle_key(message),
        bind,
        backlog: message
            .get("backlog")
            .and_then(Value::as_u64)
            .and_then(|b| u32::try_from(b).ok())
            .unwrap_or(0),
        data: message.get("data").cloned().unwrap_or(Value::Null),
    })
}

/// `${address}:${port}:${addressType}:${fd}:${index}` with JavaScript's
/// string conversion, as Node's primary builds it: the worker asserts keys
/// are unique and echoes them in `close`, so the scheme must match exactly.
pub(crate) fn handle_key(message: &Value) -> String {
    ["address", "port", "addressType", "fd", "index"]
        .map(|field| js_string(message.get(field)))
        .join(":")
}

/// JavaScript's `String(value)` for the values a query holds. A field that
/// JSON left out was `undefined`.
fn js_string(value: Option<&Value>) -> String {
    match value {
        None => "undefined".to_owned(),
        Some(Value::Null) => "null".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{f:.0}"),
            _ => n.to_string(),
        },
        Some(Value::Array(_)) | Some(Value::Object(_)) => "[object Object]".to_owned(),
    }
}

/// A cluster message from the primary: `fields` plus `cmd` and our `seq`.
pub(crate) fn cluster_message(seq: u64, fields: Value) -> Value {
    let mut message = json!({"cmd": "NODE_CLUSTER"});
    if let (Value::Object(target), Value::Object(fields)) = (&mut message, fields) {
        target.extend(fields);
        target.insert("seq".to_owned(), seq.into());
    }
    message
}

/// The envelope that carries a descriptor: Node's `NODE_HANDLE` framing,
/// written in the same `sendmsg` as the descriptor.
pub(crate) fn handle_envelope(wire_type: &str, message: Value) -> Value {
    json!({"cmd": "NODE_HANDLE", "type": wire_type, "msg": message})
}

/// The answer to a `queryServer` that failed: `errno` is negative, as libuv
/// reports errors, and no handle comes with it.
pub(crate) fn query_failed(seq: u64, query_seq: u64, key: &str, errno: i32) -> Value {
    cluster_message(
        seq,
        json!({"errno": -errno.abs(), "key": key, "ack": query_seq, "data": null}),
    )
}

/// The answer to a `queryServer` under the shared policy; it rides in a
/// [`handle_envelope`] with the socket.
pub(crate) fn query_shared(seq: u64, query_seq: u64, key: &str, data: &Value) -> Value {
    cluster_message(
        seq,
        json!({"errno": 0, "key": key, "ack": query_seq, "data": data}),
    )
}

/// The answer to a `queryServer` under round-robin: no handle; the worker
/// makes a stand-in whose `address()` is `sockname`.
pub(crate) fn query_round_robin(
    seq: u64,
    query_seq: u64,
    key: &str,
    data: &Value,
    sockname: Option<&Value>,
) -> Value {
    let mut fields = json!({"errno": null, "key": key, "ack": query_seq, "data": data});
    if let (Some(sockname), Value::Object(map)) = (sockname, &mut fields) {
        map.insert("sockname".to_owned(), sockname.clone());
    }
    cluster_message(seq, fields)
}

/// A connection for a round-robin worker; rides in a [`handle_envelope`].
pub(crate) fn new_connection(seq: u64, key: &str) -> Value {
    cluster_message(seq, json!({"act": "newconn", "key": key}))
}

/// The acknowledgement a disconnecting worker waits for.
pub(crate) fn acknowledge(seq: u64, ack: u64) -> Value {
    cluster_message(seq, json!({"ack": ack}))
}

/// The primary's graceful disconnect (`worker.disconnect()` in Node).
pub(crate) fn disconnect(seq: u64) -> Value {
    cluster_message(seq, json!({"act": "disconnect"}))
}

/// `sockname` as Node's `getsockname()` reports an IP socket.
pub(crate) fn sockname(address: std::net::SocketAddr) -> Value {
    let (ip, family) = match address.ip() {
        IpAddr::V4(ip) => (ip.to_string(), "IPv4"),
        IpAddr::V6(ip) => (ip.to_string(), "IPv6"),
    };
    json!({"address": ip, "family": family, "port": address.port()})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> WorkerMessage {
        parse(&serde_json::from_str(text).unwrap())
    }

    #[test]
    fn the_startup_sequence_of_a_real_worker_parses() {
        assert_eq!(
            parsed(r#"{"cmd":"NODE_CLUSTER","act":"online","seq":0}"#),
            WorkerMessage::Online
        );
        let WorkerMessage::QueryServer(query) = parsed(
            r#"{"cmd":"NODE_CLUSTER","act":"queryServer","index":0,"data":null,"address":null,
                "port":41010,"addressType":4,"backlog":511,"seq":1}"#,
        ) else {
            panic!("not a query")
        };
        assert_eq!(query.seq, 1);
        assert_eq!(query.key, "null:41010:4:undefined:0");
        assert_eq!(query.backlog, 511);
        assert_eq!(
            query.bind,
            BindSpec::Tcp {
                ip: None,
                port: 41010,
                v6_only: false
            }
        );
        assert_eq!(
            parsed(r#"{"cmd":"NODE_CLUSTER","act":"listening","port":41010,"seq":2}"#),
            WorkerMessage::Listening
        );
    }

    #[test]
    fn keys_follow_javascript_string_conversion() {
        let key = |text: &str| handle_key(&serde_json::from_str(text).unwrap());
        assert_eq!(
            key(r#"{"address":"127.0.0.1","port":80,"addressType":4,"flags":0,"index":2}"#),
            "127.0.0.1:80:4:undefined:2"
        );
        assert_eq!(
            key(r#"{"address":"0.0.0.0","port":5353,"addressType":"udp4","fd":-1,"index":0}"#),
            "0.0.0.0:5353:udp4:-1:0"
        );
        assert_eq!(
            key(r#"{"address":"/tmp/s","port":-1,"addressType":-1,"index":0}"#),
            "/tmp/s:-1:-1:undefined:0"
        );
    }

    #[test]
    fn unix_udp_and_ipv6_queries() {
        let bind = |text: &str| match parsed(text) {
            WorkerMessage::QueryServer(q) => q.bind,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            bind(
                r#"{"act":"queryServer","address":"/run/a.sock","port":-1,"addressType":-1,"index":0,"seq":1}"#
            ),
            BindSpec::Unix {
                path: "/run/a.sock".into()
            }
        );
        assert_eq!(
            bind(
                r#"{"act":"queryServer","address":"::","port":9,"addressType":"udp6","fd":-1,"flags":5,"index":0,"seq":1}"#
            ),
            BindSpec::Udp {
                ip: "::".parse().unwrap(),
                port: 9,
                v6_only: true,
                reuse_addr: true
            }
        );
        assert_eq!(
            bind(
                r#"{"act":"queryServer","address":"::1","port":0,"addressType":6,"flags":1,"index":0,"seq":1}"#
            ),
            BindSpec::Tcp {
                ip: Some("::1".parse().unwrap()),
                port: 0,
                v6_only: true
            }
        );
        assert_eq!(
            bind(r#"{"act":"queryServer","port":-1,"addressType":-1,"fd":7,"index":0,"seq":1}"#),
            BindSpec::Fd
        );
    }

    #[test]
    fn replies_and_teardown_messages() {
        assert_eq!(
            parsed(r#"{"cmd":"NODE_CLUSTER","ack":7,"accepted":true,"seq":3}"#),
            WorkerMessage::Accepted {
                ack: 7,
                accepted: true
            }
        );
        assert_eq!(
            parsed(r#"{"cmd":"NODE_CLUSTER","act":"close","key":"k","seq":4}"#),
            WorkerMessage::Close { key: "k".into() }
        );
        assert_eq!(
            parsed(r#"{"cmd":"NODE_CLUSTER","act":"suicide","seq":5}"#),
            WorkerMessage::ExitedAfterDisconnect { seq: 5 }
        );
        assert_eq!(
            parsed(r#"{"cmd":"NODE_CLUSTER","act":"somethingNew","seq":5}"#),
            WorkerMessage::Ignored
        );
    }

    #[test]
    fn nonsense_is_malformed_and_keeps_the_seq_to_answer() {
        for (text, seq) in [
            (r#"{"cmd":"NODE_CLUSTER"}"#, None),
            (
                r#"{"act":"queryServer","port":70000,"addressType":4,"seq":3}"#,
                Some(3),
            ),
            (
                r#"{"act":"queryServer","address":"nope","port":1,"addressType":4,"seq":4}"#,
                Some(4),
            ),
            (
                r#"{"act":"queryServer","address":"rel","port":-1,"addressType":-1,"seq":5}"#,
                Some(5),
            ),
            (
                r#"{"act":"queryServer","port":1,"addressType":{},"seq":6}"#,
                Some(6),
            ),
            (r#"{"act":"queryServer","port":1,"addressType":4}"#, None),
            (r#"{"act":"close","seq":1}"#, None),
            (r#"{"act":7,"seq":1}"#, None),
        ] {
            match parsed(text) {
                WorkerMessage::Malformed { seq: got, .. } => assert_eq!(got, seq, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn primary_messages_have_nodes_exact_shape() {
        assert_eq!(
            handle_envelope(
                "net.Native",
                query_shared(0, 1, "null:41010:4:undefined:0", &Value::Null)
            ),
            serde_json::from_str::<Value>(
                r#"{"cmd":"NODE_HANDLE","type":"net.Native","msg":{"cmd":"NODE_CLUSTER","errno":0,
                    "key":"null:41010:4:undefined:0","ack":1,"data":null,"seq":0}}"#
            )
            .unwrap()
        );
        let addr: std::net::SocketAddr = "127.0.0.1:41010".parse().unwrap();
        assert_eq!(
            query_round_robin(0, 1, "k", &Value::Null, Some(&sockname(addr))),
            json!({"cmd":"NODE_CLUSTER","errno":null,"key":"k","ack":1,"data":null,
                   "sockname":{"address":"127.0.0.1","family":"IPv4","port":41010},"seq":0})
        );
        assert_eq!(
            query_failed(2, 1, "k", 98),
            json!({"cmd":"NODE_CLUSTER","errno":-98,"key":"k","ack":1,"data":null,"seq":2})
        );
        assert_eq!(
            acknowledge(3, 9),
            json!({"cmd":"NODE_CLUSTER","ack":9,"seq":3})
        );
        assert_eq!(
            disconnect(4),
            json!({"cmd":"NODE_CLUSTER","act":"disconnect","seq":4})
        );
        assert_eq!(
            new_connection(5, "k"),
            json!({"cmd":"NODE_CLUSTER","act":"newconn","key":"k","seq":5})
        );
    }
}
