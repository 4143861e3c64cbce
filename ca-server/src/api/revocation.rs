//! Revocation, holds and CRLs (API contract: Revocation and status).

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use ca_core::revocation::{parse_invalidity_date, RevocationReason};
use ca_core::CaError;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::certificates::{certificate_json, find, path_serial, rfc3339};
use super::{body_or_error, parse_json, ApiError, AppState, Authenticated};

/// The revocation body of the contract.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    pub(super) reason: String,
    pub(super) invalidity_date: Option<String>,
}

/// `POST /v1/certificates/{serial}/revoke` (ra, and ca-admin for the CA certificates it
/// requested: each for its own certificates). Durable before the answer; OCSP answers the new status at once, the CRL within its interval.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    serial: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &path_serial(serial), &caller)?;
    let body = body_or_error(body)?;
    if body.trim_ascii().is_empty() {
        return Err(ApiError::invalid_request(
            "a revocation needs a body {\"reason\": ...}: reason is required (an RFC 5280 \
             reason name such as keyCompromise or cessationOfOperation)",
        ));
    }
    let body: RevokeBody = parse_json(&body)?;
    let reason = RevocationReason::from_name(&body.reason)?;
    let invalidity_date = invalidity_date(&state, body.invalidity_date.as_deref())?;
    let serial = record.serial;
    state
        .engine
        .revoke(serial, reason, invalidity_date, &caller.name)
        .await?;
    tracing::info!(%serial, reason = reason.name(), actor = %caller.name, "revoked");
    Ok(Json(certificate_json(&state, &record)?))
}

/// A revocation's `invalidity_date` (RFC 5280 section 5.3.2), checked against now and the
/// configured floor here, and against the revocation time the store writer sets by the engine,
/// which is not earlier.
pub(super) fn invalidity_date(
    state: &AppState,
    text: Option<&str>,
) -> Result<Option<i64>, ApiError> {
    text.map(|s| {
        parse_invalidity_date(
            s,
            OffsetDateTime::now_utc().unix_timestamp(),
            state.min_invalidity_date,
        )
    })
    .transpose()
    .map_err(ApiError::from)
}

/// `POST /v1/certificates/{serial}/release-hold` (ra): ends a certificateHold.
pub async fn release_hold(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    serial: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &path_serial(serial), &caller)?;
    let serial = record.serial;
    state.engine.release_hold(serial, &caller.name).await?;
    tracing::info!(%serial, actor = %caller.name, "hold released");
    Ok(Json(certificate_json(&state, &record)?))
}

fn crl_response(der: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response()
}

fn not_yet() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "crl_unavailable",
        "no CRL has been generated yet; retry shortly",
    )
}

/// `GET /crl`: the current complete CRL, DER, served from memory.
pub async fn full_crl(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let crls = state.crl.current().ok_or_else(not_yet)?;
    Ok(crl_response(crls.full))
}

/// `GET /crl/delta`: the delta CRL against the previous complete CRL, DER.
pub async fn delta_crl(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let crls = state.crl.current().ok_or_else(not_yet)?;
    Ok(crl_response(crls.delta))
}

/// `POST /v1/crl/generate` (operator): builds and publishes new CRLs now.
pub async fn generate(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let crl = state.crl.clone();
    let published = tokio::task::spawn_blocking(move || crl.generate_as(&caller.name))
        .await
        .map_err(|e| CaError::internal("the CRL task failed", Some(Box::new(e))))??;
    Ok(Json(json!({
        "crl_number": published.number,
        "entries": published.entries,
        "this_update": rfc3339(published.this_update)?,
        "bytes": published.full.len(),
    })))
}
