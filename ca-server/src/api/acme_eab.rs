//! `POST /v1/acme/eab`: an operator creates an External Account Binding key (RFC 8555
//! section 7.3.4) for an RA; the ACME accounts bound with it, and every certificate they
//! order, belong to that RA.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use ca_core::audit::{AuditAction, AuditEvent};
use ca_core::store::AcmeWrite;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{body_or_error, parse_json, ApiError, AppState, Authenticated};
use crate::acme::records::{self, EabKeyRecord};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEab {
    /// The RA token's name.
    ra: String,
}

/// Creates an EAB key for the RA named in the body: answers 201 with `kid` and `hmac_key`
/// (base64url; shown only here), stored and audited (`acme_eab_key_created`). 404
/// `token_not_found` for a name that is not a live RA token; 409 when ACME is off.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: CreateEab = parse_json(&body_or_error(body)?)?;
    if state.acme.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "acme_disabled",
            "ACME is not enabled ([acme] enabled = false)",
        ));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (hash, token) = state
        .store()
        .token_by_name(&request.ra)?
        .filter(|(_, t)| t.role == crate::auth::Role::Ra.name() && t.is_active(now))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "token_not_found",
                format!("no live RA token is named {:?}", request.ra),
            )
        })?;
    let random = state.engine.ca().random();
    let mut kid = [0u8; 16];
    random.fill(&mut kid).map_err(ca_core::CaError::from)?;
    let mut mac_key = vec![0u8; ca_acme::eab::MIN_MAC_KEY];
    random.fill(&mut mac_key).map_err(ca_core::CaError::from)?;
    let kid = ca_acme::b64url(&kid);
    let record = EabKeyRecord {
        mac_key: mac_key.clone(),
        owner: token.name.clone(),
        owner_token_hash: hash,
        created_at: now,
        bound_account: None,
    };
    state
        .engine
        .acme_write(AcmeWrite {
            puts: vec![records::put(kid.as_bytes(), &record, None)?],
            index: Vec::new(),
            event: AuditEvent::new(
                now,
                &caller.name,
                AuditAction::AcmeEabKeyCreated,
                kid.clone(),
            )
            .with("ra", token.name.clone()),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "kid": kid,
            "hmac_key": ca_acme::b64url(&mac_key),
            "ra": token.name,
        })),
    ))
}
