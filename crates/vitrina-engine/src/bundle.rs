//! A model bundle: everything one training job produces — the models of each source over
//! one item vocabulary — and its artefact file.
//!
//! File layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `VTRNBNDL` |
//! | 2 | format version ([`FORMAT_VERSION`]) |
//! | 8 | header length `h` |
//! | h | header: JSON ([`Header`]: item ids, training config, data range, summary, part names, ranker, engagement totals) |
//! | … | per part: 8-byte length, then the model as a `vitrina-algo` artefact |
//! | 4 | CRC-32 of everything between the magic and the checksum |
//!
//! Each part carries its own magic, version and checksum too; a bundle loads back bit-exact
//! or fails with [`BundleError`].

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use vitrina_algo::{
    artefact,
    ltr::Ranker,
    models::{Als, ItemKnn, Model, Popularity, Transitions},
};
use vitrina_core::ProductId;

use crate::{config::TrainingConfig, engagement::Engagement};

pub const MAGIC: &[u8; 8] = b"VTRNBNDL";
pub const FORMAT_VERSION: u16 = 1;
/// Largest bundle header accepted (the item ids dominate it).
const MAX_HEADER: u64 = 1 << 30;

/// Why a bundle could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("model artefact is corrupt: {0}")]
    Corrupt(String),
    #[error("model artefact i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("model artefact part: {0}")]
    Part(#[from] vitrina_algo::AlgoError),
}

/// What a training job saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrainSummary {
    pub events: u64,
    pub users: u64,
    pub items: u64,
    /// Distinct positive (user, item) pairs.
    pub interactions: u64,
}

/// The trained models of every source, over the item vocabulary `items`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelBundle {
    /// Model item `i` is product `items[i]`.
    pub items: Vec<ProductId>,
    pub config: TrainingConfig,
    /// The event log range `(first_seq, last_seq)` the bundle was trained on.
    pub data_range: (u64, u64),
    pub summary: TrainSummary,
    pub als: Option<Als>,
    pub knn: Option<ItemKnn>,
    /// Sparse EASE (top weights per item), scored like item-kNN.
    pub ease: Option<ItemKnn>,
    /// The EASE model `whole_history` reads when it has its own (denser, signed weights).
    pub ease_history: Option<ItemKnn>,
    pub transitions: Option<Transitions>,
    pub popularity: Option<Popularity>,
    /// The learned ranker over [`crate::features::NAMES`].
    pub ranker: Option<Ranker>,
    /// What became of the model's items when they were shown: the offline features.
    pub engagement: Option<Engagement>,
}

/// A learned ranker as the header carries it: with the names of the features it was
/// trained on, so a build that computes other features never applies it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RankerPart {
    features: Vec<String>,
    model: Ranker,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    items: Vec<String>,
    config: TrainingConfig,
    data_range: (u64, u64),
    summary: TrainSummary,
    parts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ranker: Option<RankerPart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    engagement: Option<Engagement>,
}

impl ModelBundle {
    fn parts(&self) -> Vec<(&'static str, Model)> {
        let mut parts = Vec::new();
        if let Some(m) = &self.als {
            parts.push(("als", Model::Als(m.clone())));
        }
        if let Some(m) = &self.knn {
            parts.push(("item-knn", Model::ItemKnn(m.clone())));
        }
        if let Some(m) = &self.ease {
            parts.push(("ease", Model::ItemKnn(m.clone())));
        }
        if let Some(m) = &self.ease_history {
            parts.push(("ease-history", Model::ItemKnn(m.clone())));
        }
        if let Some(m) = &self.transitions {
            parts.push(("transitions", Model::Transitions(m.clone())));
        }
        if let Some(m) = &self.popularity {
            parts.push(("popularity", Model::Popularity(m.clone())));
        }
        parts
    }

    /// Names of the models the bundle holds.
    pub fn algorithms(&self) -> Vec<&'static str> {
        self.parts().into_iter().map(|p| p.0).collect()
    }

    /// Writes the bundle artefact.
    pub fn write(&self, mut w: impl Write) -> Result<(), BundleError> {
        let parts = self.parts();
        let header = Header {
            items: self.items.iter().map(|p| p.to_string()).collect(),
            config: self.config.clone(),
            data_range: self.data_range,
            summary: self.summary,
            parts: parts.iter().map(|p| p.0.to_string()).collect(),
            ranker: self.ranker.as_ref().map(|r| RankerPart {
                features: crate::features::NAMES.iter().map(|n| n.to_string()).collect(),
                model: r.clone(),
            }),
            engagement: self.engagement.clone(),
        };
        let header = serde_json::to_vec(&header).map_err(|e| BundleError::Corrupt(e.to_string()))?;
        let mut body = Vec::new();
        body.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        body.extend_from_slice(&(header.len() as u64).to_le_bytes());
        body.extend_from_slice(&header);
        for (_, model) in &parts {
            let mut bytes = Vec::new();
            artefact::write_model(model, &mut bytes)?;
            body.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            body.extend_from_slice(&bytes);
        }
        let crc = crc32fast::hash(&body);
        w.write_all(MAGIC)?;
        w.write_all(&body)?;
        w.write_all(&crc.to_le_bytes())?;
        w.flush()?;
        Ok(())
    }

    /// Reads a bundle artefact, verifying magic, version and checksums.
    pub fn read(mut r: impl Read) -> Result<Self, BundleError> {
        let mut all = Vec::new();
        r.read_to_end(&mut all)?;
        let corrupt = |m: &str| BundleError::Corrupt(m.to_string());
        if all.len() < MAGIC.len() + 2 + 8 + 4 || &all[..8] != MAGIC {
            return Err(corrupt("not a Vitrina model bundle (bad magic or too short)"));
        }
        let (body, crc) = all[8..].split_at(all.len() - 12);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err(corrupt("checksum mismatch"));
        }
        let version = u16::from_le_bytes([body[0], body[1]]);
        if version != FORMAT_VERSION {
            return Err(BundleError::Corrupt(format!(
                "format version {version}, this build reads {FORMAT_VERSION}"
            )));
        }
        let mut at: usize = 2;
        let mut take = |n: u64| -> Result<&[u8], BundleError> {
            let n = usize::try_from(n).map_err(|_| corrupt("length overflow"))?;
            let end = at.checked_add(n).filter(|e| *e <= body.len()).ok_or_else(|| corrupt("truncated"))?;
            let s = &body[at..end];
            at = end;
            Ok(s)
        };
        let len = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        let header_len = len(take(8)?);
        if header_len > MAX_HEADER {
            return Err(corrupt("header too large"));
        }
        let header: Header = serde_json::from_slice(take(header_len)?)
            .map_err(|e| BundleError::Corrupt(format!("header: {e}")))?;
        let items = header
            .items
            .iter()
            .map(|i| ProductId::parse(i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| BundleError::Corrupt(format!("item id: {e}")))?;
        let mut bundle = ModelBundle {
            items,
            config: header.config,
            data_range: header.data_range,
            summary: header.summary,
            als: None,
            knn: None,
            ease: None,
            ease_history: None,
            transitions: None,
            popularity: None,
            ranker: ranker(header.ranker)?,
            engagement: header.engagement,
        };
        let n = bundle.items.len();
        for name in &header.parts {
            let part_len = len(take(8)?);
            let model = artefact::read_model(take(part_len)?)?;
            if model.n_items() != n {
                return Err(BundleError::Corrupt(format!(
                    "{name} scores {} items, the bundle has {n}",
                    model.n_items()
                )));
            }
            match (name.as_str(), model) {
                ("als", Model::Als(m)) => bundle.als = Some(m),
                ("item-knn", Model::ItemKnn(m)) => bundle.knn = Some(m),
                ("ease", Model::ItemKnn(m)) => bundle.ease = Some(m),
                ("ease-history", Model::ItemKnn(m)) => bundle.ease_history = Some(m),
                ("transitions", Model::Transitions(m)) => bundle.transitions = Some(m),
                ("popularity", Model::Popularity(m)) => bundle.popularity = Some(m),
                (other, m) => {
                    return Err(BundleError::Corrupt(format!(
                        "part {other} holds a {} model",
                        m.kind().name()
                    )))
                }
            }
        }
        if at != body.len() {
            return Err(corrupt("trailing bytes after the last part"));
        }
        Ok(bundle)
    }
}

/// The header's ranker, checked; one trained on other features than this build computes is
/// left out (lists fall back to the blend) rather than applied to the wrong inputs.
fn ranker(part: Option<RankerPart>) -> Result<Option<Ranker>, BundleError> {
    let Some(part) = part else { return Ok(None) };
    if part.features.iter().map(String::as_str).ne(crate::features::NAMES) {
        tracing::warn!("the model's learned ranker was trained on other features; lists use the blend");
        return Ok(None);
    }
    if part.model.n_features() != crate::features::N {
        return Err(BundleError::Corrupt(
            "the learned ranker's feature count does not match its names".into(),
        ));
    }
    part.model.validate()?;
    Ok(Some(part.model))
}
