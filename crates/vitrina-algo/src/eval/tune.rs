//! Hyperparameter search on a validation split carved from the training data only.
//!
//! Base models: one or two passes of coordinate search over a small grid per parameter,
//! keeping a change only when the protocol's primary metric improves. The blend: its
//! components are the tuned base models (some also with recency-weighted histories); their
//! normalised validation scores are cached once, then the weights are found by coordinate
//! search. Deterministic for a given seed: no randomness beyond the seeded split and ALS.

use std::collections::HashMap;
use std::time::Instant;

use rayon::prelude::*;

use super::config::{BlendConfig, BlendPart, ModelConfig, TrainData};
use super::runner::{evaluate, user_metrics, Progress};
use super::split::{Protocol, Split};
use crate::error::Result;
use crate::models::{EaseParams, Model, ModelKind, Normalization};
use crate::topk::top_k;

/// Parameter grids per model kind (JSON field name, values).
fn axes(kind: ModelKind) -> Vec<(&'static str, Vec<f64>)> {
    match kind {
        ModelKind::ItemKnn => {
            vec![("k", vec![50.0, 100.0, 200.0, 400.0]), ("shrink", vec![0.0, 10.0, 50.0, 200.0])]
        }
        ModelKind::Als => vec![
            ("regularization", vec![0.1, 1.0, 10.0, 50.0]),
            ("alpha", vec![1.0, 5.0, 20.0, 50.0]),
            ("factors", vec![32.0, 64.0, 128.0]),
        ],
        ModelKind::Ease => {
            vec![
                ("sessionSeconds", vec![0.0, 30.0, 60.0, 180.0, 600.0, 3600.0]),
                ("sessionFloor", vec![0.1, 0.2, 0.3, 0.5, 0.7]),
                ("lambda", vec![25.0, 50.0, 100.0, 150.0, 200.0, 400.0, 800.0, 1600.0]),
                ("popularityReg", vec![0.0, 0.2]),
            ]
        }
        ModelKind::Rp3Beta => vec![
            ("beta", vec![0.0, 0.2, 0.35, 0.5, 0.7]),
            ("alpha", vec![0.5, 0.8, 1.0, 1.2]),
            ("k", vec![50.0, 100.0, 200.0, 500.0]),
        ],
        ModelKind::Transitions => vec![
            ("historyLen", vec![1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 1000.0]),
            ("recency", vec![0.3, 0.5, 0.7, 0.9, 1.0]),
            ("window", vec![1.0, 2.0, 3.0, 5.0, 8.0]),
            ("gapDecay", vec![0.3, 0.6, 1.0]),
            ("backward", vec![0.0, 0.3, 1.0]),
            ("beta", vec![0.0, 0.25, 0.5]),
            ("shrink", vec![0.0, 2.0, 10.0, 50.0]),
        ],
        ModelKind::TimePopularity => vec![
            ("binDays", vec![1.0, 3.0, 7.0, 30.0, 90.0, 365.0]),
            ("spread", vec![0.0, 0.5, 0.8]),
            ("reach", vec![0.0, 1.0, 3.0, 6.0]),
        ],
        ModelKind::Bridge => vec![
            ("shrink", vec![0.0, 2.0, 10.0]),
            ("tail", vec![0.0, 0.3, 1.0]),
            ("epsilon", vec![1e-4, 1e-2]),
        ],
        ModelKind::Popularity | ModelKind::Blend => Vec::new(),
    }
}

/// `config` with JSON field `name` set to `value` (integers where the field is one).
fn with_param(config: &ModelConfig, name: &str, value: f64) -> Option<ModelConfig> {
    let mut v = serde_json::to_value(config).ok()?;
    let slot = v.get_mut(name)?;
    *slot = if slot.is_u64() { serde_json::json!(value as u64) } else { serde_json::json!(value) };
    serde_json::from_value(v).ok()
}

fn score(config: &ModelConfig, data: &TrainData, val: &Split, key: &str) -> Result<(f64, Model)> {
    let model = config.train(data, &mut |_, _| {})?;
    Ok((evaluate(&model, val).get(key).map_or(0.0, |m| m.mean), model))
}

fn coordinate_search(
    start: ModelConfig,
    data: &TrainData,
    val: &Split,
    key: &str,
    passes: usize,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(ModelConfig, Model)> {
    let kind = start.kind();
    let axes = axes(kind);
    let total = passes * axes.iter().map(|a| a.1.len()).sum::<usize>();
    let mut done = 0;
    let mut best = start;
    let (mut best_score, mut best_model) = score(&best, data, val, key)?;
    for _ in 0..passes {
        let mut improved = false;
        for (name, values) in &axes {
            for &v in values {
                done += 1;
                progress(Progress { stage: "tune", model: kind.name(), done, total });
                let Some(cand) = with_param(&best, name, v) else {
                    continue;
                };
                if cand == best {
                    continue;
                }
                let (s, model) = score(&cand, data, val, key)?;
                if s > best_score {
                    (best, best_score, best_model, improved) = (cand, s, model, true);
                }
            }
        }
        if !improved {
            break;
        }
    }
    Ok((best, best_model))
}

/// Tunes every kind in `kinds` (and a blend's components) on a validation split of
/// `split`'s training data. Returns `(kind, chosen config, seconds spent)`.
pub(crate) fn tune(
    split: &Split,
    protocol: Protocol,
    seed: u64,
    kinds: &[ModelKind],
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<(ModelKind, ModelConfig, f64)>> {
    let val = split.validation(protocol, seed);
    let data = TrainData::from_split(&val)?;
    let key = protocol.primary_metric();
    let n_items = split.n_items;
    let ease_ok = n_items <= EaseParams::default().max_items;
    let mut base: Vec<ModelKind> = kinds.iter().copied().filter(|k| *k != ModelKind::Blend).collect();
    if kinds.contains(&ModelKind::Blend) {
        for k in blend_sources(ease_ok) {
            if !base.contains(&k) {
                base.push(k);
            }
        }
    }
    let mut chosen: HashMap<ModelKind, (ModelConfig, f64, Model)> = HashMap::new();
    let mut out = Vec::new();
    for kind in base {
        let t = Instant::now();
        let start = ModelConfig::default_for(kind, protocol, n_items);
        let passes = if kind == ModelKind::Transitions { 2 } else { 1 };
        let (config, model) = coordinate_search(start, &data, &val, key, passes, progress)?;
        let secs = t.elapsed().as_secs_f64();
        chosen.insert(kind, (config.clone(), secs, model));
        if kinds.contains(&kind) {
            out.push((kind, config, secs));
        }
    }
    if kinds.contains(&ModelKind::Blend) {
        let t = Instant::now();
        let parts: Vec<(ModelConfig, f32, &Model)> = blend_sources(ease_ok)
            .into_iter()
            .flat_map(|k| {
                let (c, _, m) = &chosen[&k];
                let recencies: &[f32] = match k {
                    ModelKind::Transitions
                    | ModelKind::Popularity
                    | ModelKind::TimePopularity
                    | ModelKind::Bridge => &[1.0],
                    _ => &[1.0, 0.98, 0.9],
                };
                recencies.iter().map(move |&r| (c.clone(), r, m)).collect::<Vec<_>>()
            })
            .collect();
        let config = tune_blend_weights(&parts, &val, key, progress)?;
        let base_secs: f64 = blend_sources(ease_ok).iter().map(|k| chosen[k].1).sum();
        out.push((ModelKind::Blend, config, base_secs + t.elapsed().as_secs_f64()));
    }
    Ok(out)
}

fn blend_sources(ease_ok: bool) -> Vec<ModelKind> {
    let mut v = Vec::new();
    if ease_ok {
        v.push(ModelKind::Ease);
    }
    v.extend([
        ModelKind::Als,
        ModelKind::Rp3Beta,
        ModelKind::Transitions,
        ModelKind::Bridge,
        ModelKind::ItemKnn,
        ModelKind::TimePopularity,
    ]);
    v
}

const WEIGHTS: [f32; 11] = [0.0, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0];
/// Upper bound on cached validation scores (users × items × sources).
const CACHE_BUDGET: usize = 80_000_000;

fn tune_blend_weights(
    parts: &[(ModelConfig, f32, &Model)],
    val: &Split,
    key: &str,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<ModelConfig> {
    let n_items = val.n_items;
    let mut users: Vec<usize> = val.test_users().collect();
    let max_users = (CACHE_BUDGET / (n_items.max(1) * parts.len().max(1))).max(50);
    if users.len() > max_users {
        let step = users.len() as f64 / max_users as f64;
        users = (0..max_users).map(|k| users[(k as f64 * step) as usize]).collect();
    }
    // normalised scores per source per user: cache[s][user_idx * n_items + item]
    let mut cache: Vec<Vec<f32>> = Vec::with_capacity(parts.len());
    for (s, (_, recency, model)) in parts.iter().enumerate() {
        progress(Progress { stage: "tune", model: "blend", done: s, total: parts.len() });
        let single = Model::Blend(crate::models::Blend::new(
            vec![crate::models::BlendComponent {
                name: String::new(),
                weight: 1.0,
                recency: *recency,
                model: (*model).clone(),
            }],
            Normalization::ZScore,
        )?);
        let mut scores = vec![0f32; users.len() * n_items];
        scores.par_chunks_mut(n_items.max(1)).zip(&users).for_each_init(Vec::new, |buf, (row, &u)| {
            let history: Vec<(u32, f32)> = val.train[u].iter().map(|&(i, _)| (i, 1.0)).collect();
            let times: Vec<i64> = val.train[u].iter().map(|x| x.1).collect();
            single.score_into_at(&history, &times, buf);
            row.copy_from_slice(&buf[..n_items]);
        });
        cache.push(scores);
    }
    let seen: Vec<Vec<u32>> = users.iter().map(|&u| val.train[u].iter().map(|x| x.0).collect()).collect();
    let metric_index = super::report::METRICS.iter().position(|m| *m == key).unwrap_or(0);
    let eval = |w: &[f32]| -> f64 {
        let active: Vec<(usize, f32)> = w.iter().copied().enumerate().filter(|x| x.1 != 0.0).collect();
        // collected then summed in user order: the same total whatever the threads
        let per_user: Vec<f64> = (0..users.len())
            .into_par_iter()
            .map_init(
                || vec![0f32; n_items],
                |acc, k| {
                    acc.fill(0.0);
                    for &(s, ws) in &active {
                        crate::linalg::axpy(ws, &cache[s][k * n_items..(k + 1) * n_items], acc);
                    }
                    let list: Vec<u32> =
                        top_k(acc, super::runner::LIST_LEN, &seen[k]).into_iter().map(|x| x.0).collect();
                    user_metrics(&list, &val.test[users[k]])[metric_index]
                },
            )
            .collect();
        per_user.iter().sum::<f64>() / users.len().max(1) as f64
    };
    let mut w = vec![0f32; parts.len()];
    w[0] = 1.0;
    let mut best = eval(&w);
    for pass in 0..3 {
        let mut improved = false;
        for s in 0..parts.len() {
            progress(Progress {
                stage: "tune",
                model: "blend",
                done: pass * parts.len() + s,
                total: 3 * parts.len(),
            });
            for &c in &WEIGHTS {
                if c == w[s] {
                    continue;
                }
                let mut cand = w.clone();
                cand[s] = c;
                if cand.iter().all(|&x| x == 0.0) {
                    continue;
                }
                let score = eval(&cand);
                // demand a real gain: tiny ones are validation noise and overfit the blend
                if score > best * 1.002 {
                    (best, w, improved) = (score, cand, true);
                }
            }
        }
        if !improved {
            break;
        }
    }
    let components = parts
        .iter()
        .zip(&w)
        .filter(|(_, &wt)| wt > 0.0)
        .map(|((config, recency, _), &weight)| BlendPart {
            weight,
            recency: *recency,
            config: config.clone(),
        })
        .collect();
    Ok(ModelConfig::Blend(BlendConfig { normalization: Normalization::ZScore, components }))
}
