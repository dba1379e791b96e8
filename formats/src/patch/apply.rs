//! Streaming application of a patch.

use super::expand::{self, ExpandedBase, Expansion, PackedRegion, Region, Repacker};
use super::filter::{
    self, AddressMap, LoadRange, Prediction, MAX_LOAD_RANGES, MAX_MAP_ENTRIES, SEGMENT,
};
use super::header::{Codec, Filter, Method, PatchHeader, HEADER_LEN};
use super::old::OldReader;
use super::payload::max_records;
use super::varint::{read_u64, unzigzag, VarintRead};
use super::PatchError;
use crate::hash::Sha256Counter;
use std::cell::Cell;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::rc::Rc;

const CHUNK: usize = 64 * 1024;

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyStats {
    /// The patch method.
    pub method: Method,
    /// The payload codec.
    pub codec: Codec,
    /// The image filter.
    pub filter: Filter,
    /// Bytes of base image (hashed once; diff copies are counted in `base_copied`).
    pub base_len: u64,
    /// Base bytes copied (with a difference) into the result.
    pub base_copied: u64,
    /// Bytes of the result written and verified.
    pub result_len: u64,
    /// Compressed payload bytes.
    pub payload_len: u64,
    /// Control records executed.
    pub records: u64,
    /// Payload blocks read.
    pub blocks: u64,
    /// Largest block buffer (control records plus diff section) held at once, in bytes.
    pub peak_block_bytes: u64,
}

/// Applies `patch` to `base`, writing the result sequentially to `out`.
///
/// The base's length and sha256 are checked against the header before anything is written
/// ([`PatchError::WrongBase`]); the result's length and sha256 are computed while writing and
/// checked at the end ([`PatchError::ResultMismatch`]). On any error the bytes already written
/// to `out` must be discarded. Memory stays bounded by the header's block and window limits,
/// whatever the image sizes.
pub fn apply<B, P, W>(base: B, mut patch: P, out: W) -> Result<ApplyStats, PatchError>
where
    B: Read + Seek,
    P: Read,
    W: Write,
{
    let mut hb = [0u8; HEADER_LEN];
    patch.read_exact(&mut hb).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => PatchError::Truncated("header incomplete".into()),
        _ => PatchError::Io(e),
    })?;
    let (header, payload_len) = PatchHeader::parse(&hb)?;

    let base = if header.method.reads_base() {
        Some(check_base(base, &header)?)
    } else {
        None
    };
    // zstd --patch-from style: the whole (verified, bounded) base is the decoder's prefix;
    // the diff methods read it through `OldReader` instead.
    let (old, prefix) = match (header.method, base) {
        (Method::ZstdPrefix, Some(base)) => (None, Some(read_prefix(base, &header)?)),
        (_, base) => (base, None),
    };

    let truncated = Rc::new(Cell::new(false));
    let limited = Limited {
        inner: patch,
        left: payload_len,
        truncated: truncated.clone(),
    };
    let decoder = open_decoder(&header, limited, prefix.as_deref())?;
    let mut input = Payload {
        r: BufReader::with_capacity(CHUNK, decoder),
        truncated,
    };
    let expansion = if header.method == Method::ExpandedSparseDiff {
        read_expansion(&header, &mut input)?
    } else {
        Expansion::default()
    };
    let mut sink = Sink::new(out, &header, &expansion);
    let mut stats = ApplyStats {
        method: header.method,
        codec: header.codec,
        filter: header.filter,
        base_len: header.base_len,
        base_copied: 0,
        result_len: header.result_len,
        payload_len,
        records: 0,
        blocks: 0,
        peak_block_bytes: 0,
    };

    match old {
        None => {
            let mut buf = vec![0u8; CHUNK];
            let mut left = header.result_len;
            while left > 0 {
                let n = (left.min(CHUNK as u64)) as usize;
                input.read_exact(&mut buf[..n], "image data")?;
                sink.write(&buf[..n])?;
                left -= n as u64;
            }
        }
        Some(base) => {
            let base = ExpandedBase::new(base, header.base_len, &expansion.old)
                .map_err(|e| PatchError::CorruptControl(format!("expansion table: {e}")))?;
            let mut old = OldReader::new(base, header.filter)?;
            apply_diff(&header, &mut old, &mut input, &mut sink, &mut stats)?
        }
    }
    input.expect_end()?;
    sink.finish(&header)?;
    Ok(stats)
}

fn check_base<B: Read + Seek>(mut base: B, header: &PatchHeader) -> Result<B, PatchError> {
    base.seek(SeekFrom::Start(0))?;
    let m = crate::hash::measure(&mut base)?;
    let (len, digest) = (m.length, m.sha256);
    if len != header.base_len || digest != header.base_sha256 {
        return Err(PatchError::WrongBase {
            expected_len: header.base_len,
            expected_sha256: hex::encode(header.base_sha256),
            actual_len: len,
            actual_sha256: hex::encode(digest),
        });
    }
    Ok(base)
}

/// The expansion table at the start of an expanded patch's payload.
fn read_expansion(header: &PatchHeader, input: &mut Payload<'_>) -> Result<Expansion, PatchError> {
    let count = |input: &mut Payload<'_>| -> Result<usize, PatchError> {
        let n = input.varint("expansion table")?;
        if n > expand::MAX_REGIONS as u64 {
            return Err(PatchError::CorruptControl(format!(
                "expansion table lists {n} regions (limit {})",
                expand::MAX_REGIONS
            )));
        }
        Ok(n as usize)
    };
    let region = |input: &mut Payload<'_>| -> Result<Region, PatchError> {
        Ok(Region {
            start: input.varint("expansion table")?,
            packed_len: input.varint("expansion table")?,
            expanded_len: input.varint("expansion table")?,
        })
    };
    let mut e = Expansion::default();
    for _ in 0..count(input)? {
        e.old.push(region(input)?);
    }
    for _ in 0..count(input)? {
        let region = region(input)?;
        let level = u8::try_from(input.varint("expansion table")?).unwrap_or(0);
        e.new.push(PackedRegion { region, level });
    }
    e.validate(header.base_len, header.result_len)
        .map_err(|m| PatchError::CorruptControl(format!("expansion table: {m}")))?;
    Ok(e)
}

/// The base, whole, as the reference prefix of a [`Method::ZstdPrefix`] patch.
fn read_prefix<B: Read + Seek>(mut base: B, header: &PatchHeader) -> Result<Vec<u8>, PatchError> {
    if header.codec != Codec::Zstd {
        return Err(PatchError::CorruptControl(
            "a zstd-prefix patch must use the zstd codec".into(),
        ));
    }
    if header.base_len > 1u64 << header.window_log {
        return Err(PatchError::LimitExceeded(format!(
            "zstd-prefix base of {} bytes exceeds the window 2^{}",
            header.base_len, header.window_log
        )));
    }
    base.seek(SeekFrom::Start(0))?;
    let mut prefix = Vec::with_capacity(header.base_len as usize);
    base.take(header.base_len).read_to_end(&mut prefix)?;
    Ok(prefix)
}

fn open_decoder<'a, P: Read + 'a>(
    header: &PatchHeader,
    limited: Limited<P>,
    prefix: Option<&'a [u8]>,
) -> Result<Box<dyn Read + 'a>, PatchError> {
    let bad = |e: std::io::Error| PatchError::Decompress(e.to_string());
    match header.codec {
        Codec::Zstd => {
            let d = match prefix {
                Some(p) => zstd::stream::read::Decoder::with_ref_prefix(
                    BufReader::with_capacity(CHUNK, limited),
                    p,
                ),
                None => zstd::stream::read::Decoder::new(limited),
            };
            let mut d = d.map_err(bad)?.single_frame();
            d.window_log_max(u32::from(header.window_log))
                .map_err(bad)?;
            Ok(Box::new(d))
        }
        Codec::Lzma2 => {
            let lz = |e: liblzma::stream::Error| PatchError::Decompress(e.to_string());
            let mut opts = liblzma::stream::LzmaOptions::new_preset(6).map_err(lz)?;
            opts.dict_size(1u32 << header.window_log)
                .literal_context_bits(u32::from(header.lzma_lc))
                .literal_position_bits(u32::from(header.lzma_lp))
                .position_bits(u32::from(header.lzma_pb));
            let mut filters = liblzma::stream::Filters::new();
            filters.lzma2(&opts);
            let stream = liblzma::stream::Stream::new_raw_decoder(&filters).map_err(lz)?;
            Ok(Box::new(liblzma::read::XzDecoder::new_stream(
                limited, stream,
            )))
        }
    }
}

fn apply_diff<B: Read + Seek, W: Write>(
    header: &PatchHeader,
    old: &mut OldReader<ExpandedBase<B>>,
    input: &mut Payload<'_>,
    sink: &mut Sink<W>,
    stats: &mut ApplyStats,
) -> Result<(), PatchError> {
    let cap = 1u64 << header.block_log;
    let max_rec = max_records(header.block_log);
    let mut records: Vec<(u64, u64, i64)> = Vec::new();
    let mut diff: Vec<u8> = Vec::new();
    let mut obuf = vec![0u8; CHUNK];
    let mut ebuf = vec![0u8; CHUNK];
    let mut cursor: u64 = 0;
    if header.filter.is_remap() {
        old.set_prediction(read_prediction(header, input)?);
    }
    let base_len = old.len();
    while sink.written < sink.limit {
        let corrupt = |m: String| Err(PatchError::CorruptControl(m));
        let n = input.varint("block header")?;
        let diff_len = input.varint("block header")?;
        let extra_len = input.varint("block header")?;
        if n == 0 || n > max_rec {
            return corrupt(format!(
                "block {} has {n} records (limit 1..={max_rec})",
                stats.blocks
            ));
        }
        if diff_len > cap {
            return corrupt(format!(
                "block {} diff section {diff_len} > {cap}",
                stats.blocks
            ));
        }
        let n_runs = if header.method.is_sparse() {
            let r = input.varint("block header")?;
            if r > diff_len {
                return corrupt(format!(
                    "block {} has {r} diff runs for {diff_len} bytes",
                    stats.blocks
                ));
            }
            Some(r)
        } else {
            None
        };
        records.clear();
        let (mut sum_add, mut sum_extra) = (0u64, 0u64);
        for _ in 0..n {
            let add = input.varint("control record")?;
            let extra = input.varint("control record")?;
            let seek = unzigzag(input.varint("control record")?);
            sum_add = sum_add.saturating_add(add);
            sum_extra = sum_extra.saturating_add(extra);
            records.push((add, extra, seek));
        }
        if sum_add != diff_len || sum_extra != extra_len {
            return corrupt(format!(
                "block {}: records add up to {sum_add}/{sum_extra} bytes, sections are {diff_len}/{extra_len}",
                stats.blocks
            ));
        }
        let total = diff_len.saturating_add(extra_len);
        if total > sink.limit - sink.written {
            return corrupt(format!(
                "block {} writes {total} bytes past the result length {}",
                stats.blocks, sink.limit
            ));
        }
        diff.clear();
        diff.resize(diff_len as usize, 0);
        match n_runs {
            None => input.read_exact(&mut diff, "diff section")?,
            Some(r) => read_sparse(input, &mut diff, r, stats.blocks)?,
        }
        stats.peak_block_bytes = stats.peak_block_bytes.max(diff_len + 24 * n);

        let mut d = 0usize;
        for &(add, extra, seek) in &records {
            let Some(start) = cursor.checked_add_signed(seek) else {
                return corrupt(format!("seek {seek} from {cursor} before the base start"));
            };
            if add > 0 && !matches!(start.checked_add(add), Some(end) if end <= base_len) {
                return corrupt(format!(
                    "copy of {add} bytes at {start} outside the base ({base_len} bytes)"
                ));
            }
            let mut left = add as usize;
            let mut at = start;
            while left > 0 {
                let k = left.min(CHUNK);
                old.read_at(at, &mut obuf[..k])?;
                for (o, x) in obuf[..k].iter_mut().zip(&diff[d..d + k]) {
                    *o = o.wrapping_add(*x);
                }
                sink.write(&obuf[..k])?;
                d += k;
                at += k as u64;
                left -= k;
            }
            if add > 0 {
                cursor = start + add;
            }
            let mut left = extra;
            while left > 0 {
                let k = left.min(CHUNK as u64) as usize;
                input.read_exact(&mut ebuf[..k], "extra section")?;
                sink.write(&ebuf[..k])?;
                left -= k as u64;
            }
            stats.base_copied += add;
        }
        stats.records += n;
        stats.blocks += 1;
    }
    Ok(())
}

/// Fills the zeroed `diff` from `n_runs` zero / literal runs and the literal bytes after
/// them. The literal positions are first marked with 1 in `diff` itself, so no run list is
/// buffered.
fn read_sparse(
    input: &mut Payload<'_>,
    diff: &mut [u8],
    n_runs: u64,
    block: u64,
) -> Result<(), PatchError> {
    let mut at = 0u64;
    let len = diff.len() as u64;
    for _ in 0..n_runs {
        let zeros = input.varint("diff runs")?;
        let lit = input.varint("diff runs")?;
        let end = at.saturating_add(zeros).saturating_add(lit);
        if zeros.saturating_add(lit) == 0 || end > len {
            return Err(PatchError::CorruptControl(format!(
                "block {block}: diff runs empty or past the diff section ({len} bytes)"
            )));
        }
        diff[(at + zeros) as usize..end as usize].fill(1);
        at = end;
    }
    if at != len {
        return Err(PatchError::CorruptControl(format!(
            "block {block}: diff runs cover {at} of {len} bytes"
        )));
    }
    let mut i = 0;
    while i < diff.len() {
        if diff[i] == 0 {
            i += 1;
            continue;
        }
        let l = diff[i..].iter().take_while(|&&b| b == 1).count();
        input.read_exact(&mut diff[i..i + l], "diff literals")?;
        i += l;
    }
    Ok(())
}

/// The address map and (filter 6) load ranges at the start of a remap patch's payload.
fn read_prediction(
    header: &PatchHeader,
    input: &mut Payload<'_>,
) -> Result<Prediction, PatchError> {
    let wide = header.filter == Filter::X86RemapPointers;
    // Filters 2, 4 and 5 look targets up modulo 2^25; filter 6 at full 32-bit positions.
    let max_start = if wide { u32::MAX } else { (1 << 25) - 1 };
    let mut pred = Prediction::from_map(read_map(input, max_start)?);
    if wide {
        let n = input.varint("load ranges")?;
        if n > MAX_LOAD_RANGES as u64 {
            return Err(PatchError::CorruptControl(format!(
                "{n} load ranges (limit {MAX_LOAD_RANGES})"
            )));
        }
        for _ in 0..n {
            pred.loads.push(LoadRange {
                vaddr: input.varint("load ranges")?,
                len: input.varint("load ranges")?,
                offset: input.varint("load ranges")?,
                code: match input.varint("load ranges")? {
                    0 => false,
                    1 => true,
                    f => {
                        return Err(PatchError::CorruptControl(format!(
                            "load range code flag {f} (must be 0 or 1)"
                        )))
                    }
                },
            });
        }
    }
    Ok(pred)
}

fn read_map(input: &mut Payload<'_>, max_start: u32) -> Result<AddressMap, PatchError> {
    let n = input.varint("address map")?;
    if n > MAX_MAP_ENTRIES as u64 {
        return Err(PatchError::CorruptControl(format!(
            "address map of {n} entries (limit {MAX_MAP_ENTRIES})"
        )));
    }
    let (mut starts, mut shifts) = (Vec::new(), Vec::new());
    let mut at = 0u64;
    for _ in 0..n {
        at = at.saturating_add(input.varint("address map")?);
        let shift = unzigzag(input.varint("address map")?);
        starts.push(u32::try_from(at).unwrap_or(u32::MAX));
        shifts.push(i32::try_from(shift).unwrap_or(i32::MAX));
    }
    AddressMap::from_parts(starts, shifts, max_start)
        .ok_or_else(|| PatchError::CorruptControl("address map out of order or range".into()))
}

/// The compressed payload: at most `left` bytes of the patch. Notes when the patch ends early
/// so that decoder errors caused by it are reported as truncation.
struct Limited<P> {
    inner: P,
    left: u64,
    truncated: Rc<Cell<bool>>,
}

impl<P: Read> Read for Limited<P> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let k = (buf.len() as u64).min(self.left) as usize;
        let n = self.inner.read(&mut buf[..k])?;
        if n == 0 {
            self.truncated.set(true);
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "patch ends inside its payload",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The decompressed payload, with errors mapped to patch errors.
struct Payload<'a> {
    r: BufReader<Box<dyn Read + 'a>>,
    truncated: Rc<Cell<bool>>,
}

impl Payload<'_> {
    fn err(&self, e: std::io::Error, what: &str) -> PatchError {
        if self.truncated.get() {
            PatchError::Truncated(format!("payload ends inside the {what}"))
        } else if e.kind() == std::io::ErrorKind::UnexpectedEof {
            PatchError::CorruptControl(format!("payload ends inside the {what}"))
        } else {
            PatchError::Decompress(e.to_string())
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), PatchError> {
        self.r.read_exact(buf).map_err(|e| self.err(e, what))
    }

    fn varint(&mut self, what: &str) -> Result<u64, PatchError> {
        match read_u64(&mut self.r).map_err(|e| self.err(e, what))? {
            VarintRead::Value(v) => Ok(v),
            VarintRead::Eof | VarintRead::Truncated => Err(self.err(
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "eof"),
                what,
            )),
            VarintRead::Overlong => Err(PatchError::CorruptControl(format!(
                "overlong integer in the {what}"
            ))),
        }
    }

    fn expect_end(&mut self) -> Result<(), PatchError> {
        let mut b = [0u8; 1];
        match self.r.read(&mut b) {
            Ok(0) => Ok(()),
            Ok(_) => Err(PatchError::CorruptControl(
                "payload continues after the result is complete".into(),
            )),
            Err(e) => Err(self.err(e, "end of payload")),
        }
    }
}

/// Unfilters, recompresses expanded regions, hashes, counts and writes the result.
struct Sink<W: Write> {
    out: W,
    /// Length and sha256 of the real result written.
    real: Sha256Counter,
    /// Bytes of the (virtual, for expanded patches) result produced.
    written: u64,
    /// Length of the (virtual) result.
    limit: u64,
    real_limit: u64,
    repack: Option<Repacker>,
    filter: Filter,
    seg: Vec<u8>,
    seg_offset: u64,
}

impl<W: Write> Sink<W> {
    fn new(out: W, header: &PatchHeader, expansion: &Expansion) -> Self {
        let regions = expansion.new.iter().map(|p| p.region);
        Sink {
            out,
            real: Sha256Counter::new(),
            written: 0,
            limit: expand::virtual_len(header.result_len, regions),
            real_limit: header.result_len,
            repack: (!expansion.new.is_empty()).then(|| Repacker::new(&expansion.new)),
            filter: header.filter,
            seg: Vec::with_capacity(if header.filter == Filter::None {
                0
            } else {
                SEGMENT
            }),
            seg_offset: 0,
        }
    }

    fn emit(&mut self, data: &[u8]) -> Result<(), PatchError> {
        let (counter, out, limit) = (&mut self.real, &mut self.out, self.real_limit);
        let mut real = |b: &[u8]| -> Result<(), PatchError> {
            if counter.length() + b.len() as u64 > limit {
                return Err(PatchError::CorruptControl(format!(
                    "recompressed output exceeds the result length {limit}"
                )));
            }
            counter.update(b);
            out.write_all(b)?;
            Ok(())
        };
        match &mut self.repack {
            Some(r) => r.push(data, &mut real),
            None => real(data),
        }
    }

    fn write(&mut self, mut data: &[u8]) -> Result<(), PatchError> {
        if self.written + data.len() as u64 > self.limit {
            return Err(PatchError::CorruptControl(format!(
                "output would exceed the result length {}",
                self.limit
            )));
        }
        self.written += data.len() as u64;
        if self.filter == Filter::None {
            return self.emit(data);
        }
        while !data.is_empty() {
            let k = (SEGMENT - self.seg.len()).min(data.len());
            self.seg.extend_from_slice(&data[..k]);
            data = &data[k..];
            if self.seg.len() == SEGMENT {
                self.flush_segment()?;
            }
        }
        Ok(())
    }

    fn flush_segment(&mut self) -> Result<(), PatchError> {
        let mut seg = std::mem::take(&mut self.seg);
        filter::decode(self.filter, &mut seg, self.seg_offset);
        self.seg_offset += seg.len() as u64;
        self.emit(&seg)?;
        seg.clear();
        self.seg = seg;
        Ok(())
    }

    fn finish(mut self, header: &PatchHeader) -> Result<(), PatchError> {
        if !self.seg.is_empty() {
            self.flush_segment()?;
        }
        self.out.flush()?;
        let m = self.real.finish();
        if m.length != header.result_len || m.sha256 != header.result_sha256 {
            return Err(PatchError::ResultMismatch {
                expected_len: header.result_len,
                expected_sha256: hex::encode(header.result_sha256),
                actual_len: m.length,
                actual_sha256: m.sha256_hex(),
            });
        }
        Ok(())
    }
}
