//! The single-file installer: the image is written to a temp file beside the install path and
//! renamed over it (fsync, rename, directory fsync), keeping the replaced file's mode.
use super::base::Base;
use super::error::{DeviceError, DeviceResult};
use super::image::VerifiedImage;
use super::install_target::{ImageWriter, InstallTarget};
use ota_fs::atomic::PendingFile;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replace a regular file atomically (`ota-client update --install-to PATH`).
#[derive(Debug, Clone)]
pub struct FileInstaller {
    dest: PathBuf,
}

impl FileInstaller {
    /// Install to `dest`.
    pub fn new(dest: impl Into<PathBuf>) -> Self {
        FileInstaller { dest: dest.into() }
    }

    /// The install path.
    pub fn dest(&self) -> &Path {
        &self.dest
    }
}

impl InstallTarget for FileInstaller {
    fn describe(&self) -> String {
        self.dest.display().to_string()
    }

    fn check_destination(&self) -> DeviceResult<()> {
        check_install_path(&self.dest)
    }

    fn check(&self, _image: &VerifiedImage) -> DeviceResult<()> {
        check_install_path(&self.dest)
    }

    fn base(&self) -> Option<Base> {
        Some(Base::File(self.dest.clone()))
    }

    fn begin(&self, _image: &VerifiedImage) -> DeviceResult<Box<dyn ImageWriter>> {
        check_install_path(&self.dest)?;
        let pending =
            PendingFile::new(&self.dest, ota_fs::mode::PUBLIC_FILE).map_err(|source| {
                DeviceError::InstallIo {
                    path: self.dest.clone(),
                    source,
                }
            })?;
        Ok(Box::new(FileWriter {
            pending,
            writeback: Default::default(),
        }))
    }
}

/// The image file's write-back is started every this many bytes, so the disk writes while
/// the image is still being decoded and the `fsync` before the rename has little left to do.
const WRITEBACK_EVERY: u64 = 8 * 1024 * 1024;

struct FileWriter {
    pending: PendingFile,
    writeback: ota_fs::writeback::Progress,
}

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.pending.file_mut().write(buf)?;
        self.writeback
            .wrote(self.pending.file(), n, WRITEBACK_EVERY);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ImageWriter for FileWriter {
    fn complete(self: Box<Self>, _image: &VerifiedImage) -> DeviceResult<()> {
        let FileWriter { mut pending, .. } = *self;
        let dest = pending.dest().to_path_buf();
        if let Ok(Some(mode)) = ota_fs::mode::of(&dest) {
            pending.set_mode(mode);
        }
        crate::crash_point::reached("file-rename");
        pending
            .commit()
            .map_err(|source| DeviceError::InstallIo { path: dest, source })
    }
}

/// Refuse an install path that is anything but a regular file (or nothing yet): the file
/// installer replaces the file by a rename, which would turn a device node into a regular
/// file (the image in RAM instead of on the partition), replace a link instead of what it
/// points to, or fail late on a directory or a FIFO.
pub fn check_install_path(dest: &Path) -> DeviceResult<()> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DeviceError::InstallIo {
            path: dest.to_path_buf(),
            source,
        }),
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => Err(DeviceError::InstallPathNotRegular {
            path: dest.to_path_buf(),
            kind: ota_fs::user_file::describe(m.file_type()),
        }),
    }
}
