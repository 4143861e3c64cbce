//! dns-01 (RFC 8555 section 8.4), CAA (RFC 8659, RFC 8657), and http-01 and tls-alpn-01 for
//! names, with Debian's `pebble-challtestsrv` as the DNS server. Fails when it is missing
//! (scripts/setup.sh installs it).

mod common;

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ca_acme::ProblemType;
use ca_acme_va::{Challenge, Ident, Va, VaConfig};
use common::*;
use sha2::Digest;

fn txt_value(key_authorization: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(key_authorization))
}

fn name(name: &str) -> Ident {
    Ident::Dns(name.into())
}

async fn va(dns: &ChallTestSrv) -> Va {
    Va::new(config(1, 1, Some(dns.dns))).unwrap()
}

#[tokio::test]
async fn dns_01_finds_the_digest_among_the_txt_records() {
    let dns = ChallTestSrv::start().await;
    dns.set_txt("_acme-challenge.example.com", "something else")
        .await;
    dns.set_txt("_acme-challenge.example.com", &txt_value(KEY_AUTHORIZATION))
        .await;
    let records = va(&dns)
        .await
        .validate(
            Challenge::Dns01,
            &name("example.com"),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hostname, "example.com");
    assert_eq!(records[0].url, None);
}

#[tokio::test]
async fn dns_01_with_a_wrong_or_no_record_is_unauthorized() {
    let dns = ChallTestSrv::start().await;
    dns.set_txt("_acme-challenge.wrong.example", &txt_value("another"))
        .await;
    let va = va(&dns).await;
    let problem = va
        .validate(
            Challenge::Dns01,
            &name("wrong.example"),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
    assert!(problem.detail.contains("Incorrect TXT record"), "{problem}");
    assert!(
        problem.detail.contains(&txt_value(KEY_AUTHORIZATION)),
        "{problem}"
    );

    let problem = va
        .validate(
            Challenge::Dns01,
            &name("none.example"),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Unauthorized, "{problem}");
    assert!(problem.detail.contains("No TXT record"), "{problem}");
}

#[tokio::test]
async fn dns_01_with_a_failing_server_is_a_dns_problem() {
    let dns = ChallTestSrv::start().await;
    dns.servfail("_acme-challenge.broken.example").await;
    let problem = va(&dns)
        .await
        .validate(
            Challenge::Dns01,
            &name("broken.example"),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Dns, "{problem}");
    assert!(problem.detail.contains("SERVFAIL"), "{problem}");
}

#[tokio::test]
async fn dns_01_for_an_ip_address_is_refused() {
    let dns = ChallTestSrv::start().await;
    let problem = va(&dns)
        .await
        .validate(
            Challenge::Dns01,
            &Ident::Ip("192.0.2.1".parse().unwrap()),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Malformed, "{problem}");
}

#[tokio::test]
async fn http_01_for_a_name_falls_back_from_ipv6_to_ipv4() {
    let dns = ChallTestSrv::start().await;
    // Every name has A 127.0.0.1 and AAAA ::1; the server listens on 127.0.0.1 only, so the
    // connection to ::1 fails and the VA falls back to IPv4.
    let server = HttpServer::start("127.0.0.1", |path: &str| {
        if path == challenge_path() {
            Reply::Body(200, KEY_AUTHORIZATION.into())
        } else {
            Reply::Body(404, String::new())
        }
    })
    .await;
    let va = Va::new(config(server.port(), 1, Some(dns.dns))).unwrap();
    let records = va
        .validate(
            Challenge::Http01,
            &name("web.example.com"),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap();
    let v4: IpAddr = "127.0.0.1".parse().unwrap();
    let v6: IpAddr = "::1".parse().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].hostname, "web.example.com");
    assert_eq!(records[0].addresses_resolved, vec![v4, v6]);
    assert_eq!(records[0].address_used, Some(v4));
    assert_eq!(
        server.seen()[0].host.as_deref(),
        Some(format!("web.example.com:{}", server.port()).as_str())
    );
}

#[tokio::test]
async fn http_01_for_a_name_tries_ipv6_first() {
    // One port on both ::1 and 127.0.0.1.
    let mut listeners = None;
    for _ in 0..20 {
        let Ok(v6) = tokio::net::TcpListener::bind("[::1]:0").await else {
            eprintln!(
                "http_01_for_a_name_tries_ipv6_first: no IPv6 loopback here, nothing to test"
            );
            return;
        };
        let port = v6.local_addr().unwrap().port();
        if let Ok(v4) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            listeners = Some((v6, v4));
            break;
        }
    }
    let (v6, v4) = listeners.expect("a port free on both loopbacks");
    let port = v6.local_addr().unwrap().port();
    let serve = |_: &str| Reply::Body(200, KEY_AUTHORIZATION.into());
    let v6_server = HttpServer::on(v6, std::sync::Arc::new(serve), None);
    let v4_server = HttpServer::on(v4, std::sync::Arc::new(serve), None);
    let dns = ChallTestSrv::start().await;
    let va = Va::new(config(port, 1, Some(dns.dns))).unwrap();
    let records = va
        .validate(
            Challenge::Http01,
            &name("both.example.com"),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap();
    assert_eq!(records[0].address_used, Some("::1".parse().unwrap()));
    assert_eq!(v6_server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(v4_server.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn http_01_for_a_name_resolving_to_denied_addresses_connects_nowhere() {
    let dns = ChallTestSrv::start().await;
    let server = HttpServer::start("127.0.0.1", |_: &str| {
        Reply::Body(200, KEY_AUTHORIZATION.into())
    })
    .await;
    let config = VaConfig {
        deny_networks: VaConfig::default_deny_networks(),
        ..config(server.port(), 1, Some(dns.dns))
    };
    let problem = Va::new(config)
        .unwrap()
        .validate(
            Challenge::Http01,
            &name("web.example.com"),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Connection, "{problem}");
    assert!(problem.detail.contains("deny_networks"), "{problem}");
    assert!(problem.detail.contains("127.0.0.1"), "{problem}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn http_01_for_a_name_that_does_not_resolve_is_a_dns_problem() {
    let dns = ChallTestSrv::start().await;
    dns.servfail("gone.example").await;
    let problem = va(&dns)
        .await
        .validate(
            Challenge::Http01,
            &name("gone.example"),
            TOKEN,
            KEY_AUTHORIZATION,
        )
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Dns, "{problem}");
}

#[tokio::test]
async fn tls_alpn_01_for_a_name_sends_it_as_sni() {
    let dns = ChallTestSrv::start().await;
    let (cert, key) = certificate(
        vec![dns_name("alpn.example.com")],
        vec![acme_identifier(KEY_AUTHORIZATION)],
    );
    let server = TlsServer::start("127.0.0.1", tls_config(cert, key, &[b"acme-tls/1"])).await;
    let va = Va::new(config(1, server.port(), Some(dns.dns))).unwrap();
    va.validate(
        Challenge::TlsAlpn01,
        &name("alpn.example.com"),
        TOKEN,
        KEY_AUTHORIZATION,
    )
    .await
    .unwrap();
    assert_eq!(
        server.server_names(1).await,
        vec![Some("alpn.example.com".to_string())]
    );
}

const CA: &str = "ca.example";
const ACCOUNT: &str = "https://ca.example/acme/acct/7";

async fn caa(
    va: &Va,
    ident: &str,
    wildcard: bool,
    method: Challenge,
) -> Result<(), ca_acme::Problem> {
    va.check_caa(&name(ident), wildcard, &[CA.to_string()], ACCOUNT, method)
        .await
}

#[tokio::test]
async fn caa_follows_the_tree_and_its_records() {
    let dns = ChallTestSrv::start().await;
    let va = va(&dns).await;
    // No record anywhere.
    caa(&va, "free.example.net", false, Challenge::Http01)
        .await
        .unwrap();

    // A record on the parent applies to the children.
    dns.add_caa("example.com", &[("issue", "other-ca.example")])
        .await;
    let problem = caa(&va, "a.b.example.com", false, Challenge::Http01)
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Caa, "{problem}");
    assert!(
        problem.detail.contains("CAA record for example.com"),
        "{problem}"
    );
    assert!(problem.detail.contains("other-ca.example"), "{problem}");

    // A record on the child overrides the parent's.
    dns.add_caa(
        "ours.example.com",
        &[("issue", "CA.example; validationmethods=dns-01")],
    )
    .await;
    caa(&va, "www.ours.example.com", false, Challenge::Dns01)
        .await
        .unwrap();
    // ... with its validationmethods.
    let problem = caa(&va, "ours.example.com", false, Challenge::Http01)
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Caa, "{problem}");

    // issuewild for wildcards.
    dns.add_caa("wild.example.org", &[("issue", CA), ("issuewild", ";")])
        .await;
    caa(&va, "wild.example.org", false, Challenge::Dns01)
        .await
        .unwrap();
    let problem = caa(&va, "wild.example.org", true, Challenge::Dns01)
        .await
        .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Caa, "{problem}");

    // accounturi.
    dns.add_caa(
        "acct.example.org",
        &[(
            "issue",
            "ca.example; accounturi=https://ca.example/acme/acct/8",
        )],
    )
    .await;
    assert_eq!(
        caa(&va, "acct.example.org", false, Challenge::Dns01)
            .await
            .unwrap_err()
            .kind,
        ProblemType::Caa
    );
    dns.add_caa(
        "mine.example.org",
        &[("issue", &format!("ca.example; accounturi={ACCOUNT}"))],
    )
    .await;
    caa(&va, "mine.example.org", false, Challenge::Dns01)
        .await
        .unwrap();

    // IP identifiers have no CAA.
    va.check_caa(
        &Ident::Ip("192.0.2.1".parse().unwrap()),
        false,
        &[CA.into()],
        ACCOUNT,
        Challenge::Http01,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn caa_with_a_failing_lookup_is_a_dns_problem() {
    let dns = ChallTestSrv::start().await;
    dns.servfail("broken.example.com").await;
    let problem = caa(
        &va(&dns).await,
        "www.broken.example.com",
        false,
        Challenge::Http01,
    )
    .await
    .unwrap_err();
    assert_eq!(problem.kind, ProblemType::Dns, "{problem}");
    assert!(
        problem
            .detail
            .contains("SERVFAIL looking up CAA for broken.example.com"),
        "{problem}"
    );
}
