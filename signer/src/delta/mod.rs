//! Delta patch creation: finds the smallest patch from an old to a new image.
//!
//! Several candidates are built and the smallest is kept:
//! * **diff**: bsdiff-style covers (see [`matcher`]) found through a suffix array of the old
//!   image, serialised into the block payload of `ota_formats::patch` both densely
//!   (`Method::Diff`) and with zero / literal runs for the diff bytes (`Method::SparseDiff`),
//!   and compressed with zstd and with LZMA2 (several literal-context settings); each on the
//!   raw images and on images passed through the machine-code filters
//!   (`ota_formats::patch::filter`: x86, Thumb, their remap variants, Thumb remap plus
//!   pointer prediction and x86 wide remap plus ELF pointer prediction), which the applier
//!   undoes while streaming. LZ4 legacy streams (compressed kernels) are diffed decompressed
//!   when they recompress exactly (`Method::ExpandedSparseDiff`, see [`expand`]);
//! * **bsdiff**: the covers of the `bsdiff` crate, in the same payload layouts, for images up
//!   to [`CreateOptions::bsdiff_limit`];
//! * **zstd prefix**: zstd with the whole old image as reference prefix (`--patch-from`,
//!   `Method::ZstdPrefix`), for old images up to [`CreateOptions::prefix_limit`]: the device
//!   must hold the base in memory to apply it, so larger bases do not get one;
//! * **full**: the new image alone, compressed, as the fallback.
//!
//! [`PatchInfo::worth_publishing`] tells whether the delta is clearly smaller than the full
//! image, i.e. whether a repository should publish it at all.

mod compress;
mod elf;
mod expand;
mod matcher;
mod pool;
mod suffix;

pub use compress::CodecChoice;

use compress::{compress, compress_with_prefix, window_log_for};
use ota_formats::patch::{apply, filter, payload, Codec, Filter, Method, PatchHeader, HEADER_LEN};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Errors of patch creation.
#[derive(Debug, Error)]
pub enum DeltaError {
    /// An input image could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The old image is too large for the 32-bit suffix array.
    #[error("old image of {0} bytes is too large for delta creation (limit 2 GiB)")]
    TooLarge(u64),
    /// A compressor failed.
    #[error("compression failed: {0}")]
    Compress(String),
    /// No candidate was produced (all methods disabled) or none passed verification.
    #[error("no valid patch candidate: enable at least one codec")]
    NoCandidate,
}

/// What to try when creating a patch.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    /// Worker threads for the cover search and the compressors.
    pub threads: usize,
    /// Filters to try for the diff method.
    pub filters: Vec<Filter>,
    /// Codecs to try on each payload.
    pub codecs: Vec<CodecChoice>,
    /// Largest compression window, as a power of two (the device's decoder window).
    pub max_window_log: u8,
    /// Largest diff section of one payload block, as a power of two.
    pub block_log: u8,
    /// zstd compression level.
    pub zstd_level: i32,
    /// A delta is worth publishing when it is at most this fraction of the full patch.
    pub publish_ratio: f64,
    /// How many filters' payloads (ranked by a quick zstd estimate) get the full set of
    /// codecs when the new image is larger than `thorough_limit` (all of them otherwise).
    pub finalists: usize,
    /// Payloads larger than this are compressed with the first LZMA2 codec only, and full
    /// images larger than this with zstd at level 12 only: the other attempts rarely win by
    /// much there and each costs minutes.
    pub thorough_limit: usize,
    /// Images larger than this are diffed under one filter at a time, to bound memory.
    pub parallel_limit: usize,
    /// Copies with fewer bytes equal to the base are sent as literal bytes instead.
    pub min_cover_equal: u64,
    /// Also try the `bsdiff` crate's covers for images up to this size.
    pub bsdiff_limit: usize,
    /// Also try zstd with the whole base as reference prefix (`--patch-from`) for bases up
    /// to this size: the device holds the base in memory to apply such a patch.
    pub prefix_limit: usize,
    /// Diff LZ4 legacy streams (a compressed kernel) decompressed when the result's streams
    /// recompress exactly. Applying such a patch needs about 33 MiB more memory (one 8 MiB
    /// block decoded from the base and one being compressed, each with its packed form).
    pub expand: bool,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            filters: vec![
                Filter::None,
                Filter::X86,
                Filter::X86Remap,
                Filter::X86RemapPointers,
                Filter::Thumb,
                Filter::ThumbRemap,
                Filter::ThumbRemapPointers,
            ],
            codecs: vec![
                CodecChoice {
                    codec: Codec::Zstd,
                    lzma_props: (0, 0, 0),
                },
                CodecChoice {
                    codec: Codec::Lzma2,
                    lzma_props: (0, 0, 0),
                },
                CodecChoice {
                    codec: Codec::Lzma2,
                    lzma_props: (1, 0, 0),
                },
                // Wide literal contexts: 0.5% smaller than lc=1 on ruff's payload.
                CodecChoice {
                    codec: Codec::Lzma2,
                    lzma_props: (4, 0, 0),
                },
            ],
            max_window_log: 23,
            block_log: 21,
            zstd_level: 19,
            publish_ratio: 0.8,
            thorough_limit: 4 << 20,
            parallel_limit: 32 << 20,
            min_cover_equal: 16,
            expand: true,
            bsdiff_limit: 16 << 20,
            prefix_limit: 8 << 20,
            finalists: 2,
        }
    }
}

/// One patch that was built and measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Method.
    pub method: Method,
    /// Filter.
    pub filter: Filter,
    /// Cover search that made a diff.
    pub matcher: Matcher,
    /// Codec and properties.
    pub codec: CodecChoice,
    /// Total patch size in bytes, header included.
    pub len: u64,
}

/// Facts about the chosen patch.
#[derive(Debug, Clone)]
pub struct PatchInfo {
    /// The chosen (smallest) candidate.
    pub chosen: Candidate,
    /// Size of the smallest full-image patch, the fallback a delta competes with.
    pub full_len: u64,
    /// Old image size.
    pub old_len: u64,
    /// New image size.
    pub new_len: u64,
    /// Every candidate tried, in the order built.
    pub candidates: Vec<Candidate>,
    /// The fraction of `full_len` under which a delta is worth publishing.
    pub publish_ratio: f64,
}

impl PatchInfo {
    /// Whether to publish the delta: it uses the base (a diff or a zstd-prefix patch) and is
    /// at most `publish_ratio` of the full patch. Otherwise clients should simply download
    /// the full image.
    pub fn worth_publishing(&self) -> bool {
        self.chosen.method.reads_base()
            && (self.chosen.len as f64) <= self.full_len as f64 * self.publish_ratio
    }
}

/// Reads both files and creates the smallest patch turning `old` into `new`.
pub fn create_patch(
    old: &Path,
    new: &Path,
    opts: &CreateOptions,
) -> Result<(Vec<u8>, PatchInfo), DeltaError> {
    let read = |p: &Path| {
        let err = |source| DeltaError::Read {
            path: p.to_path_buf(),
            source,
        };
        // Regular files only: a FIFO would block, a device never end.
        let mut file = ota_fs::user_file::open(p).map_err(|e| match e {
            ota_fs::user_file::UserFileError::Io { source, .. } => err(source),
            other => err(std::io::Error::other(other.to_string())),
        })?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(err)?;
        Ok(bytes)
    };
    let (o, n) = (read(old)?, read(new)?);
    create_patch_bytes(&o, &n, opts)
}

struct Built {
    cand: Candidate,
    header: PatchHeader,
    body: Vec<u8>,
}

fn header_for(
    base: &PatchHeader,
    method: Method,
    filter: Filter,
    c: CodecChoice,
    window_log: u8,
    block_log: u8,
) -> PatchHeader {
    let mut h = base.clone();
    h.method = method;
    h.filter = filter;
    h.codec = c.codec;
    h.window_log = window_log;
    h.block_log = block_log;
    (h.lzma_lc, h.lzma_lp, h.lzma_pb) = if c.codec == Codec::Lzma2 {
        c.lzma_props
    } else {
        (0, 0, 0)
    };
    h
}

/// One compression to run: a payload (diff or the full image) under one codec.
struct Job<'a> {
    method: Method,
    filter: Filter,
    matcher: Matcher,
    codec: CodecChoice,
    data: &'a [u8],
}

/// The compression jobs for `data`: every codec, except that large diff payloads get the
/// first LZMA2 codec only (the others rarely win by much there and each costs minutes).
fn jobs_for<'a>(
    method: Method,
    filter: Filter,
    matcher: Matcher,
    data: &'a [u8],
    codecs: &[CodecChoice],
    opts: &CreateOptions,
) -> Vec<Job<'a>> {
    let first_lzma = codecs.iter().copied().find(|c| c.codec == Codec::Lzma2);
    let codecs: Vec<CodecChoice> = match first_lzma {
        Some(c) if method.is_diff() && data.len() > opts.thorough_limit * 16 => vec![c],
        _ => codecs.to_vec(),
    };
    codecs
        .into_iter()
        .map(|codec| Job {
            method,
            filter,
            matcher,
            codec,
            data,
        })
        .collect()
}

fn compress_job(
    base: &PatchHeader,
    old: &[u8],
    job: &Job<'_>,
    opts: &CreateOptions,
) -> Result<Built, DeltaError> {
    let prefix = job.method == Method::ZstdPrefix;
    // A zstd-prefix window spans the prefix and the result, as zstd --patch-from sets it.
    let wlog = if prefix {
        window_log_for(
            old.len() + job.data.len(),
            ota_formats::patch::MAX_WINDOW_LOG,
        )
    } else {
        window_log_for(job.data.len(), opts.max_window_log)
    };
    // Full images larger than the thorough limit get zstd level 12: -19 costs minutes there.
    let level = if job.method == Method::Full && job.data.len() > opts.thorough_limit {
        opts.zstd_level.min(12)
    } else {
        opts.zstd_level
    };
    let header = header_for(
        base,
        job.method,
        job.filter,
        job.codec,
        wlog,
        opts.block_log,
    );
    let body = if prefix {
        compress_with_prefix(&header, old, job.data, level)?
    } else {
        compress(&header, job.data, level)?
    };
    Ok(built(job, header, body))
}

fn built(job: &Job<'_>, header: PatchHeader, body: Vec<u8>) -> Built {
    Built {
        cand: Candidate {
            method: job.method,
            filter: job.filter,
            matcher: job.matcher,
            codec: job.codec,
            len: (HEADER_LEN + body.len()) as u64,
        },
        header,
        body,
    }
}

fn filtered(img: &[u8], filter: Filter) -> Cow<'_, [u8]> {
    if filter == Filter::None {
        Cow::Borrowed(img)
    } else {
        let mut v = img.to_vec();
        filter::encode(filter, &mut v, 0);
        Cow::Owned(v)
    }
}

/// The uncompressed diff payload of `new` against `old` under `filter` (for inspection and
/// experiments with codecs; [`create_patch_bytes`] compresses it).
pub fn diff_payload(
    old: &[u8],
    new: &[u8],
    filter: Filter,
    opts: &CreateOptions,
    threads: usize,
) -> Vec<u8> {
    diff_payloads(old, new, filter, opts, threads, true)
        .0
        .unwrap_or_default()
}

/// The diff payloads of `new` against `old` under `filter`, in the layouts of
/// [`Method::Diff`] (when `dense`) and [`Method::SparseDiff`].
fn diff_payloads(
    old: &[u8],
    new: &[u8],
    filter: Filter,
    opts: &CreateOptions,
    threads: usize,
    dense: bool,
) -> (Option<Vec<u8>>, Vec<u8>) {
    let (block_log, min_equal) = (opts.block_log, opts.min_cover_equal);
    let (fo, fnew) = (filtered(old, filter), filtered(new, filter));
    let idx = suffix::SuffixIndex::new(&fo);
    let covers = matcher::covers(&idx, &fo, &fnew, threads, 1 << 20, min_equal);
    drop(idx);
    tracing::debug!(?filter, covers = covers.len(), "cover search done");
    if !filter.is_remap() {
        return layouts(&fo, &fnew, &covers, &[], block_log, dense);
    }
    // Second pass: predict the base's operands through the alignment the first pass found,
    // then diff against that prediction.
    let mut pred = filter::Prediction::from_map(address_map(&covers));
    if filter == Filter::X86RemapPointers {
        pred.loads = elf::load_ranges(old);
    }
    let mut remapped = old.to_vec();
    filter::encode_remapped(filter, &mut remapped, 0, &pred);
    drop(fo);
    let idx = suffix::SuffixIndex::new(&remapped);
    let covers = matcher::covers(&idx, &remapped, &fnew, threads, 1 << 20, min_equal);
    drop(idx);
    let mut prefix = Vec::new();
    pred.map.write(&mut prefix);
    if filter == Filter::X86RemapPointers {
        pred.write_loads(&mut prefix);
    }
    layouts(&remapped, &fnew, &covers, &prefix, block_log, dense)
}

/// The payloads of `covers` after `prefix`: the sparse layout, and the dense one when
/// `dense`.
fn layouts(
    old: &[u8],
    new: &[u8],
    covers: &[payload::Cover],
    prefix: &[u8],
    block_log: u8,
    dense: bool,
) -> (Option<Vec<u8>>, Vec<u8>) {
    let with_prefix = |body: Vec<u8>| {
        let mut p = prefix.to_vec();
        p.extend(body);
        p
    };
    let dense = dense.then(|| with_prefix(payload::encode(old, new, covers, block_log)));
    let sparse = with_prefix(payload::encode_sparse(old, new, covers, block_log));
    (dense, sparse)
}

/// Old position -> shift to the new image, from the covers' alignments: longest covers
/// first, each kept only where it does not overlap (in the old image) one already kept, so
/// short incidental matches cannot shadow the alignment of a long region.
/// Only copies of at least 1 KiB count: shorter ones are often incidental matches, and on
/// esbuild and ruff 1 KiB measured best (64 B .. 64 KiB tried).
fn address_map(covers: &[payload::Cover]) -> filter::AddressMap {
    let mut c: Vec<&payload::Cover> = covers.iter().filter(|c| c.add_len >= 1024).collect();
    c.sort_by_key(|c| std::cmp::Reverse(c.add_len));
    let mut kept: std::collections::BTreeMap<u64, (u64, i32)> = std::collections::BTreeMap::new();
    for c in c {
        if kept.len() >= filter::MAX_MAP_ENTRIES {
            break;
        }
        let (s, e) = (c.old_start, c.old_start + c.add_len);
        let before = kept.range(..e).next_back();
        if before.is_some_and(|(_, &(end, _))| end > s) {
            continue;
        }
        kept.insert(s, (e, (c.new_start as i64 - c.old_start as i64) as i32));
    }
    filter::AddressMap::new(kept.into_iter().map(|(s, (_, d))| (s as u32, d)).collect())
}

/// The images a diff runs between: the real ones, or with their LZ4 streams expanded.
struct Pair<'a> {
    old: &'a [u8],
    new: &'a [u8],
    expanded: Option<expand::Expanded>,
}

impl Pair<'_> {
    /// The base as the diff sees it.
    fn base(&self) -> &[u8] {
        self.expanded.as_ref().map_or(self.old, |e| &e.old)
    }

    /// The result as the diff sees it.
    fn result(&self) -> &[u8] {
        self.expanded.as_ref().map_or(self.new, |e| &e.new)
    }
}

/// A diff payload: how it was made, its bytes and a quick compressed-size estimate.
struct Attempt {
    method: Method,
    filter: Filter,
    matcher: Matcher,
    data: Vec<u8>,
    estimate: usize,
}

/// Which cover search made a diff payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matcher {
    /// Our suffix-array search (`matcher`), on all cores, with short copies pruned.
    SuffixArray,
    /// The `bsdiff` crate's (Percival's bsdiff, single-threaded), its controls re-encoded
    /// in our streamable format.
    Bsdiff,
    /// No cover search: a full image or a zstd-prefix patch.
    None,
}

/// The estimate that ranks payloads before the strong compressors run (zstd level 6).
fn estimate(data: &[u8]) -> Result<usize, DeltaError> {
    Ok(zstd::bulk::compress(data, 6)
        .map_err(|e| DeltaError::Compress(e.to_string()))?
        .len())
}

/// The diff payloads under `filter` (dense and sparse) with a quick size estimate (zstd level 6), or none
/// when the filter cannot apply to images this large.
fn diff_attempt(
    pair: &Pair<'_>,
    filter: Filter,
    opts: &CreateOptions,
    threads: usize,
) -> Result<Vec<Attempt>, DeltaError> {
    let (old, new) = (pair.base(), pair.result());
    let limit = match filter {
        // Thumb targets are halfword positions modulo 2^23 bytes, x86 ones modulo 2^25.
        Filter::ThumbRemap | Filter::ThumbRemapPointers => 1 << 23,
        Filter::X86Remap => 1 << 25,
        _ => usize::MAX,
    };
    if old.len().max(new.len()) >= limit {
        return Ok(Vec::new());
    }
    // Expanded patches only exist in the sparse layout.
    let dense = pair.expanded.is_none();
    let (dense, sparse) = diff_payloads(old, new, filter, opts, threads, dense);
    match &pair.expanded {
        None => attempts(filter, Matcher::SuffixArray, dense, sparse),
        Some(e) => {
            let mut data = Vec::new();
            e.table.write(&mut data);
            data.extend(sparse);
            let method = Method::ExpandedSparseDiff;
            Ok(vec![attempt(method, filter, Matcher::SuffixArray, data)?])
        }
    }
}

/// An attempt with its estimate.
fn attempt(
    method: Method,
    filter: Filter,
    matcher: Matcher,
    data: Vec<u8>,
) -> Result<Attempt, DeltaError> {
    Ok(Attempt {
        method,
        filter,
        matcher,
        estimate: estimate(&data)?,
        data,
    })
}

/// The attempts of a dense (if made) and a sparse payload.
fn attempts(
    filter: Filter,
    matcher: Matcher,
    dense: Option<Vec<u8>>,
    sparse: Vec<u8>,
) -> Result<Vec<Attempt>, DeltaError> {
    let mut out = Vec::new();
    if let Some(d) = dense {
        out.push(attempt(Method::Diff, filter, matcher, d)?);
    }
    out.push(attempt(Method::SparseDiff, filter, matcher, sparse)?);
    Ok(out)
}

/// The covers the `bsdiff` crate finds, read back from its patch stream (per control: add,
/// extra and seek lengths as 8-byte sign-magnitude integers, then the add difference bytes
/// and the extra bytes).
fn bsdiff_covers(old: &[u8], new: &[u8]) -> Result<Vec<payload::Cover>, DeltaError> {
    let mut stream = Vec::new();
    bsdiff::diff(old, new, &mut stream).map_err(|e| DeltaError::Compress(e.to_string()))?;
    let int = |b: &[u8]| -> i64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        let v = u64::from_le_bytes(a);
        let m = (v & !(1 << 63)) as i64;
        if v >> 63 == 1 {
            -m
        } else {
            m
        }
    };
    let bad = || DeltaError::Compress("bsdiff stream does not tile the new image".into());
    let (mut covers, mut at, mut new_pos, mut old_pos) = (Vec::new(), 0usize, 0u64, 0i64);
    while at < stream.len() {
        let ctl = stream.get(at..at + 24).ok_or_else(bad)?;
        let (add, extra, seek) = (int(&ctl[..8]), int(&ctl[8..16]), int(&ctl[16..]));
        let (Ok(add), Ok(extra)) = (u64::try_from(add), u64::try_from(extra)) else {
            return Err(bad());
        };
        if old_pos < 0 || old_pos as u64 + add > old.len() as u64 {
            return Err(bad());
        }
        covers.push(payload::Cover {
            new_start: new_pos,
            old_start: old_pos as u64,
            add_len: add,
            extra_len: extra,
        });
        new_pos += add + extra;
        old_pos += add as i64 + seek;
        at += 24 + (add + extra) as usize;
    }
    if new_pos != new.len() as u64 {
        return Err(bad());
    }
    Ok(covers
        .into_iter()
        .filter(|c| c.add_len + c.extra_len > 0)
        .collect())
}

/// The `bsdiff` crate's payloads (dense and sparse, no filter), for images up to
/// `bsdiff_limit`: above that its single-threaded suffix sort costs minutes, and our own
/// matcher, which follows the same algorithm, finds equivalent covers on all cores.
fn bsdiff_attempts(
    old: &[u8],
    new: &[u8],
    opts: &CreateOptions,
) -> Result<Vec<Attempt>, DeltaError> {
    if old.len().max(new.len()) > opts.bsdiff_limit {
        return Ok(Vec::new());
    }
    let covers = bsdiff_covers(old, new)?;
    let (dense, sparse) = layouts(old, new, &covers, &[], opts.block_log, true);
    attempts(Filter::None, Matcher::Bsdiff, dense, sparse)
}

/// Whether trying `filter` on an image like `new` makes sense: ELF executables name their
/// machine; raw images (firmware) get every filter while small, and the x86 one when large.
fn filter_fits(new: &[u8], filter: Filter) -> bool {
    let thumb = matches!(
        filter,
        Filter::Thumb | Filter::ThumbRemap | Filter::ThumbRemapPointers
    );
    let x86 = matches!(
        filter,
        Filter::X86 | Filter::X86Remap | Filter::X86RemapPointers
    );
    if filter == Filter::None {
        return true;
    }
    if new.len() >= 20 && new.starts_with(b"\x7fELF") {
        return match u16::from_le_bytes([new[18], new[19]]) {
            0x03 | 0x3E => x86,
            0x28 => thumb,
            _ => true,
        };
    }
    !(thumb && new.len() >= 1 << 25)
}

/// The diff payloads of every filter, best estimate first not guaranteed. Small images run
/// the filters in parallel; images above [`CreateOptions::parallel_limit`] one filter at a
/// time with all threads (each holds a suffix array of four bytes per base byte and two
/// filtered copies), keeping only the `finalists` best payloads between filters.
fn diff_attempts(
    pair: &Pair<'_>,
    filters: &[Filter],
    opts: &CreateOptions,
) -> Result<Vec<Attempt>, DeltaError> {
    if pair.base().len().max(pair.result().len()) <= opts.parallel_limit {
        let inner = (opts.threads / filters.len().max(1)).max(1);
        let workers = opts.threads.min(filters.len()).max(1);
        let per_filter = pool::run(filters, workers, |&f| diff_attempt(pair, f, opts, inner));
        let mut out = Vec::new();
        for r in per_filter {
            out.extend(r?);
        }
        return Ok(out);
    }
    let mut out: Vec<Attempt> = Vec::new();
    for &f in filters {
        out.extend(diff_attempt(pair, f, opts, opts.threads)?);
        out.sort_by_key(|a| a.estimate);
        out.truncate(opts.finalists.max(1));
    }
    Ok(out)
}

/// Creates the smallest patch turning `old` into `new` (both in memory).
pub fn create_patch_bytes(
    old: &[u8],
    new: &[u8],
    opts: &CreateOptions,
) -> Result<(Vec<u8>, PatchInfo), DeltaError> {
    if old.len() >= i32::MAX as usize {
        return Err(DeltaError::TooLarge(old.len() as u64));
    }
    let base = PatchHeader::new(Method::Diff, Codec::Zstd, Filter::None, old, new);
    let filters: Vec<Filter> = opts
        .filters
        .iter()
        .copied()
        .filter(|&f| filter_fits(new, f))
        .collect();
    let pair = Pair {
        old,
        new,
        expanded: if opts.expand {
            expand::find(old, new)
        } else {
            None
        },
    };
    let mut attempts = diff_attempts(&pair, &filters, opts)?;
    drop(pair);
    attempts.extend(bsdiff_attempts(old, new, opts)?);
    // Only the most promising payloads get the slow, strong compressors.
    attempts.sort_by_key(|a| a.estimate);
    if new.len() > opts.thorough_limit {
        attempts.truncate(opts.finalists.max(1));
    }
    for a in &attempts {
        tracing::debug!(method = ?a.method, filter = ?a.filter, matcher = ?a.matcher, estimate = a.estimate, "finalist");
    }
    let full_codecs: Vec<CodecChoice> = opts
        .codecs
        .iter()
        .copied()
        .filter(|c| c.codec == Codec::Zstd || new.len() <= opts.thorough_limit)
        .collect();
    let mut jobs = jobs_for(
        Method::Full,
        Filter::None,
        Matcher::None,
        new,
        &full_codecs,
        opts,
    );
    for a in &attempts {
        jobs.extend(jobs_for(
            a.method,
            a.filter,
            a.matcher,
            &a.data,
            &opts.codecs,
            opts,
        ));
    }
    // zstd --patch-from: only where the device can hold the base as the decoder's prefix.
    if old.len() <= opts.prefix_limit
        && window_log_for(old.len() + new.len(), 32) <= ota_formats::patch::MAX_WINDOW_LOG
    {
        jobs.push(Job {
            method: Method::ZstdPrefix,
            filter: Filter::None,
            matcher: Matcher::None,
            codec: CodecChoice {
                codec: Codec::Zstd,
                lzma_props: (0, 0, 0),
            },
            data: new,
        });
    }
    // One encoder per thread: LZMA2 at preset 9 needs about 11 times its dictionary.
    let mut built = pool::run(&jobs, opts.threads, |j| compress_job(&base, old, j, opts))
        .into_iter()
        .collect::<Result<Vec<Built>, DeltaError>>()?;
    drop(jobs);
    drop(attempts);
    let full_len = built
        .iter()
        .filter(|b| b.cand.method == Method::Full)
        .map(|b| b.cand.len)
        .min()
        .unwrap_or(u64::MAX);
    let candidates: Vec<Candidate> = built.iter().map(|b| b.cand.clone()).collect();
    // Keep the smallest candidate that provably applies: each is checked with the real
    // applier (which verifies the result hash) before it is handed out.
    built.sort_by_key(|b| b.cand.len);
    let mut chosen = None;
    for b in built {
        let mut patch = b.header.to_bytes(b.body.len() as u64).to_vec();
        patch.extend_from_slice(&b.body);
        match apply(std::io::Cursor::new(old), &patch[..], std::io::sink()) {
            Ok(_) => {
                chosen = Some((b.cand, patch));
                break;
            }
            Err(e) => {
                tracing::error!(candidate = ?b.cand, error = %e, "candidate failed verification")
            }
        }
    }
    let (chosen, patch) = chosen.ok_or(DeltaError::NoCandidate)?;
    let info = PatchInfo {
        chosen,
        full_len,
        old_len: old.len() as u64,
        new_len: new.len() as u64,
        candidates,
        publish_ratio: opts.publish_ratio,
    };
    Ok((patch, info))
}
