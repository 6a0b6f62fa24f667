//! Runs `vitrina eval` without the CLI:
//! `cargo run -p vitrina-algo --release --example eval -- --data PATH --format movielens
//!  [--protocol leave-last-out|random-80-20] [--models ease,blend] [--tune] [--seed N] [--json]`

mod common;

use vitrina_algo::eval::{run_eval, EvalOptions};

fn main() {
    let args = common::Args::parse();
    let path = args.req("data");
    let data = std::fs::read_to_string(path).expect("read --data");
    let models = args
        .get("models")
        .map(|m| m.split(',').map(|k| k.trim().parse().expect("--models")).collect())
        .unwrap_or_default();
    let opts = EvalOptions {
        dataset: path.to_owned(),
        format: args.format(),
        protocol: args.protocol(),
        models,
        tune: args.flag("tune"),
        seed: args.seed(),
    };
    let mut last = String::new();
    let report = run_eval(&opts, &data, &mut |p| {
        let line = format!("{} {}", p.stage, p.model);
        if line != last {
            eprintln!("{line}");
            last = line;
        }
    })
    .unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    if args.flag("json") {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
    }
}
