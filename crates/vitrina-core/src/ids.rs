//! Validated identifiers: users, products and events.
//!
//! Ids are opaque strings chosen by the shop. They must be 1–128 characters of
//! letters, digits and `-_.:@`, so that they are safe in URLs, logs and keys.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// Longest id accepted.
pub const MAX_ID_LEN: usize = 128;

fn check_id(field: &str, raw: &str) -> Result<(), ValidationError> {
    if raw.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if raw.len() > MAX_ID_LEN {
        return Err(ValidationError::new(field, format!("must be at most {MAX_ID_LEN} characters")));
    }
    if let Some(c) = raw.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_.:@".contains(*c))) {
        return Err(ValidationError::new(
            field,
            format!("contains {c:?}; only letters, digits and -_.:@ are allowed"),
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates `raw` as this kind of id.
            pub fn parse(raw: &str) -> Result<Self, ValidationError> {
                check_id($field, raw)?;
                Ok(Self(Arc::from(raw)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// Lookups by `&str` in maps keyed by the id (`Hash` and `Eq` are the string's).
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(raw: String) -> Result<Self, Self::Error> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

id_type!(
    /// A shop visitor or customer.
    UserId, "userId"
);
id_type!(
    /// A catalogue item.
    ProductId, "productId"
);
id_type!(
    /// The client's idempotency key for one event.
    EventId, "eventId"
);

impl EventId {
    /// A fresh, time-ordered id for events that came without one.
    pub fn generate() -> Self {
        Self(Arc::from(uuid::Uuid::now_v7().to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_shop_style_ids() {
        for ok in ["user-1", "product_8", "a", "sku:123.4@eu", &"x".repeat(MAX_ID_LEN)] {
            assert_eq!(UserId::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn rejects_empty_long_and_unsafe_ids() {
        assert_eq!(UserId::parse("").unwrap_err().message, "must not be empty");
        assert!(ProductId::parse(&"x".repeat(MAX_ID_LEN + 1)).is_err());
        let err = ProductId::parse("a/b").unwrap_err();
        assert_eq!(err.field, "productId");
        assert!(err.message.contains("'/'"), "{}", err.message);
        assert!(UserId::parse("user 1").is_err());
    }

    #[test]
    fn generated_event_ids_are_valid_and_distinct() {
        let (a, b) = (EventId::generate(), EventId::generate());
        assert_ne!(a, b);
        EventId::parse(a.as_str()).unwrap();
    }
}
