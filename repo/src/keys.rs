//! Role keys in a key directory: one PKCS#8 v1 PEM file per key (RFC 8410, which OpenSSL and
//! python `cryptography` read; v2 files with an embedded public key are read too), mode 0600,
//! in a 0700 directory outside the repository. The repository's policy file names each role's
//! files; root metadata says which keys are authorised.
//!
//! Publication signs through [`Signer`] trait objects ([`as_signers`], [`role_signers`]), so
//! a key loaded here is one kind of signer among others (an HSM, a remote signer).
use crate::config::RepoConfig;
use crate::publish::RoleSigners;
use crate::{RepoError, Result};
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_formats::metadata::Root;
use ota_fs::atomic;
use ota_fs::mode::{SECRET_DIR, SECRET_FILE};
use ota_fs::user_file;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
#[derive(Debug)]
pub struct LoadedKey {
    /// File name in the keys directory.
    pub file: String,
    /// Key id of its public key.
    pub keyid: String,
    /// The key.
    pub signer: Ed25519Signer,
    /// Permission bits of the file (`0o600` expected; a caller may warn about others).
    pub mode: u32,
}

impl LoadedKey {
    /// Whether group or others may read the file.
    pub fn is_open(&self) -> bool {
        self.mode & 0o077 != 0
    }
}

/// Loaded keys by role.
pub type RoleKeys = BTreeMap<String, Vec<LoadedKey>>;

/// Load one PEM key file, with errors that name the file.
///
/// A file readable by group or others is loaded (its [`LoadedKey::mode`] says so) rather
/// than refused: the public example keys come from version control, which does not keep 0600.
pub fn load_key(dir: &Path, file: &str) -> Result<LoadedKey> {
    let path = dir.join(file);
    // Only a regular file, and only so much of it: a FIFO or a link to /dev/zero named as a
    // key must not hang a run that holds the repository lock.
    let bytes =
        user_file::read(&path, MAX_KEY_FILE_LEN).map_err(|source| RepoError::KeyUnreadable {
            path: path.clone(),
            source,
        })?;
    let mode = std::fs::metadata(&path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(KEY_FILE_MODE);
    let signer = Ed25519Signer::from_key_file(&bytes).map_err(|source| RepoError::KeyInvalid {
        path: path.clone(),
        source,
    })?;
    let keyid = signer
        .key_id()
        .map_err(|source| RepoError::KeyId { path, source })?;
    Ok(LoadedKey {
        file: file.to_string(),
        keyid,
        signer,
        mode,
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

/// Load the keys of `role` listed in the config and check each against root.
///
/// A present key that root does not list for the role is an error
/// ([`RepoError::KeyNotAuthorised`], a mix-up worth stopping for); missing files are fine as
/// long as the threshold is reached ([`RepoError::BelowThreshold`] otherwise), so a release
/// engineer may hold only some keys of a threshold role.
pub fn load_role(
    dir: &Path,
    config: &RepoConfig,
    root: &Root,
    role: &str,
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
        if !dir.join(file).exists() {
            missing.push(file.clone());
            continue;
        }
        let key = load_key(dir, file)?;
        if !role_keys.keyids.contains(&key.keyid) {
            return Err(RepoError::KeyNotAuthorised {
                role: role.to_string(),
                keyid: key.keyid,
                path: dir.join(file),
            });
        }
        tracing::debug!(role, file = %file, keyid = %key.keyid, "key loaded");
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
    keys.iter().map(|k| &k.signer as &dyn Signer).collect()
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
