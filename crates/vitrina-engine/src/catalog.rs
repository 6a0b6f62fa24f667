//! The live catalogue as the engine sees it: every product id interned to a dense item
//! index (stable for the life of the process), the products themselves, their categories.
//!
//! Item indices are never reused: a deleted product keeps its index with no entry, so
//! online state and model mappings that refer to it stay valid and simply never surface it.

use std::{collections::HashMap, sync::Arc};

use vitrina_core::{Product, ProductId};

/// A product as ranking reads it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub product: Arc<Product>,
    pub category: u32,
    pub price: f64,
    /// When the product was published ([`Product::published_at`]), unix milliseconds.
    pub created_ms: i64,
}

impl Entry {
    pub fn available(&self) -> bool {
        self.product.is_available()
    }
}

/// Interned ids, categories and products.
#[derive(Debug, Default)]
pub struct Catalog {
    by_id: HashMap<ProductId, u32>,
    ids: Vec<ProductId>,
    entries: Vec<Option<Entry>>,
    categories: HashMap<String, u32>,
    category_names: Vec<String>,
}

impl Catalog {
    pub fn new(products: impl IntoIterator<Item = Product>) -> Self {
        let mut c = Self::default();
        for p in products {
            c.upsert(p);
        }
        c
    }

    /// The item index of `id`, assigning the next one if it is new.
    pub fn intern(&mut self, id: &ProductId) -> u32 {
        if let Some(&i) = self.by_id.get(id) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.by_id.insert(id.clone(), i);
        self.ids.push(id.clone());
        self.entries.push(None);
        i
    }

    fn category_index(&mut self, name: &str) -> u32 {
        if let Some(&c) = self.categories.get(name) {
            return c;
        }
        let c = self.category_names.len() as u32;
        self.categories.insert(name.to_string(), c);
        self.category_names.push(name.to_string());
        c
    }

    /// Adds or replaces a product; returns its item index.
    pub fn upsert(&mut self, p: Product) -> u32 {
        let i = self.intern(&p.id);
        let category = self.category_index(&p.category);
        let entry = Entry {
            price: p.price.to_f64(),
            created_ms: p.published_at().timestamp_millis(),
            category,
            product: Arc::new(p),
        };
        self.entries[i as usize] = Some(entry);
        i
    }

    /// Forgets a deleted product (its index stays reserved).
    pub fn remove(&mut self, id: &ProductId) {
        if let Some(&i) = self.by_id.get(id) {
            self.entries[i as usize] = None;
        }
    }

    pub fn index(&self, id: &ProductId) -> Option<u32> {
        self.by_id.get(id).copied()
    }

    /// The product id of every item index, by index.
    pub fn ids(&self) -> &[ProductId] {
        &self.ids
    }

    pub fn id(&self, item: u32) -> Option<&ProductId> {
        self.ids.get(item as usize)
    }

    pub fn entry(&self, item: u32) -> Option<&Entry> {
        self.entries.get(item as usize).and_then(Option::as_ref)
    }

    /// The product at `item` if it can be recommended (in the catalogue, in stock, not hidden).
    pub fn available(&self, item: u32) -> Option<&Entry> {
        self.entry(item).filter(|e| e.available())
    }

    pub fn category(&self, name: &str) -> Option<u32> {
        self.categories.get(name).copied()
    }

    pub fn category_name(&self, c: u32) -> Option<&str> {
        self.category_names.get(c as usize).map(String::as_str)
    }

    /// Item indices assigned so far (catalogue products and products only seen in events).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Products in the catalogue.
    pub fn products(&self) -> usize {
        self.entries.iter().filter(|e| e.is_some()).count()
    }

    pub fn categories(&self) -> usize {
        self.category_names.len()
    }

    /// Every catalogue entry with its index.
    pub fn entries(&self) -> impl Iterator<Item = (u32, &Entry)> {
        self.entries.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (i as u32, e)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::Map;
    use vitrina_core::Price;

    use super::*;

    pub fn product(id: &str, category: &str, price: &str) -> Product {
        Product {
            id: ProductId::parse(id).unwrap(),
            name: format!("name of {id}"),
            category: category.into(),
            price: price.parse::<Price>().unwrap(),
            attributes: Map::new(),
            in_stock: true,
            hidden: false,
            created_at: Utc.timestamp_millis_opt(1_700_000_000_000).unwrap(),
            updated_at: Utc.timestamp_millis_opt(1_700_000_000_000).unwrap(),
        }
    }

    #[test]
    fn indices_are_stable_and_never_reused() {
        let mut c = Catalog::new([product("a", "x", "1.00"), product("b", "y", "2.50")]);
        let seen_only = c.intern(&ProductId::parse("z").unwrap());
        assert_eq!((c.len(), c.products(), seen_only), (3, 2, 2));
        assert!(c.entry(seen_only).is_none());
        let a = c.index(&ProductId::parse("a").unwrap()).unwrap();
        c.remove(&ProductId::parse("a").unwrap());
        assert!(c.entry(a).is_none());
        assert_eq!(c.upsert(product("a", "x", "3.00")), a);
        assert_eq!(c.entry(a).unwrap().price, 3.0);
        assert_eq!(c.category_name(c.entry(a).unwrap().category), Some("x"));
    }

    #[test]
    fn hidden_or_out_of_stock_products_are_not_available() {
        let mut hidden = product("h", "x", "1.00");
        hidden.hidden = true;
        let mut gone = product("g", "x", "1.00");
        gone.in_stock = false;
        let c = Catalog::new([hidden, gone, product("ok", "x", "1.00")]);
        let avail: Vec<u32> = (0..3).filter(|&i| c.available(i).is_some()).collect();
        assert_eq!(avail, [2]);
    }
}
