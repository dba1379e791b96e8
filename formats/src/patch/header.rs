//! The fixed 100-byte patch header.

use super::{PatchError, MAX_BLOCK_LOG, MAX_WINDOW_LOG, MIN_LOG};
use sha2::{Digest, Sha256};

/// First four bytes of every patch.
pub const MAGIC: [u8; 4] = *b"OTAD";
/// The format version this build writes and reads.
pub const VERSION: u8 = 1;
/// Size of the encoded header; the compressed payload follows it.
pub const HEADER_LEN: usize = 100;

/// How the payload describes the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// The payload is the whole result image (the base is not read).
    Full = 0,
    /// The payload is a sequence of copy-with-difference and literal records against the base
    /// (bsdiff-like control, diff and extra sections, see `payload`).
    Diff = 1,
    /// As [`Method::Diff`], with each block's diff section sent sparsely: runs of zero
    /// bytes and of literal difference bytes (see `payload`). Small firmware changes leave
    /// the diff section almost all zeros, which this encodes in a few bytes per change.
    SparseDiff = 2,
    /// As [`Method::SparseDiff`], between the images with their LZ4 legacy streams
    /// decompressed: the payload starts with an expansion table (see `expand`).
    ExpandedSparseDiff = 3,
    /// The payload is the result image compressed by zstd with the whole base as its
    /// reference prefix (zstd's `--patch-from`). The applier holds the base in memory, so
    /// the base may be at most `2^window_log` bytes.
    ZstdPrefix = 4,
}

impl Method {
    /// Whether the payload is a sequence of diff blocks against the base.
    pub fn is_diff(self) -> bool {
        matches!(
            self,
            Method::Diff | Method::SparseDiff | Method::ExpandedSparseDiff
        )
    }

    /// Whether applying reads the base (every method but [`Method::Full`]).
    pub fn reads_base(self) -> bool {
        self != Method::Full
    }

    /// Whether each block's diff section is sent as zero / literal runs.
    pub fn is_sparse(self) -> bool {
        matches!(self, Method::SparseDiff | Method::ExpandedSparseDiff)
    }
}

/// How the payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// One zstd frame; the decoder window is capped at `2^window_log`.
    Zstd = 1,
    /// Raw LZMA2 (no .xz container) with a dictionary of `2^window_log` bytes and the
    /// properties lc=`lzma_lc`, lp=`lzma_lp`, pb=`lzma_pb` of the header.
    Lzma2 = 2,
}

/// A reversible transform applied to both images before diffing (and undone while writing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Filter {
    /// Bytes are used as they are.
    None = 0,
    /// x86/x86-64 relative branch and RIP-relative operands made absolute (see `filter`).
    X86 = 1,
    /// As [`Filter::X86`], and the base's absolute operands are moreover predicted through
    /// an address map (old position -> shift) sent at the start of the diff payload, so
    /// references to code and data that moved need no difference bytes (see `filter`).
    X86Remap = 2,
    /// ARM Thumb `BL` call targets made absolute (see `filter`).
    Thumb = 3,
    /// As [`Filter::Thumb`], with the base's targets predicted through an address map.
    ThumbRemap = 4,
    /// As [`Filter::ThumbRemap`], and moreover the base's aligned 32-bit words that look like
    /// pointers into the image (literal pools, vector and function tables) are predicted
    /// through the address map (see `filter`).
    ThumbRemapPointers = 5,
    /// As [`Filter::X86Remap`], with targets looked up at their full position (no 32 MiB
    /// limit), and moreover the base's aligned 64-bit words whose values lie in the load
    /// ranges sent after the address map (pointers in relocation and symbol tables and in
    /// relocated data) predicted through the map (see `filter`).
    X86RemapPointers = 6,
}

impl Filter {
    /// Whether the diff payload starts with an address map for the base.
    pub fn is_remap(self) -> bool {
        matches!(
            self,
            Filter::X86Remap
                | Filter::ThumbRemap
                | Filter::ThumbRemapPointers
                | Filter::X86RemapPointers
        )
    }
}

impl Method {
    fn from_u8(v: u8) -> Result<Self, PatchError> {
        match v {
            0 => Ok(Method::Full),
            1 => Ok(Method::Diff),
            2 => Ok(Method::SparseDiff),
            3 => Ok(Method::ExpandedSparseDiff),
            4 => Ok(Method::ZstdPrefix),
            other => Err(PatchError::UnsupportedMethod(other)),
        }
    }
}

impl Codec {
    fn from_u8(v: u8) -> Result<Self, PatchError> {
        match v {
            1 => Ok(Codec::Zstd),
            2 => Ok(Codec::Lzma2),
            other => Err(PatchError::UnsupportedCodec(other)),
        }
    }
}

impl Filter {
    fn from_u8(v: u8) -> Result<Self, PatchError> {
        match v {
            0 => Ok(Filter::None),
            1 => Ok(Filter::X86),
            2 => Ok(Filter::X86Remap),
            3 => Ok(Filter::Thumb),
            4 => Ok(Filter::ThumbRemap),
            5 => Ok(Filter::ThumbRemapPointers),
            6 => Ok(Filter::X86RemapPointers),
            other => Err(PatchError::UnsupportedFilter(other)),
        }
    }
}

/// The decoded patch header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchHeader {
    /// Payload method.
    pub method: Method,
    /// Payload compression.
    pub codec: Codec,
    /// Image filter.
    pub filter: Filter,
    /// Decompression window / dictionary size as a power of two.
    pub window_log: u8,
    /// Largest diff section of one payload block, as a power of two.
    pub block_log: u8,
    /// LZMA2 literal context bits (0 for zstd).
    pub lzma_lc: u8,
    /// LZMA2 literal position bits (0 for zstd).
    pub lzma_lp: u8,
    /// LZMA2 position bits (0 for zstd).
    pub lzma_pb: u8,
    /// Length of the base image.
    pub base_len: u64,
    /// sha256 of the base image.
    pub base_sha256: [u8; 32],
    /// Length of the result image.
    pub result_len: u64,
    /// sha256 of the result image.
    pub result_sha256: [u8; 32],
}

impl PatchHeader {
    /// A header for turning `base` into `result`, with default limits (8 MiB window, 2 MiB
    /// blocks) and the usual LZMA2 properties (lc=3, lp=0, pb=2).
    pub fn new(method: Method, codec: Codec, filter: Filter, base: &[u8], result: &[u8]) -> Self {
        PatchHeader {
            method,
            codec,
            filter,
            window_log: 23,
            block_log: 21,
            lzma_lc: 3,
            lzma_lp: 0,
            lzma_pb: 2,
            base_len: base.len() as u64,
            base_sha256: Sha256::digest(base).into(),
            result_len: result.len() as u64,
            result_sha256: Sha256::digest(result).into(),
        }
    }

    /// Encodes the header followed by the length of the compressed payload that comes next.
    pub fn to_bytes(&self, payload_len: u64) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4] = VERSION;
        b[5] = self.method as u8;
        b[6] = self.codec as u8;
        b[7] = self.filter as u8;
        b[8] = self.window_log;
        b[9] = self.block_log;
        b[10] = self.lzma_lc | (self.lzma_lp << 4);
        b[11] = self.lzma_pb;
        b[12..20].copy_from_slice(&self.base_len.to_le_bytes());
        b[20..52].copy_from_slice(&self.base_sha256);
        b[52..60].copy_from_slice(&self.result_len.to_le_bytes());
        b[60..92].copy_from_slice(&self.result_sha256);
        b[92..100].copy_from_slice(&payload_len.to_le_bytes());
        b
    }

    /// Decodes and validates a header; returns it with the payload length.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Result<(Self, u64), PatchError> {
        if b[0..4] != MAGIC {
            return Err(PatchError::BadMagic);
        }
        if b[4] != VERSION {
            return Err(PatchError::UnsupportedVersion(b[4]));
        }
        let method = Method::from_u8(b[5])?;
        let codec = Codec::from_u8(b[6])?;
        let filter = Filter::from_u8(b[7])?;
        let (window_log, block_log) = (b[8], b[9]);
        if !(MIN_LOG..=MAX_WINDOW_LOG).contains(&window_log) {
            return Err(PatchError::LimitExceeded(format!(
                "window 2^{window_log} outside 2^{MIN_LOG}..=2^{MAX_WINDOW_LOG}"
            )));
        }
        if !(MIN_LOG..=MAX_BLOCK_LOG).contains(&block_log) {
            return Err(PatchError::LimitExceeded(format!(
                "block 2^{block_log} outside 2^{MIN_LOG}..=2^{MAX_BLOCK_LOG}"
            )));
        }
        let (lzma_lc, lzma_lp, lzma_pb) = (b[10] & 0x0f, b[10] >> 4, b[11]);
        if codec == Codec::Lzma2 && (lzma_lc + lzma_lp > 4 || lzma_pb > 4) {
            return Err(PatchError::LimitExceeded(format!(
                "LZMA2 properties lc={lzma_lc} lp={lzma_lp} pb={lzma_pb} invalid"
            )));
        }
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let mut base_sha256 = [0u8; 32];
        base_sha256.copy_from_slice(&b[20..52]);
        let mut result_sha256 = [0u8; 32];
        result_sha256.copy_from_slice(&b[60..92]);
        let header = PatchHeader {
            method,
            codec,
            filter,
            window_log,
            block_log,
            lzma_lc,
            lzma_lp,
            lzma_pb,
            base_len: u64_at(12),
            base_sha256,
            result_len: u64_at(52),
            result_sha256,
        };
        Ok((header, u64_at(92)))
    }
}
