//! Personalised lists (cached per visitor), forced refresh, and per-visitor stats.

use std::{collections::HashSet, sync::Arc};

use axum::{body::Bytes, extract::State, Json};
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use vitrina_core::{
    ports::{CacheLookup, Impression, ImpressionItem},
    recommend::{Filters, RecommendationList},
    stats::{user_stats, UserStats},
    time::format_ts,
    ProductId, UserId,
};

use crate::{
    dto::check_limit,
    error::{ApiError, ApiResult, ErrorBody},
    extract::{parse_json, ApiPath, ApiQuery},
    state::AppState,
};

/// Most items one list may hold.
pub const MAX_LIMIT: usize = 100;
/// The experiment variant every visitor is in until experiments exist.
const DEFAULT_VARIANT: &str = "default";

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct RecommendationQuery {
    /// 1–100, default 10.
    pub limit: Option<usize>,
    /// Only products of this category.
    pub category: Option<String>,
    /// Comma-separated product ids never to return.
    pub exclude: Option<String>,
    pub min_price: Option<f64>,
    pub max_price: Option<f64>,
}

impl RecommendationQuery {
    fn filters(&self) -> ApiResult<(usize, Filters)> {
        let limit = check_limit(self.limit, 10, MAX_LIMIT)?;
        let mut exclude = HashSet::new();
        for raw in self.exclude.iter().flat_map(|e| e.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
            exclude.insert(ProductId::parse(raw).map_err(|e| ApiError::from(e.within("exclude")))?);
        }
        for (name, v) in [("minPrice", self.min_price), ("maxPrice", self.max_price)] {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(ApiError::bad_request(format!("{name}: must be a non-negative number")));
            }
        }
        let category = self.category.as_ref().map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
        Ok((limit, Filters { category, exclude, min_price: self.min_price, max_price: self.max_price }))
    }
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
    /// The source: `collaborative_filtering` or `popular`.
    #[schema(example = "collaborative_filtering")]
    pub reason: String,
    /// The visitor's event behind the item, e.g. `viewed product-3`.
    pub explanation: Option<String>,
    pub product: ProductSummary,
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

fn past_tense(kind: vitrina_core::ActivityType) -> &'static str {
    use vitrina_core::ActivityType::*;
    match kind {
        View => "viewed",
        Click => "clicked",
        Like => "liked",
        AddToCart => "added to cart",
        RemoveFromCart => "removed from cart",
        Purchase => "purchased",
        Search => "searched",
        Rating => "rated",
    }
}

async fn compute(
    s: &AppState,
    user: &UserId,
    limit: usize,
    filters: &Filters,
) -> ApiResult<Arc<RecommendationList>> {
    let model = s.engine.model();
    let history = s.ports.log.recent_for_user(user, s.limits.history_events).await?;
    let now = Utc::now();
    let items = s.engine.recommend(&model, &history, filters, limit, now);
    Ok(Arc::new(RecommendationList { items, model_version: model.version.clone(), generated_at: now }))
}

fn respond(
    s: &AppState,
    user: &UserId,
    list: &RecommendationList,
    from_cache: bool,
) -> RecommendationsResponse {
    let recommendation_id = uuid::Uuid::now_v7().to_string();
    let items: Vec<RecommendationItem> = list
        .items
        .iter()
        .map(|r| RecommendationItem {
            product_id: r.product.id.to_string(),
            score: r.score,
            confidence: r.confidence,
            reason: r.reason.as_str().to_string(),
            explanation: r.because.as_ref().map(|(p, kind)| format!("{} {p}", past_tense(*kind))),
            product: ProductSummary {
                id: r.product.id.to_string(),
                name: r.product.name.clone(),
                category: r.product.category.clone(),
                price: r.product.price.to_string(),
            },
        })
        .collect();
    s.ports.impressions.record_impression(Impression {
        recommendation_id: recommendation_id.clone(),
        user_id: user.clone(),
        model_version: list.model_version.clone(),
        variant: DEFAULT_VARIANT.into(),
        created_at: Utc::now(),
        items: list
            .items
            .iter()
            .enumerate()
            .map(|(i, r)| ImpressionItem {
                product_id: r.product.id.clone(),
                source: r.reason.as_str().into(),
                position: i as u32,
            })
            .collect(),
    });
    metrics::counter!("vitrina_recommendations_served_total", "cache" => if from_cache { "hit" } else { "miss" })
        .increment(1);
    RecommendationsResponse {
        success: true,
        user_id: user.to_string(),
        recommendations: items,
        generated_at: format_ts(list.generated_at),
        from_cache,
        recommendation_id,
        model_version: list.model_version.clone(),
        variant: DEFAULT_VARIANT.into(),
    }
}

/// The visitor's personalised list, from the cache when nothing changed since it was computed.
#[utoipa::path(get, path = "/api/v1/recommendations/recommendations/{userId}", tag = "recommendations",
    params(("userId" = String, Path), RecommendationQuery),
    responses((status = 200, body = RecommendationsResponse), (status = 400, body = ErrorBody)))]
pub async fn recommendations(
    State(s): State<AppState>,
    ApiPath(user): ApiPath<String>,
    ApiQuery(q): ApiQuery<RecommendationQuery>,
) -> ApiResult<Json<RecommendationsResponse>> {
    let user = UserId::parse(&user)?;
    let (limit, filters) = q.filters()?;
    let key = cache_key(limit, &filters);
    let (list, from_cache) = match s.ports.cache.lookup(&user, &key).await {
        CacheLookup::Hit(list) => (list, true),
        CacheLookup::Miss(token) => {
            let list = compute(&s, &user, limit, &filters).await?;
            s.ports.cache.store(&user, &key, token, list.clone()).await;
            (list, false)
        }
    };
    Ok(Json(respond(&s, &user, &list, from_cache)))
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
    let body: RefreshRequest =
        if body.iter().all(u8::is_ascii_whitespace) { RefreshRequest::default() } else { parse_json(&body)? };
    let query = RecommendationQuery { limit: body.limit, ..Default::default() };
    let (limit, filters) = query.filters()?;
    let key = cache_key(limit, &filters);
    s.ports.cache.invalidate_user(&user).await;
    let token = match s.ports.cache.lookup(&user, &key).await {
        CacheLookup::Miss(token) => Some(token),
        CacheLookup::Hit(_) => None,
    };
    let list = compute(&s, &user, limit, &filters).await?;
    if let Some(token) = token {
        s.ports.cache.store(&user, &key, token, list.clone()).await;
    }
    Ok(Json(respond(&s, &user, &list, false)))
}

#[derive(Debug, Deserialize, IntoParams)]
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
        return Err(ApiError::bad_request(format!("days: must be from 1 to 365, got {days}")));
    }
    let since = Utc::now() - Duration::days(days);
    let impressions = s.ports.impressions.impressions_for_user(&user, since).await?;
    let events = s.ports.log.user_events_since(&user, since).await?;
    Ok(Json(StatsResponse {
        success: true,
        user_id: user.to_string(),
        days,
        stats: user_stats(&impressions, &events),
    }))
}
