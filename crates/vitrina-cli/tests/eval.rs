//! `vitrina eval` as a user runs it: both protocols at once, a table each, and the HTML report.

use std::process::Command;

/// A small `user item` file: 30 users in three taste groups of 8 items each, 6 items a user.
fn fixture(dir: &std::path::Path) -> std::path::PathBuf {
    let mut lines = String::new();
    for u in 0..30 {
        let group = u % 3;
        for k in 0..6 {
            let item = group * 8 + (u + k) % 8;
            lines.push_str(&format!("u{u} i{item}\n"));
        }
    }
    let path = dir.join("interactions.txt");
    std::fs::write(&path, lines).unwrap();
    path
}

#[test]
fn both_protocols_are_evaluated_and_written_as_one_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    let page = dir.path().join("report.html");
    let out = Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["eval", "--format", "user-item", "--models", "popularity,item-knn"])
        .args(["--protocol", "leave-last-out,random-80-20", "--report"])
        .arg(&page)
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("protocol leave-last-out") && table.contains("protocol random-80-20"), "{table}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<section>").count(), 2);
    for model in ["popularity", "item-knn"] {
        // A table row per protocol, and a bar in every chart.
        assert_eq!(html.matches(&format!("<tr><td>{model}</td><td class=\"num\">")).count(), 2, "{model}");
    }
    // Leave-last-out reports three metrics and random-80-20 two: a chart each.
    assert_eq!(html.matches("<figure>").count(), 5);
    assert!(!html.contains("<script") && !html.contains("src="));
    assert!(String::from_utf8_lossy(&out.stderr).contains("report written to"));
}

#[test]
fn a_report_that_cannot_be_written_is_refused_before_evaluating() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["eval", "--format", "user-item", "--models", "popularity", "--report"])
        .arg(dir.path().join("no-such-dir").join("report.html"))
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("creating"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn export_split_with_two_protocols_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = fixture(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["eval", "--format", "user-item", "--models", "popularity"])
        .args(["--protocol", "leave-last-out,random-80-20", "--export-split"])
        .arg(dir.path().join("split"))
        .arg("--data")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--export-split writes one split"), "{err}");
    assert!(!dir.path().join("split").exists());
}
