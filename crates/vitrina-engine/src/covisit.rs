//! Live co-visitation: items visitors interacted with close together since the active model
//! was trained. The trained item-kNN knows everything before its data range; this fills in
//! what happened after, so a new pairing shows up in lists within milliseconds.
//!
//! Each item keeps its heaviest partners in a fixed-size list (space-saving: a new partner
//! replaces the lightest one and inherits its weight), so memory is bounded.

use std::{collections::HashMap, sync::Mutex};

const SHARDS: usize = 64;

type Shard = Mutex<HashMap<u32, Vec<(u32, f32)>>>;

/// Bounded item → partner weights.
pub struct CoVisits {
    shards: Box<[Shard]>,
    per_item: usize,
}

impl CoVisits {
    pub fn new(per_item: usize) -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(), per_item: per_item.max(1) }
    }

    fn shard(&self, item: u32) -> &Shard {
        &self.shards[item as usize % SHARDS]
    }

    /// Adds `weight` to the pair `a → b`.
    pub fn add(&self, a: u32, b: u32, weight: f32) {
        if a == b || !(weight > 0.0 && weight.is_finite()) {
            return;
        }
        let mut shard = self.shard(a).lock().expect("covisit lock");
        let list = shard.entry(a).or_default();
        if let Some(e) = list.iter_mut().find(|e| e.0 == b) {
            e.1 += weight;
        } else if list.len() < self.per_item {
            list.push((b, weight));
        } else if let Some(min) = list.iter_mut().min_by(|x, y| x.1.total_cmp(&y.1)) {
            *min = (b, min.1 + weight);
        }
    }

    /// `a`'s partners and their weights.
    pub fn partners(&self, a: u32) -> Vec<(u32, f32)> {
        self.shard(a).lock().expect("covisit lock").get(&a).cloned().unwrap_or_default()
    }

    /// Every item's partners, by item.
    pub fn export(&self) -> Vec<(u32, Vec<(u32, f32)>)> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            out.extend(s.lock().expect("covisit lock").iter().map(|(a, list)| (*a, list.clone())));
        }
        out.sort_unstable_by_key(|(a, _)| *a);
        out
    }

    /// Sets `a`'s partners (a checkpoint being restored), keeping the heaviest if too many.
    pub fn import(&self, a: u32, mut partners: Vec<(u32, f32)>) {
        partners.retain(|(b, w)| *b != a && *w > 0.0 && w.is_finite());
        if partners.len() > self.per_item {
            partners.sort_unstable_by(|x, y| y.1.total_cmp(&x.1));
            partners.truncate(self.per_item);
        }
        self.shard(a).lock().expect("covisit lock").insert(a, partners);
    }

    /// Forgets everything (a new model covers it now).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.lock().expect("covisit lock").clear();
        }
    }
}

/// A co-visitation weight as a similarity in [0, 1): `c / (c + shrink)`.
pub fn similarity(weight: f32, shrink: f32) -> f32 {
    weight / (weight + shrink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_pairs_and_bounds_each_list() {
        let c = CoVisits::new(2);
        c.add(1, 2, 1.0);
        c.add(1, 2, 1.0);
        c.add(1, 3, 0.5);
        c.add(1, 1, 9.0); // self pairs are ignored
        let mut p = c.partners(1);
        p.sort_by_key(|x| x.0);
        assert_eq!(p, [(2, 2.0), (3, 0.5)]);
        c.add(1, 4, 1.0); // replaces the lightest (3) and inherits its weight
        let mut p = c.partners(1);
        p.sort_by_key(|x| x.0);
        assert_eq!(p, [(2, 2.0), (4, 1.5)]);
        c.clear();
        assert!(c.partners(1).is_empty());
        assert!((similarity(5.0, 5.0) - 0.5).abs() < 1e-6);
    }
}
