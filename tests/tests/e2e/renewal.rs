//! Renewal: keeping the key (no CSR) and re-keying (a CSR), the links between old and new
//! serials, idempotent replays, and the refusal to renew revoked or held certificates.

use e2e_tests::prelude::*;
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
    assert_eq!(new_rec["renewed_by"], json!([]), "{new_rec}");
    assert_eq!(new_rec["status"], "valid", "{new_rec}");
    assert_eq!(new_rec["profile"], profile, "{new_rec}");
    let old_rec = s.record(&old_sn);
    assert_eq!(old_rec["renewed_by"], json!([new_sn]), "{old_rec}");
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
        "/CN=renew.example.com",
        &[
            "DNS:renew.example.com",
            "DNS:www.renew.example.com",
            "IP:8.8.4.4",
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

    // Re-key: the CSR's key; its subject must be the certificate's, its SANs are ignored.
    let rekey = make_csr("ec-p384", "/CN=renew.example.com", &["DNS:ignored.example"]);
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

    // Another profile keeps its profile, and a subject of several attributes, some of them
    // asserted by the RA (the personal name and country) and ordered by the profile.
    let personal = make_csr(
        "rsa-2048",
        "/CN=Maria Silva",
        &["email:maria.silva@acme.example"],
    );
    let p1 = s.issue_with_identity(&personal, "personal", Some(100), "C=BR,SN=Silva,GN=Maria");
    let personal = personal.with_subject("/C=BR/GN=Maria/SN=Silva/CN=Maria Silva");
    s.check_issued(&p1, &personal, "personal", 100);
    let r = s.renew(&serial_of(&p1), None);
    assert_eq!(r.status, 201, "renewing a personal certificate: {r}");
    check_renewed(&s, &r.json, &p1, &personal, "personal", 365);
}

#[test]
fn renewal_request_id_replays_and_refusals() {
    let s = Server::fresh();
    let csr = server_csr("renew-idem.example.com");
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
    assert_eq!(s.record(&orig_sn)["renewed_by"], json!([first["serial"]]));
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
    let revoked = s.issue(&server_csr("renew-revoked.example.com"), "tls-server", None);
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
        s.record(&revoked_sn)["renewed_by"] == json!([]),
        "a refused renewal linked a new certificate"
    );

    // On hold: refused; after release: renewable.
    let held = s.issue(&server_csr("renew-held.example.com"), "tls-server", None);
    let held_sn = serial_of(&held);
    s.revoke_ok(&held_sn, "certificateHold");
    let r = s.renew(&held_sn, None);
    assert_error(&r, 409, "renewal_refused", "renewing a held certificate");
    let r = s.release_hold(&held_sn);
    assert_eq!(r.status, 200, "release-hold: {r}");
    let r = s.renew(&held_sn, None);
    assert_eq!(r.status, 201, "renewing after release-hold: {r}");
}

/// Renewing the same certificate twice keeps both renewals: `renewed_by` lists them, oldest
/// first, in the record, the list view and the export.
#[test]
fn renewing_twice_lists_every_renewal_oldest_first() {
    let s = Server::fresh();
    let orig = s.issue(&server_csr("renew-twice.example.com"), "tls-server", None);
    let orig_sn = serial_of(&orig);
    let r = s.renew(&orig_sn, None);
    assert_eq!(r.status, 201, "first renewal: {r}");
    let first = serial_of(&r.json);
    let r = s.renew(&orig_sn, Some(&json!({"validity_days": 20})));
    assert_eq!(r.status, 201, "second renewal of the same certificate: {r}");
    let second = serial_of(&r.json);
    assert_ne!(first, second);
    let expect = json!([first, second]);
    let rec = s.record(&orig_sn);
    assert_eq!(
        rec["renewed_by"], expect,
        "both renewals, oldest first: {rec}"
    );
    for sn in [&first, &second] {
        let rec = s.record(sn);
        assert_eq!(rec["renewed_from"], orig_sn.as_str(), "{rec}");
        assert_eq!(rec["renewed_by"], json!([]), "{rec}");
    }
    let r = s.get("/v1/certificates?limit=100", Some(&s.tokens.auditor));
    assert_eq!(r.status, 200, "list: {r}");
    let item = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["serial"] == orig_sn.as_str())
        .unwrap_or_else(|| panic!("{orig_sn} in the list: {r}"))
        .clone();
    assert_eq!(item["renewed_by"], expect, "list view: {item}");
}

/// The `issued` event carries `audit_seq`, the audit entry that recorded the issuance (and,
/// for a renewal, the `certificate_renewed` entry).
#[test]
fn issued_event_points_at_its_audit_entry() {
    let s = Server::fresh();
    let orig_sn = serial_of(&s.issue(&server_csr("issued-seq.example.com"), "tls-server", None));
    let r = s.renew(&orig_sn, None);
    assert_eq!(r.status, 201, "renewal: {r}");
    let new_sn = serial_of(&r.json);
    let log = s.get("/v1/audit?limit=1000", Some(&s.tokens.auditor));
    assert_eq!(log.status, 200, "audit log: {log}");
    let log = log.json["items"].as_array().expect("audit items").clone();
    for (sn, action) in [
        (&orig_sn, "certificate_issued"),
        (&new_sn, "certificate_renewed"),
    ] {
        let r = s.get(
            &format!("/v1/certificates/{sn}/events"),
            Some(&s.tokens.auditor),
        );
        assert_eq!(r.status, 200, "events of {sn}: {r}");
        let items = r.json["items"].as_array().expect("items");
        assert_eq!(items[0]["type"], "issued", "{r}");
        let seq = items[0]["audit_seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("the issued event of {sn} has no audit_seq: {r}"));
        let entry = log
            .iter()
            .find(|e| e["seq"] == seq)
            .unwrap_or_else(|| panic!("audit entry {seq} in the log"));
        assert_eq!(entry["action"], action, "{entry}");
        assert_eq!(entry["target"], sn.as_str(), "{entry}");
        assert_eq!(
            items.iter().filter(|i| i["type"] == "issued").count(),
            1,
            "the issuance is listed once: {r}"
        );
    }
    // The original's events: issued, then its renewal; the renewal's entry is listed once.
    let r = s.get(
        &format!("/v1/certificates/{orig_sn}/events"),
        Some(&s.tokens.auditor),
    );
    let kinds: Vec<&str> = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["type"].as_str())
        .collect();
    assert_eq!(kinds, ["issued", "renewed"], "{r}");
}

/// A re-key renewal CSR naming another subject is refused (a renewal keeps the subject);
/// one with the certificate's subject, or an empty one, is accepted. Under `tls-server`
/// (a CN alone, TLS BR) and under `tls-client` with a subject of several attributes.
#[test]
fn rekey_with_another_subject_is_refused() {
    let s = Server::fresh();
    for (profile, subj, host) in [
        (
            "tls-server",
            "/CN=rekey-subject.example.com",
            "rekey-subject.example.com",
        ),
        (
            "tls-client",
            "/C=BR/O=Acme/CN=rekey-client.example",
            "rekey-client.example",
        ),
    ] {
        let san = format!("DNS:{host}");
        let csr = make_csr("ec-p256", subj, &[&san]);
        let orig_sn = serial_of(&s.issue(&csr, profile, None));
        let other = make_csr("ec-p256", "/CN=other.example", &[&san]);
        let r = s.renew(&orig_sn, Some(&json!({"csr": other.pem})));
        assert_error(
            &r,
            422,
            "subject_not_allowed",
            &format!("{profile}: re-key CSR with another subject"),
        );
        let message = r.json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("renewal keeps") && message.contains("other.example"),
            "{profile}: the message says why: {r}"
        );
        assert_eq!(
            s.record(&orig_sn)["renewed_by"],
            json!([]),
            "{profile}: a refused renewal issued nothing"
        );
        let same = make_csr("ec-p384", subj, &[&san]);
        let r = s.renew(&orig_sn, Some(&json!({"csr": same.pem})));
        assert_eq!(
            r.status, 201,
            "{profile}: re-key with the same subject: {r}"
        );
    }
}

/// A renewal and a revocation of the same certificate sent at once: whichever the store
/// commits first wins. Either the renewal is issued and its audit entry comes before the
/// revocation's, or it is refused (409 `renewal_refused`) and the certificate has no renewal;
/// a renewal never commits after the revocation of the certificate it renews.
#[test]
fn a_renewal_racing_a_revocation_never_commits_after_it() {
    const CERTIFICATES: usize = 40;
    let s = Server::fresh();
    let serials: Vec<String> = (0..CERTIFICATES)
        .map(|i| {
            serial_of(&s.issue(
                &server_csr(&format!("race-{i}.example.com")),
                "tls-server",
                None,
            ))
        })
        .collect();
    let (mut renewed, mut refused) = (0, 0);
    for (i, serial) in serials.iter().enumerate() {
        if race_a_renewal_and_a_revocation(&s, serial, i) {
            renewed += 1;
        } else {
            refused += 1;
        }
    }
    eprintln!("{renewed} renewals first, {refused} revocations first");
    assert_eq!(renewed + refused, CERTIFICATES);
}

/// Renews and revokes `serial` at once (the `i`th race: staggered by 0 to 3 ms, either way
/// round, so that both orders occur) and checks the outcome; returns whether the renewal won.
fn race_a_renewal_and_a_revocation(s: &Server, serial: &str, i: usize) -> bool {
    let delay = |us: usize| std::time::Duration::from_micros(us as u64);
    let (renew_after, revoke_after) = match i % 4 {
        0 => (0, 0),
        1 => (0, 300 * (i % 7)),
        2 => (300 * (i % 5), 0),
        _ => (100, 100 * (i % 9)),
    };
    let (renewal, revocation) = std::thread::scope(|scope| {
        let renewal = scope.spawn(|| {
            std::thread::sleep(delay(renew_after));
            s.renew(serial, None)
        });
        let revocation = scope.spawn(|| {
            std::thread::sleep(delay(revoke_after));
            s.revoke(serial, "superseded", None)
        });
        (renewal.join().unwrap(), revocation.join().unwrap())
    });
    assert_eq!(revocation.status, 200, "revoking {serial}: {revocation}");
    let events = s.get(
        &format!("/v1/certificates/{serial}/events"),
        Some(&s.tokens.auditor),
    );
    assert_eq!(events.status, 200, "{events}");
    let seq_of = |kind: &str| {
        events.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == kind)
            .and_then(|e| e["audit_seq"].as_u64())
    };
    let revoked_at = seq_of("revoked").expect("the revocation is an event");
    match renewal.status {
        201 => {
            let renewed_at = seq_of("renewed").expect("the renewal is an event");
            assert!(
                renewed_at < revoked_at,
                "{serial}: renewed at audit entry {renewed_at}, after its revocation at \
                 {revoked_at}"
            );
            let child = serial_of(&renewal.json);
            assert_eq!(s.record(&child)["status"], "valid", "the renewal {child}");
            true
        }
        409 => {
            assert_error(
                &renewal,
                409,
                "renewal_refused",
                "renewal of a revoked certificate",
            );
            assert!(
                seq_of("renewed").is_none(),
                "{serial}: refused, yet renewed"
            );
            assert_eq!(
                s.record(serial)["renewed_by"],
                json!([]),
                "{serial}: refused, yet renewed"
            );
            false
        }
        _ => panic!("renewing {serial} during its revocation: {renewal}"),
    }
}
