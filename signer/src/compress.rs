//! Streaming zstd compression of firmware images into a temp file of the repository.
//!
//! The image is read once, in 1 MiB chunks: each chunk feeds the image hash and the encoder,
//! whose output feeds the target hash on its way to disk. Memory stays bounded by zstd's own
//! window, whatever the image size. The result is then decompressed once more and checked
//! against the image hash, so a target is never published that does not give back the image.
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

/// Compress `image` into a temp file in `dest_dir`.
pub fn compress(
    image: File,
    image_name: &Path,
    dest_dir: &Path,
    policy: CompressionPolicy,
    bar: &ProgressBar,
) -> Result<Compressed> {
    let tmp = atomic::temp_in(dest_dir).map_err(|e| Error::write(dest_dir, e))?;
    let tmp_path = tmp.path().to_path_buf();
    let werr = |e: io::Error| Error::write(&tmp_path, e);
    let out = HashingWriter::new(tmp.as_file().try_clone().map_err(werr)?);
    let mut enc = zstd::stream::write::Encoder::new(out, policy.level).map_err(werr)?;
    // An explicit window: zstd picks it from the level otherwise, and device decoders
    // need a bound they can rely on.
    enc.window_log(policy.window_log).map_err(werr)?;
    enc.include_checksum(true).map_err(werr)?;
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

/// sha256 of a file, streamed.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    Ok(measure(File::open(path)?)?.sha256_hex())
}
