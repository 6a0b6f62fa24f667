//! `vitrina gen`: a synthetic shop (power-law popularity, log-normal activity, categories,
//! sessions, a view → cart → purchase funnel) written as files `vitrina import` reads:
//! `DIR/products.csv` (`--format products-csv`) and `DIR/events.csv` (`--format events-csv`).

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
};

use anyhow::Context;
use vitrina_algo::gen::{generate, GenParams};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    #[arg(long, default_value_t = 500)]
    items: usize,
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Days the events span.
    #[arg(long, default_value_t = 90)]
    days: u32,
    /// Unix time (seconds) of the end of the span; default: now, so live popularity and the
    /// freshness of a benchmark look like a running shop's.
    #[arg(long)]
    end_ts: Option<i64>,
    /// Output directory (created if missing).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let params = GenParams {
        users: args.users,
        items: args.items,
        events: args.events,
        seed: args.seed,
        days: args.days,
        start_ts: args.end_ts.unwrap_or_else(|| chrono::Utc::now().timestamp())
            - i64::from(args.days) * 86_400,
        ..Default::default()
    };
    let g = generate(&params)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut w = BufWriter::new(File::create(args.out.join("products.csv"))?);
    writeln!(w, "id,name,category,price,inStock")?;
    for it in &g.items {
        let (id, cents) = (it.id, it.price_cents);
        writeln!(
            w,
            "product-{id},Product {id},category-{},{}.{:02},true",
            it.category,
            cents / 100,
            cents % 100
        )?;
    }
    w.flush()?;
    let mut w = BufWriter::new(File::create(args.out.join("events.csv"))?);
    writeln!(w, "userId,activityType,productId,timestamp,eventId")?;
    for (i, e) in g.events.iter().enumerate() {
        let ms = e.ts * 1000;
        writeln!(w, "user-{},{},product-{},{ms},gen-{}-{i}", e.user, e.activity.as_str(), e.item, args.seed)?;
    }
    w.flush()?;
    println!("wrote {} products and {} events to {}", g.items.len(), g.events.len(), args.out.display());
    Ok(())
}
