//! A change to one role's keys and threshold, applied to a copy of root with every rule
//! checked: known key ids, no key shared between roles, at least one key left, a threshold
//! from 1 to the number of keys.
use super::RotateError;
use ota_formats::crypto::Key;
use ota_formats::metadata::{RoleKeys, Root};
use serde_json::Map;

/// Shortest key id prefix accepted for `--remove-key` (status prints 16 digits).
pub const MIN_PREFIX: usize = 8;

/// What to do to the keys of one top-level role.
#[derive(Debug, Clone)]
pub struct Change {
    /// The role.
    pub role: String,
    /// Keys to authorise, with the id to list each under.
    pub add: Vec<(String, Key)>,
    /// Key ids (or unique prefixes of at least [`MIN_PREFIX`] hex digits) to remove.
    pub remove: Vec<String>,
    /// The new threshold (unchanged if `None`).
    pub threshold: Option<u64>,
}

/// The root after a [`Change`], unsigned, with what changed.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The new root content (version and expiry still the old ones).
    pub root: Root,
    /// Full ids of the keys added.
    pub added: Vec<String>,
    /// Full ids of the keys removed.
    pub removed: Vec<String>,
}

/// Apply `change` to a copy of `old`.
pub fn apply(old: &Root, change: &Change) -> Result<Applied, RotateError> {
    let role = change.role.as_str();
    let current = old.role(role).map_err(|_| RotateError::UnknownRole {
        role: role.to_string(),
    })?;
    let mut removed: Vec<String> = Vec::new();
    for given in &change.remove {
        let id = resolve(old, role, given)?;
        if !removed.contains(&id) {
            removed.push(id);
        }
    }
    let mut added: Vec<String> = Vec::new();
    for (id, key) in &change.add {
        check_new_key(old, role, id, key, &added)?;
        added.push(id.clone());
    }
    let kept = current
        .keyids
        .iter()
        .filter(|k| !removed.contains(k))
        .count();
    if kept + added.len() == 0 {
        return Err(RotateError::LastKey {
            role: role.to_string(),
            removed,
        });
    }
    let threshold = change.threshold.unwrap_or(current.threshold);
    if threshold == 0 {
        return Err(RotateError::ThresholdZero {
            role: role.to_string(),
        });
    }
    if threshold > (kept + added.len()) as u64 {
        return Err(RotateError::ThresholdAboveKeys {
            role: role.to_string(),
            threshold,
            keys: kept + added.len(),
        });
    }
    if added.is_empty() && removed.is_empty() && threshold == current.threshold {
        return Err(RotateError::NothingToChange {
            role: role.to_string(),
            threshold,
        });
    }

    let mut root = old.clone();
    for id in &removed {
        root.remove_key(role, id);
    }
    let r = root.roles.entry(role.to_string()).or_insert(RoleKeys {
        keyids: Vec::new(),
        threshold,
        extra: Map::new(),
    });
    for (id, _) in &change.add {
        r.keyids.push(id.clone());
    }
    r.threshold = threshold;
    for (id, key) in &change.add {
        root.keys.insert(id.clone(), key.clone());
    }
    Ok(Applied {
        root,
        added,
        removed,
    })
}

/// The full id of the key of `role` that `given` names (an id, or a unique prefix).
fn resolve(root: &Root, role: &str, given: &str) -> Result<String, RotateError> {
    let given = given.trim().to_ascii_lowercase();
    let matching = |ids: &[String]| -> Vec<String> {
        if ids.contains(&given) {
            return vec![given.clone()];
        }
        let is_prefix = given.len() >= MIN_PREFIX && given.bytes().all(|b| b.is_ascii_hexdigit());
        ids.iter()
            .filter(|k| is_prefix && k.starts_with(&given))
            .cloned()
            .collect()
    };
    let listed = root
        .role(role)
        .map(|r| r.keyids.clone())
        .unwrap_or_default();
    let found = matching(&listed);
    match found.len() {
        1 => return Ok(found[0].clone()),
        0 => {}
        count => {
            return Err(RotateError::AmbiguousKeyId {
                role: role.to_string(),
                prefix: given,
                count,
            })
        }
    }
    for (other, rk) in &root.roles {
        if other != role {
            if let Some(id) = matching(&rk.keyids).into_iter().next() {
                return Err(RotateError::KeyOfOtherRole {
                    role: role.to_string(),
                    keyid: id,
                    other: other.clone(),
                });
            }
        }
    }
    Err(RotateError::UnknownKeyId {
        role: role.to_string(),
        keyid: given,
        listed,
    })
}

/// A key to add must be new to the role and to every other role (by id and by public key:
/// one public key under two ids would count once towards a threshold).
fn check_new_key(
    root: &Root,
    role: &str,
    id: &str,
    key: &Key,
    added: &[String],
) -> Result<(), RotateError> {
    let same_key = |other_id: &str| {
        other_id == id
            || root.keys.get(other_id).is_some_and(|k| {
                k.keytype == key.keytype && k.keyval.public.trim() == key.keyval.public.trim()
            })
    };
    if added.iter().any(|a| a == id) {
        return Err(RotateError::KeyAlreadyListed {
            role: role.to_string(),
            keyid: id.to_string(),
        });
    }
    for (name, rk) in &root.roles {
        if let Some(listed) = rk.keyids.iter().find(|k| same_key(k)) {
            return Err(if name == role {
                RotateError::KeyAlreadyListed {
                    role: role.to_string(),
                    keyid: listed.clone(),
                }
            } else {
                RotateError::KeyOfAnotherRole {
                    keyid: listed.clone(),
                    other: name.clone(),
                }
            });
        }
    }
    Ok(())
}
