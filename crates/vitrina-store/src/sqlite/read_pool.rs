//! Read-only connections to one database file, opened on demand and reused.
//!
//! Each connection carries its own page cache and prepared statements, so the pool keeps at
//! most [`MAX_IDLE`] between reads: a burst of concurrent reads opens what it needs, and the
//! connections past the cap are closed as they come back instead of staying in memory for the
//! life of the process.

use std::{path::PathBuf, sync::Mutex, time::Duration};

use rusqlite::{Connection, OpenFlags};
use vitrina_core::ports::StoreResult;

use super::backend;

/// Connections kept open between reads (two cores; more readers than that at once is a burst).
const MAX_IDLE: usize = 4;

/// How long a read waits for a lock the writer holds (a WAL checkpoint) before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct ReadPool {
    path: PathBuf,
    max_idle: usize,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    pub(super) fn new(path: PathBuf) -> Self {
        Self::with_cap(path, MAX_IDLE)
    }

    fn with_cap(path: PathBuf, max_idle: usize) -> Self {
        Self { path, max_idle, idle: Mutex::new(Vec::new()) }
    }

    /// Runs `f` on an idle connection, or a new one when none is idle.
    pub(super) fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> StoreResult<T> {
        // Taken apart from the match, so the lock is not held while a connection opens.
        let idle = self.idle.lock().expect("read pool lock").pop();
        let conn = match idle {
            Some(conn) => conn,
            None => self.open().map_err(backend)?,
        };
        let result = f(&conn).map_err(backend);
        let mut idle = self.idle.lock().expect("read pool lock");
        if idle.len() < self.max_idle {
            idle.push(conn);
        }
        result
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    }

    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.lock().expect("read pool lock").len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;

    use vitrina_core::ports::StoreError;

    use super::*;

    fn database() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (7);",
        )
        .unwrap();
        (dir, path)
    }

    #[test]
    fn a_burst_of_concurrent_reads_leaves_at_most_the_cap_open() {
        let (_dir, path) = database();
        let pool = ReadPool::with_cap(path, 2);
        let readers = 5;
        // Every reader holds its connection until all five have one: five are open at once.
        let all_open = Barrier::new(readers);
        let answers: Vec<i64> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..readers)
                .map(|_| {
                    s.spawn(|| {
                        pool.with(|c| {
                            all_open.wait();
                            c.query_row("SELECT x FROM t", [], |r| r.get(0))
                        })
                        .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(answers, vec![7; readers]);
        assert_eq!(pool.idle(), 2, "the connections past the cap are closed as they come back");
    }

    #[test]
    fn sequential_reads_reuse_one_connection_and_see_later_writes() {
        let (_dir, path) = database();
        let pool = ReadPool::new(path.clone());
        let count = |pool: &ReadPool| {
            pool.with(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)))
        };
        assert_eq!(count(&pool).unwrap(), 1);
        Connection::open(&path).unwrap().execute("INSERT INTO t VALUES (8)", []).unwrap();
        assert_eq!(count(&pool).unwrap(), 2);
        assert_eq!(pool.idle(), 1);
        let wait: i64 = pool.with(|c| c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))).unwrap();
        assert_eq!(wait, BUSY_TIMEOUT.as_millis() as i64, "a read waits out the writer's checkpoint");
    }

    #[test]
    fn a_failed_read_returns_the_error_and_keeps_the_connection() {
        let (_dir, path) = database();
        let pool = ReadPool::new(path);
        let err = pool.with(|c| c.execute("INSERT INTO t VALUES (9)", [])).unwrap_err();
        assert!(err.to_string().contains("readonly"), "{err}");
        assert_eq!(pool.idle(), 1);
    }

    #[test]
    fn a_database_that_cannot_be_opened_is_an_error_and_leaves_nothing_idle() {
        let dir = tempfile::tempdir().unwrap();
        let pool = ReadPool::new(dir.path().join("missing.db"));
        let err = pool.with(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))).unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)), "{err}");
        assert_eq!(pool.idle(), 0);
    }
}
