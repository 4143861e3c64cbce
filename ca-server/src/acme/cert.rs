//! Certificates: download (RFC 8555 section 7.4.2), revocation (section 7.6) and renewal
//! information (RFC 9773).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use ca_acme::messages::RevokeCert;
use ca_acme::{AccountKey, Problem, ProblemType};
use ca_core::revocation::RevocationReason;
use ca_core::Serial;
use serde_json::json;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::records::{self, Id, OrderRecord};
use super::{
    front, now, post_with, respond, rfc3339, AcmeFront, Answer, Body, KeyForm, Refusal,
    RequestHost, Requester, Urls,
};
use crate::api::AppState;

/// How long a client should wait before asking for renewal information again (RFC 9773
/// section 4.3), in seconds.
const ARI_RETRY_AFTER: u64 = 6 * 3600;

/// The reasons a subscriber may give (RFC 8555 section 7.6 leaves it to the server; these
/// are the Baseline Requirements' subscriber reasons, section 4.9.1.1).
pub(crate) const SUBSCRIBER_REASONS: [RevocationReason; 5] = [
    RevocationReason::Unspecified,
    RevocationReason::KeyCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::CessationOfOperation,
];

fn not_found(what: &str) -> Refusal {
    let mut refusal = Refusal::from(Problem::malformed(format!("no such {what}")));
    refusal.status = Some(StatusCode::NOT_FOUND);
    refusal
}

/// The order a certificate was issued for, if it was issued through ACME.
fn order_of(front: &AcmeFront, serial: &Serial) -> Result<Option<OrderRecord>, Refusal> {
    let Some(holder) = front
        .engine
        .acme_claim_holder(&records::certificate_key(&serial.to_hex()))?
    else {
        return Ok(None);
    };
    let Ok(order_id) = Id::try_from(holder.as_slice()) else {
        return Ok(None);
    };
    Ok(records::load::<OrderRecord>(&front.engine, &order_id)?.map(|o| o.record))
}

/// Whether the requester's account ordered the certificate.
fn ordered_by(front: &AcmeFront, requester: &Requester, serial: &Serial) -> Result<bool, Refusal> {
    let (account, _) = requester.account()?;
    Ok(order_of(front, serial)?.is_some_and(|order| order.account == *account))
}

/// `POST /acme/cert/{serial}` (POST-as-GET): the certificate and the CA chain, PEM.
pub async fn certificate(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path(serial_hex): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/cert/{serial_hex}");
    post_with(
        &state,
        &host,
        &path,
        "certificate",
        KeyForm::Kid,
        body,
        |front, _urls, requester| async move {
            let serial = Serial::from_hex(&serial_hex).ok_or_else(|| not_found("certificate"))?;
            if !ordered_by(&front, &requester, &serial)? {
                return Err(not_found("certificate of this account"));
            }
            let record = front
                .engine
                .store()
                .certificate(&serial)?
                .ok_or_else(|| not_found("certificate"))?;
            let leaf = pem::encode(&pem::Pem::new("CERTIFICATE", record.der));
            Ok(Answer {
                status: StatusCode::OK,
                headers: Vec::new(),
                body: Body::Pem(format!("{leaf}{}", front.chain_pem)),
            })
        },
    )
    .await
}

/// The certificate's public key as an account key, for `revokeCert` signed with it: EC
/// P-256/P-384, RSA and Ed25519 keys as a JWK (RFC 7518 section 6, RFC 8037).
fn certificate_key(cert: &X509Certificate<'_>) -> Option<AccountKey> {
    let spki = cert.public_key();
    let jwk = match spki.parsed().ok()? {
        PublicKey::EC(point) => {
            let data = point.data();
            let (crv, size) = match data.len() {
                65 => ("P-256", 32),
                97 => ("P-384", 48),
                _ => return None,
            };
            if data.first() != Some(&4) {
                return None;
            }
            json!({"kty": "EC", "crv": crv, "x": ca_acme::b64url(&data[1..1 + size]), "y": ca_acme::b64url(&data[1 + size..])})
        }
        PublicKey::RSA(rsa) => {
            let strip = |b: &[u8]| {
                let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
                ca_acme::b64url(&b[start..])
            };
            json!({"kty": "RSA", "n": strip(rsa.modulus), "e": strip(rsa.exponent)})
        }
        PublicKey::Unknown(raw) if spki.algorithm.algorithm.to_id_string() == "1.3.101.112" => {
            json!({"kty": "OKP", "crv": "Ed25519", "x": ca_acme::b64url(raw)})
        }
        _ => return None,
    };
    AccountKey::from_jwk(&jwk).ok()
}

/// `POST /acme/revoke-cert` (RFC 8555 section 7.6): signed by the account that ordered the
/// certificate (`kid`) or by the certificate's own key (`jwk`).
pub async fn revoke(state: State<Arc<AppState>>, host: RequestHost, body: Bytes) -> Response {
    post_with(
        &state,
        &host,
        "/revoke-cert",
        "revoke-cert",
        KeyForm::Either,
        body,
        |front, _urls, requester| async move {
            let request = RevokeCert::parse(requester.jws.payload())?;
            let (_, cert) = X509Certificate::from_der(&request.certificate)
                .map_err(|_| Problem::malformed("the certificate does not parse"))?;
            let serial = Serial::from_bytes(cert.raw_serial())
                .ok_or_else(|| not_found("certificate issued by this CA"))?;
            let record = front
                .engine
                .store()
                .certificate(&serial)?
                .ok_or_else(|| not_found("certificate issued by this CA"))?;
            if record.der != request.certificate {
                return Err(not_found("certificate issued by this CA"));
            }
            let actor = match &requester.account {
                Some((_, account)) => {
                    if !ordered_by(&front, &requester, &serial)? {
                        return Err(Problem::new(
                            ProblemType::Unauthorized,
                            "this account did not order the certificate",
                        )
                        .into());
                    }
                    account.record.requester.clone()
                }
                None => {
                    let matches =
                        certificate_key(&cert).is_some_and(|key| &key == requester.jws.key());
                    if !matches {
                        return Err(Problem::new(
                        ProblemType::Unauthorized,
                        "the request is signed neither by an account nor by the certificate's key",
                    )
                    .into());
                    }
                    record.requester.clone()
                }
            };
            let reason = match request.reason {
                None => RevocationReason::Unspecified,
                Some(code) => RevocationReason::from_code(code)
                    .filter(|r| SUBSCRIBER_REASONS.contains(r))
                    .ok_or_else(|| {
                        Problem::new(
                        ProblemType::BadRevocationReason,
                        "a subscriber may give the reasons unspecified (0), keyCompromise (1), \
                         affiliationChanged (3), superseded (4) and cessationOfOperation (5)",
                    )
                    })?,
            };
            front.engine.revoke(serial, reason, None, &actor).await?;
            Ok(Answer {
                status: StatusCode::OK,
                headers: Vec::new(),
                body: Body::Empty,
            })
        },
    )
    .await
}

/// The serial an ARI CertID (RFC 9773 section 4.1: base64url(authorityKeyIdentifier) `.`
/// base64url(serial)) names; `None` for a serial this CA never writes. The serial alone
/// names a certificate of this CA.
pub(super) fn cert_id_serial(cert_id: &str) -> Result<Option<Serial>, Refusal> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (_aki, serial) = cert_id
        .split_once('.')
        .ok_or_else(|| Problem::malformed("the CertID is not keyIdentifier.serial"))?;
    let serial = b64
        .decode(serial)
        .map_err(|_| Problem::malformed("the CertID's serial is not base64url"))?;
    Ok(Serial::from_bytes(&serial))
}

/// `GET /acme/renewal-info/{certID}` (RFC 9773 section 4): when to renew. The CertID is
/// base64url(authorityKeyIdentifier) `.` base64url(serial). A certificate's window is the
/// last third of its validity but its final sixth; a revoked one's lies in the past, so that
/// clients renew at once.
pub async fn renewal_info(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path(cert_id): Path<String>,
) -> Response {
    let Some(front) = front(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let urls = Urls::new(front.base(&host));
    let result = (|| {
        let serial = cert_id_serial(&cert_id)?.ok_or_else(|| not_found("certificate"))?;
        let record = front
            .engine
            .store()
            .certificate(&serial)?
            .ok_or_else(|| not_found("certificate"))?;
        let revoked = front.engine.store().revocation(&serial)?.is_some();
        let life = record.not_after - record.not_before;
        let (start, end) = if revoked {
            let at = now();
            (at - 86_400, at - 3_600)
        } else {
            (
                record.not_before + life * 2 / 3,
                record.not_before + life * 5 / 6,
            )
        };
        Ok::<_, Refusal>(
            Answer::json(
                StatusCode::OK,
                json!({"suggestedWindow": {"start": rfc3339(start), "end": rfc3339(end)}}),
            )
            .with(header::RETRY_AFTER, ARI_RETRY_AFTER.to_string()),
        )
    })();
    respond(front, &urls, "renewal-info", result)
}
