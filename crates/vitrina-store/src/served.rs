//! How served lists are stored, the same on every backend: a visitor as a keyed pseudonym,
//! never the raw id (ADR 0007), and a list's items as text.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

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

/// What the writer has done, for health: operations queued and not yet handled, and when it
/// last finished a batch.
#[derive(Default)]
pub struct Progress {
    pending: AtomicUsize,
    last_batch: Mutex<Option<Instant>>,
}

/// A writer with lists waiting that finished no batch for this long is stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(60);

impl Progress {
    pub fn queued(&self) {
        self.pending.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether operations are queued that are not committed yet.
    pub fn waiting(&self) -> bool {
        self.pending.load(Ordering::Relaxed) > 0
    }

    pub fn handled(&self, n: usize, at: Instant) {
        self.pending.fetch_sub(n, Ordering::Relaxed);
        *self.last_batch.lock().expect("progress lock") = Some(at);
    }

    /// `Err` when operations wait and no batch finished within [`STUCK_AFTER`] of `now`.
    pub fn check(&self, now: Instant, started: Instant) -> Result<(), String> {
        let pending = self.pending.load(Ordering::Relaxed);
        let last = self.last_batch.lock().expect("progress lock").unwrap_or(started);
        let idle = now.saturating_duration_since(last);
        if pending > 0 && idle > STUCK_AFTER {
            return Err(format!(
                "the impression writer finished nothing for {} s with {pending} lists waiting",
                idle.as_secs()
            ));
        }
        Ok(())
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
