//! What `vitrina migrate` copies: every table of the store, column by column, in the same
//! shape on both backends. Pure data and row hashing, no I/O.

use xxhash_rust::xxh3::Xxh3;

/// How a column's values are read and written. Booleans are `INTEGER` 0/1 in SQLite and
/// `BOOLEAN` in PostgreSQL; `Int` is PostgreSQL's 32-bit `INTEGER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    BigInt,
    Int,
    Real,
    Bool,
}

/// Which SQLite file of a data directory holds a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum File {
    /// `vitrina.db`: the event log, catalogue, users, registry, experiments, keys.
    Log,
    /// `impressions.db`: served lists and attributed outcomes.
    Impressions,
}

#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub file: File,
    /// The first column is the key: rows are copied and compared in its order (integers, or
    /// text compared byte by byte on both backends).
    pub columns: &'static [(&'static str, Kind)],
}

impl Table {
    pub fn key(&self) -> &'static str {
        self.columns[0].0
    }

    pub fn column_list(&self) -> String {
        self.columns.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
    }

    /// The statements both backends run (`$n` parameters read the same in SQLite).
    pub fn count_sql(&self) -> String {
        format!("SELECT COUNT(*) FROM {}", self.name)
    }

    pub fn max_key_sql(&self) -> String {
        format!("SELECT {key} FROM {t} ORDER BY {key} DESC LIMIT 1", key = self.key(), t = self.name)
    }

    /// Rows in key order: up to `$2` with a key above `$1` (`after`), or up to `$1` from the
    /// first. `collate` follows the comparison of a text key (PostgreSQL's `COLLATE "C"`:
    /// byte order, as SQLite compares).
    pub fn rows_sql(&self, after: bool, collate: &str) -> String {
        let (cols, key, t) = (self.column_list(), self.key(), self.name);
        if after {
            let collate = if self.columns[0].1 == Kind::Text { collate } else { "" };
            format!("SELECT {cols} FROM {t} WHERE {key} > $1{collate} ORDER BY {key} LIMIT $2")
        } else {
            format!("SELECT {cols} FROM {t} ORDER BY {key} LIMIT $1")
        }
    }
}

use Kind::{BigInt, Bool, Int, Real, Text};

/// Every table, in the order they are copied.
pub const TABLES: &[Table] = &[
    Table {
        name: "events",
        file: File::Log,
        columns: &[
            ("seq", BigInt),
            ("event_id", Text),
            ("user_id", Text),
            ("activity_type", Text),
            ("product_id", Text),
            ("metadata", Text),
            ("ts_ms", BigInt),
            ("received_ms", BigInt),
        ],
    },
    Table {
        name: "users",
        file: File::Log,
        columns: &[("id", Text), ("name", Text), ("attributes", Text), ("created_ms", BigInt)],
    },
    Table {
        name: "products",
        file: File::Log,
        columns: &[
            ("id", Text),
            ("name", Text),
            ("category", Text),
            ("price", Text),
            ("attributes", Text),
            ("in_stock", Bool),
            ("hidden", Bool),
            ("created_ms", BigInt),
            ("updated_ms", BigInt),
        ],
    },
    Table {
        name: "models",
        file: File::Log,
        columns: &[
            ("version", Text),
            ("algorithm", Text),
            ("parameters", Text),
            ("metrics", Text),
            ("status", Text),
            ("status_reason", Text),
            ("first_seq", BigInt),
            ("last_seq", BigInt),
            ("artefact_path", Text),
            ("artefact_checksum", Text),
            ("artefact_bytes", BigInt),
            ("created_ms", BigInt),
            ("finished_ms", BigInt),
            ("activated_ms", BigInt),
            ("previous_version", Text),
        ],
    },
    Table {
        name: "experiments",
        file: File::Log,
        columns: &[("id", Text), ("doc", Text), ("created_ms", BigInt), ("updated_ms", BigInt)],
    },
    Table {
        name: "api_keys",
        file: File::Log,
        columns: &[
            ("id", Text),
            ("name", Text),
            ("scope", Text),
            ("hash", Text),
            ("prefix", Text),
            ("created_ms", BigInt),
            ("revoked_ms", BigInt),
        ],
    },
    Table {
        name: "impressions",
        file: File::Impressions,
        columns: &[
            ("id", BigInt),
            ("recommendation_id", Text),
            ("user_id", Text),
            ("model_version", Text),
            ("variant", Text),
            ("created_ms", BigInt),
            ("items", Text),
        ],
    },
    Table {
        name: "outcomes",
        file: File::Impressions,
        columns: &[
            ("event_id", Text),
            ("recommendation_id", Text),
            ("user_id", Text),
            ("variant", Text),
            ("product_id", Text),
            ("source", Text),
            ("position", Int),
            ("kind", Text),
            ("value", Real),
            ("created_ms", BigInt),
        ],
    },
    Table {
        name: "product_exposure",
        file: File::Impressions,
        columns: &[
            ("key", Text),
            ("product_id", Text),
            ("day", BigInt),
            ("impressions", BigInt),
            ("clicks", BigInt),
            ("add_to_carts", BigInt),
            ("purchases", BigInt),
            ("revenue", Real),
        ],
    },
];

/// One value of a row, the same whichever backend it was read from.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bool(bool),
}

impl Cell {
    fn hash_into(&self, h: &mut Xxh3) {
        match self {
            Cell::Null => h.update(&[0]),
            Cell::Int(v) => {
                h.update(&[1]);
                h.update(&v.to_le_bytes());
            }
            Cell::Real(v) => {
                h.update(&[2]);
                h.update(&v.to_bits().to_le_bytes());
            }
            Cell::Text(s) => {
                h.update(&[3]);
                h.update(&(s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
            }
            Cell::Bool(b) => h.update(&[4, u8::from(*b)]),
        }
    }
}

pub type Row = Vec<Cell>;

/// Rows counted and hashed in key order: equal on both sides when the copy is complete.
#[derive(Default)]
pub struct Tally {
    pub rows: u64,
    hasher: Xxh3,
}

impl Tally {
    pub fn add(&mut self, row: &[Cell]) {
        self.rows += 1;
        for cell in row {
            cell.hash_into(&mut self.hasher);
        }
    }

    pub fn checksum(&self) -> u64 {
        self.hasher.digest()
    }
}

/// The first text cell holding a NUL character, as (column, row key): PostgreSQL's TEXT
/// cannot store it (rows written before the validation refused it may hold one).
pub fn nul_in<'a>(table: &Table, rows: &'a [Row]) -> Option<(&'static str, &'a Cell)> {
    rows.iter().find_map(|row| {
        row.iter().zip(table.columns).find_map(|(cell, (name, _))| match cell {
            Cell::Text(s) if s.contains('\0') => Some((*name, &row[0])),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_sees_order_values_and_boundaries() {
        let sum = |rows: &[Row]| {
            let mut t = Tally::default();
            rows.iter().for_each(|r| t.add(r));
            (t.rows, t.checksum())
        };
        let a = vec![Cell::Int(1), Cell::Text("ab".into())];
        let b = vec![Cell::Int(2), Cell::Text("c".into())];
        assert_eq!(sum(&[a.clone(), b.clone()]), sum(&[a.clone(), b.clone()]));
        assert_ne!(sum(&[a.clone(), b.clone()]), sum(&[b.clone(), a.clone()]), "order counts");
        let shifted =
            vec![vec![Cell::Int(1), Cell::Text("a".into())], vec![Cell::Int(2), Cell::Text("bc".into())]];
        assert_ne!(sum(&[a.clone(), b]).1, sum(&shifted).1, "text boundaries count");
        assert_ne!(sum(&[vec![Cell::Null]]).1, sum(&[vec![Cell::Text(String::new())]]).1);
        assert_ne!(sum(&[vec![Cell::Int(1)]]).1, sum(&[vec![Cell::Bool(true)]]).1);
    }

    #[test]
    fn every_table_is_keyed_by_its_first_column_and_named_once() {
        let mut names: Vec<_> = TABLES.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TABLES.len());
        let events = &TABLES[0];
        assert_eq!((events.key(), events.column_list().split(", ").count()), ("seq", 8));
        assert!(
            events.rows_sql(true, " COLLATE x").ends_with("WHERE seq > $1 ORDER BY seq LIMIT $2"),
            "no collation on an integer key"
        );
        let users = TABLES.iter().find(|t| t.name == "users").unwrap();
        assert!(users.rows_sql(true, " COLLATE x").contains("WHERE id > $1 COLLATE x ORDER BY id"));
    }

    #[test]
    fn a_nul_is_found_with_its_column_and_key() {
        let rows = vec![
            vec![Cell::Text("u1".into()), Cell::Text("fine".into())],
            vec![Cell::Text("u2".into()), Cell::Text("a\0b".into())],
        ];
        let users = TABLES.iter().find(|t| t.name == "users").unwrap();
        assert_eq!(nul_in(users, &rows), Some(("name", &Cell::Text("u2".into()))));
        assert_eq!(nul_in(users, &rows[..1]), None);
    }
}
