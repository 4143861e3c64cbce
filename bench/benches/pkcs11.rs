//! The CA key in a PKCS#11 token (SoftHSM2): what one signature costs through the signer's
//! session pool next to ring's, in time and in CPU, and the signing stage in front of a token
//! that takes 3 ms per signature with a pool of 16 sessions, whose target is 90% of
//! 16 / 3 ms = 5,333 certificates/s with every session kept busy.
//!
//! Needs SoftHSM2 (`scripts/setup.sh` installs it) and the test module `libpkcs11_fault.so`
//! in the target directory (`cargo build --release -p pkcs11-fault`), which forwards to
//! SoftHSM2 and, with `PKCS11_FAULT_SIGN_DELAY_US`, makes every `C_Sign` last 3 ms (SoftHSM2's
//! own signing included, the rest a wait without CPU), as a network HSM does. The token store
//! is a temporary directory of this run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bench::{authority_of, cpu, EngineFixture};
use ca_core::engine::EngineConfig;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use e2e_tests::softhsm::{pkcs11_fault_module, softhsm_module, SoftHsm};
use keys::pkcs11::{Pkcs11Config, Pkcs11Pin, Pkcs11Signer};
use keys::{KeyAlgorithm, Signer, SoftwareKey};

const TOKEN: &str = "bench";
const PIN: &str = "1234";
/// The modelled network HSM's time per signature.
const DEVICE_LATENCY: Duration = Duration::from_millis(3);
/// Sessions in the pool in front of it.
const SESSIONS: usize = 16;
/// A to-be-signed certificate is about 400 bytes.
const TBS: [u8; 400] = [0x5a; 400];

/// A SoftHSM2 token store with the token [`TOKEN`], made once for this process, and the
/// environment that points SoftHSM2 and the fault module at it (set before any module loads).
fn token_store() {
    static STORE: std::sync::OnceLock<SoftHsm> = std::sync::OnceLock::new();
    STORE.get_or_init(|| {
        let store = SoftHsm::new();
        store.init_token(TOKEN, PIN, "5678");
        std::env::set_var("SOFTHSM2_CONF", store.conf_path());
        std::env::set_var("PKCS11_FAULT_MODULE", softhsm_module());
        std::env::set_var(
            "PKCS11_FAULT_SIGN_DELAY_US",
            DEVICE_LATENCY.as_micros().to_string(),
        );
        store
    });
}

fn token_key(module: PathBuf, label: &str, sessions: usize) -> Pkcs11Signer {
    token_store();
    let config = Pkcs11Config {
        module,
        token_label: TOKEN.into(),
        key_label: label.into(),
        pin: Pkcs11Pin::new(PIN.into()),
        sessions,
    };
    Pkcs11Signer::open(&config)
        .or_else(|_| Pkcs11Signer::generate(&config, KeyAlgorithm::EcdsaP256))
        .expect("a P-256 key in the token")
}

/// CPU microseconds of this process per signature, signing `n` times on this thread.
fn cpu_per_signature(key: &dyn Signer, n: u32) -> f64 {
    let before = cpu::this_process();
    for _ in 0..n {
        key.sign(&TBS).expect("a signature");
    }
    cpu::this_process().saturating_sub(before).as_secs_f64() * 1e6 / f64::from(n)
}

/// One P-256 signature of a certificate-sized message: ring in process, and SoftHSM2 through
/// the PKCS#11 signer (digest here, `CKM_ECDSA` there, r‖s re-encoded to DER).
fn sign(c: &mut Criterion) {
    let ring =
        SoftwareKey::from_pkcs8(&keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap()).unwrap();
    let token = token_key(softhsm_module(), "sign", 1);
    let mut group = c.benchmark_group("pkcs11_sign");
    group.bench_function("ring/ec-p256", |b| b.iter(|| ring.sign(&TBS).unwrap()));
    group.bench_function("softhsm2/ec-p256", |b| b.iter(|| token.sign(&TBS).unwrap()));
    group.finish();
    let (ring_cpu, token_cpu) = (
        cpu_per_signature(&ring, 20_000),
        cpu_per_signature(&token, 5_000),
    );
    println!(
        "pkcs11_sign/cpu: ring {ring_cpu:.1} µs, SoftHSM2 through PKCS#11 {token_cpu:.1} µs \
         of CPU per P-256 signature"
    );
}

/// The engine's signing stage in front of a token that takes 3 ms per signature, with
/// [`SESSIONS`] sessions and the server's default signing threads; 64 certificates per
/// session per iteration. A sampler reads the pool every 250 µs: the mean number of sessions in use
/// shows whether the pipeline keeps the device busy.
fn slow_token(c: &mut Criterion) {
    let key = Arc::new(token_key(pkcs11_fault_module(), "slow", SESSIONS));
    // The CPU of the PKCS#11 path when the device, not the host, takes the time: our side
    // of each signature (the wait costs none), SoftHSM2's arithmetic behind it included.
    let path_cpu = cpu_per_signature(key.as_ref(), 200);
    let ca = authority_of(key.clone(), |k| k).unwrap();
    // The server's default `[engine] signers` (32): more signing threads than sessions, so
    // that a session given back is taken at once by a thread already waiting for it.
    let config = EngineConfig::default();
    let count = 64 * SESSIONS;
    let fixture = EngineFixture::with_config(ca, &config, count).unwrap();
    let expected = SESSIONS as f64 / DEVICE_LATENCY.as_secs_f64();
    println!("slow_pkcs11/sessions/{SESSIONS}: expected sessions / 3 ms = {expected:.0} elem/s");
    println!(
        "slow_pkcs11/cpu: {path_cpu:.1} µs of CPU per signature through PKCS#11 to a 3 ms device"
    );
    let running = AtomicBool::new(true);
    let (samples, busy) = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let (mut samples, mut busy) = (0u64, 0u64);
            while running.load(Ordering::Relaxed) {
                let stats = key.pool_stats();
                samples += 1;
                busy += stats.in_use as u64;
                std::thread::sleep(Duration::from_micros(250));
            }
            (samples, busy)
        });
        let mut group = c.benchmark_group("slow_pkcs11");
        group.sample_size(10);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(format!("sessions/{SESSIONS}"), |b| {
            b.iter_batched(
                || fixture.csrs.clone(),
                |csrs| fixture.issue_all(csrs).unwrap(),
                BatchSize::PerIteration,
            )
        });
        group.finish();
        running.store(false, Ordering::Relaxed);
        sampler.join().unwrap()
    });
    // The sampler also ran between iterations (CSR cloning, criterion's own work), where
    // the pool is idle: the figure is a floor of the busy share while certificates flow.
    println!(
        "slow_pkcs11/sessions/{SESSIONS}: mean sessions in use {:.1} of {SESSIONS}",
        busy as f64 / samples.max(1) as f64
    );
}

criterion_group!(benches, sign, slow_token);
criterion_main!(benches);
