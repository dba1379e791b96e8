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
    bundle_path, slip_path, DataKey, EncryptionInfo, EnvelopeError, KeySlip, RecipientId,
    SlipBundleIndex,
};

/// Largest slip file accepted (the binary slip is ~140 bytes plus the target name).
pub const MAX_SLIP_LEN: u64 = 4096;

/// Where this device's way into an encrypted target is.
enum Opening<'k> {
    /// A slip embedded in the signed metadata for this held key.
    Embedded(&'k ota_formats::envelope::RecipientSecretKey),
    /// This device's own slip file, fetched from beside the target.
    File(&'k ota_formats::envelope::RecipientSecretKey, KeySlip),
}

/// Find this device's slip for `target`: `Ok(None)` when the release is not addressed to any
/// key it holds (no embedded slip for them, no slip file for the device key).
fn find_slip<'k>(
    target: &str,
    info: &EncryptionInfo,
    keys: &'k Keyring,
    targets: &dyn Transport,
) -> DeviceResult<Option<Opening<'k>>> {
    let refused = |source: EnvelopeError| DeviceError::Decrypt {
        target: target.to_string(),
        source,
    };
    if let Some(secret) = keys.all().find(|k| info.slip_for(&k.id()).is_ok()) {
        tracing::debug!(target, recipient = %secret.id(), "embedded slip found");
        return Ok(Some(Opening::Embedded(secret)));
    }
    let Some(secret) = keys
        .device
        .as_ref()
        .filter(|_| info.device_slips || info.slip_bundle.is_some())
    else {
        return Ok(None);
    };
    let id = secret.id();
    if let Some(index) = &info.slip_bundle {
        return bundle_slip(target, info, index, secret, targets);
    }
    let relative = encode_url_path(&slip_path(target, &id));
    let bytes = match fetch_bytes(targets, &relative, MAX_SLIP_LEN) {
        Ok(b) => b,
        Err(e) if e.is_missing() => return Ok(None),
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
    Ok(Some(Opening::File(secret, slip)))
}

/// This device's slip from the target's slip bundle: its block, found by the signed index,
/// fetched with one Range request. A block that is not what the index promises (length,
/// records of another block, order) is refused by name; no record for this device means the
/// release is not for it.
fn bundle_slip<'k>(
    target: &str,
    info: &EncryptionInfo,
    index: &SlipBundleIndex,
    secret: &'k ota_formats::envelope::RecipientSecretKey,
    targets: &dyn Transport,
) -> DeviceResult<Option<Opening<'k>>> {
    let refused = |source: EnvelopeError| DeviceError::Decrypt {
        target: target.to_string(),
        source,
    };
    let id = secret.id();
    let (block, offset, len) = index.block_for(&id).map_err(refused)?;
    let file_len = index.file_len().map_err(refused)?;
    let relative = encode_url_path(&bundle_path(target));
    let bytes = match targets.fetch_slice(&relative, offset, len, file_len) {
        Ok(b) => b,
        Err(e) if e.is_missing() => return Ok(None),
        Err(TransportError::TooLarge { .. }) => {
            return Err(refused(EnvelopeError::SlipBundle(format!(
                "more than the {len} bytes of block {block}, or a bundle larger than the {file_len} bytes its index says"
            ))))
        }
        Err(source) => {
            return Err(DeviceError::SlipFetch {
                target: target.to_string(),
                source,
            })
        }
    };
    let found = index
        .find(&id, &bytes, &info.binding(target))
        .map_err(refused)?;
    tracing::debug!(target, recipient = %id, block, len, found = found.is_some(), "slip bundle block fetched");
    Ok(found.map(|slip| Opening::File(secret, slip)))
}

/// Whether the encrypted release `target` is addressed to this device: it holds a key with
/// an embedded slip, or its own slip file is published. A release that is not is not an
/// update for this device (it is skipped, not refused). A slip that is there but does not
/// open still counts as addressed: installing then refuses it as evidence of tampering.
pub(crate) fn addressed_to(
    target: &str,
    info: &EncryptionInfo,
    keys: &Keyring,
    targets: &dyn Transport,
) -> DeviceResult<bool> {
    Ok(find_slip(target, info, keys, targets)?.is_some())
}

/// What opening an encrypted payload needs: the held keys and where slips come from.
pub(crate) struct Unlock<'a> {
    /// The device's keys (device key and group keys).
    pub keys: &'a Keyring,
    /// Where `device.key` lives (for messages).
    pub device_key_path: &'a std::path::Path,
    /// Where per-device slips are fetched from (the targets base).
    pub targets: &'a dyn Transport,
}

impl Unlock<'_> {
    /// The parameters and data key of payload `target` encrypted as `encryption`; `None`
    /// when it is not encrypted. Malformed parameters and a device without keys are refused
    /// before anything is read or written.
    pub(crate) fn key_for<'e>(
        &self,
        target: &str,
        encryption: &'e super::image::Encryption,
    ) -> DeviceResult<Option<(&'e EncryptionInfo, DataKey)>> {
        use super::image::Encryption;
        let info = match encryption {
            Encryption::None => return Ok(None),
            Encryption::Malformed(reason) => {
                return Err(DeviceError::BadTargetMeta {
                    target: target.to_string(),
                    reason: reason.clone(),
                })
            }
            Encryption::Sealed(info) => info.as_ref(),
        };
        if self.keys.is_empty() {
            return Err(DeviceError::NoDeviceKey {
                target: target.to_string(),
                key: self.device_key_path.to_path_buf(),
            });
        }
        Ok(Some((
            info,
            data_key(target, info, self.keys, self.targets)?,
        )))
    }
}

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
    match find_slip(target, info, keys, targets)? {
        Some(Opening::Embedded(secret)) => {
            info.unwrap_data_key(target, secret, None).map_err(refused)
        }
        Some(Opening::File(secret, slip)) => info
            .unwrap_data_key(target, secret, Some(&slip))
            .map_err(refused),
        None => {
            // Name the key a release owner would most likely address: the device's own.
            let id = keys
                .device
                .as_ref()
                .or(keys.groups.first().map(|g| &g.key))
                .map(|k| k.id())
                .unwrap_or(RecipientId([0; 16]));
            Err(refused(EnvelopeError::NoSlipForRecipient(id)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::keys::GroupKey;
    use crate::transport::DirTransport;
    use ota_formats::envelope::{wrap_key, PayloadId, PayloadInfo, RecipientSecretKey};

    const TARGET: &str = "fw-1.0.0.img.zst";

    fn info() -> EncryptionInfo {
        EncryptionInfo::new(&PayloadInfo {
            payload_id: PayloadId([7; 16]),
            chunk_size: 65536,
            plaintext_len: 10,
            ciphertext_len: 0,
        })
    }

    fn ring(device: Option<&RecipientSecretKey>, groups: &[&RecipientSecretKey]) -> Keyring {
        Keyring {
            device: device.cloned(),
            groups: groups
                .iter()
                .enumerate()
                .map(|(i, k)| GroupKey {
                    name: format!("g{i}"),
                    key: (*k).clone(),
                })
                .collect(),
        }
    }

    fn put_slip(dir: &std::path::Path, slip: &KeySlip) {
        let p = dir.join(slip_path(TARGET, &slip.recipient));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, slip.to_bytes().unwrap()).unwrap();
    }

    #[test]
    fn every_held_key_is_tried_then_the_slip_file() {
        let dir = tempfile::tempdir().unwrap();
        let transport = DirTransport::new(dir.path());
        let (g1, g2, dev) = (
            RecipientSecretKey::generate(),
            RecipientSecretKey::generate(),
            RecipientSecretKey::generate(),
        );
        let key = DataKey::generate();
        let mut meta = info();
        meta.slips
            .push(wrap_key(&key, g2.public_key(), &meta.binding(TARGET)).unwrap());
        // The second group key opens the embedded slip; no device key needed.
        let got = data_key(TARGET, &meta, &ring(None, &[&g1, &g2]), &transport).unwrap();
        assert_eq!(got.expose_secret(), key.expose_secret());
        // Only g1 held: no slip for it.
        let err = data_key(TARGET, &meta, &ring(Some(&dev), &[&g1]), &transport).unwrap_err();
        assert!(
            matches!(&err, DeviceError::Decrypt { source: EnvelopeError::NoSlipForRecipient(id), .. } if *id == dev.id()),
            "{err}"
        );
        // A slip file for the device: found with the device key, despite held group keys.
        meta.device_slips = true;
        put_slip(
            dir.path(),
            &wrap_key(&key, dev.public_key(), &meta.binding(TARGET)).unwrap(),
        );
        let got = data_key(TARGET, &meta, &ring(Some(&dev), &[&g1]), &transport).unwrap();
        assert_eq!(got.expose_secret(), key.expose_secret());
        // Group keys alone never fetch slip files.
        let err = data_key(TARGET, &meta, &ring(None, &[&g1]), &transport).unwrap_err();
        assert!(
            matches!(&err, DeviceError::Decrypt { source: EnvelopeError::NoSlipForRecipient(id), .. } if *id == g1.id()),
            "{err}"
        );
    }

    #[test]
    fn an_embedded_slip_for_another_target_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let transport = DirTransport::new(dir.path());
        let (group, dev) = (
            RecipientSecretKey::generate(),
            RecipientSecretKey::generate(),
        );
        let key = DataKey::generate();
        let mut meta = info();
        meta.slips.push(
            wrap_key(
                &key,
                group.public_key(),
                &meta.binding("other-1.0.0.img.zst"),
            )
            .unwrap(),
        );
        meta.device_slips = true;
        put_slip(
            dir.path(),
            &wrap_key(&key, dev.public_key(), &meta.binding(TARGET)).unwrap(),
        );
        let err = data_key(TARGET, &meta, &ring(Some(&dev), &[&group]), &transport).unwrap_err();
        assert!(
            matches!(
                &err,
                DeviceError::Decrypt {
                    source: EnvelopeError::BindingMismatch { .. },
                    ..
                }
            ),
            "{err}"
        );
    }
}
