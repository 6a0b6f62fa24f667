//! One regression tree: grown leaf by leaf (best gain first) on binned features from the
//! rows' gradients and hessians, then applied to raw feature values at serving time.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::bins::Binned;

/// A split node; a child index `< 0` is the leaf `!child`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Split {
    pub feature: u32,
    /// Rows with `value <= threshold` go left.
    pub threshold: f32,
    /// Where missing values (NaN) go.
    pub missing_left: bool,
    pub left: i32,
    pub right: i32,
    /// The loss reduction this split bought in training (for feature importance).
    pub gain: f32,
}

/// A regression tree over raw feature values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Tree {
    pub splits: Vec<Split>,
    pub leaves: Vec<f32>,
}

impl Tree {
    /// The leaf value for one row of features.
    pub fn predict(&self, row: &[f32]) -> f32 {
        if self.splits.is_empty() {
            return self.leaves[0];
        }
        let mut node = 0i32;
        while node >= 0 {
            let s = &self.splits[node as usize];
            let v = row.get(s.feature as usize).copied().unwrap_or(f32::NAN);
            let left = if v.is_nan() { s.missing_left } else { v <= s.threshold };
            node = if left { s.left } else { s.right };
        }
        self.leaves[(!node) as usize]
    }
}

/// The most splits on a path from the root to a leaf (call on a validated tree only: it
/// follows child links, which must point forward).
pub(crate) fn depth(tree: &Tree) -> usize {
    // splits are numbered after their parents, so one forward pass settles every depth
    let mut at = vec![0usize; tree.splits.len()];
    let mut deepest = usize::from(!tree.splits.is_empty());
    for (i, s) in tree.splits.iter().enumerate() {
        for child in [s.left, s.right] {
            if child >= 0 {
                at[child as usize] = at[i] + 1;
                deepest = deepest.max(at[i] + 2);
            }
        }
    }
    deepest
}

/// How a tree may grow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Growth {
    pub max_leaves: usize,
    pub max_depth: usize,
    pub min_rows_in_leaf: usize,
    pub min_hessian_in_leaf: f64,
    pub l2: f64,
    pub learning_rate: f64,
}

#[derive(Clone, Copy, Default)]
struct Sums {
    g: f64,
    h: f64,
    n: usize,
}

impl Sums {
    fn add(&mut self, g: f32, h: f32) {
        self.g += f64::from(g);
        self.h += f64::from(h);
        self.n += 1;
    }
    fn minus(self, o: Sums) -> Sums {
        Sums { g: self.g - o.g, h: self.h - o.h, n: self.n - o.n }
    }
    fn plus(self, o: Sums) -> Sums {
        Sums { g: self.g + o.g, h: self.h + o.h, n: self.n + o.n }
    }
    fn score(self, l2: f64) -> f64 {
        self.g * self.g / (self.h + l2)
    }
}

/// Per feature, per bin sums of a node's rows.
type Histogram = Vec<Vec<Sums>>;

#[derive(Clone, Copy)]
struct Candidate {
    gain: f64,
    feature: usize,
    bin: usize,
    missing_left: bool,
}

struct Leaf {
    rows: Vec<u32>,
    sums: Sums,
    depth: usize,
    hist: Histogram,
    best: Option<Candidate>,
    /// Where this leaf hangs: (split index, is left child); `None` for the root.
    parent: Option<(usize, bool)>,
}

fn histogram(data: &Binned, rows: &[u32], grad: &[f32], hess: &[f32]) -> Histogram {
    (0..data.bins.len())
        .into_par_iter()
        .map(|f| {
            let mut h = vec![Sums::default(); data.n_bins(f)];
            let column = &data.bins[f];
            for &r in rows {
                let r = r as usize;
                h[usize::from(column[r])].add(grad[r], hess[r]);
            }
            h
        })
        .collect()
}

fn best_split(hist: &Histogram, total: Sums, g: &Growth) -> Option<Candidate> {
    let parent = total.score(g.l2);
    let ok = |s: Sums| s.n >= g.min_rows_in_leaf && s.h >= g.min_hessian_in_leaf;
    let mut best: Option<Candidate> = None;
    for (f, h) in hist.iter().enumerate() {
        let missing = h[0];
        let mut left = Sums::default();
        // a split after bin b: bins 1..=b left; the last bin can't be a boundary
        for (b, &bin) in h.iter().enumerate().take(h.len() - 1).skip(1) {
            left = left.plus(bin);
            for missing_left in [false, true] {
                let l = if missing_left { left.plus(missing) } else { left };
                let r = total.minus(l);
                if !ok(l) || !ok(r) {
                    continue;
                }
                let gain = l.score(g.l2) + r.score(g.l2) - parent;
                if gain > 1e-12 && best.is_none_or(|c| gain > c.gain) {
                    best = Some(Candidate { gain, feature: f, bin: b, missing_left });
                }
            }
        }
        // every present value left, the missing ones right: "is it missing?" as a split
        if missing.n > 0 {
            let (l, r) = (total.minus(missing), missing);
            let gain = l.score(g.l2) + r.score(g.l2) - parent;
            if ok(l) && ok(r) && gain > 1e-12 && best.is_none_or(|c| gain > c.gain) {
                best = Some(Candidate { gain, feature: f, bin: h.len() - 1, missing_left: false });
            }
        }
    }
    best
}

/// Grows one tree on `rows` and returns it with each row's leaf value (indexed like `grad`,
/// zero for rows not in `rows`).
pub(crate) fn grow(
    data: &Binned,
    rows: Vec<u32>,
    grad: &[f32],
    hess: &[f32],
    g: &Growth,
) -> (Tree, Vec<f32>) {
    let mut sums = Sums::default();
    for &r in &rows {
        sums.add(grad[r as usize], hess[r as usize]);
    }
    let hist = histogram(data, &rows, grad, hess);
    let best = best_split(&hist, sums, g);
    let mut leaves = vec![Leaf { rows, sums, depth: 0, hist, best, parent: None }];
    let mut splits: Vec<Split> = Vec::new();
    while leaves.len() < g.max_leaves {
        let Some((at, c)) = leaves
            .iter()
            .enumerate()
            .filter(|(_, l)| l.depth < g.max_depth)
            .filter_map(|(i, l)| l.best.map(|c| (i, c)))
            .max_by(|a, b| a.1.gain.total_cmp(&b.1.gain).then(b.0.cmp(&a.0)))
        else {
            break;
        };
        let leaf = leaves.swap_remove(at);
        let column = &data.bins[c.feature];
        let (left_rows, right_rows): (Vec<u32>, Vec<u32>) = leaf.rows.iter().partition(|&&r| {
            let bin = usize::from(column[r as usize]);
            if bin == 0 {
                c.missing_left
            } else {
                bin <= c.bin
            }
        });
        // histogram of the smaller child, the larger one's by subtraction
        let small_is_left = left_rows.len() <= right_rows.len();
        let small = histogram(data, if small_is_left { &left_rows } else { &right_rows }, grad, hess);
        let large: Histogram = leaf
            .hist
            .iter()
            .zip(&small)
            .map(|(p, s)| p.iter().zip(s).map(|(&a, &b)| a.minus(b)).collect())
            .collect();
        let (left_hist, right_hist) = if small_is_left { (small, large) } else { (large, small) };
        let sum_of = |rows: &[u32]| {
            let mut s = Sums::default();
            for &r in rows {
                s.add(grad[r as usize], hess[r as usize]);
            }
            s
        };
        let (left_sums, right_sums) = (sum_of(&left_rows), sum_of(&right_rows));
        let index = splits.len();
        splits.push(Split {
            feature: c.feature as u32,
            // the missing-or-not split sends every present value left
            threshold: data.thresholds[c.feature].get(c.bin - 1).copied().unwrap_or(f32::MAX),
            missing_left: c.missing_left,
            left: -1,
            right: -1,
            gain: c.gain as f32,
        });
        if let Some((p, is_left)) = leaf.parent {
            if is_left {
                splits[p].left = index as i32;
            } else {
                splits[p].right = index as i32;
            }
        }
        let depth = leaf.depth + 1;
        for (rows, sums, hist, is_left) in
            [(left_rows, left_sums, left_hist, true), (right_rows, right_sums, right_hist, false)]
        {
            let best = best_split(&hist, sums, g);
            leaves.push(Leaf { rows, sums, depth, hist, best, parent: Some((index, is_left)) });
        }
    }
    // number the leaves, link them to their parents and write each row's value
    let mut values = vec![0f32; grad.len()];
    let mut leaf_values = Vec::with_capacity(leaves.len());
    for (i, leaf) in leaves.iter().enumerate() {
        let v = (-leaf.sums.g / (leaf.sums.h + g.l2) * g.learning_rate) as f32;
        leaf_values.push(v);
        for &r in &leaf.rows {
            values[r as usize] = v;
        }
        if let Some((p, is_left)) = leaf.parent {
            let child = !(i as i32);
            if is_left {
                splits[p].left = child;
            } else {
                splits[p].right = child;
            }
        }
    }
    (Tree { splits, leaves: leaf_values }, values)
}
