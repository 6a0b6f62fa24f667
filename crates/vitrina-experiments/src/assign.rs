//! Deterministic, sticky assignment of visitors to variants.
//!
//! A visitor's bucket is `xxh3_64(salt ‖ 0x00 ‖ visitor)` (XXH3, 64-bit, seed 0, over the
//! UTF-8 bytes) mapped to `[0, 1)` by its top 53 bits. XXH3's output is specified and
//! stable across processes, machines and releases, so the same visitor lands in the same
//! bucket everywhere without any stored state. **Changing this function, or an
//! experiment's salt, reassigns every visitor** — never do it to a running experiment.
//!
//! The bucket picks a variant by the cumulative traffic shares, so a visitor stays in
//! their variant for as long as the allocation is unchanged. When a bandit reallocates,
//! visitors near the moved boundaries switch variant; that is accepted (the attribution
//! of every impression carries the variant actually served, so results stay exact).

use xxhash_rust::xxh3::xxh3_64;

/// The visitor's position in `[0, 1)` for this salt.
pub fn bucket(salt: &str, visitor: &str) -> f64 {
    let mut key = Vec::with_capacity(salt.len() + 1 + visitor.len());
    key.extend_from_slice(salt.as_bytes());
    key.push(0);
    key.extend_from_slice(visitor.as_bytes());
    (xxh3_64(&key) >> 11) as f64 / (1u64 << 53) as f64
}

/// Index of the variant the visitor is assigned to under `traffic` (shares; normalised
/// here if they do not sum to 1). Variants with a zero share never receive anyone unless
/// every share is zero, in which case the first variant is returned. Returns 0 for an
/// empty slice.
pub fn assign(traffic: &[f64], salt: &str, visitor: &str) -> usize {
    let total: f64 = traffic.iter().filter(|t| t.is_finite() && **t > 0.0).sum();
    if !total.is_finite() || total <= 0.0 {
        return 0;
    }
    let target = bucket(salt, visitor) * total;
    let mut cumulative = 0.0;
    let mut last_positive = 0;
    for (i, &share) in traffic.iter().enumerate() {
        if !(share.is_finite() && share > 0.0) {
            continue;
        }
        cumulative += share;
        last_positive = i;
        if target < cumulative {
            return i;
        }
    }
    // Rounding can leave `target` a hair above the last cumulative sum.
    last_positive
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: usize = 100_000;

    /// Pearson's chi-square statistic of `observed` counts against `shares` of `N`.
    fn chi_square(observed: &[u64], shares: &[f64]) -> f64 {
        observed
            .iter()
            .zip(shares)
            .map(|(&o, &s)| {
                let e = s * N as f64;
                (o as f64 - e).powi(2) / e
            })
            .sum()
    }

    fn counts(traffic: &[f64], salt: &str) -> Vec<u64> {
        let mut c = vec![0u64; traffic.len()];
        for i in 0..N {
            c[assign(traffic, salt, &format!("visitor-{i}"))] += 1;
        }
        c
    }

    #[test]
    fn same_input_same_output() {
        for i in 0..1000 {
            let v = format!("visitor-{i}");
            assert_eq!(bucket("salt", &v), bucket("salt", &v));
            assert_eq!(assign(&[0.2, 0.3, 0.5], "salt", &v), assign(&[0.2, 0.3, 0.5], "salt", &v));
        }
    }

    #[test]
    fn bucket_is_pinned_across_releases() {
        // Recorded once; if this fails, the hash changed and every visitor would move.
        let b = bucket("exp-salt", "visitor-1");
        assert!((0.0..1.0).contains(&b));
        assert_eq!(b, (xxh3_64(b"exp-salt\0visitor-1") >> 11) as f64 / 9007199254740992.0);
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2, "XXH3 test vector");
    }

    #[test]
    fn salt_and_visitor_are_separated() {
        assert_ne!(bucket("ab", "c"), bucket("a", "bc"));
    }

    #[test]
    fn splits_fit_their_shares() {
        // Critical values of chi-square at p = 0.001: df = 1 → 10.83, df = 2 → 13.82.
        let even = counts(&[0.5, 0.5], "s1");
        assert!(chi_square(&even, &[0.5, 0.5]) < 10.83, "{even:?}");
        let uneven = counts(&[0.2, 0.3, 0.5], "s2");
        assert!(chi_square(&uneven, &[0.2, 0.3, 0.5]) < 13.82, "{uneven:?}");
        // Unnormalised shares mean the same split.
        assert_eq!(counts(&[2.0, 3.0, 5.0], "s2"), uneven);
    }

    #[test]
    fn different_salts_are_independent() {
        // 2×2 contingency table of the two assignments; chi-square test of independence
        // (df = 1, critical value 10.83 at p = 0.001).
        let mut table = [[0u64; 2]; 2];
        for i in 0..N {
            let v = format!("visitor-{i}");
            table[assign(&[0.5, 0.5], "salt-a", &v)][assign(&[0.5, 0.5], "salt-b", &v)] += 1;
        }
        let rows = [table[0][0] + table[0][1], table[1][0] + table[1][1]];
        let cols = [table[0][0] + table[1][0], table[0][1] + table[1][1]];
        let mut stat = 0.0;
        for r in 0..2 {
            for c in 0..2 {
                let e = rows[r] as f64 * cols[c] as f64 / N as f64;
                stat += (table[r][c] as f64 - e).powi(2) / e;
            }
        }
        assert!(stat < 10.83, "{table:?}");
    }

    proptest::proptest! {
        #[test]
        fn always_a_variant_with_a_share(
            traffic in proptest::collection::vec(0.0f64..1.0, 1..10),
            salt in "[a-f0-9]{0,16}",
            visitor in ".{0,40}",
        ) {
            let b = bucket(&salt, &visitor);
            proptest::prop_assert!((0.0..1.0).contains(&b));
            let i = assign(&traffic, &salt, &visitor);
            proptest::prop_assert!(i < traffic.len());
            proptest::prop_assert!(traffic[i] > 0.0 || traffic.iter().all(|&t| t == 0.0));
        }
    }

    #[test]
    fn zero_shares_and_edge_cases() {
        for i in 0..1000 {
            let v = format!("v{i}");
            assert_eq!(assign(&[0.0, 1.0, 0.0], "s", &v), 1);
        }
        assert_eq!(assign(&[], "s", "v"), 0);
        assert_eq!(assign(&[0.0, 0.0], "s", "v"), 0);
        assert_eq!(assign(&[f64::NAN, 1.0], "s", "v"), 1);
    }

    #[test]
    fn growing_a_share_only_moves_visitors_into_it() {
        // Sticky while unchanged; on reallocation only boundary visitors move.
        let mut moved_out_of_b = 0;
        for i in 0..10_000 {
            let v = format!("visitor-{i}");
            let before = assign(&[0.5, 0.5], "s", &v);
            let after = assign(&[0.3, 0.7], "s", &v);
            if before == 1 && after != 1 {
                moved_out_of_b += 1;
            }
        }
        assert_eq!(moved_out_of_b, 0);
    }
}
