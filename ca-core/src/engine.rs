//! The issuance engine.
//!
//! ```text
//! submit ──▶ bounded queue (crossbeam) ──▶ worker pool (rayon, one per core):
//!                                            decode CSR once → verify POP → profile check
//!                                            → serial → build → sign
//!                                                   │
//! reply ◀── store writer (one thread): WriteBatch of everything that arrived, WAL synced
//!           once, then every waiter is answered
//! ```
//!
//! Nothing is answered before it is durable. A full queue refuses at once
//! ([`CaError::Overloaded`]), so latency stays bounded and memory flat.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ring::rand::SystemRandom;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::audit::{AuditEvent, AuditHead, Checkpoint};
use crate::authority::CertificateAuthority;
use crate::error::{CaError, ErrorClass};
use crate::metrics::Metrics;
use crate::revocation::{Revocation, RevocationReason};
use crate::serial::Serial;
use crate::store::query::{names_prefix, SAN_TAG, SUBJECT_TAG};
use crate::store::writer::{
    Committed, CrlPosition, CrlRequest, NewCertificate, RevokeRequest, StoreWriter, WriteOp,
};
use crate::store::{CertRecord, IdempotencyKey, IdempotencyRecord, Store, TokenRecord};
use crate::{csr, inspect, name};

/// How many times an issuance is retried after a serial collision (each at odds of 2^-126).
const SERIAL_ATTEMPTS: usize = 3;

/// Engine sizing.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Worker threads for CSR verification and signing; 0 means one per core.
    pub workers: usize,
    /// Requests that may wait for a worker before new ones are refused with 429.
    pub queue_capacity: usize,
    /// Most certificates committed in one WriteBatch.
    pub max_commit_batch: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 0,
            queue_capacity: 4096,
            max_commit_batch: 1024,
        }
    }
}

/// Who asked: the requesting token's name and hash.
#[derive(Clone, Debug)]
pub struct Requester {
    /// The token's name (stored as `requester`).
    pub name: String,
    /// SHA-256 of the token (scopes `request_id`s).
    pub token_hash: [u8; 32],
}

/// One issuance request, as the RA sent it.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// The CSR, PEM or DER.
    pub csr: Vec<u8>,
    /// The profile name.
    pub profile: String,
    /// Requested validity in days; the profile's default when absent.
    pub validity_days: Option<u32>,
    /// The RA's idempotency key.
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
    /// A CSR for a new key (re-key); `None` keeps the old public key.
    pub csr: Option<Vec<u8>>,
    /// Requested validity in days; the profile's default when absent.
    pub validity_days: Option<u32>,
    /// The RA's idempotency key.
    pub request_id: Option<String>,
    /// Who asked.
    pub requester: Requester,
}

/// Where a job's subject, names and key come from.
#[derive(Debug)]
enum Input {
    /// A CSR: everything from it, checked against the profile.
    Csr(Vec<u8>),
    /// A renewal: names from the old certificate; the key from it or from a CSR.
    Renewal {
        old: Box<CertRecord>,
        csr: Option<Vec<u8>>,
    },
}

/// What the workers process: one certificate to verify, check, sign and store.
#[derive(Debug)]
struct Work {
    input: Input,
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
            Input::Csr(csr) => field(csr),
            Input::Renewal { old, csr } => {
                field(b"renewal");
                field(&old.serial);
                field(csr.as_deref().unwrap_or_default());
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
    queue: Option<Sender<Job>>,
    to_writer: Option<Sender<WriteOp>>,
    ca: Arc<CertificateAuthority>,
    store: Store,
    workers_done: Receiver<()>,
    writer: Option<StoreWriter>,
    _pool: rayon::ThreadPool,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the writer and the worker pool.
    pub fn start(
        ca: Arc<CertificateAuthority>,
        store: Store,
        config: &EngineConfig,
    ) -> Result<Self, CaError> {
        let workers = if config.workers == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            config.workers
        };
        let metrics = Arc::new(Metrics::new()?);
        let writer = StoreWriter::start(store.clone(), config.max_commit_batch, metrics.clone())?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("ca-worker-{i}"))
            .build()
            .map_err(|e| CaError::Signing(format!("starting the worker pool: {e}")))?;
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(config.queue_capacity.max(1));
        let (done_tx, workers_done) = crossbeam_channel::bounded::<()>(0);
        for _ in 0..workers {
            let jobs = jobs.clone();
            let ca = ca.clone();
            let to_writer = writer.sender();
            let done = done_tx.clone();
            let metrics = metrics.clone();
            // Each worker is a long-lived loop on the pool; it ends when the queue closes.
            pool.spawn(move || {
                let rng = SystemRandom::new();
                while let Ok(job) = jobs.recv() {
                    process(&ca, &rng, &to_writer, &metrics, job);
                }
                drop(done);
            });
        }
        tracing::info!(
            workers,
            queue = config.queue_capacity,
            "issuance engine started"
        );
        Ok(Engine {
            queue: Some(queue),
            to_writer: Some(writer.sender()),
            ca,
            store,
            workers_done,
            writer: Some(writer),
            _pool: pool,
            metrics,
        })
    }

    /// The CA this engine issues for.
    pub fn ca(&self) -> &Arc<CertificateAuthority> {
        &self.ca
    }

    /// The store this engine writes to.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The engine's metrics (and their registry, which the server exposes).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Requests currently waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.queue.as_ref().map_or(0, Sender::len)
    }

    /// Issues one certificate: answers an earlier result for a repeated `request_id`,
    /// otherwise queues the request and waits until its certificate is durably stored.
    pub async fn issue(&self, request: IssueRequest) -> Result<Issued, CaError> {
        self.run(Work {
            input: Input::Csr(request.csr),
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
            profile: old.profile.clone(),
            input: Input::Renewal {
                old: Box::new(old),
                csr: request.csr,
            },
            validity_days: request.validity_days,
            request_id: request.request_id,
            requester: request.requester,
        };
        self.run(work).await
    }

    /// Refuses the renewal of a revoked or held certificate, or of one expired longer ago than
    /// its profile's grace period. Other work passes.
    fn check_renewable(&self, work: &Work) -> Result<(), CaError> {
        let Input::Renewal { old, .. } = &work.input else {
            return Ok(());
        };
        let serial = Serial::from_bytes(&old.serial)
            .ok_or_else(|| CaError::Storage("stored serial malformed".into()))?;
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
        self.check_renewable(&work)?;
        let work = Arc::new(work);
        for _ in 0..SERIAL_ATTEMPTS {
            let rx = self.submit(work.clone(), idempotency.clone())?;
            let committed = rx
                .await
                .map_err(|_| CaError::Storage("the request was dropped before commit".into()))?;
            match committed {
                Ok(Committed::Stored(record)) => {
                    return Ok(Issued {
                        record,
                        replayed: false,
                    })
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
    /// `actor` asked. Revoking a revoked certificate is [`CaError::AlreadyRevoked`].
    pub async fn revoke(
        &self,
        serial: Serial,
        reason: RevocationReason,
        invalidity_date: Option<i64>,
        actor: &str,
    ) -> Result<Revocation, CaError> {
        let request = RevokeRequest {
            serial,
            reason,
            at: OffsetDateTime::now_utc().unix_timestamp(),
            invalidity_date,
            actor: actor.to_string(),
        };
        let revocation = self.write(|reply| WriteOp::Revoke(request, reply)).await?;
        self.metrics
            .revocations
            .with_label_values(&[reason.name()])
            .inc();
        Ok(revocation)
    }

    /// Ends a certificateHold, durably, as `actor` asked.
    pub async fn release_hold(&self, serial: Serial, actor: &str) -> Result<(), CaError> {
        let actor = actor.to_string();
        self.write(|reply| WriteOp::ReleaseHold(serial, actor, reply))
            .await
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
}

fn writer_gone() -> CaError {
    CaError::Storage("the store writer dropped the request".into())
}

/// Verifies, checks, signs and hands one request to the writer.
fn process(
    ca: &CertificateAuthority,
    rng: &SystemRandom,
    to_writer: &Sender<WriteOp>,
    metrics: &Metrics,
    job: Job,
) {
    let Job {
        work,
        idempotency,
        reply,
        queued_at,
    } = job;
    metrics
        .stages
        .queue_wait
        .observe(queued_at.elapsed().as_secs_f64());
    if reply.is_closed() {
        return; // the requester gave up; do not sign for nobody
    }
    match sign(ca, rng, metrics, &work) {
        Ok((record, names)) => {
            let cert = NewCertificate {
                record,
                idempotency,
                names,
            };
            if let Err(e) = to_writer.send(WriteOp::Certificate(cert, reply)) {
                if let WriteOp::Certificate(_, reply) = e.0 {
                    let _ = reply.send(Err(CaError::ShuttingDown));
                }
            }
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// The CPU part: decode and verify once, check against the profile, draw a serial, sign.
/// Returns the record and its `names` index prefixes.
fn sign(
    ca: &CertificateAuthority,
    rng: &SystemRandom,
    metrics: &Metrics,
    work: &Work,
) -> Result<(CertRecord, Vec<Vec<u8>>), CaError> {
    let mut clock = StageClock::new();
    let (verified, renewed_from) = match &work.input {
        Input::Csr(csr) => (csr::parse_and_verify(csr)?, None),
        Input::Renewal { old, csr } => {
            let mut names = inspect::as_request(&old.der)?;
            if let Some(csr) = csr {
                names.key = csr::parse_and_verify(csr)?.key;
            }
            (names, Some(old.serial))
        }
    };
    clock.lap(&metrics.stages.csr_verify);
    let profile = ca.profile(&work.profile)?;
    let validated = profile.validate(&work.profile, verified, work.validity_days)?;
    clock.lap(&metrics.stages.profile);
    let serial = Serial::random(rng)
        .map_err(|_| CaError::Signing("the system random generator failed".into()))?;
    let now = OffsetDateTime::now_utc();
    let signed = ca.sign(&work.profile, serial, &validated, now)?;
    clock.lap(&metrics.stages.sign);
    let mut names = Vec::with_capacity(1 + validated.sans.len());
    names.push(names_prefix(
        SUBJECT_TAG,
        &name::to_rfc4514(&validated.subject),
    ));
    for san in &validated.sans {
        names.push(names_prefix(SAN_TAG, &san.value()));
    }
    let record = CertRecord {
        seq: 0,
        serial: *serial.as_bytes(),
        der: signed.der,
        profile: work.profile.clone(),
        requester: work.requester.name.clone(),
        issued_at: now.unix_timestamp(),
        not_before: signed.not_before.unix_timestamp(),
        not_after: signed.not_after.unix_timestamp(),
        renewed_from,
    };
    Ok((record, names))
}
