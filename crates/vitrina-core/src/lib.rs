//! Vitrina's domain: the vocabulary every other crate speaks.
//!
//! Identifiers and activities are validated here ([`ids`], [`activity`]), the catalogue
//! and users are plain data ([`catalog`]), [`events`] names what happens in the system,
//! [`ports`] are the traits storage, bus and cache backends implement, [`recommend`] is
//! what a served recommendation is, and [`stats`] counts a visitor's lists and the clicks and
//! purchases attributed to them.
//!
//! Invariant: this crate does no I/O and knows no runtime; every function is pure or works
//! on data handed to it.

pub mod activity;
pub mod catalog;
pub mod changes;
pub mod demo;
pub mod error;
pub mod events;
pub mod ids;
pub mod keys;
pub mod ports;
pub mod recommend;
pub mod roles;
pub mod stats;
pub mod time;

pub use activity::{ActivityInput, ActivityType, LogEvent, NewActivity, StoredActivity};
pub use catalog::{Price, Product, TextSearch, User};
pub use error::ValidationError;
pub use ids::{EventId, ProductId, UserId};
