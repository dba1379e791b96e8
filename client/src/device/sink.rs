//! The last stage of the install pipelines: every image byte is counted and hashed against
//! the signed `custom.ota.image` before it is passed to the destination's writer.
use super::image::VerifiedImage;
use super::install_target::ImageWriter;
use ota_formats::hash::{Hashes, StreamVerifier};
use std::io::{self, Write};

/// Why the sink stopped accepting bytes.
#[derive(Debug)]
pub(crate) enum SinkFailure {
    /// More bytes than the signed image length (a decompression bomb or a bad release).
    Image(ota_formats::Error),
    /// The destination could not be written.
    Io(io::Error),
}

/// Hashing, length-capped writer into an [`ImageWriter`].
pub(crate) struct ImageSink {
    verifier: StreamVerifier,
    writer: Box<dyn ImageWriter>,
    failure: Option<SinkFailure>,
    /// The pipeline phase, for crash points (`decrypt`, `decompress`, `patch`).
    phase: &'static str,
}

impl ImageSink {
    pub(crate) fn new(
        image: &VerifiedImage,
        writer: Box<dyn ImageWriter>,
        phase: &'static str,
    ) -> Result<Self, ota_formats::Error> {
        let hashes: Hashes = [("sha256".to_string(), image.sha256().to_string())].into();
        Ok(ImageSink {
            verifier: StreamVerifier::new(&hashes, image.length())?,
            writer,
            failure: None,
            phase,
        })
    }

    /// The first failure seen, if any (the writers above only see an `io::Error`).
    pub(crate) fn take_failure(&mut self) -> Option<SinkFailure> {
        self.failure.take()
    }

    /// Check the total length and the sha256; the writer is handed back only if both match.
    pub(crate) fn finish(self) -> Result<Box<dyn ImageWriter>, ota_formats::Error> {
        self.verifier.finish()?;
        Ok(self.writer)
    }
}

impl Write for ImageSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::crash_point::reached(self.phase);
        if let Err(e) = self.verifier.update(buf) {
            let msg = e.to_string();
            self.failure = Some(SinkFailure::Image(e));
            return Err(io::Error::new(io::ErrorKind::InvalidData, msg));
        }
        if let Err(e) = self.writer.write_all(buf) {
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
