//! Certificate revocation lists (RFC 5280 section 5): full and delta CRLs, built from the
//! store's small `revoked` family and signed by the CA key.
//!
//! The revoked-certificate list is DER-encoded entry by entry into one buffer (each entry with
//! `x509-cert`'s typed `RevokedCert`), so a CRL of a million entries costs one buffer of its
//! own size rather than a million heap objects.

use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use der::asn1::{Any, AnyRef, BitString, Ia5String, ObjectIdentifier, OctetString, Uint};
use der::{Decode, Encode, Sequence, Tag};
use keys::Signer;
use spki::AlgorithmIdentifierOwned;
use time::OffsetDateTime;
use x509_cert::ext::pkix::crl::dp::{DistributionPoint, IssuingDistributionPoint};
use x509_cert::ext::pkix::crl::{CrlReason, FreshestCrl};
use x509_cert::ext::pkix::name::DistributionPointName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::AuthorityKeyIdentifier;
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::{Certificate, Version};

use crate::authority::signature_algorithm;
use crate::engine::Engine;
use crate::error::CaError;
use crate::metrics::DegradedEntries;
use crate::revocation::{Revocation, RevocationReason};
use crate::serial::Serial;

const OID_AKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.35");
const OID_SKI: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
const OID_CRL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.20");
const OID_REASON: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.21");
pub(crate) const OID_INVALIDITY_DATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.24");
const OID_DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");
const OID_IDP: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.28");
const OID_FRESHEST_CRL: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.46");

/// CRL settings.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrlConfig {
    /// How often the CRL is rebuilt when a revocation changed, in seconds.
    pub interval_secs: u64,
    /// nextUpdate minus thisUpdate, in hours. The CRL is also rebuilt when half of this has
    /// passed, changed or not.
    pub next_update_hours: u64,
    /// Days a revoked certificate stays on the CRL after it expired.
    pub keep_expired_days: u32,
    /// Write an issuing distribution point extension naming the CRL URL (RFC 5280 5.2.5).
    pub issuing_distribution_point: bool,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            interval_secs: 60,
            next_update_hours: 24,
            keep_expired_days: 1,
            issuing_distribution_point: true,
        }
    }
}

/// One entry of a CRL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlEntry {
    /// The revoked certificate.
    pub serial: Serial,
    /// revocationDate, Unix seconds.
    pub revoked_at: i64,
    /// The reason; `None` writes no reason code (RFC 5280 5.3.1: unspecified SHOULD be absent).
    /// In a delta CRL, `Some(RemoveFromCrl)` removes a released hold.
    pub reason: Option<EntryReason>,
    /// invalidityDate, Unix seconds.
    pub invalidity_date: Option<i64>,
}

/// A reason code as a CRL entry carries it: a revocation reason, or removeFromCRL (8) in
/// delta CRLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryReason {
    /// A revocation reason.
    Revoked(RevocationReason),
    /// removeFromCRL: a hold that ended (delta CRLs only).
    RemoveFromCrl,
}

impl CrlEntry {
    /// The entry for a stored revocation.
    pub fn from_revocation(serial: Serial, r: &Revocation) -> Self {
        CrlEntry {
            serial,
            revoked_at: r.revoked_at,
            reason: (r.reason != RevocationReason::Unspecified)
                .then_some(EntryReason::Revoked(r.reason)),
            invalidity_date: r.invalidity_date,
        }
    }
}

/// Builds and signs CRLs for one CA.
pub struct CrlBuilder {
    signer: Arc<dyn Signer>,
    issuer: Name,
    algorithm: AlgorithmIdentifierOwned,
    key_identifier: Vec<u8>,
    crl_url: Option<String>,
    degraded: DegradedEntries,
}

impl std::fmt::Debug for CrlBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlBuilder")
            .field("crl_url", &self.crl_url)
            .finish_non_exhaustive()
    }
}

/// The TBSCertList of RFC 5280 section 5.1 with the revoked list pre-encoded.
#[derive(Sequence)]
struct TbsCrl<'a> {
    version: Version,
    signature: AlgorithmIdentifierOwned,
    issuer: Name,
    this_update: Any,
    next_update: Option<Any>,
    revoked_certificates: Option<AnyRef<'a>>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    crl_extensions: Option<Extensions>,
}

/// The CertificateList of RFC 5280 section 5.1 around an encoded TBSCertList.
#[derive(Sequence)]
struct SignedCrl<'a> {
    tbs_cert_list: AnyRef<'a>,
    signature_algorithm: AlgorithmIdentifierOwned,
    signature: BitString,
}

/// One entry of revokedCertificates (RFC 5280 section 5.1.2.6). `x509-cert`'s `RevokedCert`
/// holds its time in `der`'s types, which stop at 1970; [`time`] encodes any year.
#[derive(Sequence)]
struct RevokedEntry {
    serial_number: SerialNumber,
    revocation_date: Any,
    crl_entry_extensions: Option<Extensions>,
}

fn encoding(e: der::Error) -> CaError {
    CaError::Signing(format!("encoding a CRL: {e}"))
}

/// The years an X.509 time can carry: GeneralizedTime's four digits (RFC 5280 section
/// 4.1.2.5.2; X.680 section 46).
const ENCODABLE_YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

/// The years UTCTime carries, its two digits read as 1950 to 2049 (RFC 5280 section
/// 4.1.2.5.1).
const UTC_TIME_YEARS: std::ops::RangeInclusive<i32> = 1950..=2049;

/// The calendar time of `unix` (seconds, negative before 1970) in UTC, if X.509 can carry it.
fn calendar(unix: i64) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .filter(|t| ENCODABLE_YEARS.contains(&t.year()))
        .ok_or_else(|| {
            CaError::Signing(format!(
                "time {unix} (Unix seconds) is outside the years 0000 to 9999 that X.509 can \
                 encode"
            ))
        })
}

/// A UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) of whole seconds in
/// UTC, as RFC 5280 section 4.1.2.5 requires of both. `t`'s year is within
/// [`ENCODABLE_YEARS`].
fn encode_time(tag: Tag, t: OffsetDateTime) -> Result<Any, CaError> {
    let mut text = Vec::with_capacity(15);
    let mut digits = |value: u32, width: u32| {
        for place in (0..width).rev() {
            text.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    };
    let year = t.year().unsigned_abs();
    if tag == Tag::UtcTime {
        digits(year % 100, 2);
    } else {
        digits(year, 4);
    }
    for part in [
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    ] {
        digits(u32::from(part), 2);
    }
    text.push(b'Z');
    Any::new(tag, text).map_err(encoding)
}

/// A time of a CRL or a certificate: UTCTime for the years 1950 through 2049,
/// GeneralizedTime otherwise (RFC 5280 sections 4.1.2.5 and 5.1.2.4 to 5.1.2.6). Any year
/// from 0000 to 9999 is encoded, before 1970 too.
pub(crate) fn time(unix: i64) -> Result<Any, CaError> {
    let t = calendar(unix)?;
    if UTC_TIME_YEARS.contains(&t.year()) {
        encode_time(Tag::UtcTime, t)
    } else {
        encode_time(Tag::GeneralizedTime, t)
    }
}

/// A GeneralizedTime whatever the year, as the invalidityDate CRL entry extension always is
/// (RFC 5280 section 5.3.2), of any year from 0000 to 9999.
pub(crate) fn generalized_time(unix: i64) -> Result<Any, CaError> {
    encode_time(Tag::GeneralizedTime, calendar(unix)?)
}

/// An Extension (RFC 5280 section 4.1) holding `value`'s DER, of a CRL or a certificate.
pub(crate) fn extension(
    oid: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, CaError> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(encoding)?).map_err(encoding)?,
    })
}

impl CrlBuilder {
    /// A builder for the CA whose certificate is `ca_cert_der`; `crl_url`, when given, is
    /// written as the issuing distribution point, and `{crl_url}/delta` as the complete CRL's
    /// freshest CRL (where its deltas are).
    pub fn new(
        signer: Arc<dyn Signer>,
        ca_cert_der: &[u8],
        crl_url: Option<String>,
    ) -> Result<Self, CaError> {
        let cert = Certificate::from_der(ca_cert_der)
            .map_err(|e| CaError::Signing(format!("the CA certificate does not parse: {e}")))?;
        let ski = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == OID_SKI)
            .and_then(|e| OctetString::from_der(e.extn_value.as_bytes()).ok())
            .map(|o| o.as_bytes().to_vec())
            .ok_or_else(|| {
                CaError::Signing("the CA certificate has no subject key identifier".into())
            })?;
        Ok(CrlBuilder {
            algorithm: signature_algorithm(signer.scheme()),
            signer,
            issuer: cert.tbs_certificate.subject,
            key_identifier: ski,
            crl_url,
            degraded: DegradedEntries::default(),
        })
    }

    /// Reports entries written without a field that cannot be encoded to `degraded` (they
    /// are logged in any case).
    pub fn with_degraded(mut self, degraded: DegradedEntries) -> Self {
        self.degraded = degraded;
        self
    }

    /// Builds and signs a complete CRL (RFC 5280 section 5) with the given number and times.
    pub fn full(
        &self,
        number: u64,
        this_update: i64,
        next_update: i64,
        entries: impl IntoIterator<Item = CrlEntry>,
    ) -> Result<Vec<u8>, CaError> {
        self.build(number, None, this_update, next_update, entries)
    }

    /// Builds and signs a delta CRL (RFC 5280 section 5.2.4) against the complete CRL
    /// numbered `base`.
    pub fn delta(
        &self,
        number: u64,
        base: u64,
        this_update: i64,
        next_update: i64,
        entries: impl IntoIterator<Item = CrlEntry>,
    ) -> Result<Vec<u8>, CaError> {
        self.build(number, Some(base), this_update, next_update, entries)
    }

    fn build(
        &self,
        number: u64,
        base: Option<u64>,
        this_update: i64,
        next_update: i64,
        entries: impl IntoIterator<Item = CrlEntry>,
    ) -> Result<Vec<u8>, CaError> {
        let this_update = time(this_update)?;
        let mut revoked = Vec::new();
        for entry in entries {
            revoked_entry(&entry, &this_update, &self.degraded)?
                .encode_to_vec(&mut revoked)
                .map_err(encoding)?;
        }
        let list = (!revoked.is_empty())
            .then(|| AnyRef::new(Tag::Sequence, &revoked))
            .transpose()
            .map_err(encoding)?;
        let tbs = TbsCrl {
            version: Version::V2,
            signature: self.algorithm.clone(),
            issuer: self.issuer.clone(),
            this_update,
            next_update: Some(time(next_update)?),
            revoked_certificates: list,
            crl_extensions: Some(self.extensions(number, base)?),
        };
        let tbs_der = tbs.to_der().map_err(encoding)?;
        drop(revoked);
        let signature = self
            .signer
            .sign(&tbs_der)
            .map_err(|e| CaError::Signing(e.to_string()))?;
        SignedCrl {
            tbs_cert_list: AnyRef::from_der(&tbs_der).map_err(encoding)?,
            signature_algorithm: self.algorithm.clone(),
            signature: BitString::from_bytes(&signature).map_err(encoding)?,
        }
        .to_der()
        .map_err(encoding)
    }

    fn extensions(&self, number: u64, base: Option<u64>) -> Result<Extensions, CaError> {
        let uint = |n: u64| Uint::new(&n.to_be_bytes()).map_err(encoding);
        let aki = AuthorityKeyIdentifier {
            key_identifier: Some(OctetString::new(self.key_identifier.clone()).map_err(encoding)?),
            authority_cert_issuer: None,
            authority_cert_serial_number: None,
        };
        let mut exts = vec![
            extension(OID_AKI, false, &aki)?,
            extension(OID_CRL_NUMBER, false, &uint(number)?)?,
        ];
        if let Some(base) = base {
            exts.push(extension(OID_DELTA_CRL_INDICATOR, true, &uint(base)?)?);
        }
        if let Some(url) = &self.crl_url {
            let full_name = |url: &str| {
                Ia5String::new(url).map_err(encoding).map(|uri| {
                    DistributionPointName::FullName(vec![GeneralName::UniformResourceIdentifier(
                        uri,
                    )])
                })
            };
            if base.is_none() {
                // Where the deltas of this complete CRL are (RFC 5280 5.2.6).
                let freshest = FreshestCrl(vec![DistributionPoint {
                    distribution_point: Some(full_name(&format!("{url}/delta"))?),
                    reasons: None,
                    crl_issuer: None,
                }]);
                exts.push(extension(OID_FRESHEST_CRL, false, &freshest)?);
            }
            let idp = IssuingDistributionPoint {
                distribution_point: Some(full_name(url)?),
                only_contains_user_certs: true,
                only_contains_ca_certs: false,
                only_some_reasons: None,
                indirect_crl: false,
                only_contains_attribute_certs: false,
            };
            exts.push(extension(OID_IDP, true, &idp)?);
        }
        Ok(exts)
    }
}

/// The revokedCertificates entry of `entry`. A stored time that cannot be encoded does not
/// keep the revocation off the CRL: an invalidityDate is left out, a revocationDate becomes
/// the CRL's `this_update` (the certificate was revoked by then at the latest); either is
/// reported to `degraded`.
fn revoked_entry(
    entry: &CrlEntry,
    this_update: &Any,
    degraded: &DegradedEntries,
) -> Result<RevokedEntry, CaError> {
    let mut exts = Vec::new();
    if let Some(reason) = entry.reason {
        let reason = match reason {
            EntryReason::RemoveFromCrl => CrlReason::RemoveFromCRL,
            EntryReason::Revoked(r) => crl_reason(r),
        };
        exts.push(extension(OID_REASON, false, &reason)?);
    }
    if let Some(date) = entry.invalidity_date {
        match generalized_time(date) {
            Ok(t) => exts.push(extension(OID_INVALIDITY_DATE, false, &t)?),
            Err(e) => degraded.report(&entry.serial, "invalidity_date", &e),
        }
    }
    let revocation_date = time(entry.revoked_at).unwrap_or_else(|e| {
        degraded.report(&entry.serial, "revocation_date", &e);
        this_update.clone()
    });
    Ok(RevokedEntry {
        serial_number: SerialNumber::new(entry.serial.as_bytes()).map_err(encoding)?,
        revocation_date,
        crl_entry_extensions: (!exts.is_empty()).then_some(exts),
    })
}

fn crl_reason(r: RevocationReason) -> CrlReason {
    match r {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
    }
}

/// The CRLs currently served.
#[derive(Clone, Debug)]
pub struct PublishedCrls {
    /// The complete CRL, DER.
    pub full: Bytes,
    /// Its CRL number.
    pub number: u64,
    /// thisUpdate of both, Unix seconds.
    pub this_update: i64,
    /// Entries on the complete CRL.
    pub entries: usize,
    /// The delta CRL against the previous complete CRL (against this one right after start).
    pub delta: Bytes,
}

/// Keeps the CRLs current: rebuilds them from the store when revocations changed (or when
/// half their validity has passed) and serves the last ones from memory.
pub struct CrlPublisher {
    builder: CrlBuilder,
    engine: Arc<Engine>,
    config: CrlConfig,
    current: RwLock<Option<PublishedCrls>>,
    /// (CRL number, change sequence) of the complete CRL that deltas are built against.
    base: Mutex<Option<(u64, u64)>>,
    dirty: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for CrlPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrlPublisher").finish_non_exhaustive()
    }
}

impl CrlPublisher {
    /// A publisher for the engine's CA and store.
    pub fn new(builder: CrlBuilder, engine: Arc<Engine>, config: CrlConfig) -> Self {
        CrlPublisher {
            builder,
            engine,
            config,
            current: RwLock::new(None),
            base: Mutex::new(None),
            dirty: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CrlConfig {
        &self.config
    }

    /// Notes that a revocation changed, so that the next tick rebuilds.
    pub fn mark_dirty(&self) {
        self.dirty.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The CRLs being served, if any was built yet.
    pub fn current(&self) -> Option<PublishedCrls> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// Whether a rebuild is due: something changed, or half the validity has passed.
    pub fn due(&self, now: i64) -> bool {
        if self.dirty.load(std::sync::atomic::Ordering::SeqCst) {
            return true;
        }
        let half = (self.config.next_update_hours * 3600 / 2) as i64;
        self.current().is_none_or(|c| now - c.this_update >= half)
    }

    /// Builds, signs and publishes a new complete CRL and a delta CRL. Blocking: CPU-bound
    /// for large CRLs; call it off the async runtime. Issuance goes on meanwhile: only the
    /// CRL number allocation passes through the store writer.
    pub fn generate(&self) -> Result<PublishedCrls, CaError> {
        self.generate_as("ca-server")
    }

    /// [`CrlPublisher::generate`], recording `actor` (a token's name) in the audit log as the
    /// one who asked.
    pub fn generate_as(&self, actor: &str) -> Result<PublishedCrls, CaError> {
        self.dirty.store(false, std::sync::atomic::Ordering::SeqCst);
        let result = self.build_and_publish(actor);
        if result.is_err() {
            self.mark_dirty();
        }
        result
    }

    fn build_and_publish(&self, actor: &str) -> Result<PublishedCrls, CaError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let floor = u64::try_from(now).unwrap_or(0);
        let full_pos = self.engine.next_crl_number_blocking(floor, actor, "full")?;
        let next_update = now + (self.config.next_update_hours * 3600) as i64;
        let keep_until = now - i64::from(self.config.keep_expired_days) * 86_400;
        let store = self.engine.store();
        let mut entries = Vec::new();
        store.for_each_revocation(|serial, r| {
            if r.not_after >= keep_until {
                entries.push(CrlEntry::from_revocation(serial, &r));
            }
            Ok(())
        })?;
        let count = entries.len();
        let full = self
            .builder
            .full(full_pos.number, now, next_update, entries)?;

        let previous = self
            .base
            .lock()
            .map_err(|_| CaError::Signing("CRL state poisoned".into()))?
            .unwrap_or((full_pos.number, full_pos.change_seq));
        let delta_pos = self
            .engine
            .next_crl_number_blocking(floor, actor, "delta")?;
        let mut changes = Vec::new();
        for serial in store.changed_since(previous.1, full_pos.change_seq)? {
            changes.push(match store.revocation(&serial)? {
                Some(r) => CrlEntry::from_revocation(serial, &r),
                None => CrlEntry {
                    serial,
                    revoked_at: now,
                    reason: Some(EntryReason::RemoveFromCrl),
                    invalidity_date: None,
                },
            });
        }
        let delta = self
            .builder
            .delta(delta_pos.number, previous.0, now, next_update, changes)?;

        let published = PublishedCrls {
            full: Bytes::from(full),
            number: full_pos.number,
            this_update: now,
            entries: count,
            delta: Bytes::from(delta),
        };
        if let Ok(mut base) = self.base.lock() {
            *base = Some((full_pos.number, full_pos.change_seq));
        }
        if let Ok(mut current) = self.current.write() {
            *current = Some(published.clone());
        }
        let metrics = self.engine.metrics();
        metrics
            .crl_number
            .set(i64::try_from(published.number).unwrap_or(i64::MAX));
        metrics.crl_entries.set(count as i64);
        metrics.crl_bytes.set(published.full.len() as i64);
        metrics.crl_this_update.set(now);
        for kind in ["full", "delta"] {
            metrics
                .crl_next_update
                .with_label_values(&[kind])
                .set(next_update);
        }
        tracing::info!(
            number = full_pos.number,
            entries = count,
            bytes = published.full.len(),
            "CRL published"
        );
        Ok(published)
    }
}
