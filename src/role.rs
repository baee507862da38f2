//! The roles a `fogflow` process can run, and sets of them as given on the command line.
//!
//! [`Role`] is the single source of truth for role names: the CLI, the config, logs and the composition root
//! in `roles/` all use it.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// One server role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// IoT Discovery (NGSI9 registry).
    Discovery,
    /// NGSI context broker.
    Broker,
    /// Designer (REST and dashboard).
    Designer,
    /// Topology master.
    Master,
    /// Worker running task instances.
    Worker,
}

impl Role {
    /// Every role, in start order (discovery before brokers before the control plane).
    pub const ALL: [Role; 5] = [Role::Discovery, Role::Broker, Role::Designer, Role::Master, Role::Worker];

    /// The role's name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Discovery => "discovery",
            Role::Broker => "broker",
            Role::Designer => "designer",
            Role::Master => "master",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let name = text.trim().to_ascii_lowercase();
        Role::ALL.into_iter().find(|role| role.as_str() == name).ok_or_else(|| {
            format!("unknown role `{text}` (valid roles: broker, discovery, master, worker, designer, all)")
        })
    }
}

/// A non-empty set of roles, iterated in start order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet(BTreeSet<Role>);

impl RoleSet {
    /// Parses role names as given with `--role` (comma lists and repeats already split); `all` means every role.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut roles = BTreeSet::new();
        for name in names {
            let name = name.as_ref().trim();
            if name.is_empty() {
                continue;
            }
            if name.eq_ignore_ascii_case("all") {
                roles.extend(Role::ALL);
            } else {
                roles.insert(name.parse::<Role>()?);
            }
        }
        if roles.is_empty() {
            return Err("no role given: use --role with broker, discovery, master, worker, designer or all".into());
        }
        Ok(RoleSet(roles))
    }

    /// A set of the given roles.
    pub fn of(roles: &[Role]) -> Self {
        RoleSet(roles.iter().copied().collect())
    }

    /// Whether the set holds `role`.
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    /// The roles in start order.
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_expands_and_lists_combine() {
        assert_eq!(RoleSet::parse(&["all"]).unwrap().iter().count(), 5);
        let set = RoleSet::parse(&["broker", "Discovery", "broker"]).unwrap();
        assert_eq!(set.to_string(), "discovery,broker");
    }

    #[test]
    fn unknown_and_missing_roles_are_errors_naming_the_valid_ones() {
        let error = RoleSet::parse(&["brokr"]).unwrap_err();
        assert!(error.contains("unknown role `brokr`") && error.contains("discovery"), "{error}");
        assert!(RoleSet::parse::<&str>(&[]).is_err());
    }
}
