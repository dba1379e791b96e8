//! One `ota-client` at a time per state directory: an OS file lock (`flock`) on
//! `STATE/lock`, held for the life of a [`StateLock`] and released by the kernel when the
//! process dies, however it dies (no stale pid files after a crash or a power cut).
use super::error::{state_io, DeviceError, DeviceResult};
use super::state::StateDir;
use std::fs::{File, OpenOptions, TryLockError};

/// The held lock of a state directory.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

impl StateLock {
    /// Take the lock, or fail at once with [`DeviceError::Busy`] when another process
    /// holds it.
    pub fn acquire(state: &StateDir) -> DeviceResult<StateLock> {
        let path = state.lock();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| state_io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(StateLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(DeviceError::Busy { lock: path }),
            Err(TryLockError::Error(e)) => Err(state_io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let first = StateLock::acquire(&state).unwrap();
        let err = StateLock::acquire(&state).unwrap_err();
        assert!(matches!(err, DeviceError::Busy { .. }), "{err}");
        drop(first);
        StateLock::acquire(&state).unwrap();
    }
}
