//! Delegated targets roles: a delegation from the top-level targets to a named role
//! ([`delegate`]), the rotation of that role's keys ([`rotate_with`]), and new targets listed
//! by it ([`publish_targets`]).
//!
//! A delegated role's keys are not in root: the top-level targets metadata lists them in its
//! `delegations` (`keys`, and the role's entry in `roles` with its key ids, threshold, path
//! patterns and `terminating` flag), so changing them makes a new *targets* version, signed by
//! the targets keys; root does not change. The role's own metadata, `N.ROLE.json` (the role
//! name as is: [`name`] keeps it to characters that need no encoding), is signed by the
//! threshold of its keys and listed by the snapshot under `ROLE.json`, like the files that
//! [`crate::upload`] accepts from a release machine. Every change publishes in the usual order
//! ([`publish`]): the role's new file, the new targets, a snapshot listing both, the timestamp
//! last; the snapshot keeps listing every delegated role from then on, whatever re-signs it.
//!
//! Expiry: a publish re-signs every delegated role that is due by the rule of the top-level
//! roles (under a quarter of its period left, or expired; all of them with `force`), as its
//! next version with the same targets, planned by [`crate::publish::plan_with_delegated`] and
//! published with [`publish_with_renewals`]; devices load every delegated role, so one that
//! expired makes them refuse every update.
//!
//! Keys: the role's private keys live in the release machine's key directory as `ROLE-N.pem`,
//! listed in `ota-repo.json` under the role's name like the top-level roles' keys; a generated
//! key is saved there (0600), a public key file ([`crate::rotate::read_public_key`]) is listed
//! under the next `ROLE-N.pem` name, where its holder puts the private key. The role's expiry
//! period is kept in `ota-repo.json` too (default: the targets period).
//!
//! Refused with nothing written: a top-level role name or one delegated already, no path
//! pattern, no key, a threshold of 0 or above the number of keys, a private key given as a
//! public one, the role's last key removed, targets staged for the next publish
//! (`ota-staged.json`: publish them first), hash-bin delegations (`succinct_roles`).
//!
//! ```no_run
//! # fn main() -> Result<(), ota_repo::RepoError> {
//! use ota_repo::delegation::{self, DelegateRequest};
//! use ota_repo::rotate::{KeyDirs, KeyType, Request};
//! let (repo, now) = (std::path::Path::new("repo"), chrono::Utc::now());
//! let dirs = KeyDirs { keys: "keys".into(), online: None };
//! let req = DelegateRequest {
//!     role: "apps".into(),
//!     paths: vec!["apps-*".into()],
//!     generate: Some(KeyType::Ed25519),
//!     ..DelegateRequest::default()
//! };
//! let done = delegation::delegate(repo, &dirs, &req, now)?;
//! println!("apps v{} published with targets v{}", done.version, done.published.targets_version);
//! // Later: replace its key.
//! let req = Request {
//!     role: "apps".into(),
//!     generate: Some(KeyType::Ed25519),
//!     remove: vec![done.keyids[0].clone()],
//!     ..Request::default()
//! };
//! let rotated = delegation::rotate(repo, &dirs, &req, now)?;
//! println!("apps v{}", rotated.version);
//! # Ok(())
//! # }
//! ```
mod create;
mod error;
pub mod name;
mod publish;
mod published;
mod renew;
mod rotate;
mod signers;
mod targets;
#[cfg(test)]
mod tests;

pub use create::{delegate, delegate_with, DelegateRequest, Delegated};
pub use error::DelegationError;
pub use publish::sign_delegated;
pub use published::{delegation, is_delegated, load_role};
pub use renew::{load_renewal, publish_with_renewals, Renewal, Renewed};
pub use rotate::{rotate, rotate_with, DelegationRotated};
pub use targets::{check_target_paths, publish_targets, RolePublished, RoleSigners};

use crate::config::RepoConfig;
use crate::policy::Period;
use crate::repository::{Repository, STAGED_FILE};
use crate::rotate::AddedKey;
use crate::Result;
use ota_formats::crypto::Key;
use std::collections::BTreeMap;

/// The expiry period of delegated `role`: its own in `ota-repo.json`, else the targets period.
pub fn period(config: &RepoConfig, role: &str) -> Period {
    config
        .expiry
        .get(role)
        .copied()
        .unwrap_or_else(|| config.period("targets"))
}

/// Refuse to change the top-level targets while content is staged for the next publish: the
/// staged content (built on the published targets) would drop the delegation change.
fn refuse_staged(repo: &Repository) -> Result<()> {
    if repo.staged.is_some() {
        return Err(DelegationError::TargetsStaged {
            path: repo.dir.join(STAGED_FILE),
        }
        .into());
    }
    Ok(())
}

/// The keys `ids` as reported: type, scheme and key file (`file_of`), and whether this run
/// generated it.
fn added_keys(
    ids: &[String],
    keys: &BTreeMap<String, Key>,
    file_of: &BTreeMap<String, String>,
    generated: Option<&str>,
) -> Vec<AddedKey> {
    ids.iter()
        .map(|id| {
            let key = keys.get(id);
            AddedKey {
                keyid: id.clone(),
                keytype: key.map(|k| k.keytype.clone()).unwrap_or_default(),
                scheme: key.map(|k| k.scheme.clone()).unwrap_or_default(),
                file: file_of.get(id).cloned(),
                generated: generated == Some(id.as_str()),
            }
        })
        .collect()
}
