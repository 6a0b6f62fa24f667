//! Validation errors raised when outside input becomes domain values.

use std::fmt;

/// One problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// Path of the offending field in the request, e.g. `events[3].userId`.
    pub field: String,
    /// What is wrong, lowercase, no trailing period.
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Self { field: field.into(), message: message.to_string() }
    }

    /// The same error, reported for another field (`productIds[2]` instead of `productId`).
    pub fn at(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }

    /// The same error, reported under a parent path (`events[3]` + `userId`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field =
            if self.field.is_empty() { parent.to_string() } else { format!("{parent}.{}", self.field) };
        self
    }
}
