//! The model registry, experiments and API keys on PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use vitrina_core::{
    keys::ApiKey,
    ports::{ExperimentStore, KeyStore, ModelRecord, ModelRegistry, ModelStatus, StoreError, StoreResult},
};

use super::{backend, rows, PgStore};

/// Advisory lock key serialising activations across processes ("models" in ASCII).
const ACTIVATION_LOCK: i64 = 0x6d6f_6465_6c73;

#[async_trait]
impl ModelRegistry for PgStore {
    async fn save_model(&self, m: ModelRecord) -> StoreResult<()> {
        let artefact = m.artefact.as_ref();
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO models (version, algorithm, parameters, metrics, status, status_reason, first_seq, last_seq,
                   artefact_path, artefact_checksum, artefact_bytes, created_ms, finished_ms, activated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                 ON CONFLICT (version) DO UPDATE SET algorithm = excluded.algorithm, parameters = excluded.parameters,
                   metrics = excluded.metrics, status = excluded.status, status_reason = excluded.status_reason,
                   first_seq = excluded.first_seq, last_seq = excluded.last_seq, artefact_path = excluded.artefact_path,
                   artefact_checksum = excluded.artefact_checksum, artefact_bytes = excluded.artefact_bytes,
                   finished_ms = excluded.finished_ms, activated_ms = excluded.activated_ms",
                &[
                    &m.version,
                    &m.algorithm,
                    &m.parameters.to_string(),
                    &m.metrics.to_string(),
                    &m.status.as_str(),
                    &m.status_reason,
                    &(m.data_range.0 as i64),
                    &(m.data_range.1 as i64),
                    &artefact.map(|a| a.path.as_str()),
                    &artefact.map(|a| a.checksum.as_str()),
                    &artefact.map(|a| a.size_bytes as i64),
                    &m.created_at.timestamp_millis(),
                    &m.finished_at.map(|t| t.timestamp_millis()),
                    &m.activated_at.map(|t| t.timestamp_millis()),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn activate_model(&self, version: &str, at: DateTime<Utc>, rollback: bool) -> StoreResult<()> {
        let (active, archived) = (ModelStatus::Active.as_str(), ModelStatus::Archived.as_str());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ACTIVATION_LOCK]).await.map_err(backend)?;
        let known =
            tx.execute("SELECT 1 FROM models WHERE version = $1", &[&version]).await.map_err(backend)? > 0;
        if !known {
            return Err(StoreError::Backend(format!("model {version} is not in the registry")));
        }
        if !rollback {
            // The model it replaces; activating the active model again keeps the one it had.
            tx.execute(
                "UPDATE models SET previous_version = COALESCE(
                   (SELECT version FROM models WHERE status = $1 AND version <> $2 LIMIT 1), previous_version)
                 WHERE version = $2",
                &[&active, &version],
            )
            .await
            .map_err(backend)?;
        }
        tx.execute(
            "UPDATE models SET status = $1 WHERE status = $2 AND version <> $3",
            &[&archived, &active, &version],
        )
        .await
        .map_err(backend)?;
        tx.execute(
            "UPDATE models SET status = $1, activated_ms = $2 WHERE version = $3",
            &[&active, &at.timestamp_millis(), &version],
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn models(&self) -> StoreResult<Vec<ModelRecord>> {
        let sql =
            format!("SELECT {} FROM models ORDER BY created_ms DESC, version DESC", rows::MODEL_COLUMNS);
        self.query(&sql, &[], rows::model).await
    }
}

#[async_trait]
impl ExperimentStore for PgStore {
    async fn save_experiment(&self, id: &str, doc: Value) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO experiments (id, doc, created_ms, updated_ms) VALUES ($1, $2, $3, $3)
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, updated_ms = excluded.updated_ms",
                &[&id, &doc.to_string(), &Utc::now().timestamp_millis()],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn experiments(&self) -> StoreResult<Vec<Value>> {
        self.query("SELECT doc FROM experiments ORDER BY created_ms, id", &[], |r| {
            serde_json::from_str(r.get::<_, &str>(0))
                .map_err(|e| StoreError::Backend(format!("corrupt experiment: {e}")))
        })
        .await
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn insert_key(&self, k: ApiKey) -> StoreResult<()> {
        let client = self.client().await?;
        let written = client
            .execute(
                "INSERT INTO api_keys (id, name, scope, hash, prefix, created_ms, revoked_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                &[
                    &k.id,
                    &k.name,
                    &k.scope.as_str(),
                    &k.hash,
                    &k.prefix,
                    &k.created_at.timestamp_millis(),
                    &k.revoked_at.map(|t| t.timestamp_millis()),
                ],
            )
            .await
            .map_err(backend)?;
        if written == 0 {
            return Err(StoreError::Conflict(format!("api key {} exists", k.id)));
        }
        Ok(())
    }

    async fn keys(&self) -> StoreResult<Vec<ApiKey>> {
        let sql = format!("SELECT {} FROM api_keys ORDER BY created_ms, id", rows::KEY_COLUMNS);
        self.query(&sql, &[], rows::key).await
    }

    async fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let client = self.client().await?;
        let updated = client
            .execute(
                "UPDATE api_keys SET revoked_ms = COALESCE(revoked_ms, $2) WHERE id = $1",
                &[&id, &at.timestamp_millis()],
            )
            .await
            .map_err(backend)?;
        Ok(updated > 0)
    }
}
