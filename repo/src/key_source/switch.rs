//! Switching a role to a key opened from any source (a token key, typically): a key
//! rotation ([`crate::rotate::rotate_locked`]) that adds the opened key to the role (and, unless
//! the other keys are kept, removes them), so it is authorised by a new root version signed by
//! the old and the new root keys, the role and what lists it are re-signed under that root,
//! timestamp last, and `ota-repo.json` names the key by its entry (a `pkcs11:` URI, or a file).
//! A crash part-way is what an interrupted rotation leaves ([`crate::rotate::resume`]); a key
//! the role already lists with nothing to remove only changes the policy entry.
use super::{KeyAccess, KeySourceError};
use crate::config::CONFIG_FILE;
use crate::keys::LoadedKey;
use crate::lock::RepoLock;
use crate::rotate::{self, KeyDirs, Request, RotateError};
use crate::{RepoError, Repository, Result};
use chrono::{DateTime, Utc};
use ota_fs::atomic;
use ota_fs::mode::PUBLIC_FILE;
use serde::Serialize;
use std::path::Path;

/// What a switch did.
#[derive(Debug, Clone, Serialize)]
pub struct Switched {
    /// The role.
    pub role: String,
    /// The key's policy entry (its URI or file name).
    pub entry: String,
    /// Its key id.
    pub keyid: String,
    /// The new root version, when root changed (`None`: the key was authorised already).
    pub root_version: Option<u64>,
    /// Roles re-signed under the new root, in order.
    pub resigned: Vec<String>,
    /// Key ids the role no longer lists.
    pub removed: Vec<String>,
    /// Policy entries of the role removed from `ota-repo.json` (their files stay on disk).
    pub retired_entries: Vec<String>,
}

fn refused(role: &str, entry: &str, reason: String) -> RepoError {
    RepoError::KeySource {
        key: entry.to_string(),
        source: KeySourceError::SwitchRefused {
            role: role.to_string(),
            reason,
        },
    }
}

/// Make `key` (opened from `key.file`, its policy entry) a key of `role` in the repository
/// at `repo_dir`: the role's only key, or with `keep`, one beside its current keys. The other
/// keys the signing needs (root keys, and the keys of the roles re-signed) are loaded from
/// `key_dir` through `access`.
pub fn switch_role_key(
    repo_dir: &Path,
    key_dir: &Path,
    role: &str,
    key: LoadedKey,
    keep: bool,
    access: &KeyAccess<'_>,
    now: DateTime<Utc>,
) -> Result<Switched> {
    let entry = key.file.clone();
    let _lock = RepoLock::acquire(repo_dir)?;
    let repo = Repository::load(repo_dir)?;
    if !crate::policy::ROLES.contains(&role) {
        return Err(refused(role, &entry, "it is not a top-level role".into()));
    }
    if repo.config.online_roles {
        return Err(refused(
            role,
            &entry,
            "the repository signs snapshot and timestamp online; switching keys there is not supported".into(),
        ));
    }
    let current = repo
        .root
        .signed
        .role(role)
        .map_err(|e| RepoError::Corrupt {
            path: repo.metadata_dir().join("root.json"),
            reason: e.to_string(),
        })?;
    let removed: Vec<String> = if keep {
        Vec::new()
    } else {
        current
            .keyids
            .iter()
            .filter(|k| **k != key.keyid)
            .cloned()
            .collect()
    };
    let n_keys =
        current.keyids.len() - removed.len() + usize::from(!current.keyids.contains(&key.keyid));
    if current.threshold > n_keys as u64 {
        return Err(refused(
            role,
            &entry,
            format!(
                "its threshold is {} and it would have {n_keys} key(s); keep its other keys (--keep) or lower the threshold first",
                current.threshold
            ),
        ));
    }
    let request = Request {
        role: role.to_string(),
        remove: removed.clone(),
        ..Request::default()
    };
    let dirs = KeyDirs {
        keys: key_dir.to_path_buf(),
        online: None,
    };
    match rotate::rotate_locked(&repo, &dirs, &request, Some(&key), access, now) {
        Ok(done) => {
            // A key the role listed already is not an added key: name it in the policy here.
            let config = Repository::load(repo_dir)?.config;
            if !config.files(role).contains(&entry) {
                let mut config = config;
                config
                    .key_files
                    .entry(role.to_string())
                    .or_default()
                    .push(entry.clone());
                let cfg = repo.dir.join(CONFIG_FILE);
                atomic::replace(&cfg, &config.to_bytes()?, PUBLIC_FILE)
                    .map_err(|e| RepoError::write(&cfg, e))?;
            }
            let resigned = done
                .published
                .map(|p| p.signed.into_iter().filter(|r| r != "root").collect())
                .unwrap_or_default();
            Ok(Switched {
                role: role.to_string(),
                entry,
                keyid: key.keyid,
                root_version: Some(done.root_version),
                resigned,
                removed,
                retired_entries: done
                    .retired_files
                    .iter()
                    .map(|p| p.strip_prefix(key_dir).unwrap_or(p).display().to_string())
                    .collect(),
            })
        }
        // Authorised already, nothing to remove: only the policy names the key.
        Err(RepoError::Rotate(e)) if matches!(*e, RotateError::NothingToChange { .. }) => {
            policy_only(&repo, role, entry, key.keyid, keep)
        }
        Err(RepoError::Rotate(e)) if matches!(*e, RotateError::KeyOfAnotherRole { .. }) => {
            Err(refused(
                role,
                &entry,
                "the key is already a key of another role".into(),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Name `entry` as a key of `role` in `ota-repo.json` (beside the role's other entries with
/// `keep`, else instead of them), the key being authorised already.
fn policy_only(
    repo: &Repository,
    role: &str,
    entry: String,
    keyid: String,
    keep: bool,
) -> Result<Switched> {
    let mut config = repo.config.clone();
    let mut retired_entries = Vec::new();
    let mut entries = Vec::new();
    for e in repo.config.files(role) {
        if *e == entry {
            continue;
        }
        if keep {
            entries.push(e.clone());
        } else {
            retired_entries.push(e.clone());
        }
    }
    entries.push(entry.clone());
    config.key_files.insert(role.to_string(), entries);
    let cfg = repo.dir.join(CONFIG_FILE);
    atomic::replace(&cfg, &config.to_bytes()?, PUBLIC_FILE)
        .map_err(|e| RepoError::write(&cfg, e))?;
    Ok(Switched {
        role: role.to_string(),
        entry,
        keyid,
        root_version: None,
        resigned: Vec::new(),
        removed: Vec::new(),
        retired_entries,
    })
}
