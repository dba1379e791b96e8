//! Signing and publishing new targets, snapshot and timestamp metadata as one transaction.
//!
//! Everything is built and signed in memory first. Then, in this order: a new root (only on
//! request: `N.root.json`, then the `root.json` copy), the new versioned `N.targets.json`, the new versioned `N.snapshot.json` (each written as a new file, never
//! over an existing one), and last `timestamp.json`, replaced atomically. Clients start from
//! the timestamp, so until that rename they see the previous release, complete; after it,
//! the new one, complete. A crash in between leaves only unreferenced files.
//!
//! The keys of each role are [`Signer`] trait objects ([`RoleSigners`]): key files loaded with
//! [`crate::keys`] today, an HSM or a remote signer tomorrow.
//!
//! Delegated roles are due by the same rule ([`is_due`]): [`plan_with_delegated`] lists those
//! to re-sign and [`crate::delegation::publish_with_renewals`] writes their next versions before
//! the snapshot that lists them, in the same publication.
//!
//! ```no_run
//! # fn main() -> Result<(), ota_repo::RepoError> {
//! use ota_repo::{keys, lock::RepoLock, publish, Repository};
//! let (dir, key_dir) = (std::path::Path::new("repo"), std::path::Path::new("keys"));
//! let now = chrono::Utc::now();
//! let _lock = RepoLock::acquire(dir)?;
//! let repo = Repository::load(dir)?;
//! let needs = publish::plan(&repo, false, false, now);
//! let mut loaded = keys::RoleKeys::new();
//! for role in needs.roles() {
//!     let k = keys::load_role(key_dir, &repo.config, &repo.root.signed, role)?;
//!     loaded.insert(role.to_string(), k);
//! }
//! let signers = keys::role_signers(&loaded);
//! let published = publish::publish(&repo, repo.working_targets(), needs, &signers, now)?;
//! println!("timestamp v{}", published.timestamp_version);
//! # Ok(())
//! # }
//! ```
use crate::policy::{expires_at, health, Health, Period};
use crate::repository::{meta_entry, Repository, STAGED_FILE};
use crate::{RepoError, Result};
use chrono::{DateTime, Utc};
use ota_formats::crypto::Signer;
use ota_formats::metadata::{MetaFile, RawMetadata, RoleType, Root, Signed, Targets};
use ota_fs::atomic;
use ota_fs::mode::PUBLIC_FILE;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Which roles get new metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// New root metadata (same keys, new version and expiry); only on request, since root
    /// keys are meant to stay offline.
    pub root: bool,
    /// New targets metadata.
    pub targets: bool,
    /// New snapshot metadata.
    pub snapshot: bool,
    /// New timestamp metadata.
    pub timestamp: bool,
}

impl Needs {
    /// The roles to sign, in signing order.
    pub fn roles(&self) -> Vec<&'static str> {
        [
            ("root", self.root),
            ("targets", self.targets),
            ("snapshot", self.snapshot),
            ("timestamp", self.timestamp),
        ]
        .into_iter()
        .filter_map(|(r, n)| n.then_some(r))
        .collect()
    }

    /// Whether nothing needs signing.
    pub fn is_empty(&self) -> bool {
        !(self.root || self.targets || self.snapshot || self.timestamp)
    }
}

/// Whether metadata that expires at `expires`, signed for `period`, is due for re-signing at
/// `now`: expired, or inside its warning window (under a quarter of its period left, see
/// [`health`]). The one rule for every role, top-level or delegated.
pub fn is_due(expires: DateTime<Utc>, period: Period, now: DateTime<Utc>) -> bool {
    health(expires, period, now) != Health::Ok
}

/// Decide what to re-sign: changed targets, `force`, or any role with under a quarter of its
/// period left. A new targets needs a new snapshot, which needs a new timestamp; with
/// online roles ([`crate::config::RepoConfig::online_roles`]) only targets is planned here.
/// Delegated roles: [`plan_with_delegated`].
pub fn plan(repo: &Repository, targets_changed: bool, force: bool, now: DateTime<Utc>) -> Needs {
    let due = |role: &str, expires: DateTime<Utc>| is_due(expires, repo.config.period(role), now);
    let targets = force || targets_changed || due("targets", repo.targets.signed.expires);
    // With online roles the release machine has no snapshot or timestamp key: the server
    // (`crate::online`) publishes what it signs here.
    let offline_only = repo.config.online_roles;
    let snapshot =
        !offline_only && (force || targets || due("snapshot", repo.snapshot.signed.expires));
    let timestamp =
        !offline_only && (force || snapshot || due("timestamp", repo.timestamp.signed.expires));
    tracing::debug!(targets, snapshot, timestamp, "roles to sign");
    Needs {
        root: false,
        targets,
        snapshot,
        timestamp,
    }
}

/// A delegated role due for re-signing: its current version, verified, and when it expires.
#[derive(Debug, Clone, Serialize)]
pub struct DelegatedDue {
    /// The delegated role.
    pub role: String,
    /// Its current version (the one the snapshot lists).
    pub version: u64,
    /// That version's expiry.
    pub expires: DateTime<Utc>,
    /// The role's expiry period ([`crate::delegation::period`]).
    pub period: Period,
    /// ok (re-signed because of `force`), expiring or expired.
    pub health: Health,
    /// Its current content, which the next version keeps.
    #[serde(skip)]
    pub content: Targets,
}

/// Everything a publish re-signs: the top-level roles, and the delegated roles due.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Top-level roles; snapshot and timestamp whenever a delegated role is re-signed.
    pub needs: Needs,
    /// Delegated roles to re-sign as their next version (same targets, new expiry), in the
    /// order the top-level targets delegate to them.
    pub delegated: Vec<DelegatedDue>,
}

impl Plan {
    /// Whether nothing needs signing.
    pub fn is_empty(&self) -> bool {
        self.needs.is_empty() && self.delegated.is_empty()
    }
}

/// [`plan`], plus every role the top-level targets delegate to whose current metadata is due
/// by the same rule ([`is_due`], under the role's own period), or all of them with `force`.
/// A new version of a delegated role needs a new snapshot listing it, hence a new timestamp.
///
/// With online roles no delegated role is planned: the snapshot that must list its new
/// version is the server's (see [`crate::online`]). The current metadata of each delegated
/// role is read and verified ([`crate::delegation::load_role`]); one that is unreadable or
/// fails to verify is an error, as it is on devices.
pub fn plan_with_delegated(
    repo: &Repository,
    targets_changed: bool,
    force: bool,
    now: DateTime<Utc>,
) -> Result<Plan> {
    let mut needs = plan(repo, targets_changed, force, now);
    if repo.config.online_roles {
        return Ok(Plan {
            needs,
            delegated: Vec::new(),
        });
    }
    let names: Vec<String> = repo
        .targets
        .signed
        .delegations
        .as_ref()
        .and_then(|d| d.roles.as_ref())
        .map(|roles| roles.iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default();
    let mut delegated = Vec::new();
    for role in names {
        let current = crate::delegation::load_role(repo, &role)?.signed;
        let period = crate::delegation::period(&repo.config, &role);
        if force || is_due(current.expires, period, now) {
            delegated.push(DelegatedDue {
                version: current.version,
                expires: current.expires,
                period,
                health: health(current.expires, period, now),
                role,
                content: current,
            });
        }
    }
    if !delegated.is_empty() {
        needs.snapshot = true;
        needs.timestamp = true;
    }
    tracing::debug!(
        delegated = ?delegated.iter().map(|d| d.role.as_str()).collect::<Vec<_>>(),
        "delegated roles to sign"
    );
    Ok(Plan { needs, delegated })
}

/// Versions of the roles after publishing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Published {
    /// Roles that got new metadata.
    pub signed: Vec<String>,
    /// Current root version.
    pub root_version: u64,
    /// Current targets version.
    pub targets_version: u64,
    /// Current snapshot version.
    pub snapshot_version: u64,
    /// Current timestamp version.
    pub timestamp_version: u64,
    /// Things that went wrong after the commit point and did not undo the publication
    /// (e.g. `ota-staged.json` could not be removed); not part of the JSON form.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The signers of each role, by role name. A role is signed with all of its signers; what
/// they sign must reach the role's threshold in root.
pub type RoleSigners<'a> = BTreeMap<String, Vec<&'a dyn Signer>>;

/// Sign `value` as `role` with `signers`, and check the result exactly as a client will.
pub fn sign_role<T: RoleType>(
    role: &str,
    value: T,
    signers: &[&dyn Signer],
    root: &Root,
) -> Result<Vec<u8>> {
    let internal = |source: ota_formats::Error| RepoError::Sign {
        role: role.to_string(),
        source,
    };
    let bytes = Signed::sign(value, signers)
        .and_then(|s| s.to_bytes())
        .map_err(internal)?;
    // Check what we are about to publish exactly as a client will.
    let rk = root.role(role).map_err(internal)?;
    RawMetadata::from_bytes(&bytes)
        .and_then(|raw| raw.verify(role, root, &rk.keyids, rk.threshold))
        .map_err(internal)?;
    Ok(bytes)
}

/// Sign and publish the roles in `needs`. `targets` is the new content of the targets role
/// (its version and expiry are set here); it is used only when `needs.targets`.
pub fn publish(
    repo: &Repository,
    targets: Targets,
    needs: Needs,
    signers: &RoleSigners<'_>,
    now: DateTime<Utc>,
) -> Result<Published> {
    publish_with_root(repo, None, targets, needs, signers, now)
}

/// Like [`publish`], with `new_root`: the bytes of a root signed elsewhere (a key rotation,
/// [`crate::rotate`]), whose version must be the next one and which `repo.root` already holds
/// parsed. It is written first (instead of a root signed here), and the other roles in `needs`
/// are signed and checked against it.
pub fn publish_with_root(
    repo: &Repository,
    new_root: Option<&[u8]>,
    targets: Targets,
    mut needs: Needs,
    signers: &RoleSigners<'_>,
    now: DateTime<Utc>,
) -> Result<Published> {
    let keys = |role: &str| -> Result<&[&dyn Signer]> {
        signers
            .get(role)
            .map(Vec::as_slice)
            .ok_or_else(|| RepoError::KeyMissing {
                role: role.to_string(),
            })
    };
    let root = &repo.root.signed;
    let md = repo.metadata_dir();
    let mut writes: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();

    // Root first: clients update root before they look at the timestamp.
    let mut root_version = root.version;
    let mut root_write = None;
    if let Some(bytes) = new_root {
        needs.root = true;
        root_write = Some((md.join(format!("{root_version}.root.json")), bytes.to_vec()));
    } else if needs.root {
        let mut r = root.clone();
        root_version = repo.next_version("root", root_version);
        r.version = root_version;
        r.expires = expires_at(now, repo.config.period("root"));
        // Signed by the current root keys, so it verifies under the old and the new root.
        let bytes = sign_role("root", r, keys("root")?, root)?;
        root_write = Some((md.join(format!("{root_version}.root.json")), bytes));
    }

    let mut targets_version = repo.targets.signed.version;
    let targets_meta = if needs.targets {
        let mut t = targets;
        targets_version = repo.next_version("targets", targets_version);
        t.version = targets_version;
        t.expires = expires_at(now, repo.config.period("targets"));
        let bytes = sign_role("targets", t, keys("targets")?, root)?;
        let meta = meta_entry(targets_version, &bytes);
        writes.push((md.join(format!("{targets_version}.targets.json")), bytes));
        meta
    } else {
        current_targets_meta(repo)?
    };

    let mut snapshot_version = repo.snapshot.signed.version;
    let snapshot_meta = if needs.snapshot {
        let mut s = repo.snapshot.signed.clone();
        snapshot_version = repo.next_version("snapshot", snapshot_version);
        s.version = snapshot_version;
        s.expires = expires_at(now, repo.config.period("snapshot"));
        s.meta.insert("targets.json".into(), targets_meta);
        let bytes = sign_role("snapshot", s, keys("snapshot")?, root)?;
        let meta = meta_entry(snapshot_version, &bytes);
        writes.push((md.join(format!("{snapshot_version}.snapshot.json")), bytes));
        meta
    } else {
        repo.timestamp
            .signed
            .snapshot_meta()
            .map_err(|e| RepoError::Corrupt {
                path: md.join("timestamp.json"),
                reason: e.to_string(),
            })?
            .clone()
    };

    let mut timestamp_version = repo.timestamp.signed.version;
    let mut timestamp_bytes = None;
    if needs.timestamp {
        let mut ts = repo.timestamp.signed.clone();
        timestamp_version += 1;
        ts.version = timestamp_version;
        ts.expires = expires_at(now, repo.config.period("timestamp"));
        ts.meta = BTreeMap::from([("snapshot.json".to_string(), snapshot_meta)]);
        timestamp_bytes = Some(sign_role("timestamp", ts, keys("timestamp")?, root)?);
    }

    if let Some((versioned, bytes)) = root_write {
        write_versioned(&versioned, &bytes)?;
        // root.json is a copy of the newest root for bootstrapping; clients walk N.root.json.
        let path = md.join("root.json");
        atomic::replace(&path, &bytes, PUBLIC_FILE).map_err(|e| RepoError::write(&path, e))?;
    }
    for (path, bytes) in writes {
        write_versioned(&path, &bytes)?;
    }
    if let Some(bytes) = timestamp_bytes {
        let path = md.join("timestamp.json");
        tracing::debug!(path = %path.display(), "commit point: replacing timestamp.json");
        atomic::replace(&path, &bytes, PUBLIC_FILE).map_err(|e| RepoError::write(&path, e))?;
    }
    let mut warnings = Vec::new();
    if needs.targets && repo.staged.is_some() {
        // After the commit point: a crash before this line only leaves staged content that
        // equals the published one, which the next publish signs again harmlessly.
        let staged = repo.dir.join(STAGED_FILE);
        if let Err(e) = std::fs::remove_file(&staged).and_then(|()| atomic::sync_dir(&repo.dir)) {
            warnings.push(format!(
                "published, but cannot remove {}: {e}",
                staged.display()
            ));
        }
    }
    Ok(Published {
        signed: needs.roles().into_iter().map(String::from).collect(),
        root_version,
        targets_version,
        snapshot_version,
        timestamp_version,
        warnings,
    })
}

fn current_targets_meta(repo: &Repository) -> Result<MetaFile> {
    if let Some(pending) = &repo.pending_targets {
        return Ok(pending.clone());
    }
    repo.snapshot
        .signed
        .meta
        .get("targets.json")
        .cloned()
        .ok_or_else(|| RepoError::NotListed {
            path: repo
                .metadata_dir()
                .join(format!("{}.snapshot.json", repo.snapshot.signed.version)),
            entry: "targets.json".into(),
        })
}

/// Write a versioned metadata file, which is never replaced: one already there with the same
/// bytes (written by an interrupted run that is being finished) is kept, one with other bytes
/// is [`RepoError::MetadataExists`].
pub(crate) fn write_versioned(path: &Path, bytes: &[u8]) -> Result<()> {
    tracing::debug!(path = %path.display(), "writing");
    match atomic::write_new(path, bytes, PUBLIC_FILE) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::read(path).is_ok_and(|b| b == bytes) {
                Ok(())
            } else {
                Err(RepoError::MetadataExists {
                    path: path.to_path_buf(),
                })
            }
        }
        other => other.map_err(|e| RepoError::write(path, e)),
    }
}

/// Stage `targets` (with new target files already in place) for the next publish, without
/// signing: clients see nothing of it.
pub fn stage(repo: &Repository, targets: &Targets) -> Result<()> {
    let path = repo.dir.join(STAGED_FILE);
    let mut bytes = serde_json::to_vec_pretty(targets)
        .map_err(|e| RepoError::write(&path, std::io::Error::from(e)))?;
    bytes.push(b'\n');
    atomic::replace(&path, &bytes, PUBLIC_FILE).map_err(|e| RepoError::write(&path, e))
}
