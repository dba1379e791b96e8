//! The A/B slot installer: the image is written sequentially into the inactive slot (a
//! regular file or a block device, never the running slot), fsync'd, then read back and
//! hashed against the signed image. Only after that may the boot loader be pointed at it
//! (the caller's job: see [`super::Device::update_slots`]).
use super::base::Base;
use super::error::{DeviceError, DeviceResult};
use super::image::VerifiedImage;
use super::install_target::{ImageWriter, InstallTarget};
use crate::storage::{SlotFile, Storage};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes handed to the slot per write (and per crash point).
const CHUNK: usize = 64 * 1024;

/// Write the inactive slot.
#[derive(Debug, Clone)]
pub struct SlotInstaller {
    path: PathBuf,
    running: PathBuf,
    capacity: Option<u64>,
    storage: Arc<dyn Storage>,
}

impl SlotInstaller {
    /// Install into the slot at `path`; `running` is the committed slot (the delta base, and
    /// never written); `capacity` bounds a regular-file slot (a block device has its size).
    pub fn new(
        path: impl Into<PathBuf>,
        running: impl Into<PathBuf>,
        capacity: Option<u64>,
        storage: Arc<dyn Storage>,
    ) -> Self {
        SlotInstaller {
            path: path.into(),
            running: running.into(),
            capacity,
            storage,
        }
    }

    fn unusable(&self, reason: impl Into<String>) -> DeviceError {
        DeviceError::SlotUnusable {
            slot: self.path.clone(),
            reason: reason.into(),
        }
    }

    /// How many bytes the slot holds: a block device's size, else the configured capacity.
    fn capacity(&self, meta: &std::fs::Metadata) -> DeviceResult<Option<u64>> {
        if meta.file_type().is_file() {
            return Ok(self.capacity);
        }
        let mut f =
            File::open(&self.path).map_err(|e| self.unusable(format!("cannot open: {e}")))?;
        let size = f
            .seek(SeekFrom::End(0))
            .map_err(|e| self.unusable(format!("cannot tell its size: {e}")))?;
        Ok(Some(self.capacity.map_or(size, |c| c.min(size))))
    }
}

/// Whether `a` and `b` are the same file or device (after following links).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => {
                let dev = |m: &std::fs::Metadata| {
                    if m.file_type().is_file() {
                        (m.dev(), m.ino())
                    } else {
                        (m.rdev(), 0)
                    }
                };
                dev(&x) == dev(&y)
            }
            _ => a == b,
        }
    }
    #[cfg(not(unix))]
    {
        a == b
    }
}

/// Whether `meta` is a block device.
fn is_block_device(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        meta.file_type().is_block_device()
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

impl InstallTarget for SlotInstaller {
    fn describe(&self) -> String {
        format!("slot {}", self.path.display())
    }

    fn check_destination(&self) -> DeviceResult<()> {
        self.usable().map(|_| ())
    }

    fn check(&self, image: &VerifiedImage) -> DeviceResult<()> {
        let meta = self.usable()?;
        if let Some(cap) = self.capacity(&meta)? {
            if image.length() > cap {
                return Err(self.unusable(format!(
                    "is too small: it holds {cap} bytes and the image of {} {} is {} bytes",
                    image.name(),
                    image.version(),
                    image.length()
                )));
            }
        }
        Ok(())
    }

    fn base(&self) -> Option<Base> {
        Some(Base::Slot(self.running.clone()))
    }

    fn begin(&self, image: &VerifiedImage) -> DeviceResult<Box<dyn ImageWriter>> {
        self.check(image)?;
        let file = self
            .storage
            .open_slot(&self.path)
            .map_err(|e| self.unusable(format!("is not writable: {e}")))?;
        Ok(Box::new(SlotWriter {
            file,
            path: self.path.clone(),
            buf: Vec::with_capacity(CHUNK),
        }))
    }
}

impl SlotInstaller {
    /// The checks that need no image: a writable file or block device that is not the
    /// running slot. Returns its metadata.
    fn usable(&self) -> DeviceResult<std::fs::Metadata> {
        // Links are followed: /dev/disk/by-partlabel/... names are links to the device.
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(self.unusable("does not exist"))
            }
            Err(e) => return Err(self.unusable(e.to_string())),
        };
        if !meta.file_type().is_file() && !is_block_device(&meta) {
            return Err(self.unusable(format!(
                "is {}, not a regular file or a block device",
                ota_fs::user_file::describe(meta.file_type())
            )));
        }
        if same_file(&self.path, &self.running) {
            return Err(self.unusable(format!(
                "is the running slot ({}); the running system is never overwritten",
                self.running.display()
            )));
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|e| self.unusable(format!("is not writable: {e}")))?;
        Ok(meta)
    }
}

struct SlotWriter {
    file: Box<dyn SlotFile>,
    path: PathBuf,
    buf: Vec<u8>,
}

impl SlotWriter {
    fn drain(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            crate::crash_point::reached("slot-write");
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn io(&self, source: io::Error) -> DeviceError {
        DeviceError::InstallIo {
            path: self.path.clone(),
            source,
        }
    }
}

impl Write for SlotWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.drain()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ImageWriter for SlotWriter {
    fn complete(mut self: Box<Self>, image: &VerifiedImage) -> DeviceResult<()> {
        self.drain().map_err(|e| self.io(e))?;
        self.file.truncate(image.length()).map_err(|e| self.io(e))?;
        crate::crash_point::reached("slot-sync");
        self.file.sync().map_err(|e| self.io(e))?;
        read_back(&self.path, image)
    }
}

/// Read the first `image.length()` bytes of the slot and compare them with the signed
/// sha256: the check that the bytes are on the slot, not only that they were sent.
pub(crate) fn read_back(path: &Path, image: &VerifiedImage) -> DeviceResult<()> {
    let io = |source| DeviceError::InstallIo {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?.take(image.length());
    let mut hasher = ota_formats::hash::Sha256Counter::new();
    ota_formats::hash::read_chunks(file, |chunk| {
        crate::crash_point::reached("read-back");
        hasher.update(chunk);
        Ok(())
    })
    .map_err(io)?;
    let m = hasher.finish();
    let (length, sha256) = (m.length, m.sha256_hex());
    if length != image.length() || sha256 != image.sha256() {
        return Err(DeviceError::SlotReadBack {
            slot: path.to_path_buf(),
            expected: format!("{} bytes, sha256 {}", image.length(), image.sha256()),
            actual: format!("{length} bytes, sha256 {sha256}"),
        });
    }
    Ok(())
}
