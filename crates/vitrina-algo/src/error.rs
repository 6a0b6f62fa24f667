//! The crate's error type: every fallible function returns [`Result`].

use thiserror::Error;

/// Why a model could not be trained, scored, saved, loaded or evaluated.
#[derive(Debug, Error)]
pub enum AlgoError {
    /// The caller passed something the function cannot work with (NaN weight, bad parameter…).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A dataset line could not be parsed.
    #[error("parse error on line {line}: {message}")]
    Parse { line: usize, message: String },
    /// The catalogue is larger than a dense model accepts.
    #[error("catalogue too large for {model}: {items} items, limit is {limit} (raise the limit or use another model)")]
    CatalogueTooLarge { model: &'static str, items: usize, limit: usize },
    /// A linear solve failed (matrix not positive definite).
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// An artefact is not a Vitrina artefact, has another version, is truncated or corrupted.
    #[error("invalid artefact: {0}")]
    Artefact(String),
    /// Writing or reading an artefact or split failed at the I/O level.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Shorthand used across the crate.
pub type Result<T> = std::result::Result<T, AlgoError>;

pub(crate) fn invalid(msg: impl Into<String>) -> AlgoError {
    AlgoError::InvalidInput(msg.into())
}
