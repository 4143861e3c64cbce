//! API tokens: names are unique for ever, so an operator cannot mint a token that inherits an
//! RA's certificates; tokens are listed without secrets, revoked (API and command line) and
//! expire; every change is audited.

use std::path::Path;

use e2e_tests::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

fn mint(s: &Server, body: &Value) -> Resp {
    s.post("/v1/tokens", &s.tokens.operator, body)
}

fn revoke_token(s: &Server, name: &str) -> Resp {
    s.request(
        Method::DELETE,
        &format!("/v1/tokens/{name}"),
        Some(&s.tokens.operator),
        None,
    )
}

fn revoke_with(s: &Server, serial: &str, token: &str) -> Resp {
    s.post(
        &format!("/v1/certificates/{serial}/revoke"),
        token,
        &json!({"reason": "keyCompromise"}),
    )
}

/// The listed token named `name`.
fn listed(s: &Server, name: &str) -> Value {
    let r = s.get("/v1/tokens", Some(&s.tokens.auditor));
    assert_eq!(r.status, 200, "GET /v1/tokens: {r}");
    r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed: {r}"))
        .clone()
}

fn audit_actions(s: &Server) -> Vec<(String, String)> {
    let r = s.get("/v1/audit?after=0&limit=1000", Some(&s.tokens.auditor));
    assert_eq!(r.status, 200, "{r}");
    r.json["entries"]
        .as_array()
        .or_else(|| r.json["items"].as_array())
        .unwrap_or_else(|| panic!("no entries in {r}"))
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["target"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn dir_str(dir: &Path) -> &str {
    dir.to_str().expect("UTF-8 path")
}

/// The takeover of issue 15 finding 8: an operator mints a second `ra` token with an existing
/// RA's name and would inherit that RA's certificates (ownership follows the name).
#[test]
fn an_operator_cannot_mint_a_token_that_takes_over_an_ra() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let s = Server::serve(dir);
    let victim = s.issue(&server_csr("victim.tokens.example.com"), "tls-server", None);
    let serial = victim["serial"].as_str().expect("serial").to_string();

    // The RA's own name: refused at mint time, whatever the role.
    for role in ["ra", "auditor", "operator"] {
        let r = mint(&s, &json!({"role": role, "name": "bootstrap-ra"}));
        assert_error(&r, 409, "token_name_taken", "minting an existing RA's name");
        assert!(r.json.get("token").is_none(), "{r}");
    }
    // Names the CA keeps for itself.
    for name in ["ca-server", "(ca)", "(public)"] {
        let r = mint(&s, &json!({"role": "ra", "name": name}));
        assert_error(&r, 400, "invalid_request", "minting a reserved name");
    }
    // Another RA exists for nothing of the first one.
    let r = mint(&s, &json!({"role": "ra", "name": "other-ra"}));
    assert_eq!(r.status, 201, "{r}");
    let other = r.json["token"].as_str().expect("token").to_string();
    assert_eq!(r.json["name"], "other-ra");
    assert_eq!(r.json["id"].as_str().map(str::len), Some(32), "{r}");
    let get = s.get(&format!("/v1/certificates/{serial}"), Some(&other));
    assert_error(
        &get,
        404,
        "serial_not_found",
        "another RA reading the certificate",
    );
    assert_error(
        &revoke_with(&s, &serial, &other),
        404,
        "serial_not_found",
        "another RA revoking the certificate",
    );
    let list = s.get("/v1/certificates", Some(&other));
    assert_eq!(list.status, 200, "{list}");
    assert_eq!(list.json["items"], json!([]), "{list}");
    // A second attempt at the new name is refused too, and the owner still has its own.
    let r = mint(&s, &json!({"role": "ra", "name": "other-ra"}));
    assert_error(&r, 409, "token_name_taken", "minting a name twice");
    let own = s.get(&format!("/v1/certificates/{serial}"), Some(&s.tokens.ra));
    assert_eq!(own.status, 200, "{own}");
    s.terminate();

    // The command line refuses it as well.
    let out = ca_server(&[
        "token",
        "create",
        "--data-dir",
        dir_str(dir),
        "--role",
        "ra",
        "--name",
        "bootstrap-ra",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("never reused"),
        "token create with a taken name: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty());
}

#[test]
fn tokens_are_listed_revoked_and_expire() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let s = Server::serve(dir);
    tokens_are_listed_without_secrets(&s);
    a_revoked_token_is_refused_and_keeps_its_name(&s);
    let at = tokens_expire(&s);
    for bad in [
        json!({"role": "ra", "name": "x1", "expires_in_days": 0}),
        json!({"role": "ra", "name": "x2", "expires_at": "2001-01-01T00:00:00Z"}),
        json!({"role": "ra", "name": "x3", "expires_in_days": 1, "expires_at": at}),
    ] {
        assert_error(&mint(&s, &bad), 400, "invalid_request", &bad.to_string());
    }

    // Every change is in the audit log.
    let actions = audit_actions(&s);
    for (action, target) in [
        ("token_created", "to-revoke"),
        ("token_revoked", "to-revoke"),
        ("token_created", "short-lived"),
    ] {
        assert!(
            actions.contains(&(action.to_string(), target.to_string())),
            "{action} {target} is not in the audit log: {actions:?}"
        );
    }
    s.terminate();

    // `ca-server token revoke`, offline.
    let out = ca_server_ok(&[
        "token",
        "revoke",
        "--data-dir",
        dir_str(dir),
        "--name",
        "days",
    ]);
    assert!(out.contains("revoked"), "{out}");
    let out = ca_server(&[
        "token",
        "revoke",
        "--data-dir",
        dir_str(dir),
        "--name",
        "days",
    ]);
    assert!(
        !out.status.success(),
        "revoking twice from the command line succeeded"
    );
    let s = Server::serve(dir);
    let t = listed(&s, "days");
    assert_eq!(t["revoked"], json!(true), "{t}");
    assert!(audit_actions(&s).contains(&("token_revoked".to_string(), "days".to_string())));
}

/// Listing: operator and auditor; never a secret.
fn tokens_are_listed_without_secrets(s: &Server) {
    let r = s.get("/v1/tokens", Some(&s.tokens.operator));
    assert_eq!(r.status, 200, "{r}");
    let items = r.json["items"].as_array().expect("items");
    assert_eq!(items.len(), 3, "{r}");
    for t in items {
        let keys: Vec<&str> = t
            .as_object()
            .expect("object")
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "created_at",
                "expires_at",
                "id",
                "name",
                "revoked",
                "revoked_at",
                "role"
            ],
            "{t}"
        );
    }
    for secret in [&s.tokens.ra, &s.tokens.auditor, &s.tokens.operator] {
        assert!(!r.text.contains(secret.as_str()), "a token is listed: {r}");
    }
    let ra = listed(s, "bootstrap-ra");
    assert_eq!(
        (&ra["role"], &ra["revoked"], &ra["expires_at"]),
        (&json!("ra"), &json!(false), &Value::Null)
    );
    assert_error(
        &s.get("/v1/tokens", Some(&s.tokens.ra)),
        403,
        "forbidden",
        "an RA listing tokens",
    );
    assert_error(
        &s.request(
            Method::DELETE,
            "/v1/tokens/bootstrap-ra",
            Some(&s.tokens.auditor),
            None,
        ),
        403,
        "forbidden",
        "an auditor revoking a token",
    );
}

/// Revocation: 204, then the token is refused; the name stays taken.
fn a_revoked_token_is_refused_and_keeps_its_name(s: &Server) {
    let r = mint(s, &json!({"role": "ra", "name": "to-revoke"}));
    assert_eq!(r.status, 201, "{r}");
    let doomed = r.json["token"].as_str().expect("token").to_string();
    let id = r.json["id"].as_str().expect("id").to_string();
    assert_eq!(s.get("/v1/certificates", Some(&doomed)).status, 200);
    let r = revoke_token(s, "to-revoke");
    assert_eq!(r.status, 204, "{r}");
    assert_error(
        &s.get("/v1/certificates", Some(&doomed)),
        401,
        "unauthorized",
        "a revoked token",
    );
    assert_error(
        &revoke_token(s, "to-revoke"),
        409,
        "token_already_revoked",
        "revoking twice",
    );
    assert_error(
        &revoke_token(s, "no-such-token"),
        404,
        "token_not_found",
        "unknown name",
    );
    assert_error(
        &mint(s, &json!({"role": "ra", "name": "to-revoke"})),
        409,
        "token_name_taken",
        "reusing a revoked token's name",
    );
    let t = listed(s, "to-revoke");
    assert_eq!((&t["revoked"], &t["id"]), (&json!(true), &json!(id)), "{t}");
    assert!(t["revoked_at"].is_string(), "{t}");
}

/// Expiry: a token that expires in two seconds works, then is refused; `expires_in_days`
/// sets the expiry that many days ahead (the token `days`). Returns the short-lived token's
/// `expires_at`.
fn tokens_expire(s: &Server) -> String {
    let at = time_rfc3339(now_unix() + 2);
    let r = mint(
        s,
        &json!({"role": "auditor", "name": "short-lived", "expires_at": at}),
    );
    assert_eq!(r.status, 201, "{r}");
    assert_eq!(r.json["expires_at"], json!(at), "{r}");
    let short = r.json["token"].as_str().expect("token").to_string();
    assert_eq!(s.get("/v1/tokens", Some(&short)).status, 200);
    // Refused once its second has passed (polled, up to 30 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.get("/v1/tokens", Some(&short)).status == 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "a token that expired 28 s ago still works"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        now_unix() >= parse_rfc3339(&at),
        "the token was refused before it expired"
    );
    assert_error(
        &s.get("/v1/tokens", Some(&short)),
        401,
        "unauthorized",
        "an expired token",
    );
    let r = mint(
        s,
        &json!({"role": "ra", "name": "days", "expires_in_days": 30}),
    );
    assert_eq!(r.status, 201, "{r}");
    let expires = parse_rfc3339(r.json["expires_at"].as_str().expect("expires_at"));
    assert!((expires - now_unix() - 30 * 86_400).abs() < 60, "{r}");
    at
}

fn time_rfc3339(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).expect("time");
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("formatting")
}
