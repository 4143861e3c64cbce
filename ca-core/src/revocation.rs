//! Revocation: reasons (RFC 5280 section 5.3.1), the stored revocation record, and the
//! certificate status derived from it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::CaError;

/// A CRL reason code (RFC 5280 section 5.3.1). `removeFromCRL` (8) exists only in delta CRLs
/// and is not a reason a caller may give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RevocationReason {
    /// unspecified (0).
    Unspecified,
    /// keyCompromise (1).
    KeyCompromise,
    /// cACompromise (2).
    CaCompromise,
    /// affiliationChanged (3).
    AffiliationChanged,
    /// superseded (4).
    Superseded,
    /// cessationOfOperation (5).
    CessationOfOperation,
    /// certificateHold (6): temporary; may be released or made permanent.
    CertificateHold,
    /// privilegeWithdrawn (9).
    PrivilegeWithdrawn,
    /// aACompromise (10).
    AaCompromise,
}

impl RevocationReason {
    /// Every reason a caller may give.
    pub const ALL: [RevocationReason; 9] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise,
    ];

    /// The CRLReason ENUMERATED value.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::CertificateHold => 6,
            RevocationReason::PrivilegeWithdrawn => 9,
            RevocationReason::AaCompromise => 10,
        }
    }

    /// The reason with this CRLReason value.
    pub fn from_code(code: u8) -> Option<Self> {
        RevocationReason::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The RFC 5280 name the API uses (`keyCompromise`, ...).
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "keyCompromise",
            RevocationReason::CaCompromise => "cACompromise",
            RevocationReason::AffiliationChanged => "affiliationChanged",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessationOfOperation",
            RevocationReason::CertificateHold => "certificateHold",
            RevocationReason::PrivilegeWithdrawn => "privilegeWithdrawn",
            RevocationReason::AaCompromise => "aACompromise",
        }
    }

    /// Parses an RFC 5280 reason name.
    pub fn from_name(name: &str) -> Result<Self, CaError> {
        RevocationReason::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = RevocationReason::ALL.iter().map(|r| r.name()).collect();
                CaError::InvalidRequest(format!(
                    "unknown revocation reason {name:?}; expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// A stored revocation (the `revoked` column family, keyed by serial).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// Why.
    pub reason: RevocationReason,
    /// When the CA revoked it, Unix seconds.
    pub revoked_at: i64,
    /// When the key is known or suspected to have been compromised, Unix seconds
    /// (RFC 5280 section 5.3.2).
    pub invalidity_date: Option<i64>,
    /// The certificate's notAfter, Unix seconds: CRLs drop entries some time after it.
    pub not_after: i64,
}

const REVOCATION_V1: u8 = 1;

impl Revocation {
    /// Encodes the record with its format version.
    pub fn encode(&self) -> Result<Vec<u8>, CaError> {
        crate::store::record::encode(REVOCATION_V1, self)
    }

    /// Decodes a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, CaError> {
        crate::store::record::decode_versioned(bytes, REVOCATION_V1, "revocation")
    }

    /// Whether this is a hold, which may still be released.
    pub fn is_hold(&self) -> bool {
        self.reason == RevocationReason::CertificateHold
    }
}

/// A certificate's status, derived from its validity and revocation, never stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Within its validity and not revoked.
    Valid,
    /// Past its notAfter and not revoked.
    Expired,
    /// On hold (certificateHold).
    OnHold,
    /// Revoked for good.
    Revoked,
}

impl Status {
    /// Derives the status at `now`.
    pub fn of(not_after: i64, revocation: Option<&Revocation>, now: OffsetDateTime) -> Status {
        match revocation {
            Some(r) if r.is_hold() => Status::OnHold,
            Some(_) => Status::Revoked,
            None if not_after < now.unix_timestamp() => Status::Expired,
            None => Status::Valid,
        }
    }

    /// The API's name of the status.
    pub fn name(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Expired => "expired",
            Status::OnHold => "on_hold",
            Status::Revoked => "revoked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip_by_name_and_code() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_name(r.name()).unwrap(), r);
            assert_eq!(RevocationReason::from_code(r.code()), Some(r));
        }
        assert!(RevocationReason::from_name("removeFromCRL").is_err());
        assert_eq!(RevocationReason::from_code(7), None);
    }
}
