//! What one process tells the others of a deployment besides the log's commits: changes to
//! state that is not in the log. A change is a hint to re-read the store, which stays the
//! truth; a process that missed one still converges at its next periodic re-read.

use serde::{Deserialize, Serialize};

use crate::{ProductId, UserId};

/// A change another process made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Change {
    /// These products were created, changed or deleted: read each back from the catalogue.
    Products { ids: Vec<ProductId> },
    /// An experiment was created, started, stopped, stepped or reverted: read them back.
    Experiments,
    /// The visitor was erased: forget their online state and cached lists, and apply none
    /// of their events up to `through` (the log's head just after the erasure) that a
    /// broker may still deliver. `partly`: only some of their events were deleted (a
    /// retraction), so once the log up to `through` is applied their online state is read
    /// back from it instead.
    Erased {
        user: UserId,
        #[serde(default)]
        through: u64,
        #[serde(default)]
        partly: bool,
    },
    /// An API key was created or revoked: read the keys back.
    Keys,
}
