//! `vitrina eval`: offline evaluation of the models on a dataset file, with a progress bar;
//! a table or one JSON document.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use vitrina_algo::eval::{run_eval, DataFormat, EvalOptions, Protocol};

#[derive(clap::Args)]
pub struct Args {
    /// The ratings or interactions file.
    #[arg(long)]
    data: PathBuf,
    /// movielens (u.data), movielens-csv (ratings.csv) or user-item (`user item` per line).
    #[arg(long, default_value = "movielens")]
    format: String,
    /// leave-last-out (HR@10, NDCG@10, HR@20) or random-80-20 (Recall@20, NDCG@20).
    #[arg(long, default_value = "leave-last-out")]
    protocol: String,
    /// Comma-separated models (popularity, time-popularity, item-knn, als, ease, rp3beta,
    /// transitions, bridge, blend); default: all.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Search hyperparameters on a validation split carved from the training data.
    #[arg(long)]
    tune: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let format: DataFormat = args.format.parse()?;
    let protocol: Protocol = args.protocol.parse()?;
    let models = args.models.iter().map(|m| m.trim().parse()).collect::<Result<Vec<_>, _>>()?;
    let data =
        std::fs::read_to_string(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let opts = EvalOptions {
        dataset: args.data.display().to_string(),
        format,
        protocol,
        models,
        tune: args.tune,
        seed: args.seed,
    };
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg} {bar:30} {pos}/{len}")
            .expect("static template"),
    );
    let report = run_eval(&opts, &data, &mut |p| {
        bar.set_message(format!("{} {}", p.stage, p.model));
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    })?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.table());
    }
    Ok(())
}
