//! The committed fuzz corpus (`fuzz/corpus/<target>/`) through the same functions the fuzz
//! targets call: every file returns without panicking, and the seeds that are valid inputs
//! still parse to what they hold, so a format change that breaks old artefacts or import files
//! fails here, not in a shop.

use std::{collections::BTreeMap, path::PathBuf};

use vitrina_cli::fuzzing;

fn corpus(target: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target);
    let files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("readable directory").path();
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("readable seed"))
        })
        .collect();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    files
}

/// Every seed of `target` through `run`; the named seeds must give the expected counts.
fn expect(target: &str, run: fn(&[u8]) -> usize, expected: &[(&str, usize)]) {
    let results: BTreeMap<String, usize> =
        corpus(target).into_iter().map(|(name, data)| (name, run(&data))).collect();
    for (seed, count) in expected {
        assert_eq!(results.get(*seed), Some(count), "{target}/{seed}");
    }
}

#[test]
fn event_json_seeds_validate_as_they_should() {
    expect(
        "event_json",
        fuzzing::event_json,
        &[
            ("view.json", 1),
            ("search.json", 1),
            ("purchase.json", 1),
            ("rating.json", 1),
            ("batch.json", 2),
            ("invalid.json", 0),
        ],
    );
}

#[test]
fn import_seeds_parse_every_line() {
    expect(
        "import",
        fuzzing::import,
        &[
            ("events-jsonl", 2),
            ("events-csv", 2),
            ("products-jsonl", 1),
            ("products-csv", 2),
            ("movielens", 1),
            ("movielens-titles", 2),
            ("movielens-csv-titles", 1),
        ],
    );
}

#[test]
fn artefact_and_bundle_seeds_read_and_write_back() {
    for (name, data) in corpus("artefact") {
        assert!(fuzzing::artefact(&data), "artefact seed {name} does not read");
    }
    for (name, data) in corpus("bundle") {
        assert!(fuzzing::bundle(&data), "bundle seed {name} does not read");
    }
}

#[test]
fn damaged_seeds_are_errors_not_panics() {
    // What the fuzzers do, a little of it, on every run: each seed truncated and bit-flipped.
    for (target, run) in [
        (
            "event_json",
            (|d: &[u8]| {
                let _ = fuzzing::event_json(d);
            }) as fn(&[u8]),
        ),
        ("import", |d| {
            let _ = fuzzing::import(d);
        }),
        ("artefact", |d| {
            let _ = fuzzing::artefact(d);
        }),
        ("bundle", |d| {
            let _ = fuzzing::bundle(d);
        }),
    ] {
        for data in corpus(target).into_values() {
            for cut in [1, data.len() / 3, data.len() / 2, data.len().saturating_sub(5)] {
                run(&data[..cut.min(data.len())]);
            }
            for at in (1..data.len()).step_by((data.len() / 97).max(1)) {
                let mut flipped = data.clone();
                flipped[at] ^= 0x5a;
                run(&flipped);
            }
        }
    }
}
