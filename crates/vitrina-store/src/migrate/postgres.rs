//! One end of a migration in a PostgreSQL database: its tables over one connection, rows
//! written with binary `COPY` in one transaction per batch.

use tokio_postgres::{
    binary_copy::BinaryCopyInWriter,
    types::{ToSql, Type},
    Client, NoTls,
};

use async_trait::async_trait;

use super::{
    tables::{Cell, Kind, Row, Table},
    End, MigrateError,
};
use crate::served::SEED_KEY;

/// Bytes per artefact row, as the store writes them.
const CHUNK: usize = 8 << 20;

pub struct PgEnd {
    client: Client,
}

fn failed(what: &str) -> impl Fn(tokio_postgres::Error) -> MigrateError + '_ {
    move |e| MigrateError::Backend(format!("{what}: {e}"))
}

impl PgEnd {
    /// Connects to the database (which opening the store created or brought to the current
    /// schema).
    pub async fn connect(url: &str) -> Result<Self, MigrateError> {
        let (client, connection) =
            tokio_postgres::connect(url, NoTls).await.map_err(|e| MigrateError::Open(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "migration connection ended");
            }
        });
        Ok(Self { client })
    }
}

#[async_trait(?Send)]
impl End for PgEnd {
    fn refuses_nul(&self) -> bool {
        true
    }

    async fn count(&self, table: &Table) -> Result<u64, MigrateError> {
        let n: i64 = self.client.query_one(&table.count_sql(), &[]).await.map_err(failed(table.name))?.get(0);
        Ok(n as u64)
    }

    async fn max_key(&self, table: &Table) -> Result<Option<Cell>, MigrateError> {
        let row = self.client.query_opt(&table.max_key_sql(), &[]).await.map_err(failed(table.name))?;
        Ok(row.map(|r| read(&r, 0, table.columns[0].1)))
    }

    /// Up to `limit` rows with a key above `after` (all when `None`), in key order.
    async fn rows_after(
        &self,
        table: &Table,
        after: Option<&Cell>,
        limit: usize,
    ) -> Result<Vec<Row>, MigrateError> {
        let sql = table.rows_sql(after.is_some(), " COLLATE \"C\"");
        let limit = limit as i64;
        let rows = match after {
            Some(k) => {
                let k = param(table.columns[0].1, k);
                self.client.query(&sql, &[k.as_ref() as &(dyn ToSql + Sync), &limit]).await
            }
            None => self.client.query(&sql, &[&limit]).await,
        }
        .map_err(failed(table.name))?;
        Ok(rows
            .iter()
            .map(|r| table.columns.iter().enumerate().map(|(i, (_, kind))| read(r, i, *kind)).collect())
            .collect())
    }

    /// Inserts `rows` in one transaction.
    async fn insert(&mut self, table: &Table, rows: &[Row]) -> Result<(), MigrateError> {
        let t = table.name;
        let tx = self.client.transaction().await.map_err(failed(t))?;
        let sink = tx
            .copy_in(&format!("COPY {t} ({}) FROM STDIN (FORMAT binary)", table.column_list()))
            .await
            .map_err(failed(t))?;
        let types: Vec<Type> = table.columns.iter().map(|(_, kind)| pg_type(*kind)).collect();
        let writer = BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for row in rows {
            let values: Vec<Box<dyn ToSql + Sync + Send>> =
                row.iter().zip(table.columns).map(|(cell, (_, kind))| param(*kind, cell)).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)).collect();
            writer.as_mut().write(&refs).await.map_err(failed(t))?;
        }
        writer.finish().await.map_err(failed(t))?;
        tx.commit().await.map_err(failed(t))
    }

    /// The highest event sequence number ever assigned.
    async fn high_water(&self) -> Result<i64, MigrateError> {
        Ok(self.client.query_one("SELECT seq FROM log_head", &[]).await.map_err(failed("log_head"))?.get(0))
    }

    /// New events continue above `high_water`; the log's event count and the impression ids
    /// follow what was copied.
    async fn set_high_water(&mut self, high_water: i64) -> Result<(), MigrateError> {
        self.client
            .batch_execute(&format!(
                "BEGIN;
                 UPDATE log_head SET seq = GREATEST(seq, {high_water}, (SELECT COALESCE(MAX(seq), 0) FROM events)),
                                     events = (SELECT COUNT(*) FROM events);
                 SELECT setval(pg_get_serial_sequence('impressions', 'id'),
                               GREATEST((SELECT MAX(id) FROM impressions), 1),
                               (SELECT MAX(id) FROM impressions) IS NOT NULL);
                 COMMIT;"
            ))
            .await
            .map_err(failed("log_head"))
    }

    async fn seed(&self) -> Result<Option<String>, MigrateError> {
        let row = self
            .client
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&SEED_KEY])
            .await
            .map_err(failed("meta"))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn set_seed(&mut self, seed: &str) -> Result<(), MigrateError> {
        self.client
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2",
                &[&SEED_KEY, &seed],
            )
            .await
            .map(drop)
            .map_err(failed("meta"))
    }

    async fn artefact(&self, path: &str) -> Result<Option<Vec<u8>>, MigrateError> {
        let rows = self
            .client
            .query("SELECT bytes FROM artefacts WHERE path = $1 ORDER BY chunk", &[&path])
            .await
            .map_err(failed("artefacts"))?;
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(rows.iter().flat_map(|r| r.get::<_, &[u8]>(0).to_vec()).collect()))
    }

    async fn put_artefact(&mut self, path: &str, bytes: &[u8]) -> Result<(), MigrateError> {
        let tx = self.client.transaction().await.map_err(failed("artefacts"))?;
        tx.execute("DELETE FROM artefacts WHERE path = $1", &[&path]).await.map_err(failed("artefacts"))?;
        let chunks: Vec<&[u8]> = if bytes.is_empty() { vec![bytes] } else { bytes.chunks(CHUNK).collect() };
        for (i, chunk) in chunks.into_iter().enumerate() {
            tx.execute(
                "INSERT INTO artefacts (path, chunk, bytes) VALUES ($1, $2, $3)",
                &[&path, &(i as i32), &chunk],
            )
            .await
            .map_err(failed("artefacts"))?;
        }
        tx.commit().await.map_err(failed("artefacts"))
    }
}

fn pg_type(kind: Kind) -> Type {
    match kind {
        Kind::Text => Type::TEXT,
        Kind::BigInt => Type::INT8,
        Kind::Int => Type::INT4,
        Kind::Real => Type::FLOAT8,
        Kind::Bool => Type::BOOL,
    }
}

fn read(r: &tokio_postgres::Row, i: usize, kind: Kind) -> Cell {
    match kind {
        Kind::Text => r.get::<_, Option<String>>(i).map_or(Cell::Null, Cell::Text),
        Kind::BigInt => r.get::<_, Option<i64>>(i).map_or(Cell::Null, Cell::Int),
        Kind::Int => r.get::<_, Option<i32>>(i).map_or(Cell::Null, |v| Cell::Int(v.into())),
        Kind::Real => r.get::<_, Option<f64>>(i).map_or(Cell::Null, Cell::Real),
        Kind::Bool => r.get::<_, Option<bool>>(i).map_or(Cell::Null, Cell::Bool),
    }
}

/// A cell as a parameter of the column's type (a value that does not fit is written as
/// NULL only if the column is nullable; `NOT NULL` columns then refuse the row).
fn param(kind: Kind, cell: &Cell) -> Box<dyn ToSql + Sync + Send> {
    match (kind, cell) {
        (Kind::Text, Cell::Text(s)) => Box::new(s.clone()),
        (Kind::BigInt, Cell::Int(v)) => Box::new(*v),
        (Kind::Int, Cell::Int(v)) => Box::new(i32::try_from(*v).ok()),
        (Kind::Real, Cell::Real(v)) => Box::new(*v),
        (Kind::Real, Cell::Int(v)) => Box::new(*v as f64),
        (Kind::Bool, Cell::Bool(b)) => Box::new(*b),
        (Kind::Bool, Cell::Int(v)) => Box::new(*v != 0),
        (Kind::Text, _) => Box::new(None::<String>),
        (Kind::BigInt, _) => Box::new(None::<i64>),
        (Kind::Int, _) => Box::new(None::<i32>),
        (Kind::Real, _) => Box::new(None::<f64>),
        (Kind::Bool, _) => Box::new(None::<bool>),
    }
}
