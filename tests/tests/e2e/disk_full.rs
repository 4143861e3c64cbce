//! A full disk: the store on a small tmpfs (in a private mount namespace, so the mount is the
//! test's alone) filled by issuance until the server refuses. Every acknowledged certificate
//! stays; meanwhile writes answer 503 `storage_unavailable` with Retry-After (never a 500),
//! `/readyz` is 503 with the reason and `ca_store_writable` is 0; once space is freed,
//! issuance resumes by itself and `audit verify` passes.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use e2e_tests::prelude::*;
use e2e_tests::private_tmpfs::PrivateTmpfs;
use e2e_tests::server::Server;
use e2e_tests::wait::poll;
use serde_json::{json, Value};

/// Requests per batch while filling the disk.
const BATCH: usize = 500;

/// With `[store] min_free_bytes` of 8 MiB on a 48 MB tmpfs (the measurement) holding
/// a 16 MiB filler, the server refuses before the disk is full; freeing the filler puts the
/// free space above the reserve whatever was written while refusing.
#[test]
fn below_the_free_space_reserve_writes_are_refused_and_resume_once_space_is_freed() {
    fill_and_recover("48m", 16, 8 << 20, "min_free_bytes");
}

/// Without a reserve, RocksDB's writes fail for lack of space: the same refusals. RocksDB
/// resumes by itself once the largest memtable's size (64 MiB) is free, so the tmpfs is 160
/// MB and the filler freed 80 MiB.
#[test]
fn a_full_disk_refuses_writes_with_503_and_resumes_once_space_is_freed() {
    fill_and_recover("160m", 80, 0, "no space left");
}

/// Runs a server whose store is on a fresh tmpfs of `size` holding a filler file of
/// `filler_mib` MiB, with `[store] min_free_bytes = reserve`; fills the store until writes are refused (the message naming
/// `why`), checks the refusals and the acknowledged certificates, deletes the filler and
/// checks that the server writes again by itself.
fn fill_and_recover(size: &str, filler_mib: u32, reserve: u64, why: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = new_dir(tmp.path());
    let fs = dir.join("fs");
    std::fs::create_dir(&fs).expect("mkdir fs");
    let Some(tmpfs) = PrivateTmpfs::mount(&fs, size) else {
        eprintln!(
            "SKIPPED disk_full: mounting a tmpfs in a private mount namespace needs root \
             (unshare -m)"
        );
        return;
    };
    let filler = fs.join("filler");
    tmpfs.run_ok(&[
        OsStr::new("cp"),
        OsStr::new("-a"),
        dir.join("db").as_os_str(),
        fs.join("db").as_os_str(),
    ]);
    tmpfs.run_ok(&[
        OsStr::new("dd"),
        OsStr::new("if=/dev/zero"),
        OsStr::new(&format!("of={}", filler.display())),
        OsStr::new("bs=1M"),
        OsStr::new(&format!("count={filler_mib}")),
    ]);
    configure(
        &dir,
        &[
            ("\ndb_dir = \"db\"", "\ndb_dir = \"fs/db\""),
            (
                "\nmin_free_bytes = 67108864",
                &format!("\nmin_free_bytes = {reserve}"),
            ),
        ],
        "",
    );
    let s = Server::serve_wrapped(&dir, "127.0.0.1:0", &[], &tmpfs.wrapper());
    let r = s.get("/readyz", None);
    assert_eq!(r.status, 200, "readyz before filling: {r}");
    assert_eq!(
        s.metric("ca_store_writable"),
        1.0,
        "writable before filling"
    );
    let before = s.certificate_count();

    let acknowledged = fill(&s);
    assert!(
        acknowledged.len() > 1000,
        "only {} certificates fit on the tmpfs",
        acknowledged.len()
    );

    // While the store cannot write: every write is 503 storage_unavailable with Retry-After.
    let csr = server_csr("after.full.example.com");
    let single = json!({"csr": csr.pem, "profile": "tls-server"});
    assert_unavailable(&s, "/v1/certificates", &single, why, "a single issuance");
    let revoke = json!({"reason": "superseded"});
    assert_unavailable(
        &s,
        &format!("/v1/certificates/{}/revoke", acknowledged[0]),
        &revoke,
        why,
        "a revocation",
    );
    let r = s.get("/readyz", None);
    assert_error(
        &r,
        503,
        "storage_unavailable",
        "readyz while the disk is full",
    );
    let message = r.json["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.to_ascii_lowercase().contains(why),
        "readyz names the reason ({why}): {r}"
    );
    assert_eq!(s.metric("ca_store_writable"), 0.0, "writable while full");

    // Nothing acknowledged was lost.
    assert_eq!(
        s.certificate_count(),
        before + acknowledged.len(),
        "the store holds every acknowledged certificate"
    );
    for serial in acknowledged.iter().step_by(997).chain(acknowledged.last()) {
        s.record(serial);
    }

    // Space freed: the server writes again by itself.
    tmpfs.run_ok(&[OsStr::new("rm"), filler.as_os_str()]);
    poll(
        "readyz ready once space is freed",
        Duration::from_secs(120),
        || {
            let r = s.get("/readyz", None);
            if r.status == 200 {
                Ok(())
            } else {
                Err(r.to_string())
            }
        },
    );
    assert_eq!(s.metric("ca_store_writable"), 1.0, "writable after freeing");
    let r = s.post("/v1/certificates", &s.tokens.ra, &single);
    assert_eq!(r.status, 201, "issuance after freeing space: {r}");
    s.record(r.json["serial"].as_str().expect("serial"));
    s.terminate();

    audit_verify_in(&tmpfs, &dir);
}

/// Issues batches of [`BATCH`] until one has refused items: answers the serials of every
/// certificate acknowledged. Each batch is 200 and each refused item `storage_unavailable`.
fn fill(s: &Server) -> Vec<String> {
    let csr = server_csr("fill.full.example.com");
    let requests: Vec<Value> = (0..BATCH)
        .map(|_| json!({"csr": csr.pem, "profile": "tls-server"}))
        .collect();
    let body = json!({"requests": requests});
    let mut acknowledged = Vec::new();
    for round in 0..400 {
        let r = s.post("/v1/certificates/batch", &s.tokens.ra, &body);
        assert_eq!(r.status, 200, "batch {round}: {r}");
        let results = r.json["results"].as_array().expect("results");
        assert_eq!(
            results.len(),
            BATCH,
            "batch {round}: one result per request"
        );
        let mut refused = 0;
        for result in results {
            match result["serial"].as_str() {
                Some(serial) => acknowledged.push(serial.to_string()),
                None => {
                    assert_eq!(
                        result["error"]["code"], "storage_unavailable",
                        "batch {round}: a refused item: {result}"
                    );
                    refused += 1;
                }
            }
        }
        if refused > 0 {
            return acknowledged;
        }
    }
    panic!(
        "{} certificates issued on the tmpfs and none refused",
        acknowledged.len()
    );
}

/// POST `body` to `path` answers 503 `storage_unavailable` with Retry-After and a message
/// naming `why`.
fn assert_unavailable(s: &Server, path: &str, body: &Value, why: &str, what: &str) {
    let r = s
        .client()
        .post(format!("{}{path}", s.base))
        .bearer_auth(&s.tokens.ra)
        .json(body)
        .send()
        .unwrap_or_else(|e| panic!("{what}: the connection failed: {e}"));
    let status = r.status().as_u16();
    let retry_after = r.headers().contains_key("retry-after");
    let v: Value = r.json().unwrap_or(Value::Null);
    assert_eq!(status, 503, "{what}: {v}");
    assert!(retry_after, "{what}: 503 without Retry-After");
    assert_eq!(v["error"]["code"], "storage_unavailable", "{what}: {v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.to_ascii_lowercase().contains(why),
        "{what}: the message names the reason ({why}): {v}"
    );
}

/// `ca-server audit verify` on the stopped server's data directory passes, run in the
/// namespace that sees its store.
fn audit_verify_in(tmpfs: &PrivateTmpfs, dir: &Path) {
    let bin = server_bin();
    tmpfs.run_ok(&[
        bin.as_os_str(),
        OsStr::new("audit"),
        OsStr::new("verify"),
        OsStr::new("--data-dir"),
        dir.as_os_str(),
    ]);
}
