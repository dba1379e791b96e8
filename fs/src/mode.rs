//! Permissions of the files we write. Published files must be servable by any web server
//! user (a repository copied with `cp -a` to nginx running as `www-data`), whatever the umask
//! of the process that wrote them; only private keys are private.
use std::io;
use std::path::Path;

/// Mode of published files: repository metadata and targets, installed images.
pub const PUBLIC_FILE: u32 = 0o644;
/// Mode of published directories.
pub const PUBLIC_DIR: u32 = 0o755;
/// Mode of private files: keys, device state that holds secrets.
pub const SECRET_FILE: u32 = 0o600;
/// Mode of directories holding private files.
pub const SECRET_DIR: u32 = 0o700;

/// Set `path`'s mode exactly (not filtered by the umask).
pub fn set(path: &Path, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

/// Create `dir` and its missing parents, giving each directory created here `mode` exactly
/// (the umask does not apply). Existing directories are left as they are.
pub fn create_dir_all(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if !parent.as_os_str().is_empty() {
            create_dir_all(parent, mode)?;
        }
    }
    match std::fs::create_dir(dir) {
        Ok(()) => set(dir, mode),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The permission bits of `path` (`None` where the platform has none).
pub fn of(path: &Path) -> io::Result<Option<u32>> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        Ok(Some(meta.permissions().mode() & 0o7777))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(None)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn create_dir_all_ignores_the_umask() {
        let d = tempfile::tempdir().unwrap();
        let deep = d.path().join("a/b/c");
        create_dir_all(&deep, PUBLIC_DIR).unwrap();
        for p in [d.path().join("a"), d.path().join("a/b"), deep] {
            assert_eq!(of(&p).unwrap(), Some(PUBLIC_DIR), "{}", p.display());
        }
    }
}
