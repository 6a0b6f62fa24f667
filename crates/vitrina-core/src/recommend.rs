//! What a recommendation is, as served and cached: the items, their scores, the source each
//! came from and the visitor's event behind it. The engine (`vitrina-engine`) computes
//! these; the cache port stores them; the API serialises them.

use std::{fmt, str::FromStr, sync::Arc};

use chrono::{DateTime, Utc};

use crate::{ActivityType, Product, ProductId};

/// Where a recommended item came from: the candidate source that contributed most to its
/// score. Its wire name is the item's `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Neighbours (item-kNN and live co-visitation) of items the visitor interacted with.
    CollaborativeFiltering,
    /// The visitor's matrix-factorisation embedding (ALS, folded in from recent events).
    MatrixFactorization,
    /// What visitors do next after the visitor's latest items.
    NextItem,
    /// Sparse EASE: items an item-to-item linear model predicts from the visitor's items.
    LinearItemModel,
    /// The same linear model over every item of the visitor's history read (the ranking
    /// config's `historyEvents`), undecayed: their long-term taste, where
    /// `linear_item_model` reads their strongest recent items.
    WholeHistory,
    /// Trending across the shop (time-decayed interactions).
    Trending,
    /// Popular in a category the visitor looked at, or the category the request names.
    PopularInCategory,
    /// A recently added product shown for exploration.
    NewItem,
}

impl Source {
    pub const ALL: [Source; 8] = [
        Self::CollaborativeFiltering,
        Self::MatrixFactorization,
        Self::NextItem,
        Self::LinearItemModel,
        Self::WholeHistory,
        Self::Trending,
        Self::PopularInCategory,
        Self::NewItem,
    ];

    /// The wire name, e.g. `collaborative_filtering`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CollaborativeFiltering => "collaborative_filtering",
            Self::MatrixFactorization => "matrix_factorization",
            Self::NextItem => "next_item",
            Self::LinearItemModel => "linear_item_model",
            Self::WholeHistory => "whole_history",
            Self::Trending => "trending",
            Self::PopularInCategory => "popular_in_category",
            Self::NewItem => "new_item",
        }
    }

    /// Position in [`Source::ALL`], for per-source arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the source is personalised by the visitor's own events.
    pub fn is_personal(self) -> bool {
        matches!(
            self,
            Self::CollaborativeFiltering
                | Self::MatrixFactorization
                | Self::NextItem
                | Self::LinearItemModel
                | Self::WholeHistory
        )
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown source {raw:?} (expected one of {})", names.join(", "))
        })
    }
}

/// One item of a recommendation list.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommended {
    pub product: Arc<Product>,
    pub score: f32,
    /// How strongly the visitor's own history supports the item, 0–1.
    pub confidence: f32,
    pub source: Source,
    /// The visitor's event that contributed most, for the personalised sources.
    pub because: Option<(ProductId, ActivityType)>,
}

/// A computed list, as cached and served.
#[derive(Debug, Clone, PartialEq)]
pub struct RecommendationList {
    pub items: Vec<Recommended>,
    pub model_version: String,
    pub generated_at: DateTime<Utc>,
}

/// The past-tense phrase for an explanation, naming the product by its name and id
/// (`viewed Trail Shoes (product-3)`), or by its id when it has no name (or is no longer in
/// the catalogue): `viewed product-3`.
pub fn explanation(product: &ProductId, name: Option<&str>, kind: ActivityType) -> String {
    let verb = match kind {
        ActivityType::View => "viewed",
        ActivityType::Click => "clicked",
        ActivityType::Like => "liked",
        ActivityType::AddToCart => "added to cart",
        ActivityType::RemoveFromCart => "removed from cart",
        ActivityType::Purchase => "purchased",
        ActivityType::Search => "searched",
        ActivityType::Rating => "rated",
    };
    match name.map(str::trim).filter(|n| !n.is_empty() && *n != product.as_str()) {
        Some(name) => format!("{verb} {name} ({product})"),
        None => format!("{verb} {product}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip_their_wire_names_and_index_their_position() {
        for (i, s) in Source::ALL.into_iter().enumerate() {
            assert_eq!(s.as_str().parse::<Source>(), Ok(s));
            assert_eq!(s.index(), i);
        }
        assert!("teleport".parse::<Source>().unwrap_err().contains("collaborative_filtering"));
    }

    #[test]
    fn explanations_name_the_event_and_the_product() {
        let p = ProductId::parse("product-3").unwrap();
        assert_eq!(
            explanation(&p, Some("Trail Shoes"), ActivityType::View),
            "viewed Trail Shoes (product-3)"
        );
        assert_eq!(explanation(&p, None, ActivityType::AddToCart), "added to cart product-3");
        for unnamed in ["", "  ", "product-3"] {
            assert_eq!(explanation(&p, Some(unnamed), ActivityType::Rating), "rated product-3");
        }
    }
}
