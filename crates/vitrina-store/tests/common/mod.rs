//! Backends under test: a fresh SQLite data directory, or a fresh PostgreSQL database on the
//! server at `VITRINA_TEST_POSTGRES_URL` (see `vitrina_store::testing`). Without that variable
//! the PostgreSQL runs are skipped with a note (unless `CI` is set: then they fail); with it
//! set, an unreachable server fails the test.

#![allow(dead_code)]

use std::sync::Arc;

use chrono::Utc;
use vitrina_core::{ActivityInput, NewActivity};
use vitrina_store::{
    postgres::{PgOptions, PgStore},
    testing::TestDatabase,
    SqliteStore, Store,
};

/// One store on a fresh backend, and what it takes to open more processes' views of it.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    backend: Backend,
}

enum Backend {
    Sqlite(tempfile::TempDir, Arc<SqliteStore>),
    Postgres(Box<TestDatabase>, Arc<PgStore>),
}

impl Fixture {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        Self { store: store.clone(), backend: Backend::Sqlite(dir, store) }
    }

    /// `None` (after a note on stderr) when no test server is configured.
    pub async fn postgres() -> Option<Self> {
        let db = TestDatabase::create().await?;
        let store = Arc::new(PgStore::connect_with(db.config(), PgOptions::default()).await.unwrap());
        assert!(store.created(), "a fresh database gets the schema");
        Some(Self { store: store.clone(), backend: Backend::Postgres(Box::new(db), store) })
    }

    /// `n` writers of the same log, each as a separate process would have it: for PostgreSQL
    /// its own store (own connections and appender); SQLite has one process per data
    /// directory, so there it is the same store.
    pub async fn writers(&self, n: usize) -> Vec<Arc<dyn Store>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(match &self.backend {
                Backend::Sqlite(..) => self.store.clone(),
                Backend::Postgres(db, _) => {
                    Arc::new(PgStore::connect_with(db.config(), PgOptions::default()).await.unwrap())
                        as Arc<dyn Store>
                }
            });
        }
        out
    }
}

impl Fixture {
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(..))
    }

    fn database(&self) -> &TestDatabase {
        match &self.backend {
            Backend::Postgres(db, _) => db,
            Backend::Sqlite(..) => panic!("PostgreSQL only"),
        }
    }

    /// The test database's connection configuration, to open more stores on it. PostgreSQL only.
    pub fn config(&self) -> tokio_postgres::Config {
        self.database().config()
    }

    /// A plain connection to the test database, beside the store. PostgreSQL only.
    pub async fn client(&self) -> tokio_postgres::Client {
        self.database().client().await
    }

    /// Moves the time of receipt of the events whose id starts with `prefix` back by `by`
    /// (the store stamps receipt with the present; retention tests need old events).
    pub async fn age_events(&self, prefix: &str, by: chrono::Duration) {
        let pattern = format!("{prefix}%");
        let ms = by.num_milliseconds();
        match &self.backend {
            Backend::Sqlite(dir, _) => {
                let conn = rusqlite::Connection::open(dir.path().join("vitrina.db")).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(30)).unwrap();
                conn.execute(
                    "UPDATE events SET received_ms = received_ms - ?1 WHERE event_id LIKE ?2",
                    rusqlite::params![ms, pattern],
                )
                .unwrap();
            }
            Backend::Postgres(db, _) => {
                db.client()
                    .await
                    .execute(
                        "UPDATE events SET received_ms = received_ms - $1 WHERE event_id LIKE $2",
                        &[&ms, &pattern],
                    )
                    .await
                    .unwrap();
            }
        }
    }

    /// One retention pass over the event log now: deletes what was received before `before`.
    pub async fn prune_events(&self, before: chrono::DateTime<Utc>) -> u64 {
        match &self.backend {
            Backend::Sqlite(_, s) => s.prune_events(before).await.unwrap(),
            Backend::Postgres(_, s) => s.prune_events(before).await.unwrap(),
        }
    }

    /// Waits until a connection of the test database waits on a lock; returns its pid.
    /// Asks on a connection of its own: inside a transaction (like a test's lock holder),
    /// `pg_stat_activity` answers from a snapshot taken once, and would never show the wait.
    /// PostgreSQL only.
    pub async fn lock_waiter(&self) -> i32 {
        let watcher = self.client().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let waiting = watcher
                .query(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap();
            if let Some(row) = waiting.first() {
                return row.get(0);
            }
            assert!(std::time::Instant::now() < deadline, "no connection waited on a lock");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Ends every server connection of the test database (as a database restart or a network
    /// cut would); returns how many. PostgreSQL only.
    pub async fn terminate_connections(&self) -> u64 {
        self.database().terminate_connections().await
    }
}

/// A valid event.
pub fn event(id: &str, user: &str, kind: &str, product: &str) -> NewActivity {
    let input = ActivityInput {
        event_id: Some(id.into()),
        user_id: Some(user.into()),
        activity_type: Some(kind.into()),
        product_id: Some(product.into()),
        ..Default::default()
    };
    NewActivity::validate(input, Utc::now()).unwrap()
}

/// Each outcome of an append as (stored?, sequence number).
pub fn seqs(outcomes: &[vitrina_core::ports::AppendOutcome]) -> Vec<(bool, u64)> {
    use vitrina_core::ports::AppendOutcome;
    outcomes
        .iter()
        .map(|o| match o {
            AppendOutcome::Stored(s) => (true, s.seq),
            AppendOutcome::Duplicate { seq } => (false, *seq),
        })
        .collect()
}

/// Runs each named suite function (taking a [`Fixture`]) once per backend, as
/// `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::common::Fixture::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fixture) = super::common::Fixture::postgres().await {
                        super::$name(fixture).await
                    }
                }
            )*
        }
    };
}
