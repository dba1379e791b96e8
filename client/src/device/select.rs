//! Choosing the update: the newest target of this device's image line, for its hardware,
//! strictly newer than what is installed. Versions are ordered by the toolkit's one rule,
//! [`ota_formats::version::Version`] (semantic-versioning precedence).
//!
//! The installed version (the committed slot's, on an A/B device) is the anti-rollback
//! floor. The one way below it is a signed, explicit rollback: a release whose signed
//! `custom.ota.rollback_from` names exactly the installed version
//! ([`OtaTarget::rolls_back_from`]), made by `ota-sign add --rollback-from`. A newer
//! release always wins over a rollback, and a device on any other version ignores it.
use super::delta::{deltas_for, DeltaTarget};
use super::error::{DeviceError, DeviceResult};
use super::image::{Encryption, VerifiedImage};
use super::installed::Installed;
use crate::VerifiedTarget;
use ota_formats::target_meta::OtaTarget;
use ota_formats::version::Version;
use std::collections::BTreeSet;

/// A target this device may install, with its signed `custom.ota` parsed and typed. Only
/// [`Selector`] makes one, from a verified target: the fields are private so that what an
/// installer receives always is what was signed.
#[derive(Debug, Clone)]
pub struct Candidate {
    target: VerifiedTarget,
    ota: OtaTarget,
    version: Version,
    image: VerifiedImage,
    encryption: Encryption,
    deltas: Vec<DeltaTarget>,
    rollback_from: Option<String>,
}

impl Candidate {
    /// `current` is the installed version: a candidate below it is a signed rollback.
    fn signed(
        target: &VerifiedTarget,
        ota: OtaTarget,
        version: Version,
        current: Option<&Version>,
    ) -> Self {
        let rollback_from = current
            .filter(|c| version < **c)
            .map(|c| c.as_str().to_string());
        Candidate {
            image: VerifiedImage::signed(target, &ota, &version),
            encryption: Encryption::of(&ota),
            target: target.clone(),
            ota,
            version,
            deltas: Vec::new(),
            rollback_from,
        }
    }

    /// When this candidate is a signed rollback (older than the installed version, which its
    /// `custom.ota.rollback_from` names), the installed version it rolls back from.
    pub fn rollback_from(&self) -> Option<&str> {
        self.rollback_from.as_deref()
    }

    /// The verified target entry.
    pub fn target(&self) -> &VerifiedTarget {
        &self.target
    }

    /// Its signed `custom.ota` object.
    pub fn ota(&self) -> &OtaTarget {
        &self.ota
    }

    /// Its parsed version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The image it installs.
    pub fn image(&self) -> &VerifiedImage {
        &self.image
    }

    /// Its typed `custom.ota.encryption`.
    pub fn encryption(&self) -> &Encryption {
        &self.encryption
    }

    /// Patch targets producing this release from some earlier image (see [`super::delta`]).
    pub fn deltas(&self) -> &[DeltaTarget] {
        &self.deltas
    }
}

/// What a device filters on.
#[derive(Debug, Clone, Copy)]
pub struct Selector<'a> {
    /// This device's hardware id.
    pub hardware_id: &'a str,
    /// Image name from the configuration, if set.
    pub image_name: Option<&'a str>,
    /// The installed image, if any.
    pub installed: Option<&'a Installed>,
}

impl Selector<'_> {
    /// The image line this device follows: the configured name, else the installed image's.
    pub fn line(&self) -> Option<&str> {
        self.image_name.or(self.installed.map(|i| i.name.as_str()))
    }

    /// The installed version; a record whose version does not parse fails closed (it could
    /// otherwise be "older" than anything and let any release, or a downgrade, through).
    fn installed_version(&self) -> DeviceResult<Option<Version>> {
        self.installed
            .map(|i| {
                Version::parse(&i.version).map_err(|e| DeviceError::BadState {
                    path: "installed.json".into(),
                    reason: format!("recorded version {:?}: {e}", i.version),
                })
            })
            .transpose()
    }

    /// The signed `custom.ota` of `target` if it is a full release for this hardware (any
    /// image line). Targets without `custom.ota`, with malformed metadata or with a `delta`
    /// (patches are attached to the full release they produce) are skipped.
    fn release_for_hardware(&self, target: &VerifiedTarget) -> Option<(OtaTarget, Version)> {
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
        match Version::parse(&ota.version) {
            Ok(v) => Some((ota, v)),
            Err(e) => {
                tracing::warn!(target = target.path(), "skipped: {e}");
                None
            }
        }
    }

    /// Whether a release of this hardware (`ota`, `version`) is installable here, given the
    /// installed version `current`.
    fn admits(&self, ota: &OtaTarget, version: &Version, current: Option<&Version>) -> bool {
        // Strictly newer, or a signed rollback from exactly the installed version: equal
        // would be a reinstall, and older without that signed consent a downgrade.
        self.line().is_none_or(|n| n == ota.name)
            && current.is_none_or(|c| version > c || (version < c && ota.rolls_back_from(c)))
    }

    /// Whether `target` is installable here, with its metadata if so.
    pub fn accepts(&self, target: &VerifiedTarget) -> DeviceResult<Option<Candidate>> {
        let current = self.installed_version()?;
        Ok(self
            .release_for_hardware(target)
            .filter(|(ota, version)| self.admits(ota, version, current.as_ref()))
            .map(|(ota, version)| Candidate::signed(target, ota, version, current.as_ref())))
    }

    /// Every acceptable target, newest first (ties broken by target path, for determinism),
    /// without their patches. A device with no image line yet (none configured, nothing
    /// installed) follows the one image offered for its hardware; when several are offered
    /// it refuses to guess ([`DeviceError::AmbiguousImage`]).
    pub fn candidates<'t>(
        &self,
        targets: impl IntoIterator<Item = &'t VerifiedTarget>,
    ) -> DeviceResult<Vec<Candidate>> {
        let current = self.installed_version()?;
        // Each target's `custom.ota` is parsed (and a bad one logged) once.
        let releases: Vec<(&VerifiedTarget, OtaTarget, Version)> = targets
            .into_iter()
            .filter_map(|t| self.release_for_hardware(t).map(|(o, v)| (t, o, v)))
            .collect();
        if self.line().is_none() {
            let names: BTreeSet<&str> = releases.iter().map(|(_, o, _)| o.name.as_str()).collect();
            if names.len() > 1 {
                return Err(DeviceError::AmbiguousImage {
                    hardware_id: self.hardware_id.to_string(),
                    names: names.into_iter().map(str::to_string).collect(),
                });
            }
        }
        let mut out: Vec<Candidate> = releases
            .into_iter()
            .filter(|(_, ota, version)| self.admits(ota, version, current.as_ref()))
            .map(|(t, ota, version)| Candidate::signed(t, ota, version, current.as_ref()))
            .collect();
        out.sort_by(|a, b| {
            b.version
                .cmp(&a.version)
                .then_with(|| a.target.path().cmp(b.target.path()))
        });
        Ok(out)
    }

    /// Attach to `candidate` the patch targets that produce it.
    pub fn with_deltas<'t>(
        &self,
        mut candidate: Candidate,
        targets: impl IntoIterator<Item = &'t VerifiedTarget>,
    ) -> Candidate {
        candidate.deltas = deltas_for(&candidate.ota, self.hardware_id, targets);
        candidate
    }

    /// The newest acceptable target, with the patch targets that produce it.
    pub fn newest<'t>(
        &self,
        targets: impl IntoIterator<Item = &'t VerifiedTarget> + Clone,
    ) -> DeviceResult<Option<Candidate>> {
        let best = self.candidates(targets.clone())?.into_iter().next();
        Ok(best.map(|c| self.with_deltas(c, targets)))
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
        sel.newest(targets)
            .unwrap()
            .map(|c| c.target.path().to_string())
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

    #[test]
    fn no_image_line_and_several_images_is_refused_not_guessed() {
        // The original report: gw 1.1.0 and modem-fw 3.0.0 for the same hardware; a device
        // configured without a name was offered modem-fw 3.0.0 for its gw image.
        let ts = vec![
            target("gw", "gw", "1.1.0", &["hw"]),
            target("modem", "modem-fw", "3.0.0", &["hw"]),
            target("other-hw", "other", "9.0.0", &["hw2"]),
        ];
        let sel = Selector {
            hardware_id: "hw",
            image_name: None,
            installed: None,
        };
        let err = sel.newest(&ts).unwrap_err();
        assert!(
            matches!(&err, DeviceError::AmbiguousImage { names, .. } if names == &["gw", "modem-fw"]),
            "{err}"
        );
        assert_eq!(err.category().exit_code(), 2);
        // A configured line, or the installed image's, never switches to the other one.
        let sel_named = Selector {
            image_name: Some("gw"),
            ..sel
        };
        assert_eq!(pick(&ts, sel_named).as_deref(), Some("gw"));
        let inst = installed("gw", "1.0.0");
        let sel_inst = Selector {
            installed: Some(&inst),
            ..sel
        };
        assert_eq!(pick(&ts, sel_inst).as_deref(), Some("gw"));
        // One image for the hardware: that is the line.
        let one = vec![target("gw", "gw", "1.1.0", &["hw"])];
        assert_eq!(pick(&one, sel).as_deref(), Some("gw"));
    }

    #[test]
    fn unparsable_installed_version_fails_closed() {
        let ts = vec![target("a", "fw", "0.0.1", &["b"])];
        let inst = installed("fw", "not-a-version");
        let sel = Selector {
            hardware_id: "b",
            image_name: None,
            installed: Some(&inst),
        };
        let err = sel.newest(&ts).unwrap_err();
        assert!(matches!(err, DeviceError::BadState { .. }), "{err}");
    }

    /// A release of `fw` for hardware `b` that rolls back from `from`.
    fn rollback(path: &str, version: &str, from: &[&str]) -> VerifiedTarget {
        let t = target(path, "fw", version, &["b"]);
        let mut file = t.file().clone();
        file.custom.as_mut().unwrap()["ota"]["rollback_from"] = json!(from);
        VerifiedTarget::new(path, file, "targets")
    }

    fn on(version: &str, targets: &[VerifiedTarget]) -> Option<(String, Option<String>)> {
        let inst = installed("fw", version);
        let sel = Selector {
            hardware_id: "b",
            image_name: None,
            installed: Some(&inst),
        };
        sel.newest(targets).unwrap().map(|c| {
            (
                c.target().path().to_string(),
                c.rollback_from().map(str::to_string),
            )
        })
    }

    #[test]
    fn only_a_signed_rollback_from_the_installed_version_goes_backwards() {
        // 1.3.0 was withdrawn; 1.1.1 is the signed rollback for devices on 1.3.0.
        let ts = vec![
            target("1.0.0", "fw", "1.0.0", &["b"]),
            target("1.1.0", "fw", "1.1.0", &["b"]),
            rollback("1.1.1", "1.1.1", &["1.3.0"]),
        ];
        assert_eq!(
            on("1.3.0", &ts),
            Some(("1.1.1".into(), Some("1.3.0".into()))),
            "the named version rolls back"
        );
        assert_eq!(
            on("1.3.0+build.2", &ts).map(|c| c.0).as_deref(),
            Some("1.1.1"),
            "by precedence"
        );
        assert_eq!(on("1.2.0", &ts), None, "another newer version does not");
        assert_eq!(on("1.4.0", &ts), None);
        assert_eq!(on("1.1.1", &ts), None, "equal is no reinstall");
        assert_eq!(
            on("1.0.0", &ts),
            Some(("1.1.1".into(), None)),
            "below it is an ordinary update"
        );
        // Without the signed field, an older release is never a candidate (withdrawal).
        let plain = vec![target("1.1.0", "fw", "1.1.0", &["b"])];
        assert_eq!(on("1.3.0", &plain), None);
        // A newer release wins over the rollback.
        let mut with_fix = ts.clone();
        with_fix.push(target("1.3.1", "fw", "1.3.1", &["b"]));
        assert_eq!(on("1.3.0", &with_fix), Some(("1.3.1".into(), None)));
        // A malformed rollback_from (not newer than the release) is not installed at all.
        let bad = vec![rollback("1.1.1", "1.1.1", &["1.0.0"])];
        assert_eq!(on("1.0.0", &bad), None);
        // Another image line's rollback is not this device's.
        let other = target("x", "other", "0.1.0", &["b"]);
        let mut file = other.file().clone();
        file.custom.as_mut().unwrap()["ota"]["rollback_from"] = json!(["1.3.0"]);
        let other = vec![VerifiedTarget::new("x", file, "targets")];
        assert_eq!(on("1.3.0", &other), None);
    }

    #[test]
    fn build_metadata_does_not_make_a_release_newer() {
        let ts = vec![target("a", "fw", "1.0.0+build.9", &["b"])];
        let inst = installed("fw", "1.0.0+build.1");
        let sel = Selector {
            hardware_id: "b",
            image_name: None,
            installed: Some(&inst),
        };
        assert_eq!(pick(&ts, sel), None, "same precedence is the same version");
    }
}
