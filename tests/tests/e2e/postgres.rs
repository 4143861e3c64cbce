//! The throwaway PostgreSQL clusters that the tests of a shared database run on
//! (`e2e_tests::postgres`): two start side by side on loopback ports, answer over TCP only with
//! the password, commit synchronously, and are gone once dropped.

use std::process::Command;

use e2e_tests::postgres::{postgres_bin, Postgres};

#[test]
fn throwaway_clusters_start_side_by_side_answer_with_the_password_and_go_away() {
    let a = Postgres::start();
    let b = Postgres::start();
    assert_ne!(a.port(), b.port());
    assert_eq!(a.psql("select 1").trim(), "1");
    assert_eq!(b.psql("show synchronous_commit").trim(), "on");
    assert_eq!(b.psql("show listen_addresses").trim(), "127.0.0.1");

    let wrong = Command::new(postgres_bin().join("psql"))
        .args(["-X", "-c", "select 1"])
        .arg(a.url("postgres"))
        .env("PGPASSWORD", "not-the-password")
        .output()
        .expect("psql");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && stderr.contains("password authentication failed"),
        "a wrong password was not refused: {stderr}"
    );

    let data = a.data_dir();
    assert!(data.join("PG_VERSION").is_file());
    drop(a);
    assert!(!data.exists(), "the cluster's directory outlived it");
    assert_eq!(b.psql("select 2").trim(), "2");
}

/// The files of a node's own delegated OCSP responder, which a new node must not copy
/// (README, *Several nodes on PostgreSQL*): each node issues itself its own.
const OWN_RESPONDER: [&str; 2] = ["ocsp.pem", "ocsp-key.pem"];

/// Copies the data directory of a node to make another (what the README tells an operator to
/// do): every file but the node's own OCSP responder, and not the embedded store's folder.
/// (The bootstrap tokens file, which the README leaves out too, is copied for the harness's
/// clients: the tokens in it are the database's, so it changes nothing for the node.)
fn copy_node(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir(to).expect("creating the second node's directory");
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for entry in std::fs::read_dir(from).expect("reading the first node's directory") {
        let entry = entry.expect("entry");
        let own = OWN_RESPONDER.iter().any(|f| entry.file_name() == *f);
        if entry.file_type().expect("type").is_file() && !own {
            let target = to.join(entry.file_name());
            std::fs::copy(entry.path(), &target).expect("copying a file");
        }
    }
}

/// Two `ca-server` nodes on one PostgreSQL database are one CA: each issues (single, batch,
/// DER) into one issuance sequence and one audit chain, a request_id replayed on the other
/// node answers the same certificate, a token minted on one works on the other, a revocation
/// made on one is what the other's OCSP responder answers within a second (its cached "good"
/// answer dropped) and what its next CRL lists, a key it blocked is refused by the other
/// within a second, a hold placed on one node is released on the other and the certificate
/// renewed on the first, with one history of events, and `audit verify` passes on the database.
/// Each node signs its OCSP answers with a delegated responder of its own, whose certificate
/// is recorded in the database like every certificate.
#[test]
fn two_nodes_on_one_database_are_one_ca() {
    use e2e_tests::judges::ocsp::ocsp_status;
    use e2e_tests::prelude::*;
    use serde_json::json;

    let pg = Postgres::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    pg.init_ca_ok(&a_dir, &pg.url("postgres"));
    assert!(
        !a_dir.join("db").exists(),
        "a RocksDB store beside the database"
    );
    configure(&a_dir, &[("delegated = false", "delegated = true")], "");
    let a = Server::serve(&a_dir);
    copy_node(&a_dir, &b_dir);
    let b = Server::serve(&b_dir);
    let responders = [&a_dir, &b_dir].map(|d| serial_of_pem(&d.join("ocsp.pem")));
    assert_ne!(responders[0], responders[1], "the nodes share a responder");
    for node in [&a, &b] {
        for serial in &responders {
            assert_eq!(node.record(serial)["serial"], serial.as_str());
        }
    }
    let again = pg.init_ca(&tmp.path().join("third"), &pg.url("postgres"));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success() && stderr.contains("holds a CA's records already"),
        "init on a database in use: {stderr}"
    );
    // A node of another CA is refused by the database.
    let other = tmp.path().join("other");
    init_ca(&other, "ec-p256");
    let store = format!(
        "backend = \"postgres\"\nurl = \"{}\"\npassword_file = \"{}\"",
        pg.url("postgres"),
        pg.password_file().display()
    );
    configure(&other, &[("backend = \"rocksdb\"", &store)], "");
    let refused = ca_server(&["serve", "--data-dir", other.to_str().expect("UTF-8")]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("belongs to another CA"),
        "a node of another CA: {stderr}"
    );

    // Single on A, batch on B, DER on A.
    let csr = server_csr("one.pg.example.com");
    let single = a.post(
        "/v1/certificates",
        &a.tokens.ra,
        &json!({"csr": csr.pem, "profile": "tls-server", "validity_days": 30}),
    );
    assert_eq!(single.status, 201, "single on A: {single}");
    a.check_issued(&single.json, &csr, "tls-server", 30);
    let batch = b.post(
        "/v1/certificates/batch",
        &b.tokens.ra,
        &json!({"requests": (0..5).map(|i| json!({
            "csr": server_csr(&format!("b{i}.pg.example.com")).pem, "profile": "tls-server"
        })).collect::<Vec<_>>()}),
    );
    assert_eq!(batch.status, 200, "batch on B: {batch}");
    let serials: Vec<String> = batch.json["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["serial"].as_str().expect("every item issued").to_string())
        .collect();
    let der = a.post_raw(
        "/v1/certificates?profile=tls-server",
        Some(&a.tokens.ra),
        "application/pkcs10",
        server_csr("der.pg.example.com").der(),
    );
    assert_eq!(der.status, 201, "DER on A: {der}");
    // Each node reads what the other stored; a query's pages are walked across both, each
    // cursor given to the other node.
    assert_eq!(a.record(&serials[0])["serial"], serials[0].as_str());
    let total = a.certificate_count();
    assert_eq!(total, b.certificate_count());
    let walked = listed(&[&a, &b], 2);
    let unique: std::collections::HashSet<&String> = walked.iter().collect();
    assert_eq!((walked.len(), unique.len()), (total, total), "{walked:?}");
    assert!(serials.iter().all(|s| unique.contains(s)));

    // A request_id replayed on the other node answers the same certificate.
    let body = json!({"csr": csr.pem, "profile": "tls-server", "request_id": "pg-7"});
    let first = a.post("/v1/certificates", &a.tokens.ra, &body);
    assert_eq!(first.status, 201, "{first}");
    let replay = b.post("/v1/certificates", &b.tokens.ra, &body);
    assert_eq!(replay.status, 200, "replay on B: {replay}");
    assert_eq!(replay.json["serial"], first.json["serial"]);

    // A token minted on A works on B.
    let minted = a.post(
        "/v1/tokens",
        &a.tokens.operator,
        &json!({"role": "ra", "name": "ra-pg"}),
    );
    assert_eq!(minted.status, 201, "{minted}");
    let token = minted.json["token"].as_str().expect("token");
    let r = b.post(
        "/v1/certificates",
        token,
        &json!({"csr": server_csr("token.pg.example.com").pem, "profile": "tls-server"}),
    );
    assert_eq!(r.status, 201, "the minted token on B: {r}");
    // Revoked on A, it stops working on B within a second (B had it cached).
    let revoked = a.request(
        reqwest::Method::DELETE,
        "/v1/tokens/ra-pg",
        Some(&a.tokens.operator),
        None,
    );
    assert_eq!(revoked.status, 204, "{revoked}");
    let since = std::time::Instant::now();
    let refused = loop {
        let r = b.get("/v1/certificates?limit=1", Some(token));
        if r.status == 401 || since.elapsed() > std::time::Duration::from_secs(1) {
            break r;
        }
    };
    assert_error(
        &refused,
        401,
        "unauthorized",
        "a token revoked on the other node",
    );

    // An enrolment code redeemed on both nodes at once: one certificate, one refusal.
    let (id, code) = a.create_enrollment(
        &json!({"profile": "personal", "subject": "CN=Maria Silva,SN=Silva,GN=Maria",
                "sans": ["maria@example.com"], "expires_in_hours": 1, "max_attempts": 3}),
    );
    let enrol_csr = make_csr("ec-p256", "/CN=x", &["email:maria@example.com"]).pem;
    let redeem = |node: &Server| {
        let r = node.request(
            reqwest::Method::POST,
            &format!("/v1/enrollments/{id}/redeem"),
            None,
            Some(&json!({"code": code, "csr": enrol_csr})),
        );
        let code = r.json["error"]["code"].as_str().unwrap_or("").to_string();
        (r.status, code)
    };
    let statuses: Vec<(u16, String)> = std::thread::scope(|s| {
        let (redeem, a, b) = (&redeem, &a, &b);
        let x = s.spawn(move || redeem(a));
        let y = s.spawn(move || redeem(b));
        vec![x.join().expect("A"), y.join().expect("B")]
    });
    let mut statuses = statuses;
    statuses.sort();
    assert_eq!(
        statuses,
        vec![
            (201, String::new()),
            (409, "enrollment_already_redeemed".into())
        ],
        "one code redeemed on two nodes at once"
    );

    // B's OCSP answers "good" (and caches it: requests without a nonce are answered from the
    // cache); A revokes; B answers "revoked" within a second.
    // A key of its own, which A's keyCompromise revocation blocks.
    let key = fresh_p256_key(tmp.path());
    let csr = server_csr_with_key(&key, "revoked.pg.example.com");
    let compromised = json!({"csr": csr.pem, "profile": "tls-server"});
    let issued = b.post("/v1/certificates", &b.tokens.ra, &compromised);
    assert_eq!(issued.status, 201, "{issued}");
    let serial = issued.json["serial"].as_str().expect("serial").to_string();
    let leaf = b.leaf_file(&issued.json);
    let leaf = leaf.to_str().expect("UTF-8 path");
    let b_ocsp = format!("{}/ocsp", b.base);
    assert_eq!(
        ocsp_status(&b.ocsp_ask(&b_ocsp, &["-no_nonce", "-cert", leaf]), leaf).0,
        "good"
    );
    assert_eq!(
        ocsp_status(&b.ocsp_ask(&b_ocsp, &["-no_nonce", "-cert", leaf]), leaf).0,
        "good"
    );
    let crl_before = b.generate_crl()["crl_number"].as_u64().expect("number");
    a.revoke_ok(&serial, "keyCompromise");
    let revoked_at = std::time::Instant::now();
    let status = loop {
        let out = b.ocsp_ask(&b_ocsp, &["-no_nonce", "-cert", leaf]);
        let status = ocsp_status(&out, leaf).0;
        if status == "revoked" || revoked_at.elapsed() > std::time::Duration::from_secs(1) {
            break status;
        }
    };
    assert_eq!(status, "revoked", "B's OCSP a second after A's revocation");
    // The key A's keyCompromise revocation blocked is refused by B within a second.
    let refused = loop {
        let r = b.post("/v1/certificates", &b.tokens.ra, &compromised);
        if r.status != 201 || revoked_at.elapsed() > std::time::Duration::from_secs(1) {
            break r;
        }
    };
    assert_error(&refused, 422, "key_blocked", "B, after A blocked the key");
    // Each node's answers carry its own responder's certificate (openssl verified the chain
    // to the CA above).
    for (node, dir) in [(&a, &a_dir), (&b, &b_dir)] {
        let own = pem_certs(&std::fs::read_to_string(dir.join("ocsp.pem")).expect("ocsp.pem"));
        let resp = node.scratch().join("resp.der");
        let url = format!("{}/ocsp", node.base);
        let out = node.ocsp_ask(
            &url,
            &["-cert", leaf, "-respout", resp.to_str().expect("UTF-8")],
        );
        assert_eq!(ocsp_status(&out, leaf).0, "revoked", "{out}");
        let bytes = std::fs::read(&resp).expect("the response");
        assert!(
            bytes.windows(own[0].len()).any(|w| w == own[0].as_slice()),
            "{} answers without its own responder certificate",
            node.base
        );
    }
    let generated = b.generate_crl();
    assert!(generated["crl_number"].as_u64().expect("number") > crl_before);
    let crl = b.check_crl(&b.crl(), "B's CRL after A's revocation");
    assert!(crl.entry(&serial).is_some(), "B's CRL lists A's revocation");
    // The CRLs B built are in the database: A, asked to publish, serves them instead of
    // building others (they cover every change), and both nodes serve the same bytes.
    let number = generated["crl_number"].as_u64().expect("number");
    assert_eq!(a.generate_crl()["crl_number"].as_u64(), Some(number));
    assert_eq!(a.crl(), b.crl());
    assert_eq!(a.delta_crl(), b.delta_crl());

    // One certificate's life across both nodes: held on B, released on A (B's OCSP answers
    // "good" again within a second, its cached "revoked" dropped), renewed on B; its events,
    // read on A, are one history.
    let life = a.issue(&server_csr("life.pg.example.com"), "tls-server", Some(30));
    let old = life["serial"].as_str().expect("serial").to_string();
    let life_leaf = a.leaf_file(&life);
    let life_leaf = life_leaf.to_str().expect("UTF-8 path");
    b.revoke_ok(&old, "certificateHold");
    let ask = || {
        ocsp_status(
            &b.ocsp_ask(&b_ocsp, &["-no_nonce", "-cert", life_leaf]),
            life_leaf,
        )
        .0
    };
    assert_eq!(ask(), "revoked");
    let r = a.release_hold(&old);
    assert_eq!(r.status, 200, "release on A: {r}");
    let released_at = std::time::Instant::now();
    let status = loop {
        let status = ask();
        if status == "good" || released_at.elapsed() > std::time::Duration::from_secs(1) {
            break status;
        }
    };
    assert_eq!(status, "good", "B's OCSP a second after A's release");
    let r = b.renew(&old, None);
    assert_eq!(r.status, 201, "renewal on B: {r}");
    let renewed = r.json["serial"].as_str().expect("serial").to_string();
    assert_eq!(a.record(&renewed)["renewed_from"], old.as_str());
    let r = a.get(
        &format!("/v1/certificates/{old}/events"),
        Some(&a.tokens.auditor),
    );
    assert_eq!(r.status, 200, "events on A: {r}");
    let kinds: Vec<&str> = r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        kinds,
        ["issued", "revoked", "hold_released", "renewed"],
        "{r}"
    );

    a.terminate();
    b.terminate();
    audit_verify_ok(&b_dir);
}

/// What a load thread saw: the serials acknowledged (201), and every other outcome by HTTP
/// status and error code (`connection` for a request that got no answer).
#[derive(Debug, Default)]
struct Seen {
    acknowledged: Vec<String>,
    revoked: Vec<String>,
    other: std::collections::BTreeMap<String, usize>,
}

/// Issues certificates on `base` until `stop` (revoking each one it got when `revoke`), as
/// fast as one connection allows; stops early when the server goes away.
fn load(
    base: String,
    token: String,
    csr_pem: String,
    revoke: bool,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<Seen> {
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .expect("client");
        let mut seen = Seen::default();
        let body = serde_json::json!({"csr": csr_pem, "profile": "tls-server"});
        let note = |seen: &mut Seen, r: Result<reqwest::blocking::Response, reqwest::Error>| match r
        {
            Err(_) => {
                *seen.other.entry("connection".into()).or_default() += 1;
                None
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r.headers().contains_key("retry-after");
                let v: serde_json::Value = r.json().unwrap_or_default();
                if status == 201 || status == 200 {
                    return Some(v);
                }
                let code = v["error"]["code"].as_str().unwrap_or("?").to_string();
                let key = format!("{status} {code} retry-after={retry_after}");
                *seen.other.entry(key).or_default() += 1;
                None
            }
        };
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let r = client
                .post(format!("{base}/v1/certificates"))
                .bearer_auth(&token)
                .json(&body)
                .send();
            let Some(v) = note(&mut seen, r) else {
                if seen.other.contains_key("connection") {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            };
            let serial = v["serial"].as_str().expect("serial").to_string();
            seen.acknowledged.push(serial.clone());
            if revoke {
                let r = client
                    .post(format!("{base}/v1/certificates/{serial}/revoke"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"reason": "superseded"}))
                    .send();
                if note(&mut seen, r).is_some() {
                    seen.revoked.push(serial);
                }
            }
        }
        seen
    })
}

/// Every serial the nodes list, walking the query's pages of `limit`, each page asked of the
/// next node with the cursor the previous one gave.
fn listed(nodes: &[&e2e_tests::server::Server], limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for node in nodes.iter().cycle() {
        let mut path = format!("/v1/certificates?limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = node.get(&path, Some(&node.tokens.auditor));
        assert_eq!(r.status, 200, "{path}: {r}");
        for item in r.json["items"].as_array().expect("items") {
            out.push(item["serial"].as_str().expect("serial").to_string());
        }
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    out
}

/// Two nodes of one CA on `pg`, in `tmp/a` and `tmp/b`.
fn two_nodes(
    pg: &Postgres,
    tmp: &std::path::Path,
) -> (e2e_tests::server::Server, e2e_tests::server::Server) {
    two_nodes_at(pg, &pg.url("postgres"), tmp)
}

/// Two nodes of one CA on the database at `url` (with `pg`'s password), in `tmp/a` and `tmp/b`.
fn two_nodes_at(
    pg: &Postgres,
    url: &str,
    tmp: &std::path::Path,
) -> (e2e_tests::server::Server, e2e_tests::server::Server) {
    use e2e_tests::prelude::*;
    let (a_dir, b_dir) = (tmp.join("a"), tmp.join("b"));
    pg.init_ca_ok(&a_dir, url);
    let a = Server::serve(&a_dir);
    copy_node(&a_dir, &b_dir);
    let b = Server::serve(&b_dir);
    (a, b)
}

/// Every acknowledged certificate is stored once and every acknowledged revocation holds, as
/// `node` reads the database; `ca-server audit verify` passes on `dir`.
fn nothing_acknowledged_lost(
    node: &e2e_tests::server::Server,
    seen: &[Seen],
    dir: &std::path::Path,
) {
    let listed = listed(&[node], 1000);
    let unique: std::collections::HashSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a serial listed twice");
    for s in seen {
        for serial in &s.acknowledged {
            assert!(unique.contains(serial), "acknowledged {serial} is missing");
        }
        for serial in &s.revoked {
            let r = node.get(
                &format!("/v1/certificates/{serial}"),
                Some(&node.tokens.auditor),
            );
            assert_eq!(
                r.json["status"], "revoked",
                "acknowledged revocation of {serial}: {r}"
            );
        }
    }
    e2e_tests::binary::audit_verify_ok(dir);
}

/// SIGKILL of one of two nodes under load: the other keeps serving (every request it got was
/// answered with a certificate), every acknowledged certificate and revocation of both is in
/// the database, no serial twice, and the audit log verifies.
#[test]
fn a_node_killed_under_load_loses_nothing_acknowledged() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let pg = Postgres::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_nodes(&pg, tmp.path());
    let csr = e2e_tests::fixtures::server_csr("load.pg.example.com").pem;
    let (stop_a, stop_b) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for revoke in [false, true] {
        on_a.push(load(
            a.base.clone(),
            a.tokens.ra.clone(),
            csr.clone(),
            revoke,
            stop_a.clone(),
        ));
        on_b.push(load(
            b.base.clone(),
            b.tokens.ra.clone(),
            csr.clone(),
            revoke,
            stop_b.clone(),
        ));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    a.kill9();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    stop_a.store(true, Ordering::Relaxed);
    stop_b.store(true, Ordering::Relaxed);
    let seen_a: Vec<Seen> = on_a.into_iter().map(|t| t.join().expect("load")).collect();
    let seen_b: Vec<Seen> = on_b.into_iter().map(|t| t.join().expect("load")).collect();
    for s in &seen_b {
        assert!(
            s.other.is_empty(),
            "the surviving node refused: {:?}",
            s.other
        );
        assert!(
            s.acknowledged.len() > 10,
            "the surviving node served little: {s:?}"
        );
    }
    assert!(
        seen_a.iter().all(|s| !s.acknowledged.is_empty()),
        "{seen_a:?}"
    );
    for (node, seen) in [("killed", &seen_a), ("surviving", &seen_b)] {
        for s in seen.iter() {
            eprintln!(
                "{node} node: {} certificates and {} revocations acknowledged, {:?}",
                s.acknowledged.len(),
                s.revoked.len(),
                s.other
            );
        }
    }
    let mut all = seen_a;
    all.extend(seen_b);
    let dir = b.dir.clone();
    nothing_acknowledged_lost(&b, &all, &dir);
    b.terminate();
}

/// PostgreSQL restarted under load (`pg_ctl restart -m fast`): while it is down the nodes
/// answer 503 `storage_unavailable` with Retry-After (no 500, no hang, no dropped connection),
/// they reconnect by themselves, and nothing acknowledged is lost.
#[test]
fn nodes_ride_out_a_database_restart() {
    let pg = Postgres::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_nodes(&pg, tmp.path());
    let seen = through_a_fault(
        &[&a, &b],
        "restart",
        std::time::Duration::from_secs(10),
        || pg.restart(),
    );
    let dir = a.dir.clone();
    a.terminate();
    nothing_acknowledged_lost(&b, &seen, &dir);
    b.terminate();
}

/// Each node back within `within`: it issues a certificate.
fn back_within(nodes: &[&e2e_tests::server::Server], csr: &str, within: std::time::Duration) {
    for node in nodes {
        let deadline = std::time::Instant::now() + within;
        loop {
            let r = node.post(
                "/v1/certificates",
                &node.tokens.ra,
                &serde_json::json!({"csr": csr, "profile": "tls-server"}),
            );
            if r.status == 201 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not back: {r}");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Load on `nodes` (issuing, and issuing then revoking, on each) through `fault`: each node
/// must issue again within `back` of it by itself, and every request that failed meanwhile
/// was answered 503 `storage_unavailable` with Retry-After (no 500, no hang, no dropped
/// connection). Returns what each load thread saw.
fn through_a_fault(
    nodes: &[&e2e_tests::server::Server],
    name: &str,
    back: std::time::Duration,
    fault: impl FnOnce(),
) -> Vec<Seen> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let csr = e2e_tests::fixtures::server_csr(&format!("{name}.pg.example.com")).pem;
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for node in nodes {
        for revoke in [false, true] {
            threads.push(load(
                node.base.clone(),
                node.tokens.ra.clone(),
                csr.clone(),
                revoke,
                stop.clone(),
            ));
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(1000));
    fault();
    back_within(nodes, &csr, back);
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<Seen> = threads
        .into_iter()
        .map(|t| t.join().expect("load"))
        .collect();
    for s in &seen {
        eprintln!(
            "{name}: {} certificates and {} revocations acknowledged, {:?}",
            s.acknowledged.len(),
            s.revoked.len(),
            s.other
        );
        for (outcome, n) in &s.other {
            assert!(
                outcome.starts_with("503 storage_unavailable retry-after=true"),
                "{n} answers {outcome} during the {name}: {:?}",
                s.other
            );
        }
    }
    assert!(
        seen.iter().any(|s| !s.other.is_empty()),
        "no request met the {name}: {seen:?}"
    );
    seen
}

/// A primary with a synchronous standby; the primary dies under load and the standby is
/// promoted: the nodes, whose URL names both hosts with `target_session_attrs=read-write`,
/// answer 503 `storage_unavailable` meanwhile, go on on the new primary by themselves, and
/// nothing they acknowledged is lost (every commit waited for the standby).
#[test]
fn the_nodes_follow_a_promoted_synchronous_standby() {
    let primary = Postgres::start();
    let standby = primary.start_standby("standby1");
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = two_nodes_at(&primary, &url, tmp.path());
    let seen = through_a_fault(
        &[&a, &b],
        "failover",
        std::time::Duration::from_secs(20),
        || {
            primary.kill();
            standby.promote();
        },
    );
    let dir = a.dir.clone();
    a.terminate();
    nothing_acknowledged_lost(&b, &seen, &dir);
    b.terminate();
    assert_eq!(standby.psql("SELECT pg_is_in_recovery()").trim(), "f");
}

/// ACME on two nodes of one database is one service (RFC 8555 behind a load balancer: both
/// nodes answer under one base URL, `[acme] base_url`): an account and an order created on
/// one node are validated and finalized on the other; a nonce one node handed out is accepted
/// by the other, once; the certificate is downloaded from the first node and verifies.
#[test]
fn acme_on_two_nodes_is_one_service() {
    use e2e_tests::acme::{free_port, set_acme_table, ChallTestSrv};
    use e2e_tests::acme_client::{AccountKey, Acme, Http01Responder, KeyRef};
    use e2e_tests::formats::pem_certs;
    use e2e_tests::prelude::*;
    use serde_json::json;

    let pg = Postgres::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    pg.init_ca_ok(&a_dir, &pg.url("postgres"));
    let dns = ChallTestSrv::start();
    let http01 = Http01Responder::start();
    let a_addr = format!("127.0.0.1:{}", free_port());
    set_acme_table(
        &a_dir,
        &format!(
            "enabled = true\neab_required = false\nbase_url = \"http://{a_addr}\"\n\
             http01_port = {}\ndns_resolver = \"{}\"\ndeny_networks = []\n",
            http01.port, dns.dns
        ),
    );
    let a = Server::serve_on(&a_dir, &a_addr);
    copy_node(&a_dir, &b_dir);
    let b = Server::serve(&b_dir);
    // What the load balancer would do: the same URL, sent to node B.
    let b_host = b.base.trim_start_matches("http://").to_string();
    let on_b = |url: &str| url.replacen(&a_addr, &b_host, 1);

    let acme = Acme::new(&format!("{}/acme/directory", a.base));
    let account = acme.register(AccountKey::es256(), None);
    let names = ["two-nodes.example.com"];
    let (order_url, order) = acme.order(&account, &names);

    // The challenge answered on B, with a nonce A handed out.
    let authz_url = order["authorizations"][0].as_str().expect("authz");
    let authz = acme.get_as(&account, authz_url);
    let challenge = Acme::challenge_of(&authz.json, "http-01");
    let token = challenge["token"].as_str().expect("token");
    http01.serve(token, &account.key.key_authorization(token));
    let challenge_url = challenge["url"].as_str().expect("challenge url");
    let jws = acme.jws(
        &account.key,
        KeyRef::Kid(&account.url),
        challenge_url,
        Some(&json!({})),
    );
    let r = acme.post_jws(&on_b(challenge_url), &jws);
    assert_eq!(
        r.status, 200,
        "the challenge posted to B with A's nonce: {r}"
    );
    // The same JWS again, to A: its nonce was spent on B.
    let replay = acme.post_jws(challenge_url, &jws);
    assert_eq!(
        (replay.status, replay.problem_type().as_str()),
        (400, "badNonce"),
        "a nonce spent on B, replayed to A: {replay}"
    );
    let r = acme.poll_authz(&account, authz_url);
    assert_eq!(
        r.json["status"], "valid",
        "the authorization, read on A: {r}"
    );

    // Finalized on B.
    let finalize_url = order["finalize"].as_str().expect("finalize");
    let csr = account.key.csr(tmp.path(), &names);
    let payload = json!({"csr": e2e_tests::acme_client::b64(&csr)});
    let jws = acme.jws(
        &AccountKey::es256(),
        KeyRef::Kid(&account.url),
        finalize_url,
        None,
    );
    let wrong_key = acme.post_jws(&on_b(finalize_url), &jws);
    assert_eq!(
        wrong_key.status, 400,
        "a JWS not signed by the account: {wrong_key}"
    );
    let jws = acme.jws(
        &account.key,
        KeyRef::Kid(&account.url),
        finalize_url,
        Some(&payload),
    );
    let r = acme.post_jws(&on_b(finalize_url), &jws);
    assert_eq!(r.status, 200, "finalize on B: {r}");
    assert_eq!(r.json["status"], "valid", "{r}");

    // Read and downloaded on A.
    let r = acme.get_as(&account, &order_url);
    assert_eq!(r.json["status"], "valid", "the order, read on A: {r}");
    let cert_url = r.json["certificate"].as_str().expect("certificate URL");
    let r = acme.get_as(&account, cert_url);
    assert_eq!(r.status, 200, "download from A: {r}");
    let chain = pem_certs(&r.text);
    let leaf = tmp.path().join("leaf.pem");
    std::fs::write(&leaf, &r.text).expect("writing the chain");
    let out = openssl(&[
        "verify",
        "-CAfile",
        a_dir.join("ca.pem").to_str().expect("UTF-8"),
        leaf.to_str().expect("UTF-8"),
    ]);
    assert!(out.contains(": OK"), "openssl verify: {out}");
    assert!(chain.len() >= 2, "the leaf and the CA chain");
    drop((a, b));
}
