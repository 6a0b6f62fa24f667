//! Model artefacts on the local disk: one bundle file per version under `<data dir>/models`.
//!
//! A file is written to a temporary name, fsynced and renamed into place, so a crash never
//! leaves a half-written artefact under a version's name; the registry records its checksum
//! and size, and loading checks both before parsing. Blocking: call from `spawn_blocking`.

use std::{
    fs::{self, File},
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use vitrina_core::ports::Artefact;
use vitrina_engine::{bundle::BundleError, ModelBundle};

/// Why an artefact could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtefactError {
    #[error("artefact {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("artefact {path} is {found} bytes, the registry recorded {expected}")]
    Size { path: String, found: u64, expected: u64 },
    #[error("artefact {path} has checksum {found}, the registry recorded {expected}")]
    Checksum { path: String, found: String, expected: String },
    #[error("artefact {path}: {source}")]
    Bundle { path: String, source: BundleError },
}

/// The artefact directory of a data directory.
#[derive(Debug, Clone)]
pub struct Artefacts {
    data_dir: PathBuf,
}

fn checksum(bytes: &[u8]) -> String {
    format!("crc32:{:08x}", crc32fast::hash(bytes))
}

impl Artefacts {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self { data_dir: data_dir.into() }
    }

    fn full(&self, relative: &str) -> PathBuf {
        self.data_dir.join(relative)
    }

    /// Writes `bundle` as the artefact of `version`, durably.
    pub fn save(&self, version: &str, bundle: &ModelBundle) -> Result<Artefact, ArtefactError> {
        let relative = format!("models/{version}.vtb");
        let path = self.full(&relative);
        let io = |source| ArtefactError::Io { path: relative.clone(), source };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io)?;
        let mut bytes = Vec::new();
        bundle
            .write(&mut bytes)
            .map_err(|source| ArtefactError::Bundle { path: relative.clone(), source })?;
        let tmp = path.with_extension("vtb.tmp");
        {
            let mut f = BufWriter::new(File::create(&tmp).map_err(io)?);
            f.write_all(&bytes).map_err(io)?;
            f.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &path).map_err(io)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(Artefact { path: relative, checksum: checksum(&bytes), size_bytes: bytes.len() as u64 })
    }

    /// Reads and checks an artefact the registry describes.
    pub fn load(&self, artefact: &Artefact) -> Result<ModelBundle, ArtefactError> {
        let path = artefact.path.clone();
        let bytes = fs::read(self.full(&artefact.path))
            .map_err(|source| ArtefactError::Io { path: path.clone(), source })?;
        if bytes.len() as u64 != artefact.size_bytes {
            return Err(ArtefactError::Size {
                path,
                found: bytes.len() as u64,
                expected: artefact.size_bytes,
            });
        }
        let found = checksum(&bytes);
        if found != artefact.checksum {
            return Err(ArtefactError::Checksum { path, found, expected: artefact.checksum.clone() });
        }
        ModelBundle::read(&bytes[..]).map_err(|source| ArtefactError::Bundle { path, source })
    }
}
