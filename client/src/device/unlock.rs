//! Finding the data key of an encrypted target: the group slip embedded in the signed
//! metadata, else this device's slip file published next to the target.
//!
//! Slip files are not listed in TUF metadata; they need not be: a slip opens only with this
//! device's secret key and only for the target name and payload id it was made for (both
//! signed), so a swapped or forged slip is refused by the unwrap itself.
use super::error::{DeviceError, DeviceResult};
use crate::names::encode_url_path;
use crate::transport::{fetch_bytes, Transport, TransportError};
use ota_formats::envelope::{
    slip_path, DataKey, EncryptionInfo, EnvelopeError, KeySlip, RecipientSecretKey,
};

/// Largest slip file accepted (the binary slip is ~140 bytes plus the target name).
pub const MAX_SLIP_LEN: u64 = 4096;

/// The data key of `target`, or why this device cannot have it.
pub(crate) fn data_key(
    target: &str,
    info: &EncryptionInfo,
    secret: &RecipientSecretKey,
    targets: &dyn Transport,
) -> DeviceResult<DataKey> {
    let refused = |source: EnvelopeError| DeviceError::Decrypt {
        target: target.to_string(),
        source,
    };
    info.check_supported().map_err(refused)?;
    let id = secret.id();
    if info.slip_for(&id).is_ok() || !info.device_slips {
        return info.unwrap_data_key(target, secret, None).map_err(refused);
    }
    let relative = encode_url_path(&slip_path(target, &id));
    let bytes = match fetch_bytes(targets, &relative, MAX_SLIP_LEN) {
        Ok(b) => b,
        Err(TransportError::NotFound { .. }) => {
            return Err(refused(EnvelopeError::NoSlipForRecipient(id)))
        }
        Err(TransportError::TooLarge { .. }) => {
            return Err(refused(EnvelopeError::MalformedSlip(format!(
                "slip file larger than {MAX_SLIP_LEN} bytes"
            ))))
        }
        Err(source) => {
            return Err(DeviceError::SlipFetch {
                target: target.to_string(),
                source,
            })
        }
    };
    let slip = KeySlip::from_bytes(&bytes).map_err(refused)?;
    tracing::debug!(target, recipient = %id, "per-device slip fetched");
    info.unwrap_data_key(target, secret, Some(&slip))
        .map_err(refused)
}
