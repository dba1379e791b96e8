//! The ARM Thumb `BL` filter, with optional prediction through an address map.

use super::{AddressMap, SEGMENT};

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
///
/// [`Filter::ThumbRemapPointers`]: super::Filter::ThumbRemapPointers
pub(super) fn segment(
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

#[cfg(test)]
pub(super) const MASK: u32 = MASK23;
