//! Errors of patch parsing and application.

use thiserror::Error;

/// Why a patch could not be applied. Every variant means the output must be discarded.
#[derive(Debug, Error)]
pub enum PatchError {
    /// The patch does not start with the patch magic bytes.
    #[error("not a patch: bad magic bytes")]
    BadMagic,
    /// The patch format version is not one this build understands.
    #[error("unsupported patch format version {0}")]
    UnsupportedVersion(u8),
    /// The patch uses a method id this build does not know.
    #[error("unsupported patch method {0}")]
    UnsupportedMethod(u8),
    /// The patch uses a compression codec id this build does not know.
    #[error("unsupported patch codec {0}")]
    UnsupportedCodec(u8),
    /// The patch uses a filter id this build does not know.
    #[error("unsupported patch filter {0}")]
    UnsupportedFilter(u8),
    /// A header limit (window or block size) is outside what the applier accepts.
    #[error("patch exceeds applier limits: {0}")]
    LimitExceeded(String),
    /// The base image given is not the one the patch was made from.
    #[error("wrong base image: patch expects {expected_len} bytes with sha256 {expected_sha256}, got {actual_len} bytes with sha256 {actual_sha256}")]
    WrongBase {
        /// Length the header names.
        expected_len: u64,
        /// Hex sha256 the header names.
        expected_sha256: String,
        /// Length of the base given.
        actual_len: u64,
        /// Hex sha256 of the base given.
        actual_sha256: String,
    },
    /// The patch ends before its header or payload is complete.
    #[error("truncated patch: {0}")]
    Truncated(String),
    /// The control data of the payload is inconsistent (bad lengths, reads outside the base,
    /// output past the declared result length, trailing bytes).
    #[error("corrupted patch control data: {0}")]
    CorruptControl(String),
    /// The compressed payload could not be decompressed.
    #[error("corrupted compressed payload: {0}")]
    Decompress(String),
    /// The produced result does not have the length and sha256 named in the header.
    #[error("result mismatch: patch promises {expected_len} bytes with sha256 {expected_sha256}, produced {actual_len} bytes with sha256 {actual_sha256}")]
    ResultMismatch {
        /// Length the header names.
        expected_len: u64,
        /// Hex sha256 the header names.
        expected_sha256: String,
        /// Length produced.
        actual_len: u64,
        /// Hex sha256 produced.
        actual_sha256: String,
    },
    /// Reading the base or writing the output failed.
    #[error("I/O error while applying patch: {0}")]
    Io(#[from] std::io::Error),
}
