//! What a request proposes and who must sign it: the published metadata it builds on
//! ([`base_of`]), the next targets (what `add --no-publish` staged, or the published targets
//! with a new expiry) or the next root (`ota-staged-root.json`, else a re-sign), and the
//! thresholds that must be met ([`thresholds_for`]).
use super::error::{CeremonyError, Result};
use super::request::{
    canonical, encode, parse_signed, Base, CeremonyRole, ThresholdSet, STAGED_ROOT_FILE,
};
use crate::keys::short_id;
use crate::policy::expires_at;
use crate::repository::{Repository, MAX_METADATA_LEN};
use crate::RepoError;
use chrono::{DateTime, Utc};
use ota_formats::crypto::Key;
use ota_formats::metadata::{Root, Targets};
use ota_fs::user_file;
use serde_json::Value;
use std::collections::BTreeMap;

/// The published metadata of `role` in `repo`, as a request's base.
pub fn base_of(repo: &Repository, role: CeremonyRole) -> Result<Base> {
    let (version, signed) = match role {
        CeremonyRole::Targets => (
            repo.targets.signed.version,
            encode("targets", &repo.targets.signed)?,
        ),
        CeremonyRole::Root => (repo.root.signed.version, encode("root", &repo.root.signed)?),
    };
    let (_, signed_sha256) = canonical(&signed)?;
    Ok(Base {
        version,
        root_version: repo.root.signed.version,
        signed_sha256,
        signed,
    })
}

/// The thresholds a request of `role` must meet, with the keys that count: the targets keys
/// of `current` root; for root both `current` root's root keys and `new_root`'s.
pub fn thresholds_for(
    role: CeremonyRole,
    current: &Root,
    new_root: Option<&Root>,
) -> std::result::Result<(Vec<ThresholdSet>, BTreeMap<String, Key>), String> {
    let mut sets = Vec::new();
    let mut keys = BTreeMap::new();
    let mut add = |name: String, root: &Root, role: &str| -> std::result::Result<(), String> {
        let rk = root.role(role).map_err(|e| format!("{name}: {e}"))?;
        for id in &rk.keyids {
            let key = root
                .keys
                .get(id)
                .ok_or_else(|| format!("{name}: key {} is not listed in keys", short_id(id)))?;
            if let Some(other) = keys.insert(id.clone(), key.clone()) {
                if &other != key {
                    return Err(format!(
                        "key id {} names two different keys in the current and the new root",
                        short_id(id)
                    ));
                }
            }
        }
        sets.push(ThresholdSet {
            name,
            threshold: rk.threshold,
            keyids: rk.keyids.clone(),
        });
        Ok(())
    };
    match (role, new_root) {
        (CeremonyRole::Targets, _) => add("targets".into(), current, "targets")?,
        (CeremonyRole::Root, Some(new)) => {
            add(
                format!("root v{} (current)", current.version),
                current,
                "root",
            )?;
            add(format!("root v{} (new)", new.version), new, "root")?;
        }
        (CeremonyRole::Root, None) => return Err("a root request needs the new root".into()),
    }
    Ok((sets, keys))
}

/// Whether two targets contents list the same things (versions and expiry aside).
fn same_content(a: &Targets, b: &Targets) -> bool {
    let strip = |t: &Targets| {
        let mut t = t.clone();
        t.version = 1;
        t.expires = DateTime::<Utc>::UNIX_EPOCH;
        serde_json::to_value(t).ok()
    };
    strip(a) == strip(b)
}

/// The next targets: the staged content (else the published one, for a new expiry).
pub(crate) fn next_targets(
    repo: &Repository,
    expires: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Targets> {
    let current = &repo.targets.signed;
    let mut next = repo.staged.clone().unwrap_or_else(|| current.clone());
    if same_content(current, &next) && expires.is_none() {
        let reason = if repo.staged.is_some() {
            format!("the staged targets list the same targets as the published targets v{} and no new expiry was asked for", current.version)
        } else {
            "nothing is staged (ota-staged.json is absent) and no new expiry was asked for".into()
        };
        return Err(CeremonyError::NothingToSign {
            role: "targets".into(),
            reason,
        });
    }
    next.version = repo.next_version("targets", current.version);
    next.expires = expires.unwrap_or_else(|| expires_at(now, repo.config.period("targets")));
    Ok(next)
}

/// The next root: the staged one (`ota-staged-root.json`), else the current root with a new
/// version and expiry.
pub(crate) fn next_root(
    repo: &Repository,
    expires: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Root> {
    let current = &repo.root.signed;
    let path = repo.dir.join(STAGED_ROOT_FILE);
    let invalid = |reason: String| CeremonyError::StagedRootInvalid {
        path: path.clone(),
        reason,
    };
    let staged = user_file::read_optional(&path, MAX_METADATA_LEN).map_err(|source| {
        RepoError::Unreadable {
            path: path.clone(),
            source,
        }
    })?;
    let mut next = match staged {
        Some(bytes) => {
            let value: Value =
                serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
            // The `signed` part; a whole metadata envelope is accepted too.
            let signed = match value.get("signed") {
                Some(s) if value.get("_type").is_none() => s.clone(),
                _ => value,
            };
            let root: Root = parse_signed(&signed)
                .map_err(|e| invalid(format!("not a root's signed part: {e}")))?;
            if root.version != current.version + 1 {
                return Err(invalid(format!(
                    "it holds root version {}, the next root is version {} (left from an earlier rotation?)",
                    root.version,
                    current.version + 1
                )));
            }
            root
        }
        None => {
            let mut r = current.clone();
            r.version = current.version + 1;
            r.expires = expires_at(now, repo.config.period("root"));
            r
        }
    };
    if let Some(e) = expires {
        next.expires = e;
    }
    Ok(next)
}
