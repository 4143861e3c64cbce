//! Keys reported compromised are never certified again (CA/Browser Forum Baseline Requirements
//! 6.1.1.3 item 4): once a certificate is revoked for keyCompromise, every request for its key
//! is refused with 422 `key_blocked` (single JSON and DER, batch, same-key renewal of another
//! certificate, enrollment redeemed with a CSR), also after a restart; a revocation for
//! another reason blocks nothing.

use std::path::Path;

use e2e_tests::prelude::*;
use serde_json::{json, Value};

fn serial_of(v: &Value) -> String {
    v["serial"].as_str().expect("serial").to_string()
}

fn assert_key_blocked(r: &Resp, key: &str, what: &str) {
    assert_error(r, 422, "key_blocked", what);
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(key),
        "{what}: the message names the key: {r}"
    );
}

fn issue_json(s: &Server, csr: &Csr) -> Resp {
    s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": csr.pem, "profile": "tls-server"}),
    )
}

/// The refusals on every path, against the server `s` in which `blocked` (a CSR for the
/// compromised key) is blocked and `other` (a certificate's answer) has the same key.
/// Returns how many certificates the good requests among them stored.
fn every_path_refuses(s: &Server, blocked: &Csr, other: &Value, fresh_key: &Path) -> usize {
    let key = csr_spki_sha256(blocked);
    assert_key_blocked(&issue_json(s, blocked), &key, "POST /v1/certificates");
    let r = s.post_raw(
        "/v1/certificates?profile=tls-server",
        Some(&s.tokens.ra),
        "application/pkcs10",
        blocked.der(),
    );
    assert_key_blocked(&r, &key, "POST /v1/certificates, DER form");

    // A batch: the blocked request fails alone.
    let good = server_csr_with_key(fresh_key, "good.blocked.example.com");
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({"requests": [
            {"csr": good.pem, "profile": "tls-server"},
            {"csr": blocked.pem, "profile": "tls-server"},
        ]}),
    );
    assert_eq!(r.status, 200, "batch: {r}");
    let results = r.json["results"].as_array().expect("results");
    assert!(results[0].get("error").is_none(), "batch item 0: {r}");
    assert_eq!(
        results[1]["error"]["code"], "key_blocked",
        "batch item 1: {r}"
    );
    assert_error_shape(&results[1], "batch item 1");

    // Renewal of another certificate with the same key, keeping it: refused; re-keyed to a
    // fresh key: renewed.
    let other_sn = serial_of(other);
    assert_key_blocked(
        &s.renew(&other_sn, None),
        &key,
        "same-key renewal of another certificate",
    );
    let rekey = make_csr_for_key(fresh_key, "ec-p256", "", &[], &[]);
    let r = s.renew(&other_sn, Some(&json!({"csr": rekey.pem})));
    assert_eq!(r.status, 201, "re-key renewal to a fresh key: {r}");

    // An enrollment redeemed with a CSR for the key: refused, and still redeemable.
    let r = s.post(
        "/v1/enrollments",
        &s.tokens.ra,
        &json!({"profile": "tls-server", "subject": "CN=enrolled.blocked.example.com",
                "sans": ["enrolled.blocked.example.com"], "expires_in_hours": 1.0, "max_attempts": 3}),
    );
    assert_eq!(r.status, 201, "POST /v1/enrollments: {r}");
    let (id, code) = (
        r.json["id"].as_str().expect("id").to_string(),
        r.json["code"].as_str().expect("code").to_string(),
    );
    let redeem = |csr: &Csr| {
        s.request(
            reqwest::Method::POST,
            &format!("/v1/enrollments/{id}/redeem"),
            None,
            Some(&json!({"code": code, "csr": csr.pem})),
        )
    };
    assert_key_blocked(&redeem(blocked), &key, "enrollment redeemed with a CSR");
    let r = redeem(&good);
    assert_eq!(
        r.status, 201,
        "the enrollment redeems with another key: {r}"
    );
    3
}

#[test]
fn a_key_compromise_revocation_blocks_the_key_everywhere_and_across_restarts() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    let keys = tmp.path();
    let s = Server::serve(&dir);
    let compromised = fresh_p256_key(keys);
    let superseded = fresh_p256_key(keys);
    let fresh = fresh_p256_key(keys);

    // Another reason blocks nothing: the key of a superseded certificate is certified again,
    // also by a same-key renewal.
    let sup = s.issue(
        &server_csr_with_key(&superseded, "sup-1.blocked.example.com"),
        "tls-server",
        None,
    );
    let sup_2 = s.issue(
        &server_csr_with_key(&superseded, "sup-2.blocked.example.com"),
        "tls-server",
        None,
    );
    s.revoke_ok(&serial_of(&sup), "superseded");
    s.issue(
        &server_csr_with_key(&superseded, "sup-3.blocked.example.com"),
        "tls-server",
        None,
    );
    let r = s.renew(&serial_of(&sup_2), None);
    assert_eq!(r.status, 201, "same-key renewal after superseded: {r}");

    // Two certificates for one key; the first is revoked for keyCompromise.
    let first = s.issue(
        &server_csr_with_key(&compromised, "kc-1.blocked.example.com"),
        "tls-server",
        None,
    );
    let second = s.issue(
        &server_csr_with_key(&compromised, "kc-2.blocked.example.com"),
        "tls-server",
        None,
    );
    s.revoke_ok(&serial_of(&first), "keyCompromise");
    let blocked = server_csr_with_key(&compromised, "kc-3.blocked.example.com");

    // The revocation's audit entry names the blocked key.
    let log = e2e_tests::audit_chain::audit_log(&s);
    let entry = log
        .iter()
        .find(|e| e["action"] == "certificate_revoked" && e["target"] == serial_of(&first))
        .expect("the keyCompromise revocation's audit entry");
    assert_eq!(
        entry["details"]["blocked_key_sha256"].as_str(),
        Some(csr_spki_sha256(&blocked).as_str()),
        "{entry}"
    );

    let before = s.certificate_count();
    let stored = every_path_refuses(&s, &blocked, &second, &fresh);
    assert_eq!(
        s.certificate_count(),
        before + stored,
        "nothing was stored for the blocked key"
    );
    assert!(
        s.metric(r#"ca_errors_total{code="key_blocked"}"#) >= 4.0,
        "refusals are counted by code"
    );
    s.terminate();

    // After a restart the block is read back from the store.
    let s = Server::serve(&dir);
    let key = csr_spki_sha256(&blocked);
    assert_key_blocked(&issue_json(&s, &blocked), &key, "after a restart");
    assert_key_blocked(
        &s.renew(&serial_of(&second), None),
        &key,
        "same-key renewal after a restart",
    );
    s.terminate();
}
