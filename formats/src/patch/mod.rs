//! Binary delta patches: the on-disk format and its streaming, bounded-memory application.
//!
//! A patch turns one exact *base* image into one exact *result* image. The header names both
//! by sha256 and length; [`apply`] refuses any other base and checks the result while writing
//! it, so the caller can write to a temporary file and install it only when `apply` returns
//! `Ok`. The byte layout is specified in `formats/PATCH.md`.
//!
//! Applying needs memory that does not grow with the images: one block of the patch payload
//! (at most `2^block_log` bytes, limited to [`MAX_BLOCK_LOG`]), the decompressor's window
//! (at most `2^window_log`, limited to [`MAX_WINDOW_LOG`]) and a few fixed buffers.
//!
//! ```
//! use ota_formats::patch::{apply, Codec, Filter, Method, PatchHeader, payload};
//! use std::io::Cursor;
//!
//! // A "full" patch: the payload is the whole result image, compressed.
//! let result = b"hello, device".to_vec();
//! let header = PatchHeader::new(Method::Full, Codec::Zstd, Filter::None, b"", &result);
//! let body = zstd::encode_all(&result[..], 3).unwrap();
//! let mut patch = header.to_bytes(body.len() as u64).to_vec();
//! patch.extend_from_slice(&body);
//! let mut out = Vec::new();
//! let stats = apply(Cursor::new(Vec::new()), &patch[..], &mut out).unwrap();
//! assert_eq!(out, result);
//! assert_eq!(stats.result_len, result.len() as u64);
//! # let _ = payload::Record::default();
//! ```

mod apply;
mod error;
pub mod expand;
pub mod filter;
mod header;
mod old;
pub mod payload;
pub mod varint;

pub use apply::{apply, ApplyStats};
pub use error::PatchError;
pub use header::{Codec, Filter, Method, PatchHeader, HEADER_LEN, MAGIC, VERSION};

/// Largest decompression window (`2^n` bytes) an applier accepts: 16 MiB.
pub const MAX_WINDOW_LOG: u8 = 24;
/// Largest block of result bytes (`2^n`) one payload block may describe: 16 MiB.
pub const MAX_BLOCK_LOG: u8 = 24;
/// Smallest values accepted for the two logs above.
pub const MIN_LOG: u8 = 10;
