//! API token administration (beyond creation, in `audit.rs`): listing and revocation.
//!
//! A token's name is unique for ever and its id immutable; listing shows both, with role,
//! creation, expiry and revocation, never a token or its hash. Revocation keeps the name taken.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use ca_core::store::TokenRecord;
use ca_core::CaError;
use serde_json::{json, Value};

use super::certificates::rfc3339;
use super::{ApiError, AppState};
use crate::auth::Role;

/// The longest `expires_in_days` (and the furthest `expires_at`): ten years.
pub const MAX_TOKEN_LIFETIME_DAYS: u32 = 3650;

/// The expiry of a new token from its creation body: `expires_in_days` (1 to
/// [`MAX_TOKEN_LIFETIME_DAYS`]) after `now`, or `expires_at` (Unix seconds, after `now` and
/// at most that far ahead), or none; not both.
pub(super) fn expiry(
    now: i64,
    in_days: Option<u32>,
    at: Option<i64>,
) -> Result<Option<i64>, ApiError> {
    let max = now + i64::from(MAX_TOKEN_LIFETIME_DAYS) * 86_400;
    match (in_days, at) {
        (Some(_), Some(_)) => Err(ApiError::invalid_request(
            "give expires_in_days or expires_at, not both",
        )),
        (Some(days), None) if days == 0 || days > MAX_TOKEN_LIFETIME_DAYS => {
            Err(ApiError::invalid_request(format!(
                "expires_in_days must be between 1 and {MAX_TOKEN_LIFETIME_DAYS}"
            )))
        }
        (Some(days), None) => Ok(Some(now + i64::from(days) * 86_400)),
        (None, Some(at)) if at <= now || at > max => Err(ApiError::invalid_request(format!(
            "expires_at must be in the future and at most {MAX_TOKEN_LIFETIME_DAYS} days ahead"
        ))),
        (None, at) => Ok(at),
    }
}

/// A token as the API shows it: `name`, `role`, `id` (32 hex digits), `created_at`,
/// `expires_at` (null: never), `revoked`, `revoked_at`.
pub(super) fn token_json(record: &TokenRecord) -> Result<Value, ApiError> {
    let time = |t: Option<i64>| t.map(rfc3339).transpose();
    Ok(json!({
        "name": record.name,
        "role": record.role,
        "id": hex::encode(record.id),
        "created_at": rfc3339(record.created_at)?,
        "expires_at": time(record.expires_at)?,
        "revoked": record.revoked_at.is_some(),
        "revoked_at": time(record.revoked_at)?,
    }))
}

/// `GET /v1/tokens` (operator, auditor) → `{"items": [token, ...]}`, oldest first, every token
/// ever created (revoked and expired ones too).
pub async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.authorize(&headers, &[Role::Operator, Role::Auditor])?;
    let items = state
        .store()
        .tokens()?
        .iter()
        .map(token_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({ "items": items })))
}

/// `DELETE /v1/tokens/{name}` (operator) → 204: the token no longer authenticates (401); its
/// name stays taken. 404 `token_not_found`, 409 `token_already_revoked`.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    name: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let caller = state.authorize(&headers, &[Role::Operator])?;
    let name = name
        .map(|Path(n)| n)
        .map_err(|_| ApiError::from(CaError::TokenNotFound(String::new())))?;
    let revoked = state.engine.revoke_token(&name, &caller.name).await?;
    tracing::info!(
        name = %revoked.name,
        role = %revoked.role,
        actor = %caller.name,
        "token revoked"
    );
    Ok(StatusCode::NO_CONTENT)
}
