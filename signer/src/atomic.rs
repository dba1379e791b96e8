//! Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory.
//!
//! A reader (a web server, a client, the next `ota-sign` run) sees either the old file or the
//! complete new one, never a torn write. Temp files start with [`TEMP_PREFIX`] so a crash
//! leaves only files that are obviously not part of the repository.
use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use tempfile::NamedTempFile;

/// Prefix of every temp file this crate creates.
pub const TEMP_PREFIX: &str = ".ota-tmp-";

/// Mode of published repository files (world-readable: a web server serves them).
pub const PUBLIC_MODE: u32 = 0o644;

/// Mode of private key files.
pub const SECRET_MODE: u32 = 0o600;

/// A new temp file in `dir` (created 0600 by `tempfile`).
pub fn temp_in(dir: &Path) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
}

/// fsync a directory, so a rename inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parent(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        Some(_) => Ok(Path::new(".")),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent directory", path.display()),
        )),
    }
}

fn filled_temp(path: &Path, bytes: &[u8], mode: u32) -> io::Result<NamedTempFile> {
    let mut tmp = temp_in(parent(path)?)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    Ok(tmp)
}

/// Publish a finished temp file under `path`, failing with `AlreadyExists` rather than
/// replacing an existing file.
pub fn persist_new(tmp: NamedTempFile, path: &Path) -> io::Result<()> {
    tmp.persist_noclobber(path).map_err(|e| e.error)?;
    sync_dir(parent(path)?)
}

/// Write a file that must not exist yet (versioned metadata, key files).
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    persist_new(filled_temp(path, bytes, mode)?, path)
}

/// Replace `path` (or create it) atomically.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let tmp = filled_temp(path, bytes, mode)?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(parent(path)?)
}

/// Remove temp files left in `dir` by a crashed run. Call only while holding the
/// repository lock, so no live run owns them.
pub fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            tracing::debug!(path = %e.path().display(), "removing a temp file of a crashed run");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_refuses_to_overwrite_and_replace_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("1.x.json");
        write_new(&p, b"one", PUBLIC_MODE).unwrap();
        let err = write_new(&p, b"two", PUBLIC_MODE).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        replace(&p, b"three", SECRET_MODE).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SECRET_MODE);
        // No temp files are left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
