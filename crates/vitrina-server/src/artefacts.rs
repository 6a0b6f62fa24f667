//! Model artefacts: a bundle per version, stored through the `ArtefactStore` port (files under
//! the data directory on the embedded store, a table on PostgreSQL) at `models/{version}.vtb`.
//!
//! The registry records each artefact's checksum and size, and loading checks both before
//! parsing. Serialising and parsing run on the blocking pool.

use std::sync::Arc;

use vitrina_core::ports::{Artefact, ArtefactStore, StoreError};
use vitrina_engine::{bundle::BundleError, ModelBundle};

/// Why an artefact could not be saved or loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtefactError {
    #[error("artefact {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("artefact {path} is missing")]
    Missing { path: String },
    #[error("artefact {path} is {found} bytes, the registry recorded {expected}")]
    Size { path: String, found: u64, expected: u64 },
    #[error("artefact {path} has checksum {found}, the registry recorded {expected}")]
    Checksum { path: String, found: String, expected: String },
    #[error("artefact {path}: {source}")]
    Bundle { path: String, source: BundleError },
    #[error("artefact {path}: {reason}")]
    Task { path: String, reason: String },
}

/// The artefacts of a deployment.
#[derive(Clone)]
pub struct Artefacts {
    store: Arc<dyn ArtefactStore>,
}

fn checksum(bytes: &[u8]) -> String {
    format!("crc32:{:08x}", crc32fast::hash(bytes))
}

impl Artefacts {
    pub fn new(store: Arc<dyn ArtefactStore>) -> Self {
        Self { store }
    }

    /// Writes `bundle` as the artefact of `version`, durably.
    pub async fn save(&self, version: &str, bundle: Arc<ModelBundle>) -> Result<Artefact, ArtefactError> {
        let path = format!("models/{version}.vtb");
        let task =
            |e: tokio::task::JoinError| ArtefactError::Task { path: path.clone(), reason: e.to_string() };
        let bytes = tokio::task::spawn_blocking(move || {
            let mut bytes = Vec::new();
            bundle.write(&mut bytes).map(|()| bytes)
        })
        .await
        .map_err(task)?
        .map_err(|source| ArtefactError::Bundle { path: path.clone(), source })?;
        let artefact =
            Artefact { path: path.clone(), checksum: checksum(&bytes), size_bytes: bytes.len() as u64 };
        self.store
            .put_artefact(&path, bytes)
            .await
            .map_err(|source| ArtefactError::Store { path, source })?;
        Ok(artefact)
    }

    /// Reads and checks an artefact the registry describes.
    pub async fn load(&self, artefact: &Artefact) -> Result<ModelBundle, ArtefactError> {
        let path = artefact.path.clone();
        let bytes = self
            .store
            .get_artefact(&path)
            .await
            .map_err(|source| ArtefactError::Store { path: path.clone(), source })?
            .ok_or_else(|| ArtefactError::Missing { path: path.clone() })?;
        if bytes.len() as u64 != artefact.size_bytes {
            return Err(ArtefactError::Size {
                path,
                found: bytes.len() as u64,
                expected: artefact.size_bytes,
            });
        }
        let expected = artefact.checksum.clone();
        let task =
            |e: tokio::task::JoinError| ArtefactError::Task { path: path.clone(), reason: e.to_string() };
        let parsed = tokio::task::spawn_blocking(move || {
            let found = checksum(&bytes);
            if found != expected {
                return Err(Err(found));
            }
            ModelBundle::read(&bytes[..]).map_err(Ok)
        })
        .await
        .map_err(task)?;
        parsed.map_err(|e| match e {
            Err(found) => {
                ArtefactError::Checksum { path: path.clone(), found, expected: artefact.checksum.clone() }
            }
            Ok(source) => ArtefactError::Bundle { path: path.clone(), source },
        })
    }
}
