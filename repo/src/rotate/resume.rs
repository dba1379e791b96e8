//! Finishing a rotation that stopped after its new root was written.
//!
//! A key-changing rotation publishes `N.root.json` and `root.json` first, then the roles the
//! new root re-signs, `timestamp.json` last. A crash in between leaves metadata signed by
//! keys root `N` retired, which [`Repository::load`] reports as
//! [`RepoError::RotationInterrupted`]. Devices are unharmed (a device that fetched root `N`
//! refuses the old timestamp until the rotation is finished, and keeps its firmware), but the
//! editor cannot go on. [`resume`] loads the repository under root `N - 1`, verifies root `N`
//! as its successor exactly like a fresh rotation, and publishes it again with what it
//! requires: the versioned root already on disk is kept when identical, re-signed roles take
//! versions above any file the interrupted run left, and `ota-repo.json` names the new keys.
use super::{publish_signed, KeyDirs, Rotated};
use crate::key_source::KeyAccess;
use crate::lock::RepoLock;
use crate::repository::METADATA_DIR;
use crate::{RepoError, Repository, Result};
use chrono::{DateTime, Utc};
use std::path::Path;

/// Finish an interrupted rotation of the repository in `repo_dir` under its writer lock, with
/// the keys in `dirs` unlocked through `access`. `Ok(None)`: the repository loads as it is,
/// nothing was interrupted and nothing is written.
pub fn resume(
    repo_dir: &Path,
    dirs: &KeyDirs,
    access: &KeyAccess<'_>,
    now: DateTime<Utc>,
) -> Result<Option<Rotated>> {
    let _lock = RepoLock::acquire(repo_dir)?;
    let version = match Repository::load(repo_dir) {
        Ok(_) => return Ok(None),
        Err(RepoError::RotationInterrupted { version, .. }) => version,
        Err(e) => return Err(e),
    };
    let repo = Repository::load_at(repo_dir, Some(version - 1))?;
    let path = repo_dir
        .join(METADATA_DIR)
        .join(format!("{version}.root.json"));
    let bytes =
        ota_fs::user_file::read(&path, crate::repository::MAX_METADATA_LEN).map_err(|source| {
            RepoError::Unreadable {
                path: path.clone(),
                source,
            }
        })?;
    publish_signed(&repo, &bytes, dirs, None, access, now).map(Some)
}
