//! Isolation between callers, judged route by route: an RA must not read, list, renew, revoke
//! or release another RA's certificates, nor read its enrollments, and learns nothing of their
//! existence (the refusal is the one for a serial never issued); the refusals change nothing,
//! as the auditor sees afterwards. Token names are never given twice, so no token can inherit
//! an RA's certificates. A TLS client certificate from a CA other than `client_ca_file` (the
//! same subject as a mapped one, a mapped fingerprint, or a certificate this CA issued) is no
//! one, and a bearer token decides over a mapped client certificate (docs/API.md, *Access and
//! limits* and *TLS client certificates*).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use e2e_tests::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};

/// The subject of ra-a's redeemed enrollment (under `personal`, with the name the RA
/// asserts), as RFC 4514 writes the certificate's.
const BRUNO: &str = "CN=Bruno Example,SN=Example,GN=Bruno";

/// A serial no certificate has (the form this CA draws: 32 hex digits, second bit set).
const GHOST_SERIAL: &str = "4a1b2c3d4e5f60718293a4b5c6d7e8f9";
/// An enrollment id no enrollment has (32 hex digits, as ids are).
const GHOST_ENROLLMENT: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// The `serial` of an issuance answer or certificate view.
fn serial(v: &Value) -> String {
    v["serial"]
        .as_str()
        .unwrap_or_else(|| panic!("no serial in {v}"))
        .to_string()
}

/// Percent-encodes a query parameter value (everything but RFC 3986 unreserved characters).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every certificate `GET /v1/certificates?QUERY` shows `token`, following `next_cursor` with
/// pages of `limit`: (serial, requester) in the order listed. Panics on an answer other than
/// 200 or a walk that does not end.
fn walk(s: &Server, token: &str, query: &str, limit: usize) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 10_000, "paging does not end for {query:?}");
        let mut path = format!("/v1/certificates?limit={limit}");
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", enc(c)));
        }
        let r = s.get(&path, Some(token));
        assert_eq!(r.status, 200, "GET {path}: {r}");
        let items = r.json["items"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no items: {r}"));
        assert!(items.len() <= limit, "GET {path}: more than {limit} items");
        seen.extend(items.iter().map(|i| {
            (
                serial(i),
                i["requester"].as_str().unwrap_or("?").to_string(),
            )
        }));
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    seen
}

/// Every audit entry with `seq` above `after`, read with the auditor token, oldest first.
fn audit_after(s: &Server, after: u64) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut after = after;
    loop {
        let path = format!("/v1/audit?after={after}&limit=1000");
        let r = s.get(&path, Some(&s.tokens.auditor));
        assert_eq!(r.status, 200, "GET {path}: {r}");
        let items = r.json["items"]
            .as_array()
            .unwrap_or_else(|| panic!("GET {path}: no items: {r}"))
            .clone();
        if items.is_empty() {
            return entries;
        }
        after = r.json["next_after"]
            .as_u64()
            .unwrap_or_else(|| panic!("GET {path}: next_after is not a number: {r}"));
        entries.extend(items);
    }
}

/// The `seq` of the newest audit entry.
fn audit_head(s: &Server) -> u64 {
    audit_after(s, 0)
        .last()
        .and_then(|e| e["seq"].as_u64())
        .expect("the audit log has entries")
}

/// What the auditor sees of certificates and enrollments: each certificate's view and events,
/// each enrollment's view, keyed by path.
fn snapshot(s: &Server, serials: &[&str], enrollments: &[&str]) -> Value {
    let mut paths = Vec::new();
    for serial in serials {
        paths.push(format!("/v1/certificates/{serial}"));
        paths.push(format!("/v1/certificates/{serial}/events"));
    }
    for id in enrollments {
        paths.push(format!("/v1/enrollments/{id}"));
    }
    let mut views = serde_json::Map::new();
    for path in paths {
        let r = s.get(&path, Some(&s.tokens.auditor));
        assert_eq!(r.status, 200, "the auditor reads GET {path}: {r}");
        views.insert(path, r.json);
    }
    Value::Object(views)
}

/// One request of the refusal table: what another RA sends about an RA's object, and the
/// answer the contract gives it.
struct Refusal {
    /// What the row checks.
    what: String,
    method: Method,
    /// The path, with `{id}` where the object's serial or id goes.
    template: String,
    /// The object: a serial or an enrollment id of the owner; "" when the path names none.
    id: String,
    /// An id no object has, answered the same way when the refusal must not tell the
    /// object's existence; "" when the row has none.
    ghost: String,
    body: Option<Value>,
    status: u16,
    code: &'static str,
}

impl Refusal {
    /// A row about an object of the owner (a certificate or an enrollment), refused like an
    /// object that does not exist.
    fn hidden(
        what: &str,
        method: Method,
        template: &str,
        id: &str,
        body: Option<Value>,
        code: &'static str,
    ) -> Refusal {
        let ghost = if template.starts_with("/v1/enrollments/") {
            GHOST_ENROLLMENT
        } else {
            GHOST_SERIAL
        };
        Refusal {
            what: what.to_string(),
            method,
            template: template.to_string(),
            id: id.to_string(),
            ghost: ghost.to_string(),
            body,
            status: 404,
            code,
        }
    }

    /// A row the role may not call at all (or a fixed refusal): no object, no ghost.
    fn fixed(
        what: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        status: u16,
        code: &'static str,
    ) -> Refusal {
        Refusal {
            what: what.to_string(),
            method,
            template: path.to_string(),
            id: String::new(),
            ghost: String::new(),
            body,
            status,
            code,
        }
    }

    /// The same row with the object's id and the ghost spelled otherwise (e.g. upper case),
    /// which must not get around the check either.
    fn spelled(mut self, how: &str, spell: fn(&str) -> String) -> Refusal {
        self.what = format!("{} (serial {how})", self.what);
        self.id = spell(&self.id);
        self.ghost = spell(&self.ghost);
        self
    }

    /// The path naming `id`.
    fn path(&self, id: &str) -> String {
        self.template.replace("{id}", id)
    }
}

/// Runs the refusal table with `token`: each row must answer its status and code, and a row
/// about an object must answer exactly as the same request about an object that does not
/// exist (the same error, the message naming the other id, compared without regard to case).
fn run_refusals(s: &Server, token: &str, rows: &[Refusal], checks: &mut Checks) {
    for row in rows {
        let path = row.path(&row.id);
        let what = format!("{} ({} {path})", row.what, row.method);
        let r = s.request(row.method.clone(), &path, Some(token), row.body.as_ref());
        checks.error(&r, row.status, row.code, &what);
        if row.ghost.is_empty() {
            continue;
        }
        let ghost = s.request(
            row.method.clone(),
            &row.path(&row.ghost),
            Some(token),
            row.body.as_ref(),
        );
        let message = |r: &Resp| {
            r.json["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase()
        };
        let expected = message(&ghost).replace(&row.ghost.to_lowercase(), &row.id.to_lowercase());
        let same = ghost.status == r.status
            && ghost.json["error"]["code"] == r.json["error"]["code"]
            && message(&r) == expected;
        checks.check(same, || {
            format!(
                "{what}: the refusal differs from the one for an object that does not \
                     exist, so it discloses the object: {r} vs {ghost}"
            )
        });
    }
}

/// `ca-server token create --role ROLE --name NAME` must fail (the name is taken): no token
/// printed, a message saying so.
fn token_create_refused(dir: &Path, role: &str, name: &str, checks: &mut Checks) {
    let out = ca_server(&[
        "token",
        "create",
        "--data-dir",
        dir.to_str().expect("UTF-8 path"),
        "--role",
        role,
        "--name",
        name,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    checks.check(
        !out.status.success() && stdout.trim().is_empty() && stderr.contains(name),
        || {
            format!(
                "`ca-server token create --role {role} --name {name}` with a taken name must \
                 fail without printing a token and name it ({}): stdout {stdout:?}, stderr \
                 {stderr:?}",
                out.status
            )
        },
    );
}

/// POST `body` to `path` with `token`, asserting 201; the answer.
fn created(s: &Server, path: &str, token: &str, body: &Value) -> Value {
    let r = s.post(path, token, body);
    assert_eq!(r.status, 201, "POST {path} {body}: {r}");
    r.json
}

/// The table test: RA `ra-b` against every route an RA may call about `ra-a`'s
/// certificates and enrollments (in every state: valid, on hold, revoked, renewed, issued by
/// redemption), against the routes no RA may call, and against `ra-a`'s idempotency keys and
/// cursors; then the auditor checks that nothing changed, and token names stay unique (API
/// and command line) with `ra-a` keeping its certificates across a restart.
#[test]
fn another_ra_is_refused_on_every_route_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = new_dir(tmp.path());
    let ra_a = create_token(&dir, "ra", "ra-a");
    let ra_b = create_token(&dir, "ra", "ra-b");
    let mut checks = Checks::default();
    // Names are never given twice, by the command line either.
    for role in ["ra", "auditor"] {
        token_create_refused(&dir, role, "ra-a", &mut checks);
    }
    let s = Server::serve(&dir);
    let started = two_seconds_ago();
    let objects = RaAObjects::make(&s, &ra_a);
    let owned = objects.serials();
    let enrollments = objects.enrollments();
    ra_b_request_ids_are_its_own(&s, &ra_b, &objects, &mut checks);
    // A cursor given to ra-a (it has more than one certificate).
    let r = s.get("/v1/certificates?limit=1", Some(&ra_a));
    let a_cursor = r.json["next_cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("ra-a's first page of one has a cursor: {r}"))
        .to_string();

    let before = snapshot(&s, &owned, &enrollments);
    let head = audit_head(&s);

    run_refusals(&s, &ra_b, &refusal_table(&objects, &a_cursor), &mut checks);
    // HEAD is a read too: 404 as for a serial never issued.
    for serial in [&objects.valid, &objects.held] {
        let head_of = |serial: &str| {
            s.request(
                Method::HEAD,
                &format!("/v1/certificates/{serial}"),
                Some(&ra_b),
                None,
            )
        };
        let (r, ghost) = (head_of(serial), head_of(GHOST_SERIAL));
        checks.check(r.status == 404 && ghost.status == 404, || {
            format!("ra-b: HEAD of ra-a's {serial} must be 404 like a ghost's: {r} vs {ghost}")
        });
    }
    listings_show_ra_b_only_its_own(&s, &ra_b, &owned, &started, &mut checks);

    // Nothing changed: the auditor sees every object as before, and the audit log has no
    // entry by ra-b nor about ra-a's objects since.
    let after = snapshot(&s, &owned, &enrollments);
    checks.check(after == before, || {
        format!(
            "ra-a's objects changed under ra-b's refused requests:\nbefore {before}\nafter {after}"
        )
    });
    no_audit_entry_by_ra_b_or_about_ra_a(&s, head, &owned, &enrollments, &mut checks);
    // The owner still reaches each of them.
    for serial in &owned {
        let r = s.get(&format!("/v1/certificates/{serial}"), Some(&ra_a));
        checks.check(r.status == 200, || format!("ra-a reads its {serial}: {r}"));
    }

    api_refuses_taken_token_names(&s, &mut checks);
    s.terminate();
    token_create_refused(&dir, "ra", "ra-a", &mut checks);
    token_create_refused(&dir, "ra", "ra-b", &mut checks);
    ownership_survives_a_restart(&dir, (ra_a.as_str(), ra_b.as_str()), &objects, &mut checks);
    checks.finish("RA isolation");
}

/// Two seconds ago in RFC 3339, whole seconds: a lower bound of the test's issuance times.
fn two_seconds_ago() -> String {
    let started = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("nanoseconds")
        - time::Duration::seconds(2);
    started
        .format(&time::format_description::well_known::Rfc3339)
        .expect("RFC 3339")
}

/// ra-a's objects, one in each state: certificates valid, on hold, revoked, renewed (and its
/// renewal), tls-client and issued by redemption; enrollments pending and redeemed.
struct RaAObjects {
    /// The body of ra-a's first request (with `request_id` `isolation-1`).
    body: Value,
    valid: String,
    held: String,
    revoked: String,
    renewed: String,
    renewal: String,
    client: String,
    by_code: String,
    pending: String,
    redeemed: String,
}

impl RaAObjects {
    /// Makes them with ra-a's token `ra_a`.
    fn make(s: &Server, ra_a: &str) -> RaAObjects {
        let a_csr = make_csr(
            "ec-p256",
            "/CN=a.isolation.example.com",
            &[
                "DNS:a.isolation.example.com",
                "DNS:shared.isolation.example.com",
            ],
        );
        let body = json!({"csr": a_csr.pem, "profile": "tls-server", "request_id": "isolation-1"});
        let valid = serial(&created(s, "/v1/certificates", ra_a, &body));
        let issue = |host: &str, profile: &str| {
            let san = format!("DNS:{host}");
            let csr = make_csr("ec-p256", &format!("/CN={host}"), &[san.as_str()]);
            serial(&created(
                s,
                "/v1/certificates",
                ra_a,
                &json!({"csr": csr.pem, "profile": profile}),
            ))
        };
        let held = issue("h.isolation.example.com", "tls-server");
        let revoked = issue("r.isolation.example.com", "tls-server");
        let renewed = issue("n.isolation.example.com", "tls-server");
        let client = issue("client-a.isolation.example", "tls-client");
        // Revoked as superseded: keyCompromise would block the test key, which the later
        // requests share.
        for (serial, reason) in [(&held, "certificateHold"), (&revoked, "superseded")] {
            let r = s.post(
                &format!("/v1/certificates/{serial}/revoke"),
                ra_a,
                &json!({ "reason": reason }),
            );
            assert_eq!(r.status, 200, "ra-a revokes its {serial} ({reason}): {r}");
        }
        let renewal = serial(&created(
            s,
            &format!("/v1/certificates/{renewed}/renew"),
            ra_a,
            &json!({"request_id": "isolation-renew"}),
        ));
        let (pending, redeemed, by_code) = RaAObjects::enrollments_of(s, ra_a);
        RaAObjects {
            body,
            valid,
            held,
            revoked,
            renewed,
            renewal,
            client,
            by_code,
            pending,
            redeemed,
        }
    }

    /// Two enrollments of ra-a, one left pending, one redeemed: their ids and the serial of
    /// the certificate the redemption issued (which belongs to ra-a).
    fn enrollments_of(s: &Server, ra_a: &str) -> (String, String, String) {
        let enrollment = |subject: &str, san: &str| {
            let r = created(
                s,
                "/v1/enrollments",
                ra_a,
                &json!({"profile": "personal", "subject": subject, "sans": [san],
                        "expires_in_hours": 24, "max_attempts": 3}),
            );
            (
                r["id"].as_str().expect("id").to_string(),
                r["code"].as_str().expect("code").to_string(),
            )
        };
        // The personal name as the RA asserts it (the personal profile takes it from no CSR).
        let (pending, _) = enrollment("CN=Ana Example,SN=Example,GN=Ana", "ana@example.com");
        let (redeemed, code) = enrollment(BRUNO, "bruno@example.com");
        let r = s.request(
            Method::POST,
            &format!("/v1/enrollments/{redeemed}/redeem"),
            None,
            Some(&json!({"code": code, "csr": make_csr("ec-p256", "/CN=Bruno", &[]).pem})),
        );
        assert_eq!(r.status, 201, "redeeming ra-a's enrollment: {r}");
        let by_code = serial(&r.json);
        assert_eq!(
            s.record(&by_code)["requester"],
            "ra-a",
            "the redeemed certificate belongs to the enrolling RA"
        );
        (pending, redeemed, by_code)
    }

    /// Each certificate with the state it stands for.
    fn states(&self) -> [(&'static str, &str); 7] {
        [
            ("valid", self.valid.as_str()),
            ("on hold", self.held.as_str()),
            ("revoked", self.revoked.as_str()),
            ("renewed", self.renewed.as_str()),
            ("renewal", self.renewal.as_str()),
            ("tls-client", self.client.as_str()),
            ("redeemed", self.by_code.as_str()),
        ]
    }

    /// The serials of the certificates.
    fn serials(&self) -> Vec<&str> {
        self.states()
            .into_iter()
            .map(|(_, serial)| serial)
            .collect()
    }

    /// The ids of the enrollments.
    fn enrollments(&self) -> [&str; 2] {
        [self.pending.as_str(), self.redeemed.as_str()]
    }
}

/// ra-b's own certificates: the same body under ra-a's request_id is a new certificate for
/// ra-b, not ra-a's replayed (request_id is scoped by token), in a batch and alone (which
/// then replays ra-b's own), and so is a renewal under ra-a's renewal request_id.
fn ra_b_request_ids_are_its_own(s: &Server, ra_b: &str, objects: &RaAObjects, checks: &mut Checks) {
    let (a, renewal) = (&objects.valid, &objects.renewal);
    let r = s.post(
        "/v1/certificates/batch",
        ra_b,
        &json!({"requests": [objects.body.clone()]}),
    );
    assert_eq!(r.status, 200, "ra-b's batch: {r}");
    let b = serial(&r.json["results"][0]);
    checks.check(b != *a, || {
        format!("a batch item of ra-b under ra-a's request_id must be ra-b's own: {r}")
    });
    let r = s.post("/v1/certificates", ra_b, &objects.body);
    checks.check(r.status == 200 && serial(&r.json) == b, || {
        format!(
            "ra-b repeating its request_id (which ra-a used too) replays its own {b} (200), \
             not ra-a's {a}: {r}"
        )
    });
    let r = s.post(
        &format!("/v1/certificates/{b}/renew"),
        ra_b,
        &json!({"request_id": "isolation-renew"}),
    );
    checks.check(
        r.status == 201 && serial(&r.json) != *renewal && r.json["renewed_from"] == b.as_str(),
        || format!("ra-b renewing its own under ra-a's request_id: a renewal of {b}, got {r}"),
    );
    let b_renewal = serial(&r.json);
    for serial in [&b, &b_renewal] {
        let rec = s.record(serial);
        checks.check(rec["requester"] == "ra-b", || {
            format!("ra-b's certificate {serial} has requester ra-b: {rec}")
        });
    }
}

/// The table: every route an RA may call about someone's object, about each of ra-a's
/// (`a_cursor` is a cursor given to ra-a), and the routes no RA may call.
fn refusal_table(objects: &RaAObjects, a_cursor: &str) -> Vec<Refusal> {
    let mut rows = Vec::new();
    let rekey = make_csr("ec-p384", "/CN=a.isolation.example.com", &[]);
    for (state, serial) in objects.states() {
        rows.extend(certificate_refusals(state, serial, &rekey));
    }
    // The valid certificate's serial in upper case: the same refusals.
    for (what, method, template, body) in [
        ("GET", Method::GET, "/v1/certificates/{id}", None),
        ("events", Method::GET, "/v1/certificates/{id}/events", None),
        ("renew", Method::POST, "/v1/certificates/{id}/renew", None),
        (
            "revoke",
            Method::POST,
            "/v1/certificates/{id}/revoke",
            Some(json!({"reason": "keyCompromise"})),
        ),
    ] {
        rows.push(
            Refusal::hidden(
                &format!("ra-b: {what} of ra-a's valid certificate"),
                method,
                template,
                &objects.valid,
                body,
                "serial_not_found",
            )
            .spelled("in upper case", |s| s.to_uppercase()),
        );
    }
    for (state, id) in [
        ("pending", &objects.pending),
        ("redeemed", &objects.redeemed),
    ] {
        rows.push(Refusal::hidden(
            &format!("ra-b: GET of ra-a's {state} enrollment"),
            Method::GET,
            "/v1/enrollments/{id}",
            id,
            None,
            "enrollment_not_found",
        ));
    }
    rows.push(Refusal::fixed(
        "ra-b: ra-a's cursor",
        Method::GET,
        &format!("/v1/certificates?limit=1&cursor={}", enc(a_cursor)),
        None,
        400,
        "invalid_request",
    ));
    rows.extend(routes_no_ra_may_call());
    rows
}

/// The rows about one of ra-a's certificates (`state` names it): every route an RA may call
/// about a certificate, refused like one never issued.
fn certificate_refusals(state: &str, serial: &str, rekey: &Csr) -> Vec<Refusal> {
    let hidden = |what: &str, method: Method, template: &str, body: Option<Value>| {
        Refusal::hidden(
            &format!("ra-b: {what} of ra-a's {state} certificate"),
            method,
            template,
            serial,
            body,
            "serial_not_found",
        )
    };
    vec![
        hidden("GET", Method::GET, "/v1/certificates/{id}", None),
        hidden("events", Method::GET, "/v1/certificates/{id}/events", None),
        hidden(
            "renew with the same key, no body",
            Method::POST,
            "/v1/certificates/{id}/renew",
            None,
        ),
        hidden(
            "renew with the same key",
            Method::POST,
            "/v1/certificates/{id}/renew",
            Some(json!({"validity_days": 30})),
        ),
        hidden(
            "re-key renewal",
            Method::POST,
            "/v1/certificates/{id}/renew",
            Some(json!({"csr": rekey.pem})),
        ),
        hidden(
            "renewal under ra-a's request_id",
            Method::POST,
            "/v1/certificates/{id}/renew",
            Some(json!({"request_id": "isolation-renew"})),
        ),
        hidden(
            "revoke",
            Method::POST,
            "/v1/certificates/{id}/revoke",
            Some(json!({"reason": "keyCompromise"})),
        ),
        hidden(
            "hold",
            Method::POST,
            "/v1/certificates/{id}/revoke",
            Some(json!({"reason": "certificateHold"})),
        ),
        hidden(
            "release-hold",
            Method::POST,
            "/v1/certificates/{id}/release-hold",
            None,
        ),
    ]
}

/// Routes no RA may call: 403 `forbidden`.
fn routes_no_ra_may_call() -> Vec<Refusal> {
    [
        (Method::GET, "/metrics", None),
        (Method::GET, "/v1/audit?limit=1", None),
        (Method::GET, "/v1/audit/checkpoint", None),
        (Method::GET, "/v1/tokens", None),
        (
            Method::POST,
            "/v1/tokens",
            Some(json!({"role": "ra", "name": "ra-a-2"})),
        ),
        (Method::DELETE, "/v1/tokens/ra-a", None),
        (Method::POST, "/v1/crl/generate", None),
    ]
    .into_iter()
    .map(|(method, path, body)| Refusal::fixed("an RA", method, path, body, 403, "forbidden"))
    .collect()
}

/// Listings: whatever the filter, ra-b sees exactly its own certificates among those the
/// auditor sees, in pages of one (cursors) and of a thousand; and each filter matches some
/// of ra-a's (`owned`), so the check is not empty. `started` is a time before any issuance.
fn listings_show_ra_b_only_its_own(
    s: &Server,
    ra_b: &str,
    owned: &[&str],
    started: &str,
    checks: &mut Checks,
) {
    let a_subject = enc("CN=a.isolation.example.com");
    let queries = [
        String::new(),
        "san=a.isolation.example.com".to_string(),
        "san=SHARED.isolation.example.com".to_string(),
        "san=h.isolation.example.com".to_string(),
        format!("subject={a_subject}"),
        format!("subject={}", enc(BRUNO)),
        "profile=tls-server".to_string(),
        "profile=tls-client".to_string(),
        "profile=personal".to_string(),
        "status=valid".to_string(),
        "status=revoked".to_string(),
        "status=on_hold".to_string(),
        format!("issued_after={}", enc(started)),
        "issued_before=2999-01-01T00%3A00%3A00Z".to_string(),
        "expires_before=2999-01-01T00%3A00%3A00Z".to_string(),
        format!("profile=tls-server&status=valid&san=a.isolation.example.com&subject={a_subject}"),
    ];
    for query in &queries {
        let all = walk(s, &s.tokens.auditor, query, 1000);
        let want: BTreeSet<String> = all
            .iter()
            .filter(|(_, requester)| requester == "ra-b")
            .map(|(serial, _)| serial.clone())
            .collect();
        checks.check(all.iter().any(|(_, r)| r == "ra-a"), || {
            format!("the auditor's listing ?{query} holds some of ra-a's certificates: {all:?}")
        });
        for limit in [1, 1000] {
            let got = walk(s, ra_b, query, limit);
            let leaked: Vec<&String> = got
                .iter()
                .map(|(serial, _)| serial)
                .filter(|serial| owned.contains(&serial.as_str()))
                .collect();
            checks.check(leaked.is_empty(), || {
                format!("ra-b's listing ?{query} (limit {limit}) shows ra-a's {leaked:?}")
            });
            let got: BTreeSet<String> = got.into_iter().map(|(serial, _)| serial).collect();
            checks.check(got == want, || {
                format!(
                    "ra-b's listing ?{query} (limit {limit}) is {got:?}, its own certificates \
                     there are {want:?}"
                )
            });
        }
    }
}

/// The audit log has no entry after `head` by ra-b, nor about ra-a's objects.
fn no_audit_entry_by_ra_b_or_about_ra_a(
    s: &Server,
    head: u64,
    owned: &[&str],
    enrollments: &[&str],
    checks: &mut Checks,
) {
    let ids: Vec<&str> = owned.iter().chain(enrollments).copied().collect();
    let entries: Vec<Value> = audit_after(s, head)
        .into_iter()
        .filter(|e| {
            e["actor"] == "ra-b"
                || e["target"]
                    .as_str()
                    .is_some_and(|t| ids.iter().any(|id| t.contains(*id)))
        })
        .collect();
    checks.check(entries.is_empty(), || {
        format!("audit entries by ra-b or about ra-a's objects after the refusals: {entries:?}")
    });
}

/// Token names: the API refuses a taken name whatever the role, and the first token keeps
/// its name.
fn api_refuses_taken_token_names(s: &Server, checks: &mut Checks) {
    for (role, name) in [("ra", "ra-a"), ("auditor", "ra-a"), ("operator", "ra-b")] {
        let r = s.post(
            "/v1/tokens",
            &s.tokens.operator,
            &json!({"role": role, "name": name}),
        );
        checks.error(
            &r,
            409,
            "token_name_taken",
            &format!("POST /v1/tokens {role} {name:?}"),
        );
        checks.check(r.json.get("token").is_none(), || {
            format!("a refused POST /v1/tokens gave a token: {r}")
        });
    }
    let r = s.get("/v1/tokens", Some(&s.tokens.auditor));
    assert_eq!(r.status, 200, "GET /v1/tokens: {r}");
    let named: Vec<&Value> = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|t| t["name"] == "ra-a")
        .collect();
    checks.check(
        named.len() == 1 && named[0]["role"] == "ra" && named[0]["revoked"] == false,
        || format!("one ra token named ra-a, not revoked: {r}"),
    );
}

/// After a restart: ra-a's token still owns exactly its certificates, ra-b still none.
fn ownership_survives_a_restart(
    dir: &Path,
    (ra_a, ra_b): (&str, &str),
    objects: &RaAObjects,
    checks: &mut Checks,
) {
    let owned = objects.serials();
    let s = Server::serve(dir);
    let mine: BTreeSet<String> = walk(&s, ra_a, "", 1000)
        .into_iter()
        .map(|(serial, _)| serial)
        .collect();
    let want: BTreeSet<String> = walk(&s, &s.tokens.auditor, "", 1000)
        .into_iter()
        .filter(|(_, requester)| requester == "ra-a")
        .map(|(serial, _)| serial)
        .collect();
    checks.check(
        mine == want && owned.iter().all(|o| mine.contains(*o)),
        || format!("after the restart ra-a lists {mine:?}, it requested {want:?}"),
    );
    for serial in [&objects.valid, &objects.held] {
        let r = s.get(&format!("/v1/certificates/{serial}"), Some(ra_a));
        checks.check(r.status == 200, || {
            format!("ra-a reads {serial} after the restart: {r}")
        });
        let r = s.get(&format!("/v1/certificates/{serial}"), Some(ra_b));
        checks.error(
            &r,
            404,
            "serial_not_found",
            &format!("ra-b reads ra-a's {serial} after the restart"),
        );
    }
    s.terminate();
}

// ---------------------------------------------------------------------------------------------
// TLS client certificates
// ---------------------------------------------------------------------------------------------

/// A key and certificate made by the OpenSSL command line, as files.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

impl Pair {
    /// curl's `--cert`/`--key` arguments.
    fn args(&self) -> Vec<String> {
        vec![
            "--cert".into(),
            self.cert.to_str().expect("UTF-8 path").into(),
            "--key".into(),
            self.key.to_str().expect("UTF-8 path").into(),
        ]
    }
}

/// A self-signed root CA made with `openssl req -x509` (basicConstraints CA, keyCertSign).
fn openssl_root(dir: &Path, name: &str, subj: &str) -> Pair {
    let key = fresh_p256_key(dir);
    let cert = dir.join(format!("{name}.pem"));
    openssl(&[
        "req",
        "-x509",
        "-new",
        "-key",
        key.to_str().expect("UTF-8 path"),
        "-subj",
        subj,
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        "-out",
        cert.to_str().expect("UTF-8 path"),
    ]);
    Pair { cert, key }
}

/// A TLS client certificate for `subj` signed by `ca` with `openssl x509 -req` (clientAuth,
/// digitalSignature, a DNS SAN).
fn openssl_client(dir: &Path, name: &str, subj: &str, ca: &Pair) -> Pair {
    let key = fresh_p256_key(dir);
    let csr = dir.join(format!("{name}.csr"));
    openssl(&[
        "req",
        "-new",
        "-key",
        key.to_str().expect("UTF-8 path"),
        "-subj",
        subj,
        "-out",
        csr.to_str().expect("UTF-8 path"),
    ]);
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        format!(
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
             extendedKeyUsage = clientAuth\nsubjectAltName = DNS:{name}.example\n"
        ),
    )
    .expect("writing the extensions");
    let cert = dir.join(format!("{name}.pem"));
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().expect("UTF-8 path"),
        "-CA",
        ca.cert.to_str().expect("UTF-8 path"),
        "-CAkey",
        ca.key.to_str().expect("UTF-8 path"),
        "-set_serial",
        &format!("0x{:x}", now_unix() as u64 * 1000 + name.len() as u64),
        "-days",
        "30",
        "-extfile",
        ext.to_str().expect("UTF-8 path"),
        "-out",
        cert.to_str().expect("UTF-8 path"),
    ]);
    Pair { cert, key }
}

/// What curl got: the HTTP status (0 when no answer came, e.g. a refused TLS handshake), the
/// body, curl's exit status and its error message.
#[derive(Debug)]
struct Curl {
    code: u16,
    body: String,
    exit: Option<i32>,
    stderr: String,
}

impl std::fmt::Display for Curl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HTTP {} {} (curl exit {:?}: {})",
            self.code,
            self.body,
            self.exit,
            self.stderr.trim()
        )
    }
}

/// curl over TLS to the server as `ca.test.example` at its port, trusting only the CA, with
/// a 30-second deadline and no proxy.
fn curl(s: &Server, path: &str, extra: &[String]) -> Curl {
    let port = s.base.rsplit(':').next().expect("a port");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-m",
            "30",
            "--connect-timeout",
            "10",
            "--noproxy",
            "*",
        ])
        .args(["-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(s.dir.join("ca.pem"))
        .args(["--resolve", &format!("ca.test.example:{port}:127.0.0.1")])
        .args(extra)
        .arg(format!("https://ca.test.example:{port}{path}"))
        .stdin(Stdio::null())
        .output()
        .expect("running curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Curl {
        code: code.trim().parse().unwrap_or(0),
        body: body.to_string(),
        exit: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

/// curl arguments for `Authorization: VALUE`.
fn auth(value: &str) -> Vec<String> {
    vec!["-H".into(), format!("Authorization: {value}")]
}

/// Records a failure unless curl got HTTP `status` with error `code`.
fn curl_error(checks: &mut Checks, c: &Curl, status: u16, code: &str, what: &str) {
    checks.check(
        c.code == status && c.body.contains(&format!("\"code\":\"{code}\"")),
        || format!("{what}: expected HTTP {status} {code:?}, got {c}"),
    );
}

/// A TLS server whose `client_ca_file` trusts only a partner CA (not this CA), with
/// `[[tls.clients]]` mapping the partner's `CN=portal,O=Example` by subject (auditor
/// `portal`), the partner's `CN=console,O=Example` by fingerprint as an RA under the taken
/// name `ra-a`, and a certificate of an intruder CA by fingerprint (operator `intruder`).
struct TlsSetup {
    _tmp: tempfile::TempDir,
    s: Server,
    ra_a: String,
    ra_b: String,
    /// A certificate ra-a requested.
    a: String,
    /// The partner's `CN=portal,O=Example` (mapped by subject as auditor).
    portal: Pair,
    /// The partner's `CN=console,O=Example` (mapped by fingerprint as ra `ra-a`).
    console: Pair,
    /// The intruder CA's `CN=portal,O=Example`, under a root named like the partner's.
    forged: Pair,
    /// The intruder CA's `CN=intruder`, mapped by fingerprint as operator.
    intruder: Pair,
    /// This CA's `tls-client` certificate for `CN=portal,O=Example`, which an RA requested.
    own: Pair,
}

impl TlsSetup {
    fn new() -> TlsSetup {
        let tmp = tempfile::tempdir().expect("tempdir");
        let files = tmp.path().join("files");
        std::fs::create_dir(&files).expect("mkdir");
        let dir = new_dir(tmp.path());
        let ra_a = create_token(&dir, "ra", "ra-a");
        let ra_b = create_token(&dir, "ra", "ra-b");
        let (a, own) = TlsSetup::issue_over_plain_http(&dir, &files, &ra_a);

        let partner = openssl_root(&files, "partner-root", "/O=Partner/CN=Partner Root");
        let intruder_ca = openssl_root(&files, "intruder-root", "/O=Partner/CN=Partner Root");
        let portal = openssl_client(&files, "portal", "/O=Example/CN=portal", &partner);
        let console = openssl_client(&files, "console", "/O=Example/CN=console", &partner);
        let forged = openssl_client(&files, "forged", "/O=Example/CN=portal", &intruder_ca);
        let intruder = openssl_client(&files, "intruder", "/CN=intruder", &intruder_ca);
        TlsSetup::configure_tls(&dir, &partner, &console, &intruder);
        let s = Server::serve(&dir);
        assert!(s.base.starts_with("https://"), "TLS is on: {}", s.base);
        TlsSetup {
            _tmp: tmp,
            s,
            ra_a,
            ra_b,
            a,
            portal,
            console,
            forged,
            intruder,
            own,
        }
    }

    /// Over plain HTTP first: ra-a's certificate (its serial), and an RA of this CA has a
    /// tls-client certificate with the portal's subject certified (its files in `files`).
    fn issue_over_plain_http(dir: &Path, files: &Path, ra_a: &str) -> (String, Pair) {
        let plain = Server::serve(dir);
        let a = serial(&created(
            &plain,
            "/v1/certificates",
            ra_a,
            &json!({"csr": server_csr("a.tls.isolation.example.com").pem, "profile": "tls-server"}),
        ));
        let own_key = fresh_p256_key(files);
        let own_csr = openssl(&[
            "req",
            "-new",
            "-key",
            own_key.to_str().expect("UTF-8 path"),
            "-subj",
            "/O=Example/CN=portal",
            "-addext",
            "subjectAltName=DNS:own.example",
        ]);
        let issued = created(
            &plain,
            "/v1/certificates",
            &plain.tokens.ra,
            &json!({"csr": own_csr, "profile": "tls-client"}),
        );
        let own_cert = files.join("own.pem");
        std::fs::write(&own_cert, issued["certificate"].as_str().expect("PEM")).expect("write");
        plain.terminate();
        (
            a,
            Pair {
                cert: own_cert,
                key: own_key,
            },
        )
    }

    /// TLS with the CA's own server certificate, `client_ca_file` the partner root, and the
    /// `[[tls.clients]]` mappings described at [`TlsSetup`].
    fn configure_tls(dir: &Path, partner: &Pair, console: &Pair, intruder: &Pair) {
        ca_server_ok(&[
            "tls-cert",
            "--data-dir",
            dir.to_str().expect("UTF-8 path"),
            "--name",
            "ca.test.example",
            "--name",
            "127.0.0.1",
        ]);
        let client_ca = format!(
            "client_ca_file = \"{}\"",
            partner.cert.to_str().expect("UTF-8 path")
        );
        configure(
            dir,
            &[("client_ca_file = \"\"", client_ca.as_str())],
            &format!(
                "\n[[tls.clients]]\nsubject = \"CN=portal,O=Example\"\nrole = \"auditor\"\n\
                 name = \"portal\"\n\n[[tls.clients]]\ncertificate_sha256 = \"{}\"\n\
                 role = \"ra\"\nname = \"ra-a\"\n\n[[tls.clients]]\ncertificate_sha256 = \"{}\"\n\
                 role = \"operator\"\nname = \"intruder\"\n",
                sha256_fingerprint(&console.cert),
                sha256_fingerprint(&intruder.cert),
            ),
        );
    }
}

/// Records a failure unless a client certificate that does not chain to `client_ca_file` was
/// kept from authenticating: the TLS exchange failed (no HTTP answer; curl's SSL connect, send
/// or receive error, 35, 55 or 56, as the server's alert and close arrive) or the request got
/// 401 `unauthorized`; and the server still answers `GET /healthz` over TLS at once. Returns
/// how it went, for the log.
fn no_one(checks: &mut Checks, s: &Server, c: &Curl, what: &str) -> String {
    let handshake_refused = c.code == 0 && matches!(c.exit, Some(35 | 55 | 56));
    let unauthorized = c.code == 401 && c.body.contains("\"code\":\"unauthorized\"");
    checks.check(handshake_refused || unauthorized, || {
        format!("{what}: expected a refused TLS handshake or 401 unauthorized, got {c}")
    });
    let health = curl(s, "/healthz", &[]);
    checks.check(health.code == 200, || {
        format!("{what}: the server answers GET /healthz afterwards: {health}")
    });
    if handshake_refused {
        format!("TLS refused ({})", c.stderr.trim())
    } else {
        format!("HTTP {}", c.code)
    }
}

/// Client certificates from a CA other than `client_ca_file` are no one, whether they copy a
/// subject mapped under the partner CA (under an intruder root with the partner root's very
/// name), have their own fingerprint mapped, or come from this CA (whose RAs can have the
/// portal's subject certified): the TLS exchange is refused (or the request is 401), and with
/// a bearer token as well it never acts as the mapped role. The partner's own certificate is
/// the control that the mapping works.
#[test]
fn a_client_certificate_from_another_ca_is_no_one() {
    let t = TlsSetup::new();
    let s = &t.s;
    let mut checks = Checks::default();
    // Controls: nothing is 401, the partner's portal certificate acts as the auditor.
    let c = curl(s, "/v1/audit?limit=1", &[]);
    curl_error(&mut checks, &c, 401, "unauthorized", "no credentials");
    let c = curl(s, "/v1/audit?limit=1", &t.portal.args());
    checks.check(c.code == 200, || {
        format!("the partner's portal certificate (mapped by subject) reads the audit log: {c}")
    });
    let c = curl(s, &format!("/v1/certificates/{}", t.a), &t.portal.args());
    checks.check(c.code == 200, || {
        format!("the portal, as auditor, reads ra-a's certificate: {c}")
    });

    let mut outcomes = Vec::new();
    for (what, pair, paths) in [
        (
            "the intruder CA's certificate with the mapped subject CN=portal,O=Example",
            &t.forged,
            vec![
                "/v1/audit?limit=1".to_string(),
                format!("/v1/certificates/{}", t.a),
            ],
        ),
        (
            "the intruder CA's certificate whose fingerprint is mapped as operator",
            &t.intruder,
            vec!["/metrics".to_string(), "/v1/tokens".to_string()],
        ),
        (
            "this CA's certificate with the mapped subject CN=portal,O=Example",
            &t.own,
            vec![
                "/v1/audit?limit=1".to_string(),
                format!("/v1/certificates/{}", t.a),
            ],
        ),
    ] {
        for path in paths {
            let c = curl(s, &path, &pair.args());
            let how = no_one(&mut checks, s, &c, &format!("{what}, GET {path}"));
            outcomes.push(format!("{what}, GET {path}: {how}"));
        }
        // With ra-b's token as well: refused in the TLS exchange, or ra-b (403 on the audit
        // log), never the mapped role.
        let c = curl(
            s,
            "/v1/audit?limit=1",
            &[pair.args(), auth(&format!("Bearer {}", t.ra_b))].concat(),
        );
        let refused = c.code == 0 && matches!(c.exit, Some(35 | 55 | 56));
        checks.check(
            refused || (c.code == 403 && c.body.contains("\"code\":\"forbidden\"")),
            || format!("{what} with ra-b's token: TLS refused or ra-b's 403, got {c}"),
        );
        outcomes.push(format!("{what} with ra-b's token: HTTP {}", c.code));
    }
    eprintln!("foreign client certificates:\n  {}", outcomes.join("\n  "));
    checks.finish("client certificates from another CA");
}

/// With a mapped client certificate and a bearer token, the token decides
/// (docs/API.md, *Access and limits*, step 1): the portal's certificate (auditor) with ra-b's
/// token acts as ra-b, with the operator's as the operator, with an unknown token or another
/// scheme it is refused; and a client certificate mapped as an RA under the name of the token
/// `ra-a` owns nothing of ra-a's.
#[test]
fn a_bearer_token_decides_over_a_client_certificate() {
    let t = TlsSetup::new();
    let s = &t.s;
    let mut checks = Checks::default();
    let get_a = format!("/v1/certificates/{}", t.a);
    let portal = t.portal.args();
    let with = |token: &str| [portal.clone(), auth(&format!("Bearer {token}"))].concat();

    // The certificate alone: the auditor.
    let c = curl(s, &get_a, &portal);
    checks.check(c.code == 200, || {
        format!("the portal alone reads ra-a's certificate: {c}")
    });
    let c = curl(s, "/metrics", &portal);
    curl_error(
        &mut checks,
        &c,
        403,
        "forbidden",
        "the portal alone: /metrics",
    );

    the_portal_with_ra_bs_token_is_ra_b(&t, &mut checks);

    // With the operator's token: the operator, more than the certificate may.
    let c = curl(s, "/metrics", &with(&s.tokens.operator));
    checks.check(c.code == 200, || {
        format!("the portal with the operator's token reads /metrics: {c}")
    });
    // A token that does not authenticate, or another scheme: refused, not the auditor.
    for (what, header) in [
        ("an unknown bearer token", "Bearer cat_unknown".to_string()),
        ("a Basic header", "Basic cG9ydGFsOnBvcnRhbA==".to_string()),
        ("an empty Bearer", "Bearer".to_string()),
    ] {
        let c = curl(s, &get_a, &[portal.clone(), auth(&header)].concat());
        curl_error(
            &mut checks,
            &c,
            401,
            "unauthorized",
            &format!("the portal with {what}"),
        );
    }

    a_mapping_named_like_ra_a_is_not_ra_a(&t, &mut checks);
    checks.finish("a bearer token decides over a client certificate");
}

/// The portal's certificate with ra-b's token acts as ra-b: it cannot read ra-a's
/// certificate or the audit log, lists only ra-b's certificates, and issues as ra-b.
fn the_portal_with_ra_bs_token_is_ra_b(t: &TlsSetup, checks: &mut Checks) {
    let s = &t.s;
    let get_a = format!("/v1/certificates/{}", t.a);
    let portal = t.portal.args();
    let with_ra_b = [portal.clone(), auth(&format!("Bearer {}", t.ra_b))].concat();
    let c = curl(s, &get_a, &with_ra_b);
    curl_error(
        checks,
        &c,
        404,
        "serial_not_found",
        "the portal with ra-b's token reading ra-a's certificate",
    );
    let c = curl(s, "/v1/audit?limit=1", &with_ra_b);
    curl_error(
        checks,
        &c,
        403,
        "forbidden",
        "the portal with ra-b's token reading the audit log",
    );
    let c = curl(s, "/v1/certificates?limit=1000", &with_ra_b);
    checks.check(c.code == 200 && !c.body.contains(&t.a), || {
        format!("the portal with ra-b's token lists only ra-b's certificates: {c}")
    });
    let body =
        json!({"csr": server_csr("b.tls.isolation.example.com").pem, "profile": "tls-server"});
    let c = curl(
        s,
        "/v1/certificates",
        &[
            with_ra_b,
            vec![
                "-H".into(),
                "Content-Type: application/json".into(),
                "--data-binary".into(),
                body.to_string(),
            ],
        ]
        .concat(),
    );
    checks.check(c.code == 201, || {
        format!("the portal with ra-b's token issues, as ra-b: {c}")
    });
    if let (201, Ok(issued)) = (c.code, serde_json::from_str::<Value>(&c.body)) {
        let c = curl(s, &format!("/v1/certificates/{}", serial(&issued)), &portal);
        let rec: Value = serde_json::from_str(&c.body).unwrap_or(Value::Null);
        checks.check(rec["requester"] == "ra-b", || {
            format!("the certificate issued with ra-b's token is ra-b's: {c}")
        });
    }
}

/// A client certificate mapped as an RA under the name of the token ra-a is not ra-a: it
/// neither reads, revokes nor lists ra-a's certificate, which ra-a, over TLS with its token,
/// still reads as its own and valid.
fn a_mapping_named_like_ra_a_is_not_ra_a(t: &TlsSetup, checks: &mut Checks) {
    let s = &t.s;
    let get_a = format!("/v1/certificates/{}", t.a);
    let console = t.console.args();
    let c = curl(s, &get_a, &console);
    curl_error(
        checks,
        &c,
        404,
        "serial_not_found",
        "a certificate mapped as ra \"ra-a\" reading ra-a's certificate",
    );
    let c = curl(
        s,
        &format!("{get_a}/revoke"),
        &[
            console.clone(),
            vec![
                "-H".into(),
                "Content-Type: application/json".into(),
                "--data-binary".into(),
                r#"{"reason": "keyCompromise"}"#.into(),
            ],
        ]
        .concat(),
    );
    curl_error(
        checks,
        &c,
        404,
        "serial_not_found",
        "a certificate mapped as ra \"ra-a\" revoking ra-a's certificate",
    );
    let c = curl(s, "/v1/certificates?limit=1000", &console);
    checks.check(c.code == 200 && !c.body.contains(&t.a), || {
        format!("a certificate mapped as ra \"ra-a\" lists none of ra-a's: {c}")
    });
    // ra-a itself, over TLS with its token: still its own, and still valid.
    let c = curl(s, &get_a, &auth(&format!("Bearer {}", t.ra_a)));
    checks.check(
        c.code == 200 && c.body.contains("\"status\":\"valid\""),
        || format!("ra-a reads its valid certificate: {c}"),
    );
}
