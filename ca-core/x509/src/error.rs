//! Errors of the CA core, each with the stable API code it maps to.
//!
//! The mapping from error to `{"error": {"code", "message"}}` and HTTP status lives here, in
//! one place, so that every front end (HTTP, batch, command line) reports the same refusal
//! the same way.

use crate::serial::Serial;

/// The class of a refusal, which fixes the HTTP status of the API contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// 400: the input cannot be understood.
    BadInput,
    /// 404: the named object does not exist.
    NotFound,
    /// 409: the request conflicts with stored state.
    Conflict,
    /// 422: the input is understood but the profile refuses it.
    Policy,
    /// 429: the engine's queue is full; try again shortly.
    Overloaded,
    /// 503: the CA is shutting down or not ready.
    Unavailable,
    /// 403: a secret given in the request (an enrollment code) is wrong, or the caller's role
    /// may not use the profile it asked for.
    Forbidden,
    /// 410: the named object existed but has expired.
    Gone,
    /// 423: the named object is locked.
    Locked,
    /// 500: a fault of the CA itself (storage, signing), never caused by input.
    Internal,
}

/// Why an issuance (or another core operation) was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The CSR is not a well-formed PKCS#10 request (RFC 2986) in PEM or DER.
    #[error("the CSR is malformed: {0}")]
    CsrMalformed(String),
    /// The CSR's self-signature does not verify (no proof of possession).
    #[error("the CSR's signature does not verify with its public key")]
    CsrSignatureInvalid,
    /// The CSR is signed with an algorithm the CA does not accept.
    #[error("the CSR's signature algorithm is not supported: {0}")]
    CsrSignatureAlgorithm(String),
    /// The subject key type or size is not allowed by the profile.
    #[error("key type {key} is not allowed by {profile} (allowed: {allowed})")]
    KeyTypeNotAllowed {
        /// The CSR's key type.
        key: String,
        /// Whose rule it is: `profile NAME`, or `this CA` for a key no profile can allow.
        profile: String,
        /// What the profile allows.
        allowed: String,
    },
    /// A subject alternative name is not allowed by the profile.
    #[error("subject alternative name {0} is not allowed by the profile")]
    SanNotAllowed(String),
    /// The profile requires at least one subject alternative name.
    #[error("profile {0} requires at least one subject alternative name")]
    SanRequired(String),
    /// The subject distinguished name is not allowed by the profile.
    #[error("subject not allowed: {0}")]
    SubjectNotAllowed(String),
    /// The requested validity exceeds the profile's maximum or is zero.
    #[error("validity of {requested} days is not allowed (profile {profile} allows 1 to {max})")]
    ValidityNotAllowed {
        /// Requested days.
        requested: u32,
        /// The profile.
        profile: String,
        /// The profile's maximum.
        max: u32,
    },
    /// The certificate would end after the issuing CA's certificate (RFC 5280 section 6.1.3
    /// checks every certificate of a path at the same time: a leaf outliving its issuer is
    /// unusable for the difference).
    #[error(
        "validity of {requested} days is not allowed: the certificate would end after the \
         issuing CA's certificate (profile {profile}; at most {max} days until the CA's \
         certificate is renewed)"
    )]
    ValidityBeyondIssuer {
        /// Requested days.
        requested: u32,
        /// The profile.
        profile: String,
        /// The days left until the CA certificate's notAfter.
        max: u32,
    },
    /// No profile of that name is configured.
    #[error("unknown profile {profile:?} (profiles: {known})")]
    UnknownProfile {
        /// The name asked for.
        profile: String,
        /// The configured profiles, comma-separated.
        known: String,
    },
    /// The profile issues CA certificates ([`crate::ca_profile`]): only a token of role
    /// `ca-admin` may request it, on no other path than single issuance.
    #[error(
        "profile {profile} issues subordinate CA certificates: only a token of role ca-admin \
         may request it"
    )]
    ProfileRequiresCaAdmin {
        /// The profile asked for.
        profile: String,
    },
    /// A `ca-admin` token asked for a profile that is not a CA profile: that role issues CA
    /// certificates and nothing else.
    #[error(
        "a token of role ca-admin issues only from CA profiles ([profiles.NAME.ca]); profile \
         {profile} is not one"
    )]
    NotACaProfile {
        /// The profile asked for.
        profile: String,
    },
    /// The request body is not valid (missing field, wrong type, malformed value).
    #[error("{0}")]
    InvalidRequest(String),
    /// No certificate with that serial was issued by this CA.
    #[error("no certificate with serial {0}")]
    SerialNotFound(String),
    /// The same `request_id` was used before by this token with a different request.
    #[error("request_id {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    /// The certificate is revoked already (a hold may still be made permanent).
    #[error("certificate {serial} is already revoked ({reason})")]
    AlreadyRevoked {
        /// The serial.
        serial: String,
        /// The existing reason.
        reason: &'static str,
    },
    /// Release of a hold that is not one.
    #[error("{0}")]
    NotOnHold(String),
    /// A renewal the CA refuses (revoked, or expired beyond the grace period).
    #[error("renewal refused: {0}")]
    RenewalRefused(String),
    /// The engine's queue is full.
    #[error("the CA is at capacity; retry shortly")]
    Overloaded,
    /// The engine is shutting down.
    #[error("the CA is shutting down")]
    ShuttingDown,
    /// A freshly drawn serial collided with a stored one; the request may be retried.
    #[error("serial {0} collided with an existing certificate")]
    SerialCollision(Serial),
    /// The store failed. The message names the operation, never secret data.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The system clock is behind the newest time the CA signed (a certificate's issued_at, a
    /// CRL's thisUpdate) by more than the tolerance: nothing is signed until it is right.
    #[error(
        "the system clock is {behind_secs} s behind the newest time this CA signed (tolerance \
         {tolerance_secs} s); nothing is signed until the clock is right"
    )]
    ClockBehind {
        /// How far behind.
        behind_secs: u64,
        /// `[engine] clock_tolerance_secs`.
        tolerance_secs: u64,
    },
    /// The store cannot be reached for now (a database that is restarting or failing over):
    /// nothing was written, and the request may be retried. The message names what failed,
    /// never a credential.
    #[error("the store is unavailable: {0}")]
    StoreUnavailable(String),
    /// A stored record could not be encoded or decoded (a corrupt or foreign value); the
    /// codec's error is the source.
    #[error("{what}")]
    Record {
        /// Which record, and whether encoding or decoding.
        what: String,
        /// The codec's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database under the store failed (an I/O error, corruption, a lock held by another
    /// process); the database's own error is the source.
    #[error("the database failed")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The CA key produced no signature; [`keys::SignError::is_retryable`] tells a device
    /// that may answer again (503) from one that will not (500).
    #[error("the CA key did not sign")]
    Signing(#[source] keys::SignError),
    /// DER encoding of something the CA builds (a certificate, a CRL, an OCSP response)
    /// failed: a fault of the CA, never of the input.
    #[error("DER encoding failed")]
    Encoding(#[source] der::Error),
    /// The CA's own material is unusable: its certificate chain, its key against its
    /// certificate, its OCSP responder's or TLS server's certificate and key. Found when the
    /// CA starts.
    #[error("{what}")]
    CaMaterial {
        /// What is wrong, naming the file or certificate concerned.
        what: String,
        /// The parser's or key layer's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The random source failed.
    #[error("the random source failed")]
    Random(#[from] keys::RandomError),
    /// A key could not be generated or loaded (a subscriber key the CA generates, a CA key).
    #[error("key failure")]
    Key(#[from] keys::KeyError),
    /// A fault inside the CA process itself: a task that panicked or was cancelled, a thread
    /// that could not start, a lock poisoned by a panic.
    #[error("internal failure: {what}")]
    Internal {
        /// What failed.
        what: &'static str,
        /// The runtime's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// Another cryptographic operation of the CA failed: drawing randomness, deriving or
    /// encrypting (an enrollment code, a PKCS#12 file). The message never holds secret data.
    #[error("cryptographic failure: {0}")]
    Crypto(String),
    /// A signed checkpoint of the audit log does not verify with the CA's key: it was
    /// altered, or signed by another key (the log or the store was tampered with).
    #[error("the audit checkpoint at entry {seq} does not verify with the CA's key (altered, or signed by another key)")]
    CheckpointInvalid {
        /// The audit sequence number the checkpoint covers.
        seq: u64,
    },
    /// No enrollment with this id.
    #[error("no enrollment with id {0}")]
    EnrollmentNotFound(String),
    /// The enrollment code is wrong; `attempts_left` more may be tried.
    #[error(
        "the enrollment code is wrong ({attempts_left} {} left)",
        if *attempts_left == 1 { "attempt" } else { "attempts" }
    )]
    EnrollmentCodeInvalid {
        /// Wrong codes still accepted before the enrollment locks.
        attempts_left: u32,
    },
    /// Too many wrong codes: the enrollment is locked.
    #[error("the enrollment is locked after too many wrong codes")]
    EnrollmentLocked,
    /// The enrollment's code expired before it was redeemed.
    #[error("the enrollment expired")]
    EnrollmentExpired,
    /// The enrollment was already redeemed (a code works once).
    #[error("the enrollment was already redeemed")]
    EnrollmentRedeemed,
    /// The PKCS#12 password is shorter than the configured minimum.
    #[error("the PKCS#12 password must have at least {0} characters")]
    PasswordTooShort(usize),
    /// The subject public key is one no CA should certify: a small-order or non-canonical
    /// Ed25519 point, an EC point at infinity, an RSA modulus that is even, an RSA exponent
    /// that is even or below 3, or one other than 65537 where the profile asks for it. (RSA
    /// moduli whose factors can be found have their own codes: [`CaError::WeakKeySmallFactor`],
    /// [`CaError::WeakKeyRoca`], [`CaError::WeakKeyFermat`].)
    #[error("weak public key: {0}")]
    WeakKey(String),
    /// An API token with this name exists or existed: token names are unique and never
    /// reused, since certificate ownership follows the name.
    #[error("a token named {0:?} exists or existed; token names are never reused")]
    TokenNameTaken(String),
    /// No API token with this name.
    #[error("no token named {0:?}")]
    TokenNotFound(String),
    /// The API token is revoked already.
    #[error("the token named {0:?} is already revoked")]
    TokenAlreadyRevoked(String),
    /// The PKCS#12 password cannot protect a PKCS#12 file (a character outside Unicode's Basic
    /// Multilingual Plane, a control character, too long); the message says which rule.
    #[error("{0}")]
    PasswordNotAllowed(String),

    // --- Blocked keys (CA/Browser Forum Baseline Requirements 6.1.1.3 item 4) ---------------
    /// The subject public key is on the CA's block list: a certificate this CA issued for it
    /// was revoked for keyCompromise, so no certificate is issued for it again.
    #[error(
        "the public key (SubjectPublicKeyInfo SHA-256 {}) was reported compromised: a \
         certificate for it was revoked for keyCompromise, and this CA certifies it no more; \
         generate a new key",
        hex::encode(spki_sha256)
    )]
    KeyBlocked {
        /// SHA-256 of the key's DER SubjectPublicKeyInfo.
        spki_sha256: [u8; 32],
    },

    // --- ACME objects (RFC 8555), kept with optimistic concurrency --------------------------
    /// An ACME object is not at the version a change was made from: another change came first
    /// (or the object exists already where the change creates it, or is gone). Nothing of the
    /// change was stored; the change may be made again from the stored object.
    #[error("conflicting ACME change: {what}")]
    AcmeConflict {
        /// Which object, and its stored and expected versions.
        what: String,
    },
    /// A unique ACME key (an account key's thumbprint, a bound external account binding key)
    /// is held by another object. Nothing of the change was stored.
    #[error("the ACME key is held by {}", hex::encode(holder))]
    AcmeIndexTaken {
        /// The id of the object that holds the key.
        holder: Vec<u8>,
    },

    // --- Weak RSA moduli (CA/Browser Forum Baseline Requirements 6.1.1.3, crate::weak_rsa) ---
    /// The RSA modulus is divisible by an odd prime below 1000.
    #[error("weak public key: the RSA modulus is divisible by {factor}")]
    WeakKeySmallFactor {
        /// The smallest such prime.
        factor: u32,
    },
    /// The RSA modulus has the fingerprint of the Infineon RSA library (ROCA, CVE-2017-15361):
    /// its private key can be computed from it.
    #[error(
        "weak public key: the {modulus_bits}-bit RSA modulus has the fingerprint of the \
         Infineon RSA library (ROCA, CVE-2017-15361), whose private keys can be computed from \
         the public key; generate a new key with updated firmware or software"
    )]
    WeakKeyRoca {
        /// The modulus's size in bits.
        modulus_bits: u64,
    },
    /// The RSA modulus's two primes are so close that Fermat's factorization method finds
    /// them in a few rounds.
    #[error(
        "weak public key: the RSA modulus's prime factors are too close together (they differ \
         by a {difference_bits}-bit number) and Fermat's factorization method finds them in \
         round {round}; generate a new key"
    )]
    WeakKeyFermat {
        /// The round (from 1) in which Fermat's method factored the modulus.
        round: u32,
        /// The bit length of the primes' difference.
        difference_bits: u64,
    },
}

impl CaError {
    /// [`CaError::CaMaterial`] without an underlying error.
    pub fn ca_material(what: impl Into<String>) -> Self {
        CaError::CaMaterial {
            what: what.into(),
            source: None,
        }
    }

    /// [`CaError::CaMaterial`] caused by `source`.
    pub fn ca_material_from(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CaError::CaMaterial {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// This error followed by each of its sources, joined by `": "`: what the logs show, so
    /// that a failure of the database or of the HSM keeps its cause while the API's message
    /// stays the generic first part.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            out.push_str(": ");
            out.push_str(&e.to_string());
            source = e.source();
        }
        out
    }

    /// [`CaError::Record`]: `what` failed because of the codec's `source`.
    pub fn record(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CaError::Record {
            what: what.into(),
            source: source.into(),
        }
    }

    /// [`CaError::Internal`], with the runtime's error when there is one.
    pub fn internal(
        what: &'static str,
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        CaError::Internal { what, source }
    }

    /// The stable snake_case code of the API contract.
    pub fn code(&self) -> &'static str {
        match self {
            CaError::CsrMalformed(_) => "csr_malformed",
            CaError::CsrSignatureInvalid => "csr_signature_invalid",
            CaError::CsrSignatureAlgorithm(_) => "csr_signature_algorithm_not_supported",
            CaError::KeyTypeNotAllowed { .. } => "key_type_not_allowed",
            CaError::SanNotAllowed(_) => "san_not_allowed",
            CaError::SanRequired(_) => "san_required",
            CaError::SubjectNotAllowed(_) => "subject_not_allowed",
            CaError::ValidityNotAllowed { .. } | CaError::ValidityBeyondIssuer { .. } => {
                "validity_not_allowed"
            }
            CaError::UnknownProfile { .. } => "unknown_profile",
            CaError::ProfileRequiresCaAdmin { .. } => "profile_requires_ca_admin",
            CaError::NotACaProfile { .. } => "forbidden",
            CaError::InvalidRequest(_) => "invalid_request",
            CaError::SerialNotFound(_) => "serial_not_found",
            CaError::IdempotencyConflict(_) => "idempotency_conflict",
            CaError::AlreadyRevoked { .. } => "already_revoked",
            CaError::NotOnHold(_) => "not_on_hold",
            CaError::RenewalRefused(_) => "renewal_refused",
            CaError::Overloaded => "overloaded",
            CaError::ShuttingDown => "shutting_down",
            CaError::SerialCollision(_) => "serial_collision",
            CaError::Storage(_) | CaError::Database(_) | CaError::Record { .. } => "storage_error",
            CaError::StoreUnavailable(_) => "storage_unavailable",
            CaError::ClockBehind { .. } => "clock_behind",
            CaError::Signing(e) if e.is_retryable() => "signer_unavailable",
            CaError::Signing(_)
            | CaError::Encoding(_)
            | CaError::CaMaterial { .. }
            | CaError::Internal { .. } => "signing_error",
            CaError::Random(_) | CaError::Key(_) => "crypto_error",
            CaError::Crypto(_) => "crypto_error",
            CaError::CheckpointInvalid { .. } => "audit_log_broken",
            CaError::EnrollmentNotFound(_) => "enrollment_not_found",
            CaError::EnrollmentCodeInvalid { .. } => "enrollment_code_invalid",
            CaError::EnrollmentLocked => "enrollment_locked",
            CaError::EnrollmentExpired => "enrollment_expired",
            CaError::EnrollmentRedeemed => "enrollment_already_redeemed",
            CaError::PasswordTooShort(_) => "password_too_short",
            CaError::WeakKey(_) => "weak_key",
            CaError::TokenNameTaken(_) => "token_name_taken",
            CaError::TokenNotFound(_) => "token_not_found",
            CaError::TokenAlreadyRevoked(_) => "token_already_revoked",
            CaError::PasswordNotAllowed(_) => "password_not_allowed",
            // Blocked keys.
            CaError::KeyBlocked { .. } => "key_blocked",
            // ACME objects.
            CaError::AcmeConflict { .. } | CaError::AcmeIndexTaken { .. } => "conflict",
            // Weak RSA moduli.
            CaError::WeakKeySmallFactor { .. } => "weak_key_small_factor",
            CaError::WeakKeyRoca { .. } => "weak_key_roca",
            CaError::WeakKeyFermat { .. } => "weak_key_fermat",
        }
    }

    /// The same refusal for another request of a store group that failed as a whole: a
    /// passing unavailability stays retryable (503), anything else is a storage error naming
    /// this one.
    pub fn for_group(&self) -> CaError {
        match self {
            CaError::StoreUnavailable(what) => CaError::StoreUnavailable(what.clone()),
            other => CaError::Storage(other.to_string()),
        }
    }

    /// The class of the error, which fixes its HTTP status.
    pub fn class(&self) -> ErrorClass {
        match self {
            CaError::CsrMalformed(_)
            | CaError::CsrSignatureInvalid
            | CaError::InvalidRequest(_) => ErrorClass::BadInput,
            CaError::CsrSignatureAlgorithm(_)
            | CaError::KeyTypeNotAllowed { .. }
            | CaError::SanNotAllowed(_)
            | CaError::SanRequired(_)
            | CaError::SubjectNotAllowed(_)
            | CaError::ValidityNotAllowed { .. }
            | CaError::ValidityBeyondIssuer { .. }
            | CaError::UnknownProfile { .. }
            | CaError::PasswordTooShort(_)
            | CaError::WeakKey(_)
            | CaError::PasswordNotAllowed(_) => ErrorClass::Policy,
            // Blocked keys.
            CaError::KeyBlocked { .. } => ErrorClass::Policy,
            // Weak RSA moduli.
            CaError::WeakKeySmallFactor { .. }
            | CaError::WeakKeyRoca { .. }
            | CaError::WeakKeyFermat { .. } => ErrorClass::Policy,
            CaError::SerialNotFound(_) | CaError::EnrollmentNotFound(_) => ErrorClass::NotFound,
            CaError::TokenNotFound(_) => ErrorClass::NotFound,
            CaError::TokenNameTaken(_) | CaError::TokenAlreadyRevoked(_) => ErrorClass::Conflict,
            CaError::EnrollmentCodeInvalid { .. } => ErrorClass::Forbidden,
            CaError::ProfileRequiresCaAdmin { .. } | CaError::NotACaProfile { .. } => {
                ErrorClass::Forbidden
            }
            CaError::EnrollmentLocked => ErrorClass::Locked,
            CaError::EnrollmentExpired => ErrorClass::Gone,
            CaError::AcmeConflict { .. } | CaError::AcmeIndexTaken { .. } => ErrorClass::Conflict,
            CaError::EnrollmentRedeemed
            | CaError::IdempotencyConflict(_)
            | CaError::AlreadyRevoked { .. }
            | CaError::NotOnHold(_)
            | CaError::RenewalRefused(_) => ErrorClass::Conflict,
            CaError::Overloaded => ErrorClass::Overloaded,
            CaError::ShuttingDown | CaError::SerialCollision(_) => ErrorClass::Unavailable,
            CaError::StoreUnavailable(_) | CaError::ClockBehind { .. } => ErrorClass::Unavailable,
            CaError::Signing(e) if e.is_retryable() => ErrorClass::Unavailable,
            CaError::Storage(_)
            | CaError::Database(_)
            | CaError::Record { .. }
            | CaError::Signing(_)
            | CaError::Encoding(_)
            | CaError::CaMaterial { .. }
            | CaError::Random(_)
            | CaError::Key(_)
            | CaError::Internal { .. }
            | CaError::Crypto(_)
            | CaError::CheckpointInvalid { .. } => ErrorClass::Internal,
        }
    }
}
