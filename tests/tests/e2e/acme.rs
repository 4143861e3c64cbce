//! ACME (RFC 8555) with real clients over TLS: lego solving http-01, tls-alpn-01 and dns-01
//! (a wildcard among its names), renewing and revoking; certbot issuing and revoking. The
//! server validates against the clients on loopback, every name resolving to 127.0.0.1
//! through pebble-challtestsrv. Each certificate is judged by `openssl verify` and pkilint,
//! its names, and the server's record; certificates of EAB-bound accounts belong to the RA.

use e2e_tests::acme::{AcmeServer, AcmeSetup, Challenge, ACME_RA};
use e2e_tests::prelude::*;

fn with_eab() -> AcmeServer {
    AcmeServer::start(AcmeSetup {
        eab_required: true,
        unlimited_public_rate: false,
    })
}

/// The RA the EAB key was made for lists the certificate (`GET /v1/certificates` with its
/// token), and the record names it as the requester.
fn the_ra_owns(acme: &AcmeServer, serial: &str, what: &str) {
    let listed = acme.listed_serials(&acme.ra_token);
    assert!(
        listed.iter().any(|s| s == serial),
        "{what}: the RA {ACME_RA} does not list {serial}: {listed:?}"
    );
    let record = acme.record(serial);
    assert_eq!(
        record["requester"], ACME_RA,
        "{what}: requester of {serial}: {record}"
    );
}

/// The certificate is revoked for the server (its record) and for OCSP (`openssl ocsp`
/// against the URL the certificate names).
fn revoked_everywhere(acme: &AcmeServer, serial: &str, leaf_pem: &str, what: &str) {
    let record = acme.record(serial);
    assert_eq!(
        record["status"], "revoked",
        "{what}: record of {serial}: {record}"
    );
    // The leaf alone (lego's file holds its issuer after it).
    let first = to_pem("CERTIFICATE", &pem_certs(leaf_pem)[0]);
    let leaf = acme.s.scratch().join(format!("revoked-{serial}.pem"));
    std::fs::write(&leaf, &first).unwrap();
    let (_, ocsp, _) = cert_urls(&first);
    assert!(
        !ocsp.is_empty(),
        "{what}: the certificate names no OCSP URL"
    );
    let leaf = leaf.to_str().unwrap();
    let out = acme.s.ocsp_ask(&ocsp[0], &["-cert", leaf]);
    let (status, _) = ocsp_status(&out, leaf);
    assert_eq!(status, "revoked", "{what}: OCSP for {serial}:\n{out}");
}

#[test]
fn lego_http01_with_eab_issues_renews_and_revokes() {
    let acme = with_eab();
    let name = "lego-http.example.com";
    let lego = acme.lego(&[name], Challenge::Http01, Some(acme.eab(ACME_RA)));
    lego.run();
    let file = lego.certificate_file();
    let first = acme.check_certificate(&file, &[name], "lego http-01");
    the_ra_owns(&acme, &first, "lego http-01");

    // renew --days 999: a new certificate, with a new serial, for the same name.
    lego.renew();
    let renewed = acme.check_certificate(&file, &[name], "lego renew");
    assert_ne!(
        renewed, first,
        "lego renew brought back the same certificate"
    );
    the_ra_owns(&acme, &renewed, "lego renew");

    // revoke: the renewed certificate is revoked; the first one is not.
    let pem = std::fs::read_to_string(&file).unwrap();
    lego.revoke();
    revoked_everywhere(&acme, &renewed, &pem, "lego revoke");
    assert_eq!(
        acme.record(&first)["status"],
        "valid",
        "revoking the renewed certificate left the first one valid"
    );
    acme.s.terminate();
}

#[test]
fn lego_tls_alpn01_with_eab() {
    let acme = with_eab();
    let name = "lego-tls.example.com";
    // The directory says EAB is required (RFC 8555 section 7.1.1), so lego without it
    // refuses to register.
    let directory = acme.api("GET", "/acme/directory", None, None);
    assert_eq!(
        directory.json["meta"]["externalAccountRequired"], true,
        "GET /acme/directory: {directory}"
    );
    let out = acme.lego(&[name], Challenge::TlsAlpn01, None).run_refused();
    assert!(
        out.contains("Server requires External Account Binding"),
        "lego without EAB: {out}"
    );
    let lego = acme.lego(&[name], Challenge::TlsAlpn01, Some(acme.eab(ACME_RA)));
    lego.run();
    let serial = acme.check_certificate(&lego.certificate_file(), &[name], "lego tls-alpn-01");
    the_ra_owns(&acme, &serial, "lego tls-alpn-01");
    acme.s.terminate();
}

#[test]
fn lego_dns01_with_a_wildcard_and_eab() {
    let acme = with_eab();
    let names = ["lego-dns.example.com", "*.lego-dns.example.com"];
    let lego = acme.lego(&names, Challenge::Dns01, Some(acme.eab(ACME_RA)));
    lego.run();
    let serial = acme.check_certificate(&lego.certificate_file(), &names, "lego dns-01");
    the_ra_owns(&acme, &serial, "lego dns-01");
    acme.s.terminate();
}

#[test]
fn certbot_issues_and_revokes_without_eab() {
    let acme = AcmeServer::start(AcmeSetup {
        eab_required: false,
        unlimited_public_rate: false,
    });
    let name = "certbot.example.com";
    let certbot = acme.certbot(None);
    certbot.certonly(&[name]);
    let file = certbot.cert_file(name);
    let serial = acme.check_certificate(&file, &[name], "certbot certonly");
    // No EAB: the certificate is no RA's.
    let listed = acme.listed_serials(&acme.ra_token);
    assert!(
        !listed.contains(&serial),
        "the RA {ACME_RA} lists {serial}, which no account of it ordered"
    );
    let pem = std::fs::read_to_string(&file).unwrap();
    certbot.revoke(&file);
    revoked_everywhere(&acme, &serial, &pem, "certbot revoke");
    acme.s.terminate();
}

#[test]
fn certbot_with_eab() {
    let acme = with_eab();
    let name = "certbot-eab.example.com";
    let certbot = acme.certbot(Some(acme.eab(ACME_RA)));
    certbot.certonly(&[name]);
    let serial = acme.check_certificate(&certbot.cert_file(name), &[name], "certbot with EAB");
    the_ra_owns(&acme, &serial, "certbot with EAB");
    acme.s.terminate();
}

/// `ca-bench --mode acme`, the load generator of bench/acme-vs-pebble.sh, completes whole
/// orders against the server without an error, and reads the challenge's answer as lego does:
/// the server answers `valid` once the validation is done (within `[acme]
/// challenge_answer_wait_ms`), so no order polls its authorization and each takes 5 JWS.
#[test]
fn ca_bench_completes_orders_on_the_valid_challenge_answer() {
    let acme = AcmeServer::start(AcmeSetup {
        eab_required: false,
        unlimited_public_rate: true,
    });
    let report = acme.clients.path().join("ca-bench.json");
    let (http01_port, ca_file) = (acme.http01_port.to_string(), acme.ca_file());
    let directory = acme.directory();
    let mut bench = std::process::Command::new(e2e_tests::binary::bench_bin());
    bench.args([
        "--mode",
        "acme",
        "--url",
        &directory,
        "--http01-port",
        &http01_port,
    ]);
    // A name and an account's hourly orders (300) to spare for every order of the second:
    // each order validates, none is refused.
    bench.args(["--connections", "2", "--accounts", "16", "--duration", "1"]);
    bench.args(["--csrs", "5000", "--limit-seconds", "0"]);
    bench
        .arg("--ca-file")
        .arg(&ca_file)
        .arg("--json")
        .arg(&report);
    acme.run_client("ca-bench --mode acme", &mut bench);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("ca-bench's JSON report"))
            .expect("ca-bench's report is JSON");
    assert!(
        report["orders"].as_u64().unwrap_or(0) > 0,
        "no order completed: {report}"
    );
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");
    assert!(
        report["outcome"]["http01_answered"].as_u64() >= report["orders"].as_u64(),
        "an order completed without its http-01 challenge fetched: {report}"
    );
    assert_eq!(report["authz_polls_per_order"], 0.0, "{report}");
    assert_eq!(report["jws_per_order"], 5.0, "{report}");
}
