//! The API's error shape, `{"error": {"code", "message"}}`, and the one mapping from core
//! errors to HTTP statuses.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use ca_core::{CaError, ErrorClass};
use serde_json::json;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable snake_case code.
    pub code: &'static str,
    /// A human sentence.
    pub message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 401: no token, or one this CA does not know.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    /// 403: the token's role may not do this.
    pub fn forbidden(role: &str, needed: &str) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a token with role {role} may not do this; it needs role {needed}"),
        )
    }

    /// 400 for a body that is not the expected JSON.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

/// The HTTP status of a class of core error.
pub fn status_of(class: ErrorClass) -> StatusCode {
    match class {
        ErrorClass::BadInput => StatusCode::BAD_REQUEST,
        ErrorClass::NotFound => StatusCode::NOT_FOUND,
        ErrorClass::Conflict => StatusCode::CONFLICT,
        ErrorClass::Policy => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorClass::Overloaded => StatusCode::TOO_MANY_REQUESTS,
        ErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorClass::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorClass::Forbidden => StatusCode::FORBIDDEN,
        ErrorClass::Gone => StatusCode::GONE,
        ErrorClass::Locked => StatusCode::LOCKED,
    }
}

impl From<CaError> for ApiError {
    fn from(e: CaError) -> Self {
        let status = status_of(e.class());
        if status == StatusCode::INTERNAL_SERVER_ERROR || matches!(e, CaError::Signing(_)) {
            tracing::error!(error = %e.chain(), code = e.code(), "internal error");
        }
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        response
            .extensions_mut()
            .insert(crate::request_log::ErrorCode(self.code));
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
