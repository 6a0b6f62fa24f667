//! The evaluation report: JSON (serde) and a human table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::split::Protocol;

/// The metric names every evaluation reports, in table order.
pub const METRICS: [&str; 5] = ["ndcg@10", "hr@10", "hr@20", "recall@20", "ndcg@20"];

/// Results of one evaluation run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub dataset: String,
    pub protocol: Protocol,
    pub seed: u64,
    pub tuned: bool,
    pub n_users: usize,
    pub n_items: usize,
    pub n_train: usize,
    pub n_test_users: usize,
    pub models: Vec<ModelReport>,
}

/// One model's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelReport {
    pub name: String,
    /// The parameters used for the final training (chosen by tuning when `--tune`).
    pub params: serde_json::Value,
    pub metrics: BTreeMap<String, f64>,
    pub std_errors: BTreeMap<String, f64>,
    pub train_seconds: f64,
    pub score_seconds: f64,
    /// Time spent searching hyperparameters on the validation split (0 without tuning).
    pub tune_seconds: f64,
}

impl Report {
    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The model with the best primary metric for the protocol.
    pub fn best(&self) -> Option<&ModelReport> {
        let key = self.protocol.primary_metric();
        self.models.iter().max_by(|a, b| a.metric(key).total_cmp(&b.metric(key)))
    }

    /// A fixed-width table: metrics with standard errors, times, then the chosen params.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "dataset {}  protocol {}  seed {}  users {}  items {}  train interactions {}  test users {}{}",
            self.dataset,
            self.protocol.name(),
            self.seed,
            self.n_users,
            self.n_items,
            self.n_train,
            self.n_test_users,
            if self.tuned { "  (tuned on a validation split of train)" } else { "" }
        );
        let _ = write!(s, "{:<14}", "model");
        for m in METRICS {
            let _ = write!(s, " {:>17}", m);
        }
        let _ = writeln!(s, " {:>9} {:>9} {:>9}", "train s", "score s", "tune s");
        for r in &self.models {
            let _ = write!(s, "{:<14}", r.name);
            for m in METRICS {
                let cell = format!("{:.4}±{:.4}", r.metric(m), r.std_errors.get(m).copied().unwrap_or(0.0));
                let _ = write!(s, " {cell:>17}");
            }
            let _ = writeln!(s, " {:>9.2} {:>9.2} {:>9.2}", r.train_seconds, r.score_seconds, r.tune_seconds);
        }
        let _ = writeln!(s, "params:");
        for r in &self.models {
            let _ = writeln!(s, "  {}: {}", r.name, r.params);
        }
        s
    }
}

impl ModelReport {
    /// A metric's mean, 0 if absent.
    pub fn metric(&self, name: &str) -> f64 {
        self.metrics.get(name).copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_agreed_shape() {
        let r = Report {
            dataset: "d".into(),
            protocol: Protocol::Random8020,
            seed: 1,
            tuned: false,
            n_users: 1,
            n_items: 2,
            n_train: 3,
            n_test_users: 1,
            models: vec![ModelReport {
                name: "ease".into(),
                params: serde_json::json!({"lambda": 1.0}),
                metrics: METRICS.iter().map(|m| (m.to_string(), 0.5)).collect(),
                std_errors: BTreeMap::new(),
                train_seconds: 1.0,
                score_seconds: 2.0,
                tune_seconds: 0.0,
            }],
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["protocol"], "random-80-20");
        assert_eq!(v["models"][0]["metrics"]["ndcg@20"], 0.5);
        assert_eq!(v["models"][0]["trainSeconds"], 1.0);
        assert!(r.table().contains("0.5000±0.0000"));
        assert_eq!(r.best().unwrap().name, "ease");
    }
}
