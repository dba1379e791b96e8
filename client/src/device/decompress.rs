//! The decompression stage of the install pipeline: a push-style zstd decoder with a capped
//! window (so a hostile frame cannot make the device allocate more than 8 MiB), or a
//! pass-through for uncompressed targets. It decodes straight into buffers of [`HANDOFF`]
//! bytes that a [`Handoff`] passes to the thread that hashes and writes the image, and takes
//! them back for reuse: no copy between the stages, and a fixed number of buffers in flight.
use ota_formats::target_meta::Compression;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender};
use zstd::stream::raw::{DParameter, Decoder, InBuffer, Operation, OutBuffer};

/// Largest zstd window accepted: 2^23 = 8 MiB, what `ota-sign` produces.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Bytes of image per buffer handed from the decoding thread to the writing thread: one
/// zstd block (the most a decoder step produces at once).
pub(crate) const HANDOFF: usize = 128 * 1024;

/// Buffers queued between the threads (besides the one each is working on).
pub(crate) const QUEUED: usize = 2;

/// The sending end between the decoding thread and the writing thread.
pub(crate) struct Handoff {
    full: SyncSender<Vec<u8>>,
    empty: Receiver<Vec<u8>>,
}

impl Handoff {
    /// A handoff sending full buffers on `full` and taking emptied ones back from `empty`.
    pub(crate) fn new(full: SyncSender<Vec<u8>>, empty: Receiver<Vec<u8>>) -> Self {
        Handoff { full, empty }
    }

    fn buffer(&self) -> Vec<u8> {
        match self.empty.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(HANDOFF),
        }
    }

    /// Send `buf` (if it holds anything) and put an empty buffer in its place.
    fn send(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(buf, self.buffer());
        self.full
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the image writer stopped"))
    }
}

/// Undoes the target's compression while bytes are written through it.
pub(crate) struct Decompressor {
    /// The zstd decoder and its last hint (0: the input so far ends on a frame boundary);
    /// `None` for an uncompressed target.
    zstd: Option<(Box<Decoder<'static>>, usize)>,
    buf: Vec<u8>,
    out: Handoff,
}

impl Decompressor {
    pub(crate) fn new(compression: Compression, out: Handoff) -> io::Result<Self> {
        let zstd = match compression {
            Compression::None => None,
            Compression::Zstd => {
                let mut d = Decoder::new()?;
                d.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))?;
                // No input yet is not a complete frame.
                Some((Box::new(d), 1))
            }
        };
        Ok(Decompressor {
            zstd,
            buf: out.buffer(),
            out,
        })
    }

    /// Hand over what is buffered; fails if the input stopped inside a zstd frame.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if let Some((_, hint)) = &self.zstd {
            if *hint != 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the zstd frame is incomplete (truncated target)",
                ));
            }
        }
        self.out.send(&mut self.buf)
    }
}

impl Write for Decompressor {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let Some((decoder, hint)) = &mut self.zstd else {
            let mut rest = data;
            while !rest.is_empty() {
                if self.buf.len() == self.buf.capacity() {
                    self.out.send(&mut self.buf)?;
                }
                let n = rest.len().min(self.buf.capacity() - self.buf.len());
                self.buf.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
            return Ok(data.len());
        };
        if data.is_empty() {
            return Ok(0);
        }
        let mut input = InBuffer::around(data);
        loop {
            if self.buf.len() == self.buf.capacity() {
                self.out.send(&mut self.buf)?;
            }
            let pos = self.buf.len();
            let mut output = OutBuffer::around_pos(&mut self.buf, pos);
            *hint = decoder.run(&mut input, &mut output)?;
            let full = output.pos() == output.capacity();
            // All input taken, and room left (the decoder flushed everything it can) or the
            // frame complete and flushed (hint 0). Not asking again after a frame ended: at a
            // frame boundary the decoder would ask for the next frame's header, and that hint
            // would read as an incomplete frame when the image fills the last buffer exactly.
            if input.pos() == data.len() && (!full || *hint == 0) {
                return Ok(data.len());
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
