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
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("vitrina_store_commit_ops".into()), COMMIT_BUCKETS)
                })
                .expect("static buckets are valid");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            spawn_upkeep(handle.clone());
            describe();
            metrics_process::Collector::default().describe();
            handle
        })
        .clone()
}

/// How often the recorder's histograms are folded into their buckets without a scrape.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A recorder built with `build_recorder` keeps every histogram sample in a buffer until
/// `/metrics` is rendered or its upkeep runs: unscraped, about 10 bytes a sample without end
/// (`bench/soak.sh` scrapes only at its end). One thread folds them in every
/// [`UPKEEP_EVERY`], whatever runtime is or is not running.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new().name("vitrina-metrics-upkeep".into()).spawn(move || loop {
        std::thread::sleep(UPKEEP_EVERY);
        handle.run_upkeep();
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histogram samples wait for a /metrics scrape");
    }
}

/// Operations per group commit.
const COMMIT_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// `# HELP` for every metric Vitrina records.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("vitrina_http_requests_total", "HTTP requests by method, route template and status");
    describe_histogram!(
        "vitrina_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route template"
    );
    describe_counter!("vitrina_activity_events_ingested_total", "Events stored in the log, by activity type");
    describe_counter!(
        "vitrina_activity_events_duplicate_total",
        "Events acknowledged as repeats of a stored eventId"
    );
    describe_counter!("vitrina_recommendations_served_total", "Lists served, by cache hit or miss");
    describe_counter!(
        "vitrina_trending_refreshes_total",
        "Re-rankings of live popularity finished (about one a second)"
    );
    describe_counter!(
        "vitrina_store_events_pruned_total",
        "Events deleted past [storage] event_retention_days"
    );
    describe_histogram!(
        "vitrina_rank_duration_seconds",
        Unit::Seconds,
        "Time to rank one list, by kind of list"
    );
    describe_histogram!(
        "vitrina_store_append_duration_seconds",
        Unit::Seconds,
        "Time from queueing events to their durable commit"
    );
    describe_histogram!("vitrina_store_commit_duration_seconds", Unit::Seconds, "Time of one group commit");
    describe_histogram!("vitrina_store_commit_ops", "Operations committed in one group commit");
    describe_counter!(
        "vitrina_store_impressions_dropped_total",
        "Served lists not recorded because the impression queue was full"
    );
    describe_counter!(
        "vitrina_store_outcomes_dropped_total",
        "Attributed outcomes not recorded because the queue was full"
    );
    describe_counter!("vitrina_store_impressions_failed_total", "Impression batches whose commit failed");
    describe_counter!("vitrina_model_swaps_total", "Models swapped into the engine");
    describe_counter!("vitrina_training_jobs_total", "Training jobs finished, by outcome");
    describe_histogram!("vitrina_training_job_duration_seconds", Unit::Seconds, "Duration of a training job");
    describe_gauge!("vitrina_training_queued_jobs", "Training jobs waiting");
    describe_gauge!("vitrina_training_running_jobs", "Training jobs running (0 or 1)");
    describe_gauge!(
        "vitrina_active_model_version",
        "Number of the model version being served (vN), 0 for none"
    );
    describe_gauge!("vitrina_cache_entries", "Visitors with cached lists");
    describe_gauge!("vitrina_online_visitors", "Visitors with online state in memory");
    describe_counter!(
        "vitrina_online_visitors_evicted_total",
        "Idle visitors forgotten to stay within [limits] online_visitors"
    );
    describe_gauge!("vitrina_event_log_events", "Events in the log");
    describe_gauge!(
        "vitrina_checkpoint_restored_sequence",
        "Log sequence of the online state checkpoint restored at start-up (0: the whole log was replayed)"
    );
    describe_gauge!(
        "vitrina_checkpoint_sequence",
        "Log sequence of the last online state checkpoint written"
    );
    describe_gauge!("vitrina_checkpoint_bytes", "Size of the last online state checkpoint written");
    describe_counter!(
        "vitrina_checkpoint_failures_total",
        "Online state checkpoints that could not be written"
    );
    describe_gauge!("vitrina_rate_limit_addresses", "Client addresses with a rate-limit bucket");
}

/// `GET /metrics` in the Prometheus text format: the recorded metrics, the gauges read now,
/// and the process's own (`process_*`: CPU, memory, threads, open files).
pub async fn metrics_endpoint(axum::extract::State(s): axum::extract::State<crate::AppState>) -> Response {
    let handle = prometheus();
    let training = s.training.status();
    metrics::gauge!("vitrina_training_queued_jobs").set(training.queued.len() as f64);
    metrics::gauge!("vitrina_training_running_jobs").set(f64::from(u8::from(training.current.is_some())));
    let version = s.engine.model().version.trim_start_matches('v').parse::<f64>().unwrap_or(0.0);
    metrics::gauge!("vitrina_active_model_version").set(version);
    metrics::gauge!("vitrina_cache_entries").set(s.ports.cache.entries() as f64);
    let engine = s.engine.stats();
    metrics::gauge!("vitrina_online_visitors").set(engine.visitors as f64);
    metrics::counter!("vitrina_online_visitors_evicted_total").absolute(engine.evicted_visitors);
    if let Ok(log) = s.ports.log.stats().await {
        metrics::gauge!("vitrina_event_log_events").set(log.events as f64);
    }
    metrics::gauge!("vitrina_rate_limit_addresses").set(s.auth.limiter.tracked_addresses() as f64);
    metrics_process::Collector::default().collect();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
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
