//! The HTTP API of `../shared/API.md`: routes, authentication and the shared state.

mod audit;
mod certificates;
mod enrollments;
mod error;
pub mod fuzzing;
mod metrics;
mod ocsp;
mod openapi;
mod ops;
mod revocation;
mod tokens;

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, get, post};
use axum::Router;
use bytes::Bytes;
use ca_core::crl::CrlPublisher;
use ca_core::engine::Engine;
use ca_core::ocsp::{OcspCache, OcspResponder};
use ca_core::store::Store;
use ca_core::Serial;

pub use audit::{audit_entry_json, checkpoint_json};
pub use certificates::certificate_view;
pub use enrollments::{EnrollmentLimits, KeyGeneration};
pub use error::ApiError;
pub use metrics::HttpMetrics;
pub use ocsp::OcspBudget;
pub use tokens::MAX_TOKEN_LIFETIME_DAYS;

use crate::auth::{authenticate, certificate_caller, Caller, Role};

/// What every handler shares.
pub struct AppState {
    /// The issuance engine (and through it the CA and the store).
    pub engine: Arc<Engine>,
    /// The CA chain as PEM strings, issuing CA first.
    pub chain_pem: Vec<String>,
    /// Most requests in one batch call.
    pub max_batch: usize,
    /// The CRL publisher.
    pub crl: Arc<CrlPublisher>,
    /// The OCSP responder.
    pub ocsp: Arc<OcspResponder>,
    /// Its response cache, invalidated on every status change.
    pub ocsp_cache: Arc<OcspCache>,
    /// HTTP request metrics.
    pub http_metrics: HttpMetrics,
    /// Limits of enrolments.
    pub enrollment: EnrollmentLimits,
    /// The earliest invalidity date a revocation may give, Unix seconds
    /// (`[revocation] min_invalidity_date`).
    pub min_invalidity_date: i64,
    /// The bounded pool for keys the CA generates for subscribers.
    pub key_generation: KeyGeneration,
    /// The budget of OCSP signatures on demand, per client and overall.
    pub ocsp_budget: OcspBudget,
}

impl AppState {
    fn store(&self) -> &Store {
        self.engine.store()
    }

    /// After a revocation or a released hold: OCSP forgets its cached answer at once, and
    /// the next CRL tick rebuilds.
    fn status_changed(&self, serial: &Serial) {
        self.ocsp_cache.invalidate(serial);
        self.crl.mark_dirty();
    }

    /// Authenticates the bearer token and checks that its role is one of `allowed`.
    fn authorize(&self, headers: &HeaderMap, allowed: &[Role]) -> Result<Caller, ApiError> {
        let caller = match headers.get(axum::http::header::AUTHORIZATION) {
            Some(value) => {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(ApiError::unauthorized)?;
                authenticate(self.store(), token)?.ok_or_else(ApiError::unauthorized)?
            }
            // Without a token, a TLS client certificate mapped to a role.
            None => certificate_caller().ok_or_else(ApiError::unauthorized)?,
        };
        if !allowed.contains(&caller.role) {
            let needed: Vec<_> = allowed.iter().map(|r| r.name()).collect();
            return Err(ApiError::forbidden(
                caller.role.name(),
                &needed.join(" or "),
            ));
        }
        Ok(caller)
    }
}

/// Limits of the request bodies.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Single-request endpoints.
    pub single: usize,
    /// The batch endpoint.
    pub batch: usize,
}

/// Builds the router.
pub fn router(state: Arc<AppState>, limits: BodyLimits) -> Router {
    let single = Router::new()
        .route(
            "/v1/certificates",
            post(certificates::issue).get(audit::list),
        )
        .layer(DefaultBodyLimit::max(limits.single));
    let batch = Router::new()
        .route("/v1/certificates/batch", post(certificates::issue_batch))
        .layer(DefaultBodyLimit::max(limits.batch));
    Router::new()
        .merge(single)
        .merge(batch)
        .route("/v1/certificates/{serial}", get(certificates::get_one))
        .route("/v1/certificates/{serial}/events", get(audit::events))
        .route("/v1/audit", get(audit::log))
        .route("/v1/audit/checkpoint", get(audit::checkpoint))
        .route("/v1/tokens", post(audit::create_token).get(tokens::list))
        .route("/v1/tokens/{name}", delete(tokens::revoke))
        .route("/v1/enrollments", post(enrollments::create))
        .route("/v1/enrollments/{id}", get(enrollments::get))
        .route("/v1/enrollments/{id}/redeem", post(enrollments::redeem))
        .route("/v1/certificates/{serial}/renew", post(certificates::renew))
        .route("/v1/certificates/{serial}/revoke", post(revocation::revoke))
        .route(
            "/v1/certificates/{serial}/release-hold",
            post(revocation::release_hold),
        )
        .route("/v1/crl/generate", post(revocation::generate))
        .route("/crl", get(revocation::full_crl))
        .route("/crl/delta", get(revocation::delta_crl))
        .route("/ocsp", post(ocsp::post))
        .route("/ocsp/{*request}", get(ocsp::get))
        .route("/ca.pem", get(ops::ca_pem))
        .route("/ca.der", get(ops::ca_der))
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(openapi::get))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// Turns a body extraction failure into the API's error shape (413 for an oversized body).
fn body_or_error(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body exceeds the configured limit",
            )
        } else {
            ApiError::invalid_request(format!("unreadable request body: {rejection}"))
        }
    })
}

/// Parses a JSON body into `T`, answering 400 `invalid_request` with serde's explanation.
fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
}
