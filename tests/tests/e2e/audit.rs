//! The auditor's record: per-certificate events, the hash-chained audit log (checked here
//! independently from its JSON, as an auditor would), signed checkpoints (checked with
//! OpenSSL), `ca-server audit verify` on a busy store and after direct edits of RocksDB, and
//! the metrics that move with each action.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use e2e_tests::audit_chain::{audit_log, check_chain};
use e2e_tests::prelude::*;
use serde_json::{json, Value};

fn audit_verify(dir: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["audit", "verify", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = ca_server(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn serial(v: &Value) -> String {
    v["serial"].as_str().expect("serial").to_string()
}

/// Sets `[audit] checkpoint_interval_secs` in a data directory's configuration.
fn set_checkpoint_interval(dir: &Path, secs: u64) {
    let path = dir.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("checkpoint_interval_secs = 300"),
        "default config: {text}"
    );
    let text = text.replace(
        "checkpoint_interval_secs = 300",
        &format!("checkpoint_interval_secs = {secs}"),
    );
    std::fs::write(&path, text).unwrap();
}

#[test]
fn events_list_the_full_life_of_a_held_renewed_then_revoked_certificate() {
    let s = Server::fresh();
    let old = serial(&s.issue(
        &server_csr("life.audit.example.com"),
        "tls-server",
        Some(30),
    ));
    s.revoke_ok(&old, "certificateHold");
    let r = s.release_hold(&old);
    assert_eq!(r.status, 200, "release: {r}");
    let r = s.renew(&old, None);
    assert_eq!(r.status, 201, "renew: {r}");
    let new = serial(&r.json);
    s.revoke_ok(&old, "superseded");
    s.revoke_ok(&new, "keyCompromise");

    let r = s.get(
        &format!("/v1/certificates/{old}/events"),
        Some(&s.tokens.auditor),
    );
    assert_eq!(r.status, 200, "events: {r}");
    let items = r.json["items"].as_array().expect("items");
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["issued", "revoked", "hold_released", "renewed", "revoked"],
        "{r}"
    );
    assert_eq!(items[0]["profile"], "tls-server");
    assert_eq!(items[1]["reason"], "certificateHold");
    assert_eq!(items[3]["renewed_by"], new.as_str());
    assert_eq!(items[4]["reason"], "superseded");
    let mut last_at = 0;
    for i in items {
        assert_eq!(i["actor"], "bootstrap-ra", "actor is the token's name: {i}");
        let at = parse_rfc3339(i["at"].as_str().unwrap());
        assert!(at >= last_at, "oldest first: {r}");
        last_at = at;
    }
    let r = s.get(
        &format!("/v1/certificates/{new}/events"),
        Some(&s.tokens.ra),
    );
    assert_eq!(r.status, 200, "events of the renewal, by its RA: {r}");
    let items = r.json["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{r}");
    assert_eq!(items[0]["type"], "issued");
    assert_eq!(items[0]["renewed_from"], old.as_str());
    assert_eq!(items[1]["type"], "revoked");
    assert_eq!(items[1]["reason"], "keyCompromise");

    // Each event points at its audit entry, which says the same.
    let log = audit_log(&s);
    check_chain(&log);
    let seq = items[1]["audit_seq"].as_u64().unwrap();
    let entry = &log[seq as usize - 1];
    assert_eq!(entry["action"], "certificate_revoked");
    assert_eq!(entry["target"], new.as_str());
    assert_eq!(entry["details"]["reason"], "keyCompromise");
    assert!(log.iter().any(|e| e["action"] == "certificate_renewed"
        && e["target"] == new.as_str()
        && e["details"]["renewed_from"] == old.as_str()));

    assert_error(
        &s.get(
            &format!("/v1/certificates/{old}/events"),
            Some(&s.tokens.operator),
        ),
        403,
        "forbidden",
        "operator reading events",
    );
    assert_error(
        &s.get(
            "/v1/certificates/4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/events",
            Some(&s.tokens.auditor),
        ),
        404,
        "serial_not_found",
        "events of an unknown serial",
    );
}

#[test]
fn audit_log_chains_every_action_and_verify_passes_on_a_busy_store() {
    let s = Server::fresh();
    let a = serial(&s.issue(&server_csr("chain.audit.example.com"), "tls-server", None));
    s.revoke_ok(&a, "cessationOfOperation");
    s.generate_crl();
    let r = s.post(
        "/v1/tokens",
        &s.tokens.operator,
        &json!({"role": "auditor", "name": "external-auditor"}),
    );
    assert_eq!(r.status, 201, "{r}");

    let log = audit_log(&s);
    check_chain(&log);
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    for want in [
        "token_created",
        "configuration_loaded",
        "crl_generated",
        "certificate_issued",
        "certificate_revoked",
    ] {
        assert!(actions.contains(&want), "{want} is logged: {actions:?}");
    }
    let created = log
        .iter()
        .find(|e| e["details"]["role"] == "auditor" && e["target"] == "external-auditor")
        .expect("the operator's token creation is logged");
    assert_eq!(created["actor"], "bootstrap-operator");
    let forced = log
        .iter()
        .filter(|e| e["action"] == "crl_generated" && e["actor"] == "bootstrap-operator")
        .count();
    assert_eq!(
        forced, 2,
        "a forced CRL generation allocates a full and a delta CRL number"
    );
    let text = serde_json::to_string(&log).unwrap();
    for t in [&s.tokens.ra, &s.tokens.auditor, &s.tokens.operator] {
        assert!(
            !text.contains(t.as_str()),
            "no token appears in the audit log"
        );
    }
    assert_error(
        &s.get("/v1/audit", Some(&s.tokens.ra)),
        403,
        "forbidden",
        "an RA reading the audit log",
    );
    assert_error(
        &s.get("/v1/audit?after=x", Some(&s.tokens.auditor)),
        400,
        "invalid_request",
        "bad after",
    );

    // `audit verify` passes while issuance and revocation run.
    let verified = audit_verify_under_load(&s);
    for (ok, text) in verified {
        assert!(
            ok && text.contains("audit log OK"),
            "audit verify on a busy store: {text}"
        );
    }
    let log = audit_log(&s);
    check_chain(&log);
    assert!(log.len() > 100, "the busy phase is logged: {}", log.len());
}

/// Runs `audit verify` three times while a thread issues batches of 50 and revokes one of
/// each: what each run answered.
fn audit_verify_under_load(s: &Server) -> Vec<(bool, String)> {
    let stop = std::sync::atomic::AtomicBool::new(false);
    let rounds = std::sync::atomic::AtomicUsize::new(0);
    let csr = server_csr("busy.audit.example.com");
    std::thread::scope(|scope| {
        let busy = scope.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let requests: Vec<Value> = (0..50)
                    .map(|_| json!({"csr": csr.pem, "profile": "tls-server"}))
                    .collect();
                let r = s.post(
                    "/v1/certificates/batch",
                    &s.tokens.ra,
                    &json!({ "requests": requests }),
                );
                assert_eq!(r.status, 200, "{r}");
                let first = r.json["results"][0]["serial"].as_str().unwrap().to_string();
                s.revoke_ok(&first, "superseded");
                n += 1;
                rounds.store(n, std::sync::atomic::Ordering::Relaxed);
            }
            n
        });
        // Verify once the load is under way.
        let deadline = Instant::now() + Duration::from_secs(60);
        while rounds.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "no batch was issued within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut runs = Vec::new();
        for _ in 0..3 {
            runs.push(audit_verify(&s.dir, &[]));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(busy.join().unwrap() > 0);
        runs
    })
}

#[test]
fn checkpoints_are_signed_by_the_ca_and_verify_with_openssl() {
    let s = Server::fresh();
    let r = s.get("/v1/audit/checkpoint", Some(&s.tokens.auditor));
    assert_eq!(r.status, 200, "a checkpoint is signed at start: {r}");
    let cp = r.json;
    let b64 = base64::engine::general_purpose::STANDARD;
    let message = b64.decode(cp["message"].as_str().unwrap()).unwrap();
    let signature = b64.decode(cp["signature"].as_str().unwrap()).unwrap();
    // The signed bytes hold the sequence number and the hash the JSON states.
    let tag = b"ca-audit-checkpoint-v1\n";
    assert!(message.starts_with(tag));
    let body = &message[tag.len()..];
    assert_eq!(
        u64::from_be_bytes(body[..8].try_into().unwrap()),
        cp["seq"].as_u64().unwrap()
    );
    assert_eq!(hex::encode(&body[8..40]), cp["hash"].as_str().unwrap());
    let log = audit_log(&s);
    let at = cp["seq"].as_u64().unwrap() as usize;
    assert_eq!(
        log[at - 1]["hash"],
        cp["hash"],
        "the checkpoint names a real entry"
    );

    let dir = s.scratch();
    std::fs::write(dir.join("msg.bin"), &message).unwrap();
    std::fs::write(dir.join("sig.bin"), &signature).unwrap();
    let ca_pem = dir.join("ca-only.pem");
    std::fs::write(
        &ca_pem,
        pem_certs(&s.get("/ca.pem", None).text)
            .first()
            .map(|d| to_pem("CERTIFICATE", d))
            .unwrap(),
    )
    .unwrap();
    let pubkey = openssl(&["x509", "-in", ca_pem.to_str().unwrap(), "-pubkey", "-noout"]);
    std::fs::write(dir.join("pub.pem"), pubkey).unwrap();
    let out = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        dir.join("pub.pem").to_str().unwrap(),
        "-signature",
        dir.join("sig.bin").to_str().unwrap(),
        dir.join("msg.bin").to_str().unwrap(),
    ]);
    assert!(out.contains("Verified OK"), "openssl dgst -verify: {out}");
    // A changed byte does not verify.
    let mut forged = message.clone();
    forged[tag.len() + 7] ^= 1;
    std::fs::write(dir.join("forged.bin"), &forged).unwrap();
    let out = output_within(
        Command::new("openssl").args([
            "dgst",
            "-sha256",
            "-verify",
            dir.join("pub.pem").to_str().unwrap(),
            "-signature",
            dir.join("sig.bin").to_str().unwrap(),
            dir.join("forged.bin").to_str().unwrap(),
        ]),
        COMMAND_DEADLINE,
    );
    assert!(!out.status.success(), "a forged checkpoint must not verify");
}

/// Opens the server's RocksDB directly, as an attacker with disk access would.
fn open_db(dir: &Path) -> rocksdb::DB {
    let path = dir.join("db");
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, &path).unwrap();
    rocksdb::DB::open_cf(&opts, &path, cfs).unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `ca-server serve` on `dir` must refuse to start, saying what to do.
fn assert_refuses_to_serve(dir: &Path) {
    let err = serve_refused(dir);
    assert!(
        err.contains("audit verify"),
        "the refusal says what to do: {err}"
    );
}

#[test]
fn audit_verify_fails_at_an_edited_entry_and_after_truncations() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let kept_path = tmp.path().join("kept-checkpoint.json");
    let log = a_log_with_a_kept_checkpoint(&dir, &kept_path);
    let victim = log
        .iter()
        .find(|e| e["action"] == "certificate_issued")
        .unwrap()["seq"]
        .as_u64()
        .unwrap();
    let (ok, text) = audit_verify(&dir, &["--checkpoint", kept_path.to_str().unwrap()]);
    assert!(ok, "intact log: {text}");
    assert!(text.contains("kept checkpoint"), "{text}");
    let pristine = tmp.path().join("pristine");
    copy_dir(&dir, &pristine);
    let restore = || {
        std::fs::remove_dir_all(&dir).unwrap();
        copy_dir(&pristine, &dir);
    };

    // 1. An edited entry: its actor changed in place.
    {
        let db = open_db(&dir);
        let audit = db.cf_handle("audit").unwrap();
        let key = victim.to_be_bytes();
        let mut value = db.get_cf(&audit, key).unwrap().unwrap();
        let pos = value
            .windows(12)
            .position(|w| w == b"bootstrap-ra")
            .expect("actor bytes");
        value[pos + 11] = b'x';
        db.put_cf(&audit, key, value).unwrap();
    }
    let (ok, text) = audit_verify(&dir, &[]);
    assert!(!ok, "an edited entry must fail: {text}");
    assert!(
        text.contains(&format!("BROKEN at entry {victim}:")),
        "names entry {victim}: {text}"
    );

    // 2. A deleted entry in the middle.
    restore();
    {
        let db = open_db(&dir);
        db.delete_cf(&db.cf_handle("audit").unwrap(), victim.to_be_bytes())
            .unwrap();
    }
    let (ok, text) = audit_verify(&dir, &[]);
    assert!(
        !ok && text.contains(&format!("BROKEN at entry {victim}:")),
        "a removed entry: {text}"
    );
    restore();
    cut_tails_are_found(&dir, &log, &kept_path, restore);
}

/// A log of issuances and revocations, with checkpoints every second; an auditor keeps the
/// newest checkpoint outside the CA, in `kept_path` (one of the head, signed within a second
/// or two). Returns the log, as the API gave it; the server is stopped.
fn a_log_with_a_kept_checkpoint(dir: &Path, kept_path: &Path) -> Vec<Value> {
    // First start writes the configuration; checkpoints every second from the second start.
    Server::serve(dir).terminate();
    set_checkpoint_interval(dir, 1);
    let s = Server::serve(dir);
    for i in 0..10 {
        let sn = serial(&s.issue(
            &server_csr(&format!("edit-{i}.audit.example.com")),
            "tls-server",
            None,
        ));
        if i % 3 == 0 {
            // Not keyCompromise: that would block the test key for the next requests.
            s.revoke_ok(&sn, "superseded");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let (log, kept) = loop {
        let log = audit_log(&s);
        let r = s.get("/v1/audit/checkpoint", Some(&s.tokens.auditor));
        if r.status == 200 && r.json["seq"].as_u64() == Some(log.len() as u64) {
            break (log, r.text);
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of the head within 20 s: {r}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    std::fs::write(kept_path, &kept).unwrap();
    s.terminate();
    log
}

/// The tail of the log (`log`, as the API gave it) cut, with the recorded head left, then
/// rewritten to match, then with the checkpoints deleted as well: each time `audit verify`
/// names the first missing entry, the last time only with the checkpoint kept outside the
/// CA (`kept_path`). `restore` puts the pristine store back.
fn cut_tails_are_found(dir: &Path, log: &[Value], kept_path: &Path, restore: impl Fn()) {
    let head = log.len() as u64;
    // 3. The tail cut: the recorded head says so, and the server will not start on it.
    {
        let db = open_db(dir);
        let audit = db.cf_handle("audit").unwrap();
        for seq in head - 2..=head {
            db.delete_cf(&audit, seq.to_be_bytes()).unwrap();
        }
    }
    let (ok, text) = audit_verify(dir, &[]);
    assert!(
        !ok && text.contains(&format!("BROKEN at entry {}:", head - 2)),
        "a cut tail: {text}"
    );
    assert_refuses_to_serve(dir);

    // 4. The tail cut and the recorded head rewritten to match: the signed checkpoints catch it.
    restore();
    let rewrite_head = |db: &rocksdb::DB, last: u64| {
        let audit = db.cf_handle("audit").unwrap();
        for seq in last + 1..=head {
            db.delete_cf(&audit, seq.to_be_bytes()).unwrap();
        }
        let r = s_log_hash(log, last);
        let mut head_value = last.to_be_bytes().to_vec();
        head_value.extend_from_slice(&r);
        db.put_cf(&db.cf_handle("meta").unwrap(), b"audit_head", head_value)
            .unwrap();
    };
    {
        let db = open_db(dir);
        rewrite_head(&db, head - 3);
    }
    let (ok, text) = audit_verify(dir, &[]);
    assert!(
        !ok && text.contains(&format!("BROKEN at entry {}:", head - 2)),
        "cut behind a checkpoint: {text}"
    );

    // 5. ... and the checkpoints deleted as well: only a checkpoint kept outside the CA tells.
    {
        let db = open_db(dir);
        let cps = db.cf_handle("checkpoints").unwrap();
        let keys: Vec<Box<[u8]>> = db
            .iterator_cf(&cps, rocksdb::IteratorMode::Start)
            .map(|kv| kv.unwrap().0)
            .collect();
        for k in keys {
            db.delete_cf(&cps, k).unwrap();
        }
    }
    let (ok, text) = audit_verify(dir, &[]);
    assert!(
        ok,
        "without any checkpoint the shortened log is self-consistent: {text}"
    );
    let (ok, text) = audit_verify(dir, &["--checkpoint", kept_path.to_str().unwrap()]);
    assert!(
        !ok && text.contains(&format!("BROKEN at entry {}:", head - 2)),
        "the kept checkpoint: {text}"
    );
}

/// The hash of entry `seq` of a log read from the API, as bytes.
fn s_log_hash(log: &[Value], seq: u64) -> Vec<u8> {
    hex::decode(log[seq as usize - 1]["hash"].as_str().unwrap()).unwrap()
}

#[test]
fn metrics_counters_move_with_the_actions() {
    let s = Server::fresh();
    let issued = r#"ca_certificates_total{outcome="issued",profile="tls-server"}"#;
    let renewed = r#"ca_certificates_total{outcome="renewed",profile="tls-server"}"#;
    let revoked = r#"ca_revocations_total{reason="keyCompromise"}"#;
    let refused = r#"ca_errors_total{code="unknown_profile"}"#;
    let before = [issued, renewed, revoked, refused, "ca_audit_head_seq"].map(|m| s.metric(m));
    let mut serials = Vec::new();
    for i in 0..3 {
        serials.push(serial(&s.issue(
            &server_csr(&format!("m-{i}.audit.example.com")),
            "tls-server",
            None,
        )));
    }
    assert_eq!(s.renew(&serials[0], None).status, 201);
    s.revoke_ok(&serials[1], "keyCompromise");
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": server_csr("m.audit.example.com").pem, "profile": "nope"}),
    );
    assert_error(&r, 422, "unknown_profile", "unknown profile");
    let after = [issued, renewed, revoked, refused, "ca_audit_head_seq"].map(|m| s.metric(m));
    assert_eq!(after[0] - before[0], 3.0, "issued");
    assert_eq!(after[1] - before[1], 1.0, "renewed");
    assert_eq!(after[2] - before[2], 1.0, "revoked");
    assert_eq!(after[3] - before[3], 1.0, "refusals by code");
    assert_eq!(
        after[4] - before[4],
        5.0,
        "audit head: 3 issued, 1 renewed, 1 revoked"
    );
    let text = s.get("/metrics", Some(&s.tokens.operator)).text;
    for name in [
        "ca_stage_seconds_bucket",
        "ca_store_commit_seconds_bucket",
        "ca_http_request_seconds_bucket",
        "ca_crl_number",
        "ca_audit_checkpoint_seq",
        "ca_queue_depth",
        "ca_worker_batch_size_bucket",
    ] {
        assert!(text.contains(name), "{name} is exposed");
    }
    // RocksDB's memory: the memtables hold what was just written.
    let memtables = s.metric(r#"ca_store_memory_bytes{use="memtables"}"#);
    assert!(memtables > 0.0, "memtable bytes: {memtables}");
    for name in ["block_cache", "block_cache_pinned", "table_readers"] {
        let series = format!(r#"ca_store_memory_bytes{{use="{name}"}}"#);
        assert!(text.contains(&series), "{series} is exposed");
    }
}

/// A kept checkpoint that was altered is reported as what it is, naming the entry, not as a
/// storage failure.
#[test]
fn an_altered_checkpoint_is_named_not_a_storage_failure() {
    let s = Server::fresh();
    s.issue(
        &make_csr("ec-p256", "/CN=cp.example.com", &["DNS:cp.example.com"]),
        "tls-server",
        None,
    );
    let r = s.get("/v1/audit/checkpoint", Some(&s.tokens.auditor));
    assert_eq!(r.status, 200, "{r}");
    let mut kept = r.json.clone();
    let hash = kept["hash"].as_str().expect("hash").to_string();
    let first = if hash.starts_with('0') { "1" } else { "0" };
    kept["hash"] = serde_json::Value::String(format!("{first}{}", &hash[1..]));
    let file = s.scratch().join("forged.json");
    std::fs::write(&file, kept.to_string()).expect("write");
    let out = ca_server(&[
        "audit",
        "verify",
        "--data-dir",
        s.dir.to_str().expect("UTF-8"),
        "--checkpoint",
        file.to_str().expect("UTF-8"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "an altered checkpoint must fail: {err}"
    );
    assert!(
        err.contains("does not verify with the CA's key") && !err.contains("storage failure"),
        "{err}"
    );
    s.terminate();
}

/// The JSON lines of `ca-server audit follow --once` with these extra arguments: its entries
/// and checkpoints, or its failure output.
fn follow_once(dir: &Path, extra: &[&str]) -> Result<(Vec<Value>, Vec<Value>), String> {
    let mut args = vec![
        "audit",
        "follow",
        "--data-dir",
        dir.to_str().unwrap(),
        "--once",
    ];
    args.extend_from_slice(extra);
    let out = ca_server(&args);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("each line is JSON");
        match (v.get("entry"), v.get("checkpoint")) {
            (Some(e), None) => entries.push(e.clone()),
            (None, Some(c)) => checkpoints.push(c.clone()),
            _ => panic!("a line is an entry or a checkpoint: {line}"),
        }
    }
    Ok((entries, checkpoints))
}

/// `audit follow` streams the log as the API shows it, while the server runs: every entry
/// once, in order, as a chain an auditor checks independently, with the signed checkpoints;
/// a collector resumes from its last entry and hash, and a hash that the log does not
/// continue stops it.
#[test]
fn audit_follow_streams_the_log_and_resumes_from_the_last_entry() {
    let s = Server::fresh();
    for i in 0..3 {
        s.issue(
            &make_csr(
                "ec-p256",
                &format!("/CN=f{i}.example.com"),
                &[&format!("DNS:f{i}.example.com")],
            ),
            "tls-server",
            None,
        );
    }
    let (entries, checkpoints) = follow_once(&s.dir, &[]).expect("follow from the start");
    check_chain(&entries);
    assert_eq!(entries, audit_log(&s), "the same entries as GET /v1/audit");
    let api_checkpoint = s.get("/v1/audit/checkpoint", Some(&s.tokens.auditor));
    assert_eq!(
        checkpoints.last(),
        Some(&api_checkpoint.json),
        "the newest checkpoint"
    );

    // Resume after the last entry seen, with its hash: only what came since.
    let last = entries.last().expect("entries").clone();
    let (seq, hash) = (
        last["seq"].as_u64().unwrap(),
        last["hash"].as_str().unwrap(),
    );
    let revoked = s.issue(
        &make_csr("ec-p256", "/CN=f3.example.com", &["DNS:f3.example.com"]),
        "tls-server",
        None,
    );
    let r = s.post(
        &format!("/v1/certificates/{}/revoke", serial(&revoked)),
        &s.tokens.ra,
        &json!({"reason": "superseded"}),
    );
    assert_eq!(r.status, 200, "{r}");
    let from = seq.to_string();
    let (more, _) = follow_once(&s.dir, &["--from", &from, "--from-hash", hash]).expect("resume");
    assert!(more.len() >= 2, "the issuance and the revocation: {more:?}");
    assert_eq!(more[0]["seq"].as_u64(), Some(seq + 1));
    assert_eq!(more[0]["prev_hash"].as_str(), Some(hash));
    let mut whole = entries.clone();
    whole.extend(more);
    check_chain(&whole);

    // A collector whose last hash the log does not continue (a rewritten history) is told.
    let forged = format!(
        "{}{}",
        if hash.starts_with('0') { "1" } else { "0" },
        &hash[1..]
    );
    let err = follow_once(&s.dir, &["--from", &from, "--from-hash", &forged])
        .expect_err("a chain that does not continue");
    assert!(
        err.contains(&format!("BROKEN at entry {}", seq + 1)),
        "{err}"
    );

    // Following (not --once) prints new entries as they are written.
    let mut child = Command::new(server_bin())
        .args(["audit", "follow", "--data-dir", s.dir.to_str().unwrap()])
        .args(["--from", &from, "--poll-ms", "100"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("audit follow");
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let newest = s.issue(
        &make_csr("ec-p256", "/CN=f4.example.com", &["DNS:f4.example.com"]),
        "tls-server",
        None,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a line for the new certificate within 30 s");
        if line.contains(&serial(&newest)) {
            break line;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("certificate_issued"), "{seen}");
    s.terminate();
}
