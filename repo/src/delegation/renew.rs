//! Re-signing delegated roles before they expire, as part of a publish: each role that
//! [`crate::publish::plan_with_delegated`] finds due is signed again as its next version (same
//! targets, a fresh expiry from its period) by its own keys, and published with the top-level
//! roles in one ordered publication: the roles' new `N.ROLE.json` files, then (when due) the
//! new root and targets, a snapshot listing every new version, and `timestamp.json` last.
//! Versioned files are only ever written new. Until the timestamp is replaced devices see the
//! previous repository, complete; a failure before it removes the roles' new files again.
//!
//! The keys of every role are loaded before anything is written ([`load_renewal`]); a role
//! whose keys are not at hand is [`crate::RepoError::BelowThreshold`] naming the role and its
//! absent key files, as for a top-level role.
use super::publish::sign_delegated;
use crate::key_source::KeyAccess;
use crate::keys::{self, LoadedKey};
use crate::policy::expires_at;
use crate::publish::{self, write_versioned, DelegatedDue, Needs, Published, RoleSigners};
use crate::repository::{meta_entry, Repository};
use crate::rotate::signing::load_held;
use crate::upload::metadata_file_name;
use crate::{RepoError, Result};
use chrono::{DateTime, Utc};
use ota_formats::metadata::Targets;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A due delegated role with the keys that re-sign it.
#[derive(Debug)]
pub struct Renewal {
    /// The role, as planned.
    pub due: DelegatedDue,
    keys: Vec<LoadedKey>,
}

impl Renewal {
    /// The keys loaded for it.
    pub fn keys(&self) -> &[LoadedKey] {
        &self.keys
    }
}

/// A delegated role's new version, as published.
#[derive(Debug, Clone, Serialize)]
pub struct Renewed {
    /// The delegated role.
    pub role: String,
    /// Its version before.
    pub previous_version: u64,
    /// Its new version.
    pub version: u64,
    /// That version's expiry.
    pub expires: DateTime<Utc>,
    /// Its metadata file.
    pub file: PathBuf,
}

/// Load the keys of the due delegated role `due` from `dir` (the role's key files as listed in
/// `ota-repo.json`), unlocked through `access`, and refuse
/// ([`RepoError::BelowThreshold`], naming the absent key files) unless they reach the threshold
/// of its delegation in the top-level targets of `repo`. A listed key the delegation does not
/// authorise is [`RepoError::KeyNotAuthorised`].
pub fn load_renewal(
    repo: &Repository,
    dir: &Path,
    due: DelegatedDue,
    access: &KeyAccess<'_>,
) -> Result<Renewal> {
    let role = due.role.as_str();
    let (_, delegated) = super::delegation(&repo.targets.signed, role)?;
    let held = load_held(
        dir,
        role,
        repo.config.files(role),
        &[],
        &delegated.keyids,
        &[],
        access,
    )?;
    if (held.keys.len() as u64) < delegated.threshold {
        return Err(RepoError::BelowThreshold {
            role: role.to_string(),
            threshold: delegated.threshold,
            found: held.keys.len(),
            dir: held.dir,
            missing: held.missing,
        });
    }
    Ok(Renewal {
        due,
        keys: held.keys,
    })
}

/// Publish `targets` and the top-level roles in `needs` as [`publish::publish`] does, with the
/// next version of every role in `renewals` (its content unchanged, its expiry one period from
/// `now`): the roles' files first, the snapshot listing them, the timestamp last. With
/// renewals, snapshot and timestamp are signed whatever `needs` says. Each new version is
/// checked as a client checks it, against the delegation in the targets being published.
pub fn publish_with_renewals(
    repo: &Repository,
    targets: Targets,
    mut needs: Needs,
    renewals: &[Renewal],
    signers: &RoleSigners<'_>,
    now: DateTime<Utc>,
) -> Result<(Published, Vec<Renewed>)> {
    if renewals.is_empty() {
        return publish::publish(repo, targets, needs, signers, now).map(|p| (p, Vec::new()));
    }
    needs.snapshot = true;
    needs.timestamp = true;
    // Signed against the delegations devices will see with this publication.
    let delegating = if needs.targets {
        &targets
    } else {
        &repo.targets.signed
    };
    let md = repo.metadata_dir();
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let mut renewed = Vec::new();
    let mut next = repo.clone();
    for r in renewals {
        let role = r.due.role.as_str();
        let entry = format!("{role}.json");
        let current = repo
            .snapshot
            .signed
            .meta
            .get(&entry)
            .map_or(r.due.version, |m| m.version);
        let mut content = r.due.content.clone();
        content.version = repo.next_version(role, current);
        content.expires = expires_at(now, r.due.period);
        let (version, expires) = (content.version, content.expires);
        let bytes = sign_delegated(role, content, &keys::as_signers(&r.keys), delegating)?;
        next.snapshot
            .signed
            .meta
            .insert(entry, meta_entry(version, &bytes));
        let file = md.join(metadata_file_name(role, version));
        renewed.push(Renewed {
            role: role.to_string(),
            previous_version: current,
            version,
            expires,
            file: file.clone(),
        });
        files.push((file, bytes));
    }

    let timestamp = md.join("timestamp.json");
    let before = std::fs::read(&timestamp).ok();
    let mut written: Vec<&Path> = Vec::new();
    let result = files
        .iter()
        .try_for_each(|(path, bytes)| {
            write_versioned(path, bytes)?;
            written.push(path);
            Ok(())
        })
        .and_then(|()| publish::publish_with_root(&next, None, targets, needs, signers, now));
    match result {
        Ok(mut published) => {
            // Listed after targets (which delegates to them), before the snapshot.
            let at = published
                .signed
                .iter()
                .position(|r| r == "snapshot")
                .unwrap_or(published.signed.len());
            for (i, r) in renewed.iter().enumerate() {
                published.signed.insert(at + i, r.role.clone());
            }
            Ok((published, renewed))
        }
        Err(e) => {
            // Undone only if the commit point was not reached: devices may already follow a
            // new timestamp to these files.
            if std::fs::read(&timestamp).ok() == before {
                for path in written {
                    let _ = std::fs::remove_file(path);
                }
            }
            Err(e)
        }
    }
}
