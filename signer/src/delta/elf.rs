//! The load segments of an ELF64 little-endian image, which tell the x86 remap-pointers
//! filter which 64-bit values are addresses in the image.

use ota_formats::patch::filter::{LoadRange, MAX_LOAD_RANGES};

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The `PT_LOAD` segments of `image` as load ranges (address, memory size, file offset);
/// empty when `image` is not an ELF64 little-endian file or its program headers are
/// malformed. At most [`MAX_LOAD_RANGES`] are returned.
pub fn load_ranges(image: &[u8]) -> Vec<LoadRange> {
    parse(image).unwrap_or_default()
}

fn parse(b: &[u8]) -> Option<Vec<LoadRange>> {
    // Magic, 64-bit class, little-endian data.
    if b.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let phoff = usize::try_from(u64_at(b, 0x20)?).ok()?;
    let phentsize = usize::from(u16_at(b, 0x36)?);
    let phnum = usize::from(u16_at(b, 0x38)?);
    if phentsize < 0x38 {
        return None;
    }
    let mut out = Vec::new();
    for k in 0..phnum {
        let ph = phoff.checked_add(k.checked_mul(phentsize)?)?;
        if u32_at(b, ph)? != 1 {
            continue; // not PT_LOAD
        }
        let flags = u32_at(b, ph + 4)?;
        let offset = u64_at(b, ph + 8)?;
        let vaddr = u64_at(b, ph + 16)?;
        let memsz = u64_at(b, ph + 40)?;
        if memsz == 0 || out.len() == MAX_LOAD_RANGES {
            continue;
        }
        out.push(LoadRange {
            vaddr,
            len: memsz,
            offset,
            code: flags & 1 != 0, // PF_X
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_load_segments_and_refuses_other_files() {
        let mut elf = vec![0u8; 0x40 + 2 * 0x38];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        elf[0x38..0x3A].copy_from_slice(&2u16.to_le_bytes());
        // One PT_LOAD (offset 0x1000, vaddr 0x401000, memsz 0x2000), one PT_NOTE.
        let ph = 0x40;
        elf[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes());
        elf[ph + 8..ph + 16].copy_from_slice(&0x1000u64.to_le_bytes());
        elf[ph + 16..ph + 24].copy_from_slice(&0x40_1000u64.to_le_bytes());
        elf[ph + 40..ph + 48].copy_from_slice(&0x2000u64.to_le_bytes());
        elf[ph + 0x38..ph + 0x3C].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(
            load_ranges(&elf),
            vec![LoadRange {
                vaddr: 0x40_1000,
                len: 0x2000,
                offset: 0x1000,
                code: false,
            }]
        );
        // Program headers cut off: nothing, no panic.
        assert!(load_ranges(&elf[..0x50]).is_empty());
        assert!(load_ranges(b"not an elf file at all").is_empty());
    }
}
