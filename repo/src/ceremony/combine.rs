//! Combining the detached signatures of a request and publishing the metadata once every
//! threshold is met.
//!
//! [`combine`] takes the writer lock and, against the repository as it is now:
//!
//! 1. checks the request still applies ([`check_applies`]): the same published version,
//!    content, root version, keys and thresholds it was made over, else a stale request;
//! 2. checks every signature file ([`tally`]): made for this request (its hash), by a key
//!    that may sign it, verifying over the request's bytes; a key counted twice counts once
//!    and the duplicate is reported;
//! 3. refuses, changing no metadata, while a threshold is not met;
//! 4. publishes: targets as `N.targets.json`, then (unless the server signs them, with online
//!    roles) a new snapshot and `timestamp.json` last, through [`crate::publish::publish`];
//!    root as `N.root.json`, then `root.json`, then re-signed targets, snapshot or timestamp
//!    when the new root no longer trusts the keys that signed them.
//!
//! Each accepted signature, the publication and any refusal go to the audit log.
use super::audit::{AuditLog, Event, NewEntry};
use super::error::{CeremonyError, Result, ThresholdCount};
use super::request::{base_of, thresholds_for, CeremonyRole, SigningRequest, STAGED_ROOT_FILE};
use super::signature::DetachedSignature;
use crate::keys::{role_signers, RoleKeys};
use crate::lock::RepoLock;
use crate::publish::{self, Needs, Published, RoleSigners};
use crate::repository::{meta_entry, Repository, STAGED_FILE};
use crate::RepoError;
use chrono::{DateTime, Utc};
use ota_formats::crypto::Signature;
use ota_formats::metadata::{RawMetadata, Root, Signed, Targets};
use ota_fs::atomic;
use ota_fs::mode::PUBLIC_FILE;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A signature file that counts.
#[derive(Debug, Clone, Serialize)]
pub struct Accepted {
    /// The file.
    pub file: PathBuf,
    /// The key.
    pub keyid: String,
    /// The signer's name.
    pub signer: Option<String>,
    /// When they signed.
    pub time: DateTime<Utc>,
}

/// A signature file by a key already counted.
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    /// The file.
    pub file: PathBuf,
    /// The key.
    pub keyid: String,
    /// The file that counted for the key.
    pub same_as: PathBuf,
    /// Whether the two files are identical (the same file given twice, or a copy).
    pub identical: bool,
}

impl Duplicate {
    /// `b.json (key 1a2b3c4d5e6f7a8b: a copy of a.json)`.
    pub fn describe(&self) -> String {
        let how = match (self.file == self.same_as, self.identical) {
            (true, _) => "the same file given twice".to_string(),
            (false, true) => format!("a copy of {}", self.same_as.display()),
            (false, false) => format!("key already counted from {}", self.same_as.display()),
        };
        format!(
            "{} (key {}: {how})",
            self.file.display(),
            crate::keys::short_id(&self.keyid)
        )
    }
}

/// The signatures of a request, checked, and how far they go.
#[derive(Debug, Clone, Serialize)]
pub struct Tally {
    /// Signatures that count, one per key.
    pub accepted: Vec<Accepted>,
    /// Signature files by keys already counted.
    pub duplicates: Vec<Duplicate>,
    /// Each threshold's count.
    pub thresholds: Vec<ThresholdCount>,
    #[serde(skip)]
    signatures: Vec<Signature>,
}

impl Tally {
    /// Whether every threshold is met.
    pub fn met(&self) -> bool {
        self.thresholds.iter().all(ThresholdCount::met)
    }
}

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

/// Check each signature file against `request` (whose keys [`check_applies`] checked):
/// an error for the first file that is unreadable, damaged, for another request, by a key
/// that may not sign, or that does not verify; keys counted once.
pub fn tally(request: &SigningRequest, files: &[PathBuf]) -> Result<Tally> {
    if files.is_empty() {
        return Err(CeremonyError::NoSignatures);
    }
    let msg = request.canonical_signed()?;
    let allowed = request.allowed_keyids();
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut duplicates = Vec::new();
    let mut signatures = Vec::new();
    let mut counted: BTreeMap<String, (PathBuf, Vec<u8>)> = BTreeMap::new();
    for path in files {
        let (bytes, sig) = DetachedSignature::read(path)?;
        if sig.request_sha256 != request.request_sha256 {
            return Err(CeremonyError::SignatureForOtherRequest {
                path: path.clone(),
                role: sig.role.to_string(),
                version: sig.version,
                request_sha256: sig.request_sha256,
                expected: request.request_sha256.clone(),
            });
        }
        if sig.role != request.role
            || sig.version != request.version
            || sig.signed_sha256 != request.signed_sha256
        {
            return Err(CeremonyError::SignatureCorrupt {
                path: path.clone(),
                reason: format!(
                    "it names this request but says {} v{} over {}, the request is {} v{} over {}",
                    sig.role,
                    sig.version,
                    sig.signed_sha256,
                    request.role,
                    request.version,
                    request.signed_sha256
                ),
            });
        }
        let key = match request.keys.get(&sig.keyid) {
            Some(k) if allowed.contains(sig.keyid.as_str()) => k,
            _ => {
                return Err(CeremonyError::SignatureKeyNotAllowed {
                    path: path.clone(),
                    keyid: sig.keyid,
                    role: request.role.to_string(),
                    version: request.version,
                })
            }
        };
        let invalid = |reason: String| CeremonyError::SignatureInvalid {
            path: path.clone(),
            keyid: sig.keyid.clone(),
            reason,
        };
        let raw =
            super::decode_hex(&sig.sig).map_err(|e| invalid(format!("sig is not hex: {e}")))?;
        match key.verify(&sig.keyid, &msg, &raw) {
            Ok(true) => {}
            Ok(false) => {
                return Err(invalid(
                    "it was made over other content, or with another key".into(),
                ))
            }
            Err(e) => return Err(invalid(e.to_string())),
        }
        if let Some((first, first_bytes)) = counted.get(&sig.keyid) {
            duplicates.push(Duplicate {
                file: path.clone(),
                keyid: sig.keyid.clone(),
                same_as: first.clone(),
                identical: *first_bytes == bytes,
            });
            continue;
        }
        counted.insert(sig.keyid.clone(), (path.clone(), bytes));
        signatures.push(sig.signature());
        accepted.push(Accepted {
            file: path.clone(),
            keyid: sig.keyid,
            signer: sig.signer,
            time: sig.time,
        });
    }
    signatures.sort_by(|a, b| a.keyid.cmp(&b.keyid));
    let thresholds = request
        .thresholds
        .iter()
        .map(|t| {
            let signed_by: Vec<String> = t
                .keyids
                .iter()
                .filter(|id| counted.contains_key(*id))
                .cloned()
                .collect();
            ThresholdCount {
                name: t.name.clone(),
                valid: signed_by.len(),
                threshold: t.threshold,
                keys: t.keyids.len(),
                signed_by,
            }
        })
        .collect();
    Ok(Tally {
        accepted,
        duplicates,
        thresholds,
        signatures,
    })
}

/// The metadata file of `request` with the signatures of `tally`, checked as a client
/// checks it against every threshold.
pub fn metadata_bytes(request: &SigningRequest, tally: &Tally) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Envelope<'a> {
        signed: &'a Value,
        signatures: &'a [Signature],
    }
    let internal = |source| CeremonyError::Sign { source };
    let mut bytes = serde_json::to_vec_pretty(&Envelope {
        signed: &request.signed,
        signatures: &tally.signatures,
    })
    .map_err(|source| RepoError::Encode {
        what: "metadata",
        source,
    })?;
    bytes.push(b'\n');
    let raw = RawMetadata::from_bytes(&bytes).map_err(internal)?;
    for t in &request.thresholds {
        raw.verify(request.role.as_str(), &request.keys, &t.keyids, t.threshold)
            .map_err(internal)?;
    }
    Ok(bytes)
}

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
