//! Auditor query latency over a store of 1,000,000 certificates (issue 5): one page of
//! `GET /v1/certificates` at the store level, for each kind of filter. The store is built
//! once through the engine (real certificates, durable writes) and kept under the target
//! directory for later runs.

use std::path::PathBuf;
use std::time::Instant;

use bench::{authority, csr_der, CsrKey, EngineFixture};
use ca_core::revocation::{RevocationReason, Status};
use ca_core::store::query::{CertificateQuery, Cursor};
use ca_core::store::Store;
use criterion::{criterion_group, criterion_main, Criterion};
use keys::KeyAlgorithm;

const CERTS: usize = 1_000_000;
/// Distinct SANs among the CSRs: each common name is on CERTS / NAMES certificates.
const NAMES: usize = 1000;
const REVOKED: usize = 1000;
const CHUNK: usize = 2000;

fn store_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join("bench-data").join("query-1m")
}

/// Opens the 1M-certificate store, building it first when it is not there yet.
fn store() -> Store {
    let dir = store_dir();
    let done = dir.join("COMPLETE");
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        build(&dir.join("db"));
        std::fs::write(&done, CERTS.to_string()).unwrap();
    }
    Store::open(&dir.join("db")).unwrap()
}

fn build(db: &std::path::Path) {
    let fixture = EngineFixture::at(
        authority(KeyAlgorithm::EcdsaP256).unwrap(),
        db,
        &Default::default(),
        0,
    )
    .unwrap();
    let mut csrs: Vec<Vec<u8>> = (0..NAMES)
        .map(|i| csr_der(CsrKey::EcP256, &format!("h{i}.bench.example.com")).unwrap())
        .collect();
    csrs.push(csr_der(CsrKey::EcP256, "rare.bench.example.com").unwrap());
    let started = Instant::now();
    let mut issued = 0;
    while issued < CERTS {
        let n = CHUNK.min(CERTS - issued);
        let chunk: Vec<Vec<u8>> = (issued..issued + n)
            // The rare name once, in the middle of the store.
            .map(|i| csrs[if i == CERTS / 2 { NAMES } else { i % NAMES }].clone())
            .collect();
        fixture.issue_all(chunk).unwrap();
        issued += n;
        eprint!(
            "\rbuilding the query store: {issued} of {CERTS} certificates ({:.0}/s)",
            issued as f64 / started.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    // Revoke REVOKED certificates spread over the store.
    let store = fixture.engine.store().clone();
    let step = CERTS / REVOKED;
    let mut cursor: Option<Cursor> = None;
    let mut revoked = 0;
    while revoked < REVOKED {
        let page = store
            .query(&CertificateQuery::default(), cursor.as_ref(), step)
            .unwrap();
        let serial = page.rows[0].record.serial;
        fixture
            .runtime
            .block_on(
                fixture
                    .engine
                    .revoke(serial, RevocationReason::KeyCompromise, None, "bench"),
            )
            .unwrap();
        revoked += 1;
        cursor = page.next;
    }
}

fn query(c: &mut Criterion) {
    let store = store();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let base = CertificateQuery {
        now,
        ..CertificateQuery::default()
    };
    let middle_issued_at = {
        let deep = store.query(&base, None, 1).unwrap();
        let first = deep.rows[0].record.issued_at;
        let last = store
            .certificate(&{
                let mut q = base.clone();
                q.san = Some("rare.bench.example.com".into());
                store.query(&q, None, 1).unwrap().rows[0].record.serial
            })
            .unwrap()
            .unwrap()
            .issued_at;
        (first + last) / 2 + 1
    };
    let cases: Vec<(&str, CertificateQuery)> = vec![
        ("first_page", base.clone()),
        (
            "san_one_of_1m",
            CertificateQuery {
                san: Some("rare.bench.example.com".into()),
                ..base.clone()
            },
        ),
        (
            "san_1000_matches",
            CertificateQuery {
                san: Some("h7.bench.example.com".into()),
                ..base.clone()
            },
        ),
        (
            "status_revoked",
            CertificateQuery {
                status: Some(Status::Revoked),
                ..base.clone()
            },
        ),
        (
            "status_valid",
            CertificateQuery {
                status: Some(Status::Valid),
                ..base.clone()
            },
        ),
        (
            "issued_after_midpoint",
            CertificateQuery {
                issued_after: Some(middle_issued_at),
                ..base.clone()
            },
        ),
        (
            "expires_before_all",
            CertificateQuery {
                expires_before: Some(now + 400 * 86_400),
                ..base.clone()
            },
        ),
        (
            "requester_no_match_budget",
            CertificateQuery {
                requester: Some("nobody".into()),
                ..base.clone()
            },
        ),
    ];
    let mut group = c.benchmark_group("query_1m");
    // The worst case examines 10,000 certificates per page: keep the sample count small.
    group.sample_size(20);
    for (name, q) in &cases {
        let page = store.query(q, None, 100).unwrap();
        eprintln!(
            "{name}: {} rows, more: {}",
            page.rows.len(),
            page.next.is_some()
        );
        group.bench_function(*name, |b| b.iter(|| store.query(q, None, 100).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, query);
criterion_main!(benches);
