//! Stage and whole-engine benchmarks of issuance: CSR verification, signing, and the engine
//! with its durable store. See bench/RESULTS.md for figures and the machine's limit.

use std::sync::Arc;

use bench::{authority, csr_der, CsrKey};
use ca_core::csr::parse_and_verify;
use ca_core::engine::{Engine, EngineConfig, IssueRequest, Requester};
use ca_core::store::Store;
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
        let csr = csr_der(key, "bench.example").unwrap();
        group.bench_function(name, |b| b.iter(|| parse_and_verify(&csr).unwrap()));
    }
    group.finish();
}

fn sign(c: &mut Criterion) {
    let mut group = c.benchmark_group("build_sign");
    let rng = ring::rand::SystemRandom::new();
    let csr = csr_der(CsrKey::EcP256, "bench.example").unwrap();
    for (name, alg) in [
        ("ca-ec-p256", KeyAlgorithm::EcdsaP256),
        ("ca-ed25519", KeyAlgorithm::Ed25519),
        ("ca-rsa-3072", KeyAlgorithm::Rsa3072),
    ] {
        let ca = authority(alg).unwrap();
        let profile = ca.profile("tls-server").unwrap().clone();
        let req = profile
            .validate("tls-server", parse_and_verify(&csr).unwrap(), None)
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
    const N: usize = 512;
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(N as u64));
    group.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine = Arc::new(
        Engine::start(
            authority(KeyAlgorithm::EcdsaP256).unwrap(),
            store,
            &EngineConfig::default(),
        )
        .unwrap(),
    );
    let csrs: Vec<Vec<u8>> = (0..N)
        .map(|i| csr_der(CsrKey::EcP256, &format!("h{i}.bench.example")).unwrap())
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let requester = Requester {
        name: "bench".into(),
        token_hash: [1; 32],
    };
    group.bench_function("issue_p256_durable", |b| {
        b.iter_batched(
            || csrs.clone(),
            |csrs| {
                runtime.block_on(async {
                    let mut tasks = tokio::task::JoinSet::new();
                    for csr in csrs {
                        let engine = engine.clone();
                        let requester = requester.clone();
                        tasks.spawn(async move {
                            engine
                                .issue(IssueRequest {
                                    csr,
                                    profile: "tls-server".into(),
                                    validity_days: None,
                                    request_id: None,
                                    requester,
                                })
                                .await
                        });
                    }
                    while let Some(r) = tasks.join_next().await {
                        r.unwrap().unwrap();
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, csr_verify, sign, engine);
criterion_main!(benches);
