//! Refusals of the revocation, hold, renewal, CRL and OCSP endpoints: status codes, error
//! codes and the error shape; OCSP answers malformed requests in OCSP, with HTTP 200.

use e2e_tests::prelude::*;
use reqwest::Method;
use serde_json::json;

/// `OCSPResponse { responseStatus malformedRequest }`.
const MALFORMED: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];

#[test]
fn revocation_refusals() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // A second RA token is made while the server is down.
    Server::serve(dir).terminate();
    let other_ra = create_token(dir, "ra", "other-ra");
    let s = Server::serve(dir);
    let t = s.tokens.clone();
    let mut c = Checks::default();

    let issued = s.issue(&server_csr("refusals.example.com"), "tls-server", None);
    let sn = issued["serial"].as_str().expect("serial").to_string();
    bad_revocation_bodies(&s, &sn, &mut c);
    callers_without_the_right(&s, &sn, &other_ra, &mut c);

    // Serials: unknown 404, malformed 400.
    let kc = json!({"reason": "keyCompromise"});
    let unknown = "41424344454647484142434445464748";
    let r = s.post(&format!("/v1/certificates/{unknown}/revoke"), &t.ra, &kc);
    c.error(&r, 404, "serial_not_found", "revoking an unknown serial");
    let r = s.request(
        Method::POST,
        &format!("/v1/certificates/{unknown}/release-hold"),
        Some(&t.ra),
        None,
    );
    c.error(&r, 404, "serial_not_found", "releasing an unknown serial");
    let r = s.renew(unknown, None);
    c.error(&r, 404, "serial_not_found", "renewing an unknown serial");
    let r = s.post("/v1/certificates/xyz/revoke", &t.ra, &kc);
    c.error(&r, 400, "invalid_serial", "revoking serial xyz");

    state_conflicts(&s, &sn, &mut c);

    // CRL generation is the operator's.
    let r = s.request(Method::POST, "/v1/crl/generate", Some(&t.ra), None);
    c.error(&r, 403, "forbidden", "RA generating a CRL");
    let r = s.request(Method::POST, "/v1/crl/generate", Some(&t.auditor), None);
    c.error(&r, 403, "forbidden", "auditor generating a CRL");
    let r = s.request(Method::POST, "/v1/crl/generate", None, None);
    c.error(&r, 401, "unauthorized", "generating a CRL without a token");
    c.finish("revocation refusals");
}

/// Bad bodies: 400 invalid_request, and the certificate `sn` stays valid.
fn bad_revocation_bodies(s: &Server, sn: &str, c: &mut Checks) {
    let t = &s.tokens;
    let revoke = format!("/v1/certificates/{sn}/revoke");
    for reason in ["removeFromCRL", "bogus", "KeyCompromise", "", "1"] {
        let r = s.post(&revoke, &t.ra, &json!({ "reason": reason }));
        c.error(&r, 400, "invalid_request", &format!("reason {reason:?}"));
    }
    for (body, what) in [
        (json!({}), "no reason"),
        (json!({"reason": 1}), "numeric reason"),
        (
            json!({"reason": "keyCompromise", "invalidity_date": "yesterday"}),
            "invalidity_date not RFC 3339",
        ),
        (
            json!({"reason": "keyCompromise", "extra": true}),
            "unknown field",
        ),
    ] {
        let r = s.post(&revoke, &t.ra, &body);
        c.error(&r, 400, "invalid_request", what);
    }
    let r = s.post_raw(
        &revoke,
        Some(&t.ra),
        "application/json",
        b"{not json".to_vec(),
    );
    c.error(
        &r,
        400,
        "invalid_request",
        "revoke with a body that is not JSON",
    );
    let status = s.record(sn)["status"].clone();
    c.check(status == "valid", || {
        format!("refused revocations changed the status to {status}")
    });
}

/// Roles and ownership: other roles, no token and another RA (`other_ra`) may not revoke,
/// release or renew the certificate `sn`, which stays valid.
fn callers_without_the_right(s: &Server, sn: &str, other_ra: &str, c: &mut Checks) {
    let t = &s.tokens;
    let revoke = format!("/v1/certificates/{sn}/revoke");
    let release = format!("/v1/certificates/{sn}/release-hold");
    let renew = format!("/v1/certificates/{sn}/renew");
    let kc = json!({"reason": "keyCompromise"});
    let r = s.post(&revoke, &t.auditor, &kc);
    c.error(&r, 403, "forbidden", "auditor revoking");
    let r = s.post(&revoke, &t.operator, &kc);
    c.error(&r, 403, "forbidden", "operator revoking");
    let r = s.request(Method::POST, &revoke, None, Some(&kc));
    c.error(&r, 401, "unauthorized", "revoking without a token");
    let r = s.post(&revoke, other_ra, &kc);
    c.error(&r, 404, "serial_not_found", "another RA revoking");
    let r = s.request(Method::POST, &release, Some(other_ra), None);
    c.error(&r, 404, "serial_not_found", "another RA releasing a hold");
    let r = s.request(Method::POST, &release, Some(&t.auditor), None);
    c.error(&r, 403, "forbidden", "auditor releasing a hold");
    let r = s.request(Method::POST, &renew, Some(other_ra), None);
    c.error(&r, 404, "serial_not_found", "another RA renewing");
    let r = s.request(Method::POST, &renew, Some(&t.auditor), None);
    c.error(&r, 403, "forbidden", "auditor renewing");
    let status = s.record(sn)["status"].clone();
    c.check(status == "valid", || {
        format!("refused callers changed the status to {status}")
    });
}

/// State conflicts: releasing what is not held, revoking or holding what is revoked or held.
fn state_conflicts(s: &Server, sn: &str, c: &mut Checks) {
    // Issued before `sn` is revoked for keyCompromise, which blocks the (shared) test key.
    let held = s.issue(&server_csr("refusals-held.example.com"), "tls-server", None);
    let held_sn = held["serial"].as_str().expect("serial");
    let r = s.release_hold(sn);
    c.error(
        &r,
        409,
        "not_on_hold",
        "release-hold of a valid certificate",
    );
    let r = s.revoke(sn, "keyCompromise", None);
    c.check(r.status == 200, || format!("first revocation: {r}"));
    let r = s.revoke(sn, "keyCompromise", None);
    c.error(&r, 409, "already_revoked", "revoking twice");
    let r = s.revoke(sn, "certificateHold", None);
    c.error(&r, 409, "already_revoked", "holding a revoked certificate");
    let r = s.revoke(sn, "superseded", None);
    c.error(
        &r,
        409,
        "already_revoked",
        "revoking again with another reason",
    );
    let r = s.release_hold(sn);
    c.error(
        &r,
        409,
        "not_on_hold",
        "release-hold of a revoked certificate",
    );
    let rec = s.record(sn);
    c.check(
        rec["status"] == "revoked" && rec["revocation"]["reason"] == "keyCompromise",
        || format!("refused calls changed the revocation: {rec}"),
    );

    s.revoke_ok(held_sn, "certificateHold");
    let r = s.revoke(held_sn, "certificateHold", None);
    c.error(&r, 409, "already_revoked", "holding a held certificate");
}

#[test]
fn malformed_ocsp_requests_get_an_ocsp_malformed_request() {
    let s = Server::fresh();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"this is not an OCSP request".to_vec()),
        ("empty body", Vec::new()),
        ("truncated DER", vec![0x30, 0x82, 0x01, 0x00, 0x30]),
        ("a CRL", s.crl()),
    ];
    let mut c = Checks::default();
    for (what, body) in cases {
        let r = s.post_raw("/ocsp", None, "application/ocsp-request", body);
        c.check(r.status == 200 && r.bytes == MALFORMED, || {
            format!(
                "POST /ocsp with {what}: expected HTTP 200 with 30 03 0a 01 01, got HTTP {} {}",
                r.status,
                hex::encode(&r.bytes)
            )
        });
        c.check(r.content_type == "application/ocsp-response", || {
            format!("POST /ocsp with {what}: content type {:?}", r.content_type)
        });
    }
    for path in ["/ocsp/bm90IGFuIE9DU1AgcmVxdWVzdA%3D%3D", "/ocsp/!!!"] {
        let r = s.get(path, None);
        c.check(r.status == 200 && r.bytes == MALFORMED, || {
            format!(
                "GET {path}: expected HTTP 200 with 30 03 0a 01 01, got HTTP {} {}",
                r.status,
                hex::encode(&r.bytes)
            )
        });
    }
    c.finish("malformed OCSP requests");

    // And openssl reads it as malformedRequest.
    let r = s.post_raw(
        "/ocsp",
        None,
        "application/ocsp-request",
        b"garbage".to_vec(),
    );
    let file = s.scratch().join("malformed.der");
    std::fs::write(&file, &r.bytes).expect("writing the response");
    let (_, out) = openssl_ocsp(&[
        "ocsp",
        "-respin",
        file.to_str().expect("UTF-8 path"),
        "-resp_text",
        "-noverify",
    ]);
    assert!(
        out.to_lowercase().contains("malformedrequest"),
        "openssl does not read malformedRequest:\n{out}"
    );
}
