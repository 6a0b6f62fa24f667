//! A weighted blend of other models. Each source's scores are normalised over the items the
//! user has not seen (by their maximum, or to zero mean and unit variance) before weighting,
//! so weights are comparable across sources; each source may see a recency-weighted history.

use serde::{Deserialize, Serialize};

use super::Model;
use crate::error::{invalid, Result};

/// How each source's scores are put on a common scale before blending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Normalization {
    /// Divide by the largest absolute score.
    #[default]
    Max,
    /// Subtract the mean, divide by the standard deviation.
    ZScore,
}

impl Normalization {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Max => 0,
            Self::ZScore => 1,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(Self::Max),
            1 => Some(Self::ZScore),
            _ => None,
        }
    }
}

/// One source of a blend.
#[derive(Debug, Clone, PartialEq)]
pub struct BlendComponent {
    /// Display name (e.g. `"ease"`), used in reports.
    pub name: String,
    pub weight: f32,
    /// History weights are multiplied by `recency^(steps from the most recent)`; 1 = off.
    pub recency: f32,
    pub model: Model,
}

/// A weighted blend of normalised sources.
#[derive(Debug, Clone, PartialEq)]
pub struct Blend {
    pub(crate) components: Vec<BlendComponent>,
    pub(crate) normalization: Normalization,
}

impl Blend {
    /// Blends `components`; weights and recencies must be finite and >= 0.
    pub fn new(components: Vec<BlendComponent>, normalization: Normalization) -> Result<Self> {
        if components
            .iter()
            .any(|c| !(c.weight.is_finite() && c.weight >= 0.0 && c.recency.is_finite() && c.recency >= 0.0))
        {
            return Err(invalid("blend weights and recencies must be finite and >= 0"));
        }
        Ok(Self { components, normalization })
    }

    pub fn components(&self) -> &[BlendComponent] {
        &self.components
    }

    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    pub fn n_items(&self) -> usize {
        self.components.iter().map(|c| c.model.n_items()).max().unwrap_or(0)
    }

    /// The weights, recencies and each source's own parameters.
    pub fn params_json(&self) -> serde_json::Value {
        let parts: Vec<serde_json::Value> = self
            .components
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name, "weight": c.weight, "recency": c.recency, "params": c.model.params_json()
                })
            })
            .collect();
        serde_json::json!({ "normalization": self.normalization, "components": parts })
    }

    pub(crate) fn score_into(&self, history: &[(u32, f32)], times: &[i64], out: &mut [f32]) {
        let mut seen = vec![false; out.len()];
        for &(i, _) in history {
            if let Some(s) = seen.get_mut(i as usize) {
                *s = true;
            }
        }
        let mut tmp = Vec::new();
        let mut weighted = Vec::with_capacity(history.len());
        for c in &self.components {
            if c.weight == 0.0 {
                continue;
            }
            let hist: &[(u32, f32)] = if c.recency == 1.0 {
                history
            } else {
                weighted.clear();
                let n = history.len();
                weighted.extend(
                    history
                        .iter()
                        .enumerate()
                        .map(|(k, &(i, w))| (i, w * c.recency.powi((n - 1 - k) as i32))),
                );
                &weighted
            };
            c.model.score_into_at(hist, times, &mut tmp);
            normalise(&mut tmp, &seen, self.normalization);
            for (o, t) in out.iter_mut().zip(&tmp) {
                *o += c.weight * t;
            }
        }
    }
}

fn normalise(scores: &mut [f32], seen: &[bool], how: Normalization) {
    let unseen = || scores.iter().zip(seen).filter(|(s, &x)| !x && s.is_finite()).map(|(s, _)| f64::from(*s));
    match how {
        Normalization::Max => {
            let max = unseen().fold(0f64, |m, s| m.max(s.abs()));
            if max > 0.0 {
                let inv = (1.0 / max) as f32;
                scores.iter_mut().for_each(|s| *s *= inv);
            }
        }
        Normalization::ZScore => {
            let (n, sum, sq) = unseen().fold((0f64, 0f64, 0f64), |(n, a, b), s| (n + 1.0, a + s, b + s * s));
            if n > 0.0 {
                let mean = sum / n;
                let sd = (sq / n - mean * mean).max(0.0).sqrt();
                let (mean, inv) = (mean as f32, if sd > 0.0 { (1.0 / sd) as f32 } else { 0.0 });
                scores.iter_mut().for_each(|s| *s = (*s - mean) * inv);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::{CsrMatrix, Interaction, MatrixOptions};
    use crate::models::{Popularity, PopularityParams};

    fn pop(scores: &[(u32, u32)]) -> Model {
        let data: Vec<Interaction> =
            scores.iter().map(|&(user, item)| Interaction { user, item, weight: 1.0, ts: 0 }).collect();
        let m =
            CsrMatrix::from_interactions(&data, &MatrixOptions { n_items: Some(3), ..Default::default() })
                .unwrap();
        Model::Popularity(Popularity::train(&m, &PopularityParams::default()))
    }

    #[test]
    fn normalises_each_source_before_weighting() {
        // a: item0=4, item1=2 ; b: item1=1, item2=1 (after max-normalisation: 1, .5, 0 and 0, 1, 1)
        let a = pop(&[(0, 0), (1, 0), (2, 0), (3, 0), (0, 1), (1, 1)]);
        let b = pop(&[(0, 1), (0, 2)]);
        let comp =
            |name: &str, weight, model| BlendComponent { name: name.into(), weight, recency: 1.0, model };
        let blend = Blend::new(vec![comp("a", 1.0, a), comp("b", 1.0, b)], Normalization::Max).unwrap();
        let s = Model::Blend(blend).score(&[]);
        assert_eq!(s, vec![1.0, 1.5, 1.0]);
        assert!(Blend::new(vec![comp("x", f32::NAN, pop(&[]))], Normalization::Max).is_err());
    }
}
