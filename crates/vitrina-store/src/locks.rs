//! Locks in one process: the embedded store's (one process per data directory, so a lock in
//! memory is a lock for the whole deployment).

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use vitrina_core::ports::{HeldLock, LockGuard, StoreResult};

/// The names held in this process.
#[derive(Clone, Default)]
pub struct LocalLocks(Arc<Mutex<HashSet<String>>>);

struct Held(LocalLocks, String);

impl Drop for Held {
    fn drop(&mut self) {
        (self.0).0.lock().expect("locks lock").remove(&self.1);
    }
}

#[async_trait]
impl HeldLock for Held {
    async fn release(self: Box<Self>) {}
}

impl LocalLocks {
    pub fn try_lock(&self, name: &str) -> StoreResult<Option<LockGuard>> {
        let taken = self.0.lock().expect("locks lock").insert(name.to_string());
        Ok(taken.then(|| Box::new(Held(self.clone(), name.to_string())) as LockGuard))
    }
}
