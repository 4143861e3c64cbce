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
    /// The signing operation failed.
    #[error("signing failed")]
    Signing,
}
