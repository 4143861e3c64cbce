//! "CA keys in an HSM": the token closes every session while the engine issues under load
//! (`C_CloseAllSessions` on the signer's own module handle, what a module does when its
//! device goes away). No acknowledged certificate may be lost, a request may only fail with
//! a retryable signer error (and then leave nothing in the store), and the signer recovers
//! by itself: the first signature after the sessions went away already succeeds.
//!
//! The CA key is an EC P-256 key generated in a SoftHSM2 token made in a temporary
//! directory; the engine runs in-process on a RocksDB store in another. The test never
//! skips: without SoftHSM2 it fails and says to run scripts/setup.sh.
//!
//! The sessions are closed between the module's calls, never during one: SoftHSM2 2.6.1's
//! `C_CloseAllSessions` frees its session objects while another thread may be inside
//! `C_SignInit` or `C_Sign` with one (valgrind: an invalid read in `C_SignInit` of "a block
//! of size 168 free'd" by `C_CloseAllSessions`, allocated by `C_OpenSession`), which corrupts
//! the heap and crashes the process (SIGSEGV, or glibc's "malloc_consolidate(): invalid chunk
//! size") within a few closes. So [`Gated`] lets the close wait for the signatures in the
//! module (each well under a millisecond) and holds new ones back while it runs. The load is
//! unchanged: every signing thread is busy and requests wait in the engine when the sessions
//! die, and each signing thread then meets a dead session at its next `C_SignInit`, as it
//! would meet `CKR_DEVICE_REMOVED` from a real device.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::engine::{Engine, EngineConfig, IssueRequest, Requester};
use ca_core::name::parse_rfc4514;
use ca_core::profile::Profile;
use ca_core::store::Store;
use ca_core::{CaError, Serial};
use keys::pkcs11::{Pkcs11Config, Pkcs11Pin, Pkcs11Signer, PoolStats};
use keys::{KeyAlgorithm, SessionPool, SignError, SignatureScheme, Signer, SignerLatency};

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "session-loss";
const PIN: &str = "1234";
const SO_PIN: &str = "5678";

/// Sessions in the signer's pool, and signing threads in the engine.
const SESSIONS: usize = 8;
/// Certificates asked for under load, by this many tasks at once.
const TOTAL: usize = 4000;
const TASKS: usize = 40;
/// `C_CloseAllSessions` calls during the load, spread over it by progress (SoftHSM2 signs
/// so fast that the load lasts a fraction of a second on 2 cores).
const CLOSES: usize = 20;

/// Makes a SoftHSM2 token in `dir` and points the module at it (before it is loaded: it
/// reads `SOFTHSM2_CONF` at `C_Initialize`).
fn softhsm_token(dir: &Path) {
    assert!(
        Path::new(MODULE).exists(),
        "SoftHSM2 is not installed ({MODULE} is missing): run scripts/setup.sh (packages \
         softhsm2 and opensc); this test does not skip"
    );
    let tokens = dir.join("tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let out = Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &conf)
        .args(["--init-token", "--free", "--label", TOKEN])
        .args(["--pin", PIN, "--so-pin", SO_PIN])
        .output()
        .unwrap_or_else(|e| {
            panic!("softhsm2-util cannot run ({e}): run scripts/setup.sh (package softhsm2)")
        });
    assert!(
        out.status.success(),
        "softhsm2-util --init-token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The only test of this binary, before any other thread exists or the module is loaded.
    std::env::set_var("SOFTHSM2_CONF", &conf);
}

/// The PKCS#11 signer as the engine sees it: counts the failures it returns (each one a
/// signature the engine had to ask for again, or gave up on), and keeps
/// [`Gated::close_all_sessions`] out of the module while a signature is in it (see the module
/// documentation).
struct Gated {
    inner: Arc<Pkcs11Signer>,
    /// Read: a signature (with any session reopening and retry inside it). Write: a close.
    gate: RwLock<()>,
    errors: AtomicUsize,
}

impl Gated {
    /// `C_CloseAllSessions` on the signer's module handle, between signatures.
    fn close_all_sessions(&self) {
        let _alone = self.gate.write().unwrap();
        self.inner.close_all_sessions().unwrap();
    }

    fn errors(&self) -> usize {
        self.errors.load(Ordering::SeqCst)
    }
}

impl Signer for Gated {
    fn scheme(&self) -> SignatureScheme {
        self.inner.scheme()
    }
    fn spki_der(&self) -> &[u8] {
        self.inner.spki_der()
    }
    fn public_key_bits(&self) -> &[u8] {
        self.inner.public_key_bits()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let signed = {
            let _in_module = self.gate.read().unwrap();
            self.inner.sign(message)
        };
        if signed.is_err() {
            self.errors.fetch_add(1, Ordering::SeqCst);
        }
        signed
    }
    fn latency(&self) -> SignerLatency {
        self.inner.latency()
    }
    fn check(&self) -> Result<(), SignError> {
        let _in_module = self.gate.read().unwrap();
        self.inner.check()
    }
    fn sessions(&self) -> Option<SessionPool> {
        self.inner.sessions()
    }
}

fn csr(host: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(&key).unwrap().der().to_vec()
}

fn request(csr: Vec<u8>) -> IssueRequest {
    IssueRequest {
        csr,
        profile: "tls-server".into(),
        identity: Default::default(),
        validity_days: Some(10),
        request_id: None,
        requester: Requester {
            name: "test-ra".into(),
            token_hash: [7; 32],
            protocol: Default::default(),
        },
    }
}

/// What a request came to: acknowledged (serial and DER), or a retryable signer failure.
/// Anything else fails the test.
fn outcome(result: Result<ca_core::engine::Issued, CaError>) -> Result<(Serial, Vec<u8>), String> {
    match result {
        Ok(issued) => Ok((issued.record.serial, issued.record.der)),
        Err(CaError::Signing(e)) if e.is_retryable() => {
            let err = CaError::Signing(e);
            assert_eq!(err.code(), "signer_unavailable", "{}", err.chain());
            Err(err.chain())
        }
        Err(other) => panic!(
            "a request failed with an error other than a retryable signer error: {} ({})",
            other.chain(),
            other.code()
        ),
    }
}

#[test]
fn sessions_closed_under_load_lose_no_acknowledged_certificate_and_the_signer_recovers() {
    let started = Instant::now();
    let token_dir = tempfile::tempdir().unwrap();
    softhsm_token(token_dir.path());
    let config = Pkcs11Config {
        module: MODULE.into(),
        token_label: TOKEN.into(),
        key_label: "ca".into(),
        pin: Pkcs11Pin::new(PIN.into()),
        sessions: SESSIONS,
    };
    let hsm = Arc::new(Pkcs11Signer::generate(&config, KeyAlgorithm::EcdsaP256).unwrap());
    assert_eq!(hsm.latency(), SignerLatency::Device);
    let signer = Arc::new(Gated {
        inner: hsm.clone(),
        gate: RwLock::new(()),
        errors: AtomicUsize::new(0),
    });
    let subject = parse_rfc4514("CN=HSM Session Loss Test CA").unwrap();
    let serial = Serial::random(&keys::SystemRandom::new()).unwrap();
    let root = create_root(signer.clone(), &subject, 365, serial).unwrap();
    let ca = Arc::new(
        CertificateAuthority::new(
            signer.clone(),
            vec![root.clone()],
            &Profile::builtin(),
            &Urls::default(),
        )
        .unwrap(),
    );

    let store_dir = tempfile::tempdir().unwrap();
    let engine_config = EngineConfig {
        workers: 2,
        signers: SESSIONS,
        ..EngineConfig::default()
    };
    let engine = Arc::new(
        Engine::start(
            ca.clone(),
            Arc::new(Store::open(store_dir.path()).unwrap()),
            &engine_config,
        )
        .unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The requests, made before the clock of the load starts.
    let per_task = TOTAL / TASKS;
    let batches: Vec<Vec<Vec<u8>>> = (0..TASKS)
        .map(|t| {
            (0..per_task)
                .map(|i| csr(&format!("t{t}-h{i}.example.com")))
                .collect()
        })
        .collect();

    // ---- The load, with the sessions closed under it.
    let done = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let closes_at = Arc::new(Mutex::new(Vec::new()));
    let closer = {
        let (signer, done, finished, closes_at) = (
            signer.clone(),
            done.clone(),
            finished.clone(),
            closes_at.clone(),
        );
        std::thread::spawn(move || {
            // Spread over the load: after 1/22, 2/22, ... 20/22 of the requests are answered.
            for k in 1..=CLOSES {
                let threshold = k * TOTAL / (CLOSES + 2);
                while done.load(Ordering::SeqCst) < threshold {
                    if finished.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                signer.close_all_sessions();
                closes_at.lock().unwrap().push(done.load(Ordering::SeqCst));
            }
        })
    };
    let load_started = Instant::now();
    let load = async {
        let mut tasks = tokio::task::JoinSet::new();
        for batch in batches {
            let (engine, done) = (engine.clone(), done.clone());
            tasks.spawn(async move {
                let mut out = Vec::with_capacity(batch.len());
                for csr in batch {
                    out.push(outcome(engine.issue(request(csr)).await));
                    done.fetch_add(1, Ordering::SeqCst);
                }
                out
            });
        }
        let mut all = Vec::with_capacity(TOTAL);
        while let Some(batch) = tasks.join_next().await {
            // A task's panic (an unexpected error) is the test's, with its own message.
            all.extend(batch.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic())));
        }
        all
    };
    let outcomes: Vec<Result<(Serial, Vec<u8>), String>> = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(120), load).await })
        .expect("the load did not finish in 120 s: issuance hangs after the sessions were closed");
    let load_time = load_started.elapsed();
    finished.store(true, Ordering::SeqCst);
    closer.join().unwrap();
    let closes_at = closes_at.lock().unwrap().clone();
    let signer_errors_under_load = signer.errors();

    let mut acknowledged: HashMap<Serial, Vec<u8>> = HashMap::new();
    let mut failures = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok((serial, der)) => {
                assert!(
                    acknowledged.insert(serial, der).is_none(),
                    "serial {serial:?} acknowledged twice"
                );
            }
            Err(chain) => failures.push(chain),
        }
    }
    eprintln!(
        "{TOTAL} requests by {TASKS} tasks in {load_time:.2?}: {} acknowledged, {} failed \
         (retryable signer errors); C_CloseAllSessions {} times, after {closes_at:?} answers; \
         the signer returned {signer_errors_under_load} errors to the engine",
        acknowledged.len(),
        failures.len(),
        closes_at.len(),
    );
    if let Some(first) = failures.first() {
        eprintln!("first failure: {first}");
    }
    assert_eq!(
        closes_at.len(),
        CLOSES,
        "the sessions were closed only {} times during the load ({load_time:.2?})",
        closes_at.len()
    );
    assert!(
        closes_at.iter().all(|&answered| answered < TOTAL),
        "a close came after the load: {closes_at:?}"
    );
    assert_eq!(acknowledged.len() + failures.len(), TOTAL);
    assert!(
        acknowledged.len() * 100 >= TOTAL * 90,
        "only {} of {TOTAL} certificates were issued while the sessions were closed {CLOSES} \
         times (failures: {}, first: {:?}): the signer does not recover from lost sessions",
        acknowledged.len(),
        failures.len(),
        failures.first()
    );

    // Each lost session was reopened and the signature made again inside the signer, so the
    // engine never saw a failure (its own retries are for a device that stays away).
    assert_eq!(
        signer_errors_under_load, 0,
        "the PKCS#11 signer failed {signer_errors_under_load} signatures after its sessions \
         were closed; it should reopen a lost session and sign again by itself"
    );

    // ---- Recovery: right after a close, the first signature already succeeds (the signer
    // reopens its session and signs again itself; the engine need not ask twice).
    for round in 0..3 {
        signer.close_all_sessions();
        let errors_before = signer.errors();
        let host = format!("after-{round}.example.com");
        let issued = runtime
            .block_on(engine.issue(request(csr(&host))))
            .unwrap_or_else(|e| {
                panic!(
                    "issuance right after C_CloseAllSessions failed (round {round}): {}",
                    e.chain()
                )
            });
        let errors = signer.errors() - errors_before;
        assert_eq!(
            errors, 0,
            "round {round}: the PKCS#11 signer failed {errors} time(s) right after \
             C_CloseAllSessions; it should reopen its session and sign again by itself"
        );
        assert!(acknowledged
            .insert(issued.record.serial, issued.record.der)
            .is_none());
    }
    // And a few more with no close before them, with no error at all.
    let errors_before = signer.errors();
    for i in 0..5 {
        let issued = runtime
            .block_on(engine.issue(request(csr(&format!("later-{i}.example.com")))))
            .unwrap_or_else(|e| panic!("issuance after the load failed: {}", e.chain()));
        assert!(acknowledged
            .insert(issued.record.serial, issued.record.der)
            .is_none());
    }
    assert_eq!(signer.errors(), errors_before);
    assert_eq!(
        hsm.pool_stats(),
        PoolStats {
            size: SESSIONS,
            in_use: 0
        }
    );

    // ---- Durability: every acknowledged certificate, byte for byte, and nothing else.
    drop(runtime);
    drop(Arc::try_unwrap(engine).expect("no task holds the engine any more"));
    let store = Store::open(store_dir.path()).unwrap();
    for (serial, der) in &acknowledged {
        let stored = store
            .certificate(serial)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged certificate {serial:?} is not in the store"));
        assert_eq!(
            &stored.der, der,
            "certificate {serial:?} differs from what was acknowledged"
        );
    }
    let stored = store.count_certificates().unwrap();
    assert_eq!(
        stored,
        acknowledged.len() as u64,
        "the store holds {stored} certificates, {} were acknowledged",
        acknowledged.len()
    );

    // ---- The token's signatures verify with the CA's public key.
    let (_, root) = x509_parser::parse_x509_certificate(&root).unwrap();
    for der in acknowledged.values().step_by(10) {
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        cert.verify_signature(Some(root.public_key()))
            .unwrap_or_else(|e| panic!("a stored certificate does not verify: {e}"));
    }
    eprintln!(
        "{} certificates stored and checked; the whole test took {:.2?}",
        acknowledged.len(),
        started.elapsed()
    );
}
