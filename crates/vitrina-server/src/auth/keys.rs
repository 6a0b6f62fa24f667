//! API keys: creating (random, shown once), hashing, verifying and revoking them.
//!
//! The active keys' hashes are held in memory, so a request is checked without a store
//! read; every change goes through [`Keys`] and is written to the store before it takes
//! effect here.

use std::{collections::HashMap, sync::Arc};

use arc_swap::ArcSwap;
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use vitrina_core::{
    keys::{ApiKey, Scope},
    ports::{KeyStore, StoreResult},
};

/// Every key starts with this, so it can be recognised (and found by secret scanners).
pub const KEY_PREFIX: &str = "vk_";
/// Characters of a key kept (with the prefix) to tell keys apart in listings.
const SHOWN: usize = 8;

/// What a verified key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub scope: Scope,
}

/// A key just created: the secret, returned once, and what is stored of it.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub secret: String,
    pub record: ApiKey,
}

/// Hex SHA-256 of a key.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes a new random key (32 random bytes) and its record; nothing is stored yet.
pub fn generate(scope: Scope, name: Option<String>) -> NewKey {
    let secret = format!("{KEY_PREFIX}{}", random_hex(32));
    let record = ApiKey {
        id: format!("key_{}", random_hex(6)),
        name,
        scope,
        hash: hash(&secret),
        prefix: secret[..KEY_PREFIX.len() + SHOWN].to_string(),
        created_at: Utc::now(),
        revoked_at: None,
    };
    NewKey { secret, record }
}

/// The keys as the guard sees them.
#[derive(Default)]
struct KeySet {
    /// Hash → caller, active keys only.
    active: HashMap<String, Caller>,
    /// Whether any key was ever created: from then on every guarded route needs one, even
    /// after every key is revoked (revoking the last key must not open the server).
    enforced: bool,
}

/// The key service: the store of record and the in-memory view the guard checks against.
pub struct Keys {
    store: Arc<dyn KeyStore>,
    /// What the guard checks, swapped whole on every change.
    set: ArcSwap<KeySet>,
    /// Serialises changes with their reload, so a slow reload cannot bring back a key that a
    /// later revocation removed.
    changing: tokio::sync::Mutex<()>,
}

impl Keys {
    /// Loads the keys from the store.
    pub async fn load(store: Arc<dyn KeyStore>) -> StoreResult<Self> {
        let keys = Self {
            store,
            set: ArcSwap::from_pointee(KeySet::default()),
            changing: tokio::sync::Mutex::new(()),
        };
        keys.reload().await?;
        Ok(keys)
    }

    /// Re-reads the keys from the store.
    pub async fn reload(&self) -> StoreResult<()> {
        let all = self.store.keys().await?;
        let active = all
            .iter()
            .filter(|k| k.active())
            .map(|k| (k.hash.clone(), Caller { key_id: k.id.clone(), scope: k.scope }))
            .collect();
        self.set.store(Arc::new(KeySet { active, enforced: !all.is_empty() }));
        Ok(())
    }

    /// Whether requests need a key.
    pub fn enforced(&self) -> bool {
        self.set.load().enforced
    }

    /// The caller a presented key belongs to, if it is a valid, unrevoked key.
    pub fn verify(&self, secret: &str) -> Option<Caller> {
        if !secret.starts_with(KEY_PREFIX) {
            return None;
        }
        self.set.load().active.get(&hash(secret)).cloned()
    }

    /// Creates and stores a key; the returned secret is never shown again.
    pub async fn create(&self, scope: Scope, name: Option<String>) -> StoreResult<NewKey> {
        let key = generate(scope, name);
        let _one_at_a_time = self.changing.lock().await;
        self.store.insert_key(key.record.clone()).await?;
        self.reload().await?;
        Ok(key)
    }

    pub async fn list(&self) -> StoreResult<Vec<ApiKey>> {
        self.store.keys().await
    }

    /// Revokes a key; `false` when there is no such key.
    pub async fn revoke(&self, id: &str) -> StoreResult<bool> {
        let _one_at_a_time = self.changing.lock().await;
        let found = self.store.revoke_key(id, Utc::now()).await?;
        self.reload().await?;
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_random_hashed_and_recognisable() {
        let a = generate(Scope::Read, Some("shop".into()));
        let b = generate(Scope::Read, None);
        assert_ne!(a.secret, b.secret);
        assert_ne!(a.record.id, b.record.id);
        assert!(a.secret.starts_with(KEY_PREFIX) && a.secret.len() == KEY_PREFIX.len() + 64);
        assert_eq!(a.record.hash, hash(&a.secret));
        assert_eq!(a.record.hash.len(), 64);
        assert!(!a.record.hash.contains(&a.secret[KEY_PREFIX.len()..]));
        assert!(a.secret.starts_with(&a.record.prefix) && a.record.prefix.len() == 11);
        // A known vector: SHA-256 of "abc".
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
