//! Destroying secret key files: overwrite the contents, flush, then remove.
//!
//! Removing a file only drops its name; the bytes stay on the storage until reused. Zeroing
//! them first takes the key out of the file system's view. Flash translation layers, wear
//! levelling, journaling and copy-on-write file systems may still keep older copies of the
//! blocks: this is best effort, not a guarantee (use an encrypted data partition and discard
//! its key for that).
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;

/// Overwrite `path` with zeros, sync it, and remove it. A missing file is `Ok(false)`; a
/// symbolic link is removed without touching its target (it is not the device's own file).
pub(crate) fn destroy_secret(path: &Path) -> io::Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_file() {
        let mut f = OpenOptions::new().write(true).open(path)?;
        let zeros = [0u8; 4096];
        let mut left = meta.len();
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(zeros.len());
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
    }
    std::fs::remove_file(path)?;
    if let Some(dir) = path.parent() {
        // The removal itself must survive a power cut, or the zeroed file comes back.
        let _ = ota_fs::atomic::sync_dir(dir);
    }
    Ok(true)
}

/// Remove a public file (a certificate, a signing request); a missing one is fine.
pub(crate) fn remove_if_present(path: &Path) -> io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destroys_files_and_only_links_not_their_targets() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, vec![7u8; 10_000]).unwrap();
        assert!(destroy_secret(&p).unwrap());
        assert!(!p.exists());
        assert!(!destroy_secret(&p).unwrap());
        #[cfg(unix)]
        {
            let target = d.path().join("t");
            std::fs::write(&target, b"keep").unwrap();
            std::os::unix::fs::symlink(&target, &p).unwrap();
            assert!(destroy_secret(&p).unwrap());
            assert_eq!(std::fs::read(&target).unwrap(), b"keep");
        }
        assert!(!remove_if_present(&p).unwrap());
    }
}
