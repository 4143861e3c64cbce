//! `request_id` idempotency per token, and which certificates an RA token may read.

use e2e_tests::prelude::*;
use serde_json::{json, Value};

#[test]
fn request_id_is_idempotent_per_token_and_ra_reads_only_its_own() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // First start creates the CA and the bootstrap tokens; a second RA token is made while the
    // server is down.
    Server::serve(dir).terminate();
    let other_ra = create_token(dir, "ra", "other-ra");
    let s = Server::serve(dir);
    let ra = s.tokens.ra.clone();

    let csr = server_csr("idem.example.com");
    let body = json!({"csr": csr.pem, "profile": "tls-server", "validity_days": 30,
                      "request_id": "ra-42-7f3c"});

    let first = s.post("/v1/certificates", &ra, &body);
    assert_eq!(first.status, 201, "first request: {first}");
    let serial = first.json["serial"].as_str().expect("serial").to_string();
    s.check_issued(&first.json, &csr, "tls-server", 30);
    replays_and_conflicts(&s, &body, &first);

    // Another token may use the same request_id: a certificate of its own.
    let theirs = s.post("/v1/certificates", &other_ra, &body);
    assert_eq!(theirs.status, 201, "other token, same request_id: {theirs}");
    let their_serial = theirs.json["serial"].as_str().expect("serial").to_string();
    assert_ne!(
        their_serial, serial,
        "another token's request_id must not return our certificate"
    );
    let again = s.post("/v1/certificates", &other_ra, &body);
    assert_eq!(again.status, 200, "other token's replay: {again}");
    assert_eq!(again.json["serial"], their_serial.as_str());

    // A different request_id, or none, issues anew.
    let mut fresh = body.clone();
    fresh["request_id"] = "ra-42-7f3d".into();
    let r = s.post("/v1/certificates", &ra, &fresh);
    assert_eq!(r.status, 201, "new request_id: {r}");
    assert_ne!(r.json["serial"], serial.as_str());
    let plain = json!({"csr": csr.pem, "profile": "tls-server"});
    let a = s.post("/v1/certificates", &ra, &plain);
    let b = s.post("/v1/certificates", &ra, &plain);
    assert_eq!(
        (a.status, b.status),
        (201, 201),
        "no request_id twice: {a} / {b}"
    );
    assert_ne!(
        a.json["serial"], b.json["serial"],
        "no request_id: two certificates"
    );
    each_ra_reads_only_its_own(&s, &csr, (&first, &theirs), &other_ra);
}

/// Same key, same body, same token: 200 with the same certificate (`first`'s); same key,
/// different body: 409, which changes nothing.
fn replays_and_conflicts(s: &Server, body: &Value, first: &Resp) {
    let ra = &s.tokens.ra;
    let again = s.post("/v1/certificates", ra, body);
    assert_eq!(
        again.status, 200,
        "replay of the same request_id and body: {again}"
    );
    for field in [
        "serial",
        "certificate",
        "chain",
        "not_before",
        "not_after",
        "profile",
        "status",
    ] {
        assert_eq!(
            again.json[field], first.json[field],
            "replay: {field} differs from the first answer"
        );
    }

    // Same key, different body: 409.
    let mut other_days = body.clone();
    other_days["validity_days"] = 31.into();
    let r = s.post("/v1/certificates", ra, &other_days);
    assert_error(
        &r,
        409,
        "idempotency_conflict",
        "same request_id, other validity_days",
    );
    let other_csr = server_csr("idem-other.example.com");
    let mut other_body = body.clone();
    other_body["csr"] = other_csr.pem.clone().into();
    let r = s.post("/v1/certificates", ra, &other_body);
    assert_error(
        &r,
        409,
        "idempotency_conflict",
        "same request_id, other CSR",
    );
    let mut other_profile = body.clone();
    other_profile["profile"] = "tls-client".into();
    let r = s.post("/v1/certificates", ra, &other_profile);
    assert_error(
        &r,
        409,
        "idempotency_conflict",
        "same request_id, other profile",
    );

    // The conflict changed nothing: the original still replays.
    let again = s.post("/v1/certificates", ra, body);
    assert_eq!(again.status, 200, "replay after a conflict: {again}");
    assert_eq!(again.json["serial"], first.json["serial"]);
}

/// Who reads what: an RA reads only what its own token requested (`first` by the bootstrap
/// RA, `theirs` by `other_ra`); the auditor reads all.
fn each_ra_reads_only_its_own(
    s: &Server,
    csr: &Csr,
    (first, theirs): (&Resp, &Resp),
    other_ra: &str,
) {
    let ra = &s.tokens.ra;
    let serial = first.json["serial"].as_str().expect("serial");
    let their_serial = theirs.json["serial"].as_str().expect("serial");
    let path = |s: &str| format!("/v1/certificates/{s}");
    let rec = s.record(their_serial);
    check_record(&rec, &theirs.json, csr, "tls-server", Some("other-ra"));
    let ours = s.record(serial);
    check_record(&ours, &first.json, csr, "tls-server", None);
    assert_ne!(
        ours["requester"], "other-ra",
        "requester of the bootstrap RA's certificate"
    );

    let r = s.get(&path(serial), Some(ra));
    assert_eq!(r.status, 200, "RA reads its own certificate: {r}");
    let r = s.get(&path(their_serial), Some(other_ra));
    assert_eq!(r.status, 200, "other RA reads its own certificate: {r}");
    let r = s.get(&path(their_serial), Some(ra));
    assert_error(
        &r,
        404,
        "serial_not_found",
        "RA reads another RA's certificate",
    );
    let r = s.get(&path(serial), Some(other_ra));
    assert_error(
        &r,
        404,
        "serial_not_found",
        "other RA reads the bootstrap RA's certificate",
    );
}

#[test]
fn token_create_needs_the_server_stopped_and_makes_working_tokens() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let s = Server::serve(dir);
    let issued = s.issue(&server_csr("tokens.example.com"), "tls-server", None);
    let serial = issued["serial"].as_str().expect("serial").to_string();

    // While the server holds the store, `token create` must fail cleanly.
    let out = ca_server(&[
        "token",
        "create",
        "--data-dir",
        dir.to_str().expect("UTF-8"),
        "--role",
        "auditor",
        "--name",
        "early-auditor",
    ]);
    assert!(
        !out.status.success(),
        "`token create` succeeded while the server was running on the same directory"
    );
    let r = s.get("/readyz", None);
    assert_eq!(
        r.status, 200,
        "the server after a refused `token create`: {r}"
    );
    s.terminate();

    let auditor = create_token(dir, "auditor", "second-auditor");
    let ra = create_token(dir, "ra", "second-ra");
    assert_ne!(auditor, ra, "two new tokens are equal");
    // Unknown roles are refused.
    let out = ca_server(&[
        "token",
        "create",
        "--data-dir",
        dir.to_str().expect("UTF-8"),
        "--role",
        "root",
        "--name",
        "x",
    ]);
    assert!(
        !out.status.success(),
        "`token create --role root` should fail"
    );
    let s = Server::serve(dir);
    let r = s.get(&format!("/v1/certificates/{serial}"), Some(&auditor));
    assert_eq!(
        r.status, 200,
        "a new auditor token reads any certificate: {r}"
    );
    let body = json!({"csr": server_csr("tokens.example.com").pem, "profile": "tls-server"});
    let r = s.post("/v1/certificates", &auditor, &body);
    assert_error(&r, 403, "forbidden", "a new auditor token issuing");
    let r = s.post("/v1/certificates", &ra, &body);
    assert_eq!(r.status, 201, "a new RA token issues: {r}");
    let rec = s.record(r.json["serial"].as_str().expect("serial"));
    assert_eq!(
        rec["requester"], "second-ra",
        "requester of the new RA's certificate"
    );
}
