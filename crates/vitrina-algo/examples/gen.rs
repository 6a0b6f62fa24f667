//! Writes synthetic events the way `vitrina gen` will:
//! `cargo run -p vitrina-algo --release --example gen -- --users N --items N --events N
//!  --seed S --out DIR` → `DIR/events.csv` (user,item,activity,ts,session) and
//! `DIR/items.csv` (item,category,price_cents).

mod common;

use std::fs::File;
use std::io::{BufWriter, Write};

use vitrina_algo::gen::{generate, GenParams};

fn main() -> std::io::Result<()> {
    let args = common::Args::parse();
    let num = |k: &str, d: usize| args.get(k).map_or(d, |v| v.parse().expect("a number"));
    let params = GenParams {
        users: num("users", 1_000),
        items: num("items", 500),
        events: num("events", 20_000),
        seed: args.seed(),
        ..GenParams::default()
    };
    let g = generate(&params).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let out = std::path::Path::new(args.req("out"));
    std::fs::create_dir_all(out)?;
    let mut w = BufWriter::new(File::create(out.join("events.csv"))?);
    writeln!(w, "user,item,activity,ts,session")?;
    for e in &g.events {
        writeln!(w, "user-{},product-{},{},{},{}", e.user, e.item, e.activity.as_str(), e.ts, e.session)?;
    }
    w.flush()?;
    let mut w = BufWriter::new(File::create(out.join("items.csv"))?);
    writeln!(w, "item,category,price_cents")?;
    for it in &g.items {
        writeln!(w, "product-{},category-{},{}", it.id, it.category, it.price_cents)?;
    }
    w.flush()
}
