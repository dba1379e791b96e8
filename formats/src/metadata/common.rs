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
