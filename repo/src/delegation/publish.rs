//! The ordered publication of a delegated role's new metadata: `N.ROLE.json` first, then (when
//! the delegation itself changed) the new top-level `N.targets.json`, then a snapshot that
//! lists both, and `timestamp.json` last ([`crate::publish::publish_with_root`]). Until that
//! last rename devices see the previous repository, complete; a failure before it removes the
//! new role file (and the key this run generated) again.
use super::published::delegation;
use crate::config::{RepoConfig, CONFIG_FILE};
use crate::key_source::KeyAccess;
use crate::policy::{expires_at, Period};
use crate::publish::{self, Needs, Published, RoleSigners};
use crate::repository::{meta_entry, Repository};
use crate::rotate::key_files::{KeyFiles, RoleIds};
use crate::rotate::{GeneratedKey, KeyDirs};
use crate::upload::metadata_file_name;
use crate::{RepoError, Result};
use chrono::{DateTime, Utc};
use ota_formats::crypto::Signer;
use ota_formats::metadata::{RawMetadata, Signed, Targets};
use ota_fs::atomic;
use ota_fs::mode::PUBLIC_FILE;
use std::path::{Path, PathBuf};

/// What to publish.
#[derive(Debug)]
pub struct Publication<'a> {
    /// The repository, loaded under its writer lock.
    pub repo: &'a Repository,
    /// New content of the top-level targets (the delegation changed), or `None` (unchanged).
    pub targets: Option<Targets>,
    /// The delegated role.
    pub role: &'a str,
    /// Its new content (version and expiry are set here).
    pub content: Targets,
    /// Its expiry period.
    pub period: Period,
    /// A key file this run saved for the role, removed again if nothing gets published.
    pub saved_key: Option<&'a Path>,
}

/// The role's new version, as published.
#[derive(Debug, Clone)]
pub struct RoleVersion {
    /// Its version.
    pub version: u64,
    /// Its expiry.
    pub expires: DateTime<Utc>,
    /// Its file.
    pub file: PathBuf,
    /// The top-level metadata published with it.
    pub published: Published,
}

/// Sign `value` as delegated `role` with `signers`, and check the result as a client will,
/// against the delegation to it in `targets`.
pub fn sign_delegated(
    role: &str,
    value: Targets,
    signers: &[&dyn Signer],
    targets: &Targets,
) -> Result<Vec<u8>> {
    let internal = |source: ota_formats::Error| RepoError::Sign {
        role: role.to_string(),
        source,
    };
    let (keys, delegated) = delegation(targets, role)?;
    let bytes = Signed::sign(value, signers)
        .and_then(|s| s.to_bytes())
        .map_err(internal)?;
    RawMetadata::from_bytes(&bytes)
        .and_then(|raw| raw.verify(role, keys, &delegated.keyids, delegated.threshold))
        .map_err(internal)?;
    Ok(bytes)
}

/// Sign the role's new version with `role_signers` and publish it with the top-level roles,
/// signed by `signers` (targets when it changes, snapshot, timestamp).
pub fn publish(
    p: Publication<'_>,
    role_signers: &[&dyn Signer],
    signers: &RoleSigners<'_>,
    now: DateTime<Utc>,
) -> Result<RoleVersion> {
    let repo = p.repo;
    let entry = format!("{}.json", p.role);
    let current = repo
        .snapshot
        .signed
        .meta
        .get(&entry)
        .map_or(0, |m| m.version);
    let mut content = p.content;
    content.version = repo.next_version(p.role, current);
    content.expires = expires_at(now, p.period);
    let (version, expires) = (content.version, content.expires);
    let delegating = p.targets.as_ref().unwrap_or(&repo.targets.signed);
    let bytes = sign_delegated(p.role, content, role_signers, delegating)?;

    let md = repo.metadata_dir();
    let file = md.join(metadata_file_name(p.role, version));
    let timestamp = md.join("timestamp.json");
    let before = std::fs::read(&timestamp).ok();
    atomic::write_new(&file, &bytes, PUBLIC_FILE).map_err(|e| RepoError::write(&file, e))?;

    let mut next = repo.clone();
    next.snapshot
        .signed
        .meta
        .insert(entry, meta_entry(version, &bytes));
    let needs = Needs {
        root: false,
        targets: p.targets.is_some(),
        snapshot: true,
        timestamp: true,
    };
    let targets = p.targets.unwrap_or_else(|| repo.targets.signed.clone());
    match publish::publish_with_root(&next, None, targets, needs, signers, now) {
        Ok(published) => Ok(RoleVersion {
            version,
            expires,
            file,
            published,
        }),
        Err(e) => {
            // Undone only if the commit point was not reached: devices may already follow a
            // new timestamp to these files.
            if std::fs::read(&timestamp).ok() == before {
                let _ = std::fs::remove_file(&file);
                if let Some(key) = p.saved_key {
                    let _ = std::fs::remove_file(key);
                }
            }
            Err(e)
        }
    }
}

/// The key files of `ids.role` after a published change, adopted into a copy of `repo`'s
/// policy (added keys named, removed ones dropped; `generated`: a key this run generated and
/// the file it was saved as). `None` when they cannot be worked out (after the commit point:
/// a warning in `warnings`, the policy left as it is).
pub fn adopt_key_files(
    repo: &Repository,
    ids: &RoleIds<'_>,
    dirs: &KeyDirs,
    generated: Option<(&GeneratedKey, &str)>,
    access: &KeyAccess<'_>,
    warnings: &mut Vec<String>,
) -> (KeyFiles, Option<RepoConfig>) {
    let mut files = KeyFiles {
        files: repo.config.key_files.clone(),
        ..KeyFiles::default()
    };
    let gen = generated.map(|(g, f)| (ids.role, f, g.keyid.as_str()));
    match files.adopt_role(&repo.config, ids, dirs, gen, access) {
        Ok(()) => {
            let mut config = repo.config.clone();
            config.key_files = files.files.clone();
            (files, Some(config))
        }
        Err(e) => {
            warnings.push(format!(
                "published, but the key files of {} in {CONFIG_FILE} are not updated: {e}",
                ids.role
            ));
            (files, None)
        }
    }
}

/// Write `config` as the repository's `ota-repo.json`; a failure (after the commit point) is
/// returned as a warning naming what to fix by hand.
pub fn save_config(repo: &Repository, config: &RepoConfig, what: &str) -> Option<String> {
    let path = repo.dir.join(CONFIG_FILE);
    let written = config.to_bytes().and_then(|b| {
        atomic::replace(&path, &b, PUBLIC_FILE).map_err(|e| RepoError::write(&path, e))
    });
    written.err().map(|e| format!("published, but {e}: {what}"))
}
