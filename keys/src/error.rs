//! Errors of the key layer. No variant ever carries key material.

use std::path::PathBuf;

/// Why a key could not be generated, loaded, stored or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file may be read by group or others; CA keys must be mode 0600 (or stricter).
    #[error(
        "key file {path} has mode {mode:o}; a CA key must be readable by its owner only \
         (run `chmod 600 {path}`)"
    )]
    InsecurePermissions {
        /// The file concerned.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file exists already; keys are never overwritten.
    #[error("key file {0} exists already; refusing to overwrite a key")]
    AlreadyExists(PathBuf),
    /// The file is not a PKCS#8 `PRIVATE KEY` PEM document, or its key is malformed.
    #[error("not a usable PKCS#8 private key: {0}")]
    Malformed(&'static str),
    /// The key's algorithm or size is not one a CA key may use.
    #[error("unsupported CA key: {0}")]
    Unsupported(String),
    /// Key generation failed.
    #[error("key generation failed")]
    Generation,
}

/// Why a [`Signer`](crate::Signer) produced no signature.
///
/// It says whether trying again may succeed (an HSM session that was lost, a device that was
/// busy) or not (a key the device refuses to use), and keeps the back end's error as its
/// source. Neither carries key material.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct SignError {
    what: &'static str,
    retryable: bool,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SignError {
    /// A failure that will happen again if retried.
    pub fn permanent(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SignError {
            what,
            retryable: false,
            source: Some(source.into()),
        }
    }

    /// A transient failure: the same request may succeed when tried again.
    pub fn retryable(
        what: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        SignError {
            what,
            retryable: true,
            source: Some(source.into()),
        }
    }

    /// True when trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// The random source failed to produce bytes.
#[derive(Debug, thiserror::Error)]
#[error("the random source failed")]
pub struct RandomError;
