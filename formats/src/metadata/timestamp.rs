use super::common::{role_accessors, role_type_field, RoleType};
use super::{expires, MetaFile};
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

role_type_field!(TimestampMarker, "timestamp");

/// The timestamp role: the current snapshot's version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timestamp {
    /// `_type`: "timestamp".
    #[serde(rename = "_type")]
    pub type_: TimestampMarker,
    /// Specification version.
    pub spec_version: String,
    /// Metadata version.
    pub version: u64,
    /// Expiry time.
    #[serde(with = "expires")]
    pub expires: DateTime<Utc>,
    /// Exactly one entry, `snapshot.json`.
    pub meta: BTreeMap<String, MetaFile>,
    /// Unknown fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Timestamp {
    /// A timestamp pointing at `snapshot`.
    pub fn new(version: u64, expires: DateTime<Utc>, snapshot: MetaFile) -> Self {
        Timestamp {
            type_: TimestampMarker,
            spec_version: super::SPEC_VERSION.into(),
            version,
            expires,
            meta: BTreeMap::from([("snapshot.json".to_string(), snapshot)]),
            extra: Map::new(),
        }
    }

    /// The `snapshot.json` entry.
    pub fn snapshot_meta(&self) -> Result<&MetaFile> {
        self.meta
            .get("snapshot.json")
            .ok_or_else(|| Error::invalid("timestamp meta", "snapshot.json is missing"))
    }
}

impl RoleType for Timestamp {
    const TYPE: &'static str = "timestamp";
    role_accessors!();
    fn validate(&self) -> Result<()> {
        if self.meta.len() != 1 {
            return Err(Error::invalid(
                "timestamp meta",
                "must hold exactly one entry, snapshot.json",
            ));
        }
        match self.meta.get("snapshot.json") {
            Some(m) => m.validate("timestamp meta snapshot.json"),
            None => Err(Error::invalid("timestamp meta", "snapshot.json is missing")),
        }
    }
}
