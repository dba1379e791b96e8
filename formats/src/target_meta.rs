//! Our extension of a TUF target entry: the signed `custom.ota` object.
//!
//! A target's `length` and `hashes` describe the bytes on the wire (compressed, maybe encrypted
//! or a delta). What the device finally writes to its slot is described here, signed together
//! with the rest of the targets metadata:
//!
//! ```json
//! "custom": {
//!   "ota": {
//!     "name": "gateway-fw",
//!     "version": "1.2.3",
//!     "hardware_ids": ["board-a", "board-b"],
//!     "image": {"length": 4194304, "sha256": "…64 hex…"},
//!     "compression": "zstd"
//!   }
//! }
//! ```
//!
//! `encryption` and `delta` are optional and reserved for the encryption and delta features;
//! `rollback_from` (a list of versions, e.g. `["1.3.0"]`) marks a deliberate rollback: only
//! devices running one of those newer versions install this older release;
//! unknown fields (at every level) and other keys of `custom` are preserved, so metadata written
//! by a newer tool round-trips through an older one without losing signed data.
//!
//! ```
//! use ota_formats::target_meta::{OtaTarget, ImageInfo, Compression};
//! let meta = OtaTarget::new(
//!     "gateway-fw",
//!     "1.2.3",
//!     vec!["board-a".into()],
//!     ImageInfo::new(3, ota_formats::hash::sha256_hex(b"abc")),
//!     Compression::Zstd,
//! ).unwrap();
//! let custom = meta.to_custom(None).unwrap();
//! let back = OtaTarget::from_custom(Some(&custom)).unwrap().unwrap();
//! assert_eq!(back, meta);
//! ```
use crate::version::Version;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The key of our object inside a target's `custom` field.
pub const CUSTOM_KEY: &str = "ota";

/// Longest accepted image name or hardware id, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// How the target bytes were compressed; the device undoes it before writing the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// The target is the image itself.
    None,
    /// A zstd frame (window at most 8 MiB, so decoders stay small).
    Zstd,
}

/// Length and digest of the image as installed (after decompression, decryption, patching).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Image length in bytes.
    pub length: u64,
    /// Lower-case hex sha256 of the image.
    pub sha256: String,
    /// Unknown fields, preserved.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ImageInfo {
    /// Image info from a length and a hex sha256.
    pub fn new(length: u64, sha256: impl Into<String>) -> Self {
        ImageInfo {
            length,
            sha256: sha256.into(),
            extra: Map::new(),
        }
    }
}

/// The `format` of a delta target: a patch in the layout of `formats/PATCH.md`.
pub const DELTA_FORMAT_PATCH_V1: &str = "ota-patch-v1";

/// The image a delta target patches: what the device must have installed to use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaBase {
    /// Version of the base image.
    pub version: String,
    /// Length of the base image.
    pub length: u64,
    /// Lower-case hex sha256 of the base image.
    pub sha256: String,
    /// Unknown fields, preserved.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The typed form of `custom.ota.delta` of a patch target:
/// `{"base": {"version", "length", "sha256"}, "method": "diff", "format": "ota-patch-v1"}`.
///
/// The target's `image` stays the *resulting* image, so the device checks the patched result
/// exactly like a full download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaInfo {
    /// The image the patch applies to.
    pub base: DeltaBase,
    /// Patch method (informative, e.g. "diff").
    pub method: String,
    /// Patch format, [`DELTA_FORMAT_PATCH_V1`].
    pub format: String,
    /// Unknown fields, preserved.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl DeltaInfo {
    /// A delta in [`DELTA_FORMAT_PATCH_V1`] from the base image `version`/`length`/`sha256`.
    pub fn patch_v1(
        version: impl Into<String>,
        length: u64,
        sha256: impl Into<String>,
        method: impl Into<String>,
    ) -> Self {
        DeltaInfo {
            base: DeltaBase {
                version: version.into(),
                length,
                sha256: sha256.into(),
                extra: Map::new(),
            },
            method: method.into(),
            format: DELTA_FORMAT_PATCH_V1.to_string(),
            extra: Map::new(),
        }
    }

    /// The JSON value stored in [`OtaTarget::delta`].
    pub fn to_value(&self) -> Result<Value> {
        serde_json::to_value(self).map_err(|e| Error::Canonical(e.to_string()))
    }
}

/// The signed `custom.ota` object of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtaTarget {
    /// Image name (a product line's firmware, e.g. "gateway-fw"); see [`validate_name`].
    pub name: String,
    /// Semantic version of the image ("1.2.3"); versions of one name only grow.
    pub version: String,
    /// Hardware ids the image may be installed on; see [`validate_hardware_id`].
    pub hardware_ids: Vec<String>,
    /// The image the device ends up with.
    pub image: ImageInfo,
    /// How the target bytes are compressed.
    pub compression: Compression,
    /// Encryption parameters, when the target is encrypted (defined by the encryption feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Value>,
    /// Delta parameters, when the target is a patch against an earlier image (defined by the
    /// delta feature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Value>,
    /// A deliberate rollback: devices running one of these (newer) versions install this
    /// older release; see [`OtaTarget::rolls_back_from`]. Nothing else makes a device go to
    /// a lower version. Absent (empty) for ordinary releases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollback_from: Vec<String>,
    /// Unknown fields, preserved.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OtaTarget {
    /// A validated entry with no encryption, delta or extra fields.
    pub fn new(
        name: impl Into<String>,
        version: impl Into<String>,
        hardware_ids: Vec<String>,
        image: ImageInfo,
        compression: Compression,
    ) -> Result<Self> {
        let t = OtaTarget {
            name: name.into(),
            version: version.into(),
            hardware_ids,
            image,
            compression,
            encryption: None,
            delta: None,
            rollback_from: Vec::new(),
            extra: Map::new(),
        };
        t.validate()?;
        Ok(t)
    }

    /// Read our object from a target's `custom` value.
    ///
    /// `Ok(None)` when the target has no `custom.ota` (a target added by another tool);
    /// an error when `custom.ota` is present but malformed.
    pub fn from_custom(custom: Option<&Value>) -> Result<Option<Self>> {
        let Some(custom) = custom else {
            return Ok(None);
        };
        let Some(obj) = custom.as_object() else {
            return Err(Error::malformed(
                "target custom metadata",
                "`custom` is not a JSON object",
            ));
        };
        let Some(ota) = obj.get(CUSTOM_KEY) else {
            return Ok(None);
        };
        let t: OtaTarget = serde_json::from_value(ota.clone())
            .map_err(|e| Error::malformed("target custom.ota metadata", e))?;
        t.validate()?;
        Ok(Some(t))
    }

    /// Write our object into a `custom` value, keeping every other key of `existing`.
    pub fn to_custom(&self, existing: Option<Value>) -> Result<Value> {
        let mut obj = match existing {
            None => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(Error::malformed(
                    "target custom metadata",
                    "`custom` is not a JSON object",
                ))
            }
        };
        let v = serde_json::to_value(self).map_err(|e| Error::Canonical(e.to_string()))?;
        obj.insert(CUSTOM_KEY.to_string(), v);
        Ok(Value::Object(obj))
    }

    /// Check names, ids, the version syntax and the digest.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        validate_version(&self.version)?;
        if self.hardware_ids.is_empty() {
            return Err(Error::invalid(
                "custom.ota.hardware_ids",
                "at least one hardware id is required",
            ));
        }
        for id in &self.hardware_ids {
            validate_hardware_id(id)?;
        }
        let h = &self.image.sha256;
        if h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::invalid(
                "custom.ota.image.sha256",
                format!("{h:?} is not 64 lower-case hex digits"),
            ));
        }
        self.check_rollback_from()
    }

    /// Every `rollback_from` entry is a version newer than this release's own: a "rollback"
    /// to a newer version, or from an unparsable one, is malformed metadata.
    fn check_rollback_from(&self) -> Result<()> {
        if self.rollback_from.is_empty() {
            return Ok(());
        }
        let own = Version::parse(&self.version)?;
        for v in &self.rollback_from {
            let from = Version::parse(v)
                .map_err(|e| Error::invalid("custom.ota.rollback_from", format!("{v:?}: {e}")))?;
            if from <= own {
                return Err(Error::invalid(
                    "custom.ota.rollback_from",
                    format!(
                        "{v:?} is not newer than the release's own version {:?}",
                        self.version
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Whether this release is a signed rollback for devices running `installed`: it names
    /// that version (by semantic-versioning precedence) in `rollback_from`.
    pub fn rolls_back_from(&self, installed: &Version) -> bool {
        self.rollback_from
            .iter()
            .any(|v| Version::parse(v).is_ok_and(|v| v == *installed))
    }

    /// The typed `delta` object: `Ok(None)` for a full target, an error when `delta` is
    /// present but not a [`DeltaInfo`] (an older or foreign shape; such a target must still
    /// never be installed as a full image).
    pub fn delta_info(&self) -> Result<Option<DeltaInfo>> {
        let Some(v) = &self.delta else {
            return Ok(None);
        };
        let d: DeltaInfo = serde_json::from_value(v.clone())
            .map_err(|e| Error::malformed("target custom.ota.delta metadata", e))?;
        validate_version(&d.base.version)?;
        let h = &d.base.sha256;
        if h.len() != 64 || !h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(Error::invalid(
                "custom.ota.delta.base.sha256",
                format!("{h:?} is not 64 lower-case hex digits"),
            ));
        }
        Ok(Some(d))
    }

    /// Whether the image may be installed on `hardware_id`.
    pub fn supports_hardware(&self, hardware_id: &str) -> bool {
        self.hardware_ids.iter().any(|h| h == hardware_id)
    }
}

fn id_chars_ok(s: &str, extra: &[u8]) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || extra.contains(&b))
}

/// An image name: 1 to 64 ASCII letters, digits, `.`, `_`, `-`, starting with a letter or digit.
///
/// Names become part of flat target file names, so `/` and other separators are refused.
pub fn validate_name(name: &str) -> Result<()> {
    if name.len() > MAX_ID_LEN || !id_chars_ok(name, b"._-") {
        return Err(Error::invalid(
            "image name",
            format!(
                "{name:?}: use 1-{MAX_ID_LEN} ASCII letters, digits, '.', '_' or '-', starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// A hardware id: 1 to 64 ASCII letters, digits, `.`, `_`, `-`, `:`, starting with a letter
/// or digit.
pub fn validate_hardware_id(id: &str) -> Result<()> {
    if id.len() > MAX_ID_LEN || !id_chars_ok(id, b"._-:") {
        return Err(Error::invalid(
            "hardware id",
            format!(
                "{id:?}: use 1-{MAX_ID_LEN} ASCII letters, digits, '.', '_', '-' or ':', starting with a letter or digit"
            ),
        ));
    }
    Ok(())
}

/// A version string: the syntax of semantic versioning 2.0 (`MAJOR.MINOR.PATCH[-PRE][+BUILD]`,
/// no leading zeros). Ordering is left to the tools (e.g. the `semver` crate).
pub fn validate_version(v: &str) -> Result<()> {
    let bad = |why: &str| {
        Error::invalid(
            "version",
            format!("{v:?} is not a semantic version (MAJOR.MINOR.PATCH): {why}"),
        )
    };
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let nums: Vec<&str> = core.split('.').collect();
    if nums.len() != 3 {
        return Err(bad("expected three numbers"));
    }
    for n in nums {
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("numbers must be digits"));
        }
        if n.len() > 1 && n.starts_with('0') {
            return Err(bad("numbers must not have leading zeros"));
        }
    }
    for (label, part) in [("pre-release", pre), ("build", build)] {
        if let Some(p) = part {
            let ok = p.split('.').all(|id| {
                !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            if !ok {
                return Err(bad(&format!("bad {label} identifiers")));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> OtaTarget {
        OtaTarget::new(
            "fw",
            "1.2.3-rc.1+b7",
            vec!["board-a".into(), "vendor:b".into()],
            ImageInfo::new(10, "a".repeat(64)),
            Compression::Zstd,
        )
        .unwrap()
    }

    #[test]
    fn round_trip_keeps_other_custom_keys_and_unknown_fields() {
        let mut t = sample();
        t.extra.insert("x-future".into(), json!({"k": 1}));
        t.image.extra.insert("sha512".into(), json!("00"));
        let custom = t.to_custom(Some(json!({"other": true}))).unwrap();
        assert_eq!(custom["other"], json!(true));
        assert_eq!(custom["ota"]["compression"], json!("zstd"));
        let back = OtaTarget::from_custom(Some(&custom)).unwrap().unwrap();
        assert_eq!(back, t);
        assert_eq!(back.extra["x-future"], json!({"k": 1}));
    }

    #[test]
    fn absent_is_none_and_malformed_is_an_error() {
        assert!(OtaTarget::from_custom(None).unwrap().is_none());
        assert!(OtaTarget::from_custom(Some(&json!({"x": 1})))
            .unwrap()
            .is_none());
        let err = OtaTarget::from_custom(Some(&json!({"ota": {"name": "fw"}}))).unwrap_err();
        assert!(err.to_string().contains("custom.ota"), "{err}");
        let mut c = sample().to_custom(None).unwrap();
        c["ota"]["compression"] = json!("lzma");
        assert!(OtaTarget::from_custom(Some(&c)).is_err());
        c = sample().to_custom(None).unwrap();
        c["ota"]["image"]["sha256"] = json!("XYZ");
        assert!(OtaTarget::from_custom(Some(&c)).is_err());
        assert!(OtaTarget::from_custom(Some(&json!([1]))).is_err());
    }

    #[test]
    fn optional_encryption_and_delta_round_trip() {
        let mut t = sample();
        t.delta = Some(json!({"base_sha256": "b".repeat(64)}));
        t.encryption = Some(json!({"scheme": "x"}));
        let back = OtaTarget::from_custom(Some(&t.to_custom(None).unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn typed_delta_round_trips_and_untyped_stays_readable() {
        let mut t = sample();
        assert!(t.delta_info().unwrap().is_none());
        let d = DeltaInfo::patch_v1("1.0.0", 7, "c".repeat(64), "diff");
        t.delta = Some(d.to_value().unwrap());
        let custom = t.to_custom(None).unwrap();
        assert_eq!(custom["ota"]["delta"]["format"], json!("ota-patch-v1"));
        assert_eq!(custom["ota"]["delta"]["base"]["length"], json!(7));
        let back = OtaTarget::from_custom(Some(&custom)).unwrap().unwrap();
        assert_eq!(back.delta_info().unwrap().unwrap(), d);
        // An older untyped delta still parses as a target, but not as a DeltaInfo.
        t.delta = Some(json!({"base_sha256": "b".repeat(64)}));
        let back = OtaTarget::from_custom(Some(&t.to_custom(None).unwrap()))
            .unwrap()
            .unwrap();
        assert!(back.delta_info().is_err());
        let mut bad = d.clone();
        bad.base.sha256 = "XY".into();
        t.delta = Some(bad.to_value().unwrap());
        assert!(t.delta_info().is_err());
    }

    #[test]
    fn rollback_from_round_trips_and_is_checked() {
        let mut t = OtaTarget::new(
            "fw",
            "1.2.0",
            vec!["b".into()],
            ImageInfo::new(1, "a".repeat(64)),
            Compression::Zstd,
        )
        .unwrap();
        let custom = t.to_custom(None).unwrap();
        assert!(
            custom["ota"].get("rollback_from").is_none(),
            "ordinary releases do not carry the field"
        );
        t.rollback_from = vec!["1.3.0".into(), "2.0.0-rc.1".into()];
        let custom = t.to_custom(None).unwrap();
        assert_eq!(
            custom["ota"]["rollback_from"],
            json!(["1.3.0", "2.0.0-rc.1"])
        );
        let back = OtaTarget::from_custom(Some(&custom)).unwrap().unwrap();
        assert_eq!(back, t);
        assert!(back.rolls_back_from(&"1.3.0".parse().unwrap()));
        assert!(back.rolls_back_from(&"1.3.0+build.7".parse().unwrap()));
        assert!(!back.rolls_back_from(&"1.3.1".parse().unwrap()));
        assert!(!back.rolls_back_from(&"1.2.0".parse().unwrap()));
        for bad in [
            json!(["1.2.0"]),
            json!(["1.1.0"]),
            json!(["x"]),
            json!("1.3.0"),
        ] {
            let mut c = custom.clone();
            c["ota"]["rollback_from"] = bad.clone();
            assert!(OtaTarget::from_custom(Some(&c)).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_and_versions() {
        for ok in ["a", "fw-1.2_x", "A9"] {
            validate_name(ok).unwrap();
        }
        for bad in ["", "-a", "a/b", ".hidden", "a b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        validate_hardware_id("vendor:board-1").unwrap();
        for bad in ["", ":x", "a,b", "a/b", "é"] {
            assert!(validate_hardware_id(bad).is_err(), "{bad}");
        }
        for ok in ["0.0.0", "1.2.3", "10.20.30-alpha.1+build.5", "1.0.0-0"] {
            validate_version(ok).unwrap();
        }
        for bad in [
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "v1.2.3",
            "1.2.x",
            "1.2.3-",
            "1.2.3+a..b",
        ] {
            assert!(validate_version(bad).is_err(), "{bad}");
        }
    }
}
