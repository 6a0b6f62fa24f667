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
    pub limits: vitrina_server::state::Limits,
    /// How lists are ranked: source weights and business rules.
    pub ranking: vitrina_engine::RankingConfig,
    /// Training threads and schedule.
    pub training: vitrina_server::embedded::TrainingSchedule,
    pub experiments: Experiments,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Storage {
    /// Directory of the embedded store and model artefacts.
    pub data_dir: PathBuf,
    /// Load the demo shop into a new, empty data directory.
    pub demo: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cache {
    /// Visitors whose recommendation lists are cached.
    pub users: u64,
    pub ttl_seconds: u64,
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
            server: Server { addr: "127.0.0.1:8080".into() },
            storage: Storage { data_dir: PathBuf::from("./data"), demo: true },
            cache: Cache { users: 1_000_000, ttl_seconds: 600 },
            limits: Default::default(),
            ranking: Default::default(),
            training: vitrina_server::embedded::TrainingSchedule { threads: 1, ..Default::default() },
            experiments: Experiments { step_seconds: 60 },
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
impl Default for Cache {
    fn default() -> Self {
        Config::default().cache
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
        let figment = figment.merge(Env::prefixed("VITRINA__").split("__"));
        let config: Self = figment.extract()?;
        config.ranking.validate().map_err(|e| anyhow::anyhow!("config [ranking] {e}"))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
