//! One writer at a time: an advisory `flock` on `DIR/.lock`.
//!
//! Two `issue` runs at once would both read `index.json`, each add its certificate and write
//! it back, and the later write would drop the earlier certificate from the record (and from
//! every later CRL, should it be revoked). `flock` is released by the kernel when the process
//! ends, however it ends, so a crash never leaves a stale lock behind, and the lock file is
//! never removed (removing it would let a third run lock a new file while the second still
//! holds the old one).
use crate::{Error, Result};
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

/// Name of the lock file in the CA directory.
pub const LOCK_FILE: &str = ".lock";

/// Held while a command may write to the CA directory; unlocked when dropped (the kernel
/// releases the lock when the file is closed).
#[derive(Debug)]
pub struct CaLock {
    _file: File,
}

/// Take the lock of the CA in `dir`, waiting up to `wait` for another run to finish.
pub fn acquire(dir: &Path, wait: Duration) -> Result<CaLock> {
    let path = dir.join(LOCK_FILE);
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Holds no secret, but there is no reason for others to open it either.
        opts.mode(ota_fs::mode::SECRET_FILE);
    }
    let file = opts.open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::ca(
                format!("no CA directory at {}", dir.display()),
                "create one with `ota-ca init --dir DIR --name NAME`, or check --dir",
            )
        } else {
            Error::write(&path, e)
        }
    })?;
    let deadline = Instant::now() + wait;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {
                tracing::debug!(path = %path.display(), "waiting for another ota-ca run's lock");
                if Instant::now() >= deadline {
                    return Err(Error::ca(
                        format!(
                            "the CA in {} is locked by another ota-ca run ({} is held)",
                            dir.display(),
                            path.display()
                        ),
                        "wait for the other run to finish and try again (the lock is released when that process ends)",
                    ));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::write(&path, format!("cannot lock: {e}"))),
        }
    }
    tracing::debug!(path = %path.display(), "locked");
    // Temp files of the atomic writer left by a run that crashed: no live run owns them now.
    ota_fs::atomic::remove_stale_temps(dir);
    ota_fs::atomic::remove_stale_temps(&dir.join(crate::ISSUED_DIR));
    Ok(CaLock { _file: file })
}
