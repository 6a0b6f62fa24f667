//! Interning of a caller's string ids into dense `u32` indices and back.

use std::collections::HashMap;

use crate::error::{invalid, Result};

/// A two-way map between string ids and dense indices `0..len`, in first-seen order
/// (see [`Interner::canonical`] for an order that does not depend on it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interner {
    by_name: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    /// An empty interner.
    pub fn new() -> Self {
        Self::default()
    }

    /// The index of `name`, assigning the next free one if it is new.
    ///
    /// Fails only when more than `u32::MAX` distinct ids were interned.
    pub fn intern(&mut self, name: &str) -> Result<u32> {
        if let Some(&id) = self.by_name.get(name) {
            return Ok(id);
        }
        let id = u32::try_from(self.names.len()).map_err(|_| invalid("more than u32::MAX ids"))?;
        self.by_name.insert(name.to_owned(), id);
        self.names.push(name.to_owned());
        Ok(id)
    }

    /// The index of `name` if it was interned.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
    }

    /// The string id of index `id`.
    pub fn name(&self, id: u32) -> Option<&str> {
        self.names.get(id as usize).map(String::as_str)
    }

    /// How many ids were interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// All names, index order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The same names re-indexed in a canonical order (numeric names first, by value, then
    /// the rest by byte order), so indices do not depend on the order names were first seen;
    /// with the map from each old index to its new one.
    pub fn canonical(self) -> (Self, Vec<u32>) {
        let mut order: Vec<u32> = (0..self.names.len() as u32).collect();
        let key = |i: &u32| {
            let n = &self.names[*i as usize];
            (n.parse::<u64>().map_or(1, |_| 0), n.parse::<u64>().unwrap_or(0), n.clone())
        };
        order.sort_by_cached_key(key);
        let mut remap = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old as usize] = new as u32;
        }
        let names: Vec<String> = order.iter().map(|&old| self.names[old as usize].clone()).collect();
        let by_name = names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
        (Self { by_name, names }, remap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_in_first_seen_order_and_round_trips() {
        let mut ids = Interner::new();
        assert_eq!(ids.intern("b").unwrap(), 0);
        assert_eq!(ids.intern("a").unwrap(), 1);
        assert_eq!(ids.intern("b").unwrap(), 0);
        assert_eq!(ids.get("a"), Some(1));
        assert_eq!(ids.get("zz"), None);
        assert_eq!(ids.name(1), Some("a"));
        assert_eq!(ids.name(7), None);
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn canonical_order_does_not_depend_on_first_seen_order() {
        let names = ["10", "b", "2", "a", "1"];
        let mut forward = Interner::new();
        let mut backward = Interner::new();
        for n in names {
            forward.intern(n).unwrap();
        }
        for n in names.iter().rev() {
            backward.intern(n).unwrap();
        }
        let (f, remap) = forward.canonical();
        let (b, _) = backward.canonical();
        assert_eq!(f, b);
        assert_eq!(f.names(), ["1", "2", "10", "a", "b"]);
        // "10" was 0, is now 2
        assert_eq!(remap[0], 2);
        assert_eq!(f.get("a"), Some(3));
    }
}
