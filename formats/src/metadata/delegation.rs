use crate::crypto::{Key, KeySource};
use crate::pathmatch::path_matches;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};

/// A role delegated to by a targets role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// Role name (also its file name, percent-encoded, with `.json`).
    pub name: String,
    /// Keys allowed to sign the role.
    pub keyids: Vec<String>,
    /// Distinct keys needed.
    pub threshold: u64,
    /// When true, a search that reaches this role stops here even if the target is not found.
    #[serde(default)]
    pub terminating: bool,
    /// Path patterns (`*` does not cross `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of the sha256 of target paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DelegatedRole {
    /// Whether this role is trusted for `target_path`.
    pub fn is_delegated_path(&self, target_path: &str) -> bool {
        if let Some(paths) = &self.paths {
            return paths.iter().any(|p| path_matches(p, target_path));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let digest = hex::encode(Sha256::digest(target_path.as_bytes()));
            return prefixes.iter().any(|p| digest.starts_with(p.as_str()));
        }
        false
    }
}

/// Succinct hash-bin delegations (TAP 15).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccinctRoles {
    /// Keys shared by every bin.
    pub keyids: Vec<String>,
    /// Threshold of every bin.
    pub threshold: u64,
    /// Number of leading hash bits that select the bin.
    pub bit_length: u32,
    /// Bin names are `{name_prefix}-{index in hex}`.
    pub name_prefix: String,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SuccinctRoles {
    /// Name of the bin responsible for `target_path`.
    pub fn role_for(&self, target_path: &str) -> String {
        let digest = Sha256::digest(target_path.as_bytes());
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let bin = if self.bit_length == 0 {
            0
        } else {
            first >> (32 - self.bit_length)
        };
        let width = (self.bit_length as usize).div_ceil(4);
        format!("{}-{:0width$x}", self.name_prefix, bin, width = width)
    }
}

/// The `delegations` object of a targets role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegations {
    /// Key id → key, for all delegated roles.
    pub keys: BTreeMap<String, Key>,
    /// Delegated roles in priority order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<DelegatedRole>>,
    /// Hash-bin delegations, instead of `roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub succinct_roles: Option<SuccinctRoles>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl KeySource for Delegations {
    fn key(&self, keyid: &str) -> Option<&Key> {
        self.keys.get(keyid)
    }
}

impl Delegations {
    /// Keys, threshold of delegated role `name`, if this object delegates to it.
    pub fn role(&self, name: &str) -> Option<(&[String], u64)> {
        if let Some(roles) = &self.roles {
            return roles
                .iter()
                .find(|r| r.name == name)
                .map(|r| (r.keyids.as_slice(), r.threshold));
        }
        if let Some(s) = &self.succinct_roles {
            if s.is_bin(name) {
                return Some((s.keyids.as_slice(), s.threshold));
            }
        }
        None
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.roles.is_some() == self.succinct_roles.is_some() {
            return Err(Error::invalid(
                "delegations",
                "exactly one of roles and succinct_roles must be present",
            ));
        }
        let mut names = HashSet::new();
        for r in self.roles.iter().flatten() {
            if !names.insert(r.name.as_str()) {
                return Err(Error::invalid(
                    "delegations",
                    format!("role {} is delegated twice", r.name),
                ));
            }
            if r.paths.is_some() && r.path_hash_prefixes.is_some() {
                return Err(Error::invalid(
                    format!("delegated role {}", r.name),
                    "paths and path_hash_prefixes are mutually exclusive",
                ));
            }
            if ["root", "timestamp", "snapshot", "targets"].contains(&r.name.as_str()) {
                return Err(Error::invalid(
                    format!("delegated role {}", r.name),
                    "a top-level role name cannot be delegated",
                ));
            }
        }
        if let Some(s) = &self.succinct_roles {
            if s.bit_length == 0 || s.bit_length > 32 {
                return Err(Error::invalid(
                    "succinct_roles",
                    "bit_length must be between 1 and 32",
                ));
            }
        }
        Ok(())
    }
}

impl SuccinctRoles {
    /// Whether `name` is one of this delegation's bins.
    pub fn is_bin(&self, name: &str) -> bool {
        let Some(suffix) = name
            .strip_prefix(self.name_prefix.as_str())
            .and_then(|s| s.strip_prefix('-'))
        else {
            return false;
        };
        let width = (self.bit_length as usize).div_ceil(4);
        suffix.len() == width
            && u64::from_str_radix(suffix, 16)
                .map(|n| n < (1u64 << self.bit_length))
                .unwrap_or(false)
    }
}
