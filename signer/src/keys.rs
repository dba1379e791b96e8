//! Private key storage: one PKCS#8 v1 PEM file per key (RFC 8410, which OpenSSL and python
//! `cryptography` read; v2 files with an embedded public key are read too), mode 0600, in a 0700 directory that
//! must not lie inside the repository directory (whatever is there may get published).
use crate::config::RepoConfig;
use crate::{Error, Result};
use ota_formats::crypto::{Ed25519Signer, Signer};
use ota_formats::metadata::Root;
use ota_fs::atomic;
use ota_fs::mode::{self, SECRET_DIR, SECRET_FILE};
use ota_fs::user_file::{self, UserFileError};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// Mode of the keys directory.
pub const KEY_DIR_MODE: u32 = SECRET_DIR;

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
}

/// `path` made absolute with symlinks of its existing part resolved, so containment checks
/// work for directories that do not exist yet.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| {
        Error::input(
            format!("cannot resolve path {}: {e}", path.display()),
            "pass an existing, accessible path",
        )
    })?;
    let mut existing = abs.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for c in rest.iter().rev() {
        out.push(c);
    }
    // `absolute` keeps `..`; drop it lexically in the part that does not exist.
    let mut clean = PathBuf::new();
    for c in out.components() {
        match c {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    Ok(clean)
}

/// Refuse a keys directory inside (or equal to) the repository directory.
pub fn check_outside_repo(keys: &Path, repo: &Path) -> Result<()> {
    let (k, r) = (resolve(keys)?, resolve(repo)?);
    if k.starts_with(&r) {
        return Err(Error::keys(
            format!(
                "keys directory {} is inside the repository directory {}",
                keys.display(),
                repo.display()
            ),
            "keep private keys outside the published repository, e.g. --keys ~/ota-keys",
        ));
    }
    Ok(())
}

/// Create the keys directory with mode 0700 (parents as needed), or check an existing one.
pub fn ensure_key_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        warn_if_open(dir, KEY_DIR_MODE);
        return Ok(());
    }
    if dir.exists() {
        return Err(Error::keys(
            format!("keys path {} is not a directory", dir.display()),
            "pass a directory with --keys",
        ));
    }
    // Exactly 0700 whatever the umask (parents created here too).
    mode::create_dir_all(dir, KEY_DIR_MODE).map_err(|e| Error::write(dir, e))
}

fn warn_if_open(path: &Path, wanted: u32) {
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            crate::warn(&format!(
                "{} has permissions {mode:o}, readable by others (expected {wanted:o}; fix with chmod {wanted:o})",
                path.display()
            ));
        }
    }
}

/// Load one PEM key file, with errors that name the file.
///
/// A file readable by group or others is loaded with a warning rather than refused: the
/// public example keys come from version control, which does not keep 0600.
pub fn load_key(dir: &Path, file: &str) -> Result<LoadedKey> {
    let path = dir.join(file);
    // Only a regular file, and only so much of it: a FIFO or a link to /dev/zero named as a
    // key must not hang a run that holds the repository lock.
    let bytes = user_file::read(&path, MAX_KEY_FILE_LEN).map_err(|e| {
        let hint = match e {
            UserFileError::NotFound { .. } => {
                "pass the --keys directory that `ota-sign init` wrote for this repository"
            }
            _ => "check the file's owner and permissions (it should be yours, mode 600)",
        };
        Error::user_file("key file", e, Error::keys, hint)
    })?;
    warn_if_open(&path, SECRET_FILE);
    let signer = Ed25519Signer::from_key_file(&bytes).map_err(|e| {
        Error::keys(
            format!("key file {} {e}", path.display()),
            "restore the key from your backup; ota-sign reads Ed25519 keys in PKCS#8 PEM, as `ota-sign init` and `openssl genpkey -algorithm ed25519` write them",
        )
    })?;
    let keyid = signer.key_id().map_err(|e| {
        Error::keys(
            format!("key file {}: {e}", path.display()),
            "restore the key from your backup",
        )
    })?;
    Ok(LoadedKey {
        file: file.to_string(),
        keyid,
        signer,
    })
}

/// Write a new key file (0600); never replaces an existing file.
pub fn save_key(dir: &Path, file: &str, signer: &Ed25519Signer) -> Result<()> {
    let path = dir.join(file);
    let pem = signer.to_pkcs8_pem().map_err(|e| {
        Error::keys(
            format!("cannot encode key: {e}"),
            "report this bug; nothing was written",
        )
    })?;
    atomic::write_new(&path, pem.as_bytes(), SECRET_FILE).map_err(|e| Error::write(&path, e))
}

/// Load the keys of `role` listed in the config and check each against root.
///
/// A present key that root does not list for the role is an error (a mix-up worth stopping
/// for); missing files are fine as long as the threshold is reached, so a release engineer
/// may hold only some keys of a threshold role.
pub fn load_role(
    dir: &Path,
    config: &RepoConfig,
    root: &Root,
    role: &str,
) -> Result<Vec<LoadedKey>> {
    if !dir.is_dir() {
        return Err(Error::keys(
            format!("keys directory {} does not exist", dir.display()),
            "pass the --keys directory that `ota-sign init` wrote for this repository",
        ));
    }
    let role_keys = root.role(role).map_err(|e| {
        Error::repo(
            format!("root.json: {e}"),
            "the repository is corrupt; restore it from a backup",
        )
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
            return Err(Error::keys(
                format!(
                    "key file {} (key id {}) is not a {role} key of this repository",
                    dir.join(file).display(),
                    short_id(&key.keyid)
                ),
                format!("root.json authorises other keys for {role}; pass the --keys directory made for this repository"),
            ));
        }
        tracing::debug!(role, file = %file, keyid = %key.keyid, "key loaded");
        if !loaded.iter().any(|k| k.keyid == key.keyid) {
            loaded.push(key);
        }
    }
    if (loaded.len() as u64) < role_keys.threshold {
        let what = if missing.is_empty() {
            String::new()
        } else {
            format!(" (missing: {})", missing.join(", "))
        };
        return Err(Error::keys(
            format!(
                "role {role} needs {} key(s) to sign, found {} in {}{what}",
                role_keys.threshold,
                loaded.len(),
                dir.display()
            ),
            "pass the --keys directory that `ota-sign init` wrote for this repository",
        ));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_inside_repo_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let repo = d.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        assert!(check_outside_repo(&repo.join("keys"), &repo).is_err());
        assert!(check_outside_repo(&repo, &repo).is_err());
        assert!(check_outside_repo(&repo.join("a/../../repo/k"), &repo).is_err());
        assert!(check_outside_repo(&d.path().join("keys"), &repo).is_ok());
        assert!(check_outside_repo(&d.path().join("repo-keys"), &repo).is_ok());
    }

    #[test]
    fn saved_keys_are_private_and_load_back() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("k");
        ensure_key_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            KEY_DIR_MODE
        );
        let k = Ed25519Signer::generate();
        save_key(&dir, "root-1.pem", &k).unwrap();
        let mode = std::fs::metadata(dir.join("root-1.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, SECRET_FILE);
        let back = load_key(&dir, "root-1.pem").unwrap();
        assert_eq!(back.keyid, k.key_id().unwrap());
        assert!(save_key(&dir, "root-1.pem", &k).is_err());
        std::fs::write(dir.join("bad.pem"), "nope").unwrap();
        assert_eq!(load_key(&dir, "bad.pem").unwrap_err().exit_code(), 3);
        assert_eq!(load_key(&dir, "none.pem").unwrap_err().exit_code(), 3);
    }
}
