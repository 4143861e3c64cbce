//! The EST front end (RFC 7030, with RFC 8951): certificates enrolled by devices, translated
//! into engine calls.
//!
//! - `cacerts` and `csrattrs` are public (RFC 7030 sections 4.1 and 4.5);
//! - `simpleenroll` and `serverkeygen` are authenticated ([`auth`]) either as a subscriber
//!   redeeming an enrolment (HTTP Basic: the enrolment's id and one-time code; the engine's
//!   redemption, which counts wrong codes and locks, and whose subject and SANs win over the
//!   CSR's) or as an RA (its bearer token or its mapped TLS client certificate; issued as
//!   `POST /v1/certificates` would);
//! - `simplereenroll` is authenticated by the TLS client certificate being renewed, which
//!   [`auth::own_certificate`] finds among the certificates this CA issued; the engine's
//!   renewal keeps the key or re-keys.
//!
//! Bodies are base64 DER ([`ca_core::est`]); errors are short `text/plain` messages (RFC 7030
//! section 4.2.3), never a 500 for bad input. Every certificate issued here is audited with
//! `protocol: est`.

pub mod auth;
pub mod config;
mod routes;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ca_core::engine::Engine;
use ca_core::CaError;

pub use config::EstConfig;

use crate::api::{ApiError, AppState};

/// Where the EST routes live (RFC 7030 section 3.2.2).
pub const PREFIX: &str = "/.well-known/est";

/// The operations of RFC 7030 section 3.2.2 this front serves.
pub const OPERATIONS: [&str; 5] = [
    "cacerts",
    "simpleenroll",
    "simplereenroll",
    "serverkeygen",
    "csrattrs",
];

/// Whether `route` (a router path template) is one of the EST routes, all of which
/// authenticate their callers themselves.
pub fn is_route(route: &str) -> bool {
    route
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(|rest| rest.strip_prefix("{profile}/").unwrap_or(rest))
        .is_some_and(|op| OPERATIONS.contains(&op))
}

/// What the EST handlers share.
pub struct EstFront {
    engine: Arc<Engine>,
    config: EstConfig,
    metrics: EstMetrics,
}

impl std::fmt::Debug for EstFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EstFront")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `ca_est_*` metrics.
#[derive(Clone, Debug)]
pub struct EstMetrics {
    /// Requests answered, by operation and outcome (`ok` or the HTTP status).
    pub requests: prometheus::IntCounterVec,
}

impl EstMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let requests = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                // The registry prefixes `ca_`: exposed as ca_est_requests_total.
                "est_requests_total",
                "EST requests answered, by operation and outcome (ok or the HTTP status)",
            ),
            &["operation", "outcome"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        Ok(EstMetrics { requests })
    }
}

/// Why the EST front could not start.
#[derive(Debug, thiserror::Error)]
pub enum EstStartError {
    /// `[est] profile` or `profiles` names a profile that does not exist or is a CA profile.
    #[error("[est] names the profile {0:?}, which is not an end-entity profile of this CA")]
    Profile(String),
    /// The metrics could not be registered.
    #[error("[est] metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl EstFront {
    /// Starts the front for `engine` with `config`, checking its profiles.
    pub fn start(engine: Arc<Engine>, config: EstConfig) -> Result<Self, EstStartError> {
        for name in std::iter::once(&config.profile).chain(&config.profiles) {
            match engine.ca().profile(name) {
                Ok(profile) if profile.ca.is_none() => {}
                _ => return Err(EstStartError::Profile(name.clone())),
            }
        }
        let metrics = EstMetrics::register(engine.metrics().registry())?;
        Ok(EstFront {
            engine,
            config,
            metrics,
        })
    }

    /// The profile a request's path names (`None`: the default one), when it is served.
    fn profile(&self, label: Option<&str>) -> Result<String, EstError> {
        match label {
            None => Ok(self.config.profile.clone()),
            Some(p) if self.config.serves(p) => Ok(p.to_string()),
            Some(_) => Err(EstError::new(
                StatusCode::NOT_FOUND,
                "no EST service for this profile label",
            )),
        }
    }
}

/// The EST routes, with and without a profile label.
pub fn routes() -> Router<Arc<AppState>> {
    routes::router()
}

/// An EST error answer: a status and a short `text/plain` message (RFC 7030 section 4.2.3);
/// a 401 carries `WWW-Authenticate: Basic` (RFC 7235 section 3.1).
#[derive(Debug)]
pub struct EstError {
    status: StatusCode,
    message: String,
    code: &'static str,
}

impl EstError {
    /// An error with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        EstError {
            status,
            message: message.into(),
            code: "est_error",
        }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        EstError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: credentials are missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        EstError::new(StatusCode::UNAUTHORIZED, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<CaError> for EstError {
    fn from(e: CaError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for EstError {
    fn from(e: ApiError) -> Self {
        EstError {
            status: e.status,
            message: e.message,
            code: e.code,
        }
    }
}

impl From<ca_core::est::EstBodyError> for EstError {
    fn from(e: ca_core::est::EstBodyError) -> Self {
        match e {
            ca_core::est::EstBodyError::Credentials => EstError::unauthorized(e.to_string()),
            ca_core::est::EstBodyError::TooLarge => {
                EstError::new(StatusCode::PAYLOAD_TOO_LARGE, e.to_string())
            }
            _ => EstError::bad_request(e.to_string()),
        }
    }
}

/// The realm of the Basic challenge.
const CHALLENGE: &str = "Basic realm=\"est\", charset=\"UTF-8\"";

impl IntoResponse for EstError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response();
        response
            .extensions_mut()
            .insert(crate::request_log::ErrorCode(self.code));
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(CHALLENGE),
            );
        }
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn est_routes_are_recognised_with_and_without_a_label() {
        assert!(is_route("/.well-known/est/cacerts"));
        assert!(is_route("/.well-known/est/{profile}/simpleenroll"));
        assert!(!is_route("/.well-known/est/{profile}/other"));
        assert!(!is_route("/.well-known/estx/cacerts"));
        assert!(!is_route("/v1/certificates"));
    }

    #[test]
    fn a_401_challenges_for_basic_credentials_in_plain_text() {
        let response = EstError::unauthorized("no").into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], CHALLENGE);
        assert!(response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
    }
}
