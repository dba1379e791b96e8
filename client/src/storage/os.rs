//! [`Storage`] on the real file system.
use super::{SlotFile, Storage};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The file system, with fsync; what every device uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsStorage;

impl Storage for OsStorage {
    fn open_slot(&self, path: &Path) -> io::Result<Box<dyn SlotFile>> {
        let file = OpenOptions::new().write(true).open(path)?;
        let regular = file.metadata()?.file_type().is_file();
        Ok(Box::new(OsSlot { file, regular }))
    }

    fn replace(&self, path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
        ota_fs::atomic::replace(path, bytes, mode)
    }
}

struct OsSlot {
    file: File,
    regular: bool,
}

impl SlotFile for OsSlot {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        if self.regular {
            self.file.set_len(len)?;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}
