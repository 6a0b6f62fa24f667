//! Training of the co-visitation model: event-type weights, time decay, item neighbours
//! and decayed popularity, built in one pass over the event log.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ActivityType, NewActivity, ProductId, StoredActivity, UserId, ValidationError};

/// Parameters of a training job (`POST /api/v1/training/train` → `config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Weight of one event of each activity type. Types left out keep their default.
    pub weights: HashMap<ActivityType, f32>,
    /// Per-day decay factor in (0, 1]: an event `d` days older than the newest counts `timeDecay^d`.
    pub time_decay: f64,
    /// Neighbours kept per item.
    pub neighbours: usize,
    /// Most recent distinct items per user that take part in co-visitation.
    pub max_items_per_user: usize,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self { weights: HashMap::new(), time_decay: 0.95, neighbours: 50, max_items_per_user: 100 }
    }
}

/// Default weight of each activity type. A rating's weight is multiplied by its value.
pub fn default_weight(t: ActivityType) -> f32 {
    match t {
        ActivityType::View => 1.0,
        ActivityType::Click => 1.5,
        ActivityType::Like => 2.0,
        ActivityType::AddToCart => 2.5,
        ActivityType::RemoveFromCart => -1.0,
        ActivityType::Purchase => 5.0,
        ActivityType::Search => 0.0,
        ActivityType::Rating => 0.5,
    }
}

impl TrainingConfig {
    pub fn validate(&self) -> Result<(), ValidationError> {
        if !(self.time_decay > 0.0 && self.time_decay <= 1.0) {
            return Err(ValidationError::new("config.timeDecay", "must be in (0, 1]"));
        }
        for (t, w) in &self.weights {
            if !w.is_finite() || !(-100.0..=100.0).contains(w) {
                return Err(ValidationError::new(
                    format!("config.weights.{t}"),
                    "must be a number from -100 to 100",
                ));
            }
        }
        if !(1..=1000).contains(&self.neighbours) {
            return Err(ValidationError::new("config.neighbours", "must be from 1 to 1000"));
        }
        if !(2..=10_000).contains(&self.max_items_per_user) {
            return Err(ValidationError::new("config.maxItemsPerUser", "must be from 2 to 10000"));
        }
        Ok(())
    }

    pub fn weight(&self, t: ActivityType) -> f32 {
        self.weights.get(&t).copied().unwrap_or_else(|| default_weight(t))
    }

    /// The signed interest an event expresses, before time decay.
    pub fn event_weight(&self, e: &NewActivity) -> f32 {
        let w = self.weight(e.activity_type);
        match e.activity_type {
            ActivityType::Rating => w * e.rating_value().unwrap_or(0.0) as f32,
            _ => w,
        }
    }

    /// `timeDecay` raised to the age of `ts` in days at `reference` (never above 1).
    pub fn decay(&self, ts: DateTime<Utc>, reference: DateTime<Utc>) -> f32 {
        let days = ((reference - ts).num_seconds().max(0) as f64) / 86_400.0;
        self.time_decay.powf(days) as f32
    }
}

/// The trained model: item neighbours and decayed popularity.
#[derive(Debug, Clone, Default)]
pub struct CoVisitationModel {
    /// Per item, its most similar items (cosine over users' weighted interactions), best first.
    pub neighbours: HashMap<ProductId, Vec<(ProductId, f32)>>,
    /// Time-decayed weighted interaction mass per item, best first.
    pub popular: Vec<(ProductId, f32)>,
    pub config: TrainingConfig,
}

impl CoVisitationModel {
    pub fn popularity_max(&self) -> f32 {
        self.popular.first().map_or(0.0, |p| p.1)
    }
}

/// What a finished build saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildSummary {
    pub events: u64,
    pub users: u64,
    pub items: u64,
    pub item_pairs: u64,
}

/// Accumulates events, then builds a [`CoVisitationModel`].
#[derive(Debug, Default)]
pub struct ModelBuilder {
    config: TrainingConfig,
    /// Per user, per item: (weight sum, decay reference applied later, latest event time).
    users: HashMap<UserId, HashMap<ProductId, (f32, i64)>>,
    events: Vec<(UserId, ProductId, f32, i64)>,
    latest_ms: i64,
}

impl ModelBuilder {
    pub fn new(config: TrainingConfig) -> Self {
        Self { config, ..Default::default() }
    }

    pub fn add(&mut self, stored: &StoredActivity) {
        let e = &stored.event;
        let Some(product) = &e.product_id else { return };
        let w = self.config.event_weight(e);
        if w == 0.0 {
            return;
        }
        let ms = e.timestamp.timestamp_millis();
        self.latest_ms = self.latest_ms.max(ms);
        self.events.push((e.user_id.clone(), product.clone(), w, ms));
    }

    /// Builds the model. Time decay is measured from the newest event seen, so replaying
    /// an old log gives the same model as training it when it was fresh.
    pub fn build(mut self, progress: &mut dyn FnMut(f32)) -> (CoVisitationModel, BuildSummary) {
        let reference = crate::time::from_millis(self.latest_ms);
        let mut popularity: HashMap<ProductId, f32> = HashMap::new();
        let n_events = self.events.len() as u64;
        for (user, product, w, ms) in std::mem::take(&mut self.events) {
            let dw = w * self.config.decay(crate::time::from_millis(ms), reference);
            *popularity.entry(product.clone()).or_default() += dw;
            let entry = self.users.entry(user).or_default().entry(product).or_insert((0.0, ms));
            entry.0 += dw;
            entry.1 = entry.1.max(ms);
        }
        progress(0.3);

        let mut norms: HashMap<&ProductId, f32> = HashMap::new();
        let mut co: HashMap<(&ProductId, &ProductId), f32> = HashMap::new();
        let n_users = self.users.len().max(1);
        for (i, items) in self.users.values().enumerate() {
            let mut positive: Vec<(&ProductId, f32, i64)> =
                items.iter().filter(|(_, (w, _))| *w > 0.0).map(|(p, (w, t))| (p, *w, *t)).collect();
            positive.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(b.0)));
            positive.truncate(self.config.max_items_per_user);
            for &(p, w, _) in &positive {
                *norms.entry(p).or_default() += w * w;
            }
            for (a, &(p, wp, _)) in positive.iter().enumerate() {
                for &(q, wq, _) in &positive[a + 1..] {
                    let key = if p < q { (p, q) } else { (q, p) };
                    *co.entry(key).or_default() += wp * wq;
                }
            }
            if i % 4096 == 0 {
                progress(0.3 + 0.5 * i as f32 / n_users as f32);
            }
        }

        let mut neighbours: HashMap<ProductId, Vec<(ProductId, f32)>> = HashMap::new();
        let item_pairs = co.len() as u64;
        for ((p, q), c) in co {
            let sim = c / (norms[p].sqrt() * norms[q].sqrt());
            if sim.is_finite() && sim > 0.0 {
                neighbours.entry(p.clone()).or_default().push((q.clone(), sim));
                neighbours.entry(q.clone()).or_default().push((p.clone(), sim));
            }
        }
        for list in neighbours.values_mut() {
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            list.truncate(self.config.neighbours);
        }
        let mut popular: Vec<(ProductId, f32)> = popularity.into_iter().filter(|(_, w)| *w > 0.0).collect();
        popular.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        progress(1.0);

        let summary = BuildSummary {
            events: n_events,
            users: self.users.len() as u64,
            items: popular.len() as u64,
            item_pairs,
        };
        (CoVisitationModel { neighbours, popular, config: self.config }, summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{time::from_millis, ActivityInput, EventId};

    pub(crate) fn event(seq: u64, user: &str, kind: &str, product: &str, ms: i64) -> StoredActivity {
        let input = ActivityInput {
            event_id: Some(EventId::generate().to_string()),
            user_id: Some(user.into()),
            activity_type: Some(kind.into()),
            product_id: Some(product.into()),
            timestamp: Some(serde_json::json!(ms)),
            ..Default::default()
        };
        let event = NewActivity::validate(input, from_millis(ms)).unwrap();
        StoredActivity { seq, event, received_at: from_millis(ms) }
    }

    #[test]
    fn co_visited_items_become_neighbours_and_popularity_follows_weights() {
        let day = 86_400_000;
        let t0 = 1_700_000_000_000;
        let events = [
            event(1, "a", "view", "p1", t0),
            event(2, "a", "view", "p2", t0),
            event(3, "b", "view", "p1", t0),
            event(4, "b", "purchase", "p2", t0),
            event(5, "c", "view", "p3", t0 + day),
        ];
        let mut b = ModelBuilder::new(TrainingConfig::default());
        events.iter().for_each(|e| b.add(e));
        let (model, summary) = b.build(&mut |_| {});
        assert_eq!(summary, BuildSummary { events: 5, users: 3, items: 3, item_pairs: 1 });
        let n1 = &model.neighbours[&ProductId::parse("p1").unwrap()];
        assert_eq!(n1.len(), 1);
        assert_eq!(n1[0].0.as_str(), "p2");
        assert!(!model.neighbours.contains_key(&ProductId::parse("p3").unwrap()));
        // p2: view 1·0.95 + purchase 5·0.95 (a day older than the newest event); p1: 2·0.95; p3: 1.
        let pop: HashMap<_, _> = model.popular.iter().map(|(p, w)| (p.as_str(), *w)).collect();
        assert!((pop["p2"] - 6.0 * 0.95).abs() < 1e-5, "{pop:?}");
        assert!((pop["p1"] - 2.0 * 0.95).abs() < 1e-5);
        assert!((pop["p3"] - 1.0).abs() < 1e-6);
        assert_eq!(model.popular[0].0.as_str(), "p2");
    }

    #[test]
    fn config_validation_names_the_field() {
        let mut c = TrainingConfig { time_decay: 0.0, ..Default::default() };
        assert_eq!(c.validate().unwrap_err().field, "config.timeDecay");
        c.time_decay = 0.9;
        c.weights.insert(ActivityType::View, f32::INFINITY);
        assert_eq!(c.validate().unwrap_err().field, "config.weights.view");
    }

    #[test]
    fn config_parses_the_seed_shape() {
        let c: TrainingConfig = serde_json::from_value(serde_json::json!(
            {"weights": {"view": 1.0, "add_to_cart": 2.5, "purchase": 5.0}, "timeDecay": 0.9}
        ))
        .unwrap();
        assert_eq!(c.weight(ActivityType::AddToCart), 2.5);
        assert_eq!(c.weight(ActivityType::Like), default_weight(ActivityType::Like));
        assert!(serde_json::from_value::<TrainingConfig>(serde_json::json!({"weights": {"teleport": 1}}))
            .is_err());
    }
}
