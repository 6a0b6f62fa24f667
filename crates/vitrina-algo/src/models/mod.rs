//! The models and the [`Model`] enum that serving and evaluation use.
//!
//! Every model is trained by a `train(…, &Params)` function and scores the whole catalogue
//! for a user from that user's current history — `(item, weight)` pairs, oldest first — so
//! serving personalises without retraining. Items the model does not know are ignored.

pub mod als;
pub mod blend;
pub mod bridge;
mod cooc;
pub mod ease;
pub mod knn;
pub mod popularity;
pub mod rp3beta;
pub mod timepop;
pub mod transitions;

use serde::{Deserialize, Serialize};

pub use als::{Als, AlsParams};
pub use blend::{Blend, BlendComponent, Normalization};
pub use bridge::{Bridge, BridgeParams};
pub use ease::{Ease, EaseParams};
pub use knn::{ItemKnn, ItemKnnIndex, ItemKnnParams};
pub use popularity::{Popularity, PopularityParams};
pub use rp3beta::{Rp3Beta, Rp3BetaParams};
pub use timepop::{TimePopularity, TimePopularityParams};
pub use transitions::{TransitionParams, Transitions};

use crate::topk::top_k;

/// Which algorithm a [`Model`] is; its byte is stored in artefacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    Popularity,
    ItemKnn,
    Als,
    Ease,
    Rp3Beta,
    Transitions,
    Blend,
    TimePopularity,
    Bridge,
}

impl ModelKind {
    /// The byte stored in artefacts.
    pub fn code(self) -> u8 {
        match self {
            Self::Popularity => 1,
            Self::ItemKnn => 2,
            Self::Als => 3,
            Self::Ease => 4,
            Self::Rp3Beta => 5,
            Self::Transitions => 6,
            Self::Blend => 7,
            Self::TimePopularity => 8,
            Self::Bridge => 9,
        }
    }

    /// The kind stored as `code`, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Popularity,
            2 => Self::ItemKnn,
            3 => Self::Als,
            4 => Self::Ease,
            5 => Self::Rp3Beta,
            6 => Self::Transitions,
            7 => Self::Blend,
            8 => Self::TimePopularity,
            9 => Self::Bridge,
            _ => return None,
        })
    }

    /// The kebab-case name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Popularity => "popularity",
            Self::ItemKnn => "item-knn",
            Self::Als => "als",
            Self::Ease => "ease",
            Self::Rp3Beta => "rp3beta",
            Self::Transitions => "transitions",
            Self::Blend => "blend",
            Self::TimePopularity => "time-popularity",
            Self::Bridge => "bridge",
        }
    }
}

impl std::str::FromStr for ModelKind {
    type Err = crate::AlgoError;

    /// Parses the kebab-case name (`als`, `item-knn`, `ease`, `rp3beta`, …).
    fn from_str(s: &str) -> crate::Result<Self> {
        [
            Self::Popularity,
            Self::ItemKnn,
            Self::Als,
            Self::Ease,
            Self::Rp3Beta,
            Self::Transitions,
            Self::Blend,
            Self::TimePopularity,
            Self::Bridge,
        ]
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                crate::error::invalid(format!(
                    "unknown model `{s}` (expected popularity, time-popularity, item-knn, als, ease, rp3beta, transitions, bridge or blend)"
                ))
            })
    }
}

/// A trained model of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    Popularity(Popularity),
    ItemKnn(ItemKnn),
    Als(Als),
    Ease(Ease),
    Rp3Beta(Rp3Beta),
    Transitions(Transitions),
    Blend(Blend),
    TimePopularity(TimePopularity),
    Bridge(Bridge),
}

impl Model {
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Popularity(_) => ModelKind::Popularity,
            Self::ItemKnn(_) => ModelKind::ItemKnn,
            Self::Als(_) => ModelKind::Als,
            Self::Ease(_) => ModelKind::Ease,
            Self::Rp3Beta(_) => ModelKind::Rp3Beta,
            Self::Transitions(_) => ModelKind::Transitions,
            Self::Blend(_) => ModelKind::Blend,
            Self::TimePopularity(_) => ModelKind::TimePopularity,
            Self::Bridge(_) => ModelKind::Bridge,
        }
    }

    /// Size of the catalogue the model scores.
    pub fn n_items(&self) -> usize {
        match self {
            Self::Popularity(m) => m.n_items(),
            Self::ItemKnn(m) => m.n_items(),
            Self::Als(m) => m.n_items(),
            Self::Ease(m) => m.n_items(),
            Self::Rp3Beta(m) => m.n_items(),
            Self::Transitions(m) => m.n_items(),
            Self::Blend(m) => m.n_items(),
            Self::TimePopularity(m) => m.n_items(),
            Self::Bridge(m) => m.n_items(),
        }
    }

    /// The training parameters, as JSON for reports and registries.
    pub fn params_json(&self) -> serde_json::Value {
        let v = match self {
            Self::Popularity(m) => serde_json::to_value(m.params()),
            Self::ItemKnn(m) => serde_json::to_value(m.params()),
            Self::Als(m) => serde_json::to_value(m.params()),
            Self::Ease(m) => serde_json::to_value(m.params()),
            Self::Rp3Beta(m) => serde_json::to_value(m.params()),
            Self::Transitions(m) => serde_json::to_value(m.params()),
            Self::Blend(m) => Ok(m.params_json()),
            Self::TimePopularity(m) => serde_json::to_value(m.params()),
            Self::Bridge(m) => serde_json::to_value(m.params()),
        };
        v.unwrap_or(serde_json::Value::Null)
    }

    /// Scores every item for a user with `history` (`(item, weight)`, oldest first) into
    /// `out`, which is resized to [`Model::n_items`]. Higher is better.
    pub fn score_into(&self, history: &[(u32, f32)], out: &mut Vec<f32>) {
        self.score_into_at(history, &[], out);
    }

    /// [`Model::score_into`] with the history's timestamps (unix seconds, same order; may be
    /// empty when unknown), which time-aware models use.
    pub fn score_into_at(&self, history: &[(u32, f32)], times: &[i64], out: &mut Vec<f32>) {
        out.clear();
        out.resize(self.n_items(), 0.0);
        match self {
            Self::Popularity(m) => m.score_into(history, out),
            Self::ItemKnn(m) => m.score_into(history, out),
            Self::Als(m) => m.score_into(history, out),
            Self::Ease(m) => m.score_into(history, out),
            Self::Rp3Beta(m) => m.score_into(history, out),
            Self::Transitions(m) => m.score_into(history, out),
            Self::Blend(m) => m.score_into(history, times, out),
            Self::TimePopularity(m) => m.score_at(times, out),
            Self::Bridge(m) => m.score_into(history, out),
        }
    }

    /// [`Model::score_into`] into a fresh vector.
    pub fn score(&self, history: &[(u32, f32)]) -> Vec<f32> {
        let mut out = Vec::new();
        self.score_into(history, &mut out);
        out
    }

    /// The `k` best items the user has not interacted with, best first.
    pub fn recommend(&self, history: &[(u32, f32)], k: usize) -> Vec<(u32, f32)> {
        let scores = self.score(history);
        let seen: Vec<u32> = history.iter().map(|h| h.0).collect();
        top_k(&scores, k, &seen)
    }
}

/// Adds `Σ weight·row` of a sparse item×item matrix for each history item into `out`.
pub(crate) fn accumulate_sparse(m: &crate::matrix::CsrMatrix, history: &[(u32, f32)], out: &mut [f32]) {
    for &(item, w) in history {
        let (idx, val) = m.row(item as usize);
        for (&j, &s) in idx.iter().zip(val) {
            if let Some(o) = out.get_mut(j as usize) {
                *o += w * s;
            }
        }
    }
}
