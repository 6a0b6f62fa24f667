//! Runs the real `vitrina` binary on a free port against a data directory or a PostgreSQL
//! database.

#![allow(dead_code)]

pub mod deployment;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct Server {
    pub child: Child,
    pub base: String,
}

/// How to start a server beyond the defaults.
#[derive(Default)]
pub struct Options<'a> {
    /// Environment variables (`VITRINA__…` config overrides, `RUST_LOG`).
    pub env: Vec<(&'a str, &'a str)>,
    /// Where the server's log (stderr) goes; inherited when `None`.
    pub log: Option<&'a Path>,
    /// `--store` (a PostgreSQL URL), which wins over the data directory.
    pub store: Option<String>,
    /// More arguments of `vitrina serve` (`--role`, `--bus`, `--cache`).
    pub args: Vec<String>,
}

/// Where a test server keeps its data: a temporary directory, or a fresh PostgreSQL database
/// on the server at `VITRINA_TEST_POSTGRES_URL`.
pub enum Backing {
    Dir(tempfile::TempDir),
    Postgres(Box<vitrina_store::testing::TestDatabase>),
}

impl Backing {
    pub fn dir() -> Self {
        Self::Dir(tempfile::tempdir().unwrap())
    }

    /// `None` when no test server is configured (see `vitrina_store::testing`).
    pub async fn postgres() -> Option<Self> {
        vitrina_store::testing::TestDatabase::create().await.map(|db| Self::Postgres(Box::new(db)))
    }

    pub fn start(&self) -> Server {
        self.start_with(Options::default())
    }

    pub fn start_with(&self, options: Options) -> Server {
        match self {
            Self::Dir(dir) => Server::start_with(dir.path(), options),
            Self::Postgres(db) => {
                Server::start_with(&std::env::temp_dir(), Options { store: Some(db.url()), ..options })
            }
        }
    }
}

impl Server {
    /// Starts `vitrina serve` on port 0 and waits for its "listening" line.
    pub fn start(data_dir: &Path) -> Server {
        Self::start_with(data_dir, Options::default())
    }

    /// [`Server::start`] with extra environment and the log captured to a file.
    pub fn start_with(data_dir: &Path, options: Options) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_vitrina"));
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .env_remove("VITRINA_CONFIG")
            .env_remove("MIMALLOC_ALLOW_THP")
            .stdout(Stdio::piped());
        for (k, v) in &options.env {
            command.env(k, v);
        }
        if let Some(store) = &options.store {
            command.arg("--store").arg(store);
        }
        command.args(&options.args);
        match options.log {
            Some(path) => command.stderr(std::fs::File::create(path).expect("log file")),
            None => command.stderr(Stdio::inherit()),
        };
        let mut child = command.spawn().expect("vitrina binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines.next().expect("server exited before listening").unwrap();
            if let Some(url) = line.strip_prefix("vitrina listening on ") {
                break url.trim().to_string();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown hook runs.
    pub fn kill_hard(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.child.kill().ok();
        panic!("server did not stop within {PATIENCE:?} of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a test waits for something that must happen: only a hung server takes this
/// long, so a slow or busy machine never fails a test (tests wait on the event, not on a
/// tuned budget).
pub const PATIENCE: Duration = Duration::from_secs(300);

/// Polls `check` until it yields a value; panics naming `what` only after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "gave up waiting for {what} after {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A TCP proxy in front of a service (PostgreSQL, NATS, Redis) that a test can cut: while
/// cut, it drops every connection it carries and closes new ones at once, as a service that
/// went away would; restored, it carries connections again. Needs a multi-thread runtime
/// when the test blocks (starting a server waits synchronously).
pub struct Cuttable {
    port: u16,
    upstream: String,
    cut: tokio::sync::watch::Sender<bool>,
    /// Connections carried now.
    open: tokio::sync::watch::Sender<usize>,
}

impl Cuttable {
    /// A proxy to the host and port of `url` (`scheme://[user@]host:port[/path]`).
    pub async fn to(url: &str) -> Self {
        let upstream = host_port(url).to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (cut, _) = tokio::sync::watch::channel(false);
        let (open, _) = tokio::sync::watch::channel(0usize);
        let (watch, count) = (cut.clone(), open.clone());
        let to = upstream.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = watch.subscribe();
                if *cut.borrow() {
                    continue;
                }
                let (to, count) = (to.clone(), count.clone());
                count.send_modify(|n| *n += 1);
                tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&to).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.wait_for(|c| *c) => {}
                        }
                    }
                    drop(client);
                    count.send_modify(|n| *n -= 1);
                });
            }
        });
        Self { port, upstream, cut, open }
    }

    /// `url` pointed at the proxy.
    pub fn url(&self, url: &str) -> String {
        url.replacen(&self.upstream, &format!("127.0.0.1:{}", self.port), 1)
    }

    /// Cuts, and returns once every connection it carried is closed.
    pub async fn cut(&self) {
        self.cut.send_replace(true);
        self.open.subscribe().wait_for(|n| *n == 0).await.unwrap();
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap();
    authority.rsplit_once('@').map_or(authority, |(_, hp)| hp)
}

/// 40,000 views of 2,000 visitors (`u0`…) over the demo's ten products, tracked through
/// `server` in batches, so a training job has real work to do.
pub async fn load_views(c: &reqwest::Client, server: &Server) {
    for b in 0..4 {
        let events: Vec<serde_json::Value> = (0..10_000)
            .map(|i| {
                let n = b * 10_000 + i;
                let user = n % 2000;
                serde_json::json!({"userId": format!("u{user}"), "activityType": "view",
                       "productId": format!("product-{}", 1 + (user * 7 + n / 2000 * 13) % 10)})
            })
            .collect();
        let res = c
            .post(server.url("/api/v1/activity/track/batch"))
            .json(&serde_json::json!({"events": events}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
    }
}
