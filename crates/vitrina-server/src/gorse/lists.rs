//! Gorse's lists — recommend, neighbours, popular, latest, session — served by Vitrina's
//! engine through the same paths as `/api/v1/recommendations` (cache, experiments,
//! impressions); and Gorse's health checks.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vitrina_core::keys::Scope;
use vitrina_core::{ProductId, UserId, ValidationError};
use vitrina_engine::{Filters, SessionEvent, Window};

use super::{
    feedback,
    model::{format_time, parse_duration, parse_time, FeedbackInput, Score},
    GorseJson, ListQuery,
};
use crate::{
    auth::keys::Caller,
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiPath, ApiQuery},
    routes::recommendations::{filters, personal_list, session_list, similar_list, unranked_list, ListBody},
    state::AppState,
};

/// What `GET /api/recommend` answers: item ids, or with `X-API-Version: 2` scored items.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RecommendAnswer {
    Ids(Vec<String>),
    Scores(Vec<Score>),
}

fn list_filters(limit: usize, category: Option<String>) -> ApiResult<Filters> {
    Ok(filters(Some(limit), category.as_ref(), &[], None, None)?.1)
}

/// The items of a served list with their scores.
fn scores(list: ListBody) -> Vec<Score> {
    list.recommendations.into_iter().map(|r| Score { id: r.product_id, score: f64::from(r.score) }).collect()
}

/// `?n=&offset=&write-back-type=&write-back-delay=` of `GET /api/recommend`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecommendQuery {
    /// Items to return, default 10; `n` + `offset` at most 100.
    pub n: Option<usize>,
    /// Items to skip, default 0.
    pub offset: Option<usize>,
    /// Record a feedback of this type for each item returned (e.g. `read`).
    #[serde(rename = "write-back-type")]
    pub write_back_type: Option<String>,
    /// When the written-back feedback is dated: now plus this Go duration (`10m`, `1h30m`).
    #[serde(rename = "write-back-delay")]
    pub write_back_delay: Option<String>,
}

/// The user's personalised list, Vitrina's own (Gorse: `GET /api/recommend/{userId}`): item
/// ids, or `[{"Id","Score"}]` with the header `X-API-Version: 2`. A feedback is reflected in
/// the next list at once.
#[utoipa::path(get, operation_id = "gorse_lists_recommend", path = "/api/recommend/{userId}", tag = "gorse",
    params(("userId" = String, Path), RecommendQuery, ("X-API-Version" = Option<String>, Header)),
    responses((status = 200, body = RecommendAnswer), (status = 400, body = ErrorBody)))]
pub async fn recommend(
    State(s): State<AppState>,
    caller: Option<Extension<Arc<Caller>>>,
    headers: HeaderMap,
    ApiPath(user): ApiPath<String>,
    ApiQuery(q): ApiQuery<RecommendQuery>,
) -> ApiResult<Json<RecommendAnswer>> {
    personalised(&s, caller, &headers, &user, None, q).await
}

/// The user's list in one category (Gorse: `GET /api/recommend/{userId}/{category}`).
#[utoipa::path(get, operation_id = "gorse_lists_recommend_in", path = "/api/recommend/{userId}/{category}", tag = "gorse",
    params(("userId" = String, Path), ("category" = String, Path), RecommendQuery,
        ("X-API-Version" = Option<String>, Header)),
    responses((status = 200, body = RecommendAnswer), (status = 400, body = ErrorBody)))]
pub async fn recommend_in(
    State(s): State<AppState>,
    caller: Option<Extension<Arc<Caller>>>,
    headers: HeaderMap,
    ApiPath((user, category)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<RecommendQuery>,
) -> ApiResult<Json<RecommendAnswer>> {
    personalised(&s, caller, &headers, &user, Some(category), q).await
}

async fn personalised(
    s: &AppState,
    caller: Option<Extension<Arc<Caller>>>,
    headers: &HeaderMap,
    user: &str,
    category: Option<String>,
    q: RecommendQuery,
) -> ApiResult<Json<RecommendAnswer>> {
    let user = UserId::parse(user)?;
    let (limit, skip) = ListQuery { n: q.n, offset: q.offset }.window()?;
    let delay = match q.write_back_delay.as_deref() {
        Some(raw) => parse_duration("write-back-delay", raw)?,
        None => chrono::Duration::zero(),
    };
    // Checked here, not only when feedback is written: an empty list writes none.
    let write_back = q
        .write_back_type
        .filter(|t| !t.is_empty())
        .map(|t| vitrina_core::catalog::check_text("write-back-type", &t).map(|_| t))
        .transpose()
        .map_err(ApiError::from)?;
    // Writing back stores events: what a `track` key may do, not a `read` key (once keys exist).
    if let (Some(_), Some(Extension(caller))) = (&write_back, &caller) {
        if !caller.scope.grants(Scope::Track) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "write-back-type stores feedback: it needs a key with scope 'track'; this key has '{}'",
                    caller.scope
                ),
            )
            .with_details(serde_json::json!({"requiredScope": "track", "keyScope": caller.scope.as_str()})));
        }
    }
    let list = personal_list(s, &user, limit, skip, list_filters(limit, category)?, false).await?;
    let items = scores(list);
    if let Some(kind) = write_back {
        let at = format_time(Utc::now() + delay);
        let rows = items
            .iter()
            .map(|i| FeedbackInput {
                feedback_type: kind.clone(),
                user_id: Some(user.to_string()),
                item_id: i.id.clone(),
                timestamp: Some(serde_json::Value::String(at.clone())),
                value: None,
                comment: None,
            })
            .collect();
        // What was shown, not what was done: stored as views (never attributed as clicks),
        // listed under the written-back type.
        let mut events = feedback::events(s, rows)?;
        events.iter_mut().for_each(|e| e.activity_type = vitrina_core::ActivityType::View);
        if !events.is_empty() {
            crate::ingest::ingest(s, events).await?;
        }
    }
    let v2 = headers.get("x-api-version").and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "2");
    Ok(Json(if v2 {
        RecommendAnswer::Scores(items)
    } else {
        RecommendAnswer::Ids(items.into_iter().map(|i| i.id).collect())
    }))
}

/// Items similar to an item (Gorse: `GET /api/item/{itemId}/neighbors`); an item the
/// catalogue does not hold has none.
#[utoipa::path(get, operation_id = "gorse_lists_neighbors", path = "/api/item/{itemId}/neighbors", tag = "gorse",
    params(("itemId" = String, Path), ListQuery),
    responses((status = 200, body = Vec<Score>), (status = 400, body = ErrorBody)))]
pub async fn neighbors(
    State(s): State<AppState>,
    ApiPath(item): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Score>>> {
    similar(&s, &item, None, q).await
}

/// Similar items in one category (Gorse: `GET /api/item/{itemId}/neighbors/{category}`).
#[utoipa::path(get, operation_id = "gorse_lists_neighbors_in", path = "/api/item/{itemId}/neighbors/{category}", tag = "gorse",
    params(("itemId" = String, Path), ("category" = String, Path), ListQuery),
    responses((status = 200, body = Vec<Score>), (status = 400, body = ErrorBody)))]
pub async fn neighbors_in(
    State(s): State<AppState>,
    ApiPath((item, category)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Score>>> {
    similar(&s, &item, Some(category), q).await
}

async fn similar(
    s: &AppState,
    item: &str,
    category: Option<String>,
    q: ListQuery,
) -> ApiResult<Json<Vec<Score>>> {
    let item = ProductId::parse(item)?;
    let (limit, skip) = q.window()?;
    let list = similar_list(s, &item, None, limit, skip, list_filters(limit, category)?).await?;
    Ok(Json(list.map(scores).unwrap_or_default()))
}

/// Popular items by today's live activity (Gorse: `GET /api/popular`).
#[utoipa::path(get, operation_id = "gorse_lists_popular", path = "/api/popular", tag = "gorse", params(ListQuery),
    responses((status = 200, body = Vec<Score>), (status = 400, body = ErrorBody)))]
pub async fn popular(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Score>>> {
    popular_of(&s, None, q)
}

/// Popular items in one category (Gorse: `GET /api/popular/{category}`).
#[utoipa::path(get, operation_id = "gorse_lists_popular_in", path = "/api/popular/{category}", tag = "gorse",
    params(("category" = String, Path), ListQuery),
    responses((status = 200, body = Vec<Score>), (status = 400, body = ErrorBody)))]
pub async fn popular_in(
    State(s): State<AppState>,
    ApiPath(category): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Score>>> {
    popular_of(&s, Some(category), q)
}

fn popular_of(s: &AppState, category: Option<String>, q: ListQuery) -> ApiResult<Json<Vec<Score>>> {
    let (limit, skip) = q.window()?;
    let list =
        unranked_list(s, None, limit, skip, list_filters(limit, category)?, |e, r| e.popular(Window::Day, r));
    Ok(Json(scores(list)))
}

/// The newest items by their `Timestamp`, each scored by it in unix seconds (Gorse: `GET
/// /api/latest`).
#[utoipa::path(get, operation_id = "gorse_lists_latest", path = "/api/latest", tag = "gorse", params(ListQuery),
    responses((status = 200, body = Vec<Score>), (status = 400, body = ErrorBody)))]
pub async fn latest(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Score>>> {
    latest_of(&s, None, q)
}

/// The newest items of one category (Gorse: `GET /api/latest/{category}`).
#[utoipa::path(get, operation_id = "gorse_lists_latest_in", path = "/api/latest/{category}", tag = "gorse",
    params(("category" = String, Path), ListQuery),
    responses((status = 200, body = Vec<Score>), (status = 400, body = ErrorBody)))]
pub async fn latest_in(
    State(s): State<AppState>,
    ApiPath(category): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Vec<Score>>> {
    latest_of(&s, Some(category), q)
}

fn latest_of(s: &AppState, category: Option<String>, q: ListQuery) -> ApiResult<Json<Vec<Score>>> {
    let (limit, skip) = q.window()?;
    let list = unranked_list(s, None, limit, skip, list_filters(limit, category)?, |e, r| e.latest(r));
    let items = list
        .recommendations
        .into_iter()
        .filter_map(|r| {
            let p = ProductId::parse(&r.product_id).ok().and_then(|id| s.engine.product(&id))?;
            Some(Score { id: r.product_id, score: p.published_at().timestamp() as f64 })
        })
        .collect();
    Ok(Json(items))
}

/// A list for an anonymous session from its feedback, newest last or dated (Gorse: `POST
/// /api/session/recommend?n=`): nothing is stored; the items in the session are left out.
#[utoipa::path(post, operation_id = "gorse_lists_session", path = "/api/session/recommend", tag = "gorse", params(ListQuery),
    request_body = Vec<FeedbackInput>,
    responses((status = 200, body = Vec<Score>), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn session(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
    GorseJson(feedback): GorseJson<Vec<FeedbackInput>>,
) -> ApiResult<Json<Vec<Score>>> {
    session_of(&s, None, q, feedback).await
}

/// A session's list in one category (Gorse: `POST /api/session/recommend/{category}`).
#[utoipa::path(post, operation_id = "gorse_lists_session_in", path = "/api/session/recommend/{category}", tag = "gorse",
    params(("category" = String, Path), ListQuery), request_body = Vec<FeedbackInput>,
    responses((status = 200, body = Vec<Score>), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn session_in(
    State(s): State<AppState>,
    ApiPath(category): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
    GorseJson(feedback): GorseJson<Vec<FeedbackInput>>,
) -> ApiResult<Json<Vec<Score>>> {
    session_of(&s, Some(category), q, feedback).await
}

/// Most feedback one session request may carry.
const MAX_SESSION: usize = 100;

async fn session_of(
    s: &AppState,
    category: Option<String>,
    q: ListQuery,
    feedback: Vec<FeedbackInput>,
) -> ApiResult<Json<Vec<Score>>> {
    let (limit, skip) = q.window()?;
    if feedback.len() > MAX_SESSION {
        return Err(ValidationError::new(
            "",
            format!("at most {MAX_SESSION} feedback, got {}", feedback.len()),
        )
        .into());
    }
    let now = Utc::now();
    let start = now.timestamp_millis() - feedback.len() as i64;
    let mut events = Vec::with_capacity(feedback.len());
    let mut errors = Vec::new();
    for (i, f) in feedback.iter().enumerate() {
        let product = ProductId::parse(&f.item_id).map_err(|e| e.at(format!("[{i}].ItemId")));
        let at = parse_time(&format!("[{i}].Timestamp"), f.timestamp.as_ref())
            .map(|t| t.filter(|t| !super::model::is_no_time(*t)));
        match (product, at) {
            (Ok(product_id), Ok(at)) => events.push(SessionEvent {
                product_id,
                kind: s.gorse.types.kind(&f.feedback_type),
                ts_ms: at.map_or(start + i as i64, |t| t.timestamp_millis()),
            }),
            (p, t) => errors.extend([p.err(), t.err()].into_iter().flatten()),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    events.sort_by_key(|e| e.ts_ms);
    let mut f = list_filters(limit, category)?;
    f.exclude.extend(events.iter().map(|e| e.product_id.clone()));
    let list = session_list(s, None, events, limit, skip, f).await?;
    Ok(Json(scores(list)))
}

/// Gorse's health answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct HealthStatus {
    pub ready: bool,
    pub data_store_error: Option<String>,
    pub cache_store_error: Option<String>,
    pub data_store_connected: bool,
    pub cache_store_connected: bool,
}

/// The process answers (Gorse: `GET /api/health/live`).
#[utoipa::path(get, operation_id = "gorse_lists_live", path = "/api/health/live", tag = "gorse",
    responses((status = 200, body = HealthStatus)))]
pub async fn live(State(s): State<AppState>) -> Json<HealthStatus> {
    Json(status(&s))
}

/// 200 when the store answers, 503 otherwise (Gorse: `GET /api/health/ready`).
#[utoipa::path(get, operation_id = "gorse_lists_ready", path = "/api/health/ready", tag = "gorse",
    responses((status = 200, body = HealthStatus), (status = 503, body = HealthStatus)))]
pub async fn ready(State(s): State<AppState>) -> Response {
    let status = status(&s);
    let code = if status.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(status)).into_response()
}

fn status(s: &AppState) -> HealthStatus {
    let data = s.ports.log.health().and(s.ports.impressions.health()).err();
    HealthStatus {
        ready: data.is_none(),
        data_store_connected: data.is_none(),
        data_store_error: data,
        cache_store_error: None,
        cache_store_connected: true,
    }
}
