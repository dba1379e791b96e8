//! The device's X25519 recipient key (`STATE/device.key`, mode 0600): releases encrypted to
//! its public key (directly or via a per-device slip) can be decrypted only here.
use super::error::{state_io, DeviceError, DeviceResult};
use super::state::StateDir;
use ota_formats::envelope::RecipientSecretKey;

/// Create a new key pair in `STATE/device.key`. Refuses to replace an existing key unless
/// `force` (a replaced key can no longer decrypt releases made for the old one).
pub fn generate(state: &StateDir, force: bool) -> DeviceResult<RecipientSecretKey> {
    let path = state.device_key();
    if !force && path.exists() {
        return Err(DeviceError::AlreadyExists { path });
    }
    std::fs::create_dir_all(state.root()).map_err(|e| state_io(state.root(), e))?;
    let key = RecipientSecretKey::generate();
    let text = format!("{}\n", key.to_text().as_str());
    // The temp file is created 0600, so the secret is never readable by others, even briefly.
    crate::atomic_file::write(&path, text.as_bytes()).map_err(|e| DeviceError::BadState {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    set_private(&path)?;
    Ok(key)
}

#[cfg(unix)]
fn set_private(path: &std::path::Path) -> DeviceResult<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| state_io(path, e))
}

#[cfg(not(unix))]
fn set_private(_: &std::path::Path) -> DeviceResult<()> {
    Ok(())
}

/// The device key, if `STATE/device.key` exists.
pub fn load(state: &StateDir) -> DeviceResult<Option<RecipientSecretKey>> {
    let path = state.device_key();
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(state_io(path, e)),
    };
    RecipientSecretKey::from_text(text.trim())
        .map(Some)
        .map_err(|e| DeviceError::BadState {
            path,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_is_private_reloadable_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(load(&state).unwrap().is_none());
        let key = generate(&state, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(state.device_key())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load(&state).unwrap().unwrap().id(), key.id());
        assert!(matches!(
            generate(&state, false),
            Err(DeviceError::AlreadyExists { .. })
        ));
        let other = generate(&state, true).unwrap();
        assert_ne!(other.id(), key.id());
    }
}
