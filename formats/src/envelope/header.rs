//! The payload header: fixed 80 bytes in front of the chunks, authenticated by an HMAC under a
//! key derived from the data key, and used as associated data of every chunk.
//!
//! ```text
//! offset size field
//!      0    8 magic "OTAENV\r\n"
//!      8    1 version = 1
//!      9    1 aead id = 1 (ChaCha20-Poly1305 in STREAM-BE32)
//!     10    1 kdf id = 1 (HKDF-SHA256)
//!     11    1 reserved = 0
//!     12    4 chunk size (plaintext bytes per chunk), u32 big endian
//!     16    8 plaintext length, u64 big endian
//!     24   16 payload id (random)
//!     40    7 STREAM nonce prefix (random)
//!     47    1 reserved = 0
//!     48   32 HMAC-SHA256(header MAC key, bytes 0..48)
//! ```

use super::error::{EnvelopeError, Result};
use super::schedule::PayloadKeys;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Magic bytes at the start of every encrypted payload.
pub const MAGIC: [u8; 8] = *b"OTAENV\r\n";
/// The format version this code writes and reads.
pub const VERSION: u8 = 1;
/// Algorithm id: ChaCha20-Poly1305 (RFC 8439) in the STREAM-BE32 construction.
pub const AEAD_CHACHA20POLY1305_STREAM_BE32: u8 = 1;
/// Algorithm id: HKDF-SHA256 (RFC 5869).
pub const KDF_HKDF_SHA256: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 80;
/// Length of the STREAM nonce prefix (12-byte AEAD nonce minus 4 counter bytes and 1 flag).
pub const NONCE_PREFIX_LEN: usize = 7;
/// Length of the authentication tag at the end of every chunk.
pub const TAG_LEN: usize = 16;
/// Default plaintext chunk size: 64 KiB.
pub const DEFAULT_CHUNK_SIZE: u32 = 64 * 1024;
/// Smallest chunk size a payload may declare.
pub const MIN_CHUNK_SIZE: u32 = 64;
/// Largest chunk size a payload may declare; bounds a decrypting device's buffer.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
const SIGNED_LEN: usize = 48;

/// Random 16-byte identifier of one encrypted payload; key slips are bound to it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadId(pub [u8; 16]);

impl fmt::Display for PayloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PayloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayloadId({self})")
    }
}

impl FromStr for PayloadId {
    type Err = EnvelopeError;
    fn from_str(s: &str) -> Result<Self> {
        let bytes = hex::decode(s)
            .map_err(|e| EnvelopeError::MalformedSlip(format!("payload id {s:?}: {e}")))?;
        let id: [u8; 16] = bytes.try_into().map_err(|_| {
            EnvelopeError::MalformedSlip(format!("payload id {s:?} is not 32 hex digits"))
        })?;
        Ok(Self(id))
    }
}

impl Serialize for PayloadId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for PayloadId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The parsed fields of a payload header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadHeader {
    /// Plaintext bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
    /// Total plaintext length.
    pub plaintext_len: u64,
    /// Random payload id.
    pub payload_id: PayloadId,
    /// Random STREAM nonce prefix.
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
}

impl PayloadHeader {
    /// Number of chunks: at least one (an empty payload is one empty last chunk).
    pub fn chunk_count(&self) -> u64 {
        self.plaintext_len
            .div_ceil(u64::from(self.chunk_size.max(1)))
            .max(1)
    }

    /// Plaintext length of chunk `index` (zero past the end).
    pub fn chunk_plaintext_len(&self, index: u64) -> usize {
        let start = index.saturating_mul(u64::from(self.chunk_size));
        let len = self
            .plaintext_len
            .saturating_sub(start)
            .min(u64::from(self.chunk_size));
        // chunk_size is a u32, so this always fits.
        len as usize
    }

    /// Total length of the encrypted payload: header plus every chunk with its tag.
    pub fn ciphertext_len(&self) -> u64 {
        (HEADER_LEN as u64)
            .saturating_add(self.plaintext_len)
            .saturating_add(self.chunk_count().saturating_mul(TAG_LEN as u64))
    }

    /// Checks that the fields are in range (chunk size bounds, chunk count fits the counter).
    pub fn validate(&self) -> Result<()> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(EnvelopeError::BadHeader(format!(
                "chunk size {} outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}",
                self.chunk_size
            )));
        }
        // The STREAM counter is 32 bits and its last value is reserved by the aead crate.
        if self.chunk_count() >= u64::from(u32::MAX) {
            return Err(EnvelopeError::BadHeader(format!(
                "{} chunks exceed the 32-bit chunk counter",
                self.chunk_count()
            )));
        }
        Ok(())
    }

    /// The 48 bytes covered by the header MAC.
    fn signed_bytes(&self) -> [u8; SIGNED_LEN] {
        let mut b = [0u8; SIGNED_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8] = VERSION;
        b[9] = AEAD_CHACHA20POLY1305_STREAM_BE32;
        b[10] = KDF_HKDF_SHA256;
        b[11] = 0;
        b[12..16].copy_from_slice(&self.chunk_size.to_be_bytes());
        b[16..24].copy_from_slice(&self.plaintext_len.to_be_bytes());
        b[24..40].copy_from_slice(&self.payload_id.0);
        b[40..47].copy_from_slice(&self.nonce_prefix);
        b[47] = 0;
        b
    }

    /// The full 80-byte header, MAC included.
    pub(crate) fn to_bytes(&self, keys: &PayloadKeys) -> Result<[u8; HEADER_LEN]> {
        let signed = self.signed_bytes();
        let mut out = [0u8; HEADER_LEN];
        out[..SIGNED_LEN].copy_from_slice(&signed);
        out[SIGNED_LEN..].copy_from_slice(&keys.header_mac(&signed)?);
        Ok(out)
    }

    /// Parses and range-checks a header without authenticating it (no key needed). Use this
    /// to inspect a payload; [`super::decrypt_stream`] also verifies the MAC.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self> {
        if bytes[0..8] != MAGIC {
            return Err(EnvelopeError::BadMagic);
        }
        if bytes[8] != VERSION {
            return Err(EnvelopeError::UnsupportedVersion(bytes[8]));
        }
        if bytes[9] != AEAD_CHACHA20POLY1305_STREAM_BE32 {
            return Err(EnvelopeError::UnsupportedAlgorithm {
                what: "aead",
                id: bytes[9],
            });
        }
        if bytes[10] != KDF_HKDF_SHA256 {
            return Err(EnvelopeError::UnsupportedAlgorithm {
                what: "kdf",
                id: bytes[10],
            });
        }
        if bytes[11] != 0 || bytes[47] != 0 {
            return Err(EnvelopeError::BadHeader(
                "reserved bytes are not zero".into(),
            ));
        }
        let mut chunk_size = [0u8; 4];
        chunk_size.copy_from_slice(&bytes[12..16]);
        let mut plaintext_len = [0u8; 8];
        plaintext_len.copy_from_slice(&bytes[16..24]);
        let mut payload_id = [0u8; 16];
        payload_id.copy_from_slice(&bytes[24..40]);
        let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
        nonce_prefix.copy_from_slice(&bytes[40..47]);
        let header = Self {
            chunk_size: u32::from_be_bytes(chunk_size),
            plaintext_len: u64::from_be_bytes(plaintext_len),
            payload_id: PayloadId(payload_id),
            nonce_prefix,
        };
        header.validate()?;
        Ok(header)
    }

    /// Verifies the header MAC of `bytes` under `keys`.
    pub(crate) fn authenticate(bytes: &[u8; HEADER_LEN], keys: &PayloadKeys) -> Result<()> {
        keys.verify_header_mac(&bytes[..SIGNED_LEN], &bytes[SIGNED_LEN..])
    }
}
