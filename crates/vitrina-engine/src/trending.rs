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

#[derive(Default)]
struct Counters {
    scores: Vec<[f32; 4]>,
    /// Time (online seconds) the item's scores are expressed at.
    at: Vec<u32>,
}

fn decay(window: Window, secs: f64) -> f32 {
    (0.5f64).powf(secs / window.half_life_secs()) as f32
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

    /// The list of `w`, overall or for one category (best first).
    pub fn list(&self, w: Window, category: Option<u32>) -> &[(u32, f32)] {
        let ranked = self.window(w);
        match category {
            None => &ranked.global,
            Some(c) => ranked.by_category.get(&c).map_or(&[], Vec::as_slice),
        }
    }
}

impl Trending {
    /// Adds an event worth `weight` on `item` at `ts` (online seconds). Out-of-order events
    /// are decayed to the item's current time instead of rewinding it.
    pub fn observe(&self, item: u32, ts: u32, weight: f32) {
        if weight == 0.0 || !weight.is_finite() {
            return;
        }
        let mut c = self.counters.lock().expect("trending lock");
        let i = item as usize;
        if i >= c.scores.len() {
            c.scores.resize(i + 1, [0.0; 4]);
            c.at.resize(i + 1, 0);
        }
        let at = c.at[i];
        let (shift_old, shift_new) =
            if ts >= at { (f64::from(ts - at), 0.0) } else { (0.0, f64::from(at - ts)) };
        for w in Window::ALL {
            let s = &mut c.scores[i][w.index()];
            *s = (*s * decay(w, shift_old) + weight * decay(w, shift_new)).max(0.0);
        }
        c.at[i] = at.max(ts);
    }

    /// The current score of `item` in `window` at time `now` (online seconds).
    pub fn score(&self, item: u32, window: Window, now: u32) -> f32 {
        let c = self.counters.lock().expect("trending lock");
        let i = item as usize;
        c.scores
            .get(i)
            .map_or(0.0, |s| s[window.index()] * decay(window, f64::from(now.saturating_sub(c.at[i]))))
    }

    /// Ranks the available catalogue items of every window at `now`: the best `top` overall
    /// and the best `per_category` in each category.
    pub fn snapshot(&self, catalog: &Catalog, now: u32, top: usize, per_category: usize) -> TrendingLists {
        let current: Vec<(u32, [f32; 4])> = {
            let c = self.counters.lock().expect("trending lock");
            c.scores
                .iter()
                .zip(&c.at)
                .enumerate()
                .filter(|(_, (s, _))| s.iter().any(|v| *v > 0.0))
                .map(|(i, (s, at))| {
                    let age = f64::from(now.saturating_sub(*at));
                    (i as u32, Window::ALL.map(|w| s[w.index()] * decay(w, age)))
                })
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
        for w in Window::ALL {
            let mut scored: Vec<(u32, f32, u32)> = current
                .iter()
                .filter_map(|(i, s)| catalog.available(*i).map(|e| (*i, s[w.index()], e.category)))
                .filter(|x| x.1 > 0.0)
                .collect();
            scored.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let ranked = &mut lists.windows[w.index()];
            ranked.global = scored.iter().take(top).map(|x| (x.0, x.1)).collect();
            for (i, s, c) in scored {
                let list = ranked.by_category.entry(c).or_default();
                if list.len() < per_category {
                    list.push((i, s));
                }
            }
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
        assert!((t.score(0, Window::Day, day) - 2.0).abs() < 1e-4);
        let catalog = Catalog::new([product("old", "a", "1.00"), product("new", "b", "1.00")]);
        let lists = t.snapshot(&catalog, 10 * day, 10, 10);
        assert_eq!(lists.list(Window::Day, None)[0].0, 1, "a day's half-life favours the fresh item");
        assert_eq!(lists.list(Window::Month, None)[0].0, 0, "a month's favours the heavy one");
        assert_eq!(lists.list(Window::Day, Some(0)).len(), 1);
    }

    #[test]
    fn late_events_do_not_rewind_time_and_unavailable_items_are_left_out() {
        let t = Trending::default();
        t.observe(0, 10_000, 1.0);
        t.observe(0, 10_000 - 3600, 1.0); // an hour late: worth half in the hour window
        assert!((t.score(0, Window::Hour, 10_000) - 1.5).abs() < 1e-4);
        let mut hidden = product("h", "a", "1.00");
        hidden.hidden = true;
        let catalog = Catalog::new([hidden]);
        assert!(t.snapshot(&catalog, 10_000, 10, 10).list(Window::Hour, None).is_empty());
        assert_eq!("week".parse::<Window>(), Ok(Window::Week));
        assert!("year".parse::<Window>().is_err());
    }
}
