//! http-01 (RFC 8555 section 8.3) against a small HTTP server on loopback.

mod common;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_acme::ProblemType;
use ca_acme_va::{Challenge, Ident, Va, VaConfig};
use common::*;
use tokio::net::TcpListener;

fn loopback() -> Ident {
    Ident::Ip("127.0.0.1".parse().unwrap())
}

async fn validate(
    config: VaConfig,
    ident: &Ident,
) -> Result<Vec<ca_acme_va::ValidationRecord>, ca_acme::Problem> {
    Va::new(config)
        .unwrap()
        .validate(Challenge::Http01, ident, TOKEN, KEY_AUTHORIZATION)
        .await
}

/// Serves the key authorization (with a trailing newline) at the challenge path, 404 elsewhere.
fn serving(body: &'static str) -> impl Fn(&str) -> Reply + Send + Sync + 'static {
    move |path| {
        if path == challenge_path() {
            Reply::Body(200, body.to_string())
        } else {
            Reply::Body(404, "not here".into())
        }
    }
}

#[tokio::test]
async fn the_right_body_validates() {
    let server = HttpServer::start(
        "127.0.0.1",
        serving(concat!(
        "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI",
        " \r\n"
    )),
    )
    .await;
    let records = validate(config(server.port(), 1, None), &loopback())
        .await
        .unwrap();
    let port = server.port();
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(
        record.url.as_deref(),
        Some(format!("http://127.0.0.1:{port}{}", challenge_path()).as_str())
    );
    assert_eq!(record.hostname, "127.0.0.1");
    assert_eq!(record.port, Some(port));
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(record.addresses_resolved, vec![ip]);
    assert_eq!(record.address_used, Some(ip));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].line, format!("GET {} HTTP/1.1", challenge_path()));
    assert_eq!(
        seen[0].host.as_deref(),
        Some(format!("127.0.0.1:{port}").as_str())
    );
}

#[tokio::test]
async fn a_wrong_body_is_unauthorized_and_quoted() {
    let server = HttpServer::start("127.0.0.1", serving("this is not it\n")).await;
    let problem = validate(config(server.port(), 1, None), &loopback())
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
    assert!(problem.detail.contains("\"this is not it\""), "{problem}");
}

#[tokio::test]
async fn another_status_than_200_is_unauthorized() {
    let server = HttpServer::start("127.0.0.1", |_: &str| {
        Reply::Body(404, KEY_AUTHORIZATION.into())
    })
    .await;
    let problem = validate(config(server.port(), 1, None), &loopback())
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
    assert!(problem.detail.contains("404"), "{problem}");
}

#[tokio::test]
async fn a_long_body_is_not_read_to_its_end() {
    let long = format!("{KEY_AUTHORIZATION}{}", " ".repeat(64 * 1024));
    let server =
        HttpServer::start("127.0.0.1", move |_: &str| Reply::Body(200, long.clone())).await;
    let problem = validate(config(server.port(), 1, None), &loopback())
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
    assert!(problem.detail.contains("longer than"), "{problem}");
}

#[tokio::test]
async fn a_redirect_chain_is_followed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = move |path: &str| match path {
        p if p == challenge_path() => Reply::Redirect(302, "/step-1".into()),
        "/step-1" => Reply::Redirect(301, format!("http://127.0.0.1:{port}/step-2?x=1")),
        "/step-2?x=1" => Reply::Redirect(307, "final#fragment".into()),
        "/final" => Reply::Body(200, KEY_AUTHORIZATION.into()),
        _ => Reply::Body(404, String::new()),
    };
    let server = HttpServer::on(listener, Arc::new(handler), None);
    let records = validate(config(port, 1, None), &loopback()).await.unwrap();
    let urls: Vec<String> = records.iter().map(|r| r.url.clone().unwrap()).collect();
    assert_eq!(
        urls,
        vec![
            format!("http://127.0.0.1:{port}{}", challenge_path()),
            format!("http://127.0.0.1:{port}/step-1"),
            format!("http://127.0.0.1:{port}/step-2?x=1"),
            format!("http://127.0.0.1:{port}/final"),
        ]
    );
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn a_redirect_to_https_is_followed_whatever_the_certificate() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // A certificate for another name, self-signed: not checked on http-01 redirects.
    let (cert, key) = certificate(vec![dns_name("unrelated.example")], vec![]);
    let tls = tokio_rustls::TlsAcceptor::from(tls_config(cert, key, &[]));
    let handler = move |path: &str| match path {
        p if p == challenge_path() => {
            Reply::Redirect(302, format!("https://127.0.0.1:{port}/secure"))
        }
        "/secure" => Reply::Body(200, KEY_AUTHORIZATION.into()),
        _ => Reply::Body(404, String::new()),
    };
    let server = HttpServer::on(listener, Arc::new(handler), Some(tls));
    let records = validate(config(port, 1, None), &loopback()).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1].url.as_deref(),
        Some(format!("https://127.0.0.1:{port}/secure").as_str())
    );
    let seen = server.seen();
    assert_eq!((seen[0].tls, seen[1].tls), (false, true));
}

#[tokio::test]
async fn a_redirect_loop_fails() {
    let server = HttpServer::start("127.0.0.1", |path: &str| match path {
        "/a" => Reply::Redirect(302, "/b".into()),
        "/b" => Reply::Redirect(302, "/a".into()),
        _ => Reply::Redirect(302, "/a".into()),
    })
    .await;
    let problem = validate(config(server.port(), 1, None), &loopback())
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Connection, "{problem}");
    assert!(problem.detail.contains("loop"), "{problem}");
    assert_eq!(server.seen().len(), 3);
}

#[tokio::test]
async fn too_many_redirects_fail() {
    let server = HttpServer::start("127.0.0.1", |path: &str| {
        let n: usize = path
            .rsplit('/')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Reply::Redirect(302, format!("/hop/{}", n + 1))
    })
    .await;
    let config = VaConfig {
        max_redirects: 3,
        ..config(server.port(), 1, None)
    };
    let problem = validate(config, &loopback()).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::Connection, "{problem}");
    assert!(problem.detail.contains("Too many redirects"), "{problem}");
    // The first request and three redirects followed.
    assert_eq!(server.seen().len(), 4);
}

#[tokio::test]
async fn a_redirect_to_another_port_is_refused() {
    let elsewhere = HttpServer::start("127.0.0.1", serving(KEY_AUTHORIZATION)).await;
    let other = elsewhere.port();
    let server = HttpServer::start("127.0.0.1", move |_: &str| {
        Reply::Redirect(302, format!("http://127.0.0.1:{other}{}", challenge_path()))
    })
    .await;
    let problem = validate(config(server.port(), 1, None), &loopback())
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Connection, "{problem}");
    assert!(
        problem.detail.contains(&format!("not {other}")),
        "{problem}"
    );
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redirect_to_a_denied_address_is_refused_before_connecting() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // The same port on 127.0.0.2, which is denied.
    let denied_listener = TcpListener::bind(("127.0.0.2", port)).await.unwrap();
    let denied = HttpServer::on(denied_listener, Arc::new(serving(KEY_AUTHORIZATION)), None);
    let handler =
        move |_: &str| Reply::Redirect(302, format!("http://127.0.0.2:{port}{}", challenge_path()));
    let server = HttpServer::on(listener, Arc::new(handler), None);
    let config = VaConfig {
        deny_networks: vec!["127.0.0.2/32".parse().unwrap()],
        ..config(port, 1, None)
    };
    let problem = validate(config, &loopback()).await.unwrap_err();
    assert_eq!(problem.kind, ProblemType::Connection, "{problem}");
    assert!(problem.detail.contains("127.0.0.2"), "{problem}");
    assert!(problem.detail.contains("deny_networks"), "{problem}");
    assert_eq!(server.seen().len(), 1);
    assert_eq!(denied.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_problem() {
    let port = closed_port().await;
    let problem = validate(config(port, 1, None), &loopback())
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Connection, "{problem}");
    assert!(problem.detail.contains("refused"), "{problem}");
    assert!(
        problem.detail.contains(&format!("127.0.0.1:{port}")),
        "{problem}"
    );
}

#[tokio::test]
async fn the_default_deny_list_refuses_loopback_before_any_connection() {
    let server = HttpServer::start("127.0.0.1", serving(KEY_AUTHORIZATION)).await;
    let config = VaConfig {
        deny_networks: VaConfig::default_deny_networks(),
        ..config(server.port(), 1, None)
    };
    for ip in ["127.0.0.1", "::ffff:127.0.0.1"] {
        let problem = validate(config.clone(), &Ident::Ip(ip.parse().unwrap()))
            .await
            .unwrap_err();
        assert_eq!(problem.kind, ProblemType::RejectedIdentifier, "{problem}");
        assert!(problem.detail.contains(ip), "{problem}");
        assert!(problem.detail.contains("deny_networks"), "{problem}");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = HttpServer::start("127.0.0.1", |_: &str| Reply::Hang).await;
    let config = VaConfig {
        timeout: Duration::from_millis(700),
        ..config(server.port(), 1, None)
    };
    let start = Instant::now();
    let problem = tokio::time::timeout(Duration::from_secs(5), validate(config, &loopback()))
        .await
        .expect("the VA's own timeout")
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Connection, "{problem}");
    assert!(problem.detail.contains("timed out"), "{problem}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn an_ipv6_address_is_asked_in_brackets() {
    let Ok(listener) = TcpListener::bind("[::1]:0").await else {
        eprintln!("an_ipv6_address_is_asked_in_brackets: no IPv6 loopback here, nothing to test");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::on(listener, Arc::new(serving(KEY_AUTHORIZATION)), None);
    let records = validate(config(port, 1, None), &Ident::Ip("::1".parse().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        records[0].url.as_deref(),
        Some(format!("http://[::1]:{port}{}", challenge_path()).as_str())
    );
    assert_eq!(
        server.seen()[0].host.as_deref(),
        Some(format!("[::1]:{port}").as_str())
    );
}

#[tokio::test]
async fn a_token_that_is_not_base64url_is_refused() {
    let server = HttpServer::start("127.0.0.1", serving(KEY_AUTHORIZATION)).await;
    let problem = Va::new(config(server.port(), 1, None))
        .unwrap()
        .validate(
            Challenge::Http01,
            &loopback(),
            "../../etc/passwd",
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Malformed, "{problem}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}
