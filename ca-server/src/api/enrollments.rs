//! Enrollment with one-time codes (API contract: Enrollment): an RA approves a subject after
//! checking who the applicant is; the subscriber redeems the code later, with a CSR or for a
//! key the CA generates and delivers in a password-protected PKCS#12 file.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use ca_core::audit::Protocol;
use ca_core::engine::{EnrollmentRequest, Issued, RedeemKey};
use ca_core::pkcs12::{FriendlyName, Pkcs12Password};
use ca_core::store::EnrollmentRecord;
use ca_core::{csr, pkcs12, CaError};
use keys::{KeyAlgorithm, Signer, SoftwareKey};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use super::certificates::{issued_view, path_serial, requester, rfc3339};
use super::{body_or_error, parse_json, ApiError, AppState, Authenticated};
use crate::auth::{owns, Role};

/// Limits of enrollments.
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

/// The bounded pool on which the CA generates subscribers' keys and builds their PKCS#12
/// files: at most `concurrency` such jobs run at once, on the blocking pool, so that key
/// generation (an RSA-4096 key takes seconds of CPU) never takes every core from issuance, OCSP
/// and CRL building. A redemption waits at most [`KEY_GENERATION_WAIT`] for a slot, then is
/// refused with 429 `overloaded` (its code unused).
#[derive(Debug)]
pub struct KeyGeneration {
    permits: Arc<Semaphore>,
    wait: Duration,
}

/// The longest a verified redemption waits for a key generation slot.
pub const KEY_GENERATION_WAIT: Duration = Duration::from_secs(5);

impl KeyGeneration {
    /// A pool of `concurrency` slots; 0 means half the cores, at least one.
    pub fn new(concurrency: usize) -> Self {
        let slots = if concurrency == 0 {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        } else {
            concurrency
        };
        KeyGeneration {
            permits: Arc::new(Semaphore::new(slots)),
            wait: KEY_GENERATION_WAIT,
        }
    }

    /// A slot, or [`CaError::Overloaded`] after [`KEY_GENERATION_WAIT`].
    pub(crate) async fn slot(&self) -> Result<OwnedSemaphorePermit, CaError> {
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(CaError::ShuttingDown),
            Err(_) => Err(CaError::Overloaded),
        }
    }
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
        code_key: state.cmp.as_ref().map(|cmp| cmp.code_key()),
    };
    let created = engine.create_enrollment(request).await?;
    let id = hex::encode(created.id);
    tracing::info!(enrollment = %id, actor = %caller.name, "enrollment created");
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
    let store = state.engine.store().as_ref();
    let not_found = || CaError::EnrollmentNotFound(hex::encode(id));
    let record = store.enrollment(&id)?.ok_or_else(not_found)?;
    if caller.role != Role::Auditor && !owns(store, &caller, &record.requester)? {
        return Err(not_found().into());
    }
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
pub(crate) enum Generated {
    /// An EC or Ed25519 key from `ring`, or an RSA key of a CA size.
    Key(KeyAlgorithm),
    /// A 2048-bit RSA key (a subscriber size, never a CA key).
    Rsa2048,
}

/// The generated key types, by their API and profile names.
const GENERATED: [(&str, Generated); 6] = [
    ("ec-p256", Generated::Key(KeyAlgorithm::EcdsaP256)),
    ("ec-p384", Generated::Key(KeyAlgorithm::EcdsaP384)),
    ("ed25519", Generated::Key(KeyAlgorithm::Ed25519)),
    ("rsa-2048", Generated::Rsa2048),
    ("rsa-3072", Generated::Key(KeyAlgorithm::Rsa3072)),
    ("rsa-4096", Generated::Key(KeyAlgorithm::Rsa4096)),
];

pub(crate) fn generated_key_type(name: &str) -> Result<(&'static str, Generated), ApiError> {
    GENERATED
        .into_iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "key_type_not_allowed",
                format!(
                    "the CA generates ec-p256, ec-p384, ed25519, rsa-2048, rsa-3072 and \
                     rsa-4096 keys, not {:?}",
                    name.chars().take(32).collect::<String>()
                ),
            )
        })
}

/// `POST /v1/enrollments/{id}/redeem` (public, protected by the code): with `csr`, the
/// certificate as issuance answers it; with `key_type` and `pkcs12_password`, `{"serial",
/// "pkcs12"}` (base64 PFX with the new key, the certificate and the chain). The generated key
/// exists only in memory that is wiped once the PFX is built.
///
/// Nothing is spent before the code is verified: the body's own rules (password, key type)
/// are checked first, then the enrollment, its state and the code (a wrong code counts), then
/// the profile's key types; only then is a key generated, on the [`KeyGeneration`] pool.
pub async fn redeem(
    State(state): State<Arc<AppState>>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let id = enrollment_id(id)?;
    let body: RedeemBody = parse_json(&body_or_error(body)?)?;
    match (body.csr, body.key_type, body.pkcs12_password) {
        (Some(csr), None, None) => {
            let key = RedeemKey::Csr(csr.into_bytes());
            let issued = state.engine.redeem(id, &body.code, key).await?;
            log_redeemed(&state, &id, &issued, started);
            Ok((StatusCode::CREATED, Json(issued_view(&state, &issued)?)).into_response())
        }
        (None, Some(key_type), Some(password)) => {
            let password = Pkcs12Password::new(password, state.enrollment.min_password_length)?;
            let (key_type, kind) = generated_key_type(&key_type)?;
            let verified = state.engine.verify_redemption(id, &body.code).await?;
            state.engine.check_key_type(&verified, key_type)?;
            let name = FriendlyName::new(&verified.record().subject);
            // One slot for the key and the PKCS#12 file, so that a committed redemption never
            // waits for capacity.
            // The slot moves into each blocking task, so that it stays taken while the task
            // runs even when the client goes away.
            let slot = state.key_generation.slot().await?;
            let (slot, generated) = tokio::task::spawn_blocking(move || (slot, generate(kind)))
                .await
                .map_err(|e| CaError::Crypto(format!("key generation task failed: {e}")))?;
            let (pkcs8, key) = generated?;
            let issued = state
                .engine
                .redeem_verified(verified, RedeemKey::Generated(key), Protocol::Api)
                .await?;
            let chain = state.engine.ca().chain().to_vec();
            let cert = issued.record.der.clone();
            let pfx = tokio::task::spawn_blocking(move || {
                let pfx = pkcs12::build_pfx(&pkcs8, &cert, &chain, &password, &name);
                drop(slot);
                pfx
            })
            .await
            .map_err(|e| CaError::Crypto(format!("PKCS#12 task failed: {e}")))
            .and_then(|pfx| pfx);
            // Everything that can fail after the commit is inside `delivery`, which a failure
            // rolls back.
            let delivery = pfx.and_then(|pfx| {
                Ok(json!({
                    "serial": hex::encode(issued.record.serial),
                    "pkcs12": STANDARD.encode(pfx),
                    "not_before": ca_core::audit::rfc3339(issued.record.not_before)?,
                    "not_after": ca_core::audit::rfc3339(issued.record.not_after)?,
                    "profile": issued.record.profile,
                }))
            });
            match delivery {
                Ok(body) => {
                    log_redeemed(&state, &id, &issued, started);
                    Ok((StatusCode::CREATED, Json(body)).into_response())
                }
                Err(e) => Err(undo(&state, &id, &issued, e).await),
            }
        }
        _ => Err(ApiError::invalid_request(
            "give code with either csr, or key_type and pkcs12_password",
        )),
    }
}

/// Rolls back a redemption whose delivery (the PKCS#12 file and the answer) could not be built
/// after its certificate was committed (only an internal fault can cause that: the password
/// and the friendly name were checked before): the certificate, whose key is lost, is revoked
/// (cessationOfOperation) and the enrollment is pending again, so the code can be redeemed
/// anew. Returns the error to answer.
pub(crate) async fn undo(
    state: &AppState,
    id: &[u8; 16],
    issued: &Issued,
    error: CaError,
) -> ApiError {
    tracing::error!(
        enrollment = %hex::encode(id),
        serial = %hex::encode(issued.record.serial),
        error = %error,
        "the delivery of a redemption could not be built; rolling the redemption back"
    );
    let serial = issued.record.serial;
    match state.engine.undo_redemption(*id, serial).await {
        Ok(()) => ApiError::from(error),
        Err(undo) => {
            tracing::error!(
                enrollment = %hex::encode(id),
                serial = %serial,
                error = %undo,
                "rolling back the redemption failed"
            );
            error.into()
        }
    }
}

/// Generates a subscriber key: its PKCS#8 (wiped on drop) and its public key.
pub(crate) fn generate(kind: Generated) -> Result<(Zeroizing<Vec<u8>>, csr::SubjectKey), CaError> {
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

/// Logs a redemption and the certificate it issued (requested by the RA that created the
/// enrollment).
fn log_redeemed(state: &AppState, id: &[u8; 16], issued: &Issued, started: std::time::Instant) {
    let record = &issued.record;
    state
        .log
        .issued(record, &record.requester, false, started.elapsed());
    tracing::info!(
        enrollment = %hex::encode(id),
        serial = %hex::encode(issued.record.serial),
        "enrollment redeemed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_generation_slots_are_bounded_and_a_full_pool_refuses_after_the_wait() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let pool = KeyGeneration {
                wait: Duration::from_millis(50),
                ..KeyGeneration::new(2)
            };
            let a = pool.slot().await.unwrap();
            let _b = pool.slot().await.unwrap();
            let refused = pool.slot().await.unwrap_err();
            assert_eq!(refused.code(), "overloaded");
            drop(a);
            assert!(pool.slot().await.is_ok(), "a freed slot is taken again");
        });
        let default = KeyGeneration::new(0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            default.permits.available_permits(),
            (cores / 2).max(1),
            "0: half the cores, at least one"
        );
    }
}
