//! Vitrina's server: the axum application and the wiring of backends.
//!
//! - [`app`] builds the router for an [`AppState`]; handlers live in [`routes`], one file per
//!   API area, and speak only through DTOs and [`error::ApiError`].
//! - [`ingest`] is the write path of events (durable append, then a wait until the engine's
//!   online state has followed the log past them); [`follower`] is the one path by which
//!   events reach the online state, in log order, dropping the visitors' cached lists;
//!   [`checkpoints`] saves that state so a restart replays only the log after it;
//!   [`training`] runs training jobs, keeps the registry and hot swaps models into the engine
//!   (`vitrina-engine`); [`artefacts`] stores model files.
//! - [`experiments`] runs A/B experiments in the serving path (variants, results, bandit);
//!   [`attribution`] ties clicks, carts and purchases to the lists that earned them.
//! - [`embedded`] assembles the embedded (single-process) deployment.

pub mod artefacts;
pub mod attribution;
pub mod auth;
pub mod checkpoints;
pub mod cluster;
pub mod console;
pub mod dto;
pub mod embedded;
pub mod error;
pub mod experiments;
pub mod extract;
pub mod follower;
pub mod gorse;
pub mod ingest;
pub mod observe;
pub mod openapi;
pub mod ports;
pub mod routes;
pub mod state;
pub mod training;

use axum::{http::HeaderName, middleware, Router};
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::{DefaultOnRequest, TraceLayer},
};
use tracing::Level;

pub use state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP application: API routes, `/metrics`, docs, and the cross-cutting layers
/// (request ids, the access log, metrics, the JSON error shape for every error, panic →
/// JSON 500).
pub fn app(state: AppState) -> Router {
    let cors = cors(&state.auth.config.cors_origins);
    routes::router(state)
        .layer(middleware::from_fn(observe::error_shape))
        .layer(middleware::from_fn(observe::track_requests))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &axum::http::Request<_>| {
                            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                            // The route template, not the path: access logs carry no visitor ids
                            // (`track_requests` records it once the router has matched).
                            tracing::info_span!("request", method = %req.method(), route = tracing::field::Empty, request_id = %id)
                        })
                        .on_request(DefaultOnRequest::new().level(Level::DEBUG))
                        .on_response(observe::access_log),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(observe::panic_response)),
        )
        .layer(tower::util::option_layer(cors))
}

/// CORS for the configured origins (`[auth] cors_origins`); none by default, so browsers on
/// other sites can neither read answers nor send keys.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{header, HeaderValue, Method};
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static(auth::API_KEY_HEADER),
            ])
            .expose_headers([header::RETRY_AFTER, REQUEST_ID])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
