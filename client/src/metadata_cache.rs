//! The metadata cache directory: exactly the verified bytes received, one file per role under
//! its unversioned, percent-encoded name (`root.json`, `timestamp.json`, `%2Fteam.json`).
use crate::names::encode_segment;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// A directory of trusted metadata.
#[derive(Debug, Clone)]
pub struct MetadataCache {
    dir: PathBuf,
}

impl MetadataCache {
    /// Use `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(MetadataCache { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the cached file of `role`.
    pub fn path(&self, role: &str) -> PathBuf {
        self.dir.join(format!("{}.json", encode_segment(role)))
    }

    /// Cached bytes of `role`, if any.
    pub fn load(&self, role: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(role);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Store verified bytes of `role`, atomically. Root, timestamp and snapshot are also
    /// stored durably (fsync): they are the trust anchor and the baseline of rollback checks,
    /// which a power cut must not take back. Targets roles are not: the snapshot pins their
    /// versions, and a cached role that does not verify after a power cut is fetched again,
    /// so waiting for the disk on each of hundreds of delegated roles would buy nothing.
    pub fn store(&self, role: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(role);
        let mode = ota_fs::mode::PUBLIC_FILE;
        match role {
            "root" | "timestamp" | "snapshot" => ota_fs::atomic::replace(&path, bytes, mode),
            _ => ota_fs::atomic::replace_unsynced(&path, bytes, mode),
        }
        .map_err(|e| Error::io(path, e))
    }

    /// Forget `role` (after a key rotation made it untrustworthy).
    pub fn remove(&self, role: &str) -> Result<()> {
        let p = self.path(role);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(p, e)),
        }
    }
}
