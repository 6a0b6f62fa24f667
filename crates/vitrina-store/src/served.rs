//! How served lists are stored, the same on every backend: a visitor as a keyed pseudonym,
//! never the raw id (ADR 0007), and a list's items as text.

use vitrina_core::{ports::ImpressionItem, ProductId, UserId};

/// Where a store keeps the pseudonym key (a random 64-bit number, made once per store).
pub const SEED_KEY: &str = "pseudonym_seed";

/// The keyed hash that stands for a visitor in the impression log.
#[derive(Debug, Clone, Copy)]
pub struct Pseudonyms {
    seed: u64,
}

impl Pseudonyms {
    pub fn new(seed: u64) -> Self {
        Self { seed }
    }

    pub fn of(&self, user: &UserId) -> String {
        format!("p:{:016x}", xxhash_rust::xxh3::xxh3_64_with_seed(user.as_str().as_bytes(), self.seed))
    }
}

/// A served list's items as stored: one line per position, `product id` TAB `source` (ids
/// never contain tabs or newlines; see `vitrina_core::ids`).
pub fn items_text(items: &[ImpressionItem]) -> String {
    let mut out = String::with_capacity(items.len() * 32);
    for (k, i) in items.iter().enumerate() {
        if k > 0 {
            out.push('\n');
        }
        out.push_str(i.product_id.as_str());
        out.push('\t');
        out.push_str(&i.source);
    }
    out
}

/// The items of [`items_text`] back, positions from 0.
pub fn items_from_text(text: &str) -> Result<Vec<ImpressionItem>, String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(position, line)| {
            let (product, source) = line.split_once('\t').ok_or("item without a source")?;
            Ok(ImpressionItem {
                product_id: ProductId::parse(product).map_err(|e| e.to_string())?,
                source: source.to_string(),
                position: position as u32,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_survive_the_text_form() {
        let items: Vec<ImpressionItem> = ["p1", "p2"]
            .iter()
            .enumerate()
            .map(|(k, p)| ImpressionItem {
                product_id: ProductId::parse(p).unwrap(),
                source: format!("src{k}"),
                position: k as u32,
            })
            .collect();
        assert_eq!(items_from_text(&items_text(&items)).unwrap(), items);
        assert!(items_from_text("p1").is_err());
    }

    #[test]
    fn pseudonyms_depend_on_the_key() {
        let u = UserId::parse("visitor-1").unwrap();
        assert_eq!(Pseudonyms::new(1).of(&u), Pseudonyms::new(1).of(&u));
        assert_ne!(Pseudonyms::new(1).of(&u), Pseudonyms::new(2).of(&u));
        assert!(!Pseudonyms::new(1).of(&u).contains("visitor"));
    }
}
