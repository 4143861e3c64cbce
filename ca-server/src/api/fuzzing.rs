//! A hook for the `json_bodies` fuzz target (`fuzz/fuzz_targets/json_bodies.rs`): the JSON
//! request bodies of the API, decoded into the handlers' own types, followed by the cheap,
//! side-effect-free checks the handlers and the engine run on them next. Not part of the API.

use ca_core::csr::{self, San};
use ca_core::enrollment::EnrollmentCode;
use ca_core::name;
use ca_core::profile::{Identity, Profile};
use ca_core::revocation::{parse_invalidity_date, RevocationConfig, RevocationReason};
use time::OffsetDateTime;

use super::audit::TokenBody;
use super::certificates::{check_request_id, BatchBody, IssueBody, RenewBody};
use super::enrollments::{self, CreateBody, RedeemBody};
use super::revocation::RevokeBody;
use crate::auth::{new_token, Role};

/// Most requests of a batch body parsed and checked per input (the server's limit is
/// configured).
const MAX_BATCH_CHECKED: usize = 16;

/// Decodes `data` as each JSON request body of the API (issuance, batch, renewal,
/// revocation, enrollment creation and redemption, token creation) with `serde_json`, as the
/// handlers do, and runs the validation that follows on whatever decodes. Never panics; the
/// results are discarded.
#[doc(hidden)]
pub fn parse_bodies(data: &[u8]) {
    let profiles = Profile::builtin();

    if let Ok(body) = serde_json::from_slice::<IssueBody>(data) {
        check_issue(&profiles, body);
    }
    if let Ok(body) = BatchBody::parse(data, MAX_BATCH_CHECKED) {
        for item in body.requests.into_iter().take(MAX_BATCH_CHECKED) {
            if let Ok(body) = serde_json::from_str::<IssueBody>(item.get()) {
                check_issue(&profiles, body);
            }
        }
    }
    if let Ok(body) = serde_json::from_slice::<RenewBody>(data) {
        let _ = check_request_id(body.request_id.as_deref());
        if let Some(csr) = body.csr {
            let _ = csr::parse_and_verify(csr.as_bytes());
        }
        let _ = body.validity_days;
    }
    if let Ok(body) = serde_json::from_slice::<RevokeBody>(data) {
        let _ = RevocationReason::from_name(&body.reason);
        if let Some(date) = body.invalidity_date {
            let floor = RevocationConfig::default()
                .min_invalidity_unix()
                .unwrap_or(0);
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let _ = parse_invalidity_date(&date, now, floor);
        }
    }
    if let Ok(body) = serde_json::from_slice::<CreateBody>(data) {
        check_create(&profiles, body);
    }
    if let Ok(body) = serde_json::from_slice::<RedeemBody>(data) {
        let _ = EnrollmentCode::normalize(&body.code);
        if let Some(csr) = body.csr {
            let _ = csr::parse_and_verify(csr.as_bytes());
        }
        if let Some(password) = body.pkcs12_password {
            let _ = ca_core::pkcs12::Pkcs12Password::new(password, 8);
        }
        let _ = body.key_type;
    }
    if let Ok(body) = serde_json::from_slice::<TokenBody>(data) {
        if let Some(role) = Role::parse(&body.role) {
            let _ = new_token(role, &body.name);
        }
    }
}

/// The issuance handler's request-id rule, then the engine's CSR check and profile check.
fn check_issue(profiles: &std::collections::BTreeMap<String, Profile>, body: IssueBody) {
    let _ = check_request_id(body.request_id.as_deref());
    let Some(profile) = profiles.get(&body.profile) else {
        return;
    };
    let Ok(identity) = body.identity.parse() else {
        return;
    };
    if let Ok(verified) = csr::parse_and_verify(body.csr.as_bytes()) {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let _ = profile.validate(&body.profile, verified, &identity, body.validity_days, now);
    }
}

/// The enrollment handler's lifetime and attempts checks, then the engine's subject, SAN and
/// profile checks, and the subject's stored form.
fn check_create(profiles: &std::collections::BTreeMap<String, Profile>, body: CreateBody) {
    // 720 hours: the default `enrollment.max_lifetime_hours`.
    let _ = enrollments::check_create(&body, 720);
    let Some(profile) = profiles.get(&body.profile) else {
        return;
    };
    let Ok(subject) = name::parse_rfc4514(&body.subject) else {
        return;
    };
    let sans: Vec<San> = body.sans.iter().map(|s| San::from_value(s)).collect();
    if let Ok(checked) = profile.check_names(&body.profile, &Identity { subject, sans }) {
        let stored = name::to_rfc4514(&checked.subject);
        let _ = name::parse_rfc4514(&stored);
        let _ = checked.sans.iter().map(San::value).count();
    }
    let _ = body.validity_days;
}
