//! What the signed target metadata says about an encrypted target (`custom.ota.encryption`).

use super::error::{EnvelopeError, Result};
use super::header::PayloadId;
use super::recipient::{RecipientId, RecipientSecretKey};
use super::slip::{unwrap_key, KeySlip, SlipBinding};
use super::{DataKey, PayloadInfo, SlipBundleIndex};
use serde::{Deserialize, Serialize};

/// Value of [`EncryptionInfo::format`] for this version of the envelope.
pub const FORMAT_V1: &str = "ota-envelope-v1";
/// Value of [`EncryptionInfo::aead`]: ChaCha20-Poly1305 in STREAM-BE32.
pub const AEAD_NAME: &str = "chacha20poly1305-stream-be32";
/// Value of [`EncryptionInfo::key_wrap`]: the HPKE suite of the key slips.
pub const KEY_WRAP_NAME: &str = "hpke-base-x25519-hkdf-sha256-chacha20poly1305";

/// Encryption facts of one target, stored in its signed metadata.
///
/// Group slips (a handful of fleet or group keys) are embedded in `slips`. Per-device slips
/// live in separate files next to the target (see [`super::slip_path`]) and `device_slips`
/// tells the client to look there when `slips` has none for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionInfo {
    /// Envelope format and version, [`FORMAT_V1`].
    pub format: String,
    /// Payload AEAD construction, [`AEAD_NAME`].
    pub aead: String,
    /// Key-wrapping suite, [`KEY_WRAP_NAME`].
    pub key_wrap: String,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Payload id from the payload header.
    pub payload_id: PayloadId,
    /// Plaintext length (the size of the decrypted, still compressed or delta, payload).
    pub plaintext_length: u64,
    /// Group slips embedded in the metadata.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slips: Vec<KeySlip>,
    /// Whether per-device slip files were published next to the target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub device_slips: bool,
    /// Where the device slips are in the target's slip bundle ([`super::bundle_path`]), when
    /// they were published as one (see [`SlipBundleIndex`]). Clients that do not know it see
    /// no slip for them and skip the release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slip_bundle: Option<SlipBundleIndex>,
}

impl EncryptionInfo {
    /// Metadata for a payload just encrypted, with no slips yet.
    pub fn new(payload: &PayloadInfo) -> Self {
        Self {
            format: FORMAT_V1.into(),
            aead: AEAD_NAME.into(),
            key_wrap: KEY_WRAP_NAME.into(),
            chunk_size: payload.chunk_size,
            payload_id: payload.payload_id,
            plaintext_length: payload.plaintext_len,
            slips: Vec::new(),
            device_slips: false,
            slip_bundle: None,
        }
    }

    /// Refuses formats and algorithms this code does not implement.
    pub fn check_supported(&self) -> Result<()> {
        if self.format != FORMAT_V1 {
            return Err(EnvelopeError::BadHeader(format!(
                "unsupported encryption format {:?}",
                self.format
            )));
        }
        if self.aead != AEAD_NAME {
            return Err(EnvelopeError::BadHeader(format!(
                "unsupported payload aead {:?}",
                self.aead
            )));
        }
        if self.key_wrap != KEY_WRAP_NAME {
            return Err(EnvelopeError::BadHeader(format!(
                "unsupported key wrap {:?}",
                self.key_wrap
            )));
        }
        Ok(())
    }

    /// The binding slips of `target` must carry.
    pub fn binding(&self, target: &str) -> SlipBinding {
        SlipBinding::new(target, self.payload_id)
    }

    /// The embedded group slip for `recipient`.
    pub fn slip_for(&self, recipient: &RecipientId) -> Result<&KeySlip> {
        self.slips
            .iter()
            .find(|slip| slip.recipient == *recipient)
            .ok_or(EnvelopeError::NoSlipForRecipient(*recipient))
    }

    /// Finds this key's slip (an embedded group slip, else `device_slip` fetched from the slip
    /// file) and unwraps the data key of `target`.
    ///
    /// Fails with [`EnvelopeError::NoSlipForRecipient`] when neither exists.
    pub fn unwrap_data_key(
        &self,
        target: &str,
        secret: &RecipientSecretKey,
        device_slip: Option<&KeySlip>,
    ) -> Result<DataKey> {
        self.check_supported()?;
        let binding = self.binding(target);
        match self.slip_for(&secret.id()) {
            Ok(slip) => unwrap_key(slip, secret, &binding),
            Err(none) => match device_slip {
                Some(slip) => unwrap_key(slip, secret, &binding),
                None => Err(none),
            },
        }
    }
}
