//! The decompression stage of the install pipeline: a push-style zstd decoder with a capped
//! window (so a hostile frame cannot make the device allocate more than 8 MiB), or a
//! pass-through for uncompressed targets.
use ota_formats::target_meta::Compression;
use std::io::{self, Write};

/// Largest zstd window accepted: 2^23 = 8 MiB, what `ota-sign` produces.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Undoes the target's compression while bytes are written through it.
pub(crate) enum Decompressor<W: Write> {
    /// Uncompressed target.
    Plain(W),
    /// zstd frames.
    Zstd(Box<zstd::stream::write::Decoder<'static, W>>),
}

impl<W: Write> Decompressor<W> {
    pub(crate) fn new(compression: Compression, sink: W) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Decompressor::Plain(sink),
            Compression::Zstd => {
                let mut d = zstd::stream::write::Decoder::new(sink)?;
                d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Decompressor::Zstd(Box::new(d))
            }
        })
    }

    /// The sink below.
    pub(crate) fn sink_mut(&mut self) -> &mut W {
        match self {
            Decompressor::Plain(w) => w,
            Decompressor::Zstd(d) => d.get_mut(),
        }
    }

    /// Flush what is buffered and hand back the sink.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            Decompressor::Plain(w) => Ok(w),
            Decompressor::Zstd(mut d) => {
                d.flush()?;
                Ok(d.into_inner())
            }
        }
    }
}

impl<W: Write> Write for Decompressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Decompressor::Plain(w) => w.write(buf),
            Decompressor::Zstd(d) => d.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Decompressor::Plain(w) => w.flush(),
            Decompressor::Zstd(d) => d.flush(),
        }
    }
}
