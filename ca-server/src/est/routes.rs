//! The EST operations (RFC 7030 section 4), at `/.well-known/est/{op}` (the default
//! profile) and `/.well-known/est/{profile}/{op}`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use ca_core::audit::Protocol;
use ca_core::csr::{self, VerifiedCsr};
use ca_core::engine::{
    IssueRequest, Issued, KeyRequest, NewKey, RedeemKey, RenewRequest, Requester,
    VerifiedRedemption,
};
use ca_core::est::{self as body, BasicCredentials, KeyEncryption};
use ca_core::server_key::{self, RecipientError};
use ca_core::{name, CaError};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use super::auth::{self, Enroller};
use super::{EstError, EstFront, PREFIX};
use crate::api::enrollments::{generate, generated_key_type, undo};
use crate::api::AppState;
use crate::auth::Caller;
use crate::limits::Identity;
use crate::listener::Peer;

/// The media type of a certs-only answer (RFC 7030 section 4.1.3 and 4.2.3).
const CERTS_ONLY: &str = "application/pkcs7-mime; smime-type=certs-only";
/// The media type of a CSR attributes answer (RFC 7030 section 4.5.2).
const CSRATTRS: &str = "application/csrattrs";
/// The media type of a request body (RFC 7030 section 4.2.1).
const PKCS10: &str = "application/pkcs10";
/// Set to `true` on an enrolment answer whose certificate's subject or SANs are not what the
/// CSR asked for: an enrolment's names (or a renewed certificate's) win over the CSR's.
pub const SUBJECT_REPLACED: HeaderName = HeaderName::from_static("x-est-subject-replaced");

/// The EST routes: each operation at the default profile and under a profile label.
pub(super) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/{profile}/cacerts", get(cacerts))
        .route("/.well-known/est/csrattrs", get(csrattrs))
        .route("/.well-known/est/{profile}/csrattrs", get(csrattrs))
        .route("/.well-known/est/simpleenroll", post(simpleenroll))
        .route(
            "/.well-known/est/{profile}/simpleenroll",
            post(simpleenroll),
        )
        .route("/.well-known/est/simplereenroll", post(simplereenroll))
        .route(
            "/.well-known/est/{profile}/simplereenroll",
            post(simplereenroll),
        )
        .route("/.well-known/est/serverkeygen", post(serverkeygen))
        .route(
            "/.well-known/est/{profile}/serverkeygen",
            post(serverkeygen),
        )
}

/// The profile label of the path, if any.
type Label = Result<Path<HashMap<String, String>>, PathRejection>;

fn label(path: &Label) -> Option<&str> {
    path.as_ref()
        .ok()
        .and_then(|Path(p)| p.get("profile"))
        .map(String::as_str)
}

/// Runs an operation and counts its outcome in `ca_est_requests_total`.
async fn answer(
    state: &AppState,
    operation: &'static str,
    run: impl Future<Output = Result<Response, EstError>>,
) -> Response {
    let response = match state.est.as_deref() {
        Some(_) => run.await.unwrap_or_else(IntoResponse::into_response),
        None => EstError::new(StatusCode::NOT_FOUND, "EST is not enabled").into_response(),
    };
    if let Some(front) = state.est.as_deref() {
        let outcome = if response.status().is_success() {
            "ok".to_string()
        } else {
            response.status().as_u16().to_string()
        };
        front
            .metrics
            .requests
            .with_label_values(&[operation, &outcome])
            .inc();
    }
    response
}

fn front(state: &AppState) -> Result<&EstFront, EstError> {
    state
        .est
        .as_deref()
        .ok_or_else(|| EstError::new(StatusCode::NOT_FOUND, "EST is not enabled"))
}

/// A base64 body as an EST answer of `content_type`.
fn base64_answer(content_type: &'static str, der: &[u8]) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (
                HeaderName::from_static("content-transfer-encoding"),
                "base64",
            ),
        ],
        body::encode_base64_body(der),
    )
        .into_response()
}

/// `GET cacerts` (RFC 7030 section 4.1): this CA's chain, issuing CA first, as certs-only.
async fn cacerts(State(state): State<Arc<AppState>>, path: Label) -> Response {
    answer(&state, "cacerts", async {
        let front = front(&state)?;
        front.profile(label(&path))?;
        let chain = body::certs_only(front.engine.ca().chain())?;
        Ok(base64_answer(CERTS_ONLY, &chain))
    })
    .await
}

/// `GET csrattrs` (RFC 7030 section 4.5): the key algorithms the profile allows, or 204.
async fn csrattrs(State(state): State<Arc<AppState>>, path: Label) -> Response {
    answer(&state, "csrattrs", async {
        let front = front(&state)?;
        let profile = front.profile(label(&path))?;
        let key_types = &front.engine.ca().profile(&profile)?.key_types;
        Ok(match body::csr_attrs(key_types)? {
            Some(der) => base64_answer(CSRATTRS, &der),
            None => StatusCode::NO_CONTENT.into_response(),
        })
    })
    .await
}

/// The request's DER PKCS#10 body (RFC 7030 section 4.2.1, RFC 8951 section 3.1): 415 for
/// another media type, 413 beyond the route's limit, 400 for anything but base64 of one
/// request.
fn pkcs10_body(
    headers: &HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Vec<u8>, EstError> {
    let is_pkcs10 = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(PKCS10));
    if !is_pkcs10 {
        return Err(EstError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request as Content-Type: application/pkcs10 (base64 DER)",
        ));
    }
    let bytes = bytes.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            EstError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body exceeds the configured limit",
            )
        } else {
            EstError::bad_request("unreadable request body")
        }
    })?;
    Ok(body::decode_pkcs10_body(&bytes)?)
}

/// A certs-only answer with the issued certificate, flagged when its names are not the CSR's.
fn certificate_answer(issued: &Issued, replaced: bool) -> Result<Response, EstError> {
    let der = body::certs_only(std::slice::from_ref(&issued.record.der))?;
    Ok(flag_replaced(base64_answer(CERTS_ONLY, &der), replaced))
}

/// Adds `X-EST-Subject-Replaced: true` to an enrolment answer whose certificate does not have
/// the names the CSR asked for.
fn flag_replaced(mut response: Response, replaced: bool) -> Response {
    if replaced {
        response
            .headers_mut()
            .insert(SUBJECT_REPLACED, HeaderValue::from_static("true"));
    }
    response
}

/// Whether a CSR asks for other names than `subject` (RFC 4514) and `sans` (the API's form).
fn names_differ(csr: &VerifiedCsr, subject: &str, sans: &[String]) -> bool {
    let mut asked: Vec<String> = csr.sans.iter().map(csr::San::value).collect();
    let mut given = sans.to_vec();
    asked.sort();
    given.sort();
    name::to_rfc4514(&csr.subject) != subject || asked != given
}

/// Verifies a subscriber's Basic credentials (the enrolment's id and code) through the
/// engine, which counts a wrong code and locks the enrolment at its limit; an unknown id and
/// a wrong code are both 401. The enrolment must be for the path's `profile`.
async fn verify(
    front: &EstFront,
    id: Option<[u8; 16]>,
    credentials: &BasicCredentials,
    profile: &str,
) -> Result<VerifiedRedemption, EstError> {
    let wrong = || EstError::unauthorized("the enrolment id or its code is wrong");
    let id = id.ok_or_else(wrong)?;
    let verified = match front
        .engine
        .verify_redemption(id, &credentials.password)
        .await
    {
        Ok(v) => v,
        Err(CaError::EnrollmentNotFound(_)) => return Err(wrong()),
        Err(e @ CaError::EnrollmentCodeInvalid { .. }) => {
            return Err(EstError::unauthorized(e.to_string()))
        }
        Err(e) => return Err(e.into()),
    };
    if verified.record().profile != profile {
        return Err(EstError::new(
            StatusCode::FORBIDDEN,
            format!(
                "the enrolment is for profile {0}: enrol at {PREFIX}/{0}/",
                verified.record().profile
            ),
        ));
    }
    Ok(verified)
}

/// `POST simpleenroll` (RFC 7030 section 4.2.1): a subscriber redeems its enrolment (the
/// enrolment's names win), or an RA has the CSR issued as `POST /v1/certificates` would.
async fn simpleenroll(
    State(state): State<Arc<AppState>>,
    path: Label,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, "simpleenroll", async {
        let started = Instant::now();
        let front = front(&state)?;
        let profile = front.profile(label(&path))?;
        let enroller = auth::enroller(&headers, identity.as_deref())?;
        let der = pkcs10_body(&headers, bytes)?;
        let (issued, replaced) = match enroller {
            Enroller::Subscriber { id, credentials } => {
                // The request is checked before the code is, so that a bad CSR does not cost
                // the subscriber an attempt.
                let csr = csr::parse_and_verify(&der)?;
                let verified = verify(front, id, &credentials, &profile).await?;
                let record = verified.record();
                let replaced = names_differ(&csr, &record.subject, &record.sans);
                let issued = front
                    .engine
                    .redeem_verified(verified, RedeemKey::Csr(der), Protocol::Est)
                    .await?;
                (issued, replaced)
            }
            Enroller::Ra(caller) => {
                let issued = front
                    .engine
                    .issue(IssueRequest {
                        csr: der,
                        profile,
                        identity: Default::default(),
                        validity_days: None,
                        request_id: None,
                        requester: ra_requester(&caller),
                    })
                    .await?;
                (issued, false)
            }
        };
        let record = &issued.record;
        state
            .log
            .issued(record, &record.requester, false, started.elapsed());
        certificate_answer(&issued, replaced)
    })
    .await
}

/// `POST simplereenroll` (RFC 7030 section 4.2.2): the TLS client certificate, one this CA
/// issued ([`auth::own_certificate`]), is renewed by the engine: the same key when the CSR's
/// key is the certificate's, a new one otherwise; its subject, SANs and requester stay.
async fn simplereenroll(
    State(state): State<Arc<AppState>>,
    path: Label,
    headers: HeaderMap,
    peer: Option<Extension<Peer>>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, "simplereenroll", async {
        let started = Instant::now();
        let front = front(&state)?;
        let profile = front.profile(label(&path))?;
        let presented = peer
            .as_ref()
            .and_then(|p| p.tls_certificate.clone())
            .ok_or_else(|| {
                EstError::unauthorized(
                    "simplereenroll needs the certificate being renewed as the TLS client \
                     certificate",
                )
            })?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let engine = &front.engine;
        let old = auth::own_certificate(
            engine.store().as_ref(),
            engine.ca().certificate(),
            &presented,
            now,
        )?;
        if old.profile != profile {
            return Err(EstError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the certificate is of profile {0}: re-enrol at {PREFIX}/{0}/",
                    old.profile
                ),
            ));
        }
        let der = pkcs10_body(&headers, bytes)?;
        let csr = csr::parse_and_verify(&der)?;
        let (_, cert) = X509Certificate::from_der(&old.der)
            .map_err(|e| CaError::Storage(format!("a stored certificate does not parse: {e}")))?;
        let old_key = csr::key_from_spki_der(cert.public_key().raw)?;
        let (subject, _) = ca_core::inspect::subject_and_issuer(&old.der)?;
        let replaced = name::to_rfc4514(&csr.subject) != subject;
        let issued = engine
            .renew(RenewRequest {
                serial: old.serial,
                key: if csr.key == old_key {
                    NewKey::Keep
                } else {
                    NewKey::VerifiedCsr {
                        csr: der,
                        verified: Box::new(csr),
                    }
                },
                validity_days: None,
                request_id: None,
                requester: Requester {
                    name: old.requester.clone(),
                    token_hash: [0; 32],
                    protocol: Protocol::Est,
                },
            })
            .await?;
        state
            .log
            .issued(&issued.record, &old.requester, false, started.elapsed());
        certificate_answer(&issued, replaced)
    })
    .await
}

/// `POST serverkeygen` (RFC 7030 section 4.4): the CA generates a key of the CSR's key type
/// (on the bounded key-generation pool) and certifies it, for a subscriber redeeming its
/// enrolment (the enrolment's names win) or for an RA (the CSR's subject and SANs under the
/// path's profile, as `simpleenroll` issues them, through [`Engine::issue_for_key`]). The CSR
/// must be signed, but its key is not certified (section 4.4.1). The answer is
/// `multipart/mixed` with the key and the certificate (section 4.4.2): the key as PKCS#8
/// protected by TLS alone, or, when the CSR carries an `AsymmetricDecryptKeyIdentifier`
/// (section 4.4.1.2), as a CMS SignedData over an EnvelopedData to that key
/// ([`encryption_recipient`]); a `DecryptKeyIdentifier` (section 4.4.1.1) is refused 501.
///
/// [`Engine::issue_for_key`]: ca_core::engine::Engine::issue_for_key
async fn serverkeygen(
    State(state): State<Arc<AppState>>,
    path: Label,
    headers: HeaderMap,
    identity: Option<Extension<Identity>>,
    peer: Option<Extension<Peer>>,
    bytes: Result<Bytes, BytesRejection>,
) -> Response {
    answer(&state, "serverkeygen", async {
        let started = Instant::now();
        let front = front(&state)?;
        let profile = front.profile(label(&path))?;
        let enroller = auth::enroller(&headers, identity.as_deref())?;
        let der = pkcs10_body(&headers, bytes)?;
        let recipient = match body::key_encryption(&der)? {
            KeyEncryption::None => None,
            KeyEncryption::Symmetric => {
                return Err(EstError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    "a DecryptKeyIdentifier (a symmetric key shared with the server) is not \
                     supported: this server shares no symmetric key with its clients; ask with \
                     an AsymmetricDecryptKeyIdentifier, or for the key protected by TLS alone",
                ))
            }
            KeyEncryption::Asymmetric(identifier) => {
                Some(encryption_recipient(peer.as_deref(), &identifier)?)
            }
        };
        let csr = csr::parse_and_verify(&der)?;
        let (key_type, kind) = generated_key_type(&csr.key.key_type.name())?;
        let (holder, replaced) = match enroller {
            Enroller::Subscriber { id, credentials } => {
                let verified = verify(front, id, &credentials, &profile).await?;
                front.engine.check_key_type(&verified, key_type)?;
                let record = verified.record();
                let replaced = names_differ(&csr, &record.subject, &record.sans);
                (KeyHolder::Enrolment(verified), replaced)
            }
            Enroller::Ra(caller) => {
                front.engine.check_profile_key_type(&profile, key_type)?;
                (KeyHolder::Ra(caller), false)
            }
        };
        // The CA key signs the encrypted key's CMS message, with the chain in it.
        let sealing = recipient.map(|recipient| {
            let ca = front.engine.ca();
            (recipient, Arc::clone(ca.signer()), ca.chain().to_vec())
        });
        let slot = state.key_generation.slot().await?;
        let (slot, generated) = tokio::task::spawn_blocking(move || {
            let generated = generate(kind).and_then(|(pkcs8, key)| {
                let part = match &sealing {
                    None => KeyPart::Pkcs8(pkcs8),
                    Some((recipient, signer, chain)) => {
                        KeyPart::Encrypted(server_key::server_generated_key(
                            &pkcs8,
                            recipient,
                            signer.as_ref(),
                            chain,
                        )?)
                    }
                };
                Ok((part, key))
            });
            (slot, generated)
        })
        .await
        .map_err(|e| CaError::Crypto(format!("key generation task failed: {e}")))?;
        drop(slot);
        let (part, key) = generated?;
        let (issued, certs) = match holder {
            KeyHolder::Enrolment(verified) => {
                let enrolment = *verified.id();
                let issued = front
                    .engine
                    .redeem_verified(verified, RedeemKey::Generated(key), Protocol::Est)
                    .await?;
                match body::certs_only(std::slice::from_ref(&issued.record.der)) {
                    Ok(certs) => (issued, certs),
                    Err(e) => return Err(undo(&state, &enrolment, &issued, e).await.into()),
                }
            }
            KeyHolder::Ra(caller) => {
                let issued = front
                    .engine
                    .issue_for_key(KeyRequest {
                        key,
                        profile,
                        identity: ca_core::profile::Identity {
                            subject: csr.subject,
                            sans: csr.sans,
                        },
                        validity_days: None,
                        request_id: None,
                        requester: ra_requester(&caller),
                    })
                    .await?;
                let certs = body::certs_only(std::slice::from_ref(&issued.record.der))?;
                (issued, certs)
            }
        };
        let multipart = match &part {
            KeyPart::Pkcs8(pkcs8) => body::serverkeygen_multipart(body::PKCS8, pkcs8, &certs),
            KeyPart::Encrypted(cms) => {
                body::serverkeygen_multipart(body::SERVER_GENERATED_KEY, cms, &certs)
            }
        };
        let record = &issued.record;
        state
            .log
            .issued(record, &record.requester, false, started.elapsed());
        let content_type = format!("multipart/mixed; boundary={}", body::MULTIPART_BOUNDARY);
        let response = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, content_type)],
            multipart.to_vec(),
        )
            .into_response();
        Ok(flag_replaced(response, replaced))
    })
    .await
}

/// Whom a `serverkeygen` key is certified for: the subscriber of a verified enrolment, or an
/// RA asking with a CSR's names.
enum KeyHolder {
    Enrolment(VerifiedRedemption),
    Ra(Caller),
}

/// The key part of a `serverkeygen` answer (RFC 7030 section 4.4.2).
enum KeyPart {
    /// PKCS#8 DER, protected by TLS alone; wiped on drop.
    Pkcs8(Zeroizing<Vec<u8>>),
    /// The server-generated-key CMS message ([`server_key::server_generated_key`]).
    Encrypted(Vec<u8>),
}

/// The key an `AsymmetricDecryptKeyIdentifier` (RFC 7030 section 4.4.1.2) may name: the key
/// of the TLS client certificate of the connection, whose private key the handshake proved
/// the requester holds, so that only the requester (the device, or the RA that forwards the
/// key) can decrypt it. Its subjectKeyIdentifier must be the identifier; any other identifier
/// is 400, an EC or Ed25519 key 501 (only RSA key transport is implemented).
fn encryption_recipient(
    peer: Option<&Peer>,
    identifier: &[u8],
) -> Result<server_key::Recipient, EstError> {
    let certificate = peer
        .and_then(|p| p.tls_certificate.as_deref())
        .ok_or_else(|| {
            EstError::bad_request(
                "an AsymmetricDecryptKeyIdentifier must name the key of the TLS client \
                 certificate, and the connection has none",
            )
        })?;
    server_key::Recipient::from_certificate(certificate, identifier, "the TLS client certificate")
        .map_err(|e| match e {
            RecipientError::Unsupported(_) => {
                EstError::new(StatusCode::NOT_IMPLEMENTED, e.to_string())
            }
            RecipientError::UnknownIdentifier(_) | RecipientError::Certificate(_) => {
                EstError::bad_request(e.to_string())
            }
        })
}

/// The requester of what an RA asks for over EST: the RA by name and token hash.
fn ra_requester(caller: &Caller) -> Requester {
    Requester {
        name: caller.name.clone(),
        token_hash: caller.token_hash,
        protocol: Protocol::Est,
    }
}
