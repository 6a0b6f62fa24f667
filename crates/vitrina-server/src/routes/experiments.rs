//! A/B experiments: create, list, get, start, stop, results, and the automation step
//! (bandit reallocation, weight tuning) with its revert.

use axum::{body::Bytes, extract::State, http::StatusCode, Json};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use vitrina_core::ValidationError;
use vitrina_experiments::stats::Results;

use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    experiments::{ExperimentError, StoredExperiment},
    extract::{parse_json, ApiPath},
    state::AppState,
};

impl From<ExperimentError> for ApiError {
    fn from(e: ExperimentError) -> Self {
        match e {
            ExperimentError::Invalid(field, message) => {
                ApiError::validation(vec![ValidationError::new(field, message)])
            }
            ExperimentError::NotFound(_) => ApiError::not_found(e.to_string()),
            ExperimentError::Conflict(m) => ApiError::conflict(m),
            ExperimentError::Store(s) => s.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentResponse {
    pub success: bool,
    pub experiment: StoredExperiment,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentsResponse {
    pub success: bool,
    pub experiments: Vec<StoredExperiment>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResultsResponse {
    pub success: bool,
    /// Per variant: lists, item impressions, clicks, add-to-carts, purchases, revenue; CTR,
    /// add-to-cart rate, conversion rate and revenue per 1,000 impressions, each
    /// `{value, low, high}` (95 %); by source and by position; and `vsControl`: difference
    /// with its interval, relative lift, z, two-sided p-value, probability to beat control,
    /// `significant` (p < 0.05). `method` states the statistics used.
    #[schema(value_type = Object)]
    pub results: Results,
}

fn ok(experiment: StoredExperiment) -> Json<ExperimentResponse> {
    Json(ExperimentResponse { success: true, experiment })
}

/// Creates a draft experiment (201). Body: `{"name", "variants": [{"name", "traffic"?,
/// "modelVersion"?, "ranking"?: {partial ranking config: "weights", "maxPerCategory"…},
/// "description"?}], "goal"?: "ctr"|"add_to_cart_rate"|"conversion_rate"|"revenue_per_mille",
/// "mode"?: "fixed"|"bandit", "startAt"?, "endAt"?, "explorationFloor"?: 0.05,
/// "attributionWindowHours"?: 24, "judgeAfterMinutes"?: 10 (the bandit and weight tuning
/// judge only lists at least this old), "control"?: first variant, "autoTuneWeights"?: false}`.
#[utoipa::path(post, path = "/api/v1/experiments", tag = "experiments",
    request_body(content = Object),
    responses((status = 201, body = ExperimentResponse), (status = 400, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ExperimentResponse>)> {
    let body: Value = parse_json(&body)?;
    let created = s.experiments.create(body, &s.ports, &s.engine).await?;
    Ok((StatusCode::CREATED, ok(created)))
}

/// Every experiment, oldest first.
#[utoipa::path(get, path = "/api/v1/experiments", tag = "experiments",
    responses((status = 200, body = ExperimentsResponse)))]
pub async fn list(State(s): State<AppState>) -> Json<ExperimentsResponse> {
    Json(ExperimentsResponse { success: true, experiments: s.experiments.list() })
}

/// One experiment with its allocation and weight logs.
#[utoipa::path(get, path = "/api/v1/experiments/{id}", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, body = ExperimentResponse), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ExperimentResponse>> {
    Ok(ok(s.experiments.get(&id)?))
}

/// Starts a draft experiment: from now on every recommendation endpoint serves each
/// visitor their variant. One experiment runs at a time (409 otherwise).
#[utoipa::path(post, path = "/api/v1/experiments/{id}/start", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, body = ExperimentResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn start(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ExperimentResponse>> {
    let artefacts = s.training.artefacts().clone();
    let changed = s.experiments.start(&id, &s.ports, &s.engine, &artefacts).await?;
    Ok(ok(changed))
}

/// Stops a running experiment; visitors get the default recommender again.
#[utoipa::path(post, path = "/api/v1/experiments/{id}/stop", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, body = ExperimentResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn stop(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ExperimentResponse>> {
    let changed = s.experiments.stop(&id, &s.ports).await?;
    Ok(ok(changed))
}

/// Results per variant, source and position with 95 % intervals and the comparison of
/// each variant with the control.
#[utoipa::path(get, path = "/api/v1/experiments/{id}/results", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, body = ResultsResponse), (status = 404, body = ErrorBody)))]
pub async fn results(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ResultsResponse>> {
    Ok(Json(ResultsResponse { success: true, results: s.experiments.results(&id, &s.ports).await? }))
}

/// Runs the automation step now (it also runs every `[experiments] stepSeconds`): in bandit
/// mode, Thompson sampling on the goal metric moves traffic (keeping the exploration
/// floor); with `autoTuneWeights`, each variant's source weights move toward the sources
/// that earn the goal. Both judge only lists served at least `judgeAfterMinutes` ago, so a
/// step before any list is that old changes nothing. Every change is logged in the
/// experiment.
#[utoipa::path(post, path = "/api/v1/experiments/{id}/step", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, body = ExperimentResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn step(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ExperimentResponse>> {
    let artefacts = s.training.artefacts().clone();
    let changed = s.experiments.step(&id, &s.ports, &s.engine, &artefacts).await?;
    Ok(ok(changed))
}

/// Reverts the automation: traffic back to the created split and each variant's last
/// weight change undone (both logged).
#[utoipa::path(post, path = "/api/v1/experiments/{id}/revert", tag = "experiments",
    params(("id" = String, Path)),
    responses((status = 200, body = ExperimentResponse), (status = 404, body = ErrorBody)))]
pub async fn revert(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ExperimentResponse>> {
    let artefacts = s.training.artefacts().clone();
    let changed = s.experiments.revert(&id, &s.ports, &s.engine, &artefacts).await?;
    Ok(ok(changed))
}
