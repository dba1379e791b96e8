//! Delta targets: patches that turn the running image into the chosen release. A patch is
//! used only when its signed base (`custom.ota.delta.base`) has exactly the length and sha256
//! of the running image (the install file, or the committed slot's first bytes: see
//! [`super::Base`]), hashed just before.
use super::image::Encryption;
use crate::VerifiedTarget;
use ota_formats::target_meta::{DeltaInfo, OtaTarget, DELTA_FORMAT_PATCH_V1};

/// A verified patch target for a release, with its signed metadata typed. Made only from
/// verified targets ([`deltas_for`]).
#[derive(Debug, Clone)]
pub struct DeltaTarget {
    target: VerifiedTarget,
    ota: OtaTarget,
    info: DeltaInfo,
    encryption: Encryption,
}

impl DeltaTarget {
    /// The verified patch target entry.
    pub fn target(&self) -> &VerifiedTarget {
        &self.target
    }

    /// Its signed `custom.ota` (image = the resulting image).
    pub fn ota(&self) -> &OtaTarget {
        &self.ota
    }

    /// Its typed `custom.ota.delta`.
    pub fn info(&self) -> &DeltaInfo {
        &self.info
    }

    /// Its typed `custom.ota.encryption`.
    pub fn encryption(&self) -> &Encryption {
        &self.encryption
    }
}

/// Length and sha256 of the image currently at the install path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentImage {
    /// Length in bytes.
    pub length: u64,
    /// Lower-case hex sha256.
    pub sha256: String,
}

/// The patch targets that produce exactly the release `full` (same name, version and signed
/// image) on `hardware_id`, in a format this client applies.
pub fn deltas_for<'t>(
    full: &OtaTarget,
    hardware_id: &str,
    targets: impl IntoIterator<Item = &'t VerifiedTarget>,
) -> Vec<DeltaTarget> {
    let mut out = Vec::new();
    for t in targets {
        let Ok(Some(ota)) = OtaTarget::from_custom(t.custom()) else {
            continue;
        };
        let info = match ota.delta_info() {
            Ok(Some(i)) => i,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!(target = t.path(), "delta skipped: {e}");
                continue;
            }
        };
        let same_release = ota.name == full.name
            && ota.version == full.version
            && ota.image.length == full.image.length
            && ota.image.sha256 == full.image.sha256;
        if info.format != DELTA_FORMAT_PATCH_V1
            || !same_release
            || !ota.supports_hardware(hardware_id)
        {
            continue;
        }
        out.push(DeltaTarget {
            target: t.clone(),
            encryption: Encryption::of(&ota),
            ota,
            info,
        });
    }
    out
}

/// The patch whose base is `current` (the smallest, when several are), if any.
pub fn choose<'d>(deltas: &'d [DeltaTarget], current: &CurrentImage) -> Option<&'d DeltaTarget> {
    deltas
        .iter()
        .filter(|d| d.info.base.length == current.length && d.info.base.sha256 == current.sha256)
        .min_by(|a, b| {
            a.target
                .length()
                .cmp(&b.target.length())
                .then_with(|| a.target.path().cmp(b.target.path()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_formats::hash::sha256_hex;
    use ota_formats::metadata::TargetFile;
    use ota_formats::target_meta::{Compression, ImageInfo};

    fn full(version: &str, image: &[u8]) -> OtaTarget {
        OtaTarget::new(
            "fw",
            version,
            vec!["b".into()],
            ImageInfo::new(image.len() as u64, sha256_hex(image)),
            Compression::Zstd,
        )
        .unwrap()
    }

    fn patch(path: &str, result: &OtaTarget, base: &[u8], wire_len: usize) -> VerifiedTarget {
        let mut ota = result.clone();
        ota.compression = Compression::None;
        ota.delta = Some(
            DeltaInfo::patch_v1("1.0.0", base.len() as u64, sha256_hex(base), "diff")
                .to_value()
                .unwrap(),
        );
        let mut file = TargetFile::from_bytes(&vec![0u8; wire_len]);
        file.custom = Some(ota.to_custom(None).unwrap());
        VerifiedTarget::new(path, file, "targets")
    }

    fn current(image: &[u8]) -> CurrentImage {
        CurrentImage {
            length: image.len() as u64,
            sha256: sha256_hex(image),
        }
    }

    #[test]
    fn base_hash_match_is_chosen_and_no_match_means_full() {
        let new = full("1.1.0", b"new image");
        let ts = vec![
            patch("from-a", &new, b"image a", 50),
            patch("from-a-big", &new, b"image a", 90),
            patch("from-b", &new, b"image b", 10),
        ];
        let deltas = deltas_for(&new, "b", &ts);
        assert_eq!(deltas.len(), 3);
        let pick = |img: &[u8]| choose(&deltas, &current(img)).map(|d| d.target.path().to_string());
        assert_eq!(
            pick(b"image a").as_deref(),
            Some("from-a"),
            "smallest matching"
        );
        assert_eq!(pick(b"image b").as_deref(), Some("from-b"));
        assert_eq!(pick(b"modified image"), None, "no base match: full image");
        // Same hash but another length is not the base either.
        let mut c = current(b"image a");
        c.length += 1;
        assert!(choose(&deltas, &c).is_none());
    }

    #[test]
    fn patches_of_other_releases_hardware_or_formats_are_ignored() {
        let new = full("1.1.0", b"new image");
        let other_version = full("1.2.0", b"new image");
        let other_image = full("1.1.0", b"other image");
        let mut odd_format = patch("odd", &new, b"a", 1);
        let mut f = odd_format.file().clone();
        f.custom.as_mut().unwrap()["ota"]["delta"]["format"] = "zstd-patch-from".into();
        odd_format = VerifiedTarget::new("odd", f, "targets");
        let mut untyped = patch("untyped", &new, b"a", 1);
        let mut f = untyped.file().clone();
        f.custom.as_mut().unwrap()["ota"]["delta"] = serde_json::json!({"from": "1.0.0"});
        untyped = VerifiedTarget::new("untyped", f, "targets");
        let ts = vec![
            patch("v", &other_version, b"a", 1),
            patch("i", &other_image, b"a", 1),
            odd_format,
            untyped,
            VerifiedTarget::new("plain", TargetFile::from_bytes(b"x"), "targets"),
        ];
        assert!(deltas_for(&new, "b", &ts).is_empty());
        let ok = vec![patch("ok", &new, b"a", 1)];
        assert_eq!(deltas_for(&new, "b", &ok).len(), 1);
        assert!(deltas_for(&new, "other-board", &ok).is_empty());
    }

    #[test]
    fn a_file_base_is_hashed_and_none_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let base = crate::device::Base::File(p.clone());
        assert_eq!(base.sha256_of(3).unwrap(), None);
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(base.sha256_of(3).unwrap(), Some(current(b"abc").sha256));
    }
}
