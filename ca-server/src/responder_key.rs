//! Where the delegated OCSP responder's key lives (RFC 6960 section 4.2.2.2; `[ocsp]
//! responder_key`): `ocsp-key.pem` in the data directory (PKCS#8, mode 0600), or the CA's
//! PKCS#11 token. A key in the token is generated there (private, sensitive, never
//! extractable) under the label `{CA key label}.ocsp.{serial}`, the serial being that of the
//! responder certificate issued for it, so that `ocsp.pem` alone says which object it
//! certifies and renewing the responder never touches the CA key's objects.
//!
//! A new key becomes the responder's in two steps: [`ResponderKeys::create`] makes it (in
//! memory, or in the token), and [`ResponderKeys::keep`] stores it once its certificate is
//! issued and recorded ([`ResponderKeys::discard`] removes it instead when that fails). The
//! key it replaces is removed with [`ResponderKeys::retire`] when nothing signs with it any
//! more; a file key is simply replaced.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ca_core::Serial;
use keys::pkcs11::{Pkcs11Config, Pkcs11Signer};
use keys::{KeyAlgorithm, KeyError, Signer, SoftwareKey};
use zeroize::Zeroizing;

use crate::datadir::DataDirError;

/// The key type of every delegated responder: ECDSA P-256, which every OCSP client verifies.
pub const RESPONDER_KEY_TYPE: KeyAlgorithm = KeyAlgorithm::EcdsaP256;

/// Where the responder's keys are kept.
#[derive(Debug)]
pub enum ResponderKeys {
    /// The PKCS#8 file (mode 0600).
    File {
        /// `ocsp-key.pem` in the data directory.
        path: PathBuf,
    },
    /// The CA's token; `token.key_label` is the CA key's label, from which each responder
    /// key's label is derived ([`token_label`]).
    Token {
        /// The CA key's PKCS#11 settings, with its PIN.
        token: Box<Pkcs11Config>,
    },
}

/// A responder key made by [`ResponderKeys::create`], not yet kept.
pub struct NewResponderKey {
    /// The key, to certify and then sign with.
    pub signer: Arc<dyn Signer>,
    /// A file key's PKCS#8, written by [`ResponderKeys::keep`]; `None` for a token key.
    pkcs8: Option<Zeroizing<Vec<u8>>>,
    serial: Serial,
}

/// The label of the responder key certified by the certificate with `serial`, for a CA key
/// labelled `ca_key_label`.
pub fn token_label(ca_key_label: &str, serial: Serial) -> String {
    format!("{ca_key_label}.ocsp.{serial}")
}

/// The settings of the responder key certified by the certificate with `serial`, in the
/// token of the CA key's settings `token`, with a pool of `sessions`.
fn responder_config(token: &Pkcs11Config, serial: Serial, sessions: usize) -> Pkcs11Config {
    Pkcs11Config {
        key_label: token_label(&token.key_label, serial),
        sessions,
        ..token.clone()
    }
}

impl ResponderKeys {
    /// The responder's key in the token of `token`, the CA key's settings.
    pub fn in_token(token: Pkcs11Config) -> Self {
        ResponderKeys::Token {
            token: Box::new(token),
        }
    }

    /// The responder's key in the file `path`.
    pub fn in_file(path: &Path) -> Self {
        ResponderKeys::File {
            path: path.to_path_buf(),
        }
    }

    /// The key that the responder certificate with `serial` certifies: the file's key (its
    /// match with the certificate is the caller's check), or the token object labelled
    /// [`token_label`].
    pub fn load(&self, serial: Serial) -> Result<Arc<dyn Signer>, DataDirError> {
        match self {
            ResponderKeys::File { path } => Ok(Arc::new(keys::load_key_file(path)?)),
            ResponderKeys::Token { token } => {
                let config = responder_config(token, serial, token.sessions);
                Ok(Arc::new(Pkcs11Signer::open(&config)?))
            }
        }
    }

    /// A new key for the responder certificate with `serial`: in memory (written by
    /// [`ResponderKeys::keep`]) or generated in the token.
    pub fn create(&self, serial: Serial) -> Result<NewResponderKey, DataDirError> {
        match self {
            ResponderKeys::File { .. } => {
                let pkcs8 = keys::generate_pkcs8(RESPONDER_KEY_TYPE)?;
                Ok(NewResponderKey {
                    signer: Arc::new(SoftwareKey::from_pkcs8(&pkcs8)?),
                    pkcs8: Some(pkcs8),
                    serial,
                })
            }
            ResponderKeys::Token { token } => {
                let config = responder_config(token, serial, token.sessions);
                let signer = Pkcs11Signer::generate(&config, RESPONDER_KEY_TYPE)?;
                Ok(NewResponderKey {
                    signer: Arc::new(signer),
                    pkcs8: None,
                    serial,
                })
            }
        }
    }

    /// Stores `key` as the responder's: a file key is written to a temporary file and renamed
    /// over the old one; a token key is already stored.
    pub fn keep(&self, key: &NewResponderKey) -> Result<(), DataDirError> {
        let (ResponderKeys::File { path }, Some(pkcs8)) = (self, &key.pkcs8) else {
            return Ok(());
        };
        let mut name = path.as_os_str().to_owned();
        name.push(".new");
        let tmp = PathBuf::from(name);
        let _ = fs::remove_file(&tmp);
        keys::write_key_file(&tmp, pkcs8)?;
        crate::datadir::rename(&tmp, path)
    }

    /// Removes `key`, whose certificate could not be issued or recorded: a token key is
    /// destroyed; a file key was never written.
    pub fn discard(&self, key: NewResponderKey) {
        let serial = key.serial;
        drop(key);
        if let Err(e) = self.retire(serial) {
            tracing::warn!(
                error = %crate::cli::error_chain(&e),
                "removing the unused OCSP responder key failed"
            );
        }
    }

    /// Removes the key certified by the replaced responder certificate with `serial`, once
    /// nothing signs with it: a token key's objects are destroyed (none left is not an
    /// error); a file key was overwritten by the new one already.
    pub fn retire(&self, serial: Serial) -> Result<(), DataDirError> {
        let ResponderKeys::Token { token } = self else {
            return Ok(());
        };
        let config = responder_config(token, serial, 1);
        match Pkcs11Signer::open(&config) {
            Ok(old) => {
                old.destroy()?;
                tracing::info!(label = %config.key_label, "destroyed the replaced OCSP responder key in the token");
                Ok(())
            }
            Err(KeyError::Pkcs11KeyNotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Where the key of the certificate with `serial` is, for messages: the file, or the
    /// token object as an RFC 7512 PKCS#11 URI.
    pub fn location(&self, serial: Serial) -> String {
        match self {
            ResponderKeys::File { path } => path.display().to_string(),
            ResponderKeys::Token { token } => format!(
                "pkcs11:token={};object={}",
                token.token_label,
                token_label(&token.key_label, serial)
            ),
        }
    }
}
