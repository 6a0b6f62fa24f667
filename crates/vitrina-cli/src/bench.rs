//! `vitrina bench`: load generators that report throughput, latency percentiles and errors
//! against a running server (loopback only in this project's benchmarks).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Batch ingest: POST /api/v1/activity/track/batch.
    Ingest(Load),
    /// Single-event tracking: POST /api/v1/activity/track.
    Track(Load),
    /// Personalised lists: GET /api/v1/recommendations/recommendations/{userId}.
    Recommend(Load),
    /// Freshness: for a sample of visitors, the time from the acknowledgement of a `view` of
    /// their top recommended product to the first list that reflects it (no longer shows it).
    Freshness(Load),
}

#[derive(clap::Args, Clone)]
pub struct Load {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Requests to send in total.
    #[arg(long, default_value_t = 10_000)]
    requests: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: u64,
    /// Events per batch request (ingest only).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Distinct visitors to draw from.
    #[arg(long, default_value_t = 10_000)]
    users: u64,
    /// Visitor ids are this prefix and a number from 0.
    #[arg(long, default_value = "bench-user-")]
    user_prefix: String,
    /// Stop after this many seconds instead of after `--requests`.
    #[arg(long)]
    duration: Option<u64>,
    /// Requests per second across all workers; 0 = as fast as the server answers.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Freshness only: visitors sampled.
    #[arg(long, default_value_t = 500)]
    samples: u64,
    /// Distinct products to draw from (`product-1`…).
    #[arg(long, default_value_t = 10)]
    products: u64,
    /// Freshness only: where lists are read, comma-separated api replicas taken in turn
    /// (default: `--url`, where events are sent).
    #[arg(long)]
    read_url: Option<String>,
    /// Seed of the generated load; default: from the clock, so repeated runs send new
    /// `eventId`s instead of duplicates.
    #[arg(long)]
    seed: Option<u64>,
    /// Which API the load goes through: Vitrina's own (`v1`) or the Gorse-compatible one
    /// (`gorse`: `POST /api/feedback`, `GET /api/recommend/{userId}`).
    #[arg(long, value_enum, default_value_t = Api::V1)]
    api: Api,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V1,
    Gorse,
}

const KINDS: [&str; 4] = ["view", "click", "add_to_cart", "purchase"];
/// The same kinds as Gorse feedback types (by the default mapping).
const GORSE_KINDS: [&str; 4] = ["view", "click", "cart", "purchase"];

/// A random Gorse feedback, dated on receipt (its event id is derived from it and its time by
/// the server).
fn feedback(rng: &mut StdRng, load: &Load) -> Value {
    json!({
        "FeedbackType": GORSE_KINDS[rng.random_range(0..GORSE_KINDS.len())],
        "UserId": format!("{}{}", load.user_prefix, rng.random_range(0..load.users)),
        "ItemId": format!("product-{}", rng.random_range(1..=load.products)),
        "Timestamp": "",
    })
}

/// A random event with a client-chosen `eventId` (random, as a shop's idempotency keys are).
fn event(rng: &mut StdRng, load: &Load) -> Value {
    json!({
        "eventId": format!("{:016x}{:016x}", rng.random::<u64>(), rng.random::<u64>()),
        "userId": format!("{}{}", load.user_prefix, rng.random_range(0..load.users)),
        "activityType": KINDS[rng.random_range(0..KINDS.len())],
        "productId": format!("product-{}", rng.random_range(1..=load.products)),
    })
}

pub async fn run(command: Command) -> anyhow::Result<()> {
    let (name, load) = match &command {
        Command::Ingest(l) => ("ingest", l.clone()),
        Command::Track(l) => ("track", l.clone()),
        Command::Recommend(l) => ("recommend", l.clone()),
        Command::Freshness(l) => return freshness(l.clone()).await,
    };
    let deadline = load.duration.map(|d| Instant::now() + Duration::from_secs(d));
    let per_worker_interval =
        (load.rate > 0).then(|| Duration::from_secs_f64(load.concurrency as f64 / load.rate as f64));
    let client = reqwest::Client::builder().pool_max_idle_per_host(load.concurrency as usize).build()?;
    let seed = load.seed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
    });
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..load.concurrency {
        let (client, next, errors, load) = (client.clone(), next.clone(), errors.clone(), load.clone());
        let kind = name;
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed.wrapping_add(worker));
            let mut hist = Histogram::<u64>::new(3).expect("valid histogram");
            let mut tick = per_worker_interval.map(|i| {
                let mut t = tokio::time::interval(i);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                let more = match deadline {
                    Some(d) => Instant::now() < d,
                    None => next.fetch_add(1, Ordering::Relaxed) < load.requests,
                };
                if !more {
                    break;
                }
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let gorse = load.api == Api::Gorse;
                let request = match kind {
                    "ingest" if gorse => {
                        let rows: Vec<Value> = (0..load.batch).map(|_| feedback(&mut rng, &load)).collect();
                        client.post(format!("{}/api/feedback", load.url)).json(&rows)
                    }
                    "track" if gorse => {
                        client.post(format!("{}/api/feedback", load.url)).json(&[feedback(&mut rng, &load)])
                    }
                    _ if gorse && kind == "recommend" => {
                        let user = rng.random_range(0..load.users);
                        client.get(format!("{}/api/recommend/{}{user}?n=10", load.url, load.user_prefix))
                    }
                    "ingest" => {
                        let events: Vec<Value> = (0..load.batch).map(|_| event(&mut rng, &load)).collect();
                        client
                            .post(format!("{}/api/v1/activity/track/batch", load.url))
                            .json(&json!({"events": events}))
                    }
                    "track" => client
                        .post(format!("{}/api/v1/activity/track", load.url))
                        .json(&event(&mut rng, &load)),
                    _ => {
                        let user = rng.random_range(0..load.users);
                        client.get(format!(
                            "{}/api/v1/recommendations/recommendations/{}{user}?limit=10",
                            load.url, load.user_prefix
                        ))
                    }
                };
                let t = Instant::now();
                let ok = match request.send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                hist.record(t.elapsed().as_micros() as u64).ok();
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new(3)?;
    for t in tasks {
        hist.add(t.await?)?;
    }
    let elapsed = started.elapsed();
    report(name, &load, &hist, errors.load(Ordering::Relaxed), elapsed);
    Ok(())
}

/// See [`Command::Freshness`].
async fn freshness(load: Load) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let seed = load.seed.unwrap_or(42);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut hist = Histogram::<u64>::new(3)?;
    let (mut skipped, mut stale_reads) = (0u64, 0u64);
    let readers: Vec<String> = match &load.read_url {
        Some(urls) => urls.split(',').map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect(),
        None => vec![load.url.clone()],
    };
    anyhow::ensure!(!readers.is_empty(), "--read-url names no server");
    let started = Instant::now();
    for sample in 0..load.samples {
        let user = format!("{}{}", load.user_prefix, rng.random_range(0..load.users));
        let reader = &readers[sample as usize % readers.len()];
        let url = format!("{reader}/api/v1/recommendations/recommendations/{user}?limit=10");
        let first: Value = client.get(&url).send().await?.error_for_status()?.json().await?;
        let Some(top) = first["recommendations"][0]["productId"].as_str().map(str::to_string) else {
            skipped += 1;
            continue;
        };
        let res = client
            .post(format!("{}/api/v1/activity/track", load.url))
            .json(&json!({"userId": user, "activityType": "view", "productId": top}))
            .send()
            .await?
            .error_for_status()?;
        let acked = Instant::now();
        drop(res);
        loop {
            let list: Value = client.get(&url).send().await?.error_for_status()?.json().await?;
            let shown = list["recommendations"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|r| r["productId"] == top.as_str());
            if !shown {
                hist.record(acked.elapsed().as_micros() as u64)?;
                break;
            }
            stale_reads += 1;
            if acked.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("{user}'s list still shows {top} 10 s after the view was acknowledged");
            }
        }
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "bench freshness: {} visitors in {:.2} s ({} without a list skipped), stale reads after an ack: {stale_reads}",
        hist.len(),
        started.elapsed().as_secs_f64(),
        skipped
    );
    println!(
        "  ack → first list reflecting the event, ms: p50 {:.2}  p99 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.99),
        hist.max() as f64 / 1000.0
    );
    Ok(())
}

fn report(name: &str, load: &Load, hist: &Histogram<u64>, errors: u64, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let requests = hist.len();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "bench {name}: {requests} requests in {secs:.2} s, concurrency {}, errors {errors}",
        load.concurrency
    );
    println!("  requests/s: {:.0}", requests as f64 / secs);
    if errors > 0 {
        println!("  FAILED requests: {errors}");
    }
    if name == "ingest" {
        println!("  events/s:   {:.0} (batch {})", (requests as f64 * load.batch as f64) / secs, load.batch);
    }
    println!(
        "  latency ms: p50 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2}",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        hist.max() as f64 / 1000.0
    );
}
