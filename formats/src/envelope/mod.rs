//! Encrypted payloads ("envelopes") and the key slips that unlock them.
//!
//! A target's payload (already compressed or a delta) is encrypted under a fresh random
//! [`DataKey`] in 64 KiB chunks with ChaCha20-Poly1305 in the STREAM construction, so a
//! device decrypts while streaming, with memory bounded by one chunk, and detects tampering,
//! reordering and truncation. The data key is wrapped with HPKE (RFC 9180) for each
//! recipient key in a [`KeySlip`] bound to the target name and payload id. The byte layouts
//! are specified in `formats/ENVELOPE.md`.
//!
//! No I/O policy here: functions take `Read`/`Write`; where files go is the caller's choice.
//!
//! ```
//! use ota_formats::envelope::*;
//!
//! // Release side: encrypt, then wrap the data key for a device.
//! let device = RecipientSecretKey::generate();
//! let payload = b"compressed firmware".to_vec();
//! let key = DataKey::generate();
//! let mut sealed = Vec::new();
//! let info = encrypt_stream(&payload[..], &mut sealed, &key, &EncryptParams::new(payload.len() as u64))?;
//! let mut meta = EncryptionInfo::new(&info);
//! meta.slips.push(wrap_key(&key, device.public_key(), &meta.binding("fw.bin"))?);
//!
//! // Device side: unwrap with its secret key, decrypt into a temporary file (here: a Vec).
//! let key = meta.unwrap_data_key("fw.bin", &device, None)?;
//! let mut plain = Vec::new();
//! decrypt_stream_checked(&sealed[..], &mut plain, &key, &meta)?;
//! assert_eq!(plain, payload);
//! # Ok::<(), EnvelopeError>(())
//! ```

mod bundle;
mod datakey;
mod error;
mod header;
mod info;
mod recipient;
mod schedule;
mod sealer;
mod slip;
mod stream;

pub use bundle::{
    block_bits_for, block_of, bundle_header, bundle_path, bundle_record, read_bundle_header,
    record_id, SlipBundleIndex, BUNDLE_MAGIC, BUNDLE_SUFFIX, BUNDLE_VERSION, MAX_BLOCK_BITS,
    MAX_BLOCK_LEN, RECORD_LEN,
};
pub use datakey::{DataKey, DATA_KEY_LEN};
pub use error::{EnvelopeError, Result};
pub use header::{
    PayloadHeader, PayloadId, AEAD_CHACHA20POLY1305_STREAM_BE32, DEFAULT_CHUNK_SIZE, HEADER_LEN,
    KDF_HKDF_SHA256, MAGIC, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, NONCE_PREFIX_LEN, TAG_LEN, VERSION,
};
pub use info::{EncryptionInfo, AEAD_NAME, FORMAT_V1, KEY_WRAP_NAME};
pub use recipient::{
    is_valid_recipient_name, RecipientId, RecipientPublicKey, RecipientSecretKey,
    MAX_RECIPIENT_NAME_LEN, PUBLIC_KEY_PREFIX, SECRET_KEY_PREFIX,
};
pub use schedule::{INFO_HEADER_MAC, INFO_PAYLOAD_KEY};
pub use sealer::SlipSealer;
pub use slip::{
    slip_file_name, slip_path, unwrap_key, wrap_key, wrap_keys, KeySlip, SlipBinding, ENC_LEN,
    SLIP_FILE_EXTENSION, SLIP_INFO_DOMAIN, SLIP_MAGIC, SLIP_VERSION, WRAPPED_KEY_LEN,
};
pub use stream::{
    decrypt_stream, decrypt_stream_checked, encrypt_stream, read_header, EncryptParams,
    PayloadInfo, REORDER_SEARCH_WINDOW,
};
