//! Accounts (RFC 8555 section 7.3): creation (with External Account Binding, section
//! 7.3.4), lookup by key (`onlyReturnExisting`), update, deactivation, and the orders list.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use ca_acme::eab::ParsedEab;
use ca_acme::messages::NewAccount;
use ca_acme::{AccountStatus, Problem, ProblemType};
use ca_core::audit::{AuditAction, AuditEvent};
use ca_core::error::CaError;
use ca_core::store::{AcmeIndexOp, AcmeWrite};
use serde_json::{json, Value};

use super::records::{self, AccountRecord, EabKeyRecord, Id, Versioned};
use super::{
    now, parse_b64url, parse_id, post_with, AcmeFront, Answer, Handled, KeyForm, Refusal,
    RequestHost, Requester, Urls,
};
use crate::api::AppState;

/// Most orders listed in one page of an account's orders (RFC 8555 section 7.1.2.1).
const ORDERS_PAGE: usize = 100;

/// Bytes of an order's position in its account's list: creation time (8) and id (16), as
/// [`records::order_link`] writes them after the account's prefix.
const ORDER_POSITION: usize = 24;

/// The account object (RFC 8555 section 7.1.2).
fn account_json(urls: &Urls, id: &Id, account: &AccountRecord) -> Value {
    let mut body = json!({
        "status": account.status.as_str(),
        "contact": account.contact,
        "orders": format!("{}/orders", urls.account(id)),
    });
    if let Some(kid) = &account.eab_kid {
        body["externalAccountBinding"] = json!({"kid": kid});
    }
    body
}

/// `POST /acme/new-account`.
pub async fn new_account(state: State<Arc<AppState>>, host: RequestHost, body: Bytes) -> Response {
    post_with(
        &state,
        &host,
        "/new-account",
        "new-account",
        KeyForm::Jwk,
        body,
        create,
    )
    .await
}

async fn create(front: Arc<AcmeFront>, urls: Urls, requester: Requester) -> Handled {
    let front = front.as_ref();
    let request = NewAccount::parse(requester.jws.payload())?;
    let key = requester.jws.key().clone();
    let thumbprint = records::thumbprint_key(&key.thumbprint());
    if let Some(holder) = front.engine.acme_claim_holder(&thumbprint)? {
        return existing(front, &urls, &holder);
    }
    if request.only_return_existing == Some(true) {
        return Err(Problem::new(
            ProblemType::AccountDoesNotExist,
            "no account has this key (onlyReturnExisting)",
        )
        .into());
    }
    if !front.config.terms_of_service.is_empty() && request.terms_of_service_agreed != Some(true) {
        return Err(Problem::malformed(
            "the terms of service must be agreed to (termsOfServiceAgreed)",
        )
        .into());
    }
    let id = front.random_id()?;
    let at = now();
    let mut write = AcmeWrite {
        puts: Vec::new(),
        index: vec![AcmeIndexOp::Claim {
            key: thumbprint,
            id: id.to_vec(),
        }],
        event: AuditEvent::new(
            at,
            "",
            AuditAction::AcmeAccountCreated,
            ca_acme::b64url(&id),
        ),
    };
    let mut account = AccountRecord {
        key: key.to_canonical_json().to_string(),
        status: AccountStatus::Valid,
        contact: request.contact.clone().unwrap_or_default(),
        created_at: at,
        eab_kid: None,
        requester: format!("(acme {})", ca_acme::b64url(&id)),
        requester_token_hash: [0; 32],
    };
    match &request.external_account_binding {
        Some(binding) => {
            let eab = ParsedEab::parse(binding)?;
            let kid = eab.kid().to_string();
            let Some(Versioned { version, record }) =
                records::load::<EabKeyRecord>(&front.engine, kid.as_bytes())?
            else {
                return Err(Problem::new(
                    ProblemType::Unauthorized,
                    "externalAccountBinding: no such key id",
                )
                .into());
            };
            if record.bound_account.is_some() {
                return Err(Problem::new(
                    ProblemType::Unauthorized,
                    "externalAccountBinding: this key id already bound an account",
                )
                .into());
            }
            eab.verify(&record.mac_key, &key, &urls.at("/new-account"))?;
            account.eab_kid = Some(kid.clone());
            account.requester = record.owner.clone();
            account.requester_token_hash = record.owner_token_hash;
            let bound = EabKeyRecord {
                bound_account: Some(id),
                ..record
            };
            write
                .puts
                .push(records::put(kid.as_bytes(), &bound, Some(version))?);
            write.index.push(AcmeIndexOp::Claim {
                key: records::eab_key(&kid),
                id: id.to_vec(),
            });
            write.event = write.event.with("eab_kid", kid);
        }
        None if front.config.eab_required => {
            return Err(Problem::new(
                ProblemType::ExternalAccountRequired,
                "this server binds every account to an RA: send externalAccountBinding \
                 with the key id and MAC key your RA gave you",
            )
            .into());
        }
        None => {}
    }
    write.event.actor = account.requester.clone();
    write.puts.push(records::put(&id, &account, None)?);
    match front.engine.acme_write(write).await {
        Ok(()) => {}
        // The same key registered at the same moment by another request: that account.
        Err(CaError::AcmeIndexTaken { holder }) if holder.len() == 16 => {
            return existing(front, &urls, &holder);
        }
        Err(e) => return Err(e.into()),
    }
    Ok(
        Answer::json(StatusCode::CREATED, account_json(&urls, &id, &account))
            .location(urls.account(&id)),
    )
}

/// The answer for a key that already has an account: 200 with its URL (RFC 8555 section
/// 7.3.1).
fn existing(front: &AcmeFront, urls: &Urls, holder: &[u8]) -> Handled {
    let id: Id = holder
        .try_into()
        .map_err(|_| CaError::Storage("an account key claim does not hold an account id".into()))?;
    let account = records::load::<AccountRecord>(&front.engine, &id)?
        .ok_or_else(|| CaError::Storage("an account key claim names no account".into()))?;
    if account.record.status != AccountStatus::Valid {
        return Err(Problem::new(
            ProblemType::Unauthorized,
            format!(
                "the account of this key is {}",
                account.record.status.as_str()
            ),
        )
        .into());
    }
    Ok(
        Answer::json(StatusCode::OK, account_json(urls, &id, &account.record))
            .location(urls.account(&id)),
    )
}

/// The account named in the path, which must be the requester's own.
fn own_account<'r>(
    requester: &'r Requester,
    path_id: &str,
) -> Result<(&'r Id, &'r Versioned<AccountRecord>), Refusal> {
    let (id, account) = requester.account()?;
    if parse_id(path_id).as_ref() != Some(id) {
        return Err(Problem::new(
            ProblemType::Unauthorized,
            "the request's account is not the account of this URL",
        )
        .into());
    }
    Ok((id, account))
}

/// `POST /acme/acct/{id}`: POST-as-GET, a contact update (RFC 8555 section 7.3.2) or a
/// deactivation (section 7.3.6).
pub async fn account(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path(path_id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/acct/{path_id}");
    post_with(
        &state,
        &host,
        &path,
        "account",
        KeyForm::Kid,
        body,
        |front, urls, requester| async move {
            let (id, account) = own_account(&requester, &path_id)?;
            if requester.jws.is_post_as_get() {
                return Ok(Answer::json(
                    StatusCode::OK,
                    account_json(&urls, id, &account.record),
                ));
            }
            let request = NewAccount::parse(requester.jws.payload())?;
            if request.external_account_binding.is_some() || request.only_return_existing.is_some()
            {
                return Err(Problem::malformed(
                    "an account update may change contact and status only",
                )
                .into());
            }
            let mut changed = account.record.clone();
            let action = match request.status.as_deref() {
                Some("deactivated") => {
                    changed.status = AccountStatus::Deactivated;
                    AuditAction::AcmeAccountDeactivated
                }
                Some("valid") | None => AuditAction::AcmeAccountUpdated,
                Some(_) => {
                    return Err(Problem::malformed(
                        "an account's status may only be set to deactivated",
                    )
                    .into())
                }
            };
            if let Some(contact) = request.contact {
                changed.contact = contact;
            }
            let write = AcmeWrite {
                puts: vec![records::put(id, &changed, Some(account.version))?],
                index: Vec::new(),
                event: AuditEvent::new(now(), &changed.requester, action, ca_acme::b64url(id)),
            };
            front.engine.acme_write(write).await?;
            Ok(Answer::json(
                StatusCode::OK,
                account_json(&urls, id, &changed),
            ))
        },
    )
    .await
}

/// `POST /acme/acct/{id}/orders` (RFC 8555 section 7.1.2.1): the account's orders, oldest
/// first, [`ORDERS_PAGE`] a page; a page with more after it has a `next` link to
/// `?cursor=`, the last listed order's position (its creation time and id, base64url).
pub async fn orders(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path(path_id): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    // The JWS names the URL it was sent to, query included.
    let path = match &query {
        Some(query) => format!("/acct/{path_id}/orders?{query}"),
        None => format!("/acct/{path_id}/orders"),
    };
    post_with(
        &state,
        &host,
        &path,
        "orders",
        KeyForm::Kid,
        body,
        |front, urls, requester| async move {
            let (id, _) = own_account(&requester, &path_id)?;
            let prefix = records::orders_prefix(id);
            let after = match query.as_deref().map(|q| q.strip_prefix("cursor=")) {
                None => None,
                Some(cursor) => {
                    let position: [u8; ORDER_POSITION] = cursor
                        .and_then(parse_b64url)
                        .ok_or_else(|| Problem::malformed("the orders list's cursor is not one"))?;
                    Some([prefix.as_slice(), &position].concat())
                }
            };
            let mut links = front
                .engine
                .acme_links(&prefix, after.as_deref(), ORDERS_PAGE + 1)?;
            let more = links.len() > ORDERS_PAGE;
            links.truncate(ORDERS_PAGE);
            let orders: Vec<String> = links
                .iter()
                .filter_map(|key| key.get(prefix.len() + 8..))
                .filter_map(|order| <[u8; 16]>::try_from(order).ok())
                .map(|order| urls.order(&order))
                .collect();
            let answer = Answer::json(StatusCode::OK, json!({"orders": orders}));
            match links.last().and_then(|last| last.get(prefix.len()..)) {
                Some(position) if more => {
                    let next = format!(
                        "{}/orders?cursor={}",
                        urls.account(id),
                        ca_acme::b64url(position)
                    );
                    Ok(answer.link(&next, "next"))
                }
                _ => Ok(answer),
            }
        },
    )
    .await
}

/// `POST /acme/key-change` (RFC 8555 section 7.3.5): the outer JWS signed by the account's
/// current key, its payload a JWS signed by the new key naming the account and the old key.
/// A new key that another account has is refused 409 with that account's URL in `Location`.
pub async fn key_change(state: State<Arc<AppState>>, host: RequestHost, body: Bytes) -> Response {
    post_with(
        &state,
        &host,
        "/key-change",
        "key-change",
        KeyForm::Kid,
        body,
        |front, urls, requester| async move {
            let (id, account) = requester.account()?;
            let inner = ca_acme::ParsedJws::parse_key_change(requester.jws.payload())?;
            if inner.header().url() != requester.jws.header().url() {
                return Err(
                    Problem::malformed("the inner JWS's url is not the outer one's").into(),
                );
            }
            let inner = inner.verify_embedded()?;
            let change = ca_acme::messages::KeyChange::parse(inner.payload())?;
            if change.account != urls.account(id) {
                return Err(Problem::malformed("the key change names another account").into());
            }
            let old = ca_acme::AccountKey::from_jwk(&change.old_key)?;
            if old.to_canonical_json() != account.record.key {
                return Err(Problem::malformed("oldKey is not the account's current key").into());
            }
            let new = inner.key();
            let new_claim = records::thumbprint_key(&new.thumbprint());
            let conflict = |holder: &[u8]| -> Handled {
                let mut refusal =
                    Refusal::from(Problem::malformed("the new key belongs to another account"));
                refusal.status = Some(StatusCode::CONFLICT);
                match <[u8; 16]>::try_from(holder) {
                    Ok(other) => Err(Refusal {
                        location: Some(urls.account(&other)),
                        ..refusal
                    }),
                    Err(_) => Err(refusal),
                }
            };
            if let Some(holder) = front.engine.acme_claim_holder(&new_claim)? {
                return conflict(&holder);
            }
            let mut changed = account.record.clone();
            changed.key = new.to_canonical_json().to_string();
            let write = AcmeWrite {
                puts: vec![records::put(id, &changed, Some(account.version))?],
                index: vec![
                    AcmeIndexOp::Release {
                        key: records::thumbprint_key(&old.thumbprint()),
                    },
                    AcmeIndexOp::Claim {
                        key: new_claim,
                        id: id.to_vec(),
                    },
                ],
                event: AuditEvent::new(
                    now(),
                    &changed.requester,
                    AuditAction::AcmeAccountKeyChanged,
                    ca_acme::b64url(id),
                )
                .with("thumbprint", new.thumbprint_b64()),
            };
            match front.engine.acme_write(write).await {
                Err(CaError::AcmeIndexTaken { holder }) => return conflict(&holder),
                other => other?,
            }
            Ok(Answer::json(
                StatusCode::OK,
                account_json(&urls, id, &changed),
            ))
        },
    )
    .await
}
