//! Model configurations: which algorithm with which parameters, trainable on a split.

use serde::{Deserialize, Serialize};

use super::split::{Protocol, Split};
use crate::error::Result;
use crate::matrix::{CsrMatrix, Interaction};
use crate::models::*;

/// An algorithm and its parameters; a blend nests its components' configurations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model", rename_all = "kebab-case")]
pub enum ModelConfig {
    Popularity(PopularityParams),
    ItemKnn(ItemKnnParams),
    Als(AlsParams),
    Ease(EaseParams),
    Rp3beta(Rp3BetaParams),
    Transitions(TransitionParams),
    Blend(BlendConfig),
    TimePopularity(TimePopularityParams),
    Bridge(BridgeParams),
}

/// A blend's normalisation and weighted components.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlendConfig {
    pub normalization: Normalization,
    pub components: Vec<BlendPart>,
}

/// One weighted component of a [`BlendConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlendPart {
    pub weight: f32,
    pub recency: f32,
    pub config: ModelConfig,
}

/// Models already trained on one [`TrainData`], with their training seconds.
#[derive(Debug, Default)]
pub struct TrainCache(Vec<(ModelConfig, Model, f64)>);

/// What a configuration is trained on: the binary training matrix and time-ordered
/// sequences of a split.
#[derive(Debug, Clone)]
pub struct TrainData {
    pub matrix: CsrMatrix,
    pub sequences: Vec<Vec<u32>>,
    pub interactions: Vec<Interaction>,
}

impl TrainData {
    pub fn from_split(split: &Split) -> Result<Self> {
        Ok(Self {
            matrix: split.train_matrix()?,
            sequences: split.train_sequences(),
            interactions: split.train_interactions(),
        })
    }
}

impl ModelConfig {
    pub fn kind(&self) -> ModelKind {
        match self {
            Self::Popularity(_) => ModelKind::Popularity,
            Self::ItemKnn(_) => ModelKind::ItemKnn,
            Self::Als(_) => ModelKind::Als,
            Self::Ease(_) => ModelKind::Ease,
            Self::Rp3beta(_) => ModelKind::Rp3Beta,
            Self::Transitions(_) => ModelKind::Transitions,
            Self::Blend(_) => ModelKind::Blend,
            Self::TimePopularity(_) => ModelKind::TimePopularity,
            Self::Bridge(_) => ModelKind::Bridge,
        }
    }

    /// Defaults for `kind` on a catalogue of `n_items` under `protocol`; the blend's default
    /// components come from validation-split tuning on MovieLens (see docs/BENCHMARKS.md).
    pub fn default_for(kind: ModelKind, protocol: Protocol, n_items: usize) -> Self {
        match kind {
            ModelKind::Popularity => Self::Popularity(PopularityParams::default()),
            ModelKind::TimePopularity => Self::TimePopularity(TimePopularityParams::default()),
            ModelKind::Bridge => Self::Bridge(BridgeParams::default()),
            ModelKind::ItemKnn => Self::ItemKnn(ItemKnnParams::default()),
            ModelKind::Als => {
                Self::Als(AlsParams { regularization: 1.0, alpha: 5.0, ..AlsParams::default() })
            }
            ModelKind::Ease => Self::Ease(EaseParams::default()),
            ModelKind::Rp3Beta => Self::Rp3beta(Rp3BetaParams::default()),
            ModelKind::Transitions => Self::Transitions(TransitionParams::default()),
            ModelKind::Blend => {
                let anchor = if n_items <= EaseParams::default().max_items {
                    Self::default_for(ModelKind::Ease, protocol, n_items)
                } else {
                    Self::default_for(ModelKind::Als, protocol, n_items)
                };
                let part = |weight, recency, config| BlendPart { weight, recency, config };
                let components = match protocol {
                    Protocol::LeaveLastOut => vec![
                        part(1.0, 0.95, anchor),
                        part(1.0, 1.0, Self::default_for(ModelKind::Transitions, protocol, n_items)),
                        part(0.5, 0.95, Self::default_for(ModelKind::Rp3Beta, protocol, n_items)),
                    ],
                    Protocol::Random8020 => {
                        let anchor = match anchor {
                            Self::Ease(p) => {
                                Self::Ease(EaseParams { lambda: 300.0, popularity_reg: 0.2, ..p })
                            }
                            other => other,
                        };
                        let als = AlsParams {
                            factors: 128,
                            regularization: 50.0,
                            alpha: 5.0,
                            ..AlsParams::default()
                        };
                        let around = TransitionParams {
                            history_len: 1000,
                            recency: 1.0,
                            backward: 1.0,
                            window: 5,
                            gap_decay: 0.7,
                            ..TransitionParams::default()
                        };
                        vec![
                            part(1.0, 1.0, anchor),
                            part(0.5, 1.0, Self::Als(als)),
                            part(0.3, 1.0, Self::Transitions(around)),
                        ]
                    }
                };
                Self::Blend(BlendConfig { normalization: Normalization::ZScore, components })
            }
        }
    }

    /// The parameters as JSON (for reports).
    pub fn params_json(&self) -> serde_json::Value {
        // through a string so f32 fields print as written (0.6, not 0.6000000238418579)
        let text = serde_json::to_string(self).unwrap_or_default();
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("model");
        }
        v
    }

    /// Trains the configured model; `progress(done, total)` reports ALS iterations.
    pub fn train(&self, data: &TrainData, progress: &mut dyn FnMut(usize, usize)) -> Result<Model> {
        Ok(self.train_cached(data, &mut TrainCache::default(), progress)?.0)
    }

    /// [`ModelConfig::train`] reusing models already trained on the same data with the same
    /// configuration (a blend's components are often also evaluated on their own). Returns
    /// the model and its training seconds — for a reused model, the time it took when it was
    /// trained, so a blend's time includes its components'.
    pub fn train_cached(
        &self,
        data: &TrainData,
        cache: &mut TrainCache,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Model, f64)> {
        if let Some((_, m, secs)) = cache.0.iter().find(|(c, _, _)| c == self) {
            return Ok((m.clone(), *secs));
        }
        let t = std::time::Instant::now();
        let (model, inner) = self.train_uncached(data, cache, progress)?;
        let secs = t.elapsed().as_secs_f64() + inner;
        cache.0.push((self.clone(), model.clone(), secs));
        Ok((model, secs))
    }

    /// The model, plus the seconds of reused components not spent in this call.
    fn train_uncached(
        &self,
        data: &TrainData,
        cache: &mut TrainCache,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(Model, f64)> {
        let m = &data.matrix;
        let mut reused = 0.0;
        let model = match self {
            Self::Popularity(p) => Model::Popularity(Popularity::train(m, p)),
            Self::Bridge(p) => Model::Bridge(Bridge::train(&data.sequences, m.n_cols(), p)?),
            Self::TimePopularity(p) => {
                Model::TimePopularity(TimePopularity::train(&data.interactions, m.n_cols(), p)?)
            }
            Self::ItemKnn(p) => Model::ItemKnn(ItemKnn::train(m, p)?),
            Self::Als(p) => Model::Als(Als::train(m, p, progress)?),
            Self::Ease(p) => Model::Ease(Ease::train_timed(m, &data.interactions, p)?),
            Self::Rp3beta(p) => Model::Rp3Beta(Rp3Beta::train(m, p)?),
            Self::Transitions(p) => Model::Transitions(Transitions::train(&data.sequences, m.n_cols(), p)?),
            Self::Blend(b) => {
                let mut components = Vec::with_capacity(b.components.len());
                for part in &b.components {
                    if part.weight == 0.0 {
                        continue;
                    }
                    let t = std::time::Instant::now();
                    let (model, secs) = part.config.train_cached(data, cache, progress)?;
                    reused += (secs - t.elapsed().as_secs_f64()).max(0.0);
                    components.push(BlendComponent {
                        name: part.config.kind().name().to_owned(),
                        weight: part.weight,
                        recency: part.recency,
                        model,
                    });
                }
                Model::Blend(Blend::new(components, b.normalization)?)
            }
        };
        Ok((model, reused))
    }
}
