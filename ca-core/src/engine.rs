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

use crossbeam_channel::{Receiver, Sender, TrySendError};
use ring::rand::SystemRandom;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::authority::CertificateAuthority;
use crate::csr;
use crate::error::CaError;
use crate::serial::Serial;
use crate::store::writer::{Committed, NewCertificate, StoreWriter, WriteOp};
use crate::store::{CertRecord, IdempotencyKey, Store};

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

impl IssueRequest {
    /// SHA-256 over the fields that define the request, to tell a retry from a different
    /// request under the same `request_id`.
    fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update((self.csr.len() as u64).to_be_bytes());
        h.update(&self.csr);
        h.update((self.profile.len() as u64).to_be_bytes());
        h.update(self.profile.as_bytes());
        h.update(
            self.validity_days
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
    request: IssueRequest,
    idempotency: Option<(IdempotencyKey, [u8; 32])>,
    reply: oneshot::Sender<Result<Committed, CaError>>,
}

/// The running engine: queue, workers and store writer.
pub struct Engine {
    queue: Option<Sender<Job>>,
    ca: Arc<CertificateAuthority>,
    store: Store,
    workers_done: Receiver<()>,
    writer: Option<StoreWriter>,
    _pool: rayon::ThreadPool,
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
        let writer = StoreWriter::start(store.clone(), config.max_commit_batch)?;
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
            // Each worker is a long-lived loop on the pool; it ends when the queue closes.
            pool.spawn(move || {
                let rng = SystemRandom::new();
                while let Ok(job) = jobs.recv() {
                    process(&ca, &rng, &to_writer, job);
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
            ca,
            store,
            workers_done,
            writer: Some(writer),
            _pool: pool,
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

    /// Requests currently waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.queue.as_ref().map_or(0, Sender::len)
    }

    /// Issues one certificate: answers an earlier result for a repeated `request_id`,
    /// otherwise queues the request and waits until its certificate is durably stored.
    pub async fn issue(&self, request: IssueRequest) -> Result<Issued, CaError> {
        let idempotency = request.request_id.as_ref().map(|id| {
            (
                IdempotencyKey::new(&request.requester.token_hash, id),
                request.digest(),
            )
        });
        if let Some((key, digest)) = &idempotency {
            if let Some(existing) = self.store.idempotency(key)? {
                return self.replay(&request, existing.serial, existing.request_hash, digest);
            }
        }
        for _ in 0..SERIAL_ATTEMPTS {
            let rx = self.submit(request.clone(), idempotency.clone())?;
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
                    let digest = idempotency.as_ref().map_or([0; 32], |(_, d)| *d);
                    return self.replay(&request, existing.serial, existing.request_hash, &digest);
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
        request: &IssueRequest,
        serial: Serial,
        stored_digest: [u8; 32],
        digest: &[u8; 32],
    ) -> Result<Issued, CaError> {
        if stored_digest != *digest {
            return Err(CaError::IdempotencyConflict(
                request.request_id.clone().unwrap_or_default(),
            ));
        }
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
        request: IssueRequest,
        idempotency: Option<(IdempotencyKey, [u8; 32])>,
    ) -> Result<oneshot::Receiver<Result<Committed, CaError>>, CaError> {
        let queue = self.queue.as_ref().ok_or(CaError::ShuttingDown)?;
        let (reply, rx) = oneshot::channel();
        queue
            .try_send(Job {
                request,
                idempotency,
                reply,
            })
            .map_err(|e| match e {
                TrySendError::Full(_) => CaError::Overloaded,
                TrySendError::Disconnected(_) => CaError::ShuttingDown,
            })?;
        Ok(rx)
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

/// Verifies, checks, signs and hands one request to the writer.
fn process(ca: &CertificateAuthority, rng: &SystemRandom, to_writer: &Sender<WriteOp>, job: Job) {
    let Job {
        request,
        idempotency,
        reply,
    } = job;
    if reply.is_closed() {
        return; // the requester gave up; do not sign for nobody
    }
    let signed = (|| {
        let verified = csr::parse_and_verify(&request.csr)?;
        let profile = ca.profile(&request.profile)?;
        let validated = profile.validate(&request.profile, verified, request.validity_days)?;
        let serial = Serial::random(rng)
            .map_err(|_| CaError::Signing("the system random generator failed".into()))?;
        let now = OffsetDateTime::now_utc();
        let signed = ca.sign(&request.profile, serial, &validated, now)?;
        Ok::<_, CaError>(CertRecord {
            seq: 0,
            serial: *serial.as_bytes(),
            der: signed.der,
            profile: request.profile,
            requester: request.requester.name,
            issued_at: now.unix_timestamp(),
            not_before: signed.not_before.unix_timestamp(),
            not_after: signed.not_after.unix_timestamp(),
            renewed_from: None,
        })
    })();
    match signed {
        Ok(record) => {
            let op = WriteOp {
                cert: NewCertificate {
                    record,
                    idempotency,
                },
                reply,
            };
            if let Err(e) = to_writer.send(op) {
                let _ = e.0.reply.send(Err(CaError::ShuttingDown));
            }
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}
