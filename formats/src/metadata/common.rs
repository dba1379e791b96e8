use crate::{Error, Result};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The specification version we write.
pub const SPEC_VERSION: &str = "1.0.31";

/// What every role's `signed` part has in common.
pub trait RoleType: Serialize + DeserializeOwned {
    /// The `_type` value and default role name: "root", "targets", "snapshot", "timestamp".
    const TYPE: &'static str;
    /// The `version` field.
    fn version(&self) -> u64;
    /// The `expires` field.
    fn expires(&self) -> DateTime<Utc>;
    /// The `spec_version` field.
    fn spec_version(&self) -> &str;
    /// Role-specific consistency checks run after parsing.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    /// True when the metadata has expired at `now`.
    fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires() <= now
    }
}

/// Accept any 1.x spec_version ("1", "1.0", "1.0.31"); refuse other major versions.
pub fn check_spec_version(v: &str) -> Result<()> {
    let major = v.split('.').next().unwrap_or("");
    let parts_ok = v
        .split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if major == "1" && parts_ok && v.split('.').count() <= 3 {
        Ok(())
    } else {
        Err(Error::UnsupportedSpecVersion(v.to_string()))
    }
}

pub(crate) fn check_common(ty: &str, version: u64, spec: &str) -> Result<()> {
    check_spec_version(spec)?;
    if version == 0 {
        return Err(Error::invalid(
            format!("{ty} metadata"),
            "version must be at least 1",
        ));
    }
    Ok(())
}

/// Serde helper for the `_type` field: checked on parse against the expected role.
macro_rules! role_type_field {
    ($name:ident, $lit:literal) => {
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        #[doc = concat!("The `_type` marker \"", $lit, "\".")]
        pub struct $name;
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($lit)
            }
        }
        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = String::deserialize(d)?;
                if v == $lit {
                    Ok($name)
                } else {
                    Err(serde::de::Error::custom(format!(
                        "wrong _type: expected {}, found {v}",
                        $lit
                    )))
                }
            }
        }
    };
}
pub(crate) use role_type_field;

/// The `version`, `expires` and `spec_version` accessors of [`RoleType`], identical for every
/// role struct (each has fields of those names).
macro_rules! role_accessors {
    () => {
        fn version(&self) -> u64 {
            self.version
        }
        fn expires(&self) -> DateTime<Utc> {
            self.expires
        }
        fn spec_version(&self) -> &str {
            &self.spec_version
        }
    };
}
pub(crate) use role_accessors;

/// A key of a role object read by a hand-written deserializer: one of the struct's field
/// names (by index into the list given) or an unknown one, kept for `extra`. Derived
/// deserializers with `#[serde(flatten)]` buffer the whole object first, which for a targets
/// role is every target entry; reading the keys this way does not.
pub(crate) enum Field {
    Known(usize),
    Other(String),
}

pub(crate) struct FieldSeed(pub(crate) &'static [&'static str]);

impl<'de> serde::de::DeserializeSeed<'de> for FieldSeed {
    type Value = Field;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for FieldSeed {
    type Value = Field;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(match self.0.iter().position(|name| *name == v) {
            Some(i) => Field::Known(i),
            None => Field::Other(v.to_string()),
        })
    }
}

/// Store a field's value, refusing a second occurrence as the derived deserializers do.
pub(crate) fn set_once<T, E: serde::de::Error>(
    slot: &mut Option<T>,
    name: &'static str,
    value: T,
) -> Result<(), E> {
    if slot.replace(value).is_some() {
        return Err(E::duplicate_field(name));
    }
    Ok(())
}
