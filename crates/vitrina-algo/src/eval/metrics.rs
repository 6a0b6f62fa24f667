//! Ranking metrics and their means with standard errors.
//!
//! All take the 0-based ranks of a user's held-out items among the candidates (items the
//! user did not interact with in training); `None` means the item could not be ranked.

use serde::Serialize;

/// `1/log2(rank + 2)`: the discounted gain of a hit at `rank`.
pub fn discount(rank: usize) -> f64 {
    1.0 / ((rank + 2) as f64).log2()
}

/// Hit rate: 1 if any held-out item ranks within the top `k`.
pub fn hit_rate(ranks: &[Option<usize>], k: usize) -> f64 {
    f64::from(u8::from(ranks.iter().flatten().any(|&r| r < k)))
}

/// Recall@k: hits in the top `k` divided by `min(k, |held out|)`.
pub fn recall(ranks: &[Option<usize>], k: usize) -> f64 {
    let denom = ranks.len().min(k);
    if denom == 0 {
        return 0.0;
    }
    ranks.iter().flatten().filter(|&&r| r < k).count() as f64 / denom as f64
}

/// NDCG@k with binary relevance: DCG of the hits over the ideal DCG of
/// `min(k, |held out|)` hits at the top.
pub fn ndcg(ranks: &[Option<usize>], k: usize) -> f64 {
    let ideal: f64 = (0..ranks.len().min(k)).map(discount).sum();
    if ideal == 0.0 {
        return 0.0;
    }
    ranks.iter().flatten().filter(|&&r| r < k).map(|&r| discount(r)).sum::<f64>() / ideal
}

/// A mean over users with its standard error (`sd / sqrt(n)`, sample standard deviation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanStderr {
    pub mean: f64,
    pub stderr: f64,
    pub n: usize,
}

impl MeanStderr {
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self { mean: 0.0, stderr: 0.0, n };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let var =
            if n > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
        Self { mean, stderr: (var / n as f64).sqrt(), n }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn single_item_metrics_hand_computed() {
        assert!(close(ndcg(&[Some(0)], 10), 1.0));
        assert!(close(ndcg(&[Some(2)], 10), 0.5)); // 1/log2(4)
        assert!(close(ndcg(&[Some(10)], 10), 0.0));
        assert!(close(ndcg(&[None], 10), 0.0));
        assert!(close(hit_rate(&[Some(9)], 10), 1.0));
        assert!(close(hit_rate(&[Some(10)], 10), 0.0));
    }

    #[test]
    fn multi_item_metrics_hand_computed() {
        // 3 held out, hits at ranks 0 and 2, one missed
        let ranks = [Some(0), Some(2), Some(50)];
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!(close(ndcg(&ranks, 20), (1.0 + 0.5) / idcg));
        assert!(close(recall(&ranks, 20), 2.0 / 3.0));
        // more held out than k: recall denominator is k
        let many: Vec<Option<usize>> = (0..30).map(Some).collect();
        assert!(close(recall(&many, 20), 1.0));
        assert!(close(ndcg(&many, 20), 1.0));
        assert!(close(recall(&[], 20), 0.0));
    }

    #[test]
    fn mean_and_stderr() {
        let m = MeanStderr::of(&[1.0, 0.0, 1.0, 0.0]);
        assert!(close(m.mean, 0.5));
        // sample sd = sqrt(1/3), stderr = sd/2
        assert!(close(m.stderr, (1.0f64 / 3.0).sqrt() / 2.0));
        assert_eq!(MeanStderr::of(&[]).n, 0);
    }
}
