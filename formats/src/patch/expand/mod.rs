//! Expanded regions: compressed streams inside an image (an LZ4-compressed kernel inside a
//! root filesystem, say) that a patch diffs in their decompressed form.
//!
//! A compressed stream changes almost entirely when a little of its content changes, so a
//! diff of the compressed bytes is nearly as large as the stream. With
//! [`Method::ExpandedSparseDiff`](super::Method::ExpandedSparseDiff) the diff runs between
//! *virtual* images in which each listed region is replaced by its decompressed content:
//! the applier reads the base's regions decompressed ([`ExpandedBase`]) and compresses the
//! result's regions again as it writes them ([`Repacker`]). Only streams that recompress
//! byte for byte are listed for the result; the result's sha256 is checked as always.

mod base;
#[allow(unsafe_code)]
pub mod lz4;
mod repack;

pub use base::ExpandedBase;
pub use repack::Repacker;

use super::varint::put_u64;

/// Largest number of regions per image in a patch.
pub const MAX_REGIONS: usize = 4;

/// A compressed stream in a (real) image: `packed_len` bytes at `start` that expand to
/// `expanded_len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Image position of the stream (its magic).
    pub start: u64,
    /// Length of the stream in the image.
    pub packed_len: u64,
    /// Length of the decompressed content.
    pub expanded_len: u64,
}

/// A result region and the LZ4 HC level that reproduces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedRegion {
    /// Where the stream is.
    pub region: Region,
    /// LZ4 HC compression level (1..=12).
    pub level: u8,
}

/// The expanded regions of a patch: in the base (any decodable LZ4 legacy stream) and in
/// the result (streams that recompress exactly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// Base regions, in image order, not overlapping.
    pub old: Vec<Region>,
    /// Result regions, in image order, not overlapping.
    pub new: Vec<PackedRegion>,
}

/// The length of an image of `real_len` bytes once `regions` are expanded.
pub fn virtual_len(real_len: u64, regions: impl Iterator<Item = Region>) -> u64 {
    regions.fold(real_len, |n, r| {
        n.saturating_sub(r.packed_len)
            .saturating_add(r.expanded_len)
    })
}

/// Why an expansion table is unusable.
fn check(regions: &[Region], real_len: u64) -> Result<(), String> {
    if regions.len() > MAX_REGIONS {
        return Err(format!("{} regions (limit {MAX_REGIONS})", regions.len()));
    }
    let mut end = 0u64;
    for r in regions {
        let r_end = r
            .start
            .checked_add(r.packed_len)
            .ok_or("region overflows")?;
        if r.start < end || r_end > real_len {
            return Err(format!(
                "region at {} of {} bytes overlaps another or leaves the image ({real_len} bytes)",
                r.start, r.packed_len
            ));
        }
        if r.packed_len < 8 || r.expanded_len == 0 || r.expanded_len > u64::from(u32::MAX) {
            return Err(format!(
                "region at {} has sizes {}/{} out of range",
                r.start, r.packed_len, r.expanded_len
            ));
        }
        end = r_end;
    }
    Ok(())
}

impl Expansion {
    /// Checks the table against the real image lengths: at most [`MAX_REGIONS`] each, in
    /// order, inside the image, sizes in range and levels 1..=12.
    pub fn validate(&self, base_len: u64, result_len: u64) -> Result<(), String> {
        check(&self.old, base_len).map_err(|e| format!("base {e}"))?;
        let new: Vec<Region> = self.new.iter().map(|p| p.region).collect();
        check(&new, result_len).map_err(|e| format!("result {e}"))?;
        match self.new.iter().find(|p| !(1..=12).contains(&p.level)) {
            Some(p) => Err(format!("LZ4 level {} (must be 1..=12)", p.level)),
            None => Ok(()),
        }
    }

    /// Serialises as `n_old:varint {start packed_len expanded_len}{n_old}` then
    /// `n_new:varint {start packed_len expanded_len level}{n_new}`, all varints.
    pub fn write(&self, out: &mut Vec<u8>) {
        let region = |out: &mut Vec<u8>, r: &Region| {
            put_u64(out, r.start);
            put_u64(out, r.packed_len);
            put_u64(out, r.expanded_len);
        };
        put_u64(out, self.old.len() as u64);
        for r in &self.old {
            region(out, r);
        }
        put_u64(out, self.new.len() as u64);
        for p in &self.new {
            region(out, &p.region);
            put_u64(out, u64::from(p.level));
        }
    }

    /// The image `real` with `regions` replaced by their expanded content (`expanded[k]`
    /// for `regions[k]`), as the diff sees it.
    pub fn expand_image(real: &[u8], regions: &[Region], expanded: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::with_capacity(real.len());
        let mut at = 0usize;
        for (r, e) in regions.iter().zip(expanded) {
            out.extend_from_slice(&real[at..r.start as usize]);
            out.extend_from_slice(e);
            at = (r.start + r.packed_len) as usize;
        }
        out.extend_from_slice(&real[at..]);
        out
    }
}
