//! What a request changes, derived from the published metadata and the proposed one: for
//! targets the targets added, removed and changed (paths, lengths, hashes, image name and
//! version); for root the keys added and removed and the thresholds of each role; for both
//! the version and the expiry. [`Changes::lines`] is the human-readable form shown to every
//! key holder before they sign.
//!
//! The summary is always derived, never trusted: `sign-request` recomputes it from the two
//! metadata the request file carries and refuses a file whose stored summary differs.
use crate::keys::short_id;
use chrono::{DateTime, Utc};
use ota_formats::metadata::{Root, TargetFile, Targets};
use ota_formats::target_meta::OtaTarget;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A value before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change<T> {
    /// The published value.
    pub from: T,
    /// The proposed value.
    pub to: T,
}

/// One target as the summary shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSummary {
    /// Target path.
    pub path: String,
    /// Length of the target file.
    pub length: u64,
    /// Its hashes (algorithm → hex).
    pub hashes: BTreeMap<String, String>,
    /// `NAME VERSION` from `custom.ota`, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Hardware ids from `custom.ota`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hardware: Vec<String>,
    /// Whether the target is encrypted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
}

impl TargetSummary {
    fn of(path: &str, t: &TargetFile) -> Self {
        let ota = OtaTarget::from_custom(t.custom.as_ref()).ok().flatten();
        TargetSummary {
            path: path.to_string(),
            length: t.length,
            hashes: t
                .hashes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            image: ota.as_ref().map(|o| format!("{} {}", o.name, o.version)),
            hardware: ota
                .as_ref()
                .map(|o| o.hardware_ids.clone())
                .unwrap_or_default(),
            encrypted: ota.is_some_and(|o| o.encryption.is_some()),
        }
    }

    fn describe(&self) -> String {
        let hashes: Vec<String> = self
            .hashes
            .iter()
            .map(|(a, h)| format!("{a} {h}"))
            .collect();
        let mut s = format!("{} bytes, {}", self.length, hashes.join(", "));
        if let Some(image) = &self.image {
            s.push_str(&format!(", image {image}"));
        }
        if !self.hardware.is_empty() {
            s.push_str(&format!(", hardware {}", self.hardware.join(",")));
        }
        if self.encrypted {
            s.push_str(", encrypted");
        }
        s
    }
}

/// A target whose entry changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedTarget {
    /// The published entry.
    pub from: TargetSummary,
    /// The proposed entry.
    pub to: TargetSummary,
}

/// What changes in the targets role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetChanges {
    /// New targets.
    pub added: Vec<TargetSummary>,
    /// Targets no longer listed.
    pub removed: Vec<TargetSummary>,
    /// Targets listed with another entry (file, length, hashes or custom metadata).
    pub changed: Vec<ChangedTarget>,
    /// Targets listed as before.
    pub unchanged: usize,
    /// Whether the delegations change.
    pub delegations_changed: bool,
}

/// What changes for one role in root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChange {
    /// Key ids added to the role.
    pub keys_added: Vec<String>,
    /// Key ids removed from the role.
    pub keys_removed: Vec<String>,
    /// The threshold, when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Change<u64>>,
    /// Keys and threshold after the change.
    pub keys_after: usize,
    /// Threshold after the change.
    pub threshold_after: u64,
}

/// What changes in root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootChanges {
    /// Roles whose keys or threshold change (roles added or removed included).
    pub roles: BTreeMap<String, RoleChange>,
    /// `consistent_snapshot`, when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_snapshot: Option<Change<Option<bool>>>,
}

/// Everything a request changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// The role.
    pub role: String,
    /// Its version.
    pub version: Change<u64>,
    /// Its expiry.
    pub expires: Change<DateTime<Utc>>,
    /// For targets: the targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<TargetChanges>,
    /// For root: keys and thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootChanges>,
}

impl Changes {
    /// What `new` changes from `old` (targets).
    pub fn targets(old: &Targets, new: &Targets) -> Self {
        let mut c = TargetChanges {
            added: Vec::new(),
            removed: Vec::new(),
            changed: Vec::new(),
            unchanged: 0,
            delegations_changed: serde_json::to_value(&old.delegations).ok()
                != serde_json::to_value(&new.delegations).ok(),
        };
        for (path, t) in &new.targets {
            match old.targets.get(path) {
                None => c.added.push(TargetSummary::of(path, t)),
                Some(o) if o == t => c.unchanged += 1,
                Some(o) => c.changed.push(ChangedTarget {
                    from: TargetSummary::of(path, o),
                    to: TargetSummary::of(path, t),
                }),
            }
        }
        for (path, t) in &old.targets {
            if !new.targets.contains_key(path) {
                c.removed.push(TargetSummary::of(path, t));
            }
        }
        Changes {
            role: "targets".into(),
            version: Change {
                from: old.version,
                to: new.version,
            },
            expires: Change {
                from: old.expires,
                to: new.expires,
            },
            targets: Some(c),
            root: None,
        }
    }

    /// What `new` changes from `old` (root).
    pub fn root(old: &Root, new: &Root) -> Self {
        let names: BTreeSet<&String> = old.roles.keys().chain(new.roles.keys()).collect();
        let mut roles = BTreeMap::new();
        for name in names {
            let empty = Vec::new();
            let (old_ids, old_t) = old
                .roles
                .get(name)
                .map_or((&empty, 0), |r| (&r.keyids, r.threshold));
            let (new_ids, new_t) = new
                .roles
                .get(name)
                .map_or((&empty, 0), |r| (&r.keyids, r.threshold));
            // A key listed under the same id but with another public key is a change too.
            let key_changed = |id: &String| old.keys.get(id) != new.keys.get(id);
            let added: Vec<String> = new_ids
                .iter()
                .filter(|id| !old_ids.contains(id) || key_changed(id))
                .cloned()
                .collect();
            let removed: Vec<String> = old_ids
                .iter()
                .filter(|id| !new_ids.contains(id) || key_changed(id))
                .cloned()
                .collect();
            if added.is_empty() && removed.is_empty() && old_t == new_t {
                continue;
            }
            roles.insert(
                name.clone(),
                RoleChange {
                    keys_added: added,
                    keys_removed: removed,
                    threshold: (old_t != new_t).then_some(Change {
                        from: old_t,
                        to: new_t,
                    }),
                    keys_after: new_ids.len(),
                    threshold_after: new_t,
                },
            );
        }
        let consistent_snapshot =
            (old.consistent_snapshot != new.consistent_snapshot).then_some(Change {
                from: old.consistent_snapshot,
                to: new.consistent_snapshot,
            });
        Changes {
            role: "root".into(),
            version: Change {
                from: old.version,
                to: new.version,
            },
            expires: Change {
                from: old.expires,
                to: new.expires,
            },
            targets: None,
            root: Some(RootChanges {
                roles,
                consistent_snapshot,
            }),
        }
    }

    /// Whether anything but the version and the expiry changes.
    pub fn content_changes(&self) -> bool {
        let t = self.targets.as_ref().is_some_and(|t| {
            !(t.added.is_empty() && t.removed.is_empty() && t.changed.is_empty())
                || t.delegations_changed
        });
        let r = self
            .root
            .as_ref()
            .is_some_and(|r| !r.roles.is_empty() || r.consistent_snapshot.is_some());
        t || r
    }

    /// The human-readable summary, one line each.
    pub fn lines(&self) -> Vec<String> {
        let fmt = |t: &DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
        let mut out = vec![
            format!(
                "{} version {} -> {}",
                self.role, self.version.from, self.version.to
            ),
            format!(
                "expires {} (was {})",
                fmt(&self.expires.to),
                fmt(&self.expires.from)
            ),
        ];
        if let Some(t) = &self.targets {
            for a in &t.added {
                out.push(format!("+ target {}: {}", a.path, a.describe()));
            }
            for c in &t.changed {
                out.push(format!("~ target {}: {}", c.to.path, c.to.describe()));
                out.push(format!("    was: {}", c.from.describe()));
            }
            for r in &t.removed {
                out.push(format!("- target {}: {}", r.path, r.describe()));
            }
            if t.delegations_changed {
                out.push("~ delegations change".into());
            }
            out.push(format!(
                "targets: {} added, {} changed, {} removed, {} unchanged",
                t.added.len(),
                t.changed.len(),
                t.removed.len(),
                t.unchanged
            ));
        }
        if let Some(r) = &self.root {
            for (role, c) in &r.roles {
                for k in &c.keys_added {
                    out.push(format!("+ {role} key {}", short_id(k)));
                }
                for k in &c.keys_removed {
                    out.push(format!("- {role} key {}", short_id(k)));
                }
                if let Some(t) = &c.threshold {
                    out.push(format!("~ {role} threshold {} -> {}", t.from, t.to));
                }
                out.push(format!(
                    "  {role}: {} of {} key(s) after the change",
                    c.threshold_after, c.keys_after
                ));
            }
            if let Some(cs) = &r.consistent_snapshot {
                out.push(format!(
                    "~ consistent_snapshot {:?} -> {:?}",
                    cs.from, cs.to
                ));
            }
            if r.roles.is_empty() && r.consistent_snapshot.is_none() {
                out.push("keys and thresholds unchanged (a re-sign)".into());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ota_formats::crypto::{Ed25519Signer, Signer};

    #[test]
    fn targets_added_removed_and_changed_are_listed_with_hashes() {
        let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let mut old = Targets::new(4, t0);
        old.targets.insert("a".into(), TargetFile::from_bytes(b"a"));
        old.targets.insert("b".into(), TargetFile::from_bytes(b"b"));
        old.targets.insert("c".into(), TargetFile::from_bytes(b"c"));
        let mut new = old.clone();
        new.version = 5;
        new.targets.remove("a");
        new.targets
            .insert("b".into(), TargetFile::from_bytes(b"bb"));
        new.targets
            .insert("d".into(), TargetFile::from_bytes(b"dddd"));
        let c = Changes::targets(&old, &new);
        let t = c.targets.as_ref().unwrap();
        assert_eq!(t.added[0].path, "d");
        assert_eq!(t.added[0].length, 4);
        assert_eq!(t.removed[0].path, "a");
        assert_eq!(t.changed[0].to.length, 2);
        assert_eq!(t.unchanged, 1);
        assert!(c.content_changes());
        let lines = c.lines().join("\n");
        assert!(lines.contains("targets version 4 -> 5"), "{lines}");
        assert!(
            lines.contains(&format!(
                "+ target d: 4 bytes, sha256 {}",
                ota_formats::hash::sha256_hex(b"dddd")
            )),
            "{lines}"
        );
        assert!(lines.contains("- target a"), "{lines}");
        assert!(lines.contains("~ target b: 2 bytes"), "{lines}");
        // Only the version and expiry: no content change.
        let mut same = old.clone();
        same.version = 5;
        assert!(!Changes::targets(&old, &same).content_changes());
    }

    #[test]
    fn root_key_and_threshold_changes_are_listed() {
        let t0 = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
        let keys: Vec<Ed25519Signer> = (1..=3u8)
            .map(|i| Ed25519Signer::from_seed(&[i; 32]))
            .collect();
        let mut old = Root::new(1, t0);
        old.add_key("root", keys[0].public_key()).unwrap();
        old.add_key("root", keys[1].public_key()).unwrap();
        let mut new = old.clone();
        new.version = 2;
        new.remove_key("root", &keys[0].key_id().unwrap());
        new.add_key("root", keys[2].public_key()).unwrap();
        new.roles.get_mut("root").unwrap().threshold = 2;
        let c = Changes::root(&old, &new);
        let r = &c.root.as_ref().unwrap().roles["root"];
        assert_eq!(r.keys_added, vec![keys[2].key_id().unwrap()]);
        assert_eq!(r.keys_removed, vec![keys[0].key_id().unwrap()]);
        assert_eq!(r.threshold, Some(Change { from: 1, to: 2 }));
        let lines = c.lines().join("\n");
        assert!(lines.contains("~ root threshold 1 -> 2"), "{lines}");
        assert!(lines.contains(&format!(
            "+ root key {}",
            short_id(&keys[2].key_id().unwrap())
        )));
        let mut resign = old.clone();
        resign.version = 2;
        assert!(!Changes::root(&old, &resign).content_changes());
        assert!(Changes::root(&old, &resign)
            .lines()
            .join("\n")
            .contains("a re-sign"));
    }
}
