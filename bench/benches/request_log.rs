//! What logging request outcomes costs per certificate ([`ca_server::request_log`]), under the
//! server's own subscriber (fmt at `info`, into a sink instead of stderr): the middleware's
//! part of every request (taking method, requester and client before it runs, then logging
//! its outcome), and the `issued` outcome of a certificate, once with its own line and once
//! counted because the second's line budget is spent (a flood's common case).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use ca_core::store::CertRecord;
use ca_server::auth::{Caller, Role};
use ca_server::limits::Identity;
use ca_server::listener::Peer;
use ca_server::request_log::{RequestLog, Seen};
use criterion::{criterion_group, criterion_main, Criterion};

fn record() -> CertRecord {
    CertRecord {
        seq: 1,
        serial: ca_core::Serial::from_bytes(&[0x4d; 16]).expect("a serial of this CA's form"),
        der: Vec::new(),
        profile: "tls-server".into(),
        requester: "portal".into(),
        issued_at: 0,
        not_before: 0,
        not_after: 0,
        renewed_from: None,
        audit_seq: Some(1),
    }
}

fn request() -> Request<Body> {
    let mut request = Request::post("/v1/certificates")
        .body(Body::empty())
        .expect("request");
    request.extensions_mut().insert(Identity::Caller(Caller {
        name: "portal".into(),
        role: Role::Ra,
        token_hash: [7; 32],
    }));
    request.extensions_mut().insert(Peer {
        addr: SocketAddr::from(([127, 0, 0, 1], 40000)),
        client_certificate: None,
        tls_certificate: None,
    });
    request
}

fn bench(c: &mut Criterion) {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let record = record();
    let latency = Duration::from_micros(900);
    let mut group = c.benchmark_group("request_log");
    group.bench_function("middleware_per_request", |b| {
        let log = RequestLog::new(100);
        let request = request();
        let response = Response::builder()
            .status(StatusCode::CREATED)
            .body(Body::empty())
            .expect("response");
        b.iter(|| {
            let seen = Seen::of(&request);
            seen.logged(&log, "/v1/certificates", &response, latency);
        });
    });
    group.bench_function("issued_own_line", |b| {
        let log = RequestLog::new(0);
        b.iter(|| log.issued(&record, "portal", false, latency));
    });
    group.bench_function("issued_counted", |b| {
        let log = RequestLog::new(1);
        log.issued(&record, "portal", false, latency);
        b.iter(|| log.issued(&record, "portal", false, latency));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
