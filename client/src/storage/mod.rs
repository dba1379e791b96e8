//! The writes that decide whether a device boots: slot contents, the update state and the
//! boot environment go through one small trait, [`Storage`], so that a crash simulation
//! ([`crash_sim`]) can record them and replay every prefix as a power cut would leave it.
//!
//! Reads are not part of the trait: a crash changes what is on disk, and the code after a
//! crash reads whatever is there with the ordinary file API.
use std::fmt::Debug;
use std::io;
use std::path::Path;

pub mod crash_sim;
mod os;

pub use os::OsStorage;

/// Where a device's durable writes go.
pub trait Storage: Send + Sync + Debug {
    /// Open an existing slot (a regular file or a block device) for writing from offset 0,
    /// without truncating it.
    fn open_slot(&self, path: &Path) -> io::Result<Box<dyn SlotFile>>;

    /// Replace the small file `path` atomically with `bytes` (temp file, fsync, rename,
    /// directory fsync: [`ota_fs::atomic::replace`]), published with `mode`.
    fn replace(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()>;
}

/// A slot opened for a sequential write.
pub trait SlotFile: Send {
    /// Append `buf` at the current position.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Cut a regular file to `len` bytes (a block device keeps its size).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// fsync: the written bytes survive a power cut once this returns.
    fn sync(&mut self) -> io::Result<()>;
}

/// The storage of a real device: the file system, with fsync.
pub fn os() -> std::sync::Arc<dyn Storage> {
    std::sync::Arc::new(OsStorage)
}
