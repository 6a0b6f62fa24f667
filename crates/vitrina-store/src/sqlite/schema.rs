//! Schema migrations, applied in order and tracked with `PRAGMA user_version`.
//!
//! The `events` table has only its `seq` primary key: lookups by user and by `eventId` go
//! through the in-memory [`super::index::LogIndex`] (ADR 0004), so appends stay sequential.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT NOT NULL,
    user_id       TEXT NOT NULL,
    activity_type TEXT NOT NULL,
    product_id    TEXT,
    metadata      TEXT NOT NULL,
    ts_ms         INTEGER NOT NULL,
    received_ms   INTEGER NOT NULL
);

CREATE TABLE products (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    category    TEXT NOT NULL,
    price       TEXT NOT NULL,
    attributes  TEXT NOT NULL,
    in_stock    INTEGER NOT NULL,
    hidden      INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE INDEX products_by_category ON products (category, id);

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT,
    attributes  TEXT NOT NULL,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE models (
    version           TEXT PRIMARY KEY,
    algorithm         TEXT NOT NULL,
    parameters        TEXT NOT NULL,
    metrics           TEXT NOT NULL,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    first_seq         INTEGER NOT NULL,
    last_seq          INTEGER NOT NULL,
    artefact_path     TEXT,
    artefact_checksum TEXT,
    artefact_bytes    INTEGER,
    created_ms        INTEGER NOT NULL,
    finished_ms       INTEGER,
    activated_ms      INTEGER,
    previous_version  TEXT
);
"#,
    r#"
CREATE TABLE experiments (
    id         TEXT PRIMARY KEY,
    doc        TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
"#,
    r#"
CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT,
    scope      TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    prefix     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    revoked_ms INTEGER
);
"#,
];

/// Brings the database to the latest schema. Returns the version it found (0 = new database).
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<u32> {
    let found: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        tx.commit()?;
    }
    Ok(found)
}

/// The newest schema version this build knows.
pub fn latest() -> u32 {
    MIGRATIONS.len() as u32
}
