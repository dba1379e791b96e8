//! Errors of the encrypted-payload envelope and its key slips.

use super::{PayloadId, RecipientId};

/// Result with the envelope error.
pub type Result<T, E = EnvelopeError> = std::result::Result<T, E>;

/// Everything that can be wrong with an encrypted payload, a key slip or a recipient key.
///
/// Variants are specific so callers (and tests) can tell a missing slip from a wrong key,
/// tampering from truncation, and so on. None of them carries secret material.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The target's metadata has no key slip for this device's recipient key.
    #[error("no key slip for recipient {0}: this device is not a recipient of the target")]
    NoSlipForRecipient(RecipientId),
    /// The slip was wrapped for another recipient key than the one offered.
    #[error("key slip is for recipient {slip}, but this key is {ours}")]
    WrongKey {
        /// Recipient id named in the slip.
        slip: RecipientId,
        /// Recipient id of the secret key offered.
        ours: RecipientId,
    },
    /// The slip belongs to another target or another payload than the one being decrypted.
    #[error(
        "key slip is bound to target {slip_target:?} payload {slip_payload}, \
         expected target {expected_target:?} payload {expected_payload}"
    )]
    BindingMismatch {
        /// Target name the caller expects.
        expected_target: String,
        /// Payload id the caller expects.
        expected_payload: PayloadId,
        /// Target name written in the slip.
        slip_target: String,
        /// Payload id written in the slip.
        slip_payload: PayloadId,
    },
    /// A slip bundle, or the index of it in the signed metadata, is not what it must be: a
    /// block of another size than the index promises, records of another block or out of
    /// order, an index out of range.
    #[error("slip bundle refused: {0}")]
    SlipBundle(String),
    /// HPKE refused to open the slip although it names this key and binding: the slip was
    /// altered (or forged with a copied recipient id).
    #[error("key slip does not open with this key: the slip was altered")]
    SlipDoesNotOpen,
    /// A slip file or JSON object is malformed.
    #[error("malformed key slip: {0}")]
    MalformedSlip(String),
    /// A recipient key in text form could not be read.
    #[error("invalid recipient key text: {0}")]
    BadKeyText(String),
    /// The payload does not start with the envelope magic bytes.
    #[error("not an encrypted OTA payload (bad magic bytes)")]
    BadMagic,
    /// The payload has a format version this code does not implement.
    #[error("unsupported envelope version {0} (this code reads version 1)")]
    UnsupportedVersion(u8),
    /// The payload names an algorithm this code does not implement.
    #[error("unsupported {what} algorithm id {id}")]
    UnsupportedAlgorithm {
        /// Which field ("aead", "kdf").
        what: &'static str,
        /// The id found.
        id: u8,
    },
    /// A header field is out of range or inconsistent.
    #[error("bad envelope header: {0}")]
    BadHeader(String),
    /// The header's MAC does not verify: the header was altered, or this is not the data key
    /// of this payload.
    #[error("envelope header does not authenticate: header altered or wrong data key")]
    HeaderNotAuthentic,
    /// The (authentic) header does not match what the signed target metadata announces.
    #[error("envelope header {field} is {found}, signed metadata says {expected}")]
    HeaderMismatch {
        /// Which field differs.
        field: &'static str,
        /// Value in the signed metadata.
        expected: String,
        /// Value in the payload header.
        found: String,
    },
    /// A chunk failed authentication: its bytes were altered.
    #[error("chunk {index} does not authenticate: the payload was tampered with")]
    TamperedChunk {
        /// Zero-based position of the chunk in the stream.
        index: u64,
    },
    /// A chunk authenticates, but at another position: chunks were reordered.
    #[error(
        "chunk at position {position} belongs at position {belongs_at}: chunks were reordered"
    )]
    ReorderedChunks {
        /// Position where the chunk was found.
        position: u64,
        /// Position the chunk was encrypted for.
        belongs_at: u64,
    },
    /// The stream ended before its last chunk (cut off or truncated).
    #[error("payload truncated: ended after {got} of {expected} bytes (last chunk missing)")]
    Truncated {
        /// Bytes the header announces (header and all chunks).
        expected: u64,
        /// Bytes actually read.
        got: u64,
    },
    /// Bytes follow the last chunk.
    #[error("trailing data after the last chunk of the payload")]
    TrailingData,
    /// Encryption parameters are unusable (e.g. a chunk size out of range).
    #[error("invalid envelope parameters: {0}")]
    InvalidParams(String),
    /// The plaintext reader produced another length than declared in the parameters.
    #[error("plaintext length is {actual}, parameters declared {declared}")]
    LengthMismatch {
        /// Length declared up front (and written into the header).
        declared: u64,
        /// Length actually read (or a lower bound when the reader had more).
        actual: u64,
    },
    /// A cryptographic operation failed where it cannot fail on valid inputs.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// Reading or writing the stream failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}
