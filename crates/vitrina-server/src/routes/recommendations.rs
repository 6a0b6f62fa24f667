//! Recommendation lists: personalised (cached per visitor), forced refresh, similar items,
//! popular items, anonymous sessions; and per-visitor stats.

use std::{collections::HashSet, sync::Arc};

use axum::{body::Bytes, extract::State, Json};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vitrina_core::{
    events::{kinds, DomainEvent},
    ports::{CacheLookup, Impression, ImpressionItem},
    recommend::{explanation, RecommendationList, Recommended},
    stats::{user_stats, UserStats},
    time::{format_ts, parse_event_time},
    ActivityType, ProductId, UserId, ValidationError,
};
use vitrina_engine::{Filters, ListRequest, SessionEvent, Window};

use crate::{
    attribution::attribute_to_lists,
    dto::check_limit,
    error::{ApiError, ApiResult, ErrorBody},
    experiments::Arm,
    extract::{ApiJson, ApiPath, ApiQuery},
    state::AppState,
};

/// Most items one list may hold.
pub const MAX_LIMIT: usize = 100;
/// Most events a session request may carry.
const MAX_SESSION_EVENTS: usize = 100;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1–100, default 10.
    pub limit: Option<usize>,
    /// Only products of this category.
    pub category: Option<String>,
    /// Comma-separated product ids never to return.
    pub exclude: Option<String>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
    /// `true` to look at the visitor's list without serving it (a console, a test): it is
    /// not logged — no impression for attribution, experiment results or a product's
    /// exposure, no `RecommendationGenerated` event — so an outcome naming its
    /// `recommendationId` is attributed as if it named none (to a list that was served).
    /// It is still counted in `vitrina_recommendations_served_total`. The list itself is
    /// the one the visitor would be served, cache included.
    pub preview: Option<bool>,
}

pub(crate) fn filters(
    limit: Option<usize>,
    category: Option<&String>,
    exclude: &[String],
    min_price: Option<f64>,
    max_price: Option<f64>,
) -> ApiResult<(usize, Filters)> {
    let limit = check_limit(limit, 10, MAX_LIMIT)?;
    let mut excluded = HashSet::new();
    for raw in exclude {
        excluded.insert(ProductId::parse(raw).map_err(|e| ApiError::from(e.at("exclude")))?);
    }
    for (name, v) in [("minPrice", min_price), ("maxPrice", max_price)] {
        if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
            return Err(ApiError::validation(vec![ValidationError::new(
                name,
                "must be a non-negative number",
            )]));
        }
    }
    // minPrice above maxPrice is an empty range: nothing matches, which is no error.
    let category = category.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
    Ok((limit, Filters { category, exclude: excluded, min_price, max_price }))
}

/// `?exclude=a,b,c`: product ids separated by commas (no blanks); empty means none.
fn excluded(raw: Option<&String>) -> Vec<String> {
    match raw.map(String::as_str) {
        None | Some("") => Vec::new(),
        Some(list) => list.split(',').map(str::to_string).collect(),
    }
}

impl ListQuery {
    fn filters(&self) -> ApiResult<(usize, Filters)> {
        filters(
            self.limit,
            self.category.as_ref(),
            &excluded(self.exclude.as_ref()),
            self.min_price,
            self.max_price,
        )
    }
}

/// The cache key of a visitor's list. The arm is part of it, so a visitor moved to another
/// variant never gets a list ranked for the old one; and the model, so a replica that swaps
/// its model later than another never serves or stores lists across the swap.
fn list_key(s: &AppState, arm: &Arm, limit: usize, f: &Filters) -> String {
    format!("{}|{}|{}", arm.label, arm.model_version(&s.engine), cache_key(limit, f))
}

fn cache_key(limit: usize, f: &Filters) -> String {
    let mut excluded: Vec<&str> = f.exclude.iter().map(|p| p.as_str()).collect();
    excluded.sort_unstable();
    format!("{limit}|{:?}|{}|{:?}|{:?}", f.category, excluded.join(","), f.min_price, f.max_price)
}

/// The product as shown inside a recommendation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductSummary {
    pub id: String,
    pub name: String,
    pub category: String,
    #[schema(example = "2499.00")]
    pub price: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationItem {
    pub product_id: String,
    pub score: f32,
    /// How strongly the visitor's own history supports the item, 0–1.
    pub confidence: f32,
    /// The candidate source that contributed most: `collaborative_filtering`,
    /// `matrix_factorization`, `next_item`, `linear_item_model`, `whole_history`,
    /// `trending`, `popular_in_category` or `new_item`.
    #[schema(example = "collaborative_filtering")]
    pub reason: String,
    /// The visitor's event behind the item, naming the product by name and id (by id alone
    /// when it has no name), e.g. `viewed Trail Shoes (product-3)`. A rating below the
    /// visitor's mean rating is a dislike: it never leads to an item nor explains one.
    pub explanation: Option<String>,
    pub product: ProductSummary,
}

/// A served list: the items and what identifies it (the common part of every list response).
#[derive(Debug)]
pub struct ListBody {
    pub recommendations: Vec<RecommendationItem>,
    pub generated_at: String,
    /// True when the list came from the per-visitor cache.
    pub from_cache: bool,
    /// Identifies this served list; send it back in click/cart/purchase metadata.
    pub recommendation_id: String,
    pub model_version: String,
    pub variant: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationsResponse {
    pub success: bool,
    pub user_id: String,
    pub recommendations: Vec<RecommendationItem>,
    pub generated_at: String,
    /// True when the list came from the per-visitor cache.
    pub from_cache: bool,
    /// Identifies this served list; send it back in click/cart/purchase metadata.
    pub recommendation_id: String,
    pub model_version: String,
    pub variant: String,
}

impl RecommendationsResponse {
    fn new(user_id: String, b: ListBody) -> Self {
        Self {
            success: true,
            user_id,
            recommendations: b.recommendations,
            generated_at: b.generated_at,
            from_cache: b.from_cache,
            recommendation_id: b.recommendation_id,
            model_version: b.model_version,
            variant: b.variant,
        }
    }
}

/// Records the impression (when a visitor is known) and shapes the list, of the items after
/// the first `skip` (a client's page: only what it is shown counts as shown).
fn serve(
    s: &AppState,
    visitor: Option<&UserId>,
    arm: &Arm,
    list: &RecommendationList,
    skip: usize,
    from_cache: bool,
    explain: impl Fn(&Recommended) -> Option<String>,
) -> ListBody {
    let shown;
    let list = if skip == 0 {
        list
    } else {
        shown = RecommendationList { items: list.items.iter().skip(skip).cloned().collect(), ..list.clone() };
        &shown
    };
    let recommendation_id = uuid::Uuid::now_v7().to_string();
    let items: Vec<RecommendationItem> = list
        .items
        .iter()
        .map(|r| RecommendationItem {
            product_id: r.product.id.to_string(),
            score: r.score,
            confidence: r.confidence,
            reason: r.source.as_str().to_string(),
            explanation: explain(r),
            product: ProductSummary {
                id: r.product.id.to_string(),
                name: r.product.name.clone(),
                category: r.product.category.clone(),
                price: r.product.price.to_string(),
            },
        })
        .collect();
    if let Some(user) = visitor {
        s.ports.bus.publish(DomainEvent::system(
            kinds::RECOMMENDATION_GENERATED,
            Some(user.to_string()),
            serde_json::json!({
                "recommendationId": recommendation_id,
                "variant": arm.label,
                "modelVersion": list.model_version,
                "items": list.items.iter().enumerate().map(|(i, r)| serde_json::json!({
                    "productId": r.product.id.as_str(), "source": r.source.as_str(), "position": i,
                })).collect::<Vec<_>>(),
            }),
        ));
        s.ports.impressions.record_impression(Impression {
            recommendation_id: recommendation_id.clone(),
            user_id: user.clone(),
            model_version: list.model_version.clone(),
            variant: arm.label.clone(),
            created_at: Utc::now(),
            items: list
                .items
                .iter()
                .enumerate()
                .map(|(i, r)| ImpressionItem {
                    product_id: r.product.id.clone(),
                    source: r.source.as_str().into(),
                    position: i as u32,
                })
                .collect(),
        });
    }
    metrics::counter!("vitrina_recommendations_served_total", "cache" => if from_cache { "hit" } else { "miss" })
        .increment(1);
    ListBody {
        recommendations: items,
        generated_at: format_ts(list.generated_at),
        from_cache,
        recommendation_id,
        model_version: list.model_version.clone(),
        variant: arm.label.clone(),
    }
}

/// Why a personalised item is listed: the visitor's event behind it, naming the product.
fn personal_explanation(s: &AppState, r: &Recommended) -> Option<String> {
    let (id, kind) = r.because.as_ref()?;
    let product = s.engine.product(id);
    Some(explanation(id, product.as_ref().map(|p| p.name.as_str()), *kind))
}

/// Ranks on the blocking pool (CPU work stays off the async workers).
async fn personal(
    s: &AppState,
    user: &UserId,
    arm: Arc<Arm>,
    limit: usize,
    f: Filters,
) -> ApiResult<Arc<RecommendationList>> {
    s.follower.hydrate(user).await?;
    let (engine, user) = (s.engine.clone(), user.clone());
    let list = tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let (model, ranking) = arm.setup(&engine);
        let now = Utc::now();
        let req = ListRequest { limit, filters: &f, now_ms: now.timestamp_millis() };
        let items = engine.recommend_with(&model, &ranking, &user, &req);
        metrics::histogram!("vitrina_rank_duration_seconds", "list" => "personal")
            .record(started.elapsed().as_secs_f64());
        RecommendationList { items, model_version: model.version.clone(), generated_at: now }
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(Arc::new(list))
}

/// The visitor's personalised list, from the cache when nothing changed since it was computed.
#[utoipa::path(get, path = "/api/v1/recommendations/recommendations/{userId}", tag = "recommendations",
    params(("userId" = String, Path), ListQuery),
    responses((status = 200, body = RecommendationsResponse), (status = 400, body = ErrorBody)))]
pub async fn recommendations(
    State(s): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<RecommendationsResponse>> {
    let user = UserId::parse(&user)?;
    let (limit, filters) = q.filters()?;
    let list = personal_list(&s, &user, limit, 0, filters, q.preview.unwrap_or(false)).await?;
    Ok(Json(RecommendationsResponse::new(user.to_string(), list)))
}

/// The visitor's personalised list as served: from the cache when nothing changed since it
/// was computed, its impression logged unless it is a `preview`.
pub(crate) async fn personal_list(
    s: &AppState,
    user: &UserId,
    limit: usize,
    skip: usize,
    filters: Filters,
    preview: bool,
) -> ApiResult<ListBody> {
    let arm = s.experiments.arm_for(Some(user.as_str()));
    let key = list_key(s, &arm, limit, &filters);
    // Another replica may have stored the visitor's latest event: this one applies it before
    // it judges what the cache holds, and a cached list computed before its latest event of
    // the visitor is stale, whatever became of the invalidation that should have dropped it.
    let found = s.cluster.lookup_fresh(s.ports.cache.as_ref(), &s.follower, &s.engine, user, &key).await;
    let (list, from_cache) = match found {
        CacheLookup::Hit(list) => (list, true),
        CacheLookup::Miss(token) => {
            // Read before computing: the list reflects at least this much of the log.
            let applied = s.follower.applied();
            let list = personal(s, user, arm.clone(), limit, filters).await?;
            s.ports.cache.store(user, &key, token, applied, list.clone()).await;
            (list, false)
        }
    };
    let logged = (!preview).then_some(user);
    Ok(serve(s, logged, &arm, &list, skip, from_cache, |r| personal_explanation(s, r)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// 1–100, default 10.
    pub limit: Option<usize>,
}

/// Recomputes the visitor's list now, bypassing (and then refreshing) the cache. The body
/// `{"limit": N}` is optional.
#[utoipa::path(post, path = "/api/v1/recommendations/recommendations/{userId}/refresh", tag = "recommendations",
    params(("userId" = String, Path)), request_body(content = Option<RefreshRequest>),
    responses((status = 200, body = RecommendationsResponse), (status = 400, body = ErrorBody)))]
pub async fn refresh(
    State(s): State<AppState>,
    ApiPath(user): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Json<RecommendationsResponse>> {
    let user = UserId::parse(&user)?;
    let body: RefreshRequest = crate::extract::optional_json(&body)?.unwrap_or_default();
    let (limit, filters) = ListQuery { limit: body.limit, ..Default::default() }.filters()?;
    s.cluster.fresh_for(&s.follower, &user).await;
    let arm = s.experiments.arm_for(Some(user.as_str()));
    let key = list_key(&s, &arm, limit, &filters);
    s.ports.cache.invalidate_user(&user).await;
    let token = s.ports.cache.lookup(&user, &key, u64::MAX).await.miss();
    let applied = s.follower.applied();
    let list = personal(&s, &user, arm.clone(), limit, filters).await?;
    if let Some(token) = token {
        s.ports.cache.store(&user, &key, token, applied, list.clone()).await;
    }
    let list = serve(&s, Some(&user), &arm, &list, 0, false, |r| personal_explanation(&s, r));
    Ok(Json(RecommendationsResponse::new(user.to_string(), list)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct SimilarQuery {
    /// 1–100, default 10.
    pub limit: Option<usize>,
    pub category: Option<String>,
    /// Comma-separated product ids never to return.
    pub exclude: Option<String>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
    /// The visitor looking, if known: the impression is logged for attribution.
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SimilarResponse {
    pub success: bool,
    pub product_id: String,
    pub recommendations: Vec<RecommendationItem>,
    pub generated_at: String,
    /// True when the list came from the per-visitor cache.
    pub from_cache: bool,
    /// Identifies this served list; send it back in click/cart/purchase metadata.
    pub recommendation_id: String,
    pub model_version: String,
    pub variant: String,
}

/// Products similar to one product: its item-kNN and live co-visitation neighbours, its
/// embedding neighbours, its EASE row, what visitors do next after it, and its category's
/// popular products. 404 for a product not in the catalogue.
#[utoipa::path(get, path = "/api/v1/recommendations/similar/{productId}", tag = "recommendations",
    params(("productId" = String, Path), SimilarQuery),
    responses((status = 200, body = SimilarResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn similar(
    State(s): State<AppState>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(q): ApiQuery<SimilarQuery>,
) -> ApiResult<Json<SimilarResponse>> {
    let product = ProductId::parse(&product)?;
    let visitor =
        q.user_id.as_deref().map(UserId::parse).transpose().map_err(|e| ApiError::from(e.at("userId")))?;
    let (limit, f) =
        filters(q.limit, q.category.as_ref(), &excluded(q.exclude.as_ref()), q.min_price, q.max_price)?;
    let b = similar_list(&s, &product, visitor.as_ref(), limit, 0, f)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product {product} not found")))?;
    Ok(Json(SimilarResponse {
        success: true,
        product_id: product.to_string(),
        recommendations: b.recommendations,
        generated_at: b.generated_at,
        from_cache: b.from_cache,
        recommendation_id: b.recommendation_id,
        model_version: b.model_version,
        variant: b.variant,
    }))
}

/// Products similar to `product` as served (impression logged for a known `visitor`);
/// `None` for a product not in the catalogue.
pub(crate) async fn similar_list(
    s: &AppState,
    product: &ProductId,
    visitor: Option<&UserId>,
    limit: usize,
    skip: usize,
    f: Filters,
) -> ApiResult<Option<ListBody>> {
    let (engine, id) = (s.engine.clone(), product.clone());
    let arm = s.experiments.arm_for(visitor.map(UserId::as_str));
    let for_ranking = arm.clone();
    let list = tokio::task::spawn_blocking(move || {
        let (model, ranking) = for_ranking.setup(&engine);
        let now = Utc::now();
        let req = ListRequest { limit, filters: &f, now_ms: now.timestamp_millis() };
        engine.similar(&model, &ranking, &id, &req).map(|items| RecommendationList {
            items,
            model_version: model.version.clone(),
            generated_at: now,
        })
    })
    .await
    .map_err(ApiError::internal)?;
    let about = product.clone();
    Ok(list.map(|list| {
        serve(s, visitor, &arm, &list, skip, false, move |r| {
            r.source.is_personal().then(|| format!("similar to {about}"))
        })
    }))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PopularQuery {
    /// 1–100, default 10.
    pub limit: Option<usize>,
    /// Only products of this category.
    pub category: Option<String>,
    /// Time scale of popularity: `hour`, `day` (default), `week` or `month` — the half-life
    /// of the decayed interaction counts.
    pub window: Option<String>,
    /// Comma-separated product ids never to return.
    pub exclude: Option<String>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
    /// The visitor looking, if known: the impression is logged for attribution.
    pub user_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PopularResponse {
    pub success: bool,
    pub window: String,
    pub category: Option<String>,
    pub recommendations: Vec<RecommendationItem>,
    pub generated_at: String,
    /// True when the list came from the per-visitor cache.
    pub from_cache: bool,
    /// Identifies this served list; send it back in click/cart/purchase metadata.
    pub recommendation_id: String,
    pub model_version: String,
    pub variant: String,
}

/// Popular and trending products, overall or in one category, by live time-decayed counts.
#[utoipa::path(get, path = "/api/v1/recommendations/popular", tag = "recommendations",
    params(PopularQuery),
    responses((status = 200, body = PopularResponse), (status = 400, body = ErrorBody)))]
pub async fn popular(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PopularQuery>,
) -> ApiResult<Json<PopularResponse>> {
    let window: Window = q
        .window
        .as_deref()
        .unwrap_or("day")
        .parse()
        .map_err(|e: String| ApiError::validation(vec![ValidationError::new("window", e)]))?;
    let visitor =
        q.user_id.as_deref().map(UserId::parse).transpose().map_err(|e| ApiError::from(e.at("userId")))?;
    let (limit, f) =
        filters(q.limit, q.category.as_ref(), &excluded(q.exclude.as_ref()), q.min_price, q.max_price)?;
    let category = f.category.clone();
    let b = unranked_list(&s, visitor.as_ref(), limit, 0, f, |engine, req| engine.popular(window, req));
    Ok(Json(PopularResponse {
        success: true,
        window: window.as_str().into(),
        category,
        recommendations: b.recommendations,
        generated_at: b.generated_at,
        from_cache: b.from_cache,
        recommendation_id: b.recommendation_id,
        model_version: b.model_version,
        variant: b.variant,
    }))
}

/// A list that does not depend on the visitor or the ranking config (popular, latest) as
/// served: the variant is still named, so its impressions and outcomes count for it.
pub(crate) fn unranked_list(
    s: &AppState,
    visitor: Option<&UserId>,
    limit: usize,
    skip: usize,
    f: Filters,
    list: impl FnOnce(&vitrina_engine::Engine, &ListRequest) -> Vec<Recommended>,
) -> ListBody {
    let now = Utc::now();
    let req = ListRequest { limit, filters: &f, now_ms: now.timestamp_millis() };
    let items = list(&s.engine, &req);
    let arm = s.experiments.arm_for(visitor.map(UserId::as_str));
    let model_version =
        arm.model.as_ref().map_or_else(|| s.engine.model().version.clone(), |m| m.version.clone());
    let list = RecommendationList { items, model_version, generated_at: now };
    serve(s, visitor, &arm, &list, skip, false, |_| None)
}

/// One event of an anonymous session.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionEventDto {
    #[schema(example = "product-3")]
    pub product_id: String,
    /// An activity type with a product (`view` by default).
    #[schema(example = "view")]
    pub activity_type: Option<String>,
    /// RFC 3339 or epoch milliseconds; default: in the order given.
    #[schema(value_type = Option<String>)]
    pub timestamp: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionRequest {
    /// The session's id, if the shop has one: the impression is logged under it.
    pub session_id: Option<String>,
    /// What the visitor did in this session, oldest first (at most 100).
    #[serde(default)]
    pub events: Vec<SessionEventDto>,
    /// Shorthand for `view` events of these products, oldest first.
    #[serde(default)]
    pub product_ids: Vec<String>,
    pub limit: Option<usize>,
    pub category: Option<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    pub success: bool,
    pub session_id: Option<String>,
    pub recommendations: Vec<RecommendationItem>,
    pub generated_at: String,
    /// True when the list came from the per-visitor cache.
    pub from_cache: bool,
    /// Identifies this served list; send it back in click/cart/purchase metadata.
    pub recommendation_id: String,
    pub model_version: String,
    pub variant: String,
}

/// A list for an anonymous visitor from the events of their current session — nothing is
/// stored; track the events as well if they should count for training.
#[utoipa::path(post, path = "/api/v1/recommendations/session", tag = "recommendations",
    request_body = SessionRequest,
    responses((status = 200, body = SessionResponse), (status = 400, body = ErrorBody)))]
pub async fn session(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<SessionRequest>,
) -> ApiResult<Json<SessionResponse>> {
    let visitor = body
        .session_id
        .as_deref()
        .map(UserId::parse)
        .transpose()
        .map_err(|e| ApiError::from(e.at("sessionId")))?;
    let (limit, f) =
        filters(body.limit, body.category.as_ref(), &body.exclude, body.min_price, body.max_price)?;
    for (field, len) in [("events", body.events.len()), ("productIds", body.product_ids.len())] {
        if len > MAX_SESSION_EVENTS {
            return Err(ApiError::validation(vec![ValidationError::new(
                field,
                format!("at most {MAX_SESSION_EVENTS} items, got {len}"),
            )]));
        }
    }
    let n = body.events.len() + body.product_ids.len();
    let now = Utc::now();
    let start = now.timestamp_millis() - n as i64;
    let mut events = Vec::with_capacity(n);
    let mut errors = Vec::new();
    for (i, e) in body.events.iter().enumerate() {
        let field = |f: &str| format!("events[{i}].{f}");
        let product = ProductId::parse(&e.product_id).map_err(|err| err.at(field("productId")));
        let kind = match e.activity_type.as_deref().unwrap_or("view").parse::<ActivityType>() {
            Ok(k) if k.needs_product() => Ok(k),
            Ok(k) => Err(ValidationError::new(field("activityType"), format!("{k} has no product"))),
            Err(err) => Err(err.at(field("activityType"))),
        };
        let ts = match &e.timestamp {
            Some(raw) => parse_event_time(&field("timestamp"), raw, now).map(|t| t.timestamp_millis()),
            None => Ok(start + i as i64),
        };
        match (product, kind, ts) {
            (Ok(product_id), Ok(kind), Ok(ts_ms)) => events.push(SessionEvent { product_id, kind, ts_ms }),
            (p, k, t) => errors.extend([p.err(), k.err(), t.err()].into_iter().flatten()),
        }
    }
    for (i, raw) in body.product_ids.iter().enumerate() {
        match ProductId::parse(raw) {
            Ok(product_id) => events.push(SessionEvent {
                product_id,
                kind: ActivityType::View,
                ts_ms: start + (body.events.len() + i) as i64,
            }),
            Err(e) => errors.push(e.at(format!("productIds[{i}]"))),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let b = session_list(&s, visitor.as_ref(), events, limit, 0, f).await?;
    Ok(Json(SessionResponse {
        success: true,
        session_id: body.session_id,
        recommendations: b.recommendations,
        generated_at: b.generated_at,
        from_cache: b.from_cache,
        recommendation_id: b.recommendation_id,
        model_version: b.model_version,
        variant: b.variant,
    }))
}

/// A list from a session's events as served (impression logged under `visitor`, if any).
pub(crate) async fn session_list(
    s: &AppState,
    visitor: Option<&UserId>,
    events: Vec<SessionEvent>,
    limit: usize,
    skip: usize,
    f: Filters,
) -> ApiResult<ListBody> {
    let now = Utc::now();
    let engine = s.engine.clone();
    let arm = s.experiments.arm_for(visitor.map(UserId::as_str));
    let for_ranking = arm.clone();
    let list = tokio::task::spawn_blocking(move || {
        let (model, ranking) = for_ranking.setup(&engine);
        let req = ListRequest { limit, filters: &f, now_ms: now.timestamp_millis() };
        let items = engine.recommend_session(&model, &ranking, &events, &req);
        RecommendationList { items, model_version: model.version.clone(), generated_at: now }
    })
    .await
    .map_err(ApiError::internal)?;
    Ok(serve(s, visitor, &arm, &list, skip, false, |r| personal_explanation(s, r)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// 1–365, default 30.
    pub days: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsResponse {
    pub success: bool,
    pub user_id: String,
    pub days: i64,
    #[schema(value_type = Object)]
    pub stats: UserStats,
}

/// The visitor's recommendation stats over the last `days`: lists served, item impressions,
/// attributed clicks, add-to-carts and purchases (conversions), CTR and conversion rate, in
/// total and by algorithm (item source) and variant.
#[utoipa::path(get, path = "/api/v1/recommendations/stats/{userId}", tag = "recommendations",
    params(("userId" = String, Path), StatsQuery),
    responses((status = 200, body = StatsResponse), (status = 400, body = ErrorBody)))]
pub async fn stats(
    State(s): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> ApiResult<Json<StatsResponse>> {
    let user = UserId::parse(&user)?;
    let days = q.days.unwrap_or(30);
    if !(1..=365).contains(&days) {
        return Err(ApiError::validation(vec![ValidationError::new(
            "days",
            format!("must be from 1 to 365, got {days}"),
        )]));
    }
    let since = Utc::now() - Duration::days(days);
    let impressions = s.ports.impressions.impressions_for_user(&user, since).await?;
    let events = s.ports.log.user_events_since(&user, since).await?;
    let outcomes = attribute_to_lists(&impressions, &events, s.experiments.attribution_window());
    Ok(Json(StatsResponse {
        success: true,
        user_id: user.to_string(),
        days,
        stats: user_stats(&impressions, &outcomes),
    }))
}
