//! The decompressed payload of a [`Method::Diff`](super::Method::Diff) patch.
//!
//! The payload is a sequence of blocks, read until the result is complete:
//!
//! ```text
//! block   = n_records:varint diff_len:varint extra_len:varint record{n_records}
//!           diff[diff_len] extra[extra_len]
//! record  = add_len:varint extra_len:varint seek:zigzag-varint
//! ```
//!
//! For each record in order: move the base cursor by `seek`, emit `add_len` bytes that are
//! the base bytes at the cursor plus (wrapping, bytewise) the next `add_len` bytes of the
//! block's diff section, advance the cursor by `add_len`, then emit the next `extra_len`
//! bytes of the block's extra section. The record lengths must add up to the section
//! lengths; `diff_len` is at most `2^block_log` and `n_records` at most `2^(block_log-4)`.
//!
//! With [`Method::SparseDiff`](super::Method::SparseDiff) the diff section is sent as runs:
//!
//! ```text
//! block   = n_records:varint diff_len:varint extra_len:varint n_runs:varint
//!           record{n_records} run{n_runs} nonzero[sum of run.literal] extra[extra_len]
//! run     = zeros:varint literal:varint          (zeros + literal >= 1)
//! ```
//!
//! The runs, in order, lay out the `diff_len` bytes of the diff section: `zeros` zero bytes
//! then `literal` bytes taken in order from `nonzero`; their lengths sum to `diff_len`.

use super::varint::{put_i64, put_u64};

/// One control record (see the module documentation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Record {
    /// Bytes copied from the base with a difference added.
    pub add_len: u64,
    /// Literal bytes taken from the extra section.
    pub extra_len: u64,
    /// Base cursor move applied before the copy.
    pub seek: i64,
}

/// A cover in absolute terms, as a diff algorithm finds them: `new[new_start..]` is
/// `old[old_start..][..add_len]` plus a difference, then `extra_len` literal bytes. Covers
/// passed to [`encode`] must tile the new image in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cover {
    /// Start in the new image.
    pub new_start: u64,
    /// Start in the old image of the approximate copy.
    pub old_start: u64,
    /// Length of the approximate copy.
    pub add_len: u64,
    /// Literal bytes following the copy.
    pub extra_len: u64,
}

/// Largest number of records in one block of `2^block_log` bytes.
pub fn max_records(block_log: u8) -> u64 {
    1u64 << block_log.saturating_sub(4)
}

struct BlockBuilder {
    records: Vec<Record>,
    diff: Vec<u8>,
    extra: Vec<u8>,
    sparse: bool,
}

/// The runs of `diff` (zero bytes, then literal bytes) and the literal bytes.
fn sparse_runs(diff: &[u8]) -> (Vec<(u64, u64)>, Vec<u8>) {
    let (mut runs, mut lits) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < diff.len() {
        let z = diff[i..].iter().take_while(|&&b| b == 0).count();
        let l = diff[i + z..].iter().take_while(|&&b| b != 0).count();
        lits.extend_from_slice(&diff[i + z..i + z + l]);
        runs.push((z as u64, l as u64));
        i += z + l;
    }
    (runs, lits)
}

impl BlockBuilder {
    fn flush(&mut self, out: &mut Vec<u8>) {
        if self.records.is_empty() {
            return;
        }
        put_u64(out, self.records.len() as u64);
        put_u64(out, self.diff.len() as u64);
        put_u64(out, self.extra.len() as u64);
        let sparse = self.sparse.then(|| sparse_runs(&self.diff));
        if let Some((runs, _)) = &sparse {
            put_u64(out, runs.len() as u64);
        }
        for r in &self.records {
            put_u64(out, r.add_len);
            put_u64(out, r.extra_len);
            put_i64(out, r.seek);
        }
        match sparse {
            Some((runs, lits)) => {
                for (z, l) in runs {
                    put_u64(out, z);
                    put_u64(out, l);
                }
                out.extend_from_slice(&lits);
            }
            None => out.extend_from_slice(&self.diff),
        }
        out.extend_from_slice(&self.extra);
        self.records.clear();
        self.diff.clear();
        self.extra.clear();
    }
}

/// Serialises covers of `new` against `old` (both as diffed, i.e. filtered) into payload
/// blocks of at most `2^block_log` diff bytes and `2^block_log` extra bytes each.
///
/// # Panics
/// If the covers do not tile `new` or point outside `old` (a bug in the caller).
pub fn encode(old: &[u8], new: &[u8], covers: &[Cover], block_log: u8) -> Vec<u8> {
    encode_blocks(old, new, covers, block_log, false)
}

/// As [`encode`], in the block layout of [`Method::SparseDiff`](super::Method::SparseDiff)
/// (diff sections as zero / literal runs).
///
/// # Panics
/// If the covers do not tile `new` or point outside `old` (a bug in the caller).
pub fn encode_sparse(old: &[u8], new: &[u8], covers: &[Cover], block_log: u8) -> Vec<u8> {
    encode_blocks(old, new, covers, block_log, true)
}

fn encode_blocks(old: &[u8], new: &[u8], covers: &[Cover], block_log: u8, sparse: bool) -> Vec<u8> {
    let cap = 1usize << block_log;
    let max_rec = max_records(block_log) as usize;
    let mut out = Vec::new();
    let mut b = BlockBuilder {
        records: Vec::new(),
        diff: Vec::new(),
        extra: Vec::new(),
        sparse,
    };
    let mut cursor: i64 = 0;
    let mut expect_new = 0u64;
    for c in covers {
        assert_eq!(c.new_start, expect_new, "covers must tile the new image");
        expect_new += c.add_len + c.extra_len;
        let (mut ns, mut os) = (c.new_start as usize, c.old_start as usize);
        let (mut add, mut extra) = (c.add_len as usize, c.extra_len as usize);
        while add > 0 || extra > 0 {
            if b.records.len() >= max_rec || b.diff.len() >= cap || b.extra.len() >= cap {
                b.flush(&mut out);
            }
            let a = add.min(cap - b.diff.len());
            let e = if a == add {
                extra.min(cap - b.extra.len())
            } else {
                0
            };
            let seek = if a > 0 { os as i64 - cursor } else { 0 };
            b.records.push(Record {
                add_len: a as u64,
                extra_len: e as u64,
                seek,
            });
            b.diff.extend(
                new[ns..ns + a]
                    .iter()
                    .zip(&old[os..os + a])
                    .map(|(n, o)| n.wrapping_sub(*o)),
            );
            if a > 0 {
                cursor = (os + a) as i64;
            }
            ns += a;
            os += a;
            b.extra.extend_from_slice(&new[ns..ns + e]);
            ns += e;
            add -= a;
            extra -= e;
        }
    }
    assert_eq!(
        expect_new,
        new.len() as u64,
        "covers must tile the new image"
    );
    b.flush(&mut out);
    out
}
