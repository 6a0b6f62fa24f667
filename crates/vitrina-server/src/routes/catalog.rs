//! Catalogue CRUD and bulk upsert. Every write updates the serving engine's live catalogue
//! and drops cached lists, so a hidden or out-of-stock product disappears at once.

use axum::{extract::State, http::StatusCode, Json};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};
use vitrina_core::{
    catalog::{check_attributes, check_text},
    changes::Change,
    ports::ProductQuery,
    Price, Product, ProductId, TextSearch, ValidationError,
};

use crate::{
    dto::{check_count, check_limit, check_offset, ProductDto},
    error::{ApiError, ApiResult, ErrorBody},
    extract::{parse_json, ApiJson, ApiPath, ApiQuery},
    state::AppState,
};

/// A product as the client sends it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductInput {
    /// Required except on `PUT /products/{id}`, where it may be left out (or must match).
    pub id: Option<String>,
    pub name: String,
    pub category: String,
    /// Decimal string (`"2499.00"`) or number.
    #[schema(value_type = String, example = "2499.00")]
    pub price: Value,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    /// Default true.
    pub in_stock: Option<bool>,
    /// Default false.
    pub hidden: Option<bool>,
}

impl ProductInput {
    pub fn into_product(self, path_id: Option<&str>) -> Result<Product, Vec<ValidationError>> {
        let mut errors = Vec::new();
        let id = match (self.id.as_deref(), path_id) {
            (Some(a), Some(b)) if a != b => {
                errors.push(ValidationError::new("id", format!("{a:?} does not match the path id {b:?}")));
                None
            }
            (Some(id), _) | (None, Some(id)) => ProductId::parse(id)
                .map_err(|mut e| {
                    e.field = "id".into();
                    errors.push(e)
                })
                .ok(),
            (None, None) => {
                errors.push(ValidationError::new("id", "is required"));
                None
            }
        };
        let name = check_text("name", &self.name).map_err(|e| errors.push(e)).ok();
        let category = check_text("category", &self.category).map_err(|e| errors.push(e)).ok();
        let price = Price::try_from(&self.price).map_err(|e| errors.push(e)).ok();
        let attributes = self.attributes.unwrap_or_default();
        if let Err(e) = check_attributes("attributes", &attributes) {
            errors.push(e);
        }
        match (id, name, category, price) {
            (Some(id), Some(name), Some(category), Some(price)) if errors.is_empty() => {
                let now = Utc::now();
                Ok(Product {
                    id,
                    name,
                    category,
                    price,
                    attributes,
                    in_stock: self.in_stock.unwrap_or(true),
                    hidden: self.hidden.unwrap_or(false),
                    created_at: now,
                    updated_at: now,
                })
            }
            _ => Err(errors),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductResponse {
    pub success: bool,
    pub product: ProductDto,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductList {
    pub success: bool,
    pub total: u64,
    pub offset: usize,
    pub limit: usize,
    pub products: Vec<ProductDto>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only products of this category (exact).
    pub category: Option<String>,
    /// Only products whose id, name or category contains this text, ignoring case; at most
    /// 512 characters; blank searches nothing. Searched in the serving catalogue, which
    /// follows the store.
    pub q: Option<String>,
    /// Default 0.
    pub offset: Option<usize>,
    /// 1–1000, default 100.
    pub limit: Option<usize>,
}

pub(crate) async fn after_write(s: &AppState, products: Vec<Product>) {
    let ids = products.iter().map(|p| p.id.clone()).collect();
    s.engine.upsert_products(products);
    s.ports.cache.invalidate_all().await;
    s.cluster.tell(Change::Products { ids });
}

pub(crate) async fn stored(s: &AppState, id: &ProductId) -> ApiResult<Product> {
    s.ports.catalog.product(id).await?.ok_or_else(|| ApiError::not_found(format!("product {id} not found")))
}

/// Lists products ordered by id; `total` counts every product that matches.
#[utoipa::path(get, path = "/api/v1/catalog/products", tag = "catalog", params(ListQuery),
    responses((status = 200, body = ProductList), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<ProductList>> {
    let limit = check_limit(q.limit, 100, 1000)?;
    let offset = check_offset(q.offset)?;
    let search = TextSearch::parse("q", q.q.as_deref().unwrap_or_default())?;
    let (products, total) = match search {
        // The serving catalogue holds every product (hidden ones too), and one case rule then
        // holds on every store (SQL's lower() depends on the database's locale).
        Some(search) => {
            // A scan of the whole catalogue: off the async workers.
            let (engine, category) = (s.engine.clone(), q.category);
            tokio::task::spawn_blocking(move || {
                let mut found = engine.products_where(|p| {
                    category.as_ref().is_none_or(|c| &p.category == c) && search.finds_product(p)
                });
                found.sort_by(|a, b| a.id.cmp(&b.id));
                let total = found.len() as u64;
                (found.iter().skip(offset).take(limit).map(|p| ProductDto::from(&**p)).collect(), total)
            })
            .await
            .map_err(ApiError::internal)?
        }
        None => {
            let query = ProductQuery { category: q.category, offset, limit };
            let (products, total) = s.ports.catalog.products(query).await?;
            (products.iter().map(ProductDto::from).collect(), total)
        }
    };
    Ok(Json(ProductList { success: true, total, offset, limit, products }))
}

/// Creates a product; 409 if the id exists.
#[utoipa::path(post, path = "/api/v1/catalog/products", tag = "catalog", request_body = ProductInput,
    responses((status = 201, body = ProductResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<ProductInput>,
) -> ApiResult<(StatusCode, Json<ProductResponse>)> {
    let product = input.into_product(None).map_err(ApiError::validation)?;
    s.ports.catalog.insert_product(product.clone()).await?;
    let dto = ProductDto::from(&product);
    after_write(&s, vec![product]).await;
    Ok((StatusCode::CREATED, Json(ProductResponse { success: true, product: dto })))
}

/// Reads one product.
#[utoipa::path(get, path = "/api/v1/catalog/products/{productId}", tag = "catalog", params(("productId" = String, Path)),
    responses((status = 200, body = ProductResponse), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<ProductResponse>> {
    let product = stored(&s, &ProductId::parse(&id)?).await?;
    Ok(Json(ProductResponse { success: true, product: ProductDto::from(&product) }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExposureQuery {
    /// 1–365, default 30: from the start of the UTC day `days - 1` days ago, through today.
    pub days: Option<usize>,
}

/// How often a product was shown in served lists and what followed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposureResponse {
    pub success: bool,
    pub product_id: String,
    pub days: usize,
    /// Start of the first day counted (RFC 3339, UTC midnight).
    pub since: String,
    /// Times the product was in a served list.
    pub impressions: u64,
    /// Clicks attributed to those lists.
    pub clicks: u64,
    /// Add-to-carts attributed to those lists.
    pub add_to_carts: u64,
    /// Purchases attributed to those lists.
    pub purchases: u64,
    /// Revenue of the attributed purchases.
    pub revenue: f64,
    /// Clicks per impression (0 without impressions).
    pub ctr: f64,
}

/// How often the product was shown in served lists over the last `days` UTC days, and the
/// clicks, add-to-carts, purchases and revenue attributed to them. Lists and outcomes older
/// than the impression retention are no longer counted.
#[utoipa::path(get, path = "/api/v1/catalog/products/{productId}/exposure", tag = "catalog",
    params(("productId" = String, Path), ExposureQuery),
    responses((status = 200, body = ExposureResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn exposure(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExposureQuery>,
) -> ApiResult<Json<ExposureResponse>> {
    let id = ProductId::parse(&id)?;
    let days = check_count("days", q.days, 30, 365)?;
    stored(&s, &id).await?;
    let today = Utc::now().date_naive();
    let since = (today - chrono::Days::new(days as u64 - 1)).and_time(chrono::NaiveTime::MIN).and_utc();
    let e = s.ports.impressions.exposure(&id, since).await?;
    Ok(Json(ExposureResponse {
        success: true,
        product_id: id.to_string(),
        days,
        since: vitrina_core::time::format_ts(since),
        impressions: e.impressions,
        clicks: e.clicks,
        add_to_carts: e.add_to_carts,
        purchases: e.purchases,
        revenue: e.revenue,
        ctr: if e.impressions > 0 { e.clicks as f64 / e.impressions as f64 } else { 0.0 },
    }))
}

/// Creates (201) or replaces (200) a product; a replaced product keeps its creation time.
#[utoipa::path(put, path = "/api/v1/catalog/products/{productId}", tag = "catalog", params(("productId" = String, Path)),
    request_body = ProductInput,
    responses((status = 200, description = "replaced", body = ProductResponse),
        (status = 201, description = "created", body = ProductResponse), (status = 400, body = ErrorBody)))]
pub async fn put(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(input): ApiJson<ProductInput>,
) -> ApiResult<(StatusCode, Json<ProductResponse>)> {
    let id = ProductId::parse(&id)?;
    let product = input.into_product(Some(id.as_str())).map_err(ApiError::validation)?;
    let existed = s.ports.catalog.product(&id).await?.is_some();
    s.ports.catalog.upsert_products(vec![product]).await?;
    let product = stored(&s, &id).await?;
    let dto = ProductDto::from(&product);
    after_write(&s, vec![product]).await;
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(ProductResponse { success: true, product: dto })))
}

/// Fields to change; all optional.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub category: Option<String>,
    #[schema(value_type = Option<String>)]
    pub price: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Option<Map<String, Value>>,
    pub in_stock: Option<bool>,
    pub hidden: Option<bool>,
}

/// Changes some fields, e.g. `{"hidden": true}` or `{"inStock": false}`.
#[utoipa::path(patch, path = "/api/v1/catalog/products/{productId}", tag = "catalog", params(("productId" = String, Path)),
    request_body = ProductPatch,
    responses((status = 200, body = ProductResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiJson(raw): ApiJson<Value>,
) -> ApiResult<Json<ProductResponse>> {
    let nulls: Vec<ValidationError> = raw
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| ValidationError::new(k.as_str(), "must not be null (leave the field out to keep it)"))
        .collect();
    if !nulls.is_empty() {
        return Err(ApiError::validation(nulls));
    }
    let p: ProductPatch = parse_json(raw.to_string().as_bytes())?;
    let mut product = stored(&s, &ProductId::parse(&id)?).await?;
    let mut errors = Vec::new();
    if let Some(name) = &p.name {
        check_text("name", name).map(|v| product.name = v).unwrap_or_else(|e| errors.push(e));
    }
    if let Some(category) = &p.category {
        check_text("category", category).map(|v| product.category = v).unwrap_or_else(|e| errors.push(e));
    }
    if let Some(price) = &p.price {
        Price::try_from(price).map(|v| product.price = v).unwrap_or_else(|e| errors.push(e));
    }
    if let Some(attributes) = p.attributes {
        check_attributes("attributes", &attributes).unwrap_or_else(|e| errors.push(e));
        product.attributes = attributes;
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    product.in_stock = p.in_stock.unwrap_or(product.in_stock);
    product.hidden = p.hidden.unwrap_or(product.hidden);
    product.updated_at = Utc::now();
    s.ports.catalog.upsert_products(vec![product.clone()]).await?;
    let dto = ProductDto::from(&product);
    after_write(&s, vec![product]).await;
    Ok(Json(ProductResponse { success: true, product: dto }))
}

/// Deletes a product. Its events stay in the log; it is no longer recommended.
#[utoipa::path(delete, path = "/api/v1/catalog/products/{productId}", tag = "catalog", params(("productId" = String, Path)),
    responses((status = 200, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Value>> {
    let id = ProductId::parse(&id)?;
    if !remove(&s, &id).await? {
        return Err(ApiError::not_found(format!("product {id} not found")));
    }
    Ok(Json(json!({"success": true, "deleted": id.as_str()})))
}

/// Deletes a product from the store and the engine, and drops every cached list; `false`
/// when there was none.
pub(crate) async fn remove(s: &AppState, id: &ProductId) -> ApiResult<bool> {
    if !s.ports.catalog.delete_product(id).await? {
        return Ok(false);
    }
    s.engine.remove_product(id);
    s.ports.cache.invalidate_all().await;
    s.cluster.tell(Change::Products { ids: vec![id.clone()] });
    Ok(true)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    pub products: Vec<ProductInput>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkResponse {
    pub success: bool,
    pub upserted: usize,
}

/// Creates or replaces up to 10,000 products atomically: one invalid product rejects the
/// whole request (every problem listed with its index) and nothing is stored.
#[utoipa::path(post, path = "/api/v1/catalog/products/bulk", tag = "catalog", request_body = BulkRequest,
    responses((status = 200, body = BulkResponse), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn bulk(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<BulkRequest>,
) -> ApiResult<Json<BulkResponse>> {
    let max = s.limits.bulk_products;
    if req.products.is_empty() || req.products.len() > max {
        return Err(ApiError::bad_request(format!(
            "products: must hold from 1 to {max} products, got {}",
            req.products.len()
        )));
    }
    let mut products = Vec::with_capacity(req.products.len());
    let mut errors = Vec::new();
    for (i, input) in req.products.into_iter().enumerate() {
        match input.into_product(None) {
            Ok(p) => products.push(p),
            Err(errs) => errors.extend(errs.into_iter().map(|e| e.within(&format!("products[{i}]")))),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // An id given twice: the later product wins, as if the two were sent one after the other.
    let last_at: std::collections::HashMap<ProductId, usize> =
        products.iter().enumerate().map(|(i, p)| (p.id.clone(), i)).collect();
    let products: Vec<Product> =
        products.into_iter().enumerate().filter(|(i, p)| last_at[&p.id] == *i).map(|(_, p)| p).collect();
    let upserted = products.len();
    s.ports.catalog.upsert_products(products.clone()).await?;
    after_write(&s, products).await;
    Ok(Json(BulkResponse { success: true, upserted }))
}
