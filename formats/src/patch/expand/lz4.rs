//! LZ4 *legacy* streams (the format of `lz4 -l`, used for Linux kernel images): a 4-byte
//! magic, then blocks of `size:u32le` and an LZ4 block holding 8 MiB of data (the last block
//! may hold less). Blocks are independent, so one can be decoded without the others.
//!
//! Compression uses liblz4's HC compressor (through `lz4-sys`), whose output for a given
//! level is deterministic: recompressing the expanded data at the level the stream was made
//! with reproduces it byte for byte. Patch creation checks this before relying on it.

use std::os::raw::{c_char, c_int};

/// The magic number at the start of a legacy stream.
pub const MAGIC: [u8; 4] = [0x02, 0x21, 0x4C, 0x18];

/// Uncompressed size of every block but the last.
pub const BLOCK: usize = 8 << 20;

/// Largest compressed size of a block of `n` bytes (liblz4's `LZ4_COMPRESSBOUND`).
pub const fn bound(n: usize) -> usize {
    n + n / 255 + 16
}

/// Compresses one block (at most [`BLOCK`] bytes) with LZ4 HC at `level` into `dst`
/// (replacing its contents). `None` if liblz4 reports a failure.
pub fn compress_block(src: &[u8], level: u8, dst: &mut Vec<u8>) -> Option<()> {
    if src.len() > BLOCK {
        return None;
    }
    dst.clear();
    dst.resize(bound(src.len()), 0);
    // SAFETY: `src` is valid for reads of `src.len()` bytes and `dst` for writes of
    // `dst.len()` bytes; both lengths are at most bound(8 MiB) < i32::MAX. LZ4_compress_HC
    // reads only `srcSize` bytes of src and writes at most `dstCapacity` bytes to dst.
    let n = unsafe {
        lz4_sys::LZ4_compress_HC(
            src.as_ptr() as *const c_char,
            dst.as_mut_ptr() as *mut c_char,
            src.len() as c_int,
            dst.len() as c_int,
            c_int::from(level),
        )
    };
    if n <= 0 && !src.is_empty() {
        return None;
    }
    dst.truncate(n.max(0) as usize);
    Some(())
}

/// Decodes one block into `dst` (replacing its contents), which receives at most
/// [`BLOCK`] bytes. `None` if the block is malformed or decodes to more than that.
pub fn decompress_block(src: &[u8], dst: &mut Vec<u8>) -> Option<usize> {
    if src.len() > bound(BLOCK) {
        return None;
    }
    dst.clear();
    dst.resize(BLOCK, 0);
    // SAFETY: `src` is valid for reads of `src.len()` bytes and `dst` for writes of BLOCK
    // bytes, both below i32::MAX. LZ4_decompress_safe is liblz4's variant for untrusted
    // input: it never reads past `compressedSize` bytes of src nor writes past
    // `dstCapacity` bytes of dst, and returns a negative value on malformed input.
    let n = unsafe {
        lz4_sys::LZ4_decompress_safe(
            src.as_ptr() as *const c_char,
            dst.as_mut_ptr() as *mut c_char,
            src.len() as c_int,
            BLOCK as c_int,
        )
    };
    let n = usize::try_from(n).ok()?;
    dst.truncate(n);
    Some(n)
}

/// A legacy stream found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Image position of the magic.
    pub start: usize,
    /// Bytes from the magic to the end of the last block.
    pub packed_len: usize,
    /// The decoded data.
    pub expanded: Vec<u8>,
}

/// Decodes the legacy stream whose magic is at `image[start..]`: blocks are read while
/// their size field is plausible and they decode, up to and including the first block of
/// less than [`BLOCK`] bytes. `None` if not even one block decodes.
pub fn decode_at(image: &[u8], start: usize) -> Option<Found> {
    if image.get(start..start + 4)? != MAGIC {
        return None;
    }
    let mut pos = start + 4;
    let mut expanded = Vec::new();
    let mut block = Vec::new();
    while let Some(size) = image.get(pos..pos + 4) {
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        if size == 0 || size > bound(BLOCK) {
            break;
        }
        let Some(data) = image.get(pos + 4..pos + 4 + size) else {
            break;
        };
        let Some(n) = decompress_block(data, &mut block) else {
            break;
        };
        expanded.extend_from_slice(&block[..n]);
        pos += 4 + size;
        if n < BLOCK {
            break;
        }
    }
    (pos > start + 4).then(|| Found {
        start,
        packed_len: pos - start,
        expanded,
    })
}

/// The first `max` legacy streams in `image` that expand to at least `min_expanded` bytes.
pub fn scan(image: &[u8], min_expanded: usize, max: usize) -> Vec<Found> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 <= image.len() && out.len() < max {
        if image[i..i + 4] != MAGIC {
            i += 1;
            continue;
        }
        match decode_at(image, i) {
            Some(f) if f.expanded.len() >= min_expanded => {
                i = f.start + f.packed_len;
                out.push(f);
            }
            _ => i += 1,
        }
    }
    out
}

/// The legacy stream of `expanded` compressed with LZ4 HC at `level`.
pub fn encode(expanded: &[u8], level: u8) -> Option<Vec<u8>> {
    let mut out = MAGIC.to_vec();
    let mut block = Vec::new();
    for chunk in expanded.chunks(BLOCK) {
        compress_block(chunk, level, &mut block)?;
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_found_decoded_and_reproduced() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i / 7).to_le_bytes())
            .collect();
        let packed = encode(&data, 9).unwrap();
        assert!(packed.len() < data.len() / 2);
        let mut image = vec![0xAAu8; 1000];
        image.extend_from_slice(&packed);
        image.extend_from_slice(&[1, 2, 3, 4, 5]);
        let found = scan(&image, 1 << 16, 4);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].start, 1000);
        assert_eq!(found[0].packed_len, packed.len());
        assert_eq!(found[0].expanded, data);
        assert_eq!(encode(&found[0].expanded, 9).unwrap(), packed);
        // A magic followed by garbage is no stream; small streams are skipped.
        assert!(decode_at(&[2, 0x21, 0x4C, 0x18, 9, 0, 0, 0, 0xFF], 0).is_none());
        assert!(scan(&image, data.len() + 1, 4).is_empty());
        assert!(scan(&image, 1 << 16, 0).is_empty());
    }
}
