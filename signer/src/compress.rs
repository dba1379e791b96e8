//! Streaming zstd compression of firmware images into a temp file of the repository.
//!
//! The image is read once, in 1 MiB chunks: each chunk feeds the image hash and the encoder,
//! whose output feeds the target hash on its way to disk. Memory stays bounded by zstd's own
//! window and jobs, whatever the image size. The result is then decompressed once more and
//! checked against the image hash, so a target is never published that does not give back the
//! image.
//!
//! At the high levels targets are made with (19 by default) compression is nearly all of the
//! time of `ota-sign add` (the image hash runs beside it, the check after it is under 1%), so
//! it runs on every core: zstd's multithreaded mode cuts the image into jobs compressed side by
//! side, each job seeing part of the input before it, and writes them as ONE standard frame
//! with the same window (2^window_log) and checksum. A device decoder sees no difference, its
//! window cap included; the output is within a fraction of a percent of the single-threaded
//! one ([`Threads::for_image`]; `ota-compress-bench` prints both).
use crate::{Error, Result};
use indicatif::ProgressBar;
use ota_formats::hash::{measure, read_chunks, HashingWriter, Sha256Counter};
use ota_fs::atomic;
use ota_fs::user_file;
use ota_repo::config::CompressionPolicy;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use tempfile::NamedTempFile;

const CHUNK: usize = 1 << 20;

/// Magic number opening a zstd frame (RFC 8878).
const ZSTD_MAGIC: u32 = 0xFD2F_B528;

/// A compressed image waiting in a temp file next to its final place.
#[derive(Debug)]
pub struct Compressed {
    /// The compressed bytes (fsynced), to be renamed into place.
    pub file: NamedTempFile,
    /// Length of the compressed file.
    pub length: u64,
    /// sha256 of the compressed file, hex.
    pub sha256: String,
    /// Length of the image.
    pub image_length: u64,
    /// sha256 of the image, hex.
    pub image_sha256: String,
}

/// Open the firmware image, with input errors that name it. Only a regular file is accepted
/// (a FIFO would block, a device never end); its size is not capped, images are streamed.
pub fn open_image(path: &Path) -> Result<(File, u64)> {
    let hint = "pass the path of a readable firmware image file";
    let file =
        user_file::open(path).map_err(|e| Error::user_file("firmware", e, Error::input, hint))?;
    let meta = file.metadata().map_err(|e| {
        Error::input(
            format!("cannot read firmware {}: {e}", path.display()),
            hint,
        )
    })?;
    if meta.len() == 0 {
        return Err(Error::input(
            format!("firmware {} is empty", path.display()),
            hint,
        ));
    }
    Ok((file, meta.len()))
}

/// How many threads compress, and how the image is cut into jobs for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threads {
    /// zstd worker threads; 0 compresses on the calling thread (zstd's single-threaded mode).
    pub workers: u32,
    /// Bytes of input per job (0: zstd's choice, 4 windows); ignored without workers.
    pub job_size: u32,
    /// How much of the input before a job the job sees again (zstd's overlapLog: 0 its
    /// choice, 9 a whole window, each step below half as much); ignored without workers.
    pub overlap_log: u32,
}

impl Threads {
    /// On the calling thread only.
    pub const SINGLE: Threads = Threads {
        workers: 0,
        job_size: 0,
        overlap_log: 0,
    };

    /// What `ota-sign add` uses for an image of `len` bytes and a window of 2^`window_log`:
    /// one worker per core (`available_parallelism`), but no more workers than jobs nor than
    /// [`MAX_WORKERS`]; jobs of 4 windows (zstd's own choice), or down to 2 windows so that a
    /// smaller image still makes two jobs per worker; each job sees 1/8 window of the input
    /// before it. An image of one job, or a single core, is compressed on the calling thread
    /// (a lone worker would only add work).
    ///
    /// zstd's default overlap at levels 19-22 is a whole window: each job first indexes the
    /// window of input before it, a quarter more input to index with 4-window jobs, for a
    /// target within 0.1% of this one's size (see `ota-compress-bench --mt 0:9`). Jobs of
    /// one window with that 1/8 overlap were 6% larger on a 32 MiB image; of 2 windows, not.
    pub fn for_image(len: u64, window_log: u32) -> Threads {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cores = u64::try_from(cores)
            .unwrap_or(1)
            .min(u64::from(MAX_WORKERS));
        let window = 1u64 << window_log.min(MAX_JOB_LOG);
        let max_job = window.saturating_mul(4).min(1 << MAX_JOB_LOG);
        let min_job = window.saturating_mul(2).max(MIN_JOB).min(max_job);
        let job = len.div_ceil(2 * cores).clamp(min_job, max_job);
        let workers = cores.min(len.div_ceil(job));
        if workers < 2 {
            return Threads::SINGLE;
        }
        Threads {
            workers: u32::try_from(workers).unwrap_or(MAX_WORKERS),
            job_size: u32::try_from(job).unwrap_or(u32::MAX),
            overlap_log: OVERLAP_LOG,
        }
    }
}

/// At most this many workers: each holds its own match tables and job buffers (about
/// 100-150 MiB at level 19 with an 8 MiB window), and more rarely pay off for one image.
pub const MAX_WORKERS: u32 = 16;

/// Smallest job handed to a worker, whatever the window (zstd's own floor is 512 KiB).
const MIN_JOB: u64 = 4 << 20;

/// Largest job: 2^30 bytes (zstd's ZSTDMT_JOBLOG_MAX).
const MAX_JOB_LOG: u32 = 30;

/// zstd's overlapLog for the jobs: each sees 2^(6-9) = 1/8 window of the input before it.
const OVERLAP_LOG: u32 = 6;

/// Compress `image` into a temp file in `dest_dir`, on every core ([`Threads::for_image`]).
pub fn compress(
    image: File,
    image_name: &Path,
    dest_dir: &Path,
    policy: CompressionPolicy,
    bar: &ProgressBar,
) -> Result<Compressed> {
    let len = image.metadata().map_or(0, |m| m.len());
    let threads = Threads::for_image(len, policy.window_log);
    tracing::debug!(
        workers = threads.workers,
        job_size = threads.job_size,
        "compression threads"
    );
    compress_with(image, image_name, dest_dir, policy, threads, bar)
}

/// Compress `image` into a temp file in `dest_dir` with `threads`.
pub fn compress_with(
    image: File,
    image_name: &Path,
    dest_dir: &Path,
    policy: CompressionPolicy,
    threads: Threads,
    bar: &ProgressBar,
) -> Result<Compressed> {
    let tmp = atomic::temp_in(dest_dir).map_err(|e| Error::write(dest_dir, e))?;
    let tmp_path = tmp.path().to_path_buf();
    let werr = |e: io::Error| Error::write(&tmp_path, e);
    let out = HashingWriter::new(tmp.as_file().try_clone().map_err(werr)?);
    let mut enc = zstd::stream::write::Encoder::new(out, policy.level).map_err(werr)?;
    // An explicit window: zstd picks it from the level otherwise, and device decoders
    // need a bound they can rely on. Multithreaded jobs keep it: the frame has one window.
    enc.window_log(policy.window_log).map_err(werr)?;
    enc.include_checksum(true).map_err(werr)?;
    if threads.workers > 0 {
        enc.multithread(threads.workers).map_err(werr)?;
        if threads.job_size > 0 {
            enc.set_parameter(zstd::zstd_safe::CParameter::JobSize(threads.job_size))
                .map_err(werr)?;
        }
        if threads.overlap_log > 0 {
            enc.set_parameter(zstd::zstd_safe::CParameter::OverlapSizeLog(
                threads.overlap_log,
            ))
            .map_err(werr)?;
        }
    }
    let pledged = image.metadata().map(|m| m.len()).ok();
    enc.set_pledged_src_size(pledged).map_err(werr)?;
    let mut reader = BufReader::with_capacity(CHUNK, image);
    let mut buf = vec![0u8; CHUNK];
    let mut image = Sha256Counter::new();
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::input(
                    format!("cannot read firmware {}: {e}", image_name.display()),
                    "check the file and the disk it is on",
                ))
            }
        };
        image.update(&buf[..n]);
        enc.write_all(&buf[..n]).map_err(werr)?;
        bar.inc(n as u64);
    }
    let image = image.finish();
    if pledged.is_some_and(|p| p != image.length) {
        return Err(Error::input(
            format!(
                "firmware {} changed size while it was read",
                image_name.display()
            ),
            "add the image again once it is no longer being written",
        ));
    }
    let (file, out) = enc.finish().map_err(werr)?.finish();
    file.sync_all().map_err(werr)?;
    Ok(Compressed {
        file: tmp,
        length: out.length,
        sha256: out.sha256_hex(),
        image_length: image.length,
        image_sha256: image.sha256_hex(),
    })
}

/// Decompress the compressed file and check it gives the image back, within `window_log`.
pub fn verify_round_trip(c: &Compressed, window_log: u32, bar: &ProgressBar) -> Result<()> {
    let path = c.file.path();
    let fail = |why: String| Error::Io {
        msg: format!(
            "compressed target {} does not give the image back: {why}",
            path.display()
        ),
        hint: "nothing was published; re-run the command, and check the disk if it happens again"
            .into(),
    };
    let file = File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut dec = zstd::stream::read::Decoder::new(file).map_err(|e| fail(e.to_string()))?;
    dec.window_log_max(window_log)
        .map_err(|e| fail(e.to_string()))?;
    let mut got = Sha256Counter::new();
    read_chunks(dec, |b| {
        got.update(b);
        bar.inc(b.len() as u64);
        Ok(())
    })
    .map_err(|e| fail(e.to_string()))?;
    let got = got.finish();
    if !got.matches(c.image_length, &c.image_sha256) {
        return Err(fail(format!(
            "got {} bytes with sha256 {}",
            got.length,
            got.sha256_hex()
        )));
    }
    Ok(())
}

/// The window a zstd frame asks of its decoder (bytes), read from the frame header at the
/// start of `bytes`; None when they do not start with one.
pub fn frame_window_size(bytes: &[u8]) -> Option<u64> {
    if bytes.get(..4)? != ZSTD_MAGIC.to_le_bytes() {
        return None;
    }
    let descriptor = *bytes.get(4)?;
    if descriptor & 0x20 == 0 {
        // Window_Descriptor: exponent and eighths.
        let w = *bytes.get(5)?;
        let base = 1u64 << (10 + u32::from(w >> 3));
        return Some(base + base / 8 * u64::from(w & 7));
    }
    // Single segment: the window is the content size, which follows the dictionary id.
    let dict_len = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let size_len = [1, 2, 4, 8][usize::from(descriptor >> 6)];
    let field = bytes.get(5 + dict_len..5 + dict_len + size_len)?;
    let size = field
        .iter()
        .rev()
        .fold(0u64, |v, b| (v << 8) | u64::from(*b));
    Some(if size_len == 2 { size + 256 } else { size })
}

/// sha256 of a file, streamed.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    Ok(measure(File::open(path)?)?.sha256_hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_client::device::ZSTD_WINDOW_LOG_MAX;

    /// Firmware-like bytes: a pseudo-random 256 KiB block repeated with changes, so matches
    /// reach back across job boundaries, nearer and farther than the jobs' overlap.
    fn image(len: usize) -> Vec<u8> {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let block: Vec<u8> = (0..256 << 10).map(|_| (next() % 40) as u8).collect();
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let mut b = block.clone();
            for _ in 0..64 {
                let at = (next() % b.len() as u64) as usize;
                b[at] = next() as u8;
            }
            out.extend_from_slice(&b[..b.len().min(len - out.len())]);
        }
        out
    }

    fn run(data: &[u8], policy: CompressionPolicy, threads: Threads) -> (Compressed, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fw.img");
        std::fs::write(&path, data).unwrap();
        let (file, _) = open_image(&path).unwrap();
        let bar = ProgressBar::hidden();
        let c = compress_with(file, &path, dir.path(), policy, threads, &bar).unwrap();
        verify_round_trip(&c, policy.window_log, &bar).unwrap();
        let bytes = std::fs::read(c.file.path()).unwrap();
        (c, bytes)
    }

    #[test]
    fn multithreaded_targets_are_one_frame_the_client_decodes_within_the_policy_window() {
        let data = image(5 << 20);
        // The default policy (the image is smaller than its window: the frame's window is the
        // image), and a 1 MiB window the image is five times larger than.
        let small_window = CompressionPolicy {
            level: 19,
            window_log: 20,
        };
        for policy in [CompressionPolicy::default(), small_window] {
            assert!(policy.window_log <= ZSTD_WINDOW_LOG_MAX);
            // 1 MiB jobs: five of them, on two workers, each seeing 1/8 window before it.
            let threads = Threads {
                workers: 2,
                job_size: 1 << 20,
                overlap_log: OVERLAP_LOG,
            };
            let (c, bytes) = run(&data, policy, threads);
            assert_eq!(c.image_length, data.len() as u64);
            assert_eq!(c.length, bytes.len() as u64);
            assert_eq!(c.sha256, ota_formats::hash::sha256_hex(&bytes));

            // One standard frame, whose window is within the policy's.
            assert_eq!(
                zstd::zstd_safe::find_frame_compressed_size(&bytes),
                Ok(bytes.len())
            );
            let window = frame_window_size(&bytes).unwrap();
            assert!(window <= 1 << policy.window_log, "window {window}");

            // The client's decoder (push-style, window capped) gives the image back.
            let mut dec = zstd::stream::write::Decoder::new(Vec::new()).unwrap();
            dec.window_log_max(ZSTD_WINDOW_LOG_MAX).unwrap();
            dec.write_all(&bytes).unwrap();
            dec.flush().unwrap();
            assert!(dec.into_inner() == data, "the client decodes another image");

            if policy == small_window {
                // The window is the policy's, and the cap is real: one step less refuses it.
                assert_eq!(window, 1 << policy.window_log);
                let mut dec = zstd::stream::read::Decoder::new(&bytes[..]).unwrap();
                dec.window_log_max(policy.window_log - 1).unwrap();
                assert!(io::copy(&mut dec, &mut io::sink()).is_err());
            } else {
                // Within 1% of the single-threaded target.
                let (single, _) = run(&data, policy, Threads::SINGLE);
                assert!(
                    c.length * 100 <= single.length * 101,
                    "multithreaded {} bytes, single-threaded {}",
                    c.length,
                    single.length
                );
            }
        }
    }

    #[test]
    fn threads_fit_the_image_and_the_cores() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        // One job's worth or less: the calling thread.
        assert_eq!(Threads::for_image(0, 23), Threads::SINGLE);
        assert_eq!(Threads::for_image(MIN_JOB, 23), Threads::SINGLE);
        for len in [64u64 << 20, 250 << 20, 8 << 30] {
            let t = Threads::for_image(len, 23);
            if cores < 2 {
                assert_eq!(t, Threads::SINGLE);
                continue;
            }
            assert!((2..=cores.min(MAX_WORKERS)).contains(&t.workers), "{t:?}");
            assert!(
                (MIN_JOB..=32 << 20).contains(&u64::from(t.job_size)),
                "{t:?}"
            );
            assert!(len.div_ceil(u64::from(t.job_size)) >= u64::from(t.workers));
            assert_eq!(t.overlap_log, OVERLAP_LOG);
        }
    }

    #[test]
    fn frame_windows_are_read_from_headers() {
        // Window_Descriptor: 2^(10 + exponent) plus eighths.
        let frame = |descriptor: u8, rest: &[u8]| {
            let mut b = ZSTD_MAGIC.to_le_bytes().to_vec();
            b.push(descriptor);
            b.extend_from_slice(rest);
            b
        };
        assert_eq!(frame_window_size(&frame(0, &[13 << 3])), Some(8 << 20));
        assert_eq!(
            frame_window_size(&frame(0, &[(13 << 3) | 4])),
            Some(12 << 20)
        );
        // Single segment: the content size (2-byte field + 256).
        assert_eq!(frame_window_size(&frame(0x60, &[0x10, 0x00])), Some(0x110));
        assert_eq!(frame_window_size(&frame(0x20, &[200])), Some(200));
        assert_eq!(frame_window_size(b"\x28\xb5\x2f"), None);
        assert_eq!(frame_window_size(&[0u8; 8]), None);
        // A real single-segment frame.
        let small = zstd::bulk::compress(&[7u8; 1000], 3).unwrap();
        assert_eq!(frame_window_size(&small), Some(1000));
    }
}
