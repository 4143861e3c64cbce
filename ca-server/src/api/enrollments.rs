//! Enrolment with one-time codes (API contract: Enrolment): an RA approves a subject after
//! checking who the applicant is; the subscriber redeems the code later, with a CSR or for a
//! key the CA generates and delivers in a password-protected PKCS#12 file.

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use ca_core::engine::{EnrollmentRequest, Issued, RedeemKey};
use ca_core::store::EnrollmentRecord;
use ca_core::{csr, pkcs12, CaError};
use keys::{KeyAlgorithm, Signer, SoftwareKey};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::certificates::{issued_view, path_serial, requester, rfc3339};
use super::{body_or_error, parse_json, ApiError, AppState, Authenticated};
use crate::auth::Role;

/// Limits of enrolments.
#[derive(Clone, Copy, Debug)]
pub struct EnrollmentLimits {
    /// Shortest PKCS#12 password accepted (422 below).
    pub min_password_length: usize,
    /// Longest code lifetime an RA may ask for, in hours.
    pub max_lifetime_hours: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    pub(super) profile: String,
    pub(super) subject: String,
    #[serde(default)]
    pub(super) sans: Vec<String>,
    pub(super) expires_in_hours: f64,
    pub(super) max_attempts: u32,
    pub(super) validity_days: Option<u32>,
}

/// The creation body's own limits: the code's lifetime in seconds (fractions of an hour are
/// allowed, at least a second, at most `max_hours`) and 1 to 100 attempts.
pub(super) fn check_create(body: &CreateBody, max_hours: u32) -> Result<i64, ApiError> {
    let lifetime_secs = (body.expires_in_hours * 3600.0).round();
    if !(1.0..=f64::from(max_hours) * 3600.0).contains(&lifetime_secs) {
        return Err(ApiError::invalid_request(format!(
            "expires_in_hours must be more than 0 and at most {max_hours}"
        )));
    }
    if body.max_attempts == 0 || body.max_attempts > 100 {
        return Err(ApiError::invalid_request(
            "max_attempts must be between 1 and 100",
        ));
    }
    Ok(lifetime_secs as i64)
}

/// `POST /v1/enrollments` (ra) → `201 {"id", "code", "expires_at"}`; the code is shown only
/// here.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: CreateBody = parse_json(&body_or_error(body)?)?;
    let lifetime_secs = check_create(&body, state.enrollment.max_lifetime_hours)?;
    let engine = state.engine.clone();
    let request = EnrollmentRequest {
        profile: body.profile,
        subject: body.subject,
        sans: body.sans,
        validity_days: body.validity_days,
        lifetime_secs,
        max_attempts: body.max_attempts,
        requester: requester(&caller),
    };
    let created = engine.create_enrollment(request).await?;
    let id = hex::encode(created.id);
    tracing::info!(enrollment = %id, actor = %caller.name, "enrolment created");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id,
            "code": created.code.as_str(),
            "expires_at": rfc3339(created.record.expires_at)?,
        })),
    )
        .into_response())
}

fn enrollment_id(id: Result<Path<String>, PathRejection>) -> Result<[u8; 16], ApiError> {
    let id = path_serial(id);
    hex::decode(&id)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| CaError::EnrollmentNotFound(id.chars().take(64).collect()).into())
}

fn enrollment_json(id: &[u8; 16], r: &EnrollmentRecord) -> Result<Value, ApiError> {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    Ok(json!({
        "id": hex::encode(id),
        "state": r.state(now).as_str(),
        "profile": r.profile,
        "subject": r.subject,
        "sans": r.sans,
        "created_at": rfc3339(r.created_at)?,
        "expires_at": rfc3339(r.expires_at)?,
        "attempts_left": r.max_attempts.saturating_sub(r.failed_attempts),
        "serial": r.serial.map(hex::encode),
    }))
}

/// `GET /v1/enrollments/{id}` (ra, its own): state `pending`, `redeemed` (with the serial),
/// `locked` or `expired`.
pub async fn get(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = enrollment_id(id)?;
    let record = state
        .engine
        .store()
        .enrollment(&id)?
        .filter(|r| caller.role == Role::Auditor || r.requester == caller.name)
        .ok_or_else(|| CaError::EnrollmentNotFound(hex::encode(id)))?;
    Ok(Json(enrollment_json(&id, &record)?))
}

/// The redemption body: a code with either a CSR, or a key type and a PKCS#12 password.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RedeemBody {
    pub(super) code: Zeroizing<String>,
    pub(super) csr: Option<String>,
    pub(super) key_type: Option<String>,
    pub(super) pkcs12_password: Option<Zeroizing<String>>,
}

/// Key types the CA generates for subscribers.
#[derive(Clone, Copy, Debug)]
enum Generated {
    /// An EC or Ed25519 key from `ring`, or an RSA key of a CA size.
    Key(KeyAlgorithm),
    /// A 2048-bit RSA key (a subscriber size, never a CA key).
    Rsa2048,
}

fn generated_key_type(name: &str) -> Result<Generated, ApiError> {
    match name {
        "ec-p256" => Ok(Generated::Key(KeyAlgorithm::EcdsaP256)),
        "ec-p384" => Ok(Generated::Key(KeyAlgorithm::EcdsaP384)),
        "ed25519" => Ok(Generated::Key(KeyAlgorithm::Ed25519)),
        "rsa-2048" => Ok(Generated::Rsa2048),
        "rsa-3072" => Ok(Generated::Key(KeyAlgorithm::Rsa3072)),
        "rsa-4096" => Ok(Generated::Key(KeyAlgorithm::Rsa4096)),
        other => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "key_type_not_allowed",
            format!(
                "the CA generates ec-p256, ec-p384, ed25519, rsa-2048, rsa-3072 and rsa-4096 \
                 keys, not {:?}",
                other.chars().take(32).collect::<String>()
            ),
        )),
    }
}

/// `POST /v1/enrollments/{id}/redeem` (public, protected by the code): with `csr`, the
/// certificate as issuance answers it; with `key_type` and `pkcs12_password`, `{"serial",
/// "pkcs12"}` (base64 PFX with the new key, the certificate and the chain). The generated key
/// exists only in memory that is wiped once the PFX is built.
pub async fn redeem(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = enrollment_id(id)?;
    let body: RedeemBody = parse_json(&body_or_error(body)?)?;
    match (body.csr, body.key_type, body.pkcs12_password) {
        (Some(csr), None, None) => {
            let key = RedeemKey::Csr(csr.into_bytes());
            let issued = state.engine.redeem(id, &body.code, key).await?;
            log_redeemed(&id, &issued);
            Ok((StatusCode::CREATED, Json(issued_view(&state, &issued)?)).into_response())
        }
        (None, Some(key_type), Some(password)) => {
            let min = state.enrollment.min_password_length;
            if password.chars().count() < min {
                return Err(CaError::PasswordTooShort(min).into());
            }
            let kind = generated_key_type(&key_type)?;
            let (pkcs8, key) = tokio::task::spawn_blocking(move || generate(kind))
                .await
                .map_err(|e| CaError::Crypto(format!("key generation task failed: {e}")))??;
            let issued = state
                .engine
                .redeem(id, &body.code, RedeemKey::Generated(key))
                .await?;
            let chain = state.engine.ca().chain().to_vec();
            let cert = issued.record.der.clone();
            let name = issued_subject_name(&issued);
            let pfx = tokio::task::spawn_blocking(move || {
                pkcs12::build_pfx(&pkcs8, &cert, &chain, &password, &name)
            })
            .await
            .map_err(|e| CaError::Crypto(format!("PKCS#12 task failed: {e}")))??;
            log_redeemed(&id, &issued);
            Ok((
                StatusCode::CREATED,
                Json(json!({
                    "serial": hex::encode(issued.record.serial),
                    "pkcs12": STANDARD.encode(pfx),
                    "not_before": rfc3339(issued.record.not_before)?,
                    "not_after": rfc3339(issued.record.not_after)?,
                    "profile": issued.record.profile,
                })),
            )
                .into_response())
        }
        _ => Err(ApiError::invalid_request(
            "give code with either csr, or key_type and pkcs12_password",
        )),
    }
}

/// Generates a subscriber key: its PKCS#8 (wiped on drop) and its public key.
fn generate(kind: Generated) -> Result<(Zeroizing<Vec<u8>>, csr::SubjectKey), CaError> {
    let failed = |e: keys::KeyError| CaError::Crypto(format!("key generation: {e}"));
    let (pkcs8, spki) = match kind {
        Generated::Rsa2048 => keys::generate_rsa_pkcs8(2048).map_err(failed)?,
        Generated::Key(algorithm) => {
            let pkcs8 = keys::generate_pkcs8(algorithm).map_err(failed)?;
            let spki = SoftwareKey::from_pkcs8(&pkcs8)
                .map_err(failed)?
                .spki_der()
                .to_vec();
            (pkcs8, spki)
        }
    };
    Ok((pkcs8, csr::key_from_spki_der(&spki)?))
}

/// The friendly name of the PFX: the certificate's subject.
fn issued_subject_name(issued: &Issued) -> String {
    ca_core::inspect::view(&issued.record.der)
        .map(|v| v.subject)
        .unwrap_or_default()
}

fn log_redeemed(id: &[u8; 16], issued: &Issued) {
    tracing::info!(
        enrollment = %hex::encode(id),
        serial = %hex::encode(issued.record.serial),
        "enrolment redeemed"
    );
}
