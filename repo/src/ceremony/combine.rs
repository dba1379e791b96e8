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
//! 4. publishes ([`super::publish`]): targets as `N.targets.json`, then (unless the server signs them, with online
//!    roles) a new snapshot and `timestamp.json` last, through [`crate::publish::publish`];
//!    root as `N.root.json`, then `root.json`, then re-signed targets, snapshot or timestamp
//!    when the new root no longer trusts the keys that signed them.
//!
//! Each accepted signature, the publication and any refusal go to the audit log.
use super::audit::{AuditLog, Event, NewEntry};
use super::error::{CeremonyError, Result};
use super::next::{base_of, thresholds_for};
use super::publish::{keys_needed, publish};
use super::request::{CeremonyRole, SigningRequest};
use super::tally::{metadata_bytes, tally, Duplicate, Tally};
use crate::keys::{role_signers, RoleKeys};
use crate::lock::RepoLock;
use crate::publish::Published;
use crate::repository::Repository;
use chrono::{DateTime, Utc};
use ota_formats::metadata::Root;
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
    /// The audit log's head after the publication (absent if recording it failed: see the
    /// warnings).
    pub audit_head: Option<String>,
}

/// Loads the keys of the named roles, authorised by the given root (for root requests the
/// new one), when publishing needs them ([`keys_needed`]).
pub type KeyLoader<'a> = dyn FnMut(&Repository, &Root, &[&'static str]) -> Result<RoleKeys> + 'a;

/// Combine the signature `files` of `request` and publish it into the repository in
/// `repo_dir` (see the module documentation). A refusal after the request was read is
/// recorded in the audit log and changes no metadata.
pub fn combine(
    repo_dir: &Path,
    request: &SigningRequest,
    files: &[PathBuf],
    load_keys: &mut KeyLoader<'_>,
    now: DateTime<Utc>,
) -> Result<Outcome> {
    let _lock = RepoLock::acquire(repo_dir)?;
    let repo = Repository::load(repo_dir)?;
    let log = AuditLog::of_repo(repo_dir);
    let result = combine_locked(&repo, &log, request, files, load_keys, now);
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
    load_keys: &mut KeyLoader<'_>,
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
    let (roles, root) = keys_needed(repo, request)?;
    let keys = if roles.is_empty() {
        RoleKeys::new()
    } else {
        load_keys(repo, &root, &roles)?
    };
    let signers = role_signers(&keys);
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
    let mut published = publish(repo, request, &bytes, &signers, now)?;
    let audit_head = match log.append(&[NewEntry::about(request, Event::Publish)], now) {
        Ok(h) => Some(h),
        Err(e) => {
            published
                .warnings
                .push(format!("published, but not recorded in the audit log: {e}"));
            None
        }
    };
    Ok(Outcome {
        request_sha256: request.request_sha256.clone(),
        role: request.role,
        version: request.version,
        tally,
        published,
        audit_head,
    })
}
