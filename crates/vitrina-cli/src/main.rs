//! `vitrina`: the one binary. `serve` runs the embedded service; `import` loads events and
//! products from files; `eval` measures the models offline; `train` runs one training job;
//! `gen` writes a synthetic shop;
//! `bench` drives load against a running server; `simulate` runs a simulated shop against
//! one and measures the learned ranker against the blend in an A/B experiment.

mod bench;
mod config;
mod eval;
mod gen;
mod import;
mod keys;
mod migrate;
mod serve;
mod simulate;
mod train;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// mimalloc: the service allocates many small, short-lived buffers per request across threads;
/// the system allocator spent ~20 % of the ingest path's CPU in malloc/free (perf, see
/// docs/BENCHMARKS.md). The `system-allocator` feature leaves it out, so that heap profilers
/// which hook malloc (heaptrack, valgrind) see every allocation.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "vitrina", version, about = "Real-time product recommendations for online shops")]
struct Cli {
    /// TOML config file (default: ./vitrina.toml when present).
    #[arg(long, global = true, env = "VITRINA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service with every role in one process (embedded store, bus and cache).
    Serve(serve::Args),
    /// Import events or products from CSV, JSONL or MovieLens files into the data directory.
    Import(import::Args),
    /// Evaluate the recommendation models offline on a dataset (MovieLens or `user item` lines).
    Eval(eval::Args),
    /// Generate a synthetic shop (products.csv and events.csv for `vitrina import`).
    Gen(gen::Args),
    /// Train a model with a progress bar, on the data directory or through a running server
    /// (exit code 0: promoted, 3: rejected by the validation gate, 1: failed).
    Train(train::Args),
    /// Copy a store to another backend (a data directory to PostgreSQL, or back), resumably,
    /// and verify every table (exit code 0: all match, 1: some differ).
    Migrate(migrate::Args),
    /// Create, list and revoke API keys.
    #[command(subcommand)]
    Keys(keys::Command),
    /// Load generators for benchmarks against a running server.
    #[command(subcommand)]
    Bench(bench::Command),
    /// Run a simulated shop against a running server: a training job without the learned
    /// ranker, a day served by the blend, a training job with it, then an A/B experiment of
    /// the ranker against the blend (exit code 3 when `--require-ratio` is not met, 1 when the
    /// run fails).
    Simulate(simulate::Args),
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let config = config::Config::load(cli.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(config, args)),
        Command::Import(args) => runtime.block_on(import::run(config, args)),
        Command::Train(args) => return runtime.block_on(train::run(config, args)),
        Command::Bench(cmd) => runtime.block_on(bench::run(cmd)),
        Command::Keys(cmd) => runtime.block_on(keys::run(config, cmd)),
        Command::Migrate(args) => return runtime.block_on(migrate::run(args)),
        Command::Simulate(args) => return runtime.block_on(simulate::run(args)),
        Command::Eval(args) => eval::run(args),
        Command::Gen(args) => gen::run(args),
    }?;
    Ok(ExitCode::SUCCESS)
}
