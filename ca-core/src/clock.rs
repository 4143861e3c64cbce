//! Clock sanity: the CA does not sign while the system clock is behind what it has signed
//! already. A certificate's notBefore and a CRL's thisUpdate come from the clock; a clock set
//! back (a failed NTP step, a restored VM snapshot) would issue certificates that seem older
//! than ones issued before them, and CRLs whose thisUpdate goes back, which relying parties
//! may take for a replay. The guard keeps the newest time signed (a certificate's issued_at,
//! a CRL's thisUpdate) and refuses to sign while the clock is behind it by more than a
//! tolerance.

use std::sync::atomic::{AtomicI64, Ordering};

use ca_x509::error::CaError;

/// The newest time signed and how far behind it the clock may be.
#[derive(Debug)]
pub struct ClockGuard {
    newest: AtomicI64,
    tolerance_secs: i64,
}

impl ClockGuard {
    /// A guard that starts from `newest` (Unix seconds: the newest issued_at or thisUpdate
    /// in the store) and tolerates a clock up to `tolerance_secs` behind it (0: no check).
    pub fn new(newest: i64, tolerance_secs: u64) -> ClockGuard {
        ClockGuard {
            newest: AtomicI64::new(newest),
            tolerance_secs: i64::try_from(tolerance_secs).unwrap_or(i64::MAX),
        }
    }

    /// Refuses ([`CaError::ClockBehind`]) when `now` is behind the newest time signed by more
    /// than the tolerance.
    pub fn check(&self, now: i64) -> Result<(), CaError> {
        let behind = self.behind(now);
        if self.tolerance_secs > 0 && behind > self.tolerance_secs {
            return Err(CaError::ClockBehind {
                behind_secs: behind.unsigned_abs(),
                tolerance_secs: self.tolerance_secs.unsigned_abs(),
            });
        }
        Ok(())
    }

    /// Notes that `at` was signed.
    pub fn signed(&self, at: i64) {
        self.newest.fetch_max(at, Ordering::Relaxed);
    }

    /// How many seconds `now` is behind the newest time signed (0 when it is not).
    pub fn behind(&self, now: i64) -> i64 {
        (self.newest.load(Ordering::Relaxed) - now).max(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_beyond_the_tolerance() {
        let guard = ClockGuard::new(1_000, 60);
        assert!(guard.check(1_000).is_ok());
        assert!(guard.check(940).is_ok(), "60 s behind is tolerated");
        assert!(matches!(
            guard.check(939),
            Err(CaError::ClockBehind {
                behind_secs: 61,
                tolerance_secs: 60
            })
        ));
        guard.signed(2_000);
        guard.signed(1_500);
        assert_eq!(guard.behind(1_000), 1_000, "the newest time is kept");
        assert!(
            ClockGuard::new(1_000, 0).check(0).is_ok(),
            "0 disables the check"
        );
    }
}
