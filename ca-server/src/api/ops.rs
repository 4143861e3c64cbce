//! Operational endpoints: health, readiness, the CA certificate, and the fallbacks.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::{ApiError, AppState};

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store is open and the CA key loaded (both hold once the engine runs).
pub async fn readyz(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    state.engine.store().last_cert_seq()?;
    Ok(Json(
        json!({"status": "ready", "queue_depth": state.engine.queue_depth()}),
    ))
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
