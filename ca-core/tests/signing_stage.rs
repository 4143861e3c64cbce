//! The signing stage with signers that behave like an HSM: signatures that are waits, failures
//! that are transient or permanent. The engine runs in-process on a real RocksDB store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::engine::{Engine, EngineConfig, IssueRequest, Requester};
use ca_core::name::parse_rfc4514;
use ca_core::profile::Profile;
use ca_core::store::Store;
use ca_core::{CaError, ErrorClass, Serial};
use keys::{
    KeyAlgorithm, SignError, SignatureScheme, Signer, SignerLatency, SoftwareKey, SystemRandom,
};

/// What the scripted signer does on each call: fail (transiently or not) for the first
/// `failures` calls, then sign with the real key, after `delay`.
struct ScriptedSigner {
    key: Arc<dyn Signer>,
    latency: SignerLatency,
    delay: Duration,
    failures: usize,
    retryable: bool,
    calls: AtomicUsize,
    /// Names of the threads that signed, to see where the signature was made.
    threads: std::sync::Mutex<Vec<String>>,
}

impl ScriptedSigner {
    fn new(key: Arc<dyn Signer>, latency: SignerLatency) -> Self {
        ScriptedSigner {
            key,
            latency,
            delay: Duration::ZERO,
            failures: 0,
            retryable: false,
            calls: AtomicUsize::new(0),
            threads: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl Signer for ScriptedSigner {
    fn scheme(&self) -> SignatureScheme {
        self.key.scheme()
    }
    fn spki_der(&self) -> &[u8] {
        self.key.spki_der()
    }
    fn public_key_bits(&self) -> &[u8] {
        self.key.public_key_bits()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let thread = std::thread::current().name().unwrap_or("").to_string();
        self.threads.lock().unwrap().push(thread);
        std::thread::sleep(self.delay);
        if call < self.failures {
            let cause = std::io::Error::other("the device dropped the session");
            return Err(if self.retryable {
                SignError::retryable("the HSM did not answer", cause)
            } else {
                SignError::permanent("the HSM refused the key", cause)
            });
        }
        self.key.sign(message)
    }
    fn latency(&self) -> SignerLatency {
        self.latency
    }
}

/// A CA whose root is signed by a software key and whose certificates are signed by
/// `script(key)`.
fn authority(
    script: impl FnOnce(Arc<dyn Signer>) -> Arc<ScriptedSigner>,
) -> (Arc<CertificateAuthority>, Arc<ScriptedSigner>) {
    let der = keys::generate_pkcs8(KeyAlgorithm::EcdsaP256).unwrap();
    let key: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der).unwrap());
    let subject = parse_rfc4514("CN=Signing Stage Test CA").unwrap();
    let serial = Serial::random(&SystemRandom::new()).unwrap();
    let root = create_root(key.clone(), &subject, 365, serial).unwrap();
    let signer = script(key);
    let ca = CertificateAuthority::new(
        signer.clone(),
        vec![root],
        &Profile::builtin(),
        &Urls::default(),
    )
    .unwrap();
    (Arc::new(ca), signer)
}

fn request(host: &str) -> IssueRequest {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    IssueRequest {
        csr: params.serialize_request(&key).unwrap().der().to_vec(),
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Issues `count` certificates at once and answers each outcome.
fn issue_all(engine: &Arc<Engine>, count: usize) -> Vec<Result<ca_core::engine::Issued, CaError>> {
    runtime().block_on(async {
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let engine = engine.clone();
                tokio::spawn(
                    async move { engine.issue(request(&format!("h{i}.example.com"))).await },
                )
            })
            .collect();
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap());
        }
        out
    })
}

/// The certificate verifies with the CA's public key (its signature is the one the stage
/// put in place, over the TBSCertificate the worker built).
fn assert_signed_by(der: &[u8], ca: &CertificateAuthority) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let (_, root) = x509_parser::parse_x509_certificate(ca.certificate()).unwrap();
    cert.verify_signature(Some(root.public_key())).unwrap();
}

#[test]
fn a_device_signer_signs_on_the_signing_threads_and_every_certificate_verifies() {
    let (ca, signer) = authority(|key| {
        Arc::new(ScriptedSigner {
            delay: Duration::from_millis(2),
            ..ScriptedSigner::new(key, SignerLatency::Device)
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = EngineConfig {
        workers: 1,
        signers: 8,
        ..EngineConfig::default()
    };
    let engine = Arc::new(Engine::start(ca.clone(), Arc::new(store.clone()), &config).unwrap());
    let outcomes = issue_all(&engine, 64);
    for outcome in &outcomes {
        let issued = outcome.as_ref().unwrap();
        assert_signed_by(&issued.record.der, &ca);
        let stored = store.certificate(&issued.record.serial).unwrap().unwrap();
        assert_eq!(stored.der, issued.record.der);
    }
    let threads = signer.threads.lock().unwrap().clone();
    assert_eq!(threads.len(), 64);
    assert!(
        threads.iter().all(|t| t.starts_with("ca-signer-")),
        "signed on {threads:?}"
    );
    let distinct: std::collections::HashSet<_> = threads.iter().collect();
    assert!(
        distinct.len() > 1,
        "one signing thread did all: {distinct:?}"
    );
}

#[test]
fn a_key_in_memory_signs_on_the_worker() {
    let (ca, signer) =
        authority(|key| Arc::new(ScriptedSigner::new(key, SignerLatency::Computation)));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine =
        Arc::new(Engine::start(ca.clone(), Arc::new(store), &EngineConfig::default()).unwrap());
    for outcome in issue_all(&engine, 8) {
        assert_signed_by(&outcome.unwrap().record.der, &ca);
    }
    let threads = signer.threads.lock().unwrap().clone();
    assert!(
        threads.iter().all(|t| t.starts_with("ca-worker-")),
        "signed on {threads:?}"
    );
}

#[test]
fn a_transient_failure_is_tried_again_and_the_certificate_is_issued() {
    let (ca, signer) = authority(|key| {
        Arc::new(ScriptedSigner {
            failures: 2,
            retryable: true,
            ..ScriptedSigner::new(key, SignerLatency::Device)
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(
        Engine::start(
            ca.clone(),
            Arc::new(Store::open(dir.path()).unwrap()),
            &EngineConfig::default(),
        )
        .unwrap(),
    );
    let outcome = issue_all(&engine, 1).pop().unwrap();
    assert_signed_by(&outcome.unwrap().record.der, &ca);
    assert_eq!(signer.calls.load(Ordering::SeqCst), 3);
}

#[test]
fn a_signer_that_keeps_failing_transiently_is_unavailable_and_nothing_is_stored() {
    let (ca, signer) = authority(|key| {
        Arc::new(ScriptedSigner {
            failures: usize::MAX,
            retryable: true,
            ..ScriptedSigner::new(key, SignerLatency::Device)
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let engine =
        Arc::new(Engine::start(ca, Arc::new(store.clone()), &EngineConfig::default()).unwrap());
    let err = issue_all(&engine, 1).pop().unwrap().unwrap_err();
    assert!(matches!(err, CaError::Signing(_)), "{err}");
    assert_eq!(err.code(), "signer_unavailable");
    assert_eq!(err.class(), ErrorClass::Unavailable);
    assert!(
        err.chain().contains("the device dropped the session"),
        "{}",
        err.chain()
    );
    assert_eq!(
        signer.calls.load(Ordering::SeqCst),
        3,
        "three attempts in all"
    );
    assert_eq!(store.count_certificates().unwrap(), 0);
}

#[test]
fn a_permanent_failure_is_not_retried_and_is_a_signing_error() {
    for latency in [SignerLatency::Device, SignerLatency::Computation] {
        let (ca, signer) = authority(|key| {
            Arc::new(ScriptedSigner {
                failures: usize::MAX,
                ..ScriptedSigner::new(key, latency)
            })
        });
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let engine =
            Arc::new(Engine::start(ca, Arc::new(store.clone()), &EngineConfig::default()).unwrap());
        let err = issue_all(&engine, 1).pop().unwrap().unwrap_err();
        assert_eq!(err.code(), "signing_error", "{latency:?}");
        assert_eq!(err.class(), ErrorClass::Internal, "{latency:?}");
        assert_eq!(signer.calls.load(Ordering::SeqCst), 1, "{latency:?}");
        assert_eq!(store.count_certificates().unwrap(), 0);
    }
}

#[test]
fn certificates_signed_by_the_stage_survive_shutdown_and_reopen() {
    let (ca, _) = authority(|key| {
        Arc::new(ScriptedSigner {
            delay: Duration::from_millis(5),
            ..ScriptedSigner::new(key, SignerLatency::Device)
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        signers: 2,
        ..EngineConfig::default()
    };
    let engine =
        Arc::new(Engine::start(ca, Arc::new(Store::open(dir.path()).unwrap()), &config).unwrap());
    let acknowledged: Vec<Serial> = issue_all(&engine, 40)
        .into_iter()
        .map(|o| o.unwrap().record.serial)
        .collect();
    Arc::try_unwrap(engine).unwrap().shutdown();
    let store = Store::open(dir.path()).unwrap();
    for serial in acknowledged {
        assert!(
            store.certificate(&serial).unwrap().is_some(),
            "{serial} lost"
        );
    }
}
