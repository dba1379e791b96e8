//! The verification state machine of the TUF client workflow (specification section 5),
//! without any I/O: it is fed bytes and a reference time, and either accepts them into the
//! trusted set or says precisely why not.
//!
//! Order is enforced: root (any number of times) → timestamp → snapshot → targets →
//! delegated targets. Intermediate timestamp and snapshot metadata may be kept even when they
//! are not valid as *final* (expired, or not the version the timestamp lists), because they
//! still protect against rollback; the final checks then stop the next step.
use super::delegation_index::DelegationIndex;
use super::entries::EntryIndex;
use super::verified::{VerifiedRoot, VerifiedSnapshot, VerifiedTargets, VerifiedTimestamp};
use super::verify;
use super::{Result, TrustError};
use crate::crypto::Signature;
use crate::metadata::{
    CheckedTargets, MetaFile, Root, Signed, Snapshot, TargetFile, Targets, Timestamp,
};
use chrono::{DateTime, Utc};
use std::collections::btree_map::{BTreeMap, Entry};

/// A loaded targets role, with the delegators it was verified against.
struct LoadedTargets {
    verified: VerifiedTargets,
    /// Built once here so lookups through this role's delegations do not scan them.
    index: DelegationIndex,
    /// Canonical JSON of the `signed` object as received, to verify the role again against
    /// another delegator (and to read entries from, with `entries`).
    canonical: Vec<u8>,
    /// Where the target entries are in `canonical`, when they were not parsed into
    /// `verified.targets` (see [`TrustedSet::index_delegated_entries`]).
    entries: Option<EntryIndex>,
    verified_by: Vec<String>,
}

/// A delegated role trusted for a target path, as its delegator lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegate {
    /// The delegated role's name.
    pub role: String,
    /// Whether a search for the path stops after this role's subtree.
    pub terminating: bool,
}

/// The four top-level roles of a complete chain, taken out of a [`TrustedSet`].
#[derive(Debug, Clone)]
pub struct TopLevel {
    /// The final root.
    pub root: VerifiedRoot,
    /// The timestamp.
    pub timestamp: VerifiedTimestamp,
    /// The snapshot the timestamp lists.
    pub snapshot: VerifiedSnapshot,
    /// The top-level targets the snapshot lists.
    pub targets: VerifiedTargets,
}

/// The set of metadata trusted so far in one refresh.
pub struct TrustedSet {
    now: DateTime<Utc>,
    root: VerifiedRoot,
    timestamp: Option<VerifiedTimestamp>,
    snapshot: Option<VerifiedSnapshot>,
    targets: BTreeMap<String, LoadedTargets>,
    index_entries: bool,
}

impl TrustedSet {
    /// Start from locally trusted root bytes, verified only by themselves. An expired root is
    /// accepted here: expiry is checked on the final root, before the timestamp is loaded.
    pub fn new(root_bytes: &[u8], now: DateTime<Utc>) -> Result<Self> {
        let root = verify::parse::<Root>("root", root_bytes)?;
        verify::by_root(&root.role, "root", &root.canonical, &root.signatures)?;
        Ok(TrustedSet {
            now,
            root: VerifiedRoot::new("root", root.role, root.signatures),
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
            index_entries: false,
        })
    }

    /// Like [`TrustedSet::new`], for repository editors, whose job is to re-sign metadata that
    /// expired: every rule is checked except expiry. The reference time is the earliest one
    /// representable, at which nothing has expired. Never use it to decide what to install.
    pub fn new_ignoring_expiry(root_bytes: &[u8]) -> Result<Self> {
        Self::new(root_bytes, DateTime::<Utc>::MIN_UTC)
    }

    /// Keep the target entries of delegated roles loaded from now on as their verified
    /// canonical bytes with an index, instead of parsing them into maps: every entry is still
    /// checked when the role is loaded, but only the entries asked for are parsed, and a role
    /// costs its canonical bytes plus 16 bytes per target in memory. For clients, which look
    /// a few entries up; `targets_role(role).targets` is then empty for delegated roles, so
    /// read entries with [`TrustedSet::target`] and [`TrustedSet::target_paths`].
    pub fn index_delegated_entries(&mut self) {
        self.index_entries = true;
    }

    /// The entry of `path` in loaded targets role `role`, as verified (`Ok(None)` when the
    /// role does not list it).
    pub fn target(&self, role: &str, path: &str) -> Result<Option<TargetFile>> {
        let loaded = self
            .targets
            .get(role)
            .ok_or(TrustError::Workflow("targets role not loaded"))?;
        let Some(entries) = &loaded.entries else {
            return Ok(loaded.verified.targets.get(path).cloned());
        };
        entries
            .get(&loaded.canonical, path)
            .transpose()
            .map_err(|e| TrustError::InvalidMetadata {
                role: role.to_string(),
                source: crate::Error::malformed(format!("target {path}"), e),
            })
    }

    /// Every target path loaded targets role `role` lists, sorted (`None` when it is not
    /// loaded).
    pub fn target_paths(&self, role: &str) -> Option<Vec<String>> {
        let loaded = self.targets.get(role)?;
        Some(match &loaded.entries {
            Some(entries) => entries.paths(&loaded.canonical).collect(),
            None => loaded.verified.targets.keys().cloned().collect(),
        })
    }

    /// How many targets loaded targets role `role` lists (`None` when it is not loaded).
    pub fn target_count(&self, role: &str) -> Option<usize> {
        let loaded = self.targets.get(role)?;
        Some(match &loaded.entries {
            Some(entries) => entries.len(),
            None => loaded.verified.targets.len(),
        })
    }

    /// The reference time of this refresh.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The current trusted root.
    pub fn root(&self) -> &VerifiedRoot {
        &self.root
    }

    /// The trusted timestamp, if loaded (possibly not valid as final).
    pub fn timestamp(&self) -> Option<&VerifiedTimestamp> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, if loaded (possibly not valid as final).
    pub fn snapshot(&self) -> Option<&VerifiedSnapshot> {
        self.snapshot.as_ref()
    }

    /// The trusted top-level targets, if loaded.
    pub fn top_targets(&self) -> Option<&VerifiedTargets> {
        self.targets_role("targets")
    }

    /// The loaded targets role named `role`, if any. With [`TrustedSet::index_delegated_entries`]
    /// its `targets` map is empty for delegated roles: use [`TrustedSet::target`].
    pub fn targets_role(&self, role: &str) -> Option<&VerifiedTargets> {
        self.targets.get(role).map(|l| &l.verified)
    }

    /// Every loaded targets role (top-level and delegated), by name.
    pub fn all_targets(&self) -> impl Iterator<Item = &VerifiedTargets> {
        self.targets.values().map(|l| &l.verified)
    }

    /// The roles that loaded targets role `role` delegates `path` to, in the order a search
    /// must visit them (`None` when `role` is not loaded). A succinct hash bin never
    /// terminates a search by itself.
    pub fn delegates_for(&self, role: &str, path: &str) -> Option<Vec<Delegate>> {
        let loaded = self.targets.get(role)?;
        let Some(delegations) = &loaded.verified.delegations else {
            return Some(Vec::new());
        };
        Some(if delegations.roles.is_some() {
            loaded
                .index
                .roles_for(delegations, path)
                .into_iter()
                .map(|r| Delegate {
                    role: r.name.clone(),
                    terminating: r.terminating,
                })
                .collect()
        } else if let Some(s) = &delegations.succinct_roles {
            vec![Delegate {
                role: s.role_for(path),
                terminating: false,
            }]
        } else {
            Vec::new()
        })
    }

    fn expired(&self, expires: DateTime<Utc>) -> bool {
        expires <= self.now
    }

    /// Verify `bytes` as the next root: signed by the trusted root's root keys AND by its own,
    /// with version exactly one more. Expiry is not checked here (intermediate roots may be
    /// expired).
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<&VerifiedRoot> {
        if self.timestamp.is_some() {
            return Err(TrustError::Workflow("root cannot change after timestamp"));
        }
        let new = verify::parse::<Root>("root", bytes)?;
        verify::by_root(&self.root, "root", &new.canonical, &new.signatures)?;
        let expected = self.root.version + 1;
        if new.role.version != expected {
            return Err(TrustError::VersionMismatch {
                role: "root".into(),
                expected,
                actual: new.role.version,
            });
        }
        verify::by_root(&new.role, "root", &new.canonical, &new.signatures)?;
        self.root = VerifiedRoot::new("root", new.role, new.signatures);
        Ok(&self.root)
    }

    /// Verify `bytes` as the timestamp. Fails with [`TrustError::EqualVersion`] when the
    /// version is already trusted (nothing to store). An expired timestamp is kept (for
    /// rollback checks of a later one) but reported as [`TrustError::ExpiredMetadata`].
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<&VerifiedTimestamp> {
        if self.snapshot.is_some() {
            return Err(TrustError::Workflow(
                "timestamp cannot change after snapshot",
            ));
        }
        if self.expired(self.root.expires) {
            return Err(TrustError::expired("root", self.root.expires));
        }
        let new = verify::parse::<Timestamp>("timestamp", bytes)?;
        verify::by_root(&self.root, "timestamp", &new.canonical, &new.signatures)?;
        let new_snap = new
            .role
            .snapshot_meta()
            .map_err(|source| TrustError::InvalidMetadata {
                role: "timestamp".into(),
                source,
            })?;
        if let Some(old) = &self.timestamp {
            if new.role.version < old.version {
                return Err(TrustError::Rollback {
                    role: "timestamp".into(),
                    trusted: old.version,
                    new: new.role.version,
                });
            }
            if new.role.version == old.version {
                return Err(TrustError::EqualVersion {
                    version: new.role.version,
                });
            }
            let old_snap = self.snapshot_meta()?;
            if new_snap.version < old_snap.version {
                return Err(TrustError::Rollback {
                    role: "snapshot".into(),
                    trusted: old_snap.version,
                    new: new_snap.version,
                });
            }
        }
        let expires = new.role.expires;
        let expired = self.expired(expires);
        let ts = self.timestamp.insert(VerifiedTimestamp::new(
            "timestamp",
            new.role,
            new.signatures,
        ));
        if expired {
            return Err(TrustError::expired("timestamp", expires));
        }
        Ok(ts)
    }

    /// The `snapshot.json` entry of the trusted timestamp.
    pub fn snapshot_meta(&self) -> Result<&MetaFile> {
        let ts = self
            .timestamp
            .as_ref()
            .ok_or(TrustError::Workflow("snapshot needs a timestamp first"))?;
        ts.snapshot_meta()
            .map_err(|source| TrustError::InvalidMetadata {
                role: "timestamp".into(),
                source,
            })
    }

    fn check_final_timestamp(&self) -> Result<()> {
        match &self.timestamp {
            None => Err(TrustError::Workflow("snapshot needs a timestamp first")),
            Some(ts) if self.expired(ts.expires) => {
                Err(TrustError::expired("timestamp", ts.expires))
            }
            Some(_) => Ok(()),
        }
    }

    /// Verify `bytes` as the snapshot the timestamp lists. `from_cache` skips the length and
    /// hash check (cached bytes were verified when received, and the timestamp may have moved
    /// on since): a cached snapshot then serves as the baseline for rollback checks.
    pub fn update_snapshot(&mut self, bytes: &[u8], from_cache: bool) -> Result<&VerifiedSnapshot> {
        if self.targets.contains_key("targets") {
            return Err(TrustError::Workflow("snapshot cannot change after targets"));
        }
        self.check_final_timestamp()?;
        if !from_cache {
            verify::against_meta("snapshot", bytes, self.snapshot_meta()?)?;
        }
        let new = verify::parse::<Snapshot>("snapshot", bytes)?;
        verify::by_root(&self.root, "snapshot", &new.canonical, &new.signatures)?;
        if let Some(old) = &self.snapshot {
            for (file, old_meta) in &old.meta {
                let Some(new_meta) = new.role.meta.get(file) else {
                    return Err(TrustError::SnapshotEntryRemoved { file: file.clone() });
                };
                if new_meta.version < old_meta.version {
                    return Err(TrustError::Rollback {
                        role: file.trim_end_matches(".json").to_string(),
                        trusted: old_meta.version,
                        new: new_meta.version,
                    });
                }
            }
        }
        self.snapshot = Some(VerifiedSnapshot::new("snapshot", new.role, new.signatures));
        self.check_final_snapshot()
    }

    fn check_final_snapshot(&self) -> Result<&VerifiedSnapshot> {
        let snap = self
            .snapshot
            .as_ref()
            .ok_or(TrustError::Workflow("targets need a snapshot first"))?;
        if self.expired(snap.expires) {
            return Err(TrustError::expired("snapshot", snap.expires));
        }
        let expected = self.snapshot_meta()?.version;
        if snap.version != expected {
            return Err(TrustError::VersionMismatch {
                role: "snapshot".into(),
                expected,
                actual: snap.version,
            });
        }
        Ok(snap)
    }

    /// Verify `bytes` as the top-level targets.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<&VerifiedTargets> {
        self.update_delegated_targets(bytes, "targets", "root")
    }

    /// Verify `bytes` as targets role `role` delegated by `delegator` ("root" for the
    /// top-level targets): listed in the snapshot with this version (and length/hashes if
    /// given), signed as the delegator requires, not expired.
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
    ) -> Result<&VerifiedTargets> {
        let snap = self.check_final_snapshot()?;
        let meta =
            snap.meta
                .get(&format!("{role}.json"))
                .ok_or_else(|| TrustError::NotInSnapshot {
                    role: role.to_string(),
                })?;
        verify::against_meta(role, bytes, meta)?;
        let index_entries = self.index_entries && role != "targets";
        let new = if index_entries {
            verify::parse::<CheckedTargets>(role, bytes)?.map(|c| c.0)
        } else {
            verify::parse::<Targets>(role, bytes)?
        };
        self.verify_delegation(role, delegator, &new.canonical, &new.signatures)?;
        if new.role.version != meta.version {
            return Err(TrustError::VersionMismatch {
                role: role.to_string(),
                expected: meta.version,
                actual: new.role.version,
            });
        }
        if self.expired(new.role.expires) {
            return Err(TrustError::expired(role, new.role.expires));
        }
        let entries = if index_entries {
            let index =
                EntryIndex::build(&new.canonical).map_err(|_| TrustError::InvalidMetadata {
                    role: role.to_string(),
                    source: crate::Error::Canonical(
                        "no targets object in the canonical form".into(),
                    ),
                })?;
            Some(index)
        } else {
            None
        };
        let loaded = LoadedTargets {
            index: DelegationIndex::new(new.role.delegations.as_ref()),
            verified: VerifiedTargets::new(role, new.role, new.signatures),
            canonical: new.canonical,
            entries,
            verified_by: vec![delegator.to_string()],
        };
        let slot = match self.targets.entry(role.to_string()) {
            Entry::Occupied(mut e) => {
                e.insert(loaded);
                e.into_mut()
            }
            Entry::Vacant(e) => e.insert(loaded),
        };
        Ok(&slot.verified)
    }

    fn verify_delegation(
        &self,
        role: &str,
        delegator: &str,
        signed: &[u8],
        signatures: &[Signature],
    ) -> Result<()> {
        if delegator == "root" {
            if role != "targets" {
                return Err(TrustError::NotDelegated {
                    role: role.to_string(),
                    delegator: "root".into(),
                });
            }
            return verify::by_root(&self.root, "targets", signed, signatures);
        }
        let parent = self.targets.get(delegator).ok_or(TrustError::Workflow(
            "a delegator must be loaded before its delegates",
        ))?;
        verify::by_delegator(
            delegator,
            &parent.verified,
            &parent.index,
            role,
            signed,
            signatures,
        )
    }

    /// The already loaded role `role`, if any, re-verified against `delegator` when it was
    /// reached through another delegator before: a role never inherits authority from an
    /// earlier delegation path.
    pub fn loaded_targets_via(
        &mut self,
        role: &str,
        delegator: &str,
    ) -> Result<Option<&VerifiedTargets>> {
        let Some(loaded) = self.targets.get(role) else {
            return Ok(None);
        };
        if !loaded.verified_by.iter().any(|d| d == delegator) {
            self.verify_delegation(
                role,
                delegator,
                &loaded.canonical,
                loaded.verified.signatures(),
            )?;
            if let Some(l) = self.targets.get_mut(role) {
                l.verified_by.push(delegator.to_string());
            }
        }
        Ok(self.targets.get(role).map(|l| &l.verified))
    }

    /// Drop loaded delegated role `role` from memory (the top-level targets stay), returning
    /// whether it was loaded. A client that bounds its memory forgets roles it has searched
    /// and loads them again, through [`TrustedSet::update_delegated_targets`] and with every
    /// check, when a search reaches them again.
    pub fn forget_targets(&mut self, role: &str) -> bool {
        role != "targets" && self.targets.remove(role).is_some()
    }

    /// Verify `bytes` as a version of the top-level targets that the trusted snapshot does not
    /// list (yet): well formed and signed by the trusted root's targets keys. For repository
    /// editors, whose targets are signed offline before an online snapshot lists them. The
    /// result is not trusted metadata (no snapshot vouches for it), so it is not added to the
    /// set and carries no proof.
    pub fn check_unlisted_targets(&self, bytes: &[u8]) -> Result<Signed<Targets>> {
        let new = verify::parse::<Targets>("targets", bytes)?;
        verify::by_root(&self.root, "targets", &new.canonical, &new.signatures)?;
        Ok(Signed {
            signed: new.role,
            signatures: new.signatures,
        })
    }

    /// Take the four top-level roles out of the set, once all are loaded.
    pub fn into_top_level(mut self) -> Result<TopLevel> {
        let targets = self.targets.remove("targets");
        let (Some(timestamp), Some(snapshot), Some(targets)) =
            (self.timestamp, self.snapshot, targets)
        else {
            return Err(TrustError::Workflow(
                "the top-level roles are not all loaded",
            ));
        };
        Ok(TopLevel {
            root: self.root,
            timestamp,
            snapshot,
            targets: targets.verified,
        })
    }
}
