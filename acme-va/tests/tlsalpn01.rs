//! tls-alpn-01 (RFC 8737, RFC 8738) against a tokio-rustls server on loopback presenting rcgen
//! certificates.

mod common;

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use ca_acme::{Problem, ProblemType};
use ca_acme_va::{Challenge, Ident, Va, VaConfig, ValidationRecord};
use common::*;

const ALPN: &[&[u8]] = &[b"acme-tls/1"];

fn loopback_ip() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

async fn validate(config: VaConfig) -> Result<Vec<ValidationRecord>, Problem> {
    Va::new(config)
        .unwrap()
        .validate(
            Challenge::TlsAlpn01,
            &Ident::Ip(loopback_ip()),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
}

/// A responder for 127.0.0.1 presenting a certificate with `extensions`, offering `alpn`.
async fn responder(extensions: Vec<rcgen::CustomExtension>, alpn: &[&[u8]]) -> TlsServer {
    let (cert, key) = certificate(vec![rcgen::SanType::IpAddress(loopback_ip())], extensions);
    TlsServer::start("127.0.0.1", tls_config(cert, key, alpn)).await
}

#[tokio::test]
async fn the_right_certificate_validates_with_the_reverse_name_as_sni() {
    let server = responder(vec![acme_identifier(KEY_AUTHORIZATION)], ALPN).await;
    let records = validate(config(1, server.port(), None)).await.unwrap();
    assert_eq!(
        records,
        vec![ValidationRecord {
            url: None,
            hostname: "127.0.0.1".into(),
            port: Some(server.port()),
            addresses_resolved: vec![loopback_ip()],
            address_used: Some(loopback_ip()),
        }]
    );
    // RFC 8738 section 6: the reverse-mapping name as SNI.
    assert_eq!(
        server.server_names(1).await,
        vec![Some("1.0.0.127.in-addr.arpa".to_string())]
    );
}

#[tokio::test]
async fn a_wrong_digest_is_unauthorized() {
    let server = responder(vec![acme_identifier("another.key-authorization")], ALPN).await;
    let problem = validate(config(1, server.port(), None)).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
    assert!(problem.detail.contains("acmeIdentifier"), "{problem}");
}

#[tokio::test]
async fn a_missing_acme_identifier_is_unauthorized() {
    let server = responder(vec![], ALPN).await;
    let problem = validate(config(1, server.port(), None)).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
    assert!(problem.detail.contains("no acmeIdentifier"), "{problem}");
}

#[tokio::test]
async fn a_non_critical_acme_identifier_is_unauthorized() {
    let mut extension = acme_identifier(KEY_AUTHORIZATION);
    extension.set_criticality(false);
    let server = responder(vec![extension], ALPN).await;
    let problem = validate(config(1, server.port(), None)).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
    assert!(problem.detail.contains("not critical"), "{problem}");
}

#[tokio::test]
async fn a_certificate_for_another_identifier_is_unauthorized() {
    let (cert, key) = certificate(
        vec![rcgen::SanType::IpAddress("127.0.0.2".parse().unwrap())],
        vec![acme_identifier(KEY_AUTHORIZATION)],
    );
    let server = TlsServer::start("127.0.0.1", tls_config(cert, key, ALPN)).await;
    let problem = validate(config(1, server.port(), None)).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
    assert!(problem.detail.contains("127.0.0.2"), "{problem}");
}

#[tokio::test]
async fn without_acme_tls_1_it_is_a_tls_problem() {
    // A server without ALPN: the handshake succeeds, nothing negotiated.
    let server = responder(vec![acme_identifier(KEY_AUTHORIZATION)], &[]).await;
    let problem = validate(config(1, server.port(), None)).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::Tls, "{problem}");
    assert!(problem.detail.contains("acme-tls/1"), "{problem}");
    // A server with other protocols only: it refuses the handshake.
    let server = responder(
        vec![acme_identifier(KEY_AUTHORIZATION)],
        &[b"h2", b"http/1.1"],
    )
    .await;
    let problem = validate(config(1, server.port(), None)).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::Tls, "{problem}");
}

#[tokio::test]
async fn a_server_that_is_not_tls_is_a_tls_problem() {
    // Answers plain HTTP to whatever it is sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let problem = validate(config(1, port, None)).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::Tls, "{problem}");
    assert!(problem.detail.contains("handshake"), "{problem}");
    server.abort();
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_problem() {
    let problem = validate(config(1, closed_port().await, None))
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Connection, "{problem}");
}

#[tokio::test]
async fn the_default_deny_list_refuses_loopback_before_any_connection() {
    let server = responder(vec![acme_identifier(KEY_AUTHORIZATION)], ALPN).await;
    let config = VaConfig {
        deny_networks: VaConfig::default_deny_networks(),
        ..config(1, server.port(), None)
    };
    let problem = validate(config).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::RejectedIdentifier, "{problem}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn every_validation_sees_the_certificate_afresh() {
    // TLS 1.2, whose sessions the client could resume by ID: a resumed session carries the
    // certificate of the first handshake, not the one the server has now.
    let (cert, key) = certificate(
        vec![rcgen::SanType::IpAddress(loopback_ip())],
        vec![acme_identifier(KEY_AUTHORIZATION)],
    );
    let (tls, switch) = tls12_config_with_switch(cert, key, ALPN);
    let server = TlsServer::start("127.0.0.1", tls).await;
    let va = Va::new(config(1, server.port(), None)).unwrap();
    let ident = Ident::Ip(loopback_ip());
    va.validate(Challenge::TlsAlpn01, &ident, TOKEN, KEY_AUTHORIZATION)
        .await
        .unwrap();
    server.server_names(1).await;
    let (cert, key) = certificate(
        vec![rcgen::SanType::IpAddress(loopback_ip())],
        vec![acme_identifier("another.key-authorization")],
    );
    switch.set(cert, key);
    let problem = va
        .validate(Challenge::TlsAlpn01, &ident, TOKEN, KEY_AUTHORIZATION)
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
}
