//! Tiny argument helpers shared by the examples (no CLI framework needed here).

#![allow(dead_code)]

use std::collections::HashMap;

use vitrina_algo::eval::{DataFormat, Dataset, Protocol, Split};

/// `--key value` pairs and bare `--flag`s.
pub struct Args(pub HashMap<String, String>);

impl Args {
    pub fn parse() -> Self {
        let mut map = HashMap::new();
        let raw: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < raw.len() {
            if let Some(key) = raw[i].strip_prefix("--") {
                let has_value = raw.get(i + 1).is_some_and(|v| !v.starts_with("--"));
                let value = if has_value { raw[i + 1].clone() } else { "true".to_owned() };
                map.insert(key.to_owned(), value);
                i += if has_value { 2 } else { 1 };
            } else {
                i += 1;
            }
        }
        Self(map)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn req(&self, key: &str) -> &str {
        self.get(key).unwrap_or_else(|| {
            eprintln!("missing --{key}");
            std::process::exit(2)
        })
    }

    pub fn flag(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn seed(&self) -> u64 {
        self.get("seed").map_or(42, |s| s.parse().expect("--seed is a number"))
    }

    pub fn format(&self) -> DataFormat {
        self.get("format").unwrap_or("movielens").parse().expect("--format")
    }

    pub fn protocol(&self) -> Protocol {
        self.get("protocol").unwrap_or("leave-last-out").parse().expect("--protocol")
    }

    /// Reads `--data` and makes the split every tool agrees on.
    pub fn dataset_and_split(&self) -> (Dataset, Split) {
        let text = std::fs::read_to_string(self.req("data")).expect("read --data");
        let ds = Dataset::parse(&text, self.format()).expect("parse --data");
        let split = Split::new(&ds.sequences, ds.n_items(), self.protocol(), self.seed());
        (ds, split)
    }
}
