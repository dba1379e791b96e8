//! The install pipeline: verified download → decrypt (if encrypted) → decompress → check the
//! signed image length and sha256 while the bytes stream into an [`InstallTarget`]'s writer.
//! Streaming throughout: memory stays bounded by a chunk and the zstd window.
//!
//! The image is completed (renamed into place, or fsync'd and read back in a slot) only
//! through [`InstallableImage::install`], and only this crate's pipelines construct an
//! [`InstallableImage`], after the last check passed.
use super::decompress::{Decompressor, Handoff, QUEUED};
use super::error::{state_io, DeviceError, DeviceResult};
use super::image::VerifiedImage;
use super::install_target::{ImageWriter, InstallTarget};
use super::sink::{ImageSink, SinkFailure};
use super::unlock::Unlock;
use super::Candidate;
use ota_formats::envelope::{decrypt_stream_checked, EnvelopeError};
use ota_formats::target_meta::Compression;
use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc;

/// A fully verified image in its destination's writer (a temp file beside the install path,
/// the inactive slot, a hook's stdin): decrypted, decompressed, and matching the signed length
/// and sha256. Dropping it discards the image (the temp file deleted, the hook aborted).
pub struct InstallableImage {
    writer: Box<dyn ImageWriter>,
    image: VerifiedImage,
}

impl InstallableImage {
    /// Wrap a writer whose every byte was checked against the signed `image` (by
    /// [`ImageSink::finish`]).
    pub(super) fn verified(writer: Box<dyn ImageWriter>, image: &VerifiedImage) -> Self {
        InstallableImage {
            writer,
            image: image.clone(),
        }
    }

    /// The image.
    pub fn image(&self) -> &VerifiedImage {
        &self.image
    }

    /// Complete the install: rename into place, or fsync and read back a slot, or commit a
    /// hook.
    pub fn install(self) -> DeviceResult<()> {
        self.writer.complete(&self.image)
    }
}

/// Run the full-image pipeline from the verified download `downloaded` of `candidate` into
/// `dest`, up to (not including) [`InstallableImage::install`].
pub(crate) fn prepare(
    candidate: &Candidate,
    downloaded: &Path,
    unlock: &Unlock,
    dest: &dyn InstallTarget,
) -> DeviceResult<InstallableImage> {
    let target = candidate.target().path();
    let image = candidate.image();
    dest.check(image)?;
    // The data key first: a device that may not decrypt never touches the destination.
    let encryption = unlock.key_for(target, candidate.encryption())?;
    let input = std::fs::File::open(downloaded).map_err(|e| state_io(downloaded, e))?;
    let writer = dest.begin(image)?;
    let phase = if encryption.is_some() {
        "decrypt"
    } else {
        "decompress"
    };
    let mut sink =
        ImageSink::new(image, writer, phase).map_err(|e| DeviceError::BadTargetMeta {
            target: target.to_string(),
            reason: e.to_string(),
        })?;
    let decompress_error = |source| DeviceError::Decompress {
        target: target.to_string(),
        source,
    };
    let compression = candidate.ota().compression;
    // Two threads: this one reads the verified download, decrypts and decompresses; a
    // second one hashes and writes the image (see [`pipeline`]).
    let result = pipeline(compression, &mut sink, |stage| match &encryption {
        None => copy_plain(input, stage, downloaded),
        Some((info, key)) => decrypt_stream_checked(io::BufReader::new(input), stage, key, info)
            .map(|_| ())
            .map_err(|e| match e {
                EnvelopeError::Io(io) => Stage::Write(io),
                source => Stage::Refused(DeviceError::Decrypt {
                    target: target.to_string(),
                    source,
                }),
            }),
    });
    if let Err(e) = result {
        return Err(match e {
            Stage::Start(source) => decompress_error(source),
            e => classify(e, &mut sink, target, dest),
        });
    }
    let writer = sink.finish().map_err(|source| DeviceError::ImageMismatch {
        target: target.to_string(),
        source,
    })?;
    Ok(InstallableImage::verified(writer, image))
}

/// Run `produce` (reading, decrypting) into a [`Decompressor`] on a thread of its own, while
/// this thread passes the image it decodes to `sink` (sha256, length cap, the destination's
/// writer). The two overlap on a device with two cores; at most [`QUEUED`] + 2 buffers of
/// [`super::decompress::HANDOFF`] bytes exist. When the sink refuses or fails, the producer's next handoff fails
/// and it stops; when the producer fails, the sink sees no more bytes. Either way the image
/// is not complete and `sink` is never finished by this function.
fn pipeline(
    compression: Compression,
    sink: &mut ImageSink,
    produce: impl FnOnce(&mut Decompressor) -> Result<(), Stage> + Send,
) -> Result<(), Stage> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(QUEUED);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>();
    let mut stage =
        Decompressor::new(compression, Handoff::new(full_tx, empty_rx)).map_err(Stage::Start)?;
    std::thread::scope(|scope| {
        let producer = std::thread::Builder::new()
            .name("ota-decode".into())
            .spawn_scoped(scope, move || {
                produce(&mut stage)?;
                stage.finish().map_err(Stage::Write)
            })
            .map_err(Stage::Start)?;
        consume(full_rx, empty_tx, sink);
        match producer.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Write every buffer that arrives into `sink` and send it back emptied, until the producer
/// is done or the sink fails (then dropping `full`, so the producer's next send fails).
fn consume(full: mpsc::Receiver<Vec<u8>>, empty: mpsc::Sender<Vec<u8>>, sink: &mut ImageSink) {
    while let Ok(buf) = full.recv() {
        if sink.write_all(&buf).is_err() {
            return;
        }
        // The producer may have finished already: nothing to give the buffer back to.
        let _ = empty.send(buf);
    }
}

/// Where a pipeline step failed.
enum Stage {
    /// The decoder or its thread could not be set up.
    Start(io::Error),
    /// Reading the downloaded file.
    Read(DeviceError),
    /// A stage below refused the bytes (decompression, sink); see [`classify`].
    Write(io::Error),
    /// Decryption refused.
    Refused(DeviceError),
}

fn classify(e: Stage, sink: &mut ImageSink, target: &str, dest: &dyn InstallTarget) -> DeviceError {
    // The sink's own failure is the precise one; the layers above only carried an io::Error.
    match (e, sink.take_failure()) {
        (_, Some(SinkFailure::Image(source))) => DeviceError::ImageMismatch {
            target: target.to_string(),
            source,
        },
        (_, Some(SinkFailure::Io(source))) => DeviceError::InstallIo {
            path: dest.describe().into(),
            source,
        },
        (Stage::Read(e) | Stage::Refused(e), None) => e,
        (Stage::Write(source) | Stage::Start(source), None) => DeviceError::Decompress {
            target: target.to_string(),
            source,
        },
    }
}

fn copy_plain(input: std::fs::File, out: &mut impl Write, path: &Path) -> Result<(), Stage> {
    let mut write_failed = None;
    let read = ota_formats::hash::read_chunks(input, |chunk| {
        out.write_all(chunk).map_err(|e| {
            let copy = io::Error::new(e.kind(), e.to_string());
            write_failed = Some(e);
            copy
        })
    });
    match (read, write_failed) {
        (Ok(_), _) => Ok(()),
        (Err(_), Some(e)) => Err(Stage::Write(e)),
        (Err(e), None) => Err(Stage::Read(state_io(path, e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::keys::Keyring;
    use crate::device::FileInstaller;
    use crate::transport::DirTransport;
    use crate::VerifiedTarget;
    use ota_formats::hash::sha256_hex;
    use ota_formats::metadata::TargetFile;
    use ota_formats::target_meta::{Compression, ImageInfo, OtaTarget};
    use std::path::PathBuf;

    struct Case {
        dir: tempfile::TempDir,
        dest: PathBuf,
        downloaded: PathBuf,
    }

    fn case(wire: &[u8]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("slot")).unwrap();
        let dest = dir.path().join("slot/image");
        std::fs::write(&dest, b"old firmware").unwrap();
        let downloaded = dir.path().join("download");
        std::fs::write(&downloaded, wire).unwrap();
        Case {
            dir,
            dest,
            downloaded,
        }
    }

    fn candidate(wire: &[u8], image: ImageInfo, compression: Compression) -> Candidate {
        let ota = OtaTarget::new("fw", "1.0.0", vec!["b".into()], image, compression).unwrap();
        candidate_of(wire, ota)
    }

    fn candidate_of(wire: &[u8], ota: OtaTarget) -> Candidate {
        let mut file = TargetFile::from_bytes(wire);
        file.custom = Some(ota.to_custom(None).unwrap());
        let target = VerifiedTarget::new("fw-1.0.0.img.zst", file, "targets");
        let sel = crate::device::Selector {
            hardware_id: "b",
            image_name: None,
            installed: None,
        };
        sel.accepts(&target).unwrap().unwrap()
    }

    fn run(c: &Case, cand: &Candidate) -> DeviceResult<InstallableImage> {
        let transport = DirTransport::new(c.dir.path());
        let keys = Keyring::default();
        let unlock = Unlock {
            keys: &keys,
            device_key_path: Path::new("device.key"),
            targets: &transport,
        };
        prepare(cand, &c.downloaded, &unlock, &FileInstaller::new(&c.dest))
    }

    fn slot_files(c: &Case) -> Vec<String> {
        crate::device::slot_listing::files_beside(&c.dest)
    }

    #[test]
    fn zstd_image_installs_only_on_install() {
        let image: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let wire = zstd::encode_all(&image[..], 3).unwrap();
        let c = case(&wire);
        let cand = candidate(
            &wire,
            ImageInfo::new(image.len() as u64, sha256_hex(&image)),
            Compression::Zstd,
        );
        let ready = run(&c, &cand).unwrap();
        assert_eq!(std::fs::read(&c.dest).unwrap(), b"old firmware");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&c.dest, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        ready.install().unwrap();
        assert_eq!(std::fs::read(&c.dest).unwrap(), image);
        assert_eq!(slot_files(&c), ["image"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&c.dest).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640, "the replaced file's mode is kept");
        }
    }

    #[test]
    fn hash_mismatch_leaves_path_untouched_and_no_temp_file() {
        let image = b"the real image".to_vec();
        let wire = zstd::encode_all(&image[..], 3).unwrap();
        let c = case(&wire);
        let cand = candidate(
            &wire,
            ImageInfo::new(image.len() as u64, sha256_hex(b"another image!")),
            Compression::Zstd,
        );
        let err = run(&c, &cand).err().unwrap();
        assert!(matches!(err, DeviceError::ImageMismatch { .. }), "{err}");
        assert_eq!(err.category(), super::super::Category::Refused);
        assert_eq!(std::fs::read(&c.dest).unwrap(), b"old firmware");
        assert_eq!(slot_files(&c), ["image"]);
    }

    #[test]
    fn output_longer_than_signed_length_is_cut_off() {
        // A decompression bomb: the frame expands far beyond the signed image length.
        let image = vec![0u8; 4 * 1024 * 1024];
        let wire = zstd::encode_all(&image[..], 3).unwrap();
        let c = case(&wire);
        let cand = candidate(
            &wire,
            ImageInfo::new(1024, sha256_hex(&image[..1024])),
            Compression::Zstd,
        );
        let err = run(&c, &cand).err().unwrap();
        assert!(
            matches!(
                &err,
                DeviceError::ImageMismatch {
                    source: ota_formats::Error::LengthMismatch { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(slot_files(&c), ["image"]);
    }

    #[test]
    fn a_truncated_zstd_frame_is_refused_and_nothing_installed() {
        // Many handoff buffers of image, then the input stops inside the frame.
        let image: Vec<u8> = (0..1_500_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = zstd::encode_all(&image[..], 3).unwrap();
        wire.truncate(wire.len() - 7);
        let c = case(&wire);
        let cand = candidate(
            &wire,
            ImageInfo::new(image.len() as u64, sha256_hex(&image)),
            Compression::Zstd,
        );
        let err = run(&c, &cand).err().unwrap();
        assert!(matches!(err, DeviceError::Decompress { .. }), "{err}");
        assert_eq!(std::fs::read(&c.dest).unwrap(), b"old firmware");
        assert_eq!(slot_files(&c), ["image"]);
    }

    #[test]
    fn an_image_of_whole_handoff_buffers_installs() {
        // The frame ends exactly as a buffer fills: the decoder must not be asked for more
        // (at a frame boundary it would ask for the next frame's header). Also through the
        // plain (uncompressed) path, and with the compressed input written in small pieces.
        let handoff = super::super::decompress::HANDOFF;
        for len in [handoff, 3 * handoff, 8 << 20] {
            let image: Vec<u8> = (0..len as u32).map(|i| (i % 251) as u8).collect();
            for (wire, compression) in [
                (zstd::encode_all(&image[..], 3).unwrap(), Compression::Zstd),
                (image.clone(), Compression::None),
            ] {
                let c = case(&wire);
                let cand = candidate(
                    &wire,
                    ImageInfo::new(image.len() as u64, sha256_hex(&image)),
                    compression,
                );
                run(&c, &cand).unwrap().install().unwrap();
                assert_eq!(std::fs::read(&c.dest).unwrap(), image, "{len} bytes");
            }
        }
    }

    #[test]
    fn concatenated_zstd_frames_give_the_whole_image() {
        let image: Vec<u8> = (0..700_000u32).map(|i| (i % 13) as u8).collect();
        let mut wire = zstd::encode_all(&image[..400_000], 3).unwrap();
        wire.extend(zstd::encode_all(&image[400_000..], 3).unwrap());
        let c = case(&wire);
        let cand = candidate(
            &wire,
            ImageInfo::new(image.len() as u64, sha256_hex(&image)),
            Compression::Zstd,
        );
        run(&c, &cand).unwrap().install().unwrap();
        assert_eq!(std::fs::read(&c.dest).unwrap(), image);
    }

    #[test]
    fn corrupt_zstd_and_plain_targets() {
        let c = case(b"not zstd at all");
        let cand = candidate(
            b"not zstd at all",
            ImageInfo::new(3, sha256_hex(b"abc")),
            Compression::Zstd,
        );
        let err = run(&c, &cand).err().unwrap();
        assert!(matches!(err, DeviceError::Decompress { .. }), "{err}");
        assert_eq!(slot_files(&c), ["image"]);

        let c = case(b"plain image");
        let cand = candidate(
            b"plain image",
            ImageInfo::new(11, sha256_hex(b"plain image")),
            Compression::None,
        );
        run(&c, &cand).unwrap().install().unwrap();
        assert_eq!(std::fs::read(&c.dest).unwrap(), b"plain image");
    }

    #[test]
    fn encrypted_target_without_device_key_is_a_state_error() {
        let c = case(b"x");
        let mut ota = OtaTarget::new(
            "fw",
            "1.0.0",
            vec!["b".into()],
            ImageInfo::new(1, sha256_hex(b"x")),
            Compression::None,
        )
        .unwrap();
        ota.encryption = Some(serde_json::json!({"format": "ota-envelope-v1"}));
        let cand = candidate_of(b"x", ota);
        let err = run(&c, &cand).err().unwrap();
        // Malformed encryption info is refused before the key is even looked for.
        assert!(matches!(err, DeviceError::BadTargetMeta { .. }), "{err}");
        assert_eq!(slot_files(&c), ["image"]);
    }
}

#[cfg(all(test, unix))]
mod hook_tests {
    use super::*;
    use crate::device::keys::Keyring;
    use crate::device::HookInstaller;
    use crate::transport::DirTransport;
    use crate::VerifiedTarget;
    use ota_formats::hash::sha256_hex;
    use ota_formats::metadata::TargetFile;
    use ota_formats::target_meta::{Compression, ImageInfo, OtaTarget};
    use std::os::unix::fs::PermissionsExt;

    /// A hook that logs each call with its image sha256 and keeps what `write` received.
    fn hook(dir: &Path, fail_on: &str) -> std::path::PathBuf {
        let path = dir.join("hook.sh");
        let script = format!(
            "#!/bin/sh\necho \"$1 $OTA_IMAGE_VERSION $OTA_IMAGE_SHA256\" >> {log}\n\
             if [ \"$1\" = write ]; then cat > {got}; fi\n\
             if [ \"$1\" = {fail_on} ]; then echo 'hook says no' >&2; exit 3; fi\nexit 0\n",
            log = dir.join("log").display(),
            got = dir.join("received").display(),
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn run(dir: &Path, image: &[u8], signed_sha: &str, fail_on: &str) -> DeviceResult<()> {
        let ota = OtaTarget::new(
            "fw",
            "1.2.0",
            vec!["b".into()],
            ImageInfo::new(image.len() as u64, signed_sha),
            Compression::None,
        )
        .unwrap();
        let mut file = TargetFile::from_bytes(image);
        file.custom = Some(ota.to_custom(None).unwrap());
        let target = VerifiedTarget::new("fw-1.2.0.img", file, "targets");
        let sel = crate::device::Selector {
            hardware_id: "b",
            image_name: None,
            installed: None,
        };
        let cand = sel.accepts(&target).unwrap().unwrap();
        let downloaded = dir.join("download");
        std::fs::write(&downloaded, image).unwrap();
        let transport = DirTransport::new(dir);
        let keys = Keyring::default();
        let unlock = Unlock {
            keys: &keys,
            device_key_path: Path::new("device.key"),
            targets: &transport,
        };
        let dest = HookInstaller::new(hook(dir, fail_on));
        prepare(&cand, &downloaded, &unlock, &dest)?.install()
    }

    fn log(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect()
    }

    #[test]
    fn the_hook_gets_write_then_commit_with_the_signed_facts() {
        let d = tempfile::tempdir().unwrap();
        let image = b"firmware for the MCU".to_vec();
        run(d.path(), &image, &sha256_hex(&image), "never").unwrap();
        assert_eq!(log(d.path()), ["write", "commit"]);
        let line = std::fs::read_to_string(d.path().join("log")).unwrap();
        assert!(
            line.contains(&format!("write 1.2.0 {}", sha256_hex(&image))),
            "{line}"
        );
        assert_eq!(std::fs::read(d.path().join("received")).unwrap(), image);
    }

    #[test]
    fn an_image_that_does_not_match_is_aborted_never_committed() {
        let d = tempfile::tempdir().unwrap();
        let err = run(
            d.path(),
            b"tampered image",
            &sha256_hex(b"signed image!!"),
            "never",
        )
        .unwrap_err();
        assert!(matches!(err, DeviceError::ImageMismatch { .. }), "{err}");
        assert_eq!(log(d.path()), ["write", "abort"]);
    }

    #[test]
    fn a_failing_hook_is_an_install_error_and_aborted() {
        let d = tempfile::tempdir().unwrap();
        let image = b"img".to_vec();
        let err = run(d.path(), &image, &sha256_hex(&image), "write").unwrap_err();
        assert!(
            matches!(err, DeviceError::Hook { stage: "write", .. }),
            "{err}"
        );
        assert_eq!(err.category().exit_code(), 5);
        assert_eq!(log(d.path()), ["write", "abort"]);
        let d = tempfile::tempdir().unwrap();
        let err = run(d.path(), &image, &sha256_hex(&image), "commit").unwrap_err();
        assert!(
            matches!(
                err,
                DeviceError::Hook {
                    stage: "commit",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(log(d.path()), ["write", "commit", "abort"]);
    }
}
