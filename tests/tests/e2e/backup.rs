//! Backup and restore drill: `ca-server backup` while the server issues and revokes (it asks
//! the server, which holds the store), the server goes on, then `ca-server restore` into a
//! new directory and a start there. Every certificate acknowledged before the backup started
//! is back byte for byte with its revocation, `audit verify` passes, a checkpoint kept from
//! after the backup reports the rollback, and the next CRL is numbered above every CRL
//! served before.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use e2e_tests::prelude::*;
use e2e_tests::server::Server;
use e2e_tests::wait::poll;
use serde_json::{json, Value};

/// Requests per batch of the load.
const BATCH: usize = 20;

/// What the load had acknowledged: issued certificates (serial, PEM) and revoked serials.
#[derive(Default)]
struct Acknowledged {
    issued: Vec<(String, String)>,
    revoked: Vec<String>,
}

#[test]
fn a_backup_under_load_restores_every_acknowledged_certificate_and_no_crl_number_is_reused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = new_dir(tmp.path());
    configure(
        &dir,
        &[(
            "\ncheckpoint_interval_secs = 300",
            "\ncheckpoint_interval_secs = 1",
        )],
        "",
    );
    let s = Server::serve(&dir);
    let token_file = tmp.path().join("operator.token");
    write_private(&token_file, &s.tokens.operator);
    let backup = tmp.path().join("backups/drill");

    let stop = AtomicBool::new(false);
    let acked = Mutex::new(Acknowledged::default());
    let (before, served_max) = std::thread::scope(|scope| {
        let load = scope.spawn(|| load(&s, &stop, &acked));
        // Some load first, then the backup while it goes on.
        std::thread::sleep(Duration::from_secs(2));
        let before_backup = snapshot(&acked);
        let out = ca_server(&[
            "backup",
            "--data-dir",
            path(&dir),
            "--out",
            path(&backup),
            "--url",
            &s.base,
            "--token-file",
            path(&token_file),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "backup failed: {stderr}");
        assert!(
            stderr.contains("asking it for the backup") && stderr.contains("verified"),
            "the backup asked the running server and printed its progress: {stderr}"
        );
        // Issuance goes on after the backup, and CRLs are published.
        std::thread::sleep(Duration::from_secs(1));
        // A burst of CRLs numbers them ahead of the clock (one above the last), which a
        // floor from the clock alone would reuse after the restore.
        for _ in 0..40 {
            s.generate_crl();
        }
        let served_max = s
            .check_crl(&s.crl(), "crl-before")
            .number
            .max(parse_crl(&s.delta_crl(), "delta-before").number);
        assert!(
            served_max > u128::from(now_unix() as u64) + 40,
            "the burst ran ahead of the clock: {served_max}"
        );
        stop.store(true, Ordering::Relaxed);
        load.join().expect("the load thread");
        let after = snapshot(&acked);
        assert!(
            after.issued.len() > before_backup.issued.len(),
            "issuance went on during and after the backup"
        );
        (before_backup, served_max)
    });
    assert!(
        before.issued.len() >= BATCH && !before.revoked.is_empty(),
        "load before the backup: {} issued, {} revoked",
        before.issued.len(),
        before.revoked.len()
    );

    let manifest: Value = serde_json::from_slice(
        &std::fs::read(backup.join("manifest.json")).expect("manifest.json"),
    )
    .expect("the manifest is JSON");
    let backup_head = manifest["audit_head"]["seq"]
        .as_u64()
        .expect("audit_head.seq");
    assert!(
        manifest["certificates"].as_u64().expect("certificates") >= before.issued.len() as u64,
        "the manifest counts at least the certificates acknowledged before: {manifest}"
    );

    // A checkpoint an auditor kept from after the backup.
    let kept = tmp.path().join("kept-checkpoint.json");
    poll(
        "a checkpoint after the backup",
        Duration::from_secs(30),
        || {
            let r = s.get("/v1/audit/checkpoint", Some(&s.tokens.auditor));
            match r.json["seq"].as_u64() {
                Some(seq) if seq > backup_head + 1 => {
                    std::fs::write(&kept, r.json.to_string()).expect("writing the checkpoint");
                    Ok(())
                }
                _ => Err(r.to_string()),
            }
        },
    );
    s.terminate();

    let restored = tmp.path().join("restored");
    let out = ca_server_ok(&[
        "restore",
        "--data-dir",
        path(&restored),
        "--from",
        path(&backup),
    ]);
    assert!(out.contains("restored"), "{out}");
    let verify = ca_server_ok(&["audit", "verify", "--data-dir", path(&restored)]);
    assert!(verify.contains("audit log OK"), "{verify}");
    let rollback = ca_server(&[
        "audit",
        "verify",
        "--data-dir",
        path(&restored),
        "--checkpoint",
        path(&kept),
    ]);
    let stderr = String::from_utf8_lossy(&rollback.stderr);
    assert!(
        !rollback.status.success() && stderr.contains("rolled back"),
        "audit verify with a checkpoint kept after the backup reports the rollback: {stderr}"
    );

    let r = Server::serve(&restored);
    for (serial, pem) in &before.issued {
        let record = r.record(serial);
        assert_eq!(
            record["certificate"].as_str(),
            Some(pem.as_str()),
            "certificate {serial} is back byte for byte"
        );
    }
    for serial in &before.revoked {
        assert_eq!(
            r.record(serial)["status"],
            "revoked",
            "{serial} stays revoked"
        );
    }
    let generated = r.generate_crl();
    let number = u128::from(generated["crl_number"].as_u64().expect("crl_number"));
    assert!(
        number > served_max,
        "the first CRL after the restore is numbered {number}, above {served_max} served before"
    );
    let crl = r.check_crl(&r.crl(), "crl-after");
    assert!(crl.number > served_max, "the served CRL: {}", crl.number);
    for serial in &before.revoked {
        assert!(crl.entry(serial).is_some(), "{serial} is on the CRL");
    }
    let events = r.get(
        &format!("/v1/audit?after={backup_head}&limit=1"),
        Some(&r.tokens.auditor),
    );
    let entry = &events.json["items"][0];
    assert_eq!(
        entry["action"], "crl_number_raised",
        "the restore is the entry after the backup's head: {events}"
    );
    assert!(
        entry["details"]["why"]
            .as_str()
            .is_some_and(|w| w.contains("restore of the backup")),
        "{entry}"
    );
    r.issue(&server_csr("after.restore.example.com"), "tls-server", None);
    r.terminate();
}

/// With the server stopped, `backup` copies the store itself; a backup whose file changed, or
/// that holds a file its manifest does not list, is refused before anything is restored; an
/// RA token may not ask for a backup; `crl floor` raises the CRL numbers to come.
#[test]
fn an_offline_backup_restores_and_a_damaged_one_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = new_dir(tmp.path());
    let s = Server::serve(&dir);
    let issued = s.issue(
        &server_csr("offline.backup.example.com"),
        "tls-server",
        None,
    );
    let r = s.post("/v1/backup", &s.tokens.ra, &json!({}));
    assert_error(&r, 403, "forbidden", "an RA asking for a backup");
    let r = s.post("/v1/backup", &s.tokens.operator, &json!({"name": "../x"}));
    assert_error(&r, 400, "invalid_request", "a backup name with a path");
    s.terminate();

    let backup = tmp.path().join("offline");
    let out = ca_server(&["backup", "--data-dir", path(&dir), "--out", path(&backup)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = ca_server(&["backup", "--data-dir", path(&dir), "--out", path(&backup)]);
    assert!(
        !again.status.success()
            && String::from_utf8_lossy(&again.stderr).contains("never overwrites"),
        "a backup never overwrites"
    );

    let damaged = tmp.path().join("damaged");
    copy_dir(&backup, &damaged);
    let config = damaged.join("files/config.toml");
    // One byte changed, the length kept: only the SHA-256 tells.
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replacen("max_batch = 1000", "max_batch = 1001", 1),
    )
    .expect("config");
    let target = tmp.path().join("from-damaged");
    let out = ca_server(&[
        "restore",
        "--data-dir",
        path(&target),
        "--from",
        path(&damaged),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("files/config.toml"),
        "a changed file is named: {stderr}"
    );
    assert!(!target.exists(), "nothing restored from a damaged backup");

    let extra = tmp.path().join("extra");
    copy_dir(&backup, &extra);
    std::fs::write(extra.join("files/planted.pem"), b"x").expect("plant");
    let out = ca_server(&[
        "restore",
        "--data-dir",
        path(&target),
        "--from",
        path(&extra),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("planted.pem is not in its manifest"),
        "an unlisted file is named: {stderr}"
    );

    ca_server_ok(&[
        "restore",
        "--data-dir",
        path(&target),
        "--from",
        path(&backup),
    ]);
    // The operator's floor, as after a restore by other means (PostgreSQL).
    let floor = "5000000000";
    let out = ca_server_ok(&[
        "crl",
        "floor",
        "--data-dir",
        path(&target),
        "--above",
        floor,
    ]);
    assert!(out.contains(floor), "{out}");
    let r = Server::serve(&target);
    let serial = issued["serial"].as_str().expect("serial");
    assert_eq!(r.record(serial)["certificate"], issued["certificate"]);
    let number = r.generate_crl()["crl_number"].as_u64().expect("crl_number");
    assert!(number > 5_000_000_000, "numbered above the floor: {number}");
    r.terminate();
}

/// Issues batches of [`BATCH`] and revokes one certificate of each until `stop`, adding
/// what was acknowledged to `acked`.
fn load(s: &Server, stop: &AtomicBool, acked: &Mutex<Acknowledged>) {
    let csr = server_csr("load.backup.example.com");
    let body = json!({
        "requests": (0..BATCH)
            .map(|_| json!({"csr": csr.pem, "profile": "tls-server"}))
            .collect::<Vec<_>>()
    });
    while !stop.load(Ordering::Relaxed) {
        let r = s.post("/v1/certificates/batch", &s.tokens.ra, &body);
        assert_eq!(r.status, 200, "batch: {r}");
        let mut issued = Vec::new();
        for item in r.json["results"].as_array().expect("results") {
            let serial = item["serial"].as_str().expect("every item issued");
            let pem = item["certificate"].as_str().expect("certificate");
            issued.push((serial.to_string(), pem.to_string()));
        }
        let first = issued[0].0.clone();
        acked.lock().expect("lock").issued.extend(issued);
        s.revoke_ok(&first, "superseded");
        acked.lock().expect("lock").revoked.push(first);
    }
}

/// A copy of what the load acknowledged so far.
fn snapshot(acked: &Mutex<Acknowledged>) -> Acknowledged {
    let now = acked.lock().expect("lock");
    Acknowledged {
        issued: now.issued.clone(),
        revoked: now.revoked.clone(),
    }
}

/// Writes a secret file, mode 0600.
fn write_private(file: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .expect("token file");
    f.write_all(text.as_bytes()).expect("token file");
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(status.success(), "cp -a");
}

/// A path as a command-line argument.
fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}
