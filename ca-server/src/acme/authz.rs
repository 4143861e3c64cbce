//! Authorizations and challenges (RFC 8555 sections 7.5 and 8): reading them, deactivating
//! an authorization, and answering a challenge, which the validation authority then checks
//! in the background.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use ca_acme::challenge::{key_authorization, ChallengeType};
use ca_acme::messages::{parse_authz_deactivation, parse_challenge_response};
use ca_acme::{AccountKey, AuthzStatus, ChallengeStatus, Problem, ProblemType};
use ca_acme_va::{Challenge, Ident};
use ca_core::audit::{AuditAction, AuditEvent};
use ca_core::store::{AcmeIndexOp, AcmeWrite};
use serde_json::{json, Value};

use super::order::authz_status;
use super::records::{self, AccountRecord, AuthzRecord, ChallengeRecord, Id, Versioned};
use super::{
    front, now, parse_id, post_with, rfc3339, AcmeFront, Answer, KeyForm, Refusal, RequestHost,
    Requester, Urls,
};
use crate::api::AppState;

/// The challenge object (RFC 8555 section 8).
fn challenge_json(urls: &Urls, authz: &Id, challenge: &ChallengeRecord) -> Value {
    let mut body = json!({
        "type": challenge.kind,
        "url": urls.challenge(authz, &challenge.kind),
        "status": challenge.status.as_str(),
        "token": challenge.token,
    });
    if let Some(at) = challenge.validated {
        body["validated"] = rfc3339(at).into();
    }
    if let Some(error) = &challenge.error {
        body["error"] = error.clone();
    }
    if let Some(record) = &challenge.validation_record {
        body["validationRecord"] = record.clone();
    }
    body
}

/// The authorization object (RFC 8555 section 7.1.4).
fn authz_json(urls: &Urls, id: &Id, authz: &AuthzRecord) -> Value {
    let status = authz_status(authz, now());
    let mut body = json!({
        "identifier": {"type": authz.identifier.kind, "value": authz.identifier.value},
        "status": status.as_str(),
        "expires": rfc3339(authz.expires),
        "challenges": authz.challenges.iter().map(|c| challenge_json(urls, id, c)).collect::<Vec<_>>(),
    });
    if authz.wildcard {
        body["wildcard"] = true.into();
    }
    body
}

/// An authorization of the requester's own account.
fn own_authz(
    front: &AcmeFront,
    requester: &Requester,
    path_id: &str,
) -> Result<(Id, Versioned<AuthzRecord>), Refusal> {
    let (account, _) = requester.account()?;
    let not_found = || {
        let mut refusal = Refusal::from(Problem::malformed("no such authorization"));
        refusal.status = Some(StatusCode::NOT_FOUND);
        refusal
    };
    let id = parse_id(path_id).ok_or_else(not_found)?;
    let authz = records::load::<AuthzRecord>(&front.engine, &id)?.ok_or_else(not_found)?;
    if authz.record.account != *account {
        return Err(Problem::new(
            ProblemType::Unauthorized,
            "the authorization belongs to another account",
        )
        .into());
    }
    Ok((id, authz))
}

/// `POST /acme/authz/{id}`: POST-as-GET, or `{"status": "deactivated"}` (RFC 8555 section
/// 7.5.2).
pub async fn authz(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path(path_id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/authz/{path_id}");
    post_with(
        &state,
        &host,
        &path,
        "authz",
        KeyForm::Kid,
        body,
        |front, urls, requester| async move {
            let (id, authz) = own_authz(&front, &requester, &path_id)?;
            if requester.jws.is_post_as_get() {
                let status = authz_status(&authz.record, now());
                let mut answer =
                    Answer::json(StatusCode::OK, authz_json(&urls, &id, &authz.record));
                if status == AuthzStatus::Pending {
                    answer = answer.with(
                        header::RETRY_AFTER,
                        super::order::RETRY_AFTER_SECS.to_string(),
                    );
                }
                return Ok(answer);
            }
            parse_authz_deactivation(requester.jws.payload())?;
            let status = authz_status(&authz.record, now());
            if status != AuthzStatus::Pending && status != AuthzStatus::Valid {
                return Err(Problem::malformed(format!(
                    "the authorization is {}",
                    status.as_str()
                ))
                .into());
            }
            let mut changed = authz.record.clone();
            changed.status = AuthzStatus::Deactivated;
            let (_, account) = requester.account()?;
            front
                .engine
                .acme_write(AcmeWrite {
                    puts: vec![records::put(&id, &changed, Some(authz.version))?],
                    index: Vec::new(),
                    event: AuditEvent::new(
                        now(),
                        &account.record.requester,
                        AuditAction::AcmeAuthorizationDeactivated,
                        ca_acme::b64url(&id),
                    ),
                })
                .await?;
            Ok(Answer::json(
                StatusCode::OK,
                authz_json(&urls, &id, &changed),
            ))
        },
    )
    .await
}

/// `POST /acme/chall/{authz}/{type}`: `{}` asks for validation (RFC 8555 section 7.5.1);
/// POST-as-GET reads the challenge.
pub async fn challenge(
    state: State<Arc<AppState>>,
    host: RequestHost,
    Path((path_id, kind)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let path = format!("/chall/{path_id}/{kind}");
    let shared = state.0.clone();
    post_with(
        &state,
        &host,
        &path,
        "challenge",
        KeyForm::Kid,
        body,
        |front, urls, requester| async move {
            let (id, authz) = own_authz(&front, &requester, &path_id)?;
            let Some(index) = authz.record.challenges.iter().position(|c| c.kind == kind) else {
                let mut refusal = Refusal::from(Problem::malformed("no such challenge"));
                refusal.status = Some(StatusCode::NOT_FOUND);
                return Err(refusal);
            };
            let up = urls.authz(&id);
            if requester.jws.is_post_as_get() {
                let body = challenge_json(&urls, &id, &authz.record.challenges[index]);
                return Ok(Answer::json(StatusCode::OK, body).link(&up, "up"));
            }
            parse_challenge_response(requester.jws.payload())?;
            let status = authz_status(&authz.record, now());
            let challenge = &authz.record.challenges[index];
            // Only a pending challenge of a pending authorization starts a validation, or one
            // whose validation never finished (its node stopped); any other answer is the
            // challenge as it stands (RFC 8555 section 7.5.1).
            let at = now();
            let abandoned = challenge.status == ChallengeStatus::Processing
                && challenge.started.is_none_or(|started| {
                    at > started
                        + front.config.longest_validation_secs() as i64
                        + ABANDONED_AFTER_SECS
                });
            if status != AuthzStatus::Pending
                || (challenge.status != ChallengeStatus::Pending && !abandoned)
            {
                return Ok(
                    Answer::json(StatusCode::OK, challenge_json(&urls, &id, challenge))
                        .link(&up, "up"),
                );
            }
            let (account_id, account) = requester.account()?;
            let mut started = authz.record.clone();
            started.challenges[index].status = ChallengeStatus::Processing;
            started.challenges[index].started = Some(at);
            front
                .engine
                .acme_write(AcmeWrite {
                    puts: vec![records::put(&id, &started, Some(authz.version))?],
                    index: Vec::new(),
                    event: AuditEvent::new(
                        now(),
                        &account.record.requester,
                        AuditAction::AcmeChallengeStarted,
                        ca_acme::b64url(&id),
                    )
                    .with("challenge", kind.clone())
                    .with("status", "processing"),
                })
                .await?;
            let job = Validation {
                authz_id: id,
                version: authz.version + 1,
                authz: started.clone(),
                index,
                account: account.record.clone(),
                account_uri: urls.account(account_id),
            };
            // The validation runs on its own task: it finishes and stores its outcome even
            // when this answer stops waiting for it.
            let validation = tokio::spawn(validate(shared, job));
            let wait = Duration::from_millis(front.config.challenge_answer_wait_ms);
            if !wait.is_zero() {
                if let Ok(Ok(Some(done))) = tokio::time::timeout(wait, validation).await {
                    let body = challenge_json(&urls, &id, &done.challenges[index]);
                    return Ok(Answer::json(StatusCode::OK, body).link(&up, "up"));
                }
            }
            let body = challenge_json(&urls, &id, &started.challenges[index]);
            Ok(Answer::json(StatusCode::OK, body).link(&up, "up").with(
                header::RETRY_AFTER,
                super::order::RETRY_AFTER_SECS.to_string(),
            ))
        },
    )
    .await
}

/// How long past its timeout a validation that has not stored its outcome counts as
/// abandoned, in seconds.
const ABANDONED_AFTER_SECS: i64 = 30;

/// One validation to run: the authorization as it was stored when it started.
struct Validation {
    authz_id: Id,
    version: u64,
    authz: AuthzRecord,
    index: usize,
    account: AccountRecord,
    account_uri: String,
}

/// Runs a validation and stores its outcome: the authorization valid (and listed for
/// reuse) or invalid, with the challenge's error and validation record, in one audited
/// write. Answers the authorization as stored, `None` when its outcome could not be stored.
async fn validate(state: Arc<AppState>, job: Validation) -> Option<AuthzRecord> {
    let front = front(&state)?;
    let Validation {
        authz_id,
        version,
        mut authz,
        index,
        account,
        account_uri,
    } = job;
    let challenge = authz.challenges[index].clone();
    let outcome = check(front, &authz, &challenge, &account, &account_uri).await;
    let at = now();
    let kind = challenge.kind.clone();
    let mut write = AcmeWrite {
        puts: Vec::new(),
        index: Vec::new(),
        event: AuditEvent::new(
            at,
            &account.requester,
            AuditAction::AcmeAuthorizationValidated,
            ca_acme::b64url(&authz_id),
        )
        .with("challenge", kind.clone())
        .with(
            "identifier",
            format!("{}:{}", authz.identifier.kind, authz.identifier.value),
        ),
    };
    let label = match &outcome {
        Ok(record) => {
            authz.status = AuthzStatus::Valid;
            let c = &mut authz.challenges[index];
            c.status = ChallengeStatus::Valid;
            c.validated = Some(at);
            c.validation_record = Some(record.clone());
            if front.config.authz_reuse_secs > 0 {
                // Valid, and reusable by the account's new orders, for the reuse window.
                authz.expires = authz.expires.max(at + front.config.authz_reuse_secs);
                write.index.push(AcmeIndexOp::Link {
                    key: records::authz_link(
                        &authz.account,
                        &authz.identifier,
                        authz.expires,
                        &authz_id,
                    ),
                });
            }
            "valid".to_string()
        }
        Err(problem) => {
            authz.status = AuthzStatus::Invalid;
            let c = &mut authz.challenges[index];
            c.status = ChallengeStatus::Invalid;
            c.error = Some(problem.to_json());
            write.event.action = AuditAction::AcmeAuthorizationInvalid;
            write.index.push(AcmeIndexOp::Link {
                key: records::failure_link(&authz.account, &authz.identifier, at, &authz_id),
            });
            write.event = write.event.clone().with("error", problem.kind.name());
            problem.kind.name().to_string()
        }
    };
    front
        .metrics
        .validations
        .with_label_values(&[&kind, &label])
        .inc();
    match records::put(&authz_id, &authz, Some(version)) {
        Ok(put) => write.puts.push(put),
        Err(e) => {
            tracing::error!(error = %e.chain(), "storing an ACME validation's outcome");
            return None;
        }
    }
    match front.engine.acme_write(write).await {
        Ok(()) => Some(authz),
        Err(e) => {
            tracing::error!(error = %e.chain(), authz = %ca_acme::b64url(&authz_id), "storing an ACME validation's outcome");
            None
        }
    }
}

/// The validation itself: the challenge (RFC 8555 section 8), then CAA (RFC 8659) when the
/// CA has CAA identities.
async fn check(
    front: &AcmeFront,
    authz: &AuthzRecord,
    challenge: &ChallengeRecord,
    account: &AccountRecord,
    account_uri: &str,
) -> Result<Value, Problem> {
    let key = AccountKey::from_json(account.key.as_bytes())?;
    let key_authz = key_authorization(&challenge.token, &key.thumbprint_b64());
    let (ident, kind) = va_terms(authz, challenge)?;
    let records = front
        .va
        .validate(kind, &ident, &challenge.token, &key_authz)
        .await?;
    caa(front, authz, challenge, account_uri).await?;
    serde_json::to_value(records).map_err(|_| {
        Problem::new(
            ProblemType::ServerInternal,
            "encoding the validation record",
        )
    })
}

/// Checks CAA again before issuance for a valid authorization whose validation (and CAA
/// check) was `[acme] caa_recheck_secs` or more before `at`: the CA/B Forum Baseline
/// Requirements (3.2.2.8) let a CAA check stand for at most 8 hours, and a reused
/// authorization may be older. Nothing to do without `[acme] caa_identities`.
pub(super) async fn recheck_caa(
    front: &AcmeFront,
    authz: &AuthzRecord,
    account_uri: &str,
    at: i64,
) -> Result<(), Problem> {
    if front.config.caa_identities.is_empty() {
        return Ok(());
    }
    let Some((challenge, validated)) = authz
        .challenges
        .iter()
        .find_map(|c| Some((c, c.validated?)).filter(|_| c.status == ChallengeStatus::Valid))
    else {
        return Ok(());
    };
    if at - validated < front.config.caa_recheck_secs {
        return Ok(());
    }
    caa(front, authz, challenge, account_uri).await
}

/// CAA (RFC 8659, RFC 8657) for an authorization's identifier and the method of
/// `challenge`, when the CA has `[acme] caa_identities`.
async fn caa(
    front: &AcmeFront,
    authz: &AuthzRecord,
    challenge: &ChallengeRecord,
    account_uri: &str,
) -> Result<(), Problem> {
    if front.config.caa_identities.is_empty() {
        return Ok(());
    }
    let (ident, kind) = va_terms(authz, challenge)?;
    front
        .va
        .check_caa(
            &ident,
            authz.wildcard,
            &front.config.caa_identities,
            account_uri,
            kind,
        )
        .await
}

/// A stored authorization's identifier and one of its challenges' types, as the validation
/// authority takes them.
fn va_terms(
    authz: &AuthzRecord,
    challenge: &ChallengeRecord,
) -> Result<(Ident, Challenge), Problem> {
    let ident = match authz.identifier.kind.as_str() {
        "ip" => Ident::Ip(
            authz
                .identifier
                .value
                .parse()
                .map_err(|_| Problem::malformed("the stored ip identifier does not parse"))?,
        ),
        _ => Ident::Dns(authz.identifier.value.clone()),
    };
    let kind = match ChallengeType::from_name(&challenge.kind) {
        Some(ChallengeType::Http01) => Challenge::Http01,
        Some(ChallengeType::Dns01) => Challenge::Dns01,
        Some(ChallengeType::TlsAlpn01) => Challenge::TlsAlpn01,
        None => return Err(Problem::malformed("unknown challenge type")),
    };
    Ok((ident, kind))
}
