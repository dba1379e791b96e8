//! Key slips: the data key wrapped for one recipient with HPKE (RFC 9180), bound to one target
//! and one payload.
//!
//! Suite: mode base, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305. The HPKE
//! `info` is `"ota-envelope v1 key slip" || 0x00 || u32be(len(target)) || target || payload id`;
//! the AEAD associated data is empty. A slip therefore opens only for the target name and
//! payload id it was made for, with the recipient's secret key.

use super::error::{EnvelopeError, Result};
use super::header::PayloadId;
use super::recipient::{RecipientId, RecipientPublicKey, RecipientSecretKey};
use super::{DataKey, DATA_KEY_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hpke::aead::{AeadTag, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Domain-separation string at the start of every slip's HPKE `info`.
pub const SLIP_INFO_DOMAIN: &[u8] = b"ota-envelope v1 key slip";
/// Magic bytes at the start of a binary slip file.
pub const SLIP_MAGIC: [u8; 8] = *b"OTASLIP\n";
/// Version byte of the binary slip layout.
pub const SLIP_VERSION: u8 = 1;
/// Length of the HPKE encapsulated key (an X25519 public key).
pub const ENC_LEN: usize = 32;
/// Length of the wrapped data key: 32 bytes of ciphertext and a 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = DATA_KEY_LEN + 16;
/// File-name extension of a per-device slip file.
pub const SLIP_FILE_EXTENSION: &str = "slip";
const FIXED_LEN: usize = 8 + 1 + 16 + 16 + ENC_LEN + WRAPPED_KEY_LEN + 2;

/// What a slip is bound to: the target it unlocks and that target's payload id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlipBinding {
    /// Target name as listed in the targets metadata.
    pub target: String,
    /// Payload id from the payload header (and the target's [`super::EncryptionInfo`]).
    pub payload_id: PayloadId,
}

impl SlipBinding {
    /// A binding to `target` and `payload_id`.
    pub fn new(target: impl Into<String>, payload_id: PayloadId) -> Self {
        Self {
            target: target.into(),
            payload_id,
        }
    }

    pub(crate) fn hpke_info(&self) -> Result<Vec<u8>> {
        let name = self.target.as_bytes();
        let len = u32::try_from(name.len())
            .map_err(|_| EnvelopeError::MalformedSlip("target name too long".into()))?;
        let mut info = Vec::with_capacity(SLIP_INFO_DOMAIN.len() + 1 + 4 + name.len() + 16);
        info.extend_from_slice(SLIP_INFO_DOMAIN);
        info.push(0);
        info.extend_from_slice(&len.to_be_bytes());
        info.extend_from_slice(name);
        info.extend_from_slice(&self.payload_id.0);
        Ok(info)
    }
}

/// The data key of one target wrapped for one recipient key.
///
/// JSON (for group slips inside the signed target metadata):
/// `{"recipient": hex, "target": string, "payload_id": hex, "enc": base64, "wrapped_key": base64}`.
/// Binary (for per-device slip files): see [`KeySlip::to_bytes`].
///
/// `target` and `payload_id` are written in clear so a mismatch is reported as such; they are
/// not trusted: [`unwrap_key`] always opens with the binding the caller expects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySlip {
    /// Id of the recipient key this slip is wrapped for.
    pub recipient: RecipientId,
    /// Target name the slip is bound to.
    pub target: String,
    /// Payload id the slip is bound to.
    pub payload_id: PayloadId,
    /// HPKE encapsulated key.
    #[serde(with = "b64_array")]
    pub enc: [u8; ENC_LEN],
    /// The data key sealed with the HPKE context, tag appended.
    #[serde(with = "b64_array")]
    pub wrapped_key: [u8; WRAPPED_KEY_LEN],
}

impl KeySlip {
    /// Binary layout:
    /// `"OTASLIP\n" || version (1) || recipient id (16) || payload id (16) || enc (32) ||
    /// wrapped key (48) || u16be(len(target)) || target (UTF-8)`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let name = self.target.as_bytes();
        let len = u16::try_from(name.len()).map_err(|_| {
            EnvelopeError::MalformedSlip("target name longer than 65535 bytes".into())
        })?;
        let mut out = Vec::with_capacity(FIXED_LEN + name.len());
        out.extend_from_slice(&SLIP_MAGIC);
        out.push(SLIP_VERSION);
        out.extend_from_slice(&self.recipient.0);
        out.extend_from_slice(&self.payload_id.0);
        out.extend_from_slice(&self.enc);
        out.extend_from_slice(&self.wrapped_key);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(name);
        Ok(out)
    }

    /// Reads the binary layout written by [`KeySlip::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let bad = |why: &str| EnvelopeError::MalformedSlip(why.to_string());
        if bytes.len() < FIXED_LEN {
            return Err(bad("shorter than the fixed slip fields"));
        }
        if bytes[..8] != SLIP_MAGIC {
            return Err(bad("bad magic bytes (not an OTA key slip)"));
        }
        if bytes[8] != SLIP_VERSION {
            return Err(EnvelopeError::MalformedSlip(format!(
                "unsupported slip version {}",
                bytes[8]
            )));
        }
        let mut at = 9;
        let mut take = |n: usize| {
            let part = &bytes[at..at + n];
            at += n;
            part
        };
        let mut recipient = [0u8; 16];
        recipient.copy_from_slice(take(16));
        let mut payload_id = [0u8; 16];
        payload_id.copy_from_slice(take(16));
        let mut enc = [0u8; ENC_LEN];
        enc.copy_from_slice(take(ENC_LEN));
        let mut wrapped_key = [0u8; WRAPPED_KEY_LEN];
        wrapped_key.copy_from_slice(take(WRAPPED_KEY_LEN));
        let len_bytes = take(2);
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let name = &bytes[FIXED_LEN..];
        if name.len() != len {
            return Err(bad("target name length does not match the slip size"));
        }
        let target = std::str::from_utf8(name)
            .map_err(|_| bad("target name is not UTF-8"))?
            .to_string();
        Ok(Self {
            recipient: RecipientId(recipient),
            target,
            payload_id: PayloadId(payload_id),
            enc,
            wrapped_key,
        })
    }

    /// File name of this slip in a per-device slip directory: `<recipient-id>.slip`.
    pub fn file_name(&self) -> String {
        slip_file_name(&self.recipient)
    }
}

/// File name of a recipient's per-device slip: `<recipient-id>.slip`.
pub fn slip_file_name(recipient: &RecipientId) -> String {
    format!("{recipient}.{SLIP_FILE_EXTENSION}")
}

/// Relative path of a recipient's per-device slip next to the target file:
/// `<target>.slips/<recipient-id>.slip`. Where that lives on a server is the caller's choice.
pub fn slip_path(target: &str, recipient: &RecipientId) -> String {
    format!("{target}.slips/{}", slip_file_name(recipient))
}

/// Wraps `key` for `recipient`, bound to `binding`.
pub fn wrap_key(
    key: &DataKey,
    recipient: &RecipientPublicKey,
    binding: &SlipBinding,
) -> Result<KeySlip> {
    let info = binding.hpke_info()?;
    let mut sealed = Zeroizing::new(*key.expose_secret());
    let (encapped, tag) = hpke::single_shot_seal_in_place_detached::<
        ChaCha20Poly1305,
        HkdfSha256,
        X25519HkdfSha256,
        _,
    >(
        &OpModeS::Base,
        recipient.hpke(),
        &info,
        &mut sealed[..],
        &[],
        &mut OsRng,
    )
    .map_err(|_| EnvelopeError::Crypto("HPKE seal"))?;
    let mut enc = [0u8; ENC_LEN];
    enc.copy_from_slice(&encapped.to_bytes());
    let mut wrapped_key = [0u8; WRAPPED_KEY_LEN];
    wrapped_key[..DATA_KEY_LEN].copy_from_slice(&sealed[..]);
    wrapped_key[DATA_KEY_LEN..].copy_from_slice(&tag.to_bytes());
    Ok(KeySlip {
        recipient: recipient.id(),
        target: binding.target.clone(),
        payload_id: binding.payload_id,
        enc,
        wrapped_key,
    })
}

/// Wraps `key` for every recipient, using all available cores; the slips come back in the
/// order of `recipients`. For releases to many devices (one slip file each); made by
/// [`super::SlipSealer`].
pub fn wrap_keys(
    key: &DataKey,
    recipients: &[RecipientPublicKey],
    binding: &SlipBinding,
) -> Result<Vec<KeySlip>> {
    let sealer = super::SlipSealer::new(key, binding)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, recipients.len().max(1));
    let per_thread = recipients.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = recipients
            .chunks(per_thread)
            .map(|part| {
                let sealer = &sealer;
                scope.spawn(move || {
                    part.iter()
                        .map(|recipient| sealer.seal(recipient))
                        .collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut slips = Vec::with_capacity(recipients.len());
        for worker in workers {
            let part = worker
                .join()
                .map_err(|_| EnvelopeError::Crypto("slip worker panicked"))??;
            slips.extend(part);
        }
        Ok(slips)
    })
}

/// Unwraps the data key from `slip` with `secret`, checking that the slip is for this key and
/// bound to `binding` (the target being installed and its payload id from signed metadata).
///
/// Errors: [`EnvelopeError::WrongKey`] if the slip names another recipient,
/// [`EnvelopeError::BindingMismatch`] if it names another target or payload,
/// [`EnvelopeError::SlipDoesNotOpen`] if HPKE refuses it (altered slip).
pub fn unwrap_key(
    slip: &KeySlip,
    secret: &RecipientSecretKey,
    binding: &SlipBinding,
) -> Result<DataKey> {
    let ours = secret.id();
    if slip.recipient != ours {
        return Err(EnvelopeError::WrongKey {
            slip: slip.recipient,
            ours,
        });
    }
    if slip.target != binding.target || slip.payload_id != binding.payload_id {
        return Err(EnvelopeError::BindingMismatch {
            expected_target: binding.target.clone(),
            expected_payload: binding.payload_id,
            slip_target: slip.target.clone(),
            slip_payload: slip.payload_id,
        });
    }
    // Open with the caller's binding, never the slip's own fields.
    let info = binding.hpke_info()?;
    let encapped = <X25519HkdfSha256 as Kem>::EncappedKey::from_bytes(&slip.enc)
        .map_err(|_| EnvelopeError::SlipDoesNotOpen)?;
    let tag = AeadTag::<ChaCha20Poly1305>::from_bytes(&slip.wrapped_key[DATA_KEY_LEN..])
        .map_err(|_| EnvelopeError::SlipDoesNotOpen)?;
    let mut plain = Zeroizing::new([0u8; DATA_KEY_LEN]);
    plain.copy_from_slice(&slip.wrapped_key[..DATA_KEY_LEN]);
    hpke::single_shot_open_in_place_detached::<ChaCha20Poly1305, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        secret.hpke(),
        &encapped,
        &info,
        &mut plain[..],
        &[],
        &tag,
    )
    .map_err(|_| EnvelopeError::SlipDoesNotOpen)?;
    Ok(DataKey::from_bytes(*plain))
}

/// Serde helper: fixed-size byte arrays as standard base64 strings.
mod b64_array {
    use super::{Engine, STANDARD};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))?;
        bytes.try_into().map_err(|b: Vec<u8>| {
            serde::de::Error::custom(format!("expected {N} bytes, got {}", b.len()))
        })
    }
}
