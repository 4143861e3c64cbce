//! The issuance engine.
//!
//! ```text
//! submit ──▶ bounded queue (crossbeam) ──▶ workers (threads, one per core):
//!                                            decode CSR once → verify POP → profile check
//!                                            → serial → TBSCertificate
//!                                                   │
//!                                  signing (crate::signing): on the worker for a key in
//!                                  memory; `[engine] signers` threads for an HSM
//!                                                   │
//! reply ◀── store writer (one thread): WriteBatch of everything that arrived, WAL synced
//!           once, then every waiter is answered
//! ```
//!
//! Nothing is answered before it is durable. A full queue refuses at once
//! ([`CaError::Overloaded`]), so latency stays bounded and memory flat.

use std::sync::{Arc, Weak};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::audit::{AuditEvent, AuditHead, Checkpoint, Protocol};
use crate::authority::{CertificateAuthority, PreparedCertificate};
use crate::blocklist::BlockedKeys;
use crate::clock::ClockGuard;
use crate::csr::VerifiedCsr;
use crate::enrollment::{CodeHash, CodeKey, EnrollmentCode};
use crate::error::{CaError, ErrorClass};
use crate::mass_revocation::{self, ActionId, MassRevocationRequest, Mode, Progress};
use crate::metrics::{CodeChecks, Metrics};
pub use crate::profile::Identity;
use crate::revocation::{Revocation, RevocationReason};
use crate::serial::{RandomSerials, Serial, SerialSource};
use crate::signing::{SignAt, SigningStage, Unsigned};
use crate::store::query::{names_prefix, SAN_TAG, SUBJECT_TAG};
use crate::store::writer::{
    Committed, CrlFloor, CrlPosition, CrlRequest, NewCertificate, RevokeRequest, StoreWriter,
    WriteOp,
};
use crate::store::{
    AcmeKind, AcmeObject, AcmeWrite, CertRecord, EnrollmentRecord, IdempotencyKey,
    IdempotencyRecord, RemoteChange, Storage, TokenRecord,
};
use crate::{csr, inspect, name};

/// How many times an issuance is retried after a serial collision (each at odds of 2^-126).
const SERIAL_ATTEMPTS: usize = 3;

/// Most queued requests a worker takes at once (their CSRs are verified together).
const MAX_WORKER_BATCH: usize = 64;

/// Most revocations of a mass revocation waiting for the store writer at once: two default
/// commit groups, so that the writer always has the next group ready.
const MASS_REVOCATIONS_IN_FLIGHT: usize = 2048;

/// Engine sizing.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Worker threads for CSR verification, profile checks and building certificates (and
    /// signing them with a key in process memory); 0 means one per core.
    pub workers: usize,
    /// Signing threads for a CA key whose signatures are waits on a device (an HSM): each
    /// keeps one signature in flight, so throughput is at most `signers` divided by the
    /// device's latency. A key in process memory signs on the workers and ignores this.
    pub signers: usize,
    /// Requests that may wait for a worker before new ones are refused with 429.
    pub queue_capacity: usize,
    /// Most certificates committed in one WriteBatch.
    pub max_commit_batch: usize,
    /// Nothing is signed while the system clock is behind the newest time this CA recorded
    /// (in the audit log, a certificate's issued_at, a CRL's thisUpdate) by more than this
    /// many seconds ([`crate::clock`]); 0 disables the check.
    pub clock_tolerance_secs: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 0,
            signers: 32,
            queue_capacity: 4096,
            max_commit_batch: 1024,
            clock_tolerance_secs: 300,
        }
    }
}

/// What must follow a change of a certificate's status (a revocation, a released hold, a
/// rolled-back redemption) once it is committed, whoever asked for it: the OCSP cache forgets
/// the serial's answer, the CRL publisher rebuilds. Registered with
/// [`Engine::observe_status`]; the engine tells every observer, so no front end (HTTP, ACME,
/// CMP) has to remember to.
pub trait StatusObserver: Send + Sync {
    /// `serial`'s status changed and the change is durable.
    fn status_changed(&self, serial: &Serial);
    /// Any serial's status may have changed (another node's changes may have been missed).
    fn statuses_changed(&self);
}

impl StatusObserver for crate::ocsp::OcspCache {
    fn status_changed(&self, serial: &Serial) {
        self.invalidate(serial);
    }
    fn statuses_changed(&self) {
        self.clear();
    }
}

/// The engine's status observers, shared with the store's feed of other nodes' changes.
type Observers = Arc<std::sync::RwLock<Vec<Weak<dyn StatusObserver>>>>;

/// Tells every live observer of `observers` that `serial`'s status changed (`None`: any).
fn tell(observers: &Observers, serial: Option<&Serial>) {
    let observers = match observers.read() {
        Ok(observers) => observers.clone(),
        Err(_) => return,
    };
    for observer in observers.iter().filter_map(Weak::upgrade) {
        match serial {
            Some(serial) => observer.status_changed(serial),
            None => observer.statuses_changed(),
        }
    }
}

/// The requester recorded for certificates the CA issues to itself (its delegated OCSP
/// responder's, its own TLS server certificate): no token may have this name.
pub const CA_REQUESTER: &str = "(ca)";

/// Who asked: the requesting token's name and hash.
#[derive(Clone, Debug)]
pub struct Requester {
    /// The token's name (stored as `requester`).
    pub name: String,
    /// SHA-256 of the token (scopes `request_id`s).
    pub token_hash: [u8; 32],
    /// The protocol the request came by (the `protocol` detail of its audit entries).
    pub protocol: Protocol,
}

/// One issuance request, as the RA sent it.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// The CSR, PEM or DER.
    pub csr: Vec<u8>,
    /// The profile name.
    pub profile: String,
    /// Identity data the RA verified and asserts (subject attributes, otherName SANs): over
    /// the CSR's names, as the profile's subject rules say.
    pub identity: Identity,
    /// Requested validity in days; the profile's default when absent.
    pub validity_days: Option<u32>,
    /// The RA's idempotency key.
    pub request_id: Option<String>,
    /// Who asked.
    pub requester: Requester,
}

/// A request for a certificate on a key whose possession the front end established, with
/// names the requester asserts: CMP's `ir` and `cr` from a registered RA (RFC 9483 section
/// 5), with a signature proof of possession or the RA's `raVerified` (RFC 4211 section 4).
#[derive(Clone, Debug)]
pub struct KeyRequest {
    /// The key to certify, as [`csr::key_from_spki_der`] returns it: its strength checked
    /// already.
    pub key: csr::SubjectKey,
    /// The profile name.
    pub profile: String,
    /// The subject and SANs the requester asserts, checked by the profile as a CSR request's
    /// identity data over an empty CSR.
    pub identity: Identity,
    /// Requested validity in days; the profile's default when absent.
    pub validity_days: Option<u32>,
    /// The requester's idempotency key (CMP: derived from the transactionID).
    pub request_id: Option<String>,
    /// Who asked.
    pub requester: Requester,
}

/// A renewal request (API contract: Renewal): same subject, SANs and profile as the old
/// certificate; the old key unless a CSR re-keys.
#[derive(Clone, Debug)]
pub struct RenewRequest {
    /// The certificate to renew.
    pub serial: Serial,
    /// The key the new certificate certifies.
    pub key: NewKey,
    /// Requested validity in days; the profile's default when absent.
    pub validity_days: Option<u32>,
    /// The RA's idempotency key.
    pub request_id: Option<String>,
    /// Who asked.
    pub requester: Requester,
}

/// The key a renewal certifies (API contract: Renewal).
#[derive(Clone, Debug)]
pub enum NewKey {
    /// The old certificate's public key.
    Keep,
    /// A CSR's key (re-key): its signature proves possession, and its subject must be the
    /// certificate's or empty.
    Csr(Vec<u8>),
    /// [`NewKey::Csr`] whose CSR the front end verified already (EST's `simplereenroll`
    /// reads the CSR's key to tell a re-key from a renewal): `verified` is what
    /// [`csr::parse_and_verify`] returned for `csr`, which is not verified again.
    VerifiedCsr {
        /// The CSR, PEM or DER (the request digest covers it as for [`NewKey::Csr`]).
        csr: Vec<u8>,
        /// Its verification.
        verified: Box<csr::VerifiedCsr>,
    },
    /// A key whose possession the front end verified (CMP's kur, RFC 4211 section 4.1), as
    /// [`csr::key_from_spki_der`] returns it: its strength checked already.
    Proven(csr::SubjectKey),
}

impl NewKey {
    /// [`NewKey::Csr`] for a CSR, else [`NewKey::Keep`].
    pub fn from_csr(csr: Option<Vec<u8>>) -> Self {
        csr.map_or(NewKey::Keep, NewKey::Csr)
    }
}

/// An enrollment to create (API contract: Enrollment).
#[derive(Clone, Debug)]
pub struct EnrollmentRequest {
    /// The profile to issue under.
    pub profile: String,
    /// The subject, RFC 4514.
    pub subject: String,
    /// The SANs, as the API writes them.
    pub sans: Vec<String>,
    /// Certificate validity in days; the profile's default when absent.
    pub validity_days: Option<u32>,
    /// How long the code may be redeemed, in seconds.
    pub lifetime_secs: i64,
    /// Wrong codes accepted before the enrollment locks.
    pub max_attempts: u32,
    /// The RA that asked.
    pub requester: Requester,
    /// Derive the code from the enrollment's id with this key instead of drawing it (the CMP
    /// front end's, whose MAC protection needs the code again: see
    /// [`crate::enrollment::CodeKey`]).
    pub code_key: Option<Arc<CodeKey>>,
}

/// A created enrollment: its id and the code, which exists only in this answer.
#[derive(Debug)]
pub struct CreatedEnrollment {
    /// The enrollment's id.
    pub id: [u8; 16],
    /// The one-time code to hand to the subscriber.
    pub code: EnrollmentCode,
    /// What was stored.
    pub record: EnrollmentRecord,
}

/// The key of a redemption: proven by a CSR, or generated by the CA for the subscriber (its
/// public half only; the private key never reaches the engine).
#[derive(Clone, Debug)]
pub enum RedeemKey {
    /// A CSR: its signature proves possession; its own subject and SANs are ignored.
    Csr(Vec<u8>),
    /// The public key of a key pair the CA generated, or whose possession the front end
    /// verified otherwise (a CMP certTemplate's key with its signature POP, RFC 4211 section
    /// 4.1).
    Generated(csr::SubjectKey),
}

/// An enrollment whose code was verified and which was pending when it was read: what
/// [`Engine::redeem_verified`] issues for. Only [`Engine::verify_redemption`] makes one, so
/// that nothing is spent on a redemption (a key generated, a PKCS#12 file prepared) before its
/// code is known to be right.
#[derive(Debug)]
pub struct VerifiedRedemption {
    id: [u8; 16],
    record: EnrollmentRecord,
}

impl VerifiedRedemption {
    /// The enrollment's id.
    pub fn id(&self) -> &[u8; 16] {
        &self.id
    }

    /// The enrollment as it was read (pending).
    pub fn record(&self) -> &EnrollmentRecord {
        &self.record
    }
}

/// Where a job's subject, names and key come from.
#[derive(Debug)]
enum Input {
    /// A CSR and the RA's identity data, checked against the profile.
    Csr {
        /// The CSR, PEM or DER.
        csr: Vec<u8>,
        /// What the RA asserts over the CSR's names.
        identity: Identity,
        /// `csr` already verified by the caller ([`Engine::issue_verified`]).
        verified: Option<Box<VerifiedCsr>>,
    },
    /// A renewal: names from the old certificate; the key from it or from a CSR.
    Renewal { old: Box<CertRecord>, key: NewKey },
    /// A proven key and the requester's names ([`Engine::issue_for_key`]).
    Key {
        key: csr::SubjectKey,
        identity: Identity,
    },
    /// A redeemed enrollment: names from the enrollment, the key from the redemption.
    Enrollment {
        id: [u8; 16],
        subject: Vec<csr::SubjectAttribute>,
        sans: Vec<csr::San>,
        key: RedeemKey,
    },
}

/// The kind of certificate a request may ask for: an end-entity certificate ([`Engine::issue`]
/// and every other path) or, only through [`Engine::issue_ca`], a subordinate CA certificate
/// from a CA profile ([`ca_x509::ca_profile`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    EndEntity,
    Ca,
}

/// What the workers process: one certificate to verify, check, sign and store.
#[derive(Debug)]
struct Work {
    input: Input,
    kind: Kind,
    profile: String,
    validity_days: Option<u32>,
    request_id: Option<String>,
    requester: Requester,
}

impl Work {
    /// SHA-256 over the fields that define the request, to tell a retry from a different
    /// request under the same `request_id`.
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        match &self.input {
            Input::Csr { csr, identity, .. } => {
                field(csr);
                // Only present where given, so that digests of requests without identity
                // data stay as they were.
                identity_fields(identity).iter().for_each(|f| field(f));
            }
            Input::Renewal { old, key } => {
                field(b"renewal");
                field(old.serial.as_bytes());
                match key {
                    NewKey::Keep => field(&[]),
                    NewKey::Csr(csr) | NewKey::VerifiedCsr { csr, .. } => field(csr),
                    NewKey::Proven(key) => {
                        field(&[]);
                        field(&key.bits);
                    }
                }
            }
            Input::Enrollment { id, .. } => {
                field(b"enrollment");
                field(id);
            }
            Input::Key { key, identity } => {
                field(b"key");
                field(&key.bits);
                identity_fields(identity).iter().for_each(|f| field(f));
            }
        }
        field(self.profile.as_bytes());
        field(
            &self
                .validity_days
                .map_or(0, |d| u64::from(d) + 1)
                .to_be_bytes(),
        );
        h.finalize().into()
    }
}

/// The fields of identity data a request digest covers: each subject attribute's type and
/// value, then each SAN.
fn identity_fields(identity: &Identity) -> Vec<Vec<u8>> {
    let subject = identity.subject.iter().flat_map(|a| {
        [
            a.kind.short_name().as_bytes().to_vec(),
            a.value.clone().into_bytes(),
        ]
    });
    let sans = identity.sans.iter().map(|s| s.value().into_bytes());
    subject.chain(sans).collect()
}

/// A stored certificate handed back to the requester.
#[derive(Clone, Debug)]
pub struct Issued {
    /// The stored record.
    pub record: CertRecord,
    /// True when this is an earlier result returned again for a repeated `request_id`.
    pub replayed: bool,
}

struct Job {
    work: Arc<Work>,
    idempotency: Option<(IdempotencyKey, [u8; 32])>,
    reply: oneshot::Sender<Result<Committed, CaError>>,
    queued_at: Instant,
}

/// The running engine: queue, workers and store writer.
pub struct Engine {
    /// Told of every committed status change, this node's and (through the store's feed)
    /// other nodes' (held weakly: their owners keep them alive).
    observers: Observers,
    queue: Option<Sender<Job>>,
    to_writer: Option<Sender<WriteOp>>,
    ca: Arc<CertificateAuthority>,
    store: Arc<dyn Storage>,
    workers_done: Receiver<()>,
    signing: Option<SigningStage>,
    writer: Option<StoreWriter>,
    metrics: Arc<Metrics>,
    /// Keys of certificates revoked for keyCompromise: never certified again.
    blocked: Arc<BlockedKeys>,
    /// The newest time signed: nothing is signed while the clock is behind it.
    clock: ClockGuard,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

/// The newest time the store recorded: its last audit entry's (every issuance, revocation
/// and CRL number is in the audit log), 0 for an empty log.
fn newest_recorded(store: &dyn Storage) -> Result<i64, CaError> {
    let head = store.audit_head()?;
    Ok(store
        .audit_entries(head.seq.saturating_sub(1), 1)?
        .first()
        .map_or(0, |e| e.event.at))
}

/// Subscribes to the revocation changes that other nodes sharing the store commit: the
/// observers hear of them as of this node's own, and keys they blocked are blocked here too.
/// When changes may have been missed, the observers drop everything and the blocked keys are
/// read again from the store.
fn watch_other_nodes(
    store: &Arc<dyn Storage>,
    observers: &Observers,
    blocked: &Arc<BlockedKeys>,
) -> Result<(), CaError> {
    let (observers, blocked) = (observers.clone(), blocked.clone());
    let weak_store = Arc::downgrade(store);
    store.watch_changes(Arc::new(move |change: RemoteChange| match change {
        RemoteChange::Revocation(serial) => tell(&observers, Some(&serial)),
        RemoteChange::BlockedKey(key) => blocked.insert(key),
        RemoteChange::Any => {
            if let Some(store) = weak_store.upgrade() {
                match store.blocked_keys() {
                    Ok(keys) => keys.into_iter().for_each(|k| blocked.insert(k)),
                    Err(e) => tracing::warn!(
                        error = %e,
                        "reading the blocked keys after the feed of other nodes' changes missed some"
                    ),
                }
            }
            tell(&observers, None);
        }
    }))
}

impl Engine {
    /// Starts the writer, the signing stage and the workers, drawing serials from the CA's
    /// random generator ([`CertificateAuthority::random`]).
    pub fn start(
        ca: Arc<CertificateAuthority>,
        store: Arc<dyn Storage>,
        config: &EngineConfig,
    ) -> Result<Self, CaError> {
        let serials = Arc::new(RandomSerials(ca.random().clone()));
        Self::start_with_serials(ca, store, config, serials)
    }

    /// [`Engine::start`] with the serials drawn from `serials` (tests script the draws).
    pub fn start_with_serials(
        ca: Arc<CertificateAuthority>,
        store: Arc<dyn Storage>,
        config: &EngineConfig,
        serials: Arc<dyn SerialSource>,
    ) -> Result<Self, CaError> {
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.workers
        };
        let metrics = Arc::new(Metrics::new()?);
        metrics
            .queue_capacity
            .set(i64::try_from(config.queue_capacity.max(1)).unwrap_or(i64::MAX));
        let blocked = Arc::new(BlockedKeys::new(store.blocked_keys()?));
        let clock = ClockGuard::new(
            newest_recorded(store.as_ref())?,
            config.clock_tolerance_secs,
        );
        let writer = store.start_writer(config.max_commit_batch, metrics.clone())?;
        let (sign_at, signing) = SigningStage::start(
            ca.signer().clone(),
            config.signers,
            config.queue_capacity,
            &writer.sender(),
            &metrics,
        )?;
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(config.queue_capacity.max(1));
        let (done_tx, workers_done) = crossbeam_channel::bounded::<()>(0);
        for i in 0..workers {
            let worker = Worker {
                ca: ca.clone(),
                serials: serials.clone(),
                sign_at: sign_at.clone(),
                to_writer: writer.sender(),
                metrics: metrics.clone(),
                blocked: blocked.clone(),
            };
            let (jobs, done) = (jobs.clone(), done_tx.clone());
            // Each worker is a long-lived loop; it ends when the queue closes. It takes its
            // share of what waits, so that CSR signatures can be verified together.
            std::thread::Builder::new()
                .name(format!("ca-worker-{i}"))
                .spawn(move || {
                    while let Ok(first) = jobs.recv() {
                        let share = (jobs.len() / workers).min(MAX_WORKER_BATCH - 1);
                        let mut batch = Vec::with_capacity(share + 1);
                        batch.push(first);
                        batch.extend(jobs.try_iter().take(share));
                        worker.process_batch(batch);
                    }
                    drop(done);
                })
                .map_err(|e| CaError::internal("starting a worker thread", Some(Box::new(e))))?;
        }
        let observers = Observers::default();
        watch_other_nodes(&store, &observers, &blocked)?;
        tracing::info!(
            workers,
            queue = config.queue_capacity,
            blocked_keys = blocked.len(),
            "issuance engine started"
        );
        Ok(Engine {
            observers,
            queue: Some(queue),
            to_writer: Some(writer.sender()),
            ca,
            store,
            workers_done,
            signing: Some(signing),
            writer: Some(writer),
            metrics,
            blocked,
            clock,
        })
    }

    /// Registers `observer` for every status change from now on. The engine keeps only a
    /// weak reference: the observer is told while its owner keeps it alive.
    pub fn observe_status(&self, observer: Weak<dyn StatusObserver>) {
        if let Ok(mut observers) = self.observers.write() {
            observers.push(observer);
        }
    }

    /// Tells every live observer that `serial`'s status changed.
    fn status_changed(&self, serial: &Serial) {
        tell(&self.observers, Some(serial));
    }

    /// The CA this engine issues for.
    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.ca
    }

    /// The store this engine writes to.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The engine's metrics (and their registry, which the server exposes).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The clock guard: what signs checks it first and tells it what it signed.
    pub fn clock(&self) -> &ClockGuard {
        &self.clock
    }

    /// The keys no longer certified (those of certificates revoked for keyCompromise).
    pub fn blocked_keys(&self) -> &BlockedKeys {
        &self.blocked
    }

    /// Requests currently waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.queue.as_ref().map_or(0, Sender::len)
    }

    /// Issues one certificate: answers an earlier result for a repeated `request_id`,
    /// otherwise queues the request and waits until its certificate is durably stored. A CA
    /// profile is refused ([`CaError::ProfileRequiresCaAdmin`]): [`Engine::issue_ca`] is the
    /// only way to it.
    pub async fn issue(&self, request: IssueRequest) -> Result<Issued, CaError> {
        self.issue_kind(request, Kind::EndEntity).await
    }

    /// Issues a subordinate CA certificate from a CA profile, as [`Engine::issue`] issues
    /// end-entity certificates (recorded and audited the same way, the requester named); any
    /// other profile is refused ([`CaError::NotACaProfile`]). The server calls it only for a
    /// token of role `ca-admin`.
    pub async fn issue_ca(&self, request: IssueRequest) -> Result<Issued, CaError> {
        self.issue_kind(request, Kind::Ca).await
    }

    /// [`Engine::issue`] for a request whose CSR the caller has verified already (a front end
    /// that must read the CSR's names before it asks): `verified` is what
    /// [`csr::parse_and_verify`] returned for `request.csr`, and the CSR is not verified again.
    pub async fn issue_verified(
        &self,
        request: IssueRequest,
        verified: VerifiedCsr,
    ) -> Result<Issued, CaError> {
        self.issue_input(request, Kind::EndEntity, Some(Box::new(verified)))
            .await
    }

    async fn issue_kind(&self, request: IssueRequest, kind: Kind) -> Result<Issued, CaError> {
        self.issue_input(request, kind, None).await
    }

    async fn issue_input(
        &self,
        request: IssueRequest,
        kind: Kind,
        verified: Option<Box<VerifiedCsr>>,
    ) -> Result<Issued, CaError> {
        self.run(Work {
            input: Input::Csr {
                csr: request.csr,
                identity: request.identity,
                verified,
            },
            kind,
            profile: request.profile,
            validity_days: request.validity_days,
            request_id: request.request_id,
            requester: request.requester,
        })
        .await
    }

    /// Issues a certificate for a key whose possession the caller established, with the
    /// names the requester asserts ([`KeyRequest`]); recorded and audited as any issuance. A
    /// repeated `request_id` answers its first result, as [`Engine::issue`] does.
    pub async fn issue_for_key(&self, request: KeyRequest) -> Result<Issued, CaError> {
        self.run(Work {
            input: Input::Key {
                key: request.key,
                identity: request.identity,
            },
            kind: Kind::EndEntity,
            profile: request.profile,
            validity_days: request.validity_days,
            request_id: request.request_id,
            requester: request.requester,
        })
        .await
    }

    /// Renews a certificate: refused (409) when it is revoked or on hold, or expired longer
    /// ago than its profile's `renewal_grace_days`.
    pub async fn renew(&self, request: RenewRequest) -> Result<Issued, CaError> {
        let old = self
            .store
            .certificate(&request.serial)?
            .ok_or_else(|| CaError::SerialNotFound(request.serial.to_hex()))?;
        let work = Work {
            kind: Kind::EndEntity,
            profile: old.profile.clone(),
            input: Input::Renewal {
                old: Box::new(old),
                key: request.key,
            },
            validity_days: request.validity_days,
            request_id: request.request_id,
            requester: request.requester,
        };
        self.run(work).await
    }

    /// Creates an enrollment: checks its names against the profile, draws an id and a code,
    /// and stores the code's salted hash, durably and in the audit log.
    pub async fn create_enrollment(
        &self,
        request: EnrollmentRequest,
    ) -> Result<CreatedEnrollment, CaError> {
        let profile = self.ca.profile(&request.profile)?;
        if profile.ca.is_some() {
            return Err(CaError::ProfileRequiresCaAdmin {
                profile: request.profile,
            });
        }
        let sans: Vec<csr::San> = request
            .sans
            .iter()
            .map(|s| csr::San::from_value(s))
            .collect();
        let Identity { subject, sans } = profile.check_names(
            &request.profile,
            &Identity {
                subject: name::parse_rfc4514(&request.subject)?,
                sans,
            },
        )?;
        if request.validity_days.is_some() {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            profile.validity(&request.profile, request.validity_days, now)?;
        }
        let mut id = [0u8; 16];
        self.ca.random().fill(&mut id)?;
        let code = match &request.code_key {
            Some(key) => key.derive(&id),
            None => EnrollmentCode::generate(self.ca.random().as_ref())?,
        };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let record = EnrollmentRecord {
            profile: request.profile,
            subject: name::to_rfc4514(&subject),
            sans: sans.iter().map(csr::San::value).collect(),
            validity_days: request.validity_days,
            code_hash: CodeHash::new(&code, self.ca.random().as_ref())?
                .to_bytes()
                .to_vec(),
            requester: request.requester.name.clone(),
            created_at: now,
            expires_at: now.saturating_add(request.lifetime_secs),
            max_attempts: request.max_attempts,
            failed_attempts: 0,
            serial: None,
        };
        let (stored, actor) = (record.clone(), request.requester.name);
        self.write(|reply| WriteOp::CreateEnrollment(id, stored, actor, reply))
            .await?;
        Ok(CreatedEnrollment { id, code, record })
    }

    /// Redeems an enrollment with its code: [`Engine::verify_redemption`], then
    /// [`Engine::redeem_verified`] for `key`.
    pub async fn redeem(
        &self,
        id: [u8; 16],
        code: &str,
        key: RedeemKey,
    ) -> Result<Issued, CaError> {
        let verified = self.verify_redemption(id, code).await?;
        self.redeem_verified(verified, key, Protocol::Api).await
    }

    /// Checks a redemption before anything is spent on it: the enrollment exists and is
    /// pending (else [`CaError::EnrollmentNotFound`], `Redeemed`, `Locked` or `Expired`), and
    /// `code` is its code. A wrong code counts towards `max_attempts`, durably and in the audit
    /// log (the attempt that reaches it locks the enrollment), and is
    /// [`CaError::EnrollmentCodeInvalid`].
    pub async fn verify_redemption(
        &self,
        id: [u8; 16],
        code: &str,
    ) -> Result<VerifiedRedemption, CaError> {
        let record = self
            .store
            .enrollment(&id)?
            .ok_or_else(|| CaError::EnrollmentNotFound(hex::encode(id)))?;
        record.check_redeemable(OffsetDateTime::now_utc().unix_timestamp())?;
        let checks = CodeChecks::counted(&self.metrics);
        if !CodeHash::from_bytes(&record.code_hash)?.verify(code, &checks) {
            let after = self
                .write(|reply| WriteOp::FailedAttempt(id, reply))
                .await?;
            return Err(CaError::EnrollmentCodeInvalid {
                attempts_left: after.max_attempts.saturating_sub(after.failed_attempts),
            });
        }
        Ok(VerifiedRedemption { id, record })
    }

    /// Refuses a key type (`ec-p256`, `rsa-4096`, ...) that the profile of a verified
    /// enrollment does not allow, so that a key the CA would generate for it is never made in
    /// vain ([`CaError::KeyTypeNotAllowed`]).
    pub fn check_key_type(
        &self,
        redemption: &VerifiedRedemption,
        key_type: &str,
    ) -> Result<(), CaError> {
        self.check_profile_key_type(&redemption.record.profile, key_type)
    }

    /// Refuses a key type that profile `name` does not allow ([`CaError::KeyTypeNotAllowed`];
    /// an unknown profile is [`CaError::UnknownProfile`]), before the CA generates a key for
    /// a request under it.
    pub fn check_profile_key_type(&self, name: &str, key_type: &str) -> Result<(), CaError> {
        let profile = self.ca.profile(name)?;
        if profile.allows_key_type(key_type) {
            Ok(())
        } else {
            Err(CaError::KeyTypeNotAllowed {
                key: key_type.to_string(),
                profile: format!("profile {name}"),
                allowed: profile.allowed_key_types(),
            })
        }
    }

    /// Issues the certificate of a verified enrollment for `key`. The enrollment is marked
    /// redeemed in the same commit as the certificate, after the store writer checked again
    /// that it is still pending, so a code works once even when two redemptions race.
    pub async fn redeem_verified(
        &self,
        redemption: VerifiedRedemption,
        key: RedeemKey,
        protocol: Protocol,
    ) -> Result<Issued, CaError> {
        let VerifiedRedemption { id, record } = redemption;
        let subject = name::parse_rfc4514(&record.subject)?;
        let sans = record
            .sans
            .iter()
            .map(|s| csr::San::from_value(s))
            .collect();
        self.run(Work {
            input: Input::Enrollment {
                id,
                subject,
                sans,
                key,
            },
            kind: Kind::EndEntity,
            profile: record.profile,
            validity_days: record.validity_days,
            request_id: None,
            requester: Requester {
                name: record.requester,
                token_hash: [0; 32],
                protocol,
            },
        })
        .await
    }

    /// Rolls back the redemption of enrollment `id` for the certificate `serial`, when what
    /// the redemption was to deliver could not be built after the commit: the certificate is
    /// revoked (cessationOfOperation) and the enrollment is pending again, durably and in the
    /// audit log (`certificate_revoked`, `enrollment_reopened`).
    pub async fn undo_redemption(&self, id: [u8; 16], serial: Serial) -> Result<(), CaError> {
        self.write(|reply| WriteOp::UndoRedemption(id, serial, reply))
            .await?;
        self.status_changed(&serial);
        self.metrics
            .revocations
            .with_label_values(&[RevocationReason::CessationOfOperation.name()])
            .inc();
        Ok(())
    }

    /// Refuses a CA profile to work that is not [`Kind::Ca`] (a renewal, an enrollment and
    /// every issuance but [`Engine::issue_ca`]), and any other profile to work that is. An
    /// unknown profile passes, for the worker to refuse by name.
    fn check_kind(&self, work: &Work) -> Result<(), CaError> {
        let Ok(profile) = self.ca.profile(&work.profile) else {
            return Ok(());
        };
        match (work.kind, profile.ca.is_some()) {
            (Kind::EndEntity, true) => Err(CaError::ProfileRequiresCaAdmin {
                profile: work.profile.clone(),
            }),
            (Kind::Ca, false) => Err(CaError::NotACaProfile {
                profile: work.profile.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Refuses the renewal of a revoked or held certificate, or of one expired longer ago than
    /// its profile's grace period. Other work passes.
    fn check_renewable(&self, work: &Work) -> Result<(), CaError> {
        let Input::Renewal { old, .. } = &work.input else {
            return Ok(());
        };
        let serial = old.serial;
        if let Some(r) = self.store.revocation(&serial)? {
            return Err(CaError::RenewalRefused(format!(
                "{serial} is revoked ({})",
                r.reason.name()
            )));
        }
        let grace = i64::from(self.ca.profile(&old.profile)?.renewal_grace_days) * 86_400;
        if OffsetDateTime::now_utc().unix_timestamp() > old.not_after.saturating_add(grace) {
            return Err(CaError::RenewalRefused(format!(
                "{serial} expired more than the profile's {} grace days ago",
                grace / 86_400
            )));
        }
        Ok(())
    }

    async fn run(&self, work: Work) -> Result<Issued, CaError> {
        let profile = work.profile.clone();
        let renewal = matches!(work.input, Input::Renewal { .. });
        let result = self.run_once(work).await;
        let outcome = match &result {
            Ok(issued) if issued.replayed => return result,
            Ok(_) if renewal => "renewed",
            Ok(_) => "issued",
            Err(e) if e.class() == ErrorClass::Internal => "failed",
            Err(_) => "refused",
        };
        // Only configured profile names become labels: request input must not grow the set.
        let label = if self.ca.profile(&profile).is_ok() {
            profile.as_str()
        } else {
            "(unknown)"
        };
        self.metrics
            .certificates
            .with_label_values(&[label, outcome])
            .inc();
        if let Err(e) = &result {
            self.metrics.error(e);
        }
        result
    }

    async fn run_once(&self, work: Work) -> Result<Issued, CaError> {
        self.check_kind(&work)?;
        let idempotency = work.request_id.as_ref().map(|id| {
            (
                IdempotencyKey::new(&work.requester.token_hash, id),
                work.digest(),
            )
        });
        // A repeated request_id answers its first result, even if the renewed certificate has
        // been revoked since.
        if let Some((key, digest)) = &idempotency {
            if let Some(existing) = self.store.idempotency(key)? {
                let id = work.request_id.as_deref().unwrap_or_default();
                return self.replay(id, existing, digest);
            }
        }
        self.clock
            .check(OffsetDateTime::now_utc().unix_timestamp())?;
        self.check_renewable(&work)?;
        let work = Arc::new(work);
        for _ in 0..SERIAL_ATTEMPTS {
            let rx = self.submit(work.clone(), idempotency.clone())?;
            let committed = rx
                .await
                .map_err(|_| CaError::Storage("the request was dropped before commit".into()))?;
            match committed {
                Ok(Committed::Stored(record)) => {
                    self.clock.signed(record.issued_at);
                    return Ok(Issued {
                        record,
                        replayed: false,
                    });
                }
                Ok(Committed::Existing(existing)) => {
                    let id = work.request_id.as_deref().unwrap_or_default();
                    let digest = idempotency.as_ref().map_or([0; 32], |(_, d)| *d);
                    return self.replay(id, existing, &digest);
                }
                Err(CaError::SerialCollision(serial)) => {
                    tracing::warn!(%serial, "serial collision; drawing a new serial");
                }
                Err(e) => return Err(e),
            }
        }
        Err(CaError::Storage("repeated serial collisions".into()))
    }

    fn replay(
        &self,
        request_id: &str,
        existing: IdempotencyRecord,
        digest: &[u8; 32],
    ) -> Result<Issued, CaError> {
        if existing.request_hash != *digest {
            return Err(CaError::IdempotencyConflict(request_id.to_string()));
        }
        let serial = existing.serial;
        let record = self
            .store
            .certificate(&serial)?
            .ok_or_else(|| CaError::Storage(format!("idempotency entry for missing {serial}")))?;
        Ok(Issued {
            record,
            replayed: true,
        })
    }

    fn submit(
        &self,
        work: Arc<Work>,
        idempotency: Option<(IdempotencyKey, [u8; 32])>,
    ) -> Result<oneshot::Receiver<Result<Committed, CaError>>, CaError> {
        let queue = self.queue.as_ref().ok_or(CaError::ShuttingDown)?;
        let (reply, rx) = oneshot::channel();
        queue
            .try_send(Job {
                work,
                idempotency,
                reply,
                queued_at: Instant::now(),
            })
            .map_err(|e| match e {
                TrySendError::Full(_) => CaError::Overloaded,
                TrySendError::Disconnected(_) => CaError::ShuttingDown,
            })?;
        Ok(rx)
    }

    /// Sends one operation straight to the store writer; the receiver answers once it is
    /// durable.
    fn send_op<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, CaError>>) -> WriteOp,
    ) -> Result<oneshot::Receiver<Result<T, CaError>>, CaError> {
        let to_writer = self.to_writer.as_ref().ok_or(CaError::ShuttingDown)?;
        let (reply, rx) = oneshot::channel();
        to_writer
            .send(op(reply))
            .map_err(|_| CaError::ShuttingDown)?;
        Ok(rx)
    }

    async fn write<T>(
        &self,
        op: impl FnOnce(oneshot::Sender<Result<T, CaError>>) -> WriteOp,
    ) -> Result<T, CaError> {
        self.send_op(op)?.await.map_err(|_| writer_gone())?
    }

    /// Revokes a certificate (or puts it on hold, or makes a hold permanent), durably, as
    /// `actor` asked. Revoking a revoked certificate is [`CaError::AlreadyRevoked`]; an
    /// `invalidity_date` after the revocation time is [`CaError::InvalidRequest`].
    pub async fn revoke(
        &self,
        serial: Serial,
        reason: RevocationReason,
        invalidity_date: Option<i64>,
        actor: &str,
    ) -> Result<Revocation, CaError> {
        let at = OffsetDateTime::now_utc().unix_timestamp();
        if let Some(date) = invalidity_date {
            // The operator's floor is the caller's to check; a compromise is never dated
            // after the revocation (RFC 5280 section 5.3.2), nor before what the audit log
            // and X.509 can write.
            crate::revocation::check_invalidity_date(
                date,
                at,
                crate::revocation::EARLIEST_INVALIDITY_DATE,
            )?;
        }
        // A compromised key is blocked in the revocation's commit (Baseline Requirements
        // 6.1.1.3 item 4), and for the workers once that commit is durable.
        let blocked_key = match reason {
            RevocationReason::KeyCompromise => self.certificate_key(&serial)?,
            _ => None,
        };
        let request = RevokeRequest {
            serial,
            reason,
            at,
            invalidity_date,
            actor: actor.to_string(),
            blocked_key,
            action: None,
        };
        let revocation = self.write(|reply| WriteOp::Revoke(request, reply)).await?;
        self.revoked(&serial, reason, blocked_key);
        Ok(revocation)
    }

    /// What follows a durable revocation: its key blocked for the workers, the status
    /// observers told, the metric counted.
    fn revoked(&self, serial: &Serial, reason: RevocationReason, blocked_key: Option<[u8; 32]>) {
        if let Some(key) = blocked_key {
            self.blocked.insert(key);
        }
        self.status_changed(serial);
        self.metrics
            .revocations
            .with_label_values(&[reason.name()])
            .inc();
    }

    /// Starts a mass revocation ([`crate::mass_revocation`]) as `actor` asks, or its dry run:
    /// checks the request (a filter, an invalidity date not after now) and, for the action,
    /// draws its id and records `mass_revocation_started` durably before any certificate is
    /// revoked. Nothing is walked yet: [`Engine::mass_revocation_step`] does it.
    pub async fn start_mass_revocation(
        &self,
        request: MassRevocationRequest,
        actor: &str,
        dry_run: bool,
    ) -> Result<Progress, CaError> {
        request.filter.check()?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        if let Some(date) = request.invalidity_date {
            crate::revocation::check_invalidity_date(
                date,
                now,
                crate::revocation::EARLIEST_INVALIDITY_DATE,
            )?;
        }
        let mode = if dry_run {
            Mode::DryRun
        } else {
            let mut id = [0u8; 16];
            self.ca.random().fill(&mut id)?;
            Mode::Revoke {
                id: ActionId(id),
                actor: actor.to_string(),
            }
        };
        let progress = Progress::new(request, mode);
        if let Some(event) = progress.started_event(now)? {
            self.record(event, Vec::new()).await?;
        }
        Ok(progress)
    }

    /// Walks a mass revocation on from `progress` for about `budget`, page by page (a page
    /// holds at most `page` certificates of the query and examines at most
    /// [`crate::store::query::MAX_EXAMINED`]; at least one page per call), revoking what
    /// matches through the store writer's group commit, or counting it in a dry run. Once the
    /// walk is complete, the action's `mass_revocation_completed` entry is recorded. A step
    /// that fails changed only what it answered before; repeating it from the same progress
    /// is safe (what it revoked then counts as already revoked).
    pub async fn mass_revocation_step(
        &self,
        mut progress: Progress,
        budget: std::time::Duration,
        page: usize,
    ) -> Result<Progress, CaError> {
        let started = Instant::now();
        while !progress.done {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let (store, request, cursor) = (
                self.store.clone(),
                progress.request.clone(),
                progress.cursor()?,
            );
            let scan = tokio::task::spawn_blocking(move || {
                mass_revocation::scan(store.as_ref(), &request, cursor.as_ref(), now, page)
            })
            .await
            .map_err(|e| {
                CaError::internal("the mass revocation walk failed", Some(Box::new(e)))
            })??;
            let mut tally = scan.tally;
            if let Mode::Revoke { id, actor } = &progress.mode {
                let raced = self
                    .revoke_candidates(&progress.request, *id, actor, scan.candidates)
                    .await?;
                tally.revoked -= raced;
                tally.already_revoked += raced;
            }
            progress.advance(scan.next, tally);
            if started.elapsed() >= budget {
                break;
            }
        }
        if progress.done {
            let at = OffsetDateTime::now_utc().unix_timestamp();
            if let Some(event) = progress.completed_event(at) {
                self.record(event, Vec::new()).await?;
            }
        }
        Ok(progress)
    }

    /// Revokes `candidates` in action `id`, at most [`MASS_REVOCATIONS_IN_FLIGHT`] waiting for
    /// the writer at a time (so that issuance keeps its turn in every group); answers how many
    /// were revoked meanwhile by someone else.
    async fn revoke_candidates(
        &self,
        request: &MassRevocationRequest,
        id: ActionId,
        actor: &str,
        candidates: Vec<mass_revocation::Candidate>,
    ) -> Result<u64, CaError> {
        let at = OffsetDateTime::now_utc().unix_timestamp();
        let mut in_flight = std::collections::VecDeque::new();
        let mut raced = 0;
        let mut candidates = candidates.into_iter();
        loop {
            let next = if in_flight.len() < MASS_REVOCATIONS_IN_FLIGHT {
                candidates.next()
            } else {
                None
            };
            if let Some(c) = next {
                let revoke = RevokeRequest {
                    serial: c.serial,
                    reason: request.reason,
                    at,
                    invalidity_date: request.invalidity_date,
                    actor: actor.to_string(),
                    blocked_key: c.blocked_key,
                    action: Some(id),
                };
                in_flight.push_back((c, self.send_op(|reply| WriteOp::Revoke(revoke, reply))?));
                continue;
            }
            let Some((c, rx)) = in_flight.pop_front() else {
                return Ok(raced);
            };
            match rx.await.map_err(|_| writer_gone())? {
                Ok(_) => self.revoked(&c.serial, request.reason, c.blocked_key),
                Err(CaError::AlreadyRevoked { .. }) => raced += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The SubjectPublicKeyInfo SHA-256 of the stored certificate `serial`; `None` when it is
    /// not stored (the writer answers that) or, logged, when its key cannot be read.
    fn certificate_key(&self, serial: &Serial) -> Result<Option<[u8; 32]>, CaError> {
        let Some(record) = self.store.certificate(serial)? else {
            return Ok(None);
        };
        match crate::spki::certificate_key_sha256(&record.der) {
            Ok(hash) => Ok(Some(hash)),
            Err(e) => {
                tracing::error!(%serial, error = %e, "the key of a certificate revoked for keyCompromise cannot be read; it is not blocked");
                Ok(None)
            }
        }
    }

    /// Ends a certificateHold, durably, as `actor` asked.
    pub async fn release_hold(&self, serial: Serial, actor: &str) -> Result<(), CaError> {
        let actor = actor.to_string();
        self.write(|reply| WriteOp::ReleaseHold(serial, actor, reply))
            .await?;
        self.status_changed(&serial);
        Ok(())
    }

    /// Allocates the next CRL number (at least `floor`), durably and in the audit log (as
    /// `actor` asked, for a `kind` of CRL), with the revocation change sequence it covers.
    /// Blocking: not for the async runtime's threads.
    pub fn next_crl_number_blocking(
        &self,
        floor: u64,
        actor: &str,
        kind: &'static str,
    ) -> Result<CrlPosition, CaError> {
        let request = CrlRequest {
            floor,
            actor: actor.to_string(),
            kind,
        };
        self.send_op(|reply| WriteOp::NextCrlNumber(request, reply))?
            .blocking_recv()
            .map_err(|_| writer_gone())?
    }

    /// Raises the last CRL number taken to at least `floor`, durably and in the audit log (as
    /// `actor` asked, for the reason `why`), so that every CRL signed from now on is numbered
    /// above it (RFC 5280 section 5.2.3: numbers only increase). Answers the last number
    /// taken. Blocking: not for the async runtime's threads.
    pub fn raise_crl_number_blocking(
        &self,
        floor: u64,
        actor: &str,
        why: &str,
    ) -> Result<CrlPosition, CaError> {
        let request = CrlFloor {
            floor,
            actor: actor.to_string(),
            why: why.to_string(),
        };
        self.send_op(|reply| WriteOp::RaiseCrlNumber(request, reply))?
            .blocking_recv()
            .map_err(|_| writer_gone())?
    }

    /// Stores an API token under its hash (and its creation in the audit log), durably.
    pub async fn put_token(
        &self,
        token_hash: [u8; 32],
        record: TokenRecord,
        actor: &str,
    ) -> Result<(), CaError> {
        let actor = actor.to_string();
        self.write(|reply| WriteOp::PutToken(token_hash, record, actor, reply))
            .await
    }

    /// Revokes the API token named `name`, durably and in the audit log, as `actor` asked;
    /// answers the revoked record ([`CaError::TokenNotFound`], or
    /// [`CaError::TokenAlreadyRevoked`]). The name stays taken.
    pub async fn revoke_token(&self, name: &str, actor: &str) -> Result<TokenRecord, CaError> {
        let (name, actor) = (name.to_string(), actor.to_string());
        let at = OffsetDateTime::now_utc().unix_timestamp();
        self.write(|reply| WriteOp::RevokeToken(name, at, actor, reply))
            .await
    }

    /// Records a certificate that the CA key signed outside the issuance queue (the delegated
    /// OCSP responder's), as every certificate the CA signs is recorded: stored under
    /// `profile` (what it is for) with requester [`CA_REQUESTER`], in the audit log
    /// (`certificate_issued`), in the auditor's queries, and known to OCSP and CRLs. A
    /// certificate already stored is answered as stored. Blocks until it is durable: call it
    /// off the async runtime.
    pub fn record_signed_certificate(
        &self,
        der: &[u8],
        profile: &str,
    ) -> Result<CertRecord, CaError> {
        let (record, names) = signed_record(der, profile)?;
        let serial = record.serial;
        if let Some(existing) = self.store.certificate(&serial)? {
            return if existing.der == der {
                Ok(existing)
            } else {
                Err(CaError::SerialCollision(serial))
            };
        }
        let new = NewCertificate {
            record,
            idempotency: None,
            names,
            enrollment: None,
            protocol: Protocol::Api,
        };
        match self
            .send_op(|reply| WriteOp::Certificate(new, reply))?
            .blocking_recv()
            .map_err(|_| writer_gone())??
        {
            Committed::Stored(record) => Ok(record),
            Committed::Existing(_) => Err(CaError::Storage(
                "a signed certificate without request_id met an idempotency entry".into(),
            )),
        }
    }

    /// Appends an event to the audit log, durably, with pointers from `serials` to it.
    pub async fn record(
        &self,
        event: AuditEvent,
        serials: Vec<Serial>,
    ) -> Result<AuditHead, CaError> {
        self.write(|reply| WriteOp::Record(event, serials, reply))
            .await
    }

    /// The audit log's head, as of everything committed before this call.
    pub async fn audit_head(&self) -> Result<AuditHead, CaError> {
        self.write(WriteOp::AuditHead).await
    }

    /// Stores a signed checkpoint of the audit log, durably.
    pub async fn store_checkpoint(&self, checkpoint: Checkpoint) -> Result<(), CaError> {
        self.write(|reply| WriteOp::Checkpoint(checkpoint, reply))
            .await
    }

    /// Makes one ACME change (objects, unique keys, list members) with its audit entry,
    /// durably and all or nothing ([`crate::store::acme`]). A write beyond the limits is
    /// [`CaError::InvalidRequest`], refused before it reaches the store; an object not at the
    /// version a put expects is [`CaError::AcmeConflict`], a key claimed by another id
    /// [`CaError::AcmeIndexTaken`].
    pub async fn acme_write(&self, write: AcmeWrite) -> Result<(), CaError> {
        write.check()?;
        self.write(|reply| WriteOp::Acme(write, reply)).await
    }

    /// The stored ACME object of this kind and id, as last committed by any node.
    pub fn acme_object(&self, kind: AcmeKind, id: &[u8]) -> Result<Option<AcmeObject>, CaError> {
        self.store.acme_object(kind, id)
    }

    /// The key that seals ACME nonces on a store shared by several nodes
    /// ([`crate::store::AcmeStore::acme_nonce_key`]).
    pub fn acme_nonce_key(&self) -> Result<Option<[u8; 32]>, CaError> {
        self.store.acme_nonce_key()
    }

    /// Spends an ACME nonce for every node sharing the store
    /// ([`crate::store::AcmeStore::acme_spend_nonce`]).
    pub fn acme_spend_nonce(&self, id: &[u8; 16], expires: i64) -> Result<Option<bool>, CaError> {
        self.store.acme_spend_nonce(id, expires)
    }

    /// The id that holds the ACME unique key `key`.
    pub fn acme_claim_holder(&self, key: &[u8]) -> Result<Option<Vec<u8>>, CaError> {
        self.store.acme_claim_holder(key)
    }

    /// The ACME list members (whole link keys) that start with `prefix`, in key order,
    /// strictly after `after`, at most `limit` of them.
    pub fn acme_links(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, CaError> {
        self.store.acme_links(prefix, after, limit)
    }

    /// Stops taking requests, lets the workers finish what is queued, waits for the writer to
    /// commit it, and flushes the store.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(queue) = self.queue.take() {
            drop(queue);
            // Every worker holds a sender of this channel; recv fails once all have ended.
            let _ = self.workers_done.recv();
        }
        // The workers dropped their hand-overs to the signing stage, which now drains.
        if let Some(signing) = self.signing.take() {
            signing.join();
        }
        self.to_writer.take();
        if let Some(writer) = self.writer.take() {
            writer.join();
            if let Err(e) = self.store.flush() {
                tracing::error!(error = %e, "flushing the store at shutdown");
            }
            tracing::info!("issuance engine stopped; store flushed");
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Times consecutive stages into their histograms.
struct StageClock {
    last: Instant,
}

impl StageClock {
    fn new() -> Self {
        StageClock {
            last: Instant::now(),
        }
    }

    fn lap(&mut self, stage: &prometheus::Histogram) {
        let now = Instant::now();
        stage.observe((now - self.last).as_secs_f64());
        self.last = now;
    }

    /// The time since the last lap (or the start).
    fn since_last(&self) -> std::time::Duration {
        self.last.elapsed()
    }
}

fn writer_gone() -> CaError {
    CaError::Storage("the store writer dropped the request".into())
}

/// The record (and `names` index prefixes) of a DER certificate this CA signed outside the
/// issuance queue: serial, validity and subject from the certificate (RFC 5280 section
/// 4.1.2), issued now, requested by [`CA_REQUESTER`].
fn signed_record(der: &[u8], profile: &str) -> Result<(CertRecord, Vec<Vec<u8>>), CaError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
        CaError::ca_material_from("a certificate the CA signed does not parse", e.to_string())
    })?;
    let serial = Serial::from_bytes(cert.raw_serial()).ok_or_else(|| {
        CaError::ca_material("a certificate the CA signed has a serial of another form")
    })?;
    let validity = cert.validity();
    let record = CertRecord {
        seq: 0,
        serial,
        der: der.to_vec(),
        profile: profile.to_string(),
        requester: CA_REQUESTER.to_string(),
        issued_at: OffsetDateTime::now_utc().unix_timestamp(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        renewed_from: None,
        audit_seq: None,
    };
    let names = vec![names_prefix(SUBJECT_TAG, &cert.subject().to_string())];
    Ok((record, names))
}

/// What each worker thread holds: the CA, the serial source and where its certificates go.
struct Worker {
    ca: Arc<CertificateAuthority>,
    serials: Arc<dyn SerialSource>,
    sign_at: SignAt,
    to_writer: Sender<WriteOp>,
    metrics: Arc<Metrics>,
    blocked: Arc<BlockedKeys>,
}

impl Worker {
    /// Processes the requests a worker took from the queue at once.
    fn process_batch(&self, batch: Vec<Job>) {
        let metrics = &self.metrics;
        metrics.worker_batch.observe(batch.len() as f64);
        let batch: Vec<Job> = batch
            .into_iter()
            .filter(|job| {
                metrics
                    .stages
                    .queue_wait
                    .observe(job.queued_at.elapsed().as_secs_f64());
                !job.reply.is_closed() // the requester gave up; do not sign for nobody
            })
            .collect();
        let mut verified = verify_csrs(&batch, metrics).into_iter();
        for job in batch {
            let pre = verified.next().flatten();
            self.process(job, pre);
        }
    }

    /// Checks and builds one request's certificate and has it signed; `verified` is its CSR's
    /// verification when [`verify_csrs`] did it.
    fn process(&self, job: Job, verified: Option<Result<VerifiedCsr, CaError>>) {
        let Job {
            work,
            idempotency,
            reply,
            ..
        } = job;
        let enrollment = match &work.input {
            Input::Enrollment { id, .. } => Some(*id),
            _ => None,
        };
        match build(
            &self.ca,
            self.serials.as_ref(),
            &self.metrics,
            &self.blocked,
            &work,
            verified,
        ) {
            Ok(built) => {
                let unsigned = Unsigned {
                    prepared: built.prepared,
                    cert: NewCertificate {
                        record: built.record,
                        idempotency,
                        names: built.names,
                        enrollment,
                        protocol: work.requester.protocol,
                    },
                    reply,
                    build_time: built.build_time,
                };
                self.sign_at.sign(unsigned, &self.to_writer, &self.metrics);
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// For each job whose input is a CSR, the CSR verified (together with the others, see
/// [`csr::verify_all`]); `None` for the others, whose keys [`sign`] checks itself.
fn verify_csrs(batch: &[Job], metrics: &Metrics) -> Vec<Option<Result<VerifiedCsr, CaError>>> {
    let started = Instant::now();
    let mut out: Vec<Option<Result<VerifiedCsr, CaError>>> = Vec::with_capacity(batch.len());
    let mut parsed = Vec::new();
    let mut slots = Vec::new();
    for job in batch {
        match &job.work.input {
            Input::Csr {
                verified: Some(verified),
                ..
            } => out.push(Some(Ok(VerifiedCsr::clone(verified)))),
            Input::Csr { csr, .. } => match csr::parse(csr) {
                Ok(p) => {
                    slots.push(out.len());
                    parsed.push(p);
                    out.push(None);
                }
                Err(e) => out.push(Some(Err(e))),
            },
            _ => out.push(None),
        }
    }
    let count = slots.len();
    for (slot, result) in slots.into_iter().zip(csr::verify_all(parsed)) {
        out[slot] = Some(result);
    }
    if count > 0 {
        let each = started.elapsed().as_secs_f64() / count as f64;
        for _ in 0..count {
            metrics.stages.csr_verify.observe(each);
        }
    }
    out
}

/// Refuses a re-key renewal CSR whose subject is not the certificate's: a renewal keeps the
/// subject (and the SANs) of the certificate it renews, so a CSR naming another subject is
/// [`CaError::SubjectNotAllowed`] rather than silently overridden. A CSR with an empty
/// subject is accepted (it asks for nothing but the new key).
fn check_rekey_subject(
    certificate: &[csr::SubjectAttribute],
    requested: &[csr::SubjectAttribute],
) -> Result<(), CaError> {
    if requested.is_empty() {
        return Ok(());
    }
    let (have, asked) = (name::to_rfc4514(certificate), name::to_rfc4514(requested));
    if have == asked {
        return Ok(());
    }
    Err(CaError::SubjectNotAllowed(format!(
        "the re-key CSR's subject \"{asked}\" differs from the certificate's \"{have}\": a \
         renewal keeps the certificate's subject and names; send a CSR with the same subject \
         (or an empty one), or request a new certificate (POST /v1/certificates) for another \
         subject"
    )))
}

/// A certificate built by [`build`]: its TBSCertificate, the record to store once it is
/// signed, and its `names` index prefixes.
struct Built {
    prepared: PreparedCertificate,
    record: CertRecord,
    names: Vec<Vec<u8>>,
    build_time: std::time::Duration,
}

/// The CPU part: decode and verify once, check against the profile and the blocked keys,
/// draw a serial, build the TBSCertificate.
fn build(
    ca: &CertificateAuthority,
    serials: &dyn SerialSource,
    metrics: &Metrics,
    blocked: &BlockedKeys,
    work: &Work,
    pre_verified: Option<Result<VerifiedCsr, CaError>>,
) -> Result<Built, CaError> {
    let mut clock = StageClock::new();
    // A plain CSR was verified (and timed) with its batch; the others are verified here.
    let verified_here = pre_verified.is_none();
    let (verified, identity, renewed_from) = match &work.input {
        Input::Csr { csr, identity, .. } => (
            pre_verified.unwrap_or_else(|| csr::parse_and_verify(csr))?,
            std::borrow::Cow::Borrowed(identity),
            None,
        ),
        Input::Renewal { old, key } => {
            // The certificate's names were the profile's to check when it was issued; they
            // come back as identity data, over an empty CSR.
            let mut names = inspect::as_request(&old.der)?;
            match key {
                NewKey::Csr(csr) => {
                    let request = csr::parse_and_verify(csr)?;
                    check_rekey_subject(&names.subject, &request.subject)?;
                    names.key = request.key;
                }
                NewKey::VerifiedCsr { verified, .. } => {
                    check_rekey_subject(&names.subject, &verified.subject)?;
                    names.key = verified.key.clone();
                }
                NewKey::Proven(key) => names.key = key.clone(),
                // A key certified before weak keys were refused is not certified again.
                NewKey::Keep => names.key.check_strength()?,
            }
            let identity = Identity {
                subject: std::mem::take(&mut names.subject),
                sans: std::mem::take(&mut names.sans),
            };
            (names, std::borrow::Cow::Owned(identity), Some(old.serial))
        }
        Input::Enrollment {
            subject, sans, key, ..
        } => {
            let key = match key {
                RedeemKey::Csr(csr) => csr::parse_and_verify(csr)?.key,
                RedeemKey::Generated(key) => key.clone(),
            };
            let names = csr::VerifiedCsr {
                key,
                subject: Vec::new(),
                sans: Vec::new(),
            };
            let identity = Identity {
                subject: subject.clone(),
                sans: sans.clone(),
            };
            (names, std::borrow::Cow::Owned(identity), None)
        }
        Input::Key { key, identity } => {
            let names = csr::VerifiedCsr {
                key: key.clone(),
                subject: Vec::new(),
                sans: Vec::new(),
            };
            (names, std::borrow::Cow::Borrowed(identity), None)
        }
    };
    if verified_here {
        clock.lap(&metrics.stages.csr_verify);
    }
    let profile = ca.profile(&work.profile)?;
    let now = OffsetDateTime::now_utc();
    let validated = profile.validate(
        &work.profile,
        verified,
        &identity,
        work.validity_days,
        now.unix_timestamp(),
    )?;
    blocked.check(&validated.key)?;
    clock.lap(&metrics.stages.profile);
    let serial = serials.draw()?;
    let prepared = ca.prepare(&work.profile, serial, &validated, now)?;
    let mut names = Vec::with_capacity(1 + validated.sans.len());
    names.push(names_prefix(
        SUBJECT_TAG,
        &name::to_rfc4514(&validated.subject),
    ));
    // otherNames hold personal identity data (national identity numbers): not indexed.
    for san in validated
        .sans
        .iter()
        .filter(|s| !matches!(s, csr::San::OtherName(_)))
    {
        names.push(names_prefix(SAN_TAG, &san.value()));
    }
    let record = CertRecord {
        seq: 0,
        serial,
        der: Vec::new(),
        profile: work.profile.clone(),
        requester: work.requester.name.clone(),
        issued_at: now.unix_timestamp(),
        not_before: prepared.not_before.unix_timestamp(),
        not_after: prepared.not_after.unix_timestamp(),
        renewed_from,
        audit_seq: None,
    };
    Ok(Built {
        prepared,
        record,
        names,
        build_time: clock.since_last(),
    })
}
