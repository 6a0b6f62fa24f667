//! `vitrina train`: one training job with a progress bar, either on the store (a data
//! directory: the server must not be running, the directory is locked by whoever has it open;
//! or a PostgreSQL database) or through a running server's API. The job is the server's own: same snapshot, validation gate,
//! registry record and artefact.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use vitrina_server::{
    embedded::{Embedded, EmbeddedConfig},
    training::Trigger,
};

use crate::config::Config;

#[derive(clap::Args)]
pub struct Args {
    /// Data directory of the embedded store (when no `--url` is given).
    #[arg(long, env = "VITRINA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The store: a data directory or a PostgreSQL URL (wins over `--data-dir`).
    #[arg(long, env = "VITRINA_STORE")]
    store: Option<String>,
    /// Train through a running server instead, e.g. http://127.0.0.1:8080.
    #[arg(long, conflicts_with_all = ["data_dir", "store"])]
    url: Option<String>,
    /// The training configuration: JSON as the `config` of `POST /api/v1/training/train`, or
    /// `@file.json`. Default: the defaults of that endpoint.
    #[arg(long)]
    training: Option<String>,
    /// Threads the job may use on the data directory (default: from the config file).
    #[arg(long)]
    threads: Option<usize>,
    /// The admin key to call `--url` with (once the server has keys).
    #[arg(long, env = "VITRINA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

/// Exit codes: 0 promoted, 3 rejected by the validation gate, 1 failed or cancelled.
pub async fn run(config: Config, args: Args) -> anyhow::Result<ExitCode> {
    let training = match &args.training {
        None => json!({}),
        Some(text) => {
            let text = match text.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
                None => text.clone(),
            };
            serde_json::from_str(&text).context("--training is not valid JSON")?
        }
    };
    let finished = match &args.url {
        Some(url) => through_server(url.trim_end_matches('/'), args.api_key.as_deref(), training).await?,
        None => on_store(config, &args, training).await?,
    };
    let version = finished["modelVersion"].as_str().unwrap_or("-");
    for line in ranker_lines(&finished) {
        println!("{line}");
    }
    match finished["status"].as_str() {
        Some("succeeded") => {
            println!("{version} trained, validated and promoted");
            Ok(ExitCode::SUCCESS)
        }
        Some("rejected") => {
            let reason = finished["log"].as_array().and_then(|l| {
                l.iter().filter_map(Value::as_str).find_map(|line| line.split_once("rejected: ").map(|x| x.1))
            });
            println!("{version} trained but rejected: {}", reason.unwrap_or("see the registry"));
            Ok(ExitCode::from(3))
        }
        other => {
            eprintln!(
                "training {}: {}",
                other.unwrap_or("ended"),
                finished["error"].as_str().unwrap_or("no error reported")
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What became of the learned ranker, from a finished job's log (`{time} {line}`).
pub(crate) fn ranker_lines(job: &Value) -> Vec<String> {
    let log = job["log"].as_array().into_iter().flatten().filter_map(Value::as_str);
    log.filter_map(|l| l.split_once(' ').map(|x| x.1))
        .filter(|l| l.starts_with("learned ranker"))
        .map(str::to_string)
        .collect()
}

fn bar() -> ProgressBar {
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {percent:>3}% {msg}")
            .expect("valid template"),
    );
    bar
}

/// Shows a job's phase and progress.
fn show(bar: &ProgressBar, job: &Value) {
    bar.set_position((job["progress"].as_f64().unwrap_or(0.0) * 1000.0) as u64);
    bar.set_message(job["phase"].as_str().unwrap_or("").to_string());
}

async fn on_store(config: Config, args: &Args, training: Value) -> anyhow::Result<Value> {
    let training: vitrina_engine::TrainingConfig =
        serde_json::from_value(training).context("--training is not a training configuration")?;
    training.validate().map_err(|e| anyhow::anyhow!("--training: {e}"))?;
    let mut storage = config.storage.clone();
    storage.override_with(args.store.as_deref(), args.data_dir.as_deref());
    let open = storage.open_options();
    let mut schedule = config.training.clone();
    schedule.threads = args.threads.unwrap_or(schedule.threads).max(1);
    let embedded = Embedded::start(EmbeddedConfig {
        pool_size: open.pool_size,
        store_timeout: open.timeout,
        demo: false,
        ranking: config.ranking.clone(),
        schedule,
        serve: false,
        ..EmbeddedConfig::at(storage.location())
    })
    .await?;
    let state = embedded.state.clone();
    let job = state.training.submit(training, Trigger::Cli)?;
    let (training, ports, engine) = (state.training.clone(), state.ports.clone(), state.engine.clone());
    let worker = tokio::spawn(async move { training.run_once(&ports, &engine).await });
    let bar = bar();
    while !worker.is_finished() {
        if let Some(current) = state.training.status().current {
            show(&bar, &serde_json::to_value(&current)?);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.await?;
    bar.finish_and_clear();
    let status = state.training.status();
    let finished = status.recent.into_iter().find(|j| j.job_id == job.job_id).context("the job vanished")?;
    drop(state);
    embedded.shutdown().await?;
    Ok(serde_json::to_value(finished)?)
}

pub(crate) async fn through_server(
    url: &str,
    api_key: Option<&str>,
    training: Value,
) -> anyhow::Result<Value> {
    let client = reqwest::Client::new();
    let auth = |r: reqwest::RequestBuilder| match api_key {
        Some(key) => r.bearer_auth(key),
        None => r,
    };
    let res = auth(client.post(format!("{url}/api/v1/training/train")))
        .json(&json!({ "config": training }))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    let body: Value = res.json().await.context("the server's answer is not JSON")?;
    if !status.is_success() {
        // The error shape: {"success": false, "error": kind, "message", "code", "details"}.
        bail!("the server refused the job ({status}): {}", body["message"].as_str().unwrap_or("no message"));
    }
    let job_id = body["job"]["jobId"].as_str().context("no jobId in the answer")?.to_string();
    let bar = bar();
    loop {
        let status: Value =
            auth(client.get(format!("{url}/api/v1/training/status"))).send().await?.json().await?;
        if status["current"]["jobId"] == job_id.as_str() {
            show(&bar, &status["current"]);
        } else if let Some(done) =
            status["recent"].as_array().and_then(|r| r.iter().find(|j| j["jobId"] == job_id.as_str()))
        {
            bar.finish_and_clear();
            return Ok(done.clone());
        } else {
            bar.set_message("queued");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
