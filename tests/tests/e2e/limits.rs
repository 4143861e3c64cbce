//! The listener's and the API's limits under attack (issue 15, findings 4, 5, 6 and 12): idle
//! and half-open connections cannot hold the connection slots, credentials are checked from
//! the headers before any body is read, the rate limiter keys on who the client is rather
//! than on what it sends, and every route has a body limit.

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use e2e_tests::prelude::*;
use e2e_tests::raw_http::*;
use serde_json::Value;

/// `host:port` of a server.
fn addr_of(s: &Server) -> String {
    s.base.trim_start_matches("http://").to_string()
}

/// Sends the head of a request announcing a `length`-byte body, and none of the body; the
/// answer, whether the server closed the connection, and how long both took.
fn head_only(addr: &str, head: &str, length: usize) -> (u16, Value, bool, Duration) {
    let mut c = TcpStream::connect(addr).unwrap();
    let request = format!("{head}Host: x\r\nContent-Length: {length}\r\n\r\n");
    c.write_all(request.as_bytes()).unwrap();
    let started = Instant::now();
    let (bytes, closed) = read_until_closed(&mut c, Duration::from_secs(5));
    let (status, body) = parse_answer(&bytes);
    (status, body, closed, started.elapsed())
}

/// Sends `requests` (raw HTTP/1.1 request heads, pipelined on one connection whose last
/// request asks to close it) and returns the status of each answer.
fn pipelined(addr: &str, requests: Vec<String>) -> Vec<u16> {
    let mut c = TcpStream::connect(addr).unwrap();
    let mut writer = c.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut all = String::new();
        for r in requests {
            all.push_str(&r);
        }
        let _ = writer.write_all(all.as_bytes());
    });
    let (bytes, closed) = read_until_closed(&mut c, Duration::from_secs(120));
    sender.join().unwrap();
    assert!(
        closed,
        "the pipelined connection was not closed after its last answer"
    );
    let text = String::from_utf8_lossy(&bytes);
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12).and_then(|s| s.parse().ok()))
        .collect()
}

/// `count` GETs of `path`, each with its own made-up bearer token, the last closing the
/// connection.
fn bogus_token_requests(path: &str, prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let close = if i + 1 == count {
                "Connection: close\r\n"
            } else {
                ""
            };
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer cat_{prefix}{i}\r\n\
                 {close}\r\n"
            )
        })
        .collect()
}

// Finding 4: connections that send a prefix of the HTTP/2 preface and then nothing held every
// slot for good; the server must close them and serve new clients.
#[test]
fn partial_http2_prefaces_do_not_hold_the_connection_slots() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    configure(
        &dir,
        &[
            ("max_connections = 1024", "max_connections = 20"),
            ("header_timeout_secs = 10", "header_timeout_secs = 2"),
        ],
        "",
    );
    let s = Server::serve(&dir);
    let addr = addr_of(&s);
    let mut idle: Vec<TcpStream> = (0..30)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
            c
        })
        .collect();
    let started = Instant::now();
    poll(
        "/healthz on a new connection after 30 half-open connections (limit 20, header \
         deadline 2 s)",
        Duration::from_secs(8),
        || match raw_get_status(&addr, "/healthz") {
            200 => Ok(()),
            status => Err(format!("status {status}")),
        },
    );
    for (i, c) in idle.iter_mut().enumerate() {
        let left = Duration::from_secs(9).saturating_sub(started.elapsed());
        let (_, closed) = read_until_closed(c, left.max(Duration::from_millis(100)));
        assert!(
            closed,
            "half-open connection {i} still open {:?} after it sent its partial preface",
            started.elapsed()
        );
    }
    assert_eq!(s.get("/healthz", None).status, 200, "the server is up");
    s.terminate();
}

// Finding 4: a connection over the limit that never sends anything is closed within the short
// refusal deadline, so that max_connections bounds file descriptors too.
#[test]
fn silent_connections_over_the_limit_are_closed_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    configure(
        &dir,
        &[
            ("max_connections = 1024", "max_connections = 3"),
            ("header_timeout_secs = 10", "header_timeout_secs = 30"),
        ],
        "",
    );
    let s = Server::serve(&dir);
    let addr = addr_of(&s);
    let held = take_api_slots(&s, &addr, 3);
    for preface in [&b""[..], b"PRI * HTTP/2.0\r\n"] {
        let mut extra = TcpStream::connect(&addr).unwrap();
        extra.write_all(preface).unwrap();
        let started = Instant::now();
        let (_, closed) = read_until_closed(&mut extra, Duration::from_secs(5));
        let waited = started.elapsed();
        assert!(
            closed && waited < Duration::from_secs(4),
            "a connection over the limit sending {:?} was {} after {waited:?}",
            String::from_utf8_lossy(preface),
            if closed { "closed only" } else { "still open" }
        );
    }
    drop(held);
    wait_for_a_free_slot(&addr, "/healthz");
    s.terminate();
}

/// The HTTP/2 connection preface (RFC 9113 section 3.4) and an empty SETTINGS frame.
const H2_PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";

// Finding 4: a complete HTTP/2 preface followed by no request, and an HTTP/1.1 keep-alive
// connection after its request, are closed once the header deadline passes.
#[test]
fn connections_without_requests_are_closed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    configure(
        &dir,
        &[("header_timeout_secs = 10", "header_timeout_secs = 2")],
        "",
    );
    let s = Server::serve(&dir);
    let addr = addr_of(&s);

    let mut h2 = TcpStream::connect(&addr).unwrap();
    h2.write_all(H2_PREFACE_AND_SETTINGS).unwrap();
    let started = Instant::now();
    let (frames, closed) = read_until_closed(&mut h2, Duration::from_secs(8));
    let waited = started.elapsed();
    assert!(
        closed && waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "an HTTP/2 connection without a stream was {} after {waited:?}",
        if closed { "closed" } else { "still open" }
    );
    // It was sent a GOAWAY (frame type 7) before the connection closed.
    let mut at = 0;
    let mut types = Vec::new();
    while at + 9 <= frames.len() {
        let len = usize::from(frames[at]) << 16
            | usize::from(frames[at + 1]) << 8
            | usize::from(frames[at + 2]);
        types.push(frames[at + 3]);
        at += 9 + len;
    }
    assert!(types.contains(&7), "frame types: {types:?}");

    let mut h1 = TcpStream::connect(&addr).unwrap();
    h1.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut h1, Duration::from_secs(8));
    let waited = started.elapsed();
    assert_eq!(parse_answer(&answer).0, 200);
    assert!(
        closed && waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "an idle HTTP/1.1 keep-alive connection was {} after {waited:?}",
        if closed { "closed" } else { "still open" }
    );
    s.terminate();
}

// Finding 5: a bogus token (or a role that may not use the route) announcing a 16 MiB body is
// answered from the headers at once, and the connection is closed, without waiting for the
// body.
#[test]
fn credentials_are_checked_before_the_body_is_read() {
    let s = Server::fresh();
    let addr = addr_of(&s);
    let batch = "POST /v1/certificates/batch HTTP/1.1\r\nContent-Type: application/json\r\n";
    let cases = [
        (
            "a bogus token",
            Some("cat_bogus".to_string()),
            401,
            "unauthorized",
        ),
        ("no token", None, 401, "unauthorized"),
        (
            "an auditor token",
            Some(s.tokens.auditor.clone()),
            403,
            "forbidden",
        ),
    ];
    for (what, token, status, code) in cases {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let (got, body, closed, took) = head_only(&addr, &format!("{batch}{auth}"), 16 << 20);
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{what} announcing a 16 MiB batch body: {body} after {took:?}"
        );
        assert_error_shape(&body, what);
        assert!(
            closed && took < Duration::from_secs(3),
            "{what}: the connection was {} after {took:?}",
            if closed { "closed only" } else { "left open" }
        );
    }
    // An RA announcing more than the batch route's limit is refused before its body too.
    let ra = format!("{batch}Authorization: Bearer {}\r\n", s.tokens.ra);
    let (got, body, closed, took) = head_only(&addr, &ra, (16 << 20) + 1);
    assert_eq!(
        got, 413,
        "an RA announcing 16 MiB + 1: {body} after {took:?}"
    );
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(
        closed && took < Duration::from_secs(3),
        "closed: {closed}, {took:?}"
    );
    assert_eq!(s.get("/healthz", None).status, 200, "the server is up");
    s.terminate();
}

// Finding 5: the bodies in flight across the server are bounded
// (`[limits] max_inflight_body_bytes`): beyond, a request waits briefly, then is refused 503
// `overloaded` without its body being read.
#[test]
fn bodies_in_flight_are_bounded_across_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    configure(
        &dir,
        &[(
            "max_inflight_body_bytes = 268435456",
            "max_inflight_body_bytes = 3145728",
        )],
        "",
    );
    let s = Server::serve(&dir);
    let addr = addr_of(&s);
    let head = format!(
        "POST /v1/certificates HTTP/1.1\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
        s.tokens.ra
    );
    // Three slow clients announce 1 MiB each and send nothing more: 3 MiB reserved.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(head.as_bytes()).unwrap();
            c
        })
        .collect();
    let reserved = |bytes: f64| {
        poll(
            "the slow bodies' reservations",
            Duration::from_secs(10),
            || match s.metric("ca_http_body_bytes_reserved") {
                b if b == bytes => Ok(()),
                b => Err(format!("{b} bytes reserved, expected {bytes}")),
            },
        )
    };
    reserved(3.0 * 1048576.0);
    let mut fourth = TcpStream::connect(&addr).unwrap();
    fourth.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let (bytes, _) = read_until_closed(&mut fourth, Duration::from_secs(5));
    let (status, body) = parse_answer(&bytes);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("overloaded")),
        "a fourth 1 MiB body over a 3 MiB budget: {body} after {:?}",
        started.elapsed()
    );
    // Once the slow clients are gone, their budget is free again.
    drop(held);
    reserved(0.0);
    let r = s.post_raw(
        "/v1/certificates",
        Some(&s.tokens.ra),
        "application/json",
        b"{}".to_vec(),
    );
    assert_error(
        &r,
        400,
        "invalid_request",
        "a small body after the budget freed",
    );
    s.terminate();
}

// Finding 6: with a configured rate, a client cannot escape it by varying made-up
// Authorization headers: failed authentications count against its address.
#[test]
fn varying_bogus_tokens_are_rate_limited_by_address() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    configure(
        &dir,
        &[
            (
                "\nrequests_per_second = 0.0",
                "\nrequests_per_second = 0.01",
            ),
            ("\nburst = 100.0", "\nburst = 3.0"),
        ],
        "",
    );
    let s = Server::serve(&dir);
    let statuses = pipelined(
        &addr_of(&s),
        bogus_token_requests("/v1/audit?limit=1", "vary", 3000),
    );
    assert_eq!(statuses.len(), 3000, "one answer per request");
    let limited = statuses.iter().filter(|&&st| st == 429).count();
    assert!(
        statuses.iter().all(|st| [401, 429].contains(st)),
        "only 401 and 429: {:?}",
        statuses.iter().find(|st| ![401, 429].contains(st))
    );
    assert!(
        limited >= 1000,
        "3000 requests with distinct made-up tokens from one address: only {limited} were \
         rate-limited"
    );
    s.terminate();
}

/// A data directory whose authenticated clients may make 3 requests, then one per 100 s.
fn slow_rate_server(tmp: &Path) -> Server {
    let dir = new_dir(tmp);
    configure(
        &dir,
        &[
            (
                "\nrequests_per_second = 0.0",
                "\nrequests_per_second = 0.01",
            ),
            ("\nburst = 100.0", "\nburst = 3.0"),
        ],
        "",
    );
    Server::serve(&dir)
}

/// The status of `GET path` with this `Authorization` header.
fn status_with(s: &Server, path: &str, authorization: &str) -> u16 {
    http_client()
        .get(format!("{}{path}", s.base))
        .header("authorization", authorization)
        .send()
        .unwrap()
        .status()
        .as_u16()
}

// Finding 6: a valid token's bucket is its identity's, however the header is spelled.
#[test]
fn a_token_shares_its_bucket_however_it_is_spelled() {
    let tmp = tempfile::tempdir().unwrap();
    let s = slow_rate_server(tmp.path());
    let plain = format!("Bearer {}", s.tokens.auditor);
    for i in 0..3 {
        let st = status_with(&s, "/v1/audit?limit=1", &plain);
        assert_eq!(st, 200, "request {i} within the burst of 3");
    }
    let spaced = format!("bearer    {}", s.tokens.auditor);
    assert_eq!(
        status_with(&s, "/v1/audit?limit=1", &spaced),
        429,
        "the same token spelled with another scheme case and extra spaces shares its bucket"
    );
    s.terminate();
}

// Finding 6: a flood of distinct made-up tokens does not reset a legitimate client's bucket.
#[test]
fn a_flood_of_made_up_tokens_does_not_reset_buckets() {
    let tmp = tempfile::tempdir().unwrap();
    let s = slow_rate_server(tmp.path());
    let operator = format!("Bearer {}", s.tokens.operator);
    for i in 0..3 {
        let st = status_with(&s, "/metrics", &operator);
        assert_eq!(st, 200, "operator request {i} within the burst");
    }
    assert_eq!(
        status_with(&s, "/metrics", &operator),
        429,
        "the operator's bucket is empty"
    );
    let addr = addr_of(&s);
    let floods: Vec<_> = (0..4)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                pipelined(
                    &addr,
                    bogus_token_requests("/v1/audit?limit=1", &format!("flood{t}x"), 25_025),
                )
                .len()
            })
        })
        .collect();
    let answered: usize = floods.into_iter().map(|f| f.join().unwrap()).sum();
    assert_eq!(answered, 100_100, "every flood request was answered");
    assert_eq!(
        status_with(&s, "/metrics", &operator),
        429,
        "100,100 distinct made-up tokens reset the operator's bucket"
    );
    s.terminate();
}

// Finding 12: every route that reads a body has a limit from one table; 1.5 MiB is over the
// single-request limit of 1 MiB on each of them (axum's default of 2 MiB took it before).
#[test]
fn every_route_refuses_bodies_over_its_limit() {
    let s = Server::fresh();
    let addr = addr_of(&s);
    let issued = s.issue(&server_csr("limits.example.com"), "tls-server", None);
    let serial = issued["serial"].as_str().unwrap().to_string();
    let ra = format!("Authorization: Bearer {}\r\n", s.tokens.ra);
    let operator = format!("Authorization: Bearer {}\r\n", s.tokens.operator);
    let json = "Content-Type: application/json\r\n";
    let routes = [
        (
            format!("/v1/certificates/{serial}/revoke"),
            ra.clone(),
            json,
        ),
        (format!("/v1/certificates/{serial}/renew"), ra.clone(), json),
        ("/v1/enrollments".to_string(), ra.clone(), json),
        ("/v1/tokens".to_string(), operator, json),
        (
            "/v1/enrollments/00112233445566778899aabbccddeeff/redeem".to_string(),
            String::new(),
            json,
        ),
        (
            "/ocsp".to_string(),
            String::new(),
            "Content-Type: application/ocsp-request\r\n",
        ),
    ];
    for (path, auth, content_type) in routes {
        let head = format!("POST {path} HTTP/1.1\r\n{auth}{content_type}");
        let (status, body, closed, took) = head_only(&addr, &head, 1536 * 1024);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (413, Some("payload_too_large")),
            "POST {path} announcing 1.5 MiB: {body} after {took:?}"
        );
        assert_error_shape(&body, &path);
        assert!(
            closed,
            "POST {path}: the connection is closed after the 413"
        );
    }
    s.terminate();
}

// Finding 12: the batch's items are counted while the body is parsed: a batch over max_batch
// is refused 413 `batch_too_large` before the rest of the body is looked at (here, a tail that
// is not even JSON), and a million tiny items are refused just as quickly.
#[test]
fn batches_over_max_batch_are_refused_while_parsing() {
    let s = Server::fresh();
    let mut truncated = String::from("{\"requests\":[");
    truncated.push_str(&"{},".repeat(1001));
    truncated.push_str("this is not JSON");
    let r = s.post_raw(
        "/v1/certificates/batch",
        Some(&s.tokens.ra),
        "application/json",
        truncated.into_bytes(),
    );
    assert_error(&r, 413, "batch_too_large", "1,001 items then garbage");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000"),
        "{r}"
    );

    let mut million = String::from("{\"requests\":[");
    million.push_str(&"1,".repeat(1_000_000));
    million.push_str("1]}");
    let started = Instant::now();
    let r = s.post_raw(
        "/v1/certificates/batch",
        Some(&s.tokens.ra),
        "application/json",
        million.into_bytes(),
    );
    assert_error(&r, 413, "batch_too_large", "1,000,001 items");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    s.terminate();
}
