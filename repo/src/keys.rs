//! Role keys in a key directory: one PKCS#8 v1 PEM file per key (RFC 8410, which OpenSSL and
//! python `cryptography` read; v2 files with an embedded public key are read too), mode 0600,
//! in a 0700 directory outside the repository. The repository's policy file names each role's
//! keys; root metadata says which keys are authorised.
//!
//! A policy entry may also be a passphrase-encrypted key file or a `pkcs11:` URI naming a
//! key on a token ([`crate::key_source`]); the `*_with` functions take the [`KeyAccess`] that
//! unlocks them (the others use the environment: `OTA_KEY_PASSPHRASE`, `OTA_PKCS11_MODULE`,
//! `OTA_PKCS11_PIN`).
//!
//! Publication signs through [`Signer`] trait objects ([`as_signers`], [`role_signers`]), so
//! a key loaded here is one kind of signer among others.
use crate::config::RepoConfig;
use crate::key_source::{self, BoxSigner, KeyAccess, KeyKind, KeyRef, OpenError};
use crate::publish::RoleSigners;
use crate::{RepoError, Result};
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_formats::metadata::Root;
use ota_fs::atomic;
use ota_fs::mode::{SECRET_DIR, SECRET_FILE};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use zeroize::Zeroizing;

/// Mode of the keys directory.
pub const KEY_DIR_MODE: u32 = SECRET_DIR;

/// Mode of a key file.
pub const KEY_FILE_MODE: u32 = SECRET_FILE;

/// Largest key file read: an Ed25519 PEM key is about 120 bytes; the cap leaves room for
/// comments and for other key types, which are read only to say what they are.
pub const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// The file name of the `index`-th key (from 1) of `role`: `targets-1.pem`.
pub fn key_file_name(role: &str, index: usize) -> String {
    format!("{role}-{index}.pem")
}

/// A loaded private key with where it came from.
pub struct LoadedKey {
    /// The policy entry: a file name in the keys directory, or a `pkcs11:` URI (shown
    /// without any PIN).
    pub file: String,
    /// Key id of its public key.
    pub keyid: String,
    /// The key.
    pub signer: BoxSigner,
    /// Permission bits of the file (`0o600` expected; a caller may warn about others);
    /// `0o600` for a token key.
    pub mode: u32,
    /// The kind of source (file, encrypted file, token).
    pub kind: KeyKind,
    /// The PKCS#8 PEM of a key generated in memory and not saved yet ([`save_generated`]).
    generated_pem: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never private key material: the public key only.
        f.debug_struct("LoadedKey")
            .field("file", &self.file)
            .field("keyid", &self.keyid)
            .field("kind", &self.kind)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

impl LoadedKey {
    /// A key generated in memory, to be saved as `file`.
    pub fn generated(file: String, signer: Ed25519Signer) -> Result<Self> {
        let keyid = signer
            .key_id()
            .map_err(|source| RepoError::KeyEncode { source })?;
        let pem = signer
            .to_pkcs8_pem()
            .map_err(|source| RepoError::KeyEncode { source })?;
        Ok(LoadedKey {
            file,
            keyid,
            signer: Box::new(signer),
            mode: KEY_FILE_MODE,
            kind: KeyKind::File,
            generated_pem: Some(Zeroizing::new(pem)),
        })
    }

    /// A key of any type generated in memory ([`crate::rotate::GeneratedKey`]), to be saved
    /// as `file`.
    pub fn from_generated(file: String, key: crate::rotate::GeneratedKey) -> Self {
        let (signer, keyid, pem) = key.into_parts();
        LoadedKey {
            file,
            keyid,
            signer,
            mode: KEY_FILE_MODE,
            kind: KeyKind::File,
            generated_pem: Some(Zeroizing::new(pem)),
        }
    }

    /// Whether this key was generated in memory ([`LoadedKey::generated`]).
    pub fn is_generated(&self) -> bool {
        self.generated_pem.is_some()
    }

    /// Whether group or others may read the file.
    pub fn is_open(&self) -> bool {
        self.kind != KeyKind::Pkcs11 && self.mode & 0o077 != 0
    }

    /// The warning for a key file in `dir` that group or others may read, if it is one.
    pub fn open_warning(&self, dir: &Path) -> Option<String> {
        self.is_open().then(|| {
            format!(
                "{} has permissions {:o}, readable by others (expected {KEY_FILE_MODE:o}; fix with chmod {KEY_FILE_MODE:o})",
                dir.join(&self.file).display(),
                self.mode
            )
        })
    }
}

/// Loaded keys by role.
pub type RoleKeys = BTreeMap<String, Vec<LoadedKey>>;

/// Load one key (a file in `dir` or a `pkcs11:` URI) with the secrets of the environment.
///
/// A file readable by group or others is loaded (its [`LoadedKey::mode`] says so) rather
/// than refused: the public example keys come from version control, which does not keep 0600.
pub fn load_key(dir: &Path, file: &str) -> Result<LoadedKey> {
    load_key_with(dir, file, &KeyAccess::from_env())
}

/// Load one key, its file or token unlocked through `access`, with errors that name the file
/// or the URI.
pub fn load_key_with(dir: &Path, entry: &str, access: &KeyAccess<'_>) -> Result<LoadedKey> {
    let key = KeyRef::parse(entry).map_err(|source| RepoError::KeySource {
        key: entry.to_string(),
        source,
    })?;
    let (shown, path) = match &key {
        KeyRef::File(f) => (dir.join(f).display().to_string(), Some(dir.join(f))),
        KeyRef::Pkcs11(u) => (u.to_string(), None),
    };
    let opened = key_source::open(dir, &key, access).map_err(|e| match (e, &path) {
        (OpenError::Unreadable(source), Some(path)) => RepoError::KeyUnreadable {
            path: path.clone(),
            source,
        },
        (OpenError::Invalid(source), Some(path)) => RepoError::KeyInvalid {
            path: path.clone(),
            source,
        },
        (OpenError::Unreadable(e), None) => RepoError::KeySource {
            key: shown.clone(),
            source: key_source::KeySourceError::PinFile {
                path: e.path().to_path_buf(),
                reason: e.to_string(),
            },
        },
        (OpenError::Invalid(e), None) => RepoError::KeySource {
            key: shown.clone(),
            source: key_source::KeySourceError::PublicKey {
                object: shown.clone(),
                reason: e.to_string(),
            },
        },
        (OpenError::Source(source), _) => RepoError::KeySource {
            key: shown.clone(),
            source,
        },
    })?;
    let keyid = opened.signer.key_id().map_err(|source| RepoError::KeyId {
        path: path.clone().unwrap_or_else(|| shown.clone().into()),
        source,
    })?;
    let mode = path
        .as_ref()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(KEY_FILE_MODE);
    Ok(LoadedKey {
        file: key.display(),
        keyid,
        signer: opened.signer,
        mode,
        kind: opened.kind,
        generated_pem: None,
    })
}

/// Write a new key file (0600); never replaces an existing file.
pub fn save_key(dir: &Path, file: &str, signer: &Ed25519Signer) -> Result<()> {
    let path = dir.join(file);
    let pem = signer
        .to_pkcs8_pem()
        .map_err(|source| RepoError::KeyEncode { source })?;
    atomic::write_new(&path, pem.as_bytes(), KEY_FILE_MODE).map_err(|e| RepoError::write(&path, e))
}

/// Write the file of a key made by [`LoadedKey::generated`] (0600) as `dir/FILE`; never
/// replaces an existing file. A key that was loaded, not generated, is left alone.
pub fn save_generated(dir: &Path, key: &LoadedKey) -> Result<()> {
    let Some(pem) = &key.generated_pem else {
        return Ok(());
    };
    let path = dir.join(&key.file);
    atomic::write_new(&path, pem.as_bytes(), KEY_FILE_MODE).map_err(|e| RepoError::write(&path, e))
}

/// Load the keys of `role` listed in the config and check each against root, with the
/// secrets of the environment (see [`load_role_with`]).
pub fn load_role(
    dir: &Path,
    config: &RepoConfig,
    root: &Root,
    role: &str,
) -> Result<Vec<LoadedKey>> {
    load_role_with(dir, config, root, role, &KeyAccess::from_env())
}

/// Load the keys of `role` listed in the config, unlocked through `access`, and check each
/// against root.
///
/// A present key that root does not list for the role is an error
/// ([`RepoError::KeyNotAuthorised`], a mix-up worth stopping for); missing files are fine as
/// long as the threshold is reached ([`RepoError::BelowThreshold`] otherwise), so a release
/// engineer may hold only some keys of a threshold role. A token key that cannot be opened
/// is an error, not a missing key.
pub fn load_role_with(
    dir: &Path,
    config: &RepoConfig,
    root: &Root,
    role: &str,
    access: &KeyAccess<'_>,
) -> Result<Vec<LoadedKey>> {
    if !dir.is_dir() {
        return Err(RepoError::KeyDirMissing {
            dir: dir.to_path_buf(),
        });
    }
    let role_keys = root.role(role).map_err(|e| RepoError::Corrupt {
        path: "root.json".into(),
        reason: e.to_string(),
    })?;
    let mut loaded: Vec<LoadedKey> = Vec::new();
    let mut missing = Vec::new();
    for file in config.files(role) {
        let is_file = !key_source::pkcs11::is_uri(file);
        if is_file && !dir.join(file).exists() {
            missing.push(file.clone());
            continue;
        }
        let key = load_key_with(dir, file, access)?;
        if !role_keys.keyids.contains(&key.keyid) {
            return Err(RepoError::KeyNotAuthorised {
                role: role.to_string(),
                keyid: key.keyid,
                path: if is_file {
                    dir.join(file)
                } else {
                    key.file.clone().into()
                },
            });
        }
        tracing::debug!(role, key = %key.file, keyid = %key.keyid, "key loaded");
        if !loaded.iter().any(|k| k.keyid == key.keyid) {
            loaded.push(key);
        }
    }
    if (loaded.len() as u64) < role_keys.threshold {
        return Err(RepoError::BelowThreshold {
            role: role.to_string(),
            threshold: role_keys.threshold,
            found: loaded.len(),
            dir: dir.to_path_buf(),
            missing,
        });
    }
    Ok(loaded)
}

/// The first 16 hex digits of a key id, for messages.
pub fn short_id(keyid: &str) -> &str {
    keyid.get(..16).unwrap_or(keyid)
}

/// Borrow loaded keys as signers.
pub fn as_signers(keys: &[LoadedKey]) -> Vec<&dyn Signer> {
    keys.iter()
        .map(|k| k.signer.as_ref() as &dyn Signer)
        .collect()
}

/// Borrow the loaded keys of every role as the signers [`crate::publish::publish`] takes.
pub fn role_signers(keys: &RoleKeys) -> RoleSigners<'_> {
    keys.iter()
        .map(|(role, ks)| (role.clone(), as_signers(ks)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_keys_are_private_and_load_back() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let k = Ed25519Signer::generate();
        save_key(dir, "root-1.pem", &k).unwrap();
        let mode = std::fs::metadata(dir.join("root-1.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, KEY_FILE_MODE);
        let back = load_key(dir, "root-1.pem").unwrap();
        assert_eq!(back.keyid, k.key_id().unwrap());
        assert!(!back.is_open());
        assert!(matches!(
            save_key(dir, "root-1.pem", &k),
            Err(RepoError::Write { .. })
        ));
        std::fs::write(dir.join("bad.pem"), "nope").unwrap();
        assert!(matches!(
            load_key(dir, "bad.pem"),
            Err(RepoError::KeyInvalid { .. })
        ));
        assert!(matches!(
            load_key(dir, "none.pem"),
            Err(RepoError::KeyUnreadable { .. })
        ));
    }
}
