//! Mass revocation: one operator action that revokes every certificate matching a filter (a
//! key, a requester, a profile, an issuance time window), as an incident needs it (CA/Browser
//! Forum TLS Baseline Requirements 4.9.1.1: within 24 hours for a compromised key, within 5
//! days otherwise).
//!
//! The walk is the auditor's query ([`crate::store::query`]) over the same indexes and cursors,
//! with the key compared per certificate (SHA-256 of its SubjectPublicKeyInfo, which no index
//! holds). A walk goes in steps ([`crate::engine::Engine::mass_revocation_step`]), each within
//! a time budget, so that no single request runs long; between steps, [`Progress`] holds where
//! the walk stands and what it counted, sealed for the operator who started it
//! ([`Progress::seal`]). A dry run walks the same way and changes nothing.
//!
//! The action is audited: `mass_revocation_started` (the filter, the reason) before the first
//! certificate is revoked, each certificate's own `certificate_revoked` entry with the
//! action's id as its `action` detail, and `mass_revocation_completed` (the counts) once the
//! walk is complete.

use serde::{Deserialize, Serialize};

pub use crate::audit::ActionId;
use crate::audit::{rfc3339, AuditAction, AuditEvent};
use crate::error::CaError;
use crate::revocation::{Revocation, RevocationReason};
use crate::serial::Serial;
use crate::store::query::{CertificateQuery, Cursor, CursorKey, MAX_EXAMINED};
use crate::store::{CertRecord, Storage};

/// Longest requester or profile name a filter may give, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Longest sealed [`Progress`] accepted back, in characters.
const MAX_SEALED_LEN: usize = 4096;

/// Bound to every sealed [`Progress`] with the caller's context.
const PROGRESS_CONTEXT: &[u8] = b"mass revocation v1\0";

/// Which certificates a mass revocation covers: every filter given must hold, and at least
/// one must be given.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationFilter {
    /// SHA-256 of the certificate's SubjectPublicKeyInfo (as
    /// [`crate::spki::certificate_key_sha256`] computes it).
    pub spki_sha256: Option<[u8; 32]>,
    /// The requester (the token name the certificate was issued to).
    pub requester: Option<String>,
    /// The profile it was issued under.
    pub profile: Option<String>,
    /// Issued at or after this time, Unix seconds.
    pub issued_after: Option<i64>,
    /// Issued before this time, Unix seconds.
    pub issued_before: Option<i64>,
}

impl RevocationFilter {
    /// Refuses a filter that selects everything (none given), an empty or overlong name, and
    /// a window whose start is not before its end ([`CaError::InvalidRequest`]).
    pub fn check(&self) -> Result<(), CaError> {
        if *self == RevocationFilter::default() {
            return Err(CaError::InvalidRequest(
                "a mass revocation needs at least one filter: spki_sha256, requester, profile, \
                 issued_after or issued_before"
                    .into(),
            ));
        }
        for (field, name) in [("requester", &self.requester), ("profile", &self.profile)] {
            if let Some(name) = name {
                if name.is_empty() || name.len() > MAX_NAME_LEN {
                    return Err(CaError::InvalidRequest(format!(
                        "{field} must be 1 to {MAX_NAME_LEN} bytes long"
                    )));
                }
            }
        }
        if let (Some(after), Some(before)) = (self.issued_after, self.issued_before) {
            if after >= before {
                return Err(CaError::InvalidRequest(format!(
                    "issued_after ({}) must be before issued_before ({})",
                    rfc3339(after)?,
                    rfc3339(before)?
                )));
            }
        }
        Ok(())
    }

    /// The auditor's query for the filters an index or the stored record serves (all but the
    /// key).
    fn query(&self) -> CertificateQuery {
        CertificateQuery {
            requester: self.requester.clone(),
            profile: self.profile.clone(),
            issued_after: self.issued_after,
            issued_before: self.issued_before,
            ..CertificateQuery::default()
        }
    }

    /// Whether `record` satisfies every filter; a certificate whose key cannot be read does
    /// not match a key filter.
    pub fn matches(&self, record: &CertRecord) -> bool {
        self.requester
            .as_ref()
            .is_none_or(|r| *r == record.requester)
            && self.profile.as_ref().is_none_or(|p| *p == record.profile)
            && self.issued_after.is_none_or(|t| record.issued_at >= t)
            && self.issued_before.is_none_or(|t| record.issued_at < t)
            && self.key_matches(record)
    }

    /// Whether the certificate's key is the filter's (true without a key filter).
    fn key_matches(&self, record: &CertRecord) -> bool {
        self.spki_sha256.is_none_or(|want| {
            crate::spki::certificate_key_sha256(&record.der).is_ok_and(|have| have == want)
        })
    }

    /// The filter as audit details, one per filter given.
    fn details(&self) -> Result<Vec<(&'static str, String)>, CaError> {
        let mut details = Vec::new();
        if let Some(key) = self.spki_sha256 {
            details.push(("spki_sha256", hex::encode(key)));
        }
        if let Some(requester) = &self.requester {
            details.push(("requester", requester.clone()));
        }
        if let Some(profile) = &self.profile {
            details.push(("profile", profile.clone()));
        }
        if let Some(t) = self.issued_after {
            details.push(("issued_after", rfc3339(t)?));
        }
        if let Some(t) = self.issued_before {
            details.push(("issued_before", rfc3339(t)?));
        }
        Ok(details)
    }
}

/// What an operator asks: the certificates, the reason (RFC 5280 section 5.3.1) and the
/// invalidity date (section 5.3.2), as for the revocation of one certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MassRevocationRequest {
    /// Which certificates.
    pub filter: RevocationFilter,
    /// Why; keyCompromise also blocks each certificate's key.
    pub reason: RevocationReason,
    /// When the keys are known or suspected to have been compromised, Unix seconds.
    pub invalidity_date: Option<i64>,
}

/// A dry run, or the action with its id and the operator who started it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Count only; nothing changes and nothing is audited.
    DryRun,
    /// Revoke, as `actor` asked, in the action `id`.
    Revoke {
        /// The action's id.
        id: ActionId,
        /// The operator (a token's name).
        actor: String,
    },
}

/// What a walk counted: certificates matching the filter, and what became of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Certificates that matched the filter.
    pub matched: u64,
    /// Matching certificates revoked by this action (in a dry run: that it would revoke).
    pub revoked: u64,
    /// Matching certificates revoked before (a hold counts only when the reason is
    /// certificateHold: otherwise the hold is made permanent and counted as revoked).
    pub already_revoked: u64,
    /// Matching certificates left alone because they expired: revoking them would change
    /// nothing for a relying party (CRLs drop them, RFC 5280 section 3.3).
    pub expired: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.matched += other.matched;
        self.revoked += other.revoked;
        self.already_revoked += other.already_revoked;
        self.expired += other.expired;
    }
}

/// What becomes of one matching certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// It is revoked.
    Revoke,
    /// It was revoked before (or held, for a certificateHold action).
    AlreadyRevoked,
    /// It expired.
    Expired,
}

/// What a mass revocation for `reason` does at `now` with a certificate whose notAfter is
/// `not_after` and whose revocation is `revocation`.
pub fn disposition(
    revocation: Option<&Revocation>,
    not_after: i64,
    reason: RevocationReason,
    now: i64,
) -> Disposition {
    match revocation {
        Some(r) if !r.is_hold() || reason == RevocationReason::CertificateHold => {
            Disposition::AlreadyRevoked
        }
        _ if not_after < now => Disposition::Expired,
        _ => Disposition::Revoke,
    }
}

/// A certificate to revoke, with its key when the reason blocks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The certificate.
    pub serial: Serial,
    /// For keyCompromise: its key's SHA-256, blocked in the revocation's commit.
    pub blocked_key: Option<[u8; 32]>,
}

/// One page of the walk: what to revoke, what was counted, where to go on.
#[derive(Debug)]
pub struct Scan {
    /// The certificates to revoke.
    pub candidates: Vec<Candidate>,
    /// The page's counts; `revoked` counts the candidates.
    pub tally: Tally,
    /// Where the walk goes on, `None` once it is complete.
    pub next: Option<Cursor>,
}

/// One page of the walk for `request` from `cursor`: at most `page` certificates of the
/// query's and never more than [`MAX_EXAMINED`] examined, each matching one classified at
/// `now` ([`disposition`]). Reads only.
pub fn scan(
    store: &dyn Storage,
    request: &MassRevocationRequest,
    cursor: Option<&Cursor>,
    now: i64,
    page: usize,
) -> Result<Scan, CaError> {
    let page = store.query(&request.filter.query(), cursor, page.clamp(1, MAX_EXAMINED))?;
    let mut tally = Tally::default();
    let mut candidates = Vec::new();
    for row in page.rows {
        let record = &row.record;
        if !request.filter.key_matches(record) {
            continue;
        }
        tally.matched += 1;
        match disposition(
            row.revocation.as_ref(),
            record.not_after,
            request.reason,
            now,
        ) {
            Disposition::AlreadyRevoked => tally.already_revoked += 1,
            Disposition::Expired => tally.expired += 1,
            Disposition::Revoke => {
                tally.revoked += 1;
                let blocked_key = match request.reason {
                    RevocationReason::KeyCompromise => {
                        crate::spki::certificate_key_sha256(&record.der).ok()
                    }
                    _ => None,
                };
                candidates.push(Candidate {
                    serial: record.serial,
                    blocked_key,
                });
            }
        }
    }
    Ok(Scan {
        candidates,
        tally,
        next: page.next,
    })
}

/// Where a mass revocation (or its dry run) stands between steps: the request, the mode, the
/// walk's position and its counts so far.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// What the operator asked.
    pub request: MassRevocationRequest,
    /// Dry run or action.
    pub mode: Mode,
    /// The walk's position ([`Cursor::encode`]); `None` before the first step and once done.
    cursor: Option<String>,
    /// Counts so far.
    pub tally: Tally,
    /// True once every certificate was examined.
    pub done: bool,
}

impl Progress {
    /// A walk that has not started.
    pub fn new(request: MassRevocationRequest, mode: Mode) -> Self {
        Progress {
            request,
            mode,
            cursor: None,
            tally: Tally::default(),
            done: false,
        }
    }

    /// The walk's position, `None` at its start.
    pub fn cursor(&self) -> Result<Option<Cursor>, CaError> {
        self.cursor.as_deref().map(Cursor::decode).transpose()
    }

    /// Moves the walk to `next` (`None`: complete) after a step that counted `tally`.
    pub fn advance(&mut self, next: Option<Cursor>, tally: Tally) {
        self.tally += tally;
        self.done = next.is_none();
        self.cursor = next.map(|c| c.encode());
    }

    /// The progress sealed for `context` (the caller who may continue it), as the API hands
    /// it out: nothing in it can be read or altered by the client.
    pub fn seal(&self, key: &CursorKey, context: &[u8]) -> Result<String, CaError> {
        let data = postcard::to_allocvec(self)
            .map_err(|e| CaError::record("encoding a mass revocation's progress", e))?;
        key.seal(&data, &[PROGRESS_CONTEXT, context].concat())
    }

    /// A progress [`Progress::seal`]ed for `context`; anything else is `invalid_request`.
    pub fn open(text: &str, key: &CursorKey, context: &[u8]) -> Result<Progress, CaError> {
        let bad = || {
            CaError::InvalidRequest(
                "the continuation is not one this CA gave to this caller".into(),
            )
        };
        let data = key
            .open(text, &[PROGRESS_CONTEXT, context].concat(), MAX_SEALED_LEN)
            .ok_or_else(bad)?;
        postcard::from_bytes(&data).map_err(|_| bad())
    }

    /// The audit entry that starts the action: actor, filter, reason, invalidity date.
    pub fn started_event(&self, at: i64) -> Result<Option<AuditEvent>, CaError> {
        let Mode::Revoke { id, actor } = &self.mode else {
            return Ok(None);
        };
        let request = &self.request;
        let mut event = AuditEvent::new(
            at,
            actor,
            AuditAction::MassRevocationStarted,
            id.to_string(),
        )
        .with("reason", request.reason.name());
        if let Some(date) = request.invalidity_date {
            event = event.with("invalidity_date", rfc3339(date)?);
        }
        for (key, value) in request.filter.details()? {
            event = event.with(key, value);
        }
        Ok(Some(event))
    }

    /// The audit entry that ends the action: its counts.
    pub fn completed_event(&self, at: i64) -> Option<AuditEvent> {
        let Mode::Revoke { id, actor } = &self.mode else {
            return None;
        };
        let t = &self.tally;
        Some(
            AuditEvent::new(
                at,
                actor,
                AuditAction::MassRevocationCompleted,
                id.to_string(),
            )
            .with("reason", self.request.reason.name())
            .with("matched", t.matched.to_string())
            .with("revoked", t.revoked.to_string())
            .with("already_revoked", t.already_revoked.to_string())
            .with("expired", t.expired.to_string()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn record(requester: &str, profile: &str, issued_at: i64) -> CertRecord {
        CertRecord {
            seq: 1,
            serial: Serial::from_bytes(&[0x40; 16]).unwrap(),
            der: Vec::new(),
            profile: profile.into(),
            requester: requester.into(),
            issued_at,
            not_before: issued_at,
            not_after: issued_at + 86_400,
            renewed_from: None,
            audit_seq: None,
        }
    }

    fn revocation(reason: RevocationReason) -> Revocation {
        Revocation {
            reason,
            revoked_at: NOW,
            invalidity_date: None,
            not_after: NOW + 10,
        }
    }

    #[test]
    fn a_filter_needs_one_criterion_and_an_ordered_window() {
        assert!(RevocationFilter::default().check().is_err());
        let window = |after, before| RevocationFilter {
            issued_after: Some(after),
            issued_before: Some(before),
            ..RevocationFilter::default()
        };
        assert!(window(NOW, NOW).check().is_err());
        assert!(window(NOW + 1, NOW).check().is_err());
        assert!(window(NOW, NOW + 1).check().is_ok());
        let name = |n: &str| RevocationFilter {
            requester: Some(n.into()),
            ..RevocationFilter::default()
        };
        assert!(name("").check().is_err());
        assert!(name(&"a".repeat(MAX_NAME_LEN + 1)).check().is_err());
        assert!(name("ra").check().is_ok());
    }

    #[test]
    fn every_given_filter_must_hold() {
        let r = record("ra-a", "tls", NOW);
        let f = |requester: Option<&str>, profile: Option<&str>, after, before| RevocationFilter {
            requester: requester.map(Into::into),
            profile: profile.map(Into::into),
            issued_after: after,
            issued_before: before,
            spki_sha256: None,
        };
        assert!(f(Some("ra-a"), None, None, None).matches(&r));
        assert!(!f(Some("ra-b"), None, None, None).matches(&r));
        assert!(f(Some("ra-a"), Some("tls"), None, None).matches(&r));
        assert!(!f(Some("ra-a"), Some("mail"), None, None).matches(&r));
        assert!(f(None, None, Some(NOW), Some(NOW + 1)).matches(&r));
        assert!(!f(None, None, Some(NOW + 1), None).matches(&r));
        assert!(
            !f(None, None, None, Some(NOW)).matches(&r),
            "the end is exclusive"
        );
        // A key filter never matches a certificate whose key cannot be read.
        let keyed = RevocationFilter {
            spki_sha256: Some([0; 32]),
            ..RevocationFilter::default()
        };
        assert!(!keyed.matches(&r));
    }

    #[test]
    fn the_key_filter_compares_the_certificates_spki_hash() {
        let cert = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        let mut r = record("ra-a", "tls", NOW);
        r.der = cert.cert.der().to_vec();
        let hash = crate::spki::certificate_key_sha256(&r.der).unwrap();
        let keyed = |key, requester: Option<&str>| RevocationFilter {
            spki_sha256: Some(key),
            requester: requester.map(Into::into),
            ..RevocationFilter::default()
        };
        assert!(keyed(hash, None).matches(&r));
        assert!(keyed(hash, Some("ra-a")).matches(&r));
        assert!(!keyed(hash, Some("ra-b")).matches(&r));
        let mut other = hash;
        other[31] ^= 1;
        assert!(!keyed(other, None).matches(&r));
    }

    #[test]
    fn held_and_expired_certificates_are_classified() {
        use RevocationReason::*;
        let held = revocation(CertificateHold);
        let revoked = revocation(KeyCompromise);
        assert_eq!(
            disposition(None, NOW + 1, KeyCompromise, NOW),
            Disposition::Revoke
        );
        assert_eq!(
            disposition(None, NOW - 1, KeyCompromise, NOW),
            Disposition::Expired
        );
        assert_eq!(
            disposition(Some(&revoked), NOW - 1, Superseded, NOW),
            Disposition::AlreadyRevoked
        );
        assert_eq!(
            disposition(Some(&held), NOW + 1, Superseded, NOW),
            Disposition::Revoke,
            "a hold is made permanent"
        );
        assert_eq!(
            disposition(Some(&held), NOW + 1, CertificateHold, NOW),
            Disposition::AlreadyRevoked
        );
    }

    #[test]
    fn progress_opens_only_unaltered_and_for_its_caller() {
        let key = CursorKey::new(&[3; crate::store::query::CURSOR_KEY_LEN]).unwrap();
        let mut p = Progress::new(
            MassRevocationRequest {
                filter: RevocationFilter {
                    requester: Some("ra".into()),
                    ..RevocationFilter::default()
                },
                reason: RevocationReason::Superseded,
                invalidity_date: None,
            },
            Mode::Revoke {
                id: ActionId([9; 16]),
                actor: "op".into(),
            },
        );
        p.advance(
            None,
            Tally {
                matched: 3,
                revoked: 2,
                already_revoked: 1,
                expired: 0,
            },
        );
        let sealed = p.seal(&key, b"operator\0op").unwrap();
        assert_eq!(Progress::open(&sealed, &key, b"operator\0op").unwrap(), p);
        assert!(Progress::open(&sealed, &key, b"operator\0other").is_err());
        let mut altered = sealed.clone().into_bytes();
        altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(Progress::open(&altered, &key, b"operator\0op").is_err());
        assert!(Progress::open("", &key, b"operator\0op").is_err());
        // A query cursor sealed by the same key is not a progress.
        let cursor = Cursor::decode(&Cursor::decode("AQ").unwrap().encode()).unwrap();
        let sealed_cursor = cursor.seal(&key, b"operator\0op").unwrap();
        assert!(Progress::open(&sealed_cursor, &key, b"operator\0op").is_err());
    }

    #[test]
    fn the_action_is_audited_with_its_filter_and_counts() {
        let mut p = Progress::new(
            MassRevocationRequest {
                filter: RevocationFilter {
                    spki_sha256: Some([0xab; 32]),
                    issued_after: Some(0),
                    ..RevocationFilter::default()
                },
                reason: RevocationReason::KeyCompromise,
                invalidity_date: Some(0),
            },
            Mode::Revoke {
                id: ActionId([1; 16]),
                actor: "op".into(),
            },
        );
        let started = p.started_event(NOW).unwrap().unwrap();
        assert_eq!(started.action, AuditAction::MassRevocationStarted);
        assert_eq!(started.actor, "op");
        assert_eq!(started.target, "01".repeat(16));
        assert_eq!(started.details["reason"], "keyCompromise");
        assert_eq!(started.details["spki_sha256"], "ab".repeat(32));
        assert_eq!(started.details["issued_after"], "1970-01-01T00:00:00Z");
        assert_eq!(started.details["invalidity_date"], "1970-01-01T00:00:00Z");
        assert!(!started.details.contains_key("requester"));
        p.advance(
            None,
            Tally {
                matched: 5,
                revoked: 4,
                already_revoked: 1,
                expired: 0,
            },
        );
        let done = p.completed_event(NOW).unwrap();
        assert_eq!(done.action, AuditAction::MassRevocationCompleted);
        assert_eq!(done.details["revoked"], "4");
        assert_eq!(done.details["matched"], "5");
        let dry = Progress::new(p.request.clone(), Mode::DryRun);
        assert!(dry.started_event(NOW).unwrap().is_none());
        assert!(dry.completed_event(NOW).is_none());
    }
}
