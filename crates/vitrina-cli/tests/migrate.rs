//! `vitrina migrate` on the real binary: a served data directory copied into PostgreSQL (or,
//! without a test server, into another directory), the report on stdout, and a server on the
//! copy answering as the original did.

mod common;

use std::process::Command;

use common::{Options, Server};
use serde_json::{json, Value};

fn vitrina(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("VITRINA_CONFIG")
        .output()
        .unwrap()
}

async fn get(c: &reqwest::Client, url: String) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_served_directory_migrates_and_the_copy_serves_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let c = reqwest::Client::new();
    let server = Server::start(&data);
    for (i, product) in ["product-2", "product-5", "product-7"].into_iter().enumerate() {
        let event = json!({"userId": "mover", "activityType": "view", "productId": product, "eventId": format!("m-{i}")});
        let res = c.post(server.url("/api/v1/activity/track")).json(&event).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 201);
    }
    let history = get(&c, server.url("/api/v1/recommendations/activity/mover?limit=10")).await;
    let models = get(&c, server.url("/api/v1/training/models")).await;
    let products = get(&c, server.url("/api/v1/catalog/products?limit=100")).await;
    assert!(server.stop().success());

    let db = vitrina_store::testing::TestDatabase::create().await;
    let to = match &db {
        Some(db) => db.url(),
        None => dir.path().join("copy").to_string_lossy().into_owned(),
    };
    let out = vitrina(&["migrate", "--from", data.to_str().unwrap(), "--to", &to]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 11, "a header and ten tables:\n{stdout}");
    assert!(lines[1..].iter().all(|l| l.ends_with("yes")), "{stdout}");
    let events = lines.iter().find(|l| l.starts_with("events")).unwrap();
    assert!(events.split_whitespace().nth(1).is_some_and(|n| n.parse::<u64>().unwrap() >= 3), "{events}");
    assert!(stderr.contains("every table matches"), "{stderr}");

    // Again: nothing is left to copy, and it still verifies.
    let again = vitrina(&["migrate", "--from", data.to_str().unwrap(), "--to", &to]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{stdout}");
    assert!(stdout.lines().skip(1).all(|l| l.split_whitespace().nth(1) == Some("0")), "{stdout}");

    let server = match &db {
        Some(db) => {
            Server::start_with(&std::env::temp_dir(), Options { store: Some(db.url()), ..Default::default() })
        }
        None => Server::start(&dir.path().join("copy")),
    };
    assert_eq!(get(&c, server.url("/api/v1/recommendations/activity/mover?limit=10")).await, history);
    assert_eq!(get(&c, server.url("/api/v1/catalog/products?limit=100")).await, products);
    let copied = get(&c, server.url("/api/v1/training/models")).await;
    assert_eq!(copied["activeVersion"], models["activeVersion"], "{copied}");
    let list = get(&c, server.url("/api/v1/recommendations/recommendations/mover?limit=5")).await;
    assert_eq!(list["success"], true, "{list}");
    assert!(!list["recommendations"].as_array().unwrap().is_empty(), "{list}");
}

#[tokio::test]
async fn migrating_into_itself_into_an_unreachable_database_or_from_a_busy_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = data.to_str().unwrap();
    let out = vitrina(&["migrate", "--from", path, "--to", path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the same store"), "{out:?}");
    let out = vitrina(&["migrate", "--from", path, "--to", "postgres://vitrina:s3cret@127.0.0.1:9/shop"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("127.0.0.1:9") && !stderr.contains("s3cret"), "{stderr}");

    let server = Server::start(&data);
    let other = dir.path().join("other");
    let out = vitrina(&["migrate", "--from", path, "--to", other.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another vitrina process"), "{stderr}");
    drop(server);
}
