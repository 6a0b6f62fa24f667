//! Extractors that turn every kind of bad input into an [`ApiError`] instead of axum's
//! plain-text rejections.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Request},
    http::{header, request::Parts, StatusCode},
};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::ApiError;

/// JSON body: 415 without a JSON content type, 413 when too large, 400 `invalid_json` when
/// malformed, 400 `validation_failed` (with the field path) when of the wrong shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        parse_json(&json_body(req, state).await?).map(ApiJson)
    }
}

/// The bytes of a JSON body, with [`ApiJson`]'s errors for a missing JSON content type (415)
/// and a body over the limit (413).
pub async fn json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
                v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
            });
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a body with content-type application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "request body is too large")
            } else {
                ApiError::bad_request(format!("cannot read request body: {rejection}"))
            }
        })?;
        Ok(bytes)
    }
}

/// Turns numbers without a fractional part (`17.0`) into integers: JSON does not tell the two
/// apart, and neither does the published schema.
fn whole_numbers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15) {
                *v = if f < 0.0 { json!(f as i64) } else { json!(f as u64) };
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        serde_json::Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// Parses JSON bytes into `T` with errors that name the offending field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The request path: straight into `T`. Only a body that does not fit goes through a
    // `Value` (whole numbers written as `17.0` for integer fields, and errors that name the
    // field); fields kept as JSON values read whole floats themselves (`time::parse_ts`).
    if let Ok(parsed) = serde_json::from_slice(bytes) {
        return Ok(parsed);
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|inner| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed JSON: {inner}"))
    })?;
    from_value(value)
}

/// A parsed JSON value into `T`, with errors that name the offending field.
pub fn from_value<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, ApiError> {
    whole_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("malformed JSON: {inner}"))
        } else {
            let text = inner.to_string();
            // serde names missing and unknown fields only in its message: `missing field `name``.
            let named = ["missing field `", "unknown field `"]
                .iter()
                .find_map(|p| text.strip_prefix(p).and_then(|rest| rest.split('`').next()))
                .map(str::to_string);
            let field = match (path.as_str(), named) {
                (".", Some(name)) => name,
                (".", None) => String::new(),
                (p, Some(name)) if text.starts_with("missing") => format!("{p}.{name}"),
                (p, _) => p.to_string(),
            };
            let inner = text;
            let message = if field.is_empty() { inner.to_string() } else { format!("{field}: {inner}") };
            ApiError::bad_request(message)
                .with_details(json!({"errors": [{"field": field, "message": inner.to_string()}]}))
        }
    })
}

/// An optional JSON body: nothing (or only whitespace) and `null` both mean "none".
pub fn optional_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<Option<T>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    parse_json::<Option<T>>(bytes)
}

/// Query string with a 400 naming the bad parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner().to_string();
            let field = if field == "." { String::new() } else { field };
            let message = if field.is_empty() { inner.clone() } else { format!("{field}: {inner}") };
            ApiError::bad_request(format!("invalid query string: {message}"))
                .with_details(json!({"errors": [{"field": field, "message": inner}]}))
        })
    }
}

/// Path parameters with a 400 instead of axum's plain-text rejection.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| ApiPath(p))
            .map_err(|e| ApiError::bad_request(format!("invalid path: {}", e.body_text())))
    }
}
