//! Compresses the result's expanded regions again while the result is written.

use super::lz4::{compress_block, BLOCK, MAGIC};
use super::PackedRegion;
use crate::patch::PatchError;

/// Turns the virtual result (regions expanded) back into the real one, in a stream: bytes
/// outside the regions pass through; a region's bytes are gathered one 8 MiB block at a
/// time and written as an LZ4 legacy stream at the region's level.
pub struct Repacker {
    /// Virtual start, expanded length and level of each region.
    regions: Vec<(u64, u64, u8)>,
    next: usize,
    pos: u64,
    buf: Vec<u8>,
    out: Vec<u8>,
}

impl Repacker {
    /// A repacker for `regions` (in image order, as `Expansion::validate` checks).
    pub fn new(regions: &[PackedRegion]) -> Self {
        let mut grow: i128 = 0;
        let regions = regions
            .iter()
            .map(|p| {
                let r = p.region;
                let vstart = (i128::from(r.start) + grow).max(0) as u64;
                grow += i128::from(r.expanded_len) - i128::from(r.packed_len);
                (vstart, r.expanded_len, p.level)
            })
            .collect();
        Repacker {
            regions,
            next: 0,
            pos: 0,
            buf: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Takes the next virtual result bytes and hands the real ones to `emit`.
    pub fn push(
        &mut self,
        mut data: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> Result<(), PatchError>,
    ) -> Result<(), PatchError> {
        while !data.is_empty() {
            let Some(&(vs, len, level)) = self.regions.get(self.next) else {
                self.pos += data.len() as u64;
                return emit(data);
            };
            if self.pos < vs {
                let n = data.len().min((vs - self.pos) as usize);
                emit(&data[..n])?;
                self.pos += n as u64;
                data = &data[n..];
                continue;
            }
            if self.pos == vs {
                emit(&MAGIC)?;
            }
            let end = vs + len;
            let n = data
                .len()
                .min((end - self.pos) as usize)
                .min(BLOCK - self.buf.len());
            self.buf.extend_from_slice(&data[..n]);
            self.pos += n as u64;
            data = &data[n..];
            if self.buf.len() == BLOCK || self.pos == end {
                compress_block(&self.buf, level, &mut self.out).ok_or_else(|| {
                    PatchError::Io(std::io::Error::other(
                        "LZ4 recompression of a region failed",
                    ))
                })?;
                emit(&(self.out.len() as u32).to_le_bytes())?;
                emit(&self.out)?;
                self.buf.clear();
            }
            if self.pos == end {
                self.next += 1;
            }
        }
        Ok(())
    }
}
