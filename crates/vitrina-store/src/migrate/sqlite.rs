//! One end of a migration in a data directory: `vitrina.db`, `impressions.db` and the
//! artefact files, under the directory's lock (no server may run on it meanwhile).

use std::path::Path;

use rusqlite::{params_from_iter, types::Value, Connection, OpenFlags, OptionalExtension};

use async_trait::async_trait;

use super::{
    tables::{Cell, File, Kind, Row, Table},
    End, MigrateError,
};
use crate::{files::DirArtefacts, served::SEED_KEY, sqlite::lock_data_dir};

pub struct SqliteEnd {
    log: Connection,
    impressions: Connection,
    artefacts: DirArtefacts,
    _lock: std::fs::File,
}

fn failed(what: &str) -> impl Fn(rusqlite::Error) -> MigrateError + '_ {
    move |e| MigrateError::Backend(format!("{what}: {e}"))
}

impl SqliteEnd {
    /// Opens the data directory's two databases (which opening the store created or brought
    /// to the current schema).
    pub fn open(dir: &Path) -> Result<Self, MigrateError> {
        let lock = lock_data_dir(dir).map_err(|e| MigrateError::Open(e.to_string()))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open = |name: &str| -> Result<Connection, MigrateError> {
            let path = dir.join(name);
            let conn = Connection::open_with_flags(&path, flags)
                .map_err(|e| MigrateError::Open(format!("{}: {e}", path.display())))?;
            // Each batch is one transaction; durable before the next starts (as the store's
            // own writer commits).
            conn.execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;
                 PRAGMA cache_size = -65536; PRAGMA secure_delete = ON;",
            )
            .map_err(failed(name))?;
            Ok(conn)
        };
        Ok(Self {
            log: open("vitrina.db")?,
            impressions: open("impressions.db")?,
            artefacts: DirArtefacts::new(dir),
            _lock: lock,
        })
    }

    fn conn(&self, table: &Table) -> &Connection {
        match table.file {
            File::Log => &self.log,
            File::Impressions => &self.impressions,
        }
    }
}

#[async_trait(?Send)]
impl End for SqliteEnd {
    async fn count(&self, table: &Table) -> Result<u64, MigrateError> {
        let n: i64 =
            self.conn(table).query_row(&table.count_sql(), [], |r| r.get(0)).map_err(failed(table.name))?;
        Ok(n as u64)
    }

    async fn max_key(&self, table: &Table) -> Result<Option<Cell>, MigrateError> {
        self.conn(table)
            .query_row(&table.max_key_sql(), [], |r| read(r, 0, table.columns[0].1))
            .optional()
            .map_err(failed(table.name))
    }

    /// Up to `limit` rows with a key above `after` (all when `None`), in key order.
    async fn rows_after(
        &self,
        table: &Table,
        after: Option<&Cell>,
        limit: usize,
    ) -> Result<Vec<Row>, MigrateError> {
        let t = table.name;
        let mut stmt =
            self.conn(table).prepare_cached(&table.rows_sql(after.is_some(), "")).map_err(failed(t))?;
        let row = |r: &rusqlite::Row| -> rusqlite::Result<Row> {
            table.columns.iter().enumerate().map(|(i, (_, kind))| read(r, i, *kind)).collect()
        };
        let rows = match after {
            Some(k) => stmt.query_map(rusqlite::params![value(k), limit as i64], row),
            None => stmt.query_map([limit as i64], row),
        }
        .map_err(failed(t))?;
        rows.collect::<rusqlite::Result<_>>().map_err(failed(t))
    }

    /// Inserts `rows` in one transaction.
    async fn insert(&mut self, table: &Table, rows: &[Row]) -> Result<(), MigrateError> {
        let conn = match table.file {
            File::Log => &mut self.log,
            File::Impressions => &mut self.impressions,
        };
        let tx = conn.transaction().map_err(failed(table.name))?;
        {
            let marks = (1..=table.columns.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO {} ({}) VALUES ({marks})",
                    table.name,
                    table.column_list()
                ))
                .map_err(failed(table.name))?;
            for row in rows {
                insert.execute(params_from_iter(row.iter().map(value))).map_err(failed(table.name))?;
            }
        }
        tx.commit().map_err(failed(table.name))
    }

    /// The highest event sequence number ever assigned (erased or pruned events included).
    async fn high_water(&self) -> Result<i64, MigrateError> {
        self.log
            .query_row(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),
                            COALESCE((SELECT MAX(seq) FROM events), 0))",
                [],
                |r| r.get(0),
            )
            .map_err(failed("events"))
    }

    /// New events continue above `high_water`.
    async fn set_high_water(&mut self, high_water: i64) -> Result<(), MigrateError> {
        let tx = self.log.transaction().map_err(failed("events"))?;
        let updated = tx
            .execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?1) WHERE name = 'events'", [high_water])
            .map_err(failed("events"))?;
        if updated == 0 {
            tx.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?1)", [high_water])
                .map_err(failed("events"))?;
        }
        tx.commit().map_err(failed("events"))
    }

    async fn seed(&self) -> Result<Option<String>, MigrateError> {
        self.impressions
            .query_row("SELECT value FROM meta WHERE key = ?1", [SEED_KEY], |r| r.get(0))
            .optional()
            .map_err(failed("meta"))
    }

    async fn set_seed(&mut self, seed: &str) -> Result<(), MigrateError> {
        self.impressions
            .execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)", [SEED_KEY, seed])
            .map(drop)
            .map_err(failed("meta"))
    }

    async fn artefact(&self, path: &str) -> Result<Option<Vec<u8>>, MigrateError> {
        self.artefacts.get(path).map_err(|e| MigrateError::Backend(e.to_string()))
    }

    async fn put_artefact(&mut self, path: &str, bytes: &[u8]) -> Result<(), MigrateError> {
        self.artefacts.put(path, bytes).map_err(|e| MigrateError::Backend(e.to_string()))
    }

    /// Moves everything committed out of the write-ahead logs into the database files.
    async fn checkpoint(&self) -> Result<(), MigrateError> {
        for conn in [&self.log, &self.impressions] {
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").map_err(failed("checkpoint"))?;
        }
        Ok(())
    }
}

fn read(r: &rusqlite::Row, i: usize, kind: Kind) -> rusqlite::Result<Cell> {
    Ok(match kind {
        Kind::Text => r.get::<_, Option<String>>(i)?.map_or(Cell::Null, Cell::Text),
        Kind::BigInt | Kind::Int => r.get::<_, Option<i64>>(i)?.map_or(Cell::Null, Cell::Int),
        Kind::Real => r.get::<_, Option<f64>>(i)?.map_or(Cell::Null, Cell::Real),
        Kind::Bool => r.get::<_, Option<i64>>(i)?.map_or(Cell::Null, |v| Cell::Bool(v != 0)),
    })
}

fn value(cell: &Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Int(v) => Value::Integer(*v),
        Cell::Real(v) => Value::Real(*v),
        Cell::Text(s) => Value::Text(s.clone()),
        Cell::Bool(b) => Value::Integer(i64::from(*b)),
    }
}
