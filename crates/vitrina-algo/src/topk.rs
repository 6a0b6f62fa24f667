//! Top-k selection over a dense score vector, skipping excluded items.

use std::cmp::Ordering;

/// The `k` best `(item, score)` pairs, best first, ties broken by the lower item id.
///
/// Items in `exclude` (any order, may repeat or be out of range) and non-finite scores are
/// skipped.
pub fn top_k(scores: &[f32], k: usize, exclude: &[u32]) -> Vec<(u32, f32)> {
    if k == 0 {
        return Vec::new();
    }
    let mut excluded = vec![false; scores.len()];
    for &e in exclude {
        if let Some(slot) = excluded.get_mut(e as usize) {
            *slot = true;
        }
    }
    let mut cands: Vec<(u32, f32)> = scores
        .iter()
        .enumerate()
        .filter(|&(i, s)| !excluded[i] && s.is_finite())
        .map(|(i, &s)| (i as u32, s))
        .collect();
    let better = |a: &(u32, f32), b: &(u32, f32)| -> Ordering {
        b.1.partial_cmp(&a.1).unwrap_or(Ordering::Equal).then(a.0.cmp(&b.0))
    };
    if cands.len() > k {
        cands.select_nth_unstable_by(k - 1, better);
        cands.truncate(k);
    }
    cands.sort_unstable_by(better);
    cands
}

/// The 0-based rank `target` would get among non-excluded items (`None` if excluded or
/// not finite). Ties count against the target, so constant scores give no free hits.
pub fn rank_of(scores: &[f32], target: u32, excluded: &[bool]) -> Option<usize> {
    let t = *scores.get(target as usize)?;
    if !t.is_finite() || excluded.get(target as usize).copied().unwrap_or(false) {
        return None;
    }
    let ahead =
        scores.iter().enumerate().filter(|&(i, &s)| i != target as usize && !excluded[i] && s >= t).count();
    Some(ahead)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn picks_best_and_skips_excluded() {
        let s = [0.1, 0.9, 0.5, f32::NAN, 0.9, 0.7];
        assert_eq!(top_k(&s, 3, &[1]), vec![(4, 0.9), (5, 0.7), (2, 0.5)]);
        assert_eq!(top_k(&s, 0, &[]), vec![]);
        assert_eq!(top_k(&s, 2, &[99]), vec![(1, 0.9), (4, 0.9)]);
    }

    #[test]
    fn rank_counts_ties_against_target() {
        let s = [0.5, 0.5, 0.1];
        let ex = [false; 3];
        assert_eq!(rank_of(&s, 1, &ex), Some(1));
        assert_eq!(rank_of(&s, 2, &ex), Some(2));
        assert_eq!(rank_of(&s, 2, &[true, false, false]), Some(1));
    }

    proptest! {
        #[test]
        fn top_k_is_sorted_deduped_and_respects_exclusions(
            scores in proptest::collection::vec(-10f32..10.0, 0..60),
            k in 0usize..20,
            exclude in proptest::collection::vec(0u32..70, 0..10),
        ) {
            let top = top_k(&scores, k, &exclude);
            prop_assert!(top.len() <= k);
            prop_assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
            prop_assert!(top.iter().all(|(i, _)| !exclude.contains(i)));
            let mut ids: Vec<u32> = top.iter().map(|t| t.0).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), top.len());
        }
    }
}
