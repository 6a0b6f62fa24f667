//! Safe to expose, through the real binary: API keys and scopes on every route group, the
//! non-loopback refusal, rate limits, cross-site writes, keys kept out of the logs, and
//! erasure that leaves nothing of the visitor in the data directory.

mod common;

use std::process::Command;

use common::{Options, Server};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

async fn call(
    c: &Client,
    server: &Server,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c.request(method, server.url(path));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn get_json(c: &Client, url: String) -> Value {
    c.get(url).send().await.unwrap().json().await.unwrap()
}

#[track_caller]
fn assert_error(res: &(StatusCode, Value), status: u16, kind: &str) {
    let (got, body) = res;
    assert_eq!(got.as_u16(), status, "{body}");
    assert_eq!(
        (body["success"].clone(), body["error"].clone(), body["code"].clone()),
        (json!(false), json!(kind), json!(status)),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

async fn create_key(c: &Client, server: &Server, admin: Option<&str>, scope: &str) -> String {
    let (s, body) = call(
        c,
        server,
        Method::POST,
        "/api/v1/keys",
        admin,
        Some(json!({"scope": scope, "name": format!("{scope} key")})),
    )
    .await;
    assert_eq!(s.as_u16(), 201, "{body}");
    assert_eq!(body["apiKey"]["scope"], scope);
    body["key"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_route_group_needs_a_key_of_its_scope_once_keys_exist() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let server = Server::start_with(
        &dir.path().join("data"),
        Options { env: vec![("RUST_LOG", "debug")], log: Some(&log), ..Default::default() },
    );
    let c = Client::new();

    // The demo on 127.0.0.1 works without a key until the first key exists.
    assert_eq!(
        call(&c, &server, Method::GET, "/api/v1/recommendations/recommendations/user-1", None, None).await.0,
        200
    );
    // …to requests addressed to localhost only: a page that rebinds its own name to
    // 127.0.0.1 (DNS rebinding) gets nothing, not even the first admin key.
    let rebound = c
        .post(server.url("/api/v1/keys"))
        .header("host", "evil.example:8080")
        .json(&json!({"scope": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 403);
    let admin = create_key(&c, &server, None, "admin").await;
    let read = create_key(&c, &server, Some(&admin), "read").await;
    let track = create_key(&c, &server, Some(&admin), "track").await;
    assert_error(
        &call(&c, &server, Method::POST, "/api/v1/keys", None, Some(json!({"scope": "admin"}))).await,
        401,
        "unauthorized",
    );

    // Open routes stay open.
    for path in ["/health", "/openapi.json", "/docs/"] {
        assert_eq!(call(&c, &server, Method::GET, path, None, None).await.0, 200, "{path}");
    }
    let view = json!({"userId": "user-1", "activityType": "view", "productId": "product-2"});
    // (method, path, body, the scope it needs)
    let routes: Vec<(Method, &str, Option<Value>, &str)> = vec![
        (Method::POST, "/api/v1/activity/track", Some(view.clone()), "track"),
        (Method::POST, "/api/v1/activity/track/batch", Some(json!({"events": [view]})), "track"),
        (Method::GET, "/api/v1/recommendations/recommendations/user-1?limit=3", None, "read"),
        (Method::GET, "/api/v1/recommendations/activity/user-1", None, "read"),
        (Method::GET, "/api/v1/recommendations/stats/user-1", None, "read"),
        (Method::GET, "/api/v1/recommendations/similar/product-1", None, "read"),
        (Method::GET, "/api/v1/recommendations/popular", None, "read"),
        (Method::POST, "/api/v1/recommendations/session", Some(json!({"productIds": ["product-1"]})), "read"),
        (Method::GET, "/api/v1/catalog/products", None, "read"),
        (Method::GET, "/api/v1/catalog/products/product-1", None, "read"),
        (Method::GET, "/api/v1/engine/health", None, "read"),
        (Method::GET, "/metrics", None, "read"),
        (Method::PATCH, "/api/v1/catalog/products/product-3", Some(json!({"inStock": true})), "admin"),
        (Method::GET, "/api/v1/users", None, "admin"),
        (Method::GET, "/api/v1/users/user-1/export", None, "admin"),
        (Method::GET, "/api/v1/training/status", None, "admin"),
        (Method::GET, "/api/v1/training/models", None, "admin"),
        (Method::GET, "/api/v1/experiments", None, "admin"),
        (Method::GET, "/api/v1/keys", None, "admin"),
    ];
    let keys = [("read", read.as_str()), ("track", track.as_str()), ("admin", admin.as_str())];
    for (method, path, body, needs) in &routes {
        let none = call(&c, &server, method.clone(), path, None, body.clone()).await;
        assert_error(&none, 401, "unauthorized");
        let bad = call(&c, &server, method.clone(), path, Some("vk_not-a-key"), body.clone()).await;
        assert_error(&bad, 401, "unauthorized");
        for (scope, key) in keys {
            let (status, answer) = call(&c, &server, method.clone(), path, Some(key), body.clone()).await;
            if scope == *needs || scope == "admin" {
                assert!(status.is_success(), "{method} {path} with a {scope} key: {status} {answer}");
            } else {
                assert_error(&(status, answer), 403, "forbidden");
            }
        }
    }
    // X-API-Key works like Bearer.
    let res =
        c.get(server.url("/api/v1/recommendations/popular")).header("X-API-Key", &read).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // A revoked key is refused from the next request on.
    let (_, listed) = call(&c, &server, Method::GET, "/api/v1/keys", Some(&admin), None).await;
    let keys_listed = listed["keys"].as_array().unwrap();
    assert_eq!(keys_listed.len(), 3);
    assert!(!listed.to_string().contains(&read), "a listing never shows a key");
    let read_id =
        keys_listed.iter().find(|k| k["scope"] == "read").unwrap()["id"].as_str().unwrap().to_string();
    let (s, revoked) =
        call(&c, &server, Method::DELETE, &format!("/api/v1/keys/{read_id}"), Some(&admin), None).await;
    assert_eq!((s.as_u16(), revoked["apiKey"]["active"].clone()), (200, json!(false)), "{revoked}");
    assert_error(
        &call(&c, &server, Method::GET, "/api/v1/recommendations/popular", Some(&read), None).await,
        401,
        "unauthorized",
    );

    // A cross-site text/plain POST (what any web page can send) changes nothing.
    for origin in [None, Some("https://evil.example")] {
        let mut req = c
            .post(server.url("/api/v1/training/rollback"))
            .bearer_auth(&admin)
            .header("content-type", "text/plain")
            .body("{}");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let res = req.send().await.unwrap();
        assert!(matches!(res.status().as_u16(), 403 | 415), "{}", res.status());
    }
    let res = c
        .post(server.url("/api/v1/training/rollback"))
        .bearer_auth(&admin)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a cross-site write without a body is refused too");
    let (_, models) = call(&c, &server, Method::GET, "/api/v1/training/models", Some(&admin), None).await;
    assert_eq!(models["activeVersion"], "v1", "{models}");

    server.stop();
    // Keys and request bodies never reach the logs (debug level included).
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.contains("request"), "the access log was written: {written}");
    for secret in [&admin, &read, &track] {
        assert!(!written.contains(secret.as_str()), "a key reached the log");
    }
    assert!(!written.contains("user-1"), "access logs carry no visitor ids");
    assert!(!written.contains("product-2"), "request bodies never reach the log");
}

fn vitrina(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("VITRINA_CONFIG")
        .env_remove("VITRINA_API_KEY")
        .output()
        .unwrap()
}

#[tokio::test]
async fn a_public_address_needs_a_key_or_an_explicit_insecure_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let refused = vitrina(&["serve", "--addr", "0.0.0.0:0", "--data-dir", data]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("refusing to serve on") && stderr.contains("--insecure-no-auth"), "{stderr}");

    // The CLI makes a key on the stopped server's data directory: the key alone on stdout.
    let out = vitrina(&["keys", "create", "--data-dir", data, "--scope", "read", "--name", "storefront"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout).unwrap();
    let key = key.trim_end_matches('\n');
    assert!(key.starts_with("vk_") && !key.contains(char::is_whitespace), "{key:?}");
    let listed = vitrina(&["keys", "list", "--data-dir", data]);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains("read") && listed.contains("storefront") && !listed.contains(key), "{listed}");
    let bad = vitrina(&["keys", "create", "--data-dir", data, "--scope", "root"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("root"));

    // With a key, the public address is served, and the key works.
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["serve", "--addr", "0.0.0.0:0", "--data-dir", data])
        .env("RUST_LOG", "warn")
        .env_remove("VITRINA_CONFIG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let line = lines.next().expect("a listening line").unwrap();
    let port = line.rsplit(':').next().unwrap().trim().to_string();
    let c = Client::new();
    let url = format!("http://127.0.0.1:{port}/api/v1/recommendations/popular");
    assert_eq!(c.get(&url).send().await.unwrap().status(), 401);
    assert_eq!(c.get(&url).bearer_auth(key).send().await.unwrap().status(), 200);
    // Through the server's admin API, the read key cannot make keys.
    let through = Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["keys", "create", "--url", &format!("http://127.0.0.1:{port}"), "--scope", "admin"])
        .env("VITRINA_API_KEY", key)
        .env_remove("VITRINA_CONFIG")
        .output()
        .unwrap();
    assert!(!through.status.success());
    assert!(
        String::from_utf8_lossy(&through.stderr).contains("403"),
        "{}",
        String::from_utf8_lossy(&through.stderr)
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Revoked on the data directory, the key is refused after a restart.
    let id = listed.split('\t').next().unwrap().to_string();
    assert!(vitrina(&["keys", "revoke", "--data-dir", data, &id]).status.success());
    let server = Server::start(dir.path());
    let res = c.get(server.url("/api/v1/recommendations/popular")).bearer_auth(key).send().await.unwrap();
    assert_eq!(res.status(), 401, "revoking the last key does not open the server");
    server.stop();

    // --insecure-no-auth serves a keyless store on a public address.
    let fresh = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["serve", "--addr", "0.0.0.0:0", "--insecure-no-auth", "--no-demo", "--data-dir"])
        .arg(fresh.path())
        .env("RUST_LOG", "error")
        .env_remove("VITRINA_CONFIG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    assert!(lines.next().unwrap().unwrap().starts_with("vitrina listening on"));
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn past_the_rate_limit_requests_get_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("VITRINA__RATE_LIMITS__ADMIN", "1"),
        ("VITRINA__RATE_LIMITS__ADMIN_BURST", "3"),
        ("VITRINA__RATE_LIMITS__PER_ADDRESS", "1"),
        ("VITRINA__RATE_LIMITS__PER_ADDRESS_BURST", "12"),
    ];
    let server = Server::start_with(dir.path(), Options { env, ..Default::default() });
    let c = Client::new();
    let admin = create_key(&c, &server, None, "admin").await;
    // The admin key's bucket (3) empties before the address's (12).
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = c.get(server.url("/api/v1/training/status")).bearer_auth(&admin).send().await.unwrap();
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&wait), "{wait}");
            let body: Value = res.json().await.unwrap();
            assert_error(&(StatusCode::TOO_MANY_REQUESTS, body.clone()), 429, "rate_limited");
            assert!(body["details"]["retryAfterSeconds"].as_u64().is_some(), "{body}");
        }
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "one key creation and three calls: the third admin call is past the burst"
    );
    // The address's bucket covers every request, open ones and bad keys too.
    let mut limited = false;
    for _ in 0..20 {
        let res = c.get(server.url("/health")).send().await.unwrap();
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
            limited = true;
            break;
        }
    }
    assert!(limited, "the per-address limit never applied");
    server.stop();
}

vitrina_store::on_every_backend!(an_erased_visitor_leaves_nothing_in_the_store);

/// The stored checkpoint of the online state, if there is one.
async fn checkpoint(backing: &common::Backing) -> Option<Vec<u8>> {
    match backing {
        common::Backing::Dir(dir) => {
            let mut files = vec![dir.path().to_path_buf()];
            while let Some(path) = files.pop() {
                if path.is_dir() {
                    files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                } else if path.ends_with("checkpoints/online.vck") {
                    return Some(std::fs::read(path).unwrap());
                }
            }
            None
        }
        common::Backing::Postgres(db) => {
            let rows = db
                .client()
                .await
                .query(
                    "SELECT bytes FROM artefacts WHERE path = 'checkpoints/online.vck' ORDER BY chunk",
                    &[],
                )
                .await
                .unwrap();
            (!rows.is_empty()).then(|| rows.iter().flat_map(|r| r.get::<_, Vec<u8>>(0)).collect())
        }
    }
}

async fn an_erased_visitor_leaves_nothing_in_the_store(backing: common::Backing) {
    let server = backing.start();
    let c = Client::new();
    let who = "erase-me-4c1d";
    let post = |path: &'static str, body: Value| {
        let c = c.clone();
        let url = server.url(path);
        async move { c.post(url).json(&body).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        post(
            "/api/v1/users",
            json!({"id": who, "name": "Erase Me", "attributes": {"email": "erase@me.example"}})
        )
        .await,
        200
    );
    for event in [
        json!({"userId": who, "activityType": "view", "productId": "product-2"}),
        json!({"userId": who, "activityType": "add_to_cart", "productId": "product-2"}),
        json!({"userId": who, "activityType": "view", "productId": "product-4"}),
        json!({"userId": who, "activityType": "search", "metadata": {"query": "secret-query-9z"}}),
    ] {
        assert_eq!(post("/api/v1/activity/track", event).await, 201);
    }
    // A clean stop checkpoints the online state, the visitor's events in it; the restart
    // restores it.
    assert!(server.stop().success());
    let holds = |bytes: &[u8], needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    let at_stop = checkpoint(&backing).await.expect("a clean stop writes a checkpoint");
    assert!(holds(&at_stop, who));
    let server = backing.start();
    let list = get_json(&c, server.url(&format!("/api/v1/recommendations/recommendations/{who}"))).await;
    assert!(
        list["recommendations"].as_array().unwrap().iter().any(|r| r["explanation"].is_string()),
        "{list}"
    );
    let before = list["recommendationId"].clone();
    let export_url = server.url(&format!("/api/v1/users/{who}/export"));
    let served = |n: usize| {
        let (c, url) = (c.clone(), export_url.clone());
        common::eventually(
            "the served list to be recorded (impressions are written off the request path)",
            move || {
                let (c, url) = (c.clone(), url.clone());
                async move {
                    let export: Value = c.get(url).send().await.unwrap().json().await.unwrap();
                    // Until the list is recorded an erased visitor has nothing held: a 404.
                    (export["servedLists"].as_array().map_or(0, Vec::len) == n).then_some(export)
                }
            },
        )
    };
    let export = served(1).await;
    assert_eq!(export["events"].as_array().unwrap().len(), 4, "{export}");
    assert_eq!(export["user"]["attributes"]["email"], "erase@me.example");

    let res = c.delete(server.url(&format!("/api/v1/users/{who}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(checkpoint(&backing).await.is_none(), "the erasure discarded the checkpoint holding the visitor");
    // The next list is a cold-start list: nothing of the visitor's history is used.
    let list = get_json(&c, server.url(&format!("/api/v1/recommendations/recommendations/{who}"))).await;
    assert_eq!(list["fromCache"], false);
    assert!(list["recommendations"].as_array().unwrap().iter().all(|r| r["explanation"].is_null()), "{list}");
    let export = served(1).await;
    assert!(
        export["user"].is_null() && export["events"] == json!([]) && export["outcomes"] == json!([]),
        "{export}"
    );
    assert_eq!(
        export["servedLists"][0]["recommendationId"], list["recommendationId"],
        "only the list served after the erasure"
    );
    assert_ne!(list["recommendationId"], before);
    assert!(server.stop().success());

    let needles = [who, "Erase Me", "erase@me.example", "secret-query-9z"];
    match &backing {
        common::Backing::Dir(dir) => {
            let mut files = vec![dir.path().to_path_buf()];
            let mut checked = 0;
            while let Some(path) = files.pop() {
                if path.is_dir() {
                    files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                for needle in needles {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                        "{} holds {needle:?}",
                        path.display()
                    );
                }
                checked += 1;
            }
            assert!(checked >= 3, "the data directory was checked ({checked} files)");
        }
        common::Backing::Postgres(db) => {
            // Every row of every table as text, and the bytes of every binary column.
            let client = db.client().await;
            let tables: Vec<String> = client
                .query("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            assert!(tables.len() >= 8, "the database was checked ({tables:?})");
            for table in tables {
                let rows = client.query(&format!("SELECT t::text FROM \"{table}\" t"), &[]).await.unwrap();
                for row in rows {
                    let text: String = row.get(0);
                    for needle in needles {
                        assert!(!text.contains(needle), "table {table} holds {needle:?}: {text}");
                    }
                }
            }
            let binary = client
                .query(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND data_type = 'bytea'",
                    &[],
                )
                .await
                .unwrap();
            assert!(!binary.is_empty(), "the artefacts' bytes were checked");
            for row in binary {
                let (table, column): (String, String) = (row.get(0), row.get(1));
                for needle in needles {
                    let sql = format!(
                        "SELECT COUNT(*) FROM \"{table}\" WHERE position($1::bytea IN \"{column}\") > 0"
                    );
                    let found: i64 = client.query_one(&sql, &[&needle.as_bytes()]).await.unwrap().get(0);
                    assert_eq!(found, 0, "{table}.{column} holds {needle:?}");
                }
            }
        }
    }
}

#[tokio::test]
async fn tls_serves_https_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();
    let (c, k) = (cert_path.to_str().unwrap(), key_path.to_str().unwrap());

    let server = Server::start_with(
        &dir.path().join("data"),
        Options {
            env: vec![("VITRINA__SERVER__TLS_CERT", c), ("VITRINA__SERVER__TLS_KEY", k)],
            ..Default::default()
        },
    );
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let trusting = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let res = trusting.get(server.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["message"], "Recommendation System is healthy");
    let (s, _) =
        call(&trusting, &server, Method::GET, "/api/v1/recommendations/recommendations/user-1", None, None)
            .await;
    assert_eq!(s, 200);
    // A client that does not trust the certificate, and plain HTTP, get nowhere.
    assert!(Client::new().get(server.url("/health")).send().await.is_err());
    let plain = server.base.replacen("https://", "http://", 1);
    assert!(Client::new()
        .get(format!("{plain}/health"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true));
    assert!(server.stop().success());

    // Half a TLS configuration is refused at start, naming the keys.
    let half = Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("VITRINA__SERVER__TLS_CERT", c)
        .env_remove("VITRINA_CONFIG")
        .output()
        .unwrap();
    assert!(!half.status.success());
    assert!(String::from_utf8_lossy(&half.stderr).contains("tls_cert and tls_key go together"));
}

#[tokio::test]
async fn cors_is_off_by_default_and_answers_only_the_configured_origins() {
    let dir = tempfile::tempdir().unwrap();
    let c = Client::new();
    let preflight = |server: &Server, origin: &str| {
        c.request(Method::OPTIONS, server.url("/api/v1/activity/track"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,authorization")
            .send()
    };
    let server = Server::start(&dir.path().join("a"));
    let res = preflight(&server, "https://shop.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none(), "no CORS unless configured");
    let res = c
        .get(server.url("/api/v1/recommendations/popular"))
        .header("origin", "https://shop.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    server.stop();

    let server = Server::start_with(
        &dir.path().join("b"),
        Options {
            env: vec![("VITRINA__AUTH__CORS_ORIGINS", r#"["https://shop.example"]"#)],
            ..Default::default()
        },
    );
    let res = preflight(&server, "https://shop.example").await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], "https://shop.example");
    let res = preflight(&server, "https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let view = json!({"userId": "user-1", "activityType": "view", "productId": "product-2"});
    let from = |origin: &'static str| {
        c.post(server.url("/api/v1/activity/track")).header("origin", origin).json(&view).send()
    };
    let res = from("https://shop.example").await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["access-control-allow-origin"], "https://shop.example");
    assert_eq!(
        from("https://evil.example").await.unwrap().status(),
        403,
        "a write from another site is refused"
    );
    server.stop();
}
