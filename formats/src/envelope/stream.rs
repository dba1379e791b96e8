//! Streaming encryption and decryption of a payload: the header, then chunks sealed with
//! ChaCha20-Poly1305 in the STREAM construction (nonce = 7-byte prefix || 32-bit big-endian
//! chunk counter || last-chunk flag), each with the whole header as associated data.
//!
//! Memory is bounded by one chunk (at most [`MAX_CHUNK_SIZE`] plus the tag), whatever the
//! payload size.

use super::error::{EnvelopeError, Result};
use super::header::{
    PayloadHeader, PayloadId, DEFAULT_CHUNK_SIZE, HEADER_LEN, MAGIC, NONCE_PREFIX_LEN, TAG_LEN,
};
use super::schedule::PayloadKeys;
use super::{DataKey, EncryptionInfo};
use chacha20poly1305::aead::stream::{EncryptorBE32, NewStream, StreamBE32, StreamPrimitive};
use chacha20poly1305::ChaCha20Poly1305;
use rand_core::{OsRng, RngCore};
use std::io::{ErrorKind, Read, Write};

/// How far (in chunks, each way) decryption looks for the true position of a chunk that fails
/// to authenticate, to report reordering rather than tampering. Bounds the work an error costs.
pub const REORDER_SEARCH_WINDOW: u64 = 1024;

/// Parameters of one encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncryptParams {
    /// Exact number of plaintext bytes the reader will yield (written into the header, so a
    /// device knows the installed size up front and truncation is detected exactly).
    pub plaintext_len: u64,
    /// Plaintext bytes per chunk; [`DEFAULT_CHUNK_SIZE`] unless there is a reason.
    pub chunk_size: u32,
}

impl EncryptParams {
    /// Parameters with the default 64 KiB chunk size.
    pub fn new(plaintext_len: u64) -> Self {
        Self {
            plaintext_len,
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }

    /// The same parameters with another chunk size.
    pub fn with_chunk_size(self, chunk_size: u32) -> Self {
        Self { chunk_size, ..self }
    }
}

/// What an encryption produced: the public facts that go into the target metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadInfo {
    /// The random id of this payload (slips are bound to it).
    pub payload_id: PayloadId,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Plaintext length.
    pub plaintext_len: u64,
    /// Length of the encrypted file (header and chunks).
    pub ciphertext_len: u64,
}

/// Encrypts exactly `params.plaintext_len` bytes from `reader` into `writer` under `key`,
/// drawing a fresh random payload id and nonce prefix.
///
/// Fails with [`EnvelopeError::LengthMismatch`] if the reader yields fewer or more bytes than
/// declared; what was written by then is garbage and must be discarded.
pub fn encrypt_stream<R: Read, W: Write>(
    mut reader: R,
    mut writer: W,
    key: &DataKey,
    params: &EncryptParams,
) -> Result<PayloadInfo> {
    let mut payload_id = [0u8; 16];
    OsRng.fill_bytes(&mut payload_id);
    let mut nonce_prefix = [0u8; NONCE_PREFIX_LEN];
    OsRng.fill_bytes(&mut nonce_prefix);
    let header = PayloadHeader {
        chunk_size: params.chunk_size,
        plaintext_len: params.plaintext_len,
        payload_id: PayloadId(payload_id),
        nonce_prefix,
    };
    header.validate().map_err(|e| match e {
        EnvelopeError::BadHeader(reason) => EnvelopeError::InvalidParams(reason),
        other => other,
    })?;
    let keys = PayloadKeys::derive(key, &header.payload_id)?;
    let header_bytes = header.to_bytes(&keys)?;
    writer.write_all(&header_bytes)?;

    let mut encryptor = Some(EncryptorBE32::from_aead(
        keys.cipher(),
        &nonce_prefix.into(),
    ));
    let chunks = header.chunk_count();
    let mut buf = Vec::with_capacity(params.chunk_size as usize + TAG_LEN);
    for index in 0..chunks {
        let len = header.chunk_plaintext_len(index);
        buf.clear();
        buf.resize(len, 0);
        let got = read_full(&mut reader, &mut buf)?;
        if got < len {
            return Err(EnvelopeError::LengthMismatch {
                declared: params.plaintext_len,
                actual: index * u64::from(params.chunk_size) + got as u64,
            });
        }
        let sealed = if index + 1 == chunks {
            match encryptor.take() {
                Some(last) => last.encrypt_last_in_place(&header_bytes, &mut buf),
                None => return Err(EnvelopeError::Crypto("STREAM encryptor already finished")),
            }
        } else {
            match encryptor.as_mut() {
                Some(enc) => enc.encrypt_next_in_place(&header_bytes, &mut buf),
                None => return Err(EnvelopeError::Crypto("STREAM encryptor already finished")),
            }
        };
        sealed.map_err(|_| EnvelopeError::Crypto("chunk encryption"))?;
        writer.write_all(&buf)?;
    }
    let mut probe = [0u8; 1];
    if read_full(&mut reader, &mut probe)? > 0 {
        return Err(EnvelopeError::LengthMismatch {
            declared: params.plaintext_len,
            actual: params.plaintext_len + 1,
        });
    }
    writer.flush()?;
    Ok(PayloadInfo {
        payload_id: header.payload_id,
        chunk_size: header.chunk_size,
        plaintext_len: header.plaintext_len,
        ciphertext_len: header.ciphertext_len(),
    })
}

/// Decrypts an encrypted payload from `reader` into `writer`, returning the plaintext length.
///
/// Streaming, with memory bounded by one chunk. Each chunk is authenticated before any of its
/// plaintext is written, and the last chunk is written only once the stream is known to end
/// right after it. But an error can still come after earlier chunks were written (a later
/// chunk tampered, the stream cut off): **the caller must write into a temporary file and
/// install it only after this function returned `Ok`** (and after its other checks, such as
/// the signed image hash), discarding the file on any error.
pub fn decrypt_stream<R: Read, W: Write>(reader: R, writer: W, key: &DataKey) -> Result<u64> {
    decrypt(reader, writer, key, None)
}

/// Like [`decrypt_stream`], and also checks that the (authentic) header matches what the
/// signed target metadata announces: payload id, chunk size and plaintext length.
pub fn decrypt_stream_checked<R: Read, W: Write>(
    reader: R,
    writer: W,
    key: &DataKey,
    expected: &EncryptionInfo,
) -> Result<u64> {
    decrypt(reader, writer, key, Some(expected))
}

/// Reads and parses the header of an encrypted payload without a key (not authenticated).
pub fn read_header<R: Read>(mut reader: R) -> Result<PayloadHeader> {
    let bytes = read_header_bytes(&mut reader)?;
    PayloadHeader::parse(&bytes)
}

fn read_header_bytes<R: Read>(reader: &mut R) -> Result<[u8; HEADER_LEN]> {
    let mut bytes = [0u8; HEADER_LEN];
    let got = read_full(reader, &mut bytes)?;
    if got < HEADER_LEN {
        let seen = got.min(MAGIC.len());
        if bytes[..seen] != MAGIC[..seen] || got == 0 {
            return Err(EnvelopeError::BadMagic);
        }
        return Err(EnvelopeError::Truncated {
            expected: HEADER_LEN as u64,
            got: got as u64,
        });
    }
    Ok(bytes)
}

fn decrypt<R: Read, W: Write>(
    mut reader: R,
    mut writer: W,
    key: &DataKey,
    expected: Option<&EncryptionInfo>,
) -> Result<u64> {
    let header_bytes = read_header_bytes(&mut reader)?;
    let header = PayloadHeader::parse(&header_bytes)?;
    let keys = PayloadKeys::derive(key, &header.payload_id)?;
    PayloadHeader::authenticate(&header_bytes, &keys)?;
    if let Some(info) = expected {
        check_matches(&header, info)?;
    }

    let stream = StreamBE32::from_aead(keys.cipher(), &header.nonce_prefix.into());
    let chunks = header.chunk_count();
    let expected_total = header.ciphertext_len();
    let mut consumed = HEADER_LEN as u64;
    let mut buf = Vec::with_capacity(header.chunk_size as usize + TAG_LEN);
    for index in 0..chunks {
        let sealed_len = header.chunk_plaintext_len(index) + TAG_LEN;
        buf.clear();
        buf.resize(sealed_len, 0);
        let got = read_full(&mut reader, &mut buf)?;
        consumed += got as u64;
        if got < sealed_len {
            return Err(EnvelopeError::Truncated {
                expected: expected_total,
                got: consumed,
            });
        }
        let last = index + 1 == chunks;
        if last {
            // Refuse trailing bytes before releasing the final plaintext.
            let mut probe = [0u8; 1];
            if read_full(&mut reader, &mut probe)? > 0 {
                return Err(EnvelopeError::TrailingData);
            }
        }
        // Header validation keeps the chunk count below u32::MAX.
        let position = u32::try_from(index)
            .map_err(|_| EnvelopeError::BadHeader("chunk counter overflow".into()))?;
        if stream
            .decrypt_in_place(position, last, &header_bytes, &mut buf)
            .is_err()
        {
            return Err(diagnose(&stream, &header, &header_bytes, index, &buf));
        }
        writer.write_all(&buf)?;
    }
    writer.flush()?;
    Ok(header.plaintext_len)
}

/// A chunk failed at `index`: find out whether it authenticates at another position nearby
/// (reordering) or nowhere (tampering). `sealed` is the chunk as read; the AEAD leaves the
/// buffer untouched on failure, and if it ever did not, this merely reports tampering.
fn diagnose(
    stream: &StreamBE32<ChaCha20Poly1305>,
    header: &PayloadHeader,
    header_bytes: &[u8],
    index: u64,
    sealed: &[u8],
) -> EnvelopeError {
    let chunks = header.chunk_count();
    let from = index.saturating_sub(REORDER_SEARCH_WINDOW);
    let to = (index + REORDER_SEARCH_WINDOW).min(chunks - 1);
    let mut trial = Vec::with_capacity(sealed.len());
    for other in (from..=to).filter(|&j| j != index) {
        if header.chunk_plaintext_len(other) + TAG_LEN != sealed.len() {
            continue;
        }
        let Ok(position) = u32::try_from(other) else {
            break;
        };
        trial.clear();
        trial.extend_from_slice(sealed);
        let last = other + 1 == chunks;
        if stream
            .decrypt_in_place(position, last, header_bytes, &mut trial)
            .is_ok()
        {
            return EnvelopeError::ReorderedChunks {
                position: index,
                belongs_at: other,
            };
        }
    }
    EnvelopeError::TamperedChunk { index }
}

fn check_matches(header: &PayloadHeader, info: &EncryptionInfo) -> Result<()> {
    if header.payload_id != info.payload_id {
        return Err(EnvelopeError::HeaderMismatch {
            field: "payload id",
            expected: info.payload_id.to_string(),
            found: header.payload_id.to_string(),
        });
    }
    if header.chunk_size != info.chunk_size {
        return Err(EnvelopeError::HeaderMismatch {
            field: "chunk size",
            expected: info.chunk_size.to_string(),
            found: header.chunk_size.to_string(),
        });
    }
    if header.plaintext_len != info.plaintext_length {
        return Err(EnvelopeError::HeaderMismatch {
            field: "plaintext length",
            expected: info.plaintext_length.to_string(),
            found: header.plaintext_len.to_string(),
        });
    }
    Ok(())
}

/// Reads until `buf` is full or the reader is at end of file; returns the bytes read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
