//! Every error code of the issuance and reading endpoints, with its HTTP status and the error
//! shape `{"error": {"code", "message"}}`. Each test collects all its failed checks and reports
//! them together.

use e2e_tests::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

fn issue(s: &Server, body: &Value) -> Resp {
    s.post("/v1/certificates", &s.tokens.ra, body)
}

#[test]
fn authentication_and_roles() {
    let s = Server::fresh();
    let csr = server_csr("auth.example.com");
    let body = json!({"csr": csr.pem, "profile": "tls-server"});
    let serial = s.issue(&csr, "tls-server", None)["serial"]
        .as_str()
        .expect("serial")
        .to_string();
    let mut c = Checks::default();

    let r = s.request(Method::POST, "/v1/certificates", None, Some(&body));
    c.error(&r, 401, "unauthorized", "POST without a token");
    let r = s.request(
        Method::POST,
        "/v1/certificates",
        Some("not-a-token"),
        Some(&body),
    );
    c.error(&r, 401, "unauthorized", "POST with an unknown token");
    let r = s.request(Method::POST, "/v1/certificates", Some(""), Some(&body));
    c.error(&r, 401, "unauthorized", "POST with an empty bearer token");
    let basic = s
        .client()
        .post(format!("{}/v1/certificates", s.base))
        .header("authorization", format!("Basic {}", s.tokens.ra))
        .json(&body);
    let r = s.send(basic, "Basic auth");
    c.error(
        &r,
        401,
        "unauthorized",
        "POST with Authorization: Basic <the RA token>",
    );
    let r = s.post_raw(
        "/v1/certificates",
        None,
        "application/json",
        b"{not json".to_vec(),
    );
    c.error(
        &r,
        401,
        "unauthorized",
        "POST with neither token nor valid JSON",
    );
    let r = s.get(&format!("/v1/certificates/{serial}"), None);
    c.error(&r, 401, "unauthorized", "GET a certificate without a token");
    let r = s.get(&format!("/v1/certificates/{serial}"), Some("not-a-token"));
    c.error(
        &r,
        401,
        "unauthorized",
        "GET a certificate with an unknown token",
    );

    let r = s.post("/v1/certificates", &s.tokens.auditor, &body);
    c.error(&r, 403, "forbidden", "POST with the auditor token");
    let r = s.post("/v1/certificates", &s.tokens.operator, &body);
    c.error(&r, 403, "forbidden", "POST with the operator token");

    // Public endpoints need no token.
    for path in ["/ca.pem", "/healthz", "/readyz"] {
        let r = s.get(path, None);
        c.check(r.status == 200, || {
            format!("GET {path} without a token: {r}")
        });
    }
    c.finish("authentication and roles");
}

#[test]
fn bad_input_is_400() {
    let s = Server::fresh();
    let csr = server_csr("bad-input.example.com");
    let mut c = Checks::default();
    bodies_that_are_not_the_contracts_json(&s, &csr, &mut c);
    // A body not declared `application/pkcs10` is read as the contract's JSON, whatever its
    // declared type (docs/API.md, *DER issuance*).
    let r = s.post_raw(
        "/v1/certificates",
        Some(&s.tokens.ra),
        "text/plain",
        serde_json::to_vec(&json!({"csr": csr.pem, "profile": "tls-server"})).expect("json"),
    );
    c.check(r.status == 201 && r.json["serial"].is_string(), || {
        format!("JSON body sent as text/plain: expected 201, got {r}")
    });

    // Malformed CSRs.
    let der = csr.der();
    let cases: Vec<(&str, String)> = vec![
        ("a CSR that is plain text", "hello".into()),
        ("an empty CSR", String::new()),
        (
            "a PEM CSR whose body is not base64",
            "-----BEGIN CERTIFICATE REQUEST-----\n!!!!not base64!!!!\n-----END CERTIFICATE REQUEST-----\n".into(),
        ),
        ("a truncated CSR", to_pem("CERTIFICATE REQUEST", &der[..der.len() / 2])),
        ("a certificate in place of a CSR", s.ca().pem.clone()),
        ("random bytes in a CSR PEM", to_pem("CERTIFICATE REQUEST", &[0x30, 0x03, 0x02, 0x01, 0x00])),
    ];
    for (what, pem) in cases {
        let r = issue(&s, &json!({"csr": pem, "profile": "tls-server"}));
        c.error(&r, 400, "csr_malformed", what);
    }
    broken_proofs_of_possession(&s, &mut c);

    // Every refusal above left nothing behind: the server still issues.
    let r = issue(&s, &json!({"csr": csr.pem, "profile": "tls-server"}));
    c.check(r.status == 201, || {
        format!("issuing after the refusals: {r}")
    });
    c.finish("bad input");
}

/// Bodies that are not JSON, not an object, or miss or mistype a field: 400
/// `invalid_request`.
fn bodies_that_are_not_the_contracts_json(s: &Server, csr: &Csr, c: &mut Checks) {
    let ra = s.tokens.ra.clone();
    let raw = |body: &[u8]| {
        s.post_raw(
            "/v1/certificates",
            Some(&ra),
            "application/json",
            body.to_vec(),
        )
    };

    c.error(&raw(b"{not json"), 400, "invalid_request", "broken JSON");
    c.error(&raw(b""), 400, "invalid_request", "empty body");
    c.error(
        &raw(b"[1, 2]"),
        400,
        "invalid_request",
        "a JSON list as body",
    );
    c.error(
        &issue(s, &json!({"profile": "tls-server"})),
        400,
        "invalid_request",
        "missing csr",
    );
    c.error(
        &issue(s, &json!({"csr": csr.pem})),
        400,
        "invalid_request",
        "missing profile",
    );
    c.error(
        &issue(s, &json!({"csr": 42, "profile": "tls-server"})),
        400,
        "invalid_request",
        "csr of the wrong type",
    );
    c.error(
        &issue(
            s,
            &json!({"csr": csr.pem, "profile": "tls-server", "validity_days": "ninety"}),
        ),
        400,
        "invalid_request",
        "validity_days of the wrong type",
    );
    c.error(
        &issue(
            s,
            &json!({"csr": csr.pem, "profile": "tls-server", "validity_days": -5}),
        ),
        400,
        "invalid_request",
        "negative validity_days",
    );
    c.error(
        &issue(
            s,
            &json!({"csr": csr.pem, "profile": "tls-server", "request_id": 7}),
        ),
        400,
        "invalid_request",
        "request_id of the wrong type",
    );
}

/// CSRs whose signature does not verify (a flipped byte, an altered subject), for P-256, RSA
/// and Ed25519: 400 `csr_signature_invalid`.
fn broken_proofs_of_possession(s: &Server, c: &mut Checks) {
    let ec = server_csr("tamper.example.com");
    let r = issue(
        s,
        &json!({"csr": tamper_signature(&ec), "profile": "tls-server"}),
    );
    c.error(
        &r,
        400,
        "csr_signature_invalid",
        "P-256 CSR with a flipped signature byte",
    );
    let r = issue(
        s,
        &json!({"csr": tamper_bytes(&ec, "tamper.example.com", "tamqer.example.com"), "profile": "tls-server"}),
    );
    c.error(
        &r,
        400,
        "csr_signature_invalid",
        "P-256 CSR whose subject was altered after signing",
    );
    let rsa = make_csr(
        "rsa-2048",
        "/CN=tamper-rsa.example.com",
        &["DNS:tamper-rsa.example.com"],
    );
    let r = issue(
        s,
        &json!({"csr": tamper_signature(&rsa), "profile": "tls-server"}),
    );
    c.error(
        &r,
        400,
        "csr_signature_invalid",
        "RSA CSR with a flipped signature byte",
    );
    let ed = make_csr(
        "ed25519",
        "/CN=tamper-ed.example",
        &["DNS:tamper-ed.example"],
    );
    let r = issue(
        s,
        &json!({"csr": tamper_signature(&ed), "profile": "tls-client"}),
    );
    c.error(
        &r,
        400,
        "csr_signature_invalid",
        "Ed25519 CSR with a flipped signature byte",
    );
}

#[test]
fn policy_refusals_are_422() {
    let s = Server::fresh();
    let mut c = Checks::default();

    // Key types.
    let rsa1024 = make_csr(
        "rsa-1024",
        "/CN=weak.example.com",
        &["DNS:weak.example.com"],
    );
    refuse(
        &s,
        &mut c,
        (&rsa1024, "tls-server", None),
        "key_type_not_allowed",
        "RSA-1024 key",
    );
    let k1 = make_csr(
        "ec-secp256k1",
        "/CN=k1.example.com",
        &["DNS:k1.example.com"],
    );
    refuse(
        &s,
        &mut c,
        (&k1, "tls-server", None),
        "key_type_not_allowed",
        "secp256k1 key",
    );
    // Ed25519: the CA/Browser Forum allow only RSA and ECDSA (TLS BR and S/MIME BR 6.1.5).
    let ed = make_csr("ed25519", "/CN=ed.example.com", &["DNS:ed.example.com"]);
    refuse(
        &s,
        &mut c,
        (&ed, "tls-server", None),
        "key_type_not_allowed",
        "Ed25519 key",
    );
    let ed = make_csr("ed25519", "/CN=ed@b.example", &["email:ed@b.example"]);
    refuse(
        &s,
        &mut c,
        (&ed, "personal", None),
        "key_type_not_allowed",
        "Ed25519 key",
    );
    san_and_subject_refusals(&s, &mut c);
    let (ok, person) = validity_and_profile_refusals(&s, &mut c);

    // A signature algorithm the CA does not take (SHA-1): a policy refusal, not a crash.
    let sha1 = make_csr_with(
        "rsa-2048",
        "/CN=sha1.example.com",
        &["DNS:sha1.example.com"],
        &["-sha1"],
    );
    let r = issue(&s, &json!({"csr": sha1.pem, "profile": "tls-server"}));
    c.error(
        &r,
        422,
        "csr_signature_algorithm_not_supported",
        "CSR signed with SHA-1",
    );

    // The limits themselves are allowed.
    let max_tls = tls_server_max_validity_days();
    let r = issue(
        &s,
        &json!({"csr": ok.pem, "profile": "tls-server", "validity_days": max_tls}),
    );
    c.check(r.status == 201, || {
        format!("{max_tls} days under tls-server: {r}")
    });
    let r = issue(
        &s,
        &json!({"csr": person.pem, "profile": "personal", "validity_days": 825}),
    );
    c.check(r.status == 201, || format!("825 days under personal: {r}"));
    c.finish("policy refusals");
}

/// Issues `csr` under `profile` (with `validity_days` when given) and records a failure
/// unless the answer is 422 with `code`.
fn refuse(
    s: &Server,
    c: &mut Checks,
    (csr, profile, days): (&Csr, &str, Option<u32>),
    code: &str,
    what: &str,
) {
    let mut body = json!({"csr": csr.pem, "profile": profile});
    if let Some(d) = days {
        body["validity_days"] = d.into();
    }
    let r = issue(s, &body);
    c.error(
        &r,
        422,
        code,
        &format!("{what} ({profile}, {}, {})", csr.subj, csr.sans.join(" ")),
    );
}

/// SANs and subjects a profile does not allow, or a missing SAN: 422 with the code of the
/// table, for P-256 CSRs of (subject, SANs).
fn san_and_subject_refusals(s: &Server, c: &mut Checks) {
    #[rustfmt::skip]
    let table: [(&str, &[&str], &str, &str, &str); 22] = [
        // SANs.
        ("", &["email:a@b.example.com"], "tls-server", "san_not_allowed", "e-mail SAN"),
        ("", &["DNS:localhost"], "tls-server", "san_not_allowed", "dotless host"),
        ("", &["DNS:bad_name.example.com"], "tls-server", "san_not_allowed", "underscore"),
        ("", &["DNS:a.*.example.com"], "tls-server", "san_not_allowed", "inner wildcard"),
        ("", &["DNS:-a.example.com"], "tls-server", "san_not_allowed", "leading hyphen"),
        ("", &["IP:0.0.0.0"], "tls-server", "san_not_allowed", "unspecified IP"),
        ("", &["DNS:a.example.com", "DNS:a.example.com"], "tls-server", "san_not_allowed", "repeated SAN"),
        ("/CN=client", &["URI:https://a.example/"], "tls-client", "san_not_allowed", "URI SAN"),
        ("", &["email:ana@b.example", "DNS:ana.example"], "personal", "san_not_allowed",
         "DNS SAN"),
        ("", &["email:not-an-address"], "personal", "san_not_allowed", "bad e-mail"),
        ("/CN=a.example.com", &[], "tls-server", "san_required", "CN and no SAN"),
        ("", &[], "tls-server", "san_required", "no SAN"),
        ("/CN=ana@b.example", &[], "personal", "san_required", "no e-mail SAN"),
        // Subjects.
        ("/CN=b.example.com", &["DNS:a.example.com"], "tls-server", "subject_not_allowed",
         "CN not among the SANs"),
        ("/serialNumber=123/CN=a.example.com", &["DNS:a.example.com"], "tls-server",
         "subject_not_allowed", "serialNumber not allowed in tls-server"),
        ("/O=A/O=B/CN=a.example", &["DNS:a.example"], "tls-client", "subject_not_allowed",
         "repeated O"),
        ("/O=Acme", &["DNS:c.example"], "tls-client", "subject_not_allowed", "no CN"),
        // The TLS BR (domain validated): a CN repeating a SAN, nothing else.
        ("/O=Acme/CN=a.example.com", &["DNS:a.example.com"], "tls-server", "subject_not_allowed",
         "O under tls-server"),
        ("/C=BR/CN=a.example.com", &["DNS:a.example.com"], "tls-server", "subject_not_allowed",
         "C under tls-server"),
        // The S/MIME BR (strict): no organization for an individual; a CN that is the
        // address or a name the RA asserted; names only from the RA.
        ("/O=Acme", &["email:a@b.example"], "personal", "subject_not_allowed",
         "O under personal"),
        ("/CN=Ana", &["email:a@b.example"], "personal", "subject_not_allowed",
         "a CN that is neither the address nor an asserted name"),
        ("/GN=Ana/CN=Ana", &["email:a@b.example"], "personal", "subject_not_allowed",
         "a givenName from the CSR"),
    ];
    for (subj, sans, profile, code, what) in table {
        let csr = make_csr("ec-p256", subj, sans);
        refuse(s, c, (&csr, profile, None), code, what);
    }
}

/// Validity periods beyond a profile's limit or zero, and unknown profile names: 422. Returns
/// the CSRs used (tls-server, personal), which the limits themselves must let through.
fn validity_and_profile_refusals(s: &Server, c: &mut Checks) -> (Csr, Csr) {
    let ok = make_csr("ec-p256", "/CN=v.example.com", &["DNS:v.example.com"]);
    let person = make_csr("ec-p256", "/CN=ana@b.example", &["email:ana@b.example"]);
    let over_tls = tls_server_max_validity_days() + 1;
    #[rustfmt::skip]
    let table: [(&Csr, &str, Option<u32>, &str, &str); 7] = [
        // Validity.
        (&ok, "tls-server", Some(over_tls), "validity_not_allowed", "a day over the TLS BR"),
        (&ok, "tls-server", Some(0), "validity_not_allowed", "0 days"),
        (&ok, "tls-server", Some(100_000), "validity_not_allowed", "100000 days"),
        (&person, "personal", Some(826), "validity_not_allowed", "826 days"),
        // Profiles.
        (&ok, "no-such-profile", None, "unknown_profile", "unknown profile"),
        (&ok, "", None, "unknown_profile", "empty profile name"),
        (&ok, "TLS-SERVER", None, "unknown_profile", "profile name in other case"),
    ];
    for (csr, profile, days, code, what) in table {
        refuse(s, c, (csr, profile, days), code, what);
    }
    (ok, person)
}

#[test]
fn serials_in_the_path() {
    let s = Server::fresh();
    let mut c = Checks::default();
    let issued = s.issue(&server_csr("serial.example.com"), "tls-server", None);
    let serial = issued["serial"].as_str().expect("serial");
    let (auditor, ra) = (s.tokens.auditor.clone(), s.tokens.ra.clone());

    // Well-formed serials that were never issued.
    let mut unknown = format!("4{}", &serial[1..]);
    if unknown == serial {
        unknown = format!("5{}", &serial[1..]);
    }
    for (token, who) in [(&auditor, "auditor"), (&ra, "ra")] {
        let r = s.get(&format!("/v1/certificates/{unknown}"), Some(token));
        c.error(
            &r,
            404,
            "serial_not_found",
            &format!("{who}: GET an unknown serial"),
        );
        let r = s.get(
            "/v1/certificates/41000000000000000000000000000001",
            Some(token),
        );
        c.error(
            &r,
            404,
            "serial_not_found",
            &format!("{who}: GET another unknown serial"),
        );
    }
    // Not hex at all.
    for bad in [
        "not-a-serial",
        "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
        "12%2034",
        "0x1234",
    ] {
        let r = s.get(&format!("/v1/certificates/{bad}"), Some(&auditor));
        c.error(
            &r,
            400,
            "invalid_serial",
            &format!("GET /v1/certificates/{bad}"),
        );
    }
    // The real one still reads.
    let r = s.get(&format!("/v1/certificates/{serial}"), Some(&auditor));
    c.check(r.status == 200, || format!("GET the issued serial: {r}"));
    c.finish("serials in the path");
}

#[test]
fn oversized_body_is_413() {
    let s = Server::fresh();
    let mut c = Checks::default();
    // Just over 1 MiB.
    let big = "A".repeat((1 << 20) + 1024);
    let body = serde_json::to_vec(&json!({"csr": big, "profile": "tls-server"})).expect("json");
    let r = s.post_raw(
        "/v1/certificates",
        Some(&s.tokens.ra),
        "application/json",
        body,
    );
    c.error(&r, 413, "payload_too_large", "a body of 1 MiB + 1 KiB");
    // Just under: read, and refused for what it is.
    let small = "A".repeat((1 << 20) - 4096);
    let body = serde_json::to_vec(&json!({"csr": small, "profile": "tls-server"})).expect("json");
    let r = s.post_raw(
        "/v1/certificates",
        Some(&s.tokens.ra),
        "application/json",
        body,
    );
    c.error(
        &r,
        400,
        "csr_malformed",
        "a body just under 1 MiB with a junk CSR",
    );
    // The server is still fine.
    let r = s.get("/healthz", None);
    c.check(r.status == 200, || {
        format!("healthz after large bodies: {r}")
    });
    c.finish("body size");
}

#[test]
fn unknown_routes_answer_in_the_error_shape() {
    let s = Server::fresh();
    let mut c = Checks::default();
    let r = s.get("/v1/no-such-endpoint", Some(&s.tokens.auditor));
    c.error(&r, 404, "not_found", "GET an unknown path");
    let r = s.get("/no-such-endpoint", None);
    c.error(&r, 404, "not_found", "GET an unknown path without a token");
    let r = s.request(Method::PUT, "/ca.pem", None, Some(&json!({})));
    c.error(&r, 405, "method_not_allowed", "PUT /ca.pem");
    let r = s.request(
        Method::GET,
        "/v1/certificates/batch",
        Some(&s.tokens.ra),
        None,
    );
    c.check(
        r.status >= 400 && r.status < 500 && error_shape_problem(&r.json).is_none(),
        || format!("GET /v1/certificates/batch: expected a 4xx in the error shape, got {r}"),
    );
    c.finish("unknown routes");
}

/// Refusals name things as users know them: the profiles that exist, the body a batch needs,
/// the field a revocation needs, and attempts counted in words that agree.
#[test]
fn messages_say_what_to_send_instead() {
    let s = Server::fresh();
    let csr = make_csr("ec-p256", "/CN=m.example.com", &["DNS:m.example.com"]);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": csr.pem, "profile": "tls-sever"}),
    );
    assert_error(&r, 422, "unknown_profile", "a misspelt profile");
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    for known in ["tls-server", "tls-client", "personal"] {
        assert!(
            message.contains(known),
            "the message lists {known}: {message}"
        );
    }
    refusals_name_what_the_csr_asked_for(&s);

    let r = s.post(
        "/v1/certificates/batch",
        &s.tokens.ra,
        &json!([{"csr": csr.pem, "profile": "tls-server"}]),
    );
    assert_error(&r, 400, "invalid_request", "a batch as a bare array");
    assert!(r.text.contains("{\\\"requests\\\": [...]}"), "{}", r.text);

    let issued = s.issue(&csr, "tls-server", None);
    let serial = issued["serial"].as_str().expect("serial");
    let r = s.send(
        s.client()
            .post(format!("{}/v1/certificates/{serial}/revoke", s.base))
            .bearer_auth(&s.tokens.ra),
        "revoke without a body",
    );
    assert_error(&r, 400, "invalid_request", "a revocation without a body");
    assert!(r.text.contains("reason is required"), "{}", r.text);

    let r = s.post(
        "/v1/enrollments",
        &s.tokens.ra,
        &json!({"profile": "personal", "subject": "CN=Ana Example,SN=Example,GN=Ana",
                "sans": ["ana@example.com"],
                "expires_in_hours": 1, "max_attempts": 2}),
    );
    assert_eq!(r.status, 201, "{r}");
    let id = r.json["id"].as_str().expect("id").to_string();
    let r = s.request(
        Method::POST,
        &format!("/v1/enrollments/{id}/redeem"),
        None,
        Some(&json!({"code": "WRONG-CODE", "key_type": "ec-p256",
                     "pkcs12_password": "a long passphrase"})),
    );
    assert_error(&r, 403, "enrollment_code_invalid", "a wrong code");
    assert!(r.text.contains("(1 attempt left)"), "{}", r.text);
    s.terminate();
}

/// Policy refusals name the key type, attribute or SAN of the CSR as users know them (with
/// its OID where it has one).
fn refusals_name_what_the_csr_asked_for(s: &Server) {
    let p521 = make_csr("ec-secp521r1", "/CN=k.example.com", &["DNS:k.example.com"]);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": p521.pem, "profile": "tls-server"}),
    );
    assert_error(&r, 422, "key_type_not_allowed", "a P-521 key");
    assert!(
        r.text
            .contains("key type P-521 (1.3.132.0.35) is not allowed by this CA"),
        "{}",
        r.text
    );
    let title = make_csr(
        "ec-p256",
        "/CN=t.example.com/title=Boss",
        &["DNS:t.example.com"],
    );
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": title.pem, "profile": "tls-server"}),
    );
    assert_error(&r, 422, "subject_not_allowed", "a title attribute");
    assert!(r.text.contains("attribute title (2.5.4.12)"), "{}", r.text);
    let underscore = make_csr("ec-p256", "/CN=a_b.example.com", &["DNS:a_b.example.com"]);
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": underscore.pem, "profile": "tls-server"}),
    );
    assert_error(&r, 422, "san_not_allowed", "an underscore in a DNS name");
    assert!(
        r.text.contains("malformed DNS name: underscore"),
        "{}",
        r.text
    );
    let email = make_csr(
        "ec-p256",
        "/CN=x.example.com",
        &["DNS:x.example.com", "email:x@x.example.com"],
    );
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": email.pem, "profile": "tls-server"}),
    );
    assert_error(&r, 422, "san_not_allowed", "an e-mail SAN on tls-server");
    assert!(r.text.contains("allows no e-mail addresses"), "{}", r.text);
}

/// The built-in `tls-server` certifies only public names (TLS BR 7.1.2.7.12, 4.2.2; its
/// `[san] public_only = true`): internal names and reserved IP addresses are refused with 422
/// `san_not_allowed`, on issuance and on enrolment alike, whatever the other names; public
/// ones are issued. `tls-client` (RFC 5280) still takes internal names.
#[test]
fn tls_server_refuses_internal_names_and_reserved_addresses() {
    let s = Server::fresh();
    let mut c = Checks::default();
    #[rustfmt::skip]
    let refused: [(&[&str], &str); 8] = [
        (&["DNS:host.internal"], "internal name"),
        (&["DNS:www.example"], "internal name"),
        (&["DNS:printer.local"], "internal name"),
        (&["DNS:*.corp.example"], "internal name"),
        (&["DNS:www.example.com", "IP:10.0.0.1"], "reserved IP address"),
        (&["IP:192.0.2.1"], "reserved IP address"),
        (&["IP:127.0.0.1"], "reserved IP address"),
        (&["IP:2001:db8::1"], "reserved IP address"),
    ];
    for (sans, why) in refused {
        let csr = make_csr("ec-p256", "", sans);
        let r = issue(&s, &json!({"csr": csr.pem, "profile": "tls-server"}));
        c.error(&r, 422, "san_not_allowed", &format!("tls-server {sans:?}"));
        c.check(
            r.text.contains(why) && r.text.contains("7.1.2.7.12"),
            || format!("tls-server {sans:?}: the message names the rule ({why}): {r}"),
        );
    }
    for san in ["host.internal", "10.0.0.1"] {
        let r = s.post(
            "/v1/enrollments",
            &s.tokens.ra,
            &json!({"profile": "tls-server", "subject": "", "sans": [san],
                    "expires_in_hours": 1, "max_attempts": 1}),
        );
        c.error(&r, 422, "san_not_allowed", &format!("enrolment for {san}"));
    }
    let public = make_csr(
        "ec-p256",
        "/CN=www.example.com",
        &[
            "DNS:www.example.com",
            "IP:8.8.8.8",
            "IP:2606:4700:4700::1111",
        ],
    );
    let r = issue(&s, &json!({"csr": public.pem, "profile": "tls-server"}));
    c.check(r.status == 201, || {
        format!("public names under tls-server: {r}")
    });
    let client = make_csr("ec-p256", "/CN=host", &["DNS:host.internal"]);
    let r = issue(&s, &json!({"csr": client.pem, "profile": "tls-client"}));
    c.check(r.status == 201, || {
        format!("an internal name under tls-client: {r}")
    });
    c.finish("public names only");
    s.terminate();
}
