//! The one crash-safe writer: write a temp file in the destination's directory, fsync it,
//! give it its final mode, rename it into place, fsync the directory.
//!
//! A reader (a web server, a device, the next run) sees the old file or the complete new one,
//! never a torn write, and a power cut after the call returns keeps the new file. Temp files
//! start with [`TEMP_PREFIX`], so a crash leaves only files that are obviously not content,
//! and [`remove_stale_temps`] clears them.
//!
//! ```
//! use ota_fs::{atomic, mode};
//! let d = tempfile::tempdir().unwrap();
//! let p = d.path().join("timestamp.json");
//! atomic::replace(&p, b"{}", mode::PUBLIC_FILE).unwrap();
//! assert_eq!(std::fs::read(&p).unwrap(), b"{}");
//! ```
use crate::mode;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Prefix of every temp file this crate creates.
pub const TEMP_PREFIX: &str = ".ota-tmp-";

/// A temp file beside `dest` that becomes `dest` only on [`PendingFile::commit`] (or
/// [`PendingFile::commit_new`]). Dropped without a commit, it is deleted.
#[derive(Debug)]
pub struct PendingFile {
    temp: NamedTempFile,
    dest: PathBuf,
    mode: u32,
}

impl PendingFile {
    /// Start writing a replacement for `dest`, to be published with `mode` (exactly, whatever
    /// the umask).
    pub fn new(dest: &Path, mode: u32) -> io::Result<Self> {
        let temp = temp_in(parent(dest)?)?;
        Ok(PendingFile {
            temp,
            dest: dest.to_path_buf(),
            mode,
        })
    }

    /// The destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temp file's own path (for messages).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// The open temp file (to read it back, or to hand it to a stage that writes).
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// The open temp file, mutably.
    pub fn file_mut(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Change the mode the file is published with.
    pub fn set_mode(&mut self, mode: u32) {
        self.mode = mode;
    }

    fn seal(&self) -> io::Result<()> {
        self.set_final_mode()?;
        self.temp.as_file().sync_all()
    }

    fn set_final_mode(&self) -> io::Result<()> {
        self.temp.as_file().flush()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            self.temp
                .as_file()
                .set_permissions(std::fs::Permissions::from_mode(self.mode))?;
        }
        Ok(())
    }

    /// fsync, rename over the destination, fsync the directory.
    pub fn commit(self) -> io::Result<()> {
        self.seal()?;
        let dir = parent(&self.dest)?.to_path_buf();
        self.temp.persist(&self.dest).map_err(|e| e.error)?;
        sync_dir(&dir)
    }

    /// Like [`PendingFile::commit`], but fail with `AlreadyExists` instead of replacing an
    /// existing destination (versioned metadata, key files).
    pub fn commit_new(self) -> io::Result<()> {
        self.seal()?;
        let dir = parent(&self.dest)?.to_path_buf();
        self.temp
            .persist_noclobber(&self.dest)
            .map_err(|e| e.error)?;
        sync_dir(&dir)
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// A new temp file in `dir`, named with [`TEMP_PREFIX`] (created 0600).
pub fn temp_in(dir: &Path) -> io::Result<NamedTempFile> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
}

/// fsync a directory, so a rename inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The directory `path` lives in (`.` for a bare file name).
pub fn parent(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        Some(_) => Ok(Path::new(".")),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent directory", path.display()),
        )),
    }
}

/// Replace `path` (or create it) atomically with `bytes`, published with `mode`.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = PendingFile::new(path, mode)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Replace `path` (or create it) with `bytes` by the same rename, without waiting for the disk:
/// readers see the old file or the new one, but after a power cut the file may be either, or
/// empty. Only for caches that are verified whenever they are read and fetched again when
/// they do not verify (a device's delegated targets metadata), where two disk flushes per
/// file would buy nothing.
pub fn replace_unsynced(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = PendingFile::new(path, mode)?;
    f.write_all(bytes)?;
    f.set_final_mode()?;
    f.temp.persist(&f.dest).map_err(|e| e.error)?;
    Ok(())
}

/// Write a file that must not exist yet, atomically; `AlreadyExists` if it does.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut f = PendingFile::new(path, mode)?;
    f.write_all(bytes)?;
    f.commit_new()
}

/// Publish a finished temp file (from [`temp_in`]) under `path` with `mode`, failing with
/// `AlreadyExists` rather than replacing an existing file.
pub fn persist_new(tmp: NamedTempFile, path: &Path, mode: u32) -> io::Result<()> {
    PendingFile {
        temp: tmp,
        dest: path.to_path_buf(),
        mode,
    }
    .commit_new()
}

/// Remove temp files left in `dir` by a crashed run. Call only while holding the lock of
/// whatever owns `dir`, so no live run owns them.
pub fn remove_stale_temps(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

// The mode constants live in `mode`; re-exported here for writers that need only this module.
pub use mode::{PUBLIC_FILE, SECRET_FILE};

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn write_new_refuses_to_overwrite_and_replace_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("1.x.json");
        write_new(&p, b"one", PUBLIC_FILE).unwrap();
        assert_eq!(mode::of(&p).unwrap(), Some(PUBLIC_FILE));
        let err = write_new(&p, b"two", PUBLIC_FILE).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        replace(&p, b"three", SECRET_FILE).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        assert_eq!(mode::of(&p).unwrap(), Some(SECRET_FILE));
        // No temp files are left behind.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn dropped_pending_file_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("a");
        replace(&dest, b"old", PUBLIC_FILE).unwrap();
        {
            let mut p = PendingFile::new(&dest, PUBLIC_FILE).unwrap();
            p.write_all(b"partial").unwrap();
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
        let stale = temp_in(d.path()).unwrap().keep().unwrap().1;
        assert!(stale.exists());
        assert_eq!(remove_stale_temps(d.path()), 1);
        assert!(!stale.exists());
    }
}
