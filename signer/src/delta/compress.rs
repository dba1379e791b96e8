//! Payload compression for the codecs of the patch format.

use super::DeltaError;
use ota_formats::patch::{Codec, PatchHeader};
use std::io::Write;

/// Settings of one compression attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecChoice {
    /// The codec.
    pub codec: Codec,
    /// LZMA2 (lc, lp, pb); ignored for zstd.
    pub lzma_props: (u8, u8, u8),
}

/// Smallest window log (>= 12) that covers `len` bytes, capped at `max_log`: small payloads
/// then need only a small decoder window on the device.
pub fn window_log_for(len: usize, max_log: u8) -> u8 {
    let mut log = 12u8;
    while log < max_log && (1usize << log) < len {
        log += 1;
    }
    log
}

/// Compresses `data` as the header says (codec, window, LZMA2 properties).
pub fn compress(header: &PatchHeader, data: &[u8], zstd_level: i32) -> Result<Vec<u8>, DeltaError> {
    let err = |e: std::io::Error| DeltaError::Compress(e.to_string());
    match header.codec {
        Codec::Zstd => {
            let mut enc = zstd::stream::Encoder::new(Vec::new(), zstd_level).map_err(err)?;
            enc.window_log(u32::from(header.window_log)).map_err(err)?;
            enc.include_checksum(false).map_err(err)?;
            enc.include_contentsize(false).map_err(err)?;
            enc.write_all(data).map_err(err)?;
            enc.finish().map_err(err)
        }
        Codec::Lzma2 => {
            let lz = |e: liblzma::stream::Error| DeltaError::Compress(e.to_string());
            let mut opts =
                liblzma::stream::LzmaOptions::new_preset(9 | liblzma::stream::PRESET_EXTREME)
                    .map_err(lz)?;
            opts.dict_size(1u32 << header.window_log)
                .literal_context_bits(u32::from(header.lzma_lc))
                .literal_position_bits(u32::from(header.lzma_lp))
                .position_bits(u32::from(header.lzma_pb));
            let mut filters = liblzma::stream::Filters::new();
            filters.lzma2(&opts);
            let stream = liblzma::stream::Stream::new_raw_encoder(&filters).map_err(lz)?;
            let mut enc = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
            enc.write_all(data).map_err(err)?;
            enc.finish().map_err(err)
        }
    }
}

/// Compresses `data` with zstd using all of `prefix` (the base image) as reference prefix,
/// within the header's window (zstd's `--patch-from`).
pub fn compress_with_prefix(
    header: &PatchHeader,
    prefix: &[u8],
    data: &[u8],
    zstd_level: i32,
) -> Result<Vec<u8>, DeltaError> {
    let err = |e: std::io::Error| DeltaError::Compress(e.to_string());
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), zstd_level, prefix)
        .map_err(err)?;
    enc.window_log(u32::from(header.window_log)).map_err(err)?;
    enc.include_checksum(false).map_err(err)?;
    enc.include_contentsize(false).map_err(err)?;
    enc.write_all(data).map_err(err)?;
    enc.finish().map_err(err)
}
