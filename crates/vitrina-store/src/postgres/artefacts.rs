//! Model artefacts in PostgreSQL (ADR 0008): chunks of a table, replaced whole in one
//! transaction, so every process of a deployment reads the same bytes without a shared disk.

use async_trait::async_trait;
use vitrina_core::ports::{ArtefactStore, StoreResult};

use super::{backend, PgStore};

/// Bytes per row (PostgreSQL's limit for one value is 1 GiB; smaller rows keep memory low).
const CHUNK: usize = 8 << 20;

#[async_trait]
impl ArtefactStore for PgStore {
    async fn put_artefact(&self, path: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("DELETE FROM artefacts WHERE path = $1", &[&path]).await.map_err(backend)?;
        let insert = tx
            .prepare("INSERT INTO artefacts (path, chunk, bytes) VALUES ($1, $2, $3)")
            .await
            .map_err(backend)?;
        for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
            tx.execute(&insert, &[&path, &(i as i32), &chunk]).await.map_err(backend)?;
        }
        if bytes.is_empty() {
            tx.execute(&insert, &[&path, &0i32, &&b""[..]]).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn get_artefact(&self, path: &str) -> StoreResult<Option<Vec<u8>>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT bytes FROM artefacts WHERE path = $1 ORDER BY chunk", &[&path])
            .await
            .map_err(backend)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(rows.iter().map(|r| r.get::<_, &[u8]>(0).len()).sum());
        for row in &rows {
            out.extend_from_slice(row.get::<_, &[u8]>(0));
        }
        Ok(Some(out))
    }

    async fn delete_artefact(&self, path: &str) -> StoreResult<()> {
        let client = self.client().await?;
        client.execute("DELETE FROM artefacts WHERE path = $1", &[&path]).await.map_err(backend)?;
        Ok(())
    }
}
