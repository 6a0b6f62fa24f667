//! Raw event-log append throughput of the embedded store, without HTTP:
//! `cargo run --release -p vitrina-store --example append_bench [batches] [batch_size] [tasks]`.

use std::{sync::Arc, time::Instant};

use chrono::Utc;
use vitrina_core::{ports::EventLog, ActivityInput, NewActivity};
use vitrina_store::SqliteStore;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (batches, size, tasks) = (
        args.first().copied().unwrap_or(300),
        args.get(1).copied().unwrap_or(1000),
        args.get(2).copied().unwrap_or(4),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("open store"));
    let now = Utc::now();
    let make = |b: usize| -> Vec<NewActivity> {
        (0..size)
            .map(|i| {
                let n = b * size + i;
                let input = ActivityInput {
                    user_id: Some(format!("user-{}", (n * 7919) % 100_000)),
                    activity_type: Some("view".into()),
                    event_id: std::env::var("RANDOM_IDS").ok().map(|_| uuid::Uuid::new_v4().to_string()),
                    product_id: Some(format!("product-{}", n % 1000)),
                    ..Default::default()
                };
                NewActivity::validate(input, now).expect("valid event")
            })
            .collect()
    };
    let work: Vec<Vec<Vec<NewActivity>>> =
        (0..tasks).map(|t| (t..batches).step_by(tasks).map(make).collect()).collect();
    let started = Instant::now();
    let mut handles = Vec::new();
    for mine in work {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for batch in mine {
                store.append(batch).await.expect("append");
            }
        }));
    }
    for h in handles {
        h.await.expect("task");
    }
    let secs = started.elapsed().as_secs_f64();
    println!("{} events in {secs:.2} s: {:.0} events/s", batches * size, (batches * size) as f64 / secs);
}
