//! Key providers: where the CA's signing key lives and where its randomness comes from, as
//! rustls's `CryptoProvider` carries both a key loader and `secure_random`.

use std::path::Path;
use std::sync::Arc;

use crate::random::{SecureRandom, SystemRandom};
use crate::{load_key_file, KeyError, Signer};

/// A source of CA signing keys together with the random generator that goes with them.
///
/// Everything above this crate obtains its [`Signer`] and its [`SecureRandom`] from one
/// provider, so that a deployment with keys in an HSM can also draw its serial numbers from
/// the HSM.
pub trait KeyProvider: Send + Sync {
    /// A short name for logs and metrics (`software`, `pkcs11`).
    fn name(&self) -> &'static str;

    /// Loads the CA signing key kept at `location` (a file for software keys).
    fn load_signer(&self, location: &Path) -> Result<Arc<dyn Signer>, KeyError>;

    /// The random generator for serial numbers, identifiers and one-time codes.
    fn secure_random(&self) -> Arc<dyn SecureRandom>;
}

/// Keys in PKCS#8 files of mode 0600, signing in process memory through `ring`; randomness
/// from the operating system.
#[derive(Debug, Default)]
pub struct SoftwareKeys {
    random: Arc<SystemRandom>,
}

impl SoftwareKeys {
    /// The software provider.
    pub fn new() -> Self {
        SoftwareKeys::default()
    }
}

impl KeyProvider for SoftwareKeys {
    fn name(&self) -> &'static str {
        "software"
    }

    fn load_signer(&self, location: &Path) -> Result<Arc<dyn Signer>, KeyError> {
        Ok(Arc::new(load_key_file(location)?))
    }

    fn secure_random(&self) -> Arc<dyn SecureRandom> {
        self.random.clone()
    }
}
