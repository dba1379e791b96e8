//! Key rotation: one change to one top-level role's keys or threshold makes exactly one new
//! root version, and re-signs what the change requires.
//!
//! The new root is signed by the threshold of the *current* root's root keys and by the
//! threshold of its *own* root keys (TUF specification 5.3.4), and is checked the way a
//! client checks it before anything is written. A role whose keys or threshold change is
//! re-signed under the new root, and what lists it after it: targets → snapshot → timestamp
//! (a snapshot key change re-signs snapshot and timestamp, a timestamp key change the
//! timestamp). Publication is the usual ordered one ([`crate::publish`]): the new
//! `N.root.json` and `root.json` first, `timestamp.json` last.
//!
//! Keys: a generated key ([`KeyType`], `--generate`) is saved 0600 in the role's key
//! directory as the next `ROLE-N.pem` and listed in `ota-repo.json`; a public key file
//! ([`read_public_key`], `--add-key`) is listed under the next `ROLE-N.pem` name, where its
//! holder puts the private key to sign with ota-sign. The files of removed keys stay on disk
//! (reported as retired) and leave the policy. With online roles
//! ([`crate::config::RepoConfig::online_roles`]), snapshot and timestamp keys live in
//! [`KeyDirs::online`]; copy that directory to the server afterwards.
//!
//! ## Staged roots (signing ceremonies)
//!
//! When the keys a rotation needs are not all on one machine, [`Request::stage`] writes the
//! new root **unsigned** to `REPO/ota-staged-root.json` ([`STAGED_ROOT_FILE`]) instead, and a
//! generated key is saved as above (the policy is left alone). The file holds exactly the
//! `signed` part of the new root metadata, as pretty JSON:
//!
//! ```json
//! {"_type": "root", "spec_version": "1.0.31", "version": 4, "expires": "2031-01-01T00:00:00Z",
//!  "consistent_snapshot": true, "keys": {...}, "roles": {...}}
//! ```
//!
//! Signers sign the canonical JSON of that object; the envelope `{"signed": ...,
//! "signatures": [...]}` with enough signatures (the current root's threshold of root keys
//! and the new root's) is handed to [`publish_root`], which verifies it, re-signs what it
//! requires with the keys in the key directories, publishes, updates the policy and removes
//! the staged file. Only one root can be staged at a time ([`read_staged_root`]).
//!
//! ```no_run
//! # fn main() -> Result<(), ota_repo::RepoError> {
//! use ota_repo::rotate::{self, KeyDirs, KeyType, Request};
//! let dirs = KeyDirs { keys: "keys".into(), online: None };
//! let req = Request {
//!     role: "targets".into(),
//!     generate: Some(KeyType::EcdsaP256),
//!     remove: vec!["3f1c9a0b".into()],
//!     ..Request::default()
//! };
//! let done = rotate::rotate(std::path::Path::new("repo"), &dirs, &req, chrono::Utc::now())?;
//! println!("root v{}", done.root_version);
//! # Ok(())
//! # }
//! ```
pub(crate) mod change;
mod error;
pub(crate) mod key_files;
pub(crate) mod keygen;
mod resume;
pub(crate) mod signing;
#[cfg(test)]
mod tests;

pub use change::{apply, Applied, Change, MIN_PREFIX};
pub use error::RotateError;
pub use keygen::{key_file_index, next_key_file, read_public_key, GeneratedKey, KeyType};
pub use resume::resume;

use crate::config::RepoConfig;
use crate::key_source::KeyAccess;
use crate::keys;
use crate::lock::RepoLock;
use crate::online::ONLINE_ROLES;
use crate::policy::{expires_at, Period};
use crate::publish::{self, Needs, Published};
use crate::repository::METADATA_DIR;
use crate::{RepoError, Repository, Result};
use chrono::{DateTime, Utc};
use ota_formats::crypto::Signer;
use ota_formats::metadata::{RawMetadata, Root, Signed};
use ota_fs::atomic;
use ota_fs::mode::PUBLIC_FILE;
use ota_fs::user_file::{self, UserFileError};
use serde::Serialize;
use signing::{load_held, require};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

impl From<RotateError> for RepoError {
    fn from(e: RotateError) -> Self {
        RepoError::Rotate(Box::new(e))
    }
}

/// The staged, unsigned new root of a rotation waiting for a signing ceremony.
pub const STAGED_ROOT_FILE: &str = "ota-staged-root.json";

/// Where the private keys are.
#[derive(Debug, Clone)]
pub struct KeyDirs {
    /// The release machine's key directory (root and targets; every role without online
    /// roles).
    pub keys: PathBuf,
    /// The online key directory (snapshot and timestamp of an online-roles repository).
    pub online: Option<PathBuf>,
}

impl KeyDirs {
    /// The directory of `role`'s keys in a repository with policy `config`.
    pub fn for_role(&self, config: &RepoConfig, role: &str) -> Result<&Path> {
        if config.online_roles && ONLINE_ROLES.contains(&role) {
            self.online
                .as_deref()
                .ok_or_else(|| RotateError::NoOnlineKeyDir.into())
        } else {
            Ok(&self.keys)
        }
    }
}

/// One rotation.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The top-level role whose keys change.
    pub role: String,
    /// Generate a key of this type and add it.
    pub generate: Option<KeyType>,
    /// Public key files of keys to add ([`read_public_key`]).
    pub add: Vec<PathBuf>,
    /// Key ids (or unique prefixes of at least [`MIN_PREFIX`] digits) to remove.
    pub remove: Vec<String>,
    /// The role's new threshold.
    pub threshold: Option<u64>,
    /// Expiry period of the new root (default: the policy's root period).
    pub expires: Option<Period>,
    /// Write the new root unsigned to [`STAGED_ROOT_FILE`] instead of signing it.
    pub stage: bool,
}

/// A key a rotation added.
#[derive(Debug, Clone, Serialize)]
pub struct AddedKey {
    /// Its key id.
    pub keyid: String,
    /// `ed25519`, `ecdsa`, ...
    pub keytype: String,
    /// Its signature scheme.
    pub scheme: String,
    /// Its key file name in the role's key directory (generated, found, or where its holder
    /// is expected to put it).
    pub file: Option<String>,
    /// Whether this run generated it.
    pub generated: bool,
}

/// The keys of one role before and after.
#[derive(Debug, Clone, Serialize)]
pub struct RoleChange {
    /// The role.
    pub role: String,
    /// Keys added.
    pub added: Vec<AddedKey>,
    /// Key ids removed.
    pub removed: Vec<String>,
    /// The role's key ids after.
    pub keyids: Vec<String>,
    /// The role's threshold after.
    pub threshold: u64,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotated {
    /// The new root's version.
    pub root_version: u64,
    /// The new root's expiry.
    pub root_expires: DateTime<Utc>,
    /// The roles whose keys or threshold changed.
    pub changes: Vec<RoleChange>,
    /// With [`Request::stage`]: the staged root file (nothing was signed or published).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staged: Option<PathBuf>,
    /// The publication (root and the roles re-signed), unless staged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<Published>,
    /// Files of removed keys, left on disk: destroy them.
    pub retired_files: Vec<PathBuf>,
    /// Key file names given to added public keys: their holders put the private keys there.
    pub expected_files: Vec<PathBuf>,
    /// Things that went wrong after the commit point (not part of the JSON form).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Rotate: apply `req` to the repository in `repo_dir` under its writer lock, then sign and
/// publish the new root and what it requires, or stage it ([`Request::stage`]). Nothing is
/// written when the request is refused. Keys are unlocked with the environment's secrets
/// (see [`rotate_with`]).
pub fn rotate(
    repo_dir: &Path,
    dirs: &KeyDirs,
    req: &Request,
    now: DateTime<Utc>,
) -> Result<Rotated> {
    rotate_with(repo_dir, dirs, req, &KeyAccess::from_env(), now)
}

/// [`rotate`], with encrypted key files and token keys unlocked through `access`.
pub fn rotate_with(
    repo_dir: &Path,
    dirs: &KeyDirs,
    req: &Request,
    access: &KeyAccess<'_>,
    now: DateTime<Utc>,
) -> Result<Rotated> {
    // A delegated role's keys are listed by the targets metadata, not by root.
    if !Root::TOP_LEVEL.contains(&req.role.trim()) {
        return crate::delegation::rotate_with(repo_dir, dirs, req, access, now).map(Rotated::from);
    }
    let _lock = RepoLock::acquire(repo_dir)?;
    let repo = Repository::load(repo_dir)?;
    rotate_locked(&repo, dirs, req, None, access, now)
}

/// A key a rotation adds and holds, so that it signs what it authorises at once: generated
/// by the run, or opened by the caller (a token key, [`rotate_locked`]).
#[derive(Clone, Copy)]
struct NewKey<'a> {
    role: &'a str,
    keyid: &'a str,
    signer: &'a dyn Signer,
    /// Its `ota-repo.json` entry: a file name in the role's key directory or a `pkcs11:` URI.
    entry: &'a str,
    /// Generated by this run (else opened by the caller).
    generated: bool,
}

/// [`rotate_with`] for a caller that holds the writer lock and has loaded `repo` (a
/// top-level role). With `held`, a key the caller has opened (its [`LoadedKey::file`] is its
/// policy entry) is added to the role, unless the role lists it already, and signs the new
/// root (a root key) or the role's re-signed metadata at once; with `held`, [`Request::stage`]
/// is ignored (an opened key signs here and now).
pub fn rotate_locked(
    repo: &Repository,
    dirs: &KeyDirs,
    req: &Request,
    held: Option<&keys::LoadedKey>,
    access: &KeyAccess<'_>,
    now: DateTime<Utc>,
) -> Result<Rotated> {
    let repo_dir = repo.dir.as_path();
    check_role(repo, &req.role)?;
    if let Some(staged) = read_staged_root(repo_dir)? {
        return Err(RotateError::StagedRootPending {
            path: repo_dir.join(STAGED_ROOT_FILE),
            version: staged.version,
        }
        .into());
    }
    let old = &repo.root.signed;
    let role = req.role.as_str();
    let role_dir = dirs.for_role(&repo.config, role)?.to_path_buf();
    let mut add = Vec::new();
    for path in &req.add {
        add.push(read_public_key(path)?);
    }
    let generated = req.generate.map(GeneratedKey::generate).transpose()?;
    if let Some(g) = &generated {
        add.push((g.keyid.clone(), g.signer.public_key()));
    }
    let listed = old.role(role).map_err(corrupt_root)?.keyids.clone();
    if let Some(k) = held.filter(|k| !listed.contains(&k.keyid)) {
        add.push((k.keyid.clone(), k.signer.public_key()));
    }
    let change = Change {
        role: role.to_string(),
        add,
        remove: req.remove.clone(),
        threshold: req.threshold,
    };
    let mut new_root = apply(old, &change)?.root;
    new_root.version = old.version + 1;
    let period = req.expires.unwrap_or_else(|| repo.config.period("root"));
    new_root.expires = expires_at(now, period);
    let gen_file = generated
        .as_ref()
        .map(|_| next_key_file(role, repo.config.files(role), &role_dir));
    let gen = generated.as_ref().zip(gen_file.as_deref());
    let new_key = match (gen, held) {
        (Some((g, f)), _) => Some(NewKey {
            role,
            keyid: &g.keyid,
            signer: g.signer.as_ref(),
            entry: f,
            generated: true,
        }),
        (None, Some(k)) => Some(NewKey {
            role,
            keyid: &k.keyid,
            signer: k.signer.as_ref(),
            entry: &k.file,
            generated: false,
        }),
        (None, None) => None,
    };

    if req.stage && held.is_none() {
        return stage(
            repo_dir,
            repo,
            new_root,
            gen.map(|(g, f)| (role, g, f)),
            &role_dir,
        );
    }

    // The new root: signed by root keys of the current root and of the new one.
    let root_dir = dirs.for_role(&repo.config, "root")?;
    let old_rk = old.role("root").map_err(corrupt_root)?;
    let new_rk = new_root.role("root").map_err(corrupt_root)?;
    let either: Vec<String> = old_rk
        .keyids
        .iter()
        .chain(&new_rk.keyids)
        .cloned()
        .collect();
    let held = load_held(
        root_dir,
        "root",
        repo.config.files("root"),
        &[],
        &either,
        &[],
        access,
    )?;
    let mut signers: Vec<&dyn Signer> = keys::as_signers(&held.keys);
    let mut ids = held.ids();
    if let Some(k) = new_key.filter(|k| k.role == "root") {
        signers.push(k.signer);
        ids.push(k.keyid.to_string());
    }
    let signing = format!("root v{}", new_root.version);
    let current = format!("the current root v{}", old.version);
    require(&signing, "root", &current, old_rk, &ids, &held)?;
    let itself = format!("the new root v{}", new_root.version);
    require(&signing, "root", &itself, new_rk, &ids, &held)?;
    let bytes = Signed::sign(new_root, &signers)
        .and_then(|s| s.to_bytes())
        .map_err(|source| RepoError::Sign {
            role: "root".into(),
            source,
        })?;

    // Saved before publishing, so that a key the new root authorises is never lost.
    let saved = match gen {
        Some((g, f)) => Some(g.save(&role_dir, f)?),
        None => None,
    };
    let result = publish_signed(repo, &bytes, dirs, new_key, access, now);
    if let (Err(_), Some(path)) = (&result, &saved) {
        let root_file = repo_dir
            .join(METADATA_DIR)
            .join(format!("{}.root.json", old.version + 1));
        if !root_file.exists() {
            // Nothing was published: the key authorises nothing.
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

/// Publish `root_bytes`, a new root signed elsewhere (a staged root after its signing
/// ceremony), for the repository in `repo_dir` under its writer lock: verified as the next
/// root, then published with what it requires re-signed by the keys in `dirs`, the policy's
/// key files updated, and [`STAGED_ROOT_FILE`] removed.
pub fn publish_root(
    repo_dir: &Path,
    dirs: &KeyDirs,
    root_bytes: &[u8],
    now: DateTime<Utc>,
) -> Result<Rotated> {
    let _lock = RepoLock::acquire(repo_dir)?;
    let repo = Repository::load(repo_dir)?;
    publish_signed_root(&repo, dirs, root_bytes, &KeyAccess::from_env(), now)
}

/// [`publish_root`] for a caller that holds the writer lock and has loaded `repo`, with keys
/// unlocked through `access`. Besides the root, this re-signs the roles whose keys the new
/// root changes (with keys listed in the policy, or `ROLE-N.pem` files a staged rotation
/// generated) and lists new keys' files in `ota-repo.json`.
pub fn publish_signed_root(
    repo: &Repository,
    dirs: &KeyDirs,
    root_bytes: &[u8],
    access: &KeyAccess<'_>,
    now: DateTime<Utc>,
) -> Result<Rotated> {
    publish_signed(repo, root_bytes, dirs, None, access, now)
}

/// The root staged in `repo_dir`, if any.
pub fn read_staged_root(repo_dir: &Path) -> Result<Option<Root>> {
    let path = repo_dir.join(STAGED_ROOT_FILE);
    let bytes = match user_file::read(&path, crate::repository::MAX_METADATA_LEN) {
        Ok(b) => b,
        Err(UserFileError::NotFound { .. }) => return Ok(None),
        Err(source) => return Err(RepoError::Unreadable { path, source }),
    };
    let corrupt = |reason: String| RotateError::StagedRootCorrupt {
        path: path.clone(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let raw = RawMetadata {
        signed: value,
        signatures: Vec::new(),
    };
    let root: Root = raw.parse().map_err(|e| corrupt(e.to_string()))?;
    Ok(Some(root))
}

/// Refuse anything but a top-level role, naming delegated roles as such.
fn check_role(repo: &Repository, role: &str) -> Result<()> {
    if Root::TOP_LEVEL.contains(&role) {
        return Ok(());
    }
    let delegated = repo
        .targets
        .signed
        .delegations
        .as_ref()
        .is_some_and(|d| d.role(role).is_some());
    Err(if delegated {
        RotateError::DelegatedRole {
            role: role.to_string(),
        }
    } else {
        RotateError::UnknownRole {
            role: role.to_string(),
        }
    }
    .into())
}

fn corrupt_root(e: ota_formats::Error) -> RepoError {
    RepoError::Corrupt {
        path: PathBuf::from(METADATA_DIR).join("root.json"),
        reason: e.to_string(),
    }
}

/// Write the new root unsigned to [`STAGED_ROOT_FILE`] (and save a generated key).
fn stage(
    repo_dir: &Path,
    repo: &Repository,
    new_root: Root,
    generated: Option<(&str, &GeneratedKey, &str)>,
    role_dir: &Path,
) -> Result<Rotated> {
    let path = repo_dir.join(STAGED_ROOT_FILE);
    let mut bytes = serde_json::to_vec_pretty(&new_root).map_err(|source| RepoError::Encode {
        what: "staged root",
        source,
    })?;
    bytes.push(b'\n');
    let saved = match generated {
        Some((_, g, f)) => Some(g.save(role_dir, f)?),
        None => None,
    };
    if let Err(e) = atomic::write_new(&path, &bytes, PUBLIC_FILE) {
        if let Some(p) = saved {
            let _ = std::fs::remove_file(p);
        }
        return Err(RepoError::write(&path, e));
    }
    let file_of: BTreeMap<String, String> = generated
        .map(|(_, g, f)| (g.keyid.clone(), f.to_string()))
        .into_iter()
        .collect();
    let gen_id = generated.map(|(_, g, _)| g.keyid.as_str());
    Ok(Rotated {
        root_version: new_root.version,
        root_expires: new_root.expires,
        changes: role_changes(&repo.root.signed, &new_root, &file_of, gen_id),
        staged: Some(path),
        published: None,
        retired_files: Vec::new(),
        expected_files: Vec::new(),
        warnings: Vec::new(),
    })
}

/// Verify `bytes` as the root after `old`: the next version, signed by the threshold of
/// `old`'s root keys and by the threshold of its own.
fn verify_next_root(old: &Root, bytes: &[u8]) -> Result<Signed<Root>> {
    let invalid = |by: String| move |source| RotateError::RootNotSigned { by, source };
    let raw = RawMetadata::from_bytes(bytes).map_err(invalid("root metadata rules".into()))?;
    let root: Root = raw.parse().map_err(invalid("root metadata rules".into()))?;
    if root.version != old.version + 1 {
        return Err(RotateError::RootVersion {
            version: root.version,
            expected: old.version + 1,
        }
        .into());
    }
    let rk = old.role("root").map_err(corrupt_root)?;
    raw.verify("root", old, &rk.keyids, rk.threshold)
        .map_err(invalid(format!("the current root v{}", old.version)))?;
    let rk = root.role("root").map_err(corrupt_root)?;
    raw.verify("root", &root, &rk.keyids, rk.threshold)
        .map_err(invalid(format!("itself (root v{})", root.version)))?;
    Ok(Signed {
        signed: root,
        signatures: raw.signatures,
    })
}

/// Whether the keys or threshold of `role` differ between two roots.
fn role_changed(old: &Root, new: &Root, role: &str) -> bool {
    let of = |r: &Root| {
        r.roles.get(role).map(|k| {
            let mut ids = k.keyids.clone();
            ids.sort();
            (ids, k.threshold)
        })
    };
    of(old) != of(new)
}

/// What a new root requires re-signed: a role whose keys changed, and what lists it.
fn cascade(old: &Root, new: &Root) -> Needs {
    let targets = role_changed(old, new, "targets");
    let snapshot = targets || role_changed(old, new, "snapshot");
    let timestamp = snapshot || role_changed(old, new, "timestamp");
    Needs {
        root: false,
        targets,
        snapshot,
        timestamp,
    }
}

/// Verify and publish the signed new root `bytes` with what it requires re-signed, then update
/// the policy. `new_key`: a key this run holds and adds, not listed in the policy yet.
fn publish_signed(
    repo: &Repository,
    bytes: &[u8],
    dirs: &KeyDirs,
    new_key: Option<NewKey<'_>>,
    access: &KeyAccess<'_>,
    now: DateTime<Utc>,
) -> Result<Rotated> {
    let old = &repo.root.signed;
    let new = verify_next_root(old, bytes)?;
    let needs = cascade(old, &new.signed);
    let of_root = format!("the new root v{}", new.signed.version);
    let mut loaded = keys::RoleKeys::new();
    for role in needs.roles() {
        let dir = dirs.for_role(&repo.config, role)?;
        let listed = repo.config.files(role);
        let unlisted: Vec<String> = keygen::scheme_files(dir, role)
            .into_iter()
            .filter(|f| !listed.contains(f))
            .collect();
        let authorised = &new.signed.role(role).map_err(corrupt_root)?.keyids;
        let retiring = &old.role(role).map_err(corrupt_root)?.keyids;
        let held = load_held(dir, role, listed, &unlisted, authorised, retiring, access)?;
        let mut ids = held.ids();
        if let Some(k) = new_key.filter(|k| k.role == role) {
            ids.push(k.keyid.to_string());
        }
        let rk = new.signed.role(role).map_err(corrupt_root)?;
        require(role, role, &of_root, rk, &ids, &held)?;
        loaded.insert(role.to_string(), held.keys);
    }
    let mut signers = keys::role_signers(&loaded);
    if let Some(k) = new_key {
        if let Some(list) = signers.get_mut(k.role) {
            list.push(k.signer);
        }
    }
    let mut next = repo.clone();
    next.root = new.clone();
    // Staged targets content stays staged: the next publish signs it.
    next.staged = None;
    let targets = next.targets.signed.clone();
    let published = publish::publish_with_root(&next, Some(bytes), targets, needs, &signers, now)?;

    let mut warnings = published.warnings.clone();
    let gen = new_key.map(|k| (k.role, k.entry, k.keyid));
    let files = key_files::adopt(&repo.config, old, &new.signed, dirs, gen, access)?;
    let mut config = repo.config.clone();
    config.key_files = files.files.clone();
    let cfg_path = repo.dir.join(crate::config::CONFIG_FILE);
    if let Err(e) = config.to_bytes().and_then(|b| {
        atomic::replace(&cfg_path, &b, PUBLIC_FILE).map_err(|e| RepoError::write(&cfg_path, e))
    }) {
        warnings.push(format!(
            "root v{} is published, but {e}: list these key files in it by hand: {:?}",
            new.signed.version, files.files
        ));
    }
    let staged = repo.dir.join(STAGED_ROOT_FILE);
    if matches!(read_staged_root(&repo.dir), Ok(Some(r)) if r.version <= new.signed.version) {
        if let Err(e) = std::fs::remove_file(&staged) {
            warnings.push(format!(
                "published, but cannot remove {}: {e}",
                staged.display()
            ));
        }
    }
    let gen_id = new_key.filter(|k| k.generated).map(|k| k.keyid);
    Ok(Rotated {
        root_version: new.signed.version,
        root_expires: new.signed.expires,
        changes: role_changes(old, &new.signed, &files.file_of, gen_id),
        staged: None,
        published: Some(published),
        retired_files: files.retired,
        expected_files: files.expected,
        warnings,
    })
}

/// The roles whose keys or threshold differ between two roots.
fn role_changes(
    old: &Root,
    new: &Root,
    file_of: &BTreeMap<String, String>,
    generated: Option<&str>,
) -> Vec<RoleChange> {
    let mut out = Vec::new();
    for role in Root::TOP_LEVEL {
        if !role_changed(old, new, role) {
            continue;
        }
        let ids = |r: &Root| r.role(role).map(|k| k.keyids.clone()).unwrap_or_default();
        let (old_ids, new_ids) = (ids(old), ids(new));
        let added = new_ids
            .iter()
            .filter(|k| !old_ids.contains(k))
            .map(|id| {
                let key = new.keys.get(id);
                AddedKey {
                    keyid: id.clone(),
                    keytype: key.map(|k| k.keytype.clone()).unwrap_or_default(),
                    scheme: key.map(|k| k.scheme.clone()).unwrap_or_default(),
                    file: file_of.get(id).cloned(),
                    generated: generated == Some(id.as_str()),
                }
            })
            .collect();
        out.push(RoleChange {
            role: role.to_string(),
            added,
            removed: old_ids
                .iter()
                .filter(|k| !new_ids.contains(k))
                .cloned()
                .collect(),
            keyids: new_ids,
            threshold: new.role(role).map(|k| k.threshold).unwrap_or(0),
        });
    }
    out
}
