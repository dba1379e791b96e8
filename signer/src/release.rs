//! Releases of an image line as the commands name them (`NAME@VERSION`): parsing the name,
//! finding a release and its patches among the targets, and the versions ever published
//! (current and earlier targets versions), for `withdraw`, `export` and `add --rollback-from`.
use crate::{Error, Result};
use ota_formats::metadata::{TargetFile, Targets};
use ota_formats::target_meta::{self, OtaTarget};
use ota_formats::version::Version;
use ota_repo::Repository;
use std::collections::{BTreeMap, BTreeSet};

/// Target entries by path, as in a targets role.
pub type TargetMap = BTreeMap<String, TargetFile>;

/// Parse `NAME@VERSION` given to `flag` (for messages).
pub fn parse_spec(spec: &str, flag: &str) -> Result<(String, Version)> {
    let example = format!("e.g. {flag} gateway-fw@1.3.0");
    let (name, version) = spec.split_once('@').ok_or_else(|| {
        Error::input(
            format!("{flag} {spec:?} is not NAME@VERSION"),
            format!("name the release by image and version, {example}"),
        )
    })?;
    target_meta::validate_name(name)
        .map_err(|e| Error::input(format!("{flag} {spec:?}: {e}"), example.clone()))?;
    let version = Version::parse(version).map_err(|e| {
        Error::input(
            format!("{flag} {spec:?}: invalid version {version:?}: {e}"),
            example.clone(),
        )
    })?;
    Ok((name.to_string(), version))
}

/// The signed `custom.ota` of a target, when it has a readable one.
fn ota_of(t: &TargetFile) -> Option<OtaTarget> {
    OtaTarget::from_custom(t.custom.as_ref()).ok().flatten()
}

/// The target paths of release `name` `version` in `targets`: the full images (`delta`
/// absent) and the patches producing it, by version precedence.
pub fn release_paths(
    targets: &TargetMap,
    name: &str,
    version: &Version,
) -> (Vec<String>, Vec<String>) {
    let mut full = Vec::new();
    let mut patches = Vec::new();
    for (path, t) in targets {
        let Some(ota) = ota_of(t) else { continue };
        let same = Version::parse(&ota.version).is_ok_and(|v| v == *version);
        if ota.name != name || !same {
            continue;
        }
        if ota.delta.is_some() {
            patches.push(path.clone());
        } else {
            full.push(path.clone());
        }
    }
    (full, patches)
}

/// The versions of `name` with a full image listed in `targets`, newest first.
pub fn listed_versions(targets: &TargetMap, name: &str) -> Vec<Version> {
    let mut out: Vec<Version> = targets
        .values()
        .filter_map(ota_of)
        .filter(|o| o.name == name && o.delta.is_none())
        .filter_map(|o| Version::parse(&o.version).ok())
        .collect();
    out.sort_by(|a, b| b.cmp(a));
    out.dedup_by(|a, b| a == b);
    out
}

/// Every image name with a full image listed in `targets`.
pub fn image_names(targets: &TargetMap) -> BTreeSet<String> {
    targets
        .values()
        .filter_map(ota_of)
        .filter(|o| o.delta.is_none())
        .map(|o| o.name)
        .collect()
}

/// Whether release `name` `version` was ever published in `repo`: listed now, or in any
/// `N.targets.json` the metadata directory still holds. Those files are the repository's
/// own signed history; a file that does not parse is skipped (this is a check for typos,
/// not a verification).
pub fn ever_published(repo: &Repository, name: &str, version: &Version) -> bool {
    if !release_paths(&repo.targets.signed.targets, name, version)
        .0
        .is_empty()
    {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(repo.metadata_dir()) else {
        return false;
    };
    entries.flatten().any(|e| {
        let file = e.file_name();
        let is_targets = file
            .to_str()
            .and_then(|f| f.strip_suffix(".targets.json"))
            .is_some_and(|n| n.parse::<u64>().is_ok());
        if !is_targets {
            return false;
        }
        let Ok(bytes) = ota_fs::user_file::read(&e.path(), ota_repo::repository::MAX_METADATA_LEN)
        else {
            return false;
        };
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            return false;
        };
        let Some(signed) = value.get("signed").cloned() else {
            return false;
        };
        serde_json::from_value::<Targets>(signed)
            .is_ok_and(|t| !release_paths(&t.targets, name, version).0.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_refuse() {
        let (n, v) = parse_spec("gw@1.3.0", "withdraw").unwrap();
        assert_eq!((n.as_str(), v.as_str()), ("gw", "1.3.0"));
        for bad in ["gw", "gw@", "@1.0.0", "g/w@1.0.0", "gw@1.0"] {
            let e = parse_spec(bad, "withdraw").unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}: {e}");
        }
    }
}
