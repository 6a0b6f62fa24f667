//! Versioned schema migrations (refinery), applied at connect under an advisory lock so that
//! processes starting together migrate once. A database whose schema is newer than this
//! build is refused before anything is touched.

use tokio_postgres::Client;

refinery::embed_migrations!("migrations/postgres");

/// Where refinery records the applied migrations.
const HISTORY: &str = "vitrina_schema_history";
/// Advisory lock key held while migrating ("vitrina" in ASCII, as a number).
const MIGRATION_LOCK: i64 = 0x0076_6974_7269_6e61;

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "the database has schema version {found}, newer than this build knows ({known}); upgrade vitrina"
    )]
    TooNew { found: i64, known: i64 },
    #[error("reading the schema version: {0}")]
    Read(#[from] tokio_postgres::Error),
    #[error("migrating the schema: {0}")]
    Migrate(#[from] refinery::Error),
}

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    migrations::runner().get_migrations().iter().map(|m| i64::from(m.version())).max().unwrap_or(0)
}

/// Brings the database to the latest schema. Returns the version it found (0 = new database).
pub async fn migrate(client: &mut Client) -> Result<i64, SchemaError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await?;
    let result = migrate_locked(client).await;
    // The lock is the session's: released here, or when the connection closes on error.
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    result
}

async fn migrate_locked(client: &mut Client) -> Result<i64, SchemaError> {
    let found = applied(client).await?;
    let known = latest();
    if found > known {
        return Err(SchemaError::TooNew { found, known });
    }
    // Refinery also refuses a changed applied migration (divergent) and one missing from
    // this build below the latest applied (missing); both are its defaults.
    let mut runner = migrations::runner();
    runner.set_migration_table_name(HISTORY);
    runner.run_async(client).await?;
    Ok(found)
}

/// The highest migration applied (0 when none).
async fn applied(client: &Client) -> Result<i64, tokio_postgres::Error> {
    let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY]).await?.get(0);
    if !exists {
        return Ok(0);
    }
    let sql = format!("SELECT COALESCE(MAX(version), 0)::BIGINT FROM {HISTORY}");
    Ok(client.query_one(&sql, &[]).await?.get(0))
}
