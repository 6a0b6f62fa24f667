//! The LambdaMART objective: per list, the gradient of a pairwise logistic loss weighted by
//! how much swapping the pair would change NDCG@k (Burges, "From RankNet to LambdaRank to
//! LambdaMART: An Overview", 2010), and graded NDCG@k to measure a ranking.

use crate::eval::metrics::discount;

/// The gain of a graded label: `2^label - 1`.
fn gain(label: f32) -> f64 {
    f64::from(label).exp2() - 1.0
}

/// Ideal DCG@k of `labels`.
fn ideal_dcg(labels: &[f32], k: usize) -> f64 {
    let mut sorted: Vec<f32> = labels.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    sorted.iter().take(k).enumerate().map(|(r, &l)| gain(l) * discount(r)).sum()
}

/// Row order of a list by descending score; ties keep the row order, so a ranking is the
/// same however often it is computed.
fn order_by_score(scores: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
}

/// Graded NDCG@k of one list ranked by `scores`; `None` when no row is relevant.
pub fn ndcg_at(scores: &[f32], labels: &[f32], k: usize) -> Option<f64> {
    let ideal = ideal_dcg(labels, k);
    if ideal <= 0.0 {
        return None;
    }
    let dcg: f64 =
        order_by_score(scores).iter().take(k).enumerate().map(|(r, &i)| gain(labels[i]) * discount(r)).sum();
    Some(dcg / ideal)
}

/// Writes one list's gradients and hessians (`grad`, `hess`, one per row) for the current
/// `scores`. Pairs with equal labels and pairs with both rows below rank `k` contribute
/// nothing; `sigma` is the logistic's steepness.
pub(crate) fn list_gradients(
    scores: &[f32],
    labels: &[f32],
    k: usize,
    sigma: f64,
    grad: &mut [f32],
    hess: &mut [f32],
) {
    grad.fill(0.0);
    hess.fill(0.0);
    let ideal = ideal_dcg(labels, k);
    if ideal <= 0.0 {
        return;
    }
    let inverse_ideal = 1.0 / ideal;
    let order = order_by_score(scores);
    let mut rank = vec![0usize; scores.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    let (mut g, mut h) = (vec![0f64; scores.len()], vec![0f64; scores.len()]);
    let mut total = 0.0;
    for (ri, &i) in order.iter().enumerate() {
        for &j in &order[ri + 1..] {
            let (hi, lo) = match labels[i].total_cmp(&labels[j]) {
                std::cmp::Ordering::Greater => (i, j),
                std::cmp::Ordering::Less => (j, i),
                std::cmp::Ordering::Equal => continue,
            };
            if rank[hi].min(rank[lo]) >= k {
                continue;
            }
            let delta_ndcg = (gain(labels[hi]) - gain(labels[lo]))
                * (discount(rank[hi]) - discount(rank[lo])).abs()
                * inverse_ideal;
            let diff = f64::from(scores[hi]) - f64::from(scores[lo]);
            let p = 1.0 / (1.0 + (sigma * diff).exp());
            let lambda = -sigma * p * delta_ndcg;
            let second = sigma * sigma * p * (1.0 - p) * delta_ndcg;
            g[hi] += lambda;
            g[lo] -= lambda;
            h[hi] += second;
            h[lo] += second;
            total -= 2.0 * lambda;
        }
    }
    // as LightGBM does: damp lists whose pairs are many, so long lists do not drown short ones
    let norm = if total > 0.0 { (1.0 + total).log2() / total } else { 1.0 };
    for (i, (gi, hi)) in g.iter().zip(&h).enumerate() {
        grad[i] = (gi * norm) as f32;
        hess[i] = (hi * norm) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndcg_is_one_for_the_ideal_order_and_hand_computed_otherwise() {
        let labels = [0.0, 2.0, 1.0];
        assert_eq!(ndcg_at(&[0.0, 2.0, 1.0], &labels, 3), Some(1.0));
        // order: row 0 (0), row 2 (1), row 1 (2)
        let dcg = 1.0 / 3f64.log2() + 3.0 / 2.0;
        let ideal = 3.0 + 1.0 / 3f64.log2();
        let got = ndcg_at(&[2.0, 0.0, 1.0], &labels, 3).unwrap();
        assert!((got - dcg / ideal).abs() < 1e-12);
        assert_eq!(ndcg_at(&[1.0, 2.0], &[0.0, 0.0], 3), None);
    }

    #[test]
    fn gradients_push_the_relevant_row_up_and_the_rest_down() {
        let (mut g, mut h) = (vec![0f32; 3], vec![0f32; 3]);
        list_gradients(&[1.0, 0.5, 0.0], &[0.0, 0.0, 1.0], 10, 1.0, &mut g, &mut h);
        assert!(g[2] < 0.0, "the relevant row's loss falls as its score rises: {g:?}");
        assert!(g[0] > 0.0 && g[1] > 0.0);
        assert!((g.iter().sum::<f32>()).abs() < 1e-6);
        assert!(h.iter().all(|&x| x > 0.0));
        // no relevant row: no gradient
        list_gradients(&[1.0, 0.5], &[0.0, 0.0], 10, 1.0, &mut g[..2], &mut h[..2]);
        assert_eq!(&g[..2], &[0.0, 0.0]);
    }
}
