//! The last stage of the install pipeline: every image byte is counted and hashed against the
//! signed `custom.ota.image` before it is written to the temp file beside the install path.
use ota_formats::hash::{Hashes, StreamVerifier};
use ota_formats::target_meta::ImageInfo;
use ota_fs::atomic::PendingFile;
use std::io::{self, Write};

/// Why the sink stopped accepting bytes.
#[derive(Debug)]
pub(crate) enum SinkFailure {
    /// More bytes than the signed image length (a decompression bomb or a bad release).
    Image(ota_formats::Error),
    /// The temp file could not be written.
    Io(io::Error),
}

/// Hashing, length-capped writer into a [`PendingFile`].
pub(crate) struct ImageSink {
    verifier: StreamVerifier,
    file: PendingFile,
    failure: Option<SinkFailure>,
}

impl ImageSink {
    pub(crate) fn new(image: &ImageInfo, file: PendingFile) -> Result<Self, ota_formats::Error> {
        let hashes: Hashes = [("sha256".to_string(), image.sha256.clone())].into();
        Ok(ImageSink {
            verifier: StreamVerifier::new(&hashes, image.length)?,
            file,
            failure: None,
        })
    }

    /// The first failure seen, if any (the writers above only see an `io::Error`).
    pub(crate) fn take_failure(&mut self) -> Option<SinkFailure> {
        self.failure.take()
    }

    /// Check the total length and the sha256; the file is handed back only if both match.
    pub(crate) fn finish(self) -> Result<PendingFile, ota_formats::Error> {
        self.verifier.finish()?;
        Ok(self.file)
    }
}

impl Write for ImageSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(e) = self.verifier.update(buf) {
            let msg = e.to_string();
            self.failure = Some(SinkFailure::Image(e));
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        if let Err(e) = Write::write_all(&mut self.file, buf) {
            let copy = io::Error::new(e.kind(), e.to_string());
            self.failure = Some(SinkFailure::Io(e));
            return Err(copy);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
