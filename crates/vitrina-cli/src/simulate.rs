//! `vitrina simulate`: a simulated shop (`vitrina_experiments::simulate::feature_shop`)
//! driven against a running server over its public API, to measure the learned ranker
//! against the blend the way a shop would.
//!
//! 1. The catalogue (category, price, `publishedAt`) and each visitor's browsing history
//!    (dated over the 30 days before) are sent.
//! 2. A training job without the ranker; then a day of visits served by the blend: each
//!    visit asks for a list and sends back what the visitor does with it (clicks, carts,
//!    purchases with the list's `recommendationId`), so impressions and outcomes are logged.
//!    The day runs as an A/A experiment of the blend, whose results say when every click is
//!    attributed (and whose halves must agree).
//! 3. A training job with the default config, which trains the learned ranker on that log.
//! 4. An experiment `blend` (control, `ranker: blend`) against `learned`
//!    (`ranker: learned`), served the same way; its results, read from the API once every
//!    click is attributed, are the verdict.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use futures_util::{stream, StreamExt, TryStreamExt};
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};
use vitrina_experiments::simulate::feature_shop::{visitor_id, FeatureShop, FeatureShopConfig, Response};

#[derive(clap::Args)]
pub struct Args {
    /// The server (start it with `--no-demo` on an empty data directory).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Bearer key when the server asks for one (admin: the run trains and starts an experiment).
    #[arg(long, env = "VITRINA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    #[arg(long, default_value_t = 5_000)]
    visitors: usize,
    #[arg(long, default_value_t = 1_000)]
    products: usize,
    #[arg(long, default_value_t = 8)]
    categories: usize,
    /// Product views in each visitor's history.
    #[arg(long, default_value_t = 15)]
    history_views: usize,
    /// Item-level CTR of lists of `--limit` products drawn at random (above 0, at most 0.2).
    #[arg(long, default_value_t = 0.03)]
    random_ctr: f64,
    /// Visits served by the blend before the ranker is trained (one simulated day).
    #[arg(long, default_value_t = 50_000)]
    day_visits: u64,
    /// Visits in the experiment, split between its two variants.
    #[arg(long, default_value_t = 20_000)]
    experiment_visits: u64,
    /// Products per list.
    #[arg(long, default_value_t = 10)]
    limit: usize,
    /// Visits in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Exit with code 3 unless the learned ranker's CTR is at least this many times the
    /// blend's and the interval of the difference excludes zero.
    #[arg(long)]
    require_ratio: Option<f64>,
}

/// Events per batch request.
const BATCH: usize = 5_000;

pub async fn run(args: Args) -> anyhow::Result<std::process::ExitCode> {
    if args.visitors == 0 || args.products == 0 || args.categories == 0 || args.limit == 0 {
        bail!("--visitors, --products, --categories and --limit must be at least 1");
    }
    if !(args.random_ctr > 0.0 && args.random_ctr <= 0.2) {
        bail!("--random-ctr must be above 0 and at most 0.2, got {}", args.random_ctr);
    }
    let shop = FeatureShop::new(FeatureShopConfig {
        visitors: args.visitors,
        products: args.products,
        categories: args.categories,
        history_views: args.history_views,
        random_ctr: args.random_ctr,
        list_len: args.limit,
        seed: args.seed,
    });
    let api = Api::new(&args.url, args.api_key.clone());
    let start = Utc::now();
    let started = Instant::now();

    send_catalogue(&api, &shop, start).await?;
    let events = send_history(&api, &shop, start, args.seed).await?;
    eprintln!("catalogue of {} products and {events} history events sent", args.products);

    let first = train(&api, json!({"ranker": {"enabled": false}})).await?;
    eprintln!("trained {} without the ranker", first["modelVersion"].as_str().unwrap_or("-"));

    // Day one runs as an A/A experiment of the blend: its results say when every click is
    // attributed (the training job labels lists by the outcomes attributed to them), and
    // the two halves must agree.
    let blend = json!({"ranker": "blend"});
    let (day, day_clicks) = experiment(
        &api,
        &shop,
        &args,
        1,
        args.day_visits,
        &format!("simulated day one, seed {}", args.seed),
        [("blend-a", &blend), ("blend-b", &blend)],
    )
    .await?;
    eprintln!("a day of {} visits served by the blend: {day_clicks} clicks", args.day_visits);

    let second = train(&api, json!({})).await?;
    let ranker_log = crate::train::ranker_lines(&second);
    for line in &ranker_log {
        eprintln!("{line}");
    }

    let (results, ab_clicks) = experiment(
        &api,
        &shop,
        &args,
        2,
        args.experiment_visits,
        &format!("simulated ranker vs blend, seed {}", args.seed),
        [("blend", &blend), ("learned", &json!({"ranker": "learned"}))],
    )
    .await?;
    eprintln!("{} experiment visits: {ab_clicks} clicks", args.experiment_visits);
    let variant = |name: &str| {
        results["variants"].as_array().and_then(|v| v.iter().find(|v| v["name"] == name)).cloned()
    };
    let (blend, learned) =
        (variant("blend").context("no blend variant")?, variant("learned").context("no learned variant")?);
    let ctr = |v: &Value| v["metrics"]["ctr"]["value"].as_f64().unwrap_or(0.0);
    let ratio = if ctr(&blend) > 0.0 { ctr(&learned) / ctr(&blend) } else { 0.0 };
    let difference = learned["vsControl"]["difference"].clone();
    let summary = json!({
        "ranker": ranker_log,
        "dayOne": day["variants"].as_array().map(|v| v.iter().map(brief).collect::<Vec<_>>()),
        "variants": [brief(&blend), brief(&learned)],
        "ctrRatio": ratio,
        "difference": difference,
        "significant": learned["vsControl"]["significant"],
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(required) = args.require_ratio {
        let low = difference["low"].as_f64().unwrap_or(0.0);
        if ratio < required || low <= 0.0 {
            eprintln!("the learned ranker's CTR is {ratio:.3} × the blend's (interval low {low:.5}); required: ≥ {required} with the interval above 0");
            return Ok(std::process::ExitCode::from(3));
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn brief(v: &Value) -> Value {
    let m = &v["metrics"];
    json!({"name": v["name"], "lists": v["lists"], "impressions": m["impressions"], "clicks": m["clicks"],
           "ctr": m["ctr"], "addToCarts": m["addToCarts"], "purchases": m["purchases"]})
}

async fn send_catalogue(api: &Api, shop: &FeatureShop, start: DateTime<Utc>) -> anyhow::Result<()> {
    let products: Vec<Value> = shop
        .products()
        .iter()
        .map(|p| {
            let published = start - chrono::Duration::seconds((p.age_days * 86_400.0) as i64);
            json!({"id": p.id, "name": format!("Product {}", p.id), "category": p.category, "price": format!("{:.2}", p.price),
                   "attributes": {"publishedAt": published.to_rfc3339()}})
        })
        .collect();
    for chunk in products.chunks(BATCH) {
        api.post("/api/v1/catalog/products/bulk", &json!({ "products": chunk })).await?;
    }
    Ok(())
}

/// Sends every visitor's history; returns how many events.
async fn send_history(
    api: &Api,
    shop: &FeatureShop,
    start: DateTime<Utc>,
    seed: u64,
) -> anyhow::Result<usize> {
    // not the stream the shop itself was drawn from
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4849_5354_4f52_5921);
    let mut events = Vec::new();
    let mut sent = 0;
    for v in 0..shop.config.visitors {
        for e in shop.history(v, &mut rng) {
            let at = start - chrono::Duration::seconds((e.days_ago * 86_400.0) as i64);
            events.push(json!({"userId": visitor_id(v), "activityType": e.activity,
                               "productId": shop.products()[e.product].id, "timestamp": at.to_rfc3339()}));
        }
        if events.len() >= BATCH || v + 1 == shop.config.visitors {
            api.post("/api/v1/activity/track/batch", &json!({ "events": events })).await?;
            sent += events.len();
            events.clear();
        }
    }
    Ok(sent)
}

/// Runs a training job through the server; fails unless it is promoted.
async fn train(api: &Api, config: Value) -> anyhow::Result<Value> {
    let finished = crate::train::through_server(&api.base, api.key.as_deref(), config).await?;
    if finished["status"] != "succeeded" {
        bail!(
            "training job {} ended {}: {}",
            finished["jobId"],
            finished["status"],
            finished["error"].as_str().unwrap_or("see its log in /api/v1/training/status")
        );
    }
    Ok(finished)
}

/// Runs an experiment of two variants (the first the control) over `visits` visits and
/// returns its results, read once every click sent is attributed, and the clicks sent.
async fn experiment(
    api: &Api,
    shop: &FeatureShop,
    args: &Args,
    phase: u64,
    visits: u64,
    name: &str,
    variants: [(&str, &Value); 2],
) -> anyhow::Result<(Value, u64)> {
    let variants: Vec<Value> = variants.iter().map(|(n, r)| json!({"name": n, "ranking": r})).collect();
    let created =
        api.post("/api/v1/experiments", &json!({"name": name, "goal": "ctr", "variants": variants})).await?;
    let id = created["experiment"]["id"].as_str().context("no experiment id in the answer")?.to_string();
    api.post(&format!("/api/v1/experiments/{id}/start"), &json!({})).await?;
    let outcome = async {
        let clicks = serve_visits(api, shop, args, phase, visits, &id).await?;
        anyhow::Ok((settled_results(api, &id, clicks).await?, clicks))
    }
    .await;
    // stopped whatever happened: a running experiment would take the next run's lists
    let stopped = api.post(&format!("/api/v1/experiments/{id}/stop"), &json!({})).await;
    let outcome = outcome?;
    stopped?;
    Ok(outcome)
}

/// Serves `visits` lists to visitors drawn uniformly and sends back their responses;
/// returns the clicks sent. Fails if a list is served outside `experiment`.
async fn serve_visits(
    api: &Api,
    shop: &FeatureShop,
    args: &Args,
    phase: u64,
    visits: u64,
    experiment: &str,
) -> anyhow::Result<u64> {
    // Every response carries a new recommendation id and shows a product once, so each
    // click sent is one the experiment counts.
    stream::iter(0..visits)
        .map(|i| {
            async move {
                let mut rng = StdRng::seed_from_u64(args.seed ^ (phase << 48) ^ i);
                let v = rng.random_range(0..shop.config.visitors);
                let user = visitor_id(v);
                let list = api
                    .get(&format!("/api/v1/recommendations/recommendations/{user}?limit={}", args.limit))
                    .await?;
                let rec = list["recommendationId"].as_str().context("a list without recommendationId")?;
                let variant = list["variant"].as_str().unwrap_or("");
                if !variant.starts_with(&format!("{experiment}/")) {
                    bail!("a list was served outside the experiment (variant {variant:?})");
                }
                let items = list["recommendations"].as_array().context("a list without recommendations")?;
                let shown: Vec<usize> = items
                    .iter()
                    .map(|r| r["productId"].as_str().and_then(|id| shop.product_index(id)))
                    .collect::<Option<_>>()
                    .context("a list showed a product the simulation did not make (start the server with --no-demo)")?;
                let mut events = Vec::new();
                let mut clicks = 0;
                for (at, response) in shop.respond(v, &shown, &mut rng) {
                    clicks += 1;
                    let product = &shop.products()[shown[at]];
                    let kinds: &[&str] = match response {
                        Response::Click => &["click"],
                        Response::AddToCart => &["click", "add_to_cart"],
                        Response::Purchase => &["click", "add_to_cart", "purchase"],
                    };
                    for kind in kinds {
                        events.push(json!({"userId": user, "activityType": kind, "productId": product.id,
                                           "metadata": {"recommendationId": rec, "price": format!("{:.2}", product.price)}}));
                    }
                }
                if !events.is_empty() {
                    api.post("/api/v1/activity/track/batch", &json!({ "events": events })).await?;
                }
                anyhow::Ok(clicks)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_fold(0, |sum, clicks| async move { Ok(sum + clicks) })
        .await
}

/// The experiment's results once they count every click sent (attribution runs after the
/// acknowledgement); gives up after a minute without progress.
async fn settled_results(api: &Api, id: &str, clicks: u64) -> anyhow::Result<Value> {
    let (mut last, mut since) = (u64::MAX, Instant::now());
    loop {
        let body = api.get(&format!("/api/v1/experiments/{id}/results")).await?;
        let results = body["results"].clone();
        let counted: u64 = results["variants"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["metrics"]["clicks"].as_u64())
            .sum();
        if counted >= clicks {
            return Ok(results);
        }
        if counted != last {
            (last, since) = (counted, Instant::now());
        } else if since.elapsed() > Duration::from_secs(60) {
            bail!("the experiment's results count {counted} of the {clicks} clicks sent, and no more for a minute");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The server's API: JSON in and out, errors in the documented shape turned into messages.
struct Api {
    base: String,
    key: Option<String>,
    client: reqwest::Client,
}

impl Api {
    fn new(url: &str, key: Option<String>) -> Self {
        // a hung server fails the run instead of stalling it
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("a TLS backend");
        Self { base: url.trim_end_matches('/').to_string(), key, client }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.client.get(format!("{}{path}", self.base)), path).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.client.post(format!("{}{path}", self.base)).json(body), path).await
    }

    async fn send(&self, req: reqwest::RequestBuilder, path: &str) -> anyhow::Result<Value> {
        let req = match &self.key {
            Some(key) => req.bearer_auth(key),
            None => req,
        };
        let res = req.send().await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = res.status();
        let body: Value = res.json().await.with_context(|| format!("{path}: the answer is not JSON"))?;
        if !status.is_success() {
            bail!("{path}: {status}: {}", body["message"].as_str().unwrap_or("no message"));
        }
        Ok(body)
    }
}
