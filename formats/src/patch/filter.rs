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

use super::Filter;

/// Filter segment size in bytes (4 KiB). Offsets passed to [`encode`] / [`decode`] must be
/// multiples of it.
pub const SEGMENT: usize = 4096;

const MASK25: u32 = (1 << 25) - 1;

fn sext25(x: u32) -> u32 {
    if x & (1 << 24) != 0 {
        x | !MASK25
    } else {
        x & MASK25
    }
}

/// Where the 32-bit operand of an instruction starting at `i` is, and where it ends.
fn site(s: &[u8], i: usize) -> Option<(usize, usize)> {
    let b0 = s[i];
    let b1 = *s.get(i + 1)?;
    let (vpos, end) = match b0 {
        0xE8 | 0xE9 => (i + 1, i + 5),
        0x0F if b1 & 0xF0 == 0x80 => (i + 2, i + 6),
        0xFF if b1 == 0x15 || b1 == 0x25 => (i + 2, i + 6),
        0x8B | 0x8D if b1 & 0xC7 == 0x05 => (i + 2, i + 6),
        0x40..=0x4F
            if matches!(
                b1,
                0x03 | 0x0B
                    | 0x23
                    | 0x2B
                    | 0x33
                    | 0x39
                    | 0x3B
                    | 0x63
                    | 0x85
                    | 0x87
                    | 0x89
                    | 0x8B
                    | 0x8D
            ) && s.get(i + 2)? & 0xC7 == 0x05 =>
        {
            (i + 3, i + 7)
        }
        _ => return None,
    };
    if end <= s.len() {
        Some((vpos, end))
    } else {
        None
    }
}

fn x86_segment(s: &mut [u8], offset: u64, encode: bool, map: Option<&AddressMap>) {
    let mut i = 0;
    // Operand bytes a rejected site looked at must not change later, or the decoder (which
    // sees them after that change) would decide differently: no rewrite may start before.
    let mut barrier = 0;
    while i < s.len() {
        let Some((vpos, end)) = site(s, i) else {
            i += 1;
            continue;
        };
        if vpos < barrier {
            i += 1;
            continue;
        }
        let v = u32::from_le_bytes([s[vpos], s[vpos + 1], s[vpos + 2], s[vpos + 3]]);
        let top = v >> 24;
        if top != 0 && top != 0xFF {
            barrier = vpos + 4;
            i += 1;
            continue;
        }
        let p = (offset.wrapping_add(end as u64) as u32) & MASK25;
        let mut w = if encode {
            sext25(v.wrapping_add(p) & MASK25)
        } else {
            sext25(v.wrapping_sub(p) & MASK25)
        };
        if let Some(m) = map {
            // Predict where the target is in the new image.
            w = sext25(w.wrapping_add(m.shift(w & MASK25) as u32) & MASK25);
        }
        s[vpos..vpos + 4].copy_from_slice(&w.to_le_bytes());
        i = end;
    }
}

fn run(filter: Filter, buf: &mut [u8], offset: u64, encode: bool, map: Option<&AddressMap>) {
    debug_assert_eq!(
        offset % SEGMENT as u64,
        0,
        "filter offsets are segment-aligned"
    );
    if filter == Filter::None {
        return;
    }
    for (k, seg) in buf.chunks_mut(SEGMENT).enumerate() {
        let at = offset + (k * SEGMENT) as u64;
        match filter {
            Filter::Thumb | Filter::ThumbRemap => thumb_segment(seg, at, encode, map, false),
            Filter::ThumbRemapPointers => thumb_segment(seg, at, encode, map, true),
            _ => x86_segment(seg, at, encode, map),
        }
    }
}

/// Largest number of entries in an [`AddressMap`] (bounds the applier's memory: 512 KiB).
pub const MAX_MAP_ENTRIES: usize = 1 << 16;

/// Old image position -> shift to its new position, as a step function: the shift of the
/// last entry whose start is at or below a position (0 before the first entry). Only used
/// by [`Filter::X86Remap`], to predict the new value of absolute operands in the base.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressMap {
    starts: Vec<u32>,
    shifts: Vec<i32>,
}

impl AddressMap {
    /// A map from `(old_start, shift)` pairs (any order; positions taken modulo 2^25).
    /// Keeps at most [`MAX_MAP_ENTRIES`] entries, preferring those listed first.
    pub fn new(mut entries: Vec<(u32, i32)>) -> Self {
        entries.truncate(MAX_MAP_ENTRIES);
        for e in &mut entries {
            e.0 &= MASK25;
        }
        entries.sort_unstable();
        entries.dedup_by_key(|e| e.0);
        let mut m = AddressMap::default();
        for (s, d) in entries {
            if m.shifts.last() != Some(&d) {
                m.starts.push(s);
                m.shifts.push(d);
            }
        }
        m
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The shift for old position `x`.
    pub fn shift(&self, x: u32) -> i32 {
        match self.starts.partition_point(|&s| s <= x) {
            0 => 0,
            k => self.shifts[k - 1],
        }
    }

    /// Serialises as `n:varint` then `n` times `start_delta:varint shift:zigzag-varint`.
    pub fn write(&self, out: &mut Vec<u8>) {
        super::varint::put_u64(out, self.starts.len() as u64);
        let mut prev = 0u32;
        for (&s, &d) in self.starts.iter().zip(&self.shifts) {
            super::varint::put_u64(out, u64::from(s - prev));
            super::varint::put_i64(out, i64::from(d));
            prev = s;
        }
    }

    /// Builds a map from decoded entries, checking what [`AddressMap::write`] guarantees.
    pub fn from_parts(starts: Vec<u32>, shifts: Vec<i32>) -> Option<Self> {
        let ok = starts.len() == shifts.len()
            && starts.len() <= MAX_MAP_ENTRIES
            && starts.windows(2).all(|w| w[0] < w[1])
            && !matches!(starts.last(), Some(&s) if s > MASK25);
        ok.then_some(AddressMap { starts, shifts })
    }
}

/// [`encode`] with [`Filter::X86`] on a base image, then every rewritten operand moved by the
/// shift `map` gives for its target: the base as the applier of a [`Filter::X86Remap`]
/// patch reads it.
pub fn encode_remapped(filter: Filter, buf: &mut [u8], offset: u64, map: &AddressMap) {
    run(filter, buf, offset, true, Some(map));
}

const MASK23: u32 = (1 << 23) - 1;

/// ARM Thumb `BL` (two halfwords `11110xxx xxxxxxxx`, `11111xxx xxxxxxxx`, read
/// little-endian at even offsets): the 22-bit halfword offset becomes the absolute halfword
/// address (mod 2^22) of the target. Every match is rewritten and skipped, and the bits
/// that identify a match are kept, so decoding takes the same decisions.
///
/// With `pointers` and a map (the base of a [`Filter::ThumbRemapPointers`] patch), every
/// 4-aligned little-endian word `w` of the segment that no `BL` rewrite touched and that is
/// below 2^23 (a position in the image, bit 0 being the Thumb mark of code pointers) is
/// then predicted as `w + shift(w & !1)` (mod 2^32): a prediction only, never decoded.
fn thumb_segment(
    s: &mut [u8],
    offset: u64,
    encode: bool,
    map: Option<&AddressMap>,
    pointers: bool,
) {
    // Halfwords rewritten as part of a BL pair (a segment has SEGMENT / 2 of them).
    let mut touched = [0u64; SEGMENT / 128];
    let mut i = 0;
    while i + 4 <= s.len() {
        if s[i + 1] & 0xF8 != 0xF0 || s[i + 3] & 0xF8 != 0xF8 {
            i += 2;
            continue;
        }
        for h in [i / 2, i / 2 + 1] {
            if let Some(t) = touched.get_mut(h / 64) {
                *t |= 1 << (h % 64);
            }
        }
        let v = (u32::from(s[i + 1] & 7) << 19)
            | (u32::from(s[i]) << 11)
            | (u32::from(s[i + 3] & 7) << 8)
            | u32::from(s[i + 2]);
        let pc = ((offset + i as u64 + 4) as u32) & MASK23;
        let mut w = if encode {
            ((v << 1).wrapping_add(pc) & MASK23) >> 1
        } else {
            ((v << 1).wrapping_sub(pc) & MASK23) >> 1
        };
        if let Some(m) = map {
            let target = w << 1;
            w = (target.wrapping_add(m.shift(target) as u32) & MASK23) >> 1;
        }
        s[i + 1] = 0xF0 | ((w >> 19) & 7) as u8;
        s[i] = (w >> 11) as u8;
        s[i + 3] = 0xF8 | ((w >> 8) & 7) as u8;
        s[i + 2] = w as u8;
        i += 4;
    }
    let Some(m) = map.filter(|_| pointers) else {
        return;
    };
    let is_touched = |h: usize| {
        touched
            .get(h / 64)
            .is_some_and(|t| t & (1 << (h % 64)) != 0)
    };
    for i in (0..s.len().saturating_sub(3)).step_by(4) {
        if is_touched(i / 2) || is_touched(i / 2 + 1) {
            continue;
        }
        let w = u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        if w > MASK23 {
            continue;
        }
        let p = w.wrapping_add(m.shift(w & !1) as u32);
        s[i..i + 4].copy_from_slice(&p.to_le_bytes());
    }
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
        encode_remapped(Filter::ThumbRemapPointers, &mut with, 0, &map);
        encode_remapped(Filter::ThumbRemap, &mut without, 0, &map);
        assert!(u32::from_le_bytes([with[4], with[5], with[6], with[7]]) <= MASK23);
        assert_eq!(with[..8], without[..8]);
        assert_eq!(with[8..12], (0x1801u32 + 100).to_le_bytes());
        assert_eq!(without[8..12], 0x1801u32.to_le_bytes());
    }
}
