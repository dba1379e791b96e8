//! New targets of a delegated role: the role's next version, signed by its own keys, with a
//! snapshot listing it and the timestamp last (the top-level targets do not change). For an
//! editor that adds targets under a delegation (`ota-sign add --role`): it loads the keys
//! ([`RoleSigners::load`]) and checks the new target paths ([`check_target_paths`]) before
//! writing anything, builds the new content from [`super::load_role`], places the target
//! files, then calls [`publish_targets`].
use super::publish::{publish, Publication};
use super::published::delegation;
use super::signers::{load_delegated, load_top_level, Wanted};
use super::{period, DelegationError};
use crate::key_source::KeyAccess;
use crate::keys::{self, LoadedKey};
use crate::publish::Published;
use crate::repository::Repository;
use crate::rotate::KeyDirs;
use crate::Result;
use chrono::{DateTime, Utc};
use ota_formats::metadata::Targets;
use serde::Serialize;
use std::path::PathBuf;

/// A delegated role's new version, published.
#[derive(Debug, Clone, Serialize)]
pub struct RolePublished {
    /// The delegated role.
    pub role: String,
    /// Its new version.
    pub version: u64,
    /// That version's expiry.
    pub expires: DateTime<Utc>,
    /// Its metadata file.
    pub file: PathBuf,
    /// The top-level metadata published with it (snapshot, timestamp).
    pub published: Published,
}

/// Refuse target paths that delegated `role` of `repo` may not list: outside its delegated
/// paths, or listed by the top-level targets (published or staged), where clients find them
/// first.
pub fn check_target_paths(repo: &Repository, role: &str, paths: &[&str]) -> Result<()> {
    let (_, delegated) = delegation(&repo.targets.signed, role)?;
    for path in paths {
        if !delegated.is_delegated_path(path) {
            let patterns = delegated
                .paths
                .clone()
                .or_else(|| delegated.path_hash_prefixes.clone())
                .unwrap_or_default();
            return Err(DelegationError::PathNotDelegated {
                role: role.to_string(),
                target: path.to_string(),
                patterns,
            }
            .into());
        }
        let top = repo.targets.signed.targets.contains_key(*path)
            || repo
                .staged
                .as_ref()
                .is_some_and(|s| s.targets.contains_key(*path));
        if top {
            return Err(DelegationError::ShadowedByTargets {
                role: role.to_string(),
                target: path.to_string(),
            }
            .into());
        }
    }
    Ok(())
}

/// The keys that publish new targets of a delegated role: its own (to its threshold, from its
/// key directory) and the snapshot and timestamp keys, loaded before anything is written.
#[derive(Debug)]
pub struct RoleSigners {
    role: String,
    own: Vec<LoadedKey>,
    top: keys::RoleKeys,
}

impl RoleSigners {
    /// Load the keys that sign the next version of delegated `role` in `repo`, unlocked
    /// through `access`; refused unless they reach the thresholds.
    pub fn load(
        repo: &Repository,
        dirs: &KeyDirs,
        role: &str,
        access: &KeyAccess<'_>,
    ) -> Result<Self> {
        let (_, delegated) = delegation(&repo.targets.signed, role)?;
        let signing = format!("{role} (its next version)");
        let of = format!("the delegation in targets v{}", repo.targets.signed.version);
        let wanted = Wanted {
            role,
            keyids: &delegated.keyids,
            threshold: delegated.threshold,
            retiring: &[],
            signing: &signing,
            of: &of,
        };
        let own = load_delegated(repo, dirs, &wanted, None, access)?;
        let top = load_top_level(repo, dirs, &["snapshot", "timestamp"], access)?;
        Ok(RoleSigners {
            role: role.to_string(),
            own,
            top,
        })
    }

    /// The role whose keys these are.
    pub fn role(&self) -> &str {
        &self.role
    }
}

/// Publish `content` as the next version of the delegated role of `signers` in `repo` (loaded
/// by a caller holding the writer lock, with every new target file in place): signed by the
/// role's keys, checked as a client checks it, then a snapshot and the timestamp. Every
/// target path is checked with [`check_target_paths`] first.
pub fn publish_targets(
    repo: &Repository,
    signers: &RoleSigners,
    content: Targets,
    now: DateTime<Utc>,
) -> Result<RolePublished> {
    let role = signers.role.as_str();
    let paths: Vec<&str> = content.targets.keys().map(String::as_str).collect();
    check_target_paths(repo, role, &paths)?;
    let done = publish(
        Publication {
            repo,
            targets: None,
            role,
            content,
            period: period(&repo.config, role),
            saved_key: None,
        },
        &keys::as_signers(&signers.own),
        &keys::role_signers(&signers.top),
        now,
    )?;
    Ok(RolePublished {
        role: role.to_string(),
        version: done.version,
        expires: done.expires,
        file: done.file,
        published: done.published,
    })
}
