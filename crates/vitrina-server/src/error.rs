//! The one API error type and its JSON shape:
//! `{"success": false, "error": "validation_failed", "message": "…", "code": 400, "details": {…}}`.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use vitrina_core::{ports::StoreError, ValidationError};

/// The error body every failing endpoint returns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always `false`.
    pub success: bool,
    /// Machine-readable kind: `validation_failed`, `invalid_json`, `not_found`,
    /// `method_not_allowed`, `conflict`, `payload_too_large`, `unsupported_media_type`,
    /// `unauthorized`, `forbidden`, `rate_limited`, `queue_full`, `unavailable`,
    /// `internal_error`.
    pub error: String,
    pub message: String,
    /// The HTTP status, repeated.
    pub code: u16,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An error answered to the client. 5xx messages stay generic; the cause goes to the log.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub details: Value,
    /// Extra response headers (`Retry-After`…).
    pub headers: Vec<(axum::http::HeaderName, &'static str)>,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, kind, message: message.into(), details: json!({}), headers: Vec::new() }
    }

    pub fn with_header(mut self, name: axum::http::HeaderName, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", message)
    }

    /// Field errors; the message names the first, `details.errors` lists them all.
    pub fn validation(errors: Vec<ValidationError>) -> Self {
        let message = match errors.as_slice() {
            [] => "invalid request".to_string(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
        };
        let list: Vec<Value> =
            errors.iter().map(|e| json!({"field": e.field, "message": e.message})).collect();
        Self::bad_request(message).with_details(json!({ "errors": list }))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// A server-side failure: logged with its cause, answered generically.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error; see the server log")
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::validation(vec![e])
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::conflict(what),
            StoreError::Closed => Self::unavailable("the store is shutting down"),
            StoreError::Unavailable(why) => Self::unavailable(format!("storage unavailable: {why}")),
            StoreError::Backend(_) => Self::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            success: false,
            error: self.kind.to_string(),
            message: self.message,
            code: self.status.as_u16(),
            details: self.details,
        };
        let mut response = (self.status, Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, axum::http::HeaderValue::from_static(value));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
