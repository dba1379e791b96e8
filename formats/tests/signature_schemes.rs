//! Signature verification of each supported key type against signatures made by Python's
//! `cryptography` (data/signature_vectors.json), plus a root signed by python-tuf with one
//! key of each type (data/root_three_key_types.json).
use ota_formats::crypto::{Key, KeyVal};
use ota_formats::metadata::{RawMetadata, Root};
use serde_json::{Map, Value};

struct Vector {
    key: Key,
    message: Vec<u8>,
    other: Vec<u8>,
    sig: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let list: Vec<Value> =
        serde_json::from_str(include_str!("data/signature_vectors.json")).unwrap();
    list.iter()
        .map(|v| Vector {
            key: Key {
                keytype: v["keytype"].as_str().unwrap().into(),
                scheme: v["scheme"].as_str().unwrap().into(),
                keyval: KeyVal {
                    public: v["public"].as_str().unwrap().into(),
                    extra: Map::new(),
                },
                extra: Map::new(),
            },
            message: v["message"].as_str().unwrap().as_bytes().to_vec(),
            other: v["other_message"].as_str().unwrap().as_bytes().to_vec(),
            sig: hex::decode(v["signature"].as_str().unwrap()).unwrap(),
        })
        .collect()
}

fn vector(scheme: &str) -> Vector {
    vectors()
        .into_iter()
        .find(|v| v.key.scheme == scheme)
        .unwrap()
}

fn check_scheme(scheme: &str) {
    let v = vector(scheme);
    assert!(
        v.key.verify("k", &v.message, &v.sig).unwrap(),
        "{scheme} valid"
    );
    assert!(
        !v.key.verify("k", &v.other, &v.sig).unwrap(),
        "{scheme} wrong message"
    );
    for byte in [0, v.sig.len() / 2, v.sig.len() - 1] {
        let mut flipped = v.sig.clone();
        flipped[byte] ^= 0x01;
        assert!(
            !v.key.verify("k", &v.message, &flipped).unwrap(),
            "{scheme} flipped bit in byte {byte}"
        );
    }
    assert!(
        !v.key.verify("k", &v.message, &[]).unwrap(),
        "{scheme} empty"
    );
    assert!(
        !v.key
            .verify("k", &v.message, &v.sig[..v.sig.len() - 1])
            .unwrap(),
        "{scheme} truncated"
    );
}

#[test]
fn ed25519_hex_key() {
    check_scheme("ed25519");
}

#[test]
fn ecdsa_p256_pem_key_der_signature() {
    check_scheme("ecdsa-sha2-nistp256");
    // The keytype may also be written "ecdsa-sha2-nistp256" (older tools).
    let mut v = vector("ecdsa-sha2-nistp256");
    v.key.keytype = "ecdsa-sha2-nistp256".into();
    assert!(v.key.verify("k", &v.message, &v.sig).unwrap());
}

#[test]
fn rsassa_pss_sha256_pem_key() {
    check_scheme("rsassa-pss-sha256");
}

#[test]
fn key_of_one_type_does_not_verify_another_schemes_signature() {
    let ed = vector("ed25519");
    let ec = vector("ecdsa-sha2-nistp256");
    assert!(!ed.key.verify("k", &ed.message, &ec.sig).unwrap());
    assert!(!ec.key.verify("k", &ec.message, &ed.sig).unwrap());
}

#[test]
fn unusable_keys_are_errors() {
    let mut v = vector("ed25519");
    v.key.keyval.public = "not hex".into();
    assert!(v.key.verify("k", &v.message, &v.sig).is_err());
    let mut v = vector("rsassa-pss-sha256");
    v.key.keyval.public = "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n".into();
    assert!(v.key.verify("k", &v.message, &v.sig).is_err());
    let mut v = vector("ed25519");
    v.key.scheme = "ed448".into();
    assert!(v.key.verify("k", &v.message, &v.sig).is_err());
}

fn python_tuf_root() -> RawMetadata {
    RawMetadata::from_bytes(include_bytes!("data/root_three_key_types.json")).unwrap()
}

#[test]
fn python_tuf_root_with_three_key_types_verifies() {
    let raw = python_tuf_root();
    let root: Root = raw.parse().unwrap();
    assert_eq!(root.keys.len(), 3);
    assert!(root.extra.contains_key("x-vendor-note"));
    let r = root.role("root").unwrap();
    raw.verify("root", &root, &r.keyids, 3).unwrap();
}

#[test]
fn python_tuf_root_fails_when_signed_content_changes() {
    let mut raw = python_tuf_root();
    let root: Root = raw.parse().unwrap();
    let r = root.role("root").unwrap().clone();
    // Changing the unknown field must break every signature: it is covered too.
    raw.signed["x-vendor-note"] = Value::String("changed".into());
    assert!(raw.verify("root", &root, &r.keyids, 1).is_err());
}

#[test]
fn python_tuf_root_each_key_counts_once() {
    let raw = python_tuf_root();
    let root: Root = raw.parse().unwrap();
    let r = root.role("root").unwrap();
    // Drop one signature: 2 valid, threshold 3 fails, threshold 2 passes.
    let mut two = raw.clone();
    two.signatures.pop();
    assert!(two.verify("root", &root, &r.keyids, 3).is_err());
    two.verify("root", &root, &r.keyids, 2).unwrap();
}
