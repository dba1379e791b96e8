//! Patches are refused with a specific error when anything does not fit.

mod patch_common;

use ota_formats::patch::payload::Cover;
use ota_formats::patch::varint::put_u64;
use ota_formats::patch::{Codec, Filter, Method, PatchError, PatchHeader, HEADER_LEN};
use patch_common::*;

fn pair() -> (Vec<u8>, Vec<u8>, Vec<Cover>) {
    let old = bytes(21, 60_000);
    let mut new = old[..20_000].to_vec();
    new.extend(bytes(22, 3_000));
    new.extend_from_slice(&old[25_000..]);
    let covers = vec![
        Cover {
            new_start: 0,
            old_start: 0,
            add_len: 20_000,
            extra_len: 3_000,
        },
        Cover {
            new_start: 23_000,
            old_start: 25_000,
            add_len: 35_000,
            extra_len: 0,
        },
    ];
    (old, new, covers)
}

#[test]
fn wrong_base_is_refused_before_writing() {
    let (old, new, covers) = pair();
    let p = diff_patch(&old, &new, &covers, Codec::Zstd, Filter::None, 21);
    let mut other = old.clone();
    other[100] ^= 1;
    let mut out = Vec::new();
    let err =
        ota_formats::patch::apply(std::io::Cursor::new(&other), &p[..], &mut out).unwrap_err();
    assert!(
        matches!(
            err,
            PatchError::WrongBase {
                actual_len: 60_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(out.is_empty(), "nothing may be written for a wrong base");
    let err = apply_vec(&old[..59_999], &p).unwrap_err();
    assert!(
        matches!(
            err,
            PatchError::WrongBase {
                actual_len: 59_999,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("wrong base image"));
}

#[test]
fn truncated_patch_is_reported_as_truncated() {
    let (old, new, covers) = pair();
    for codec in [Codec::Zstd, Codec::Lzma2] {
        let p = diff_patch(&old, &new, &covers, codec, Filter::None, 21);
        for cut in [
            0,
            10,
            HEADER_LEN - 1,
            HEADER_LEN,
            HEADER_LEN + 5,
            p.len() / 2,
            p.len() - 1,
        ] {
            let err = apply_vec(&old, &p[..cut]).unwrap_err();
            assert!(
                matches!(err, PatchError::Truncated(_)),
                "{codec:?} cut at {cut}: {err}"
            );
        }
    }
}

/// Builds a patch from a hand-made payload block so the control data can be corrupted.
fn block(records: &[(u64, u64, u64)], diff_len: u64, extra_len: u64, sections: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    put_u64(&mut b, records.len() as u64);
    put_u64(&mut b, diff_len);
    put_u64(&mut b, extra_len);
    for &(a, e, s) in records {
        put_u64(&mut b, a);
        put_u64(&mut b, e);
        put_u64(&mut b, s);
    }
    b.extend_from_slice(sections);
    b
}

#[test]
fn corrupted_control_block_is_refused() {
    let old = bytes(31, 1000);
    let new: Vec<u8> = old[..600].iter().copied().chain(bytes(32, 100)).collect();
    let mut h = PatchHeader::new(Method::Diff, Codec::Zstd, Filter::None, &old, &new);
    h.window_log = 16;
    h.block_log = 12;
    let mut sections = vec![0u8; 600];
    sections.extend_from_slice(&new[600..]);
    // The valid block works.
    let good = block(&[(600, 100, 0)], 600, 100, &sections);
    assert_eq!(apply_vec(&old, &assemble(&h, &good)).unwrap(), new);

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "records disagree with section lengths",
            block(&[(601, 100, 0)], 600, 100, &sections),
        ),
        ("zero records", block(&[], 600, 100, &sections)),
        (
            "copy past the base end",
            block(&[(600, 100, 2 * 500)], 600, 100, &sections),
        ),
        (
            "seek before the base start",
            block(&[(600, 100, 1)], 600, 100, &sections),
        ),
        (
            "diff section above block limit",
            block(&[(5000, 0, 0)], 5000, 0, &vec![0; 5000]),
        ),
        (
            "more output than the result",
            block(
                &[(600, 101, 0)],
                600,
                101,
                &[sections.clone(), vec![0]].concat(),
            ),
        ),
        ("trailing block", [good.clone(), good.clone()].concat()),
        ("overlong varint", [vec![0xff; 11], good.clone()].concat()),
    ];
    for (what, payload) in cases {
        let err = apply_vec(&old, &assemble(&h, &payload)).unwrap_err();
        assert!(
            matches!(err, PatchError::CorruptControl(_)),
            "{what}: {err}"
        );
    }

    // Flipping bytes of the control records of a real payload never yields a wrong image.
    let (old, new, covers) = pair();
    let payload = payload(&old, &new, &covers, Filter::None, 21);
    let mut h = PatchHeader::new(Method::Diff, Codec::Zstd, Filter::None, &old, &new);
    h.window_log = 16;
    for i in 0..12 {
        let mut p = payload.clone();
        p[i] ^= 0x41;
        match apply_vec(&old, &assemble(&h, &p)) {
            Err(PatchError::CorruptControl(_)) | Err(PatchError::ResultMismatch { .. }) => {}
            other => panic!("flip at control byte {i}: {other:?}"),
        }
    }
}

#[test]
fn corrupted_compressed_payload_is_refused() {
    let (old, new, covers) = pair();
    let p = diff_patch(&old, &new, &covers, Codec::Lzma2, Filter::None, 21);
    for i in (HEADER_LEN..p.len()).step_by(97) {
        let mut q = p.clone();
        q[i] ^= 0xA5;
        assert!(apply_vec(&old, &q).is_err(), "flip at {i} accepted");
    }
}

#[test]
fn result_hash_mismatch_is_refused() {
    let (old, new, covers) = pair();
    let mut h = PatchHeader::new(Method::Diff, Codec::Zstd, Filter::None, &old, &new);
    h.window_log = 16;
    h.result_sha256[0] ^= 1;
    let p = assemble(&h, &payload(&old, &new, &covers, Filter::None, 21));
    let err = apply_vec(&old, &p).unwrap_err();
    match err {
        PatchError::ResultMismatch {
            expected_len,
            actual_len,
            ..
        } => {
            assert_eq!(
                (expected_len, actual_len),
                (new.len() as u64, new.len() as u64)
            )
        }
        other => panic!("{other}"),
    }
}

#[test]
fn unsupported_header_fields_are_named() {
    let (old, new, covers) = pair();
    let p = diff_patch(&old, &new, &covers, Codec::Zstd, Filter::None, 21);
    let with = |i: usize, v: u8| {
        let mut q = p.clone();
        q[i] = v;
        apply_vec(&old, &q).unwrap_err()
    };
    assert!(matches!(with(0, b'X'), PatchError::BadMagic));
    assert!(matches!(with(4, 2), PatchError::UnsupportedVersion(2)));
    assert!(matches!(with(5, 9), PatchError::UnsupportedMethod(9)));
    assert!(matches!(with(6, 7), PatchError::UnsupportedCodec(7)));
    assert!(matches!(with(7, 7), PatchError::UnsupportedFilter(7)));
    assert!(matches!(with(8, 30), PatchError::LimitExceeded(_)));
    assert!(matches!(with(9, 25), PatchError::LimitExceeded(_)));
}

#[test]
fn zstd_window_above_header_limit_is_refused() {
    // A frame made with a 1 MiB window while the header claims 64 KiB: the decoder must refuse
    // rather than allocate the larger window.
    let new = bytes(41, 3 << 20);
    let new = [new.clone(), new].concat();
    let mut h = PatchHeader::new(Method::Full, Codec::Zstd, Filter::None, b"", &new);
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    enc.window_log(23).unwrap();
    std::io::Write::write_all(&mut enc, &new).unwrap();
    let body = enc.finish().unwrap();
    h.window_log = 16;
    let mut p = h.to_bytes(body.len() as u64).to_vec();
    p.extend_from_slice(&body);
    let err = apply_vec(b"", &p).unwrap_err();
    assert!(matches!(err, PatchError::Decompress(_)), "{err}");
}
