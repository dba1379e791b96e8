//! Key rotation of a delegated role: one change to its keys or threshold (the same
//! [`crate::rotate::Request`] as for a top-level role) makes a new top-level targets version
//! whose delegation lists the new keys and threshold (signed by the targets keys; root does
//! not change), and a new version of the role, its targets unchanged, signed by the threshold
//! of its *new* keys; then snapshot, and the timestamp last. Metadata of the role signed by a
//! removed key no longer verifies on any device that has seen the new targets version.
use super::publish::{adopt_key_files, publish, save_config, Publication};
use super::published::{delegation, is_delegated, load_role};
use super::signers::{load_delegated, load_top_level, Wanted};
use super::{added_keys, period, refuse_staged, DelegationError};
use crate::key_source::KeyAccess;
use crate::keys;
use crate::lock::RepoLock;
use crate::publish::Published;
use crate::repository::Repository;
use crate::rotate::change::{apply_keys, check_new_key};
use crate::rotate::key_files::RoleIds;
use crate::rotate::{
    next_key_file, read_public_key, Change, GeneratedKey, KeyDirs, Request, RoleChange,
    RotateError, Rotated,
};
use crate::Result;
use chrono::{DateTime, Utc};
use ota_formats::metadata::Root;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What a rotation of a delegated role did.
#[derive(Debug, Clone, Serialize)]
pub struct DelegationRotated {
    /// The delegated role.
    pub role: String,
    /// Its keys and threshold before and after.
    pub change: RoleChange,
    /// Its new version.
    pub version: u64,
    /// That version's expiry.
    pub expires: DateTime<Utc>,
    /// Its new metadata file.
    pub file: PathBuf,
    /// The root version, unchanged.
    pub root_version: u64,
    /// The root's expiry, unchanged.
    pub root_expires: DateTime<Utc>,
    /// The top-level metadata published with it (targets, snapshot, timestamp).
    pub published: Published,
    /// Files of removed keys, left on disk: destroy them.
    pub retired_files: Vec<PathBuf>,
    /// Key file names given to added public keys: their holders put the private keys there.
    pub expected_files: Vec<PathBuf>,
    /// Things that went wrong after the commit point (not part of the JSON form).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The rotation in the terms of a top-level one ([`crate::rotate::rotate`]): the root
/// unchanged, the role listed among the signed ones after targets.
impl From<DelegationRotated> for Rotated {
    fn from(d: DelegationRotated) -> Self {
        let mut published = d.published;
        let at = published
            .signed
            .iter()
            .position(|r| r == "targets")
            .map_or(0, |i| i + 1);
        published.signed.insert(at, d.role.clone());
        Rotated {
            root_version: d.root_version,
            root_expires: d.root_expires,
            changes: vec![d.change],
            staged: None,
            published: Some(published),
            retired_files: d.retired_files,
            expected_files: d.expected_files,
            warnings: d.warnings,
        }
    }
}

/// Rotate the keys of delegated role `req.role` in the repository in `repo_dir` under its
/// writer lock (`req.expires`: the expiry period of the role's new version; `req.stage` is
/// refused, there is no root to stage). Nothing is written when the request is refused; keys
/// are unlocked with the environment's secrets (see [`rotate_with`]).
pub fn rotate(
    repo_dir: &Path,
    dirs: &KeyDirs,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<DelegationRotated> {
    rotate_with(repo_dir, dirs, req, &KeyAccess::from_env(), now)
}

/// [`rotate`], with encrypted key files and token keys unlocked through `access`.
pub fn rotate_with(
    repo_dir: &Path,
    dirs: &KeyDirs,
    req: &Request,
    access: &KeyAccess<'_>,
    now: DateTime<Utc>,
) -> Result<DelegationRotated> {
    let role = req.role.trim();
    if Root::TOP_LEVEL.contains(&role) {
        return Err(DelegationError::TopLevelName {
            role: role.to_string(),
        }
        .into());
    }
    let _lock = RepoLock::acquire(repo_dir)?;
    let repo = Repository::load(repo_dir)?;
    let bins = repo
        .targets
        .signed
        .delegations
        .as_ref()
        .is_some_and(|d| d.succinct_roles.is_some());
    if !bins && !is_delegated(&repo, role) {
        return Err(RotateError::UnknownRole {
            role: role.to_string(),
        }
        .into());
    }
    let old = delegation(&repo.targets.signed, role)?.0.clone();
    if req.stage {
        return Err(RotateError::DelegatedRole {
            role: role.to_string(),
        }
        .into());
    }
    refuse_staged(&repo)?;
    // Its current content, verified: the new version lists the same targets.
    let current = load_role(&repo, role)?;

    let mut add = Vec::new();
    for path in &req.add {
        add.push(read_public_key(path)?);
    }
    let generated = req.generate.map(GeneratedKey::generate).transpose()?;
    if let Some(g) = &generated {
        add.push((g.keyid.clone(), g.signer.public_key()));
    }
    let mut checked: Vec<String> = Vec::new();
    for (id, key) in &add {
        check_new_key(&repo.root.signed, role, id, key, &checked)?;
        checked.push(id.clone());
    }
    let change = Change {
        role: role.to_string(),
        add: add.clone(),
        remove: req.remove.clone(),
        threshold: req.threshold,
    };
    let applied = apply_keys(&old, &change)?;
    let new = applied.table;
    let ids_of = |d: &ota_formats::metadata::Delegations| {
        d.roles
            .iter()
            .flatten()
            .find(|r| r.name == role)
            .map(|r| (r.keyids.clone(), r.threshold))
            .unwrap_or_default()
    };
    let (old_ids, _) = ids_of(&old);
    let (new_ids, threshold) = ids_of(&new);
    let mut targets = repo.targets.signed.clone();
    targets.delegations = Some(new.clone());

    // Every key at hand before anything is written.
    let role_dir = dirs.for_role(&repo.config, role)?.to_path_buf();
    let gen_file = generated
        .as_ref()
        .map(|_| next_key_file(role, repo.config.files(role), &role_dir));
    let signing = format!("{role} (its next version)");
    let of = "the new delegation".to_string();
    let wanted = Wanted {
        role,
        keyids: &new_ids,
        threshold,
        retiring: &old_ids,
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

    let saved = match (&generated, &gen_file) {
        (Some(g), Some(f)) => Some(g.save(&role_dir, f)?),
        _ => None,
    };
    let period = req.expires.unwrap_or_else(|| period(&repo.config, role));
    let done = publish(
        Publication {
            repo: &repo,
            targets: Some(targets),
            role,
            content: current.signed,
            period,
            saved_key: saved.as_deref(),
        },
        &role_signers,
        &signers,
        now,
    )?;

    let mut warnings = done.published.warnings.clone();
    let ids = RoleIds {
        role,
        old: &old_ids,
        new: &new_ids,
    };
    let gen = generated.as_ref().zip(gen_file.as_deref());
    let (files, adopted) = adopt_key_files(&repo, &ids, dirs, gen, access, &mut warnings);
    if let Some(config) = adopted {
        warnings.extend(save_config(
            &repo,
            &config,
            &format!(
                "list these key files of {role} in it by hand: {:?}",
                files.files.get(role)
            ),
        ));
    }
    let gen_id = generated.as_ref().map(|g| g.keyid.as_str());
    let change = RoleChange {
        role: role.to_string(),
        added: added_keys(&applied.added, &new.keys, &files.file_of, gen_id),
        removed: applied.removed,
        keyids: new_ids,
        threshold,
    };
    Ok(DelegationRotated {
        role: role.to_string(),
        change,
        version: done.version,
        expires: done.expires,
        file: done.file,
        root_version: repo.root.signed.version,
        root_expires: repo.root.signed.expires,
        published: done.published,
        retired_files: files.retired,
        expected_files: files.expected,
        warnings,
    })
}
