//! Stage and whole-engine benchmarks of issuance: CSR verification, signing, and the engine
//! with its durable store. See bench/RESULTS.md for figures and the machine's limit.

use std::sync::Arc;
use std::time::Duration;

use bench::{authority, authority_signing_with, csr_der, CsrKey, EngineFixture, SleepingSigner};
use ca_core::csr::{parse, parse_and_verify, verify_all};
use ca_core::engine::EngineConfig;
use ca_core::Serial;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use keys::KeyAlgorithm;

fn csr_verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("csr_parse_verify");
    for (name, key) in [
        ("ec-p256", CsrKey::EcP256),
        ("ec-p384", CsrKey::EcP384),
        ("ed25519", CsrKey::Ed25519),
    ] {
        let csr = csr_der(key, "bench.example.com").unwrap();
        group.bench_function(name, |b| b.iter(|| parse_and_verify(&csr).unwrap()));
    }
    group.finish();
    // What a worker does with 64 queued Ed25519 requests: parse each, verify the signatures
    // together (the time per request is the figure to compare with the line above).
    const BATCH: usize = 64;
    let mut group = c.benchmark_group("csr_parse_verify_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    let csrs: Vec<Vec<u8>> = (0..BATCH)
        .map(|i| csr_der(CsrKey::Ed25519, &format!("h{i}.bench.example.com")).unwrap())
        .collect();
    group.bench_function("ed25519x64", |b| {
        b.iter(|| {
            let parsed = csrs.iter().map(|c| parse(c).unwrap()).collect();
            verify_all(parsed)
        })
    });
    group.finish();
}

fn sign(c: &mut Criterion) {
    let mut group = c.benchmark_group("build_sign");
    let rng = keys::SystemRandom::new();
    let csr = csr_der(CsrKey::EcP256, "bench.example.com").unwrap();
    for (name, alg) in [
        ("ca-ec-p256", KeyAlgorithm::EcdsaP256),
        ("ca-ed25519", KeyAlgorithm::Ed25519),
        ("ca-rsa-3072", KeyAlgorithm::Rsa3072),
    ] {
        let ca = authority(alg).unwrap();
        let profile = ca.profile("tls-server").unwrap().clone();
        let req = profile
            .validate(
                "tls-server",
                parse_and_verify(&csr).unwrap(),
                &Default::default(),
                None,
                time::OffsetDateTime::now_utc().unix_timestamp(),
            )
            .unwrap();
        group.bench_function(name, |b| {
            b.iter(|| {
                let serial = Serial::random(&rng).unwrap();
                ca.sign("tls-server", serial, &req, time::OffsetDateTime::now_utc())
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn engine(c: &mut Criterion) {
    // Enough certificates per iteration that filling and draining the pipeline (the last
    // group commit) is a small part of it: the figure is the steady rate.
    const N: usize = 4096;
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    let fixture = EngineFixture::new(authority(KeyAlgorithm::EcdsaP256).unwrap(), N).unwrap();
    group.bench_function("issue_p256_durable", |b| {
        b.iter_batched(
            || fixture.csrs.clone(),
            |csrs| fixture.issue_all(csrs).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// The signing stage with a CA key that takes 3 ms per signature and no CPU (an HSM's
/// latency): throughput must be `signers / 3 ms` until the CPU, not the key, is the limit.
/// Each iteration issues 32 certificates per signing thread, about 100 ms of signing.
fn signing_stage(c: &mut Criterion) {
    const LATENCY: Duration = Duration::from_millis(3);
    let mut group = c.benchmark_group("slow_signer");
    group.sample_size(10);
    for signers in [1usize, 4, 16, 32, 64] {
        let count = 32 * signers;
        let signer = Arc::new(std::sync::OnceLock::<Arc<SleepingSigner>>::new());
        let ca = authority_signing_with(KeyAlgorithm::EcdsaP256, |key| {
            let sleeping = Arc::new(SleepingSigner::new(key, LATENCY));
            signer.get_or_init(|| sleeping.clone());
            sleeping
        })
        .unwrap();
        let config = EngineConfig {
            signers,
            ..EngineConfig::default()
        };
        let fixture = EngineFixture::with_config(ca, &config, count).unwrap();
        group.throughput(Throughput::Elements(count as u64));
        let expected = signers as f64 / LATENCY.as_secs_f64();
        println!("slow_signer/signers/{signers}: expected signers / 3 ms = {expected:.0} elem/s");
        group.bench_function(format!("signers/{signers}"), |b| {
            b.iter_batched(
                || fixture.csrs.clone(),
                |csrs| fixture.issue_all(csrs).unwrap(),
                BatchSize::PerIteration,
            )
        });
        if let Some(signer) = signer.get() {
            let latency = signer.mean_latency();
            println!(
                "slow_signer/signers/{signers}: measured latency {:.3} ms, signers / latency = {:.0} elem/s",
                latency.as_secs_f64() * 1e3,
                signers as f64 / latency.as_secs_f64().max(1e-9)
            );
        }
    }
    group.finish();
}

criterion_group!(benches, csr_verify, sign, engine, signing_stage);
criterion_main!(benches);
