//! Canonical JSON (OLPC dialect), the byte form that TUF signatures cover.
//!
//! Written exactly as python-tuf's encoder (securesystemslib `encode_canonical`), the
//! interoperability reference: object keys sorted by code point, no insignificant
//! whitespace, integers only (a float is an error), strings as their UTF-8 bytes with only
//! `"` and `\` escaped. Strings are **not** Unicode-normalised: a signature covers the
//! characters as they are, as python-tuf signs and verifies them.
//!
//! ```
//! let v = serde_json::json!({"b": 1, "a": "x\"y"});
//! assert_eq!(ota_formats::cjson::to_vec(&v).unwrap(), br#"{"a":"x\"y","b":1}"#);
//! ```
use crate::{Error, Result};
use serde::Serialize;
use serde_json::Value;

/// Serialise any value as canonical JSON. A `serde_json::Value` is better given to
/// [`value_to_vec`], which writes it without copying it first.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let value = serde_json::to_value(value).map_err(|e| Error::Canonical(e.to_string()))?;
    value_to_vec(&value)
}

/// Canonical JSON of a JSON value.
pub fn value_to_vec(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<()> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_u64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else {
                return Err(Error::Canonical(format!(
                    "{n} is not an integer: canonical JSON has no floating point numbers"
                )));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            // Byte order of UTF-8 is code point order, Python's order for str keys.
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'"' || *b == b'\\' {
            out.extend_from_slice(&bytes[start..i]);
            out.push(b'\\');
            start = i;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_by_code_point_at_every_level() {
        let v = json!({"é": 1, "z": {"b": [3, {"d": 1, "c": 2}], "a": null}, "A": true});
        assert_eq!(
            value_to_vec(&v).unwrap(),
            "{\"A\":true,\"z\":{\"a\":null,\"b\":[3,{\"c\":2,\"d\":1}]},\"é\":1}".as_bytes()
        );
    }

    #[test]
    fn only_quote_and_backslash_are_escaped_and_nothing_is_normalised() {
        // "e" + COMBINING ACUTE ACCENT is not NFC: it stays two code points, as python-tuf
        // (securesystemslib) writes it. Control characters are written raw.
        let v = json!({"k": "a\"b\\c\u{0065}\u{0301}\n\t/"});
        assert_eq!(
            value_to_vec(&v).unwrap(),
            "{\"k\":\"a\\\"b\\\\ce\u{0301}\n\t/\"}".as_bytes()
        );
    }

    #[test]
    fn integers_in_full_range_and_no_floats() {
        let v = json!([u64::MAX, i64::MIN, 0, -1]);
        assert_eq!(
            value_to_vec(&v).unwrap(),
            format!("[{},{},0,-1]", u64::MAX, i64::MIN).as_bytes()
        );
        assert!(matches!(
            value_to_vec(&json!({"f": 1.5})),
            Err(Error::Canonical(m)) if m.contains("not an integer")
        ));
    }

    #[test]
    fn typed_values_and_values_give_the_same_bytes() {
        #[derive(Serialize)]
        struct S {
            z: u8,
            a: &'static str,
        }
        let typed = to_vec(&S { z: 1, a: "x" }).unwrap();
        assert_eq!(typed, value_to_vec(&json!({"a": "x", "z": 1})).unwrap());
    }
}
