//! The OCSP responder endpoints (RFC 6960 appendix A, RFC 5019 section 5).

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ca_core::ocsp::{decode_get_request, CertStatus, INTERNAL_ERROR, MALFORMED_REQUEST};
use time::OffsetDateTime;

use super::AppState;

/// An OCSP answer. `no-cache`: a revocation must show at once (the API contract), so HTTP
/// caches must not keep answers; the responder caches signed answers itself.
fn ocsp_response(state: &AppState, der: Vec<u8>) -> Response {
    let status = match der.as_slice() {
        d if d == MALFORMED_REQUEST => "malformed_request",
        d if d == INTERNAL_ERROR => "internal_error",
        _ => "successful",
    };
    state
        .engine
        .metrics()
        .ocsp_responses
        .with_label_values(&[status])
        .inc();
    (
        [
            (header::CONTENT_TYPE, "application/ocsp-response"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        der,
    )
        .into_response()
}

/// Answers a DER request against the store. Blocking (store reads, a signature): runs on the
/// blocking pool.
async fn answer(state: Arc<AppState>, request: Vec<u8>) -> Response {
    let responder = state.clone();
    let der = tokio::task::spawn_blocking(move || {
        let state = responder;
        let store = state.engine.store();
        state
            .ocsp
            .respond(&request, OffsetDateTime::now_utc(), |serial| {
                if store.contains_serial(serial)? {
                    CertStatus::issued(store.revocation(serial)?.as_ref())
                } else {
                    Ok(CertStatus::Unknown)
                }
            })
    })
    .await
    .unwrap_or_else(|_| INTERNAL_ERROR.to_vec());
    ocsp_response(&state, der)
}

/// `POST /ocsp` with an `application/ocsp-request` body.
pub async fn post(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match body {
        Ok(body) => answer(state, body.to_vec()).await,
        Err(_) => ocsp_response(&state, MALFORMED_REQUEST.to_vec()),
    }
}

/// `GET /ocsp/{base64 of the DER request}` (RFC 6960 appendix A.1).
pub async fn get(
    State(state): State<Arc<AppState>>,
    encoded: Result<Path<String>, PathRejection>,
) -> Response {
    let encoded = encoded.map(|Path(s)| s).unwrap_or_default();
    match decode_get_request(&encoded) {
        Ok(request) => answer(state, request).await,
        Err(_) => ocsp_response(&state, MALFORMED_REQUEST.to_vec()),
    }
}
