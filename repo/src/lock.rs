//! One writer at a time: an OS file lock (`flock`) on a lock file in the repository directory.
//!
//! Two writers at once would both sign "the next version" from the same state, and the later
//! timestamp could point clients back to an older snapshot, which they reject as a rollback.
//! The lock is held for the life of the [`RepoLock`]; the kernel releases it when the process
//! ends however it ends, so there are no stale locks to take over. Whoever takes the lock
//! removes the temp files that crashed writers left behind.
//!
//! ```
//! # fn main() -> Result<(), ota_repo::RepoError> {
//! let dir = tempfile::tempdir().unwrap();
//! let lock = ota_repo::lock::RepoLock::acquire(dir.path())?;
//! // A second writer (another process, or this one) is refused until `lock` is dropped.
//! assert!(matches!(
//!     ota_repo::lock::RepoLock::acquire(dir.path()),
//!     Err(ota_repo::RepoError::Locked { .. })
//! ));
//! drop(lock);
//! ota_repo::lock::RepoLock::acquire(dir.path())?;
//! # Ok(())
//! # }
//! ```
use crate::repository::{METADATA_DIR, TARGETS_DIR};
use crate::{RepoError, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Name of the lock file in the repository directory.
pub const LOCK_FILE: &str = ".ota-sign.lock";

/// The repository's write lock, held until dropped. The lock file holds the owner's pid, for
/// people; the lock itself is the `flock` on it.
#[derive(Debug)]
pub struct RepoLock {
    path: PathBuf,
    // Holds the OS lock; closing it (after the file is unlinked) releases it.
    _file: File,
}

/// Whether `file` is still the file at `path` (a previous holder may have unlinked it
/// between our open and our lock).
fn still_at(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl RepoLock {
    /// Take the lock of the repository in `dir` without waiting: [`RepoError::Locked`] when
    /// another writer holds it, [`RepoError::NoRepository`] when `dir` does not exist.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        // A holder that releases the lock unlinks the file first; the few retries cover a
        // release between our open and our lock.
        for _ in 0..8 {
            let file = match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(RepoError::NoRepository {
                        dir: dir.to_path_buf(),
                    })
                }
                Err(e) => return Err(RepoError::write(&path, e)),
            };
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => return Err(RepoError::Locked { lock: path }),
                Err(TryLockError::Error(e)) => return Err(RepoError::write(&path, e)),
            }
            if !still_at(&file, &path) {
                continue;
            }
            let mut f = &file;
            file.set_len(0)
                .and_then(|()| f.write_all(format!("{}\n", std::process::id()).as_bytes()))
                .map_err(|e| RepoError::write(&path, e))?;
            for sub in [METADATA_DIR, TARGETS_DIR] {
                ota_fs::atomic::remove_stale_temps(&dir.join(sub));
            }
            tracing::debug!(path = %path.display(), "repository locked");
            return Ok(RepoLock { path, _file: file });
        }
        Err(RepoError::Locked { lock: path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, so a writer that opened this file meanwhile
        // sees (after locking) that it is no longer the lock file and retries.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_until_the_first_is_done() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(TARGETS_DIR)).unwrap();
        let stale_tmp = d.path().join(TARGETS_DIR).join(".ota-tmp-crashed");
        std::fs::write(&stale_tmp, b"half").unwrap();
        let lock = RepoLock::acquire(d.path()).unwrap();
        assert!(!stale_tmp.exists(), "stale temp files are removed");
        assert_eq!(
            std::fs::read_to_string(lock.path()).unwrap(),
            format!("{}\n", std::process::id())
        );
        match RepoLock::acquire(d.path()) {
            Err(RepoError::Locked { lock: p }) => assert_eq!(p, d.path().join(LOCK_FILE)),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(lock);
        assert!(!d.path().join(LOCK_FILE).exists(), "released and removed");
        // A file left by a writer that died is not a lock: it is taken.
        std::fs::write(d.path().join(LOCK_FILE), "4194305\n").unwrap();
        let again = RepoLock::acquire(d.path()).unwrap();
        drop(again);
    }

    #[test]
    fn a_missing_directory_is_no_repository() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope");
        assert!(matches!(
            RepoLock::acquire(&missing),
            Err(RepoError::NoRepository { dir }) if dir == missing
        ));
    }
}
