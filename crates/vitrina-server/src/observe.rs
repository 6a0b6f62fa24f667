//! Observability: the Prometheus recorder and `/metrics`, per-route request metrics, and
//! the JSON error answered when a handler panics.

use std::{sync::OnceLock, time::Instant};

use axum::{
    body::Body,
    extract::{MatchedPath, Request},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;

const LATENCY_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("static buckets are valid");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics_endpoint() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], prometheus().render()).into_response()
}

/// Requests slower than this are logged at INFO even when they succeed.
const SLOW: std::time::Duration = std::time::Duration::from_millis(100);

/// The access log, inside the request's span (method, path, request id): errors at WARN,
/// slow requests at INFO, the rest at DEBUG — a JSON line per request at 10k requests/s
/// cost ~8 % of the CPU (perf; docs/BENCHMARKS.md), `RUST_LOG=…,tower_http=debug` or
/// `[log] level = "debug"` turns them on.
pub fn access_log<B>(
    response: &axum::http::Response<B>,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    let status = response.status().as_u16();
    let ms = latency.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::error!(status, latency_ms = ms, "request failed");
    } else if status >= 400 {
        tracing::warn!(status, latency_ms = ms, "request rejected");
    } else if latency >= SLOW {
        tracing::info!(status, latency_ms = ms, "slow request");
    } else {
        tracing::debug!(status, latency_ms = ms, "request");
    }
}

/// Counts requests and records latency by method, route template and status.
pub async fn track_requests(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    tracing::Span::current().record("route", route.as_str());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("vitrina_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("vitrina_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Gives every error response the documented JSON shape: responses a framework layer
/// produced with an empty body (an unknown docs asset, a method the docs router does not
/// serve…) get the body of the matching [`ApiError`].
pub async fn error_shape(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let response = next.run(req).await;
    let status = response.status();
    let empty = response.headers().get(header::CONTENT_LENGTH).is_some_and(|v| v == "0")
        || response.headers().get(header::CONTENT_TYPE).is_none();
    if !(status.is_client_error() || status.is_server_error()) || !empty {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::not_found(format!("no route for {method} {path}")),
        StatusCode::METHOD_NOT_ALLOWED => {
            ApiError::new(status, "method_not_allowed", format!("{method} is not allowed on {path}"))
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "payload_too_large", "request body is too large")
        }
        s if s.is_server_error() => {
            ApiError::internal(format!("{method} {path} answered {s} without a body"))
        }
        s => ApiError::new(s, "bad_request", format!("{method} {path}: {s}")),
    };
    let mut fixed = error.into_response();
    *fixed.status_mut() = status;
    fixed
}

/// Answers a panicking handler with the generic 500 error body (the panic is logged).
pub fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    let mut response = ApiError::internal(format!("handler panicked: {detail}")).into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
