//! Method 3: diffs between images whose LZ4 legacy streams are expanded; the applier reads
//! the base's stream decompressed and recompresses the result's stream as it writes it.

mod patch_common;

use ota_formats::patch::expand::{lz4, Expansion, PackedRegion, Region};
use ota_formats::patch::payload::{encode_sparse, Cover};
use ota_formats::patch::{Codec, Filter, Method, PatchError, PatchHeader};
use patch_common::*;

/// Kernel-like content of 9 MiB (two LZ4 blocks) with a few changes between versions.
fn content(version: u8) -> Vec<u8> {
    let mut c: Vec<u8> = (0..(9u32 << 20) / 4)
        .flat_map(|i| (i / 3).to_le_bytes())
        .collect();
    for k in (0..c.len()).step_by(700_001) {
        c[k] = c[k].wrapping_add(version);
    }
    c
}

struct Case {
    old: Vec<u8>,
    new: Vec<u8>,
    table: Expansion,
    vold: Vec<u8>,
    vnew: Vec<u8>,
}

fn case() -> Case {
    let (c_old, c_new) = (content(1), content(2));
    let (p_old, p_new) = (
        lz4::encode(&c_old, 9).unwrap(),
        lz4::encode(&c_new, 9).unwrap(),
    );
    let mut old = bytes(1, 3000);
    old.extend(&p_old);
    old.extend(bytes(2, 1000));
    let mut new = bytes(1, 3100);
    new.extend(&p_new);
    new.extend(bytes(2, 1000));
    let r = |start: usize, packed: &[u8], expanded: &[u8]| Region {
        start: start as u64,
        packed_len: packed.len() as u64,
        expanded_len: expanded.len() as u64,
    };
    let table = Expansion {
        old: vec![r(3000, &p_old, &c_old)],
        new: vec![PackedRegion {
            region: r(3100, &p_new, &c_new),
            level: 9,
        }],
    };
    let vold = Expansion::expand_image(&old, &table.old, &[&c_old]);
    let vnew = Expansion::expand_image(&new, &[table.new[0].region], &[&c_new]);
    Case {
        old,
        new,
        table,
        vold,
        vnew,
    }
}

/// The uncompressed payload: the table, then the common prefix copied, 100 literal bytes,
/// and everything else copied at a shift of 100.
fn payload(c: &Case, table: &Expansion) -> Vec<u8> {
    let rest = c.vnew.len() as u64 - 3100;
    let covers = [
        Cover {
            new_start: 0,
            old_start: 0,
            add_len: 3000,
            extra_len: 100,
        },
        Cover {
            new_start: 3100,
            old_start: 3000,
            add_len: rest,
            extra_len: 0,
        },
    ];
    let mut data = Vec::new();
    table.write(&mut data);
    data.extend(encode_sparse(&c.vold, &c.vnew, &covers, 21));
    data
}

fn header(c: &Case) -> PatchHeader {
    let mut h = PatchHeader::new(
        Method::ExpandedSparseDiff,
        Codec::Zstd,
        Filter::None,
        &c.old,
        &c.new,
    );
    h.window_log = 20;
    h
}

fn patch(c: &Case, table: &Expansion) -> Vec<u8> {
    assemble(&header(c), &payload(c, table))
}

#[test]
fn expanded_patch_round_trips_and_is_small() {
    let c = case();
    let p = patch(&c, &c.table);
    assert_eq!(apply_vec(&c.old, &p).unwrap(), c.new);
    // A few changed bytes in 9 MiB of content: far below the changed LZ4 stream.
    assert!(p.len() < 20_000, "patch of {} bytes", p.len());
}

#[test]
fn bad_expansion_tables_are_refused() {
    let c = case();
    let refuse = |t: Expansion, what: &str| match apply_vec(&c.old, &patch(&c, &t)) {
        Err(PatchError::CorruptControl(m)) => assert!(m.contains(what), "{m}"),
        other => panic!("accepted a bad table ({what}): {other:?}"),
    };
    let mut t = c.table.clone();
    t.new[0].level = 13;
    refuse(t, "level");
    let mut t = c.table.clone();
    t.old[0].start = 10; // no LZ4 magic there
    refuse(t, "no LZ4 legacy stream");
    let mut t = c.table.clone();
    t.old[0].packed_len += 1; // the blocks end before the stated length
    refuse(t, "ends at");
    let mut t = c.table.clone();
    t.new[0].region.packed_len = c.new.len() as u64; // leaves the result
    refuse(t, "result region");
    // Recompressing at another level than the stream was made with gives other bytes: the
    // result hash catches them, or the output outgrows the result first.
    for level in [1, 12] {
        let mut t = c.table.clone();
        t.new[0].level = level;
        match apply_vec(&c.old, &patch(&c, &t)) {
            Err(PatchError::ResultMismatch { .. }) => {}
            Err(PatchError::CorruptControl(m)) => assert!(m.contains("exceeds"), "{m}"),
            other => panic!("level {level} accepted: {other:?}"),
        }
    }
}

/// Damaged payloads (a byte changed anywhere in the table, the runs or the records) are
/// refused or, where the damage happens to cancel out, give the exact result: never a panic,
/// never a wrong result.
#[test]
fn damaged_expanded_payloads_never_panic_or_give_a_wrong_result() {
    let c = case();
    let (data, h) = (payload(&c, &c.table), header(&c));
    let mut x = 7u64;
    let (mut refused, mut exact) = (0, 0);
    for k in 0..120 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Mostly the first 64 bytes (table, block header, records), sometimes anywhere.
        let at = if k % 4 == 0 {
            (x >> 20) as usize % data.len()
        } else {
            (x >> 20) as usize % 64
        };
        let mut bad = data.clone();
        bad[at] ^= 1 << ((x >> 8) % 8);
        match apply_vec(&c.old, &assemble(&h, &bad)) {
            Ok(out) => {
                assert_eq!(out, c.new, "damage at {at} gave a wrong result");
                exact += 1;
            }
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 100, "{refused} refused, {exact} exact");
}
