//! CMP (RFC 9483 lightweight profile over RFC 9811 HTTP) with OpenSSL 3.0's `openssl cmp`:
//! enrollments created with the JSON API redeemed by `ir`, `cr` and `p10cr` with
//! password-based MAC protection (senderKID = the enrollment id, secret = its code), each
//! confirmed with certConf/pkiConf; the refusals as CMP error answers with their
//! PKIFailureInfo bit; the audit's `protocol: cmp`.

use e2e_tests::cmp::{CmpRa, CmpServer};
use e2e_tests::prelude::*;
use serde_json::{json, Value};

const SUBJECT: &str = "CN=Maria Silva,O=Example";

fn maria(hours: f64, attempts: u32) -> Value {
    json!({"profile": "tls-client", "subject": SUBJECT, "sans": ["maria@example.com"],
           "expires_in_hours": hours, "max_attempts": attempts})
}

/// The DER certificates of a PEM file.
fn read_cert(path: &std::path::Path) -> Vec<u8> {
    let pem = std::fs::read_to_string(path).expect("reading the certificate openssl saved");
    pem_certs(&pem).pop().expect("a certificate")
}

/// The serial of a DER certificate, as the API writes it (lower-case hex).
fn serial_of(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    hex::encode(cert.raw_serial())
}

fn assert_issued_by_cmp(c: &CmpServer, serial: &str) {
    let entry = issued_entry(c, serial);
    assert_eq!(entry["details"]["protocol"], "cmp", "{entry}");
}

#[test]
fn ir_redeems_an_enrollment_with_its_code_as_mac_secret() {
    let c = CmpServer::start();
    let (id, code) = c.enrollment(&maria(1.0, 3));
    let key = key_file("ec-p256");
    let out = c.file("ir.pem");
    let run = c.ir(".well-known/cmp", &id, &code, &key, &out);
    run.assert_ok("ir");
    assert!(
        run.output.contains("received IP")
            && run.output.contains("sending CERTCONF")
            && run.output.contains("received PKICONF"),
        "ir, certConf, pkiConf:\n{}",
        run.output
    );
    let der = read_cert(&out);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        "O=Example, CN=Maria Silva",
        "the enrollment's subject wins over the certTemplate's"
    );
    openssl_verify(c.s.ca(), &out, "tls-client", "CMP ir certificate");
    pkilint(&out, "CMP ir certificate");
    let serial = serial_of(&der);
    let state = c.enrollment_state(&id);
    assert_eq!(state["state"], "redeemed", "{state}");
    assert_eq!(state["serial"], serial.as_str(), "{state}");
    assert_issued_by_cmp(&c, &serial);
}

#[test]
fn p10cr_and_cr_redeem_enrollments() {
    let c = CmpServer::start();
    // p10cr on the profile's own path, with a CSR whose names are not the enrollment's.
    let (id, code) = c.enrollment(&json!({"profile": "personal",
        "subject": "CN=Maria Silva,SN=Silva,GN=Maria", "sans": ["maria@example.com"],
        "expires_in_hours": 1.0, "max_attempts": 3}));
    let csr = make_csr("ec-p256", "/CN=Someone Else", &[]);
    let csr_file = c.file("p10.csr");
    std::fs::write(&csr_file, &csr.pem).unwrap();
    let out = c.file("p10cr.pem");
    let run = c.openssl_cmp(
        ".well-known/cmp/p/personal",
        &[
            "-cmd",
            "p10cr",
            "-csr",
            csr_file.to_str().unwrap(),
            "-ref",
            &id,
            "-secret",
            &format!("pass:{code}"),
            "-certout",
            out.to_str().unwrap(),
        ],
    );
    run.assert_ok("p10cr");
    assert!(run.output.contains("received CP"), "{}", run.output);
    let der = read_cert(&out);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.subject().to_string(),
        "givenName=Maria, surname=Silva, CN=Maria Silva"
    );
    openssl_verify(c.s.ca(), &out, "personal", "CMP p10cr certificate");
    pkilint(&out, "CMP p10cr certificate");
    assert_issued_by_cmp(&c, &serial_of(&der));

    // An enrollment of another profile is refused on a profile's path.
    let (id, code) = c.enrollment(&maria(1.0, 3));
    let key = key_file("ec-p384");
    let run = c.ir(
        ".well-known/cmp/p/personal",
        &id,
        &code,
        &key,
        &c.file("x.pem"),
    );
    run.assert_refused(
        "wrongAuthority",
        "a tls-client enrollment on the personal path",
    );

    // cr, like ir, redeems it on the default path.
    let out = c.file("cr.pem");
    let run = c.openssl_cmp(
        ".well-known/cmp",
        &[
            "-cmd",
            "cr",
            "-ref",
            &id,
            "-secret",
            &format!("pass:{code}"),
            "-newkey",
            key.to_str().unwrap(),
            "-subject",
            "/CN=x",
            "-certout",
            out.to_str().unwrap(),
        ],
    );
    run.assert_ok("cr");
    assert!(run.output.contains("received CP"), "{}", run.output);
    openssl_verify(c.s.ca(), &out, "tls-client", "CMP cr certificate");
    assert_issued_by_cmp(&c, &serial_of(&read_cert(&out)));
}

#[test]
fn refusals_carry_their_failure_info() {
    let c = CmpServer::start();
    let key = key_file("ec-p256");

    // A wrong secret: badMessageCheck, counted like a wrong code; the limit locks.
    let (id, code) = c.enrollment(&maria(1.0, 2));
    let run = c.ir(".well-known/cmp", &id, "WRONG-CODE", &key, &c.file("a.pem"));
    run.assert_refused("badMessageCheck", "a wrong secret");
    assert!(run.output.contains("1 attempts left"), "{}", run.output);
    let state = c.enrollment_state(&id);
    assert_eq!(state["attempts_left"], 1, "{state}");
    let run = c.ir(".well-known/cmp", &id, "WRONG-CODE", &key, &c.file("b.pem"));
    run.assert_refused("badMessageCheck", "a second wrong secret");
    assert_eq!(c.enrollment_state(&id)["state"], "locked");
    let run = c.ir(".well-known/cmp", &id, &code, &key, &c.file("c.pem"));
    run.assert_refused("notAuthorized", "the right secret after the limit");

    // A second redemption of the same code: duplicateCertReq.
    let (id, code) = c.enrollment(&maria(1.0, 3));
    c.ir(".well-known/cmp", &id, &code, &key, &c.file("d.pem"))
        .assert_ok("first redemption");
    let run = c.ir(".well-known/cmp", &id, &code, &key, &c.file("e.pem"));
    run.assert_refused("duplicateCertReq", "a second redemption");
    assert!(run.output.contains("already redeemed"), "{}", run.output);

    // An expired enrollment: notAuthorized.
    let (id, code) = c.enrollment(&maria(1.0 / 3600.0, 3));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while c.enrollment_state(&id)["state"] != "expired" {
        assert!(
            std::time::Instant::now() < deadline,
            "not expired after 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let run = c.ir(".well-known/cmp", &id, &code, &key, &c.file("f.pem"));
    run.assert_refused("notAuthorized", "an expired enrollment");
    assert!(run.output.contains("expired"), "{}", run.output);

    // An unknown reference: notAuthorized.
    let run = c.ir(
        ".well-known/cmp",
        &"ab".repeat(16),
        &code,
        &key,
        &c.file("g.pem"),
    );
    run.assert_refused("notAuthorized", "an unknown enrollment id");
}

#[test]
fn non_cmp_bodies_are_http_errors() {
    let c = CmpServer::start();
    let url = format!("{}/.well-known/cmp", c.s.base);
    let client = reqwest::blocking::Client::new();
    let r = client
        .post(&url)
        .header("content-type", "application/pkixcmp")
        .body(vec![0x30, 0x03, 0x02, 0x01, 0x00])
        .send()
        .unwrap();
    assert_eq!(r.status(), 400, "not a PKIMessage");
    let r = client
        .post(&url)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 415, "another media type");
    let r = client
        .post(format!("{}/.well-known/cmp/p/nonexistent", c.s.base))
        .header("content-type", "application/pkixcmp")
        .body(vec![0x30, 0x00])
        .send()
        .unwrap();
    assert_eq!(r.status(), 404, "a profile not served");
}

#[test]
fn kur_and_rr_are_signed_by_the_certificate_and_genm_lists_the_ca() {
    let c = CmpServer::start();
    let ca = c.s.ca().file.to_str().unwrap().to_string();
    let (id, code) = c.enrollment(&maria(1.0, 3));
    let old_key = key_file("ec-p256");
    let old = c.file("old.pem");
    c.ir(".well-known/cmp", &id, &code, &old_key, &old)
        .assert_ok("ir");

    // kur with the old certificate and key, for a new key: same subject, new key, audited as
    // a CMP renewal; the answer is signed by the CA (checked by openssl against -trusted).
    let new_key = key_file("ec-p384");
    let new = c.file("new.pem");
    let run = c.kur(&old, &old_key, &new_key, &new);
    run.assert_ok("kur");
    assert!(
        run.output.contains("received KUP") && run.output.contains("received PKICONF"),
        "{}",
        run.output
    );
    let new_der = read_cert(&new);
    let old_der = read_cert(&old);
    let (_, new_cert) = x509_parser::parse_x509_certificate(&new_der).unwrap();
    let (_, old_cert) = x509_parser::parse_x509_certificate(&old_der).unwrap();
    assert_eq!(new_cert.subject(), old_cert.subject());
    assert_ne!(new_cert.public_key().raw, old_cert.public_key().raw);
    openssl_verify(c.s.ca(), &new, "tls-client", "CMP kur certificate");
    pkilint(&new, "CMP kur certificate");
    let new_serial = serial_of(&new_der);
    let log = e2e_tests::audit_chain::audit_log(&c.s);
    let renewed = log
        .iter()
        .find(|e| e["action"] == "certificate_renewed" && e["target"] == new_serial.as_str())
        .unwrap_or_else(|| panic!("no certificate_renewed entry for {new_serial}"));
    assert_eq!(renewed["details"]["protocol"], "cmp", "{renewed}");

    // A kur signed by a key that is not the certificate's is refused.
    let run = c.kur(&old, &new_key, &new_key, &c.file("x.pem"));
    assert!(!run.ok, "a kur signed by another key: {}", run.output);

    // rr for the new certificate, signed with its key: OCSP says revoked (superseded).
    let run = c.openssl_cmp(
        ".well-known/cmp",
        &[
            "-cmd",
            "rr",
            "-cert",
            new.to_str().unwrap(),
            "-key",
            new_key.to_str().unwrap(),
            "-oldcert",
            new.to_str().unwrap(),
            "-revreason",
            "4",
            "-trusted",
            &ca,
        ],
    );
    run.assert_ok("rr");
    assert!(run.output.contains("revocation accepted"), "{}", run.output);
    let leaf = new.to_str().unwrap();
    let out =
        c.s.ocsp_ask(&format!("{}/ocsp", c.s.base), &["-cert", leaf]);
    let (status, reason) = ocsp_status(&out, leaf);
    assert_eq!(status, "revoked", "OCSP after rr:\n{out}");
    assert_eq!(reason.as_deref(), Some("superseded"), "{out}");

    // A revoked certificate signs nothing more: certRevoked.
    let run = c.kur(&new, &new_key, &old_key, &c.file("y.pem"));
    run.assert_refused("certRevoked", "a kur signed by a revoked certificate");

    // genm, unprotected, answered with the CA certificates, signed by the CA.
    let run = c.openssl_cmp(
        ".well-known/cmp",
        &[
            "-cmd",
            "genm",
            "-infotype",
            "caCerts",
            "-subject",
            "/CN=anyone",
            "-unprotected_requests",
            "-trusted",
            &ca,
        ],
    );
    run.assert_ok("genm");
    assert!(
        run.output.contains("received GENP")
            && run
                .output
                .contains("genp contains ITAV of type: id-it-caCerts"),
        "{}",
        run.output
    );
}

/// The `certificate_issued` audit entry of `serial`.
fn issued_entry(c: &CmpServer, serial: &str) -> Value {
    let log = e2e_tests::audit_chain::audit_log(&c.s);
    log.into_iter()
        .find(|e| e["action"] == "certificate_issued" && e["target"] == serial)
        .unwrap_or_else(|| panic!("no certificate_issued entry for {serial}"))
}

#[test]
fn a_registered_ra_signs_ir_p10cr_and_rr() {
    let (c, ra) = CmpServer::start_with_ra();
    let ca = c.s.ca().file.to_str().unwrap().to_string();
    let (ra_cert, ra_key) = (ra.cert.to_str().unwrap(), ra.key.to_str().unwrap());
    let ra_ir = |popo: &str, key: &std::path::Path, subject: &str, out: &std::path::Path| {
        c.signed_ir(
            (&ra.cert, &ra.key),
            key,
            subject,
            &["-popo", popo, "-sans", "device7.example.com"],
            out,
        )
    };

    let ra_rr = |certificate: &std::path::Path| {
        c.openssl_cmp(
            ".well-known/cmp",
            &[
                "-cmd",
                "rr",
                "-cert",
                ra_cert,
                "-key",
                ra_key,
                "-trusted",
                &ca,
                "-oldcert",
                certificate.to_str().unwrap(),
                "-revreason",
                "5",
            ],
        )
    };

    // ir signed by the RA, with the device's own signature POP: the template's names, the
    // RA as requester, protocol cmp; the answer signed by the CA.
    let out = c.file("ra-ir.pem");
    let run = ra_ir("1", &key_file("ec-p256"), "/CN=Device 7/O=Example", &out);
    run.assert_ok("an RA's ir");
    assert!(
        run.output.contains("received IP") && run.output.contains("received PKICONF"),
        "{}",
        run.output
    );
    let der = read_cert(&out);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(cert.subject().to_string(), "CN=Device 7, O=Example");
    openssl_verify(c.s.ca(), &out, "tls-client", "an RA's CMP ir certificate");
    pkilint(&out, "an RA's CMP ir certificate");
    let serial = serial_of(&der);
    let entry = issued_entry(&c, &serial);
    assert_eq!(entry["details"]["protocol"], "cmp", "{entry}");
    assert_eq!(entry["actor"], ra.name.as_str(), "{entry}");

    // raVerified: the RA vouches for the key's possession.
    let out = c.file("ra-verified.pem");
    ra_ir("0", &key_file("ec-p384"), "/CN=Device 8/O=Example", &out)
        .assert_ok("an RA's ir with raVerified");
    openssl_verify(c.s.ca(), &out, "tls-client", "a raVerified certificate");
    pkilint(&out, "a raVerified certificate");

    // The profile still judges the template: a subject attribute it does not allow.
    let run = ra_ir(
        "1",
        &key_file("ec-p256"),
        "/CN=x/UID=not-allowed",
        &c.file("bad.pem"),
    );
    run.assert_refused("badCertTemplate", "a template the profile refuses");

    // p10cr signed by the RA: the CSR's names.
    let csr = make_csr(
        "ec-p256",
        "/CN=Device 9/O=Example",
        &["email:device9@example.com"],
    );
    let csr_file = c.file("ra.csr");
    std::fs::write(&csr_file, &csr.pem).unwrap();
    let p10 = c.file("ra-p10cr.pem");
    c.openssl_cmp(
        ".well-known/cmp",
        &[
            "-cmd",
            "p10cr",
            "-cert",
            ra_cert,
            "-key",
            ra_key,
            "-trusted",
            &ca,
            "-csr",
            csr_file.to_str().unwrap(),
            "-certout",
            p10.to_str().unwrap(),
        ],
    )
    .assert_ok("an RA's p10cr");
    openssl_verify(c.s.ca(), &p10, "tls-client", "an RA's p10cr certificate");
    pkilint(&p10, "an RA's p10cr certificate");
    let p10_der = read_cert(&p10);
    let (_, p10_cert) = x509_parser::parse_x509_certificate(&p10_der).unwrap();
    assert_eq!(p10_cert.subject().to_string(), "CN=Device 9, O=Example");
    assert_eq!(
        issued_entry(&c, &serial_of(&p10_der))["actor"],
        ra.name.as_str()
    );

    // rr signed by the RA for a certificate it requested: revoked, as OCSP says.
    ra_rr(&out).assert_ok("an RA's rr");
    let leaf = out.to_str().unwrap();
    let ocsp =
        c.s.ocsp_ask(&format!("{}/ocsp", c.s.base), &["-cert", leaf]);
    assert_eq!(ocsp_status(&ocsp, leaf).0, "revoked", "{ocsp}");

    // ... but not one it did not request: an enrollment's certificate.
    let (id, code) = c.enrollment(&maria(1.0, 3));
    let theirs = c.file("theirs.pem");
    c.ir(".well-known/cmp", &id, &code, &key_file("ec-p256"), &theirs)
        .assert_ok("ir");
    ra_rr(&theirs).assert_refused(
        "badCertId",
        "an RA revoking another requester's certificate",
    );
}

#[test]
fn only_registered_ras_sign_certificate_requests() {
    let (c, _ra) = CmpServer::start_with_ra();
    // An RA certificate that is not registered: signerNotTrusted.
    let stranger = CmpRa::new(c.s.scratch(), "stranger");
    let run = c.signed_ir(
        (&stranger.cert, &stranger.key),
        &key_file("ec-p256"),
        "/CN=Device 7/O=Example",
        &[],
        &c.file("x.pem"),
    );
    run.assert_refused("signerNotTrusted", "an unregistered RA");

    // A subscriber's certificate signs a kur, not an ir: notAuthorized.
    let (id, code) = c.enrollment(&maria(1.0, 3));
    let (key, cert) = (key_file("ec-p256"), c.file("mine.pem"));
    c.ir(".well-known/cmp", &id, &code, &key, &cert)
        .assert_ok("ir");
    let run = c.signed_ir(
        (&cert, &key),
        &key_file("ec-p384"),
        "/CN=Someone/O=Example",
        &[],
        &c.file("y.pem"),
    );
    run.assert_refused("notAuthorized", "a subscriber-signed ir");
}

/// PBMAC1 (RFC 9481 section 6.1.1) with the tests' own client, which OpenSSL 3.0 lacks: an ir
/// redeems the enrollment, the answer is PBMAC1-protected with the same parameters, certConf
/// is taken; a wrong secret is badMessageCheck and counts as a wrong code.
#[test]
fn pbmac1_protected_ir_and_cert_conf() {
    use der::Encode;
    use e2e_tests::cmp_client::{self as client, ClientKey, Pbmac1, Request};
    let c = CmpServer::start();
    let url = format!("{}/.well-known/cmp", c.s.base);
    let (id, code) = c.enrollment(&maria(1.0, 3));
    let mac = Pbmac1 {
        salt: client::random(16),
        iterations: 10_000,
    };
    let kid = id.as_bytes().to_vec();

    let key = ClientKey::generate();
    let wrong = client::send(
        &url,
        client::encode(
            Request {
                body: client::ir_body(&key),
                sender_kid: Some(kid.clone()),
                transaction: client::random(16),
            },
            Some((&mac, b"WRONG-CODE")),
        ),
    );
    assert_eq!(
        wrong.failure_bits(),
        vec![1],
        "badMessageCheck for a wrong secret"
    );
    assert_eq!(c.enrollment_state(&id)["attempts_left"], 2);

    let transaction = client::random(16);
    let ip = client::send(
        &url,
        client::encode(
            Request {
                body: client::ir_body(&key),
                sender_kid: Some(kid.clone()),
                transaction: transaction.clone(),
            },
            Some((&mac, code.as_bytes())),
        ),
    );
    assert!(
        ip.mac_verifies(&mac, code.as_bytes()),
        "the ip is PBMAC1-protected"
    );
    let der = ip.certificate().expect("an ip with the certificate");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        cert.public_key().raw,
        key.spki().to_der().unwrap().as_slice()
    );
    let file = c.file("pbmac1.pem");
    std::fs::write(&file, to_pem("CERTIFICATE", &der)).unwrap();
    openssl_verify(c.s.ca(), &file, "tls-client", "a PBMAC1 ir certificate");
    pkilint(&file, "a PBMAC1 ir certificate");
    assert_issued_by_cmp(&c, &serial_of(&der));

    let conf = client::send(
        &url,
        client::encode(
            Request {
                body: client::cert_conf_body(&der),
                sender_kid: Some(kid),
                transaction,
            },
            Some((&mac, code.as_bytes())),
        ),
    );
    assert!(
        matches!(conf.message().body, cmpv2::body::PkiBody::PkiConf(_)),
        "pkiConf"
    );
    assert!(conf.mac_verifies(&mac, code.as_bytes()));
    assert_eq!(c.enrollment_state(&id)["state"], "redeemed");
}

/// The general messages OpenSSL 3.0 cannot ask (RFC 9483 section 4.3), with the tests' own
/// client: rootCaCert, certReqTemplate and crlStatusList (the current CRL when the client's
/// is older or absent, no value when it is current), in one unprotected genm answered with
/// the CA's signature.
#[test]
fn genm_answers_root_ca_update_template_and_crl_status() {
    use der::Decode;
    use e2e_tests::cmp_client::{self as client, info, Request};
    let c = CmpServer::start();
    let url = format!("{}/.well-known/cmp", c.s.base);
    let crl = c.s.get("/crl", None);
    assert_eq!(crl.status, 200);
    let (_, parsed) = x509_parser::parse_x509_crl(&crl.bytes).unwrap();
    let this_update = parsed.last_update().to_datetime();
    let utc = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        this_update.year() % 100,
        this_update.month() as u8,
        this_update.day(),
        this_update.hour(),
        this_update.minute(),
        this_update.second()
    );
    let crl_url = format!("{}/crl", c.s.base);
    let ask = |this_update: Option<&str>| {
        client::send(
            &url,
            client::encode(
                Request {
                    body: client::genm_body(&[
                        (info::ROOT_CA_CERT, None),
                        (info::CERT_REQ_TEMPLATE, None),
                        (
                            info::CRL_STATUS_LIST,
                            Some(client::crl_status_list(&crl_url, this_update)),
                        ),
                    ]),
                    sender_kid: None,
                    transaction: client::random(16),
                },
                None,
            ),
        )
    };
    let ca = x509_cert::Certificate::from_der(&c.s.ca().ders[0]).unwrap();

    let genp = ask(None);
    assert!(genp.signed_by(&ca), "the genp is signed by the CA");
    let general = genp.general();
    assert_eq!(
        general,
        vec![
            (info::ROOT_CA_KEY_UPDATE.to_string(), None),
            (info::CERT_REQ_TEMPLATE.to_string(), None),
            (
                info::CRLS.to_string(),
                Some(e2e_tests::cmp_client::tlv(0x30, &crl.bytes))
            ),
        ],
        "no root update, no template beyond the profile, the current CRL"
    );
    // A client whose CRL is the current one gets id-it-crls without value.
    let general = ask(Some(&utc)).general();
    assert_eq!(general[2], (info::CRLS.to_string(), None), "{utc}");
    // Another CRL than this CA's: nothing newer to give.
    let other = client::send(
        &url,
        client::encode(
            Request {
                body: client::genm_body(&[(
                    info::CRL_STATUS_LIST,
                    Some(client::crl_status_list("http://other.example/crl", None)),
                )]),
                sender_kid: None,
                transaction: client::random(16),
            },
            None,
        ),
    );
    assert_eq!(other.general(), vec![(info::CRLS.to_string(), None)]);
}

/// The JSON API's status of `serial` (`valid`, `revoked`).
fn api_status(c: &CmpServer, serial: &str) -> String {
    let r = c.s.get(
        &format!("/v1/certificates/{serial}"),
        Some(&c.s.tokens.auditor),
    );
    assert_eq!(r.status, 200, "GET /v1/certificates/{serial}: {r}");
    r.json["status"].as_str().unwrap_or_default().to_string()
}

/// The target of the only audit entry of `action` whose actor is `actor`.
fn only_target(c: &CmpServer, action: &str, actor: &str) -> String {
    let log = e2e_tests::audit_chain::audit_log(&c.s);
    let found: Vec<_> = log
        .iter()
        .filter(|e| e["action"] == action && e["actor"] == actor)
        .collect();
    assert_eq!(found.len(), 1, "one {action} by {actor}: {found:?}");
    found[0]["target"].as_str().unwrap().to_string()
}

/// certConf after kur and after an RA's ir (RFC 9483 sections 4.1.1, 4.1.3 and 5): when
/// `openssl cmp` cannot verify the new certificate against `-out_trusted` (here a certificate
/// of another CA), it rejects it in certConf, and the server revokes the new certificate
/// (cessationOfOperation, audited) while the renewed one stays good.
#[test]
fn certificates_rejected_in_cert_conf_are_revoked() {
    let (c, ra) = CmpServer::start_with_ra();
    let unrelated = CmpRa::new(c.s.scratch(), "unrelated");
    let out_trusted = ["-out_trusted", unrelated.cert.to_str().unwrap()];
    let (id, code) = c.enrollment(&maria(1.0, 3));
    let old_key = key_file("ec-p256");
    let old = c.file("old.pem");
    c.ir(".well-known/cmp", &id, &code, &old_key, &old)
        .assert_ok("ir");
    let old_serial = serial_of(&read_cert(&old));
    let owner = issued_entry(&c, &old_serial)["actor"]
        .as_str()
        .unwrap()
        .to_string();

    let run = c.kur_with(
        &old,
        &old_key,
        &key_file("ec-p384"),
        &c.file("new.pem"),
        &out_trusted,
    );
    assert!(
        !run.ok && run.output.contains("received PKICONF"),
        "openssl rejects the new certificate in certConf and gets pkiConf:\n{}",
        run.output
    );
    let new_serial = only_target(&c, "certificate_renewed", &owner);
    assert_eq!(api_status(&c, &new_serial), "revoked", "the rejected kup");
    let revoked = only_target(&c, "certificate_revoked", &owner);
    assert_eq!(revoked, new_serial, "the rejection is audited");
    let leaf = old.to_str().unwrap();
    let ocsp =
        c.s.ocsp_ask(&format!("{}/ocsp", c.s.base), &["-cert", leaf]);
    assert_eq!(
        ocsp_status(&ocsp, leaf).0,
        "good",
        "the renewed one:\n{ocsp}"
    );

    let run = c.signed_ir(
        (&ra.cert, &ra.key),
        &key_file("ec-p256"),
        "/CN=Device 9/O=Example",
        &[
            &["-popo", "1", "-sans", "device9.example.com"][..],
            &out_trusted[..],
        ]
        .concat(),
        &c.file("ra.pem"),
    );
    assert!(
        !run.ok && run.output.contains("received PKICONF"),
        "the RA rejects the certificate in certConf:\n{}",
        run.output
    );
    let serial = only_target(&c, "certificate_issued", &ra.name);
    assert_eq!(api_status(&c, &serial), "revoked", "the RA's rejected ip");
    assert_eq!(only_target(&c, "certificate_revoked", &ra.name), serial);
}

/// cmp2021 (RFC 9810 sections 5.3.18 and 7) and certConf in a signer's transactions, with the
/// tests' own client: pvno 3 is answered in pvno 3, hashAlg chooses certHash's hash; a kur
/// or an RA's ir retransmitted under its transactionID gets the same certificate, another
/// request under it is transactionIdInUse; certConf must name the certificate its signer's
/// transaction issued (badCertId for another certHash, badRequest for another signer's
/// transaction), and a rejection revokes it.
#[test]
fn cmp2021_cert_conf_and_transactions() {
    use e2e_tests::cmp_client::{self as client, ClientKey, Pbmac1, Request};
    use sha2::Digest;
    const SHA384: &str = "2.16.840.1.101.3.4.2.2";
    const SHA512: &str = "2.16.840.1.101.3.4.2.3";
    const BAD_REQUEST: usize = 2;
    const BAD_CERT_ID: usize = 4;
    const TRANSACTION_ID_IN_USE: usize = 21;
    const UNSUPPORTED_VERSION: usize = 22;
    let (c, ra) = CmpServer::start_with_ra();
    let url = format!("{}/.well-known/cmp", c.s.base);
    let request = |body: Vec<u8>, kid: Option<Vec<u8>>, transaction: &[u8]| Request {
        body,
        sender_kid: kid,
        transaction: transaction.to_vec(),
    };
    let is_conf = |a: &client::Answer| matches!(a.message().body, cmpv2::body::PkiBody::PkiConf(_));

    // An enrollment redeemed with a MAC-protected ir, confirmed in pvno 3 with hashAlg
    // SHA-512 (the CA signs with ECDSA-SHA256, so the default would be SHA-256).
    let (id, code) = c.enrollment(&maria(1.0, 3));
    let mac = Pbmac1 {
        salt: client::random(16),
        iterations: 1_000,
    };
    let kid = Some(id.as_bytes().to_vec());
    let secret = Some((&mac, code.as_bytes()));
    let key1 = ClientKey::generate();
    let t1 = client::random(16);
    let ip = client::send(
        &url,
        client::encode(request(client::ir_body(&key1), kid.clone(), &t1), secret),
    );
    let cert1 = ip.certificate().expect("an ip");
    let sha256 = sha2::Sha256::digest(&cert1).to_vec();
    let sha512 = sha2::Sha512::digest(&cert1).to_vec();
    let conf = |hash: &[u8], alg: Option<&str>, pvno: u8| {
        let body = client::cert_status_body(hash, alg, false);
        client::send(
            &url,
            client::encode_pvno(request(body, kid.clone(), &t1), pvno, secret),
        )
    };
    let answer = conf(&sha512, Some(SHA512), 2);
    assert_eq!(
        answer.failure_bits(),
        vec![BAD_REQUEST],
        "hashAlg needs pvno 3"
    );
    assert_eq!(answer.pvno(), 2);
    let answer = conf(&sha256, Some(SHA512), 3);
    assert_eq!(
        answer.failure_bits(),
        vec![BAD_CERT_ID],
        "hashAlg SHA-512, SHA-256 hash"
    );
    let answer = conf(&sha512, Some(SHA512), 3);
    assert!(is_conf(&answer), "pkiConf for hashAlg SHA-512");
    assert_eq!(answer.pvno(), 3, "answered in the request's version");
    assert!(answer.mac_verifies(&mac, code.as_bytes()), "over pvno 3");
    let answer = conf(&sha256, None, 3);
    assert!(
        is_conf(&answer),
        "pvno 3 without hashAlg: the signature's hash"
    );
    let answer = client::send(
        &url,
        client::encode_pvno(request(client::genm_body(&[]), None, &t1), 4, None),
    );
    assert_eq!(answer.failure_bits(), vec![UNSUPPORTED_VERSION]);
    assert_eq!(answer.pvno(), 3, "the highest version served");

    // kur signed by the certificate, transaction t2; its retransmission gets the same one.
    let signed = |body: Vec<u8>, t: &[u8], pvno: u8, key: &ClientKey, cert: &[u8]| {
        client::send(
            &url,
            client::encode_signed(request(body, None, t), pvno, key, cert),
        )
    };
    let key2 = ClientKey::generate();
    let t2 = client::random(16);
    let kup = signed(client::kur_body(&key2), &t2, 2, &key1, &cert1);
    let cert2 = kup.certificate().expect("a kup");
    let again = signed(client::kur_body(&key2), &t2, 2, &key1, &cert1);
    assert_eq!(
        again.certificate(),
        Some(cert2.clone()),
        "a retransmitted kur"
    );
    let other = signed(
        client::kur_body(&ClientKey::generate()),
        &t2,
        2,
        &key1,
        &cert1,
    );
    assert_eq!(other.failure_bits(), vec![TRANSACTION_ID_IN_USE]);

    // RA ir, transaction t3, and its retransmission.
    let ra_key = ClientKey::from_pem_file(&ra.key);
    let ra_cert = read_cert(&ra.cert);
    let key3 = ClientKey::generate();
    let t3 = client::random(16);
    let ra_ir = || {
        signed(
            client::ra_ir_body(&key3, "CN=Device 10,O=Example"),
            &t3,
            2,
            &ra_key,
            &ra_cert,
        )
    };
    let ip = ra_ir();
    let cert3 = ip
        .certificate()
        .unwrap_or_else(|| panic!("an ip: {:?}", ip.failure_bits()));
    assert_eq!(
        ra_ir().certificate(),
        Some(cert3.clone()),
        "a retransmitted RA ir"
    );

    // certConf of t2: another certificate's hash is badCertId; another signer's transaction
    // (the RA's t3 signed by the subscriber, the subscriber's t2 by the RA) is badRequest.
    let hash = |cert: &[u8]| sha2::Sha256::digest(cert).to_vec();
    let status =
        |cert: &[u8], rejected: bool| client::cert_status_body(&hash(cert), None, rejected);
    let answer = signed(status(&cert1, false), &t2, 2, &key1, &cert1);
    assert_eq!(
        answer.failure_bits(),
        vec![BAD_CERT_ID],
        "the renewed certificate's hash"
    );
    let answer = signed(status(&cert3, false), &t3, 2, &key1, &cert1);
    assert_eq!(
        answer.failure_bits(),
        vec![BAD_REQUEST],
        "the RA's transaction"
    );
    let answer = signed(status(&cert2, true), &t2, 2, &ra_key, &ra_cert);
    assert_eq!(
        answer.failure_bits(),
        vec![BAD_REQUEST],
        "the subscriber's transaction"
    );
    assert_eq!(api_status(&c, &serial_of(&cert2)), "valid");

    // Rejections in pvno 3 with hashAlg SHA-384: the new certificates revoked, the renewed
    // one valid; the finished transaction's retransmission is transactionIdInUse.
    let reject =
        |cert: &[u8]| client::cert_status_body(&sha2::Sha384::digest(cert), Some(SHA384), true);
    let answer = signed(reject(&cert2), &t2, 3, &key1, &cert1);
    assert!(
        is_conf(&answer) && answer.pvno() == 3,
        "{:?}",
        answer.failure_bits()
    );
    assert_eq!(
        api_status(&c, &serial_of(&cert2)),
        "revoked",
        "the rejected kup"
    );
    assert_eq!(
        api_status(&c, &serial_of(&cert1)),
        "valid",
        "the renewed certificate"
    );
    let again = signed(reject(&cert2), &t2, 3, &key1, &cert1);
    assert!(
        is_conf(&again),
        "a repeated certConf: {:?}",
        again.failure_bits()
    );
    let answer = signed(reject(&cert3), &t3, 3, &ra_key, &ra_cert);
    assert!(is_conf(&answer), "{:?}", answer.failure_bits());
    assert_eq!(
        api_status(&c, &serial_of(&cert3)),
        "revoked",
        "the RA's rejected ip"
    );
    assert_eq!(ra_ir().failure_bits(), vec![TRANSACTION_ID_IN_USE]);
}
