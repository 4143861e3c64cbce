//! Mass revocation (API contract: Mass revocation): `POST /v1/mass-revocations` (operator)
//! revokes every certificate matching a filter in one audited action, or counts them in a dry
//! run, step by step ([`ca_core::mass_revocation`]).
//!
//! A step runs for about [`STEP_BUDGET`] and answers the counts so far with a sealed
//! `continuation`; the caller posts it back until `done`. No request runs long, whatever the
//! store's size (the server's request timeout stays far away), and the server keeps nothing
//! between steps: any node sharing the store continues the action, and a client that lost its
//! connection posts the last continuation again.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use ca_core::mass_revocation::{MassRevocationRequest, Mode, Progress, RevocationFilter};
use ca_core::revocation::RevocationReason;
use ca_core::store::query::MAX_EXAMINED;
use serde::Deserialize;
use serde_json::{json, Value};

use super::audit::time_param;
use super::revocation::invalidity_date;
use super::{body_or_error, parse_json, ApiError, AppState, Authenticated};
use crate::auth::Caller;

/// How long one step walks before it answers.
pub const STEP_BUDGET: Duration = Duration::from_secs(2);

/// The filter of the contract's body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterBody {
    spki_sha256: Option<String>,
    requester: Option<String>,
    profile: Option<String>,
    issued_after: Option<String>,
    issued_before: Option<String>,
}

/// The body: a new action (`filter`, `reason`, `invalidity_date`, `dry_run`) or the
/// `continuation` of one.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MassRevocationBody {
    filter: Option<FilterBody>,
    reason: Option<String>,
    invalidity_date: Option<String>,
    dry_run: Option<bool>,
    continuation: Option<String>,
}

/// The key filter: 64 hex digits.
fn spki_param(value: Option<&str>) -> Result<Option<[u8; 32]>, ApiError> {
    value
        .map(|s| {
            let mut key = [0u8; 32];
            hex::decode_to_slice(s, &mut key)
                .map(|()| key)
                .map_err(|_| {
                    ApiError::invalid_request(format!(
                        "spki_sha256 {:?} is not 64 hex digits (the SHA-256 of a \
                     SubjectPublicKeyInfo)",
                        s.chars().take(80).collect::<String>()
                    ))
                })
        })
        .transpose()
}

impl FilterBody {
    fn parse(self) -> Result<RevocationFilter, ApiError> {
        Ok(RevocationFilter {
            spki_sha256: spki_param(self.spki_sha256.as_deref())?,
            requester: self.requester,
            profile: self.profile,
            issued_after: time_param("issued_after", self.issued_after.as_deref())?,
            issued_before: time_param("issued_before", self.issued_before.as_deref())?,
        })
    }
}

/// Who may continue a progress: the operator who started it.
fn context(caller: &Caller) -> Vec<u8> {
    format!("{}\0{}", caller.role.name(), caller.name).into_bytes()
}

/// The new action's request, from a body without a continuation.
fn request(state: &AppState, body: MassRevocationBody) -> Result<MassRevocationRequest, ApiError> {
    let reason = body.reason.ok_or_else(|| {
        ApiError::invalid_request(
            "reason is required (an RFC 5280 reason name such as keyCompromise or superseded)",
        )
    })?;
    let reason = RevocationReason::from_name(&reason)?;
    let filter = body
        .filter
        .ok_or_else(|| {
            ApiError::invalid_request(
                "filter is required: at least one of spki_sha256, requester, profile, \
                 issued_after, issued_before",
            )
        })?
        .parse()?;
    let invalidity_date = invalidity_date(state, body.invalidity_date.as_deref())?;
    Ok(MassRevocationRequest {
        filter,
        reason,
        invalidity_date,
    })
}

/// `POST /v1/mass-revocations` (operator): starts a mass revocation (or its dry run) and walks
/// it for one step, or walks on from a `continuation`; answers the counts so far, `done`, and
/// the `continuation` to post next (null once done).
pub async fn step(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body: MassRevocationBody = parse_json(&body_or_error(body)?)?;
    let key = state.store().cursor_key()?;
    let context = context(&caller);
    let progress = match body.continuation.as_deref() {
        Some(text) => {
            let given_too = body.filter.is_some()
                || body.reason.is_some()
                || body.invalidity_date.is_some()
                || body.dry_run.is_some();
            if given_too {
                return Err(ApiError::invalid_request(
                    "a continuation comes alone: the filter, reason and mode are those of the \
                     step that handed it out",
                ));
            }
            Progress::open(text, &key, &context)?
        }
        None => {
            let dry_run = body.dry_run.unwrap_or(false);
            let request = request(&state, body)?;
            state
                .engine
                .start_mass_revocation(request, &caller.name, dry_run)
                .await?
        }
    };
    let progress = state
        .engine
        .mass_revocation_step(progress, STEP_BUDGET, MAX_EXAMINED)
        .await?;
    let continuation = if progress.done {
        None
    } else {
        Some(progress.seal(&key, &context)?)
    };
    let t = &progress.tally;
    let (action, dry_run) = match &progress.mode {
        Mode::DryRun => (None, true),
        Mode::Revoke { id, .. } => (Some(id.to_string()), false),
    };
    if progress.done {
        tracing::info!(
            action = action.as_deref().unwrap_or("(dry run)"),
            actor = %caller.name,
            revoked = t.revoked,
            "mass revocation complete"
        );
    }
    Ok(Json(json!({
        "action": action,
        "dry_run": dry_run,
        "reason": progress.request.reason.name(),
        "done": progress.done,
        "continuation": continuation,
        "matched": t.matched,
        "revoked": t.revoked,
        "already_revoked": t.already_revoked,
        "expired": t.expired,
    })))
}
