//! The tamper-evident audit log: every state-changing action, hash-chained, with signed
//! checkpoints of its head.
//!
//! Each [`AuditEntry`] carries a sequence number and the SHA-256 of the entry before it, and
//! is written by the store writer in the same WriteBatch as the change it records, so the log
//! and the state never disagree. An edited or removed entry breaks the chain at that entry;
//! a removed tail is caught by the head counter and by the signed [`Checkpoint`]s, which the
//! CA makes of the head periodically with its own key (the idea of RFC 6962's signed tree
//! heads, over a hash chain instead of a Merkle tree).
//!
//! The hash of an entry is reproducible from the API's JSON alone: SHA-256 over the ASCII
//! tag `ca-audit-v1` followed by netstrings (`<decimal length>:<bytes>,`) of the previous
//! entry's hash in lower-case hex, the sequence number in decimal, the time in RFC 3339, the
//! actor, the action, the target, the number of details in decimal, and each detail's key and
//! value in key order. The first entry's previous hash is 32 zero bytes.

use std::collections::BTreeMap;
use std::fmt;

use keys::Signer;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{decode_versioned, encode};
use crate::csr::SubjectKeyType;
use crate::error::CaError;

const ENTRY_V1: u8 = 1;
const CHECKPOINT_V1: u8 = 1;
const HASH_TAG: &[u8] = b"ca-audit-v1";
const CHECKPOINT_TAG: &[u8] = b"ca-audit-checkpoint-v1\n";

/// What an audit entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A certificate was issued (target: its serial).
    CertificateIssued,
    /// A certificate was issued as the renewal of another (target: the new serial; details:
    /// `renewed_from`).
    CertificateRenewed,
    /// A certificate was revoked or put on hold (details: `reason`).
    CertificateRevoked,
    /// A certificateHold ended.
    HoldReleased,
    /// A CRL number was allocated for a new CRL (target: the number; details: `kind`).
    CrlGenerated,
    /// An API token was created (target: its name; details: `role`).
    TokenCreated,
    /// An enrollment was created (target: its id).
    EnrollmentCreated,
    /// An enrollment was redeemed (details: `serial`).
    EnrollmentRedeemed,
    /// A wrong code was given for an enrollment (details: `attempts`).
    EnrollmentAttemptFailed,
    /// An enrollment locked after too many wrong codes.
    EnrollmentLocked,
    /// A redemption was rolled back because its PKCS#12 file could not be built: the
    /// certificate (details: `serial`) is revoked and the enrollment may be redeemed again.
    EnrollmentReopened,
    /// The server started with a configuration (details: its SHA-256).
    ConfigurationLoaded,
    /// An API token was revoked (target: its name; details: `id`).
    TokenRevoked,
    /// An API token was renamed when the store was upgraded, because an older token held
    /// its name (target: the new name; details: `from`, `id`).
    TokenRenamed,
    // The ACME front end's actions (RFC 8555); the target is the object's id, its details are
    // the front end's. New actions go last: an entry stores its action's position.
    /// An ACME account was created (RFC 8555 section 7.3).
    AcmeAccountCreated,
    /// An ACME account's contacts or agreement changed (RFC 8555 section 7.3.2).
    AcmeAccountUpdated,
    /// An ACME account was deactivated (RFC 8555 section 7.3.6).
    AcmeAccountDeactivated,
    /// An ACME account's key was replaced (RFC 8555 section 7.3.5).
    AcmeAccountKeyChanged,
    /// An ACME order was created (RFC 8555 section 7.4).
    AcmeOrderCreated,
    /// An ACME order's state changed (ready, processing, valid, invalid).
    AcmeOrderUpdated,
    /// An ACME authorization became valid: one of its challenges was validated (RFC 8555
    /// section 7.5.1).
    AcmeAuthorizationValidated,
    /// An ACME authorization became invalid: a challenge failed (RFC 8555 section 7.5.1).
    AcmeAuthorizationInvalid,
    /// An ACME authorization was deactivated by its account (RFC 8555 section 7.5.2).
    AcmeAuthorizationDeactivated,
    /// An external account binding key was created (RFC 8555 section 7.3.4).
    AcmeEabKeyCreated,
    /// A client asked for a challenge's validation, which started (RFC 8555 section 7.5.1;
    /// details: `challenge`).
    AcmeChallengeStarted,
    /// An operator started a mass revocation: every certificate matching a filter is revoked
    /// (target: the action's id; details: the filter, `reason`, `invalidity_date`; see
    /// [`crate::mass_revocation`]). Each certificate's own `certificate_revoked` entry names
    /// the action (`action`).
    MassRevocationStarted,
    /// A mass revocation walked every matching certificate (target: the action's id;
    /// details: the counts `examined`, `matched`, `revoked`, `already_revoked`, `expired`).
    MassRevocationCompleted,
    /// The CRL numbers to come were raised above a floor, after a restore from a backup
    /// (target: the last number now taken; details: `previous`, `why`), so that no number
    /// published before is used again (RFC 5280 section 5.2.3).
    CrlNumberRaised,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 28] = [
        AuditAction::CertificateIssued,
        AuditAction::CertificateRenewed,
        AuditAction::CertificateRevoked,
        AuditAction::HoldReleased,
        AuditAction::CrlGenerated,
        AuditAction::TokenCreated,
        AuditAction::EnrollmentCreated,
        AuditAction::EnrollmentRedeemed,
        AuditAction::EnrollmentAttemptFailed,
        AuditAction::EnrollmentLocked,
        AuditAction::ConfigurationLoaded,
        AuditAction::TokenRevoked,
        AuditAction::TokenRenamed,
        AuditAction::EnrollmentReopened,
        AuditAction::AcmeAccountCreated,
        AuditAction::AcmeAccountUpdated,
        AuditAction::AcmeAccountDeactivated,
        AuditAction::AcmeAccountKeyChanged,
        AuditAction::AcmeOrderCreated,
        AuditAction::AcmeOrderUpdated,
        AuditAction::AcmeAuthorizationValidated,
        AuditAction::AcmeAuthorizationInvalid,
        AuditAction::AcmeAuthorizationDeactivated,
        AuditAction::AcmeEabKeyCreated,
        AuditAction::AcmeChallengeStarted,
        AuditAction::MassRevocationStarted,
        AuditAction::MassRevocationCompleted,
        AuditAction::CrlNumberRaised,
    ];

    /// The action's name as the API shows it and the hash covers it.
    pub fn name(self) -> &'static str {
        match self {
            AuditAction::CertificateIssued => "certificate_issued",
            AuditAction::CertificateRenewed => "certificate_renewed",
            AuditAction::CertificateRevoked => "certificate_revoked",
            AuditAction::HoldReleased => "hold_released",
            AuditAction::CrlGenerated => "crl_generated",
            AuditAction::TokenCreated => "token_created",
            AuditAction::EnrollmentCreated => "enrollment_created",
            AuditAction::EnrollmentRedeemed => "enrollment_redeemed",
            AuditAction::EnrollmentAttemptFailed => "enrollment_attempt_failed",
            AuditAction::EnrollmentLocked => "enrollment_locked",
            AuditAction::EnrollmentReopened => "enrollment_reopened",
            AuditAction::ConfigurationLoaded => "configuration_loaded",
            AuditAction::TokenRevoked => "token_revoked",
            AuditAction::TokenRenamed => "token_renamed",
            AuditAction::AcmeAccountCreated => "acme_account_created",
            AuditAction::AcmeAccountUpdated => "acme_account_updated",
            AuditAction::AcmeAccountDeactivated => "acme_account_deactivated",
            AuditAction::AcmeAccountKeyChanged => "acme_account_key_changed",
            AuditAction::AcmeOrderCreated => "acme_order_created",
            AuditAction::AcmeOrderUpdated => "acme_order_updated",
            AuditAction::AcmeAuthorizationValidated => "acme_authorization_validated",
            AuditAction::AcmeAuthorizationInvalid => "acme_authorization_invalid",
            AuditAction::AcmeAuthorizationDeactivated => "acme_authorization_deactivated",
            AuditAction::AcmeEabKeyCreated => "acme_eab_key_created",
            AuditAction::AcmeChallengeStarted => "acme_challenge_started",
            AuditAction::MassRevocationStarted => "mass_revocation_started",
            AuditAction::MassRevocationCompleted => "mass_revocation_completed",
            AuditAction::CrlNumberRaised => "crl_number_raised",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The protocol a request arrived by, recorded as the `protocol` detail of the audit entries
/// it makes (absent for the JSON API, the contract's own).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// The JSON API (`/v1/...`).
    #[default]
    Api,
    /// ACME (RFC 8555).
    Acme,
    /// EST (RFC 7030).
    Est,
    /// CMP (RFC 9483 over RFC 9811).
    Cmp,
}

impl Protocol {
    /// The name in the audit log: `api`, `acme`, `est`, `cmp`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Api => "api",
            Protocol::Acme => "acme",
            Protocol::Est => "est",
            Protocol::Cmp => "cmp",
        }
    }
}

/// The id of one mass revocation: 128 random bits, shown in hex. It is the target of the
/// action's audit entries and the `action` detail of every revocation it made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActionId(pub [u8; 16]);

impl fmt::Display for ActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// Something that happened, before it takes its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, Unix seconds.
    pub at: i64,
    /// Who: a token's name (never the token), or `ca-server` for the CA's own actions.
    pub actor: String,
    /// What.
    pub action: AuditAction,
    /// To what: a serial in hex, a CRL number, a token name, an enrollment id.
    pub target: String,
    /// Further facts, such as a revocation reason or the other serial of a renewal.
    pub details: BTreeMap<String, String>,
}

impl AuditEvent {
    /// An event at `at` without details.
    pub fn new(at: i64, actor: &str, action: AuditAction, target: impl Into<String>) -> Self {
        AuditEvent {
            at,
            actor: actor.to_string(),
            action,
            target: target.into(),
            details: BTreeMap::new(),
        }
    }

    /// Adds a detail.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }
}

/// The position and hash of the newest entry: what the next entry chains to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// The newest entry's sequence number (0 for an empty log).
    pub seq: u64,
    /// The newest entry's hash (32 zero bytes for an empty log).
    pub hash: [u8; 32],
}

impl AuditHead {
    /// The head of an empty log.
    pub const GENESIS: AuditHead = AuditHead {
        seq: 0,
        hash: [0; 32],
    };

    /// Fixed 40-byte encoding: sequence number (big-endian) then hash.
    pub fn encode(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..].copy_from_slice(&self.hash);
        out
    }

    /// Decodes the fixed encoding.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let seq = u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
        let hash = bytes.get(8..40)?.try_into().ok()?;
        (bytes.len() == 40).then_some(AuditHead { seq, hash })
    }
}

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// What happened.
    pub event: AuditEvent,
    /// The previous entry's hash.
    pub prev_hash: [u8; 32],
    /// This entry's hash (see the module documentation for what it covers).
    pub hash: [u8; 32],
}

impl AuditEntry {
    /// Appends `event` after `prev`: the next sequence number and the chained hash.
    pub fn chain(prev: AuditHead, event: AuditEvent) -> Result<Self, CaError> {
        let seq = prev.seq + 1;
        let hash = entry_hash(seq, &prev.hash, &event)?;
        Ok(AuditEntry {
            seq,
            event,
            prev_hash: prev.hash,
            hash,
        })
    }

    /// The head this entry makes.
    pub fn head(&self) -> AuditHead {
        AuditHead {
            seq: self.seq,
            hash: self.hash,
        }
    }

    /// Whether the stored hash is the hash of the stored content.
    pub fn hash_matches(&self) -> Result<bool, CaError> {
        Ok(entry_hash(self.seq, &self.prev_hash, &self.event)? == self.hash)
    }

    /// Encodes the entry with its format version.
    pub fn encode(&self) -> Result<Vec<u8>, CaError> {
        encode(ENTRY_V1, self)
    }

    /// Decodes a stored entry.
    pub fn decode(bytes: &[u8]) -> Result<Self, CaError> {
        decode_versioned(bytes, ENTRY_V1, "audit entry")
    }
}

pub use ca_x509::time_format::rfc3339;

fn entry_hash(seq: u64, prev_hash: &[u8; 32], event: &AuditEvent) -> Result<[u8; 32], CaError> {
    let mut h = Sha256::new();
    h.update(HASH_TAG);
    let mut field = |bytes: &[u8]| {
        h.update(bytes.len().to_string().as_bytes());
        h.update(b":");
        h.update(bytes);
        h.update(b",");
    };
    field(hex::encode(prev_hash).as_bytes());
    field(seq.to_string().as_bytes());
    field(rfc3339(event.at)?.as_bytes());
    field(event.actor.as_bytes());
    field(event.action.name().as_bytes());
    field(event.target.as_bytes());
    field(event.details.len().to_string().as_bytes());
    for (k, v) in &event.details {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    Ok(h.finalize().into())
}

/// A signed statement by the CA that its audit log had this head at this time. An auditor who
/// keeps one can later prove that no entry up to it was removed or altered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The head it signs.
    pub head: AuditHead,
    /// When it was signed, Unix seconds.
    pub at: i64,
    /// The CA key's signature over [`Checkpoint::message`], in the encoding X.509 uses for
    /// the key's algorithm.
    pub signature: Vec<u8>,
}

impl Checkpoint {
    /// The signed bytes: `ca-audit-checkpoint-v1\n`, then the sequence number (8 bytes,
    /// big-endian), the head hash (32 bytes) and the time (8 bytes, big-endian Unix seconds).
    /// They can be checked with `openssl dgst -verify` and the CA certificate's public key.
    pub fn message(head: &AuditHead, at: i64) -> Vec<u8> {
        let mut m = Vec::with_capacity(CHECKPOINT_TAG.len() + 48);
        m.extend_from_slice(CHECKPOINT_TAG);
        m.extend_from_slice(&head.seq.to_be_bytes());
        m.extend_from_slice(&head.hash);
        m.extend_from_slice(&at.to_be_bytes());
        m
    }

    /// Signs `head` with the CA key.
    pub fn sign(signer: &dyn Signer, head: AuditHead, at: i64) -> Result<Self, CaError> {
        let signature = signer
            .sign(&Self::message(&head, at))
            .map_err(CaError::Signing)?;
        Ok(Checkpoint {
            head,
            at,
            signature,
        })
    }

    /// Verifies the signature with the public key of the CA certificate `ca_cert_der`.
    pub fn verify(&self, ca_cert_der: &[u8]) -> Result<(), CaError> {
        let (_, cert) = x509_parser::parse_x509_certificate(ca_cert_der).map_err(|e| {
            CaError::ca_material_from("the CA certificate does not parse", e.to_string())
        })?;
        let key = crate::csr::subject_key(cert.public_key())?;
        let algorithm: &dyn VerificationAlgorithm = match key.key_type {
            SubjectKeyType::EcP256 => &signature::ECDSA_P256_SHA256_ASN1,
            SubjectKeyType::EcP384 => &signature::ECDSA_P384_SHA384_ASN1,
            SubjectKeyType::Ed25519 => &signature::ED25519,
            SubjectKeyType::Rsa(_) => &signature::RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(algorithm, &key.bits)
            .verify(&Self::message(&self.head, self.at), &self.signature)
            .map_err(|_| CaError::CheckpointInvalid { seq: self.head.seq })
    }

    /// Encodes the checkpoint with its format version.
    pub fn encode(&self) -> Result<Vec<u8>, CaError> {
        encode(CHECKPOINT_V1, self)
    }

    /// Decodes a stored checkpoint.
    pub fn decode(bytes: &[u8]) -> Result<Self, CaError> {
        decode_versioned(bytes, CHECKPOINT_V1, "checkpoint")
    }
}

/// Where and how the chain is broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuditBreak {
    /// An entry is absent: the log jumps from `seq - 1` to a later entry, or ends before it.
    #[error("entry {seq} is missing")]
    Missing {
        /// The first missing sequence number.
        seq: u64,
    },
    /// An entry's stored bytes do not decode.
    #[error("entry {seq} is malformed: {reason}")]
    Malformed {
        /// The entry.
        seq: u64,
        /// What the decoder said.
        reason: String,
    },
    /// An entry's content does not match its own hash: it was altered.
    #[error("entry {seq} was altered: its content does not match its hash")]
    Altered {
        /// The entry.
        seq: u64,
    },
    /// An entry's previous hash is not the hash of the entry before it.
    #[error("entry {seq} does not chain to entry {}: the previous hash differs", seq - 1)]
    Unchained {
        /// The entry.
        seq: u64,
    },
    /// The log ends before the head the store recorded, or before a signed checkpoint: its
    /// tail was removed.
    #[error("the log ends at entry {last} but entries up to {recorded} were recorded (by the store's head or a signed checkpoint): entry {} onwards was removed", last + 1)]
    Truncated {
        /// The last entry present.
        last: u64,
        /// The head sequence number the store recorded.
        recorded: u64,
    },
    /// A signed checkpoint names an entry the log no longer has, or a different hash for it.
    #[error("the signed checkpoint at entry {seq} does not match the log: {reason}")]
    Checkpoint {
        /// The checkpoint's sequence number.
        seq: u64,
        /// Why it does not match.
        reason: String,
    },
}

impl AuditBreak {
    /// The sequence number at which the log first fails.
    pub fn seq(&self) -> u64 {
        match self {
            AuditBreak::Missing { seq }
            | AuditBreak::Malformed { seq, .. }
            | AuditBreak::Altered { seq }
            | AuditBreak::Unchained { seq }
            | AuditBreak::Checkpoint { seq, .. } => *seq,
            AuditBreak::Truncated { last, .. } => last + 1,
        }
    }
}

/// Walks a log in order and checks the chain: every sequence number from 1 without gaps,
/// every hash matching its content, every entry chaining to the one before. Returns the head
/// reached, or the first break.
pub fn verify_chain<I>(entries: I) -> Result<AuditHead, AuditBreak>
where
    I: IntoIterator<Item = (u64, Result<AuditEntry, CaError>)>,
{
    let mut head = AuditHead::GENESIS;
    for (key_seq, entry) in entries {
        let expected = head.seq + 1;
        if key_seq != expected {
            return Err(AuditBreak::Missing { seq: expected });
        }
        let entry = entry.map_err(|e| AuditBreak::Malformed {
            seq: key_seq,
            reason: e.to_string(),
        })?;
        if entry.seq != key_seq || !entry.hash_matches().unwrap_or(false) {
            return Err(AuditBreak::Altered { seq: key_seq });
        }
        if entry.prev_hash != head.hash {
            return Err(AuditBreak::Unchained { seq: key_seq });
        }
        head = entry.head();
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64) -> Vec<AuditEntry> {
        let mut head = AuditHead::GENESIS;
        (1..=n)
            .map(|i| {
                let e = AuditEntry::chain(
                    head,
                    AuditEvent::new(
                        1_700_000_000 + i as i64,
                        "ra-1",
                        AuditAction::CertificateIssued,
                        format!("{i:02x}"),
                    )
                    .with("profile", "tls-server"),
                )
                .unwrap();
                head = e.head();
                e
            })
            .collect()
    }

    fn walk(entries: &[AuditEntry]) -> Result<AuditHead, AuditBreak> {
        verify_chain(entries.iter().map(|e| (e.seq, Ok(e.clone()))))
    }

    #[test]
    fn an_intact_chain_verifies_and_round_trips() {
        let entries = log(5);
        let head = walk(&entries).unwrap();
        assert_eq!(head, entries[4].head());
        for e in &entries {
            assert_eq!(&AuditEntry::decode(&e.encode().unwrap()).unwrap(), e);
        }
        assert_eq!(AuditHead::decode(&head.encode()), Some(head));
        assert_eq!(walk(&[]).unwrap(), AuditHead::GENESIS);
    }

    /// Entries store their action as its position among the variants (postcard): the ACME
    /// actions come after every older one, so that stored entries keep their action.
    #[test]
    fn acme_actions_are_stored_after_the_older_actions() {
        let acme: Vec<AuditAction> = AuditAction::ALL
            .into_iter()
            .filter(|a| a.name().starts_with("acme_"))
            .collect();
        assert_eq!(acme.len(), 11);
        for (i, action) in acme.into_iter().enumerate() {
            assert_eq!(postcard::to_allocvec(&action).unwrap(), [14 + i as u8]);
            let decoded: AuditAction = postcard::from_bytes(&[14 + i as u8]).unwrap();
            assert_eq!(decoded, action);
        }
        assert_eq!(
            postcard::to_allocvec(&AuditAction::TokenRenamed).unwrap(),
            [13]
        );
        assert_eq!(
            postcard::to_allocvec(&AuditAction::MassRevocationStarted).unwrap(),
            [25]
        );
        assert_eq!(
            postcard::to_allocvec(&AuditAction::MassRevocationCompleted).unwrap(),
            [26]
        );
        let names: std::collections::HashSet<&str> =
            AuditAction::ALL.iter().map(|a| a.name()).collect();
        assert_eq!(names.len(), AuditAction::ALL.len());
    }

    #[test]
    fn the_hash_follows_the_documented_netstring_form() {
        let event = AuditEvent::new(0, "a", AuditAction::HoldReleased, "t").with("k", "v");
        let e = AuditEntry::chain(AuditHead::GENESIS, event).unwrap();
        let text = format!(
            "ca-audit-v1{}:{},1:1,20:1970-01-01T00:00:00Z,1:a,13:hold_released,1:t,1:1,1:k,1:v,",
            64,
            "0".repeat(64)
        );
        assert_eq!(e.hash, <[u8; 32]>::from(Sha256::digest(text.as_bytes())));
    }

    #[test]
    fn edits_removals_and_reorderings_are_found_at_their_entry() {
        let entries = log(6);
        let mut edited = entries.clone();
        edited[2].event.target = "ff".into();
        assert_eq!(walk(&edited), Err(AuditBreak::Altered { seq: 3 }));

        // An edit that also recomputes the entry's own hash breaks the next link.
        let mut rehashed = entries.clone();
        rehashed[2].event.actor = "mallory".into();
        rehashed[2].hash = entry_hash(3, &rehashed[2].prev_hash, &rehashed[2].event).unwrap();
        assert_eq!(walk(&rehashed), Err(AuditBreak::Unchained { seq: 4 }));

        let mut removed = entries.clone();
        removed.remove(3);
        assert_eq!(walk(&removed), Err(AuditBreak::Missing { seq: 4 }));

        let mut swapped = entries.clone();
        swapped.swap(1, 2);
        assert_eq!(walk(&swapped), Err(AuditBreak::Missing { seq: 2 }));
    }

    #[test]
    fn checkpoints_verify_with_the_ca_key_only() {
        use keys::{generate_pkcs8, KeyAlgorithm, SoftwareKey};
        use std::sync::Arc;
        let subject = crate::name::parse_rfc4514("CN=Audit Test CA").unwrap();
        for alg in [
            KeyAlgorithm::EcdsaP256,
            KeyAlgorithm::Ed25519,
            KeyAlgorithm::Rsa3072,
        ] {
            let key = Arc::new(SoftwareKey::from_pkcs8(&generate_pkcs8(alg).unwrap()).unwrap());
            let other = SoftwareKey::from_pkcs8(&generate_pkcs8(alg).unwrap()).unwrap();
            let serial = crate::Serial::random(&keys::SystemRandom::new()).unwrap();
            let cert = crate::authority::create_root(key.clone(), &subject, 365, serial).unwrap();
            let key: &dyn Signer = key.as_ref();
            let head = log(3)[2].head();
            let cp = Checkpoint::sign(key, head, 1_700_000_100).unwrap();
            cp.verify(&cert).unwrap();
            assert_eq!(Checkpoint::decode(&cp.encode().unwrap()).unwrap(), cp);
            let forged = Checkpoint::sign(&other, head, 1_700_000_100).unwrap();
            assert!(forged.verify(&cert).is_err());
            let mut moved = cp.clone();
            moved.head.seq = 2;
            assert!(moved.verify(&cert).is_err());
        }
    }
}
