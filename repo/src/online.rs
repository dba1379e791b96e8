//! The online roles: snapshot and timestamp signed by a server that holds only their keys, so
//! that a repository left alone keeps serving valid metadata and the offline root and
//! targets keys never touch an online machine.
//!
//! [`OnlineSigner::renew`] re-signs the timestamp when a quarter of its period is left, the
//! snapshot likewise, and publishes a new snapshot for a targets version signed offline and
//! not listed yet ([`crate::Repository::pending_targets`]); the usual ordered, atomic
//! publication (timestamp last) under the repository's writer lock.
//!
//! ```no_run
//! # fn main() -> Result<(), ota_repo::RepoError> {
//! use ota_repo::online::OnlineSigner;
//! let repo = std::path::Path::new("repo");
//! let signer = OnlineSigner::load(std::path::Path::new("online-keys"), repo)?;
//! if let Some(p) = signer.renew(repo, chrono::Utc::now())? {
//!     println!("timestamp v{}", p.timestamp_version);
//! }
//! # Ok(())
//! # }
//! ```
use crate::keys::{self, RoleKeys};
use crate::lock::RepoLock;
use crate::policy::{health, Health};
use crate::publish::{self, Needs, Published};
use crate::{RepoError, Repository, Result};
use chrono::{DateTime, Utc};
use std::path::{Path, PathBuf};

/// The roles an online signer holds.
pub const ONLINE_ROLES: [&str; 2] = ["snapshot", "timestamp"];
/// The roles whose keys must stay offline.
pub const OFFLINE_ROLES: [&str; 2] = ["root", "targets"];

/// The snapshot and timestamp keys of one repository.
pub struct OnlineSigner {
    keys: RoleKeys,
    dir: PathBuf,
}

impl std::fmt::Debug for OnlineSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineSigner")
            .field("dir", &self.dir)
            .field("roles", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl OnlineSigner {
    /// Load the snapshot and timestamp keys of the repository in `repo_dir` from `key_dir`
    /// (authorised by the current root, to threshold). A key directory that also holds a
    /// root or targets key file (by the names in `ota-repo.json`) is refused: those keys
    /// belong on the offline release machine.
    pub fn load(key_dir: &Path, repo_dir: &Path) -> Result<Self> {
        let repo = Repository::load(repo_dir)?;
        for role in OFFLINE_ROLES {
            for file in repo.config.files(role) {
                let path = key_dir.join(file);
                if path.exists() {
                    return Err(RepoError::OfflineKeyOnline {
                        role: role.to_string(),
                        path,
                    });
                }
            }
        }
        let mut loaded = RoleKeys::new();
        for role in ONLINE_ROLES {
            let k = keys::load_role(key_dir, &repo.config, &repo.root.signed, role)?;
            loaded.insert(role.to_string(), k);
        }
        Ok(OnlineSigner {
            keys: loaded,
            dir: key_dir.to_path_buf(),
        })
    }

    /// What is due in `repo` at `now`: a new snapshot for a pending targets version or a
    /// snapshot near expiry, and a new timestamp for a new snapshot or a timestamp near
    /// expiry. Never targets or root.
    pub fn plan(repo: &Repository, now: DateTime<Utc>) -> Needs {
        let due = |role: &str, expires: DateTime<Utc>| {
            health(expires, repo.config.period(role), now) != Health::Ok
        };
        let snapshot =
            repo.pending_targets.is_some() || due("snapshot", repo.snapshot.signed.expires);
        let timestamp = snapshot || due("timestamp", repo.timestamp.signed.expires);
        Needs {
            root: false,
            targets: false,
            snapshot,
            timestamp,
        }
    }

    /// Sign and publish a new snapshot and timestamp for `repo` as given, due or not: for a
    /// publication that has just put new metadata in place ([`crate::upload`]), which the
    /// snapshot lists from [`Repository::pending_targets`] and [`Repository::snapshot`]'s
    /// entries. The caller holds the writer lock.
    pub fn publish_now(&self, repo: &Repository, now: DateTime<Utc>) -> Result<Published> {
        let signers = keys::role_signers(&self.keys);
        let needs = Needs {
            root: false,
            targets: false,
            snapshot: true,
            timestamp: true,
        };
        publish::publish(repo, repo.targets.signed.clone(), needs, &signers, now)
    }

    /// Re-sign what is due (see [`OnlineSigner::plan`]) under the writer lock; `None` when
    /// nothing was.
    pub fn renew(&self, repo_dir: &Path, now: DateTime<Utc>) -> Result<Option<Published>> {
        let _lock = RepoLock::acquire(repo_dir)?;
        let repo = Repository::load(repo_dir)?;
        let needs = Self::plan(&repo, now);
        if needs.is_empty() {
            return Ok(None);
        }
        let signers = keys::role_signers(&self.keys);
        let targets = repo.targets.signed.clone();
        publish::publish(&repo, targets, needs, &signers, now).map(Some)
    }
}
