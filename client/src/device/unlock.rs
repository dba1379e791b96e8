//! Finding the data key of an encrypted target: a slip embedded in the signed metadata for
//! one of the held keys (each group key, then the device key), else this device's slip file
//! published next to the target (device key only).
//!
//! Slip files are not listed in TUF metadata; they need not be: a slip opens only with this
//! device's secret key and only for the target name and payload id it was made for (both
//! signed), so a swapped or forged slip is refused by the unwrap itself.
use super::error::{DeviceError, DeviceResult};
use super::keys::Keyring;
use crate::names::encode_url_path;
use crate::transport::{fetch_bytes, Transport, TransportError};
use ota_formats::envelope::{
    slip_path, DataKey, EncryptionInfo, EnvelopeError, KeySlip, RecipientId,
};

/// Largest slip file accepted (the binary slip is ~140 bytes plus the target name).
pub const MAX_SLIP_LEN: u64 = 4096;

/// The data key of `target`, or why this device cannot have it.
///
/// A slip that names a held key but does not open (wrong key, other target, altered) is
/// reported as such, not skipped: it is evidence of tampering or a release-side mistake.
pub(crate) fn data_key(
    target: &str,
    info: &EncryptionInfo,
    keys: &Keyring,
    targets: &dyn Transport,
) -> DeviceResult<DataKey> {
    let refused = |source: EnvelopeError| DeviceError::Decrypt {
        target: target.to_string(),
        source,
    };
    info.check_supported().map_err(refused)?;
    if let Some(secret) = keys.all().find(|k| info.slip_for(&k.id()).is_ok()) {
        tracing::debug!(target, recipient = %secret.id(), "embedded slip found");
        return info.unwrap_data_key(target, secret, None).map_err(refused);
    }
    let Some(secret) = keys.device.as_ref().filter(|_| info.device_slips) else {
        // Name the key a release owner would most likely address: the device's own.
        let id = keys
            .device
            .as_ref()
            .or(keys.groups.first().map(|g| &g.key))
            .map(|k| k.id())
            .unwrap_or(RecipientId([0; 16]));
        return Err(refused(EnvelopeError::NoSlipForRecipient(id)));
    };
    let id = secret.id();
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
