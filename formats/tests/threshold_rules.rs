//! Threshold edge cases of `verify_threshold`.
use ota_formats::crypto::{verify_threshold, Ed25519Signer, Key, Signature, Signer};
use ota_formats::Error;
use std::collections::BTreeMap;

const MSG: &[u8] = b"canonical bytes";

fn signer(n: u8) -> Ed25519Signer {
    Ed25519Signer::from_seed(&[n; 32])
}

fn setup(n: u8) -> (Vec<Ed25519Signer>, BTreeMap<String, Key>, Vec<String>) {
    let signers: Vec<_> = (1..=n).map(signer).collect();
    let mut keys = BTreeMap::new();
    let mut ids = Vec::new();
    for s in &signers {
        let id = s.key_id().unwrap();
        keys.insert(id.clone(), s.public_key());
        ids.push(id);
    }
    (signers, keys, ids)
}

fn sigs(signers: &[Ed25519Signer]) -> Vec<Signature> {
    signers.iter().map(|s| s.sign(MSG).unwrap()).collect()
}

#[test]
fn threshold_met_and_not_met() {
    let (s, keys, ids) = setup(3);
    let all = sigs(&s);
    verify_threshold("r", MSG, &all, &keys, &ids, 3).unwrap();
    let err = verify_threshold("r", MSG, &all[..2], &keys, &ids, 3).unwrap_err();
    assert!(matches!(
        err,
        Error::ThresholdNotMet {
            valid: 2,
            threshold: 3,
            ..
        }
    ));
}

#[test]
fn threshold_zero_is_invalid() {
    let (s, keys, ids) = setup(1);
    let err = verify_threshold("r", MSG, &sigs(&s), &keys, &ids, 0).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }));
}

#[test]
fn duplicate_keyid_in_signatures_is_rejected() {
    let (s, keys, ids) = setup(2);
    let mut list = sigs(&s[..1]);
    list.push(list[0].clone());
    list.push(s[1].sign(MSG).unwrap());
    let err = verify_threshold("r", MSG, &list, &keys, &ids, 1).unwrap_err();
    assert!(matches!(err, Error::DuplicateKeyId { .. }));
}

#[test]
fn duplicate_keyid_in_role_is_rejected() {
    let (s, keys, ids) = setup(1);
    let doubled = vec![ids[0].clone(), ids[0].clone()];
    let err = verify_threshold("r", MSG, &sigs(&s), &keys, &doubled, 1).unwrap_err();
    assert!(matches!(err, Error::DuplicateKeyId { .. }));
}

#[test]
fn unknown_empty_and_invalid_signatures_are_ignored() {
    let (s, keys, ids) = setup(1);
    let stranger = signer(9);
    let mut list = vec![stranger.sign(MSG).unwrap()];
    list.push(Signature {
        keyid: "00".repeat(32),
        sig: String::new(),
        extra: Default::default(),
    });
    list.extend(sigs(&s));
    verify_threshold("r", MSG, &list, &keys, &ids, 1).unwrap();
    // The stranger's signature does not count toward a threshold of 2.
    assert!(verify_threshold("r", MSG, &list, &keys, &ids, 2).is_err());
    // An authorised key with an unparsable or wrong signature is ignored, not fatal.
    let (s2, keys2, ids2) = setup(3);
    let mut garbled = s2[0].sign(MSG).unwrap();
    garbled.sig = "zz".into();
    let wrong = s2[1].sign(b"other message").unwrap();
    let list2 = vec![garbled, wrong, s2[2].sign(MSG).unwrap()];
    verify_threshold("r", MSG, &list2, &keys2, &ids2, 1).unwrap();
    let err = verify_threshold("r", MSG, &list2, &keys2, &ids2, 2).unwrap_err();
    assert!(matches!(err, Error::ThresholdNotMet { valid: 1, .. }));
}

#[test]
fn signature_by_listed_key_not_in_role_is_ignored() {
    let (s, keys, ids) = setup(2);
    // Both keys are in `keys`, only the first is authorised for the role.
    let err = verify_threshold("r", MSG, &sigs(&s[1..]), &keys, &ids[..1], 1).unwrap_err();
    assert!(matches!(err, Error::ThresholdNotMet { valid: 0, .. }));
}

#[test]
fn same_key_under_two_ids_counts_once() {
    let (s, mut keys, _) = setup(1);
    let key = s[0].public_key();
    let real_id = s[0].key_id().unwrap();
    let alias = "ab".repeat(32);
    keys.insert(alias.clone(), key);
    let first = s[0].sign(MSG).unwrap();
    let mut second = first.clone();
    second.keyid = alias.clone();
    let ids = vec![real_id, alias];
    let list = vec![first, second];
    verify_threshold("r", MSG, &list, &keys, &ids, 1).unwrap();
    let err = verify_threshold("r", MSG, &list, &keys, &ids, 2).unwrap_err();
    assert!(matches!(err, Error::ThresholdNotMet { valid: 1, .. }));
}
