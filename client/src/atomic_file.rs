//! Crash-safe file replacement: write a temp file in the target's directory, fsync it,
//! rename it over the target, fsync the directory. Readers see the old or the new file,
//! never a partial one, and a failure leaves no temp file behind.
use crate::{Error, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// A temp file beside `dest` that becomes `dest` only on [`PendingFile::commit`]. Dropped
/// without commit, it is deleted.
pub(crate) struct PendingFile {
    temp: NamedTempFile,
    dest: PathBuf,
}

impl PendingFile {
    /// Start writing a replacement for `dest`.
    pub(crate) fn new(dest: &Path) -> Result<Self> {
        let dir = parent_dir(dest);
        let temp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        Ok(PendingFile {
            temp,
            dest: dest.to_path_buf(),
        })
    }

    /// Append bytes.
    pub(crate) fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.temp
            .write_all(data)
            .map_err(|e| Error::io(self.temp.path(), e))
    }

    /// The temp file (e.g. to set its permissions before the rename).
    pub(crate) fn file(&self) -> &std::fs::File {
        self.temp.as_file()
    }

    /// fsync, rename over the destination, fsync the directory.
    pub(crate) fn commit(self) -> Result<()> {
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| Error::io(self.temp.path(), e))?;
        self.temp
            .persist(&self.dest)
            .map_err(|e| Error::io(&self.dest, e.error))?;
        sync_dir(parent_dir(&self.dest))
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.temp.flush()
    }
}

fn parent_dir(p: &Path) -> &Path {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Makes the rename durable; opening a directory for fsync works on Unix.
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Atomically replace `dest` with `data`.
pub(crate) fn write(dest: &Path, data: &[u8]) -> Result<()> {
    let mut f = PendingFile::new(dest)?;
    f.write_all(data)?;
    f.commit()
}

/// Read a whole file, mapping "not found" to `None`.
pub(crate) fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut out = Vec::new();
    f.read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_atomically_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a.json");
        write(&dest, b"one").unwrap();
        write(&dest, b"two").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        {
            let mut p = PendingFile::new(&dest).unwrap();
            p.write_all(b"partial").unwrap();
            // dropped without commit
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
