//! The auditor's view (API contract: Reading): certificate queries with cursor paging, the
//! history of one certificate, the hash-chained audit log and its signed checkpoints; and
//! token creation by an operator, which the log records.

use std::sync::Arc;

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use ca_core::audit::{AuditAction, AuditEntry, Checkpoint};
use ca_core::revocation::Status;
use ca_core::store::query::{CertificateQuery, Cursor};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::certificates::{certificate_view, find, path_serial, rfc3339};
use super::{body_or_error, parse_json, ApiError, AppState, Authenticated};
use crate::auth::{new_token_expiring, owns, Role};

/// Default and largest page sizes of the list endpoints.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// Query parameters of `GET /v1/certificates`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    profile: Option<String>,
    subject: Option<String>,
    san: Option<String>,
    issued_after: Option<String>,
    issued_before: Option<String>,
    expires_before: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

fn query_params<T: Default>(params: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    params
        .map(|Query(p)| p)
        .map_err(|e| ApiError::invalid_request(format!("invalid query: {}", e.body_text())))
}

fn limit(limit: Option<usize>) -> Result<usize, ApiError> {
    match limit.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n),
        _ => Err(ApiError::invalid_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        ))),
    }
}

pub(super) fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|s| {
            OffsetDateTime::parse(s, &Rfc3339)
                .map(OffsetDateTime::unix_timestamp)
                .map_err(|_| {
                    ApiError::invalid_request(format!("{name} {s:?} is not an RFC 3339 time"))
                })
        })
        .transpose()
}

fn status_param(value: Option<&str>) -> Result<Option<Status>, ApiError> {
    value
        .map(|s| {
            [
                Status::Valid,
                Status::Expired,
                Status::Revoked,
                Status::OnHold,
            ]
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "status {s:?} is not one of valid, expired, revoked, on_hold"
                ))
            })
        })
        .transpose()
}

/// `GET /v1/certificates` (auditor; ra for the certificates its token requested): filters,
/// `limit` and an opaque `cursor`; `next_cursor` is null once the walk is complete.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query_params(params)?;
    if caller.role == Role::Ra && !owns(state.store(), &caller, &caller.name)? {
        // A caller whose name a token holds that is not its own requested nothing.
        return Ok(Json(json!({"items": [], "next_cursor": null})));
    }
    let query = CertificateQuery {
        status: status_param(p.status.as_deref())?,
        profile: p.profile,
        subject: p.subject,
        san: p.san,
        requester: (caller.role == Role::Ra).then(|| caller.name.clone()),
        issued_after: time_param("issued_after", p.issued_after.as_deref())?,
        issued_before: time_param("issued_before", p.issued_before.as_deref())?,
        expires_before: time_param("expires_before", p.expires_before.as_deref())?,
        now: OffsetDateTime::now_utc().unix_timestamp(),
    };
    // A cursor serves only the caller it was given to: an RA's holds keys of rows it may not
    // see, so it is sealed, and bound to the caller.
    let context = format!("{}\0{}", caller.role.name(), caller.name).into_bytes();
    let limit = limit(p.limit)?;
    let page = tokio::task::spawn_blocking(move || {
        let store = state.engine.store().as_ref();
        let key = store.cursor_key()?;
        let cursor = p
            .cursor
            .as_deref()
            .map(|c| Cursor::open(c, &key, &context))
            .transpose()?;
        let page = store.query(&query, cursor.as_ref(), limit)?;
        let items = page
            .rows
            .iter()
            .map(|row| certificate_view(store, &row.record, row.revocation.as_ref()))
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok::<_, ApiError>(json!({
            "items": items,
            "next_cursor": page.next.map(|c| c.seal(&key, &context)).transpose()?,
        }))
    })
    .await
    .map_err(|e| ApiError::from(ca_core::CaError::Storage(format!("query task failed: {e}"))))??;
    Ok(Json(page))
}

/// `GET /v1/certificates/{serial}/events` (auditor; ra for its own): the certificate's life,
/// oldest first: issued, then every revocation, hold release and renewal, each with its time,
/// its actor (a token's name) and the audit entry that records it.
pub async fn events(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    serial: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let record = find(&state, &path_serial(serial), &caller)?;
    let serial = record.serial;
    let mut issued = json!({
        "type": "issued",
        "at": rfc3339(record.issued_at)?,
        "actor": record.requester,
        "profile": record.profile,
    });
    if let Some(from) = record.renewed_from {
        issued["renewed_from"] = json!(hex::encode(from));
    }
    // The record names the audit entry that issued it; a record written before it did
    // finds it among the serial's events when they point at it, else `audit_seq` is null.
    let target = serial.to_hex();
    let mut issued_seq = record.audit_seq;
    let mut later = Vec::new();
    for entry in state.engine.store().events(&serial)? {
        let issuance = matches!(
            entry.event.action,
            AuditAction::CertificateIssued | AuditAction::CertificateRenewed
        ) && entry.event.target == target;
        if issuance {
            issued_seq.get_or_insert(entry.seq);
        } else {
            later.push(event_json(&entry)?);
        }
    }
    issued["audit_seq"] = json!(issued_seq);
    let mut items = vec![issued];
    items.extend(later);
    Ok(Json(json!({ "items": items })))
}

/// One later event of a certificate, from the audit entry that recorded it.
fn event_json(entry: &AuditEntry) -> Result<Value, ApiError> {
    let e = &entry.event;
    let mut item = Map::new();
    let kind = match e.action {
        AuditAction::CertificateRevoked => "revoked",
        AuditAction::HoldReleased => "hold_released",
        AuditAction::CertificateRenewed => {
            item.insert("renewed_by".into(), json!(e.target));
            "renewed"
        }
        other => other.name(),
    };
    item.insert("type".into(), json!(kind));
    item.insert("at".into(), json!(rfc3339(e.at)?));
    item.insert("actor".into(), json!(e.actor));
    for (k, v) in &e.details {
        if k != "renewed_from" {
            item.insert(k.clone(), json!(v));
        }
    }
    item.insert("audit_seq".into(), json!(entry.seq));
    Ok(Value::Object(item))
}

/// Query parameters of `GET /v1/audit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    after: Option<u64>,
    limit: Option<usize>,
}

/// The contract's form of an audit entry.
pub fn audit_entry_json(entry: &AuditEntry) -> Result<Value, ApiError> {
    let e = &entry.event;
    Ok(json!({
        "seq": entry.seq,
        "at": rfc3339(e.at)?,
        "actor": e.actor,
        "action": e.action.name(),
        "target": e.target,
        "details": e.details,
        "prev_hash": hex::encode(entry.prev_hash),
        "hash": hex::encode(entry.hash),
    }))
}

/// `GET /v1/audit?after=SEQ&limit=N` (auditor): entries after `after`, oldest first;
/// `next_after` is the last entry's sequence number, null when the page is empty.
pub async fn log(
    State(state): State<Arc<AppState>>,
    Authenticated(_): Authenticated,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let p = query_params(params)?;
    let limit = limit(p.limit)?;
    let entries = state
        .engine
        .store()
        .audit_entries(p.after.unwrap_or(0), limit)?;
    let items = entries
        .iter()
        .map(audit_entry_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "items": items,
        "next_after": entries.last().map(|e| e.seq),
    })))
}

/// The contract's form of a signed checkpoint: the head, the time, the signed bytes and the
/// signature (base64), checkable with the CA certificate's public key.
pub fn checkpoint_json(cp: &Checkpoint) -> Result<Value, ApiError> {
    Ok(json!({
        "seq": cp.head.seq,
        "hash": hex::encode(cp.head.hash),
        "at": rfc3339(cp.at)?,
        "message": STANDARD.encode(Checkpoint::message(&cp.head, cp.at)),
        "signature": STANDARD.encode(&cp.signature),
    }))
}

/// `GET /v1/audit/checkpoint` (auditor): the newest signed checkpoint of the log's head.
pub async fn checkpoint(
    State(state): State<Arc<AppState>>,
    Authenticated(_): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let cp =
        state.engine.store().latest_checkpoint()?.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no checkpoint yet")
        })?;
    Ok(Json(checkpoint_json(&cp)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenBody {
    pub(super) role: String,
    pub(super) name: String,
    /// The token expires this many days after its creation.
    #[serde(default)]
    pub(super) expires_in_days: Option<u32>,
    /// The token expires at this RFC 3339 time.
    #[serde(default)]
    pub(super) expires_at: Option<String>,
}

/// `POST /v1/tokens` (operator) `{"role", "name", "expires_in_days"?, "expires_at"?}` →
/// `201 {"token", "role", "name", "id", "created_at", "expires_at"}`: a new API token, shown
/// once; its creation is in the audit log. A name any token ever had is refused (409
/// `token_name_taken`): certificates belong to the token whose name they record. Role
/// `ca-admin` is refused (403 `forbidden`): only `ca-server token create` grants it.
pub async fn create_token(
    State(state): State<Arc<AppState>>,
    Authenticated(caller): Authenticated,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: TokenBody = parse_json(&body_or_error(body)?)?;
    let role = Role::parse(&body.role).ok_or_else(|| {
        ApiError::invalid_request(format!(
            "unknown role {:?}; expected ra, auditor or operator",
            body.role
        ))
    })?;
    if !role.granted_online() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "tokens of role {} are created only on the command line (`ca-server token \
                 create --role {} --name NAME`, with the server stopped), never through the \
                 API; an operator creates ra, auditor and operator tokens",
                role.name(),
                role.name()
            ),
        ));
    }
    if state.client_certificate_names.contains(&body.name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "token_name_taken",
            format!(
                "{:?} is the name of a [[tls.clients]] client certificate; a token may not take it",
                body.name
            ),
        ));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let expires_at = super::tokens::expiry(
        now,
        body.expires_in_days,
        time_param("expires_at", body.expires_at.as_deref())?,
    )?;
    let new = new_token_expiring(role, &body.name, expires_at)?;
    let mut answer = super::tokens::token_json(&new.record)?;
    state
        .engine
        .put_token(new.hash, new.record, &caller.name)
        .await?;
    tracing::info!(name = %body.name, role = role.name(), actor = %caller.name, "token created");
    if let Some(fields) = answer.as_object_mut() {
        fields.insert("token".into(), Value::String(new.token));
        fields.remove("revoked");
        fields.remove("revoked_at");
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}
