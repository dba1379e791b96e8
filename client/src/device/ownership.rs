//! Ownership transfer: when a device changes hands, everything that let the previous owner
//! act as (or read releases for) this device is destroyed and replaced, while what keeps the
//! device safe to update stays.
//!
//! Replaced: the TLS identity key (a new key and signing request; the old certificate is
//! removed), the device's encryption key (`device.key`). Removed: the group keys imported
//! for the previous owner (they are that owner's credentials). Kept: the server, CA bundle
//! and other settings, the trusted metadata (rollback protection continues) and the
//! installed record.
use super::erase;
use super::error::{state_io, DeviceError, DeviceResult};
use super::identity::{self, SigningRequest};
use super::keys;
use super::state::StateDir;
use ota_formats::envelope::RecipientSecretKey;

/// What [`reenroll`] made and removed.
#[derive(Debug)]
pub struct Reenrolled {
    /// The new identity key and its signing request, for the fleet CA.
    pub request: SigningRequest,
    /// The new encryption key; its public key replaces the old one in the release owner's
    /// recipient list.
    pub device_key: RecipientSecretKey,
    /// Names of the group keys removed.
    pub removed_groups: Vec<String>,
    /// Whether there was an earlier identity key to destroy.
    pub replaced_identity: bool,
    /// Whether there was an earlier device key.
    pub replaced_device_key: bool,
}

/// Give the device new credentials: destroy the identity key (its certificate and request
/// too), the device key and every group key, then make a new identity key with a signing
/// request for `CN=cn` (the current identity's name when `None`) and a new device key.
///
/// Safe to run again after an interruption: it never needs the old keys.
pub fn reenroll(state: &StateDir, cn: Option<&str>) -> DeviceResult<Reenrolled> {
    let cn = match cn {
        Some(cn) => cn.to_string(),
        None => identity::current_name(state).ok_or(DeviceError::InvalidSetting {
            setting: "common name",
            reason: "none given, and the device has no earlier identity to take it from".into(),
        })?,
    };
    identity::validate_common_name(&cn)?;
    let replaced_identity = std::fs::symlink_metadata(state.identity_key()).is_ok();
    identity::destroy(state)?;

    let device_key = state.device_key();
    let replaced_device_key =
        erase::destroy_secret(&device_key).map_err(|e| state_io(&device_key, e))?;

    let removed_groups = remove_group_keys(state)?;

    let request = identity::create(state, &cn, true)?;
    let device_key = keys::generate(state, true)?;
    tracing::info!(
        cn,
        groups_removed = removed_groups.len(),
        "re-enrolled: new identity key and device key"
    );
    Ok(Reenrolled {
        request,
        device_key,
        removed_groups,
        replaced_identity,
        replaced_device_key,
    })
}

/// Destroy every file in `group-keys/` and the directory; the names of the keys removed.
fn remove_group_keys(state: &StateDir) -> DeviceResult<Vec<String>> {
    let dir = state.group_keys();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(state_io(dir, e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| state_io(&dir, e))?.path();
        // Every file goes, also a half-written import's temp file: all are secrets.
        erase::destroy_secret(&path).map_err(|e| state_io(&path, e))?;
        if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".key"))
            .filter(|n| !n.starts_with('.'))
        {
            removed.push(name.to_string());
        }
    }
    std::fs::remove_dir(&dir).map_err(|e| state_io(&dir, e))?;
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceConfig;

    #[test]
    fn reenroll_replaces_every_credential_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        DeviceConfig::new("https://u.example", "b", None)
            .unwrap()
            .save(&state)
            .unwrap();
        std::fs::create_dir_all(state.metadata()).unwrap();
        std::fs::write(state.metadata().join("root.json"), b"{}").unwrap();
        std::fs::write(state.installed(), b"{}").unwrap();
        // Nothing to take the name from yet.
        assert!(matches!(
            reenroll(&state, None),
            Err(DeviceError::InvalidSetting { .. })
        ));

        let old_req = identity::create(&state, "unit-7", false).unwrap();
        let old_key_pem = std::fs::read(&old_req.key).unwrap();
        let old_device = keys::generate(&state, false).unwrap();
        let group = RecipientSecretKey::generate();
        keys::import_group(&state, "fleet-a", &group.to_text(), "f", false).unwrap();

        let done = reenroll(&state, None).unwrap();
        assert_eq!(done.request.cn, "unit-7", "the earlier name is kept");
        assert!(done.replaced_identity && done.replaced_device_key);
        assert_eq!(done.removed_groups, vec!["fleet-a".to_string()]);
        assert_ne!(std::fs::read(&done.request.key).unwrap(), old_key_pem);
        assert_ne!(done.device_key.id(), old_device.id());
        assert_eq!(
            keys::load(&state).unwrap().unwrap().id(),
            done.device_key.id()
        );
        assert!(!state.group_keys().exists());
        assert!(!state.identity_cert().exists());
        // Kept: configuration, trusted metadata, installed record.
        DeviceConfig::load(&state).unwrap();
        assert!(state.metadata().join("root.json").exists());
        assert!(state.installed().exists());

        let named = reenroll(&state, Some("unit-7-newowner")).unwrap();
        assert_eq!(named.request.cn, "unit-7-newowner");
        assert!(named.removed_groups.is_empty());
    }
}
