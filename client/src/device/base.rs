//! The base of a delta patch: the image the device runs now. In single-file mode that is the
//! whole install file; in A/B mode it is the committed slot, of which only the first
//! `base.length` bytes (the signed base length) count: a partition is larger than its image.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Where the current image is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// A file that is exactly the image.
    File(PathBuf),
    /// A slot (file or block device) whose first bytes are the image.
    Slot(PathBuf),
}

impl Base {
    /// The file or device.
    pub fn path(&self) -> &Path {
        match self {
            Base::File(p) | Base::Slot(p) => p,
        }
    }

    /// sha256 (hex) of the first `length` bytes, when the base can be an image of exactly
    /// `length` bytes (a file: its size is `length`; a slot: it holds at least `length`).
    /// `Ok(None)` when it cannot, or does not exist.
    pub fn sha256_of(&self, length: u64) -> io::Result<Option<String>> {
        let Some(mut window) = self.open(length)? else {
            return Ok(None);
        };
        let m = ota_formats::hash::measure(&mut window)?;
        Ok((m.length == length).then(|| m.sha256_hex()))
    }

    /// The first `length` bytes as a seekable reader (what a patch reads), when the base can
    /// be an image of that length.
    pub fn open(&self, length: u64) -> io::Result<Option<Window>> {
        let mut file = match File::open(self.path()) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        // Block devices report size 0 in metadata; seeking to the end tells their size.
        let size = file.seek(SeekFrom::End(0))?;
        file.seek(SeekFrom::Start(0))?;
        let fits = match self {
            Base::File(_) => size == length,
            Base::Slot(_) => size >= length,
        };
        Ok(fits.then_some(Window {
            file,
            len: length,
            pos: 0,
        }))
    }
}

/// The first `len` bytes of a file, readable and seekable as if it ended there.
#[derive(Debug)]
pub struct Window {
    file: File,
    len: u64,
    pos: u64,
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let Some(target) = target else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the base image",
            ));
        };
        self.pos = self.file.seek(SeekFrom::Start(target))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_formats::hash::sha256_hex;

    #[test]
    fn a_slot_is_hashed_over_the_signed_length_only() {
        let d = tempfile::tempdir().unwrap();
        let slot = d.path().join("slot");
        let mut part = b"image".to_vec();
        part.extend_from_slice(&[0xff; 100]); // the rest of the partition
        std::fs::write(&slot, &part).unwrap();
        let b = Base::Slot(slot.clone());
        assert_eq!(b.sha256_of(5).unwrap(), Some(sha256_hex(b"image")));
        assert_eq!(b.sha256_of(1000).unwrap(), None, "shorter than the image");
        let mut w = b.open(5).unwrap().unwrap();
        assert_eq!(w.seek(SeekFrom::End(-2)).unwrap(), 3);
        let mut s = String::new();
        w.read_to_string(&mut s).unwrap();
        assert_eq!(s, "ge", "reads end at the window");
        // A file base must be exactly the image.
        assert_eq!(Base::File(slot).sha256_of(5).unwrap(), None);
        assert_eq!(
            Base::Slot(d.path().join("none")).sha256_of(5).unwrap(),
            None
        );
    }
}
