//! Training jobs and the model registry.

use axum::{body::Bytes, extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use vitrina_core::{ports::ModelRecord, time::format_ts};
use vitrina_engine::TrainingConfig;

use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiPath, ApiQuery},
    state::AppState,
    training::{self as service, ActivationError, CancelError, Job, QueueStatus, Trigger},
};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainRequest {
    /// e.g. `{"weights": {"view": 1.0, "add_to_cart": 2.5, "purchase": 5.0}, "timeDecay": 0.9,
    /// "algorithms": ["als", "item-knn", "ease", "transitions", "popularity"],
    /// "als": {"factors": 64, "iterations": 15}, "ease": {"lambda": 200}}`; every field is
    /// optional and keeps the default this schema lists.
    pub config: Option<TrainingConfig>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainResponse {
    pub success: bool,
    pub message: String,
    pub job: Job,
}

/// Queues a training job (202). Poll `GET /api/v1/training/status` for its progress.
#[utoipa::path(post, path = "/api/v1/training/train", tag = "training",
    request_body(content = Option<TrainRequest>),
    responses((status = 202, body = TrainResponse), (status = 400, body = ErrorBody),
        (status = 429, description = "the queue is full (`queue_full`); see `Retry-After`", body = ErrorBody)))]
pub async fn train(State(s): State<AppState>, body: Bytes) -> ApiResult<(StatusCode, Json<TrainResponse>)> {
    let req: TrainRequest = crate::extract::optional_json(&body)?.unwrap_or_default();
    let config = req.config.unwrap_or_default();
    config.validate()?;
    let job = s.training.submit(config, Trigger::Api).map_err(|e| {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", format!("{e}; retry once one has run"))
            .with_details(serde_json::json!({"retryAfterSeconds": 30}))
            .with_header(axum::http::header::RETRY_AFTER, "30")
    })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TrainResponse { success: true, message: "training job queued".into(), job }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    pub success: bool,
    pub active_model_version: String,
    #[serde(flatten)]
    pub queue: QueueStatus,
}

/// The running job, the queue and the last finished jobs.
#[utoipa::path(get, path = "/api/v1/training/status", tag = "training",
    responses((status = 200, body = StatusResponse)))]
pub async fn status(State(s): State<AppState>) -> Json<StatusResponse> {
    Json(StatusResponse {
        success: true,
        active_model_version: s.engine.model().version.clone(),
        queue: s.training.status(),
    })
}

/// One model of the registry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelDto {
    pub version: String,
    pub algorithm: String,
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// `training`, `validated`, `active`, `rejected`, `archived` or `failed`.
    pub status: String,
    /// Why the model is `rejected` or `failed`.
    pub status_reason: Option<String>,
    /// Event log range trained on: `[firstSeq, lastSeq]`.
    pub data_range: [u64; 2],
    /// The artefact's path under the data directory.
    pub artefact: Option<String>,
    /// `crc32:` and eight hex digits.
    pub checksum: Option<String>,
    pub size_bytes: Option<u64>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub activated_at: Option<String>,
    /// The model a rollback from this one returns to.
    pub previous_version: Option<String>,
}

impl From<ModelRecord> for ModelDto {
    fn from(m: ModelRecord) -> Self {
        Self {
            version: m.version,
            algorithm: m.algorithm,
            parameters: m.parameters,
            metrics: m.metrics,
            status: m.status.as_str().into(),
            status_reason: m.status_reason,
            data_range: [m.data_range.0, m.data_range.1],
            artefact: m.artefact.as_ref().map(|a| a.path.clone()),
            checksum: m.artefact.as_ref().map(|a| a.checksum.clone()),
            size_bytes: m.artefact.as_ref().map(|a| a.size_bytes),
            created_at: format_ts(m.created_at),
            finished_at: m.finished_at.map(format_ts),
            activated_at: m.activated_at.map(format_ts),
            previous_version: m.previous_version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelsResponse {
    pub success: bool,
    pub active_version: Option<String>,
    pub models: Vec<ModelDto>,
}

/// The model registry, newest first.
#[utoipa::path(get, path = "/api/v1/training/models", tag = "training",
    responses((status = 200, body = ModelsResponse)))]
pub async fn models(State(s): State<AppState>) -> ApiResult<Json<ModelsResponse>> {
    let models: Vec<ModelDto> = s.ports.registry.models().await?.into_iter().map(ModelDto::from).collect();
    let active_version = models.iter().find(|m| m.status == "active").map(|m| m.version.clone());
    Ok(Json(ModelsResponse { success: true, active_version, models }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelResponse {
    pub success: bool,
    pub model: ModelDto,
}

async fn find_model(s: &AppState, version: &str) -> ApiResult<ModelRecord> {
    let record = s.ports.registry.models().await?.into_iter().find(|m| m.version == version);
    record.ok_or_else(|| ApiError::not_found(format!("model {version} not found")))
}

/// One model of the registry.
#[utoipa::path(get, path = "/api/v1/training/models/{version}", tag = "training", params(("version" = String, Path)),
    responses((status = 200, body = ModelResponse), (status = 404, body = ErrorBody)))]
pub async fn model(
    State(s): State<AppState>,
    ApiPath(version): ApiPath<String>,
) -> ApiResult<Json<ModelResponse>> {
    Ok(Json(ModelResponse { success: true, model: find_model(&s, &version).await?.into() }))
}

impl From<ActivationError> for ApiError {
    fn from(e: ActivationError) -> Self {
        match e {
            ActivationError::Unknown(_) => ApiError::not_found(e.to_string()),
            ActivationError::NotActivatable(..) | ActivationError::NothingToRollBack => {
                ApiError::conflict(e.to_string())
            }
            ActivationError::Unloadable(..) => ApiError::conflict(e.to_string()),
            ActivationError::Store(cause) => ApiError::from(cause),
        }
    }
}

#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivateQuery {
    /// Also activate a `rejected` model.
    pub force: Option<bool>,
}

/// Promotes a registered model (validated, archived or active; rejected with `force=true`):
/// its artefact is loaded, checked and swapped in atomically; cached lists are dropped.
#[utoipa::path(post, path = "/api/v1/training/models/{version}/activate", tag = "training",
    params(("version" = String, Path), ActivateQuery),
    responses((status = 200, body = ModelResponse), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn activate(
    State(s): State<AppState>,
    ApiPath(version): ApiPath<String>,
    ApiQuery(q): ApiQuery<ActivateQuery>,
) -> ApiResult<Json<ModelResponse>> {
    let force = q.force.unwrap_or(false);
    let record =
        service::activate_version(&s.ports, &s.engine, s.training.artefacts(), &version, false, force)
            .await?;
    Ok(Json(ModelResponse { success: true, model: find_model(&s, &record.version).await?.into() }))
}

/// Returns to the model that was active before the current one; repeated rollbacks walk
/// further back. 409 when there is none.
#[utoipa::path(post, path = "/api/v1/training/rollback", tag = "training",
    responses((status = 200, body = ModelResponse), (status = 409, body = ErrorBody)))]
pub async fn rollback(State(s): State<AppState>) -> ApiResult<Json<ModelResponse>> {
    let record = service::rollback(&s.ports, &s.engine, s.training.artefacts()).await?;
    Ok(Json(ModelResponse { success: true, model: find_model(&s, &record.version).await?.into() }))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobResponse {
    pub success: bool,
    pub job: Job,
}

/// Cancels a queued job at once, or stops the running one at its next checkpoint (its model
/// is then `failed` in the registry). 404 for a job that is not queued or running.
#[utoipa::path(post, path = "/api/v1/training/jobs/{jobId}/cancel", tag = "training", params(("jobId" = String, Path)),
    responses((status = 200, body = JobResponse), (status = 404, body = ErrorBody)))]
pub async fn cancel(
    State(s): State<AppState>,
    ApiPath(job_id): ApiPath<String>,
) -> ApiResult<Json<JobResponse>> {
    let job = s.training.cancel(&job_id).map_err(|e| match e {
        CancelError::Unknown(_) => ApiError::not_found(e.to_string()),
    })?;
    Ok(Json(JobResponse { success: true, job }))
}
