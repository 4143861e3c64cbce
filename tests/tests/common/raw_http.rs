//! Raw HTTP/1.1 over TCP, for the tests of the listener's limits: answers read until the
//! server closes, and polling in place of fixed sleeps.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Calls `check` every 50 ms until it returns `Ok`, for at most `within`; beyond that, panics
/// with `what` and the last error. Tests wait with this, never with a fixed sleep.
pub fn poll<T>(what: &str, within: Duration, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match check() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: not within {within:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

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

/// Connections that take `n` of the listener's slots, once earlier connections have let go of
/// theirs (a request on a new connection is served). The listener takes a slot when it accepts
/// a connection, in the order the connections arrived, so a connection made after these finds
/// the slots taken.
pub fn take_slots(addr: &str, path: &str, n: usize) -> Vec<TcpStream> {
    wait_for_a_free_slot(addr, path);
    (0..n)
        .map(|_| TcpStream::connect(addr).expect("connecting"))
        .collect()
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
