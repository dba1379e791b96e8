//! Method 2 (sparse diff): round trips and refusals of inconsistent diff runs.

mod patch_common;

use ota_formats::patch::payload::{encode_sparse, Cover};
use ota_formats::patch::varint::put_u64;
use ota_formats::patch::{filter, Codec, Filter, Method, PatchError, PatchHeader};
use patch_common::*;

fn sparse_patch(
    old: &[u8],
    new: &[u8],
    covers: &[Cover],
    codec: Codec,
    filter_: Filter,
    block_log: u8,
) -> Vec<u8> {
    let (mut fo, mut fnew) = (old.to_vec(), new.to_vec());
    filter::encode(filter_, &mut fo, 0);
    filter::encode(filter_, &mut fnew, 0);
    let mut h = PatchHeader::new(Method::SparseDiff, codec, filter_, old, new);
    h.block_log = block_log;
    h.window_log = 16;
    assemble(&h, &encode_sparse(&fo, &fnew, covers, block_log))
}

/// A new image that differs from the old one in scattered bytes, plus an appended tail.
fn scattered(seed: u64) -> (Vec<u8>, Vec<u8>) {
    let old = bytes(seed, 60_000);
    let mut new = old.clone();
    for i in (7..60_000).step_by(977) {
        new[i] = new[i].wrapping_add(16);
        new[i + 1] ^= 0xFF;
    }
    new[0] ^= 1; // a literal run at the very start
    *new.last_mut().unwrap() ^= 1; // and at the very end of the diff section
    new.extend(bytes(seed + 1, 3000));
    (old, new)
}

#[test]
fn sparse_round_trips() {
    let (old, new) = scattered(41);
    let covers = simple_covers(&old, &new);
    for codec in [Codec::Zstd, Codec::Lzma2] {
        for f in [Filter::None, Filter::Thumb] {
            for block_log in [10u8, 21] {
                let p = sparse_patch(&old, &new, &covers, codec, f, block_log);
                let out = apply_vec(&old, &p)
                    .unwrap_or_else(|e| panic!("{codec:?}/{f:?}/{block_log}: {e}"));
                assert!(out == new, "{codec:?}/{f:?}/{block_log}: wrong output");
            }
        }
    }
}

#[test]
fn sparse_is_smaller_than_dense_for_scattered_changes() {
    let (old, new) = scattered(43);
    let covers = simple_covers(&old, &new);
    let sparse = sparse_patch(&old, &new, &covers, Codec::Lzma2, Filter::None, 21);
    let dense = diff_patch(&old, &new, &covers, Codec::Lzma2, Filter::None, 21);
    assert!(
        sparse.len() < dense.len(),
        "{} !< {}",
        sparse.len(),
        dense.len()
    );
}

#[test]
fn identical_images_round_trip() {
    let old = bytes(45, 5000);
    let p = sparse_patch(
        &old,
        &old,
        &simple_covers(&old, &old),
        Codec::Zstd,
        Filter::None,
        12,
    );
    assert_eq!(apply_vec(&old, &p).unwrap(), old);
}

/// One sparse block: records, runs, literals and extra bytes, written by hand.
fn block(
    records: &[(u64, u64, u64)],
    diff_len: u64,
    extra_len: u64,
    runs: &[(u64, u64)],
    rest: &[u8],
) -> Vec<u8> {
    let mut b = Vec::new();
    put_u64(&mut b, records.len() as u64);
    put_u64(&mut b, diff_len);
    put_u64(&mut b, extra_len);
    put_u64(&mut b, runs.len() as u64);
    for &(a, e, s) in records {
        put_u64(&mut b, a);
        put_u64(&mut b, e);
        put_u64(&mut b, s);
    }
    for &(z, l) in runs {
        put_u64(&mut b, z);
        put_u64(&mut b, l);
    }
    b.extend_from_slice(rest);
    b
}

#[test]
fn inconsistent_runs_are_refused() {
    let old = bytes(47, 1000);
    let mut new = old[..600].to_vec();
    new[300] = new[300].wrapping_add(5);
    new.extend(bytes(48, 100));
    let mut h = PatchHeader::new(Method::SparseDiff, Codec::Zstd, Filter::None, &old, &new);
    h.window_log = 16;
    h.block_log = 12;
    let mut rest = vec![5u8];
    rest.extend_from_slice(&new[600..]);
    let good = block(&[(600, 100, 0)], 600, 100, &[(300, 1), (299, 0)], &rest);
    assert_eq!(apply_vec(&old, &assemble(&h, &good)).unwrap(), new);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "runs short of the diff section",
            block(&[(600, 100, 0)], 600, 100, &[(300, 1)], &rest),
        ),
        (
            "runs past the diff section",
            block(&[(600, 100, 0)], 600, 100, &[(300, 1), (300, 0)], &rest),
        ),
        (
            "empty run",
            block(
                &[(600, 100, 0)],
                600,
                100,
                &[(300, 1), (0, 0), (299, 0)],
                &rest,
            ),
        ),
        (
            "more runs than diff bytes",
            block(&[(600, 100, 0)], 600, 100, &vec![(1, 0); 601], &rest),
        ),
    ];
    for (what, payload) in cases {
        match apply_vec(&old, &assemble(&h, &payload)) {
            Err(PatchError::CorruptControl(_)) => {}
            other => panic!("{what}: expected corrupted control data, got {other:?}"),
        }
    }
    // Literals missing at the end of the payload.
    let cut = block(&[(600, 100, 0)], 600, 0, &[(300, 1), (299, 0)], &[]);
    assert!(apply_vec(&old, &assemble(&h, &cut)).is_err());
}

#[test]
fn unknown_method_is_refused() {
    let old = bytes(49, 100);
    let h = PatchHeader::new(Method::SparseDiff, Codec::Zstd, Filter::None, &old, &old);
    let mut p = assemble(&h, &[]);
    p[5] = 5;
    assert!(matches!(
        apply_vec(&old, &p),
        Err(PatchError::UnsupportedMethod(5))
    ));
}

#[test]
fn thumb_pointer_prediction_round_trips_and_predicts_moved_pointers() {
    use ota_formats::patch::filter::{encode_remapped, AddressMap, Prediction};
    // A literal-pool word pointing at 0x1801 (a Thumb function at 0x1800) and a BL pair at
    // 0x40; 100 bytes are inserted at 0x1000, so the function and the pointer move by 100.
    let mut old = bytes(60, 20_000);
    old[0x200..0x204].copy_from_slice(&0x1801u32.to_le_bytes());
    old[0x40..0x44].copy_from_slice(&[0x00, 0xF0, 0x00, 0xF8]);
    let mut new = old.clone();
    new.splice(0x1000..0x1000, bytes(61, 100));
    new[0x200..0x204].copy_from_slice(&(0x1801u32 + 100).to_le_bytes());
    let map = AddressMap::new(vec![(0, 0), (0x1000, 100)]);
    let mut remapped = old.clone();
    encode_remapped(
        Filter::ThumbRemapPointers,
        &mut remapped,
        0,
        &Prediction::from_map(map.clone()),
    );
    let mut fnew = new.clone();
    filter::encode(Filter::ThumbRemapPointers, &mut fnew, 0);
    assert_eq!(
        remapped[0x200..0x204],
        fnew[0x200..0x204],
        "pointer predicted"
    );
    // Plain ThumbRemap leaves the pointer as it was.
    let mut plain = old.clone();
    encode_remapped(
        Filter::ThumbRemap,
        &mut plain,
        0,
        &Prediction::from_map(map.clone()),
    );
    assert_ne!(plain[0x200..0x204], fnew[0x200..0x204]);
    let covers = [
        Cover {
            new_start: 0,
            old_start: 0,
            add_len: 0x1000,
            extra_len: 100,
        },
        Cover {
            new_start: 0x1000 + 100,
            old_start: 0x1000,
            add_len: 20_000 - 0x1000,
            extra_len: 0,
        },
    ];
    let mut data = Vec::new();
    map.write(&mut data);
    data.extend(encode_sparse(&remapped, &fnew, &covers, 21));
    for codec in [Codec::Zstd, Codec::Lzma2] {
        let mut h = PatchHeader::new(
            Method::SparseDiff,
            codec,
            Filter::ThumbRemapPointers,
            &old,
            &new,
        );
        h.window_log = 16;
        assert_eq!(apply_vec(&old, &assemble(&h, &data)).unwrap(), new);
    }
}
