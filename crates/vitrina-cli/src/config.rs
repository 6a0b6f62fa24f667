//! Configuration, layered: embedded defaults → TOML file → `VITRINA__SECTION__KEY`
//! environment variables → command-line flags (which also read `VITRINA_ADDR` and
//! `VITRINA_DATA_DIR`).

use std::path::{Path, PathBuf};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub storage: Storage,
    pub cache: Cache,
    pub bus: Bus,
    pub limits: vitrina_server::state::Limits,
    /// How lists are ranked: source weights and business rules.
    pub ranking: vitrina_engine::RankingConfig,
    /// Training threads and schedule.
    pub training: vitrina_server::embedded::TrainingSchedule,
    pub experiments: Experiments,
    /// API keys' settings and CORS.
    pub auth: vitrina_server::auth::AuthConfig,
    /// Requests per second per client address and per key scope.
    pub rate_limits: vitrina_server::auth::RateLimits,
    /// The Gorse-compatible API: feedback types and auto-inserted items.
    pub gorse: vitrina_server::gorse::GorseConfig,
    pub log: Log,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Experiments {
    /// Seconds between automatic steps (bandit reallocation, weight tuning) of a running
    /// experiment; 0 = only on `POST /api/v1/experiments/{id}/step`.
    pub step_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Address to listen on.
    pub addr: String,
    /// PEM certificate chain and private key: serve HTTPS (TLS 1.2/1.3, rustls) instead of HTTP.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The roles this process plays, comma-separated: `activity`, `api`, `training`
    /// (default all three: the embedded deployment).
    pub roles: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Directory of the embedded store and model artefacts.
    pub data_dir: PathBuf,
    /// A PostgreSQL database (`postgres://user@host:port/db`) to use instead of `data_dir`;
    /// empty = the data directory.
    pub url: String,
    /// PostgreSQL: connections for reads (writes have three of their own).
    pub pool_size: usize,
    /// PostgreSQL: seconds connecting, or waiting for a free connection, may take.
    pub timeout_seconds: u64,
    /// Load the demo shop into a new, empty data directory.
    pub demo: bool,
    /// Days served lists and attributed outcomes are kept (attribution, stats, experiment
    /// results; fractions allowed: 0.25 = 6 hours); 0 = forever.
    pub impression_retention_days: f64,
    /// Days events are kept in the log after they were received; 0 = forever (the default).
    /// What is past it is gone from training, history and `eventId` deduplication.
    pub event_retention_days: f64,
    /// Seconds between checkpoints of the online state (one is also taken at a clean stop),
    /// so a start restores it and replays only the log after it; 0 = never: every start
    /// replays the whole log.
    pub checkpoint_interval_seconds: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cache {
    /// Visitors whose recommendation lists are cached.
    pub users: u64,
    pub ttl_seconds: u64,
    /// Redis shared by the processes of a deployment (`redis://host:6379`): visitors'
    /// watermarks for read-your-writes across api replicas; empty = none.
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Bus {
    /// NATS JetStream between the processes of a deployment (`nats://host:4222`); empty =
    /// none (one process, or replicas that read the store every second).
    pub url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// `json` (default) or `pretty`.
    pub format: String,
    /// A tracing filter such as `info` or `vitrina_server=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: Server {
                addr: "127.0.0.1:8080".into(),
                tls_cert: None,
                tls_key: None,
                roles: "activity,api,training".into(),
            },
            storage: Storage {
                data_dir: PathBuf::from("./data"),
                url: String::new(),
                pool_size: 16,
                timeout_seconds: 5,
                demo: true,
                impression_retention_days: 30.0,
                event_retention_days: 0.0,
                checkpoint_interval_seconds: 300,
            },
            cache: Cache { users: 250_000, ttl_seconds: 600, url: String::new() },
            bus: Bus { url: String::new() },
            limits: Default::default(),
            ranking: Default::default(),
            training: vitrina_server::embedded::TrainingSchedule {
                threads: 1,
                stuck_after_seconds: 1800,
                ..Default::default()
            },
            experiments: Experiments { step_seconds: 60 },
            auth: Default::default(),
            rate_limits: Default::default(),
            gorse: Default::default(),
            log: Log { format: "json".into(), level: "info".into() },
        }
    }
}

impl Default for Server {
    fn default() -> Self {
        Config::default().server
    }
}
impl Default for Storage {
    fn default() -> Self {
        Config::default().storage
    }
}

impl Storage {
    /// Where the store is: `url` when set, else `data_dir`.
    pub fn location(&self) -> vitrina_store::Location {
        if self.url.trim().is_empty() {
            vitrina_store::Location::Dir(self.data_dir.clone())
        } else {
            vitrina_store::Location::parse(&self.url)
        }
    }

    /// Takes `--store` (a directory or a PostgreSQL URL) and `--data-dir` from the command
    /// line; `--store` wins.
    pub fn override_with(&mut self, store: Option<&str>, data_dir: Option<&Path>) {
        if let Some(dir) = data_dir {
            self.data_dir = dir.to_path_buf();
            self.url.clear();
        }
        match store.map(vitrina_store::Location::parse) {
            Some(vitrina_store::Location::Dir(dir)) => {
                self.data_dir = dir;
                self.url.clear();
            }
            Some(vitrina_store::Location::Postgres(url)) => self.url = url,
            None => {}
        }
    }

    /// What opening the store needs besides its location.
    pub fn open_options(&self) -> vitrina_store::OpenOptions {
        let days = |d: f64| (d > 0.0).then(|| std::time::Duration::from_secs_f64(d.min(36_500.0) * 86_400.0));
        vitrina_store::OpenOptions {
            impression_retention: days(self.impression_retention_days),
            event_retention: days(self.event_retention_days),
            pool_size: self.pool_size.max(1),
            timeout: std::time::Duration::from_secs(self.timeout_seconds.max(1)),
        }
    }
}
impl Default for Cache {
    fn default() -> Self {
        Config::default().cache
    }
}
impl Default for Bus {
    fn default() -> Self {
        Config::default().bus
    }
}
impl Default for Experiments {
    fn default() -> Self {
        Config::default().experiments
    }
}
impl Default for Log {
    fn default() -> Self {
        Config::default().log
    }
}

/// Every key path of the configuration (`ranking.maxPerCategory`, `ranking.weights.trending`…)
/// by its lowercase spelling, so that `VITRINA__RANKING__MAXPERCATEGORY` (environment
/// variables have no case) reaches the camelCase key.
fn key_paths() -> std::collections::HashMap<String, String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut std::collections::HashMap<String, String>) {
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.insert(path.to_ascii_lowercase(), path.clone());
                walk(&path, v, out);
            }
        }
    }
    let mut out = std::collections::HashMap::new();
    let defaults = serde_json::to_value(Config::default()).expect("the config serialises");
    walk("", &defaults, &mut out);
    out
}

/// The `VITRINA__SECTION__KEY` layer: any case, mapped onto the real key names; unknown keys
/// stay as they are (lowercase) and are refused like unknown keys in the file.
fn environment() -> Env {
    let known = std::sync::Arc::new(key_paths());
    // `lowercase(false)` last: every `map` resets it.
    Env::prefixed("VITRINA__")
        .split("__")
        .map(move |key| {
            let lower = key.as_str().to_ascii_lowercase();
            known.get(&lower).cloned().unwrap_or(lower).into()
        })
        .lowercase(false)
}

impl Config {
    /// Loads the layers below the command line. A named file must exist; without one,
    /// `./vitrina.toml` is read when present.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => anyhow::bail!("config file {} does not exist", path.display()),
            Some(path) => figment = figment.merge(Toml::file(path)),
            None => figment = figment.merge(Toml::file("vitrina.toml")),
        }
        let figment = figment.merge(environment());
        let config: Self = figment.extract()?;
        config.ranking.validate().map_err(|e| anyhow::anyhow!("config [ranking] {e}"))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_configuration_block_loads_and_shows_the_defaults() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## Configuration").expect("a Configuration section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").expect("the block ends")];
        // The file layer alone: `Config::load` also reads the environment, which the
        // override tests here change while this one runs.
        let loaded: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::string(block))
            .extract()
            .unwrap();
        // Source weights: the README spells out what an empty map means.
        assert_eq!(loaded.ranking.weights.array(), Config::default().ranking.weights.array());
        let without_weights = |c: &Config| {
            let mut v = serde_json::to_value(c).unwrap();
            v["ranking"]["weights"] = serde_json::Value::Null;
            v
        };
        assert_eq!(
            without_weights(&loaded),
            without_weights(&Config::default()),
            "the README's configuration block differs from the defaults"
        );
    }

    #[test]
    fn file_overrides_defaults_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.toml");
        std::fs::write(&path, "[server]\naddr = \"0.0.0.0:9000\"\n[cache]\nusers = 5\n").unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.server.addr, "0.0.0.0:9000");
        assert_eq!(c.cache.users, 5);
        assert_eq!(c.cache.ttl_seconds, 600);
        std::fs::write(&path, "[server]\nadress = \"x\"\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
        assert!(Config::load(Some(&dir.path().join("missing.toml"))).is_err());
        std::fs::write(&path, "[ranking]\nmaxPerCategory = 3\n[ranking.weights]\ntrending = 0.5\n").unwrap();
        let c = Config::load(Some(&path)).unwrap();
        assert_eq!(c.ranking.max_per_category, 3);
        assert_eq!(c.ranking.weights.get(vitrina_core::recommend::Source::Trending), 0.5);
        std::fs::write(&path, "[ranking.weights]\nmagic = 0.5\n").unwrap();
        assert!(Config::load(Some(&path)).unwrap_err().to_string().contains("magic"));

        // The environment overrides the file (the only test in this binary that loads a
        // config, so setting the variable races with nothing).
        std::fs::write(&path, "[cache]\nusers = 5\n[experiments]\nstep_seconds = 9\n").unwrap();
        std::env::set_var("VITRINA__CACHE__USERS", "7");
        let c = Config::load(Some(&path));
        std::env::remove_var("VITRINA__CACHE__USERS");
        let c = c.unwrap();
        assert_eq!((c.cache.users, c.experiments.step_seconds), (7, 9));

        // camelCase keys and nested maps are reachable from the environment too.
        std::env::set_var("VITRINA__RANKING__MAXPERCATEGORY", "4");
        std::env::set_var("VITRINA__RANKING__WEIGHTS__TRENDING", "0.7");
        std::env::set_var("VITRINA__RATE_LIMITS__ADMIN", "3");
        let c = Config::load(Some(&path));
        for v in [
            "VITRINA__RANKING__MAXPERCATEGORY",
            "VITRINA__RANKING__WEIGHTS__TRENDING",
            "VITRINA__RATE_LIMITS__ADMIN",
        ] {
            std::env::remove_var(v);
        }
        let c = c.unwrap();
        assert_eq!(c.ranking.max_per_category, 4);
        assert_eq!(c.ranking.weights.get(vitrina_core::recommend::Source::Trending), 0.7);
        assert_eq!(c.rate_limits.admin, 3);
        std::env::set_var("VITRINA__RANKING__NOSUCHKEY", "1");
        let c = Config::load(Some(&path));
        std::env::remove_var("VITRINA__RANKING__NOSUCHKEY");
        assert!(c.unwrap_err().to_string().contains("nosuchkey"));
    }
}
