//! A deployment of roles, each its own `vitrina serve` process over one PostgreSQL database,
//! NATS JetStream and Redis, and what tests ask of it.

use serde_json::{json, Value};
use vitrina_store::testing::{service_url, NATS_URL, REDIS_URL};

use super::{Backing, Options, Server};

pub struct Deployment {
    pub training: Server,
    pub activity: Server,
    pub api: [Server; 2],
    pub urls: Urls,
}

pub struct Urls {
    pub backing: Backing,
    pub nats: String,
    pub redis: String,
}

impl Urls {
    pub fn start(&self, role: &str) -> Server {
        self.start_with_env(role, Vec::new())
    }

    /// [`Urls::start`] with `VITRINA__…` overrides.
    pub fn start_with_env(&self, role: &str, env: Vec<(&str, &str)>) -> Server {
        let args = ["--role", role, "--bus", &self.nats, "--cache", &self.redis].map(String::from).to_vec();
        self.backing.start_with(Options { args, env, ..Default::default() })
    }
}

/// `None` when a service the deployment needs is not configured (outside CI).
pub async fn deploy() -> Option<Deployment> {
    deploy_with_api_env(Vec::new()).await
}

/// [`deploy`] with `VITRINA__…` overrides for the api replicas.
pub async fn deploy_with_api_env(env: Vec<(&str, &str)>) -> Option<Deployment> {
    let backing = Backing::postgres().await?;
    let (nats, redis) = (service_url(NATS_URL)?, service_url(REDIS_URL)?);
    let urls = Urls { backing, nats, redis };
    // Training first: it finds the database new, loads the demo shop and trains v1.
    let training = urls.start("training");
    let activity = urls.start("activity");
    let api = [urls.start_with_env("api", env.clone()), urls.start_with_env("api", env)];
    Some(Deployment { training, activity, api, urls })
}

/// The sequence up to which an api replica applied the log (from its engine health).
pub async fn applied(c: &reqwest::Client, api: &Server) -> u64 {
    let (_, health) = get(c, api, "/api/v1/engine/health").await;
    let detail = health["checks"][0]["detail"].as_str().unwrap_or_default().to_string();
    let at = detail.rfind("up to sequence ").map(|i| &detail[i + "up to sequence ".len()..]);
    at.and_then(|n| n.trim().parse().ok()).unwrap_or_else(|| panic!("no applied sequence in {health}"))
}

pub async fn get(c: &reqwest::Client, server: &Server, path: &str) -> (u16, Value) {
    let res = c.get(server.url(path)).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

pub async fn send(
    c: &reqwest::Client,
    method: &str,
    server: &Server,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let res = c.request(method, server.url(path)).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// Whether some item of the list is explained by the visitor's view of `product`
/// (`viewed NAME (product)`, or `viewed product` for a product without a name).
pub fn explained_by(list: &Value, product: &str) -> bool {
    list["recommendations"].as_array().unwrap().iter().any(|r| {
        r["explanation"].as_str().is_some_and(|e| {
            e == format!("viewed {product}")
                || (e.starts_with("viewed ") && e.ends_with(&format!(" ({product})")))
        })
    })
}

/// The sum of a server's `/metrics` samples whose line starts with `series` (0 when none).
pub async fn metric(c: &reqwest::Client, server: &Server, series: &str) -> f64 {
    let text = c.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn view(c: &reqwest::Client, activity: &Server, visitor: &str, product: &str) -> (u16, Value) {
    let event = json!({"userId": visitor, "activityType": "view", "productId": product});
    send(c, "POST", activity, "/api/v1/activity/track", event).await
}

pub fn list_path(visitor: &str) -> String {
    format!("/api/v1/recommendations/recommendations/{visitor}?limit=10")
}

/// The last sequence of the event log, from the activity process's health.
pub async fn log_head(c: &reqwest::Client, activity: &Server) -> u64 {
    let (_, health) = get(c, activity, "/api/v1/activity/health").await;
    let detail = health["checks"][0]["detail"].as_str().unwrap_or_default().to_string();
    detail
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no sequence in {health}"))
}

/// An api replica's `GET /api/v1/engine/state`, taken between two applied batches.
pub async fn engine_state(c: &reqwest::Client, api: &Server) -> Value {
    super::eventually("a digest between two applied batches", || async {
        let (s, state) = get(c, api, "/api/v1/engine/state").await;
        assert!(s == 200 || s == 503, "{state}");
        (s == 200).then_some(state)
    })
    .await
}
