//! Orders (RFC 8555 section 7.4): creation with their authorizations (reused ones
//! included), their state, and finalization through the engine.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use ca_acme::challenge::{token_from_bytes, ChallengeType, TOKEN_BYTES};
use ca_acme::messages::{Finalize, NewOrder};
use ca_acme::{AcmeIdentifier, AuthzStatus, ChallengeStatus, OrderStatus, Problem, ProblemType};
use ca_core::audit::{AuditAction, AuditEvent, Protocol};
use ca_core::csr::{San, VerifiedCsr};
use ca_core::engine::{IssueRequest, Requester as EngineRequester};
use ca_core::error::CaError;
use ca_core::profile::Identity;
use ca_core::store::{AcmeIndexOp, AcmeWrite};
use serde_json::{json, Value};

use super::records::{
    self, AccountRecord, AuthzRecord, ChallengeRecord, Id, OrderRecord, StoredIdentifier, Versioned,
};
use super::{
    now, parse_id, post_with, rfc3339, AcmeFront, Answer, Handled, KeyForm, Refusal, RequestHost,
    Requester, Urls,
};
use crate::api::AppState;

/// How long clients are asked to wait before polling a pending or processing order again.
pub const RETRY_AFTER_SECS: u64 = 1;

/// `POST /acme/new-order`: an order under `[acme] profile` (or the payload's `profile`).
pub async fn new_order(state: State<Arc<AppState>>, host: RequestHost, body: Bytes) -> Response {
    post_with(
        &state,
        &host,
        "/new-order",
        "new-order",
        KeyForm::Kid,
        body,
        |front, urls, requester| async move { create(&front, &urls, &requester, None).await },
    )
    .await
}

/// `POST /acme/{profile}/new-order`: an order under that profile's directory.
pub async fn new_profile_order(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path(profile): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/{profile}/new-order");
    post_with(&state, &host, &path, "new-order", KeyForm::Kid, body, |front, urls, requester| async move {
        create(&front, &urls, &requester, Some(profile)).await
    })
    .await
}

/// The challenges offered for an identifier: dns-01 only for a wildcard (RFC 8555 section
/// 7.1.3), no dns-01 for an IP address (RFC 8738 section 7).
fn challenge_types(identifier: &AcmeIdentifier) -> &'static [ChallengeType] {
    match identifier {
        AcmeIdentifier::Dns { wildcard: true, .. } => &[ChallengeType::Dns01],
        AcmeIdentifier::Dns { .. } => &ChallengeType::ALL,
        AcmeIdentifier::Ip(_) => &[ChallengeType::Http01, ChallengeType::TlsAlpn01],
    }
}

async fn create(
    front: &AcmeFront,
    urls: &Urls,
    requester: &Requester,
    path_profile: Option<String>,
) -> Handled {
    let (account_id, account) = requester.account()?;
    let request = NewOrder::parse(requester.jws.payload())?;
    if request.not_before.is_some() || request.not_after.is_some() {
        return Err(Problem::malformed(
            "notBefore and notAfter are not supported: the profile sets the validity",
        )
        .into());
    }
    let profile = match (path_profile, request.profile) {
        (Some(p), Some(q)) if p != q => {
            return Err(Problem::malformed("the payload's profile is not this directory's").into())
        }
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => front.config.profile.clone(),
    };
    if !front.profile_enabled(&profile) {
        return Err(Problem::malformed(format!(
            "the profile \"{}\" is not offered over ACME",
            ca_acme::problem::quote(&profile)
        ))
        .into());
    }
    // The profile's name rules, before any authorization is made for a name it would refuse:
    // each identifier alone (one subproblem per refused one), then all together (their
    // number, repeats).
    let rules = front.engine.ca().profile(&profile)?;
    let names = |sans: Vec<San>| Identity {
        subject: Vec::new(),
        sans,
    };
    let refused: Vec<_> = request
        .identifiers
        .iter()
        .filter_map(|id| {
            let one = names(vec![San::from_value(&id.value())]);
            let refusal = Refusal::from(rules.check_names(&profile, &one).err()?);
            Some((id.for_problem(), *refusal.problem))
        })
        .collect();
    if !refused.is_empty() {
        return Err(Problem::for_identifiers(refused).into());
    }
    let all = request
        .identifiers
        .iter()
        .map(|id| San::from_value(&id.value()));
    rules.check_names(&profile, &names(all.collect()))?;
    let at = now();
    check_hourly(
        front,
        &records::orders_prefix(account_id),
        front.config.orders_per_account_per_hour,
        at,
        "orders by this account ([acme] orders_per_account_per_hour)",
    )?;
    for identifier in &request.identifiers {
        let stored = StoredIdentifier {
            kind: identifier.kind().into(),
            value: identifier.authz_value(),
        };
        check_hourly(
            front,
            &records::failures_prefix(account_id, &stored),
            front.config.failed_validations_per_hour,
            at,
            &format!(
                "failed validations of {} by this account ([acme] failed_validations_per_hour)",
                ca_acme::problem::quote(&stored.value)
            ),
        )?;
    }

    let id = front.random_id()?;
    let replaced = match &request.replaces {
        Some(cert_id) => check_replaces(front, account_id, &request.identifiers, cert_id, &id)?,
        None => Vec::new(),
    };
    let expires = at + front.config.order_lifetime_secs;
    let mut write = AcmeWrite {
        puts: Vec::new(),
        index: Vec::new(),
        event: AuditEvent::new(
            at,
            &account.record.requester,
            AuditAction::AcmeOrderCreated,
            ca_acme::b64url(&id),
        )
        .with("account", ca_acme::b64url(account_id))
        .with("profile", profile.clone())
        .with(
            "identifiers",
            request
                .identifiers
                .iter()
                .map(AcmeIdentifier::value)
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    let mut authorizations = Vec::new();
    for identifier in &request.identifiers {
        let stored = StoredIdentifier {
            kind: identifier.kind().into(),
            value: identifier.authz_value(),
        };
        if let Some(reused) =
            reusable_authz(front, account_id, &stored, identifier.is_wildcard(), at)?
        {
            authorizations.push(reused);
            continue;
        }
        let authz_id = front.random_id()?;
        let mut challenges = Vec::new();
        for kind in challenge_types(identifier) {
            let mut token = [0u8; TOKEN_BYTES];
            front
                .engine
                .ca()
                .random()
                .fill(&mut token)
                .map_err(CaError::from)?;
            challenges.push(ChallengeRecord {
                kind: kind.name().into(),
                token: token_from_bytes(&token),
                status: ChallengeStatus::Pending,
                validated: None,
                started: None,
                error: None,
                validation_record: None,
            });
        }
        let authz = AuthzRecord {
            account: *account_id,
            identifier: stored,
            wildcard: identifier.is_wildcard(),
            status: AuthzStatus::Pending,
            expires,
            challenges,
        };
        write.puts.push(records::put(&authz_id, &authz, None)?);
        authorizations.push(authz_id);
    }
    let order = OrderRecord {
        account: *account_id,
        profile,
        identifiers: request
            .identifiers
            .iter()
            .map(StoredIdentifier::from_identifier)
            .collect(),
        status: OrderStatus::Pending,
        expires,
        authorizations,
        error: None,
        serial: None,
        created_at: at,
        replaces: request.replaces,
    };
    write.puts.push(records::put(&id, &order, None)?);
    write.index.push(AcmeIndexOp::Link {
        key: records::order_link(account_id, at, &id),
    });
    write.index.extend(replaced);
    front.engine.acme_write(write).await?;
    let status = current_status(front, &order)?;
    let answer = Answer::json(StatusCode::CREATED, order_json(urls, &id, &order, status));
    Ok(with_retry(answer.location(urls.order(&id)), status))
}

/// Refuses with `rateLimited` (and Retry-After: when the oldest of them leaves the hour)
/// when the list under `prefix`, whose keys are the prefix and a big-endian Unix time, has
/// `limit` members from the last hour; `what` says what was counted.
fn check_hourly(
    front: &AcmeFront,
    prefix: &[u8],
    limit: u32,
    at: i64,
    what: &str,
) -> Result<(), Refusal> {
    let limit = limit as usize;
    if limit == 0 {
        return Ok(());
    }
    let mut after = prefix.to_vec();
    after.extend_from_slice(&((at - 3600).max(0) as u64).to_be_bytes());
    let recent = front.engine.acme_links(prefix, Some(&after), limit)?;
    if recent.len() < limit {
        return Ok(());
    }
    let oldest = recent
        .first()
        .and_then(|key| key.get(prefix.len()..prefix.len() + 8))
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(at, |b| u64::from_be_bytes(b) as i64);
    Err(Refusal {
        problem: Box::new(Problem::new(
            ProblemType::RateLimited,
            format!("{limit} {what} in the last hour"),
        )),
        status: None,
        retry_after: Some((oldest + 3600 - at).max(1) as u64),
        location: None,
    })
}

/// A valid, unexpired authorization of this account for this identifier, listed for reuse
/// when it became valid (for `[acme] authz_reuse_secs`, RFC 8555 section 7.1.4); a wildcard
/// needs one proven by dns-01 for a wildcard.
fn reusable_authz(
    front: &AcmeFront,
    account: &Id,
    identifier: &StoredIdentifier,
    wildcard: bool,
    at: i64,
) -> Result<Option<Id>, Refusal> {
    if front.config.authz_reuse_secs <= 0 {
        return Ok(None);
    }
    let prefix = records::authz_prefix(account, identifier);
    let mut after = prefix.clone();
    after.extend_from_slice(&(at.max(0) as u64).to_be_bytes());
    for key in front.engine.acme_links(&prefix, Some(&after), 8)? {
        let Some(id) = key
            .get(prefix.len() + 8..)
            .and_then(|b| <[u8; 16]>::try_from(b).ok())
        else {
            continue;
        };
        let Some(authz) = records::load::<AuthzRecord>(&front.engine, &id)? else {
            continue;
        };
        let authz = authz.record;
        // A wildcard needs an authorization proven by dns-01; any serves a plain name.
        let fits = !wildcard || authz.wildcard;
        if authz.status == AuthzStatus::Valid
            && authz.expires > at
            && fits
            && authz.account == *account
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// The authorization's status as of now: `pending` and `valid` past `expires` are
/// `expired`.
pub fn authz_status(authz: &AuthzRecord, at: i64) -> AuthzStatus {
    match authz.status {
        AuthzStatus::Pending | AuthzStatus::Valid if at >= authz.expires => AuthzStatus::Expired,
        status => status,
    }
}

/// The order's status as of now (RFC 8555 section 7.1.6): a stored `pending` is `invalid`
/// once expired or once an authorization is not pending or valid, `ready` once all are
/// valid.
pub fn current_status(front: &AcmeFront, order: &OrderRecord) -> Result<OrderStatus, Refusal> {
    let at = now();
    match order.status {
        OrderStatus::Pending | OrderStatus::Ready => {}
        status => return Ok(status),
    }
    if at >= order.expires {
        return Ok(OrderStatus::Invalid);
    }
    let mut all_valid = true;
    for id in &order.authorizations {
        let authz = records::load::<AuthzRecord>(&front.engine, id)?.ok_or_else(|| {
            ca_core::error::CaError::Storage("an order names a missing authorization".into())
        })?;
        match authz_status(&authz.record, at) {
            AuthzStatus::Valid => {}
            AuthzStatus::Pending => all_valid = false,
            _ => return Ok(OrderStatus::Invalid),
        }
    }
    Ok(if all_valid {
        OrderStatus::Ready
    } else {
        OrderStatus::Pending
    })
}

/// The order object (RFC 8555 section 7.1.3).
pub fn order_json(urls: &Urls, id: &Id, order: &OrderRecord, status: OrderStatus) -> Value {
    let mut body = json!({
        "status": status.as_str(),
        "expires": rfc3339(order.expires),
        "identifiers": order.identifiers.iter().map(|i| json!({"type": i.kind, "value": i.value})).collect::<Vec<_>>(),
        "authorizations": order.authorizations.iter().map(|a| urls.authz(a)).collect::<Vec<_>>(),
        "finalize": format!("{}/finalize", urls.order(id)),
        "profile": order.profile,
    });
    if let Some(error) = &order.error {
        body["error"] = error.clone();
    }
    if let Some(serial) = &order.serial {
        body["certificate"] = urls.certificate(serial).into();
    }
    if let Some(replaces) = &order.replaces {
        body["replaces"] = replaces.clone().into();
    }
    body
}

/// An order of the requester's own account.
fn own_order(
    front: &AcmeFront,
    requester: &Requester,
    path_id: &str,
) -> Result<(Id, Versioned<OrderRecord>), Refusal> {
    let (account, _) = requester.account()?;
    let not_found = || {
        let mut refusal = Refusal::from(Problem::malformed("no such order"));
        refusal.status = Some(StatusCode::NOT_FOUND);
        refusal
    };
    let id = parse_id(path_id).ok_or_else(not_found)?;
    let order = records::load::<OrderRecord>(&front.engine, &id)?.ok_or_else(not_found)?;
    if order.record.account != *account {
        return Err(Problem::new(
            ProblemType::Unauthorized,
            "the order belongs to another account",
        )
        .into());
    }
    Ok((id, order))
}

/// A pending or processing order's answer asks to poll again later.
fn with_retry(answer: Answer, status: OrderStatus) -> Answer {
    match status {
        OrderStatus::Pending | OrderStatus::Processing => {
            answer.with(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())
        }
        _ => answer,
    }
}

/// `POST /acme/order/{id}` (POST-as-GET).
pub async fn order(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path(path_id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/order/{path_id}");
    post_with(
        &state,
        &host,
        &path,
        "order",
        KeyForm::Kid,
        body,
        |front, urls, requester| async move {
            if !requester.jws.is_post_as_get() {
                return Err(Problem::malformed(
                    "an order is read with POST-as-GET (an empty payload)",
                )
                .into());
            }
            let (id, order) = own_order(&front, &requester, &path_id)?;
            let status = current_status(&front, &order.record)?;
            Ok(with_retry(
                Answer::json(
                    StatusCode::OK,
                    order_json(&urls, &id, &order.record, status),
                ),
                status,
            ))
        },
    )
    .await
}

/// An order that `replaces` a certificate (RFC 9773 section 5) must name one this account
/// ordered and share an identifier with it, and no other order that is not invalid may
/// replace it already (`alreadyReplaced`, 409). Answers the index changes that make order
/// `id` its replacement, written with the order (a race between two loses on the claim).
fn check_replaces(
    front: &AcmeFront,
    account_id: &Id,
    identifiers: &[AcmeIdentifier],
    cert_id: &str,
    id: &Id,
) -> Result<Vec<AcmeIndexOp>, Refusal> {
    let not_ours = || Problem::malformed("replaces names no certificate this account ordered");
    let serial = super::cert::cert_id_serial(cert_id)?.ok_or_else(not_ours)?;
    let serial = serial.to_hex();
    let ordered_by = front
        .engine
        .acme_claim_holder(&records::certificate_key(&serial))?
        .and_then(|holder| Id::try_from(holder.as_slice()).ok())
        .ok_or_else(not_ours)?;
    let old = records::load::<OrderRecord>(&front.engine, &ordered_by)?.ok_or_else(not_ours)?;
    if old.record.account != *account_id {
        return Err(not_ours().into());
    }
    let shares = identifiers
        .iter()
        .map(StoredIdentifier::from_identifier)
        .any(|i| old.record.identifiers.contains(&i));
    if !shares {
        return Err(Problem::malformed(
            "replaces names a certificate that shares no identifier with this order",
        )
        .into());
    }
    let key = records::replaced_key(&serial);
    let claim = AcmeIndexOp::Claim {
        key: key.clone(),
        id: id.to_vec(),
    };
    let Some(holder) = front.engine.acme_claim_holder(&key)? else {
        return Ok(vec![claim]);
    };
    let replacing = Id::try_from(holder.as_slice())
        .ok()
        .map(|other| records::load::<OrderRecord>(&front.engine, &other))
        .transpose()?
        .flatten();
    match replacing {
        Some(other) if current_status(front, &other.record)? != OrderStatus::Invalid => {
            Err(Problem::new(
                ProblemType::AlreadyReplaced,
                format!("certificate {serial} is replaced by another order already"),
            )
            .into())
        }
        // Its replacement failed: this order takes its place.
        _ => Ok(vec![AcmeIndexOp::Release { key }, claim]),
    }
}

/// The CSR's names must be the order's identifiers (RFC 8555 section 7.4): every SAN an
/// identifier and every identifier a SAN, a subject CN one of them. Answers the verified
/// CSR, which the engine then issues without verifying it again.
fn check_csr_names(order: &OrderRecord, csr: &[u8]) -> Result<VerifiedCsr, Refusal> {
    let verified = ca_core::csr::parse_and_verify(csr)?;
    let wanted: BTreeSet<String> = order.identifiers.iter().map(|i| i.value.clone()).collect();
    let mut named = BTreeSet::new();
    for san in &verified.sans {
        match san {
            San::Dns(name) => named.insert(name.to_ascii_lowercase()),
            San::Ip(ip) => named.insert(ip.to_string()),
            other => {
                return Err(Problem::new(
                    ProblemType::BadCsr,
                    format!("the CSR asks for {other}, which is not an identifier of the order"),
                )
                .into())
            }
        };
    }
    if named != wanted {
        let missing: Vec<_> = wanted.difference(&named).cloned().collect();
        let extra: Vec<_> = named.difference(&wanted).cloned().collect();
        return Err(Problem::new(
            ProblemType::BadCsr,
            format!(
                "the CSR's names are not the order's identifiers (missing: [{}], not in the order: [{}])",
                missing.join(", "),
                extra.join(", ")
            ),
        )
        .into());
    }
    Ok(verified)
}

/// `POST /acme/order/{id}/finalize` (RFC 8555 section 7.4): a ready order and a CSR of its
/// names become a certificate, issued by the engine with the account's requester; the
/// order is `processing` while it is issued, then `valid` with the certificate's URL, or
/// `invalid` with why.
pub async fn finalize(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path(path_id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/order/{path_id}/finalize");
    post_with(
        &state,
        &host,
        &path,
        "finalize",
        KeyForm::Kid,
        body,
        |front, urls, requester| async move {
            let (account_id, account) = requester.account()?;
            let account: AccountRecord = account.record.clone();
            let account_uri = urls.account(account_id);
            let (id, order) = own_order(&front, &requester, &path_id)?;
            let request = Finalize::parse(requester.jws.payload())?;
            let status = current_status(&front, &order.record)?;
            // A processing order is finalized again: the engine's idempotency key (the order)
            // answers the certificate it already issued, so a retry after a passing failure or
            // a crash finishes the order rather than issuing twice.
            if status != OrderStatus::Ready && status != OrderStatus::Processing {
                return Err(Problem::new(
                    ProblemType::OrderNotReady,
                    format!("the order is {}, not ready", status.as_str()),
                )
                .into());
            }
            let verified = check_csr_names(&order.record, &request.csr)?;
            if status == OrderStatus::Ready && !front.config.caa_identities.is_empty() {
                let at = now();
                for authz_id in &order.record.authorizations {
                    if let Some(authz) = records::load::<AuthzRecord>(&front.engine, authz_id)? {
                        super::authz::recheck_caa(&front, &authz.record, &account_uri, at).await?;
                    }
                }
            }

            let mut processing = order.record.clone();
            processing.status = OrderStatus::Processing;
            let event = |status: OrderStatus| {
                AuditEvent::new(
                    now(),
                    &account.requester,
                    AuditAction::AcmeOrderUpdated,
                    ca_acme::b64url(&id),
                )
                .with("status", status.as_str())
            };
            let mut version = order.version;
            if status == OrderStatus::Ready {
                front
                    .engine
                    .acme_write(AcmeWrite {
                        puts: vec![records::put(&id, &processing, Some(version))?],
                        index: Vec::new(),
                        event: event(OrderStatus::Processing),
                    })
                    .await?;
                version += 1;
            }
            let issued = front
                .engine
                .issue_verified(
                    IssueRequest {
                        csr: request.csr,
                        profile: processing.profile.clone(),
                        identity: Identity::default(),
                        validity_days: None,
                        request_id: Some(format!("acme-order-{}", ca_acme::b64url(&id))),
                        requester: EngineRequester {
                            name: account.requester.clone(),
                            token_hash: account.requester_token_hash,
                            protocol: Protocol::Acme,
                        },
                    },
                    verified,
                )
                .await;
            let mut done = processing.clone();
            let mut write = AcmeWrite {
                puts: Vec::new(),
                index: Vec::new(),
                event: event(OrderStatus::Valid),
            };
            let outcome = match issued {
                Ok(issued) => {
                    let serial = issued.record.serial.to_hex();
                    done.status = OrderStatus::Valid;
                    write.index.push(AcmeIndexOp::Claim {
                        key: records::certificate_key(&serial),
                        id: id.to_vec(),
                    });
                    write.event = write.event.with("serial", serial.clone());
                    done.serial = Some(serial);
                    Ok(())
                }
                Err(e) => {
                    let refusal = Refusal::from(e);
                    done.status = OrderStatus::Invalid;
                    done.error = Some(refusal.problem.to_json());
                    write.event =
                        event(OrderStatus::Invalid).with("error", refusal.problem.kind.name());
                    Err(refusal)
                }
            };
            // A passing failure (the store or the signer unavailable) leaves the order
            // processing, for the client's retry of finalize.
            if let Err(refusal) = outcome {
                if refusal.retry_after.is_some() {
                    return Err(refusal);
                }
                write.puts.push(records::put(&id, &done, Some(version))?);
                front.engine.acme_write(write).await?;
                return Err(refusal);
            }
            write.puts.push(records::put(&id, &done, Some(version))?);
            front.engine.acme_write(write).await?;
            Ok(
                Answer::json(StatusCode::OK, order_json(&urls, &id, &done, done.status))
                    .location(urls.order(&id)),
            )
        },
    )
    .await
}
