//! The values stored in RocksDB and their encodings.
//!
//! Every variable-length record starts with a one-byte format version followed by a postcard
//! body. A new format adds a version and a decoder for it; old versions stay readable, so a
//! store written by an older build keeps working.

use serde::{Deserialize, Serialize};

pub(crate) use crate::codec::{decode_versioned, encode};
use crate::error::CaError;
use crate::revocation::Revocation;
use crate::serial::Serial;

const CERT_RECORD_V1: u8 = 1;
const CERT_RECORD_V2: u8 = 2;
const TOKEN_RECORD_V1: u8 = 1;
const TOKEN_RECORD_V2: u8 = 2;
const ENROLLMENT_RECORD_V1: u8 = 1;

/// What the CA keeps about each certificate it issued. Immutable once written: revocation
/// and renewal links live in their own column families.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Position in issuance order (the `issued` key), assigned by the store writer.
    pub seq: u64,
    /// The certificate's serial (the `serials` key).
    pub serial: Serial,
    /// The certificate, DER. Encoded as one byte string (the same bytes postcard writes for a
    /// sequence of `u8`, so records written either way decode alike), not byte by byte.
    #[serde(with = "serde_bytes")]
    pub der: Vec<u8>,
    /// The profile it was issued under.
    pub profile: String,
    /// The name of the token that requested it (never the token).
    pub requester: String,
    /// When it was issued, Unix seconds.
    pub issued_at: i64,
    /// notBefore, Unix seconds.
    pub not_before: i64,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// The certificate this one renewed, if any.
    pub renewed_from: Option<Serial>,
    /// The sequence number of the audit entry that records the issuance, assigned by the
    /// store writer; `None` in a record of format version 1 (written before the field).
    /// Format version 2 appends it to the version 1 body.
    #[serde(skip)]
    pub audit_seq: Option<u64>,
}

impl CertRecord {
    /// Encodes the record with its format version: version 2 when it knows its audit entry.
    pub fn encode(&self) -> Result<Vec<u8>, CaError> {
        let Some(audit_seq) = self.audit_seq else {
            return encode(CERT_RECORD_V1, self);
        };
        let mut out = encode(CERT_RECORD_V2, self)?;
        postcard::to_io(&audit_seq, &mut out)
            .map_err(|e| CaError::record("encoding a certificate record", e))?;
        Ok(out)
    }

    /// Decodes a stored record of any known format version.
    pub fn decode(bytes: &[u8]) -> Result<Self, CaError> {
        const WHAT: &str = "certificate record";
        match bytes.split_first() {
            Some((&CERT_RECORD_V1, _)) => decode_versioned(bytes, CERT_RECORD_V1, WHAT),
            Some((&CERT_RECORD_V2, body)) => {
                let bad = |e: postcard::Error| CaError::record(format!("decoding a {WHAT}"), e);
                let (mut record, rest): (CertRecord, _) =
                    postcard::take_from_bytes(body).map_err(bad)?;
                let (audit_seq, rest) = postcard::take_from_bytes::<u64>(rest).map_err(bad)?;
                if !rest.is_empty() {
                    return Err(CaError::Storage(format!("{WHAT} with trailing bytes")));
                }
                record.audit_seq = Some(audit_seq);
                Ok(record)
            }
            _ => Err(CaError::Storage(format!("{WHAT} of an unknown format"))),
        }
    }
}

/// An idempotency entry: which certificate a `(token, request_id)` produced, and a digest of
/// the request that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The certificate issued for the request.
    pub serial: Serial,
    /// SHA-256 of the request's canonical form.
    pub request_hash: [u8; 32],
}

impl IdempotencyRecord {
    /// Fixed 48-byte encoding: serial then digest.
    pub fn encode(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[..16].copy_from_slice(self.serial.as_bytes());
        out[16..].copy_from_slice(&self.request_hash);
        out
    }

    /// Decodes the fixed encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, CaError> {
        let bad = || CaError::Storage("malformed idempotency record".into());
        if bytes.len() != 48 {
            return Err(bad());
        }
        let serial = Serial::from_bytes(&bytes[..16]).ok_or_else(bad)?;
        let mut request_hash = [0u8; 32];
        request_hash.copy_from_slice(&bytes[16..]);
        Ok(IdempotencyRecord {
            serial,
            request_hash,
        })
    }
}

/// An API token, stored under the SHA-256 of the token; the token itself is never stored.
///
/// Its name is unique among all tokens that ever existed (the store's `token_names` index,
/// kept by the single writer) and never reused, so that the name, which certificates and
/// enrollments record as their requester, always designates this one token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// A human name for the token's holder, shown as `requester` and `actor`.
    pub name: String,
    /// The role: `ra`, `auditor` or `operator`.
    pub role: String,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// Immutable internal id: 16 random bytes drawn at creation (or, for a token of format
    /// version 1, when the store was upgraded). Unlike the name it never changes.
    pub id: [u8; 16],
    /// After this moment (Unix seconds) the token is refused; `None`: it does not expire.
    pub expires_at: Option<i64>,
    /// When it was revoked (Unix seconds); a revoked token is refused.
    pub revoked_at: Option<i64>,
}

/// Format version 1 of [`TokenRecord`], written by builds before token ids.
#[derive(Deserialize)]
struct TokenRecordV1 {
    name: String,
    role: String,
    created_at: i64,
}

impl TokenRecord {
    /// Whether the token may authenticate at `now` (Unix seconds): not revoked, not expired.
    pub fn is_active(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| now < t)
    }

    /// Encodes the record with its format version.
    pub fn encode(&self) -> Result<Vec<u8>, CaError> {
        encode(TOKEN_RECORD_V2, self)
    }

    /// Decodes a stored record of any known format version. A version 1 record has no id
    /// yet (all zeros) until the store's upgrade gives it one, and neither expires nor is
    /// revoked.
    pub fn decode(bytes: &[u8]) -> Result<Self, CaError> {
        match bytes.first() {
            Some(&TOKEN_RECORD_V1) => {
                let v1: TokenRecordV1 = decode_versioned(bytes, TOKEN_RECORD_V1, "token record")?;
                Ok(TokenRecord {
                    name: v1.name,
                    role: v1.role,
                    created_at: v1.created_at,
                    id: [0; 16],
                    expires_at: None,
                    revoked_at: None,
                })
            }
            _ => decode_versioned(bytes, TOKEN_RECORD_V2, "token record"),
        }
    }

    /// Whether the stored bytes are of format version 1 (no id yet).
    pub(crate) fn is_v1(bytes: &[u8]) -> bool {
        bytes.first() == Some(&TOKEN_RECORD_V1)
    }
}

/// An enrollment (API contract: Enrollment): what an RA approved for a subscriber who will
/// redeem it later with a one-time code. The code itself is never stored, only its salted
/// hash ([`crate::enrollment::CodeHash`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentRecord {
    /// The profile to issue under.
    pub profile: String,
    /// The subject, RFC 4514.
    pub subject: String,
    /// The SANs, as the API writes them.
    pub sans: Vec<String>,
    /// Certificate validity in days; the profile's default when absent.
    pub validity_days: Option<u32>,
    /// [`crate::enrollment::CodeHash::to_bytes`].
    pub code_hash: Vec<u8>,
    /// The name of the RA token that created it.
    pub requester: String,
    /// Created, Unix seconds.
    pub created_at: i64,
    /// The code expires at, Unix seconds.
    pub expires_at: i64,
    /// Wrong codes accepted before the enrollment locks.
    pub max_attempts: u32,
    /// Wrong codes given so far.
    pub failed_attempts: u32,
    /// The certificate it was redeemed for.
    pub serial: Option<Serial>,
}

impl EnrollmentRecord {
    /// The state at `now` (API: pending, redeemed, locked, expired).
    pub fn state(&self, now: i64) -> crate::enrollment::EnrollmentState {
        use crate::enrollment::EnrollmentState;
        if self.serial.is_some() {
            EnrollmentState::Redeemed
        } else if self.failed_attempts >= self.max_attempts {
            EnrollmentState::Locked
        } else if now >= self.expires_at {
            EnrollmentState::Expired
        } else {
            EnrollmentState::Pending
        }
    }

    /// Refuses a redemption unless the enrollment is pending at `now`.
    pub fn check_redeemable(&self, now: i64) -> Result<(), CaError> {
        use crate::enrollment::EnrollmentState;
        match self.state(now) {
            EnrollmentState::Pending => Ok(()),
            EnrollmentState::Redeemed => Err(CaError::EnrollmentRedeemed),
            EnrollmentState::Locked => Err(CaError::EnrollmentLocked),
            EnrollmentState::Expired => Err(CaError::EnrollmentExpired),
        }
    }

    /// Encodes the record with its format version.
    pub fn encode(&self) -> Result<Vec<u8>, CaError> {
        encode(ENROLLMENT_RECORD_V1, self)
    }

    /// Decodes a stored record of any known format version.
    pub fn decode(bytes: &[u8]) -> Result<Self, CaError> {
        decode_versioned(bytes, ENROLLMENT_RECORD_V1, "enrollment record")
    }
}

/// The format version of a stored [`Revocation`].
const REVOCATION_V1: u8 = 1;

/// Encodes a revocation record with its format version.
pub fn encode_revocation(r: &Revocation) -> Result<Vec<u8>, CaError> {
    encode(REVOCATION_V1, r)
}

/// Decodes a stored revocation record.
pub fn decode_revocation(bytes: &[u8]) -> Result<Revocation, CaError> {
    decode_versioned(bytes, REVOCATION_V1, "revocation")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_cert_record_encoding_is_stable() {
        let rec = CertRecord {
            seq: 7,
            serial: Serial::from_bytes(&[0x41; 16]).unwrap(),
            der: vec![0x30, 0x00],
            profile: "p".into(),
            requester: "r".into(),
            issued_at: 1,
            not_before: 2,
            not_after: 3,
            renewed_from: None,
            audit_seq: None,
        };
        let bytes = rec.encode().unwrap();
        // A record written by the first build: must decode forever.
        let expected: Vec<u8> = [
            &[1u8, 7][..],
            &[0x41; 16],
            &[2, 0x30, 0, 1, b'p', 1, b'r', 2, 4, 6, 0],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(CertRecord::decode(&bytes).unwrap(), rec);
        assert!(CertRecord::decode(&[9, 1, 2]).is_err());
        assert!(CertRecord::decode(&[]).is_err());

        // Version 2: the version 1 body, then the issuance's audit sequence number.
        let v2 = CertRecord {
            audit_seq: Some(300),
            ..rec
        };
        let bytes = v2.encode().unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(bytes[1..], [&expected[1..], &[0xac, 0x02]].concat());
        assert_eq!(CertRecord::decode(&bytes).unwrap(), v2);
        assert!(CertRecord::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(CertRecord::decode(&[bytes.as_slice(), &[0]].concat()).is_err());
    }

    #[test]
    fn v1_token_records_still_decode() {
        // A token record written before token ids: name "ra", role "ra", created at 5.
        let v1 = [1u8, 2, b'r', b'a', 2, b'r', b'a', 10];
        let rec = TokenRecord::decode(&v1).unwrap();
        assert_eq!(
            (rec.name.as_str(), rec.role.as_str(), rec.created_at),
            ("ra", "ra", 5)
        );
        assert_eq!(
            (rec.id, rec.expires_at, rec.revoked_at),
            ([0; 16], None, None)
        );
        assert!(TokenRecord::is_v1(&v1));
        let v2 = TokenRecord {
            id: [3; 16],
            expires_at: Some(100),
            ..rec
        };
        let bytes = v2.encode().unwrap();
        assert!(!TokenRecord::is_v1(&bytes));
        assert_eq!(TokenRecord::decode(&bytes).unwrap(), v2);
        assert!(v2.is_active(99) && !v2.is_active(100));
    }
}
