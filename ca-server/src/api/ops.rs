//! Operational endpoints: health, readiness, the CA certificate, and the fallbacks.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use std::time::{Duration, Instant};

use ca_core::CaError;
use serde_json::json;

use super::{ApiError, AppState};

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store answers and can write, the clock is not behind what the CA
/// signed, and the CA key can sign. A store that cannot write (its filesystem below `[store]
/// min_free_bytes` or full) makes it 503 `storage_unavailable`, a clock behind 503
/// `clock_behind`, and an HSM that does not answer 503 `signer_unavailable`, each with
/// Retry-After and the reason in the message, until it passes.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    state.engine.store().last_cert_seq()?;
    let store = state.engine.store().clone();
    tokio::task::spawn_blocking(move || store.writable())
        .await
        .map_err(|e| CaError::internal("store check task failed", Some(Box::new(e))))??;
    // A clock behind what was signed already signs nothing (503 `clock_behind`).
    state
        .engine
        .clock()
        .check(time::OffsetDateTime::now_utc().unix_timestamp())?;
    // The CA key must answer too: an HSM that is unreachable makes the server not ready.
    state.signer_check.check(&state).await?;
    Ok(Json(
        json!({"status": "ready", "queue_depth": state.engine.queue_depth()}),
    ))
}

/// How long a signer check answers `/readyz`: the device is asked at most this often,
/// however many callers the public route has.
const SIGNER_CHECK_TTL: Duration = Duration::from_secs(1);

/// The CA key's readiness ([`keys::Signer::check`]), asked of the device at most once per
/// [`SIGNER_CHECK_TTL`] and by one caller at a time, so that a public route cannot be used to
/// load the HSM.
#[derive(Debug, Default)]
pub struct SignerCheck {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

impl SignerCheck {
    /// Ok when the CA key could sign at the last check; 503 `signer_unavailable` otherwise.
    async fn check(&self, state: &AppState) -> Result<(), ApiError> {
        let mut last = self.last.lock().await;
        let fresh = matches!(&*last, Some((at, _)) if at.elapsed() < SIGNER_CHECK_TTL);
        if !fresh {
            let signer = state.engine.ca().signer().clone();
            let outcome = tokio::task::spawn_blocking(move || signer.check())
                .await
                .map_err(|e| CaError::Crypto(format!("signer check task failed: {e}")))?
                .map_err(|e| CaError::Signing(e).chain());
            *last = Some((Instant::now(), outcome));
        }
        match &*last {
            Some((_, Err(why))) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "signer_unavailable",
                format!("the CA key cannot sign now: {why}"),
            )),
            _ => Ok(()),
        }
    }
}

/// `GET /ca.pem`: the issuing CA's certificate and its issuers up to the root.
pub async fn ca_pem(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.chain_pem.concat(),
    )
}

/// `GET /ca.der`: the issuing CA's certificate, DER (the caIssuers URL, RFC 5280 4.2.2.1).
pub async fn ca_der(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let der = state.engine.ca().certificate().to_vec();
    ([(header::CONTENT_TYPE, "application/pkix-cert")], der)
}

/// Any unknown path.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// Any path but the status routes on the plain-HTTP status listener.
pub async fn not_a_status_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "this plain-HTTP listener serves only /crl, /crl/delta, /ocsp, /ca.der and /ca.pem; \
         the API is on its TLS listener (https)",
    )
}

/// A known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}
