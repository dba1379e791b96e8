//! Builds patches for the format tests from explicit covers (no diff algorithm needed).
#![allow(dead_code)]

use ota_formats::patch::payload::{encode, Cover};
use ota_formats::patch::{filter, Codec, Filter, Method, PatchHeader};

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One cover: diff the common prefix at the same offset, the rest literal.
pub fn simple_covers(old: &[u8], new: &[u8]) -> Vec<Cover> {
    if new.is_empty() {
        return Vec::new();
    }
    let add = old.len().min(new.len()) as u64;
    vec![Cover {
        new_start: 0,
        old_start: 0,
        add_len: add,
        extra_len: new.len() as u64 - add,
    }]
}

/// Compresses a payload as the header says.
pub fn compress(h: &PatchHeader, data: &[u8]) -> Vec<u8> {
    match h.codec {
        Codec::Zstd => {
            let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
            enc.window_log(u32::from(h.window_log)).unwrap();
            std::io::Write::write_all(&mut enc, data).unwrap();
            enc.finish().unwrap()
        }
        Codec::Lzma2 => {
            let mut opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
            opts.dict_size(1 << h.window_log)
                .literal_context_bits(u32::from(h.lzma_lc))
                .literal_position_bits(u32::from(h.lzma_lp))
                .position_bits(u32::from(h.lzma_pb));
            let mut f = liblzma::stream::Filters::new();
            f.lzma2(&opts);
            let s = liblzma::stream::Stream::new_raw_encoder(&f).unwrap();
            let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), s);
            std::io::Write::write_all(&mut enc, data).unwrap();
            enc.finish().unwrap()
        }
    }
}

/// The uncompressed payload for `covers` (filtered as `filter` says).
pub fn payload(old: &[u8], new: &[u8], covers: &[Cover], filter: Filter, block_log: u8) -> Vec<u8> {
    let (mut fo, mut fnew) = (old.to_vec(), new.to_vec());
    filter::encode(filter, &mut fo, 0);
    filter::encode(filter, &mut fnew, 0);
    encode(&fo, &fnew, covers, block_log)
}

/// A complete patch from a header and an uncompressed payload.
pub fn assemble(h: &PatchHeader, data: &[u8]) -> Vec<u8> {
    let body = compress(h, data);
    let mut p = h.to_bytes(body.len() as u64).to_vec();
    p.extend_from_slice(&body);
    p
}

/// A diff patch from explicit covers.
pub fn diff_patch(
    old: &[u8],
    new: &[u8],
    covers: &[Cover],
    codec: Codec,
    filter: Filter,
    block_log: u8,
) -> Vec<u8> {
    let mut h = PatchHeader::new(Method::Diff, codec, filter, old, new);
    h.block_log = block_log;
    h.window_log = 16;
    assemble(&h, &payload(old, new, covers, filter, block_log))
}

/// Applies in memory.
pub fn apply_vec(old: &[u8], patch: &[u8]) -> Result<Vec<u8>, ota_formats::patch::PatchError> {
    let mut out = Vec::new();
    ota_formats::patch::apply(std::io::Cursor::new(old), patch, &mut out)?;
    Ok(out)
}
