//! Evaluates one configuration given as JSON on a split (for quick experiments):
//! `cargo run -p vitrina-algo --release --example experiment -- --data PATH --format F
//!  --protocol P [--seed N] [--validation] --config '{"model":"ease","lambda":300}'`
//! `--validation` scores on the validation split carved from the training data instead.

mod common;

use vitrina_algo::eval::{evaluate, ModelConfig, TrainCache, TrainData};

fn main() {
    let args = common::Args::parse();
    let (_, mut split) = args.dataset_and_split();
    if args.flag("validation") {
        split = split.validation(args.protocol(), args.seed());
    }
    let data = TrainData::from_split(&split).expect("train data");
    let mut cache = TrainCache::default(); // models shared across the `;`-separated configs
    for text in args.req("config").split(';') {
        let config: ModelConfig = serde_json::from_str(text).expect("--config is a ModelConfig");
        let t = std::time::Instant::now();
        let (model, _) = config.train_cached(&data, &mut cache, &mut |_, _| {}).expect("train");
        let m = evaluate(&model, &split);
        let cells: Vec<String> = m.iter().map(|(k, v)| format!("{k} {:.4}", v.mean)).collect();
        println!("{:.1}s {} | {}", t.elapsed().as_secs_f64(), cells.join("  "), text);
    }
}
