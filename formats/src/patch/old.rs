//! Random-access reads of the (filtered) base image with bounded buffering.

use super::filter::{self, Prediction, SEGMENT};
use super::Filter;
use std::io::{BufReader, Read, Seek, SeekFrom};

/// Reads base bytes at arbitrary offsets, through the patch filter when there is one.
pub(crate) struct OldReader<R: Read + Seek> {
    base: BufReader<R>,
    pos: u64,
    len: u64,
    filter: Filter,
    seg: Vec<u8>,
    seg_index: Option<u64>,
    pred: Option<Prediction>,
}

impl<R: Read + Seek> OldReader<R> {
    pub(crate) fn new(mut base: R, filter: Filter) -> std::io::Result<Self> {
        let len = base.seek(SeekFrom::End(0))?;
        base.seek(SeekFrom::Start(0))?;
        Ok(OldReader {
            base: BufReader::with_capacity(64 * 1024, base),
            pos: 0,
            len,
            filter,
            seg: Vec::with_capacity(SEGMENT),
            seg_index: None,
            pred: None,
        })
    }

    /// Length of the base as the diff sees it.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Sets the prediction of a remap patch (before the first read).
    pub(crate) fn set_prediction(&mut self, pred: Prediction) {
        self.pred = Some(pred);
        self.seg_index = None;
    }

    fn raw_read(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if off != self.pos {
            // seek_relative keeps the buffered bytes when the target is inside them.
            let delta = off as i128 - self.pos as i128;
            match i64::try_from(delta) {
                Ok(d) => self.base.seek_relative(d)?,
                Err(_) => {
                    self.base.seek(SeekFrom::Start(off))?;
                }
            }
        }
        self.base.read_exact(buf)?;
        self.pos = off + buf.len() as u64;
        Ok(())
    }

    /// Fills `buf` with base bytes at `off`; the caller has checked `off + buf.len() <= len`.
    pub(crate) fn read_at(&mut self, off: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if self.filter == Filter::None {
            return self.raw_read(off, buf);
        }
        let mut done = 0;
        while done < buf.len() {
            let at = off + done as u64;
            let k = at / SEGMENT as u64;
            if self.seg_index != Some(k) {
                let start = k * SEGMENT as u64;
                let n = (self.len - start).min(SEGMENT as u64) as usize;
                let mut seg = std::mem::take(&mut self.seg);
                seg.resize(n, 0);
                self.raw_read(start, &mut seg)?;
                match &self.pred {
                    Some(m) => filter::encode_remapped(self.filter, &mut seg, start, m),
                    None => filter::encode(self.filter, &mut seg, start),
                }
                self.seg = seg;
                self.seg_index = Some(k);
            }
            let within = (at - k * SEGMENT as u64) as usize;
            let n = (self.seg.len() - within).min(buf.len() - done);
            buf[done..done + n].copy_from_slice(&self.seg[within..within + n]);
            done += n;
        }
        Ok(())
    }
}
