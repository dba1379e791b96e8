use super::common::{role_accessors, role_type_field, RoleType};
use super::expires;
use crate::hash::Hashes;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

role_type_field!(SnapshotMarker, "snapshot");

/// A `meta` entry: the version (and optionally length and hashes) of another metadata file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaFile {
    /// Version of the listed metadata.
    pub version: u64,
    /// Length in bytes, when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
    /// Hashes, when listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashes: Option<Hashes>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MetaFile {
    /// An entry with only a version.
    pub fn new(version: u64) -> Self {
        MetaFile {
            version,
            length: None,
            hashes: None,
            extra: Map::new(),
        }
    }

    pub(crate) fn validate(&self, what: &str) -> Result<()> {
        if self.version == 0 {
            return Err(Error::invalid(what, "meta version must be at least 1"));
        }
        if let Some(h) = &self.hashes {
            if h.is_empty() {
                return Err(Error::invalid(what, "hashes must not be empty"));
            }
        }
        Ok(())
    }
}

/// The snapshot role: versions of all targets metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Snapshot {
    /// `_type`: "snapshot".
    #[serde(rename = "_type")]
    pub type_: SnapshotMarker,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// Expiry time.
    #[serde(with = "expires")]
    pub expires: DateTime<Utc>,
    /// File name (`targets.json`, `role.json`) → entry.
    pub meta: BTreeMap<String, MetaFile>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Snapshot {
    /// A snapshot with no entries.
    pub fn new(version: u64, expires: DateTime<Utc>) -> Self {
        Snapshot {
            type_: SnapshotMarker,
            spec_version: super::SPEC_VERSION.into(),
            version,
            expires,
            meta: BTreeMap::new(),
            extra: Map::new(),
        }
    }
}

impl RoleType for Snapshot {
    const TYPE: &'static str = "snapshot";
    role_accessors!();
    fn validate(&self) -> Result<()> {
        for (name, m) in &self.meta {
            m.validate(&format!("snapshot meta {name}"))?;
        }
        Ok(())
    }
}
