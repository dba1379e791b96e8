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
    use ota_formats::patch::filter::{encode_remapped, AddressMap, Prediction};
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
    encode_remapped(
        Filter::X86Remap,
        &mut remapped,
        0,
        &Prediction::from_map(map.clone()),
    );
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

/// Filter 6: a 64-bit pointer in a data range and a call whose target lies beyond 2^25
/// (in an image position space the narrow filter 2 cannot look up) are both predicted;
/// a pointer-looking word inside a code range is left alone.
#[test]
fn x86_remap_pointers_predicts_pointers_and_wide_targets() {
    use ota_formats::patch::filter::{encode_remapped, AddressMap, LoadRange, Prediction};
    use ota_formats::patch::PatchError;
    // Image positions are offset by 2^25 through `offset` so the lookups need full positions.
    let base_pos: u64 = 1 << 25;
    let mut old = bytes(70, 40_000);
    // Code range 0..8192: a call at 100 to position 30_000 (relative to the image offset).
    old[100] = 0xE8;
    old[101..105].copy_from_slice(&(30_000u32 - 105).to_le_bytes());
    // A code word that looks like a pointer, at 8-aligned 4096.
    old[4096..4104].copy_from_slice(&(0x40_0000u64 + 30_000).to_le_bytes());
    // Data range: a pointer at 16_384 (8-aligned) to address 0x400000 + 30_000.
    old[16_384..16_392].copy_from_slice(&(0x40_0000u64 + 30_000).to_le_bytes());
    let mut new = old.clone();
    new.splice(20_000..20_000, bytes(71, 64));
    new[101..105].copy_from_slice(&(30_064u32 - 105).to_le_bytes());
    new[16_384..16_392].copy_from_slice(&(0x40_0000u64 + 30_064).to_le_bytes());
    let map = AddressMap::new(vec![(base_pos as u32, 0), (base_pos as u32 + 20_000, 64)]);
    let pred = Prediction {
        map,
        loads: vec![
            LoadRange {
                vaddr: 0x40_0000,
                len: 40_000,
                offset: base_pos,
                code: false,
            },
            LoadRange {
                vaddr: 0x80_0000,
                len: 8192,
                offset: base_pos,
                code: true,
            },
        ],
    };
    let (mut remapped, mut fnew) = (old.clone(), new.clone());
    encode_remapped(Filter::X86RemapPointers, &mut remapped, base_pos, &pred);
    ota_formats::patch::filter::encode(Filter::X86, &mut fnew, base_pos);
    assert_eq!(remapped[101..105], fnew[101..105], "wide call target");
    assert_eq!(remapped[16_384..16_392], fnew[16_384..16_392], "pointer");
    assert_eq!(remapped[4096..4104], old[4096..4104], "code is not scanned");
    // Narrow filter 2 looks the target up modulo 2^25 and misses the move.
    let mut narrow = old.clone();
    encode_remapped(Filter::X86Remap, &mut narrow, base_pos, &pred);
    assert_ne!(narrow[101..105], fnew[101..105]);

    // The patch round trip at offset 0 (patches start at image position 0).
    let map0 = AddressMap::new(vec![(0, 0), (20_000, 64)]);
    let pred0 = Prediction {
        map: map0,
        loads: vec![LoadRange {
            vaddr: 0x40_0000,
            len: 40_000,
            offset: 0,
            code: false,
        }],
    };
    let mut remapped = old.clone();
    encode_remapped(Filter::X86RemapPointers, &mut remapped, 0, &pred0);
    let mut fnew = new.clone();
    ota_formats::patch::filter::encode(Filter::X86, &mut fnew, 0);
    let covers = [
        Cover {
            new_start: 0,
            old_start: 0,
            add_len: 20_000,
            extra_len: 64,
        },
        Cover {
            new_start: 20_064,
            old_start: 20_000,
            add_len: 20_000,
            extra_len: 0,
        },
    ];
    let payload_with = |code_flag: u64| {
        let mut data = Vec::new();
        pred0.map.write(&mut data);
        let mut loads = Vec::new();
        pred0.write_loads(&mut loads);
        // The code flag is the last varint of the single range.
        *loads.last_mut().unwrap() = code_flag as u8;
        data.extend(loads);
        data.extend(ota_formats::patch::payload::encode(
            &remapped, &fnew, &covers, 21,
        ));
        data
    };
    let mut h = PatchHeader::new(
        Method::Diff,
        Codec::Zstd,
        Filter::X86RemapPointers,
        &old,
        &new,
    );
    h.window_log = 16;
    assert_eq!(
        apply_vec(&old, &assemble(&h, &payload_with(0))).unwrap(),
        new
    );
    // The pointer was predicted exactly: no difference bytes there.
    let p = ota_formats::patch::payload::encode(&remapped, &fnew, &covers, 21);
    assert!(p.len() < 40_200);
    match apply_vec(&old, &assemble(&h, &payload_with(2))) {
        Err(PatchError::CorruptControl(m)) => assert!(m.contains("code flag"), "{m}"),
        other => panic!("bad code flag accepted: {other:?}"),
    }
}
