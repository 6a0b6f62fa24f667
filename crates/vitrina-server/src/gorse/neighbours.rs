//! Gorse's user neighbours, judged on a window of the log (pure: no I/O). Vitrina's models
//! keep no per-visitor vectors (visitors are folded in from their events when served), so a
//! visitor's neighbours are the visitors whose items, within the window, overlap theirs.

use std::collections::{HashMap, HashSet};

use vitrina_core::{ProductId, UserId};

use super::model::Score;

/// The items each visitor acted on within a window of the log.
#[derive(Debug, Default)]
pub struct Window {
    items: HashMap<UserId, HashSet<ProductId>>,
}

impl Window {
    /// Notes that `user` acted on `product`.
    pub fn see(&mut self, user: &UserId, product: &ProductId) {
        if let Some(items) = self.items.get_mut(user) {
            items.insert(product.clone());
        } else {
            self.items.insert(user.clone(), HashSet::from([product.clone()]));
        }
    }

    /// The visitors other than `user` who acted on at least one of `items` (`user`'s whole
    /// history), scored by the cosine of the two item sets (shared items / √(|items| ·
    /// |theirs within the window|)), best first, ties by id.
    pub fn neighbours(self, user: &UserId, items: &HashSet<ProductId>) -> Vec<Score> {
        let mut scored: Vec<Score> = self
            .items
            .into_iter()
            .filter(|(other, _)| other != user)
            .filter_map(|(other, theirs)| {
                let shared = theirs.iter().filter(|p| items.contains(*p)).count();
                let norm = ((items.len() * theirs.len()) as f64).sqrt();
                (shared > 0).then(|| Score { id: other.to_string(), score: shared as f64 / norm })
            })
            .collect();
        scored.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        scored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn product(id: &str) -> ProductId {
        ProductId::parse(id).unwrap()
    }

    #[test]
    fn neighbours_share_items_and_the_closest_come_first() {
        let mut window = Window::default();
        for (u, p) in [("me", "a"), ("twin", "a"), ("twin", "b"), ("far", "a"), ("far", "x"), ("far", "y")] {
            window.see(&user(u), &product(p));
        }
        window.see(&user("twin"), &product("a")); // a repeat counts once
        window.see(&user("stranger"), &product("z"));
        let mine = HashSet::from([product("a"), product("b")]);
        let found = window.neighbours(&user("me"), &mine);
        let ids: Vec<&str> = found.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["twin", "far"], "not me, not who shares nothing");
        assert!((found[0].score - 1.0).abs() < 1e-12, "the same two items");
        assert!((found[1].score - 1.0 / 6f64.sqrt()).abs() < 1e-12, "one of 2 and of 3");
    }

    #[test]
    fn ties_go_by_id_and_no_history_has_no_neighbours() {
        let mut window = Window::default();
        for u in ["b", "a", "c"] {
            window.see(&user(u), &product("p"));
        }
        let found =
            Window { items: window.items.clone() }.neighbours(&user("c"), &HashSet::from([product("p")]));
        assert_eq!(found.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(window.neighbours(&user("c"), &HashSet::new()).is_empty());
    }
}
