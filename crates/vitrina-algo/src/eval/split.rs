//! Splitting protocols: leave-last-out and seeded random 80/20, per user.

use std::io::Write;
use std::str::FromStr;

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::data::Dataset;
use crate::error::{invalid, AlgoError, Result};
use crate::matrix::{CsrMatrix, Interaction, MatrixOptions};

/// How each user's interactions are split into train and test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// The last interaction by time is the test item (users with at least 3 interactions).
    LeaveLastOut,
    /// `round(0.2·n)` interactions held out at random (seeded), halves rounding up.
    #[serde(rename = "random-80-20")]
    Random8020,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Self::LeaveLastOut => "leave-last-out",
            Self::Random8020 => "random-80-20",
        }
    }

    /// The metric models are compared (and tuned) on.
    pub fn primary_metric(self) -> &'static str {
        match self {
            Self::LeaveLastOut => "ndcg@10",
            Self::Random8020 => "ndcg@20",
        }
    }

    /// The metrics this protocol is read by (the report carries every metric of
    /// [`super::METRICS`]; the others say little about it).
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Self::LeaveLastOut => &["ndcg@10", "hr@10", "hr@20"],
            Self::Random8020 => &["recall@20", "ndcg@20"],
        }
    }

    /// The list depth of [`Protocol::primary_metric`].
    pub fn list_depth(self) -> usize {
        match self {
            Self::LeaveLastOut => 10,
            Self::Random8020 => 20,
        }
    }
}

impl FromStr for Protocol {
    type Err = AlgoError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "leave-last-out" => Ok(Self::LeaveLastOut),
            "random-80-20" => Ok(Self::Random8020),
            other => {
                Err(invalid(format!("unknown protocol `{other}` (expected leave-last-out or random-80-20)")))
            }
        }
    }
}

/// A train/test split over dense user and item ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub n_items: usize,
    /// `train[user]` = `(item, ts)` oldest first.
    pub train: Vec<Vec<(u32, i64)>>,
    /// `test[user]` = held-out items; empty for users not evaluated.
    pub test: Vec<Vec<u32>>,
}

/// Number of test items for a user with `n` interactions: `round(n/5)`, halves up.
pub fn holdout_size(n: usize) -> usize {
    (2 * n + 5) / 10
}

impl Split {
    /// Splits time-ordered sequences by `protocol`; deterministic for a given `seed`.
    pub fn new(sequences: &[Vec<(u32, i64)>], n_items: usize, protocol: Protocol, seed: u64) -> Self {
        let mut train = Vec::with_capacity(sequences.len());
        let mut test = Vec::with_capacity(sequences.len());
        for (u, seq) in sequences.iter().enumerate() {
            match protocol {
                Protocol::LeaveLastOut if seq.len() >= 3 => {
                    train.push(seq[..seq.len() - 1].to_vec());
                    test.push(vec![seq[seq.len() - 1].0]);
                }
                Protocol::Random8020 if holdout_size(seq.len()) > 0 => {
                    let k = holdout_size(seq.len());
                    let mut rng = StdRng::seed_from_u64(user_seed(seed, u));
                    let mut idx: Vec<usize> = (0..seq.len()).collect();
                    for j in 0..k {
                        let r = rng.random_range(j..idx.len());
                        idx.swap(j, r);
                    }
                    let mut held = vec![false; seq.len()];
                    for &j in &idx[..k] {
                        held[j] = true;
                    }
                    let mut t: Vec<u32> = idx[..k].iter().map(|&j| seq[j].0).collect();
                    t.sort_unstable();
                    test.push(t);
                    train.push(seq.iter().zip(&held).filter(|(_, &h)| !h).map(|(x, _)| *x).collect());
                }
                _ => {
                    train.push(seq.clone());
                    test.push(Vec::new());
                }
            }
        }
        Self { n_items, train, test }
    }

    /// A validation split carved from this split's training data by the same protocol
    /// (the test data is never looked at).
    pub fn validation(&self, protocol: Protocol, seed: u64) -> Self {
        Self::new(&self.train, self.n_items, protocol, seed ^ 0x05ee_d0f7_a11d)
    }

    pub fn n_users(&self) -> usize {
        self.train.len()
    }

    /// Users with held-out items.
    pub fn test_users(&self) -> impl Iterator<Item = usize> + '_ {
        self.test.iter().enumerate().filter(|(_, t)| !t.is_empty()).map(|(u, _)| u)
    }

    /// Number of training interactions.
    pub fn n_train(&self) -> usize {
        self.train.iter().map(Vec::len).sum()
    }

    /// The training interactions, weight 1.
    pub fn train_interactions(&self) -> Vec<Interaction> {
        self.train
            .iter()
            .enumerate()
            .flat_map(|(u, seq)| {
                seq.iter().map(move |&(item, ts)| Interaction { user: u as u32, item, weight: 1.0, ts })
            })
            .collect()
    }

    /// The binary training matrix (users × all items).
    pub fn train_matrix(&self) -> Result<CsrMatrix> {
        let opts = MatrixOptions {
            n_users: Some(self.n_users()),
            n_items: Some(self.n_items),
            ..Default::default()
        };
        CsrMatrix::from_interactions(&self.train_interactions(), &opts)
    }

    /// Training items per user, oldest first.
    pub fn train_sequences(&self) -> Vec<Vec<u32>> {
        self.train.iter().map(|s| s.iter().map(|x| x.0).collect()).collect()
    }

    /// Writes train as `user item time` lines (time in seconds, in time order per user) and
    /// test as `user item` lines, with the dataset's original ids: the `user-item` format
    /// reads the training lines back with their times.
    pub fn export(&self, ds: &Dataset, mut train: impl Write, mut test: impl Write) -> Result<()> {
        let name = |ids: &crate::ids::Interner, i: u32| ids.name(i).unwrap_or("?").to_owned();
        for (u, seq) in self.train.iter().enumerate() {
            let user = name(&ds.users, u as u32);
            for &(i, ts) in seq {
                writeln!(train, "{user} {} {ts}", name(&ds.items, i))?;
            }
        }
        for (u, items) in self.test.iter().enumerate() {
            let user = name(&ds.users, u as u32);
            for &i in items {
                writeln!(test, "{user} {}", name(&ds.items, i))?;
            }
        }
        train.flush()?;
        test.flush()?;
        Ok(())
    }
}

/// The files [`Split::export_files`] writes: the split, and the validation split carved from
/// its training data that tuning uses.
pub const SPLIT_FILES: [&str; 4] = ["train.txt", "test.txt", "val_train.txt", "val_test.txt"];

impl Split {
    /// Exports this split and its validation split (`protocol` and `seed` as given to
    /// [`Split::new`]) to the [`SPLIT_FILES`], each opened by `open(name)`.
    pub fn export_files<W: Write>(
        &self,
        ds: &Dataset,
        protocol: Protocol,
        seed: u64,
        mut open: impl FnMut(&str) -> std::io::Result<W>,
    ) -> Result<()> {
        let [train, test, val_train, val_test] = SPLIT_FILES;
        self.export(ds, open(train)?, open(test)?)?;
        self.validation(protocol, seed).export(ds, open(val_train)?, open(val_test)?)
    }
}

fn user_seed(seed: u64, user: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (user as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seqs() -> Vec<Vec<(u32, i64)>> {
        vec![
            (0..10).map(|i| (i, i64::from(i))).collect(),
            vec![(1, 0), (2, 1)],
            (0..7).map(|i| (i + 3, i64::from(i))).collect(),
        ]
    }

    #[test]
    fn leave_last_out_holds_the_latest_of_users_with_three() {
        let s = Split::new(&seqs(), 12, Protocol::LeaveLastOut, 1);
        assert_eq!(s.test, vec![vec![9], vec![], vec![9]]);
        assert_eq!(s.train[0].len(), 9);
        assert_eq!(s.train[1].len(), 2);
        assert_eq!(s.test_users().collect::<Vec<_>>(), vec![0, 2]);
    }

    #[test]
    fn holdout_rounds_half_up() {
        assert_eq!([1, 2, 3, 5, 7, 8, 10, 12, 13].map(holdout_size), [0, 0, 1, 1, 1, 2, 2, 2, 3]);
    }

    #[test]
    fn random_split_is_deterministic_and_seed_dependent() {
        let a = Split::new(&seqs(), 12, Protocol::Random8020, 7);
        let b = Split::new(&seqs(), 12, Protocol::Random8020, 7);
        assert_eq!(a, b);
        assert_eq!(a.test[0].len(), 2);
        assert!(a.test[1].is_empty());
        let differs = (0..20).any(|s| Split::new(&seqs(), 12, Protocol::Random8020, s).test != a.test);
        assert!(differs);
        let v = a.validation(Protocol::Random8020, 7);
        assert_eq!(v.n_train() + v.test.iter().map(Vec::len).sum::<usize>(), a.n_train());
    }

    proptest! {
        #[test]
        fn random_split_partitions_each_user(lens in proptest::collection::vec(0usize..40, 1..20), seed in any::<u64>()) {
            let seqs: Vec<Vec<(u32, i64)>> =
                lens.iter().map(|&n| (0..n as u32).map(|i| (i, i64::from(i))).collect()).collect();
            let s = Split::new(&seqs, 40, Protocol::Random8020, seed);
            for (u, seq) in seqs.iter().enumerate() {
                prop_assert_eq!(s.test[u].len(), holdout_size(seq.len()));
                let mut all: Vec<u32> = s.train[u].iter().map(|x| x.0).chain(s.test[u].iter().copied()).collect();
                all.sort_unstable();
                prop_assert_eq!(all, (0..seq.len() as u32).collect::<Vec<_>>());
                prop_assert!(s.train[u].windows(2).all(|w| w[0].1 <= w[1].1));
            }
        }
    }
}
