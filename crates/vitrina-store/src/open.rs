//! Opening a deployment's store by where it is: a data directory (the embedded SQLite store)
//! or a `postgres://` URL.

use std::{path::PathBuf, sync::Arc, time::Duration};

use crate::{
    postgres::{self, PgOptions, PgStore},
    sqlite::{self, SqliteStore, StoreOptions},
    Store,
};

/// Where a deployment's store is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A data directory holding the embedded SQLite store and the model artefacts.
    Dir(PathBuf),
    /// A PostgreSQL database, as a `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL names a database; anything else a directory.
    pub fn parse(raw: &str) -> Self {
        let lower = raw.trim().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Self::Postgres(raw.trim().to_string())
        } else {
            Self::Dir(PathBuf::from(raw))
        }
    }

    /// For logs and messages: the directory, or the database's host, port and name (never a
    /// password).
    pub fn describe(&self) -> String {
        match self {
            Self::Dir(dir) => dir.display().to_string(),
            Self::Postgres(url) => match url.parse::<tokio_postgres::Config>() {
                Ok(config) => format!("postgres://{}", postgres::describe(&config)),
                Err(_) => "postgres://(invalid URL)".into(),
            },
        }
    }
}

/// How long what the store keeps is kept, and the database connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOptions {
    pub impression_retention: Option<Duration>,
    pub event_retention: Option<Duration>,
    /// PostgreSQL: connections for reads, and how long connecting or waiting for one may take.
    pub pool_size: usize,
    pub timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        let pg = PgOptions::default();
        let sqlite = StoreOptions::default();
        Self {
            impression_retention: sqlite.impression_retention,
            event_retention: sqlite.event_retention,
            pool_size: pg.pool_size,
            timeout: pg.timeout,
        }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Sqlite(#[from] sqlite::OpenError),
    #[error(transparent)]
    Postgres(#[from] postgres::ConnectError),
    #[error("opening the store: {0}")]
    Task(String),
}

/// An open store of either kind.
#[derive(Clone)]
pub enum Opened {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Opened {
    pub async fn open(location: &Location, options: OpenOptions) -> Result<Self, OpenError> {
        Ok(match location {
            Location::Dir(dir) => {
                let (dir, sqlite) = (
                    dir.clone(),
                    StoreOptions {
                        impression_retention: options.impression_retention,
                        event_retention: options.event_retention,
                    },
                );
                let store = tokio::task::spawn_blocking(move || SqliteStore::open_with(&dir, sqlite))
                    .await
                    .map_err(|e| OpenError::Task(e.to_string()))??;
                Self::Sqlite(Arc::new(store))
            }
            Location::Postgres(url) => {
                let pg = PgOptions {
                    pool_size: options.pool_size,
                    timeout: options.timeout,
                    impression_retention: options.impression_retention,
                    event_retention: options.event_retention,
                };
                Self::Postgres(Arc::new(PgStore::connect(url, pg).await?))
            }
        })
    }

    /// Every port of the store.
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => s.clone(),
            Self::Postgres(s) => s.clone(),
        }
    }

    /// Whether opening created the store (an empty directory or database).
    pub fn created(&self) -> bool {
        match self {
            Self::Sqlite(s) => s.created(),
            Self::Postgres(s) => s.created(),
        }
    }

    /// Waits for every queued write (impressions included), then closes the store.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => {
                s.flush().await.ok();
                let s = s.clone();
                let _ = tokio::task::spawn_blocking(move || s.close()).await;
            }
            Self::Postgres(s) => s.close().await,
        }
    }
}
