//! Durability: what the server answered survives a graceful restart (SIGTERM) and a crash
//! (SIGKILL).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_tests::prelude::*;
use serde_json::{json, Value};

#[test]
fn sigterm_restart_keeps_certificates_tokens_and_the_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let s = Server::serve(dir);
    let tokens = s.tokens.clone();
    let ca_pem = s.ca().pem.clone();
    let tokens_file = std::fs::read(dir.join("bootstrap-tokens.json")).expect("tokens file");

    let csrs = [
        (server_csr("r1.example.com"), "tls-server"),
        (
            make_csr("ed25519", "/CN=r2", &["DNS:r2.example"]),
            "tls-client",
        ),
        (
            make_csr("rsa-2048", "/CN=rita@r.example", &["email:rita@r.example"]),
            "personal",
        ),
        (server_csr("r4.example.com"), "tls-server"),
    ];
    let mut issued: Vec<Value> = csrs
        .iter()
        .map(|(csr, profile)| s.issue(csr, profile, None))
        .collect();
    let idem = json!({"csr": csrs[0].0.pem, "profile": "tls-server", "request_id": "restart-1"});
    let r = s.post("/v1/certificates", &tokens.ra, &idem);
    assert_eq!(r.status, 201, "request with a request_id: {r}");
    issued.push(r.json.clone());
    let records: Vec<Value> = issued
        .iter()
        .map(|c| s.record(c["serial"].as_str().expect("serial")))
        .collect();
    s.terminate();

    let s = Server::serve(dir);
    assert_eq!(
        std::fs::read(dir.join("bootstrap-tokens.json")).expect("tokens file"),
        tokens_file,
        "bootstrap-tokens.json changed on restart"
    );
    assert_eq!(s.ca().pem, ca_pem, "GET /ca.pem changed on restart");
    for (cert, before) in issued.iter().zip(&records) {
        let serial = cert["serial"].as_str().expect("serial");
        let after = s.record(serial);
        assert_eq!(
            after["certificate"], cert["certificate"],
            "{serial}: certificate PEM not byte-identical after restart"
        );
        assert_eq!(
            &after, before,
            "{serial}: record changed across the restart"
        );
    }

    tokens_and_request_ids_outlive_the_restart(&s, &issued, &idem);
    s.terminate();
}

/// The bootstrap tokens still work, each in its role, and the idempotency key of `idem` (the
/// request that gave the fifth of `issued`) outlives the restart.
fn tokens_and_request_ids_outlive_the_restart(s: &Server, issued: &[Value], idem: &Value) {
    let tokens = &s.tokens;
    // The bootstrap tokens still work, each in its role.
    let r = s.post(
        "/v1/certificates",
        &tokens.ra,
        &json!({"csr": idem["csr"], "profile": "tls-server"}),
    );
    assert_eq!(r.status, 201, "RA token after restart: {r}");
    let new_serial = r.json["serial"].as_str().expect("serial").to_string();
    assert!(
        issued.iter().all(|c| c["serial"] != new_serial.as_str()),
        "a serial was reused after restart"
    );
    let r = s.get(
        &format!("/v1/certificates/{new_serial}"),
        Some(&tokens.auditor),
    );
    assert_eq!(r.status, 200, "auditor token after restart: {r}");
    let r = s.post("/v1/certificates", &tokens.operator, idem);
    assert_error(
        &r,
        403,
        "forbidden",
        "operator token after restart (known, wrong role)",
    );

    // The idempotency key outlives the restart.
    let r = s.post("/v1/certificates", &tokens.ra, idem);
    assert_eq!(r.status, 200, "replaying a request_id after restart: {r}");
    assert_eq!(
        r.json["serial"], issued[4]["serial"],
        "replay after restart: another serial"
    );
}

#[test]
fn sigkill_keeps_every_answered_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let s = Server::serve(dir);
    let answered = issue_until_killed(s);
    assert!(
        answered.len() >= 40,
        "only {} certificates issued before the crash",
        answered.len()
    );

    let s = Server::serve(dir);
    let mut missing = Vec::new();
    for (serial, issued) in &answered {
        let r = s.get(
            &format!("/v1/certificates/{serial}"),
            Some(&s.tokens.auditor),
        );
        if r.status != 200 {
            missing.push(format!("{serial}: {r}"));
        } else {
            assert_eq!(
                r.json["certificate"], issued["certificate"],
                "{serial}: certificate not byte-identical after the crash"
            );
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} certificates answered 201 before kill -9 are gone after restart:\n{}",
        missing.len(),
        answered.len(),
        missing.join("\n")
    );
    // And the restarted server issues.
    let r = s.post(
        "/v1/certificates",
        &s.tokens.ra,
        &json!({"csr": server_csr("after-crash.example.com").pem, "profile": "tls-server"}),
    );
    assert_eq!(r.status, 201, "issuing after the crash: {r}");
}

/// Two clients issue as fast as they can (every other request with a request_id); once
/// enough answers came back (40, or after 60 s), kill -9. Returns (serial, answer) of each
/// 201.
fn issue_until_killed(s: Server) -> Vec<(String, Value)> {
    let ra = s.tokens.ra.clone();
    let answered: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let (answered, stop, count) = (answered.clone(), stop.clone(), count.clone());
            let (base, ra, client) = (s.base.clone(), ra.clone(), s.client());
            let csr = server_csr(&format!("crash-{w}.example.com"));
            std::thread::spawn(move || {
                for i in 0..400 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let mut body = json!({"csr": csr.pem, "profile": "tls-server"});
                    if i % 2 == 0 {
                        body["request_id"] = format!("crash-{w}-{i}").into();
                    }
                    match try_post(&client, &base, "/v1/certificates", &ra, &body) {
                        Ok(r) if r.status == 201 => {
                            let serial = r.json["serial"].as_str().expect("serial").to_string();
                            answered.lock().expect("lock").push((serial, r.json));
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => panic!("worker {w}: unexpected answer before the crash: {r}"),
                        Err(_) => break, // the server died under us
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(Ordering::Relaxed) < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker panicked");
    }
    let answered = answered.lock().expect("lock").clone();
    answered
}

/// Security finding 15: a data directory that others may write to (or that belongs to
/// another user) is refused, before anything in it is read; while `bootstrap-tokens.json`
/// is still there, every start warns about it.
#[test]
fn a_data_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ca");
    Server::serve(&dir).terminate();
    for mode in [0o777, 0o770, 0o702] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = serve_refused(&dir);
        assert!(
            err.contains("lets others write to it") && err.contains("chmod 700"),
            "mode {mode:o}: {err}"
        );
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let s = Server::serve(&dir);
    let log = s.log();
    assert!(
        log.contains("bootstrap token file is still on disk"),
        "a start warns while the bootstrap file exists: {log}"
    );
    s.terminate();
}
