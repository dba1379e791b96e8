//! Canonical JSON against vectors produced by securesystemslib's `encode_canonical`
//! (data/canonical_vectors.json, made by data/generate.py): sorted keys, no whitespace,
//! only `"` and `\` escaped, non-ASCII and control characters written raw.
use ota_formats::cjson;
use serde_json::Value;

fn vectors() -> Vec<(Value, String)> {
    let text = include_str!("data/canonical_vectors.json");
    let list: Vec<Value> = serde_json::from_str(text).unwrap();
    list.into_iter()
        .map(|v| {
            (
                v["input"].clone(),
                v["canonical"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn matches_securesystemslib_vectors() {
    let vs = vectors();
    assert!(vs.len() >= 7);
    for (input, expected) in vs {
        let got = cjson::to_vec(&input).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), expected, "input {input}");
    }
}

#[test]
fn key_order_does_not_depend_on_input_order() {
    let a: Value = serde_json::from_str(r#"{"b":{"d":1,"c":2},"a":[{"y":1,"x":2}]}"#).unwrap();
    let b: Value = serde_json::from_str(r#"{"a":[{"x":2,"y":1}],"b":{"c":2,"d":1}}"#).unwrap();
    assert_eq!(cjson::to_vec(&a).unwrap(), cjson::to_vec(&b).unwrap());
    assert_eq!(
        cjson::to_vec(&a).unwrap(),
        br#"{"a":[{"x":2,"y":1}],"b":{"c":2,"d":1}}"#
    );
}

#[test]
fn escapes_only_quote_and_backslash() {
    let v = serde_json::json!({"s": "a\"b\\c\nd/é"});
    assert_eq!(
        cjson::to_vec(&v).unwrap(),
        "{\"s\":\"a\\\"b\\\\c\nd/é\"}".as_bytes()
    );
}

#[test]
fn floats_are_refused() {
    let v = serde_json::json!({"f": 1.5});
    assert!(cjson::to_vec(&v).is_err());
}
