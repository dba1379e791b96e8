//! Starting the write-back of a file's dirty pages early, so that the `fsync` that makes a
//! large file durable at the end finds little left to write (and the writes of a long
//! stream reach the disk while the stream is still being produced).
use std::fs::File;
use std::io;

/// Ask the kernel to start writing `len` bytes of `file` from `offset` to the disk, without
/// waiting for it. Durability still needs an `fsync` (this neither waits nor writes the
/// file's metadata); on systems without `sync_file_range(2)` it does nothing.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn start(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Ok(());
    };
    // SAFETY: a plain system call on a file descriptor that `file` keeps open; no memory is
    // passed.
    let r = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// See the Linux version: nothing to start elsewhere.
#[cfg(not(target_os = "linux"))]
pub fn start(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// A byte counter that says when another stretch of a sequentially written file is ready
/// for [`start`].
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Bytes written so far.
    written: u64,
    /// Bytes whose write-back was started.
    started: u64,
}

impl Progress {
    /// A file that already holds `offset` bytes (appended to from there).
    pub fn at(offset: u64) -> Self {
        Progress {
            written: offset,
            started: offset,
        }
    }

    /// Count `n` more bytes written to `file`; every `every` bytes start their write-back.
    /// A failure to start it is not an error of the write (the final `fsync` still does the
    /// work), so it is ignored.
    pub fn wrote(&mut self, file: &File, n: usize, every: u64) {
        self.written += n as u64;
        if self.written - self.started >= every {
            let _ = start(file, self.started, self.written - self.started);
            self.started = self.written;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn starting_write_back_keeps_the_bytes() {
        let mut f = tempfile::tempfile().unwrap();
        let mut p = Progress::default();
        for i in 0..8u8 {
            let block = [i; 1000];
            f.write_all(&block).unwrap();
            p.wrote(&f, block.len(), 3000);
        }
        assert_eq!(p.started, 6000, "started at 3000 and 6000 bytes");
        start(&f, 0, 8000).unwrap();
        f.sync_all().unwrap();
        assert_eq!(f.metadata().unwrap().len(), 8000);
    }
}
