//! Vitrina's recommendation models and their offline evaluation.
//!
//! CPU-bound and synchronous: parallelism comes from rayon inside the training and scoring
//! functions, and the crate does no I/O of its own — parsers read from `&str`/`impl Read`,
//! artefacts go to `impl Write`/come from `impl Read`. Inputs are numeric (dense `u32` ids);
//! [`ids::Interner`] maps a caller's string ids to them.
//!
//! Map of the crate:
//! - [`matrix`]: interactions → weighted user×item CSR matrix, time decay, duplicates;
//! - [`models`]: popularity/trending, item-kNN, implicit ALS (with fold-in), EASE, RP3beta,
//!   item→next-item transitions and a weighted blend, all behind [`models::Model`];
//! - [`artefact`]: the versioned, checksummed binary format every model is saved in;
//! - [`eval`]: dataset parsers, leave-last-out and random-80-20 protocols, metrics, tuning
//!   on a validation split carved from training data, reports and split export;
//! - [`ltr`]: learning to rank — gradient-boosted trees with the LambdaMART objective;
//! - [`ivf`]: an inverted-file index for maximum-inner-product search over embeddings;
//! - [`gen`]: a seeded synthetic shop-event generator.

pub mod artefact;
pub mod error;
pub mod eval;
pub mod gen;
pub mod ids;
pub mod ivf;
mod linalg;
pub mod ltr;
pub mod matrix;
pub mod models;
pub mod topk;

pub use error::{AlgoError, Result};
pub use matrix::{CsrMatrix, Duplicates, Interaction, MatrixOptions, TimeDecay};
pub use models::{Model, ModelKind};
