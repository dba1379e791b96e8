//! Publication by upload: the release machine sends the targets metadata it signed offline
//! (and the target files the repository lacks) to the server that holds the online keys; the
//! server checks all of it against the live repository and publishes it with a new snapshot
//! and timestamp. Nothing but this module decides whether an upload is published.
//!
//! An upload is a *staging directory* (`ota-server` keeps them in `REPO/.uploads/<id>/`,
//! [`UPLOADS_DIR`], which it never serves), laid out like a repository:
//!
//! ```text
//! STAGING/metadata/N.targets.json     exactly one: the new top-level targets metadata
//! STAGING/metadata/N.<role>.json      delegated targets metadata (role name percent-encoded)
//! STAGING/targets/<sha256>.<name>     target files, named as in the repository's targets/
//! ```
//!
//! - [`check`] verifies the metadata against the live repository: the targets metadata with
//!   the threshold of targets keys of the trusted root, a version above the published one, not
//!   expired; each delegated role with the keys and threshold its delegating role (uploaded)
//!   gives it, and a version above the published one. It lists the target files that new or
//!   changed targets need ([`Checked::payloads`]) and whether the repository has them.
//! - [`commit`] also verifies every such file (streamed: its length and every signed hash),
//!   the uploaded one or the one already in `targets/`, then switches under the writer lock:
//!   target files into `targets/`, the metadata files, then a snapshot and timestamp signed by
//!   the [`OnlineSigner`], `timestamp.json` last. Devices see the old repository or the new
//!   one, never a mix; a refusal changes nothing in the repository. The staging directory is
//!   removed whatever the outcome.
//!
//! ```no_run
//! # fn main() -> Result<(), ota_repo::RepoError> {
//! use ota_repo::{online::OnlineSigner, upload};
//! let repo = std::path::Path::new("repo");
//! let signer = OnlineSigner::load(std::path::Path::new("keys-online"), repo)?;
//! let staging = repo.join(upload::UPLOADS_DIR).join("0123abcd");
//! let done = upload::commit(repo, &staging, &signer, chrono::Utc::now())?;
//! println!("targets v{} published", done.published.targets_version);
//! # Ok(())
//! # }
//! ```
use crate::lock::RepoLock;
use crate::online::OnlineSigner;
use crate::publish::Published;
use crate::repository::{meta_entry, Repository, METADATA_DIR, TARGETS_DIR};
use crate::{RepoError, Result};
use chrono::{DateTime, Utc};
use ota_formats::crypto::KeySource;
use ota_formats::hash::{Hashes, StreamVerifier};
use ota_formats::metadata::{Delegations, RawMetadata, Signed, Targets};
use ota_fs::user_file::{self, UserFileError};
use ota_fs::{atomic, mode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Directory of the staging directories inside the repository directory (never served: only
/// `metadata/` and `targets/` are).
pub const UPLOADS_DIR: &str = ".uploads";

/// Largest uploaded metadata file: half what devices accept by default (32 MiB).
pub const MAX_UPLOADED_METADATA_LEN: u64 = 16 << 20;

/// How long [`commit`] waits for the writer lock (the online signer holds it for
/// milliseconds; `ota-sign` on the same directory for as long as it runs).
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// Role names in file names: everything but `[A-Za-z0-9_.~-]` percent-encoded (as python-tuf
/// and `ota-client` do).
const ROLE_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');

/// A metadata file name an upload may hold: `N.targets.json` or `N.<role>.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataName {
    /// The version in the name.
    pub version: u64,
    /// The role (`targets` for the top-level one), decoded.
    pub role: String,
}

/// The file name of version `version` of `role`.
pub fn metadata_file_name(role: &str, version: u64) -> String {
    format!("{version}.{}.json", utf8_percent_encode(role, ROLE_SEGMENT))
}

/// Parse an uploaded metadata file name; `None` for anything but `N.targets.json` or
/// `N.<role>.json` with `N` a version (no leading zero) and the role name in its one
/// canonical encoding. Root, snapshot and timestamp are never uploaded.
pub fn parse_metadata_name(name: &str) -> Option<MetadataName> {
    if !crate::config::is_plain_file_name(name) {
        return None;
    }
    let (version, encoded) = name.strip_suffix(".json")?.split_once('.')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let version: u64 = version.parse().ok().filter(|v| *v > 0)?;
    let role = percent_decode_str(encoded).decode_utf8().ok()?.into_owned();
    if role.is_empty() || ["root", "snapshot", "timestamp"].contains(&role.as_str()) {
        return None;
    }
    (metadata_file_name(&role, version) == name).then_some(MetadataName { version, role })
}

/// Whether `path` is a safe relative path: `/`-separated segments, none empty, `.` or `..`,
/// none holding a backslash or NUL. Target paths and the names of uploaded target files must
/// be, so that they stay inside `targets/`.
pub fn is_safe_relative_path(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains(['\\', '\0']))
}

/// Where the file of a target lives under `targets/`: `<sha256>.<name>`, or
/// `<dir>/<sha256>.<name>` for a target path with directories (the same place as
/// [`crate::repository::target_file_path`]).
pub fn target_file_rel(target_path: &str, sha256: &str) -> String {
    match target_path.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/{sha256}.{base}"),
        None => format!("{sha256}.{target_path}"),
    }
}

/// A target file a publication needs: that of a target new in the uploaded metadata, or
/// whose length or hashes changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    /// The target path.
    pub target: String,
    /// The file under `targets/` (and under the staging directory's `targets/`).
    pub file: String,
    /// Its signed length.
    pub length: u64,
    /// Its signed hashes.
    #[serde(skip)]
    pub hashes: Hashes,
    /// Whether the repository already has a file at that place (verified by [`commit`]).
    pub present: bool,
}

/// Uploaded delegated targets metadata that verified.
#[derive(Debug, Clone)]
pub struct DelegatedUpload {
    /// The role.
    pub role: String,
    /// Its new version.
    pub version: u64,
    /// The file name (`N.<role>.json`).
    pub file: String,
    bytes: Vec<u8>,
}

/// The metadata of an upload, verified against the live repository.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The new top-level targets metadata.
    pub targets: Signed<Targets>,
    /// Its file name (`N.targets.json`).
    pub targets_file: String,
    targets_bytes: Vec<u8>,
    /// New delegated metadata, in the order the delegations were followed.
    pub delegated: Vec<DelegatedUpload>,
    /// Uploaded delegated metadata files identical to the published ones (left as they are).
    pub unchanged: Vec<String>,
    /// The target files of new or changed targets.
    pub payloads: Vec<Payload>,
}

impl Checked {
    /// The payloads the repository does not have: those the upload must bring.
    pub fn missing(&self) -> impl Iterator<Item = &Payload> {
        self.payloads.iter().filter(|p| !p.present)
    }
}

/// What [`commit`] published.
#[derive(Debug, Clone, Serialize)]
pub struct Committed {
    /// Versions after the publication.
    #[serde(flatten)]
    pub published: Published,
    /// New delegated metadata: role → version.
    pub delegated: BTreeMap<String, u64>,
    /// Target files moved into `targets/`.
    pub payloads: usize,
    /// Their total size.
    pub payload_bytes: u64,
}

/// One staged metadata file.
struct StagedMetadata {
    name: MetadataName,
    file: String,
    bytes: Vec<u8>,
}

fn read_staged_metadata(staging: &Path) -> Result<Vec<StagedMetadata>> {
    let dir = staging.join(METADATA_DIR);
    let list_err = |source| RepoError::ListDir {
        path: dir.clone(),
        source,
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(list_err(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(list_err)?;
        let file = entry.file_name().to_string_lossy().into_owned();
        let name = parse_metadata_name(&file)
            .ok_or_else(|| RepoError::UploadBadName { name: file.clone() })?;
        let bytes = match user_file::read(&entry.path(), MAX_UPLOADED_METADATA_LEN) {
            Ok(b) => b,
            Err(UserFileError::TooLarge { limit, .. }) => {
                return Err(RepoError::UploadCorrupt {
                    file,
                    reason: format!("larger than the limit of {limit} bytes"),
                })
            }
            Err(e) => {
                return Err(RepoError::UploadRead {
                    file: format!("{METADATA_DIR}/{file}"),
                    source: std::io::Error::other(e),
                })
            }
        };
        out.push(StagedMetadata { name, file, bytes });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    for pair in out.windows(2) {
        if pair[0].name.role == pair[1].name.role {
            return Err(RepoError::UploadCorrupt {
                file: pair[1].file.clone(),
                reason: format!(
                    "the upload holds two versions of role {} ({} too)",
                    pair[1].name.role, pair[0].file
                ),
            });
        }
    }
    Ok(out)
}

/// Parse staged targets metadata and check its version against its file name.
fn parse_targets(staged: &StagedMetadata) -> Result<(RawMetadata, Targets)> {
    let corrupt = |reason: String| RepoError::UploadCorrupt {
        file: staged.file.clone(),
        reason,
    };
    let raw = RawMetadata::from_bytes(&staged.bytes).map_err(|e| corrupt(e.to_string()))?;
    let targets: Targets = raw.parse().map_err(|e| corrupt(e.to_string()))?;
    if targets.version != staged.name.version {
        return Err(corrupt(format!(
            "it holds version {}, its name says {}",
            targets.version, staged.name.version
        )));
    }
    Ok((raw, targets))
}

/// Verify `raw` as `role` with `threshold` of `keyids` from `keys`.
fn verify_signatures(
    staged: &StagedMetadata,
    raw: &RawMetadata,
    keys: &dyn KeySource,
    keyids: &[String],
    threshold: u64,
) -> Result<()> {
    let role = staged.name.role.as_str();
    raw.verify(role, keys, keyids, threshold)
        .map_err(|source| match source {
            ota_formats::Error::ThresholdNotMet {
                valid, threshold, ..
            } => RepoError::UploadBelowThreshold {
                file: staged.file.clone(),
                role: role.to_string(),
                valid,
                threshold,
            },
            source => RepoError::UploadSignatures {
                file: staged.file.clone(),
                source,
            },
        })
}

/// Refuse a version not above `published`, and expired metadata.
fn check_fresh(
    staged: &StagedMetadata,
    targets: &Targets,
    published: Option<u64>,
    now: DateTime<Utc>,
) -> Result<()> {
    if let Some(published) = published {
        if targets.version <= published {
            return Err(RepoError::UploadNotNewer {
                file: staged.file.clone(),
                role: staged.name.role.clone(),
                version: targets.version,
                published,
            });
        }
    }
    if targets.expires <= now {
        return Err(RepoError::UploadExpired {
            file: staged.file.clone(),
            role: staged.name.role.clone(),
            expires: targets.expires,
        });
    }
    Ok(())
}

/// The published version of delegated `role` (listed by the snapshot).
fn published_version(repo: &Repository, role: &str) -> Option<u64> {
    repo.snapshot
        .signed
        .meta
        .get(&format!("{role}.json"))
        .map(|m| m.version)
}

/// The published metadata of delegated `role`, as bytes; `None` if it is not published (or
/// cannot be read: then all its targets count as new).
fn published_bytes(repo: &Repository, role: &str) -> Option<Vec<u8>> {
    let version = published_version(repo, role)?;
    let path = repo.metadata_dir().join(metadata_file_name(role, version));
    user_file::read(&path, MAX_UPLOADED_METADATA_LEN).ok()
}

/// Verify the metadata in `staging` against the live repository `repo` at `now`, and list
/// the target files it needs. See the module documentation for what is checked.
pub fn check(repo: &Repository, staging: &Path, now: DateTime<Utc>) -> Result<Checked> {
    let staged = read_staged_metadata(staging)?;
    let (mut top, mut others): (Vec<_>, Vec<_>) =
        staged.into_iter().partition(|s| s.name.role == "targets");
    if top.len() != 1 {
        return Err(RepoError::UploadTargetsCount { found: top.len() });
    }
    let top = top.remove(0);
    let (raw, targets) = parse_targets(&top)?;
    let root = &repo.root.signed;
    let rk = root.role("targets").map_err(|e| RepoError::Corrupt {
        path: repo.metadata_dir().join("root.json"),
        reason: e.to_string(),
    })?;
    verify_signatures(&top, &raw, root, &rk.keyids, rk.threshold)?;
    check_fresh(&top, &targets, Some(repo.targets.signed.version), now)?;

    // Delegated roles unchanged since their publication are left alone.
    let mut unchanged = Vec::new();
    others.retain(|s| {
        let same = published_version(repo, &s.name.role) == Some(s.name.version)
            && published_bytes(repo, &s.name.role).as_deref() == Some(s.bytes.as_slice());
        if same {
            unchanged.push(s.file.clone());
        }
        !same
    });

    // Follow the delegations from the new top-level targets through the uploaded roles.
    let mut roles: Vec<(String, Targets)> = vec![("targets".to_string(), targets.clone())];
    let mut delegated = Vec::new();
    while !others.is_empty() {
        let before = others.len();
        let mut waiting = Vec::new();
        for s in others {
            let delegation = roles.iter().find_map(|(_, t)| {
                let d: &Delegations = t.delegations.as_ref()?;
                let (keyids, threshold) = d.role(&s.name.role)?;
                Some((d.clone(), keyids.to_vec(), threshold))
            });
            let Some((keys, keyids, threshold)) = delegation else {
                waiting.push(s);
                continue;
            };
            let (raw, t) = parse_targets(&s)?;
            verify_signatures(&s, &raw, &keys, &keyids, threshold)?;
            check_fresh(&s, &t, published_version(repo, &s.name.role), now)?;
            delegated.push(DelegatedUpload {
                role: s.name.role.clone(),
                version: t.version,
                file: s.file.clone(),
                bytes: s.bytes.clone(),
            });
            roles.push((s.name.role.clone(), t));
        }
        if waiting.len() == before {
            let s = &waiting[0];
            return Err(RepoError::UploadNotDelegated {
                file: s.file.clone(),
                role: s.name.role.clone(),
            });
        }
        others = waiting;
    }

    let payloads = payloads(repo, &roles)?;
    Ok(Checked {
        targets: Signed {
            signed: targets,
            signatures: raw.signatures,
        },
        targets_file: top.file,
        targets_bytes: top.bytes,
        delegated,
        unchanged,
        payloads,
    })
}

/// The target files of the targets that are new or changed (length or hashes) in `roles`
/// relative to the published version of each role.
fn payloads(repo: &Repository, roles: &[(String, Targets)]) -> Result<Vec<Payload>> {
    let mut out: Vec<Payload> = Vec::new();
    for (role, t) in roles {
        let published: Option<Targets> = if role == "targets" {
            Some(repo.targets.signed.clone())
        } else {
            published_bytes(repo, role)
                .and_then(|b| Signed::<Targets>::from_bytes_unverified(&b).ok())
                .map(|s| s.signed)
        };
        for (path, entry) in &t.targets {
            if !is_safe_relative_path(path) {
                return Err(RepoError::UploadUnsafeTargetPath {
                    target: path.clone(),
                });
            }
            let Some(sha256) = entry.sha256() else {
                return Err(RepoError::TargetWithoutHash {
                    target: path.clone(),
                });
            };
            if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RepoError::UploadCorrupt {
                    file: metadata_file_name(role, t.version),
                    reason: format!("target {path}: sha256 {sha256:?} is not 64 hex digits"),
                });
            }
            let unchanged = published
                .as_ref()
                .and_then(|p| p.targets.get(path))
                .is_some_and(|old| old.length == entry.length && old.hashes == entry.hashes);
            let file = target_file_rel(path, sha256);
            if unchanged || out.iter().any(|p| p.file == file) {
                continue;
            }
            let present = std::fs::symlink_metadata(repo.dir.join(TARGETS_DIR).join(&file)).is_ok();
            out.push(Payload {
                target: path.clone(),
                file,
                length: entry.length,
                hashes: entry.hashes.clone(),
                present,
            });
        }
    }
    Ok(out)
}

/// Stream `path` through a check of `length` and `hashes`: `Ok(Err(..))` is a mismatch,
/// `Err` a failure to read.
fn stream_check(
    path: &Path,
    length: u64,
    hashes: &Hashes,
) -> std::io::Result<std::result::Result<(), ota_formats::Error>> {
    let mut verifier = match StreamVerifier::new(hashes, length) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let file = File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    // A wrong length is known without reading gigabytes.
    if meta.len() != length {
        return Ok(Err(ota_formats::Error::LengthMismatch {
            expected: length,
            actual: meta.len(),
        }));
    }
    if let Err(e) = verifier.update_from(file)? {
        return Ok(Err(e));
    }
    Ok(verifier.finish())
}

/// Verify each of `payloads` against its signed length and hashes, streamed: the file
/// already in the repository when there is one (it must match: a different file under a
/// content-addressed name is [`RepoError::TargetFileConflict`]), else the uploaded one.
pub fn verify_payloads(repo_dir: &Path, staging: &Path, payloads: &[Payload]) -> Result<()> {
    for p in payloads {
        if p.present {
            let path = repo_dir.join(TARGETS_DIR).join(&p.file);
            match stream_check(&path, p.length, &p.hashes) {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(RepoError::TargetFileConflict { path }),
                Err(source) => return Err(RepoError::TargetFileMissing { path, source }),
            }
            continue;
        }
        let path = staging.join(TARGETS_DIR).join(&p.file);
        match stream_check(&path, p.length, &p.hashes) {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(RepoError::UploadPayloadMismatch {
                    target: p.target.clone(),
                    file: p.file.clone(),
                    source: Box::new(source),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RepoError::UploadPayloadMissing {
                    target: p.target.clone(),
                    file: p.file.clone(),
                })
            }
            Err(source) => {
                return Err(RepoError::UploadRead {
                    file: format!("{TARGETS_DIR}/{}", p.file),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Take the writer lock of `dir`, waiting up to `wait` while another writer holds it.
pub fn lock_waiting(dir: &Path, wait: Duration) -> Result<RepoLock> {
    let until = Instant::now() + wait;
    loop {
        match RepoLock::acquire(dir) {
            Err(RepoError::Locked { .. }) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Remove a staging directory (nothing if it is gone already).
pub fn discard(staging: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Verify the upload in `staging` and publish it in the repository `repo_dir` with a new
/// snapshot and timestamp signed by `signer`, or refuse it (a [`RepoError`] for which
/// [`RepoError::upload_refusal`] is `Some`) leaving the repository as it was. The staging
/// directory is removed in every case.
pub fn commit(
    repo_dir: &Path,
    staging: &Path,
    signer: &OnlineSigner,
    now: DateTime<Utc>,
) -> Result<Committed> {
    let outcome = verify_and_switch(repo_dir, staging, signer, now);
    if let Err(e) = discard(staging) {
        tracing::warn!(staging = %staging.display(), error = %e, "cannot remove the staging directory");
    }
    outcome
}

fn verify_and_switch(
    repo_dir: &Path,
    staging: &Path,
    signer: &OnlineSigner,
    now: DateTime<Utc>,
) -> Result<Committed> {
    // The long part (hashing target files) runs without the lock, so the online signer
    // can keep renewing meanwhile.
    let repo = Repository::load(repo_dir)?;
    let first = check(&repo, staging, now)?;
    verify_payloads(repo_dir, staging, &first.payloads)?;

    let _lock = lock_waiting(repo_dir, LOCK_WAIT)?;
    // The repository may have moved on while unlocked: check again against what it is now,
    // and verify any target file whose situation changed.
    let mut live = Repository::load(repo_dir)?;
    let checked = check(&live, staging, now)?;
    let changed: Vec<Payload> = checked
        .payloads
        .iter()
        .filter(|p| !first.payloads.contains(p))
        .cloned()
        .collect();
    verify_payloads(repo_dir, staging, &changed)?;
    switch(&mut live, staging, &checked, signer, now)
}

/// Files created by a switch, removed again if it fails before its commit point.
#[derive(Default)]
struct Created(Vec<PathBuf>);

impl Created {
    fn undo(self) {
        for path in self.0.iter().rev() {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a file of a failed publication");
            }
        }
    }
}

/// Move `src` (a verified staged file) to `dest` in `targets/`, published 0644, without
/// replacing anything there; fsynced, file and directory.
fn place_payload(src: &Path, dest: &Path) -> Result<()> {
    let parent = atomic::parent(dest).map_err(|e| RepoError::write(dest, e))?;
    mode::create_dir_all(parent, mode::PUBLIC_DIR).map_err(|e| RepoError::write(parent, e))?;
    let read_err = |source| RepoError::UploadRead {
        file: src.display().to_string(),
        source,
    };
    let file = File::open(src).map_err(read_err)?;
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode::PUBLIC_FILE))
            .and_then(|()| file.sync_all())
            .map_err(|e| RepoError::write(src, e))?;
    }
    // A hard link is a rename that cannot replace: the staged name goes away afterwards.
    match std::fs::hard_link(src, dest) {
        Ok(()) => {
            let _ = std::fs::remove_file(src);
            atomic::sync_dir(parent).map_err(|e| RepoError::write(parent, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(RepoError::TargetFileConflict {
                path: dest.to_path_buf(),
            })
        }
        // Another file system (targets/ may be a link to another volume), or no hard links:
        // copy into a temp file there, then rename it into place.
        Err(e) => {
            tracing::debug!(dest = %dest.display(), error = %e, "cannot link; copying");
            let mut tmp = atomic::temp_in(parent).map_err(|e| RepoError::write(parent, e))?;
            let mut from = File::open(src).map_err(read_err)?;
            std::io::copy(&mut from, tmp.as_file_mut()).map_err(|e| RepoError::write(dest, e))?;
            atomic::persist_new(tmp, dest, mode::PUBLIC_FILE).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    RepoError::TargetFileConflict {
                        path: dest.to_path_buf(),
                    }
                } else {
                    RepoError::write(dest, e)
                }
            })
        }
    }
}

/// Write new versioned metadata; `Ok(false)` when an identical file is already there.
fn write_metadata(path: &Path, bytes: &[u8]) -> Result<bool> {
    match atomic::write_new(path, bytes, mode::PUBLIC_FILE) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match std::fs::read(path) {
            Ok(existing) if existing == bytes => Ok(false),
            _ => Err(RepoError::UploadMetadataExists {
                path: path.to_path_buf(),
            }),
        },
        Err(e) => Err(RepoError::write(path, e)),
    }
}

/// The switch, under the writer lock: target files, metadata, then snapshot and timestamp.
fn switch(
    repo: &mut Repository,
    staging: &Path,
    checked: &Checked,
    signer: &OnlineSigner,
    now: DateTime<Utc>,
) -> Result<Committed> {
    let md = repo.metadata_dir();
    let metadata: Vec<(PathBuf, &[u8])> = std::iter::once((
        md.join(&checked.targets_file),
        checked.targets_bytes.as_slice(),
    ))
    .chain(
        checked
            .delegated
            .iter()
            .map(|d| (md.join(&d.file), d.bytes.as_slice())),
    )
    .collect();
    // Refused before anything is written: a versioned file is never replaced.
    for (path, bytes) in &metadata {
        if let Ok(existing) = std::fs::read(path) {
            if existing != *bytes {
                return Err(RepoError::UploadMetadataExists { path: path.clone() });
            }
        }
    }

    let mut created = Created::default();
    let mut payload_bytes = 0;
    let mut placed = 0;
    let written = (|| {
        for p in checked.missing() {
            let dest = repo.dir.join(TARGETS_DIR).join(&p.file);
            place_payload(&staging.join(TARGETS_DIR).join(&p.file), &dest)?;
            created.0.push(dest);
            placed += 1;
            payload_bytes += p.length;
        }
        for (path, bytes) in &metadata {
            if write_metadata(path, bytes)? {
                created.0.push(path.clone());
            }
        }
        Ok::<(), RepoError>(())
    })();
    if let Err(e) = written {
        created.undo();
        return Err(e);
    }

    for d in &checked.delegated {
        repo.snapshot
            .signed
            .meta
            .insert(format!("{}.json", d.role), meta_entry(d.version, &d.bytes));
    }
    repo.targets = checked.targets.clone();
    repo.pending_targets = Some(meta_entry(
        checked.targets.signed.version,
        &checked.targets_bytes,
    ));
    let timestamp = md.join("timestamp.json");
    let before = std::fs::read(&timestamp).ok();
    match signer.publish_now(repo, now) {
        Ok(published) => Ok(Committed {
            published,
            delegated: checked
                .delegated
                .iter()
                .map(|d| (d.role.clone(), d.version))
                .collect(),
            payloads: placed,
            payload_bytes,
        }),
        Err(e) => {
            // Undo only if the commit point was not reached: devices may already follow a
            // new timestamp to these files.
            if std::fs::read(&timestamp).ok() == before {
                created.undo();
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests;
