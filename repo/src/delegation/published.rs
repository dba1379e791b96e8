//! The published metadata of a delegated role, read back and checked the way a client checks
//! it: the version the snapshot lists, from `N.ROLE.json`, with the listed length and hashes,
//! that version inside, and signed by the threshold of the keys the top-level targets delegate
//! the role to. Expiry is not checked (re-signing what expired is the editor's job).
use super::DelegationError;
use crate::repository::{Repository, MAX_METADATA_LEN};
use crate::upload::metadata_file_name;
use crate::{RepoError, Result};
use ota_formats::hash::verify_bytes;
use ota_formats::metadata::{DelegatedRole, Delegations, RawMetadata, Signed, Targets};
use ota_fs::user_file;
use std::path::PathBuf;

/// The delegation of the top-level targets `targets` to `role`, with the delegations it is
/// part of (their keys); refused when there is none, or when the targets delegate through hash
/// bins (`succinct_roles`, not edited here).
pub fn delegation<'a>(
    targets: &'a Targets,
    role: &str,
) -> Result<(&'a Delegations, &'a DelegatedRole)> {
    let Some(d) = &targets.delegations else {
        return Err(not_delegated(role));
    };
    if let Some(s) = &d.succinct_roles {
        return Err(DelegationError::SuccinctRoles {
            prefix: s.name_prefix.clone(),
        }
        .into());
    }
    d.roles
        .iter()
        .flatten()
        .find(|r| r.name == role)
        .map(|r| (d, r))
        .ok_or_else(|| not_delegated(role))
}

fn not_delegated(role: &str) -> RepoError {
    DelegationError::NotDelegated {
        role: role.to_string(),
    }
    .into()
}

/// Whether the top-level targets of `repo` delegate to `role` (through `roles`).
pub fn is_delegated(repo: &Repository, role: &str) -> bool {
    repo.targets
        .signed
        .delegations
        .as_ref()
        .and_then(|d| d.roles.as_ref())
        .is_some_and(|roles| roles.iter().any(|r| r.name == role))
}

/// The published metadata of delegated role `role` in `repo`, verified (see the module
/// documentation).
pub fn load_role(repo: &Repository, role: &str) -> Result<Signed<Targets>> {
    let (keys, delegated) = delegation(&repo.targets.signed, role)?;
    let entry = format!("{role}.json");
    let md = repo.metadata_dir();
    let Some(meta) = repo.snapshot.signed.meta.get(&entry) else {
        return Err(RepoError::NotListed {
            path: md.join(format!("{}.snapshot.json", repo.snapshot.signed.version)),
            entry,
        });
    };
    let path: PathBuf = md.join(metadata_file_name(role, meta.version));
    let bytes =
        user_file::read(&path, MAX_METADATA_LEN).map_err(|source| RepoError::Unreadable {
            path: path.clone(),
            source,
        })?;
    if let Some(length) = meta.length {
        if bytes.len() as u64 != length {
            return Err(RepoError::LengthMismatch {
                path,
                length: bytes.len() as u64,
                listed: length,
            });
        }
    }
    if let Some(hashes) = &meta.hashes {
        verify_bytes(&bytes, hashes, bytes.len() as u64).map_err(|e| RepoError::Corrupt {
            path: path.clone(),
            reason: format!("not the file the snapshot lists: {e}"),
        })?;
    }
    let corrupt = |e: ota_formats::Error| RepoError::Corrupt {
        path: path.clone(),
        reason: e.to_string(),
    };
    let raw = RawMetadata::from_bytes(&bytes).map_err(corrupt)?;
    let parsed: Targets = raw.parse().map_err(corrupt)?;
    raw.verify(role, keys, &delegated.keyids, delegated.threshold)
        .map_err(|source| RepoError::BadSignatures {
            path: path.clone(),
            source,
        })?;
    if parsed.version != meta.version {
        return Err(RepoError::VersionMismatch {
            path,
            version: parsed.version,
            listed: meta.version,
        });
    }
    Ok(Signed {
        signed: parsed,
        signatures: raw.signatures,
    })
}
