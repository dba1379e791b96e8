//! Publishing a targets request once its thresholds are met: `N.targets.json`, then (unless
//! the server signs them, with online roles) a new snapshot and `timestamp.json` last,
//! through [`crate::publish::publish`]. The versioned file is written new (an identical one
//! left by an interrupted run is kept); `ota-staged.json` is removed after the commit point
//! when it holds what was published. (A root request is published as a rotation is:
//! [`crate::rotate::publish_signed_root`].)
use super::error::{CeremonyError, Result};
use super::request::SigningRequest;
use crate::publish::{self, write_versioned, Needs, Published, RoleSigners};
use crate::repository::{meta_entry, Repository, STAGED_FILE};
use chrono::{DateTime, Utc};
use ota_formats::metadata::{Signed, Targets};
use ota_fs::atomic;

fn remove_after_commit(repo: &Repository, name: &str, warnings: &mut Vec<String>) {
    let path = repo.dir.join(name);
    if let Err(e) = std::fs::remove_file(&path).and_then(|()| atomic::sync_dir(&repo.dir)) {
        warnings.push(format!(
            "published, but cannot remove {}: {e}",
            path.display()
        ));
    }
}

/// Publish `bytes` (from [`super::tally::metadata_bytes`]) of the targets `request` into
/// `repo`, with `signers` for snapshot and timestamp (none with online roles). The caller
/// holds the writer lock.
pub fn publish_targets(
    repo: &Repository,
    request: &SigningRequest,
    bytes: &[u8],
    signers: &RoleSigners<'_>,
    now: DateTime<Utc>,
) -> Result<Published> {
    let md = repo.metadata_dir();
    let v = request.version;
    let internal = |source| CeremonyError::Sign { source };
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
