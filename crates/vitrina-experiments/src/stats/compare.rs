//! Comparison of a variant with the control: difference with its interval, z-test,
//! probability to beat the control (see the [`super`] module docs for the methods).

use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Beta, Distribution};

use super::normal::{normal_cdf, two_sided_p};
use super::{sample_variance, wilson, Comparison, Rate, Tally, BEAT_CONTROL_DRAWS, BEAT_CONTROL_SEED, Z95};
use crate::model::Goal;

pub(super) fn compare(goal: Goal, v: &Tally, c: &Tally) -> Comparison {
    let successes = |t: &Tally| match goal {
        Goal::Ctr => t.clicks,
        Goal::AddToCartRate => t.carts,
        Goal::ConversionRate => t.purchases,
        Goal::RevenuePerMille => 0,
    };
    if goal.is_proportion() {
        compare_proportions(goal, successes(v), v.impressions, successes(c), c.impressions)
    } else {
        compare_means(
            goal,
            (v.revenue, v.revenue_sq, v.impressions),
            (c.revenue, c.revenue_sq, c.impressions),
        )
    }
}

/// Variant (`sv` of `nv`) against control (`sc` of `nc`); see the module docs.
pub fn compare_proportions(goal: Goal, sv: u64, nv: u64, sc: u64, nc: u64) -> Comparison {
    let (sv, sc) = (sv.min(nv), sc.min(nc));
    let (rv, rc) = (wilson(sv, nv), wilson(sc, nc));
    let d = rv.value - rc.value;
    let difference = Rate {
        value: d,
        low: d - ((rv.value - rv.low).powi(2) + (rc.high - rc.value).powi(2)).sqrt(),
        high: d + ((rv.high - rv.value).powi(2) + (rc.value - rc.low).powi(2)).sqrt(),
    };
    let (z_score, p_value) = if nv == 0 || nc == 0 {
        (0.0, 1.0)
    } else {
        let pooled = (sv + sc) as f64 / (nv + nc) as f64;
        let se = (pooled * (1.0 - pooled) * (1.0 / nv as f64 + 1.0 / nc as f64)).sqrt();
        if se > 0.0 {
            (d / se, two_sided_p(d / se))
        } else {
            (0.0, 1.0)
        }
    };
    Comparison {
        metric: goal,
        difference,
        relative_lift: if rc.value > 0.0 { d / rc.value } else { 0.0 },
        z_score,
        p_value,
        probability_to_beat_control: probability_to_beat(
            sv,
            nv,
            sc,
            nc,
            BEAT_CONTROL_DRAWS,
            BEAT_CONTROL_SEED,
        ),
        significant: p_value < 0.05,
    }
}

/// Means per item of variant and control given `(sum, sum of squares, n)`; the
/// difference is reported per mille.
pub fn compare_means(goal: Goal, v: (f64, f64, u64), c: (f64, f64, u64)) -> Comparison {
    let moments = |(sum, sq, n): (f64, f64, u64)| {
        let mean = if n > 0 { sum / n as f64 } else { 0.0 };
        (mean, sample_variance(sum, sq, n) / n.max(1) as f64)
    };
    let ((mv, vv), (mc, vc)) = (moments(v), moments(c));
    let (d, se) = (mv - mc, (vv + vc).sqrt());
    let (z_score, p_value, beat) =
        if se > 0.0 { (d / se, two_sided_p(d / se), normal_cdf(d / se)) } else { (0.0, 1.0, 0.5) };
    Comparison {
        metric: goal,
        difference: Rate { value: d * 1000.0, low: (d - Z95 * se) * 1000.0, high: (d + Z95 * se) * 1000.0 },
        relative_lift: if mc > 0.0 { d / mc } else { 0.0 },
        z_score,
        p_value,
        probability_to_beat_control: beat,
        significant: p_value < 0.05,
    }
}

/// P(θv > θc) with θ ~ Beta(1 + s, 1 + n − s), by `draws` Monte Carlo draws.
pub fn probability_to_beat(sv: u64, nv: u64, sc: u64, nc: u64, draws: usize, seed: u64) -> f64 {
    if draws == 0 {
        return 0.5;
    }
    let posterior = |s: u64, n: u64| {
        let s = s.min(n);
        Beta::new(1.0 + s as f64, 1.0 + (n - s) as f64).expect("both parameters are at least 1")
    };
    let (bv, bc) = (posterior(sv, nv), posterior(sc, nc));
    let mut rng = StdRng::seed_from_u64(seed);
    let wins = (0..draws).filter(|_| bv.sample(&mut rng) > bc.sample(&mut rng)).count();
    wins as f64 / draws as f64
}
