//! The keys a delegation change signs with: the delegated role's own keys (its key files in
//! the release machine's key directory, `ROLE-N.pem`, as listed in `ota-repo.json`, plus keys
//! a holder put there under the next such name) checked against the keys the new delegation
//! authorises, and the top-level keys of the roles re-signed after it.
use crate::key_source::KeyAccess;
use crate::keys::{self, LoadedKey};
use crate::repository::Repository;
use crate::rotate::signing::{load_held, require};
use crate::rotate::{keygen::scheme_files, GeneratedKey, KeyDirs};
use crate::Result;
use ota_formats::metadata::RoleKeys;
use serde_json::Map;

/// The keys of a delegated role that must sign its next version.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The delegated role.
    pub role: &'a str,
    /// The key ids the (new) delegation authorises.
    pub keyids: &'a [String],
    /// Its (new) threshold.
    pub threshold: u64,
    /// Key ids the change removes: their files are skipped, not a mix-up.
    pub retiring: &'a [String],
    /// What is signed (`apps v2`), for messages.
    pub signing: &'a str,
    /// Whose keys these are (`the delegation in targets v5`), for messages.
    pub of: &'a str,
}

/// Load the keys of `wanted.role` from its key directory, through `access`, and refuse
/// ([`crate::rotate::RotateError::NotEnoughKeys`]) unless they, with `generated` (a key this
/// run made, not saved yet), reach the threshold.
pub fn load_delegated(
    repo: &Repository,
    dirs: &KeyDirs,
    wanted: &Wanted<'_>,
    generated: Option<&GeneratedKey>,
    access: &KeyAccess<'_>,
) -> Result<Vec<LoadedKey>> {
    let role = wanted.role;
    let dir = dirs.for_role(&repo.config, role)?;
    let listed = repo.config.files(role);
    let unlisted: Vec<String> = scheme_files(dir, role)
        .into_iter()
        .filter(|f| !listed.contains(f))
        .collect();
    let held = load_held(
        dir,
        role,
        listed,
        &unlisted,
        wanted.keyids,
        wanted.retiring,
        access,
    )?;
    let mut ids = held.ids();
    if let Some(g) = generated {
        ids.push(g.keyid.clone());
    }
    let rk = RoleKeys {
        keyids: wanted.keyids.to_vec(),
        threshold: wanted.threshold,
        extra: Map::new(),
    };
    require(wanted.signing, role, wanted.of, &rk, &ids, &held)?;
    Ok(held.keys)
}

/// Load the keys of the top-level `roles` from their key directories (snapshot and timestamp
/// from the online one with online roles), checked against root.
pub fn load_top_level(
    repo: &Repository,
    dirs: &KeyDirs,
    roles: &[&str],
    access: &KeyAccess<'_>,
) -> Result<keys::RoleKeys> {
    let mut out = keys::RoleKeys::new();
    for role in roles {
        let dir = dirs.for_role(&repo.config, role)?;
        let loaded = keys::load_role_with(dir, &repo.config, &repo.root.signed, role, access)?;
        out.insert(role.to_string(), loaded);
    }
    Ok(out)
}
