//! Issuance on a development CA: every subject key type, every built-in profile, each
//! certificate judged by x509-parser, `openssl verify` and pkilint; the first start's files and
//! the public endpoints.

use std::os::unix::fs::PermissionsExt;

use e2e_tests::prelude::*;

#[test]
fn first_start_creates_the_ca_and_serves_public_endpoints() {
    let s = Server::fresh();
    let mut c = Checks::default();
    for f in [
        "ca-key.pem",
        "ca.pem",
        "config.toml",
        "bootstrap-tokens.json",
    ] {
        let p = s.dir.join(f);
        c.check(p.is_file(), || {
            format!("{} missing after first start", p.display())
        });
    }
    c.check(s.dir.join("db").is_dir(), || "DIR/db missing".into());
    for f in ["ca-key.pem", "bootstrap-tokens.json"] {
        let mode = std::fs::metadata(s.dir.join(f))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        c.check(mode == 0o600, || {
            format!("{f} has mode {mode:o}, expected 600")
        });
    }
    let t = &s.tokens;
    c.check(
        t.ra != t.auditor && t.ra != t.operator && t.auditor != t.operator,
        || format!("bootstrap tokens are not distinct: {t:?}"),
    );

    for path in ["/healthz", "/readyz"] {
        let r = s.get(path, None);
        c.check(r.status == 200, || {
            format!("GET {path} without a token: {r}")
        });
    }

    // GET /ca.pem is public and is DIR/ca.pem.
    let r = s.get("/ca.pem", None);
    c.check(r.status == 200, || format!("GET /ca.pem: {r}"));
    let file = std::fs::read_to_string(s.dir.join("ca.pem")).expect("DIR/ca.pem");
    c.check(pem_certs(&r.text) == pem_certs(&file), || {
        "GET /ca.pem differs from DIR/ca.pem".into()
    });

    // The development root: ECDSA P-256, self-signed, a CA.
    let ca = s.ca();
    let (_, cert) =
        x509_parser::parse_x509_certificate(&ca.ders[0]).expect("the CA certificate parses");
    c.check(cert.issuer().as_raw() == cert.subject().as_raw(), || {
        "the development CA is not self-signed".into()
    });
    let alg = cert.public_key().algorithm.algorithm.to_id_string();
    let curve = cert
        .public_key()
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    c.check(
        alg == "1.2.840.10045.2.1" && curve.as_deref() == Some("1.2.840.10045.3.1.7"),
        || format!("the development CA key is {alg} {curve:?}, expected ECDSA P-256"),
    );
    let key_pem = std::fs::read_to_string(s.dir.join("ca-key.pem")).unwrap_or_default();
    c.check(key_pem.contains("PRIVATE KEY-----"), || {
        "DIR/ca-key.pem is not a PEM private key".into()
    });
    c.finish("first start");
    pkilint_ca(ca, "the development root CA certificate");
}

/// Every subject key type the CA/Browser Forum allow issues under `tls-server`; Ed25519,
/// which the TLS BR do not allow (section 6.1.5), is refused there with
/// `key_type_not_allowed` and issues under `tls-client` (RFC 5280).
#[test]
fn every_subject_key_type_issues_under_tls_server() {
    let s = Server::fresh();
    let key_types = ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"];
    for (i, kt) in key_types.iter().enumerate() {
        let host = format!("{kt}.keys.example.com");
        let csr = make_csr(kt, &format!("/CN={host}"), &[&format!("DNS:{host}")]);
        let days = 30 + i as u32;
        let issued = s.issue(&csr, "tls-server", Some(days));
        s.check_issued(&issued, &csr, "tls-server", days);
        let serial = issued["serial"].as_str().expect("serial");
        check_record(&s.record(serial), &issued, &csr, "tls-server", None);
    }
    let host = "ed25519.keys.example";
    let ed = make_csr("ed25519", &format!("/CN={host}"), &[&format!("DNS:{host}")]);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &serde_json::json!({"csr": ed.pem, "profile": "tls-server", "validity_days": 30}),
    );
    assert_error(&r, 422, "key_type_not_allowed", "Ed25519 under tls-server");
    assert!(
        r.text.contains("ed25519"),
        "the refusal names the key type: {r}"
    );
    let issued = s.issue(&ed, "tls-client", Some(36));
    s.check_issued(&issued, &ed, "tls-client", 36);
    let serial = issued["serial"].as_str().expect("serial");
    check_record(&s.record(serial), &issued, &ed, "tls-client", None);
}

#[test]
fn every_profile_issues() {
    let s = Server::fresh();
    let max_tls = tls_server_max_validity_days();
    // (profile, CSR, identity.subject the RA asserts and the subject the certificate then
    // holds (DER order), validity_days asked, days expected).
    type Case<'a> = (&'a str, Csr, Option<(&'a str, &'a str)>, Option<u32>, u32);
    let cases: Vec<Case> = vec![
        (
            "tls-server",
            make_csr(
                "ec-p256",
                "/CN=www.acme.example.com",
                &[
                    "DNS:www.acme.example.com",
                    "DNS:*.cdn.acme.example.com",
                    "IP:8.8.8.8",
                    "IP:2606:4700:4700::1111",
                ],
            ),
            None,
            Some(90),
            90,
        ),
        // Without validity_days: the profile's default (90 days for tls-server).
        (
            "tls-server",
            make_csr("ec-p256", "", &["DNS:no-subject.acme.example.com"]),
            None,
            None,
            90,
        ),
        // An IP address as the CN, for the longest validity the TLS BR allow today.
        (
            "tls-server",
            make_csr("ec-p384", "/CN=1.1.1.1", &["IP:1.1.1.1"]),
            None,
            Some(max_tls),
            max_tls,
        ),
        // Organization attributes: tls-client (RFC 5280) takes them.
        (
            "tls-client",
            make_csr(
                "ec-p256",
                "/O=Acme/OU=Robots/CN=client-7",
                &["DNS:client7.acme.example", "email:ops@acme.example"],
            ),
            None,
            Some(200),
            200,
        ),
        (
            "tls-client",
            make_csr("ed25519", "/CN=plain-client", &[]),
            None,
            None,
            90,
        ),
        // Individual-validated: the personal name and country asserted by the RA, the CN
        // from the CSR, ordered by the profile; the longest validity (825 days).
        (
            "personal",
            make_csr(
                "ec-p256",
                "/CN=Maria Silva",
                &["email:maria.silva@acme.example"],
            ),
            Some((
                "C=BR,SN=Silva,GN=Maria",
                "/C=BR/GN=Maria/SN=Silva/CN=Maria Silva",
            )),
            Some(825),
            825,
        ),
        // Mailbox-validated, without validity_days: the profile's default (365 days for
        // personal).
        (
            "personal",
            make_csr(
                "rsa-2048",
                "/CN=joao@acme.example",
                &["email:joao@acme.example"],
            ),
            None,
            None,
            365,
        ),
    ];
    for (profile, csr, identity, asked, days) in &cases {
        let (issued, expected) = match identity {
            Some((asserted, subject)) => (
                s.issue_with_identity(csr, profile, *asked, asserted),
                csr.with_subject(subject),
            ),
            None => (s.issue(csr, profile, *asked), csr.clone()),
        };
        s.check_issued(&issued, &expected, profile, *days);
        let serial = issued["serial"].as_str().expect("serial");
        check_record(&s.record(serial), &issued, &expected, profile, None);
        // The RA that asked may read its own certificate.
        let own = s.get(&format!("/v1/certificates/{serial}"), Some(&s.tokens.ra));
        assert_eq!(own.status, 200, "the requesting RA reads {serial}: {own}");
        assert_eq!(own.json["certificate"], issued["certificate"]);
    }
}

#[test]
fn certificate_urls_point_at_this_server() {
    let s = Server::fresh();
    let issued = s.issue(&server_csr("urls.example.com"), "tls-server", None);
    let (crl, ocsp, ca_issuers) = cert_urls(issued["certificate"].as_str().expect("cert"));
    // With the default configuration the URLs derive from the address the server is bound to.
    assert_eq!(
        crl,
        vec![format!("{}/crl", s.base)],
        "CRL distribution point"
    );
    assert_eq!(ocsp, vec![format!("{}/ocsp", s.base)], "AIA OCSP");
    assert_eq!(ca_issuers.len(), 1, "AIA caIssuers: {ca_issuers:?}");
    // caIssuers serves the issuing CA's certificate in DER (RFC 5280 section 4.2.2.1).
    let r = s
        .client()
        .get(&ca_issuers[0])
        .send()
        .expect("GET the caIssuers URL");
    assert_eq!(r.status().as_u16(), 200, "GET {}", ca_issuers[0]);
    let body = r.bytes().expect("body").to_vec();
    let der = match pem_blocks(&String::from_utf8_lossy(&body)).pop() {
        Some((_, der)) => der, // tolerated: PEM
        None => body,
    };
    assert_eq!(
        der,
        s.ca().ders[0],
        "caIssuers does not serve the issuing CA certificate"
    );
}

/// The DER form of `POST /v1/certificates` (docs/API.md): a DER PKCS#10 body with
/// `Content-Type: application/pkcs10` and the options in the query string answers the DER
/// certificate as `application/pkix-cert`, the same certificate the JSON form would store;
/// errors keep the contract's JSON shape.
#[test]
fn der_form_issues_a_der_certificate() {
    let s = Server::fresh();
    let ra = &s.tokens.ra;
    let csr = make_csr(
        "ec-p256",
        "/CN=der.acme.example.com",
        &["DNS:der.acme.example.com"],
    );
    let path = "/v1/certificates?profile=tls-server&validity_days=30&request_id=der-1";
    let r = s.post_raw(path, Some(ra), "application/pkcs10", csr.der());
    assert_eq!(r.status, 201, "DER issuance: {r}");
    assert_eq!(r.content_type, "application/pkix-cert", "DER issuance: {r}");
    let serial = r
        .location
        .strip_prefix("/v1/certificates/")
        .unwrap_or_else(|| panic!("Location {:?} names no certificate", r.location))
        .to_string();
    // The stored certificate is the DER answered; judge it as the JSON answer is judged.
    let record = s.record(&serial);
    let answer = serde_json::json!({
        "serial": serial,
        "certificate": to_pem("CERTIFICATE", &r.bytes),
        "chain": s.ca().ders.iter().map(|d| to_pem("CERTIFICATE", d)).collect::<Vec<_>>(),
        "not_before": record["not_before"],
        "not_after": record["not_after"],
        "profile": "tls-server",
        "status": "valid",
    });
    assert_eq!(
        record["certificate"], answer["certificate"],
        "stored vs answered"
    );
    s.check_issued(&answer, &csr, "tls-server", 30);

    // A repeated request_id answers the same certificate, 200.
    let again = s.post_raw(path, Some(ra), "application/pkcs10", csr.der());
    assert_eq!(again.status, 200, "repeated DER issuance: {again}");
    assert_eq!(
        again.bytes, r.bytes,
        "a replay answers the first certificate"
    );

    der_form_errors_are_the_contracts_json(&s, &csr);
}

/// Errors of the DER form are the contract's JSON.
fn der_form_errors_are_the_contracts_json(s: &Server, csr: &Csr) {
    let ra = &s.tokens.ra;
    let mut c = Checks::default();
    let r = s.post_raw(
        "/v1/certificates",
        Some(ra),
        "application/pkcs10",
        csr.der(),
    );
    c.error(&r, 400, "invalid_request", "DER form without a profile");
    let r = s.post_raw(
        "/v1/certificates?profile=tls-server&colour=blue",
        Some(ra),
        "application/pkcs10",
        csr.der(),
    );
    c.error(
        &r,
        400,
        "invalid_request",
        "DER form with an unknown parameter",
    );
    let r = s.post_raw(
        "/v1/certificates?profile=tls-server",
        Some(ra),
        "application/pkcs10",
        b"\x30\x03\x02\x01\x00".to_vec(),
    );
    c.error(&r, 400, "csr_malformed", "DER form with a malformed CSR");
    let r = s.post_raw(
        "/v1/certificates?profile=no-such-profile",
        Some(ra),
        "application/pkcs10",
        csr.der(),
    );
    c.error(
        &r,
        422,
        "unknown_profile",
        "DER form with an unknown profile",
    );
    let r = s.post_raw(
        "/v1/certificates?profile=tls-server",
        None,
        "application/pkcs10",
        csr.der(),
    );
    c.error(&r, 401, "unauthorized", "DER form without a token");
    c.finish("DER form errors");
}
