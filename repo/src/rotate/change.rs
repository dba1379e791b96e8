//! A change to one role's keys and threshold, applied to a copy of the table that lists them
//! (root for the top-level roles, the `delegations` of targets metadata for delegated roles;
//! [`KeyTable`]) with every rule checked: known key ids, no key shared between roles, at
//! least one key left, a threshold from 1 to the number of keys.
use super::RotateError;
use ota_formats::crypto::Key;
use ota_formats::metadata::{Delegations, RoleKeys, Root};
use serde_json::Map;

/// Shortest key id prefix accepted for `--remove-key` (status prints 16 digits).
pub const MIN_PREFIX: usize = 8;

/// Public keys and the roles they sign for: root's `keys` and `roles` (the top-level roles),
/// or the `keys` and `roles` of a targets role's [`Delegations`] (delegated roles).
pub trait KeyTable: Clone {
    /// The key ids and threshold of `role`, if the table lists it.
    fn role_keys(&self, role: &str) -> Option<(&[String], u64)>;
    /// Every role the table lists, with its key ids.
    fn listed_roles(&self) -> Vec<(&str, &[String])>;
    /// The public key listed under `keyid`.
    fn listed_key(&self, keyid: &str) -> Option<&Key>;
    /// Give `role` (listed, or new for root) these key ids and this threshold.
    fn set_role(&mut self, role: &str, keyids: Vec<String>, threshold: u64);
    /// List `key` under `keyid`.
    fn insert_key(&mut self, keyid: String, key: Key);
    /// Take `keyid` from `role`, and from the keys when no other role uses it.
    fn unlist_key(&mut self, role: &str, keyid: &str);
}

impl KeyTable for Root {
    fn role_keys(&self, role: &str) -> Option<(&[String], u64)> {
        self.roles
            .get(role)
            .map(|r| (r.keyids.as_slice(), r.threshold))
    }
    fn listed_roles(&self) -> Vec<(&str, &[String])> {
        self.roles
            .iter()
            .map(|(name, r)| (name.as_str(), r.keyids.as_slice()))
            .collect()
    }
    fn listed_key(&self, keyid: &str) -> Option<&Key> {
        self.keys.get(keyid)
    }
    fn set_role(&mut self, role: &str, keyids: Vec<String>, threshold: u64) {
        let r = self.roles.entry(role.to_string()).or_insert(RoleKeys {
            keyids: Vec::new(),
            threshold,
            extra: Map::new(),
        });
        r.keyids = keyids;
        r.threshold = threshold;
    }
    fn insert_key(&mut self, keyid: String, key: Key) {
        self.keys.insert(keyid, key);
    }
    fn unlist_key(&mut self, role: &str, keyid: &str) {
        self.remove_key(role, keyid);
    }
}

/// The roles of `delegations.roles` (hash-bin delegations, `succinct_roles`, are listed for
/// the key-sharing checks but never changed here).
impl KeyTable for Delegations {
    fn role_keys(&self, role: &str) -> Option<(&[String], u64)> {
        self.roles
            .iter()
            .flatten()
            .find(|r| r.name == role)
            .map(|r| (r.keyids.as_slice(), r.threshold))
    }
    fn listed_roles(&self) -> Vec<(&str, &[String])> {
        let mut out: Vec<(&str, &[String])> = self
            .roles
            .iter()
            .flatten()
            .map(|r| (r.name.as_str(), r.keyids.as_slice()))
            .collect();
        if let Some(s) = &self.succinct_roles {
            out.push((s.name_prefix.as_str(), s.keyids.as_slice()));
        }
        out
    }
    fn listed_key(&self, keyid: &str) -> Option<&Key> {
        self.keys.get(keyid)
    }
    fn set_role(&mut self, role: &str, keyids: Vec<String>, threshold: u64) {
        if let Some(r) = self.roles.iter_mut().flatten().find(|r| r.name == role) {
            r.keyids = keyids;
            r.threshold = threshold;
        }
    }
    fn insert_key(&mut self, keyid: String, key: Key) {
        self.keys.insert(keyid, key);
    }
    fn unlist_key(&mut self, role: &str, keyid: &str) {
        if let Some(r) = self.roles.iter_mut().flatten().find(|r| r.name == role) {
            r.keyids.retain(|k| k != keyid);
        }
        let used = self
            .listed_roles()
            .iter()
            .any(|(_, ids)| ids.iter().any(|k| k == keyid));
        if !used {
            self.keys.remove(keyid);
        }
    }
}

/// What to do to the keys of one role.
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

/// Any [`KeyTable`] after a [`Change`], with what changed.
#[derive(Debug, Clone)]
pub struct AppliedKeys<T> {
    /// The new table.
    pub table: T,
    /// Full ids of the keys added.
    pub added: Vec<String>,
    /// Full ids of the keys removed.
    pub removed: Vec<String>,
}

/// Apply `change` to a copy of `old`.
pub fn apply(old: &Root, change: &Change) -> Result<Applied, RotateError> {
    let a = apply_keys(old, change)?;
    Ok(Applied {
        root: a.table,
        added: a.added,
        removed: a.removed,
    })
}

/// Apply `change` to a copy of `old`, a root or the delegations of targets metadata.
pub fn apply_keys<T: KeyTable>(old: &T, change: &Change) -> Result<AppliedKeys<T>, RotateError> {
    let role = change.role.as_str();
    let (current_ids, current_threshold) =
        old.role_keys(role)
            .ok_or_else(|| RotateError::UnknownRole {
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
    let kept: Vec<String> = current_ids
        .iter()
        .filter(|k| !removed.contains(k))
        .cloned()
        .collect();
    let threshold = change.threshold.unwrap_or(current_threshold);
    check_threshold(role, threshold, kept.len() + added.len(), &removed)?;
    if added.is_empty() && removed.is_empty() && threshold == current_threshold {
        return Err(RotateError::NothingToChange {
            role: role.to_string(),
            threshold,
        });
    }

    let mut table = old.clone();
    for id in &removed {
        table.unlist_key(role, id);
    }
    let mut keyids = kept;
    keyids.extend(added.iter().cloned());
    table.set_role(role, keyids, threshold);
    for (id, key) in &change.add {
        table.insert_key(id.clone(), key.clone());
    }
    Ok(AppliedKeys {
        table,
        added,
        removed,
    })
}

/// Refuse a role left with no keys (`removed` being what the change removes), a threshold
/// of 0, or one above the `keys` the role would have.
pub fn check_threshold(
    role: &str,
    threshold: u64,
    keys: usize,
    removed: &[String],
) -> Result<(), RotateError> {
    if keys == 0 {
        return Err(RotateError::LastKey {
            role: role.to_string(),
            removed: removed.to_vec(),
        });
    }
    if threshold == 0 {
        return Err(RotateError::ThresholdZero {
            role: role.to_string(),
        });
    }
    if threshold > keys as u64 {
        return Err(RotateError::ThresholdAboveKeys {
            role: role.to_string(),
            threshold,
            keys,
        });
    }
    Ok(())
}

/// The full id of the key of `role` that `given` names (an id, or a unique prefix).
fn resolve<T: KeyTable>(table: &T, role: &str, given: &str) -> Result<String, RotateError> {
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
    let listed = table
        .role_keys(role)
        .map(|(ids, _)| ids.to_vec())
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
    for (other, ids) in table.listed_roles() {
        if other != role {
            if let Some(id) = matching(ids).into_iter().next() {
                return Err(RotateError::KeyOfOtherRole {
                    role: role.to_string(),
                    keyid: id,
                    other: other.to_string(),
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

/// A key to add must be new to the role and to every other role of `table` (by id and by
/// public key: one public key under two ids would count once towards a threshold). `added`:
/// the ids added before it in the same change.
pub fn check_new_key<T: KeyTable>(
    table: &T,
    role: &str,
    id: &str,
    key: &Key,
    added: &[String],
) -> Result<(), RotateError> {
    let same_key = |other_id: &str| {
        other_id == id
            || table.listed_key(other_id).is_some_and(|k| {
                k.keytype == key.keytype && k.keyval.public.trim() == key.keyval.public.trim()
            })
    };
    if added.iter().any(|a| a == id) {
        return Err(RotateError::KeyAlreadyListed {
            role: role.to_string(),
            keyid: id.to_string(),
        });
    }
    for (name, ids) in table.listed_roles() {
        if let Some(listed) = ids.iter().find(|k| same_key(k)) {
            return Err(if name == role {
                RotateError::KeyAlreadyListed {
                    role: role.to_string(),
                    keyid: listed.clone(),
                }
            } else {
                RotateError::KeyOfAnotherRole {
                    keyid: listed.clone(),
                    other: name.to_string(),
                }
            });
        }
    }
    Ok(())
}
