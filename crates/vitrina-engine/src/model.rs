//! The active model: a bundle wired to the live catalogue (model item ↔ engine item) with
//! its embedding index. Built off the request path, then swapped in atomically.

use std::sync::Arc;

use vitrina_algo::{
    ivf::{IvfIndex, IvfParams},
    models::ItemKnn,
};
use vitrina_core::recommend::Source;

use crate::{
    bundle::ModelBundle,
    catalog::Catalog,
    engagement::{self, Rates},
};

/// Marks an engine item the model does not know.
pub const UNKNOWN: u32 = u32::MAX;
/// Below this many items the embedding search is exact (a scan is cheaper than probing).
pub const IVF_MIN_ITEMS: usize = 20_000;

/// A bundle with its search index, before it is attached to the catalogue.
pub struct PreparedModel {
    pub version: String,
    pub bundle: Arc<ModelBundle>,
    ivf: Option<IvfIndex>,
}

impl PreparedModel {
    /// Builds the embedding index when the catalogue is large enough to need one (seconds
    /// for 100k items; call it off the async runtime).
    pub fn new(version: impl Into<String>, bundle: Arc<ModelBundle>) -> Self {
        let ivf =
            bundle.als.as_ref().filter(|a| a.n_items() >= IVF_MIN_ITEMS).and_then(|als| {
                IvfIndex::build(als.item_matrix(), als.factors(), &IvfParams::default()).ok()
            });
        Self { version: version.into(), bundle, ivf }
    }

    /// Maps the model's items to the catalogue's, interning the ones it does not know yet.
    pub fn attach(self, catalog: &mut Catalog) -> ActiveModel {
        let to_engine: Vec<u32> = self.bundle.items.iter().map(|p| catalog.intern(p)).collect();
        let mut to_model = vec![UNKNOWN; catalog.len()];
        for (m, &e) in to_engine.iter().enumerate() {
            to_model[e as usize] = m as u32;
        }
        let popularity_max = popularity_max(&self.bundle);
        let engagement = self.bundle.engagement.as_ref().map(|e| {
            let catalog = &*catalog;
            Rates::new(e, |id| catalog.index(id), |name| catalog.category(name))
        });
        ActiveModel {
            version: self.version,
            bundle: self.bundle,
            ivf: self.ivf,
            to_engine,
            to_model,
            popularity_max,
            engagement,
        }
    }
}

/// The model serving requests.
pub struct ActiveModel {
    pub version: String,
    pub bundle: Arc<ModelBundle>,
    pub ivf: Option<IvfIndex>,
    to_engine: Vec<u32>,
    to_model: Vec<u32>,
    /// The bundle's highest popularity score.
    popularity_max: f32,
    /// The bundle's engagement totals as rates over the catalogue's items and categories.
    engagement: Option<Rates>,
}

fn popularity_max(bundle: &ModelBundle) -> f32 {
    bundle.popularity.as_ref().map_or(0.0, |p| p.scores().iter().copied().fold(0.0, f32::max))
}

impl ActiveModel {
    /// No model yet: lists come from live popularity and the catalogue alone.
    pub fn empty(version: impl Into<String>) -> Self {
        let bundle = ModelBundle {
            items: Vec::new(),
            config: Default::default(),
            data_range: (0, 0),
            summary: Default::default(),
            als: None,
            knn: None,
            ease: None,
            ease_history: None,
            transitions: None,
            popularity: None,
            ranker: None,
            engagement: None,
        };
        Self {
            version: version.into(),
            bundle: Arc::new(bundle),
            ivf: None,
            to_engine: Vec::new(),
            to_model: Vec::new(),
            popularity_max: 0.0,
            engagement: None,
        }
    }

    /// The item→item model `source` reads, and whether its weights are signed: item-kNN for
    /// collaborative filtering, the signed `whole_history` EASE for `whole_history` when the
    /// bundle has one, else the sparse (positive) EASE.
    pub fn item_model(&self, source: Source) -> Option<(&ItemKnn, bool)> {
        let b = &self.bundle;
        let positive = match source {
            Source::CollaborativeFiltering => b.knn.as_ref(),
            Source::WholeHistory if b.ease_history.is_some() => {
                return b.ease_history.as_ref().map(|m| (m, true))
            }
            _ => b.ease.as_ref(),
        };
        positive.map(|m| (m, false))
    }

    /// The model's index of an engine item.
    pub fn model_item(&self, item: u32) -> Option<u32> {
        self.to_model.get(item as usize).copied().filter(|&m| m != UNKNOWN)
    }

    /// The engine item of a model index.
    pub fn engine_item(&self, m: u32) -> u32 {
        self.to_engine[m as usize]
    }

    /// The last event log position the model was trained on.
    pub fn last_seq(&self) -> u64 {
        self.bundle.data_range.1
    }

    /// The offline features of engine item `item` of catalogue category `category` (missing
    /// when the bundle has no engagement totals).
    pub fn engagement(&self, item: u32, category: u32) -> engagement::Shown {
        match &self.engagement {
            Some(rates) => rates.of(item, category),
            None => [f32::NAN; 6],
        }
    }

    /// How popular `item` was in the training data, over the most popular item (0–1); 0
    /// when the model does not know it or has no popularity.
    pub fn trained_popularity(&self, item: u32) -> f32 {
        match (self.bundle.popularity.as_ref(), self.model_item(item)) {
            (Some(p), Some(m)) if self.popularity_max > 0.0 => p.scores()[m as usize] / self.popularity_max,
            _ => 0.0,
        }
    }
}
