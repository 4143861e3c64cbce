//! The machine's limit L for issuance (issue 4): `cores / (1/sign_rate + 1/verify_rate)`,
//! both rates measured here with `ring`, the library the CA uses, for the CA key's signature
//! and the CSR key's verification. With the CA key in a PKCS#11 token ([`measure_with`]) the
//! signing rate is the token's through the signer's session pool, which gives L_hsm (issue
//! 20); for a token that signs on the host's CPUs (SoftHSM2) that is still the host's limit.

use std::time::{Duration, Instant};

use keys::{KeyAlgorithm, Signer, SoftwareKey};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Serialize;

use crate::CsrKey;

/// The measured limit.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Limit {
    /// What signs: `ring`, or `pkcs11` (the CA key in a token, through its session pool).
    pub signer: &'static str,
    /// CPU time of this process per CA key signature, in microseconds, one signature at a
    /// time: the cost on the host's CPUs of the signing path.
    pub sign_cpu_us: f64,
    /// CA key signatures per second on one core.
    pub sign_per_sec: f64,
    /// CSR signature verifications per second on one core.
    pub verify_per_sec: f64,
    /// Cores available to this process.
    pub cores: usize,
    /// Certificates per second the crypto allows on all cores: L as issue 4 defines it.
    pub certificates_per_sec: f64,
    /// The same rates measured with one thread per core at once, summed: what the cores
    /// really give together (virtual cores may share a physical one).
    pub parallel_sign_per_sec: f64,
    /// See `parallel_sign_per_sec`.
    pub parallel_verify_per_sec: f64,
    /// `1 / (1/parallel_sign + 1/parallel_verify)`: the limit the hardware shows when
    /// every core works at once.
    pub parallel_certificates_per_sec: f64,
}

impl Limit {
    /// L_acme: ACME orders per second the crypto allows on all cores, when an order costs
    /// `verifications` P-256 signature verifications (its JWS requests and its CSR; ES256
    /// and a P-256 CSR are the same ring primitive) and one CA key signature:
    /// `cores / (verifications/verify_rate + 1/sign_rate)`, L's definition with
    /// `verifications` in place of 1.
    pub fn acme_orders_per_sec(&self, verifications: f64) -> f64 {
        self.cores as f64 / (verifications / self.verify_per_sec + 1.0 / self.sign_per_sec)
    }

    /// [`acme_orders_per_sec`](Self::acme_orders_per_sec) from the rates measured with
    /// every core at once: `1 / (verifications/verify∥ + 1/sign∥)`.
    pub fn parallel_acme_orders_per_sec(&self, verifications: f64) -> f64 {
        1.0 / (verifications / self.parallel_verify_per_sec + 1.0 / self.parallel_sign_per_sec)
    }
}

fn rate(duration: Duration, op: impl FnMut()) -> f64 {
    counted_rate(duration, op).0
}

/// Operations per second, and how many were done.
fn counted_rate(duration: Duration, mut op: impl FnMut()) -> (f64, u64) {
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < duration {
        for _ in 0..16 {
            op();
        }
        n += 16;
    }
    (n as f64 / started.elapsed().as_secs_f64(), n)
}

/// Runs `rate` on every core at once and sums the rates.
fn parallel_rate(cores: usize, duration: Duration, op: impl Fn() + Sync) -> f64 {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..cores)
            .map(|_| s.spawn(|| rate(duration, &op)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    })
}

/// Measures L for a CA key type and a CSR key type, spending about `4 × per_rate` seconds.
pub fn measure(
    ca: KeyAlgorithm,
    csr: CsrKey,
    per_rate: Duration,
) -> Result<Limit, crate::FixtureError> {
    let der = keys::generate_pkcs8(ca)?;
    let key = SoftwareKey::from_pkcs8(&der)?;
    measure_with(&key, "ring", csr, per_rate)
}

/// Measures L for the CA key `key` (named `signer` in the result) and a CSR key type: the
/// signing rates are `key`'s, on one thread and on one thread per core at once.
pub fn measure_with(
    key: &dyn Signer,
    signer: &'static str,
    csr: CsrKey,
    per_rate: Duration,
) -> Result<Limit, crate::FixtureError> {
    // A to-be-signed certificate is about 400 bytes.
    let tbs = [0x5a_u8; 400];
    key.sign(&tbs)
        .map_err(|e| format!("the CA key does not sign: {e}"))?;
    let cpu_before = crate::cpu::this_process();
    let (sign_per_sec, signatures) = counted_rate(per_rate, || {
        let _ = key.sign(&tbs);
    });
    let sign_cpu_us = (crate::cpu::this_process().saturating_sub(cpu_before)).as_secs_f64() * 1e6
        / signatures.max(1) as f64;

    let pair = rcgen::KeyPair::generate_for(match csr {
        CsrKey::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        CsrKey::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        CsrKey::Ed25519 => &rcgen::PKCS_ED25519,
    })?;
    let message = [0x3c_u8; 250]; // a CSR's CertificationRequestInfo
    let sig = rcgen::SigningKey::sign(&pair, &message)?;
    let algorithm: &dyn VerificationAlgorithm = match csr {
        CsrKey::EcP256 => &signature::ECDSA_P256_SHA256_ASN1,
        CsrKey::EcP384 => &signature::ECDSA_P384_SHA384_ASN1,
        CsrKey::Ed25519 => &signature::ED25519,
    };
    let public = UnparsedPublicKey::new(algorithm, pair.public_key_raw().to_vec());
    if public.verify(&message, &sig).is_err() {
        return Err("the reference signature does not verify".into());
    }
    let verify_per_sec = rate(per_rate, || {
        let _ = public.verify(&message, &sig);
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parallel_sign_per_sec = parallel_rate(cores, per_rate, || {
        let _ = key.sign(&tbs);
    });
    let parallel_verify_per_sec = parallel_rate(cores, per_rate, || {
        let _ = public.verify(&message, &sig);
    });
    Ok(Limit {
        signer,
        sign_cpu_us,
        sign_per_sec,
        verify_per_sec,
        cores,
        certificates_per_sec: cores as f64 / (1.0 / sign_per_sec + 1.0 / verify_per_sec),
        parallel_sign_per_sec,
        parallel_verify_per_sec,
        parallel_certificates_per_sec: 1.0
            / (1.0 / parallel_sign_per_sec + 1.0 / parallel_verify_per_sec),
    })
}
