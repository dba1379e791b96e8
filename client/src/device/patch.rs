//! The patch pipeline: verified patch download → decrypt (if encrypted, into a temp file) →
//! decompress (if the patch target is compressed) → apply against the current image (the
//! [`Base`]: the install file, or the committed slot's first `base.length` bytes, read by
//! seeks) → check the signed image length and sha256 while streaming into the destination's
//! writer. Like the full pipeline, nothing is completed before [`InstallableImage::install`].
use super::base::Base;
use super::decompress::ZSTD_WINDOW_LOG_MAX;
use super::delta::DeltaTarget;
use super::error::{state_io, DeviceError, DeviceResult};
use super::image::VerifiedImage;
use super::install::InstallableImage;
use super::install_target::InstallTarget;
use super::sink::{ImageSink, SinkFailure};
use super::unlock::Unlock;
use ota_formats::envelope::{decrypt_stream_checked, EnvelopeError};
use ota_formats::patch::apply;
use ota_formats::target_meta::Compression;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

/// What the patch pipeline needs.
pub(crate) struct PatchInputs<'a> {
    /// The chosen patch target.
    pub delta: &'a DeltaTarget,
    /// The signed image of the release (what the result must be).
    pub image: &'a VerifiedImage,
    /// The verified downloaded patch target file (wire bytes).
    pub downloaded: &'a Path,
    /// Directory for the decrypted patch (the downloads directory).
    pub scratch: &'a Path,
    /// How to open an encrypted patch.
    pub unlock: &'a Unlock<'a>,
}

/// Apply the patch to `base` into `dest`, up to (not including) the install.
pub(crate) fn prepare_patched(
    inputs: &PatchInputs,
    base: &Base,
    dest: &dyn InstallTarget,
) -> DeviceResult<InstallableImage> {
    let target = inputs.delta.target().path();
    let ota = inputs.delta.ota();
    dest.check(inputs.image)?;
    // Decrypted into a temp file: the applier reads the patch as a stream, the envelope
    // decrypts into a writer, and a patch is small.
    let decrypted = match inputs.unlock.key_for(target, inputs.delta.encryption())? {
        None => None,
        Some((info, key)) => {
            let tmp = tempfile::NamedTempFile::new_in(inputs.scratch)
                .map_err(|e| state_io(inputs.scratch, e))?;
            let input =
                File::open(inputs.downloaded).map_err(|e| state_io(inputs.downloaded, e))?;
            let mut out = BufWriter::new(tmp.as_file());
            decrypt_stream_checked(BufReader::new(input), &mut out, &key, info).map_err(
                |source| match source {
                    EnvelopeError::Io(e) => state_io(tmp.path(), e),
                    source => DeviceError::Decrypt {
                        target: target.to_string(),
                        source,
                    },
                },
            )?;
            out.flush().map_err(|e| state_io(tmp.path(), e))?;
            drop(out);
            Some(tmp)
        }
    };
    let patch_path = decrypted.as_ref().map_or(inputs.downloaded, |t| t.path());
    let patch_file = File::open(patch_path).map_err(|e| state_io(patch_path, e))?;
    let decompress_error = |source| DeviceError::Decompress {
        target: target.to_string(),
        source,
    };
    let patch: Box<dyn Read> = match ota.compression {
        Compression::None => Box::new(BufReader::new(patch_file)),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::new(patch_file).map_err(decompress_error)?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(decompress_error)?;
            Box::new(d)
        }
    };
    let base_io = |source| DeviceError::InstallIo {
        path: base.path().to_path_buf(),
        source,
    };
    let window = base
        .open(inputs.delta.info().base.length)
        .map_err(base_io)?
        .ok_or_else(|| {
            base_io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the base image is not the patch's base",
            ))
        })?;
    let writer = dest.begin(inputs.image)?;
    let mut sink =
        ImageSink::new(inputs.image, writer, "patch").map_err(|e| DeviceError::BadTargetMeta {
            target: target.to_string(),
            reason: e.to_string(),
        })?;
    let applied = apply(BufReader::new(window), patch, &mut sink);
    if let Err(source) = applied {
        // The sink's own failure is the precise one (the applier only saw an io::Error).
        return Err(match (sink.take_failure(), source) {
            (Some(SinkFailure::Image(source)), _) => DeviceError::ImageMismatch {
                target: target.to_string(),
                source,
            },
            (Some(SinkFailure::Io(source)), _) => DeviceError::InstallIo {
                path: dest.describe().into(),
                source,
            },
            (None, source) => DeviceError::Patch {
                target: target.to_string(),
                source,
            },
        });
    }
    let writer = sink.finish().map_err(|source| DeviceError::ImageMismatch {
        target: target.to_string(),
        source,
    })?;
    Ok(InstallableImage::verified(writer, inputs.image))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::keys::Keyring;
    use crate::transport::DirTransport;
    use crate::VerifiedTarget;
    use ota_formats::hash::sha256_hex;
    use ota_formats::metadata::TargetFile;
    use ota_formats::patch::{Codec, Filter, Method, PatchHeader};
    use ota_formats::target_meta::{DeltaInfo, ImageInfo, OtaTarget};
    use std::path::PathBuf;

    const BASE: &[u8] = b"old firmware";

    /// A "full" patch (payload = the result) from BASE to `result`.
    fn full_patch(result: &[u8]) -> Vec<u8> {
        let header = PatchHeader::new(Method::Full, Codec::Zstd, Filter::None, BASE, result);
        let body = zstd::encode_all(result, 3).unwrap();
        let mut patch = header.to_bytes(body.len() as u64).to_vec();
        patch.extend_from_slice(&body);
        patch
    }

    fn delta(image: &[u8], compression: Compression) -> DeltaTarget {
        let full = OtaTarget::new(
            "fw",
            "1.1.0",
            vec!["b".into()],
            ImageInfo::new(image.len() as u64, sha256_hex(image)),
            compression,
        )
        .unwrap();
        let mut ota = full.clone();
        let info = DeltaInfo::patch_v1("1.0.0", BASE.len() as u64, sha256_hex(BASE), "full");
        ota.delta = Some(info.to_value().unwrap());
        let mut file = TargetFile::from_bytes(b"x");
        file.custom = Some(ota.to_custom(None).unwrap());
        let t = VerifiedTarget::new("fw-1.1.0.from-1.0.0.patch", file, "targets");
        let mut found = crate::device::deltas_for(&full, "b", [&t]);
        assert_eq!(found.len(), 1);
        found.remove(0)
    }

    struct Case {
        dir: tempfile::TempDir,
        slot: PathBuf,
        downloaded: PathBuf,
    }

    fn case(wire: &[u8]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("slot")).unwrap();
        let slot = dir.path().join("slot/image");
        std::fs::write(&slot, BASE).unwrap();
        let downloaded = dir.path().join("patch");
        std::fs::write(&downloaded, wire).unwrap();
        Case {
            dir,
            slot,
            downloaded,
        }
    }

    fn run(c: &Case, d: &DeltaTarget) -> DeviceResult<InstallableImage> {
        let transport = DirTransport::new(c.dir.path());
        let keys = Keyring::default();
        let unlock = Unlock {
            keys: &keys,
            device_key_path: Path::new("device.key"),
            targets: &transport,
        };
        let version = ota_formats::version::Version::parse(&d.ota().version).unwrap();
        let image = VerifiedImage::signed(d.target(), d.ota(), &version);
        let inputs = PatchInputs {
            delta: d,
            image: &image,
            downloaded: &c.downloaded,
            scratch: c.dir.path(),
            unlock: &unlock,
        };
        let dest = crate::device::FileInstaller::new(&c.slot);
        prepare_patched(&inputs, &Base::File(c.slot.clone()), &dest)
    }

    fn slot_files(c: &Case) -> Vec<String> {
        crate::device::slot_listing::files_beside(&c.slot)
    }

    #[test]
    fn patch_installs_only_on_install_plain_or_zstd_wrapped() {
        let result = b"new firmware, longer".to_vec();
        let patch = full_patch(&result);
        for (wire, compression) in [
            (patch.clone(), Compression::None),
            (zstd::encode_all(&patch[..], 3).unwrap(), Compression::Zstd),
        ] {
            let c = case(&wire);
            let ready = run(&c, &delta(&result, compression)).unwrap();
            assert_eq!(std::fs::read(&c.slot).unwrap(), BASE);
            ready.install().unwrap();
            assert_eq!(std::fs::read(&c.slot).unwrap(), result);
            assert_eq!(slot_files(&c), ["image"]);
        }
    }

    #[test]
    fn corrupt_patch_or_other_result_leaves_the_slot_untouched() {
        let result = b"new firmware".to_vec();
        let mut truncated = full_patch(&result);
        truncated.truncate(truncated.len() - 3);
        let c = case(&truncated);
        let err = run(&c, &delta(&result, Compression::None)).err().unwrap();
        assert!(matches!(err, DeviceError::Patch { .. }), "{err}");
        assert_eq!(std::fs::read(&c.slot).unwrap(), BASE);
        assert_eq!(slot_files(&c), ["image"]);

        // The patch is valid but makes another image than the signed one.
        let c = case(&full_patch(b"something else"));
        let err = run(&c, &delta(&result, Compression::None)).err().unwrap();
        assert!(
            matches!(
                err,
                DeviceError::ImageMismatch { .. } | DeviceError::Patch { .. }
            ),
            "{err}"
        );
        assert_eq!(err.category(), super::super::Category::Refused);
        assert_eq!(std::fs::read(&c.slot).unwrap(), BASE);
        assert_eq!(slot_files(&c), ["image"]);
    }
}
