//! The roles one Vitrina process can play: `activity` (takes events into the log), `api`
//! (serves lists from an online state that follows the log) and `training` (jobs, the
//! registry, experiments' automated steps). The embedded deployment plays all three.

use std::fmt;

/// One role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Activity,
    Api,
    Training,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Activity, Role::Api, Role::Training];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Activity => "activity",
            Role::Api => "api",
            Role::Training => "training",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles a process plays: a non-empty set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    /// Every role: the embedded deployment.
    pub fn all() -> Self {
        Self(Role::ALL.iter().fold(0, |bits, r| bits | r.bit()))
    }

    pub fn has(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn is_all(self) -> bool {
        self == Self::all()
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.has(*r))
    }

    /// Parses a comma-separated list such as `activity,api`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bits = 0u8;
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let role = Role::ALL
                .into_iter()
                .find(|r| r.as_str() == name)
                .ok_or_else(|| format!("unknown role '{name}': the roles are activity, api and training"))?;
            bits |= role.bit();
        }
        if bits == 0 {
            return Err("no role given: name one or more of activity, api and training".into());
        }
        Ok(Self(bits))
    }
}

impl Default for Roles {
    fn default() -> Self {
        Self::all()
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_any_subset_and_prints_it_back() {
        let r = Roles::parse("api, activity").unwrap();
        assert!(r.has(Role::Api) && r.has(Role::Activity) && !r.has(Role::Training));
        assert_eq!(r.to_string(), "activity,api");
        assert!(Roles::parse("activity,api,training").unwrap().is_all());
        assert_eq!(Roles::default(), Roles::all());
        assert!(Roles::parse("api,cache").unwrap_err().contains("unknown role 'cache'"));
        assert!(Roles::parse(" , ").is_err());
    }
}
