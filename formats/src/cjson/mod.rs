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
mod text;

pub(crate) use text::envelope;

use crate::{Error, Result};
use serde::Serialize;
use serde_json::Value;

/// Serialise any value as canonical JSON.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(value).map_err(|e| Error::Canonical(e.to_string()))?;
    from_json(&json)
}

/// Canonical JSON of a JSON value.
pub fn value_to_vec(value: &Value) -> Result<Vec<u8>> {
    to_vec(value)
}

/// Canonical JSON of JSON text (e.g. the `signed` part of a metadata file as received), in one
/// pass over the bytes. Refuses invalid JSON, floats, integers outside the 64-bit range and
/// objects with a duplicate key.
///
/// ```
/// let text = b"{ \"b\": [1, 2],\n  \"a\": \"caf\\u00e9\" }";
/// assert_eq!(
///     ota_formats::cjson::from_json(text).unwrap(),
///     "{\"a\":\"café\",\"b\":[1,2]}".as_bytes()
/// );
/// ```
pub fn from_json(text: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    text::canonicalize(text, &mut out)?;
    Ok(out)
}

/// A string's UTF-8 bytes, quoted, with only `"` and `\` escaped.
fn write_string(bytes: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
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

    fn text(t: &str) -> Result<String> {
        from_json(t.as_bytes()).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn text_is_decoded_before_it_is_written() {
        // Escapes are decoded (and re-encoded raw), whitespace dropped, `-0` is Python's 0.
        assert_eq!(
            text(" {\"k\" : \"\\u00e9\\n\\/\\ud83d\\ude00\\\"\" , \"n\":[ -0 , 7 ]}\n").unwrap(),
            "{\"k\":\"é\n/😀\\\"\",\"n\":[0,7]}"
        );
        // Keys are sorted by their decoded form: "\u0041" is "A", before "B".
        assert_eq!(text(r#"{"B":1,"\u0041":2}"#).unwrap(), r#"{"A":2,"B":1}"#);
    }

    #[test]
    fn bad_text_is_refused_with_what_is_wrong() {
        for (input, why) in [
            (r#"{"a":1,"a":2}"#, "duplicate key \"a\""),
            (r#"{"b":1,"a":2,"b":3}"#, "duplicate key \"b\""),
            (r#"{"a":1.0}"#, "not an integer"),
            (r#"[1e3]"#, "not an integer"),
            (
                r#"[18446744073709551616]"#,
                "out of the 64-bit integer range",
            ),
            (
                r#"[-9223372036854775809]"#,
                "out of the 64-bit integer range",
            ),
            (r#"["\ud800"]"#, "lone surrogate"),
            (r#"["\udc00"]"#, "lone surrogate"),
            (r#"["\x"]"#, "invalid escape"),
            ("[\"a\tb\"]", "control character"),
            (r#"{"a":1"#, "expected ',' or '}'"),
            (r#"{"a":1} x"#, "trailing characters"),
            (r#"[01]"#, "expected ',' or ']'"),
            (r#"[tru]"#, "expected true, false or null"),
            ("", "unexpected end of input"),
        ] {
            let err = text(input).unwrap_err().to_string();
            assert!(err.contains(why), "{input:?}: {err}");
        }
        let deep = "[".repeat(129) + &"]".repeat(129);
        assert!(text(&deep)
            .unwrap_err()
            .to_string()
            .contains("nested too deeply"));
        assert_eq!(
            text(&("[".repeat(128) + &"]".repeat(128))).unwrap().len(),
            256
        );
        assert!(from_json(b"[\"\xff\"]").is_err());
    }

    /// The rules written the obvious way, over a parsed tree: the oracle for the text writer.
    fn reference(v: &Value, out: &mut String) {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    reference(&Value::String(k.clone()), out);
                    out.push(':');
                    reference(v, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    reference(item, out);
                }
                out.push(']');
            }
            Value::String(s) => {
                out.push('"');
                out.push_str(&s.replace('\\', "\\\\").replace('"', "\\\""));
                out.push('"');
            }
            other => out.push_str(&other.to_string()),
        }
    }

    #[test]
    fn text_writer_agrees_with_the_tree_writer_on_random_documents() {
        // A small deterministic generator: nested objects with keys in random order, strings
        // with escapes, quotes, non-ASCII and control characters, integers at the extremes.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        const PIECES: [&str; 8] = ["a", "é", "\"", "\\", "\n", "z", "😀", "\u{1}"];
        fn string(next: &mut dyn FnMut(u64) -> u64) -> String {
            (0..next(4)).map(|_| PIECES[next(8) as usize]).collect()
        }
        fn gen(next: &mut dyn FnMut(u64) -> u64, depth: u32) -> Value {
            match if depth > 3 { next(4) } else { next(6) } {
                0 => Value::from(string(next)),
                1 => Value::from([u64::MAX, 0, 42][next(3) as usize]),
                2 => Value::from([i64::MIN, -1][next(2) as usize]),
                3 => [Value::Null, Value::Bool(true), Value::Bool(false)][next(3) as usize].clone(),
                4 => Value::Array((0..next(4)).map(|_| gen(next, depth + 1)).collect()),
                _ => {
                    let mut map = serde_json::Map::new();
                    for _ in 0..next(5) {
                        let key = string(next);
                        map.insert(key, gen(next, depth + 1));
                    }
                    Value::Object(map)
                }
            }
        }
        for _ in 0..2000 {
            let v = gen(&mut next, 0);
            let mut expected = String::new();
            reference(&v, &mut expected);
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            assert_eq!(text(&pretty).unwrap(), expected, "{pretty}");
        }
    }

    #[test]
    fn an_envelope_gives_the_canonical_signed_part_and_where_each_part_is() {
        let file = br#" {"x-extra": [1, {"b": 2}], "signatures": [{"keyid": "k", "sig": "00"}],
            "signed": {"z": "\u00e9", "a": 1}} "#;
        let e = envelope(file).unwrap();
        assert_eq!(e.canonical_signed, "{\"a\":1,\"z\":\"é\"}".as_bytes());
        assert_eq!(&file[e.signed.clone()], br#"{"z": "\u00e9", "a": 1}"#);
        assert_eq!(&file[e.signatures], br#"[{"keyid": "k", "sig": "00"}]"#);
        for (bad, why) in [
            (
                &br#"{"signed": {}, "signed": {}, "signatures": []}"#[..],
                "duplicate key \"signed\"",
            ),
            (
                br#"{"signatures": [], "signatures": [], "signed": {}}"#,
                "duplicate key",
            ),
            (br#"{"signatures": []}"#, "missing field `signed`"),
            (br#"{"signed": {}}"#, "missing field `signatures`"),
            (
                br#"{"signed": {"a": 1.5}, "signatures": []}"#,
                "not an integer",
            ),
            (
                br#"{"signed": {}, "signatures": []} x"#,
                "trailing characters",
            ),
            (br#"[]"#, "expected '{'"),
        ] {
            let err = envelope(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(why), "{}: {err}", String::from_utf8_lossy(bad));
        }
    }
}
