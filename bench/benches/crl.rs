//! CRL generation at scale: a complete CRL of 1,000,000 entries (time and size), and
//! issuance throughput while such a CRL is being built. See bench/RESULTS.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bench::{authority, EngineFixture};
use ca_core::crl::{CrlBuilder, CrlEntry, EntryReason};
use ca_core::revocation::RevocationReason;
use ca_core::Serial;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use keys::{KeyAlgorithm, Signer, SoftwareKey};

const ENTRIES: usize = 1_000_000;

fn entries() -> Vec<CrlEntry> {
    let rng = keys::SystemRandom::new();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    (0..ENTRIES)
        .map(|i| CrlEntry {
            serial: Serial::random(&rng).unwrap(),
            revoked_at: now - (i as i64 % 86_400),
            reason: (i % 3 != 0).then_some(EntryReason::Revoked(RevocationReason::KeyCompromise)),
            invalidity_date: (i % 10 == 0).then_some(now - 86_400),
        })
        .collect()
}

fn builder() -> (CrlBuilder, Arc<ca_core::authority::CertificateAuthority>) {
    let der = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
    let signer: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der).unwrap());
    let subject = ca_core::name::parse_rfc4514("CN=Bench CRL CA").unwrap();
    let serial = Serial::random(&keys::SystemRandom::new()).unwrap();
    let root = ca_core::authority::create_root(signer.clone(), &subject, 365, serial).unwrap();
    let builder = CrlBuilder::new(signer, &root, Some("http://ca.bench/crl".into())).unwrap();
    (builder, authority(KeyAlgorithm::EcdsaP256).unwrap())
}

fn crl_build(c: &mut Criterion) {
    let (builder, _) = builder();
    let list = entries();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let size = builder
        .full(1, now, now + 86_400, list.iter().copied())
        .unwrap()
        .len();
    eprintln!(
        "complete CRL with {ENTRIES} entries: {size} bytes ({:.1} bytes/entry)",
        size as f64 / ENTRIES as f64
    );
    let mut group = c.benchmark_group("crl");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ENTRIES as u64));
    group.bench_function("build_full_1m", |b| {
        b.iter(|| {
            builder
                .full(1, now, now + 86_400, list.iter().copied())
                .unwrap()
        })
    });
    group.finish();
}

fn issuance_during_crl(c: &mut Criterion) {
    const N: usize = 512;
    let (crl_builder, ca) = builder();
    let crl_builder = Arc::new(crl_builder);
    let list = Arc::new(entries());
    let fixture = EngineFixture::new(ca, N).unwrap();
    let issue_all = |csrs: Vec<Vec<u8>>| fixture.issue_all(csrs).unwrap();
    let csrs = fixture.csrs.clone();
    let mut group = c.benchmark_group("engine_vs_crl");
    group.sample_size(10);
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("issue_p256_idle", |b| {
        b.iter_batched(|| csrs.clone(), issue_all, BatchSize::PerIteration)
    });
    // A CRL of a million entries is rebuilt in a loop on another thread meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let builder_thread = {
        let (stop, crl_builder, list) = (stop.clone(), crl_builder.clone(), list.clone());
        std::thread::spawn(move || {
            let mut built = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                crl_builder
                    .full(1, now, now + 86_400, list.iter().copied())
                    .unwrap();
                built += 1;
            }
            built
        })
    };
    group.bench_function("issue_p256_during_1m_crl_build", |b| {
        b.iter_batched(|| csrs.clone(), issue_all, BatchSize::PerIteration)
    });
    stop.store(true, Ordering::Relaxed);
    let built = builder_thread.join().unwrap();
    eprintln!("1M-entry CRLs built during the measurement: {built}");
    group.finish();
}

criterion_group!(benches, crl_build, issuance_during_crl);
criterion_main!(benches);
