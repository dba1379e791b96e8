//! Choosing the update: the newest target for this hardware that is strictly newer than what
//! is installed.
use super::delta::{deltas_for, DeltaTarget};
use super::installed::Installed;
use crate::VerifiedTarget;
use ota_formats::target_meta::OtaTarget;
use semver::Version;

/// A target this device may install, with its signed `custom.ota`.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The verified target entry.
    pub target: VerifiedTarget,
    /// Its signed `custom.ota` object.
    pub ota: OtaTarget,
    /// Its parsed version.
    pub version: Version,
    /// Patch targets producing this release from some earlier image (see [`super::delta`]).
    pub deltas: Vec<DeltaTarget>,
}

/// What a device filters on.
#[derive(Debug, Clone, Copy)]
pub struct Selector<'a> {
    /// This device's hardware id.
    pub hardware_id: &'a str,
    /// Image name from the configuration, if restricted.
    pub image_name: Option<&'a str>,
    /// The installed image, if any.
    pub installed: Option<&'a Installed>,
}

impl Selector<'_> {
    /// Whether `target` is installable here, with its metadata if so. Targets without
    /// `custom.ota`, with malformed metadata or with a `delta` (patches are attached to the
    /// full release they produce, see [`Selector::newest`]) are skipped.
    pub fn accepts(&self, target: &VerifiedTarget) -> Option<Candidate> {
        let ota = match OtaTarget::from_custom(target.custom()) {
            Ok(Some(ota)) => ota,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(target = target.path(), "skipped: {e}");
                return None;
            }
        };
        if ota.delta.is_some() || !ota.supports_hardware(self.hardware_id) {
            return None;
        }
        if self.image_name.is_some_and(|n| n != ota.name)
            || self.installed.is_some_and(|i| i.name != ota.name)
        {
            return None;
        }
        let version = Version::parse(&ota.version).ok()?;
        if let Some(installed) = self.installed {
            match Version::parse(&installed.version) {
                // Strictly newer only: equal or older would be a reinstall or a rollback.
                Ok(current) if version <= current => return None,
                Ok(_) => {}
                Err(e) => tracing::warn!("installed version {:?}: {e}", installed.version),
            }
        }
        Some(Candidate {
            target: target.clone(),
            ota,
            version,
            deltas: Vec::new(),
        })
    }

    /// The newest acceptable target (ties broken by target path, for determinism), with the
    /// patch targets that produce it.
    pub fn newest<'t>(
        &self,
        targets: impl IntoIterator<Item = &'t VerifiedTarget>,
    ) -> Option<Candidate> {
        let targets: Vec<&VerifiedTarget> = targets.into_iter().collect();
        let mut best = targets
            .iter()
            .filter_map(|t| self.accepts(t))
            .max_by(|a, b| {
                a.version
                    .cmp(&b.version)
                    .then_with(|| b.target.path().cmp(a.target.path()))
            })?;
        best.deltas = deltas_for(&best.ota, self.hardware_id, targets.iter().copied());
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ota_formats::metadata::TargetFile;
    use ota_formats::target_meta::{Compression, ImageInfo};
    use serde_json::json;

    fn target(path: &str, name: &str, version: &str, hw: &[&str]) -> VerifiedTarget {
        let ota = OtaTarget::new(
            name,
            version,
            hw.iter().map(|s| s.to_string()).collect(),
            ImageInfo::new(1, "a".repeat(64)),
            Compression::Zstd,
        )
        .unwrap();
        let mut file = TargetFile::from_bytes(b"x");
        file.custom = Some(ota.to_custom(None).unwrap());
        VerifiedTarget::new(path, file, "targets")
    }

    fn installed(name: &str, version: &str) -> Installed {
        Installed {
            name: name.into(),
            version: version.into(),
            target: "t".into(),
            image_sha256: "a".repeat(64),
            image_length: 1,
            install_path: "/x".into(),
            installed_at: String::new(),
        }
    }

    fn pick(targets: &[VerifiedTarget], sel: Selector) -> Option<String> {
        sel.newest(targets).map(|c| c.target.path().to_string())
    }

    #[test]
    fn semver_ordering_not_string_ordering() {
        let ts = vec![
            target("a", "fw", "1.9.0", &["b"]),
            target("b", "fw", "1.10.0", &["b"]),
            target("c", "fw", "1.10.0-rc.1", &["b"]),
            target("d", "fw", "1.2.0", &["b"]),
        ];
        let sel = Selector {
            hardware_id: "b",
            image_name: None,
            installed: None,
        };
        assert_eq!(pick(&ts, sel).as_deref(), Some("b"));
        let inst = installed("fw", "1.10.0");
        let sel = Selector {
            installed: Some(&inst),
            ..sel
        };
        assert_eq!(pick(&ts, sel), None, "equal or older is never offered");
        let inst = installed("fw", "1.10.0-rc.1");
        let sel = Selector {
            installed: Some(&inst),
            ..sel
        };
        assert_eq!(pick(&ts, sel).as_deref(), Some("b"), "release > its rc");
    }

    #[test]
    fn hardware_and_name_filters() {
        let ts = vec![
            target("other-hw", "fw", "9.0.0", &["board-x"]),
            target("other-name", "bootloader", "5.0.0", &["board-a"]),
            target("ok", "fw", "1.0.0", &["board-x", "board-a"]),
        ];
        let sel = Selector {
            hardware_id: "board-a",
            image_name: Some("fw"),
            installed: None,
        };
        assert_eq!(pick(&ts, sel).as_deref(), Some("ok"));
        let inst = installed("fw", "0.1.0");
        let sel = Selector {
            image_name: None,
            installed: Some(&inst),
            ..sel
        };
        assert_eq!(pick(&ts, sel).as_deref(), Some("ok"));
        let sel = Selector {
            hardware_id: "board-z",
            ..sel
        };
        assert_eq!(pick(&ts, sel), None);
    }

    #[test]
    fn skips_plain_and_delta_targets() {
        let plain = VerifiedTarget::new("plain", TargetFile::from_bytes(b"x"), "targets");
        let mut delta = target("delta", "fw", "3.0.0", &["b"]);
        let mut file = delta.file().clone();
        file.custom.as_mut().unwrap()["ota"]["delta"] = json!({"from": "1.0.0"});
        delta = VerifiedTarget::new("delta", file, "targets");
        let ts = vec![plain, delta, target("full", "fw", "2.0.0", &["b"])];
        let sel = Selector {
            hardware_id: "b",
            image_name: None,
            installed: None,
        };
        assert_eq!(pick(&ts, sel).as_deref(), Some("full"));
    }
}
