//! The HTTP API of `docs/API.md`: routes, authentication and the shared state.

mod acme_eab;
mod audit;
mod backups;
mod certificates;
pub(crate) mod enrollments;
mod error;
pub mod fuzzing;
mod mass_revocation;
mod metrics;
mod ocsp;
mod openapi;
mod ops;
mod revocation;
mod tokens;

pub use backups::BackupSite;

use crate::request_log::RequestLog;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use bytes::Bytes;
use ca_core::crl::CrlPublisher;
use ca_core::engine::Engine;
use ca_core::ocsp::OcspResponder;
use ca_core::store::Storage;

pub use audit::{audit_entry_json, checkpoint_json};
pub use certificates::certificate_view;
pub use enrollments::{EnrollmentLimits, KeyGeneration};
pub use error::ApiError;
pub use metrics::HttpMetrics;
pub use ocsp::OcspBudget;
pub use ops::SignerCheck;
pub use tokens::MAX_TOKEN_LIFETIME_DAYS;

use crate::auth::{Caller, Role};
use crate::limits::Identity;

/// What every handler shares.
pub struct AppState {
    /// The issuance engine (and through it the CA and the store).
    pub engine: Arc<Engine>,
    /// Where `POST /v1/backup` writes.
    pub backup: Arc<BackupSite>,
    /// The CA chain as PEM strings, issuing CA first.
    pub chain_pem: Vec<String>,
    /// Most requests in one batch call.
    pub max_batch: usize,
    /// The CRL publisher.
    pub crl: Arc<CrlPublisher>,
    /// The OCSP responder.
    pub ocsp: Arc<OcspResponder>,
    /// HTTP request metrics.
    pub http_metrics: HttpMetrics,
    /// The disk under the store, measured when `/metrics` is scraped.
    pub disk: crate::disk::DiskMetrics,
    /// Limits of enrollments.
    pub enrollment: EnrollmentLimits,
    /// The earliest invalidity date a revocation may give, Unix seconds
    /// (`[revocation] min_invalidity_date`).
    pub min_invalidity_date: i64,
    /// The bounded pool for keys the CA generates for subscribers.
    pub key_generation: KeyGeneration,
    /// The budget of OCSP signatures on demand, per client and overall.
    pub ocsp_budget: OcspBudget,
    /// The names `[[tls.clients]]` entries act as: no token may take one, since a token
    /// holding a name owns the certificates requested under it.
    pub client_certificate_names: Vec<String>,
    /// The log of request outcomes.
    pub log: Arc<RequestLog>,
    /// The CA key's readiness for `/readyz`, checked at most once a second.
    pub signer_check: SignerCheck,
    /// The ACME front end, when `[acme] enabled`.
    pub acme: Option<Arc<crate::acme::AcmeFront>>,
    /// The EST front end, when `[est] enabled`.
    pub est: Option<Arc<crate::est::EstFront>>,
    /// The CMP front end, when `[cmp] enabled`.
    pub cmp: Option<Arc<crate::cmp::CmpFront>>,
}

impl AppState {
    fn store(&self) -> &dyn Storage {
        self.engine.store().as_ref()
    }
}

/// Limits of the request bodies.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Every route but the batch.
    pub single: usize,
    /// The batch endpoint.
    pub batch: usize,
    /// Bytes of request bodies in flight across the server (announced lengths, or each
    /// route's limit for bodies of unknown length).
    pub inflight: usize,
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    /// Anyone: relying parties and subscribers (CRL, OCSP, CA certificate, redemption, which
    /// its one-time code protects), and probes.
    Public,
    /// A caller authenticated by bearer token or mapped client certificate, with one of these
    /// roles.
    Roles(&'static [Role]),
}

/// The access table of the API (docs/API.md, "Access and limits"): the one place that says
/// which roles may call which route. `route` is the router's path template. A route that is
/// missing here reaches its handler without a caller, and the handler's [`Authenticated`]
/// extractor refuses it (401): a forgotten row fails closed.
fn access(method: &Method, route: &str) -> Option<Access> {
    use Access::{Public, Roles};
    const RA: &[Role] = &[Role::Ra];
    // ca-admin issues from CA profiles (the engine keeps each role to its own kind of
    // profile) and revokes what it requested; nothing else.
    const ISSUERS: &[Role] = &[Role::Ra, Role::CaAdmin];
    const READERS: &[Role] = &[Role::Auditor, Role::Ra];
    const AUDITOR: &[Role] = &[Role::Auditor];
    const OPERATOR: &[Role] = &[Role::Operator];
    const TOKEN_READERS: &[Role] = &[Role::Operator, Role::Auditor];
    let read = *method == Method::GET || *method == Method::HEAD;
    let write = *method == Method::POST;
    Some(match route {
        "/v1/certificates" if write => Roles(ISSUERS),
        "/v1/certificates" if read => Roles(READERS),
        "/v1/certificates/batch" if write => Roles(RA),
        "/v1/certificates/{serial}" | "/v1/certificates/{serial}/events" if read => Roles(READERS),
        "/v1/certificates/{serial}/revoke" if write => Roles(ISSUERS),
        "/v1/certificates/{serial}/renew" | "/v1/certificates/{serial}/release-hold" if write => {
            Roles(RA)
        }
        "/v1/audit" | "/v1/audit/checkpoint" if read => Roles(AUDITOR),
        "/v1/tokens" if write => Roles(OPERATOR),
        "/v1/tokens" if read => Roles(TOKEN_READERS),
        "/v1/tokens/{name}" if *method == Method::DELETE => Roles(OPERATOR),
        "/v1/enrollments" if write => Roles(RA),
        "/v1/enrollments/{id}" if read => Roles(READERS),
        "/v1/enrollments/{id}/redeem" if write => Public,
        "/v1/crl/generate" | "/v1/backup" if write => Roles(OPERATOR),
        "/v1/mass-revocations" if write => Roles(OPERATOR),
        "/metrics" if read => Roles(OPERATOR),
        "/crl" | "/crl/delta" | "/ocsp/{*request}" | "/ca.pem" | "/ca.der" | "/healthz"
        | "/readyz"
            if read =>
        {
            Public
        }
        "/ocsp" if write => Public,
        "/v1/acme/eab" if write => Roles(OPERATOR),
        // ACME requests authenticate themselves with JWS (RFC 8555 section 6.2).
        acme if crate::acme::ROUTES.contains(&acme) => Public,
        // EST requests authenticate themselves (HTTP Basic, a bearer token, or a TLS client
        // certificate; RFC 7030 section 3.2.3).
        est if crate::est::is_route(est) => Public,
        // CMP requests carry their own protection (RFC 9810 section 5.1.3).
        cmp if crate::cmp::ROUTES.contains(&cmp) && write => Public,
        _ => return None,
    })
}

/// The body limit of a route, in bytes: the batch's, or the single-request limit for every
/// other route (whether or not its handler reads a body).
fn body_limit(limits: &BodyLimits, route: &str) -> usize {
    match route {
        "/v1/certificates/batch" => limits.batch,
        _ => limits.single,
    }
}

/// The caller a request was authenticated as, put there by the access check before any body
/// was read. A handler that takes it cannot run unauthenticated: without one the request is
/// refused 401.
#[derive(Clone, Debug)]
pub struct Authenticated(
    /// The caller.
    pub Caller,
);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(ApiError::unauthorized)
    }
}

/// How long a request waits for room in the server's body budget before it is refused 503.
const BODY_BUDGET_WAIT: Duration = Duration::from_secs(1);

/// What the access check shares.
struct Gate {
    bodies: BodyLimits,
    /// The body budget: one permit per byte.
    budget: Arc<tokio::sync::Semaphore>,
    /// `ca_http_body_bytes_reserved`.
    reserved: prometheus::IntGauge,
}

/// True when the request announces a body (a positive length, or one of unknown length).
fn announces_body(request: &Request) -> bool {
    let body = request.body();
    !body.is_end_stream() && body.size_hint().exact() != Some(0)
}

/// An answer given before the request's body is read: when the request announced one, the
/// connection is closed after the answer (`Connection: close`) rather than the body read.
pub fn early_answer(request: &Request, error: ApiError) -> Response {
    let mut response = error.into_response();
    if announces_body(request) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body exceeds the configured limit",
    )
}

/// The access check, from the request's head alone: the route's roles against the
/// [`Identity`] that [`crate::limits::limit`] found (401 or 403 at once), then the route's
/// body limit against the announced length (413 at once), then room for the body in the
/// server's budget (503 `overloaded` after a short wait). Only then does the handler read the
/// body, through a reader that stops at the route's limit.
async fn gate(State(gate): State<Arc<Gate>>, mut request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let Some(route) = route else {
        // No route matched: the fallback answers 404 without reading a body.
        return next.run(request).await;
    };
    if let Some(Access::Roles(allowed)) = access(request.method(), &route) {
        let identity = request.extensions().get::<Identity>().cloned();
        let caller = match identity {
            Some(Identity::Caller(caller)) => caller,
            Some(Identity::Refused(e)) => {
                let e = ApiError::new(e.status, e.code, e.message.clone());
                return early_answer(&request, e);
            }
            Some(Identity::Anonymous) | None => {
                return early_answer(&request, ApiError::unauthorized())
            }
        };
        if !allowed.contains(&caller.role) {
            let needed: Vec<_> = allowed.iter().map(|r| r.name()).collect();
            let e = ApiError::forbidden(caller.role.name(), &needed.join(" or "));
            return early_answer(&request, e);
        }
        request.extensions_mut().insert(Authenticated(caller));
    }
    if !announces_body(&request) {
        return next.run(request).await;
    }
    let limit = body_limit(&gate.bodies, &route);
    let announced = request.body().size_hint().exact();
    if announced.is_some_and(|n| n > limit as u64) {
        return early_answer(&request, payload_too_large());
    }
    let reserve = announced
        .map_or(limit, |n| n as usize)
        .min(gate.bodies.inflight)
        .min(u32::MAX as usize);
    let permit = tokio::time::timeout(
        BODY_BUDGET_WAIT,
        gate.budget
            .clone()
            .acquire_many_owned(u32::try_from(reserve).unwrap_or(u32::MAX)),
    )
    .await;
    let Ok(Ok(permit)) = permit else {
        let e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many request bodies in flight; retry shortly",
        );
        return early_answer(&request, e);
    };
    let _reserved = crate::limits::CountedPermit::new(permit, &gate.reserved);
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}

/// The API listener's router: every route of `docs/API.md`.
pub fn router(state: Arc<AppState>, limits: BodyLimits) -> Router {
    let api = Router::new()
        .route(
            "/v1/certificates",
            post(certificates::issue).get(audit::list),
        )
        .route("/v1/certificates/batch", post(certificates::issue_batch))
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
        .route("/v1/mass-revocations", post(mass_revocation::step))
        .route("/v1/backup", post(backups::create))
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/openapi.json", get(openapi::get))
        .route("/v1/acme/eab", post(acme_eab::create))
        .merge(status_routes());
    let api = if state.acme.is_some() {
        api.merge(crate::acme::routes())
    } else {
        api
    };
    let api = if state.est.is_some() {
        api.merge(crate::est::routes())
    } else {
        api
    };
    let api = if state.cmp.is_some() {
        api.merge(crate::cmp::routes())
    } else {
        api
    };
    let api = api.fallback(ops::not_found);
    finish(api, state, limits)
}

/// The routes of the plain-HTTP status listener (`[public] listen`), and of plain-HTTP
/// connections to a TLS API port: what relying parties fetch over plain HTTP (RFC 5280
/// section 8), read-only and public. Every other path is answered 404 `not_found`, naming
/// these.
pub fn status_router(state: Arc<AppState>, limits: BodyLimits) -> Router {
    finish(
        status_routes().fallback(ops::not_a_status_route),
        state,
        limits,
    )
}

/// CRLs (RFC 5280), OCSP (RFC 6960, both methods) and the CA certificate.
fn status_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/crl", get(revocation::full_crl))
        .route("/crl/delta", get(revocation::delta_crl))
        .route("/ocsp", post(ocsp::post))
        .route("/ocsp/{*request}", get(ocsp::get))
        .route("/ca.pem", get(ops::ca_pem))
        .route("/ca.der", get(ops::ca_der))
}

/// The layers every listener's routes share: the gate (authentication, body limits), the
/// HTTP metrics, the method fallback.
fn finish(routes: Router<Arc<AppState>>, state: Arc<AppState>, limits: BodyLimits) -> Router {
    let gate_state = Arc::new(Gate {
        bodies: limits,
        budget: Arc::new(tokio::sync::Semaphore::new(limits.inflight.max(1))),
        reserved: state.http_metrics.body_bytes_reserved.clone(),
    });
    routes
        .method_not_allowed_fallback(ops::method_not_allowed)
        // The gate bounds every body with its route's limit; axum's own default must not cut
        // the batch route's larger one.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(gate_state, gate))
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
            payload_too_large()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route template of [`router`].
    const ROUTES: &[&str] = &[
        "/v1/certificates",
        "/v1/certificates/batch",
        "/v1/certificates/{serial}",
        "/v1/certificates/{serial}/events",
        "/v1/certificates/{serial}/renew",
        "/v1/certificates/{serial}/revoke",
        "/v1/certificates/{serial}/release-hold",
        "/v1/audit",
        "/v1/audit/checkpoint",
        "/v1/tokens",
        "/v1/tokens/{name}",
        "/v1/enrollments",
        "/v1/enrollments/{id}",
        "/v1/enrollments/{id}/redeem",
        "/v1/crl/generate",
        "/v1/mass-revocations",
        "/v1/backup",
        "/metrics",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/crl",
        "/crl/delta",
        "/ocsp",
        "/ocsp/{*request}",
        "/ca.pem",
        "/ca.der",
        "/v1/acme/eab",
        "/.well-known/cmp",
        "/.well-known/cmp/p/{profile}",
    ];

    /// A ca-admin token issues (from CA profiles: the engine's rule) and revokes what it
    /// requested, and may call no other authenticated route.
    #[test]
    fn ca_admin_may_only_issue_and_revoke() {
        for route in ROUTES {
            for method in [Method::GET, Method::HEAD, Method::POST, Method::DELETE] {
                let ca_admin = matches!(
                    access(&method, route),
                    Some(Access::Roles(roles)) if roles.contains(&Role::CaAdmin)
                );
                let expected = method == Method::POST
                    && matches!(
                        *route,
                        "/v1/certificates" | "/v1/certificates/{serial}/revoke"
                    );
                assert_eq!(ca_admin, expected, "{method} {route}");
            }
        }
    }
}
