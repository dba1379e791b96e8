//! A targets role read with every target entry checked but none kept: for verifiers that
//! look entries up in the verified bytes instead (`trust::TrustedSet` for delegated roles when
//! a client asks for it). The checks are exactly those a parse into [`TargetFile`] and
//! [`Targets::validate`] make: `length` an unsigned integer, `hashes` a non-empty map of
//! strings, no field twice, unknown fields allowed; nothing is allocated per entry.
use super::common::{set_once, Field, FieldSeed, RoleType};
use super::targets::TargetsVisitor;
use super::Targets;
use crate::Result;
use chrono::{DateTime, Utc};
use serde::de::{Deserializer, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A targets role whose `targets` map was checked and left empty.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub(crate) struct CheckedTargets(pub(crate) Targets);

impl<'de> Deserialize<'de> for CheckedTargets {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(TargetsVisitor {
            keep_entries: false,
        })
        .map(CheckedTargets)
    }
}

impl RoleType for CheckedTargets {
    const TYPE: &'static str = "targets";
    fn version(&self) -> u64 {
        self.0.version
    }
    fn expires(&self) -> DateTime<Utc> {
        self.0.expires
    }
    fn spec_version(&self) -> &str {
        &self.0.spec_version
    }
    fn validate(&self) -> Result<()> {
        // The entries were checked while read; what is left is what Targets checks.
        self.0.validate()
    }
}

/// The `targets` map, each entry checked and dropped.
pub(super) struct CheckedEntries;

impl<'de> Deserialize<'de> for CheckedEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckedEntries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of target paths to entries")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<CheckedEntries, A::Error> {
                while map.next_key::<AnyStr>()?.is_some() {
                    map.next_value::<CheckedEntry>()?;
                }
                Ok(CheckedEntries)
            }
        }
        d.deserialize_map(V)
    }
}

/// One target entry, checked as [`super::TargetFile`] would be.
struct CheckedEntry;

impl<'de> Deserialize<'de> for CheckedEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckedEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a target entry")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<CheckedEntry, A::Error> {
                const FIELDS: &[&str] = &["length", "hashes", "custom"];
                let (mut length, mut hashes, mut custom) = (None, None, None);
                while let Some(field) = map.next_key_seed(FieldSeed(FIELDS))? {
                    match field {
                        Field::Known(0) => {
                            set_once(&mut length, "length", map.next_value::<u64>()?)?
                        }
                        Field::Known(1) => {
                            set_once(&mut hashes, "hashes", map.next_value::<CheckedHashes>()?)?
                        }
                        Field::Known(_) => {
                            set_once(&mut custom, "custom", map.next_value::<IgnoredAny>()?)?
                        }
                        Field::Other(_) => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                length.ok_or_else(|| A::Error::missing_field("length"))?;
                hashes.ok_or_else(|| A::Error::missing_field("hashes"))?;
                Ok(CheckedEntry)
            }
        }
        d.deserialize_map(V)
    }
}

/// A `hashes` map: at least one algorithm, every name and digest a string.
struct CheckedHashes;

impl<'de> Deserialize<'de> for CheckedHashes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CheckedHashes;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of hash algorithms to digests")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<CheckedHashes, A::Error> {
                let mut any = false;
                while map.next_key::<AnyStr>()?.is_some() {
                    map.next_value::<AnyStr>()?;
                    any = true;
                }
                if !any {
                    return Err(A::Error::custom("hashes must not be empty"));
                }
                Ok(CheckedHashes)
            }
        }
        d.deserialize_map(V)
    }
}

/// Any string, not kept.
struct AnyStr;

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = AnyStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<AnyStr, E> {
                Ok(AnyStr)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role(targets: serde_json::Value) -> serde_json::Value {
        json!({"_type": "targets", "spec_version": "1.0.31", "version": 1,
               "expires": "2030-01-01T00:00:00Z", "targets": targets})
    }

    #[test]
    fn entries_are_checked_as_a_full_parse_checks_them_and_none_is_kept() {
        let good = role(json!({
            "a": {"length": 1, "hashes": {"sha256": "aa"}, "custom": {"x": [1.5]}, "other": null},
        }));
        let checked: CheckedTargets = serde_json::from_value(good.clone()).unwrap();
        assert!(checked.0.targets.is_empty());
        assert_eq!(checked.0.version, 1);
        let full: Targets = serde_json::from_value(good).unwrap();
        assert_eq!(full.targets.len(), 1);

        for bad in [
            json!({"a": {"hashes": {"sha256": "aa"}}}),
            json!({"a": {"length": 1}}),
            json!({"a": {"length": -1, "hashes": {"sha256": "aa"}}}),
            json!({"a": {"length": 1, "hashes": {"sha256": 7}}}),
            json!({"a": {"length": 1, "hashes": []}}),
            json!({"a": []}),
            json!([]),
        ] {
            let text = role(bad.clone()).to_string();
            let full = serde_json::from_str::<Targets>(&text);
            let checked = serde_json::from_str::<CheckedTargets>(&text);
            assert!(full.is_err() && checked.is_err(), "{bad}");
        }
        // Empty hashes parse as a map but fail validation, in both readings.
        let text = role(json!({"a": {"length": 1, "hashes": {}}})).to_string();
        let full: Targets = serde_json::from_str(&text).unwrap();
        assert!(full.validate().is_err());
        assert!(serde_json::from_str::<CheckedTargets>(&text).is_err());
        // A field given twice is refused in both readings.
        let twice = r#"{"_type":"targets","spec_version":"1","version":1,"expires":"2030-01-01T00:00:00Z",
            "targets":{"a":{"length":1,"length":2,"hashes":{"s":"a"}}}}"#;
        assert!(serde_json::from_str::<Targets>(twice).is_err());
        assert!(serde_json::from_str::<CheckedTargets>(twice).is_err());
    }
}
