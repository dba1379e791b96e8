//! Publishing a request once its thresholds are met: targets as `N.targets.json`, then
//! (unless the server signs them, with online roles) a new snapshot and `timestamp.json`
//! last, through [`crate::publish::publish`]; root as `N.root.json`, then `root.json`, then
//! re-signed targets, snapshot or timestamp when the new root no longer trusts the keys that
//! signed them. Versioned files are written new (an identical one left by an interrupted
//! run is kept); the staged file the request came from is removed after the commit point.
use super::error::{CeremonyError, Result};
use super::request::{CeremonyRole, SigningRequest, STAGED_ROOT_FILE};
use crate::publish::{self, Needs, Published, RoleSigners};
use crate::repository::{meta_entry, Repository, STAGED_FILE};
use crate::RepoError;
use chrono::{DateTime, Utc};
use ota_formats::metadata::{RawMetadata, Root, Signed, Targets};
use ota_fs::atomic;
use ota_fs::mode::PUBLIC_FILE;
use serde_json::Value;
use std::path::Path;

/// The top-level roles whose published metadata `new_root` does not verify (their keys or
/// thresholds change with it): they must be re-signed with the new root.
pub fn roles_untrusted_by(repo: &Repository, new_root: &Root) -> Result<Vec<&'static str>> {
    let md = repo.metadata_dir();
    let files = [
        (
            "targets",
            md.join(format!("{}.targets.json", repo.targets.signed.version)),
        ),
        (
            "snapshot",
            md.join(format!("{}.snapshot.json", repo.snapshot.signed.version)),
        ),
        ("timestamp", md.join("timestamp.json")),
    ];
    let mut out = Vec::new();
    for (role, path) in files {
        let bytes = ota_fs::user_file::read(&path, crate::repository::MAX_METADATA_LEN).map_err(
            |source| RepoError::Unreadable {
                path: path.clone(),
                source,
            },
        )?;
        let trusted = RawMetadata::from_bytes(&bytes).is_ok_and(|raw| {
            new_root
                .role(role)
                .is_ok_and(|rk| raw.verify(role, new_root, &rk.keyids, rk.threshold).is_ok())
        });
        if !trusted {
            out.push(role);
        }
    }
    Ok(out)
}

/// The roles whose keys publishing `request` needs besides the signatures, and the root
/// those keys must be authorised by: snapshot and timestamp for targets (none with online
/// roles); for root, the roles the new root no longer trusts, and what they imply.
pub fn keys_needed(
    repo: &Repository,
    request: &SigningRequest,
) -> Result<(Vec<&'static str>, Root)> {
    match (request.role, request.new_root()) {
        (CeremonyRole::Targets, _) => {
            let roles = if repo.config.online_roles {
                Vec::new()
            } else {
                vec!["snapshot", "timestamp"]
            };
            Ok((roles, repo.root.signed.clone()))
        }
        (CeremonyRole::Root, Some(new_root)) => {
            let untrusted = roles_untrusted_by(repo, &new_root)?;
            let needs = resign_needs(&untrusted);
            Ok((needs.roles(), new_root))
        }
        (CeremonyRole::Root, None) => Err(CeremonyError::Sign {
            source: ota_formats::Error::MissingRole("root".into()),
        }),
    }
}

/// What re-signing `untrusted` roles implies: a new targets needs a new snapshot, which
/// needs a new timestamp.
fn resign_needs(untrusted: &[&str]) -> Needs {
    let targets = untrusted.contains(&"targets");
    let snapshot = targets || untrusted.contains(&"snapshot");
    Needs {
        root: false,
        targets,
        snapshot,
        timestamp: snapshot || untrusted.contains(&"timestamp"),
    }
}

/// Write a versioned file; one already there with the same bytes (an interrupted run) is
/// kept, one with other bytes is [`CeremonyError::MetadataExists`].
fn write_versioned(path: &Path, bytes: &[u8]) -> Result<()> {
    match atomic::write_new(path, bytes, PUBLIC_FILE) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if std::fs::read(path).is_ok_and(|b| b == bytes) {
                Ok(())
            } else {
                Err(CeremonyError::MetadataExists {
                    path: path.to_path_buf(),
                })
            }
        }
        Err(e) => Err(RepoError::write(path, e).into()),
    }
}

fn remove_after_commit(repo: &Repository, name: &str, warnings: &mut Vec<String>) {
    let path = repo.dir.join(name);
    if let Err(e) = std::fs::remove_file(&path).and_then(|()| atomic::sync_dir(&repo.dir)) {
        warnings.push(format!(
            "published, but cannot remove {}: {e}",
            path.display()
        ));
    }
}

/// Publish `bytes` (from [`metadata_bytes`]) of `request` into `repo`, with `signers` for
/// the roles [`keys_needed`] named. The caller holds the writer lock.
pub fn publish(
    repo: &Repository,
    request: &SigningRequest,
    bytes: &[u8],
    signers: &RoleSigners<'_>,
    now: DateTime<Utc>,
) -> Result<Published> {
    let md = repo.metadata_dir();
    let v = request.version;
    let internal = |source| CeremonyError::Sign { source };
    match request.role {
        CeremonyRole::Targets => {
            let signed: Signed<Targets> = Signed::from_bytes_unverified(bytes).map_err(internal)?;
            write_versioned(&md.join(format!("{v}.targets.json")), bytes)?;
            let mut published = if repo.config.online_roles {
                // The server holding the online keys lists it in its next snapshot.
                Published {
                    signed: Vec::new(),
                    root_version: repo.root.signed.version,
                    targets_version: v,
                    snapshot_version: repo.snapshot.signed.version,
                    timestamp_version: repo.timestamp.signed.version,
                    warnings: Vec::new(),
                }
            } else {
                let mut next = repo.clone();
                next.targets = signed.clone();
                next.pending_targets = Some(meta_entry(v, bytes));
                next.staged = None;
                let needs = Needs {
                    root: false,
                    targets: false,
                    snapshot: true,
                    timestamp: true,
                };
                publish::publish(&next, signed.signed.clone(), needs, signers, now)?
            };
            published.signed.insert(0, "targets".into());
            if let Some(staged) = &repo.staged {
                let mut a = staged.clone();
                let mut b = signed.signed.clone();
                (a.version, a.expires) = (b.version, b.expires);
                if serde_json::to_value(&a).ok() == serde_json::to_value(&mut b).ok() {
                    remove_after_commit(repo, STAGED_FILE, &mut published.warnings);
                } else {
                    published.warnings.push(format!(
                        "{STAGED_FILE} holds changes made after the request; they stay staged"
                    ));
                }
            }
            Ok(published)
        }
        CeremonyRole::Root => {
            let signed: Signed<Root> = Signed::from_bytes_unverified(bytes).map_err(internal)?;
            let untrusted = roles_untrusted_by(repo, &signed.signed)?;
            write_versioned(&md.join(format!("{v}.root.json")), bytes)?;
            let copy = md.join("root.json");
            atomic::replace(&copy, bytes, PUBLIC_FILE).map_err(|e| RepoError::write(&copy, e))?;
            let needs = resign_needs(&untrusted);
            let mut published = if needs.is_empty() {
                Published {
                    signed: Vec::new(),
                    root_version: v,
                    targets_version: repo.targets.signed.version,
                    snapshot_version: repo.snapshot.signed.version,
                    timestamp_version: repo.timestamp.signed.version,
                    warnings: Vec::new(),
                }
            } else {
                let mut next = repo.clone();
                next.root = signed;
                next.staged = None;
                let mut p =
                    publish::publish(&next, repo.targets.signed.clone(), needs, signers, now)?;
                p.root_version = v;
                p
            };
            published.signed.insert(0, "root".into());
            let staged = repo.dir.join(STAGED_ROOT_FILE);
            let staged_version = std::fs::read(&staged)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .and_then(|v| {
                    v.get("version")
                        .or_else(|| v.get("signed").and_then(|s| s.get("version")))
                        .and_then(Value::as_u64)
                });
            if staged_version == Some(v) {
                remove_after_commit(repo, STAGED_ROOT_FILE, &mut published.warnings);
            }
            Ok(published)
        }
    }
}
