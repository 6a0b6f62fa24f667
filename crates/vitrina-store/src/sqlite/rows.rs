//! Mapping between SQLite rows and domain values.

use rusqlite::{types::Type, Row};
use serde_json::{Map, Value};
use vitrina_core::{
    keys::{ApiKey, Scope},
    ports::{Artefact, AttributedOutcome, Impression, ModelRecord, ModelStatus},
    time::from_millis,
    ActivityType, EventId, LogEvent, NewActivity, Price, Product, ProductId, StoredActivity, User, UserId,
};

pub const EVENT_COLUMNS: &str =
    "seq, event_id, user_id, activity_type, product_id, metadata, ts_ms, received_ms";
pub const PRODUCT_COLUMNS: &str =
    "id, name, category, price, attributes, in_stock, hidden, created_ms, updated_ms";
pub const USER_COLUMNS: &str = "id, name, attributes, created_ms";
pub const IMPRESSION_COLUMNS: &str = "recommendation_id, user_id, model_version, variant, created_ms, items";
pub const OUTCOME_COLUMNS: &str =
    "event_id, recommendation_id, user_id, variant, product_id, source, position, kind, value, created_ms";
pub const MODEL_COLUMNS: &str = "version, algorithm, parameters, metrics, status, first_seq, last_seq, created_ms, \
     activated_ms, previous_version, status_reason, artefact_path, artefact_checksum, artefact_bytes, finished_ms";

pub const KEY_COLUMNS: &str = "id, name, scope, hash, prefix, created_ms, revoked_ms";

pub fn key(row: &Row) -> rusqlite::Result<ApiKey> {
    let scope: String = row.get(2)?;
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        scope: Scope::parse(&scope).ok_or_else(|| corrupt(2, format!("unknown scope {scope:?}")))?,
        hash: row.get(3)?,
        prefix: row.get(4)?,
        created_at: from_millis(row.get(5)?),
        revoked_at: row.get::<_, Option<i64>>(6)?.map(from_millis),
    })
}

fn corrupt(col: usize, what: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, Type::Text, what.to_string().into())
}

fn json_at(row: &Row, col: usize) -> rusqlite::Result<Value> {
    let text: String = row.get(col)?;
    serde_json::from_str(&text).map_err(|e| corrupt(col, e))
}

fn object_at(row: &Row, col: usize) -> rusqlite::Result<Map<String, Value>> {
    match json_at(row, col)? {
        Value::Object(m) => Ok(m),
        other => Err(corrupt(col, format!("expected a JSON object, found {other}"))),
    }
}

fn parsed<T, E: std::fmt::Display>(col: usize, r: Result<T, E>) -> rusqlite::Result<T> {
    r.map_err(|e| corrupt(col, e))
}

pub fn event(row: &Row) -> rusqlite::Result<StoredActivity> {
    let product: Option<String> = row.get(4)?;
    Ok(StoredActivity {
        seq: row.get::<_, i64>(0)? as u64,
        event: NewActivity {
            event_id: parsed(1, EventId::parse(&row.get::<_, String>(1)?))?,
            user_id: parsed(2, UserId::parse(&row.get::<_, String>(2)?))?,
            activity_type: parsed(3, row.get::<_, String>(3)?.parse::<ActivityType>())?,
            product_id: product.map(|p| parsed(4, ProductId::parse(&p))).transpose()?,
            metadata: object_at(row, 5)?,
            timestamp: from_millis(row.get(6)?),
        },
        received_at: from_millis(row.get(7)?),
    })
}

pub fn log_event(row: &Row) -> rusqlite::Result<LogEvent> {
    let product: Option<String> = row.get(2)?;
    Ok(LogEvent {
        seq: row.get::<_, i64>(0)? as u64,
        user_id: parsed(1, UserId::parse(row.get_ref(1)?.as_str()?))?,
        product_id: product.map(|p| parsed(2, ProductId::parse(&p))).transpose()?,
        activity_type: parsed(3, row.get_ref(3)?.as_str()?.parse::<ActivityType>())?,
        ts_ms: row.get(4)?,
        value: row.get::<_, Option<f64>>(5)?.map(|v| v as f32),
    })
}

pub fn product(row: &Row) -> rusqlite::Result<Product> {
    Ok(Product {
        id: parsed(0, ProductId::parse(&row.get::<_, String>(0)?))?,
        name: row.get(1)?,
        category: row.get(2)?,
        price: parsed(3, row.get::<_, String>(3)?.parse::<Price>())?,
        attributes: object_at(row, 4)?,
        in_stock: row.get(5)?,
        hidden: row.get(6)?,
        created_at: from_millis(row.get(7)?),
        updated_at: from_millis(row.get(8)?),
    })
}

pub fn user(row: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: parsed(0, UserId::parse(&row.get::<_, String>(0)?))?,
        name: row.get(1)?,
        attributes: object_at(row, 2)?,
        created_at: from_millis(row.get(3)?),
    })
}

pub fn outcome(row: &Row) -> rusqlite::Result<AttributedOutcome> {
    Ok(AttributedOutcome {
        event_id: row.get(0)?,
        recommendation_id: row.get(1)?,
        user_id: parsed(2, UserId::parse(row.get_ref(2)?.as_str()?))?,
        variant: row.get(3)?,
        product_id: parsed(4, ProductId::parse(row.get_ref(4)?.as_str()?))?,
        source: row.get(5)?,
        position: row.get(6)?,
        kind: parsed(7, row.get_ref(7)?.as_str()?.parse::<ActivityType>())?,
        value: row.get(8)?,
        created_at: from_millis(row.get(9)?),
    })
}

pub fn impression(row: &Row) -> rusqlite::Result<Impression> {
    Ok(Impression {
        recommendation_id: row.get(0)?,
        user_id: parsed(1, UserId::parse(row.get_ref(1)?.as_str()?))?,
        model_version: row.get(2)?,
        variant: row.get(3)?,
        created_at: from_millis(row.get(4)?),
        items: parsed(5, crate::served::items_from_text(row.get_ref(5)?.as_str()?))?,
    })
}

pub fn model(row: &Row) -> rusqlite::Result<ModelRecord> {
    let status: String = row.get(4)?;
    Ok(ModelRecord {
        version: row.get(0)?,
        algorithm: row.get(1)?,
        parameters: json_at(row, 2)?,
        metrics: json_at(row, 3)?,
        status: ModelStatus::parse(&status).ok_or_else(|| corrupt(4, format!("unknown status {status}")))?,
        data_range: (row.get::<_, i64>(5)? as u64, row.get::<_, i64>(6)? as u64),
        created_at: from_millis(row.get(7)?),
        activated_at: row.get::<_, Option<i64>>(8)?.map(from_millis),
        previous_version: row.get(9)?,
        status_reason: row.get(10)?,
        artefact: match (row.get::<_, Option<String>>(11)?, row.get::<_, Option<String>>(12)?) {
            (Some(path), Some(checksum)) => Some(Artefact {
                path,
                checksum,
                size_bytes: row.get::<_, Option<i64>>(13)?.unwrap_or(0) as u64,
            }),
            _ => None,
        },
        finished_at: row.get::<_, Option<i64>>(14)?.map(from_millis),
    })
}
