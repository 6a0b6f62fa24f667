//! Gorse's items: the catalogue, written through the same path as `/api/v1/catalog`.

use axum::{extract::State, Json};
use chrono::Utc;
use serde_json::Value;
use vitrina_core::{ports::ProductQuery, Product, ProductId, TextSearch, ValidationError};

use super::{
    model::{
        item_from_input, item_of, patched_item, product_of, Item, ItemInput, ItemPage, ItemPatch, Success,
    },
    next_cursor, GorseJson, GorseObject, PageQuery,
};
use crate::{
    error::{ApiError, ApiResult, ErrorBody},
    extract::{ApiPath, ApiQuery},
    routes::catalog::{after_write, stored},
    state::AppState,
};

/// Validates `items` (all or nothing) into products, keeping what each existing product has
/// of its own (price, stock, other attributes, creation time).
async fn products(s: &AppState, items: Vec<ItemInput>) -> ApiResult<Vec<Product>> {
    let now = Utc::now();
    let mut out = Vec::with_capacity(items.len());
    let mut errors: Vec<ValidationError> = Vec::new();
    let several = items.len() > 1;
    for (i, input) in items.into_iter().enumerate() {
        let within = |e: ValidationError| if several { e.within(&format!("[{i}]")) } else { e };
        let item = match item_from_input(input) {
            Ok(item) => item,
            Err(errs) => {
                errors.extend(errs.into_iter().map(within));
                continue;
            }
        };
        let existing = match ProductId::parse(&item.item_id) {
            Ok(id) => s.ports.catalog.product(&id).await?,
            Err(_) => None,
        };
        match product_of(item, existing.as_ref(), now) {
            Ok(p) => out.push(p),
            Err(errs) => errors.extend(errs.into_iter().map(within)),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    // An id given twice: the later one wins, as if the two were sent one after the other.
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Product> = out.into_iter().rev().filter(|p| seen.insert(p.id.clone())).collect();
    out.reverse();
    Ok(out)
}

async fn write(s: &AppState, products: Vec<Product>) -> ApiResult<()> {
    s.ports.catalog.upsert_products(products.clone()).await?;
    after_write(s, products).await;
    Ok(())
}

/// Inserts or replaces an item (Gorse: `POST /api/item`).
#[utoipa::path(post, operation_id = "gorse_items_insert", path = "/api/item", tag = "gorse", request_body = ItemInput,
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn insert(
    State(s): State<AppState>,
    GorseJson(item): GorseJson<ItemInput>,
) -> ApiResult<Json<Success>> {
    let products = products(&s, vec![item]).await?;
    write(&s, products).await?;
    Ok(Json(Success { row_affected: 1 }))
}

/// Inserts or replaces items, all or none (Gorse: `POST /api/items`).
#[utoipa::path(post, operation_id = "gorse_items_insert_many", path = "/api/items", tag = "gorse", request_body = Vec<ItemInput>,
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody)))]
pub async fn insert_many(
    State(s): State<AppState>,
    GorseJson(items): GorseJson<Vec<ItemInput>>,
) -> ApiResult<Json<Success>> {
    let max = s.limits.bulk_products;
    if items.len() > max {
        return Err(ApiError::bad_request(format!("at most {max} items per request, got {}", items.len())));
    }
    let rows = items.len();
    let products = products(&s, items).await?;
    if !products.is_empty() {
        write(&s, products).await?;
    }
    Ok(Json(Success { row_affected: rows }))
}

/// Reads an item; 404 when the catalogue does not hold it (Gorse: `GET /api/item/{itemId}`).
#[utoipa::path(get, operation_id = "gorse_items_get", path = "/api/item/{itemId}", tag = "gorse", params(("itemId" = String, Path)),
    responses((status = 200, body = Item), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Item>> {
    let product = stored(&s, &ProductId::parse(&id)?).await?;
    Ok(Json(item_of(&product)))
}

async fn change(
    s: &AppState,
    id: &str,
    edit: impl FnOnce(Item) -> Result<Item, Vec<ValidationError>>,
) -> ApiResult<()> {
    let existing = stored(s, &ProductId::parse(id)?).await?;
    let item = edit(item_of(&existing)).map_err(ApiError::validation)?;
    let product = product_of(item, Some(&existing), Utc::now()).map_err(ApiError::validation)?;
    write(s, vec![product]).await
}

/// Changes the fields given (`null` or absent: unchanged); 404 for an unknown item (Gorse:
/// `PATCH /api/item/{itemId}`).
#[utoipa::path(patch, operation_id = "gorse_items_patch", path = "/api/item/{itemId}", tag = "gorse", params(("itemId" = String, Path)),
    request_body = ItemPatch,
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody)))]
pub async fn patch(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<String>,
    GorseObject(p): GorseObject<ItemPatch>,
) -> ApiResult<Json<Success>> {
    change(&s, &id, |item| patched_item(item, p)).await?;
    Ok(Json(Success { row_affected: 1 }))
}

/// Adds a category to an item (Gorse: `PUT /api/item/{itemId}/category/{category}`).
#[utoipa::path(put, operation_id = "gorse_items_add_category", path = "/api/item/{itemId}/category/{category}", tag = "gorse",
    params(("itemId" = String, Path), ("category" = String, Path)),
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn add_category(
    State(s): State<AppState>,
    ApiPath((id, category)): ApiPath<(String, String)>,
) -> ApiResult<Json<Success>> {
    change(&s, &id, |mut item| {
        let categories = item.categories.get_or_insert_with(Vec::new);
        if !categories.contains(&category) {
            categories.push(category);
        }
        Ok(item)
    })
    .await?;
    Ok(Json(Success { row_affected: 1 }))
}

/// Removes a category from an item (Gorse: `DELETE /api/item/{itemId}/category/{category}`).
#[utoipa::path(delete, operation_id = "gorse_items_remove_category", path = "/api/item/{itemId}/category/{category}", tag = "gorse",
    params(("itemId" = String, Path), ("category" = String, Path)),
    responses((status = 200, body = Success), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn remove_category(
    State(s): State<AppState>,
    ApiPath((id, category)): ApiPath<(String, String)>,
) -> ApiResult<Json<Success>> {
    // A category no item can have is a mistake to say so about, not a no-op.
    let category = vitrina_core::catalog::check_text("category", &category)?;
    change(&s, &id, |mut item| {
        if let Some(categories) = item.categories.as_mut() {
            categories.retain(|c| *c != category);
        }
        Ok(item)
    })
    .await?;
    Ok(Json(Success { row_affected: 1 }))
}

/// Deletes an item from the catalogue; `RowAffected` is 0 when there was none (Gorse:
/// `DELETE /api/item/{itemId}`). Its events stay in the log.
#[utoipa::path(delete, operation_id = "gorse_items_delete", path = "/api/item/{itemId}", tag = "gorse", params(("itemId" = String, Path)),
    responses((status = 200, body = Success), (status = 400, body = ErrorBody)))]
pub async fn delete(State(s): State<AppState>, ApiPath(id): ApiPath<String>) -> ApiResult<Json<Success>> {
    let id = ProductId::parse(&id)?;
    let deleted = crate::routes::catalog::remove(&s, &id).await?;
    Ok(Json(Success { row_affected: usize::from(deleted) }))
}

/// A page of items ordered by id (Gorse: `GET /api/items?n=&cursor=`). `q` (pygorse's
/// `search_items`) keeps the items whose id, comment or categories contain it, ignoring case.
#[utoipa::path(get, operation_id = "gorse_items_page", path = "/api/items", tag = "gorse", params(PageQuery, SearchQuery),
    responses((status = 200, body = ItemPage), (status = 400, body = ErrorBody)))]
pub async fn page(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
    ApiQuery(search): ApiQuery<SearchQuery>,
) -> ApiResult<Json<ItemPage>> {
    let (n, offset) = q.rows()?;
    if let Some(text) = TextSearch::parse("q", search.q.as_deref().unwrap_or_default())? {
        return Ok(Json(ItemPage { cursor: String::new(), items: search_items(&s, &text, n) }));
    }
    let Some(offset) = offset else { return Ok(Json(ItemPage { cursor: String::new(), items: Vec::new() })) };
    let (products, total) =
        s.ports.catalog.products(ProductQuery { category: None, offset, limit: n }).await?;
    let cursor = next_cursor(offset, products.len(), total);
    Ok(Json(ItemPage { cursor, items: products.iter().map(item_of).collect() }))
}

/// The search of `GET /api/items`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Text the item's id, comment or a category contains, ignoring case; at most 512
    /// characters.
    pub q: Option<String>,
}

/// The first `n` catalogue items (by id) whose id, comment or categories contain `text`,
/// judged on the products themselves: an item's comment is its product's name, its first
/// category the product's category.
fn search_items(s: &AppState, text: &TextSearch, n: usize) -> Vec<Item> {
    let mut found = s.engine.products_where(|p| {
        let categories =
            p.attributes.get(super::model::KEY).and_then(|g| g.get("categories")).and_then(Value::as_array);
        text.finds_product(p)
            || categories.into_iter().flatten().filter_map(Value::as_str).any(|c| text.finds(c))
    });
    found.sort_by(|a, b| a.id.cmp(&b.id));
    found.iter().take(n).map(|p| item_of(p)).collect()
}
