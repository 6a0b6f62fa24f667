//! The serving engine: the active model (hot-swapped atomically) and the live catalogue.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use vitrina_core::{
    recommend::{self, Filters, Recommended},
    train::CoVisitationModel,
    Product, ProductId, StoredActivity,
};

/// A model with the registry version it serves under.
#[derive(Debug, Default)]
pub struct ActiveModel {
    pub version: String,
    pub model: CoVisitationModel,
}

/// Holds what recommendations are computed from. Cheap to share.
#[derive(Default)]
pub struct Engine {
    model: ArcSwap<ActiveModel>,
    catalog: RwLock<HashMap<ProductId, Arc<Product>>>,
}

impl Engine {
    pub fn new(products: Vec<Product>) -> Self {
        let engine = Self::default();
        engine.upsert_products(products);
        engine
    }

    /// The model requests started now will use; in-flight requests keep the one they loaded.
    pub fn model(&self) -> Arc<ActiveModel> {
        self.model.load_full()
    }

    /// Replaces the active model atomically.
    pub fn swap_model(&self, model: ActiveModel) {
        self.model.store(Arc::new(model));
    }

    pub fn upsert_products(&self, products: impl IntoIterator<Item = Product>) {
        let mut catalog = self.catalog.write().expect("catalog lock");
        for p in products {
            catalog.insert(p.id.clone(), Arc::new(p));
        }
    }

    pub fn remove_product(&self, id: &ProductId) {
        self.catalog.write().expect("catalog lock").remove(id);
    }

    pub fn product(&self, id: &ProductId) -> Option<Arc<Product>> {
        self.catalog.read().expect("catalog lock").get(id).cloned()
    }

    pub fn product_count(&self) -> usize {
        self.catalog.read().expect("catalog lock").len()
    }

    /// Ranks items for a visitor with `history` (newest first) using `model`.
    pub fn recommend(
        &self,
        model: &ActiveModel,
        history: &[StoredActivity],
        filters: &Filters,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Vec<Recommended> {
        let catalog = self.catalog.read().expect("catalog lock");
        recommend::recommend(&model.model, &*catalog, history, filters, limit, now)
    }
}
