//! Revocation and holds as relying parties see them: the revoke and release-hold answers,
//! complete and delta CRLs judged by `openssl crl`, `openssl verify -crl_check` and pkilint's
//! CRL linter, and OCSP answers for held certificates.

use e2e_tests::prelude::*;
use serde_json::Value;

/// RFC 5280 reasonCode values.
const KEY_COMPROMISE: u8 = 1;
const SUPERSEDED: u8 = 4;
const CERTIFICATE_HOLD: u8 = 6;
const REMOVE_FROM_CRL: u8 = 8;

fn serial_of(v: &Value) -> String {
    v["serial"].as_str().expect("serial").to_string()
}

/// When the certificate `bad` was revoked as keyCompromise with this invalidity date.
const INVALID_SINCE: &str = "2025-01-02T03:04:05Z";

#[test]
fn revoked_certificates_are_on_the_crl_and_openssl_rejects_them() {
    let s = Server::fresh();
    let good = s.issue(&server_csr("good.example.com"), "tls-server", None);
    let bad = s.issue(&server_csr("bad.example.com"), "tls-server", None);
    let old = s.issue(&server_csr("old.example.com"), "tls-server", None);
    let plain = s.issue(&server_csr("plain.example.com"), "tls-server", None);
    let (good_sn, bad_sn, old_sn) = (serial_of(&good), serial_of(&bad), serial_of(&old));
    let plain_sn = serial_of(&plain);

    // A CRL is generated at start: empty, valid, lint-clean; its delta too.
    let start = s.check_crl(&s.crl(), "start");
    assert!(start.delta_base.is_none(), "GET /crl is a delta CRL");
    assert!(
        start.entries.is_empty(),
        "CRL at start lists {:?}",
        start.entries
    );
    let start_delta = s.check_crl(&s.delta_crl(), "start-delta");
    assert!(
        start_delta.delta_base.is_some_and(|b| b <= start.number),
        "delta at start: Delta CRL Indicator {:?} vs complete CRL {}",
        start_delta.delta_base,
        start.number
    );

    let revoked_at = revoke_for_key_compromise(&s, &bad);
    // superseded, no invalidity date.
    let r = s.revoke(&old_sn, "superseded", None);
    assert_eq!(r.status, 200, "revoke superseded: {r}");
    assert_eq!(r.json["status"], "revoked", "{r}");
    assert!(
        r.json["revocation"]["invalidity_date"].is_null(),
        "invalidity_date should be null when not given: {r}"
    );
    // unspecified: the API says so; the CRL entry carries no reason code (RFC 5280
    // section 5.3.1: the reasonCode SHOULD be absent rather than unspecified).
    s.revoke_ok(&plain_sn, "unspecified");
    assert_eq!(s.record(&good_sn)["status"], "valid");

    // The served CRL does not change before a generation (interval 60 s by default).
    let gen = s.generate_crl();
    let crl_der = s.crl();
    assert_eq!(
        gen["bytes"].as_u64(),
        Some(crl_der.len() as u64),
        "generate's bytes vs GET /crl: {gen}"
    );
    let crl = s.check_crl(&crl_der, "after-revoke");
    assert_eq!(gen["crl_number"].as_u64().map(u128::from), Some(crl.number));
    assert_eq!(gen["entries"], 3, "generate's entries: {gen}");
    assert!(
        crl.number > start.number,
        "CRL number {} after {}",
        crl.number,
        start.number
    );
    check_crl_entries(&crl, [&bad_sn, &old_sn, &plain_sn, &good_sn], revoked_at);

    // openssl verify -crl_check: the revoked leaf is refused, the valid one accepted.
    let (ok, out) = openssl_verify_crl(s.ca(), &[&crl], &s.leaf_file(&good));
    assert!(
        ok,
        "openssl verify -crl_check refused the valid leaf:\n{out}"
    );
    let (ok, out) = openssl_verify_crl(s.ca(), &[&crl], &s.leaf_file(&bad));
    assert!(
        !ok && out.contains("certificate revoked"),
        "openssl verify -crl_check did not refuse the revoked leaf:\n{out}"
    );
    check_delta_after_revocations(&s, (&start, &crl), [&bad_sn, &old_sn, &plain_sn]);
}

/// keyCompromise with an invalidity date ([`INVALID_SINCE`]): the answer and GET show the
/// revocation; returns its `revoked_at`.
fn revoke_for_key_compromise(s: &Server, bad: &Value) -> i64 {
    let bad_sn = serial_of(bad);
    let before = now_unix();
    let r = s.revoke(&bad_sn, "keyCompromise", Some(INVALID_SINCE));
    assert_eq!(r.status, 200, "revoke keyCompromise: {r}");
    let v = &r.json;
    assert_eq!(v["serial"], bad_sn.as_str(), "revoke answer: {v}");
    assert_eq!(v["certificate"], bad["certificate"], "revoke answer: {v}");
    assert_eq!(v["status"], "revoked", "revoke answer: {v}");
    assert_eq!(v["revocation"]["reason"], "keyCompromise", "{v}");
    let revoked_at = parse_rfc3339(v["revocation"]["revoked_at"].as_str().unwrap_or("missing"));
    assert!(
        revoked_at >= before - 2 && revoked_at <= now_unix() + 2,
        "revoked_at {revoked_at} is not now: {v}"
    );
    assert_eq!(
        parse_rfc3339(
            v["revocation"]["invalidity_date"]
                .as_str()
                .unwrap_or("missing")
        ),
        parse_rfc3339(INVALID_SINCE),
        "invalidity_date: {v}"
    );
    // GET answers the same state.
    let rec = s.record(&bad_sn);
    for field in ["status", "revocation", "certificate", "serial"] {
        assert_eq!(rec[field], v[field], "GET after revoke: {field} in {rec}");
    }
    revoked_at
}

/// The complete CRL after the revocations lists exactly the three revoked certificates with
/// their reasons (none for unspecified) and the invalidity date, as x509-parser and
/// `openssl crl -text` read them. `bad` was revoked at `revoked_at`.
fn check_crl_entries(crl: &Crl, [bad_sn, old_sn, plain_sn, good_sn]: [&str; 4], revoked_at: i64) {
    assert_eq!(crl.entries.len(), 3, "CRL entries: {:?}", crl.entries);
    let e = crl
        .entry(bad_sn)
        .unwrap_or_else(|| panic!("{bad_sn} not on the CRL:\n{}", crl.text));
    assert_eq!(e.reason, Some(KEY_COMPROMISE), "{e:?}");
    assert_eq!(
        e.invalidity_date,
        Some(parse_rfc3339(INVALID_SINCE)),
        "{e:?}"
    );
    assert_eq!(
        e.revoked_at, revoked_at,
        "revocationDate vs revoked_at: {e:?}"
    );
    let e = crl
        .entry(old_sn)
        .unwrap_or_else(|| panic!("{old_sn} not on the CRL:\n{}", crl.text));
    assert_eq!(e.reason, Some(SUPERSEDED), "{e:?}");
    assert_eq!(e.invalidity_date, None, "{e:?}");
    let e = crl
        .entry(plain_sn)
        .unwrap_or_else(|| panic!("{plain_sn} not on the CRL:\n{}", crl.text));
    assert_eq!(
        e.reason, None,
        "unspecified should be written as no reason code: {e:?}"
    );
    assert!(
        crl.entry(good_sn).is_none(),
        "the valid certificate is on the CRL"
    );

    // What openssl prints for the entry.
    let text = crl
        .entry_text(bad_sn)
        .unwrap_or_else(|| panic!("openssl crl -text does not list {bad_sn}:\n{}", crl.text));
    assert!(
        text.contains("Key Compromise"),
        "openssl shows no keyCompromise reason:\n{text}"
    );
    assert!(
        text.contains("Invalidity Date") && text.contains("Jan  2 03:04:05 2025 GMT"),
        "openssl shows no invalidity date of {INVALID_SINCE}:\n{text}"
    );
    assert!(
        crl.text.contains("X509v3 CRL Number"),
        "openssl shows no CRL number:\n{}",
        crl.text
    );
}

/// The delta CRL against the CRL of the start lists the three revocations.
fn check_delta_after_revocations(
    s: &Server,
    (start, crl): (&Crl, &Crl),
    [bad_sn, old_sn, plain_sn]: [&str; 3],
) {
    let delta = s.check_crl(&s.delta_crl(), "after-revoke-delta");
    assert_eq!(
        delta.delta_base,
        Some(start.number),
        "Delta CRL Indicator should name the previous complete CRL"
    );
    assert!(
        delta.number >= crl.number,
        "delta CRL number {} below the complete CRL's {}",
        delta.number,
        crl.number
    );
    let mut listed: Vec<&str> = delta.entries.iter().map(|e| e.serial.as_str()).collect();
    listed.sort_unstable();
    let mut want = vec![bad_sn, old_sn, plain_sn];
    want.sort_unstable();
    assert_eq!(listed, want, "delta CRL entries:\n{}", delta.text);
    assert_eq!(
        delta.entry(bad_sn).and_then(|e| e.reason),
        Some(KEY_COMPROMISE)
    );
    assert!(
        delta.text.contains("Delta CRL Indicator"),
        "openssl shows no Delta CRL Indicator:\n{}",
        delta.text
    );
}

#[test]
fn hold_then_release_and_hold_then_revoke() {
    let s = Server::fresh();
    let held = s.issue(&server_csr("held.example.com"), "tls-server", None);
    let sn = serial_of(&held);
    let leaf = s.leaf_file(&held);
    let leaf_s = leaf.to_str().expect("UTF-8 path").to_string();
    let url = format!("{}/ocsp", s.base);

    // On hold: status on_hold, OCSP revoked with certificateHold, on the next CRL.
    let v = s.revoke_ok(&sn, "certificateHold");
    assert!(
        v["revocation"]["revoked_at"].is_string(),
        "no revoked_at: {v}"
    );
    assert_eq!(s.record(&sn)["status"], "on_hold");
    let out = s.ocsp_ask(&url, &["-cert", &leaf_s]);
    assert_eq!(
        ocsp_status(&out, &leaf_s),
        ("revoked".to_string(), Some("certificateHold".to_string())),
        "OCSP for a held certificate:\n{out}"
    );
    s.generate_crl();
    let base = s.check_crl(&s.crl(), "held");
    assert_eq!(
        base.entry(&sn).and_then(|e| e.reason),
        Some(CERTIFICATE_HOLD),
        "held certificate on the CRL:\n{}",
        base.text
    );
    let (ok, out) = openssl_verify_crl(s.ca(), &[&base], &leaf);
    assert!(
        !ok && out.contains("certificate revoked"),
        "openssl verify -crl_check accepted a held leaf:\n{out}"
    );
    a_released_hold_is_valid_again(&s, &held, &base);
    a_hold_can_become_a_revocation_for_good(&s);
}

/// Released: valid again, OCSP good, off the complete CRL, removeFromCRL on the delta
/// against `base`, the CRL that listed the hold.
fn a_released_hold_is_valid_again(s: &Server, held: &Value, base: &Crl) {
    let sn = serial_of(held);
    let leaf = s.leaf_file(held);
    let leaf_s = leaf.to_str().expect("UTF-8 path").to_string();
    let url = format!("{}/ocsp", s.base);
    let r = s.release_hold(&sn);
    assert_eq!(r.status, 200, "release-hold: {r}");
    assert_eq!(r.json["status"], "valid", "release-hold: {r}");
    assert!(r.json["revocation"].is_null(), "release-hold: {r}");
    assert_eq!(s.record(&sn)["status"], "valid");
    let out = s.ocsp_ask(&url, &["-cert", &leaf_s]);
    assert_eq!(
        ocsp_status(&out, &leaf_s).0,
        "good",
        "OCSP after release-hold:\n{out}"
    );
    s.generate_crl();
    let full = s.check_crl(&s.crl(), "released");
    assert!(
        full.entry(&sn).is_none(),
        "released certificate still on the complete CRL:\n{}",
        full.text
    );
    let delta = s.check_crl(&s.delta_crl(), "released-delta");
    assert_eq!(
        delta.delta_base,
        Some(base.number),
        "the delta should be against the CRL that listed the hold"
    );
    let e = delta
        .entry(&sn)
        .unwrap_or_else(|| panic!("released hold not on the delta CRL:\n{}", delta.text));
    assert_eq!(e.reason, Some(REMOVE_FROM_CRL), "{e:?}");
    let text = delta.entry_text(&sn).unwrap_or_default();
    assert!(
        text.contains("Remove From CRL"),
        "openssl shows no removeFromCRL:\n{text}"
    );
    let (ok, out) = openssl_verify_crl(s.ca(), &[&full], &leaf);
    assert!(
        ok,
        "openssl verify -crl_check refused the released leaf:\n{out}"
    );
}

/// A hold may be turned into a revocation for good; then it is no longer on hold.
fn a_hold_can_become_a_revocation_for_good(s: &Server) {
    let url = format!("{}/ocsp", s.base);
    let held2 = s.issue(&server_csr("held2.example.com"), "tls-server", None);
    let sn2 = serial_of(&held2);
    s.revoke_ok(&sn2, "certificateHold");
    let v = s.revoke_ok(&sn2, "keyCompromise");
    assert_eq!(v["status"], "revoked", "{v}");
    let leaf2 = s.leaf_file(&held2);
    let leaf2_s = leaf2.to_str().expect("UTF-8 path");
    let out = s.ocsp_ask(&url, &["-cert", leaf2_s]);
    assert_eq!(
        ocsp_status(&out, leaf2_s),
        ("revoked".to_string(), Some("keyCompromise".to_string())),
        "OCSP after hold then keyCompromise:\n{out}"
    );
    let r = s.release_hold(&sn2);
    assert_error(
        &r,
        409,
        "not_on_hold",
        "release-hold after a revocation for good",
    );
    s.generate_crl();
    let crl = s.check_crl(&s.crl(), "hold-then-revoked");
    assert_eq!(
        crl.entry(&sn2).and_then(|e| e.reason),
        Some(KEY_COMPROMISE),
        "{}",
        crl.text
    );
}
