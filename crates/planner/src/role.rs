//! Worker roles and a small map keyed by them.

use serde::{Deserialize, Serialize};

/// What a worker does (the model card's role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Aggregated,
    Prefill,
    Decode,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Aggregated, Role::Prefill, Role::Decode];

    pub fn name(self) -> &'static str {
        match self {
            Role::Aggregated => "aggregated",
            Role::Prefill => "prefill",
            Role::Decode => "decode",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMap<T> {
    pub aggregated: T,
    pub prefill: T,
    pub decode: T,
}

impl<T> RoleMap<T> {
    pub fn get(&self, role: Role) -> &T {
        match role {
            Role::Aggregated => &self.aggregated,
            Role::Prefill => &self.prefill,
            Role::Decode => &self.decode,
        }
    }

    pub fn get_mut(&mut self, role: Role) -> &mut T {
        match role {
            Role::Aggregated => &mut self.aggregated,
            Role::Prefill => &mut self.prefill,
            Role::Decode => &mut self.decode,
        }
    }
}
