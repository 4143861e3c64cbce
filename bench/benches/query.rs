//! Auditor query latency over a store of 1,000,000 certificates (issue 5): one page of
//! `GET /v1/certificates` at the store level, for each kind of filter, on the store of
//! [`bench::store_1m`].

use ca_core::revocation::Status;
use ca_core::store::query::CertificateQuery;
use criterion::{criterion_group, criterion_main, Criterion};

fn query(c: &mut Criterion) {
    let store = bench::store_1m::store().unwrap();
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
