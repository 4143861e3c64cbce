//! The OCSP responder core: RFC 6960 requests and responses, in the lightweight profile of
//! RFC 5019.
//!
//! By default the issuing CA signs its responses itself (RFC 6960 section 2.2, first case), so
//! responses carry no certificates and the responderID is the CA's key hash. A delegated
//! responder ([`OcspResponder::delegated`], RFC 6960 section 4.2.2.2) signs with its own key
//! instead, names that key in the responderID and sends its certificate, which the CA issued
//! with id-kp-OCSPSigning ([`issue_responder_certificate`]), in every response.
//!
//! A request is parsed once, each CertID is matched against the CA's name and key hashes
//! (SHA-1 or SHA-256), and the status of a matching serial comes from a caller-given lookup,
//! so this module knows nothing of the store. Everything that can go wrong with the input
//! becomes an OCSP error response (RFC 6960 section 2.3), never a Rust error.
//!
//! Responses to RFC 5019 requests (one CertID, no nonce) may be kept in an [`OcspCache`] for
//! half their validity (at most [`MAX_CACHE_FRESHNESS`]); a revocation must
//! [`OcspCache::invalidate`] the serial.
//!
//! Every other answer (a nonce to echo, several CertIDs, an `unknown` status) is signed on
//! demand, which costs the signing key one operation per request. [`OcspResponder::respond_within`]
//! asks the caller's budget before each such signature; over budget, a request with one CertID
//! is answered as its RFC 5019 form, without the nonce (RFC 9654 section 2.1 lets a responder
//! ignore it), and anything else gets `tryLater` (RFC 6960 section 4.2.1).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use der::asn1::{BitString, GeneralizedTime, Null, OctetString};
use der::{Decode, Encode};
use keys::Signer;
use ring::digest;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::Extension;
use x509_cert::spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_ocsp::{
    BasicOcspResponse, CertId, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId,
    ResponseData, RevokedInfo, SingleResponse, Version,
};
use x509_parser::prelude::FromDer as _;

use crate::authority::{signature_algorithm, CertificateAuthority, Urls};
use crate::csr::{subject_key, AttributeKind, SubjectAttribute};
use crate::der_util;
use crate::error::CaError;
use crate::oid;
use crate::profile::{ExtendedKeyUsage, KeyUsage, Profile, ValidatedRequest, Validation};
use crate::revocation::DegradedEntries;
use crate::revocation::{Revocation, RevocationReason};
use crate::serial::Serial;

/// The largest DER OCSPRequest answered; anything longer is a `malformedRequest`.
pub const MAX_REQUEST_DER: usize = 64 * 1024;

/// The most CertIDs answered in one request (RFC 6960 section 4.1.1 `requestList`); more is a
/// `malformedRequest`. RFC 5019 section 2.1.1 clients send exactly one; a request with several
/// is always signed on demand, so the cap bounds the store reads one signature can buy.
pub const MAX_CERT_IDS: usize = 16;

/// The longest nonce accepted and echoed, in octets (RFC 9654 section 2.1:
/// `Nonce ::= OCTET STRING(SIZE(1..128))`). An empty or longer nonce is a `malformedRequest`,
/// as that section asks.
pub const MAX_NONCE_LEN: usize = 128;

/// The longest GET path segment [`decode_get_request`] accepts: a percent-encoded base64 form of
/// a [`MAX_REQUEST_DER`]-octet request.
pub const MAX_GET_PATH: usize = 3 * 4 * MAX_REQUEST_DER.div_ceil(3);

/// The longest response validity [`OcspResponder::new`] accepts. (The CA/Browser Forum
/// Baseline Requirements, section 4.9.9 since version 2.0.1, 4.9.10 before, allow 8 hours to
/// 10 days for subscriber certificates; ca-server enforces that unless the CA is not publicly
/// trusted.)
pub const MAX_VALIDITY: Duration = Duration::days(366);

/// The longest a cached response is answered after its thisUpdate: half its validity, but at
/// most this. The Baseline Requirements (section 4.9.9) ask for an updated response no later
/// than four days after thisUpdate (and, for a validity of 16 hours or more, at least eight
/// hours before nextUpdate, which half the validity always gives).
pub const MAX_CACHE_FRESHNESS: Duration = Duration::days(4);

/// The longest validity of a delegated responder's certificate, in days. (RFC 6960 section
/// 4.2.2.2.1 asks for short-lived responder certificates when clients are told not to check
/// their revocation.)
pub const MAX_RESPONDER_VALIDITY_DAYS: u32 = 366;

/// The DER of `OCSPResponse { responseStatus malformedRequest }` (RFC 6960 section 4.2.1), for
/// front ends that refuse a request before it reaches [`OcspResponder::respond`].
pub const MALFORMED_REQUEST: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x01];
/// The DER of `OCSPResponse { responseStatus internalError }` (RFC 6960 section 4.2.1), for
/// front ends whose own machinery fails (a lost worker task, say).
pub const INTERNAL_ERROR: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x02];
/// The DER of `OCSPResponse { responseStatus tryLater }` (RFC 6960 section 4.2.1): the answer
/// to a request that needs a signature on demand when the signing budget is spent.
pub const TRY_LATER: [u8; 5] = [0x30, 0x03, 0x0a, 0x01, 0x03];

/// Why an answer cost a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureKind {
    /// A response kept in the cache for later RFC 5019 requests: at most one per issued
    /// certificate and CertID hash algorithm per half validity, whoever asks.
    CacheFill,
    /// A response for this request alone (its nonce, several CertIDs, an `unknown` status),
    /// which the caller's budget allowed.
    OnDemand,
}

impl SignatureKind {
    /// The metric label: `cache_fill` or `on_demand`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureKind::CacheFill => "cache_fill",
            SignatureKind::OnDemand => "on_demand",
        }
    }
}

/// The answer to one request and what it cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OcspAnswer {
    /// The DER OCSPResponse.
    pub der: Vec<u8>,
    /// The signature made for it, if any (none for a cached answer or an error status).
    pub signature: Option<SignatureKind>,
    /// Whether the request's nonce was left out because the budget was spent.
    pub nonce_ignored: bool,
}

/// What the store says about a serial of this CA (RFC 6960 section 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertStatus {
    /// Issued by this CA and not revoked.
    Good,
    /// Revoked, or on hold (reason `certificateHold`, RFC 6960 section 2.2).
    Revoked {
        /// When the CA revoked it (`revocationTime`).
        revoked_at: OffsetDateTime,
        /// Why (`revocationReason`).
        reason: RevocationReason,
        /// When the key is known or suspected to have been compromised, Unix seconds: the
        /// invalidityDate single extension (RFC 6960 section 4.4.5, RFC 5280 section 5.3.2).
        invalidity_date: Option<i64>,
    },
    /// Never issued by this CA.
    Unknown,
}

impl CertStatus {
    /// The status of a certificate this CA issued, from its stored revocation if any. An
    /// expired certificate stays `good` unless revoked (RFC 6960 section 2.2 speaks only of
    /// revocation). Never fails on a stored time: one beyond `OffsetDateTime`'s range is taken
    /// as its nearest end, which the responder cannot encode either and answers as
    /// [`OcspResponder::respond`] says.
    pub fn issued(revocation: Option<&Revocation>) -> Result<Self, CaError> {
        match revocation {
            None => Ok(CertStatus::Good),
            Some(r) => Ok(CertStatus::Revoked {
                revoked_at: OffsetDateTime::from_unix_timestamp(r.revoked_at).unwrap_or_else(
                    |_| {
                        let end = if r.revoked_at < 0 {
                            PrimitiveDateTime::MIN
                        } else {
                            PrimitiveDateTime::MAX
                        };
                        end.assume_utc()
                    },
                ),
                reason: r.reason,
                invalidity_date: r.invalidity_date,
            }),
        }
    }
}

/// The hash algorithm of a CertID (RFC 6960 section 4.1.1 `hashAlgorithm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum CertIdHash {
    Sha1,
    Sha256,
}

impl CertIdHash {
    fn of(alg: &AlgorithmIdentifierOwned) -> Option<Self> {
        // The parameters are NULL or absent (RFC 5754 section 2; OpenSSL writes NULL).
        let params_ok = match &alg.parameters {
            None => true,
            Some(p) => p.decode_as::<Null>().is_ok(),
        };
        if !params_ok {
            return None;
        }
        if alg.oid == oid::ID_SHA1 {
            Some(CertIdHash::Sha1)
        } else if alg.oid == oid::ID_SHA256 {
            Some(CertIdHash::Sha256)
        } else {
            None
        }
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        let alg = match self {
            CertIdHash::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            CertIdHash::Sha256 => &digest::SHA256,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// The issuer name and key hashes of one hash algorithm (RFC 6960 section 4.1.1).
struct IssuerHashes {
    hash: CertIdHash,
    name: Vec<u8>,
    key: Vec<u8>,
}

/// The key that signs responses, how the responses name it, and the certificates they carry.
struct SigningIdentity {
    signer: Arc<dyn Signer>,
    signature_algorithm: AlgorithmIdentifierOwned,
    /// `responderID byKey`: the SHA-1 of the signing key's subjectPublicKey BIT STRING value.
    key_hash: OctetString,
    /// `BasicOCSPResponse.certs`: a delegated responder's certificate, none for the CA.
    certs: Option<Vec<Certificate>>,
}

impl SigningIdentity {
    fn new(signer: Arc<dyn Signer>, certs: Option<Vec<Certificate>>) -> Result<Self, CaError> {
        let key_hash = OctetString::new(CertIdHash::Sha1.digest(signer.public_key_bits()))
            .map_err(CaError::Encoding)?;
        Ok(SigningIdentity {
            signature_algorithm: signature_algorithm(signer.scheme()),
            signer,
            key_hash,
            certs,
        })
    }
}

/// An OCSP responder for one issuing CA (RFC 6960 section 2.2, RFC 5019 section 2.2),
/// signing with the CA key or with a delegated responder's key.
pub struct OcspResponder {
    identity: RwLock<Arc<SigningIdentity>>,
    ca_cert_der: Vec<u8>,
    issuer: [IssuerHashes; 2],
    validity: Duration,
    cache: Option<Arc<OcspCache>>,
    degraded: DegradedEntries,
}

impl std::fmt::Debug for OcspResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let identity = self.identity();
        f.debug_struct("OcspResponder")
            .field("scheme", &identity.signer.scheme())
            .field("delegated", &identity.certs.is_some())
            .field("validity", &self.validity)
            .field("cached", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a request got no `successful` answer (RFC 6960 section 4.2.1 `OCSPResponseStatus`).
enum Failure {
    Malformed,
    Internal,
    TryLater,
}

impl OcspResponder {
    /// Builds the responder of the CA whose certificate is `ca_cert_der` and whose key is
    /// `signer`. The certificate's subject and subjectPublicKey give the CertID hashes
    /// (RFC 6960 section 4.1.1) and the responderID `byKey`, the SHA-1 of the subjectPublicKey
    /// BIT STRING's value (RFC 6960 section 4.2.1). Each response is valid for `validity`
    /// (`nextUpdate - thisUpdate`, RFC 5019 section 2.2.4), from 1 second to [`MAX_VALIDITY`].
    pub fn new(
        signer: Arc<dyn Signer>,
        ca_cert_der: &[u8],
        validity: Duration,
    ) -> Result<Self, CaError> {
        let ca_cert = parse_certificate(ca_cert_der, "the CA certificate")?;
        if ca_cert.tbs_certificate.subject_pki.raw != signer.spki_der() {
            return Err(CaError::ca_material(
                "the CA key does not match the CA certificate's public key",
            ));
        }
        OcspResponder::build(ca_cert_der, SigningIdentity::new(signer, None)?, validity)
    }

    /// Builds the responder of the CA whose certificate is `ca_cert_der`, signing with a
    /// delegated responder's key `signer` (RFC 6960 section 4.2.2.2) whose certificate
    /// `responder_cert_der` the CA issued with id-kp-OCSPSigning (checked as
    /// [`check_responder_certificate`] does). The responderID is `byKey` of the delegated key
    /// and every successful response carries its certificate; CertIDs are still matched
    /// against the CA's name and key. `validity` as for [`OcspResponder::new`].
    pub fn delegated(
        ca_cert_der: &[u8],
        signer: Arc<dyn Signer>,
        responder_cert_der: &[u8],
        validity: Duration,
    ) -> Result<Self, CaError> {
        let identity = delegate_identity(ca_cert_der, signer, responder_cert_der)?;
        OcspResponder::build(ca_cert_der, identity, validity)
    }

    fn build(
        ca_cert_der: &[u8],
        identity: SigningIdentity,
        validity: Duration,
    ) -> Result<Self, CaError> {
        if validity < Duration::SECOND || validity > MAX_VALIDITY {
            return Err(CaError::ca_material(format!(
                "the OCSP response validity must be between 1 second and {} days",
                MAX_VALIDITY.whole_days()
            )));
        }
        let ca_cert = parse_certificate(ca_cert_der, "the CA certificate")?;
        let tbs = &ca_cert.tbs_certificate;
        let name = tbs.subject.as_raw();
        let key = tbs.subject_pki.subject_public_key.data.as_ref();
        let issuer = [CertIdHash::Sha1, CertIdHash::Sha256].map(|hash| IssuerHashes {
            hash,
            name: hash.digest(name),
            key: hash.digest(key),
        });
        Ok(OcspResponder {
            identity: RwLock::new(Arc::new(identity)),
            ca_cert_der: ca_cert_der.to_vec(),
            issuer,
            validity,
            cache: None,
            degraded: DegradedEntries::default(),
        })
    }

    /// From now on, signs with the delegated responder key `signer` and sends its certificate
    /// `responder_cert_der` (checked as for [`OcspResponder::delegated`]): a renewed delegated
    /// responder, taken into use without a restart. Drops every cached response, so that all
    /// answers carry the new certificate.
    pub fn set_delegate(
        &self,
        signer: Arc<dyn Signer>,
        responder_cert_der: &[u8],
    ) -> Result<(), CaError> {
        let identity = delegate_identity(&self.ca_cert_der, signer, responder_cert_der)?;
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(identity);
        if let Some(cache) = &self.cache {
            cache.clear();
        }
        Ok(())
    }

    /// The certificate responses carry: the delegated responder's, none when the CA signs.
    pub fn responder_certificate(&self) -> Option<Vec<u8>> {
        let identity = self.identity();
        let cert = identity.certs.as_ref()?.first()?;
        cert.to_der().ok()
    }

    fn identity(&self) -> Arc<SigningIdentity> {
        self.identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Keeps responses to RFC 5019 requests (one CertID, no nonce) in `cache`, and answers
    /// such requests from it while fresh (RFC 5019 section 6).
    pub fn with_cache(mut self, cache: Arc<OcspCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Reports stored revocations answered without a field that cannot be encoded to
    /// `degraded` (they are logged in any case).
    pub fn with_degraded(mut self, degraded: DegradedEntries) -> Self {
        self.degraded = degraded;
        self
    }

    /// The validity of each response (`nextUpdate - thisUpdate`).
    pub fn validity(&self) -> Duration {
        self.validity
    }

    /// Answers a DER OCSPRequest (RFC 6960 section 4.1.1) with a DER OCSPResponse
    /// (section 4.2.1).
    ///
    /// Every requested CertID whose issuer hashes match this CA gets the status `lookup` gives
    /// for its serial; a serial that cannot be one of this CA's, and a CertID of another
    /// issuer or of a hash algorithm other than SHA-1 and SHA-256, is answered `unknown`
    /// (section 2.2). `producedAt` and each `thisUpdate` are `now`, `nextUpdate` is
    /// `now + validity`, a nonce (RFC 9654 section 2.1) of 1 to [`MAX_NONCE_LEN`] octets is
    /// echoed.
    ///
    /// Input that is not a request (unparsable, over [`MAX_REQUEST_DER`], no CertID or more than
    /// [`MAX_CERT_IDS`], an unknown critical extension, a nonce of 0 or more than
    /// [`MAX_NONCE_LEN`] octets) gets `malformedRequest`; a failing `lookup` or signature gets
    /// `internalError` (section 2.3). Request signatures are ignored (RFC 5019 section 2.1.2).
    /// Every signature is allowed; [`OcspResponder::respond_within`] bounds them.
    ///
    /// A revoked certificate's invalidity date is sent as the invalidityDate single extension
    /// (section 4.4.5). No stored time makes an answer unbuildable: an invalidity date that
    /// GeneralizedTime cannot carry is left out, a revocation time it cannot carry becomes
    /// `thisUpdate` (revoked by then at the latest); both are reported to the degraded-entry
    /// counter ([`OcspResponder::with_degraded`]).
    pub fn respond(
        &self,
        request_der: &[u8],
        now: OffsetDateTime,
        lookup: impl Fn(&Serial) -> Result<CertStatus, CaError>,
    ) -> Vec<u8> {
        self.respond_within(request_der, now, lookup, || true).der
    }

    /// Answers as [`OcspResponder::respond`] does, asking `budget` once before a signature on
    /// demand ([`SignatureKind::OnDemand`]).
    ///
    /// When `budget` refuses, a request with one CertID of this CA whose status is `good` or
    /// `revoked` is answered as the same request without a nonce: from the cache, or signed
    /// once and cached ([`SignatureKind::CacheFill`], bounded by the issued certificates, not
    /// by the requests). RFC 9654 section 2.1 lets a responder ignore a nonce. Any other request
    /// gets `tryLater` (RFC 6960 section 4.2.1), which costs no signature.
    pub fn respond_within(
        &self,
        request_der: &[u8],
        now: OffsetDateTime,
        lookup: impl Fn(&Serial) -> Result<CertStatus, CaError>,
        budget: impl FnOnce() -> bool,
    ) -> OcspAnswer {
        let mut answer = OcspAnswer {
            der: Vec::new(),
            signature: None,
            nonce_ignored: false,
        };
        let der = match self.answer(request_der, now, lookup, budget, &mut answer) {
            Ok(der) => der,
            Err(Failure::Malformed) => MALFORMED_REQUEST.to_vec(),
            Err(Failure::Internal) => INTERNAL_ERROR.to_vec(),
            Err(Failure::TryLater) => TRY_LATER.to_vec(),
        };
        OcspAnswer { der, ..answer }
    }

    fn answer(
        &self,
        request_der: &[u8],
        now: OffsetDateTime,
        lookup: impl Fn(&Serial) -> Result<CertStatus, CaError>,
        budget: impl FnOnce() -> bool,
        cost: &mut OcspAnswer,
    ) -> Result<Vec<u8>, Failure> {
        if request_der.len() > MAX_REQUEST_DER {
            return Err(Failure::Malformed);
        }
        let request = OcspRequest::from_der(request_der).map_err(|_| Failure::Malformed)?;
        let tbs = &request.tbs_request;
        if tbs.request_list.is_empty() || tbs.request_list.len() > MAX_CERT_IDS {
            return Err(Failure::Malformed);
        }
        let mut nonce_seen = false;
        let mut nonce = None;
        for ext in tbs.request_extensions.iter().flatten() {
            if ext.extn_id == oid::ID_PKIX_OCSP_NONCE {
                if nonce_seen {
                    // RFC 5280 section 4.2: an extension appears at most once.
                    return Err(Failure::Malformed);
                }
                nonce_seen = true;
                nonce = echoed_nonce(ext)?;
            } else if ext.critical {
                return Err(Failure::Malformed);
            }
        }
        let single_critical = tbs
            .request_list
            .iter()
            .flat_map(|r| r.single_request_extensions.iter().flatten())
            .any(|ext| ext.critical);
        if single_critical {
            return Err(Failure::Malformed);
        }

        let ids: Vec<_> = tbs
            .request_list
            .iter()
            .map(|r| (&r.req_cert, self.our_serial(&r.req_cert)))
            .collect();
        // One CertID of ours: the RFC 5019 form, answerable from the cache once the nonce (if
        // any) is set aside. Keyed by the hash algorithm too, since the response repeats the
        // request's CertID.
        let cache = self.cache.as_ref().filter(|c| c.enabled());
        let cache_key = match (cache, ids.as_slice()) {
            (Some(_), [(_, Some((hash, serial)))]) => Some(CacheKey {
                serial: *serial,
                hash: *hash,
            }),
            _ => None,
        };
        // The generation is read before any status, so that an answer built from a status read
        // before a revocation is never stored after the revocation's invalidation.
        let (cached, generation) = match (cache, &cache_key) {
            (Some(cache), Some(key)) => cache.get(key, now),
            _ => (None, 0),
        };
        if let (Some(der), None) = (&cached, &nonce) {
            return Ok(der.clone());
        }

        let this_update = generalized_time(now)?;
        let next_update = now
            .checked_add(self.validity)
            .ok_or(Failure::Internal)
            .and_then(generalized_time)?;
        let mut responses = Vec::with_capacity(ids.len());
        let mut all_known = true;
        for (cert_id, ours) in ids {
            let mut single_extensions = None;
            let status = match ours {
                Some((_, serial)) => lookup(&serial).map_err(|e| {
                    tracing::warn!(serial = %serial, error = %e, "OCSP status lookup failed");
                    Failure::Internal
                })?,
                None => CertStatus::Unknown,
            };
            let cert_status = match status {
                CertStatus::Good => x509_ocsp::CertStatus::good(),
                CertStatus::Revoked {
                    revoked_at,
                    reason,
                    invalidity_date,
                } => {
                    let serial = ours.map(|(_, serial)| serial);
                    let degrade = |field: &'static str, e: CaError| {
                        if let Some(serial) = &serial {
                            self.degraded.report(serial, field, &e);
                        }
                    };
                    if let Some(date) = invalidity_date {
                        match invalidity_extension(date) {
                            Ok(ext) => single_extensions = Some(vec![ext]),
                            Err(e) => degrade("invalidity_date", e),
                        }
                    }
                    let revocation_time = generalized_time(revoked_at).unwrap_or_else(|_| {
                        degrade(
                            "revocation_time",
                            CaError::internal(
                                "a revocation time outside GeneralizedTime's 1970 to 9999",
                                None,
                            ),
                        );
                        this_update
                    });
                    x509_ocsp::CertStatus::revoked(RevokedInfo {
                        revocation_time,
                        revocation_reason: crl_reason(reason),
                    })
                }
                CertStatus::Unknown => {
                    all_known = false;
                    x509_ocsp::CertStatus::unknown()
                }
            };
            responses.push(SingleResponse {
                cert_id: cert_id.clone(),
                cert_status,
                this_update,
                next_update: Some(next_update),
                single_extensions,
            });
        }
        // Not `unknown`: a serial may be looked up just before its certificate is stored.
        let cacheable = cache_key.filter(|_| all_known);
        let on_demand = nonce.is_some() || cacheable.is_none();
        if on_demand && !budget() {
            if cacheable.is_none() {
                return Err(Failure::TryLater);
            }
            nonce = None;
            cost.nonce_ignored = true;
            if let Some(der) = cached {
                return Ok(der);
            }
        }
        let der = self.sign(this_update, responses, nonce.clone())?;
        let fresh_until = now.checked_add((self.validity / 2i32).min(MAX_CACHE_FRESHNESS));
        match (cache, cacheable, fresh_until, &nonce) {
            (Some(cache), Some(key), Some(until), None) => {
                cache.put(key, (der.clone(), until), now, generation);
                cost.signature = Some(SignatureKind::CacheFill);
            }
            _ => cost.signature = Some(SignatureKind::OnDemand),
        }
        Ok(der)
    }

    /// The hash algorithm and serial of a CertID of this CA whose serial has this CA's form.
    fn our_serial(&self, id: &CertId) -> Option<(CertIdHash, Serial)> {
        let hash = CertIdHash::of(&id.hash_algorithm)?;
        let ours = self.issuer.iter().find(|h| h.hash == hash)?;
        let matches = id.issuer_name_hash.as_bytes() == ours.name.as_slice()
            && id.issuer_key_hash.as_bytes() == ours.key.as_slice();
        if !matches {
            return None;
        }
        Some((hash, Serial::from_bytes(id.serial_number.as_bytes())?))
    }

    /// Signs the ResponseData and wraps it in a `successful` OCSPResponse (RFC 6960
    /// section 4.2.1).
    fn sign(
        &self,
        produced_at: OcspGeneralizedTime,
        responses: Vec<SingleResponse>,
        nonce: Option<Extension>,
    ) -> Result<Vec<u8>, Failure> {
        let identity = self.identity();
        let tbs_response_data = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(identity.key_hash.clone()),
            produced_at,
            responses,
            response_extensions: nonce.map(|n| vec![n]),
        };
        let tbs_der = tbs_response_data.to_der().map_err(internal("encoding"))?;
        let signature = identity
            .signer
            .sign(&tbs_der)
            .map_err(internal("signing"))?;
        let basic = BasicOcspResponse {
            tbs_response_data,
            signature_algorithm: identity.signature_algorithm.clone(),
            signature: BitString::from_bytes(&signature).map_err(internal("encoding"))?,
            certs: identity.certs.clone(),
        };
        OcspResponse::successful(basic)
            .and_then(|r| r.to_der())
            .map_err(internal("encoding"))
    }
}

/// The profile name of the responder certificate template (never a configured profile), also
/// the profile its stored record names.
pub const RESPONDER_PROFILE: &str = "ocsp-responder";

/// What follows the CA's commonName in a delegated responder's commonName.
const RESPONDER_CN_SUFFIX: &str = " OCSP Responder";

/// Issues the certificate of a delegated OCSP responder whose key is `responder` (RFC 6960
/// section 4.2.2.2), signed by the CA (`ca_signer`, `ca_cert_der`) through
/// [`CertificateAuthority::sign`]: subject `CN=<the CA's CN> OCSP Responder` (64 characters
/// at most), extended key usage id-kp-OCSPSigning, key usage digitalSignature (critical),
/// basicConstraints cA false, authority and subject key identifiers, no CRL distribution point
/// and no AIA; valid `validity_days` (1 to [`MAX_RESPONDER_VALIDITY_DAYS`]) from a minute
/// before `now`. Returns its DER.
pub fn issue_responder_certificate(
    ca_signer: Arc<dyn Signer>,
    ca_cert_der: &[u8],
    responder: &dyn Signer,
    validity_days: u32,
    serial: Serial,
    now: OffsetDateTime,
) -> Result<Vec<u8>, CaError> {
    if validity_days == 0 || validity_days > MAX_RESPONDER_VALIDITY_DAYS {
        return Err(CaError::ca_material(format!(
            "the OCSP responder certificate validity must be between 1 and \
             {MAX_RESPONDER_VALIDITY_DAYS} days"
        )));
    }
    let profile = Profile {
        max_validity_days: validity_days,
        default_validity_days: validity_days,
        key_usage: vec![KeyUsage::DigitalSignature],
        extended_key_usage: vec![ExtendedKeyUsage::OcspSigning],
        ..Profile::default()
    };
    let profiles = BTreeMap::from([(RESPONDER_PROFILE.to_string(), profile)]);
    let ca = CertificateAuthority::new(
        ca_signer,
        vec![ca_cert_der.to_vec()],
        &profiles,
        &Urls::default(),
    )?;
    let ca_cert = parse_certificate(ca_cert_der, "the CA certificate")?;
    let ca_cn = ca_cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok());
    let cn = match ca_cn {
        // ub-common-name is 64 characters (RFC 5280 appendix A.1).
        Some(ca_cn) => {
            let room = 64 - RESPONDER_CN_SUFFIX.len();
            let ca_cn: String = ca_cn.chars().take(room).collect();
            format!("{}{RESPONDER_CN_SUFFIX}", ca_cn.trim_end())
        }
        None => RESPONDER_CN_SUFFIX.trim_start().to_string(),
    };
    let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(responder.spki_der())
        .map_err(|e| {
            CaError::ca_material_from("the OCSP responder key does not parse", e.to_string())
        })?;
    let request = ValidatedRequest {
        subject: vec![SubjectAttribute {
            kind: AttributeKind::CommonName,
            value: cn,
        }],
        sans: Vec::new(),
        key: subject_key(&spki)?,
        validity_days,
        validation: Validation::Basic,
    };
    Ok(ca.sign(RESPONDER_PROFILE, serial, &request, now)?.der)
}

/// The validity period of a delegated responder's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponderValidity {
    /// notBefore.
    pub not_before: OffsetDateTime,
    /// notAfter.
    pub not_after: OffsetDateTime,
}

impl ResponderValidity {
    /// Whether a responder certificate of this validity should be replaced at `now`: it is not
    /// valid yet, or less than a third of its validity remains.
    pub fn renewal_due(&self, now: OffsetDateTime) -> bool {
        let third = (self.not_after - self.not_before) / 3;
        now < self.not_before || self.not_after - now < third
    }
}

/// Checks that `responder_cert_der` is a delegated OCSP responder certificate of the CA whose
/// certificate is `ca_cert_der`, for the key `responder`: one DER certificate, its public key
/// that of `responder`, its issuer the CA's subject, its signature made by the CA key, and
/// id-kp-OCSPSigning among its extended key usages (RFC 6960 section 4.2.2.2). Returns its
/// validity period, which is not checked against any time.
pub fn check_responder_certificate(
    ca_cert_der: &[u8],
    responder: &dyn Signer,
    responder_cert_der: &[u8],
) -> Result<ResponderValidity, CaError> {
    let ca = parse_certificate(ca_cert_der, "the CA certificate")?;
    let cert = parse_certificate(responder_cert_der, "the OCSP responder certificate")?;
    let bad = |why: &str| {
        Err(CaError::ca_material(format!(
            "the OCSP responder certificate {why}"
        )))
    };
    if cert.tbs_certificate.subject_pki.raw != responder.spki_der() {
        return bad("does not match the OCSP responder key");
    }
    if cert.issuer().as_raw() != ca.subject().as_raw()
        || cert.verify_signature(Some(ca.public_key())).is_err()
    {
        return bad("was not issued by this CA");
    }
    match cert.extended_key_usage() {
        Ok(Some(eku)) if eku.value.ocsp_signing => {}
        _ => return bad("lacks the extended key usage id-kp-OCSPSigning"),
    }
    Ok(ResponderValidity {
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
    })
}

/// The signing identity of a delegated responder, after [`check_responder_certificate`].
fn delegate_identity(
    ca_cert_der: &[u8],
    signer: Arc<dyn Signer>,
    responder_cert_der: &[u8],
) -> Result<SigningIdentity, CaError> {
    check_responder_certificate(ca_cert_der, signer.as_ref(), responder_cert_der)?;
    let cert = Certificate::from_der(responder_cert_der).map_err(|e| {
        CaError::ca_material_from("the OCSP responder certificate does not parse", e)
    })?;
    SigningIdentity::new(signer, Some(vec![cert]))
}

/// One DER certificate, with nothing after it.
fn parse_certificate<'a>(
    der: &'a [u8],
    what: &str,
) -> Result<x509_parser::certificate::X509Certificate<'a>, CaError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CaError::ca_material(format!("{what} has trailing data"))),
        Err(e) => Err(CaError::ca_material_from(
            format!("{what} does not parse"),
            e.to_string(),
        )),
    }
}

fn internal<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Failure {
    move |e| {
        tracing::error!(error = %e, "OCSP response {what} failed");
        Failure::Internal
    }
}

/// The response's nonce extension for a request's (RFC 9654 section 2.1): the same value,
/// non-critical. A nonce that is not an OCTET STRING (as some clients from before RFC 6960
/// wrote it) is not echoed; an OCTET STRING of 0 or more than [`MAX_NONCE_LEN`] octets is a
/// `malformedRequest`.
fn echoed_nonce(ext: &Extension) -> Result<Option<Extension>, Failure> {
    let Ok(value) = OctetString::from_der(ext.extn_value.as_bytes()) else {
        return Ok(None);
    };
    if !(1..=MAX_NONCE_LEN).contains(&value.as_bytes().len()) {
        return Err(Failure::Malformed);
    }
    Ok(Some(Extension {
        extn_id: oid::ID_PKIX_OCSP_NONCE,
        critical: false,
        extn_value: ext.extn_value.clone(),
    }))
}

/// The `revocationReason` of a revocation: absent for `unspecified`, as RFC 5280 section
/// 5.3.1 asks of CRLs and the CA/Browser Forum Baseline Requirements (section 7.3) of OCSP.
fn crl_reason(reason: RevocationReason) -> Option<CrlReason> {
    match reason {
        RevocationReason::Unspecified => None,
        RevocationReason::KeyCompromise => Some(CrlReason::KeyCompromise),
        RevocationReason::CaCompromise => Some(CrlReason::CaCompromise),
        RevocationReason::AffiliationChanged => Some(CrlReason::AffiliationChanged),
        RevocationReason::Superseded => Some(CrlReason::Superseded),
        RevocationReason::CessationOfOperation => Some(CrlReason::CessationOfOperation),
        RevocationReason::CertificateHold => Some(CrlReason::CertificateHold),
        RevocationReason::PrivilegeWithdrawn => Some(CrlReason::PrivilegeWithdrawn),
        RevocationReason::AaCompromise => Some(CrlReason::AaCompromise),
    }
}

/// The invalidityDate extension (RFC 5280 section 5.3.2) as a single extension of an OCSP
/// answer (RFC 6960 section 4.4.5): a GeneralizedTime of any year from 0000 to 9999.
fn invalidity_extension(date: i64) -> Result<Extension, CaError> {
    der_util::extension(
        oid::ID_CE_INVALIDITY_DATE,
        false,
        &der_util::generalized_time(date)?,
    )
}

/// A GeneralizedTime of whole seconds (RFC 6960 section 4.2.2.1; RFC 5280 section 4.1.2.5.2).
fn generalized_time(t: OffsetDateTime) -> Result<OcspGeneralizedTime, Failure> {
    let secs = u64::try_from(t.unix_timestamp()).map_err(|_| Failure::Internal)?;
    GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(secs))
        .map(OcspGeneralizedTime)
        .map_err(|_| Failure::Internal)
}

/// Decodes the path segment of an OCSP GET request (RFC 6960 appendix A.1,
/// `{url}/{url-encoding of base-64 encoding of the DER encoding of the OCSPRequest}`) to the
/// request's DER.
///
/// Percent-escapes (`%2B`, `%2F`, `%3D`, any `%XX`) are undone first, so the segment may be
/// given raw or already unescaped; leading `/` are skipped; padding is optional. Anything
/// that is not base64 of 1 to [`MAX_REQUEST_DER`] octets is an error.
pub fn decode_get_request(path: &str) -> Result<Vec<u8>, CaError> {
    let bad = |why: &str| CaError::InvalidRequest(format!("OCSP GET request: {why}"));
    if path.len() > MAX_GET_PATH {
        return Err(bad("too long"));
    }
    let raw = path.trim_start_matches('/').as_bytes();
    let mut text = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .ok_or_else(|| bad("truncated percent-escape"))?;
            let mut byte = [0u8; 1];
            hex::decode_to_slice(hex, &mut byte).map_err(|_| bad("invalid percent-escape"))?;
            text.push(byte[0]);
            i += 3;
        } else {
            text.push(b);
            i += 1;
        }
    }
    const BASE64: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let der = BASE64.decode(&text).map_err(|_| bad("not base64"))?;
    if der.is_empty() || der.len() > MAX_REQUEST_DER {
        return Err(bad("empty or too long"));
    }
    Ok(der)
}

/// The key of a cached response: the serial and the CertID hash algorithm, which the response
/// repeats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct CacheKey {
    serial: Serial,
    hash: CertIdHash,
}

struct CacheInner {
    entries: HashMap<CacheKey, (Vec<u8>, OffsetDateTime)>,
    /// Bumped by every invalidation, so that a response built from a status read before a
    /// revocation is not stored after the revocation's invalidation.
    generation: u64,
}

/// A bounded cache of signed responses to RFC 5019 requests (one CertID, no nonce), each kept
/// for half its validity, at most [`MAX_CACHE_FRESHNESS`] (RFC 5019 section 6 lets responders
/// pre-produce responses).
///
/// Only `good` and `revoked` answers are cached. A revocation must call
/// [`OcspCache::invalidate`] once it is durable; a response whose status was read before that
/// call is then never stored.
pub struct OcspCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

impl std::fmt::Debug for OcspCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcspCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl OcspCache {
    /// A cache of at most `capacity` responses (0 disables it).
    pub fn new(capacity: usize) -> Self {
        OcspCache {
            capacity,
            inner: Mutex::new(CacheInner {
                entries: HashMap::new(),
                generation: 0,
            }),
        }
    }

    /// Drops every cached response for `serial`, whatever its CertID hash algorithm. Call it
    /// after a revocation (or a release from hold) is stored.
    pub fn invalidate(&self, serial: &Serial) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.retain(|k, _| k.serial != *serial);
    }

    /// Drops every cached response.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.clear();
    }

    /// Whether responses are kept at all (a capacity above 0).
    fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The number of cached responses, fresh or not.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no response is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fresh response for `key` if any, and the current generation.
    fn get(&self, key: &CacheKey, now: OffsetDateTime) -> (Option<Vec<u8>>, u64) {
        let inner = self.lock();
        let fresh = inner
            .entries
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(der, _)| der.clone());
        (fresh, inner.generation)
    }

    /// Stores a response and the time until which it is fresh, unless an invalidation happened
    /// since `generation` was read.
    fn put(
        &self,
        key: CacheKey,
        entry: (Vec<u8>, OffsetDateTime),
        now: OffsetDateTime,
        generation: u64,
    ) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= self.capacity && !inner.entries.contains_key(&key) {
            // Drop stale entries; if that frees less than a quarter, start over. Either way
            // the next sweep is at least capacity / 4 insertions away.
            inner.entries.retain(|_, (_, until)| now < *until);
            if inner.entries.len() >= self.capacity - self.capacity / 4 {
                inner.entries.clear();
            }
        }
        inner.entries.insert(key, entry);
    }
}
