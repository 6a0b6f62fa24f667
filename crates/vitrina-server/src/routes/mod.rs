//! The route table and the OpenAPI document generated from the handlers.

pub mod activity;
pub mod catalog;
pub mod engine;
pub mod experiments;
pub mod health;
pub mod keys;
pub mod recommendations;
pub mod training;
pub mod users;

use axum::{
    extract::DefaultBodyLimit,
    http::{Method, Uri},
    routing::{get, post},
    Router,
};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::{error::ApiError, gorse, state::AppState};

#[derive(OpenApi)]
#[openapi(
    info(title = "Vitrina", description = "Real-time product recommendations for online shops. \
        Every error has the shape {\"success\": false, \"error\", \"message\", \"code\", \"details\"}."),
    paths(
        health::health, health::activity, health::engine, health::recommendations, health::training,
        engine::state,
        activity::track, activity::track_batch, activity::history,
        recommendations::recommendations, recommendations::refresh, recommendations::stats,
        recommendations::similar, recommendations::popular, recommendations::session,
        training::train, training::status, training::models, training::model, training::activate, training::rollback, training::cancel,
        catalog::list, catalog::create, catalog::get, catalog::put, catalog::patch, catalog::delete, catalog::bulk,
        catalog::exposure,
        users::list, users::upsert, users::get, users::delete, users::export,
        experiments::create, experiments::list, experiments::get, experiments::start, experiments::stop,
        experiments::results, experiments::step, experiments::revert,
        keys::create, keys::list, keys::revoke,
        gorse::feedback::insert, gorse::feedback::upsert, gorse::feedback::page, gorse::feedback::page_typed,
        gorse::feedback::of_user, gorse::feedback::of_user_typed, gorse::feedback::between, gorse::feedback::one,
        gorse::feedback::delete_between, gorse::feedback::delete_one, gorse::feedback::of_item_all,
        gorse::feedback::of_item_typed, gorse::users::neighbors,
        gorse::items::insert, gorse::items::insert_many, gorse::items::get, gorse::items::patch,
        gorse::items::delete, gorse::items::add_category, gorse::items::remove_category, gorse::items::page,
        gorse::users::insert, gorse::users::insert_many, gorse::users::get, gorse::users::patch,
        gorse::users::delete, gorse::users::page,
        gorse::lists::recommend, gorse::lists::recommend_in, gorse::lists::neighbors, gorse::lists::neighbors_in,
        gorse::lists::popular, gorse::lists::popular_in, gorse::lists::latest, gorse::lists::latest_in,
        gorse::lists::session, gorse::lists::session_in, gorse::lists::live, gorse::lists::ready,
    ),
    tags(
        (name = "activity", description = "Tracking visitor events"),
        (name = "recommendations", description = "Personalised lists, history and stats"),
        (name = "training", description = "Training jobs and the model registry"),
        (name = "catalog", description = "Products"),
        (name = "users", description = "Users"),
        (name = "experiments", description = "A/B experiments, attribution and bandits"),
        (name = "keys", description = "API keys and their scopes"),
        (name = "health", description = "Health checks"),
        (name = "gorse", description = "Gorse-compatible API: Gorse's paths and JSON, for Gorse's SDKs \
            (`X-API-Key`); `…/` with an empty last segment is routed as the path without it"),
    )
)]
pub struct ApiDoc;

/// The longest request target (path and query) the server reads: longer ones get a 414 in the
/// error shape. (Past 64 KiB, hyper answers 414 itself, before any route, without a body.)
pub const MAX_URI_BYTES: usize = 8 * 1024;

async fn uri_length(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if len > MAX_URI_BYTES {
        return axum::response::IntoResponse::into_response(ApiError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target has {len} bytes; the limit is {MAX_URI_BYTES}"),
        ));
    }
    next.run(req).await
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Every API route, with body limits, JSON fallbacks and the docs.
pub fn router(state: AppState) -> Router {
    // The document, built once per router with the configured limits.
    let spec = std::sync::Arc::new(crate::openapi::spec(&state.limits, &state.gorse.types));
    let batch_limit = DefaultBodyLimit::max(state.limits.batch_body_bytes);
    let batch = Router::new()
        .route("/api/v1/activity/track/batch", post(activity::track_batch))
        .route("/api/v1/catalog/products/bulk", post(catalog::bulk))
        .merge(gorse::batch_routes())
        .layer(batch_limit);
    let api = Router::new()
        .route("/health", get(health::health))
        .route("/api/v1/activity/health", get(health::activity))
        .route("/api/v1/engine/health", get(health::engine))
        .route("/api/v1/engine/state", get(engine::state))
        .route("/api/v1/recommendations/health", get(health::recommendations))
        .route("/api/v1/training/health", get(health::training))
        .route("/api/v1/activity/track", post(activity::track))
        .route("/api/v1/recommendations/activity/{userId}", get(activity::history))
        .route("/api/v1/recommendations/recommendations/{userId}", get(recommendations::recommendations))
        .route("/api/v1/recommendations/recommendations/{userId}/refresh", post(recommendations::refresh))
        .route("/api/v1/recommendations/stats/{userId}", get(recommendations::stats))
        .route("/api/v1/recommendations/similar/{productId}", get(recommendations::similar))
        .route("/api/v1/recommendations/popular", get(recommendations::popular))
        .route("/api/v1/recommendations/session", post(recommendations::session))
        .route("/api/v1/training/train", post(training::train))
        .route("/api/v1/training/status", get(training::status))
        .route("/api/v1/training/models", get(training::models))
        .route("/api/v1/training/models/{version}", get(training::model))
        .route("/api/v1/training/models/{version}/activate", post(training::activate))
        .route("/api/v1/training/rollback", post(training::rollback))
        .route("/api/v1/training/jobs/{jobId}/cancel", post(training::cancel))
        .route("/api/v1/catalog/products", get(catalog::list).post(catalog::create))
        .route(
            "/api/v1/catalog/products/{productId}",
            get(catalog::get).put(catalog::put).patch(catalog::patch).delete(catalog::delete),
        )
        .route("/api/v1/catalog/products/{productId}/exposure", get(catalog::exposure))
        .route("/api/v1/users", get(users::list).post(users::upsert))
        .route("/api/v1/users/{userId}", get(users::get).delete(users::delete))
        .route("/api/v1/users/{userId}/export", get(users::export))
        .route("/api/v1/experiments", get(experiments::list).post(experiments::create))
        .route("/api/v1/experiments/{id}", get(experiments::get))
        .route("/api/v1/experiments/{id}/start", post(experiments::start))
        .route("/api/v1/experiments/{id}/stop", post(experiments::stop))
        .route("/api/v1/experiments/{id}/results", get(experiments::results))
        .route("/api/v1/experiments/{id}/step", post(experiments::step))
        .route("/api/v1/experiments/{id}/revert", post(experiments::revert))
        .route("/api/v1/keys", get(keys::list).post(keys::create))
        .route("/api/v1/keys/{keyId}", axum::routing::delete(keys::revoke))
        .route("/metrics", get(crate::observe::metrics_endpoint))
        .merge(gorse::routes())
        .layer(DefaultBodyLimit::max(state.limits.body_bytes));
    Router::new()
        .merge(batch)
        .merge(api)
        .route("/openapi.json", get(move || async move { axum::Json(spec.as_ref().clone()) }))
        .merge(SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::from("/openapi.json")))
        .merge(crate::console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::auth::guard))
        .layer(axum::middleware::from_fn(uri_length))
        .with_state(state)
}
