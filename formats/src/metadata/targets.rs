use super::common::{role_accessors, role_type_field, RoleType};
use super::{expires, Delegations};
use crate::hash::Hashes;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

role_type_field!(TargetsMarker, "targets");

/// A target file entry: length, hashes and optional custom metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Length in bytes.
    pub length: u64,
    /// Hashes of the file (sha256 and/or sha512 are verified).
    pub hashes: Hashes,
    /// Application-specific signed data (our extensions live here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TargetFile {
    /// An entry for `data` with its length and sha256.
    pub fn from_bytes(data: &[u8]) -> Self {
        TargetFile {
            length: data.len() as u64,
            hashes: Hashes::from([("sha256".to_string(), crate::hash::sha256_hex(data))]),
            custom: None,
            extra: Map::new(),
        }
    }

    /// The sha256 digest in hex, if listed.
    pub fn sha256(&self) -> Option<&str> {
        self.hashes.get("sha256").map(String::as_str)
    }
}

/// A targets role (top-level or delegated).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Targets {
    /// `_type`: "targets".
    #[serde(rename = "_type")]
    pub type_: TargetsMarker,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// Expiry time.
    #[serde(with = "expires")]
    pub expires: DateTime<Utc>,
    /// Target path → entry.
    pub targets: BTreeMap<String, TargetFile>,
    /// Roles this one delegates to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Targets {
    /// An empty targets role.
    pub fn new(version: u64, expires: DateTime<Utc>) -> Self {
        Targets {
            type_: TargetsMarker,
            spec_version: super::SPEC_VERSION.into(),
            version,
            expires,
            targets: BTreeMap::new(),
            delegations: None,
            extra: Map::new(),
        }
    }
}

impl RoleType for Targets {
    const TYPE: &'static str = "targets";
    role_accessors!();
    fn validate(&self) -> Result<()> {
        for (path, t) in &self.targets {
            if t.hashes.is_empty() {
                return Err(Error::invalid(
                    format!("target {path}"),
                    "hashes must not be empty",
                ));
            }
        }
        if let Some(d) = &self.delegations {
            d.validate()?;
        }
        Ok(())
    }
}
