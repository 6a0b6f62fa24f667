//! Test harness: an embedded instance in a temporary directory, driven with `oneshot`.

#![allow(dead_code)]

use axum::{
    body::Body,
    http::{Request, StatusCode},
    Router,
};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use vitrina_server::embedded::{Embedded, EmbeddedConfig};
use vitrina_store::{testing::TestDatabase, Location};

pub struct TestApp {
    pub embedded: Embedded,
    pub router: Router,
    /// `None` for an instance started beside another, on its store.
    backing: Option<Backing>,
}

/// What an instance stores into: a temporary data directory (SQLite) or a fresh PostgreSQL
/// database of its own; either is removed when the test ends.
pub enum Backing {
    Dir(tempfile::TempDir),
    Postgres(Box<TestDatabase>),
}

impl Backing {
    pub fn dir() -> Self {
        Self::Dir(tempfile::tempdir().unwrap())
    }

    /// `None` when no test server is configured (see `vitrina_store::testing`).
    pub async fn postgres() -> Option<Self> {
        TestDatabase::create().await.map(|db| Self::Postgres(Box::new(db)))
    }

    /// The default configuration over this store.
    pub fn config(&self) -> EmbeddedConfig {
        match self {
            Self::Dir(dir) => EmbeddedConfig::new(dir.path()),
            Self::Postgres(db) => EmbeddedConfig::at(Location::Postgres(db.url())),
        }
    }

    /// Starts an instance with the default configuration.
    pub async fn start(self) -> TestApp {
        let config = self.config();
        self.start_with(config).await
    }

    pub async fn start_with(self, config: EmbeddedConfig) -> TestApp {
        let embedded = Embedded::start(config).await.unwrap();
        let router = vitrina_server::app(embedded.state.clone());
        TestApp { embedded, router, backing: Some(self) }
    }
}

/// An instance over a temporary data directory.
pub async fn start() -> TestApp {
    Backing::dir().start().await
}

impl TestApp {
    /// Serves an instance started with another configuration, owning its directory.
    pub fn from_embedded(embedded: Embedded, dir: tempfile::TempDir) -> TestApp {
        let router = vitrina_server::app(embedded.state.clone());
        TestApp { embedded, router, backing: Some(Backing::Dir(dir)) }
    }

    /// What the instance stores into.
    pub fn backing(&self) -> &Backing {
        self.backing.as_ref().expect("an instance started beside another has no store of its own")
    }

    /// A second instance on this one's store, with the default configuration (a second
    /// process of the same deployment: PostgreSQL only).
    pub async fn beside(&self) -> TestApp {
        let embedded = Embedded::start(self.backing().config()).await.unwrap();
        let router = vitrina_server::app(embedded.state.clone());
        TestApp { embedded, router, backing: None }
    }

    /// Shuts the instance down cleanly and starts a new one on the same store.
    pub async fn restart(self) -> TestApp {
        let TestApp { embedded, router, backing } = self;
        let backing = backing.expect("an instance started beside another has no store of its own");
        drop(router);
        embedded.shutdown().await.unwrap();
        backing.start().await
    }

    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, body)
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.raw(Request::get(uri).body(Body::empty()).unwrap()).await
    }

    pub async fn send(&self, method: &str, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.send_text(method, uri, &body.to_string()).await
    }

    pub async fn send_text(&self, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        self.raw(req).await
    }

    pub async fn post(&self, uri: &str, body: &Value) -> (StatusCode, Value) {
        self.send("POST", uri, body).await
    }
}

/// Asserts the documented error shape and returns the body.
#[track_caller]
pub fn assert_error(res: &(StatusCode, Value), status: u16, kind: &str) {
    let (got, body) = res;
    assert_eq!(got.as_u16(), status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"], kind, "{body}");
    assert_eq!(body["code"], status, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["details"].is_object(), "{body}");
}

/// Queues a training job and waits for it to finish; returns the finished job.
pub async fn train_and_wait(app: &TestApp, config: Value) -> Value {
    let (status, queued) = app.post("/api/v1/training/train", &serde_json::json!({ "config": config })).await;
    assert_eq!(status.as_u16(), 202, "{queued}");
    eventually("the training job to finish", || async {
        let (_, status) = app.get("/api/v1/training/status").await;
        (status["lastFinished"]["jobId"] == queued["job"]["jobId"]).then(|| status["lastFinished"].clone())
    })
    .await
}

/// How long a test waits for something that must happen: only a hung server takes this
/// long, so a slow or busy machine never fails a test (tests wait on the event, not on a
/// tuned budget).
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(300);

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
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
