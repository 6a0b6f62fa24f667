//! API keys: what a key may do ([`Scope`]) and what is stored of it ([`ApiKey`]).
//!
//! A key is shown once, when it is created; the store keeps only its SHA-256 hash (keys are
//! 32 random bytes, so a fast hash is enough) and a short prefix that lets people tell keys
//! apart in listings.

use chrono::{DateTime, Utc};

/// What a key may do. `admin` may do everything; `read` and `track` only their own routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Sending visitor events (`/api/v1/activity/track…`).
    Track,
    /// Recommendations, similar, popular, session, activity history, stats, catalogue reads.
    Read,
    /// Everything else, keys included.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Track, Scope::Read, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Track => "track",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Whether a key of this scope may call a route that needs `needed`.
    pub fn grants(self, needed: Scope) -> bool {
        self == Scope::Admin || self == needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored key: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public identifier, used to list and revoke.
    pub id: String,
    pub name: Option<String>,
    pub scope: Scope,
    /// Hex SHA-256 of the whole key.
    pub hash: String,
    /// The key's first characters, to recognise it (`vk_3f9a…`).
    pub prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    pub fn active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_grants_every_scope_and_the_others_only_their_own() {
        for needed in Scope::ALL {
            assert!(Scope::Admin.grants(needed));
        }
        assert!(Scope::Read.grants(Scope::Read) && !Scope::Read.grants(Scope::Track));
        assert!(!Scope::Read.grants(Scope::Admin) && !Scope::Track.grants(Scope::Admin));
        assert!(Scope::Track.grants(Scope::Track) && !Scope::Track.grants(Scope::Read));
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        assert_eq!(Scope::parse("Admin"), None);
    }
}
