//! Switching a role to a key opened from any source (a token key, typically): authorise it
//! in a new root version, re-sign the role and what lists it under that root, and name the
//! key in `ota-repo.json`.
//!
//! Everything is signed in memory and checked as a client checks it first: the new root
//! against the current root's root keys and threshold and against its own, the re-signed
//! roles against the new root. Then, in order: `N.root.json`, the `root.json` copy, the new
//! versioned targets and snapshot files, `timestamp.json` last, and `ota-repo.json` after it.
//! A crash before the timestamp leaves the previous release served; one between the
//! timestamp and the policy leaves a policy naming the retired key, and running the switch
//! again (the key is then already authorised) only writes the policy.
use super::{KeyAccess, KeySourceError};
use crate::config::CONFIG_FILE;
use crate::keys::{self, LoadedKey};
use crate::lock::RepoLock;
use crate::policy::expires_at;
use crate::publish::sign_role;
use crate::repository::meta_entry;
use crate::{RepoError, Repository, Result};
use chrono::{DateTime, Utc};
use ota_formats::crypto::Signer;
use ota_formats::metadata::RawMetadata;
use ota_fs::atomic;
use ota_fs::mode::PUBLIC_FILE;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    let old_root = &repo.root.signed;
    let current = old_root.role(role).map_err(|e| RepoError::Corrupt {
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
    if other_role_uses(old_root, role, &key.keyid) {
        return Err(refused(
            role,
            &entry,
            "the key is already a key of another role".into(),
        ));
    }
    // The role's policy entries afterwards.
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

    let root_changes = !removed.is_empty() || !current.keyids.contains(&key.keyid);
    let mut switched = Switched {
        role: role.to_string(),
        entry: entry.clone(),
        keyid: key.keyid.clone(),
        root_version: None,
        resigned: Vec::new(),
        removed: removed.clone(),
        retired_entries,
    };
    let mut writes: Vec<(PathBuf, Vec<u8>, bool)> = Vec::new();
    let md = repo.metadata_dir();
    if root_changes {
        let mut root = old_root.clone();
        for id in &removed {
            root.remove_key(role, id);
        }
        root.add_key(role, key.signer.public_key())
            .map_err(|source| RepoError::Sign {
                role: "root".into(),
                source,
            })?;
        let version = repo.next_version("root", old_root.version);
        root.version = version;
        root.expires = expires_at(now, repo.config.period("root"));

        // Signed by the current root keys (and by the new key when it is a root key), and
        // checked against the current root and against itself.
        let root_keys = keys::load_role_with(key_dir, &repo.config, old_root, "root", access)?;
        let mut signers = keys::as_signers(&root_keys);
        if role == "root" {
            signers.push(key.signer.as_ref() as &dyn Signer);
        }
        let bytes = sign_role("root", root.clone(), &signers, old_root)?;
        let rk = root.role("root").map_err(|source| RepoError::Sign {
            role: "root".into(),
            source,
        })?;
        RawMetadata::from_bytes(&bytes)
            .and_then(|raw| raw.verify("root", &root, &rk.keyids, rk.threshold))
            .map_err(|source| RepoError::Sign {
                role: "root".into(),
                source,
            })?;
        writes.push((
            md.join(format!("{version}.root.json")),
            bytes.clone(),
            false,
        ));
        writes.push((md.join("root.json"), bytes, true));
        switched.root_version = Some(version);
        let resigned = resign(&repo, &config, key_dir, role, &key, &root, access, now)?;
        switched.resigned = resigned.iter().map(|(r, _, _)| r.clone()).collect();
        writes.extend(resigned.into_iter().map(|(_, p, b)| (p, b, false)));
    }

    // The timestamp (if any) is the last metadata write; the policy follows it.
    writes.sort_by_key(|(p, _, _)| p.ends_with("timestamp.json"));
    for (path, bytes, replace) in &writes {
        tracing::debug!(path = %path.display(), "writing");
        let r = if *replace || path.ends_with("timestamp.json") {
            atomic::replace(path, bytes, PUBLIC_FILE)
        } else {
            atomic::write_new(path, bytes, PUBLIC_FILE)
        };
        r.map_err(|e| RepoError::write(path, e))?;
    }
    let cfg = repo.dir.join(CONFIG_FILE);
    atomic::replace(&cfg, &config.to_bytes()?, PUBLIC_FILE)
        .map_err(|e| RepoError::write(&cfg, e))?;
    Ok(switched)
}

fn other_role_uses(root: &ota_formats::metadata::Root, role: &str, keyid: &str) -> bool {
    root.roles
        .iter()
        .any(|(r, k)| r != role && k.keyids.iter().any(|k| k == keyid))
}

/// The roles to re-sign after `role`'s keys changed, signed under `root`:
/// `(role, path, bytes)` in publication order, the timestamp last.
#[allow(clippy::too_many_arguments)]
fn resign(
    repo: &Repository,
    config: &crate::config::RepoConfig,
    key_dir: &Path,
    role: &str,
    key: &LoadedKey,
    root: &ota_formats::metadata::Root,
    access: &KeyAccess<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<(String, PathBuf, Vec<u8>)>> {
    let chain: &[&str] = match role {
        "targets" => &["targets", "snapshot", "timestamp"],
        "snapshot" => &["snapshot", "timestamp"],
        "timestamp" => &["timestamp"],
        _ => &[],
    };
    // The keys of each role to sign: the switched role's kept keys plus the new key, the
    // others as the policy names them; all checked against the new root.
    let mut loaded: BTreeMap<&str, Vec<LoadedKey>> = BTreeMap::new();
    for r in chain {
        let mut cfg = config.clone();
        if *r == role {
            let others: Vec<String> = config
                .files(role)
                .iter()
                .filter(|e| **e != key.file)
                .cloned()
                .collect();
            if others.is_empty() {
                loaded.insert(r, Vec::new());
                continue;
            }
            cfg.key_files.insert(role.to_string(), others);
        }
        let ks = match keys::load_role_with(key_dir, &cfg, root, r, access) {
            Ok(ks) => ks,
            // The new key alone may reach the threshold.
            Err(RepoError::BelowThreshold { .. }) if *r == role => Vec::new(),
            Err(e) => return Err(e),
        };
        loaded.insert(r, ks);
    }
    let signers = |r: &str| -> Vec<&dyn Signer> {
        let mut s = loaded
            .get(r)
            .map(|ks| keys::as_signers(ks))
            .unwrap_or_default();
        if r == role {
            s.push(key.signer.as_ref() as &dyn Signer);
        }
        s
    };
    let md = repo.metadata_dir();
    let mut out = Vec::new();
    let mut targets_meta = None;
    let mut snapshot_meta = None;
    if chain.contains(&"targets") {
        let mut t = repo.targets.signed.clone();
        t.version = repo.next_version("targets", t.version);
        t.expires = expires_at(now, repo.config.period("targets"));
        let v = t.version;
        let bytes = sign_role("targets", t, &signers("targets"), root)?;
        targets_meta = Some(meta_entry(v, &bytes));
        out.push((
            "targets".into(),
            md.join(format!("{v}.targets.json")),
            bytes,
        ));
    }
    if chain.contains(&"snapshot") {
        let mut s = repo.snapshot.signed.clone();
        s.version = repo.next_version("snapshot", s.version);
        s.expires = expires_at(now, repo.config.period("snapshot"));
        if let Some(m) = targets_meta {
            s.meta.insert("targets.json".into(), m);
        }
        let v = s.version;
        let bytes = sign_role("snapshot", s, &signers("snapshot"), root)?;
        snapshot_meta = Some(meta_entry(v, &bytes));
        out.push((
            "snapshot".into(),
            md.join(format!("{v}.snapshot.json")),
            bytes,
        ));
    }
    if chain.contains(&"timestamp") {
        let mut ts = repo.timestamp.signed.clone();
        ts.version += 1;
        ts.expires = expires_at(now, repo.config.period("timestamp"));
        if let Some(m) = snapshot_meta {
            ts.meta = BTreeMap::from([("snapshot.json".to_string(), m)]);
        }
        let bytes = sign_role("timestamp", ts, &signers("timestamp"), root)?;
        out.push(("timestamp".into(), md.join("timestamp.json"), bytes));
    }
    Ok(out)
}
