//! The command line's side of the key directory: where it may be (never inside the
//! repository directory, whose content may get published), creating it 0700, and warnings
//! about key files others may read. Loading, saving and checking keys against root is
//! [`ota_repo::keys`].
use crate::{Error, Result};
use ota_fs::mode;
use ota_repo::keys::{LoadedKey, RoleKeys, KEY_DIR_MODE, KEY_FILE_MODE};
use ota_repo::Repository;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

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

/// Warn about loaded key files that group or others may read.
pub fn warn_open(dir: &Path, keys: &[LoadedKey]) {
    for k in keys.iter().filter(|k| k.is_open()) {
        crate::warn(&format!(
            "{} has permissions {:o}, readable by others (expected {KEY_FILE_MODE:o}; fix with chmod {KEY_FILE_MODE:o})",
            dir.join(&k.file).display(),
            k.mode
        ));
    }
}

/// Load one key file ([`ota_repo::keys::load_key`]), warning when others may read it.
pub fn load_key(dir: &Path, file: &str) -> Result<LoadedKey> {
    let k = ota_repo::keys::load_key(dir, file)?;
    warn_open(dir, std::slice::from_ref(&k));
    Ok(k)
}

/// Load and check against root the keys of each of `roles`
/// ([`ota_repo::keys::load_role`]), warning about key files others may read.
pub fn load_roles(dir: &Path, repo: &Repository, roles: &[&str]) -> Result<RoleKeys> {
    let mut out = RoleKeys::new();
    for role in roles {
        let k = ota_repo::keys::load_role(dir, &repo.config, &repo.root.signed, role)?;
        warn_open(dir, &k);
        out.insert(role.to_string(), k);
    }
    Ok(out)
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
    fn key_dir_is_private_and_keys_load_back() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("k");
        ensure_key_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            KEY_DIR_MODE
        );
        let k = ota_formats::crypto::Ed25519Signer::generate();
        ota_repo::keys::save_key(&dir, "root-1.pem", &k).unwrap();
        assert_eq!(load_key(&dir, "root-1.pem").unwrap().file, "root-1.pem");
        std::fs::write(dir.join("bad.pem"), "nope").unwrap();
        assert_eq!(load_key(&dir, "bad.pem").unwrap_err().exit_code(), 3);
        assert_eq!(load_key(&dir, "none.pem").unwrap_err().exit_code(), 3);
    }
}
