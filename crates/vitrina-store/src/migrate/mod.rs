//! `vitrina migrate`: copies a deployment's store to another backend (a data directory to
//! PostgreSQL, or back), table by table in key order, keeping every key — event sequence
//! numbers included — so that models, followers and clients see the same store.
//!
//! Resumable: each batch is one transaction on the target, and a table's copy continues
//! after the highest key the target already holds. The source must not change meanwhile (stop
//! its server; a data directory's lock is taken). At the end every table is counted and
//! checksummed on both sides, in key order, and the model artefacts are compared byte for
//! byte.

mod postgres;
mod sqlite;
mod tables;

use async_trait::async_trait;
use vitrina_core::ports::StoreError;

pub use tables::{Cell, TABLES};

use self::{postgres::PgEnd, sqlite::SqliteEnd, tables::Row, tables::Table, tables::Tally};
use crate::{Location, OpenOptions, Opened};

/// Rows read and written per transaction.
const BATCH: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("the source and the target are the same store")]
    SameStore,
    #[error("opening {0}")]
    Open(String),
    #[error("{0}")]
    Backend(String),
    #[error(
        "the target already holds served lists under another visitor-pseudonym key; migrate into an empty store"
    )]
    SeedConflict,
    #[error(
        "{table}: the row with key {key} holds a NUL character in {column}, which PostgreSQL cannot store"
    )]
    Nul { table: &'static str, column: &'static str, key: String },
}

impl From<StoreError> for MigrateError {
    fn from(e: StoreError) -> Self {
        Self::Backend(e.to_string())
    }
}

/// What a migration reports as it goes (the command draws progress bars from it).
pub trait Watch {
    /// A table's copy starts: `rows` in the source, `present` of them already in the target.
    fn table(&mut self, name: &str, rows: u64, present: u64);
    /// `n` more rows of the current table are committed in the target.
    fn copied(&mut self, n: u64);
    /// Counting and checksumming both sides of `name`.
    fn verifying(&mut self, name: &str);
}

/// One table (or the artefacts) on both sides after the copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    pub name: String,
    /// Rows written by this run.
    pub copied: u64,
    pub source_rows: u64,
    pub target_rows: u64,
    pub source_checksum: u64,
    pub target_checksum: u64,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_checksum == self.target_checksum
    }
}

/// Copies `from` into `to` and verifies the copy; the checks say whether every table matched.
pub async fn migrate(
    from: &Location,
    to: &Location,
    watch: &mut dyn Watch,
) -> Result<Vec<TableCheck>, MigrateError> {
    if from == to {
        return Err(MigrateError::SameStore);
    }
    // Opening each store creates its schema or brings it to this build's version (and
    // refuses a newer one); then the migration works on the tables directly.
    let quiet = OpenOptions { impression_retention: None, event_retention: None, ..OpenOptions::default() };
    for location in [from, to] {
        let opened = Opened::open(location, quiet.clone())
            .await
            .map_err(|e| MigrateError::Open(format!("{}: {e}", location.describe())))?;
        opened.close().await;
    }
    let (source, mut target) = (open_end(from).await?, open_end(to).await?);
    let (source, target) = (source.as_ref(), target.as_mut());

    carry_seed(source, target).await?;
    let mut copied = Vec::new();
    for table in TABLES {
        copied.push(copy(table, source, target, watch).await?);
    }
    let artefacts = copy_artefacts(source, target).await?;
    target.set_high_water(source.high_water().await?).await?;
    target.checkpoint().await?;

    let mut checks = Vec::new();
    for (table, copied) in TABLES.iter().zip(copied) {
        watch.verifying(table.name);
        let (s, t) = (tally(table, source).await?, tally(table, target).await?);
        checks.push(TableCheck {
            name: table.name.into(),
            copied,
            source_rows: s.rows,
            target_rows: t.rows,
            source_checksum: s.checksum(),
            target_checksum: t.checksum(),
        });
    }
    watch.verifying("artefacts");
    checks.push(artefacts.verify(source, target).await?);
    Ok(checks)
}

/// The visitor pseudonyms of the copied lists stay valid only under the source's key.
async fn carry_seed(source: &dyn End, target: &mut dyn End) -> Result<(), MigrateError> {
    let Some(seed) = source.seed().await? else { return Ok(()) };
    if target.seed().await?.as_deref() == Some(seed.as_str()) {
        return Ok(());
    }
    for table in TABLES.iter().filter(|t| t.file == tables::File::Impressions) {
        if target.count(table).await? > 0 {
            return Err(MigrateError::SeedConflict);
        }
    }
    target.set_seed(&seed).await
}

async fn copy(
    table: &'static Table,
    source: &dyn End,
    target: &mut dyn End,
    watch: &mut dyn Watch,
) -> Result<u64, MigrateError> {
    let mut after = target.max_key(table).await?;
    watch.table(table.name, source.count(table).await?, target.count(table).await?);
    let mut copied = 0;
    loop {
        let rows = source.rows_after(table, after.as_ref(), BATCH).await?;
        let Some(last) = rows.last() else { return Ok(copied) };
        if target.refuses_nul() {
            if let Some((column, key)) = tables::nul_in(table, &rows) {
                return Err(MigrateError::Nul { table: table.name, column, key: describe(key) });
            }
        }
        let next = last[0].clone();
        target.insert(table, &rows).await?;
        copied += rows.len() as u64;
        watch.copied(rows.len() as u64);
        after = Some(next);
    }
}

fn describe(key: &Cell) -> String {
    match key {
        Cell::Text(s) => format!("{s:?}"),
        Cell::Int(v) => v.to_string(),
        other => format!("{other:?}"),
    }
}

async fn tally(table: &Table, end: &dyn End) -> Result<Tally, MigrateError> {
    let mut tally = Tally::default();
    let mut after = None;
    loop {
        let rows = end.rows_after(table, after.as_ref(), BATCH).await?;
        let Some(last) = rows.last() else { return Ok(tally) };
        after = Some(last[0].clone());
        rows.iter().for_each(|r| tally.add(r));
    }
}

/// The artefact paths the source's registry names.
struct Artefacts {
    paths: Vec<String>,
    copied: u64,
}

async fn artefact_paths(end: &dyn End) -> Result<Vec<String>, MigrateError> {
    let models = TABLES.iter().find(|t| t.name == "models").expect("the models table");
    let path_at =
        models.columns.iter().position(|(name, _)| *name == "artefact_path").expect("artefact_path");
    let mut paths = Vec::new();
    let mut after = None;
    loop {
        let rows = end.rows_after(models, after.as_ref(), BATCH).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last[0].clone());
        paths.extend(rows.iter().filter_map(|r| match &r[path_at] {
            Cell::Text(p) => Some(p.clone()),
            _ => None,
        }));
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

async fn copy_artefacts(source: &dyn End, target: &mut dyn End) -> Result<Artefacts, MigrateError> {
    let paths = artefact_paths(source).await?;
    let mut copied = 0;
    for path in &paths {
        // A registry row can outlive its file (a failed job): nothing to copy then.
        let Some(bytes) = source.artefact(path).await? else { continue };
        if target.artefact(path).await?.as_deref() != Some(bytes.as_slice()) {
            target.put_artefact(path, &bytes).await?;
            copied += 1;
        }
    }
    Ok(Artefacts { paths, copied })
}

impl Artefacts {
    async fn verify(&self, source: &dyn End, target: &dyn End) -> Result<TableCheck, MigrateError> {
        let (mut s, mut t) = (Tally::default(), Tally::default());
        for path in &self.paths {
            for (end, tally) in [(source, &mut s), (target, &mut t)] {
                if let Some(bytes) = end.artefact(path).await? {
                    let digest = xxhash_rust::xxh3::xxh3_64(&bytes);
                    tally.add(&[Cell::Text(path.clone()), Cell::Int(digest as i64)]);
                }
            }
        }
        Ok(TableCheck {
            name: "artefacts".into(),
            copied: self.copied,
            source_rows: s.rows,
            target_rows: t.rows,
            source_checksum: s.checksum(),
            target_checksum: t.checksum(),
        })
    }
}

/// One end of a migration: a data directory or a PostgreSQL database. The migration runs on
/// the caller's task (`?Send`: SQLite connections stay on it).
#[async_trait(?Send)]
trait End {
    /// PostgreSQL's TEXT cannot hold a NUL character.
    fn refuses_nul(&self) -> bool {
        false
    }
    async fn count(&self, table: &Table) -> Result<u64, MigrateError>;
    /// The highest key of `table`, `None` when empty.
    async fn max_key(&self, table: &Table) -> Result<Option<Cell>, MigrateError>;
    /// Up to `limit` rows with a key above `after` (all when `None`), in key order.
    async fn rows_after(
        &self,
        table: &Table,
        after: Option<&Cell>,
        limit: usize,
    ) -> Result<Vec<Row>, MigrateError>;
    /// Inserts `rows` in one transaction.
    async fn insert(&mut self, table: &Table, rows: &[Row]) -> Result<(), MigrateError>;
    /// The highest event sequence number ever assigned (erased or pruned events included).
    async fn high_water(&self) -> Result<i64, MigrateError>;
    /// New events continue above `high_water`.
    async fn set_high_water(&mut self, high_water: i64) -> Result<(), MigrateError>;
    async fn seed(&self) -> Result<Option<String>, MigrateError>;
    async fn set_seed(&mut self, seed: &str) -> Result<(), MigrateError>;
    async fn artefact(&self, path: &str) -> Result<Option<Vec<u8>>, MigrateError>;
    async fn put_artefact(&mut self, path: &str, bytes: &[u8]) -> Result<(), MigrateError>;
    /// Makes what was written durable in the store's own files.
    async fn checkpoint(&self) -> Result<(), MigrateError> {
        Ok(())
    }
}

async fn open_end(location: &Location) -> Result<Box<dyn End>, MigrateError> {
    Ok(match location {
        Location::Dir(dir) => Box::new(SqliteEnd::open(dir)?),
        Location::Postgres(url) => Box::new(PgEnd::connect(url).await?),
    })
}
