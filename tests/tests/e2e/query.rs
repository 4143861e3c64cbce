//! GET /v1/certificates: filters, roles, cursor paging (also under concurrent issuance), and
//! `ca-server export`.

use std::collections::{BTreeSet, HashSet};

use e2e_tests::prelude::*;
use serde_json::{json, Value};

/// Walks every page of `query` (which must not hold `limit` or `cursor`) with `token`.
fn walk(s: &Server, token: &str, query: &str, limit: usize) -> Vec<String> {
    let mut serials = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        assert!(page < 100_000, "paging does not end for {query}");
        let mut path = format!("/v1/certificates?limit={limit}");
        if !query.is_empty() {
            path.push('&');
            path.push_str(query);
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = s.get(&path, Some(token));
        assert_eq!(r.status, 200, "GET {path}: {r}");
        let items = r.json["items"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: {r}"));
        assert!(items.len() <= limit, "{path}: more than limit items");
        serials.extend(
            items
                .iter()
                .map(|i| i["serial"].as_str().unwrap().to_string()),
        );
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert!(r.json["next_cursor"].is_null(), "{path}: next_cursor {r}");
                break;
            }
        }
    }
    serials
}

fn set(v: &[String]) -> BTreeSet<String> {
    v.iter().cloned().collect()
}

fn serial(v: &Value) -> String {
    v["serial"].as_str().expect("serial").to_string()
}

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

#[test]
fn filters_return_exactly_the_right_serials() {
    let s = Server::fresh();
    let auditor = s.tokens.auditor.clone();
    // A second RA, created by the operator while the server runs.
    let r = s.post(
        "/v1/tokens",
        &s.tokens.operator,
        &json!({"role": "ra", "name": "ra-two"}),
    );
    assert_eq!(r.status, 201, "POST /v1/tokens: {r}");
    let ra2 = r.json["token"].as_str().expect("token").to_string();
    assert_error(
        &s.post(
            "/v1/tokens",
            &s.tokens.ra,
            &json!({"role": "ra", "name": "x"}),
        ),
        403,
        "forbidden",
        "an RA creating a token",
    );

    let issued = QuerySet::issue(&s, &ra2);
    check_filters(&s, &issued);

    // An RA sees its own certificates only; an auditor sees all.
    let (all, of_ra2) = (&issued.all, &issued.of_ra2);
    let own = walk(&s, &ra2, "", 1000);
    assert_eq!(own, vec![of_ra2.clone()], "ra-two sees only its own");
    let first_ra = walk(&s, &s.tokens.ra, "", 3);
    let mut expect_first: Vec<String> = all.iter().filter(|x| *x != of_ra2).cloned().collect();
    expect_first.sort();
    let mut got_first = first_ra.clone();
    got_first.sort();
    assert_eq!(got_first, expect_first, "the bootstrap RA sees its own");

    // Items are the contract's certificate view.
    let r = s.get(
        "/v1/certificates?san=client.query.example&limit=1",
        Some(&auditor),
    );
    let item = &r.json["items"][0];
    assert_eq!(item["profile"], "tls-client", "{r}");
    assert_eq!(item["subject"], "CN=Query Client,O=Query Org", "{r}");
    assert_eq!(item["requester"], "bootstrap-ra", "{r}");
    assert!(item["certificate"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    bad_queries_are_refused(&s);
}

/// What [`filters_return_exactly_the_right_serials`] issues, and what each filter must
/// return, computed from the answers.
struct QuerySet {
    all: Vec<String>,
    /// `alpha.query.example.com`, valid 3, 5, 30 and 90 days.
    alpha: Vec<String>,
    /// Valid at most 5 days.
    short: Vec<String>,
    /// tls-client, `CN=Query Client,O=Query Org`.
    client: Vec<String>,
    /// Issued by `ra-two`.
    of_ra2: String,
    revoked: String,
    held: String,
}

impl QuerySet {
    fn issue(s: &Server, ra2: &str) -> QuerySet {
        let mut all = Vec::new();
        let mut alpha = Vec::new();
        let mut short = Vec::new(); // validity <= 5 days
        let mut client = Vec::new();
        for days in [3, 5, 30, 90] {
            let v = s.issue(
                &server_csr("alpha.query.example.com"),
                "tls-server",
                Some(days),
            );
            alpha.push(serial(&v));
            if days <= 5 {
                short.push(serial(&v));
            }
            all.push(serial(&v));
        }
        for i in 0..3 {
            let v = s.issue(
                &server_csr(&format!("host-{i}.query.example.com")),
                "tls-server",
                Some(40),
            );
            all.push(serial(&v));
        }
        let client_csr = make_csr(
            "ec-p256",
            "/O=Query Org/CN=Query Client",
            &["DNS:client.query.example"],
        );
        assert_eq!(client_csr.rfc4514(), "CN=Query Client,O=Query Org");
        for _ in 0..2 {
            let v = s.issue(&client_csr, "tls-client", Some(20));
            client.push(serial(&v));
            all.push(serial(&v));
        }
        let r = s.post(
            "/v1/certificates",
            ra2,
            &json!({"csr": server_csr("other-ra.query.example.com").pem, "profile": "tls-server"}),
        );
        assert_eq!(r.status, 201, "issuing as ra-two: {r}");
        let of_ra2 = serial(&r.json);
        all.push(of_ra2.clone());
        let revoked = alpha[2].clone();
        s.revoke_ok(&revoked, "keyCompromise");
        let held = all[4].clone();
        s.revoke_ok(&held, "certificateHold");
        QuerySet {
            all,
            alpha,
            short,
            client,
            of_ra2,
            revoked,
            held,
        }
    }
}

/// Each filter, and combinations, return exactly the serials they must, in pages of 1000
/// and of 2, none twice.
fn check_filters(s: &Server, q: &QuerySet) {
    let (all, alpha, short, client) = (&q.all, &q.alpha, &q.short, &q.client);
    let (revoked, held) = (&q.revoked, &q.held);
    let check = |query: &str, want: &[String]| {
        for limit in [1000, 2] {
            let got = walk(s, &s.tokens.auditor, query, limit);
            assert_eq!(
                got.len(),
                set(&got).len(),
                "{query} (limit {limit}): repeats: {got:?}"
            );
            assert_eq!(set(&got), set(want), "{query} (limit {limit})");
        }
    };
    check("", all);
    check("san=alpha.query.example.com", alpha);
    check("san=ALPHA.Query.Example.COM", alpha);
    check("subject=CN%3Dalpha.query.example.com", alpha);
    check(
        &format!("subject={}", enc("CN=Query Client,O=Query Org")),
        client,
    );
    check("profile=tls-client", client);
    check("status=revoked", std::slice::from_ref(revoked));
    check("status=on_hold", std::slice::from_ref(held));
    let valid: Vec<String> = all
        .iter()
        .filter(|x| *x != revoked && *x != held)
        .cloned()
        .collect();
    check("status=valid", &valid);
    check("status=expired", &[]);
    let in_six_days = time::OffsetDateTime::now_utc() + time::Duration::days(6);
    let six = enc(&in_six_days
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap());
    check(&format!("expires_before={six}"), short);
    check(
        &format!("san=alpha.query.example.com&expires_before={six}"),
        short,
    );
    let alpha_valid: Vec<String> = alpha.iter().filter(|x| *x != revoked).cloned().collect();
    check("san=alpha.query.example.com&status=valid", &alpha_valid);
    check(&format!("issued_before={six}"), all);
    check(&format!("issued_after={six}"), &[]);
    check(
        "issued_after=2000-01-01T00%3A00%3A00Z&profile=tls-client",
        client,
    );
    check("san=nothing.query.example.com", &[]);
}

/// Bad queries answer 400 in the error shape, a cursor of one query is refused by a query on
/// another index, and the listing needs an auditor's or an RA's token.
fn bad_queries_are_refused(s: &Server) {
    let auditor = &s.tokens.auditor;
    for bad in [
        "status=bogus",
        "limit=0",
        "limit=1001",
        "cursor=%21%21",
        "cursor=CQ",
        "colour=blue",
        "issued_after=yesterday",
        "expires_before=2026-13-01T00:00:00Z",
    ] {
        let r = s.get(&format!("/v1/certificates?{bad}"), Some(auditor));
        assert_error(&r, 400, "invalid_request", bad);
    }
    // A cursor of one query is refused by a query on another index.
    let r = s.get("/v1/certificates?limit=1", Some(auditor));
    let c = r.json["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_string();
    let r = s.get(
        &format!("/v1/certificates?san=alpha.query.example.com&cursor={c}"),
        Some(auditor),
    );
    assert_error(&r, 400, "invalid_request", "a cursor of another query");
    assert_error(
        &s.get("/v1/certificates", None),
        401,
        "unauthorized",
        "no token",
    );
    assert_error(
        &s.get("/v1/certificates", Some(&s.tokens.operator)),
        403,
        "forbidden",
        "operator token",
    );
}

#[test]
fn paging_under_concurrent_issuance_visits_each_existing_certificate_once() {
    const EXISTING: usize = 3000;
    let s = Server::fresh();
    let csr = server_csr("paging.query.example.com");
    let batch = |n: usize| -> Vec<String> {
        let requests: Vec<Value> = (0..n)
            .map(|_| json!({"csr": csr.pem, "profile": "tls-server", "validity_days": 7}))
            .collect();
        let r = s.post(
            "/v1/certificates/batch",
            &s.tokens.ra,
            &json!({ "requests": requests }),
        );
        assert_eq!(r.status, 200, "batch: {r}");
        r.json["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v["serial"]
                    .as_str()
                    .unwrap_or_else(|| panic!("batch item {v}"))
                    .to_string()
            })
            .collect()
    };
    let mut existing = HashSet::new();
    while existing.len() < EXISTING {
        existing.extend(batch(500));
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (walked, walked_san, added) = std::thread::scope(|scope| {
        let issuer = scope.spawn(|| {
            let mut added = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                added += batch(50).len();
            }
            added
        });
        let walked = walk(&s, &s.tokens.auditor, "", 97);
        let walked_san = walk(&s, &s.tokens.auditor, "san=paging.query.example.com", 250);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (walked, walked_san, issuer.join().expect("issuer thread"))
    });
    assert!(added > 0, "issuance ran during the walk");
    for (name, w) in [("all", &walked), ("by SAN", &walked_san)] {
        let seen: HashSet<&String> = w.iter().collect();
        assert_eq!(
            seen.len(),
            w.len(),
            "walk {name}: a certificate was visited twice"
        );
        let missing = existing.iter().filter(|x| !seen.contains(x)).count();
        assert_eq!(
            missing, 0,
            "walk {name}: {missing} pre-existing certificates skipped"
        );
    }
}

#[test]
fn export_streams_every_certificate_as_jsonl_and_csv() {
    let s = Server::fresh();
    let mut issued = BTreeSet::new();
    for i in 0..25 {
        issued.insert(serial(&s.issue(
            &server_csr(&format!("export-{i}.example.com")),
            "tls-server",
            None,
        )));
    }
    let revoked = issued.iter().next().unwrap().clone();
    s.revoke_ok(&revoked, "superseded");
    // While the server runs: the export reads the store read-only.
    let dir = s.dir.to_str().unwrap().to_string();
    let out = ca_server(&["export", "--data-dir", &dir, "--format", "jsonl"]);
    assert!(
        out.status.success(),
        "export jsonl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let exported: BTreeSet<String> = rows.iter().map(serial).collect();
    assert_eq!(rows.len(), issued.len(), "one line per certificate");
    assert_eq!(exported, issued);
    let row = rows
        .iter()
        .find(|r| r["serial"] == revoked.as_str())
        .unwrap();
    assert_eq!(row["status"], "revoked");
    assert_eq!(row["revocation"]["reason"], "superseded");
    assert_eq!(row, &s.record(&revoked), "the export row is the API's view");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("export: 25 certificates"),
        "progress line on stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let csv_path = s.scratch().join("export.csv");
    let out = ca_server(&[
        "export",
        "--data-dir",
        &dir,
        "--format",
        "csv",
        "--out",
        csv_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "export csv: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "serial");
    let reason_col = header
        .iter()
        .position(|h| *h == "revocation_reason")
        .unwrap();
    let body: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(body.len(), issued.len());
    let csv_serials: BTreeSet<String> = body.iter().map(|r| r[0].to_string()).collect();
    assert_eq!(csv_serials, issued);
    let revoked_row = body.iter().find(|r| r[0] == revoked).unwrap();
    assert_eq!(revoked_row[reason_col], "superseded");
    assert_eq!(revoked_row.len(), header.len());
}

/// The other RA's certificates, more than one page examines: 11,000 serials, issued with
/// its token `other`, valid 30 days.
fn issue_11_000(s: &Server, other: &str) -> HashSet<String> {
    let csr = make_csr(
        "ec-p256",
        "/CN=other.example.com",
        &["DNS:other.example.com"],
    );
    let mut foreign = HashSet::new();
    for _ in 0..11 {
        let requests: Vec<Value> = (0..1000)
            .map(|_| json!({"csr": csr.pem, "profile": "tls-server", "validity_days": 30}))
            .collect();
        let r = s.post(
            "/v1/certificates/batch",
            other,
            &json!({"requests": requests}),
        );
        assert_eq!(r.status, 200, "batch: {}", r.status);
        for item in r.json["results"].as_array().expect("results") {
            foreign.insert(serial(item));
        }
    }
    assert_eq!(foreign.len(), 11_000);
    foreign
}

/// Security finding 13: a page stops after examining 10,000 rows, and its cursor then holds
/// the last index key examined, which in the expiry and revoked walks is a serial. For an RA,
/// that row may be another RA's certificate: the cursor must reveal nothing, and a cursor works
/// only unaltered and for the caller it was given to.
#[test]
fn cursors_reveal_no_other_ras_serials() {
    let s = Server::fresh();
    let r = s.post(
        "/v1/tokens",
        &s.tokens.operator,
        &json!({"role": "ra", "name": "ra-other"}),
    );
    assert_eq!(r.status, 201, "POST /v1/tokens: {r}");
    let other = r.json["token"].as_str().expect("token").to_string();
    let foreign = issue_11_000(&s, &other);
    // This RA's one certificate expires after all of them.
    let mine = s.issue(
        &make_csr("ec-p256", "/CN=mine.example.com", &["DNS:mine.example.com"]),
        "tls-server",
        Some(90),
    );
    let mine = serial(&mine);
    let r = s.get(
        "/v1/certificates?expires_before=2999-01-01T00:00:00Z&limit=5",
        Some(&s.tokens.ra),
    );
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.json["items"].as_array().map(Vec::len), Some(0), "{r}");
    let cursor = r.json["next_cursor"]
        .as_str()
        .expect("a page that examined 10,000 rows has a cursor")
        .to_string();
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&cursor)
        .unwrap_or_default();
    let leaked: Vec<&String> = foreign
        .iter()
        .filter(|f| {
            let bytes = hex::decode(f).unwrap();
            raw.windows(bytes.len()).any(|w| w == bytes.as_slice())
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "the cursor holds another RA's serials {leaked:?}"
    );
    // Altered, or handed to another caller: refused. Unaltered: the walk goes on to mine.
    let mut altered = cursor.clone().into_bytes();
    let i = altered.len() / 2;
    altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let path = |c: &str| {
        format!("/v1/certificates?expires_before=2999-01-01T00:00:00Z&limit=5&cursor={c}")
    };
    assert_error(
        &s.get(&path(&altered), Some(&s.tokens.ra)),
        400,
        "invalid_request",
        "an altered cursor",
    );
    assert_error(
        &s.get(&path(&cursor), Some(&other)),
        400,
        "invalid_request",
        "another RA's cursor",
    );
    assert_error(
        &s.get(&path(&cursor), Some(&s.tokens.auditor)),
        400,
        "invalid_request",
        "an RA's cursor for the auditor",
    );
    let walked = walk(&s, &s.tokens.ra, "expires_before=2999-01-01T00:00:00Z", 5);
    assert_eq!(
        walked,
        vec![mine],
        "the RA's walk finds exactly its own certificate"
    );
    s.terminate();
}

#[test]
fn a_redacting_export_leaves_out_identity_data() {
    use sha2::{Digest, Sha256};
    let s = Server::fresh();
    let csr = make_csr(
        "ec-p256",
        "/CN=Maria Silva",
        &["email:maria.silva@example.com"],
    );
    let issued = s.issue_with_identity(&csr, "personal", None, "SN=Silva,GN=Maria");
    let serial = serial(&issued);
    let der = pem_certs(issued["certificate"].as_str().unwrap())
        .into_iter()
        .next()
        .expect("the certificate");
    let fingerprint = hex::encode(Sha256::digest(&der));
    let dir = s.dir.to_str().unwrap().to_string();
    let identity_data = ["Silva", "Maria", "maria.silva", "BEGIN CERTIFICATE"];

    let out = ca_server(&["export", "--data-dir", &dir, "--redact"]);
    assert!(
        out.status.success(),
        "export --redact: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    for word in identity_data {
        assert!(!stdout.contains(word), "{word:?} in the redacted export");
    }
    let row: Value = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .find(|r| r["serial"] == serial.as_str())
        .expect("the certificate's row");
    assert_eq!(row["certificate_sha256"], fingerprint.as_str());
    assert_eq!(row["status"], "valid");
    assert_eq!(row["profile"], "personal");
    for field in ["subject", "sans", "certificate"] {
        assert!(row.get(field).is_none(), "{field} in {row}");
    }
    // Without --redact the same row holds the names: the test above would see them.
    let full = ca_server(&["export", "--data-dir", &dir]);
    assert!(String::from_utf8_lossy(&full.stdout).contains("maria.silva@example.com"));

    let out = ca_server(&["export", "--data-dir", &dir, "--format", "csv", "--redact"]);
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    for word in identity_data {
        assert!(!csv.contains(word), "{word:?} in the redacted CSV export");
    }
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..2], ["serial", "certificate_sha256"]);
    let prefix = format!("{serial},{fingerprint},");
    assert!(lines.any(|l| l.starts_with(&prefix)), "{csv}");
}
