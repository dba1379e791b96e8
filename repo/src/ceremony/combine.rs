//! Combining the detached signatures of a request and publishing the metadata once every
//! threshold is met.
//!
//! [`combine`] takes the writer lock and, against the repository as it is now:
//!
//! 1. checks the request still applies ([`check_applies`]): the same published version,
//!    content, root version, keys and thresholds it was made over, else a stale request;
//! 2. checks every signature file ([`super::tally`]): made for this request (its hash), by a key
//!    that may sign it, verifying over the request's bytes; a key counted twice counts once
//!    and the duplicate is reported;
//! 3. refuses, changing no metadata, while a threshold is not met;
//! 4. publishes: targets as `N.targets.json`, then (unless the server signs them, with online
//!    roles) a new snapshot and `timestamp.json` last ([`super::publish`]); root exactly as
//!    a rotation publishes it ([`crate::rotate::publish_signed_root`]): `N.root.json`,
//!    `root.json`, the roles whose keys it changes re-signed with the keys in the key
//!    directories (keys a staged rotation generated included), `timestamp.json` last, and
//!    `ota-repo.json` naming the new keys.
//!
//! Each accepted signature, the publication and any refusal go to the audit log.
use super::audit::{AuditLog, Event, NewEntry};
use super::error::{CeremonyError, Result};
use super::next::{base_of, thresholds_for};
use super::publish::publish_targets;
use super::request::{CeremonyRole, SigningRequest};
use super::tally::{metadata_bytes, tally, Duplicate, Tally};
use crate::key_source::KeyAccess;
use crate::keys::{load_role_with, role_signers, RoleKeys};
use crate::lock::RepoLock;
use crate::online::ONLINE_ROLES;
use crate::publish::Published;
use crate::repository::Repository;
use crate::rotate::{self, KeyDirs, RoleChange};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Check that `request` still applies to `repo`: same base (version, content, root
/// version) and the same keys and thresholds; [`CeremonyError::StaleRequest`] otherwise.
pub fn check_applies(repo: &Repository, request: &SigningRequest) -> Result<()> {
    let now = base_of(repo, request.role)?;
    let stale = |detail: String| CeremonyError::StaleRequest {
        role: request.role.to_string(),
        version: request.version,
        base_version: request.base.version,
        base_root_version: request.base.root_version,
        current_version: now.version,
        current_root_version: now.root_version,
        detail,
    };
    if now.version != request.base.version || now.root_version != request.base.root_version {
        return Err(stale(String::new()));
    }
    if now.signed_sha256 != request.base.signed_sha256 {
        return Err(stale(
            "the published metadata is not the one the request was made over".into(),
        ));
    }
    let new_root = request.new_root();
    let expected =
        thresholds_for(request.role, &repo.root.signed, new_root.as_ref()).map_err(stale)?;
    if expected != (request.thresholds.clone(), request.keys.clone()) {
        return Err(stale(
            "the keys or thresholds that may sign it are not the repository's".into(),
        ));
    }
    Ok(())
}

/// What [`combine`] did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The request.
    pub request_sha256: String,
    /// Its role.
    pub role: CeremonyRole,
    /// Its version.
    pub version: u64,
    /// The signatures.
    #[serde(flatten)]
    pub tally: Tally,
    /// The versions after publishing.
    pub published: Published,
    /// For a root: the roles whose keys changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<RoleChange>,
    /// For a root: files of removed keys, left on disk (destroy them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired_files: Vec<PathBuf>,
    /// For a root: file names given to added keys whose private keys are not here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expected_files: Vec<PathBuf>,
    /// The audit log's head after the publication (absent if recording it failed: see the
    /// warnings).
    pub audit_head: Option<String>,
}

/// The keys publishing needs besides the signatures: for targets, snapshot and timestamp
/// (none with online roles); for root, those of the roles whose keys it changes.
pub struct PublishKeys<'a> {
    /// Where the keys are; `None`: only what needs no key can be published (targets with
    /// online roles, a root that changes no key).
    pub dirs: Option<KeyDirs>,
    /// Unlocks encrypted key files and token keys.
    pub access: &'a KeyAccess<'a>,
}

/// Combine the signature `files` of `request` and publish it into the repository in
/// `repo_dir` (see the module documentation). A refusal after the request was read is
/// recorded in the audit log and changes no metadata.
pub fn combine(
    repo_dir: &Path,
    request: &SigningRequest,
    files: &[PathBuf],
    keys: &PublishKeys<'_>,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let _lock = RepoLock::acquire(repo_dir)?;
    let repo = Repository::load(repo_dir)?;
    let log = AuditLog::of_repo(repo_dir);
    let result = combine_locked(&repo, &log, request, files, keys, now);
    if let Err(e) = &result {
        if !e.is_audit() {
            let mut entry = NewEntry::about(request, Event::Refused);
            entry.keyid = e.keyid().map(String::from);
            entry.reason = Some(e.to_string());
            if let Err(le) = log.append(&[entry], now) {
                tracing::warn!("the refusal could not be recorded: {le}");
            }
        }
    }
    result
}

fn combine_locked(
    repo: &Repository,
    log: &AuditLog,
    request: &SigningRequest,
    files: &[PathBuf],
    keys: &PublishKeys<'_>,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    check_applies(repo, request)?;
    if request.changes.expires.to <= now {
        return Err(CeremonyError::RequestExpired {
            role: request.role.to_string(),
            version: request.version,
            expires: request.changes.expires.to,
        });
    }
    let tally = tally(request, files)?;
    if !tally.met() {
        return Err(CeremonyError::BelowThreshold {
            role: request.role.to_string(),
            version: request.version,
            thresholds: tally.thresholds.clone(),
            duplicates: tally.duplicates.iter().map(Duplicate::describe).collect(),
        });
    }
    let bytes = metadata_bytes(request, &tally)?;
    // Targets: the snapshot and timestamp keys are loaded before anything is recorded, so a
    // missing key refuses the publication with the log unchanged.
    let mut warnings = Vec::new();
    let snapshot_keys = match request.role {
        CeremonyRole::Targets if !repo.config.online_roles => {
            load_online_roles(repo, keys, &mut warnings)?
        }
        _ => RoleKeys::new(),
    };
    let accepted: Vec<NewEntry> = tally
        .accepted
        .iter()
        .map(|a| NewEntry {
            keyid: Some(a.keyid.clone()),
            signer: a.signer.clone(),
            signed_at: Some(a.time),
            ..NewEntry::about(request, Event::Signature)
        })
        .collect();
    // Recorded before publishing: a log that cannot be written stops the publication.
    log.append(&accepted, now)?;
    let mut outcome = Outcome {
        request_sha256: request.request_sha256.clone(),
        role: request.role,
        version: request.version,
        tally,
        published: Published::default(),
        changes: Vec::new(),
        retired_files: Vec::new(),
        expected_files: Vec::new(),
        audit_head: None,
    };
    match request.role {
        CeremonyRole::Targets => {
            let signers = role_signers(&snapshot_keys);
            outcome.published = publish_targets(repo, request, &bytes, &signers, now)?;
        }
        CeremonyRole::Root => {
            // A root that changes no key needs no key directory: nothing is re-signed and
            // no key file is named.
            let dirs = keys.dirs.clone().unwrap_or_else(|| KeyDirs {
                keys: repo.dir.join("no-key-directory-given"),
                online: None,
            });
            let done = rotate::publish_signed_root(repo, &dirs, &bytes, keys.access, now)?;
            outcome.published = done.published.unwrap_or_default();
            outcome.published.warnings.extend(done.warnings);
            outcome.changes = done.changes;
            outcome.retired_files = done.retired_files;
            outcome.expected_files = done.expected_files;
        }
    }
    outcome.published.warnings.splice(0..0, warnings);
    let published = &mut outcome.published;
    outcome.audit_head = match log.append(&[NewEntry::about(request, Event::Publish)], now) {
        Ok(h) => Some(h),
        Err(e) => {
            published
                .warnings
                .push(format!("published, but not recorded in the audit log: {e}"));
            None
        }
    };
    Ok(outcome)
}

/// The snapshot and timestamp keys (authorised by the current root) that publishing a targets
/// request signs with, noting key files others may read in `warnings`.
fn load_online_roles(
    repo: &Repository,
    keys: &PublishKeys<'_>,
    warnings: &mut Vec<String>,
) -> Result<RoleKeys> {
    let Some(dirs) = &keys.dirs else {
        return Err(crate::RepoError::KeyMissing {
            role: "snapshot".into(),
        }
        .into());
    };
    let mut out = RoleKeys::new();
    for role in ONLINE_ROLES {
        let dir = dirs.for_role(&repo.config, role)?;
        let loaded = load_role_with(dir, &repo.config, &repo.root.signed, role, keys.access)?;
        warnings.extend(loaded.iter().filter_map(|k| k.open_warning(dir)));
        out.insert(role.to_string(), loaded);
    }
    Ok(out)
}
