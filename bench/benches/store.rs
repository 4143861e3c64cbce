//! Store commit cost per group size: the store writer alone, fed certificates that are already
//! signed. Per certificate it checks the serial, writes the record, the `by_issued`,
//! `by_expiry` and two `names` index keys and the chained audit entry, and syncs the WAL once
//! per group (group commit). The figure is certificates per second through one writer thread.

use std::sync::Arc;

use ca_core::metrics::Metrics;
use ca_core::store::query::{names_prefix, SAN_TAG, SUBJECT_TAG};
use ca_core::store::writer::{NewCertificate, StoreWriter, WriteOp};
use ca_core::store::{CertRecord, Store};
use ca_core::Serial;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use keys::KeyAlgorithm;

/// Certificates per iteration, whatever the group size: enough that the first and last
/// groups are a small part of it.
const PER_ITERATION: usize = 4096;

fn new_certificate(der: &[u8], i: usize, rng: &keys::SystemRandom) -> NewCertificate {
    let serial = Serial::random(rng).expect("rng");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let host = format!("h{i}.bench.example");
    NewCertificate {
        record: CertRecord {
            seq: 0,
            serial,
            der: der.to_vec(),
            profile: "tls-server".into(),
            requester: "bench".into(),
            issued_at: now,
            not_before: now - 60,
            not_after: now + 90 * 86_400,
            renewed_from: None,
            audit_seq: None,
        },
        idempotency: None,
        names: vec![
            names_prefix(SUBJECT_TAG, &format!("CN={host}")),
            names_prefix(SAN_TAG, &host),
        ],
        enrollment: None,
        protocol: Default::default(),
    }
}

fn store_commit(c: &mut Criterion) {
    // A real certificate's DER as the payload (the bench CA's own, of the same size class as
    // an issued one): its size and compressibility are what the store sees.
    let ca = bench::authority(KeyAlgorithm::EcdsaP256).expect("authority");
    let der = ca.chain()[0].clone();
    let rng = keys::SystemRandom::new();
    let mut group = c.benchmark_group("store_commit");
    group.throughput(Throughput::Elements(PER_ITERATION as u64));
    group.sample_size(10);
    for max_group in [1usize, 16, 128, 1024] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("store");
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let writer = StoreWriter::start(store, max_group, metrics).expect("writer");
        let tx = writer.sender();
        // Batch sizes above 1 send everything at once and let the writer group it; size 1
        // commits one certificate per synced write.
        group.bench_function(BenchmarkId::from_parameter(max_group), |b| {
            b.iter_batched(
                || {
                    (0..PER_ITERATION)
                        .map(|i| new_certificate(&der, i, &rng))
                        .collect::<Vec<_>>()
                },
                |certs| {
                    let replies: Vec<_> = certs
                        .into_iter()
                        .map(|cert| {
                            let (reply, answer) = tokio::sync::oneshot::channel();
                            tx.send(WriteOp::Certificate(cert, reply)).expect("writer");
                            answer
                        })
                        .collect();
                    for answer in replies {
                        answer.blocking_recv().expect("reply").expect("committed");
                    }
                },
                BatchSize::PerIteration,
            )
        });
        drop(tx);
        writer.join();
    }
    group.finish();
}

criterion_group!(benches, store_commit);
criterion_main!(benches);
