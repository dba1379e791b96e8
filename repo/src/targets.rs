//! Editing the targets of a release: the version policy of an image line, target names, and
//! placing target files under their consistent-snapshot names before any metadata lists them.
use crate::{RepoError, Result};
use ota_formats::hash::Sha256Counter;
use ota_formats::metadata::Targets;
use ota_formats::target_meta::OtaTarget;
use ota_formats::version::Version;
use std::io::Read;
use std::path::Path;
use tempfile::NamedTempFile;

/// Newest version of image `name` listed in `targets`, by semver precedence. Targets whose
/// `custom.ota` cannot be read are passed to `unreadable` (path, error) and ignored.
pub fn newest_version(
    targets: &Targets,
    name: &str,
    mut unreadable: impl FnMut(&str, &ota_formats::Error),
) -> Option<Version> {
    let mut newest: Option<Version> = None;
    for (path, t) in &targets.targets {
        let ota = match OtaTarget::from_custom(t.custom.as_ref()) {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e) => {
                unreadable(path, &e);
                continue;
            }
        };
        if ota.name != name {
            continue;
        }
        let Ok(v) = Version::parse(&ota.version) else {
            continue;
        };
        if newest.as_ref().is_none_or(|n| v.cmp(n).is_gt()) {
            newest = Some(v);
        }
    }
    newest
}

/// Refuse `version` of `name` unless it is newer than `published` (the newest published
/// version, see [`newest_version`]), or `allow_downgrade` (a deliberate rollback).
pub fn check_newer(
    name: &str,
    version: &Version,
    published: Option<&Version>,
    allow_downgrade: bool,
) -> Result<()> {
    match published {
        Some(prev) if !allow_downgrade && !version.cmp(prev).is_gt() => Err(RepoError::NotNewer {
            name: name.to_string(),
            version: version.to_string(),
            published: prev.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Refuse `path` when it is already listed for another image name or version.
///
/// Target names are `NAME-VERSION...`, and both names and versions may contain `-` (image
/// `a-1.0.0` version `2.0.0` and image `a` version `1.0.0-2.0.0` are both
/// `a-1.0.0-2.0.0.img.zst`): the later one would silently replace the earlier release.
pub fn check_path_free(targets: &Targets, path: &str, name: &str, version: &str) -> Result<()> {
    let Some(existing) = targets.targets.get(path) else {
        return Ok(());
    };
    let held_by = match OtaTarget::from_custom(existing.custom.as_ref()) {
        Ok(Some(o)) if o.name == name && o.version == version => return Ok(()),
        Ok(Some(o)) => format!("image {} version {}", o.name, o.version),
        Ok(None) => "a target without custom.ota metadata".to_string(),
        Err(e) => format!("a target whose custom.ota is unreadable ({e})"),
    };
    Err(RepoError::TargetNameTaken {
        target: path.to_string(),
        held_by,
        name: name.to_string(),
        version: version.to_string(),
    })
}

/// Refuse re-adding a published version of `name` (equal by semver precedence) with another
/// image, even as a deliberate rollback: devices could not tell the two releases apart.
pub fn check_same_version_same_image(
    targets: &Targets,
    name: &str,
    version: &Version,
    image_length: u64,
    image_sha256: &str,
) -> Result<()> {
    for (path, t) in &targets.targets {
        let Ok(Some(ota)) = OtaTarget::from_custom(t.custom.as_ref()) else {
            continue;
        };
        if ota.name != name || ota.delta.is_some() {
            continue;
        }
        let same_version = Version::parse(&ota.version).is_ok_and(|v| v.cmp(version).is_eq());
        if same_version && (ota.image.length != image_length || ota.image.sha256 != image_sha256) {
            return Err(RepoError::VersionTaken {
                name: name.to_string(),
                version: ota.version,
                target: path.clone(),
                published_sha256: ota.image.sha256,
                sha256: image_sha256.to_string(),
            });
        }
    }
    Ok(())
}

fn file_matches(path: &Path, length: u64, sha256: &str) -> std::io::Result<bool> {
    let mut f = std::fs::File::open(path)?;
    let mut counter = Sha256Counter::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        counter.update(&buf[..n]);
    }
    Ok(counter.finish().matches(length, sha256))
}

/// Place a finished (fsynced) target file of `length` bytes and sha256 `sha256` at `dest`
/// (see [`crate::repository::target_file_path`]), published read-only for everyone. An
/// identical file already there (from an earlier, interrupted run) is kept; a different one
/// is [`RepoError::TargetFileConflict`].
pub fn place_target_file(
    file: NamedTempFile,
    length: u64,
    sha256: &str,
    dest: &Path,
) -> Result<()> {
    if let Ok(m) = std::fs::metadata(dest) {
        let same = m.len() == length && file_matches(dest, length, sha256).unwrap_or(false);
        if same {
            tracing::debug!(path = %dest.display(), "identical target file already present");
            // It may come from a run that published 0600 files; it is published now.
            return ota_fs::mode::set(dest, ota_fs::mode::PUBLIC_FILE)
                .map_err(|e| RepoError::write(dest, e));
        }
        return Err(RepoError::TargetFileConflict {
            path: dest.to_path_buf(),
        });
    }
    ota_fs::atomic::persist_new(file, dest, ota_fs::mode::PUBLIC_FILE)
        .map_err(|e| RepoError::write(dest, e))
}
