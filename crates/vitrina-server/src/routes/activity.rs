//! Tracking: single events, batches, and a visitor's history.

use axum::{extract::State, http::StatusCode, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use vitrina_core::{ports::AppendOutcome, NewActivity, UserId, ValidationError};

use crate::{
    dto::{check_limit, ActivityDto, TrackRequest},
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiJson, ApiPath, ApiQuery},
    ingest::ingest,
    state::AppState,
};

/// Answer to a tracked event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackResponse {
    pub success: bool,
    pub event_id: String,
    /// Position of the event in the log (of the original, for a duplicate).
    pub sequence: u64,
    /// The domain event published, e.g. `UserViewedProduct`.
    pub event: String,
    /// True when an event with this `eventId` was already stored; nothing was stored again.
    pub duplicate: bool,
}

/// Tracks one visitor event. 201 when stored, 200 when it was a duplicate.
#[utoipa::path(post, path = "/api/v1/activity/track", tag = "activity",
    request_body = TrackRequest,
    responses(
        (status = 201, description = "stored durably", body = TrackResponse),
        (status = 200, description = "duplicate eventId; already stored", body = TrackResponse),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn track(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<TrackRequest>,
) -> ApiResult<(StatusCode, Json<TrackResponse>)> {
    let event = NewActivity::validate(body.into(), Utc::now()).map_err(ApiError::validation)?;
    let event_id = event.event_id.to_string();
    let name = event.activity_type.domain_event_name().to_string();
    let outcome =
        ingest(&s, vec![event]).await?.pop().ok_or_else(|| ApiError::internal("append returned nothing"))?;
    let (status, sequence, duplicate) = match outcome {
        AppendOutcome::Stored(stored) => (StatusCode::CREATED, stored.seq, false),
        AppendOutcome::Duplicate { seq } => (StatusCode::OK, seq, true),
    };
    Ok((status, Json(TrackResponse { success: true, event_id, sequence, event: name, duplicate })))
}

/// A batch of events.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRequest {
    pub events: Vec<TrackRequest>,
}

/// Per-event result of a batch.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    pub index: usize,
    pub event_id: String,
    pub sequence: u64,
    /// `stored` or `duplicate`.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub success: bool,
    pub stored: usize,
    pub duplicates: usize,
    pub results: Vec<BatchItem>,
}

/// Tracks up to 10,000 events atomically: if any event is invalid the whole batch is
/// rejected with every problem listed in `details.errors` (each with its `index`) and
/// nothing is stored; otherwise every event is stored (or recognised as a duplicate) in one
/// durable transaction.
#[utoipa::path(post, path = "/api/v1/activity/track/batch", tag = "activity",
    request_body = BatchRequest,
    responses((status = 200, body = BatchResponse), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn track_batch(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<BatchRequest>,
) -> ApiResult<Json<BatchResponse>> {
    let max = s.limits.batch_events;
    if body.events.is_empty() || body.events.len() > max {
        return Err(ApiError::bad_request(format!(
            "events: must hold from 1 to {max} events, got {}",
            body.events.len()
        )));
    }
    let now = Utc::now();
    let mut events = Vec::with_capacity(body.events.len());
    let mut errors: Vec<(usize, ValidationError)> = Vec::new();
    for (i, raw) in body.events.into_iter().enumerate() {
        match NewActivity::validate(raw.into(), now) {
            Ok(e) => events.push(e),
            Err(errs) => errors.extend(errs.into_iter().map(|e| (i, e.within(&format!("events[{i}]"))))),
        }
    }
    if !errors.is_empty() {
        let count = errors.len();
        let first = errors[0].1.to_string();
        let list: Vec<_> = errors
            .iter()
            .take(100)
            .map(|(i, e)| json!({"index": i, "field": e.field, "message": e.message}))
            .collect();
        let message = if count == 1 { first } else { format!("{first} (and {} more)", count - 1) };
        return Err(ApiError::bad_request(format!("batch rejected, nothing stored: {message}"))
            .with_details(json!({"errors": list, "errorCount": count})));
    }
    let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
    let outcomes = ingest(&s, events).await?;
    let results: Vec<BatchItem> = outcomes
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(index, (o, event_id))| match o {
            AppendOutcome::Stored(st) => {
                BatchItem { index, event_id, sequence: st.seq, status: "stored".into() }
            }
            AppendOutcome::Duplicate { seq } => {
                BatchItem { index, event_id, sequence: *seq, status: "duplicate".into() }
            }
        })
        .collect();
    let stored = results.iter().filter(|r| r.status == "stored").count();
    Ok(Json(BatchResponse { success: true, stored, duplicates: results.len() - stored, results }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LimitQuery {
    /// 1–1000, default 50.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityHistory {
    pub success: bool,
    pub user_id: String,
    pub count: usize,
    pub activities: Vec<ActivityDto>,
}

/// The visitor's latest events, newest first.
#[utoipa::path(get, path = "/api/v1/recommendations/activity/{userId}", tag = "recommendations",
    params(("userId" = String, Path), LimitQuery),
    responses((status = 200, body = ActivityHistory), (status = 400, body = ErrorBody)))]
pub async fn history(
    State(s): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult<Json<ActivityHistory>> {
    let user = UserId::parse(&user)?;
    let limit = check_limit(q.limit, 50, 1000)?;
    let events = s.ports.log.recent_for_user(&user, limit).await?;
    let activities: Vec<ActivityDto> = events.iter().map(ActivityDto::from).collect();
    Ok(Json(ActivityHistory {
        success: true,
        user_id: user.to_string(),
        count: activities.len(),
        activities,
    }))
}
