//! A new delegation from the top-level targets to a role: its keys (generated here, or public
//! keys whose private keys their holders keep) listed in the targets' `delegations.keys`, the
//! role with its path patterns, threshold and `terminating` flag in `delegations.roles`, and
//! the role's first metadata (no targets yet) signed by its own keys. Published in order: the
//! role's `1.ROLE.json`, the new targets version, a snapshot listing both, the timestamp last.
use super::name::{check_name, check_paths};
use super::publish::{adopt_key_files, publish, save_config, Publication};
use super::signers::{load_delegated, load_top_level, Wanted};
use super::{added_keys, period, refuse_staged, DelegationError};
use crate::key_source::KeyAccess;
use crate::keys;
use crate::lock::RepoLock;
use crate::policy::Period;
use crate::publish::Published;
use crate::repository::Repository;
use crate::rotate::change::{check_new_key, check_threshold};
use crate::rotate::key_files::RoleIds;
use crate::rotate::{next_key_file, read_public_key, AddedKey, GeneratedKey, KeyDirs, KeyType};
use crate::Result;
use chrono::{DateTime, Utc};
use ota_formats::crypto::Key;
use ota_formats::metadata::{DelegatedRole, Delegations, Targets};
use serde::Serialize;
use serde_json::Map;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A new delegation.
#[derive(Debug, Clone, Default)]
pub struct DelegateRequest {
    /// The delegated role's name ([`super::name`]).
    pub role: String,
    /// The target path patterns it is trusted for (`*` within one path segment).
    pub paths: Vec<String>,
    /// Generate a key of this type for it (saved as the next `ROLE-N.pem`).
    pub generate: Option<KeyType>,
    /// Public key files of keys to authorise ([`read_public_key`]).
    pub add: Vec<PathBuf>,
    /// Its threshold (default 1).
    pub threshold: Option<u64>,
    /// A client search that reaches the role stops there, whether it lists the target or not.
    pub terminating: bool,
    /// Its expiry period (default: the targets period), kept in `ota-repo.json`.
    pub expires: Option<Period>,
}

/// What a delegation did.
#[derive(Debug, Clone, Serialize)]
pub struct Delegated {
    /// The delegated role.
    pub role: String,
    /// Its path patterns.
    pub paths: Vec<String>,
    /// Whether it is terminating.
    pub terminating: bool,
    /// Its threshold.
    pub threshold: u64,
    /// Its key ids.
    pub keyids: Vec<String>,
    /// Its keys, with their files.
    pub added: Vec<AddedKey>,
    /// The version of its first metadata.
    pub version: u64,
    /// That metadata's expiry.
    pub expires: DateTime<Utc>,
    /// Its expiry period.
    pub period: Period,
    /// Its metadata file.
    pub file: PathBuf,
    /// The top-level metadata published with it.
    pub published: Published,
    /// Key file names given to added public keys: their holders put the private keys there.
    pub expected_files: Vec<PathBuf>,
    /// Things that went wrong after the commit point (not part of the JSON form).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Delegate: apply `req` to the repository in `repo_dir` under its writer lock, and publish.
/// Nothing is written when the request is refused. Keys are unlocked with the environment's
/// secrets (see [`delegate_with`]).
pub fn delegate(
    repo_dir: &Path,
    dirs: &KeyDirs,
    req: &DelegateRequest,
    now: DateTime<Utc>,
) -> Result<Delegated> {
    delegate_with(repo_dir, dirs, req, &KeyAccess::from_env(), now)
}

/// [`delegate`], with encrypted key files and token keys unlocked through `access`.
pub fn delegate_with(
    repo_dir: &Path,
    dirs: &KeyDirs,
    req: &DelegateRequest,
    access: &KeyAccess<'_>,
    now: DateTime<Utc>,
) -> Result<Delegated> {
    let role = req.role.trim();
    check_name(role)?;
    let paths = check_paths(role, &req.paths)?;
    let _lock = RepoLock::acquire(repo_dir)?;
    let repo = Repository::load(repo_dir)?;
    refuse_staged(&repo)?;
    let old = repo.targets.signed.delegations.clone();
    let mut delegations = old.clone().unwrap_or(Delegations {
        keys: Default::default(),
        roles: Some(Vec::new()),
        succinct_roles: None,
        extra: Map::new(),
    });
    if let Some(s) = &delegations.succinct_roles {
        return Err(DelegationError::SuccinctRoles {
            prefix: s.name_prefix.clone(),
        }
        .into());
    }
    if let Some(r) = delegations.roles.iter().flatten().find(|r| r.name == role) {
        return Err(DelegationError::AlreadyDelegated {
            role: role.to_string(),
            keyids: r.keyids.clone(),
            threshold: r.threshold,
        }
        .into());
    }

    // Its keys: new to root and to every delegated role.
    let mut add: Vec<(String, Key)> = Vec::new();
    for path in &req.add {
        add.push(read_public_key(path)?);
    }
    let generated = req.generate.map(GeneratedKey::generate).transpose()?;
    if let Some(g) = &generated {
        add.push((g.keyid.clone(), g.signer.public_key()));
    }
    if add.is_empty() {
        return Err(DelegationError::NoKeys {
            role: role.to_string(),
        }
        .into());
    }
    let mut keyids: Vec<String> = Vec::new();
    for (id, key) in &add {
        check_new_key(&repo.root.signed, role, id, key, &keyids)?;
        check_new_key(&delegations, role, id, key, &keyids)?;
        keyids.push(id.clone());
    }
    let threshold = req.threshold.unwrap_or(1);
    check_threshold(role, threshold, keyids.len(), &[])?;

    for (id, key) in &add {
        delegations.keys.insert(id.clone(), key.clone());
    }
    delegations
        .roles
        .get_or_insert_with(Vec::new)
        .push(DelegatedRole {
            name: role.to_string(),
            keyids: keyids.clone(),
            threshold,
            terminating: req.terminating,
            paths: Some(paths.clone()),
            path_hash_prefixes: None,
            extra: Map::new(),
        });
    let mut targets = repo.targets.signed.clone();
    targets.delegations = Some(delegations);

    // Every key at hand before anything is written.
    let role_dir = dirs.for_role(&repo.config, role)?.to_path_buf();
    let gen_file = generated
        .as_ref()
        .map(|_| next_key_file(role, repo.config.files(role), &role_dir));
    let signing = format!("{role} v1");
    let of = "the new delegation".to_string();
    let wanted = Wanted {
        role,
        keyids: &keyids,
        threshold,
        retiring: &[],
        signing: &signing,
        of: &of,
    };
    let held = load_delegated(&repo, dirs, &wanted, generated.as_ref(), access)?;
    let top = load_top_level(&repo, dirs, &["targets", "snapshot", "timestamp"], access)?;
    let signers = keys::role_signers(&top);
    let mut role_signers = keys::as_signers(&held);
    if let Some(g) = &generated {
        role_signers.push(g.signer.as_ref());
    }

    // Saved before publishing, so that a key the new delegation authorises is never lost.
    let saved = match (&generated, &gen_file) {
        (Some(g), Some(f)) => Some(g.save(&role_dir, f)?),
        _ => None,
    };
    let period = req.expires.unwrap_or_else(|| period(&repo.config, role));
    let content = Targets::new(1, now);
    let done = publish(
        Publication {
            repo: &repo,
            targets: Some(targets),
            role,
            content,
            period,
            saved_key: saved.as_deref(),
        },
        &role_signers,
        &signers,
        now,
    )?;

    // The policy: the role's key files and its expiry period.
    let mut warnings = done.published.warnings.clone();
    let ids = RoleIds {
        role,
        old: &[],
        new: &keyids,
    };
    let gen = generated.as_ref().zip(gen_file.as_deref());
    let (files, adopted) = adopt_key_files(&repo, &ids, dirs, gen, access, &mut warnings);
    // The expiry period is recorded even when the key files could not be.
    let mut config = adopted.unwrap_or_else(|| repo.config.clone());
    config.expiry.insert(role.to_string(), period);
    warnings.extend(save_config(
        &repo,
        &config,
        &format!(
            "list the key files of {role} ({:?}) and its expiry period ({period}) in it by hand",
            files.files.get(role)
        ),
    ));
    let gen_id = generated.as_ref().map(|g| g.keyid.as_str());
    let keys_of: BTreeMap<String, Key> = add.iter().cloned().collect();
    Ok(Delegated {
        role: role.to_string(),
        paths,
        terminating: req.terminating,
        threshold,
        added: added_keys(&keyids, &keys_of, &files.file_of, gen_id),
        keyids,
        version: done.version,
        expires: done.expires,
        period,
        file: done.file,
        published: done.published,
        expected_files: files.expected,
        warnings,
    })
}
