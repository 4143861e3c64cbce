//! Raw HTTP/1.1 over TCP, for the tests of the listener's limits: answers read until the
//! server closes, and connections that hold the listener's slots.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::server::Server;
use crate::wait::poll;

/// Reads what the server sends until it closes the connection (EOF or reset) or `within`
/// passes; the bytes read and whether the server closed the connection.
pub fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, false);
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}

/// The status and JSON body of one raw HTTP/1.1 answer (0 and `Null` when there is none).
pub fn parse_answer(bytes: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(bytes);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| serde_json::from_str(b).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    (status, body)
}

/// The status of `GET path` on a new connection (0 when there is no answer within 3 s).
pub fn raw_get_status(addr: &str, path: &str) -> u16 {
    let Ok(mut c) = TcpStream::connect(addr) else {
        return 0;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if c.write_all(request.as_bytes()).is_err() {
        return 0;
    }
    parse_answer(&read_until_closed(&mut c, Duration::from_secs(3)).0).0
}

/// Connections holding all `n` slots of the plain-HTTP API listener at `addr`, whose
/// `max_connections` is `n`, taken once no other connection is open on it
/// (`ca_http_connections{listener="api"}` is 1, the reading one). The first of them is the
/// connection that read the metric, kept open; the others are new connections, which the
/// listener takes in the order they arrive, before any made after them.
pub fn take_api_slots(s: &Server, addr: &str, n: usize) -> Vec<TcpStream> {
    let first = poll(
        "no other connection on the listener",
        Duration::from_secs(20),
        || {
            let mut c = TcpStream::connect(addr).map_err(|e| e.to_string())?;
            let request = format!(
                "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
                s.tokens.operator
            );
            c.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
            let (status, body) = read_one_answer(&mut c, Duration::from_secs(5))?;
            match (
                status,
                connections_open(&String::from_utf8_lossy(&body), "api"),
            ) {
                (200, Some(1)) => Ok(c),
                (status, open) => Err(format!("GET /metrics: {status}, {open:?} connections open")),
            }
        },
    );
    let mut held = vec![first];
    while held.len() < n {
        held.push(TcpStream::connect(addr).expect("connecting"));
    }
    held
}

/// `n` new connections to `addr`, made once `open` (the listener's `ca_http_connections`,
/// read over another listener) says that none is open there: the listener takes them in the
/// order they arrive, before any made after them.
pub fn take_slots_when_free(
    addr: &str,
    n: usize,
    mut open: impl FnMut() -> Option<i64>,
) -> Vec<TcpStream> {
    poll(
        "no other connection on the listener",
        Duration::from_secs(20),
        || match open() {
            Some(0) => Ok(()),
            other => Err(format!("{other:?} connections open")),
        },
    );
    (0..n)
        .map(|_| TcpStream::connect(addr).expect("connecting"))
        .collect()
}

/// `ca_http_connections{listener="LISTENER"}` in a `/metrics` exposition.
pub fn connections_open(metrics: &str, listener: &str) -> Option<i64> {
    let series = format!("ca_http_connections{{listener=\"{listener}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (up to 10 s) until `GET path` on a new connection is answered 200.
pub fn wait_for_a_free_slot(addr: &str, path: &str) {
    poll(
        "a free connection slot",
        Duration::from_secs(10),
        || match raw_get_status(addr, path) {
            200 => Ok(()),
            status => Err(format!("GET {path} answered {status}")),
        },
    );
}

/// Reads one answer (head and `Content-Length` body) without waiting for the connection to
/// close; its status and body.
pub fn read_one_answer(c: &mut TcpStream, within: Duration) -> Result<(u16, Vec<u8>), String> {
    let deadline = Instant::now() + within;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if bytes.len() >= end + 4 + length {
                let status = parse_answer(&bytes).0;
                return Ok((status, bytes[end + 4..end + 4 + length].to_vec()));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no whole answer within {within:?}"));
        }
        c.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match c.read(&mut buf) {
            Ok(0) => return Err("closed before a whole answer".into()),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e.to_string()),
        }
    }
}
