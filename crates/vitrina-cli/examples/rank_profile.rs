//! Times the engine's ranking alone (no HTTP, one thread) on a real data directory, for
//! profiling: `cargo run --release -p vitrina-cli --example rank_profile -- DATA_DIR [USERS] [PREFIX]`
//! (stop the server first: it owns the data directory).

use std::time::Instant;

use vitrina_core::UserId;
use vitrina_engine::{Filters, ListRequest};
use vitrina_server::embedded::{Embedded, EmbeddedConfig};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).expect("usage: rank_profile DATA_DIR [USERS] [PREFIX]");
    let users: u64 = args.get(2).and_then(|u| u.parse().ok()).unwrap_or(1_000_000);
    let prefix = args.get(3).cloned().unwrap_or_else(|| "user-".into());
    let mut config = EmbeddedConfig::new(dir);
    config.demo = false;
    let embedded = Embedded::start(config).await?;
    let engine = embedded.state.engine.clone();
    let filters = Filters::default();
    let now = chrono::Utc::now().timestamp_millis();
    let req = ListRequest { limit: 10, filters: &filters, now_ms: now };
    let (model, ranking) = (engine.model(), engine.ranking());
    let mut times = Vec::new();
    let mut personal = 0;
    let n: u64 = std::env::var("RANKS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    for i in 0..n {
        let user = UserId::parse(&format!("{prefix}{}", (i * 7919) % users))?;
        let t = Instant::now();
        let list = engine.recommend_with(&model, &ranking, &user, &req);
        times.push(t.elapsed().as_micros() as u64);
        personal += usize::from(list.first().is_some_and(|r| r.source.is_personal()));
    }
    times.sort_unstable();
    let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "rank {} lists ({personal} personal): mean {} µs, p50 {} µs, p99 {} µs, max {} µs",
        times.len(),
        times.iter().sum::<u64>() / times.len() as u64,
        q(0.5),
        q(0.99),
        times[times.len() - 1]
    );
    embedded.shutdown().await
}
