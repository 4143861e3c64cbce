//! The random source of a key provider: where serial numbers, identifiers and one-time codes
//! come from.

use crate::error::RandomError;

/// A cryptographically secure random generator (as rustls's `CryptoProvider::secure_random`).
///
/// The software provider draws from the operating system ([`SystemRandom`]); an HSM provider
/// may draw from the device instead.
pub trait SecureRandom: Send + Sync {
    /// Fills `dest` with random bytes.
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError>;
}

/// The operating system's CSPRNG (`getrandom(2)` on Linux, through `ring`).
#[derive(Debug)]
pub struct SystemRandom(ring::rand::SystemRandom);

impl SystemRandom {
    /// The system's generator.
    pub fn new() -> Self {
        SystemRandom(ring::rand::SystemRandom::new())
    }
}

impl Default for SystemRandom {
    fn default() -> Self {
        SystemRandom::new()
    }
}

impl SecureRandom for SystemRandom {
    fn fill(&self, dest: &mut [u8]) -> Result<(), RandomError> {
        ring::rand::SecureRandom::fill(&self.0, dest).map_err(|_| RandomError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_random_fills_distinct_buffers() {
        let rng = SystemRandom::new();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        rng.fill(&mut a).unwrap();
        rng.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
