//! Crash safety: concurrent issuance and revocation, SIGKILL at random moments, restart on
//! the same data directory, and every promise checked: acknowledged certificates come back
//! byte-identical, revoked when their revocation was acknowledged and valid when none was
//! attempted; no serial twice; acknowledged revocations in the next CRL, whose signature
//! OpenSSL verifies; CRL numbers and the audit log only grow, the log's hash chain recomputed
//! by the test and `ca-server audit verify` both pass; every `request_id` replayed after the
//! kill answers its acknowledged certificate again, or issues once.
//!
//! `CRASH_ROUNDS` (default 4) sets the number of kills; docs/SECURITY.md gives the figures of
//! a longer run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use e2e_tests::audit_chain::{audit_log, check_chain};
use e2e_tests::power_loss::PowerLoss;
use e2e_tests::prelude::*;
use serde_json::{json, Value};

/// A small deterministic generator (xorshift), seeded from the clock and printed, so that a
/// failing run can be repeated with `CRASH_SEED`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Acknowledged {
    /// serial → certificate PEM, for every 201.
    certificates: BTreeMap<String, String>,
    /// Every serial whose revocation answered 200.
    revoked: HashSet<String>,
    /// Every serial whose revocation was sent (answered or not).
    revocations_sent: HashSet<String>,
    /// request_id → (request body, the serial its 201 acknowledged, if one did).
    requests: BTreeMap<String, (Value, Option<String>)>,
}

/// One client: issues (each request with a `request_id` of its own), and now and then revokes
/// one of its own acknowledged certificates, until the server goes away. A failure to reach
/// the server before the kill was sent fails the test.
fn client(
    s: &Server,
    t: usize,
    killing: &AtomicBool,
    acked: &Mutex<Acknowledged>,
    seed: u64,
    round: usize,
) {
    let client = http_client();
    let csr = server_csr(&format!("crash-{t}.example.com"));
    let mut rng = Rng(seed | 1);
    let mut mine: Vec<String> = Vec::new();
    let gone = |e: String| {
        assert!(
            killing.load(Ordering::SeqCst),
            "client {t}: the server failed before it was killed: {e}"
        );
    };
    for n in 0.. {
        if !mine.is_empty() && rng.below(4) == 0 {
            let serial = mine.swap_remove(rng.below(mine.len() as u64) as usize);
            // Not keyCompromise, which would block the key every request of this client
            // shares (tests/tests/e2e/blocked_keys.rs).
            let body = json!({"reason": "superseded"});
            acked
                .lock()
                .unwrap()
                .revocations_sent
                .insert(serial.clone());
            match try_post(
                &client,
                &s.base,
                &format!("/v1/certificates/{serial}/revoke"),
                &s.tokens.ra,
                &body,
            ) {
                Ok(r) if r.status == 200 => {
                    acked.lock().unwrap().revoked.insert(serial);
                }
                Ok(r) => assert!(r.status >= 500, "revoke {serial}: {r}"),
                Err(e) => return gone(e.to_string()),
            }
            continue;
        }
        let request_id = format!("r{round}-c{t}-{n}");
        let body = json!({"csr": csr.pem, "profile": "tls-server", "validity_days": 30,
                          "request_id": request_id});
        acked
            .lock()
            .unwrap()
            .requests
            .insert(request_id.clone(), (body.clone(), None));
        match try_post(&client, &s.base, "/v1/certificates", &s.tokens.ra, &body) {
            Ok(r) if r.status == 201 => {
                let serial = r.json["serial"].as_str().unwrap().to_string();
                let pem = r.json["certificate"].as_str().unwrap().to_string();
                let mut a = acked.lock().unwrap();
                let previous = a.certificates.insert(serial.clone(), pem);
                assert!(previous.is_none(), "serial {serial} acknowledged twice");
                if let Some(entry) = a.requests.get_mut(&request_id) {
                    entry.1 = Some(serial.clone());
                }
                mine.push(serial);
            }
            // Shutting down or overloaded while the kill lands: not acknowledged.
            Ok(r) => assert!(r.status == 429 || r.status >= 500, "issue: {r}"),
            Err(e) => return gone(e.to_string()),
        }
    }
}

/// Replays the `request_id`s of the round before the kill, and about 200 of the older ones:
/// one whose 201 was acknowledged answers the same certificate (200); one that was not
/// acknowledged either answers the certificate its request committed before the kill (200),
/// or issues now (201), and then stays answered.
fn replay_request_ids(s: &Server, acked: &Mutex<Acknowledged>, round: usize) {
    let mut a = acked.lock().unwrap();
    let last = format!("r{}-", round.saturating_sub(1));
    let (recent, older): (Vec<_>, Vec<_>) = a
        .requests
        .iter()
        .map(|(id, (body, serial))| (id.clone(), body.clone(), serial.clone()))
        .partition(|(id, _, _)| id.starts_with(&last));
    let step = (older.len() / 200).max(1);
    let requests: Vec<(String, Value, Option<String>)> = recent
        .into_iter()
        .chain(older.into_iter().step_by(step))
        .collect();
    for (id, body, serial) in requests {
        let r = s.post("/v1/certificates", &s.tokens.ra, &body);
        let answered = r.json["serial"].as_str().unwrap_or_default().to_string();
        match serial {
            Some(serial) => {
                assert_eq!(r.status, 200, "round {round}: replay of {id}: {r}");
                assert_eq!(answered, serial, "round {round}: replay of {id}");
                assert_eq!(
                    r.json["certificate"].as_str(),
                    a.certificates.get(&serial).map(String::as_str),
                    "round {round}: replay of {id} answers the acknowledged certificate"
                );
            }
            None => {
                assert!(
                    matches!(r.status, 200 | 201),
                    "round {round}: replay of unacknowledged {id}: {r}"
                );
                let pem = r.json["certificate"].as_str().unwrap().to_string();
                if r.status == 201 {
                    assert!(
                        !a.certificates.contains_key(&answered),
                        "round {round}: {id} issued an acknowledged serial again"
                    );
                }
                a.certificates.entry(answered.clone()).or_insert(pem);
                if let Some(entry) = a.requests.get_mut(&id) {
                    entry.1 = Some(answered);
                }
            }
        }
    }
}

fn audit_head(s: &Server) -> u64 {
    let mut after = 0;
    loop {
        let r = s.get(
            &format!("/v1/audit?after={after}&limit=1000"),
            Some(&s.tokens.auditor),
        );
        assert_eq!(r.status, 200, "{r}");
        match r.json["next_after"].as_u64() {
            Some(n) => after = n,
            None => return after,
        }
    }
}

#[test]
fn sigkill_during_issuance_and_revocation_loses_nothing_acknowledged() {
    crash_rounds(None);
}

/// The same rounds with a power cut after each kill: every write that was not fsynced is
/// dropped (tests/support/power_loss.c), from the first start that creates the CA on.
#[test]
fn power_cut_during_issuance_and_revocation_loses_nothing_acknowledged() {
    crash_rounds(Some(&PowerLoss::new()));
}

/// The negative control of the power-cut test: with the store's WAL syncs counting for
/// nothing, as in a build that never syncs its WAL, the cut loses certificates that were
/// acknowledged.
#[test]
fn a_power_cut_loses_acknowledged_certificates_when_the_wal_is_not_synced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = new_dir(tmp.path());
    let power = PowerLoss::new().ignoring_syncs_of(".log");
    power.settle(&dir);
    let s = Server::serve_with_env(&dir, "127.0.0.1:0", &power.env());
    let serials: Vec<String> = (0..3)
        .map(|i| {
            let csr = server_csr(&format!("unsynced-{i}.example.com"));
            s.issue(&csr, "tls-server", Some(30))["serial"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    s.kill9();
    let cut = power.cut(&dir);
    assert!(cut.bytes > 0, "{cut:?}");
    let s = Server::serve(&dir);
    for serial in &serials {
        let r = s.get(
            &format!("/v1/certificates/{serial}"),
            Some(&s.tokens.auditor),
        );
        assert_eq!(
            r.status, 404,
            "{serial} survived a cut of its unsynced WAL: {r}"
        );
    }
    s.terminate();
}

/// Rounds of load, SIGKILL at a random moment (and, with `power`, a power cut), and restart,
/// each restart checking every promise made before it.
fn crash_rounds(power: Option<&PowerLoss>) {
    let env = power.map(PowerLoss::env).unwrap_or_default();
    let serve = |dir: &std::path::Path| Server::serve_with_env(dir, "127.0.0.1:0", &env);
    let (rounds, seed) = crash_settings();
    eprintln!("crash test: {rounds} rounds, CRASH_SEED={seed}");
    let mut rng = Rng(seed | 1);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let acked = Mutex::new(Acknowledged::default());
    let mut last = (0u128, 0u64);
    let mut killed_with_revocations = 0;
    let started = Instant::now();
    for round in 0..=rounds {
        let s = serve(&dir);
        // What was acknowledged before this start is all here, byte for byte.
        {
            let a = acked.lock().unwrap();
            check_acknowledged_certificates(&s, &a, round);
            check_crl_and_audit_log(&s, &a, round, &env, &mut last);
        }
        // Every request_id sent before this start answers as it should.
        replay_request_ids(&s, &acked, round);
        if round == rounds {
            let stored = each_serial_is_stored_once(&dir, &env, &acked);
            let a = acked.lock().unwrap();
            assert!(
                killed_with_revocations > 0 && !a.revoked.is_empty(),
                "revocations were acknowledged ({} in {killed_with_revocations} rounds)",
                a.revoked.len()
            );
            eprintln!(
                "crash test: {rounds} kills in {:.0} s; {} certificates and {} revocations acknowledged, {stored} stored",
                started.elapsed().as_secs_f64(), a.certificates.len(), a.revoked.len()
            );
            s.terminate();
            break;
        }
        if load_then_kill(&s, &acked, &mut rng, round) {
            killed_with_revocations += 1;
        }
        s.reap();
        if let Some(power) = power {
            let cut = power.cut(&dir);
            eprintln!("round {round}: the power cut dropped {cut:?}");
            assert!(
                cut.synced_files > 0,
                "no sync of the store was seen: the layer is not loaded"
            );
        }
    }
}

/// `CRASH_ROUNDS` (default 4) and `CRASH_SEED` (default from the clock).
fn crash_settings() -> (usize, u64) {
    let rounds: usize = std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    (rounds, seed)
}

/// Every acknowledged certificate is there, byte for byte, revoked when its revocation was
/// acknowledged and valid when none was attempted.
fn check_acknowledged_certificates(s: &Server, a: &Acknowledged, round: usize) {
    for (serial, pem) in &a.certificates {
        let r = s.get(
            &format!("/v1/certificates/{serial}"),
            Some(&s.tokens.auditor),
        );
        assert_eq!(
            r.status, 200,
            "round {round}: acknowledged {serial} is gone: {r}"
        );
        assert_eq!(
            r.json["certificate"].as_str(),
            Some(pem.as_str()),
            "round {round}: {serial} changed"
        );
        let want = if a.revoked.contains(serial) {
            "revoked"
        } else {
            "valid"
        };
        if want == "revoked" {
            assert_eq!(
                r.json["status"], "revoked",
                "round {round}: acknowledged revocation of {serial} lost"
            );
        } else if !a.revocations_sent.contains(serial) {
            assert_eq!(
                r.json["status"], "valid",
                "round {round}: {serial}, never revoked, is not valid"
            );
        }
    }
}

/// Every acknowledged revocation is in the next CRL; CRL numbers and the audit log only grow
/// (`last`: the CRL number and audit head of the previous round); the log's chain holds, as
/// the test recomputes it and as `ca-server audit verify` checks it.
fn check_crl_and_audit_log(
    s: &Server,
    a: &Acknowledged,
    round: usize,
    env: &[(&str, std::ffi::OsString)],
    (last_crl, last_audit): &mut (u128, u64),
) {
    let generated = s.generate_crl();
    let crl = s.check_crl(&s.crl(), &format!("after-restart-{round}"));
    assert_eq!(
        crl.number,
        u128::from(generated["crl_number"].as_u64().unwrap())
    );
    assert!(
        crl.number > *last_crl,
        "round {round}: CRL number {} after {last_crl}",
        crl.number
    );
    *last_crl = crl.number;
    let listed: HashSet<&str> = crl.entries.iter().map(|e| e.serial.as_str()).collect();
    for serial in &a.revoked {
        assert!(
            listed.contains(serial.as_str()),
            "round {round}: revoked {serial} missing from the CRL"
        );
    }
    let head = audit_head(s);
    assert!(
        head > *last_audit,
        "round {round}: audit head {head} after {last_audit}"
    );
    *last_audit = head;
    check_chain(&audit_log(s));
    let out = ca_server_with_env(
        &["audit", "verify", "--data-dir", s.dir.to_str().unwrap()],
        env,
    );
    assert!(
        out.status.success(),
        "round {round}: audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The store holds each serial once (the export walks every certificate), every
/// acknowledged one among them; returns how many it holds.
fn each_serial_is_stored_once(
    dir: &std::path::Path,
    env: &[(&str, std::ffi::OsString)],
    acked: &Mutex<Acknowledged>,
) -> usize {
    let out = ca_server_with_env(
        &[
            "export",
            "--data-dir",
            dir.to_str().unwrap(),
            "--format",
            "jsonl",
        ],
        env,
    );
    assert!(out.status.success());
    let mut seen = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        *seen
            .entry(v["serial"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a serial is stored twice");
    let a = acked.lock().unwrap();
    assert!(a.certificates.keys().all(|k| seen.contains_key(k)));
    seen.len()
}

/// Load from four clients, then SIGKILL at a random moment; asserts that some certificate
/// was acknowledged in the round, and returns whether some revocation was.
fn load_then_kill(s: &Server, acked: &Mutex<Acknowledged>, rng: &mut Rng, round: usize) -> bool {
    let killing = AtomicBool::new(false);
    let (before, revoked_before) = {
        let a = acked.lock().unwrap();
        (a.certificates.len(), a.revoked.len())
    };
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (s, killing, acked, seed) = (s, &killing, acked, rng.next());
            scope.spawn(move || client(s, t, killing, acked, seed, round));
        }
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        // Killed by pid: the clients still hold the server until they notice.
        killing.store(true, Ordering::SeqCst);
        let pid = s.pid();
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
    });
    let (after, revoked_after) = {
        let a = acked.lock().unwrap();
        (a.certificates.len(), a.revoked.len())
    };
    assert!(
        after > before,
        "round {round}: no certificate was acknowledged before the kill"
    );
    revoked_after > revoked_before
}

#[test]
fn start_up_refuses_a_foreign_key_and_a_damaged_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let s = Server::serve(&dir);
    for i in 0..20 {
        s.issue(
            &server_csr(&format!("damage-{i}.example.com")),
            "tls-server",
            None,
        );
    }
    s.terminate();

    // Another CA's key in place of this CA's.
    let other = tmp.path().join("other");
    Server::serve(&other).terminate();
    let key = dir.join("ca-key.pem");
    let original = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    std::fs::copy(other.join("ca-key.pem"), &key).unwrap();
    let err = serve_refused(&dir);
    assert!(
        err.contains("does not match") && err.contains("backup"),
        "foreign key: {err}"
    );
    std::fs::remove_file(&key).unwrap();
    std::fs::write(&key, original).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&key).unwrap().permissions(),
        0o600,
    );
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    Server::serve(&dir).terminate();

    // A table file of the store with flipped bytes.
    let db = dir.join("db");
    let mut tables: Vec<_> = std::fs::read_dir(&db)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .collect();
    tables.sort_by_key(|p| std::fs::metadata(p).unwrap().len());
    let victim = tables.last().expect("an SST file");
    let mut bytes = std::fs::read(victim).unwrap();
    for b in bytes.iter_mut().take(200).skip(100) {
        *b ^= 0xff;
    }
    std::fs::write(victim, bytes).unwrap();
    let err = serve_refused(&dir);
    assert!(
        err.contains("damaged") || err.contains("Corruption"),
        "damaged store: {err}"
    );
    assert!(err.contains("backup"), "the refusal says what to do: {err}");
}
