//! The CA key with its metrics. Every signature the CA key makes — certificates, CRLs, OCSP
//! answers it signs itself, audit checkpoints, the server's own TLS certificate — goes
//! through one [`MeteredSigner`], which times it and counts failures, and which exposes the
//! session pool of a key in a device (PKCS#11).

use std::sync::Arc;
use std::time::Instant;

use keys::{SessionPool, SignError, SignatureScheme, Signer, SignerLatency};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{exponential_buckets, Histogram, HistogramOpts, IntCounterVec, IntGaugeVec, Opts};

use crate::CaError;

/// A [`Signer`] that records `ca_signer_seconds` (the time of each signature, failures
/// included), `ca_signer_errors_total{retryable}` and, when scraped,
/// `ca_signer_sessions{state="size|in_use"}` for a key with a session pool.
pub struct MeteredSigner {
    inner: Arc<dyn Signer>,
    seconds: Histogram,
    errors: IntCounterVec,
}

impl MeteredSigner {
    /// Wraps `inner`; register [`MeteredSigner::collector`] to export the figures.
    pub fn new(inner: Arc<dyn Signer>) -> Result<Self, CaError> {
        let fail = |e: prometheus::Error| CaError::Storage(format!("defining a metric: {e}"));
        // 5 µs to about 10 s: ring signs in tens of µs, an HSM in 0.05 to 5 ms, a stalled
        // device until its timeout.
        let seconds = Histogram::with_opts(
            HistogramOpts::new(
                "signer_seconds",
                "Time of each signature by the CA key (certificates, CRLs, OCSP, checkpoints)",
            )
            .buckets(exponential_buckets(5e-6, 2.0, 22).map_err(fail)?),
        )
        .map_err(fail)?;
        let errors = IntCounterVec::new(
            Opts::new(
                "signer_errors_total",
                "Signatures by the CA key that failed, by whether trying again may help",
            ),
            &["retryable"],
        )
        .map_err(fail)?;
        for retryable in ["true", "false"] {
            errors.with_label_values(&[retryable]);
        }
        Ok(MeteredSigner {
            inner,
            seconds,
            errors,
        })
    }

    /// The collector of this signer's metrics, for a Prometheus registry.
    pub fn collector(self: &Arc<Self>) -> Box<dyn Collector> {
        Box::new(SignerCollector {
            signer: self.clone(),
            sessions: IntGaugeVec::new(
                Opts::new(
                    "signer_sessions",
                    "Sessions of the CA key's device: the pool's size and those signing now",
                ),
                &["state"],
            )
            .ok(),
        })
    }

    /// Runs one signature, observing its time and counting its failure.
    fn measured(
        &self,
        sign: impl FnOnce() -> Result<Vec<u8>, SignError>,
    ) -> Result<Vec<u8>, SignError> {
        let started = Instant::now();
        let signed = sign();
        self.seconds.observe(started.elapsed().as_secs_f64());
        if let Err(e) = &signed {
            let retryable = if e.is_retryable() { "true" } else { "false" };
            self.errors.with_label_values(&[retryable]).inc();
        }
        signed
    }
}

impl Signer for MeteredSigner {
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
        self.measured(|| self.inner.sign(message))
    }

    fn supports(&self, scheme: SignatureScheme) -> bool {
        self.inner.supports(scheme)
    }

    fn sign_with(&self, scheme: SignatureScheme, message: &[u8]) -> Result<Vec<u8>, SignError> {
        self.measured(|| self.inner.sign_with(scheme, message))
    }

    fn latency(&self) -> SignerLatency {
        self.inner.latency()
    }

    fn check(&self) -> Result<(), SignError> {
        self.inner.check()
    }

    fn sessions(&self) -> Option<SessionPool> {
        self.inner.sessions()
    }
}

/// Exports a [`MeteredSigner`]'s histogram and counters, and samples its session pool.
struct SignerCollector {
    signer: Arc<MeteredSigner>,
    sessions: Option<IntGaugeVec>,
}

impl Collector for SignerCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.signer.seconds.desc();
        descs.extend(self.signer.errors.desc());
        if let Some(sessions) = &self.sessions {
            descs.extend(sessions.desc());
        }
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.signer.seconds.collect();
        families.extend(self.signer.errors.collect());
        if let (Some(gauge), Some(pool)) = (&self.sessions, self.signer.sessions()) {
            gauge
                .with_label_values(&["size"])
                .set(i64::try_from(pool.size).unwrap_or(i64::MAX));
            gauge
                .with_label_values(&["in_use"])
                .set(i64::try_from(pool.in_use).unwrap_or(i64::MAX));
            families.extend(gauge.collect());
        }
        families
    }
}
