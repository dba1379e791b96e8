use super::common::{role_type_field, RoleType};
use super::expires;
use crate::crypto::{Key, KeySource};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

role_type_field!(RootMarker, "root");

/// Key ids and threshold of one role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleKeys {
    /// Ids of the keys allowed to sign for the role.
    pub keyids: Vec<String>,
    /// How many distinct keys must sign.
    pub threshold: u64,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The root role: the keys and thresholds of the four top-level roles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Root {
    /// `_type`: "root".
    #[serde(rename = "_type")]
    pub type_: RootMarker,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version, starting at 1 and growing by exactly one per new root.
    pub version: u64,
    /// When the metadata stops being trusted.
    #[serde(with = "expires")]
    pub expires: DateTime<Utc>,
    /// Whether files are published under version- and hash-prefixed names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<bool>,
    /// Key id → public key.
    pub keys: BTreeMap<String, Key>,
    /// Role name → key ids and threshold.
    pub roles: BTreeMap<String, RoleKeys>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Root {
    /// The four top-level role names, in the order a client refreshes them.
    pub const TOP_LEVEL: [&'static str; 4] = ["root", "timestamp", "snapshot", "targets"];

    /// A root with no keys yet (add them with [`Root::add_key`]).
    pub fn new(version: u64, expires: DateTime<Utc>) -> Self {
        Root {
            type_: RootMarker,
            spec_version: super::SPEC_VERSION.into(),
            version,
            expires,
            consistent_snapshot: Some(true),
            keys: BTreeMap::new(),
            roles: BTreeMap::new(),
            extra: Map::new(),
        }
    }

    /// Authorise `key` for `role`, creating the role with threshold 1 if needed.
    pub fn add_key(&mut self, role: &str, key: Key) -> Result<String> {
        let id = key.key_id()?;
        self.keys.insert(id.clone(), key);
        let r = self.roles.entry(role.to_string()).or_insert(RoleKeys {
            keyids: Vec::new(),
            threshold: 1,
            extra: Map::new(),
        });
        if !r.keyids.contains(&id) {
            r.keyids.push(id.clone());
        }
        Ok(id)
    }

    /// Remove `keyid` from `role`, and from `keys` when no other role uses it.
    pub fn remove_key(&mut self, role: &str, keyid: &str) {
        if let Some(r) = self.roles.get_mut(role) {
            r.keyids.retain(|k| k != keyid);
        }
        if !self.roles.values().any(|r| r.keyids.iter().any(|k| k == keyid)) {
            self.keys.remove(keyid);
        }
    }

    /// The key ids and threshold of a top-level role.
    pub fn role(&self, name: &str) -> Result<&RoleKeys> {
        self.roles
            .get(name)
            .ok_or_else(|| Error::MissingRole(name.to_string()))
    }

    /// Whether consistent snapshots are in use (absent means no).
    pub fn consistent(&self) -> bool {
        self.consistent_snapshot.unwrap_or(false)
    }
}

impl KeySource for Root {
    fn key(&self, keyid: &str) -> Option<&Key> {
        self.keys.get(keyid)
    }
}

impl RoleType for Root {
    const TYPE: &'static str = "root";
    fn version(&self) -> u64 {
        self.version
    }
    fn expires(&self) -> DateTime<Utc> {
        self.expires
    }
    fn spec_version(&self) -> &str {
        &self.spec_version
    }
    fn validate(&self) -> Result<()> {
        for name in Self::TOP_LEVEL {
            let r = self.role(name)?;
            if r.threshold == 0 {
                return Err(Error::invalid(
                    format!("root role {name}"),
                    "threshold must be at least 1",
                ));
            }
        }
        Ok(())
    }
}
