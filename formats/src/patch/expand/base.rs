//! The base image as the diff of an expanded patch sees it: its LZ4 regions decompressed.

use super::lz4::{bound, decompress_block, BLOCK, MAGIC};
use super::Region;
use std::io::{Error, ErrorKind, Read, Seek, SeekFrom};

enum Piece {
    /// Bytes taken as they are from `real_start` of the real image.
    Plain {
        vstart: u64,
        real_start: u64,
        len: u64,
    },
    /// A decompressed LZ4 legacy stream: block positions (after the size field) and sizes.
    Lz4 {
        vstart: u64,
        len: u64,
        blocks: Vec<(u64, u32)>,
    },
}

impl Piece {
    fn range(&self) -> (u64, u64) {
        match self {
            Piece::Plain { vstart, len, .. } | Piece::Lz4 { vstart, len, .. } => (*vstart, *len),
        }
    }
}

/// A `Read + Seek` view of a base image whose regions read decompressed. It holds one
/// decoded block (8 MiB) and its compressed form at a time, whatever the image size.
pub struct ExpandedBase<R> {
    inner: R,
    pieces: Vec<Piece>,
    len: u64,
    pos: u64,
    cached: Option<(usize, usize)>,
    block: Vec<u8>,
    packed: Vec<u8>,
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidData, msg)
}

fn read_u32<R: Read + Seek>(r: &mut R, at: u64) -> std::io::Result<[u8; 4]> {
    let mut b = [0u8; 4];
    r.seek(SeekFrom::Start(at))?;
    r.read_exact(&mut b)?;
    Ok(b)
}

impl<R: Read + Seek> ExpandedBase<R> {
    /// The view of `inner` (a real image of `real_len` bytes) with `regions` (checked
    /// with `Expansion::validate`) expanded. Reads each region's block headers; a region
    /// that is not an LZ4 legacy stream of the stated sizes is an `InvalidData` error.
    pub fn new(mut inner: R, real_len: u64, regions: &[Region]) -> std::io::Result<Self> {
        let mut pieces = Vec::new();
        let (mut real, mut virt) = (0u64, 0u64);
        for r in regions {
            pieces.push(Piece::Plain {
                vstart: virt,
                real_start: real,
                len: r.start - real,
            });
            virt += r.start - real;
            if read_u32(&mut inner, r.start)? != MAGIC {
                return Err(invalid(format!(
                    "no LZ4 legacy stream at base offset {}",
                    r.start
                )));
            }
            let end = r.start + r.packed_len;
            let mut at = r.start + 4;
            let mut blocks = Vec::new();
            for _ in 0..r.expanded_len.div_ceil(BLOCK as u64) {
                let size = u32::from_le_bytes(read_u32(&mut inner, at)?);
                if size == 0 || size as usize > bound(BLOCK) || at + 4 + u64::from(size) > end {
                    return Err(invalid(format!(
                        "LZ4 block header at base offset {at} out of range"
                    )));
                }
                blocks.push((at + 4, size));
                at += 4 + u64::from(size);
            }
            if at != end {
                return Err(invalid(format!(
                    "LZ4 stream at base offset {} ends at {at}, not {end}",
                    r.start
                )));
            }
            pieces.push(Piece::Lz4 {
                vstart: virt,
                len: r.expanded_len,
                blocks,
            });
            virt += r.expanded_len;
            real = end;
        }
        pieces.push(Piece::Plain {
            vstart: virt,
            real_start: real,
            len: real_len.saturating_sub(real),
        });
        virt += real_len.saturating_sub(real);
        Ok(ExpandedBase {
            inner,
            pieces,
            len: virt,
            pos: 0,
            cached: None,
            block: Vec::new(),
            packed: Vec::new(),
        })
    }
}

impl<R: Read + Seek> Read for ExpandedBase<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(k) = self.pieces.iter().position(|p| {
            let (s, l) = p.range();
            self.pos >= s && self.pos < s + l
        }) else {
            return Ok(0);
        };
        let n = match &self.pieces[k] {
            Piece::Plain {
                vstart,
                real_start,
                len,
            } => {
                let within = self.pos - vstart;
                let n = buf.len().min((len - within) as usize);
                self.inner.seek(SeekFrom::Start(real_start + within))?;
                self.inner.read(&mut buf[..n])?
            }
            Piece::Lz4 {
                vstart,
                len,
                blocks,
            } => {
                let within = self.pos - vstart;
                let b = (within / BLOCK as u64) as usize;
                if self.cached != Some((k, b)) {
                    let (at, size) = blocks[b];
                    self.packed.resize(size as usize, 0);
                    self.inner.seek(SeekFrom::Start(at))?;
                    self.inner.read_exact(&mut self.packed)?;
                    let expect = (len - b as u64 * BLOCK as u64).min(BLOCK as u64) as usize;
                    match decompress_block(&self.packed, &mut self.block) {
                        Some(n) if n == expect => {}
                        _ => {
                            self.cached = None;
                            return Err(invalid(format!(
                                "LZ4 block {b} of the base stream at {at} does not decode to {expect} bytes"
                            )));
                        }
                    }
                    self.cached = Some((k, b));
                }
                let off = (within % BLOCK as u64) as usize;
                let n = buf.len().min(self.block.len() - off);
                buf[..n].copy_from_slice(&self.block[off..off + n]);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for ExpandedBase<R> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            Error::new(ErrorKind::InvalidInput, "seek before the start of the base")
        })?;
        Ok(self.pos)
    }
}
