//! Live popularity: per item, exponentially decayed interaction mass over four time scales,
//! updated by every event; ranked lists (overall and per category) are snapshots taken
//! every second or so, so serving never sorts the catalogue.

use std::{collections::HashMap, str::FromStr, sync::Mutex};

use crate::catalog::Catalog;

/// The time scale of a popularity count: its half-life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Hour,
    Day,
    Week,
    Month,
}

impl Window {
    pub const ALL: [Window; 4] = [Self::Hour, Self::Day, Self::Week, Self::Month];

    pub fn half_life_secs(self) -> f64 {
        match self {
            Self::Hour => 3_600.0,
            Self::Day => 86_400.0,
            Self::Week => 7.0 * 86_400.0,
            Self::Month => 30.0 * 86_400.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl FromStr for Window {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|w| w.as_str() == raw)
            .ok_or_else(|| format!("unknown window {raw:?} (expected hour, day, week or month)"))
    }
}

/// Scores are kept as of a per-window reference time and rescaled when events run this many
/// half-lives past it, so they neither overflow nor underflow however old the data is.
const RESCALE_AFTER_HALF_LIVES: f64 = 16.0;

#[derive(Default)]
struct Counters {
    /// Per item and window: `Σ weight · 2^((t − reference) / half-life)`.
    scores: Vec<[f32; 4]>,
    /// Per window, the reference time (online seconds) the scores are expressed at.
    reference: [i64; 4],
    started: bool,
}

impl Counters {
    fn observe(&mut self, item: usize, ts: i64, weight: f32) {
        if !self.started {
            self.reference = [ts; 4];
            self.started = true;
        }
        if item >= self.scores.len() {
            self.scores.resize(item + 1, [0.0; 4]);
        }
        for w in Window::ALL {
            let k = w.index();
            let h = w.half_life_secs();
            let ahead = (ts - self.reference[k]) as f64;
            if ahead > RESCALE_AFTER_HALF_LIVES * h {
                let factor = (0.5f64).powf(ahead / h) as f32;
                for s in &mut self.scores {
                    s[k] *= factor;
                }
                self.reference[k] = ts;
            }
            let boost = (2f64).powf((ts - self.reference[k]) as f64 / h) as f32;
            let s = &mut self.scores[item][k];
            *s = (*s + weight * boost).max(0.0);
        }
    }
}

/// The counters as a checkpoint holds them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrendingState {
    /// Per item index and window (hour, day, week, month).
    pub scores: Vec<[f32; 4]>,
    pub reference: [i64; 4],
    pub started: bool,
}

/// The decayed counters of every item.
#[derive(Default)]
pub struct Trending {
    counters: Mutex<Counters>,
}

/// One window's ranked lists.
#[derive(Debug, Default, Clone)]
pub struct Ranked {
    pub global: Vec<(u32, f32)>,
    pub by_category: HashMap<u32, Vec<(u32, f32)>>,
}

/// A snapshot of the ranked lists of every window.
#[derive(Debug, Default, Clone)]
pub struct TrendingLists {
    windows: [Ranked; 4],
    /// The newest available products, `(item, created ms)`, newest first.
    newest: Vec<(u32, i64)>,
    /// Per item, its score in each window over the window's best (0–1).
    relative: Vec<[f32; 4]>,
}

/// Products kept in the newest list.
const NEWEST: usize = 200;

impl TrendingLists {
    pub fn newest(&self) -> &[(u32, i64)] {
        &self.newest
    }

    pub fn window(&self, w: Window) -> &Ranked {
        &self.windows[w.index()]
    }

    /// How popular `item` is in each window ([`Window::ALL`] order), relative to the most
    /// popular item there (0–1; 0 for an item without events).
    pub fn popularity(&self, item: u32) -> [f32; 4] {
        self.relative.get(item as usize).copied().unwrap_or_default()
    }

    /// The list of `w`, overall or for one category (best first).
    pub fn list(&self, w: Window, category: Option<u32>) -> &[(u32, f32)] {
        let ranked = self.window(w);
        match category {
            None => &ranked.global,
            Some(c) => ranked.by_category.get(&c).map_or(&[], Vec::as_slice),
        }
    }
}

/// The `n` best, best first (ties: lower item), without sorting everything.
fn best(mut items: Vec<(u32, f32)>, n: usize) -> Vec<(u32, f32)> {
    let better = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if items.len() > n && n > 0 {
        items.select_nth_unstable_by(n - 1, better);
        items.truncate(n);
    }
    items.truncate(n);
    items.sort_unstable_by(better);
    items
}

impl Trending {
    /// Adds an event worth `weight` on `item` at `ts` (online seconds). Late events count
    /// less, as they would have decayed by now; nothing is rewound.
    pub fn observe(&self, item: u32, ts: u32, weight: f32) {
        if weight == 0.0 || !weight.is_finite() {
            return;
        }
        self.counters.lock().expect("trending lock").observe(item as usize, i64::from(ts), weight);
    }

    /// The counters (for a checkpoint).
    pub fn export(&self) -> TrendingState {
        let c = self.counters.lock().expect("trending lock");
        TrendingState { scores: c.scores.clone(), reference: c.reference, started: c.started }
    }

    /// Replaces the counters (a checkpoint being restored).
    pub fn import(&self, state: TrendingState) {
        *self.counters.lock().expect("trending lock") =
            Counters { scores: state.scores, reference: state.reference, started: state.started };
    }

    /// The score of `item` in `window` as of time `now` (online seconds).
    pub fn score(&self, item: u32, window: Window, now: u32) -> f32 {
        let c = self.counters.lock().expect("trending lock");
        let k = window.index();
        let age = (i64::from(now) - c.reference[k]) as f64;
        c.scores
            .get(item as usize)
            .map_or(0.0, |s| s[k] * (0.5f64).powf(age / window.half_life_secs()) as f32)
    }

    /// Ranks the available catalogue items of every window: the best `top` overall and the
    /// best `per_category` in each category. Scores are relative to the most recent activity,
    /// so a shop whose last events are old still has trending items.
    pub fn snapshot(&self, catalog: &Catalog, top: usize, per_category: usize) -> TrendingLists {
        let current: Vec<(u32, [f32; 4])> = {
            let c = self.counters.lock().expect("trending lock");
            c.scores
                .iter()
                .enumerate()
                .filter(|(_, s)| s.iter().any(|v| *v > 0.0))
                .map(|(i, s)| (i as u32, *s))
                .collect()
        };
        let mut lists = TrendingLists::default();
        let mut newest: Vec<(u32, i64)> =
            catalog.entries().filter(|(_, e)| e.available()).map(|(i, e)| (i, e.created_ms)).collect();
        let newer = |a: &(u32, i64), b: &(u32, i64)| b.1.cmp(&a.1).then(a.0.cmp(&b.0));
        if newest.len() > NEWEST {
            newest.select_nth_unstable_by(NEWEST - 1, newer);
            newest.truncate(NEWEST);
        }
        newest.sort_unstable_by(newer);
        lists.newest = newest;
        let mut max = [0f32; 4];
        for (_, s) in &current {
            for (m, v) in max.iter_mut().zip(s) {
                *m = m.max(*v);
            }
        }
        let mut relative = vec![[0f32; 4]; current.last().map_or(0, |c| c.0 as usize + 1)];
        for (i, s) in &current {
            for k in 0..4 {
                relative[*i as usize][k] = if max[k] > 0.0 { s[k] / max[k] } else { 0.0 };
            }
        }
        lists.relative = relative;
        for w in Window::ALL {
            let mut by_category: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
            let mut global: Vec<(u32, f32)> = Vec::with_capacity(current.len());
            for (i, s) in &current {
                let score = s[w.index()];
                if score > 0.0 {
                    if let Some(e) = catalog.available(*i) {
                        global.push((*i, score));
                        by_category.entry(e.category).or_default().push((*i, score));
                    }
                }
            }
            let ranked = &mut lists.windows[w.index()];
            ranked.global = best(global, top);
            ranked.by_category =
                by_category.into_iter().map(|(c, items)| (c, best(items, per_category))).collect();
        }
        lists
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::tests::product;

    #[test]
    fn scores_halve_every_half_life_and_lists_rank_by_window() {
        let t = Trending::default();
        let day = 86_400u32;
        t.observe(0, 0, 4.0); // old and heavy
        t.observe(1, 10 * day, 1.0); // fresh and light
        assert!((t.score(0, Window::Day, day) - 2.0).abs() < 1e-3, "{}", t.score(0, Window::Day, day));
        let catalog = Catalog::new([product("old", "a", "1.00"), product("new", "b", "1.00")]);
        let lists = t.snapshot(&catalog, 10, 10);
        assert_eq!(lists.list(Window::Day, None)[0].0, 1, "a day's half-life favours the fresh item");
        assert_eq!(lists.list(Window::Month, None)[0].0, 0, "a month's favours the heavy one");
        assert_eq!(lists.list(Window::Day, Some(0)).len(), 1);
        // relative popularity: the fresh item leads the day, the heavy one the month
        let (old, new) = (lists.popularity(0), lists.popularity(1));
        assert_eq!((new[Window::Day.index()], old[Window::Month.index()]), (1.0, 1.0));
        assert!(old[Window::Day.index()] < 0.01 && new[Window::Month.index()] < 1.0);
        assert_eq!(lists.popularity(7), [0.0; 4]);
    }

    #[test]
    fn late_events_count_less_and_unavailable_items_are_left_out() {
        let t = Trending::default();
        t.observe(0, 10_000, 1.0);
        t.observe(0, 10_000 - 3600, 1.0); // an hour late: worth half in the hour window
        assert!((t.score(0, Window::Hour, 10_000) - 1.5).abs() < 1e-4);
        let mut hidden = product("h", "a", "1.00");
        hidden.hidden = true;
        let catalog = Catalog::new([hidden]);
        assert!(t.snapshot(&catalog, 10, 10).list(Window::Hour, None).is_empty());
        assert_eq!("week".parse::<Window>(), Ok(Window::Week));
        assert!("year".parse::<Window>().is_err());
    }

    #[test]
    fn years_of_history_neither_overflow_nor_empty_the_lists() {
        let t = Trending::default();
        let year = 365 * 86_400u32;
        for k in 0..1000u32 {
            t.observe(k % 7, k * (2 * year / 1000), 1.0 + (k % 3) as f32);
        }
        let catalog = Catalog::new((0..7).map(|i| product(&format!("p{i}"), "a", "1.00")));
        let lists = t.snapshot(&catalog, 10, 10);
        for w in Window::ALL {
            let list = lists.list(w, None);
            assert!(!list.is_empty() && list.iter().all(|x| x.1.is_finite()), "{w:?}: {list:?}");
        }
    }
}
