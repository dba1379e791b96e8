//! The device's X25519 recipient keys: its own key (`STATE/device.key`, mode 0600), made on
//! the device, and group secrets provisioned into it (`STATE/group-keys/NAME.key`, 0600).
//! Releases encrypted to the device (a per-device slip file) or to one of its groups (a slip
//! embedded in the signed metadata) can be decrypted only with these.
use super::error::{state_io, DeviceError, DeviceResult};
use super::state::StateDir;
use ota_formats::envelope::{RecipientId, RecipientSecretKey};

/// Longest group name (as in `ota-sign recipients group-create`).
pub const MAX_GROUP_NAME_LEN: usize = ota_formats::envelope::MAX_RECIPIENT_NAME_LEN;

/// A group secret held by the device.
#[derive(Debug, Clone)]
pub struct GroupKey {
    /// The group's name (the file `group-keys/NAME.key`).
    pub name: String,
    /// The group's secret key.
    pub key: RecipientSecretKey,
}

/// Every decryption key the device holds.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    /// `device.key`, if created.
    pub device: Option<RecipientSecretKey>,
    /// Imported group keys, sorted by name.
    pub groups: Vec<GroupKey>,
}

impl Keyring {
    /// Load the device key and all group keys of `state`.
    pub fn load(state: &StateDir) -> DeviceResult<Self> {
        Ok(Keyring {
            device: load(state)?,
            groups: load_groups(state)?,
        })
    }

    /// Whether the device holds no key at all.
    pub fn is_empty(&self) -> bool {
        self.device.is_none() && self.groups.is_empty()
    }

    /// The keys to try against slips embedded in the metadata: group keys first, then the
    /// device key.
    pub fn all(&self) -> impl Iterator<Item = &RecipientSecretKey> {
        self.groups.iter().map(|g| &g.key).chain(self.device.iter())
    }
}

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
    ota_fs::atomic::replace(&path, text.as_bytes(), ota_fs::mode::SECRET_FILE).map_err(|e| {
        DeviceError::BadState {
            path: path.clone(),
            reason: e.to_string(),
        }
    })?;
    set_private(&path)?;
    Ok(key)
}

fn set_private(path: &std::path::Path) -> DeviceResult<()> {
    set_mode(path, 0o600)
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) -> DeviceResult<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| state_io(path, e))
}

#[cfg(not(unix))]
fn set_mode(_: &std::path::Path, _: u32) -> DeviceResult<()> {
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

/// Check a group name: 1 to 64 ASCII letters, digits, `.`, `_`, `-`, starting with a letter
/// or digit (the rule of `ota-sign`; the name becomes a file name).
pub fn validate_group_name(name: &str) -> DeviceResult<()> {
    let ok = ota_formats::envelope::is_valid_recipient_name(name);
    if ok {
        Ok(())
    } else {
        Err(DeviceError::InvalidSetting {
            setting: "group name",
            reason: format!(
                "{name:?}: use 1-{MAX_GROUP_NAME_LEN} ASCII letters, digits, '.', '_' or '-', \
                 starting with a letter or digit"
            ),
        })
    }
}

/// Store group `name`'s secret key (`text`: the `otasec1...` line of `KEYS/group-NAME.otasec`,
/// read from `source`, named in errors) in `STATE/group-keys/NAME.key`, mode 0600.
///
/// The text is validated first. Refuses to replace a key of the same name unless `force`, and
/// a key the device already holds (as its device key or under another group name).
pub fn import_group(
    state: &StateDir,
    name: &str,
    text: &str,
    source: &str,
    force: bool,
) -> DeviceResult<RecipientSecretKey> {
    validate_group_name(name)?;
    let key =
        RecipientSecretKey::from_text(text.trim()).map_err(|e| DeviceError::InvalidGroupKey {
            from: source.to_string(),
            reason: e.to_string(),
        })?;
    let path = state.group_key(name);
    if !force && path.exists() {
        return Err(DeviceError::AlreadyExists { path });
    }
    let held = Keyring::load(state)?;
    let id = key.id();
    if held.device.as_ref().is_some_and(|d| d.id() == id) {
        return Err(DeviceError::InvalidGroupKey {
            from: source.to_string(),
            reason: format!("this is the device's own key ({id}), not a group key"),
        });
    }
    if let Some(other) = held
        .groups
        .iter()
        .find(|g| g.key.id() == id && g.name != name)
    {
        return Err(DeviceError::InvalidGroupKey {
            from: source.to_string(),
            reason: format!("this key ({id}) is already held as group {:?}", other.name),
        });
    }
    let dir = state.group_keys();
    std::fs::create_dir_all(&dir).map_err(|e| state_io(&dir, e))?;
    set_mode(&dir, 0o700)?;
    let line = zeroize::Zeroizing::new(format!("{}\n", key.to_text().as_str()));
    ota_fs::atomic::replace(&path, line.as_bytes(), ota_fs::mode::SECRET_FILE).map_err(|e| {
        DeviceError::BadState {
            path: path.clone(),
            reason: e.to_string(),
        }
    })?;
    set_private(&path)?;
    Ok(key)
}

/// The group keys in `STATE/group-keys/`, sorted by name. A file there that is not a valid
/// `NAME.key` secret key is reported (not skipped): the device would silently lose a group.
pub fn load_groups(state: &StateDir) -> DeviceResult<Vec<GroupKey>> {
    let dir = state.group_keys();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(state_io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| state_io(&dir, e))?.path();
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Temp files of an interrupted import start with '.'.
        if file_name.starts_with('.') {
            continue;
        }
        let bad = |reason: String| DeviceError::BadState {
            path: path.clone(),
            reason,
        };
        let name = file_name
            .strip_suffix(".key")
            .ok_or_else(|| bad("not a group key file (NAME.key)".into()))?;
        validate_group_name(name).map_err(|e| bad(e.to_string()))?;
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(&path).map_err(|e| state_io(&path, e))?,
        );
        let key = RecipientSecretKey::from_text(text.trim()).map_err(|e| bad(e.to_string()))?;
        out.push(GroupKey {
            name: name.to_string(),
            key,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Ids of the held keys, for messages.
pub fn ids(keys: &Keyring) -> Vec<RecipientId> {
    keys.all().map(|k| k.id()).collect()
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

    #[test]
    fn group_import_validates_is_private_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(load_groups(&state).unwrap().is_empty());
        let g = RecipientSecretKey::generate();
        let text = g.to_text();
        let got = import_group(
            &state,
            "board-a",
            &format!("{}\n", text.as_str()),
            "f",
            false,
        )
        .unwrap();
        assert_eq!(got.id(), g.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(state.group_key("board-a")), 0o600);
            assert_eq!(mode(state.group_keys()), 0o700);
        }
        let groups = load_groups(&state).unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].name, "board-a");
        assert_eq!(groups[0].key.id(), g.id());

        // Same name again: refused without force, replaced with it.
        let other = RecipientSecretKey::generate();
        assert!(matches!(
            import_group(&state, "board-a", &other.to_text(), "f", false),
            Err(DeviceError::AlreadyExists { .. })
        ));
        import_group(&state, "board-a", &other.to_text(), "f", true).unwrap();
        assert_eq!(load_groups(&state).unwrap()[0].key.id(), other.id());

        // The same key under a second name, a public key, garbage, a bad name: refused.
        assert!(matches!(
            import_group(&state, "board-b", &other.to_text(), "f", false),
            Err(DeviceError::InvalidGroupKey { .. })
        ));
        let public = other.public_key().to_text();
        for bad in [public.as_str(), "otasec1AAAA", ""] {
            assert!(matches!(
                import_group(&state, "board-c", bad, "f", false),
                Err(DeviceError::InvalidGroupKey { .. })
            ));
        }
        for name in ["", "../x", ".hidden", "a/b", &"x".repeat(65)] {
            assert!(matches!(
                import_group(&state, name, &g.to_text(), "f", false),
                Err(DeviceError::InvalidSetting { .. })
            ));
        }
        // The device key is not a group key.
        let device = generate(&state, false).unwrap();
        assert!(matches!(
            import_group(&state, "dev", &device.to_text(), "f", false),
            Err(DeviceError::InvalidGroupKey { .. })
        ));
        let ring = Keyring::load(&state).unwrap();
        assert_eq!(ids(&ring), vec![other.id(), device.id()]);
        assert!(!state.group_key("board-c").exists());
    }

    #[test]
    fn a_corrupt_group_key_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        std::fs::create_dir_all(state.group_keys()).unwrap();
        std::fs::write(state.group_key("g"), "otasec1broken\n").unwrap();
        assert!(matches!(
            load_groups(&state),
            Err(DeviceError::BadState { .. })
        ));
    }
}
