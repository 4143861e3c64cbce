//! Renewal: keeping the key (no CSR) and re-keying (a CSR), the links between old and new
//! serials, idempotent replays, and the refusal to renew revoked or held certificates.

mod common;

use common::*;
use serde_json::{json, Value};
use x509_parser::prelude::{FromDer, X509Certificate};

fn serial_of(v: &Value) -> String {
    v["serial"].as_str().expect("serial").to_string()
}

/// (subjectPublicKeyInfo DER, subject DER) of a certificate PEM.
fn spki_and_subject(pem: &str) -> (Vec<u8>, Vec<u8>) {
    let der = pem_certs(pem).pop().expect("a certificate");
    let (_, cert) = X509Certificate::from_der(&der).expect("certificate parses");
    (
        cert.public_key().raw.to_vec(),
        cert.subject().as_raw().to_vec(),
    )
}

/// Checks a renewal answer: every issuance check of [`check_issued`] for `csr` (whose key,
/// subject and SANs the new certificate must have), `renewed_from`, a new serial, and the
/// links both ways in `GET /v1/certificates/{serial}`.
fn check_renewed(s: &Server, new: &Value, old: &Value, csr: &Csr, profile: &str, days: u32) {
    s.check_issued(new, csr, profile, days);
    let (new_sn, old_sn) = (serial_of(new), serial_of(old));
    assert_ne!(new_sn, old_sn, "renewal kept the serial");
    assert_eq!(
        new["renewed_from"],
        old_sn.as_str(),
        "renewed_from in {new}"
    );
    let new_rec = s.record(&new_sn);
    assert_eq!(new_rec["renewed_from"], old_sn.as_str(), "{new_rec}");
    assert!(new_rec["renewed_by"].is_null(), "{new_rec}");
    assert_eq!(new_rec["status"], "valid", "{new_rec}");
    assert_eq!(new_rec["profile"], profile, "{new_rec}");
    let old_rec = s.record(&old_sn);
    assert_eq!(old_rec["renewed_by"], new_sn.as_str(), "{old_rec}");
    assert_eq!(
        old_rec["subject"], new_rec["subject"],
        "subject in the records"
    );
    assert_eq!(old_rec["sans"], new_rec["sans"], "sans in the records");
}

#[test]
fn keep_key_and_rekey_renewals() {
    let s = Server::fresh();
    let csr = make_csr(
        "ec-p256",
        "/C=BR/O=Acme/CN=renew.example",
        &[
            "DNS:renew.example",
            "DNS:www.renew.example",
            "IP:192.0.2.44",
        ],
    );
    let first = s.issue(&csr, "tls-server", Some(30));

    // Keep the key: no body at all. The profile's default validity (90 days for tls-server).
    let r = s.renew(&serial_of(&first), None);
    assert_eq!(r.status, 201, "renew without a body: {r}");
    let second = r.json;
    check_renewed(&s, &second, &first, &csr, "tls-server", 90);
    let (spki1, subject1) = spki_and_subject(first["certificate"].as_str().expect("PEM"));
    let (spki2, subject2) = spki_and_subject(second["certificate"].as_str().expect("PEM"));
    assert_eq!(spki1, spki2, "keep-key renewal changed the public key");
    assert_eq!(subject1, subject2, "renewal changed the subject");

    // `{}` with a validity: still the same key.
    let r = s.renew(&serial_of(&second), Some(&json!({"validity_days": 45})));
    assert_eq!(r.status, 201, "renew with {{\"validity_days\": 45}}: {r}");
    let third = r.json;
    check_renewed(&s, &third, &second, &csr, "tls-server", 45);
    let r = s.renew(&serial_of(&third), Some(&json!({})));
    assert_eq!(r.status, 201, "renew with {{}}: {r}");
    let fourth = r.json;
    check_renewed(&s, &fourth, &third, &csr, "tls-server", 90);

    // Re-key: the CSR's key; its subject and SANs are ignored.
    let rekey = make_csr("ec-p384", "/CN=ignored.example", &["DNS:ignored.example"]);
    let r = s.renew(
        &serial_of(&fourth),
        Some(&json!({"csr": rekey.pem, "validity_days": 60})),
    );
    assert_eq!(r.status, 201, "re-key renewal: {r}");
    let fifth = r.json;
    let expect = Csr {
        pem: rekey.pem.clone(),
        key_type: rekey.key_type.clone(),
        subj: csr.subj.clone(),
        sans: csr.sans.clone(),
    };
    check_renewed(&s, &fifth, &fourth, &expect, "tls-server", 60);
    let (spki5, subject5) = spki_and_subject(fifth["certificate"].as_str().expect("PEM"));
    assert_ne!(spki5, spki1, "re-key renewal kept the old key");
    assert_eq!(subject5, subject1, "re-key renewal took the CSR's subject");

    // A re-key CSR whose self-signature does not verify is refused.
    let r = s.renew(
        &serial_of(&fifth),
        Some(&json!({"csr": tamper_signature(&rekey)})),
    );
    assert_error(&r, 400, "csr_signature_invalid", "re-key with a bad CSR");

    // Another profile keeps its profile.
    let personal = make_csr(
        "rsa-2048",
        "/C=BR/O=Acme/GN=Maria/SN=Silva/CN=Maria Silva",
        &["email:maria.silva@acme.example"],
    );
    let p1 = s.issue(&personal, "personal", Some(100));
    let r = s.renew(&serial_of(&p1), None);
    assert_eq!(r.status, 201, "renewing a personal certificate: {r}");
    check_renewed(&s, &r.json, &p1, &personal, "personal", 365);
}

#[test]
fn renewal_request_id_replays_and_refusals() {
    let s = Server::fresh();
    let csr = server_csr("renew-idem.example");
    let orig = s.issue(&csr, "tls-server", None);
    let orig_sn = serial_of(&orig);

    let body = json!({"request_id": "renew-1", "validity_days": 20});
    let r = s.renew(&orig_sn, Some(&body));
    assert_eq!(r.status, 201, "renew with request_id: {r}");
    let first = r.json;
    check_renewed(&s, &first, &orig, &csr, "tls-server", 20);
    let again = s.renew(&orig_sn, Some(&body));
    assert_eq!(again.status, 200, "replay of the renewal: {again}");
    for field in [
        "serial",
        "certificate",
        "not_before",
        "not_after",
        "renewed_from",
    ] {
        assert_eq!(
            again.json[field], first[field],
            "replay: {field} differs from the first answer"
        );
    }
    // The replay issued nothing: the old certificate still points at the first renewal.
    assert_eq!(s.record(&orig_sn)["renewed_by"], first["serial"]);
    let r = s.renew(
        &orig_sn,
        Some(&json!({"request_id": "renew-1", "validity_days": 21})),
    );
    assert_error(
        &r,
        409,
        "idempotency_conflict",
        "same request_id, other body",
    );

    // Revoked: refused, and nothing is issued.
    let revoked = s.issue(&server_csr("renew-revoked.example"), "tls-server", None);
    let revoked_sn = serial_of(&revoked);
    s.revoke_ok(&revoked_sn, "superseded");
    let r = s.renew(&revoked_sn, None);
    assert_error(&r, 409, "renewal_refused", "renewing a revoked certificate");
    let r = s.renew(&revoked_sn, Some(&json!({"request_id": "renew-revoked"})));
    assert_error(
        &r,
        409,
        "renewal_refused",
        "renewing a revoked certificate (request_id)",
    );
    assert!(
        s.record(&revoked_sn)["renewed_by"].is_null(),
        "a refused renewal linked a new certificate"
    );

    // On hold: refused; after release: renewable.
    let held = s.issue(&server_csr("renew-held.example"), "tls-server", None);
    let held_sn = serial_of(&held);
    s.revoke_ok(&held_sn, "certificateHold");
    let r = s.renew(&held_sn, None);
    assert_error(&r, 409, "renewal_refused", "renewing a held certificate");
    let r = s.release_hold(&held_sn);
    assert_eq!(r.status, 200, "release-hold: {r}");
    let r = s.renew(&held_sn, None);
    assert_eq!(r.status, 201, "renewing after release-hold: {r}");
}
