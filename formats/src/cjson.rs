//! Canonical JSON (OLPC dialect), the byte form that TUF signatures cover.
//!
//! ```
//! let v = serde_json::json!({"b": 1, "a": "x"});
//! assert_eq!(ota_formats::cjson::to_vec(&v).unwrap(), br#"{"a":"x","b":1}"#);
//! ```
use crate::{Error, Result};
use serde::Serialize;

/// Serialise any value as canonical JSON: sorted keys, no insignificant whitespace,
/// integers only.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value
        .serialize(&mut ser)
        .map_err(|e| Error::Canonical(e.to_string()))?;
    Ok(out)
}
