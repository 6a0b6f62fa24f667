//! Mapping between PostgreSQL rows and domain values. The columns hold what the SQLite
//! store's hold (text ids, JSON as text, times as unix milliseconds), so that a deployment
//! moves between the two without conversion.

use serde_json::{Map, Value};
use tokio_postgres::Row;
use vitrina_core::{
    keys::{ApiKey, Scope},
    ports::{Artefact, ModelRecord, ModelStatus, StoreError},
    time::from_millis,
    ActivityType, EventId, LogEvent, NewActivity, Price, Product, ProductId, StoredActivity, User, UserId,
};

pub const EVENT_COLUMNS: &str =
    "seq, event_id, user_id, activity_type, product_id, metadata, ts_ms, received_ms";

/// A row that does not hold what the schema promises.
fn corrupt(column: &str, what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("corrupt value in column {column}: {what}"))
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, column: &str) -> Result<T, StoreError> {
    row.try_get(column).map_err(|e| corrupt(column, e))
}

fn parsed<T, E: std::fmt::Display>(column: &str, r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| corrupt(column, e))
}

fn object(column: &str, text: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text).map_err(|e| corrupt(column, e))? {
        Value::Object(m) => Ok(m),
        other => Err(corrupt(column, format!("expected a JSON object, found {other}"))),
    }
}

pub fn event(row: &Row) -> Result<StoredActivity, StoreError> {
    let product: Option<&str> = get(row, "product_id")?;
    Ok(StoredActivity {
        seq: get::<i64>(row, "seq")? as u64,
        event: NewActivity {
            event_id: parsed("event_id", EventId::parse(get(row, "event_id")?))?,
            user_id: parsed("user_id", UserId::parse(get(row, "user_id")?))?,
            activity_type: parsed(
                "activity_type",
                get::<&str>(row, "activity_type")?.parse::<ActivityType>(),
            )?,
            product_id: product.map(|p| parsed("product_id", ProductId::parse(p))).transpose()?,
            metadata: object("metadata", get(row, "metadata")?)?,
            timestamp: from_millis(get(row, "ts_ms")?),
        },
        received_at: from_millis(get(row, "received_ms")?),
    })
}

/// Columns: seq, user_id, product_id, activity_type, ts_ms, rating_metadata (a rating's
/// metadata, else NULL).
pub fn log_event(row: &Row) -> Result<LogEvent, StoreError> {
    let product: Option<&str> = get(row, "product_id")?;
    Ok(LogEvent {
        seq: get::<i64>(row, "seq")? as u64,
        user_id: parsed("user_id", UserId::parse(get(row, "user_id")?))?,
        product_id: product.map(|p| parsed("product_id", ProductId::parse(p))).transpose()?,
        activity_type: parsed("activity_type", get::<&str>(row, "activity_type")?.parse::<ActivityType>())?,
        ts_ms: get(row, "ts_ms")?,
        value: match get::<Option<&str>>(row, "rating_metadata")? {
            Some(text) => object("metadata", text)?.get("value").and_then(Value::as_f64).map(|v| v as f32),
            None => None,
        },
    })
}

pub const PRODUCT_COLUMNS: &str =
    "id, name, category, price, attributes, in_stock, hidden, created_ms, updated_ms";
pub const USER_COLUMNS: &str = "id, name, attributes, created_ms";
pub const MODEL_COLUMNS: &str = "version, algorithm, parameters, metrics, status, first_seq, last_seq, created_ms, \
     activated_ms, previous_version, status_reason, artefact_path, artefact_checksum, artefact_bytes, finished_ms";
pub const KEY_COLUMNS: &str = "id, name, scope, hash, prefix, created_ms, revoked_ms";

fn json(column: &str, text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(column, e))
}

pub fn product(row: &Row) -> Result<Product, StoreError> {
    Ok(Product {
        id: parsed("id", ProductId::parse(get(row, "id")?))?,
        name: get(row, "name")?,
        category: get(row, "category")?,
        price: parsed("price", get::<&str>(row, "price")?.parse::<Price>())?,
        attributes: object("attributes", get(row, "attributes")?)?,
        in_stock: get(row, "in_stock")?,
        hidden: get(row, "hidden")?,
        created_at: from_millis(get(row, "created_ms")?),
        updated_at: from_millis(get(row, "updated_ms")?),
    })
}

pub fn user(row: &Row) -> Result<User, StoreError> {
    Ok(User {
        id: parsed("id", UserId::parse(get(row, "id")?))?,
        name: get(row, "name")?,
        attributes: object("attributes", get(row, "attributes")?)?,
        created_at: from_millis(get(row, "created_ms")?),
    })
}

pub fn model(row: &Row) -> Result<ModelRecord, StoreError> {
    let status: &str = get(row, "status")?;
    let path: Option<String> = get(row, "artefact_path")?;
    let checksum: Option<String> = get(row, "artefact_checksum")?;
    Ok(ModelRecord {
        version: get(row, "version")?,
        algorithm: get(row, "algorithm")?,
        parameters: json("parameters", get(row, "parameters")?)?,
        metrics: json("metrics", get(row, "metrics")?)?,
        status: ModelStatus::parse(status)
            .ok_or_else(|| corrupt("status", format!("unknown status {status}")))?,
        status_reason: get(row, "status_reason")?,
        data_range: (get::<i64>(row, "first_seq")? as u64, get::<i64>(row, "last_seq")? as u64),
        artefact: match (path, checksum) {
            (Some(path), Some(checksum)) => Some(Artefact {
                path,
                checksum,
                size_bytes: get::<Option<i64>>(row, "artefact_bytes")?.unwrap_or(0) as u64,
            }),
            _ => None,
        },
        created_at: from_millis(get(row, "created_ms")?),
        finished_at: get::<Option<i64>>(row, "finished_ms")?.map(from_millis),
        activated_at: get::<Option<i64>>(row, "activated_ms")?.map(from_millis),
        previous_version: get(row, "previous_version")?,
    })
}

pub fn key(row: &Row) -> Result<ApiKey, StoreError> {
    let scope: &str = get(row, "scope")?;
    Ok(ApiKey {
        id: get(row, "id")?,
        name: get(row, "name")?,
        scope: Scope::parse(scope).ok_or_else(|| corrupt("scope", format!("unknown scope {scope:?}")))?,
        hash: get(row, "hash")?,
        prefix: get(row, "prefix")?,
        created_at: from_millis(get(row, "created_ms")?),
        revoked_at: get::<Option<i64>>(row, "revoked_ms")?.map(from_millis),
    })
}
