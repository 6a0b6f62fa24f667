//! `vitrina keys`: create, list and revoke API keys, on the store (a data directory, the
//! server stopped: it owns the directory while it runs; or a PostgreSQL database) or through a
//! running server's admin API.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use vitrina_core::keys::Scope;
use vitrina_server::auth::Keys;
use vitrina_store::Opened;

use crate::config::Config;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Create a key and print it, alone, on stdout (it is shown only this once).
    Create {
        #[command(flatten)]
        target: Target,
        /// What the key may do: `track` (activity), `read` (lists, history, stats, catalogue
        /// reads) or `admin` (everything).
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
        /// A label for people.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the keys (id, scope, prefix, name, created, revoked); never the keys themselves.
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke a key by its id (`key_…`): from then on it is refused.
    Revoke {
        #[command(flatten)]
        target: Target,
        id: String,
    },
}

/// Where the keys live.
#[derive(clap::Args)]
pub struct Target {
    /// Data directory of the embedded store (when no `--url` is given).
    #[arg(long, env = "VITRINA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The store: a data directory or a PostgreSQL URL (wins over `--data-dir`).
    #[arg(long, env = "VITRINA_STORE")]
    store: Option<String>,
    /// A running server instead, e.g. http://127.0.0.1:8080 (needs an admin key once keys exist).
    #[arg(long, conflicts_with_all = ["data_dir", "store"])]
    url: Option<String>,
    /// The admin key to call `--url` with.
    #[arg(long, env = "VITRINA_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

fn parse_scope(raw: &str) -> Result<Scope, String> {
    Scope::parse(raw).ok_or_else(|| format!("unknown scope {raw:?}: use track, read or admin"))
}

pub async fn run(config: Config, cmd: Command) -> anyhow::Result<()> {
    let target = match &cmd {
        Command::Create { target, .. } | Command::List { target } | Command::Revoke { target, .. } => target,
    };
    match &target.url {
        Some(url) => through_server(url.trim_end_matches('/'), target.api_key.as_deref(), &cmd).await,
        None => {
            let mut storage = config.storage.clone();
            storage.override_with(target.store.as_deref(), target.data_dir.as_deref());
            on_store(&storage, &cmd).await
        }
    }
}

fn row(k: &Value) -> String {
    let s = |f: &str| k[f].as_str().unwrap_or("-").to_string();
    let state =
        if k["active"] == true { "active".to_string() } else { format!("revoked {}", s("revokedAt")) };
    format!("{}\t{}\t{}…\t{}\t{}\t{}", s("id"), s("scope"), s("prefix"), s("name"), s("createdAt"), state)
}

async fn on_store(storage: &crate::config::Storage, cmd: &Command) -> anyhow::Result<()> {
    let location = storage.location();
    let opened = Opened::open(&location, storage.open_options())
        .await
        .with_context(|| format!("opening the store at {}", location.describe()))?;
    let keys = Keys::load(opened.store()).await?;
    let result = match cmd {
        Command::Create { scope, name, .. } => {
            let key = keys.create(*scope, name.clone()).await?;
            eprintln!("created {} ({}); it is shown only now:", key.record.id, scope);
            println!("{}", key.secret);
            Ok(())
        }
        Command::List { .. } => {
            for k in keys.list().await? {
                println!("{}", row(&serde_json::to_value(vitrina_server::routes::keys::KeyDto::from(&k))?));
            }
            Ok(())
        }
        Command::Revoke { id, .. } => match keys.revoke(id).await? {
            true => {
                eprintln!("revoked {id}");
                Ok(())
            }
            false => Err(anyhow::anyhow!("no key {id} in {}", location.describe())),
        },
    };
    drop(keys);
    opened.close().await;
    result
}

async fn through_server(url: &str, api_key: Option<&str>, cmd: &Command) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let request = match cmd {
        Command::Create { scope, name, .. } => {
            client.post(format!("{url}/api/v1/keys")).json(&json!({"scope": scope.as_str(), "name": name}))
        }
        Command::List { .. } => client.get(format!("{url}/api/v1/keys")),
        Command::Revoke { id, .. } => client.delete(format!("{url}/api/v1/keys/{id}")),
    };
    let request = match api_key {
        Some(key) => request.bearer_auth(key),
        None => request,
    };
    let res = request.send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    let body: Value = res.json().await.context("the server's answer is not JSON")?;
    if !status.is_success() {
        bail!("the server refused ({status}): {}", body["message"].as_str().unwrap_or("no message"));
    }
    match cmd {
        Command::Create { .. } => {
            eprintln!("created {}; it is shown only now:", body["apiKey"]["id"].as_str().unwrap_or("-"));
            println!("{}", body["key"].as_str().context("no key in the answer")?);
        }
        Command::List { .. } => {
            for k in body["keys"].as_array().into_iter().flatten() {
                println!("{}", row(k));
            }
        }
        Command::Revoke { id, .. } => eprintln!("revoked {id}"),
    }
    Ok(())
}
