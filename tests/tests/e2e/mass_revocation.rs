//! Mass revocation (docs/API.md, "Mass revocation"): `POST /v1/mass-revocations` and
//! `ca-server revoke-matching` over the real server. Certificates of two requesters, two
//! profiles and several keys; the dry run counts right and changes nothing; the action
//! revokes exactly what matches, as OCSP (`openssl ocsp`) and the next CRL (`openssl crl`)
//! show; keyCompromise blocks the key; the audit log holds the action and links each
//! revocation to it, and `ca-server audit verify` passes; only an operator may call it, and bad
//! filters are refused 400.

use std::collections::BTreeSet;
use std::path::Path;

use e2e_tests::prelude::*;
use serde_json::{json, Value};

const ROUTE: &str = "/v1/mass-revocations";

fn serial_of(v: &Value) -> String {
    v["serial"].as_str().expect("serial").to_string()
}

/// A new API token of `role` named `name`, created by the operator.
fn token(s: &Server, role: &str, name: &str) -> String {
    let r = s.post(
        "/v1/tokens",
        &s.tokens.operator,
        &json!({"role": role, "name": name}),
    );
    assert_eq!(r.status, 201, "creating token {name}: {r}");
    r.json["token"].as_str().expect("token").to_string()
}

/// Issues `csr` under `profile` with `token`; asserts 201.
fn issue(s: &Server, token: &str, csr: &Csr, profile: &str) -> Value {
    let r = s.post(
        "/v1/certificates",
        token,
        &json!({"csr": csr.pem, "profile": profile}),
    );
    assert_eq!(r.status, 201, "issuing under {profile}: {r}");
    r.json
}

/// Posts `body` and then each continuation until done, as the operator; the last answer.
fn walk(s: &Server, body: Value) -> Value {
    let mut r = s.post(ROUTE, &s.tokens.operator, &body);
    loop {
        assert_eq!(r.status, 200, "{ROUTE} {body}: {r}");
        if r.json["done"] == json!(true) {
            assert!(r.json["continuation"].is_null(), "{r}");
            return r.json;
        }
        let c = r.json["continuation"]
            .as_str()
            .expect("continuation")
            .to_string();
        r = s.post(ROUTE, &s.tokens.operator, &json!({ "continuation": c }));
    }
}

fn counts(v: &Value) -> [u64; 4] {
    ["matched", "revoked", "already_revoked", "expired"].map(|k| v[k].as_u64().unwrap_or(999))
}

/// The statuses `openssl ocsp` reports for `leaves`, in order, one request each without a
/// nonce: answers the responder may serve from its cache (RFC 5019), which a revocation must
/// invalidate.
fn ocsp_statuses(s: &Server, leaves: &[&Value]) -> Vec<(String, Option<String>)> {
    leaves
        .iter()
        .map(|leaf| {
            let file = s.leaf_file(leaf);
            let file = file.to_str().expect("UTF-8");
            let out = s.ocsp_ask(&format!("{}/ocsp", s.base), &["-no_nonce", "-cert", file]);
            ocsp_status(&out, file)
        })
        .collect()
}

/// The serials on a freshly generated complete CRL, checked by `openssl crl` and pkilint.
fn crl_serials(s: &Server, name: &str) -> BTreeSet<String> {
    s.generate_crl();
    let crl = s.check_crl(&s.crl(), name);
    crl.entries.iter().map(|e| e.serial.clone()).collect()
}

fn audit_entries(s: &Server) -> Vec<Value> {
    let r = s.get("/v1/audit?limit=1000", Some(&s.tokens.auditor));
    assert_eq!(r.status, 200, "{r}");
    r.json["items"].as_array().expect("items").clone()
}

/// `ca-server revoke-matching ARGS` against `s` with the operator's token: its output.
fn revoke_matching(s: &Server, args: &[&str]) -> std::process::Output {
    let token_file = s.scratch().join("operator.token");
    std::fs::write(&token_file, format!("{}\n", s.tokens.operator)).expect("token file");
    let mut all = vec![
        "revoke-matching",
        "--url",
        s.base.as_str(),
        "--token-file",
        token_file.to_str().expect("UTF-8"),
    ];
    all.extend_from_slice(args);
    ca_server(&all)
}

#[test]
fn a_filter_revokes_exactly_its_certificates_with_ocsp_crl_and_audit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = Server::serve(tmp.path());
    let (ra_a, ra_b) = (token(&s, "ra", "ra-a"), token(&s, "ra", "ra-b"));
    let scratch = s.scratch().to_path_buf();
    let key = |dir: &Path| fresh_p256_key(dir);
    let compromised = key(&scratch);
    let on_key_a = server_csr_with_key(&compromised, "k1.mass.example.com");
    let on_key_b = server_csr_with_key(&compromised, "k2.mass.example.com");
    let k1 = issue(&s, &ra_a, &on_key_a, "tls-server");
    let k2 = issue(&s, &ra_b, &on_key_b, "tls-server");
    let a_client = make_csr_for_key(
        &key(&scratch),
        "ec-p256",
        "/CN=a-client",
        &["DNS:a-client.mass.example.com"],
        &[],
    );
    let a1 = issue(&s, &ra_a, &a_client, "tls-client");
    let a2 = issue(
        &s,
        &ra_a,
        &server_csr_with_key(&key(&scratch), "a2.mass.example.com"),
        "tls-server",
    );
    let window_start = now_unix();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b1 = issue(
        &s,
        &ra_b,
        &server_csr_with_key(&key(&scratch), "b1.mass.example.com"),
        "tls-server",
    );
    let b2 = issue(
        &s,
        &ra_b,
        &server_csr_with_key(&key(&scratch), "b2.mass.example.com"),
        "tls-client",
    );
    let all = [&k1, &k2, &a1, &a2, &b1, &b2];
    let key_filter = json!({"spki_sha256": csr_spki_sha256(&on_key_a)});

    // The dry run: two on the key, nothing changes (no audit entry, all still valid).
    let audit_before = audit_entries(&s).len();
    let dry = walk(
        &s,
        json!({"filter": key_filter, "reason": "keyCompromise", "dry_run": true}),
    );
    assert_eq!(counts(&dry), [2, 2, 0, 0], "dry run: {dry}");
    assert!(
        dry["action"].is_null() && dry["dry_run"] == json!(true),
        "{dry}"
    );
    assert_eq!(
        audit_entries(&s).len(),
        audit_before,
        "a dry run audits nothing"
    );
    for c in all {
        assert_eq!(
            s.record(&serial_of(c))["status"],
            "valid",
            "after the dry run"
        );
    }
    // OCSP says good (and caches it): the action must make it say otherwise at once.
    for (i, (status, _)) in ocsp_statuses(&s, &all).iter().enumerate() {
        assert_eq!(status, "good", "OCSP for certificate {i} after the dry run");
    }

    // The action by key: exactly the two, for keyCompromise, as OCSP and the CRL say.
    let done = walk(
        &s,
        json!({"filter": key_filter, "reason": "keyCompromise",
               "invalidity_date": "2026-01-02T03:04:05Z"}),
    );
    assert_eq!(counts(&done), [2, 2, 0, 0], "action: {done}");
    let action = done["action"].as_str().expect("an action id").to_string();
    assert_eq!(action.len(), 32, "{done}");
    let statuses = ocsp_statuses(&s, &all);
    for (i, (status, reason)) in statuses.iter().enumerate() {
        if i < 2 {
            assert_eq!(status, "revoked", "OCSP for certificate {i}");
            assert_eq!(reason.as_deref(), Some("keyCompromise"), "OCSP reason {i}");
        } else {
            assert_eq!(status, "good", "OCSP for certificate {i}");
        }
    }
    let on_crl = crl_serials(&s, "after-key");
    let expected: BTreeSet<String> = [&k1, &k2].iter().map(|c| serial_of(c)).collect();
    assert_eq!(
        on_crl, expected,
        "the CRL lists exactly the key's certificates"
    );

    // The key is blocked: a new CSR with it is refused.
    let again = server_csr_with_key(&compromised, "k3.mass.example.com");
    let r = s.post(
        "/v1/certificates",
        &ra_a,
        &json!({"csr": again.pem, "profile": "tls-server"}),
    );
    assert_error(&r, 422, "key_blocked", "a CSR with the compromised key");

    // Audited: the action with its filter, reason and counts, each revocation linked to it.
    let entries = audit_entries(&s);
    let of = |name: &str| -> Vec<&Value> {
        entries
            .iter()
            .filter(|e| e["action"] == name && e["target"] == action.as_str())
            .collect()
    };
    let started = of("mass_revocation_started");
    assert_eq!(started.len(), 1, "{entries:?}");
    let d = &started[0]["details"];
    assert_eq!(d["spki_sha256"], key_filter["spki_sha256"], "{d}");
    assert_eq!(d["reason"], "keyCompromise", "{d}");
    assert_eq!(d["invalidity_date"], "2026-01-02T03:04:05Z", "{d}");
    assert_eq!(started[0]["actor"], "bootstrap-operator", "{}", started[0]);
    let completed = of("mass_revocation_completed");
    assert_eq!(completed.len(), 1, "{entries:?}");
    assert_eq!(completed[0]["details"]["revoked"], "2", "{}", completed[0]);
    for c in [&k1, &k2] {
        let r = s.get(
            &format!("/v1/certificates/{}/events", serial_of(c)),
            Some(&s.tokens.auditor),
        );
        assert_eq!(r.status, 200, "{r}");
        let revoked: Vec<&Value> = r.json["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["type"] == "revoked")
            .collect();
        assert_eq!(revoked.len(), 1, "{r}");
        assert_eq!(revoked[0]["action"], action.as_str(), "{r}");
        assert_eq!(revoked[0]["reason"], "keyCompromise", "{r}");
    }

    // By requester and window, from the command line: ra-b's certificates issued since
    // `window_start` (k2 is ra-b's but older; b1 and b2 are in it).
    let after = rfc3339(window_start + 1);
    let before = rfc3339(now_unix() + 60);
    let filter = [
        "--requester",
        "ra-b",
        "--issued-after",
        &after,
        "--issued-before",
        &before,
        "--reason",
        "superseded",
    ];
    let dry = revoke_matching(&s, &[&filter[..], &["--dry-run"]].concat());
    assert!(dry.status.success(), "{dry:?}");
    let answer: Value = serde_json::from_slice(&dry.stdout).expect("JSON on stdout");
    assert_eq!(counts(&answer), [2, 2, 0, 0], "CLI dry run: {answer}");
    assert_eq!(s.record(&serial_of(&b1))["status"], "valid");
    let out = revoke_matching(&s, &filter);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("revoked 2/2"),
        "the progress line: {stderr}"
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(counts(&answer), [2, 2, 0, 0], "CLI action: {answer}");
    let statuses = ocsp_statuses(&s, &all);
    let revoked: Vec<bool> = statuses.iter().map(|(st, _)| st == "revoked").collect();
    assert_eq!(
        revoked,
        [true, true, false, false, true, true],
        "{statuses:?}"
    );
    let expected: BTreeSet<String> = [&k1, &k2, &b1, &b2].iter().map(|c| serial_of(c)).collect();
    assert_eq!(crl_serials(&s, "after-requester"), expected);

    // Every ra-b certificate now: k2 was revoked before, the others just now.
    let last = walk(
        &s,
        json!({"filter": {"requester": "ra-b"}, "reason": "superseded"}),
    );
    assert_eq!(counts(&last), [3, 0, 3, 0], "{last}");
    // A window with nothing in it.
    let none = walk(
        &s,
        json!({"filter": {"profile": "tls-client", "issued_before": rfc3339(window_start - 3600)},
               "reason": "superseded"}),
    );
    assert_eq!(counts(&none), [0, 0, 0, 0], "{none}");
    assert_eq!(s.record(&serial_of(&a1))["status"], "valid");

    let dir = s.dir.clone();
    s.terminate();
    audit_verify_ok(&dir);
}

#[test]
fn only_operators_may_and_bad_filters_are_refused() {
    let s = Server::fresh();
    let body = json!({"filter": {"requester": "nobody"}, "reason": "superseded", "dry_run": true});
    let mut checks = Checks::default();
    for (token, role) in [(&s.tokens.ra, "ra"), (&s.tokens.auditor, "auditor")] {
        let r = s.post(ROUTE, token, &body);
        checks.error(&r, 403, "forbidden", role);
    }
    let r = s.request(reqwest::Method::POST, ROUTE, None, Some(&body));
    checks.error(&r, 401, "unauthorized", "no token");

    let bad: Vec<(Value, &str)> = vec![
        (json!({"reason": "superseded"}), "no filter"),
        (
            json!({"filter": {}, "reason": "superseded"}),
            "an empty filter",
        ),
        (
            json!({"filter": {"requester": "ra"}, "reason": "sooperseded"}),
            "an unknown reason",
        ),
        (json!({"filter": {"requester": "ra"}}), "no reason"),
        (
            json!({"filter": {"spki_sha256": "abc"}, "reason": "keyCompromise"}),
            "short hex",
        ),
        (
            json!({"filter": {"spki_sha256": "zz".repeat(32)}, "reason": "keyCompromise"}),
            "not hex",
        ),
        (
            json!({"filter": {"issued_after": "2026-02-01T00:00:00Z",
                              "issued_before": "2026-01-01T00:00:00Z"},
                   "reason": "superseded"}),
            "a reversed window",
        ),
        (
            json!({"filter": {"issued_after": "yesterday"}, "reason": "superseded"}),
            "a time that is not RFC 3339",
        ),
        (
            json!({"filter": {"requester": "ra"}, "reason": "superseded",
                   "invalidity_date": rfc3339(now_unix() + 3600)}),
            "an invalidity date in the future",
        ),
        (
            json!({"filter": {"requester": "ra", "subject": "x"}, "reason": "superseded"}),
            "an unknown filter",
        ),
        (
            json!({"continuation": "not-one-of-ours"}),
            "a forged continuation",
        ),
        (json!([]), "not an object"),
    ];
    for (body, what) in &bad {
        let r = s.post(ROUTE, &s.tokens.operator, body);
        checks.error(&r, 400, "invalid_request", what);
    }

    // A continuation comes alone (one this CA sealed for another caller is refused as a
    // forged one: ca-core's mass_revocation tests).
    let mut many = Vec::new();
    for i in 0..2 {
        many.push(s.issue(
            &server_csr(&format!("c{i}.mass.example.com")),
            "tls-server",
            None,
        ));
    }
    let r = s.post(
        ROUTE,
        &s.tokens.operator,
        &json!({"continuation": "AAAA", "reason": "superseded"}),
    );
    checks.error(&r, 400, "invalid_request", "a continuation with a reason");
    checks.finish("mass revocation refusals");
    for c in &many {
        assert_eq!(
            s.record(&serial_of(c))["status"],
            "valid",
            "nothing was revoked"
        );
    }
}

/// The same walk on the PostgreSQL store (`[store] backend = "postgres"`): the engine's query
/// and writer, not RocksDB's, find and revoke the key's certificates.
#[test]
fn on_postgresql_the_key_filter_revokes_its_certificates() {
    let pg = e2e_tests::postgres::Postgres::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    pg.init_ca_ok(&dir, &pg.url("postgres"));
    let s = Server::serve(&dir);
    let key = fresh_p256_key(s.scratch());
    let on_key: Vec<Value> = (0..2)
        .map(|i| {
            s.issue(
                &server_csr_with_key(&key, &format!("pg{i}.mass.example.com")),
                "tls-server",
                None,
            )
        })
        .collect();
    let other = s.issue(&server_csr("pg-other.mass.example.com"), "tls-server", None);
    let csr = server_csr_with_key(&key, "pg0.mass.example.com");
    let filter = json!({"spki_sha256": csr_spki_sha256(&csr)});
    let dry = walk(
        &s,
        json!({"filter": filter, "reason": "keyCompromise", "dry_run": true}),
    );
    assert_eq!(counts(&dry), [2, 2, 0, 0], "dry run: {dry}");
    let done = walk(&s, json!({"filter": filter, "reason": "keyCompromise"}));
    assert_eq!(counts(&done), [2, 2, 0, 0], "action: {done}");
    for c in &on_key {
        assert_eq!(s.record(&serial_of(c))["status"], "revoked", "{c}");
    }
    assert_eq!(s.record(&serial_of(&other))["status"], "valid");
    let again = server_csr_with_key(&key, "pg2.mass.example.com");
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": again.pem, "profile": "tls-server"}),
    );
    assert_error(
        &r,
        422,
        "key_blocked",
        "a CSR with the compromised key, on PostgreSQL",
    );
}
