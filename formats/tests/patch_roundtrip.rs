//! Patches built from explicit covers apply back to the exact new image.

mod patch_common;

use ota_formats::patch::payload::Cover;
use ota_formats::patch::{Codec, Filter, Method, PatchHeader};
use patch_common::*;

fn check(old: &[u8], new: &[u8], covers: &[Cover]) {
    for codec in [Codec::Zstd, Codec::Lzma2] {
        for filter in [Filter::None, Filter::X86] {
            for block_log in [10u8, 21] {
                let p = diff_patch(old, new, covers, codec, filter, block_log);
                let out = apply_vec(old, &p)
                    .unwrap_or_else(|e| panic!("{codec:?}/{filter:?}/{block_log}: {e}"));
                assert!(out == new, "{codec:?}/{filter:?}/{block_log}: wrong output");
            }
        }
    }
}

#[test]
fn random_pair() {
    let (old, new) = (bytes(1, 50_000), bytes(2, 70_000));
    check(&old, &new, &simple_covers(&old, &new));
}

#[test]
fn inserted_block_uses_seeks() {
    let old = bytes(3, 100_000);
    let mut new = old[..40_000].to_vec();
    new.extend(bytes(4, 5_000));
    new.extend_from_slice(&old[40_000..]);
    new[90_000] ^= 0x55;
    let covers = [
        Cover {
            new_start: 0,
            old_start: 0,
            add_len: 40_000,
            extra_len: 5_000,
        },
        Cover {
            new_start: 45_000,
            old_start: 40_000,
            add_len: 60_000,
            extra_len: 0,
        },
    ];
    check(&old, &new, &covers);
}

#[test]
fn deleted_block_and_backward_seek() {
    let old = bytes(5, 100_000);
    let mut new = old[..30_000].to_vec();
    new.extend_from_slice(&old[50_000..]);
    new.extend_from_slice(&old[10_000..12_000]); // copied again from earlier: a backward seek
    let covers = [
        Cover {
            new_start: 0,
            old_start: 0,
            add_len: 30_000,
            extra_len: 0,
        },
        Cover {
            new_start: 30_000,
            old_start: 50_000,
            add_len: 50_000,
            extra_len: 0,
        },
        Cover {
            new_start: 80_000,
            old_start: 10_000,
            add_len: 2_000,
            extra_len: 0,
        },
    ];
    check(&old, &new, &covers);
}

#[test]
fn empty_old() {
    let new = bytes(6, 10_000);
    check(&[], &new, &simple_covers(&[], &new));
}

#[test]
fn empty_new() {
    let old = bytes(7, 10_000);
    check(&old, &[], &[]);
}

#[test]
fn identical() {
    let old = bytes(8, 123_457);
    check(&old, &old, &simple_covers(&old, &old));
}

#[test]
fn x86_filter_round_trips_code_like_data() {
    // Dense E8/0F 8x/REX-LEA patterns at every alignment, also across segment boundaries.
    let mut old = bytes(9, 40_000);
    for i in (0..old.len() - 8).step_by(7) {
        old[i] = [0xE8, 0x0F, 0x48, 0xFF][i % 4];
        old[i + 1] = [0x10, 0x85, 0x8D, 0x15][i % 4];
        old[i + 2] = [0x00, 0x05, 0x05, 0x00][i % 4];
    }
    let mut new = old.clone();
    new.rotate_left(1234);
    check(&old, &new, &simple_covers(&old, &new));
}

#[test]
fn full_method_ignores_base() {
    let new = bytes(10, 30_000);
    for codec in [Codec::Zstd, Codec::Lzma2] {
        let mut h = PatchHeader::new(Method::Full, codec, Filter::X86, b"whatever", &new);
        h.window_log = 16;
        let mut filtered = new.clone();
        ota_formats::patch::filter::encode(Filter::X86, &mut filtered, 0);
        let p = assemble(&h, &filtered);
        assert_eq!(apply_vec(b"some other base", &p).unwrap(), new);
    }
}

#[test]
fn stats_report_work_done() {
    let old = bytes(11, 50_000);
    let new = bytes(12, 50_000);
    let p = diff_patch(
        &old,
        &new,
        &simple_covers(&old, &new),
        Codec::Zstd,
        Filter::None,
        12,
    );
    let mut out = Vec::new();
    let s = ota_formats::patch::apply(std::io::Cursor::new(&old), &p[..], &mut out).unwrap();
    assert_eq!(s.result_len, 50_000);
    assert_eq!(s.base_copied, 50_000);
    assert!(s.blocks >= 12, "4 KiB blocks expected, got {}", s.blocks);
    assert!(s.peak_block_bytes <= 4096 + 24 * 256);
}

#[test]
fn x86_remap_filter_reads_the_base_through_the_address_map() {
    use ota_formats::patch::filter::{encode_remapped, AddressMap};
    // A call at 100 targeting 5000 in the old image; in the new one the target moved to 5100.
    let mut old = bytes(50, 20_000);
    old[100] = 0xE8;
    old[101..105].copy_from_slice(&(5000u32 - 105).to_le_bytes());
    let mut new = old.clone();
    new.splice(4000..4000, bytes(51, 100));
    new[101..105].copy_from_slice(&(5100u32 - 105).to_le_bytes());
    let map = AddressMap::new(vec![(0, 0), (4000, 100)]);
    assert_eq!(map.shift(3999), 0);
    assert_eq!(map.shift(5000), 100);
    let mut remapped = old.clone();
    encode_remapped(Filter::X86Remap, &mut remapped, 0, &map);
    let mut fnew = new.clone();
    ota_formats::patch::filter::encode(Filter::X86, &mut fnew, 0);
    // The prediction is exact: the operand bytes need no difference.
    assert_eq!(remapped[101..105], fnew[101..105]);
    let covers = [
        Cover {
            new_start: 0,
            old_start: 0,
            add_len: 4000,
            extra_len: 100,
        },
        Cover {
            new_start: 4100,
            old_start: 4000,
            add_len: 16_000,
            extra_len: 0,
        },
    ];
    let mut data = Vec::new();
    map.write(&mut data);
    data.extend(ota_formats::patch::payload::encode(
        &remapped, &fnew, &covers, 21,
    ));
    for codec in [Codec::Zstd, Codec::Lzma2] {
        let mut h = PatchHeader::new(Method::Diff, codec, Filter::X86Remap, &old, &new);
        h.window_log = 16;
        assert_eq!(apply_vec(&old, &assemble(&h, &data)).unwrap(), new);
    }
}
