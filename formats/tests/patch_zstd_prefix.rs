//! Method 4: the result compressed by zstd with the whole base as reference prefix.

mod patch_common;

use ota_formats::patch::{Codec, Filter, Method, PatchError, PatchHeader};
use patch_common::*;

fn prefix_patch(old: &[u8], new: &[u8], window_log: u8) -> Vec<u8> {
    let mut h = PatchHeader::new(Method::ZstdPrefix, Codec::Zstd, Filter::None, old, new);
    h.window_log = window_log;
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), 19, old).unwrap();
    enc.window_log(u32::from(window_log)).unwrap();
    std::io::Write::write_all(&mut enc, new).unwrap();
    let body = enc.finish().unwrap();
    let mut p = h.to_bytes(body.len() as u64).to_vec();
    p.extend_from_slice(&body);
    p
}

fn pair() -> (Vec<u8>, Vec<u8>) {
    let old = bytes(80, 200_000);
    let mut new = old.clone();
    new.splice(50_000..50_000, bytes(81, 500));
    new[150_000] ^= 0x55;
    (old, new)
}

#[test]
fn prefix_patch_round_trips_and_is_small() {
    let (old, new) = pair();
    let p = prefix_patch(&old, &new, 19);
    assert!(p.len() < 2_000, "patch of {} bytes", p.len());
    assert_eq!(apply_vec(&old, &p).unwrap(), new);
}

#[test]
fn prefix_patch_limits_are_enforced() {
    let (old, new) = pair();
    // A base larger than the window the header allows is refused before it is read.
    let mut p = prefix_patch(&old, &new, 19);
    p[8] = 16;
    assert!(matches!(
        apply_vec(&old, &p),
        Err(PatchError::LimitExceeded(_))
    ));
    // The method needs the zstd codec.
    let mut p = prefix_patch(&old, &new, 19);
    p[6] = 2;
    match apply_vec(&old, &p) {
        Err(PatchError::CorruptControl(m)) => assert!(m.contains("zstd"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Another base is refused as such.
    let mut other = old.clone();
    other[10] ^= 1;
    assert!(matches!(
        apply_vec(&other, &prefix_patch(&old, &new, 19)),
        Err(PatchError::WrongBase { .. })
    ));
}
