//! Model artefacts as files under a data directory: the embedded store's `ArtefactStore`.
//!
//! A file is written to a temporary name, fsynced, renamed into place and its directory
//! fsynced, so a crash never leaves a half-written artefact under its name.

use std::{
    fs::{self, File},
    io::{BufWriter, Write},
    path::{Component, Path, PathBuf},
};

use vitrina_core::ports::{StoreError, StoreResult};

/// The artefacts of one data directory.
#[derive(Debug, Clone)]
pub struct DirArtefacts {
    dir: PathBuf,
}

impl DirArtefacts {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `relative` inside the directory; a path that would leave it is refused.
    fn full(&self, relative: &str) -> StoreResult<PathBuf> {
        let path = Path::new(relative);
        if relative.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(StoreError::Backend(format!(
                "artefact path {relative:?} is not a relative path inside the data directory"
            )));
        }
        Ok(self.dir.join(path))
    }

    /// Blocking.
    pub fn put(&self, relative: &str, bytes: &[u8]) -> StoreResult<()> {
        let path = self.full(relative)?;
        let io = |e: std::io::Error| StoreError::Backend(format!("artefact {relative}: {e}"));
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            let mut f = BufWriter::new(File::create(&tmp).map_err(io)?);
            f.write_all(bytes).map_err(io)?;
            f.into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &path).map_err(io)?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    }

    /// Blocking.
    pub fn delete(&self, relative: &str) -> StoreResult<()> {
        let path = self.full(relative)?;
        let io = |e: std::io::Error| StoreError::Backend(format!("artefact {relative}: {e}"));
        // What a write that was cut short left behind goes too.
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        if let Err(e) = fs::remove_file(tmp) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(io(e));
            }
        }
        match fs::remove_file(&path) {
            Ok(()) => {
                File::open(path.parent().unwrap_or(Path::new("."))).and_then(|d| d.sync_all()).map_err(io)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    /// Blocking.
    pub fn get(&self, relative: &str) -> StoreResult<Option<Vec<u8>>> {
        match fs::read(self.full(relative)?) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Backend(format!("artefact {relative}: {e}"))),
        }
    }
}

#[async_trait::async_trait]
impl vitrina_core::ports::ArtefactStore for DirArtefacts {
    async fn put_artefact(&self, path: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let (me, path) = (self.clone(), path.to_string());
        tokio::task::spawn_blocking(move || me.put(&path, &bytes))
            .await
            .map_err(|e| StoreError::Backend(format!("artefact task failed: {e}")))?
    }

    async fn get_artefact(&self, path: &str) -> StoreResult<Option<Vec<u8>>> {
        let (me, path) = (self.clone(), path.to_string());
        tokio::task::spawn_blocking(move || me.get(&path))
            .await
            .map_err(|e| StoreError::Backend(format!("artefact task failed: {e}")))?
    }

    async fn delete_artefact(&self, path: &str) -> StoreResult<()> {
        let (me, path) = (self.clone(), path.to_string());
        tokio::task::spawn_blocking(move || me.delete(&path))
            .await
            .map_err(|e| StoreError::Backend(format!("artefact task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artefacts_round_trip_inside_the_directory_and_paths_that_leave_it_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirArtefacts::new(dir.path().join("data"));
        assert_eq!(store.get("models/v1.vtb").unwrap(), None);
        store.put("models/v1.vtb", b"bundle").unwrap();
        assert_eq!(store.get("models/v1.vtb").unwrap().as_deref(), Some(&b"bundle"[..]));
        assert!(dir.path().join("data/models/v1.vtb").is_file());
        assert!(!dir.path().join("data/models/v1.vtb.tmp").exists(), "no temporary file is left");
        store.put("checkpoints/c.vck", b"state").unwrap();
        std::fs::write(dir.path().join("data/checkpoints/c.vck.tmp"), b"a write cut short").unwrap();
        store.delete("checkpoints/c.vck").unwrap();
        assert!(!dir.path().join("data/checkpoints/c.vck").exists());
        assert!(!dir.path().join("data/checkpoints/c.vck.tmp").exists(), "what a cut write left goes too");
        store.delete("checkpoints/c.vck").unwrap();
        for escape in ["../outside", "models/../../outside", "/etc/passwd", "./models/v1.vtb", ""] {
            let err = store.put(escape, b"x").unwrap_err();
            assert!(err.to_string().contains("not a relative path inside"), "{escape:?}: {err}");
            assert!(store.get(escape).is_err(), "{escape:?}");
        }
        assert!(!dir.path().join("outside").exists());
    }
}
