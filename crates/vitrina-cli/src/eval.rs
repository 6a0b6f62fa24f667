//! `vitrina eval`: offline evaluation of the models on a dataset file, with a progress bar;
//! a table or one JSON document.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use vitrina_algo::eval::{run_eval_on_split, DataFormat, Dataset, EvalOptions, Protocol, Report, Split};
use vitrina_algo::ltr::RankerParams;
use vitrina_engine::{
    config::{overlaid, RankerChoice},
    offline::{evaluate_engine, LearnedRanking},
    RankingConfig, TrainingConfig,
};

#[derive(clap::Args)]
pub struct Args {
    /// The ratings or interactions file.
    #[arg(long)]
    data: PathBuf,
    /// movielens (u.data), movielens-csv (ratings.csv) or user-item (`user item [time]` per
    /// line).
    #[arg(long, default_value = "movielens")]
    format: String,
    /// leave-last-out (HR@10, NDCG@10, HR@20) or random-80-20 (Recall@20, NDCG@20), or both
    /// separated by a comma (each evaluated in turn).
    #[arg(long, default_value = "leave-last-out", value_delimiter = ',')]
    protocol: Vec<String>,
    /// Comma-separated models (popularity, time-popularity, item-knn, als, ease, rp3beta,
    /// transitions, bridge, blend, and `engine`: the serving engine itself — candidates,
    /// blend and rules with the default ranking config reading up to 1,000 events of a
    /// visitor and the default training config without time decay, see `--engine-config`
    /// and `--ranking-config`); default: all.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Search hyperparameters on a validation split carved from the training data.
    #[arg(long)]
    tune: bool,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The `engine` model's training config as JSON (as the `config` of `POST
    /// /api/v1/training/train`), merged over eval's default, e.g.
    /// `{"ease":{"sessionSeconds":3600}}`.
    #[arg(long, value_name = "JSON")]
    engine_config: Option<String>,
    /// The `engine` model's ranking config as JSON (the `[ranking]` section of the config
    /// file, camelCase), merged over eval's default, e.g. `{"rerankDepth":200,
    /// "weights":{"whole_history":1}}`. `ranker` comes from `--ranker`, and lists are always
    /// scored with seen items excluded and no exploration slot, so those three keys are
    /// refused.
    #[arg(long, value_name = "JSON")]
    ranking_config: Option<String>,
    /// Also write the split that is scored to DIR (`train.txt`, `test.txt`, and the
    /// validation split `val_train.txt`, `val_test.txt`, with the file's ids: `user item
    /// time` training lines, the time in seconds, and `user item` test lines), so a peer can
    /// be trained and scored on exactly the same data.
    #[arg(long, value_name = "DIR")]
    export_split: Option<PathBuf>,
    /// What orders the `engine` model's candidates: `blend` (the weighted sum of the
    /// sources' scores) or `learned` (a LambdaMART ranker trained first on lists from an
    /// engine trained on the validation split carved from the training data; it orders the
    /// lists only if it beats the blend on validation users, each judged by one of four
    /// cross-fitted rankers that did not train on them, by more than two standard errors of
    /// the per-visitor NDCG difference, and does not lose on its own judged quarter; the
    /// JSON report's
    /// `learnedRanker.serves` says which). Default: as the training config says
    /// (`ranker.enabled`, true unless `--engine-config '{"ranker":{"enabled":false}}'`).
    #[arg(long, value_parser = ["blend", "learned"])]
    ranker: Option<String>,
    /// Print one JSON document instead of a table (an array of them, one per protocol, when
    /// more than one protocol is evaluated).
    #[arg(long)]
    json: bool,
    /// Also write the evaluation as one self-contained HTML page: per protocol, a table of
    /// every model's metrics and a chart per metric with 95 % intervals.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
}

/// Writes `split` and its validation split into `dir` (created if missing).
fn export_split(
    dir: &Path,
    ds: &Dataset,
    split: &Split,
    protocol: Protocol,
    seed: u64,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    split
        .export_files(ds, protocol, seed, |name| File::create(dir.join(name)).map(BufWriter::new))
        .with_context(|| format!("writing the split to {}", dir.display()))?;
    eprintln!(
        "wrote the split ({} training interactions, {} test users) and its validation split to {}",
        split.n_train(),
        split.test_users().count(),
        dir.display()
    );
    Ok(())
}

/// The engine's training config for evaluation: the default without time decay (rating
/// datasets span years: a shop's per-day decay would erase most of them), then `overrides`
/// merged in field by field.
fn engine_training(overrides: Option<&str>) -> anyhow::Result<TrainingConfig> {
    let training = TrainingConfig { time_decay: 1.0, ..TrainingConfig::default() };
    let training = merged(training, overrides, "--engine-config", &[])?;
    training.validate().map_err(|e| anyhow::anyhow!("--engine-config: {}: {}", e.field, e.message))?;
    Ok(training)
}

/// The engine's ranking config for evaluation: the default reading up to 1,000 events of a
/// visitor (their whole training history in the open datasets), then `overrides` merged in
/// field by field; `ranker` comes from `--ranker`.
fn engine_ranking(overrides: Option<&str>, ranker: RankerChoice) -> anyhow::Result<RankingConfig> {
    let ranking = RankingConfig { history_events: 1000, ..RankingConfig::default() };
    // `--ranker` sets the ranker; lists are scored with seen items excluded and no exploration
    let refused = ["ranker", "excludeSeen", "exploration"];
    let ranking = RankingConfig { ranker, ..merged(ranking, overrides, "--ranking-config", &refused)? };
    ranking.validate().map_err(|e| anyhow::anyhow!("--ranking-config: {}: {}", e.field, e.message))?;
    Ok(ranking)
}

/// `base` with the JSON object `overrides` (the value of `flag`) merged in field by field;
/// a `refused` key is an error (eval sets it).
fn merged<T: serde::Serialize + serde::de::DeserializeOwned>(
    base: T,
    overrides: Option<&str>,
    flag: &str,
    refused: &[&str],
) -> anyhow::Result<T> {
    let Some(overrides) = overrides else { return Ok(base) };
    let overrides: serde_json::Value =
        serde_json::from_str(overrides).with_context(|| format!("{flag} is not JSON"))?;
    let Some(overrides) = overrides.as_object() else {
        anyhow::bail!("{flag} must be a JSON object");
    };
    if let Some(key) = refused.iter().find(|k| overrides.contains_key(**k)) {
        anyhow::bail!("{flag}: {key} is set by eval");
    }
    overlaid(&base, overrides).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let format: DataFormat = args.format.parse()?;
    let protocols = args.protocol.iter().map(|p| p.trim().parse()).collect::<Result<Vec<Protocol>, _>>()?;
    anyhow::ensure!(
        args.export_split.is_none() || protocols.len() == 1,
        "--export-split writes one split: give one --protocol"
    );
    if let Some(file) = &args.report {
        // Before hours of evaluation, not after: a page that cannot be written. Opened
        // without truncating: the file is replaced only once the evaluation is done.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .with_context(|| format!("creating {}", file.display()))?;
    }
    let with_engine = args.models.is_empty() || args.models.iter().any(|m| m.trim() == "engine");
    let models = args
        .models
        .iter()
        .filter(|m| m.trim() != "engine")
        .map(|m| m.trim().parse())
        .collect::<Result<Vec<_>, _>>()?;
    let only_engine = with_engine && models.is_empty() && !args.models.is_empty();
    let training = engine_training(args.engine_config.as_deref())?;
    let learned = args.ranker.as_deref().map_or(training.ranker.enabled, |r| r == "learned");
    let ranker = if learned { RankerChoice::Learned } else { RankerChoice::Blend };
    let ranking = engine_ranking(args.ranking_config.as_deref(), ranker)?;
    let data =
        std::fs::read_to_string(&args.data).with_context(|| format!("reading {}", args.data.display()))?;
    let ds = Dataset::parse(&data, format)?;
    anyhow::ensure!(ds.n_interactions() > 0, "the dataset has no interactions");
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg} {bar:30} {pos}/{len}")
            .expect("static template"),
    );
    let mut reports = Vec::new();
    for &protocol in &protocols {
        let opts = EvalOptions {
            dataset: args.data.display().to_string(),
            format,
            protocol,
            models: models.clone(),
            tune: args.tune,
            seed: args.seed,
        };
        let engine = with_engine.then_some(EngineRun { training: &training, ranking: &ranking });
        reports.push(evaluate(&args, &ds, &opts, only_engine, engine, &bar)?);
    }
    bar.finish_and_clear();
    if let Some(file) = &args.report {
        let page = vitrina_cli::eval_html::html(&reports, &chrono::Utc::now().to_rfc3339());
        std::fs::write(file, page).with_context(|| format!("writing {}", file.display()))?;
    }
    if args.json {
        match reports.as_slice() {
            [one] => println!("{}", one.to_json()),
            many => println!("{}", serde_json::to_string_pretty(many)?),
        }
    } else {
        for report in &reports {
            print!("{}", report.table());
        }
    }
    if let Some(file) = &args.report {
        eprintln!("report written to {}", file.display());
    }
    Ok(())
}

/// The engine model's configs, when `engine` is among the models.
struct EngineRun<'a> {
    training: &'a TrainingConfig,
    ranking: &'a RankingConfig,
}

/// One protocol's evaluation: its split, the library models, then the engine.
fn evaluate(
    args: &Args,
    ds: &Dataset,
    opts: &EvalOptions,
    only_engine: bool,
    engine: Option<EngineRun<'_>>,
    bar: &ProgressBar,
) -> anyhow::Result<Report> {
    let protocol = opts.protocol;
    let split = Split::new(&ds.sequences, ds.n_items(), protocol, args.seed);
    if let Some(dir) = &args.export_split {
        export_split(dir, ds, &split, protocol, args.seed)?;
    }
    let mut report = if only_engine {
        Report {
            dataset: opts.dataset.clone(),
            protocol,
            seed: args.seed,
            tuned: false,
            n_users: split.n_users(),
            n_items: split.n_items,
            n_train: split.n_train(),
            n_test_users: split.test_users().count(),
            models: Vec::new(),
        }
    } else {
        run_eval_on_split(opts, &split, &mut |p| {
            bar.set_message(format!("{} {}", p.stage, p.model));
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        })?
    };
    if let Some(EngineRun { training, ranking }) = engine {
        bar.set_length(1000);
        let mut progress = |phase: &str, f: f32| {
            bar.set_message(format!("train engine ({phase})"));
            bar.set_position((f * 1000.0) as u64);
            true
        };
        // EASE covers the whole catalogue here, as in the `ease` model.
        let mut training = training.clone();
        training.ease.max_items = training.ease.max_items.max(split.n_items.min(30_000));
        let validation = split.validation(protocol, args.seed);
        let learned = (ranking.ranker == RankerChoice::Learned).then(|| LearnedRanking {
            validation: &validation,
            params: RankerParams { ndcg_at: protocol.list_depth(), ..training.ranker.params() },
        });
        report.models.push(evaluate_engine(ds, &split, &training, ranking, learned.as_ref(), &mut progress)?);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_config_merges_field_by_field_over_eval_defaults() {
        let c = engine_training(Some(r#"{"ease":{"sessionSeconds":180},"algorithms":["ease"]}"#)).unwrap();
        assert_eq!((c.ease.session_seconds, c.ease.lambda), (180.0, TrainingConfig::default().ease.lambda));
        assert_eq!((c.time_decay, c.algorithms.as_slice()), (1.0, ["ease".to_string()].as_slice()));
        assert_eq!(engine_training(None).unwrap().time_decay, 1.0);
    }

    #[test]
    fn export_split_writes_the_scored_split_that_reads_back_as_user_item_data() {
        let dir = std::env::temp_dir().join(format!("vitrina-export-{}", std::process::id()));
        let mut data = String::new();
        for u in 1..=6 {
            for (k, item) in [3, 1, 4, 5, 9].iter().enumerate() {
                data.push_str(&format!("{u}\t{}\t4\t{}\n", item + u, 100 * k));
            }
        }
        let ds = Dataset::parse(&data, DataFormat::Movielens).unwrap();
        let split = Split::new(&ds.sequences, ds.n_items(), Protocol::LeaveLastOut, 42);
        export_split(&dir.join("nested"), &ds, &split, Protocol::LeaveLastOut, 42).unwrap();
        let read = |name: &str| std::fs::read_to_string(dir.join("nested").join(name)).unwrap();
        let (train, test) = (read("train.txt"), read("test.txt"));
        assert_eq!(train.lines().count(), split.n_train());
        // leave-last-out: each user's latest rating (item 9 + u at ts 400) is the test item
        let expected: String = (1..=6).map(|u| format!("{u} {}\n", 9 + u)).collect();
        assert_eq!(test, expected);
        let back = Dataset::parse(&train, DataFormat::UserItem).unwrap();
        assert_eq!(back.n_interactions(), split.n_train());
        // each training line carries its time: user 1's first four ratings, at 0–300 s
        let times: Vec<i64> = back.sequences[0].iter().map(|x| x.1).collect();
        assert_eq!(times, [0, 100, 200, 300]);
        assert!(!read("val_train.txt").is_empty() && !read("val_test.txt").is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ranking_config_merges_over_eval_defaults_and_ranker_comes_from_the_flag() {
        let r = engine_ranking(
            Some(r#"{"rerankDepth":200,"weights":{"whole_history":1}}"#),
            RankerChoice::Learned,
        )
        .unwrap();
        assert_eq!((r.rerank_depth, r.history_events, r.ranker), (200, 1000, RankerChoice::Learned));
        assert_eq!(r.weights.get(vitrina_core::recommend::Source::WholeHistory), 1.0);
        assert_eq!(r.recency, RankingConfig::default().recency);
        for (bad, says) in [
            ("[1]", "--ranking-config must be a JSON object"),
            ("{", "--ranking-config is not JSON"),
            (r#"{"historyEvents":0}"#, "historyEvents"),
            (r#"{"weights":{"colour":1}}"#, "weights.colour"),
            (r#"{"colour":1}"#, "unknown field"),
            (r#"{"ranker":"learned"}"#, "ranker is set by eval"),
            (r#"{"exploration":0.2}"#, "exploration is set by eval"),
        ] {
            let err = format!("{:#}", engine_ranking(Some(bad), RankerChoice::Blend).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_bad_engine_config_is_refused_naming_the_problem() {
        for (bad, says) in [
            ("[1]", "must be a JSON object"),
            ("{", "is not JSON"),
            (r#"{"ease":{"sessionFloor":2}}"#, "config.ease"),
            (r#"{"colour":1}"#, "--engine-config"),
        ] {
            let err = format!("{:#}", engine_training(Some(bad)).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
