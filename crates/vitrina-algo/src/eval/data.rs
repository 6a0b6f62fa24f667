//! Dataset parsers for evaluation: MovieLens `u.data`, MovieLens `ratings.csv` and plain
//! `user item` lines.
//!
//! Every rating or line is one implicit positive. A user's interactions are ordered by time,
//! ties within a second broken by a hash of the (user, item) pair (the `user-item` format has
//! no time: line order is time), and a repeated `(user, item)` pair counts once — the first.
//! Users and items are indexed in a canonical order, so for rating files nothing depends on
//! the order of the rows.

use std::io::Read;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{AlgoError, Result};
use crate::ids::Interner;

/// The supported input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    /// `user<TAB>item<TAB>rating<TAB>unixtime` (MovieLens 100k `u.data`).
    Movielens,
    /// `userId,movieId,rating,timestamp` with a header line (MovieLens `ratings.csv`).
    MovielensCsv,
    /// `user item [time]` separated by whitespace, one interaction per line: with the
    /// optional third column (integer seconds) on every line, that is its time; without it,
    /// the line order is the time order.
    UserItem,
}

impl DataFormat {
    pub fn name(self) -> &'static str {
        match self {
            Self::Movielens => "movielens",
            Self::MovielensCsv => "movielens-csv",
            Self::UserItem => "user-item",
        }
    }
}

impl FromStr for DataFormat {
    type Err = AlgoError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "movielens" => Ok(Self::Movielens),
            "movielens-csv" => Ok(Self::MovielensCsv),
            "user-item" => Ok(Self::UserItem),
            other => Err(crate::error::invalid(format!(
                "unknown format `{other}` (expected movielens, movielens-csv or user-item)"
            ))),
        }
    }
}

/// A parsed dataset: interned ids and each user's deduplicated, time-ordered history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    pub users: Interner,
    pub items: Interner,
    /// `sequences[user]` = `(item, ts)` oldest first.
    pub sequences: Vec<Vec<(u32, i64)>>,
}

impl Dataset {
    pub fn n_users(&self) -> usize {
        self.users.len()
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    /// Number of (deduplicated) interactions.
    pub fn n_interactions(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }

    /// Parses `data` in `format`.
    pub fn parse(data: &str, format: DataFormat) -> Result<Self> {
        let mut users = Interner::new();
        let mut items = Interner::new();
        // (ts, tie-break, item) per user; for rating files the tie-break between events of
        // the same second is a hash of the pair, so neither the file's row order nor the ids'
        // order decides which came "last"
        let mut raw: Vec<Vec<(i64, u64, u32)>> = Vec::new();
        // user-item: whether the lines carry a time, as the first one says
        let mut timed: Option<bool> = None;
        for (n, line) in data.lines().enumerate() {
            let line_no = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = match format {
                DataFormat::MovielensCsv => line.split(',').map(str::trim).collect(),
                _ => line.split_whitespace().collect(),
            };
            let err = |message: String| AlgoError::Parse { line: line_no, message };
            let (user, item, ts) = match format {
                DataFormat::UserItem => {
                    if fields.len() < 2 {
                        return Err(err("expected `user item`".into()));
                    }
                    let has_time = fields.len() >= 3;
                    if *timed.get_or_insert(has_time) != has_time {
                        return Err(err(
                            "expected a time on every line or on none, as the first line has it or not"
                                .into(),
                        ));
                    }
                    let ts = match fields.get(2) {
                        Some(t) => t.parse::<i64>().map_err(|_| err(format!("bad time `{t}`")))?,
                        None => line_no as i64,
                    };
                    (fields[0], fields[1], ts)
                }
                DataFormat::Movielens | DataFormat::MovielensCsv => {
                    if fields.len() < 4 {
                        return Err(err("expected `user item rating timestamp`".into()));
                    }
                    let ts = match fields[3].parse::<i64>() {
                        Ok(ts) => ts,
                        Err(_)
                            if format == DataFormat::MovielensCsv && raw.is_empty() && users.is_empty() =>
                        {
                            continue; // header line
                        }
                        Err(_) => return Err(err(format!("bad timestamp `{}`", fields[3]))),
                    };
                    (fields[0], fields[1], ts)
                }
            };
            let u = users.intern(user)? as usize;
            let i = items.intern(item)?;
            if u >= raw.len() {
                raw.resize(u + 1, Vec::new());
            }
            let tie = match format {
                DataFormat::UserItem => line_no as u64,
                _ => pair_hash(user, item),
            };
            raw[u].push((ts, tie, i));
        }
        // indices in canonical order, so no model sees the row order through them
        let (users, user_remap) = users.canonical();
        let (items, item_remap) = items.canonical();
        let mut sequences = vec![Vec::new(); raw.len()];
        for (old, mut v) in raw.into_iter().enumerate() {
            v.sort_unstable();
            let mut seen = std::collections::HashSet::with_capacity(v.len());
            sequences[user_remap[old] as usize] = v
                .into_iter()
                .filter(|x| seen.insert(x.2))
                .map(|(ts, _, i)| (item_remap[i as usize], ts))
                .collect();
        }
        Ok(Self { users, items, sequences })
    }

    /// Reads everything from `r` (must be UTF-8) and parses it.
    pub fn read(mut r: impl Read, format: DataFormat) -> Result<Self> {
        let mut s = String::new();
        r.read_to_string(&mut s)?;
        Self::parse(&s, format)
    }
}

/// FNV-1a over `user`, a separator and `item`, finished by a 64-bit mix: a tie-break that is
/// the same on every machine and for every row order.
fn pair_hash(user: &str, item: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes().chain([0xff]).chain(item.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movielens_orders_by_time_and_dedupes_first() {
        let data = "1\t10\t5\t300\n1\t20\t3\t100\n2\t10\t4\t50\n1\t30\t1\t100\n1\t20\t2\t50\n";
        let ds = Dataset::parse(data, DataFormat::Movielens).unwrap();
        assert_eq!(ds.n_users(), 2);
        let names: Vec<(&str, i64)> =
            ds.sequences[0].iter().map(|&(i, ts)| (ds.items.name(i).unwrap(), ts)).collect();
        // item 20 first seen at ts 50 (its later repeat at 100 is dropped); 20@50, 30@100, 10@300
        assert_eq!(names, vec![("20", 50), ("30", 100), ("10", 300)]);
    }

    #[test]
    fn csv_skips_header_and_user_item_uses_line_order() {
        let csv = "userId,movieId,rating,timestamp\n1,5,4.0,20\n1,6,4.0,10\n";
        let ds = Dataset::parse(csv, DataFormat::MovielensCsv).unwrap();
        assert_eq!(
            ds.sequences[0].iter().map(|x| ds.items.name(x.0).unwrap()).collect::<Vec<_>>(),
            ["6", "5"]
        );
        let ui = "a x\nb y\na z\na x\n\n";
        let ds = Dataset::parse(ui, DataFormat::UserItem).unwrap();
        assert_eq!(ds.sequences[0].len(), 2);
        assert_eq!(ds.n_interactions(), 3);
        // a third column is the time, and orders a user's items
        let ds = Dataset::parse("a x 50\nb y 7\na z 10\n", DataFormat::UserItem).unwrap();
        let a: Vec<(&str, i64)> =
            ds.sequences[0].iter().map(|&(i, t)| (ds.items.name(i).unwrap(), t)).collect();
        assert_eq!(a, [("z", 10), ("x", 50)]);
        for (bad, why) in [("a x 5\nb y\n", "every line or on none"), ("a x soon\n", "bad time `soon`")] {
            let err = Dataset::parse(bad, DataFormat::UserItem).unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn bad_lines_are_errors_with_line_numbers() {
        let err = Dataset::parse("1\t2\t3\tsoon\n", DataFormat::Movielens).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(Dataset::parse("lonely\n", DataFormat::UserItem).is_err());
        assert!("parquet".parse::<DataFormat>().is_err());
    }
}
