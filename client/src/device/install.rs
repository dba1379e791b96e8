//! The install pipeline: verified download → decrypt (if encrypted) → decompress → check the
//! signed image length and sha256 → temp file beside the install path → fsync → rename →
//! fsync directory. Streaming throughout: memory stays bounded by a chunk and the zstd window.
//!
//! The image reaches the install path only through [`InstallableImage::install`], and only
//! [`prepare`] constructs an [`InstallableImage`], after the last check passed.
use super::decompress::Decompressor;
use super::error::{state_io, DeviceError, DeviceResult};
use super::keys::Keyring;
use super::sink::{ImageSink, SinkFailure};
use super::Candidate;
use crate::transport::Transport;
use ota_formats::envelope::{decrypt_stream_checked, EncryptionInfo, EnvelopeError};
use ota_fs::atomic::PendingFile;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A fully verified image in a temp file beside its destination: decrypted, decompressed,
/// and matching the signed length and sha256. Dropping it deletes the temp file.
pub struct InstallableImage {
    file: PendingFile,
    dest: PathBuf,
}

impl InstallableImage {
    /// The destination it will replace.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// fsync the image, rename it over the destination, fsync the directory. The new file
    /// keeps the permissions of the file it replaces (0644 for a new file).
    pub fn install(self) -> DeviceResult<()> {
        let InstallableImage { mut file, dest } = self;
        if let Ok(Some(mode)) = ota_fs::mode::of(&dest) {
            file.set_mode(mode);
        }
        file.commit()
            .map_err(|source| DeviceError::InstallIo { path: dest, source })
    }
}

impl InstallableImage {
    /// Wrap a temp file whose content was checked against the signed image (by
    /// [`ImageSink::finish`]); for the patch pipeline.
    pub(super) fn verified(file: PendingFile, dest: &Path) -> Self {
        InstallableImage {
            file,
            dest: dest.to_path_buf(),
        }
    }
}

/// Refuse an install path that is anything but a regular file (or nothing yet): the file
/// installer replaces the file by a rename, which would turn a device node into a regular
/// file (the image in RAM instead of on the partition), replace a link instead of what it
/// points to, or fail late on a directory or a FIFO.
pub fn check_install_path(dest: &Path) -> DeviceResult<()> {
    match std::fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DeviceError::InstallIo {
            path: dest.to_path_buf(),
            source,
        }),
        Ok(m) if m.file_type().is_file() => Ok(()),
        Ok(m) => Err(DeviceError::InstallPathNotRegular {
            path: dest.to_path_buf(),
            kind: ota_fs::user_file::describe(m.file_type()),
        }),
    }
}

/// What the pipeline needs besides the downloaded file.
pub struct Inputs<'a> {
    /// The chosen target.
    pub candidate: &'a Candidate,
    /// The verified downloaded target file (wire bytes).
    pub downloaded: &'a Path,
    /// The device's keys (device key and group keys).
    pub keys: &'a Keyring,
    /// Where `device.key` lives (for messages).
    pub device_key_path: &'a Path,
    /// Where per-device slips are fetched from (the targets base).
    pub targets: &'a dyn Transport,
}

/// Run the pipeline up to (not including) the rename over `dest`.
pub fn prepare(inputs: &Inputs, dest: &Path) -> DeviceResult<InstallableImage> {
    check_install_path(dest)?;
    let target = inputs.candidate.target.path();
    let ota = &inputs.candidate.ota;
    let bad_meta = |reason: String| DeviceError::BadTargetMeta {
        target: target.to_string(),
        reason,
    };
    // The data key first: a device that may not decrypt never touches the install directory.
    let encryption = match &ota.encryption {
        None => None,
        Some(value) => {
            let info: EncryptionInfo = serde_json::from_value(value.clone())
                .map_err(|e| bad_meta(format!("custom.ota.encryption: {e}")))?;
            if inputs.keys.is_empty() {
                return Err(DeviceError::NoDeviceKey {
                    target: target.to_string(),
                    key: inputs.device_key_path.to_path_buf(),
                });
            }
            let key = super::unlock::data_key(target, &info, inputs.keys, inputs.targets)?;
            Some((info, key))
        }
    };
    let input =
        std::fs::File::open(inputs.downloaded).map_err(|e| state_io(inputs.downloaded, e))?;
    let pending = PendingFile::new(dest, ota_fs::mode::PUBLIC_FILE).map_err(|source| {
        DeviceError::InstallIo {
            path: dest.to_path_buf(),
            source,
        }
    })?;
    let sink = ImageSink::new(&ota.image, pending).map_err(|e| bad_meta(e.to_string()))?;
    let mut stage =
        Decompressor::new(ota.compression, sink).map_err(|e| DeviceError::Decompress {
            target: target.to_string(),
            source: e,
        })?;

    let result = match &encryption {
        None => copy_plain(input, &mut stage, inputs.downloaded),
        Some((info, key)) => {
            decrypt_stream_checked(io::BufReader::new(input), &mut stage, key, info)
                .map(|_| ())
                .map_err(|e| match e {
                    EnvelopeError::Io(io) => Stage::Write(io),
                    source => Stage::Refused(DeviceError::Decrypt {
                        target: target.to_string(),
                        source,
                    }),
                })
        }
    };
    let finished = result.and_then(|()| stage_finish(&mut stage));
    if let Err(e) = finished {
        return Err(classify(e, stage.sink_mut(), target, dest));
    }
    let sink = stage.finish().map_err(|e| DeviceError::Decompress {
        target: target.to_string(),
        source: e,
    })?;
    let file = sink.finish().map_err(|source| DeviceError::ImageMismatch {
        target: target.to_string(),
        source,
    })?;
    Ok(InstallableImage {
        file,
        dest: dest.to_path_buf(),
    })
}

/// Where a pipeline step failed.
enum Stage {
    /// Reading the downloaded file.
    Read(DeviceError),
    /// A stage below refused the bytes (decompression, sink); see [`classify`].
    Write(io::Error),
    /// Decryption refused.
    Refused(DeviceError),
}

fn stage_finish(stage: &mut Decompressor<ImageSink>) -> Result<(), Stage> {
    stage.flush().map_err(Stage::Write)
}

fn classify(e: Stage, sink: &mut ImageSink, target: &str, dest: &Path) -> DeviceError {
    // The sink's own failure is the precise one; the layers above only carried an io::Error.
    match (e, sink.take_failure()) {
        (_, Some(SinkFailure::Image(source))) => DeviceError::ImageMismatch {
            target: target.to_string(),
            source,
        },
        (_, Some(SinkFailure::Io(source))) => DeviceError::InstallIo {
            path: dest.to_path_buf(),
            source,
        },
        (Stage::Read(e) | Stage::Refused(e), None) => e,
        (Stage::Write(source), None) => DeviceError::Decompress {
            target: target.to_string(),
            source,
        },
    }
}

fn copy_plain(mut input: std::fs::File, out: &mut impl Write, path: &Path) -> Result<(), Stage> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Stage::Read(state_io(path, e))),
        };
        out.write_all(&buf[..n]).map_err(Stage::Write)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::DirTransport;
    use crate::VerifiedTarget;
    use ota_formats::hash::sha256_hex;
    use ota_formats::metadata::TargetFile;
    use ota_formats::target_meta::{Compression, ImageInfo, OtaTarget};

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
        let mut file = TargetFile::from_bytes(wire);
        file.custom = Some(ota.to_custom(None).unwrap());
        Candidate {
            target: VerifiedTarget::new("fw-1.0.0.img.zst", file, "targets"),
            ota,
            version: ota_formats::version::Version::parse("1.0.0").unwrap(),
            deltas: Vec::new(),
        }
    }

    fn run(c: &Case, cand: &Candidate) -> DeviceResult<InstallableImage> {
        let transport = DirTransport::new(c.dir.path());
        let inputs = Inputs {
            candidate: cand,
            downloaded: &c.downloaded,
            keys: &Keyring::default(),
            device_key_path: Path::new("device.key"),
            targets: &transport,
        };
        prepare(&inputs, &c.dest)
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
        let mut cand = candidate(b"x", ImageInfo::new(1, sha256_hex(b"x")), Compression::None);
        cand.ota.encryption = Some(serde_json::json!({"format": "ota-envelope-v1"}));
        let err = run(&c, &cand).err().unwrap();
        // Malformed encryption info is refused before the key is even looked for.
        assert!(matches!(err, DeviceError::BadTargetMeta { .. }), "{err}");
        assert_eq!(slot_files(&c), ["image"]);
    }
}
