//! For tests (this crate's and the binary's): a PostgreSQL database of its own per test on the
//! server at `VITRINA_TEST_POSTGRES_URL`, created empty and dropped with its connections
//! afterwards (PostgreSQL 13 or newer: `DROP DATABASE … WITH (FORCE)`).

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_URL: &str = "VITRINA_TEST_POSTGRES_URL";

/// The environment variables naming Redis and NATS (JetStream) for tests.
pub const REDIS_URL: &str = "VITRINA_TEST_REDIS_URL";
pub const NATS_URL: &str = "VITRINA_TEST_NATS_URL";

/// The URL in the test environment variable `var`; `None` (after a note on stderr) when it is
/// not set, which in CI (`CI` set) is a broken setup and panics.
pub fn service_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "CI is set but {var} is not");
            eprintln!("skipped: {var} is not set");
            None
        }
    }
}

/// A database of its own on the test server, dropped when this is.
pub struct TestDatabase {
    admin_url: String,
    admin: tokio_postgres::Config,
    name: String,
}

impl TestDatabase {
    /// Creates a fresh database. `None` (after a note on stderr) when no test server is
    /// configured; in CI (`CI` set) that is a broken setup and panics, and so does a
    /// configured server that does not answer.
    pub async fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL) else {
            assert!(std::env::var_os("CI").is_none(), "CI is set but {POSTGRES_URL} is not");
            eprintln!("skipped on PostgreSQL: {POSTGRES_URL} is not set");
            return None;
        };
        let admin: tokio_postgres::Config =
            admin_url.parse().unwrap_or_else(|e| panic!("{POSTGRES_URL} is not a PostgreSQL URL: {e}"));
        let name = format!("vitrina_test_{}", uuid::Uuid::new_v4().simple());
        let (client, connection) = admin
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{POSTGRES_URL} is set but the server does not answer: {e}"));
        tokio::spawn(connection);
        client.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("creating a test database");
        Some(Self { admin_url, admin, name })
    }

    /// The connection configuration of this database.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = self.admin.clone();
        config.dbname(&self.name);
        config
    }

    /// The URL of this database (the server's URL with the database name replaced).
    pub fn url(&self) -> String {
        with_database(&self.admin_url, &self.name)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A plain connection to the server's admin database.
    pub async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = self.admin.connect(tokio_postgres::NoTls).await.expect("admin connection");
        tokio::spawn(connection);
        client
    }

    /// A plain connection to this database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = self.config().connect(tokio_postgres::NoTls).await.expect("connection");
        tokio::spawn(connection);
        client
    }

    /// Ends every server connection to this database (as a restart of the database or a
    /// network cut would); returns how many.
    pub async fn terminate_connections(&self) -> u64 {
        self.admin()
            .await
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await
            .expect("terminating connections")
            .len() as u64
    }
}

/// `url` with its database (the path) replaced by `name`; query parameters kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside a runtime (or while panicking): a thread of its own with a small
        // runtime drops the database, closing what still holds it.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let (client, connection) = admin.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await
            })
            .map_err(std::io::Error::other)
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}: {dropped:?}", self.name);
        }
    }
}

/// For the test crates of the binary and the server: runs `async fn NAME(backing: Backing)`
/// once per backend, as `sqlite::NAME` and `postgres::NAME`, where `Backing` is the calling
/// crate's `common::Backing` (with `dir()` and `async postgres() -> Option<Self>`). The
/// PostgreSQL run is skipped, with a note, when no test server is configured.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::common::Backing::dir()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(backing) = super::common::Backing::postgres().await {
                        super::$name(backing).await
                    }
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(with_database("postgres://u@h:5432", "t1"), "postgres://u@h:5432/t1");
        assert_eq!(
            with_database("postgresql://h/db?sslmode=disable", "t1"),
            "postgresql://h/t1?sslmode=disable"
        );
    }
}
