//! The active model: a bundle wired to the live catalogue (model item ↔ engine item) with
//! its embedding index. Built off the request path, then swapped in atomically.

use std::sync::Arc;

use vitrina_algo::ivf::{IvfIndex, IvfParams};

use crate::{bundle::ModelBundle, catalog::Catalog};

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
        ActiveModel { version: self.version, bundle: self.bundle, ivf: self.ivf, to_engine, to_model }
    }
}

/// The model serving requests.
pub struct ActiveModel {
    pub version: String,
    pub bundle: Arc<ModelBundle>,
    pub ivf: Option<IvfIndex>,
    to_engine: Vec<u32>,
    to_model: Vec<u32>,
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
            transitions: None,
            popularity: None,
        };
        Self {
            version: version.into(),
            bundle: Arc::new(bundle),
            ivf: None,
            to_engine: Vec::new(),
            to_model: Vec::new(),
        }
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
}
