//! Revocation: reasons (RFC 5280 section 5.3.1), the stored revocation record, and the
//! certificate status derived from it.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::CaError;
use crate::serial::Serial;

/// The earliest invalidity date accepted unless `[revocation] min_invalidity_date` says
/// otherwise: the first year of UTCTime's window (RFC 5280 section 4.1.2.5.1), long before
/// any key this CA certifies.
pub const DEFAULT_MIN_INVALIDITY_DATE: &str = "1950-01-01T00:00:00Z";

/// 0000-01-01T00:00:00Z, the earliest time RFC 3339 and GeneralizedTime carry: no
/// invalidity date before it is ever stored, whatever the caller's floor.
pub const EARLIEST_INVALIDITY_DATE: i64 = -62_167_219_200;

/// Revocation settings (`[revocation]` of the configuration).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RevocationConfig {
    /// The earliest `invalidity_date` a revocation may give, RFC 3339 (default
    /// [`DEFAULT_MIN_INVALIDITY_DATE`]).
    pub min_invalidity_date: String,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        RevocationConfig {
            min_invalidity_date: DEFAULT_MIN_INVALIDITY_DATE.into(),
        }
    }
}

impl RevocationConfig {
    /// `min_invalidity_date` in Unix seconds; an error names the setting when it is not an
    /// RFC 3339 time.
    pub fn min_invalidity_unix(&self) -> Result<i64, CaError> {
        OffsetDateTime::parse(&self.min_invalidity_date, &Rfc3339)
            .map(OffsetDateTime::unix_timestamp)
            .map_err(|e| {
                CaError::InvalidRequest(format!(
                    "[revocation] min_invalidity_date {:?} is not an RFC 3339 time: {e}",
                    self.min_invalidity_date
                ))
            })
    }
}

/// Checks an invalidity date (RFC 5280 section 5.3.2: when the key is known or suspected to
/// have been compromised), in Unix seconds, given with a revocation at `revoked_at`: not
/// after the revocation (which is not in the future), and not before `floor` (the operator's
/// `min_invalidity_date`). Whatever passes is a year GeneralizedTime carries.
pub fn check_invalidity_date(date: i64, revoked_at: i64, floor: i64) -> Result<(), CaError> {
    let show = |t: i64| crate::time_format::rfc3339(t).unwrap_or_else(|_| t.to_string());
    if date > revoked_at {
        return Err(CaError::InvalidRequest(format!(
            "invalidity_date {} is after the revocation time {} (RFC 5280 5.3.2: it must not \
             be in the future)",
            show(date),
            show(revoked_at)
        )));
    }
    if date < floor {
        return Err(CaError::InvalidRequest(format!(
            "invalidity_date {} is before {}, the earliest this CA accepts ([revocation] \
             min_invalidity_date)",
            show(date),
            show(floor)
        )));
    }
    Ok(())
}

/// Parses the API's `invalidity_date` (RFC 3339) and checks it as [`check_invalidity_date`]
/// does for a revocation at `revoked_at`.
pub fn parse_invalidity_date(text: &str, revoked_at: i64, floor: i64) -> Result<i64, CaError> {
    let date = OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|e| {
            CaError::InvalidRequest(format!(
                "invalidity_date {text:?} is not an RFC 3339 time: {e}"
            ))
        })?;
    check_invalidity_date(date, revoked_at, floor)?;
    Ok(date)
}

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

impl Revocation {
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
    fn invalidity_dates_are_bounded() {
        let floor = RevocationConfig::default().min_invalidity_unix().unwrap();
        assert_eq!(floor, -631_152_000);
        let now = 1_800_000_000;
        let ok = |s: &str| parse_invalidity_date(s, now, floor);
        assert_eq!(ok("1969-12-31T23:59:59Z").unwrap(), -1);
        assert_eq!(ok("1950-01-01T00:00:00Z").unwrap(), floor);
        assert_eq!(ok("2027-01-15T08:00:00Z").unwrap(), now);
        for (bad, why) in [
            ("1949-12-31T23:59:59Z", "before"),
            ("1900-01-01T00:00:00Z", "before"),
            ("0000-01-01T00:00:00Z", "before"),
            ("2027-01-15T08:00:01Z", "after the revocation"),
            ("9999-12-31T23:59:59Z", "after the revocation"),
            ("yesterday", "RFC 3339"),
        ] {
            let e = ok(bad).unwrap_err();
            assert_eq!(e.code(), "invalid_request");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        let early = RevocationConfig {
            min_invalidity_date: "1900-01-01T00:00:00Z".into(),
        };
        let floor = early.min_invalidity_unix().unwrap();
        assert!(parse_invalidity_date("1900-01-01T00:00:00Z", now, floor).is_ok());
        let earliest = "0000-01-01T00:00:00Z";
        assert_eq!(
            parse_invalidity_date(earliest, now, EARLIEST_INVALIDITY_DATE).unwrap(),
            EARLIEST_INVALIDITY_DATE
        );
        let bad = RevocationConfig {
            min_invalidity_date: "1950".into(),
        };
        assert!(bad.min_invalidity_unix().is_err());
    }

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

/// Where the CRL and OCSP builders report a stored entry that they wrote without one of its
/// fields because that field cannot be encoded (e.g. an invalidityDate outside the years 0000
/// to 9999 of GeneralizedTime, RFC 5280 section 4.1.2.5.2): one warning naming the serial,
/// and a count by field when a counter is attached. No single stored entry may make a whole
/// CRL or OCSP answer unbuildable; the revocation itself still appears.
#[derive(Clone, Default)]
pub struct DegradedEntries {
    count: Option<std::sync::Arc<dyn Fn(&'static str) + Send + Sync>>,
}

impl std::fmt::Debug for DegradedEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DegradedEntries")
            .field("counted", &self.count.is_some())
            .finish()
    }
}

impl DegradedEntries {
    /// Reports each degraded field to `count` as well as to the log.
    pub fn counting(count: impl Fn(&'static str) + Send + Sync + 'static) -> Self {
        DegradedEntries {
            count: Some(std::sync::Arc::new(count)),
        }
    }

    /// Notes that `field` of `serial`'s entry was left out or replaced, and why.
    pub fn report(&self, serial: &Serial, field: &'static str, why: &CaError) {
        tracing::warn!(
            %serial,
            field,
            error = %why,
            "a stored revocation field cannot be encoded; the entry is written without it"
        );
        if let Some(count) = &self.count {
            count(field);
        }
    }
}
