//! Reversible machine-code filters applied to both images before diffing.
//!
//! Relative branch targets and RIP-relative operands change whenever code between an
//! instruction and its target moves, although the target itself did not. Rewriting those
//! 32-bit operands as absolute positions (in the image) turns many such changes into equal
//! bytes, which a diff then encodes for almost nothing. The transform is its own design,
//! in the spirit of the BCJ filters of xz:
//!
//! * The image is cut into [`SEGMENT`]-byte segments at multiples of `SEGMENT`; each is
//!   filtered on its own (an operand never crosses a segment end), so any segment can be
//!   filtered or unfiltered without reading the others. This is what lets the applier read
//!   the filtered base at random offsets.
//! * Within a segment, a scan from its start recognises an operand site at position `i`:
//!   `E8`/`E9` (call/jmp rel32: operand at `i+1`, instruction end `i+5`), `0F 80..8F`
//!   (jcc rel32: `i+2`, `i+6`), `FF 15`/`FF 25` (call/jmp `[rip+d]`: `i+2`, `i+6`),
//!   `8B`/`8D` with a ModRM of mod=00 rm=101 (`i+2`, `i+6`), and a REX prefix `40..4F`
//!   followed by one of `03 0B 23 2B 33 39 3B 63 85 87 89 8B 8D` and such a ModRM (`i+3`,
//!   `i+7`). The operand `v` (u32, little-endian) is rewritten only if its top byte is
//!   `00` or `FF` (a displacement within ±16 MiB) and the operand does not start before
//!   the end of the operand of the last *rejected* site (so that no byte a decision looked
//!   at is rewritten later); the scan then continues at the instruction end, otherwise at
//!   `i+1`.
//! * Encoding maps `v` to `sext25((v + p) mod 2^25)` and decoding maps back with
//!   `sext25((v - p) mod 2^25)`, where `p` is the image offset of the instruction end and
//!   `sext25` copies bit 24 into bits 25..31. Both maps keep the "top byte is 00 or FF"
//!   property, so the decoder takes the same decisions as the encoder.
//!
//! The remap filters read the *base* through a prediction of the new image (see [`map`]):
//! never decoded, so they need not be invertible.

mod map;
mod thumb;
mod x86;

pub use map::{AddressMap, LoadRange, Prediction, MAX_LOAD_RANGES, MAX_MAP_ENTRIES};

use super::Filter;
use x86::Remap;

/// Filter segment size in bytes (4 KiB). Offsets passed to [`encode`] / [`decode`] must be
/// multiples of it.
pub const SEGMENT: usize = 4096;

fn run(filter: Filter, buf: &mut [u8], offset: u64, encode: bool, pred: Option<&Prediction>) {
    debug_assert_eq!(
        offset % SEGMENT as u64,
        0,
        "filter offsets are segment-aligned"
    );
    if filter == Filter::None {
        return;
    }
    let remap = match (filter, pred) {
        (_, None) => Remap::None,
        (Filter::X86RemapPointers, Some(p)) => Remap::Wide(p),
        (_, Some(p)) => Remap::Narrow(p),
    };
    let map = pred.map(|p| &p.map);
    for (k, seg) in buf.chunks_mut(SEGMENT).enumerate() {
        let at = offset + (k * SEGMENT) as u64;
        match filter {
            Filter::Thumb | Filter::ThumbRemap => thumb::segment(seg, at, encode, map, false),
            Filter::ThumbRemapPointers => thumb::segment(seg, at, encode, map, true),
            _ => x86::segment(seg, at, encode, remap),
        }
    }
}

/// [`encode`] on a base image, then the remap filter's prediction of the new image (see
/// [`Prediction`]): the base as the applier of a remap patch reads it.
pub fn encode_remapped(filter: Filter, buf: &mut [u8], offset: u64, pred: &Prediction) {
    run(filter, buf, offset, true, Some(pred));
}

/// Filters `buf`, the image bytes starting at `offset` (a multiple of [`SEGMENT`]). `buf`
/// must hold whole segments, except that the last one may be the image's partial last one.
pub fn encode(filter: Filter, buf: &mut [u8], offset: u64) {
    run(filter, buf, offset, true, None);
}

/// Undoes [`encode`] on the same range.
pub fn decode(filter: Filter, buf: &mut [u8], offset: u64) {
    run(filter, buf, offset, false, None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_changes_calls() {
        let mut img = Vec::new();
        let mut x: u32 = 12345;
        for _ in 0..40_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            img.push((x >> 16) as u8);
        }
        // A call at 100 to 0x1000 relative.
        img[100] = 0xE8;
        img[101..105].copy_from_slice(&0x1000u32.to_le_bytes());
        let orig = img.clone();
        encode(Filter::X86, &mut img, 0);
        assert_ne!(img, orig);
        assert_eq!(
            u32::from_le_bytes([img[101], img[102], img[103], img[104]]),
            0x1000 + 105
        );
        decode(Filter::X86, &mut img, 0);
        assert_eq!(img, orig);
    }

    #[test]
    fn rejected_operand_overlapping_a_later_site_round_trips() {
        // E9 whose operand (E8 93 FB FD) is rejected, then an E8 inside it that qualifies.
        let orig = vec![
            0xE9, 0xE8, 0x93, 0xFB, 0xFD, 0xFF, 0x48, 0x8D, 0x05, 1, 2, 0, 0,
        ];
        for off in [0u64, 4096, 176_128] {
            let mut s = orig.clone();
            encode(Filter::X86, &mut s, off);
            decode(Filter::X86, &mut s, off);
            assert_eq!(s, orig);
        }
        // Every short pattern of interesting bytes round-trips.
        let alphabet = [0xE8u8, 0xE9, 0x0F, 0x85, 0x48, 0x8D, 0x05, 0x00, 0xFF, 0x15];
        short_patterns_round_trip(Filter::X86, &alphabet, 16, 8192, 7);
    }

    /// 20,000 pseudo-random strings of `len` bytes drawn from `alphabet` (bytes that look like
    /// branch opcodes) survive encode + decode unchanged.
    fn short_patterns_round_trip(filter: Filter, alphabet: &[u8], len: usize, pos: u64, seed: u64) {
        let mut x = seed;
        for _ in 0..20_000 {
            let s0: Vec<u8> = (0..len)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    alphabet[(x >> 33) as usize % alphabet.len()]
                })
                .collect();
            let mut s = s0.clone();
            encode(filter, &mut s, pos);
            decode(filter, &mut s, pos);
            assert_eq!(s, s0, "{filter:?}");
        }
    }

    #[test]
    fn thumb_round_trips() {
        let alphabet = [0xF0u8, 0xF7, 0xF8, 0xFF, 0x00, 0x12, 0xFE];
        short_patterns_round_trip(Filter::Thumb, &alphabet, 24, 4096, 99);
    }

    #[test]
    fn same_target_gives_same_bytes() {
        // Two calls from different places to the same absolute target encode identically.
        let mut a = vec![0x90u8; 2 * SEGMENT];
        a[10] = 0xE8;
        a[11..15].copy_from_slice(&(500u32 - 15).to_le_bytes());
        a[5000] = 0xE8;
        a[5001..5005].copy_from_slice(&(500u32.wrapping_sub(5005)).to_le_bytes());
        encode(Filter::X86, &mut a, 0);
        assert_eq!(a[11..15], a[5001..5005]);
    }

    #[test]
    fn pointer_prediction_skips_words_of_bl_pairs() {
        // A BL pair at offset 2 covers half of the words at 0 and 4; the word at 4 then reads
        // as a small value, but must not be "predicted"; the plain word at 8 must be.
        let mut s = vec![0u8; 16];
        s[2..6].copy_from_slice(&[0x10, 0xF0, 0x20, 0xF8]);
        s[8..12].copy_from_slice(&0x1801u32.to_le_bytes());
        let map = AddressMap::new(vec![(0, 100)]);
        let (mut with, mut without) = (s.clone(), s.clone());
        encode_remapped(
            Filter::ThumbRemapPointers,
            &mut with,
            0,
            &Prediction::from_map(map.clone()),
        );
        encode_remapped(
            Filter::ThumbRemap,
            &mut without,
            0,
            &Prediction::from_map(map),
        );
        assert!(u32::from_le_bytes([with[4], with[5], with[6], with[7]]) <= thumb::MASK);
        assert_eq!(with[..8], without[..8]);
        assert_eq!(with[8..12], (0x1801u32 + 100).to_le_bytes());
        assert_eq!(without[8..12], 0x1801u32.to_le_bytes());
    }
}
