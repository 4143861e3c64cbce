//! Fixtures shared by the benchmarks and the load generator: a CA and CSRs, made through the
//! public APIs of `keys` and `ca-core` only.

#![deny(missing_docs)]

pub mod acme;
pub mod cpu;
pub mod limit;
pub mod report;
pub mod store_1m;

/// The benchmarks and the load generator run on jemalloc, as ca-server does (its `main.rs`
/// says why), so that the in-process figures are those of the server's allocator, RocksDB's
/// allocations included. Declared here, it serves every binary that links this crate.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::sync::Arc;
use std::time::Duration;

use ca_core::authority::{create_root, CertificateAuthority, Urls};
use ca_core::engine::EngineConfig;
use ca_core::name::parse_rfc4514;
use ca_core::profile::Profile;
use ca_core::{CaError, Serial};
use keys::{KeyAlgorithm, SignError, SignatureScheme, Signer, SignerLatency, SoftwareKey};

/// What a benchmark fixture's set-up may fail with.
pub type FixtureError = Box<dyn std::error::Error + Send + Sync>;

/// Creates an in-memory root CA with a key of the given algorithm and the built-in profiles.
pub fn authority(algorithm: KeyAlgorithm) -> Result<Arc<CertificateAuthority>, CaError> {
    authority_signing_with(algorithm, |key| key)
}

/// A CA key that takes `delay` per signature while using no CPU for it, as a key in an HSM
/// does: the model for the signing stage's benchmark. It measures what its sleeps really
/// take (the kernel wakes a sleeper a little late), which is the latency the stage faces.
pub struct SleepingSigner {
    inner: Arc<dyn Signer>,
    delay: Duration,
    slept_nanos: std::sync::atomic::AtomicU64,
    signatures: std::sync::atomic::AtomicU64,
}

impl SleepingSigner {
    /// `inner`, slowed down to `delay` per signature.
    pub fn new(inner: Arc<dyn Signer>, delay: Duration) -> Self {
        SleepingSigner {
            inner,
            delay,
            slept_nanos: Default::default(),
            signatures: Default::default(),
        }
    }

    /// The mean time a signature's sleep took so far.
    pub fn mean_latency(&self) -> Duration {
        use std::sync::atomic::Ordering::Relaxed;
        let count = self.signatures.load(Relaxed).max(1);
        Duration::from_nanos(self.slept_nanos.load(Relaxed) / count)
    }
}

impl Signer for SleepingSigner {
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
        use std::sync::atomic::Ordering::Relaxed;
        let started = std::time::Instant::now();
        std::thread::sleep(self.delay);
        let slept = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.slept_nanos.fetch_add(slept, Relaxed);
        self.signatures.fetch_add(1, Relaxed);
        self.inner.sign(message)
    }

    fn latency(&self) -> SignerLatency {
        SignerLatency::Device
    }
}

/// [`authority`] whose certificates are signed by `wrap` applied to the CA key (the root
/// itself is signed by the key alone).
pub fn authority_signing_with(
    algorithm: KeyAlgorithm,
    wrap: impl FnOnce(Arc<dyn Signer>) -> Arc<dyn Signer>,
) -> Result<Arc<CertificateAuthority>, CaError> {
    let der = keys::generate_pkcs8(algorithm)?;
    let key: Arc<dyn Signer> = Arc::new(SoftwareKey::from_pkcs8(&der)?);
    authority_of(key, wrap)
}

/// An in-memory root CA whose key is `key` (in memory or in a token), with the built-in
/// profiles; its certificates are signed by `wrap` applied to the key (the root itself is
/// signed by the key alone).
pub fn authority_of(
    key: Arc<dyn Signer>,
    wrap: impl FnOnce(Arc<dyn Signer>) -> Arc<dyn Signer>,
) -> Result<Arc<CertificateAuthority>, CaError> {
    let subject = parse_rfc4514("CN=Bench CA")?;
    let serial = Serial::random(&keys::SystemRandom::new())?;
    let root = create_root(key.clone(), &subject, 365, serial)?;
    let signer = wrap(key);
    let urls = Urls {
        crl: vec!["http://ca.bench/crl".into()],
        ocsp: vec!["http://ca.bench/ocsp".into()],
        ca_issuers: vec!["http://ca.bench/ca.der".into()],
    };
    Ok(Arc::new(CertificateAuthority::new(
        signer,
        vec![root],
        &Profile::builtin(),
        &urls,
    )?))
}

/// The subject key types CSRs can be made with here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CsrKey {
    /// ECDSA P-256.
    EcP256,
    /// ECDSA P-384.
    EcP384,
    /// Ed25519.
    Ed25519,
}

/// Makes a DER CSR for one DNS name, also its CN, with a fresh key, as an RA's subscriber
/// would: what both `tls-server` (a CN repeating a SAN) and `tls-client` (a CN required)
/// accept.
pub fn csr_der(key: CsrKey, host: &str) -> Result<Vec<u8>, rcgen::Error> {
    let alg = match key {
        CsrKey::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        CsrKey::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        CsrKey::Ed25519 => &rcgen::PKCS_ED25519,
    };
    let pair = rcgen::KeyPair::generate_for(alg)?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    Ok(params.serialize_request(&pair)?.der().to_vec())
}

/// An engine on a fresh store in a temporary directory, with the built-in profiles, and the
/// CSRs to feed it: what the in-process benchmarks drive.
pub struct EngineFixture {
    /// The engine.
    pub engine: std::sync::Arc<ca_core::engine::Engine>,
    /// `count` P-256 CSRs, one DNS SAN each.
    pub csrs: Vec<Vec<u8>>,
    /// The (single-threaded) runtime the requests are awaited on.
    pub runtime: tokio::runtime::Runtime,
    _dir: Option<tempfile::TempDir>,
}

impl EngineFixture {
    /// Starts an engine for `ca` and makes `count` CSRs.
    pub fn new(ca: Arc<CertificateAuthority>, count: usize) -> Result<Self, FixtureError> {
        Self::with_config(ca, &EngineConfig::default(), count)
    }

    /// [`EngineFixture::new`] with the engine sized by `config`.
    pub fn with_config(
        ca: Arc<CertificateAuthority>,
        config: &EngineConfig,
        count: usize,
    ) -> Result<Self, FixtureError> {
        let dir = tempfile::tempdir()?;
        let mut fixture = Self::at(ca, dir.path(), config, count)?;
        fixture._dir = Some(dir);
        Ok(fixture)
    }

    /// Starts an engine for `ca` on the store at `path` (kept afterwards) and makes `count`
    /// CSRs.
    pub fn at(
        ca: Arc<CertificateAuthority>,
        path: &std::path::Path,
        config: &EngineConfig,
        count: usize,
    ) -> Result<Self, FixtureError> {
        let store = ca_core::store::Store::open(path)?;
        let engine = ca_core::engine::Engine::start(ca, Arc::new(store), config)?;
        let csrs = (0..count)
            .map(|i| csr_der(CsrKey::EcP256, &format!("h{i}.bench.example.com")))
            .collect::<Result<_, _>>()?;
        // One thread awaits the answers: the engine's own threads do the work, and a
        // multi-threaded runtime would only add threads competing for the same cores.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(EngineFixture {
            engine: Arc::new(engine),
            csrs,
            runtime,
            _dir: None,
        })
    }

    /// Issues one certificate per CSR, all at once, and waits until every one is stored.
    pub fn issue_all(&self, csrs: Vec<Vec<u8>>) -> Result<(), FixtureError> {
        self.runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for csr in csrs {
                let engine = self.engine.clone();
                tasks.spawn(async move {
                    engine
                        .issue(ca_core::engine::IssueRequest {
                            csr,
                            profile: "tls-server".into(),
                            identity: Default::default(),
                            validity_days: None,
                            request_id: None,
                            requester: ca_core::engine::Requester {
                                name: "bench".into(),
                                token_hash: [1; 32],
                                protocol: Default::default(),
                            },
                        })
                        .await
                });
            }
            while let Some(joined) = tasks.join_next().await {
                joined??;
            }
            Ok(())
        })
    }
}
