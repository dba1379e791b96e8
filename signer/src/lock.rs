//! One writer at a time: a lock file in the repository directory.
//!
//! Two `add` or `publish` runs at once would both sign "the next version" from the same state,
//! and the later timestamp could point clients back to an older snapshot, which they reject as
//! a rollback. The lock holds the owner's pid; a lock whose process is gone (a crash) is taken
//! over. Whoever takes the lock removes temp files that crashed runs left behind.
use crate::repo::{METADATA_DIR, TARGETS_DIR};
use crate::{Error, Result};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file in the repository directory.
pub const LOCK_FILE: &str = ".ota-sign.lock";

/// Held while a command may write; removes the lock file when dropped.
#[derive(Debug)]
pub struct RepoLock {
    path: PathBuf,
}

fn owner_alive(path: &Path) -> bool {
    // A pid is a few bytes; anything else (a FIFO put there) must not block this check.
    let Ok(text) = ota_fs::user_file::read_to_string(path, 64) else {
        // Unreadable or half-written by a starting owner: assume it is alive.
        return true;
    };
    match text.trim().parse::<u32>() {
        Ok(pid) => Path::new("/proc").join(pid.to_string()).exists(),
        Err(_) => true,
    }
}

impl RepoLock {
    /// Take the lock of the repository in `dir` (which must exist).
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        for _ in 0..2 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(format!("{}\n", std::process::id()).as_bytes())
                        .map_err(|e| Error::write(&path, e))?;
                    for sub in [METADATA_DIR, TARGETS_DIR] {
                        ota_fs::atomic::remove_stale_temps(&dir.join(sub));
                    }
                    return Ok(RepoLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if owner_alive(&path) {
                        break;
                    }
                    tracing::warn!(path = %path.display(), "removing stale lock of a process that is gone");
                    let _ = std::fs::remove_file(&path);
                }
                // No such directory: the repository is missing; loading it reports that.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(RepoLock {
                        path: PathBuf::new(),
                    })
                }
                Err(e) => return Err(Error::write(&path, e)),
            }
        }
        Err(Error::repo(
            format!(
                "another ota-sign is writing this repository ({} exists)",
                path.display()
            ),
            "wait for it to finish; if no ota-sign is running, remove the lock file",
        ))
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
