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
    /// The PKCS#11 module (a shared library, PKCS#11 v3.0 section 5.2 `C_GetFunctionList`)
    /// could not be loaded, or its `C_Initialize` failed.
    #[error("cannot load the PKCS#11 module {path}: {reason}")]
    Pkcs11Module {
        /// The module's path as configured.
        path: PathBuf,
        /// What the loader or the module said.
        reason: String,
    },
    /// No initialized token has the configured label (`CK_TOKEN_INFO.label`, PKCS#11 v3.0
    /// section 3.2).
    #[error(
        "no PKCS#11 token labelled {label:?}; tokens found: {}",
        quoted_list(found)
    )]
    Pkcs11TokenNotFound {
        /// The label looked for.
        label: String,
        /// The labels of the initialized tokens the module has.
        found: Vec<String>,
    },
    /// More than one token has the configured label, so the label does not say which one.
    #[error("{count} PKCS#11 tokens are labelled {label:?}; a token label must name one token")]
    Pkcs11TokenAmbiguous {
        /// The label looked for.
        label: String,
        /// How many tokens carry it.
        count: usize,
    },
    /// The token refused the user PIN (`CKR_PIN_INCORRECT` from `C_Login`).
    #[error("wrong PIN for PKCS#11 token {token}")]
    Pkcs11PinIncorrect {
        /// The token's label.
        token: String,
    },
    /// The user PIN is locked after too many wrong PINs (`CKR_PIN_LOCKED`, or
    /// `CKF_USER_PIN_LOCKED` in the token's flags); no login is attempted.
    #[error(
        "the user PIN of PKCS#11 token {token} is locked after too many wrong PINs; \
         the token's security officer must unlock it"
    )]
    Pkcs11PinLocked {
        /// The token's label.
        token: String,
    },
    /// No user PIN was given: the environment variable is unset or empty, or the PIN file is
    /// empty.
    #[error("no PKCS#11 user PIN: {origin} is unset or empty")]
    Pkcs11PinMissing {
        /// Where the PIN was to come from (`environment variable CA_PKCS11_PIN`, `file ...`).
        origin: String,
    },
    /// The token holds no key object of this class with the configured `CKA_LABEL`.
    #[error("no PKCS#11 {class} key labelled {key:?} in token {token}")]
    Pkcs11KeyNotFound {
        /// `private` or `public`.
        class: &'static str,
        /// The key label looked for.
        key: String,
        /// The token's label.
        token: String,
    },
    /// More than one private key carries the configured `CKA_LABEL`.
    #[error(
        "{count} PKCS#11 private keys are labelled {key:?} in token {token}; \
         the key label must name one key"
    )]
    Pkcs11KeyAmbiguous {
        /// The key label.
        key: String,
        /// The token's label.
        token: String,
        /// How many private keys carry it.
        count: usize,
    },
    /// An object with the label exists already in the token; a key is never generated over
    /// it.
    #[error(
        "PKCS#11 token {token} already holds an object labelled {key:?}; \
         refusing to generate a key under that label"
    )]
    Pkcs11LabelExists {
        /// The key label.
        key: String,
        /// The token's label.
        token: String,
    },
    /// A PKCS#11 call failed for another reason.
    #[error("PKCS#11 token {token}: {what}: {source}")]
    Pkcs11 {
        /// The token's label (or the module's path before a token is chosen).
        token: String,
        /// What was being done.
        what: &'static str,
        /// The function and its `CK_RV`.
        source: Pkcs11Failure,
    },
}

/// The labels of a list, quoted, for a message (`"a", "b"`, or `none`).
fn quoted_list(items: &[String]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    let quoted: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    quoted.join(", ")
}

/// A PKCS#11 function that failed, and its return value by its specification name
/// (PKCS#11 v3.0 section 5.1), e.g. `C_Sign: CKR_DEVICE_REMOVED`. Never carries a PIN or
/// key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Pkcs11Failure(pub(crate) String);

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

    /// The key cannot sign with `scheme` (see [`crate::Signer::supports`]).
    pub fn unsupported(scheme: crate::SignatureScheme) -> Self {
        SignError::permanent(
            "the key cannot sign with this signature scheme",
            format!("{scheme:?}"),
        )
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
