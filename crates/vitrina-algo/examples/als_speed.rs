//! ALS training speed on synthetic data, for the side-by-side with `implicit`:
//! `als_speed --users N --items N --events N --seed S --write-pairs FILE` generates events
//! (`vitrina_algo::gen`) and writes the distinct (user, item) pairs as little-endian i32
//! pairs; `als_speed --pairs FILE --users N --items N [--factors 64 --iterations 15]` reads
//! them and trains ALS on the binary matrix, printing JSON with the training seconds and the
//! fold-in latency (p50/p99 over ~10,000 users' own rows).
//! Threads: `RAYON_NUM_THREADS`.

mod common;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::time::Instant;

use vitrina_algo::gen::{generate, GenParams};
use vitrina_algo::matrix::{CsrMatrix, Duplicates, Interaction, MatrixOptions};
use vitrina_algo::models::{Als, AlsParams};

fn main() -> std::io::Result<()> {
    let args = common::Args::parse();
    let num = |k: &str, d: usize| args.get(k).map_or(d, |v| v.parse().expect("a number"));
    let (users, items) = (num("users", 1_000_000), num("items", 100_000));
    let opts = MatrixOptions {
        n_users: Some(users),
        n_items: Some(items),
        duplicates: Duplicates::First,
        decay: None,
    };
    if let Some(path) = args.get("write-pairs") {
        let t = Instant::now();
        let params = GenParams {
            users,
            items,
            events: num("events", 20_000_000),
            seed: args.seed(),
            ..Default::default()
        };
        let g = generate(&params).expect("generate");
        let m = CsrMatrix::from_interactions(&g.interactions(|_| 1.0), &opts).expect("matrix");
        let mut w = BufWriter::new(File::create(path)?);
        for u in 0..m.n_rows() {
            for &i in m.row(u).0 {
                w.write_all(&(u as i32).to_le_bytes())?;
                w.write_all(&(i as i32).to_le_bytes())?;
            }
        }
        w.flush()?;
        eprintln!(
            "{} events → {} distinct pairs in {:.1}s",
            g.events.len(),
            m.nnz(),
            t.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let mut raw = Vec::new();
    BufReader::new(File::open(args.req("pairs"))?).read_to_end(&mut raw)?;
    let data: Vec<Interaction> = raw
        .chunks_exact(8)
        .map(|c| Interaction {
            user: i32::from_le_bytes(c[..4].try_into().expect("4")) as u32,
            item: i32::from_le_bytes(c[4..].try_into().expect("4")) as u32,
            weight: 1.0,
            ts: 0,
        })
        .collect();
    drop(raw);
    let m = CsrMatrix::from_interactions(&data, &opts).expect("matrix");
    drop(data);
    let params =
        AlsParams { factors: num("factors", 64), iterations: num("iterations", 15), ..AlsParams::default() };
    let t = Instant::now();
    let als = Als::train(&m, &params, &mut |d, n| eprintln!("iteration {d}/{n}")).expect("train");
    let secs = t.elapsed().as_secs_f64();
    // fold-in latency: a user vector from that user's interactions alone, one thread
    let mut micros: Vec<f64> = (0..m.n_rows())
        .step_by((m.n_rows() / 10_000).max(1))
        .map(|u| {
            let history = m.row_pairs(u);
            let t = Instant::now();
            std::hint::black_box(als.fold_in(&history));
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    micros.sort_by(f64::total_cmp);
    let pct = |q: f64| micros.get(((micros.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({"peer": "vitrina-als", "seconds": secs, "nnz": m.nnz(), "factors": params.factors,
            "iterations": params.iterations, "threads": rayon::current_num_threads(), "users": als.n_users(),
            "foldInMicros": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0), "samples": micros.len()}})
    );
    Ok(())
}
