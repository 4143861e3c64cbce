//! The signing stage of issuance: where a certificate the workers built gets the CA key's
//! signature before it goes to the store writer.
//!
//! A key in process memory signs in microseconds of CPU, so the worker that built the
//! certificate signs it too ([`SignAt::Worker`]): no hand-over, nothing to measure. A key in
//! an HSM makes each signature a wait of milliseconds; then the workers hand certificates to
//! `[engine] signers` threads ([`SignAt::Stage`]), each keeping one signature in flight, so
//! that throughput is `signers / latency` while the workers stay free for CPU work.
//!
//! ```text
//! worker: verify → profile → serial → TBSCertificate ─┬─ sign here (Computation) ─┐
//!                                                     └─▶ signing queue ─▶ signer ─┴─▶ writer
//! ```

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use keys::{SignError, Signer, SignerLatency};
use tokio::sync::oneshot;

use crate::authority::PreparedCertificate;
use crate::error::CaError;
use crate::metrics::Metrics;
use crate::store::writer::{Committed, NewCertificate, WriteOp};

/// How many times a signature is asked for when the signer says its failure is transient.
const SIGN_ATTEMPTS: usize = 3;

/// A certificate built by a worker, waiting for its signature, with everything the writer
/// needs once it has one.
pub(crate) struct Unsigned {
    /// The TBSCertificate and its validity.
    pub prepared: PreparedCertificate,
    /// The record to store (its `der` is filled in once signed).
    pub cert: NewCertificate,
    /// Where the requester waits.
    pub reply: oneshot::Sender<Result<Committed, CaError>>,
    /// How long the worker took to draw the serial and build the TBSCertificate.
    pub build_time: Duration,
}

/// Where the workers have their certificates signed.
#[derive(Clone)]
pub(crate) enum SignAt {
    /// On the worker itself: the signer's latency is computation.
    Worker(Arc<dyn Signer>),
    /// By the signing stage's threads: the signer's latency is a wait.
    Stage(Sender<(Unsigned, Instant)>),
}

impl SignAt {
    /// Signs `unsigned` here, or queues it for the stage (waiting while the stage's queue is
    /// full, which holds the workers back and so makes the engine's queue refuse new work).
    pub fn sign(&self, unsigned: Unsigned, to_writer: &Sender<WriteOp>, metrics: &Metrics) {
        match self {
            SignAt::Worker(signer) => {
                let started = Instant::now();
                let signature = sign_with_retries(signer.as_ref(), &unsigned.prepared);
                complete(unsigned, signature, started.elapsed(), to_writer, metrics);
            }
            SignAt::Stage(queue) => {
                if let Err(e) = queue.send((unsigned, Instant::now())) {
                    let (unsigned, _) = e.0;
                    let _ = unsigned.reply.send(Err(CaError::ShuttingDown));
                }
            }
        }
    }
}

/// The signing stage's threads, which end once every worker has dropped its [`SignAt`] and
/// the queue is empty.
pub(crate) struct SigningStage {
    threads: Vec<JoinHandle<()>>,
}

impl SigningStage {
    /// Where to sign with `signer`: on the workers when its latency is computation, else on
    /// a stage of `signers` threads (at least one) whose queue holds up to `capacity`
    /// certificates.
    pub fn start(
        signer: Arc<dyn Signer>,
        signers: usize,
        capacity: usize,
        to_writer: &Sender<WriteOp>,
        metrics: &Arc<Metrics>,
    ) -> Result<(SignAt, SigningStage), CaError> {
        if signer.latency() == SignerLatency::Computation {
            let stage = SigningStage {
                threads: Vec::new(),
            };
            return Ok((SignAt::Worker(signer), stage));
        }
        let (queue, waiting) = crossbeam_channel::bounded(capacity.max(1));
        let threads = (0..signers.max(1))
            .map(|i| {
                let (signer, waiting) = (signer.clone(), waiting.clone());
                let (to_writer, metrics) = (to_writer.clone(), metrics.clone());
                std::thread::Builder::new()
                    .name(format!("ca-signer-{i}"))
                    .spawn(move || run_signer(signer.as_ref(), &waiting, &to_writer, &metrics))
                    .map_err(|e| CaError::internal("starting a signing thread", Some(Box::new(e))))
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        tracing::info!(
            signers = threads.len(),
            "signing stage started: the CA key's signatures are waits on a device"
        );
        Ok((SignAt::Stage(queue), SigningStage { threads }))
    }

    /// Waits until every queued certificate is signed and handed to the writer.
    pub fn join(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a signing thread panicked");
            }
        }
    }
}

/// One signing thread: one signature in flight at a time.
fn run_signer(
    signer: &dyn Signer,
    waiting: &Receiver<(Unsigned, Instant)>,
    to_writer: &Sender<WriteOp>,
    metrics: &Metrics,
) {
    while let Ok((unsigned, queued_at)) = waiting.recv() {
        metrics
            .stages
            .signing_wait
            .observe(queued_at.elapsed().as_secs_f64());
        if unsigned.reply.is_closed() {
            continue; // the requester gave up; do not spend the device on nobody
        }
        let started = Instant::now();
        let signature = sign_with_retries(signer, &unsigned.prepared);
        complete(unsigned, signature, started.elapsed(), to_writer, metrics);
    }
}

/// Asks `signer` for the signature of `prepared` (with its profile's scheme), again (up to
/// [`SIGN_ATTEMPTS`] in all) while it says its failure is transient.
fn sign_with_retries(
    signer: &dyn Signer,
    prepared: &PreparedCertificate,
) -> Result<Vec<u8>, SignError> {
    let mut attempt = 1;
    loop {
        match signer.sign_with(prepared.scheme, prepared.message()) {
            Err(e) if e.is_retryable() && attempt < SIGN_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "the CA key did not sign; trying again");
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Puts the signature into the certificate and hands it to the writer, or answers the
/// requester with the failure.
fn complete(
    unsigned: Unsigned,
    signature: Result<Vec<u8>, SignError>,
    sign_time: Duration,
    to_writer: &Sender<WriteOp>,
    metrics: &Metrics,
) {
    let Unsigned {
        prepared,
        mut cert,
        reply,
        build_time,
    } = unsigned;
    metrics
        .stages
        .sign
        .observe((build_time + sign_time).as_secs_f64());
    // The front end that answers the error logs it with its causes (`CaError::chain`).
    let signed = signature
        .map_err(CaError::Signing)
        .and_then(|signature| prepared.assemble(&signature));
    match signed {
        Ok(signed) => {
            cert.record.der = signed.der;
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
