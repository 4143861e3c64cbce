//! Prometheus metrics of the core: what was issued, revoked and renewed, how long each stage
//! of issuance takes, and how the store commits, so that an operator sees in production the
//! same breakdown the benchmarks show.

use prometheus::{
    exponential_buckets, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};

use crate::audit::Checkpoint;
use ca_x509::error::CaError;
use ca_x509::revocation::DegradedEntries;

/// The stage histograms of issuance.
#[derive(Clone, Debug)]
pub struct Stages {
    /// From submission until a worker takes the request.
    pub queue_wait: Histogram,
    /// Decoding the CSR and verifying its signature.
    pub csr_verify: Histogram,
    /// The profile check.
    pub profile: Histogram,
    /// Drawing the serial, building and signing the certificate (the signature's own time,
    /// without its wait in the signing stage's queue).
    pub sign: Histogram,
    /// From a worker's hand-over until a signing thread takes the certificate (only with a
    /// signing stage, i.e. a signer whose signatures are waits on a device).
    pub signing_wait: Histogram,
}

/// The core's metrics, registered on one registry that the server also exposes.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// Certificates by profile and outcome (`issued`, `renewed`, `refused`, `failed`).
    pub certificates: IntCounterVec,
    /// Refusals and failures by error code.
    pub errors: IntCounterVec,
    /// Revocations by reason.
    pub revocations: IntCounterVec,
    /// Seconds per stage of issuance (`ca_stage_seconds{stage=...}`), resolved once so that
    /// the hot path does no label lookup.
    pub stages: Stages,
    /// Seconds per store commit (one synced WriteBatch).
    pub commit_seconds: Histogram,
    /// Operations per store commit.
    pub commit_batch: Histogram,
    /// Requests per batch call.
    pub request_batch: Histogram,
    /// Requests a worker took from the queue at once (their CSR signatures are verified
    /// together).
    pub worker_batch: Histogram,
    /// Requests waiting for a worker (sampled when scraped).
    pub queue_depth: IntGauge,
    /// Requests the queue holds (`[engine] queue_capacity`); beyond it requests are refused
    /// `overloaded`. Saturation is `queue_depth / queue_capacity`.
    pub queue_capacity: IntGauge,
    /// Seconds the system clock is behind the newest time the CA signed (0 when it is not);
    /// beyond `[engine] clock_tolerance_secs` nothing is signed ([`crate::clock`]).
    pub clock_behind: IntGauge,
    /// RocksDB's memory by use (`block_cache`, of which `block_cache_pinned`, `memtables`,
    /// `table_readers`), in bytes (sampled when scraped).
    pub store_memory: IntGaugeVec,
    /// 1 while the store can write, 0 while it cannot (its filesystem below `[store]
    /// min_free_bytes`, full, or its last write failed); sampled when scraped.
    pub store_writable: IntGauge,
    /// Number of the last complete CRL.
    pub crl_number: IntGauge,
    /// Entries on the last complete CRL.
    pub crl_entries: IntGauge,
    /// Size of the last complete CRL in bytes.
    pub crl_bytes: IntGauge,
    /// thisUpdate of the last complete CRL, Unix seconds (its age is now minus this).
    pub crl_this_update: IntGauge,
    /// OCSP responses by response status (`successful`, `malformed_request`,
    /// `internal_error`, `try_later`).
    pub ocsp_responses: IntCounterVec,
    /// OCSP signatures by why they were made (`kind`: `cache_fill`, `on_demand`; see
    /// `ocsp::SignatureKind`).
    pub ocsp_signatures: IntCounterVec,
    /// Sequence number of the audit log's newest entry (sampled when scraped).
    pub audit_head: IntGauge,
    /// Sequence number of the newest signed audit checkpoint.
    pub audit_checkpoint: IntGauge,
    /// When the newest signed audit checkpoint was signed, Unix seconds (its age is now minus
    /// this; a checkpoint is signed only when the head moved).
    pub audit_checkpoint_time: IntGauge,
    /// Stored revocations written into a CRL or an OCSP answer without a field that could
    /// not be encoded, by field (`ca_status_entries_degraded_total{field=...}`).
    pub status_entries_degraded: IntCounterVec,
    /// notAfter of the CA's own certificates, Unix seconds, by `certificate` (`ca`, and
    /// `ocsp_responder` when a delegated responder signs OCSP answers); sampled when scraped.
    pub certificate_not_after: IntGaugeVec,
    /// nextUpdate of the last CRLs built, Unix seconds, by `kind` (`full`, `delta`).
    pub crl_next_update: IntGaugeVec,
    /// Enrollments by `state` (`pending`, `redeemed`, `locked`, `expired`); counted from the
    /// store when scraped.
    pub enrollments: IntGaugeVec,
    /// Enrollment codes checked against their stored hash (each one PBKDF2 derivation), by
    /// `outcome` (`match`, `mismatch`). A redemption for an unknown, expired, locked or
    /// redeemed enrollment is refused before this point and is not counted.
    pub enrollment_code_checks: IntCounterVec,
}

/// Where [`crate::enrollment::CodeHash::verify`] counts each code it derives and compares (one
/// PBKDF2 each), by outcome: `ca_enrollment_code_checks_total` when attached to the metrics.
/// Every derivation goes through it, so the metric shows any path that spends PBKDF2 work.
#[derive(Clone, Debug, Default)]
pub struct CodeChecks {
    counter: Option<IntCounterVec>,
}

impl CodeChecks {
    /// Counts into `metrics`' `enrollment_code_checks` counter.
    pub fn counted(metrics: &Metrics) -> Self {
        CodeChecks {
            counter: Some(metrics.enrollment_code_checks.clone()),
        }
    }

    /// Notes one derivation and comparison, and whether the code matched.
    pub fn record(&self, matched: bool) {
        if let Some(counter) = &self.counter {
            let outcome = if matched { "match" } else { "mismatch" };
            counter.with_label_values(&[outcome]).inc();
        }
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: T,
) -> Result<T, CaError> {
    registry
        .register(Box::new(metric.clone()))
        .map_err(|e| CaError::internal("registering a metric", Some(Box::new(e))))?;
    Ok(metric)
}

fn build<T>(result: prometheus::Result<T>) -> Result<T, CaError> {
    result.map_err(|e| CaError::internal("defining a metric", Some(Box::new(e))))
}

impl Metrics {
    /// Creates the metrics on a new registry (names prefixed `ca_`).
    pub fn new() -> Result<Self, CaError> {
        let registry = Registry::new_custom(Some("ca".into()), None)
            .map_err(|e| CaError::internal("creating the metrics registry", Some(Box::new(e))))?;
        let r = &registry;
        // 5 µs to about 1.3 s: signing is tens of µs, a synced commit about a millisecond.
        let fine = build(exponential_buckets(5e-6, 2.0, 19))?;
        let counter = |name: &str, help: &str, labels: &[&str]| {
            build(IntCounterVec::new(Opts::new(name, help), labels)).and_then(|m| register(r, m))
        };
        let gauge =
            |name: &str, help: &str| build(IntGauge::new(name, help)).and_then(|m| register(r, m));
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            build(IntGaugeVec::new(Opts::new(name, help), labels)).and_then(|m| register(r, m))
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            build(Histogram::with_opts(
                HistogramOpts::new(name, help).buckets(buckets),
            ))
            .and_then(|m| register(r, m))
        };
        Ok(Metrics {
            certificates: counter(
                "certificates_total",
                "Certificate requests by profile and outcome",
                &["profile", "outcome"],
            )?,
            errors: counter(
                "errors_total",
                "Refusals and failures by error code",
                &["code"],
            )?,
            revocations: counter("revocations_total", "Revocations by reason", &["reason"])?,
            stages: {
                let vec = register(
                    r,
                    build(HistogramVec::new(
                        HistogramOpts::new("stage_seconds", "Seconds per stage of issuance")
                            .buckets(fine.clone()),
                        &["stage"],
                    ))?,
                )?;
                let stage = |name: &str| build(vec.get_metric_with_label_values(&[name]));
                Stages {
                    queue_wait: stage("queue_wait")?,
                    csr_verify: stage("csr_verify")?,
                    profile: stage("profile")?,
                    sign: stage("sign")?,
                    signing_wait: stage("signing_wait")?,
                }
            },
            commit_seconds: histogram(
                "store_commit_seconds",
                "Seconds per synced store commit",
                fine,
            )?,
            commit_batch: histogram(
                "store_commit_batch_size",
                "Operations per store commit",
                build(exponential_buckets(1.0, 2.0, 12))?,
            )?,
            request_batch: histogram(
                "request_batch_size",
                "Requests per batch call",
                build(exponential_buckets(1.0, 2.0, 11))?,
            )?,
            worker_batch: histogram(
                "worker_batch_size",
                "Requests a worker took from the queue at once",
                build(exponential_buckets(1.0, 2.0, 7))?,
            )?,
            queue_depth: gauge("queue_depth", "Requests waiting for a worker")?,
            queue_capacity: gauge(
                "queue_capacity",
                "Requests the queue holds; beyond it requests are refused overloaded",
            )?,
            clock_behind: gauge(
                "clock_behind_seconds",
                "Seconds the system clock is behind the newest time the CA signed",
            )?,
            store_memory: build(IntGaugeVec::new(
                Opts::new("store_memory_bytes", "RocksDB memory by use, in bytes"),
                &["use"],
            ))
            .and_then(|m| register(r, m))?,
            store_writable: gauge(
                "store_writable",
                "1 while the store can write, 0 while its disk is full or below the reserve",
            )?,
            crl_number: gauge("crl_number", "Number of the last complete CRL")?,
            crl_entries: gauge("crl_entries", "Entries on the last complete CRL")?,
            crl_bytes: gauge("crl_bytes", "Size of the last complete CRL in bytes")?,
            crl_this_update: gauge(
                "crl_this_update_seconds",
                "thisUpdate of the last complete CRL, Unix seconds",
            )?,
            ocsp_responses: counter(
                "ocsp_responses_total",
                "OCSP responses by response status",
                &["status"],
            )?,
            ocsp_signatures: counter(
                "ocsp_signatures_total",
                "OCSP responses signed, by kind (cache_fill, on_demand)",
                &["kind"],
            )?,
            audit_head: gauge(
                "audit_head_seq",
                "Sequence number of the newest audit entry",
            )?,
            audit_checkpoint: gauge(
                "audit_checkpoint_seq",
                "Sequence number of the newest signed audit checkpoint",
            )?,
            audit_checkpoint_time: gauge(
                "audit_checkpoint_time_seconds",
                "When the newest signed audit checkpoint was signed, Unix seconds",
            )?,
            status_entries_degraded: counter(
                "status_entries_degraded_total",
                "Stored revocations written into a CRL or OCSP answer without a field that \
                 cannot be encoded, by field",
                &["field"],
            )?,
            certificate_not_after: gauge_vec(
                "certificate_not_after_seconds",
                "notAfter of the CA certificate and of the delegated OCSP responder \
                 certificate, Unix seconds",
                &["certificate"],
            )?,
            crl_next_update: gauge_vec(
                "crl_next_update_seconds",
                "nextUpdate of the last CRLs built, Unix seconds, by kind (full, delta)",
                &["kind"],
            )?,
            enrollments: gauge_vec(
                "enrollments",
                "Enrollments by state (pending, redeemed, locked, expired)",
                &["state"],
            )?,
            enrollment_code_checks: counter(
                "enrollment_code_checks_total",
                "Enrollment codes checked against their stored hash (one PBKDF2 each), by \
                 outcome (match, mismatch)",
                &["outcome"],
            )?,
            registry,
        })
    }

    /// The registry, for the server to add its own metrics and to expose all of them.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A [`DegradedEntries`] that counts into `ca_status_entries_degraded_total{field}` (and
    /// logs).
    pub fn degraded_entries(&self) -> DegradedEntries {
        let counter = self.status_entries_degraded.clone();
        DegradedEntries::counting(move |field| counter.with_label_values(&[field]).inc())
    }

    /// Shows `checkpoint` as the newest signed audit checkpoint (`ca_audit_checkpoint_seq`,
    /// `ca_audit_checkpoint_time_seconds`).
    pub fn checkpoint(&self, checkpoint: &Checkpoint) {
        self.audit_checkpoint
            .set(i64::try_from(checkpoint.head.seq).unwrap_or(i64::MAX));
        self.audit_checkpoint_time.set(checkpoint.at);
    }

    /// Counts a refusal or failure under its API code.
    pub fn error(&self, error: &CaError) {
        self.errors.with_label_values(&[error.code()]).inc();
    }
}
