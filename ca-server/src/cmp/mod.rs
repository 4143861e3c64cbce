//! The CMP front end: RFC 9483's lightweight profile of CMP (RFC 9810) over HTTP (RFC 9811)
//! at `/.well-known/cmp` and `/.well-known/cmp/p/{profile}`, on the engine.
//!
//! An `ir`, `cr` or `p10cr` redeems an enrollment: senderKID is the enrollment's id, the
//! MAC secret its one-time code (RFC 9483 section 4.1.1's "reference number and shared
//! secret"). Every CMP-level answer is HTTP 200 with a DER PKIMessage, an `error` body with
//! PKIStatusInfo and a PKIFailureInfo bit when refused; a body that is not a PKIMessage is
//! HTTP 400, another media type 415 (RFC 9811 section 3.3).

pub mod config;

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use ca_cmp::answer::{Answer, Envelope, FailureInfo, MacProtector, Protector};
use ca_cmp::mac::PasswordMac;
use ca_cmp::{CertKind, Received, Request};
use ca_core::audit::Protocol;
use ca_core::crl::CrlPublisher;
use ca_core::engine::{
    Engine, IssueRequest, Issued, KeyRequest, NewKey, RedeemKey, RenewRequest, Requester,
    VerifiedRedemption,
};
use ca_core::enrollment::{CodeHash, CodeKey, EnrollmentCode, CODE_KEY_LEN};
use ca_core::error::{CaError, ErrorClass};
use ca_core::metrics::CodeChecks;
use ca_core::revocation::RevocationReason;
use ca_core::store::{CertRecord, IdempotencyKey};
use cmpv2::message::PkiMessage;
use cmpv2::status::PkiStatus;
use der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::Certificate;

pub use config::CmpConfig;

use crate::api::AppState;

/// The CMP paths (RFC 9811 section 3.3).
pub const ROUTES: &[&str] = &["/.well-known/cmp", "/.well-known/cmp/p/{profile}"];

/// The file in the data directory holding the key enrollment codes are derived from while
/// CMP is on ([`CodeKey`]).
pub const CODE_KEY_FILE: &str = "cmp-code.key";

/// Why the CMP front end cannot start.
#[derive(Debug, thiserror::Error)]
pub enum CmpStartError {
    /// The code key file cannot be read or written.
    #[error("{path}: {message}")]
    CodeKey {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A setting names something that does not exist.
    #[error("[cmp] {0}")]
    Setting(String),
}

/// The CMP front end's state.
pub struct CmpFront {
    engine: Arc<Engine>,
    config: CmpConfig,
    code_key: Arc<CodeKey>,
    /// The CA chain, issuing CA first: the extraCerts of a certificate answer.
    chain: Vec<Certificate>,
    /// The issuing CA certificate's subjectKeyIdentifier: the senderKID of signed answers.
    ca_key_id: Option<Vec<u8>>,
    /// The CRLs served, for a genm's crlStatusList.
    crl: Arc<CrlPublisher>,
    /// The URLs the complete CRL is published at.
    crl_urls: Vec<String>,
    /// The registered RAs' signing certificates.
    ras: Vec<RegisteredRa>,
}

/// A `[[cmp.ras]]` entry, its fingerprints read.
#[derive(Debug)]
struct RegisteredRa {
    name: String,
    certificate_sha256: Option<[u8; 32]>,
    spki_sha256: Option<[u8; 32]>,
}

impl RegisteredRa {
    fn from_config(c: &config::CmpRaConfig) -> Result<RegisteredRa, CmpStartError> {
        let fingerprint = |field: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| {
                    crate::client_auth::parse_fingerprint(v).ok_or_else(|| {
                        CmpStartError::Setting(format!(
                            "ras: {:?}: {field} must be a SHA-256 fingerprint (64 hex digits)",
                            c.name
                        ))
                    })
                })
                .transpose()
        };
        let ra = RegisteredRa {
            name: c.name.clone(),
            certificate_sha256: fingerprint("certificate_sha256", &c.certificate_sha256)?,
            spki_sha256: fingerprint("spki_sha256", &c.spki_sha256)?,
        };
        if ra.certificate_sha256.is_none() && ra.spki_sha256.is_none() {
            return Err(CmpStartError::Setting(format!(
                "ras: {:?}: give certificate_sha256 or spki_sha256",
                c.name
            )));
        }
        if c.name.is_empty() || c.name == ca_core::engine::CA_REQUESTER {
            return Err(CmpStartError::Setting(format!(
                "ras: {:?} is not a requester name an RA may have",
                c.name
            )));
        }
        Ok(ra)
    }

    /// Whether `certificate` (DER) with SubjectPublicKeyInfo `spki` (DER) is this RA's.
    fn names(&self, certificate: &[u8], spki: &[u8]) -> bool {
        use sha2::{Digest, Sha256};
        let is = |pin: &Option<[u8; 32]>, der: &[u8]| {
            pin.is_some_and(|p| {
                bool::from(subtle::ConstantTimeEq::ct_eq(
                    &p[..],
                    &Sha256::digest(der)[..],
                ))
            })
        };
        is(&self.certificate_sha256, certificate) || is(&self.spki_sha256, spki)
    }
}

/// Who signed a signature-protected request, once the signature verified.
enum Signer {
    /// A subscriber, by a certificate this CA issued (the stored record).
    Subscriber(Box<CertRecord>),
    /// A registered RA, by its name.
    Ra(String),
}

impl std::fmt::Debug for CmpFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CmpFront").finish_non_exhaustive()
    }
}

impl CmpFront {
    /// Starts the front end: checks the profiles, reads the code key from the data directory
    /// `dir` (drawing it on first start). `crl` and `crl_urls` are the CRLs served and where.
    pub fn start(
        engine: Arc<Engine>,
        config: CmpConfig,
        dir: &FsPath,
        crl: Arc<CrlPublisher>,
        crl_urls: Vec<String>,
    ) -> Result<CmpFront, CmpStartError> {
        for name in std::iter::once(&config.profile).chain(&config.profiles) {
            engine
                .ca()
                .profile(name)
                .map_err(|_| CmpStartError::Setting(format!("profile {name:?} does not exist")))?;
        }
        let chain = engine
            .ca()
            .chain()
            .iter()
            .map(|der| Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CmpStartError::Setting(format!("the CA chain does not parse: {e}")))?;
        let code_key = Arc::new(read_code_key(&dir.join(CODE_KEY_FILE), engine.as_ref())?);
        let ca_key_id = chain.first().and_then(subject_key_id);
        let ras = config
            .ras
            .iter()
            .map(RegisteredRa::from_config)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CmpFront {
            engine,
            config,
            code_key,
            chain,
            ca_key_id,
            crl,
            crl_urls,
            ras,
        })
    }

    /// The key enrollment codes are derived from while CMP is on.
    pub fn code_key(&self) -> Arc<CodeKey> {
        self.code_key.clone()
    }
}

/// The subjectKeyIdentifier of `certificate`, when it has one.
fn subject_key_id(certificate: &Certificate) -> Option<Vec<u8>> {
    use x509_cert::ext::pkix::SubjectKeyIdentifier;
    let extension = certificate
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == ca_x509::oid::ID_CE_SUBJECT_KEY_IDENTIFIER)?;
    SubjectKeyIdentifier::from_der(extension.extn_value.as_bytes())
        .ok()
        .map(|ski| ski.0.as_bytes().to_vec())
}

/// Reads the code key at `path`, or draws one and writes it there (mode 0600, durably).
fn read_code_key(path: &FsPath, engine: &Engine) -> Result<CodeKey, CmpStartError> {
    let fail = |message: String| CmpStartError::CodeKey {
        path: path.to_path_buf(),
        message,
    };
    if !path.exists() {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut secret = zeroize::Zeroizing::new([0u8; CODE_KEY_LEN]);
        engine
            .ca()
            .random()
            .fill(secret.as_mut())
            .map_err(|e| fail(e.to_string()))?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut file| {
                file.write_all(secret.as_ref())?;
                file.sync_all()
            })
            .and_then(|()| crate::durable::sync_parent(path))
            .map_err(|e| fail(e.to_string()))?;
    }
    let bytes = keys::read_secret_file(path).map_err(|e| fail(e.to_string()))?;
    let secret = <&[u8; CODE_KEY_LEN]>::try_from(bytes.as_slice())
        .map_err(|_| fail(format!("not {CODE_KEY_LEN} bytes")))?;
    Ok(CodeKey::new(secret))
}

/// The CMP routes.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/.well-known/cmp", post(default_path))
        .route("/.well-known/cmp/p/{profile}", post(profile_path))
}

async fn default_path(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(state, None, &headers, &body).await
}

async fn profile_path(
    State(state): State<Arc<AppState>>,
    Path(profile): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(state, Some(profile), &headers, &body).await
}

/// A plain-text HTTP refusal of something that is not a CMP request.
fn not_cmp(status: StatusCode, text: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain")], text).into_response()
}

async fn serve(
    state: Arc<AppState>,
    profile: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(front) = state.cmp.clone() else {
        return not_cmp(StatusCode::NOT_FOUND, "CMP is not enabled".into());
    };
    if let Some(name) = &profile {
        if !front.config.serves(name) {
            return not_cmp(
                StatusCode::NOT_FOUND,
                format!("no CMP profile {name:?} is served"),
            );
        }
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some(ca_cmp::CONTENT_TYPE) {
        return not_cmp(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("the body must be {}", ca_cmp::CONTENT_TYPE),
        );
    }
    let received = match ca_cmp::Received::read(body) {
        Ok(received) => received,
        Err(e) => return not_cmp(StatusCode::BAD_REQUEST, e.to_string()),
    };
    match front.answer(profile.as_deref(), &received).await {
        Ok(der) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(ca_cmp::CONTENT_TYPE),
            )],
            der,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a CMP answer could not be encoded");
            not_cmp(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the answer could not be encoded".into(),
            )
        }
    }
}

/// How an answer is protected.
enum Protection {
    /// Unprotected: an error whose request's protection could not be verified.
    None,
    /// Signed by the CA key (RFC 9483 section 3.2): the answer to a signature-protected
    /// request, and to an unprotected genm.
    Ca,
    /// MAC with the request's parameters and the enrollment's code.
    Mac {
        pbm: PasswordMac,
        code: EnrollmentCode,
        kid: Vec<u8>,
    },
}

/// A refused request: the failure bit, the statusString, and how the error is protected.
struct Refusal {
    failure: FailureInfo,
    text: String,
}

impl From<ca_cmp::CmpError> for Refusal {
    fn from(e: ca_cmp::CmpError) -> Self {
        Refusal {
            failure: e.failure(),
            text: e.to_string(),
        }
    }
}

impl From<CaError> for Refusal {
    fn from(e: CaError) -> Self {
        Refusal {
            failure: failure_of(&e),
            text: e.to_string(),
        }
    }
}

/// The PKIFailureInfo bit of a core error (docs/API.md, "CMP", lists the map).
fn failure_of(e: &CaError) -> FailureInfo {
    match e {
        CaError::CsrSignatureInvalid => FailureInfo::BadPop,
        CaError::EnrollmentCodeInvalid { .. } => FailureInfo::BadMessageCheck,
        CaError::EnrollmentRedeemed => FailureInfo::DuplicateCertReq,
        CaError::IdempotencyConflict(_) => FailureInfo::TransactionIdInUse,
        CaError::EnrollmentNotFound(_) | CaError::EnrollmentLocked | CaError::EnrollmentExpired => {
            FailureInfo::NotAuthorized
        }
        _ => match e.class() {
            ErrorClass::BadInput | ErrorClass::Policy => FailureInfo::BadCertTemplate,
            ErrorClass::NotFound => FailureInfo::BadCertId,
            ErrorClass::Conflict => FailureInfo::BadRequest,
            ErrorClass::Forbidden | ErrorClass::Locked => FailureInfo::NotAuthorized,
            ErrorClass::Gone => FailureInfo::CertRevoked,
            ErrorClass::Overloaded | ErrorClass::Unavailable => FailureInfo::SystemUnavail,
            ErrorClass::Internal => FailureInfo::SystemFailure,
        },
    }
}

/// A request as received: the typed message, and what `cmpv2` does not type (pvno, hashAlg,
/// the ProtectedPart as received).
struct Incoming<'m> {
    message: &'m PkiMessage<'m>,
    received: &'m Received,
}

/// An enrollment whose code keyed the request's MAC.
struct MacSender {
    id: [u8; 16],
    profile: String,
    serial: Option<ca_core::serial::Serial>,
}

impl CmpFront {
    /// The DER answer to `received`, at the path of `profile` (`None`: the default path), in
    /// the request's version (RFC 9810 section 7; a version not served is answered with
    /// `unsupportedVersion`, unprotected, in the nearest version served).
    async fn answer(
        &self,
        profile: Option<&str>,
        received: &Received,
    ) -> Result<Vec<u8>, ca_cmp::CmpError> {
        let message = &received.message()?;
        let request = Incoming { message, received };
        let mut protection = Protection::None;
        let handled = match received.check_syntax() {
            Ok(_) => self.handle(profile, &request, &mut protection).await,
            Err(e) => Err(Refusal::from(e)),
        };
        let answer = match handled {
            Ok(answer) => answer,
            Err(refusal) => Answer::Error {
                failure: refusal.failure,
                text: refusal.text,
            },
        };
        let mut nonce = [0u8; 16];
        self.engine
            .ca()
            .random()
            .fill(&mut nonce)
            .map_err(|e| ca_cmp::CmpError::Encoding(e.to_string()))?;
        let issuing = self.chain.first();
        let envelope = Envelope {
            request: &message.header,
            version: received.answer_version(),
            sender: GeneralName::DirectoryName(
                issuing
                    .map(|c| c.tbs_certificate.subject.clone())
                    .unwrap_or_default(),
            ),
            nonce,
            now: time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64,
            extra_certs: match (&answer, &protection) {
                (Answer::Issued { .. }, _) | (_, Protection::Ca) => self.chain.clone(),
                _ => Vec::new(),
            },
        };
        let mac;
        let ca = CaProtector {
            signer: self.engine.ca().signer().clone(),
            kid: self.ca_key_id.clone(),
        };
        let protector: Option<&dyn Protector> = match &protection {
            Protection::None => None,
            Protection::Ca => Some(&ca),
            Protection::Mac { pbm, code, kid } => {
                mac = MacProtector {
                    pbm,
                    secret: code.as_str().as_bytes(),
                    kid: kid.clone(),
                };
                Some(&mac)
            }
        };
        answer.encode(envelope, protector)
    }

    async fn handle(
        &self,
        profile: Option<&str>,
        incoming: &Incoming<'_>,
        protection: &mut Protection,
    ) -> Result<Answer, Refusal> {
        let message = incoming.message;
        let request = Request::read(message)?;
        let mac = message
            .header
            .protection_alg
            .as_ref()
            .is_none_or(ca_cmp::mac::is_password_mac);
        match request {
            Request::Certificate(kind @ (CertKind::Ir | CertKind::Cr), request) => {
                let cert_req_id = int_value(&request.cert_req.cert_req_id)?;
                if !mac {
                    let ra = self.ra_signer(incoming, protection)?;
                    let issued = self.issue_for_ra(profile, message, request, ra).await?;
                    return self.issued(Some(kind), cert_req_id, &issued, false);
                }
                let sender = self.mac_sender(incoming, protection).await?;
                let key = self.proven_key(&ca_cmp::signature_pop(request)?)?;
                let verified = self.redemption(profile, &sender, protection).await?;
                let issued = self
                    .engine
                    .redeem_verified(verified, RedeemKey::Generated(key), Protocol::Cmp)
                    .await?;
                self.issued(Some(kind), cert_req_id, &issued.record.der, true)
            }
            Request::P10cr(csr) => {
                let der = csr.to_der().map_err(ca_cmp::CmpError::from)?;
                if !mac {
                    let ra = self.ra_signer(incoming, protection)?;
                    let issued = self
                        .engine
                        .issue(IssueRequest {
                            csr: der,
                            profile: self.profile_of(profile).to_string(),
                            identity: Default::default(),
                            validity_days: None,
                            request_id: Some(transaction_request_id(message)),
                            requester: ra_requester(ra),
                        })
                        .await;
                    let issued = self.first_answer(issued)?;
                    return self.issued(None, -1, &issued.record.der, false);
                }
                let sender = self.mac_sender(incoming, protection).await?;
                let verified = self.redemption(profile, &sender, protection).await?;
                let issued = self
                    .engine
                    .redeem_verified(verified, RedeemKey::Csr(der), Protocol::Cmp)
                    .await?;
                self.issued(None, -1, &issued.record.der, true)
            }
            Request::CertConf(statuses) if !mac => {
                // The certConf of a kur (signed by the certificate it renewed) or of an RA's
                // request, in the signer's transaction scope.
                let requester = match self.signed_by(incoming, protection)? {
                    Signer::Subscriber(old) => kur_requester(&old),
                    Signer::Ra(ra) => ra_requester(ra),
                };
                self.confirm_transaction(incoming, &requester, statuses)
                    .await
            }
            Request::CertConf(statuses) => {
                let sender = self.mac_sender(incoming, protection).await?;
                self.confirm(&sender, statuses, incoming.received.hash_alg(0))
                    .await
            }
            Request::Certificate(CertKind::Kur, request) => {
                let old = self.subscriber_signer(incoming, protection)?;
                let key = self.proven_key(&ca_cmp::signature_pop(request)?)?;
                let issued = self
                    .engine
                    .renew(RenewRequest {
                        serial: old.serial,
                        key: NewKey::Proven(key),
                        validity_days: None,
                        request_id: Some(transaction_request_id(message)),
                        requester: kur_requester(&old),
                    })
                    .await;
                let issued = self.first_answer(issued)?;
                let cert_req_id = int_value(&request.cert_req.cert_req_id)?;
                self.issued(Some(CertKind::Kur), cert_req_id, &issued.record.der, false)
            }
            Request::Rr(template) => {
                let named = template
                    .serial_number
                    .as_ref()
                    .and_then(|n| ca_core::serial::Serial::from_bytes(n.as_bytes()));
                let (serial, requester) = match self.signed_by(incoming, protection)? {
                    Signer::Subscriber(holder) if named == Some(holder.serial) => {
                        (holder.serial, holder.requester)
                    }
                    Signer::Subscriber(_) => {
                        return Err(Refusal {
                            failure: FailureInfo::BadCertId,
                            text: "an rr must name the certificate that signs it".into(),
                        })
                    }
                    // An RA revokes the certificates issued under its name, as its token does
                    // in the JSON API.
                    Signer::Ra(ra) => {
                        let record = named
                            .and_then(|serial| self.engine.store().certificate(&serial).transpose())
                            .transpose()?
                            .filter(|record| record.requester == ra)
                            .ok_or(Refusal {
                                failure: FailureInfo::BadCertId,
                                text: "the RA did not request a certificate of this serial number"
                                    .into(),
                            })?;
                        (record.serial, ra)
                    }
                };
                let reason = revocation_reason(message)?;
                self.engine.revoke(serial, reason, None, &requester).await?;
                Ok(Answer::Revoked)
            }
            Request::Genm(infos) => {
                *protection = match &message.header.protection_alg {
                    // A MAC-protected genm is answered with the same MAC once it verifies.
                    Some(_) if mac => {
                        self.mac_sender(incoming, protection).await?;
                        std::mem::replace(protection, Protection::None)
                    }
                    Some(_) => {
                        self.signed_by(incoming, protection)?;
                        Protection::Ca
                    }
                    None => Protection::Ca,
                };
                let published = self.crl.current();
                let issuer = self.chain.first().map(|c| &c.tbs_certificate.subject);
                let current = published.as_ref().zip(issuer).map(|(crl, issuer)| {
                    ca_cmp::general::CurrentCrl {
                        der: &crl.full,
                        this_update: crl.this_update,
                        urls: &self.crl_urls,
                        issuer,
                    }
                });
                Ok(Answer::General(ca_cmp::general::answer(
                    infos,
                    &self.chain,
                    current,
                )?))
            }
            Request::PollReq => Err(Refusal {
                failure: FailureInfo::BadRequest,
                text: "nothing is waiting: every request is answered at once".into(),
            }),
        }
    }

    /// The profile of a request at the path of `profile` (`None`: the default path).
    fn profile_of<'p>(&'p self, profile: Option<&'p str>) -> &'p str {
        profile.unwrap_or(&self.config.profile)
    }

    /// Issues an RA's `ir` or `cr` (RFC 9483 section 5): the certTemplate's key, proven by
    /// its signature POP or vouched for by the RA (`raVerified`, RFC 4211 section 4.3), and
    /// its subject and SANs, which the profile checks as the identity data of a JSON request.
    async fn issue_for_ra(
        &self,
        profile: Option<&str>,
        message: &PkiMessage<'_>,
        request: &ca_cmp::CertReqMsg,
        ra: String,
    ) -> Result<Vec<u8>, Refusal> {
        let key = match ca_cmp::ra_key_proof(request)? {
            ca_cmp::KeyProof::RaVerified(spki) => ca_core::csr::key_from_spki_der(&spki)?,
            ca_cmp::KeyProof::Signature(pop) => self.proven_key(&pop)?,
        };
        let names = ca_cmp::template_names(&request.cert_req.cert_template)?;
        let (subject, sans) = ca_core::csr::template_names(
            names.subject.as_deref(),
            names.subject_alt_name.as_deref(),
        )?;
        let issued = self
            .engine
            .issue_for_key(KeyRequest {
                key,
                profile: self.profile_of(profile).to_string(),
                identity: ca_core::profile::Identity { subject, sans },
                validity_days: None,
                request_id: Some(transaction_request_id(message)),
                requester: ra_requester(ra),
            })
            .await;
        Ok(self.first_answer(issued)?.record.der)
    }

    /// The key a signature proof of possession proves, once the signature verifies.
    fn proven_key(&self, pop: &ca_cmp::SignaturePop) -> Result<ca_core::csr::SubjectKey, Refusal> {
        let key = ca_core::csr::key_from_spki_der(&pop.public_key)?;
        ca_core::csr::verify_signature(&pop.algorithm, &key, &pop.signed, &pop.signature).map_err(
            |e| match e {
                CaError::CsrSignatureInvalid => Refusal {
                    failure: FailureInfo::BadPop,
                    text: "the proof of possession does not verify".into(),
                },
                other => Refusal::from(other),
            },
        )?;
        Ok(key)
    }

    /// [`CmpFront::signed_by`] for a request only a subscriber signs (`kur`).
    fn subscriber_signer(
        &self,
        incoming: &Incoming<'_>,
        protection: &mut Protection,
    ) -> Result<Box<CertRecord>, Refusal> {
        match self.signed_by(incoming, protection)? {
            Signer::Subscriber(record) => Ok(record),
            Signer::Ra(_) => Err(Refusal {
                failure: FailureInfo::NotAuthorized,
                text: "a kur is signed by the certificate it renews, not by an RA".into(),
            }),
        }
    }

    /// [`CmpFront::signed_by`] for a request only a registered RA signs (`ir`, `cr`,
    /// `p10cr`: a subscriber without an enrollment has nothing to redeem).
    fn ra_signer(
        &self,
        incoming: &Incoming<'_>,
        protection: &mut Protection,
    ) -> Result<String, Refusal> {
        match self.signed_by(incoming, protection)? {
            Signer::Ra(name) => Ok(name),
            Signer::Subscriber(_) => Err(Refusal {
                failure: FailureInfo::NotAuthorized,
                text: "a signed ir, cr or p10cr must come from a registered RA; a subscriber \
                       redeems an enrollment (MAC) or renews with kur"
                    .into(),
            }),
        }
    }

    /// Checks a signature-protected request (RFC 9483 section 3.2): the first of extraCerts
    /// is a registered RA's certificate ([[cmp.ras]]) within its validity, or a certificate
    /// this CA issued (the stored one, byte for byte) and not expired; neither revoked by this
    /// CA; and its key's signature over ProtectedPart verifies. Sets `protection` to the CA's
    /// signature once it does (and for the refusals after the certificate is known).
    fn signed_by(
        &self,
        incoming: &Incoming<'_>,
        protection: &mut Protection,
    ) -> Result<Signer, Refusal> {
        let message = incoming.message;
        let untrusted = |text: &str| Refusal {
            failure: FailureInfo::SignerNotTrusted,
            text: text.into(),
        };
        let algorithm = message.header.protection_alg.as_ref().ok_or(Refusal {
            failure: FailureInfo::BadMessageCheck,
            text: "the request must be signed".into(),
        })?;
        if ca_cmp::mac::is_password_mac(algorithm) {
            return Err(Refusal {
                failure: FailureInfo::WrongIntegrity,
                text: "kur and rr must be signed with the certificate's key, not MAC-protected"
                    .into(),
            });
        }
        let cert = message
            .extra_certs
            .as_ref()
            .and_then(|certs| certs.first())
            .ok_or_else(|| untrusted("the signer's certificate must come first in extraCerts"))?;
        let der = cert.to_der().map_err(ca_cmp::CmpError::from)?;
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(ca_cmp::CmpError::from)?;
        let serial =
            ca_core::serial::Serial::from_bytes(cert.tbs_certificate.serial_number.as_bytes());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let signer = match self.ras.iter().find(|ra| ra.names(&der, &spki)) {
            Some(ra) => {
                let validity = &cert.tbs_certificate.validity;
                let seconds = |t: &x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
                if now < seconds(&validity.not_before) || now > seconds(&validity.not_after) {
                    return Err(untrusted("the RA's certificate is not within its validity"));
                }
                Signer::Ra(ra.name.clone())
            }
            None => {
                let record = serial
                    .map(|serial| self.engine.store().certificate(&serial))
                    .transpose()?
                    .flatten()
                    .filter(|r| r.der == der)
                    .ok_or_else(|| {
                        untrusted("the signer's certificate was not issued by this CA")
                    })?;
                Signer::Subscriber(Box::new(record))
            }
        };
        let key = ca_core::csr::key_from_spki_der(&spki)?;
        let data = incoming.received.protected_part();
        let signature = message
            .protection
            .as_ref()
            .map(|p| p.raw_bytes())
            .unwrap_or_default();
        ca_core::csr::verify_signature(algorithm.oid.as_bytes(), &key, data, signature).map_err(
            |_| Refusal {
                failure: FailureInfo::BadMessageCheck,
                text: "the signature does not verify with the certificate's key".into(),
            },
        )?;
        *protection = Protection::Ca;
        // An RA's certificate this CA issued is revoked like any other.
        if let Some(serial) = serial {
            if self.engine.store().revocation(&serial)?.is_some()
                && (matches!(signer, Signer::Subscriber(_))
                    || self
                        .engine
                        .store()
                        .certificate(&serial)?
                        .is_some_and(|r| r.der == der))
            {
                return Err(Refusal {
                    failure: FailureInfo::CertRevoked,
                    text: "the signer's certificate is revoked".into(),
                });
            }
        }
        if let Signer::Subscriber(record) = &signer {
            if record.not_after < now {
                return Err(untrusted("the signer's certificate has expired"));
            }
        }
        Ok(signer)
    }

    /// The certificate answer for the DER `certificate`; `mac`: the request was MAC-protected.
    fn issued(
        &self,
        kind: Option<CertKind>,
        cert_req_id: i64,
        certificate: &[u8],
        mac: bool,
    ) -> Result<Answer, Refusal> {
        let certificate = Certificate::from_der(certificate).map_err(ca_cmp::CmpError::from)?;
        Ok(Answer::Issued {
            kind,
            cert_req_id,
            certificate: Box::new(certificate),
            // RFC 9483 section 4.1.1: the trust anchor in caPubs only for a MAC-protected
            // request, which has no other way to learn it.
            ca_pubs: if mac {
                self.chain.last().cloned().into_iter().collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Checks a MAC-protected request: its senderKID names an enrollment whose code (derived
    /// with the code key, and checked against the stored hash) keys its MAC. A MAC that does
    /// not verify counts as a wrong code (RFC 9483 section 3.2 has no other way to tell a
    /// wrong secret). Sets `protection` for the answer once the MAC verified.
    async fn mac_sender(
        &self,
        incoming: &Incoming<'_>,
        protection: &mut Protection,
    ) -> Result<MacSender, Refusal> {
        let message = incoming.message;
        let algorithm = message.header.protection_alg.as_ref().ok_or(Refusal {
            failure: FailureInfo::BadMessageCheck,
            text: "the request must be MAC-protected with the enrollment's code".into(),
        })?;
        let pbm = PasswordMac::from_algorithm(algorithm)?;
        let kid = message
            .header
            .sender_kid
            .as_ref()
            .map(|k| k.as_bytes().to_vec())
            .unwrap_or_default();
        let id = enrollment_id(&kid).ok_or(Refusal {
            failure: FailureInfo::NotAuthorized,
            text: "senderKID is not an enrollment id (32 hex digits)".into(),
        })?;
        let record = self
            .engine
            .store()
            .enrollment(&id)?
            .ok_or_else(|| CaError::EnrollmentNotFound(hex::encode(id)))?;
        let code = self.code_key.derive(&id);
        let checks = CodeChecks::counted(self.engine.metrics());
        if !CodeHash::from_bytes(&record.code_hash)?.verify(code.as_str(), &checks) {
            return Err(Refusal {
                failure: FailureInfo::NotAuthorized,
                text: "this enrollment was created while CMP was off: its code cannot key a MAC"
                    .into(),
            });
        }
        let data = incoming.received.protected_part();
        let tag = message
            .protection
            .as_ref()
            .map(|p| p.raw_bytes())
            .unwrap_or_default();
        if !pbm.verify(code.as_str().as_bytes(), data, tag) {
            // Counted like a wrong code in the JSON API: an empty code is never right.
            let refusal = match self.engine.verify_redemption(id, "").await {
                Err(CaError::EnrollmentCodeInvalid { attempts_left }) => Refusal {
                    failure: FailureInfo::BadMessageCheck,
                    text: format!(
                        "the MAC does not verify with the enrollment's code ({attempts_left} attempts left)"
                    ),
                },
                Err(other) => Refusal::from(other),
                Ok(_) => Refusal {
                    failure: FailureInfo::BadMessageCheck,
                    text: "the MAC does not verify with the enrollment's code".into(),
                },
            };
            return Err(refusal);
        }
        *protection = Protection::Mac { pbm, code, kid };
        Ok(MacSender {
            id,
            profile: record.profile,
            serial: record.serial,
        })
    }

    /// The verified redemption of `sender`'s enrollment, which must be of the path's profile
    /// when a profile path was used.
    async fn redemption(
        &self,
        profile: Option<&str>,
        sender: &MacSender,
        protection: &Protection,
    ) -> Result<VerifiedRedemption, Refusal> {
        if let Some(name) = profile {
            if name != sender.profile {
                return Err(Refusal {
                    failure: FailureInfo::WrongAuthority,
                    text: format!(
                        "the enrollment is for profile {:?}, not {name:?}",
                        sender.profile
                    ),
                });
            }
        }
        let Protection::Mac { code, .. } = protection else {
            return Err(Refusal {
                failure: FailureInfo::BadMessageCheck,
                text: "the request must be MAC-protected".into(),
            });
        };
        Ok(self
            .engine
            .verify_redemption(sender.id, code.as_str())
            .await?)
    }

    /// certConf (RFC 9483 section 4.1.1): the certificate confirmed must be the one the
    /// enrollment was redeemed for (by its certHash); a rejection by the subscriber rolls the
    /// redemption back (the certificate revoked, the enrollment pending again).
    async fn confirm(
        &self,
        sender: &MacSender,
        statuses: &[cmpv2::status::CertStatus<'_>],
        hash_alg: Option<&spki::AlgorithmIdentifierOwned>,
    ) -> Result<Answer, Refusal> {
        let serial = sender.serial.ok_or(Refusal {
            failure: FailureInfo::BadRequest,
            text: "the enrollment was not redeemed: nothing to confirm".into(),
        })?;
        let [status] = statuses else {
            return Err(Refusal {
                failure: FailureInfo::BadRequest,
                text: "a certConf must confirm exactly one certificate".into(),
            });
        };
        let record = self
            .engine
            .store()
            .certificate(&serial)?
            .ok_or_else(|| CaError::SerialNotFound(serial.to_hex()))?;
        check_cert_hash(&record.der, status, hash_alg)?;
        if rejected(status) {
            self.engine.undo_redemption(sender.id, serial).await?;
            tracing::info!(enrollment = %hex::encode(sender.id), %serial, "CMP certificate rejected by the subscriber; redemption undone");
        }
        Ok(Answer::Confirmed)
    }

    /// certConf of a kur or of an RA's request (RFC 9483 sections 4.1.1, 4.1.3 and 5): the
    /// certificate the transaction issued is the one `requester` (the signer's transaction
    /// scope) asked for under this transactionID; certHash must be its hash (RFC 9810
    /// section 5.3.18), and a rejection revokes it (cessationOfOperation, audited as
    /// `certificate_revoked`; a renewed certificate stays as it is).
    async fn confirm_transaction(
        &self,
        incoming: &Incoming<'_>,
        requester: &Requester,
        statuses: &[cmpv2::status::CertStatus<'_>],
    ) -> Result<Answer, Refusal> {
        let [status] = statuses else {
            return Err(Refusal {
                failure: FailureInfo::BadRequest,
                text: "a certConf must confirm exactly one certificate".into(),
            });
        };
        let key = IdempotencyKey::new(
            &requester.token_hash,
            &transaction_request_id(incoming.message),
        );
        let entry = self.engine.store().idempotency(&key)?.ok_or(Refusal {
            failure: FailureInfo::BadRequest,
            text: "no certificate was issued to this signer in this transaction".into(),
        })?;
        let record = self
            .engine
            .store()
            .certificate(&entry.serial)?
            .filter(|r| r.requester == requester.name)
            .ok_or_else(|| CaError::SerialNotFound(entry.serial.to_hex()))?;
        check_cert_hash(&record.der, status, incoming.received.hash_alg(0))?;
        if rejected(status) {
            match self
                .engine
                .revoke(
                    record.serial,
                    RevocationReason::CessationOfOperation,
                    None,
                    &requester.name,
                )
                .await
            {
                // A repeated certConf (its pkiConf was lost) is answered again.
                Ok(_) | Err(CaError::AlreadyRevoked { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::warn!(serial = %record.serial, requester = %requester.name, "a CMP certificate was rejected in certConf; revoked");
        }
        Ok(Answer::Confirmed)
    }

    /// The certificate of a certificate request under a transactionID: a retransmission (its
    /// answer was lost) gets the certificate issued first, unless that was revoked since (a
    /// finished transaction: `transactionIdInUse`); the transactionID of another request is
    /// `transactionIdInUse` too.
    fn first_answer(&self, issued: Result<Issued, CaError>) -> Result<Issued, Refusal> {
        let in_use = |text: &str| Refusal {
            failure: FailureInfo::TransactionIdInUse,
            text: text.into(),
        };
        match issued {
            Ok(issued)
                if issued.replayed
                    && self
                        .engine
                        .store()
                        .revocation(&issued.record.serial)?
                        .is_some() =>
            {
                Err(in_use(
                    "this transactionID's certificate was revoked: start a new transaction",
                ))
            }
            Ok(issued) => Ok(issued),
            Err(CaError::IdempotencyConflict(_)) => Err(in_use(
                "this transactionID was used for another request: start a new transaction",
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Whether a CertStatus rejects its certificate.
fn rejected(status: &cmpv2::status::CertStatus<'_>) -> bool {
    status
        .status_info
        .as_ref()
        .is_some_and(|s| s.status == PkiStatus::Rejection)
}

/// Checks a CertStatus's certHash against `certificate` (DER), hashed with its hashAlg
/// (RFC 9810 section 5.3.18): `badCertId` when it is another certificate's.
fn check_cert_hash(
    certificate: &[u8],
    status: &cmpv2::status::CertStatus<'_>,
    hash_alg: Option<&spki::AlgorithmIdentifierOwned>,
) -> Result<(), Refusal> {
    let hash = ca_cmp::cert_hash(certificate, hash_alg)?;
    if hash.as_deref() != Some(status.cert_hash.as_bytes()) {
        return Err(Refusal {
            failure: FailureInfo::BadCertId,
            text: "certHash is not that of the certificate issued in this transaction".into(),
        });
    }
    Ok(())
}

/// The request_id a CMP certificate request is issued under (docs/API.md, "CMP",
/// "Transactions"): `cmp:` and its transactionID in hex, in the signer's scope.
fn transaction_request_id(message: &PkiMessage<'_>) -> String {
    let id = message.header.trans_id.as_ref().map(|t| t.as_bytes());
    format!("cmp:{}", hex::encode(id.unwrap_or_default()))
}

/// The transaction scope (the `token_hash` that scopes request_ids) of a signer: SHA-256 of
/// a label and what names it, so that no JSON API token's hash is one.
fn transaction_scope(label: &[u8], name: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::new()
        .chain_update(label)
        .chain_update([0])
        .chain_update(name)
        .finalize()
        .into()
}

/// The requester of a kur and its certConf: the old certificate's requester, in the scope of
/// the old certificate (only its key signs there).
fn kur_requester(old: &CertRecord) -> Requester {
    Requester {
        name: old.requester.clone(),
        token_hash: transaction_scope(b"cmp-kur", old.serial.as_bytes()),
        protocol: Protocol::Cmp,
    }
}

/// The CA key's signature over an answer (RFC 9483 section 3.2), with the CA certificate's
/// subjectKeyIdentifier as senderKID.
struct CaProtector {
    signer: Arc<dyn keys::Signer>,
    kid: Option<Vec<u8>>,
}

impl Protector for CaProtector {
    fn algorithm(&self) -> spki::AlgorithmIdentifierOwned {
        ca_x509::der_util::signature_algorithm(self.signer.scheme())
    }
    fn sender_kid(&self) -> Option<Vec<u8>> {
        self.kid.clone()
    }
    fn protect(&self, protected_part: &[u8]) -> Result<Vec<u8>, ca_cmp::CmpError> {
        self.signer
            .sign(protected_part)
            .map_err(|e| ca_cmp::CmpError::Encoding(format!("signing the answer: {e}")))
    }
}

/// The requester an RA's requests are issued under: its `[[cmp.ras]]` name, in the scope of
/// that name (only its registered certificates sign there).
fn ra_requester(name: String) -> Requester {
    Requester {
        token_hash: transaction_scope(b"cmp-ra", name.as_bytes()),
        name,
        protocol: Protocol::Cmp,
    }
}

/// The revocation reason of an rr: its crlEntryDetails' reasonCode (RFC 5280 section
/// 5.3.1), unspecified when absent; only the reasons a subscriber may give.
fn revocation_reason(message: &PkiMessage<'_>) -> Result<RevocationReason, Refusal> {
    use x509_cert::ext::pkix::CrlReason;
    let refused = || Refusal {
        failure: FailureInfo::BadRequest,
        text: "a subscriber may give the reasons unspecified (0), keyCompromise (1), \
               affiliationChanged (3), superseded (4) and cessationOfOperation (5)"
            .into(),
    };
    let cmpv2::body::PkiBody::Rr(details) = &message.body else {
        return Ok(RevocationReason::Unspecified);
    };
    let reason_code = details
        .iter()
        .flat_map(|d| d.crl_entry_details.iter().flatten())
        .find(|e| e.extn_id == ca_x509::oid::ID_CE_CRL_REASONS);
    let Some(extension) = reason_code else {
        return Ok(RevocationReason::Unspecified);
    };
    let reason = CrlReason::from_der(extension.extn_value.as_bytes()).map_err(|_| refused())?;
    RevocationReason::from_code(reason as u8)
        .filter(|r| crate::acme::cert::SUBSCRIBER_REASONS.contains(r))
        .ok_or_else(refused)
}

/// The enrollment id a senderKID names: 32 hex digits (as the JSON API shows the id, and as
/// `openssl cmp -ref` sends it) or the 16 bytes themselves.
fn enrollment_id(kid: &[u8]) -> Option<[u8; 16]> {
    if let Ok(id) = <[u8; 16]>::try_from(kid) {
        return Some(id);
    }
    let mut id = [0u8; 16];
    hex::decode_to_slice(kid, &mut id).ok()?;
    Some(id)
}

/// The value of a small INTEGER (a certReqId).
fn int_value(value: &der::asn1::Int) -> Result<i64, Refusal> {
    value
        .to_der()
        .ok()
        .and_then(|der| i64::from_der(&der).ok())
        .ok_or(Refusal {
            failure: FailureInfo::BadDataFormat,
            text: "certReqId out of range".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_ids_are_hex_or_raw() {
        let id = [0xab; 16];
        assert_eq!(enrollment_id(hex::encode(id).as_bytes()), Some(id));
        assert_eq!(enrollment_id(&id), Some(id));
        assert_eq!(enrollment_id(b"not an id"), None);
    }

    #[test]
    fn cert_req_ids_read_signed() {
        let int = |n: i64| der::asn1::Int::from_der(&n.to_der().unwrap()).unwrap();
        assert_eq!(int_value(&int(0)).ok(), Some(0));
        assert_eq!(int_value(&int(-1)).ok(), Some(-1));
        assert_eq!(int_value(&int(300)).ok(), Some(300));
    }
}
