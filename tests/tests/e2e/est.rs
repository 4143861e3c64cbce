//! EST (RFC 7030, RFC 8951) as devices speak it, with curl and openssl over TLS: the CA
//! certificates, CSR attributes, enrolment with an enrolment's id and one-time code as HTTP
//! Basic credentials (single use, counted attempts, lock, expiry, the enrolment's names win),
//! enrolment by an RA (bearer token, client certificate), re-enrolment with the certificate
//! being renewed as the TLS client certificate (keep-key, re-key, revoked and foreign
//! certificates refused), server-side key generation, bad input answered 4xx, the audit's
//! `protocol: est`, and the metrics.

use std::path::Path;

use e2e_tests::est::*;
use e2e_tests::prelude::*;
use serde_json::{json, Value};

/// An enrolment under `tls-client` for a device.
fn device(name: &str, attempts: u32) -> Value {
    json!({"profile": "tls-client", "subject": format!("CN={name},O=Example"),
           "sans": [format!("{name}.example")], "expires_in_hours": 1, "max_attempts": attempts})
}

/// curl's arguments to POST `csr` (an EST base64 body) as `application/pkcs10`, with `auth`.
fn post_csr<'a>(csr: &'a Path, auth: &[&'a str]) -> Vec<String> {
    let mut args: Vec<String> = ["-H", "Content-Type: application/pkcs10", "--data-binary"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(format!("@{}", csr.display()));
    args.extend(auth.iter().map(|s| s.to_string()));
    args
}

fn est(s: &Server, path: &str, args: &[String]) -> Curl {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    curl(s, path, &args)
}

/// Enrols `name` with Basic credentials and a new P-256 key: (certificate file, key file).
fn enrol(s: &Server, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let tmp = s.scratch();
    let (id, code) = create_enrolment(s, &device(name, 3));
    let key = fresh_p256_key(tmp);
    let csr = est_csr(tmp, &key, &format!("/CN={name}"), &[]);
    let user = format!("{id}:{code}");
    let r = est(
        s,
        "/.well-known/est/simpleenroll",
        &post_csr(&csr, &["-u", &user]),
    );
    assert_eq!(r.status, 200, "simpleenroll: {}", r.text());
    let (_, cert) = print_certs(tmp, &r.body);
    (cert, key)
}

#[test]
fn est_enrolment_with_one_time_codes_as_curl_and_openssl_do_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    // EST disabled (the default): its paths do not exist.
    let plain = Server::serve(&dir);
    let r = plain.get("/.well-known/est/cacerts", None);
    assert_eq!(r.status, 404, "EST disabled: {r}");
    plain.terminate();
    est_on(&dir, "");
    let s = Server::serve(&dir);
    let work = s.scratch().to_path_buf();

    // cacerts: a certs-only PKCS#7 with the CA certificate, read by openssl.
    let r = curl(&s, "/.well-known/est/cacerts", &[]);
    assert_eq!(r.status, 200, "cacerts: {}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/pkcs7-mime; smime-type=certs-only")
    );
    let (certs, _) = print_certs(&work, &r.body);
    let ca_pem = std::fs::read_to_string(s.dir.join("ca.pem")).unwrap();
    let ca_body: String = ca_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let printed: String = certs.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        printed.contains(&ca_body),
        "the CA certificate is in cacerts: {certs}"
    );

    // csrattrs: the key algorithms of tls-client, as DER openssl parses.
    let r = curl(&s, "/.well-known/est/csrattrs", &[]);
    assert_eq!(r.status, 200, "csrattrs: {}", r.text());
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/csrattrs")
    );
    let attrs = work.join("attrs.b64");
    std::fs::write(&attrs, &r.body).unwrap();
    let parsed = openssl(&[
        "asn1parse",
        "-inform",
        "PEM",
        "-in",
        attrs.to_str().unwrap(),
    ]);
    assert!(
        parsed.contains("id-ecPublicKey") && parsed.contains("prime256v1"),
        "{parsed}"
    );

    // simpleenroll with the enrolment's id and code: the enrolment's subject wins.
    let (id, code) = create_enrolment(&s, &device("device-1", 2));
    let key = fresh_p256_key(&work);
    let csr = est_csr(&work, &key, "/CN=something else", &[]);
    let user = format!("{id}:{code}");
    let r = est(
        &s,
        "/.well-known/est/simpleenroll",
        &post_csr(&csr, &["-u", &user]),
    );
    assert_eq!(r.status, 200, "simpleenroll: {}", r.text());
    assert_eq!(r.header("x-est-subject-replaced").as_deref(), Some("true"));
    let (_, cert) = print_certs(&work, &r.body);
    openssl_verify(&est_ca(&s), &cert, "tls-client", "an EST certificate");
    pkilint(&cert, "an EST certificate");
    let (subject, _, pubkey) = subject_serial_key(&cert);
    assert_eq!(subject, "CN=device-1,O=Example", "the enrolment's subject");
    let own = openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"]);
    assert_eq!(pubkey, own, "the CSR's key is certified");

    // The code works once.
    let r = est(
        &s,
        "/.well-known/est/simpleenroll",
        &post_csr(&csr, &["-u", &user]),
    );
    assert_eq!(r.status, 409, "a second use: {}", r.text());
    assert!(r.text().contains("redeemed"), "{}", r.text());

    // Wrong codes count and lock, as in the JSON API; each is 401 with a Basic challenge.
    let (id, code) = create_enrolment(&s, &device("device-2", 2));
    for left in ["1", "0"] {
        let wrong = format!("{id}:{code}x");
        let r = est(
            &s,
            "/.well-known/est/simpleenroll",
            &post_csr(&csr, &["-u", &wrong]),
        );
        assert_eq!(r.status, 401, "a wrong code: {}", r.text());
        assert!(r
            .header("www-authenticate")
            .unwrap_or_default()
            .starts_with("basic"));
        assert!(
            r.text().contains(left),
            "attempts left {left}: {}",
            r.text()
        );
    }
    let right = format!("{id}:{code}");
    let r = est(
        &s,
        "/.well-known/est/simpleenroll",
        &post_csr(&csr, &["-u", &right]),
    );
    assert_eq!(r.status, 423, "locked: {}", r.text());

    // An expired enrolment is refused (a one-second code, polled until expired).
    let mut short = device("device-3", 3);
    short["expires_in_hours"] = json!(1.0 / 3600.0);
    let (id, code) = create_enrolment(&s, &short);
    poll(
        "the one-second enrolment expires",
        std::time::Duration::from_secs(30),
        || {
            let (_, state) = curl_json(
                &s,
                "GET",
                &format!("/v1/enrollments/{id}"),
                &s.tokens.ra,
                None,
            );
            if state["state"] == "expired" {
                Ok(())
            } else {
                Err(state.to_string())
            }
        },
    );
    let user = format!("{id}:{code}");
    let r = est(
        &s,
        "/.well-known/est/simpleenroll",
        &post_csr(&csr, &["-u", &user]),
    );
    assert_eq!(r.status, 410, "expired: {}", r.text());

    // No credentials, an unknown id: 401 with a challenge.
    let r = est(&s, "/.well-known/est/simpleenroll", &post_csr(&csr, &[]));
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").is_some());
    let r = est(
        &s,
        "/.well-known/est/simpleenroll",
        &post_csr(&csr, &["-u", "00:nothing"]),
    );
    assert_eq!(r.status, 401, "{}", r.text());

    bad_requests_are_4xx_in_plain_text(&s, &work);

    // Every EST certificate is audited with protocol est.
    let (status, audit) = curl_json(&s, "GET", "/v1/audit?limit=1000", &s.tokens.auditor, None);
    assert_eq!(status, 200);
    let est_issued = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "certificate_issued" && e["details"]["protocol"] == "est")
        .count();
    assert_eq!(est_issued, 1, "one certificate issued by EST: {audit}");

    // Counted by operation and outcome.
    let bearer = format!("Authorization: Bearer {}", s.tokens.operator);
    let metrics = curl(&s, "/metrics", &["-H", &bearer]).text();
    assert!(
        metrics.contains("ca_est_requests_total{operation=\"simpleenroll\",outcome=\"ok\"} 1")
            && metrics
                .contains("ca_est_requests_total{operation=\"simpleenroll\",outcome=\"401\"}"),
        "{metrics}"
    );
    s.terminate();
}

/// Bad bodies and paths: 400, 404, 415 in text/plain, never 500.
fn bad_requests_are_4xx_in_plain_text(s: &Server, work: &Path) {
    let (id, code) = create_enrolment(s, &device("device-4", 5));
    let user = format!("{id}:{code}");
    let garbage = work.join("garbage.b64");
    for (body, why) in [
        ("not base64 at all!!", "not base64"),
        ("bm90IGEgQ1NS\r\n", "base64 of no CSR"),
        ("", "an empty body"),
    ] {
        std::fs::write(&garbage, body).unwrap();
        let r = est(
            s,
            "/.well-known/est/simpleenroll",
            &post_csr(&garbage, &["-u", &user]),
        );
        assert_eq!(r.status, 400, "{why}: {}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    }
    // A CSR whose signature does not verify (one byte of its signature changed).
    let key = fresh_p256_key(work);
    let der = work.join("tampered.der");
    openssl(&[
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/CN=x",
        "-outform",
        "DER",
        "-out",
        der.to_str().unwrap(),
    ]);
    let mut bytes = std::fs::read(&der).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&der, bytes).unwrap();
    openssl(&[
        "base64",
        "-in",
        der.to_str().unwrap(),
        "-out",
        garbage.to_str().unwrap(),
    ]);
    let r = est(
        s,
        "/.well-known/est/simpleenroll",
        &post_csr(&garbage, &["-u", &user]),
    );
    assert_eq!(r.status, 400, "a tampered CSR: {}", r.text());
    // None of these cost an attempt.
    let (_, state) = curl_json(
        s,
        "GET",
        &format!("/v1/enrollments/{id}"),
        &s.tokens.ra,
        None,
    );
    assert_eq!(state["attempts_left"], 5, "{state}");

    let csr = est_csr(work, &key, "/CN=x", &[]);
    let form = [
        "--data-binary".to_string(),
        format!("@{}", csr.display()),
        "-u".into(),
        user.clone(),
    ];
    let r = est(s, "/.well-known/est/simpleenroll", &form);
    assert_eq!(r.status, 415, "no application/pkcs10: {}", r.text());
    let r = est(
        s,
        "/.well-known/est/unknown/simpleenroll",
        &post_csr(&csr, &["-u", &user]),
    );
    assert_eq!(r.status, 404, "an unknown profile label: {}", r.text());
    let r = curl(s, "/.well-known/est/tls-server/cacerts", &[]);
    assert_eq!(r.status, 404, "a profile EST does not serve: {}", r.text());
    let r = curl(s, "/.well-known/est/personal/cacerts", &[]);
    assert_eq!(r.status, 200, "a labelled profile: {}", r.text());
    // The enrolment is for tls-client, not for the personal label.
    let r = est(
        s,
        "/.well-known/est/personal/simpleenroll",
        &post_csr(&csr, &["-u", &user]),
    );
    assert_eq!(r.status, 403, "another profile's label: {}", r.text());
}

#[test]
fn est_reenrolment_with_the_certificate_being_renewed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    est_on(&dir, "");
    let s = Server::serve(&dir);
    let work = s.scratch().to_path_buf();
    let (cert, key) = enrol(&s, "router-1");
    let (subject, serial, pubkey) = subject_serial_key(&cert);

    // Keep-key: the CSR's key is the certificate's.
    let tls = curl_client_cert(&cert, &key);
    let csr = est_csr(&work, &key, "/O=Example/CN=router-1", &[]);
    let r = est(&s, "/.well-known/est/simplereenroll", &post_csr(&csr, &tls));
    assert_eq!(r.status, 200, "simplereenroll: {}", r.text());
    assert_eq!(r.header("x-est-subject-replaced"), None, "same subject");
    let (renewed, _) = print_certs(&work, &r.body);
    let (_, renewed_file) = print_certs(&work, &r.body);
    openssl_verify(
        &est_ca(&s),
        &renewed_file,
        "tls-client",
        "a renewed certificate",
    );
    pkilint(&renewed_file, "a renewed EST certificate");
    let (subject2, serial2, pubkey2) = subject_serial_key(&renewed_file);
    assert_eq!(
        (subject2.as_str(), pubkey2.as_str()),
        (subject.as_str(), pubkey.as_str()),
        "{renewed}"
    );
    assert_ne!(serial2, serial, "a new serial");

    // Re-key: a CSR for a new key, authenticated by the renewed certificate.
    let new_key = fresh_p256_key(&work);
    let csr = est_csr(&work, &new_key, "/O=Example/CN=router-1", &[]);
    let tls2 = curl_client_cert(&renewed_file, &key);
    let r = est(
        &s,
        "/.well-known/est/simplereenroll",
        &post_csr(&csr, &tls2),
    );
    assert_eq!(r.status, 200, "re-key: {}", r.text());
    let (_, rekeyed) = print_certs(&work, &r.body);
    let (subject3, serial3, pubkey3) = subject_serial_key(&rekeyed);
    let new_pub = openssl(&["pkey", "-in", new_key.to_str().unwrap(), "-pubout"]);
    assert_eq!(
        (subject3.as_str(), pubkey3.as_str()),
        (subject.as_str(), new_pub.as_str())
    );
    assert_ne!(serial3, serial2);

    // A revoked certificate no longer authenticates.
    let (status, body) = curl_json(
        &s,
        "POST",
        &format!("/v1/certificates/{serial}/revoke"),
        &s.tokens.ra,
        Some(&json!({"reason": "superseded"})),
    );
    assert_eq!(status, 200, "revoke: {body}");
    let csr = est_csr(&work, &key, "/O=Example/CN=router-1", &[]);
    let r = est(&s, "/.well-known/est/simplereenroll", &post_csr(&csr, &tls));
    assert_eq!(r.status, 401, "a revoked certificate: {}", r.text());
    assert!(r.text().contains("revoked"), "{}", r.text());

    // A certificate this CA did not issue (self-signed, same subject) is accepted by the TLS
    // handshake and refused by EST.
    let foreign = work.join("foreign.pem");
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        "/O=Example/CN=router-1",
        "-days",
        "1",
        "-out",
        foreign.to_str().unwrap(),
    ]);
    let tls3 = curl_client_cert(&foreign, &key);
    let r = est(
        &s,
        "/.well-known/est/simplereenroll",
        &post_csr(&csr, &tls3),
    );
    assert_eq!(r.status, 401, "a foreign certificate: {}", r.text());
    assert!(r.text().contains("not issued by this CA"), "{}", r.text());
    // Nor is a request without a client certificate renewed.
    let r = est(&s, "/.well-known/est/simplereenroll", &post_csr(&csr, &[]));
    assert_eq!(r.status, 401, "no client certificate: {}", r.text());

    // The enrolment and both renewals are audited with protocol est, requested by the RA
    // that created the enrolment.
    let est = est_audit(&s);
    let (issued, renewed, ra) = (
        json!("certificate_issued"),
        json!("certificate_renewed"),
        json!("bootstrap-ra"),
    );
    assert_eq!(
        est,
        [(&issued, &ra), (&renewed, &ra), (&renewed, &ra)].map(owned),
    );
    s.terminate();
}

#[test]
fn est_by_an_ra_and_server_side_key_generation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    // An RA's client certificate, issued while plain, mapped to role ra.
    let plain = Server::serve(&dir);
    let ra_key = fresh_p256_key(tmp.path());
    let ra_csr = openssl(&[
        "req",
        "-new",
        "-key",
        ra_key.to_str().unwrap(),
        "-subj",
        "/CN=ra-portal",
        "-addext",
        "subjectAltName=DNS:ra.example",
    ]);
    let r = plain.post(
        "/v1/certificates",
        &plain.tokens.ra,
        &json!({"csr": ra_csr, "profile": "tls-client"}),
    );
    assert_eq!(r.status, 201, "{r}");
    let ra_cert = tmp.path().join("ra.pem");
    std::fs::write(&ra_cert, r.json["certificate"].as_str().unwrap()).unwrap();
    plain.terminate();
    est_on(&dir, "");
    configure(
        &dir,
        &[("client_ca_file = \"\"", "client_ca_file = \"ca.pem\"")],
        &format!(
            "\n[[tls.clients]]\ncertificate_sha256 = \"{}\"\nrole = \"ra\"\nname = \"ra-portal\"\n",
            sha256_fingerprint(&ra_cert)
        ),
    );
    let s = Server::serve(&dir);
    let work = s.scratch().to_path_buf();

    // An RA by its bearer token: the CSR's own names, under the profile.
    let key = fresh_p256_key(&work);
    let csr = est_csr(
        &work,
        &key,
        "/CN=sensor-7",
        &["-addext", "subjectAltName=DNS:sensor-7.example"],
    );
    let bearer = format!("Authorization: Bearer {}", s.tokens.ra);
    let r = est(
        &s,
        "/.well-known/est/simpleenroll",
        &post_csr(&csr, &["-H", &bearer]),
    );
    assert_eq!(r.status, 200, "an RA token: {}", r.text());
    let (_, cert) = print_certs(&work, &r.body);
    openssl_verify(&est_ca(&s), &cert, "tls-client", "an EST certificate");
    pkilint(&cert, "an RA's EST certificate");
    assert_eq!(subject_serial_key(&cert).0, "CN=sensor-7");
    // An RA by its client certificate.
    let tls = curl_client_cert(&ra_cert, &ra_key);
    let r = est(&s, "/.well-known/est/simpleenroll", &post_csr(&csr, &tls));
    assert_eq!(r.status, 200, "an RA certificate: {}", r.text());
    // The mapped certificate keeps its API role; another token's role is refused.
    let r = curl(&s, "/v1/enrollments/00", &tls);
    assert_ne!(
        r.status,
        401,
        "the RA certificate still authenticates to the API: {}",
        r.text()
    );
    let auditor = format!("Authorization: Bearer {}", s.tokens.auditor);
    let r = est(
        &s,
        "/.well-known/est/simpleenroll",
        &post_csr(&csr, &["-H", &auditor]),
    );
    assert_eq!(r.status, 403, "an auditor: {}", r.text());

    // serverkeygen: the CA makes a key of the CSR's type; multipart with key and certificate.
    let (id, code) = create_enrolment(&s, &device("meter-9", 3));
    let user = format!("{id}:{code}");
    let r = est(
        &s,
        "/.well-known/est/serverkeygen",
        &post_csr(&csr, &["-u", &user]),
    );
    let cert_pub = plain_serverkeygen_answer(
        &s,
        &r,
        "CN=meter-9,O=Example",
        "a serverkeygen EST certificate",
    );
    assert_ne!(
        cert_pub,
        openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"])
    );
    s.terminate();
}

/// Checks a plain `serverkeygen` answer (RFC 7030 section 4.4.2) as a device would with
/// openssl: a PKCS#8 part whose key is the certificate's, a certificate that verifies and
/// lints, for `subject`. Returns the certificate's public key (PEM).
fn plain_serverkeygen_answer(s: &Server, r: &Curl, subject: &str, what: &str) -> String {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    let work = s.scratch();
    let parts = multipart_parts(r);
    assert!(
        parts[0].0.contains("application/pkcs8\r\n"),
        "{}",
        parts[0].0
    );
    assert!(
        parts[1].0.contains("smime-type=certs-only"),
        "{}",
        parts[1].0
    );
    let generated_pub = der_key_public(&base64_part_to_der(work, &parts[0].1));
    let (_, cert) = print_certs(work, parts[1].1.as_bytes());
    openssl_verify(&est_ca(s), &cert, "tls-client", what);
    pkilint(&cert, what);
    let (got, _, cert_pub) = subject_serial_key(&cert);
    assert_eq!(got, subject, "{what}");
    assert_eq!(
        cert_pub, generated_pub,
        "{what}: the key is the certificate's"
    );
    cert_pub
}

/// Wraps the DER of an EnvelopedData (the eContent `openssl cms -verify -out` writes) in the
/// ContentInfo `openssl cms -decrypt -inform DER` reads (RFC 5652 section 3).
fn enveloped_content_info(enveloped: &[u8]) -> Vec<u8> {
    use der::{Encode, Header, Length, Tag};
    let oid = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.3")
        .to_der()
        .unwrap();
    let explicit = Header::new(
        Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber::N0,
        },
        Length::try_from(enveloped.len()).unwrap(),
    )
    .unwrap()
    .to_der()
    .unwrap();
    let inner = [oid, explicit, enveloped.to_vec()].concat();
    let outer = Header::new(Tag::Sequence, Length::try_from(inner.len()).unwrap())
        .unwrap()
        .to_der()
        .unwrap();
    [outer, inner].concat()
}

#[test]
fn est_serverkeygen_by_an_ra_plain_and_encrypted_to_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    // Two RA client certificates, an RSA one and a P-256 one, mapped to role ra.
    let plain = Server::serve(&dir);
    let rsa_key = key_file("rsa-2048");
    let rsa_cert = tmp.path().join("ra-rsa.pem");
    plain.tls_client_certificate(&rsa_key, "/CN=ra-rsa", &[], &rsa_cert);
    let ec_key = fresh_p256_key(tmp.path());
    let ec_cert = tmp.path().join("ra-ec.pem");
    plain.tls_client_certificate(&ec_key, "/CN=ra-ec", &[], &ec_cert);
    plain.terminate();
    est_on(&dir, "");
    let mapping = |cert: &Path, name: &str| {
        format!(
            "\n[[tls.clients]]\ncertificate_sha256 = \"{}\"\nrole = \"ra\"\nname = \"{name}\"\n",
            sha256_fingerprint(cert)
        )
    };
    configure(
        &dir,
        &[("client_ca_file = \"\"", "client_ca_file = \"ca.pem\"")],
        &(mapping(&rsa_cert, "ra-rsa") + &mapping(&ec_cert, "ra-ec")),
    );
    let s = Server::serve(&dir);
    let work = s.scratch().to_path_buf();
    let bearer = format!("Authorization: Bearer {}", s.tokens.ra);
    let rsa_tls = curl_client_cert(&rsa_cert, &rsa_key);
    let ec_tls = curl_client_cert(&ec_cert, &ec_key);
    const KEYGEN: &str = "/.well-known/est/serverkeygen";

    // An RA by its bearer token: a key of the CSR's type, the CSR's names.
    let csr_key = fresh_p256_key(&work);
    let csr = est_csr(
        &work,
        &csr_key,
        "/CN=sensor-8",
        &["-addext", "subjectAltName=DNS:sensor-8.example"],
    );
    let r = est(&s, KEYGEN, &post_csr(&csr, &["-H", &bearer]));
    plain_serverkeygen_answer(&s, &r, "CN=sensor-8", "RA token serverkeygen");
    // An RA by its client certificate.
    let r = est(&s, KEYGEN, &post_csr(&csr, &rsa_tls));
    plain_serverkeygen_answer(&s, &r, "CN=sensor-8", "RA certificate serverkeygen");

    // Encrypted to the RA's RSA key, named by its client certificate's subjectKeyIdentifier.
    let ski = subject_key_identifier(&rsa_cert);
    let enc_csr = csr_with_decrypt_key_id(&work, "sensor-9", DecryptKeyId::Asymmetric(&ski));
    let r = est(&s, KEYGEN, &post_csr(&enc_csr, &rsa_tls));
    assert_eq!(r.status, 200, "encrypted serverkeygen: {}", r.text());
    let parts = multipart_parts(&r);
    assert!(
        parts[0]
            .0
            .contains("application/pkcs7-mime; smime-type=server-generated-key"),
        "{}",
        parts[0].0
    );
    let signed = base64_part_to_der(&work, &parts[0].1);
    let enveloped = work.join("enveloped.der");
    // The SignedData verifies to the CA (the CA's own certificate signs it, so no S/MIME
    // purpose applies).
    openssl(&[
        "cms",
        "-verify",
        "-inform",
        "DER",
        "-in",
        signed.to_str().unwrap(),
        "-CAfile",
        s.dir.join("ca.pem").to_str().unwrap(),
        "-purpose",
        "any",
        "-binary",
        "-out",
        enveloped.to_str().unwrap(),
    ]);
    let enveloped_ci = work.join("enveloped-ci.der");
    std::fs::write(
        &enveloped_ci,
        enveloped_content_info(&std::fs::read(&enveloped).unwrap()),
    )
    .unwrap();
    let package = work.join("package.der");
    openssl(&[
        "cms",
        "-decrypt",
        "-inform",
        "DER",
        "-in",
        enveloped_ci.to_str().unwrap(),
        "-recip",
        rsa_cert.to_str().unwrap(),
        "-inkey",
        rsa_key.to_str().unwrap(),
        "-binary",
        "-out",
        package.to_str().unwrap(),
    ]);
    // AsymmetricKeyPackage ::= SEQUENCE OF OneAsymmetricKey (RFC 5958): one key, PKCS#8.
    let keys: Vec<der::Any> = der::Decode::from_der(&std::fs::read(&package).unwrap()).unwrap();
    assert_eq!(keys.len(), 1);
    let key_der = work.join("decrypted.der");
    std::fs::write(&key_der, der::Encode::to_der(&keys[0]).unwrap()).unwrap();
    let (_, cert) = print_certs(&work, parts[1].1.as_bytes());
    openssl_verify(&est_ca(&s), &cert, "tls-client", "encrypted serverkeygen");
    pkilint(&cert, "an encrypted serverkeygen certificate");
    let (subject, _, cert_pub) = subject_serial_key(&cert);
    assert_eq!(subject, "CN=sensor-9");
    assert_eq!(
        der_key_public(&key_der),
        cert_pub,
        "the decrypted key is the certificate's"
    );

    // Refusals: an identifier that is not the client certificate's, or without one; an EC
    // recipient (501); a symmetric key (501); a key type the path's profile refuses (422); a role
    // other than ra (403).
    let other = csr_with_decrypt_key_id(&work, "sensor-x", DecryptKeyId::Asymmetric(b"other"));
    let r = est(&s, KEYGEN, &post_csr(&other, &rsa_tls));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("subjectKeyIdentifier"), "{}", r.text());
    let r = est(&s, KEYGEN, &post_csr(&enc_csr, &["-H", &bearer]));
    assert_eq!(r.status, 400, "no client certificate: {}", r.text());
    let ec_ski = subject_key_identifier(&ec_cert);
    let ec_csr = csr_with_decrypt_key_id(&work, "sensor-x", DecryptKeyId::Asymmetric(&ec_ski));
    let r = est(&s, KEYGEN, &post_csr(&ec_csr, &ec_tls));
    assert_eq!(r.status, 501, "{}", r.text());
    assert!(r.text().contains("RSA keys only"), "{}", r.text());
    let kek = csr_with_decrypt_key_id(&work, "sensor-x", DecryptKeyId::Symmetric(b"kek-1"));
    let r = est(&s, KEYGEN, &post_csr(&kek, &rsa_tls));
    assert_eq!(r.status, 501, "{}", r.text());
    let ed_key = work.join("ed25519.key");
    openssl(&[
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        ed_key.to_str().unwrap(),
    ]);
    let ed_csr = est_csr(&work, &ed_key, "/CN=sensor-x", &[]);
    // `personal` allows no Ed25519 key (tls-client does).
    let r = est(
        &s,
        "/.well-known/est/personal/serverkeygen",
        &post_csr(&ed_csr, &["-H", &bearer]),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let auditor = format!("Authorization: Bearer {}", s.tokens.auditor);
    let r = est(&s, KEYGEN, &post_csr(&csr, &["-H", &auditor]));
    assert_eq!(r.status, 403, "an auditor: {}", r.text());

    // Audited with protocol est, the RA as the actor.
    let est = est_audit(&s);
    let issued = json!("certificate_issued");
    let (token_ra, rsa_ra) = (json!("bootstrap-ra"), json!("ra-rsa"));
    assert_eq!(
        est,
        [(&issued, &token_ra), (&issued, &rsa_ra), (&issued, &rsa_ra)].map(owned),
    );
    s.terminate();
}

/// An (action, actor) pair of [`est_audit`], from references.
fn owned((action, actor): (&Value, &Value)) -> (Value, Value) {
    (action.clone(), actor.clone())
}
