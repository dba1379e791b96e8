//! The x86/x86-64 filter: 32-bit relative operands made image-absolute, with optional
//! prediction of the base through an address map and, for pointers, load ranges.

use super::{Prediction, SEGMENT};

const MASK25: u32 = (1 << 25) - 1;

/// How the base is predicted (never used when decoding the result).
#[derive(Clone, Copy)]
pub(super) enum Remap<'a> {
    /// No prediction: the plain, invertible filter.
    None,
    /// Filter 2: targets looked up in the map at their position modulo 2^25.
    Narrow(&'a Prediction),
    /// Filter 6: targets looked up at their full position, then 8-aligned pointer words
    /// predicted through the load ranges.
    Wide(&'a Prediction),
}

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

pub(super) fn segment(s: &mut [u8], offset: u64, encode: bool, remap: Remap<'_>) {
    let mut i = 0;
    // Operand bytes a rejected site looked at must not change later, or the decoder (which
    // sees them after that change) would decide differently: no rewrite may start before.
    let mut barrier = 0;
    // Bytes rewritten as operands, which the pointer pass must leave alone.
    let mut touched = [0u64; SEGMENT / 64];
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
        let end_pos = offset.wrapping_add(end as u64);
        let p = (end_pos as u32) & MASK25;
        let mut w = if encode {
            sext25(v.wrapping_add(p) & MASK25)
        } else {
            sext25(v.wrapping_sub(p) & MASK25)
        };
        // Predict where the target is in the new image.
        let shift = match remap {
            Remap::None => 0,
            Remap::Narrow(m) => m.map.shift(w & MASK25),
            Remap::Wide(m) => m.map.shift_at(end_pos as i64 + i64::from(v as i32)),
        };
        w = sext25(w.wrapping_add(shift as u32) & MASK25);
        s[vpos..vpos + 4].copy_from_slice(&w.to_le_bytes());
        for b in vpos..vpos + 4 {
            touched[b / 64] |= 1 << (b % 64);
        }
        i = end;
    }
    if let Remap::Wide(m) = remap {
        if !m.loads.is_empty() {
            pointers(s, offset, m, &touched);
        }
    }
}

/// Every 8-aligned little-endian word outside code ranges that no operand rewrite touched
/// and whose value lies in a load range becomes `value + shift(target)` (wrapping):
/// pointers in relocation tables, symbol tables and relocated data follow the code and data
/// they designate.
fn pointers(s: &mut [u8], offset: u64, m: &Prediction, touched: &[u64; SEGMENT / 64]) {
    for i in (0..s.len().saturating_sub(7)).step_by(8) {
        if touched[i / 64] & (0xFFu64 << (i % 64)) != 0 || m.in_code(offset + i as u64) {
            continue;
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&s[i..i + 8]);
        let w = u64::from_le_bytes(b);
        let Some(target) = m.pointer_target(w) else {
            continue;
        };
        let shift = m.map.shift_at(target as i64);
        s[i..i + 8].copy_from_slice(&w.wrapping_add(shift as i64 as u64).to_le_bytes());
    }
}
