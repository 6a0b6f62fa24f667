//! `vitrina simulate` against a real server: the simulated shop's catalogue and history, a
//! day served by the blend as an A/A experiment, a training job that learns the ranker from
//! the lists shown after its cut and the outcomes attributed to them, and an A/B experiment
//! of the learned ranker against the blend, judged by the experiment's results.

mod common;

use std::process::Command;

use common::{Options, Server};
use serde_json::Value;

#[test]
fn a_simulated_day_trains_the_ranker_on_the_lists_shown_and_the_ab_is_judged_over_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        Server::start_with(dir.path(), Options { args: vec!["--no-demo".into()], ..Default::default() });
    // --require-ratio 100 cannot be met: the run completes, prints its summary and exits 3
    let out = Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["simulate", "--url", &server.base, "--require-ratio", "100"])
        .args([
            "--visitors",
            "500",
            "--products",
            "150",
            "--day-visits",
            "3000",
            "--experiment-visits",
            "3000",
        ])
        .env_remove("VITRINA_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("required: ≥ 100 with the interval above 0"), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();

    // The job read the lists shown after its cut and trained a ranker on them.
    let lines: Vec<&str> =
        summary["ranker"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    let shown = lines.iter().find_map(|l| l.strip_prefix("learned ranker: ")?.split_once(" of the "));
    let (with_lists, drawn) = shown.expect("a line on the lists shown after the cut");
    let drawn: usize = drawn.split(' ').next().unwrap().parse().unwrap();
    let with_lists: usize = with_lists.parse().unwrap();
    assert!(drawn >= 120 && with_lists * 10 >= drawn * 9, "{lines:?}");
    assert!(
        lines.iter().any(|l| l.contains(" lists, ") && l.contains(" trees from ") && l.contains("; NDCG ")),
        "{lines:?}"
    );

    // Day one was an A/A test of the blend: both halves served, and their CTRs are within
    // 40 % of each other. Each half has some 1,200 clicks from about 250 visitors (the unit
    // of assignment, with some 60 items each): a standard error of the ratio near 4 % with
    // independent items, up to about 8 % counting each visitor's items as correlated, so
    // 40 % is five or more standard errors and only a broken split or attribution fails it.
    let day = summary["dayOne"].as_array().unwrap();
    assert!(day.iter().all(|v| v["lists"].as_u64().unwrap() > 1_000), "{day:?}");
    assert!(day.iter().all(|v| v["clicks"].as_u64().unwrap() > 500), "{day:?}");
    let ctr = |v: &Value| v["ctr"]["value"].as_f64().unwrap();
    assert!((ctr(&day[0]) / ctr(&day[1]) - 1.0).abs() < 0.4, "the A/A halves disagree: {day:?}");

    // The A/B: both variants served, and the summary's ratio is the experiment's own.
    let variants = summary["variants"].as_array().unwrap();
    assert_eq!(
        variants.iter().map(|v| v["name"].as_str().unwrap()).collect::<Vec<_>>(),
        ["blend", "learned"]
    );
    assert!(variants.iter().all(|v| v["lists"].as_u64().unwrap() > 1_000), "{variants:?}");
    let ratio = summary["ctrRatio"].as_f64().unwrap();
    assert!((ratio - ctr(&variants[1]) / ctr(&variants[0])).abs() < 1e-9);
    let d = &summary["difference"];
    assert!(d["low"].as_f64().unwrap() < d["value"].as_f64().unwrap());
}

#[test]
fn bad_sizes_are_refused_before_any_request() {
    // nothing listens on port 9: a run that got past the checks would fail to connect instead
    for (flag, value, says) in [
        ("--visitors", "0", "must be at least 1"),
        ("--limit", "0", "must be at least 1"),
        ("--random-ctr", "0.5", "--random-ctr must be above 0 and at most 0.2"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_vitrina"))
            .args(["simulate", "--url", "http://127.0.0.1:9", flag, value])
            .env_remove("VITRINA_API_KEY")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag} {value}: {stderr}");
        assert!(stderr.contains(says) && !stderr.contains("cannot reach"), "{flag} {value}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}
