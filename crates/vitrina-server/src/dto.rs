//! API data transfer objects shared by several routes, and their conversions from domain
//! values. JSON is camelCase; times are RFC 3339 with milliseconds.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use vitrina_core::{time::format_ts, ActivityInput, Product, StoredActivity};

/// One activity as the client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackRequest {
    /// Visitor id (1–128 of letters, digits, `-_.:@`).
    #[schema(example = "user-1")]
    pub user_id: Option<String>,
    /// One of view, click, like, add_to_cart, remove_from_cart, purchase, search, rating.
    #[schema(example = "view")]
    pub activity_type: Option<String>,
    /// Required for every type but `search`.
    #[schema(example = "product-1")]
    pub product_id: Option<String>,
    /// Free-form (≤ 8 KiB). `search` needs `query`; `rating` needs `value` (0–10); `click`,
    /// `add_to_cart` and `purchase` may carry the `recommendationId` they respond to.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
    /// RFC 3339 or epoch milliseconds; defaults to the time of receipt.
    #[schema(value_type = Option<String>, example = "2024-01-15T10:30:00.000Z")]
    pub timestamp: Option<Value>,
    /// Idempotency key: an event whose id was already stored is acknowledged, not stored again.
    pub event_id: Option<String>,
}

impl From<TrackRequest> for ActivityInput {
    fn from(r: TrackRequest) -> Self {
        ActivityInput {
            event_id: r.event_id,
            user_id: r.user_id,
            activity_type: r.activity_type,
            product_id: r.product_id,
            metadata: r.metadata,
            timestamp: r.timestamp,
        }
    }
}

/// A stored activity.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityDto {
    pub event_id: String,
    /// Position in the event log.
    pub sequence: u64,
    pub user_id: String,
    pub activity_type: String,
    pub product_id: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub timestamp: String,
    pub received_at: String,
}

impl From<&StoredActivity> for ActivityDto {
    fn from(s: &StoredActivity) -> Self {
        let e = &s.event;
        Self {
            event_id: e.event_id.to_string(),
            sequence: s.seq,
            user_id: e.user_id.to_string(),
            activity_type: e.activity_type.as_str().to_string(),
            product_id: e.product_id.as_ref().map(|p| p.to_string()),
            metadata: e.metadata.clone(),
            timestamp: format_ts(e.timestamp),
            received_at: format_ts(s.received_at),
        }
    }
}

/// A catalogue product.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductDto {
    #[schema(example = "product-8")]
    pub id: String,
    #[schema(example = "Рюкзак для ноутбука")]
    pub name: String,
    #[schema(example = "Аксессуары")]
    pub category: String,
    /// Decimal string.
    #[schema(example = "2499.00")]
    pub price: String,
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    pub in_stock: bool,
    pub hidden: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Product> for ProductDto {
    fn from(p: &Product) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name.clone(),
            category: p.category.clone(),
            price: p.price.to_string(),
            attributes: p.attributes.clone(),
            in_stock: p.in_stock,
            hidden: p.hidden,
            created_at: format_ts(p.created_at),
            updated_at: format_ts(p.updated_at),
        }
    }
}

/// Largest `?offset=` of a listing (deeper pages are refused: use filters).
pub const MAX_OFFSET: usize = 1_000_000;

/// `?limit=` with bounds.
pub fn check_limit(
    limit: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, crate::error::ApiError> {
    check_count("limit", limit, default, max)
}

/// A count parameter named `field` from 1 to `max`, `default` when absent.
pub fn check_count(
    field: &str,
    count: Option<usize>,
    default: usize,
    max: usize,
) -> Result<usize, crate::error::ApiError> {
    match count.unwrap_or(default) {
        n if (1..=max).contains(&n) => Ok(n),
        n => {
            Err(vitrina_core::ValidationError::new(field, format!("must be from 1 to {max}, got {n}")).into())
        }
    }
}

/// `?offset=` with its bound.
pub fn check_offset(offset: Option<usize>) -> Result<usize, crate::error::ApiError> {
    match offset.unwrap_or(0) {
        n if n <= MAX_OFFSET => Ok(n),
        n => Err(vitrina_core::ValidationError::new(
            "offset",
            format!("must be from 0 to {MAX_OFFSET}, got {n}"),
        )
        .into()),
    }
}
