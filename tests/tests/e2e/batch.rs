//! POST /v1/certificates/batch: one result per request, in order; a bad request fails alone.

use std::collections::HashSet;

use e2e_tests::prelude::*;
use serde_json::{json, Value};

#[test]
fn mixed_batch_keeps_order_and_fails_only_the_bad_requests() {
    let s = Server::fresh();
    let good_server = server_csr("batch-1.example.com");
    let good_client = make_csr("ec-p384", "/CN=batch-client", &["DNS:batch-client.example"]);
    let good_personal = make_csr("rsa-2048", "/CN=Ana Batch", &["email:ana@batch.example"]);
    // The personal name is asserted by the RA; the profile orders it before the CN.
    let personal_cert = good_personal.with_subject("/GN=Ana/SN=Batch/CN=Ana Batch");
    // Ed25519: tls-client takes it, tls-server (TLS BR) does not.
    let good_ed = make_csr("ed25519", "/CN=batch-4.example", &["DNS:batch-4.example"]);
    let no_san = make_csr("ec-p256", "/CN=nosan.example.com", &[]);
    let email_san = make_csr("ec-p256", "", &["email:x@batch.example"]);
    let tampered = tamper_signature(&server_csr("tampered.example.com"));

    let cases: Vec<(Value, Expect)> = vec![
        (
            json!({"csr": good_server.pem, "profile": "tls-server", "validity_days": 20}),
            Ok((&good_server, "tls-server", 20)),
        ),
        (
            json!({"csr": "garbage", "profile": "tls-server"}),
            Err("csr_malformed"),
        ),
        (
            json!({"csr": good_client.pem, "profile": "tls-client", "validity_days": 21}),
            Ok((&good_client, "tls-client", 21)),
        ),
        (
            json!({"csr": good_server.pem, "profile": "no-such-profile"}),
            Err("unknown_profile"),
        ),
        (
            json!({"csr": good_server.pem, "profile": "tls-server",
                   "validity_days": tls_server_max_validity_days() + 1}),
            Err("validity_not_allowed"),
        ),
        (
            json!({"csr": no_san.pem, "profile": "tls-server"}),
            Err("san_required"),
        ),
        (
            json!({"csr": good_personal.pem, "profile": "personal", "validity_days": 22,
                   "identity": {"subject": "SN=Batch,GN=Ana"}}),
            Ok((&personal_cert, "personal", 22)),
        ),
        (
            json!({"csr": tampered, "profile": "tls-server"}),
            Err("csr_signature_invalid"),
        ),
        (
            json!({"csr": email_san.pem, "profile": "tls-server"}),
            Err("san_not_allowed"),
        ),
        (
            json!({"csr": good_ed.pem, "profile": "tls-client", "validity_days": 10}),
            Ok((&good_ed, "tls-client", 10)),
        ),
        (
            json!({"csr": good_ed.pem, "profile": "tls-server", "validity_days": 10}),
            Err("key_type_not_allowed"),
        ),
    ];
    let requests: Vec<Value> = cases.iter().map(|(r, _)| r.clone()).collect();
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({"requests": requests}),
    );
    assert_eq!(r.status, 200, "batch: {r}");
    let results = r.json["results"]
        .as_array()
        .unwrap_or_else(|| panic!("batch: no results list in {r}"));
    assert_eq!(
        results.len(),
        cases.len(),
        "batch: one result per request, got {r}"
    );

    check_batch_results(&s, &cases, results);
}

/// What a batch item is expected to give: `Ok((csr, profile, days))` for a certificate,
/// `Err(code)` for an error.
type Expect<'a> = Result<(&'a Csr, &'a str, u32), &'a str>;

/// Each result of a batch is what its request (`cases`, in order) expects: a certificate that
/// passes every check and is recorded, serials never repeated; or the error code, in the
/// error shape.
fn check_batch_results(s: &Server, cases: &[(Value, Expect)], results: &[Value]) {
    let mut serials = HashSet::new();
    for (i, ((_, expect), result)) in cases.iter().zip(results).enumerate() {
        match expect {
            Ok((csr, profile, days)) => {
                assert!(
                    result.get("error").is_none(),
                    "batch item {i} should have succeeded: {result}"
                );
                s.check_issued(result, csr, profile, *days);
                let serial = result["serial"].as_str().expect("serial");
                assert!(
                    serials.insert(serial.to_string()),
                    "batch: serial {serial} repeated"
                );
                check_record(&s.record(serial), result, csr, profile, None);
            }
            Err(code) => {
                assert_eq!(
                    result["error"]["code"].as_str(),
                    Some(*code),
                    "batch item {i}: expected error {code}, got {result}"
                );
                assert_error_shape(result, &format!("batch item {i}"));
            }
        }
    }
}

#[test]
fn batch_edge_cases() {
    let s = Server::fresh();
    let csr = server_csr("edge.batch.example.com");
    let mut c = Checks::default();

    bad_items_fail_alone(&s, &csr, &mut c);

    // Authentication and roles.
    let body = json!({"requests": [{"csr": csr.pem, "profile": "tls-server"}]});
    let r = s.request(
        reqwest::Method::POST,
        "/v1/certificates/batch",
        None,
        Some(&body),
    );
    c.error(&r, 401, "unauthorized", "batch without a token");
    let r = s.post("/v1/certificates/batch", &s.tokens.auditor, &body);
    c.error(&r, 403, "forbidden", "batch with the auditor token");

    // Malformed bodies.
    let r = s.post_raw(
        "/v1/certificates/batch",
        Some(&s.tokens.ra),
        "application/json",
        b"{\"requests\": [".to_vec(),
    );
    c.error(&r, 400, "invalid_request", "batch with broken JSON");
    let r = s.post("/v1/certificates/batch", &s.tokens.ra, &json!({"reqs": []}));
    c.error(&r, 400, "invalid_request", "batch without `requests`");
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({"requests": "x"}),
    );
    c.error(
        &r,
        400,
        "invalid_request",
        "batch whose `requests` is not a list",
    );

    // Over the configured maximum (default 1000): refused whole, none issued.
    let before = s.certificate_count();
    let one = json!({"csr": csr.pem, "profile": "tls-server"});
    let many: Vec<Value> = std::iter::repeat_n(one, 1001).collect();
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({"requests": many}),
    );
    c.error(&r, 413, "batch_too_large", "batch of 1001 requests");
    c.check(s.certificate_count() == before, || {
        "a refused batch of 1001 issued certificates".to_string()
    });
    c.finish("batch edge cases");
}

/// A batch of only bad requests is still 200, with an error per request; an item missing
/// its csr fails alone ("one bad request never fails the others").
fn bad_items_fail_alone(s: &Server, csr: &Csr, c: &mut Checks) {
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({"requests": [
            {"csr": "garbage", "profile": "tls-server"},
            {"csr": csr.pem, "profile": "nope"},
        ]}),
    );
    let codes: Vec<Option<&str>> = r.json["results"]
        .as_array()
        .map(|a| a.iter().map(|x| x["error"]["code"].as_str()).collect())
        .unwrap_or_default();
    c.check(
        r.status == 200 && codes == vec![Some("csr_malformed"), Some("unknown_profile")],
        || format!("all-bad batch: expected 200 with csr_malformed, unknown_profile; got {r}"),
    );

    // An item missing its csr fails alone ("one bad request never fails the others").
    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!({"requests": [
            {"profile": "tls-server"},
            {"csr": csr.pem, "profile": "tls-server"},
        ]}),
    );
    let results = r.json["results"].as_array().cloned().unwrap_or_default();
    c.check(
        r.status == 200
            && results.len() == 2
            && results[0]["error"]["code"] == "invalid_request"
            && results[1]["status"] == "valid",
        || {
            format!(
                "batch with an item missing csr: expected 200 [invalid_request, valid]; got {r}"
            )
        },
    );
}
