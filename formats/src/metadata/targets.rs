use super::common::{role_accessors, role_type_field, set_once, Field, FieldSeed, RoleType};
use super::{expires, Delegations};
use crate::hash::Hashes;
use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

role_type_field!(TargetsMarker, "targets");

/// A target file entry: length, hashes and optional custom metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
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

// Hand-written so that no entry is buffered (see `Field`): a targets role is read in one pass.
impl<'de> Deserialize<'de> for TargetFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TargetFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a target entry")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TargetFile, A::Error> {
                const FIELDS: &[&str] = &["length", "hashes", "custom"];
                let (mut length, mut hashes, mut custom) = (None, None, None);
                let mut extra = Map::new();
                while let Some(field) = map.next_key_seed(FieldSeed(FIELDS))? {
                    match field {
                        Field::Known(0) => set_once(&mut length, "length", map.next_value()?)?,
                        Field::Known(1) => set_once(&mut hashes, "hashes", map.next_value()?)?,
                        Field::Known(_) => set_once(&mut custom, "custom", map.next_value()?)?,
                        Field::Other(name) => {
                            extra.insert(name, map.next_value()?);
                        }
                    }
                }
                Ok(TargetFile {
                    length: length.ok_or_else(|| A::Error::missing_field("length"))?,
                    hashes: hashes.ok_or_else(|| A::Error::missing_field("hashes"))?,
                    custom: custom.flatten(),
                    extra,
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// `expires` as a value of its own, for the hand-written deserializer.
struct Expires(DateTime<Utc>);

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        expires::deserialize(d).map(Expires)
    }
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TargetsVisitor { keep_entries: true })
    }
}

/// Reads a targets role. Without `keep_entries`, every target entry is checked as a
/// [`TargetFile`] would be but not kept: `targets` is left empty (see
/// `super::checked_targets`).
pub(super) struct TargetsVisitor {
    pub(super) keep_entries: bool,
}

impl<'de> Visitor<'de> for TargetsVisitor {
    type Value = Targets;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a targets role")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Targets, A::Error> {
        const FIELDS: &[&str] = &[
            "_type",
            "spec_version",
            "version",
            "expires",
            "targets",
            "delegations",
        ];
        let (mut type_, mut spec_version, mut version) = (None, None, None);
        let (mut expires, mut targets, mut delegations) = (None, None, None);
        let mut extra = Map::new();
        while let Some(field) = map.next_key_seed(FieldSeed(FIELDS))? {
            match field {
                Field::Known(0) => set_once(&mut type_, "_type", map.next_value()?)?,
                Field::Known(1) => set_once(&mut spec_version, "spec_version", map.next_value()?)?,
                Field::Known(2) => set_once(&mut version, "version", map.next_value()?)?,
                Field::Known(3) => {
                    let Expires(t) = map.next_value()?;
                    set_once(&mut expires, "expires", t)?
                }
                Field::Known(4) => {
                    let entries = if self.keep_entries {
                        map.next_value()?
                    } else {
                        map.next_value::<super::checked_targets::CheckedEntries>()?;
                        BTreeMap::new()
                    };
                    set_once(&mut targets, "targets", entries)?
                }
                Field::Known(_) => set_once(&mut delegations, "delegations", map.next_value()?)?,
                Field::Other(name) => {
                    extra.insert(name, map.next_value()?);
                }
            }
        }
        let missing = A::Error::missing_field;
        Ok(Targets {
            type_: type_.ok_or_else(|| missing("_type"))?,
            spec_version: spec_version.ok_or_else(|| missing("spec_version"))?,
            version: version.ok_or_else(|| missing("version"))?,
            expires: expires.ok_or_else(|| missing("expires"))?,
            targets: targets.ok_or_else(|| missing("targets"))?,
            delegations: delegations.flatten(),
            extra,
        })
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
