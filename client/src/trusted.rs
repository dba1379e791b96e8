//! The verification state machine of the TUF client workflow (specification section 5),
//! without any I/O: it is fed bytes and a reference time, and either accepts them into the
//! trusted set or says precisely why not.
//!
//! Order is enforced: root (any number of times) → timestamp → snapshot → targets →
//! delegated targets. Intermediate timestamp and snapshot metadata may be kept even when they
//! are not valid as *final* (expired, or not the version the timestamp lists), because they
//! still protect against rollback; the final checks then stop the next step.
use crate::delegation_index::DelegationIndex;
use crate::verified::{VerifiedRoot, VerifiedSnapshot, VerifiedTargets, VerifiedTimestamp};
use crate::{verify, Error, Result};
use chrono::{DateTime, Utc};
use ota_formats::metadata::{MetaFile, RawMetadata, RoleType, Root, Snapshot, Targets, Timestamp};
use std::collections::BTreeMap;

/// A loaded targets role, with the delegators it was verified against.
struct LoadedTargets {
    verified: VerifiedTargets,
    /// Built once here so lookups through this role's delegations do not scan them.
    index: DelegationIndex,
    raw: RawMetadata,
    verified_by: Vec<String>,
}

/// The set of metadata trusted so far in one refresh.
pub struct TrustedSet {
    now: DateTime<Utc>,
    root: VerifiedRoot,
    timestamp: Option<VerifiedTimestamp>,
    snapshot: Option<VerifiedSnapshot>,
    targets: BTreeMap<String, LoadedTargets>,
}

fn expired(role: &str, expires: DateTime<Utc>) -> Error {
    Error::ExpiredMetadata {
        role: role.to_string(),
        expires,
    }
}

impl TrustedSet {
    /// Start from locally trusted root bytes, verified only by themselves. An expired root is
    /// accepted here: expiry is checked on the final root, before the timestamp is loaded.
    pub fn new(root_bytes: &[u8], now: DateTime<Utc>) -> Result<Self> {
        let (raw, root) = verify::parse::<Root>("root", root_bytes)?;
        verify::by_root(&root, "root", &raw)?;
        Ok(TrustedSet {
            now,
            root: VerifiedRoot::new("root", root),
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
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
        self.targets.get("targets").map(|l| &l.verified)
    }

    /// The loaded targets role named `role`, if any.
    pub fn targets_role(&self, role: &str) -> Option<&VerifiedTargets> {
        self.targets.get(role).map(|l| &l.verified)
    }

    /// The loaded role `role` with the index of its delegations.
    pub(crate) fn targets_role_indexed(
        &self,
        role: &str,
    ) -> Option<(&VerifiedTargets, &DelegationIndex)> {
        self.targets.get(role).map(|l| (&l.verified, &l.index))
    }

    /// Every loaded targets role (top-level and delegated), by name.
    pub fn all_targets(&self) -> impl Iterator<Item = &VerifiedTargets> {
        self.targets.values().map(|l| &l.verified)
    }

    /// Verify `bytes` as the next root: signed by the trusted root's root keys AND by its own,
    /// with version exactly one more. Expiry is not checked here (intermediate roots may be
    /// expired).
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<&VerifiedRoot> {
        if self.timestamp.is_some() {
            return Err(Error::Workflow("root cannot change after timestamp"));
        }
        let (raw, new) = verify::parse::<Root>("root", bytes)?;
        verify::by_root(&self.root, "root", &raw)?;
        let expected = self.root.version + 1;
        if new.version != expected {
            return Err(Error::VersionMismatch {
                role: "root".into(),
                expected,
                actual: new.version,
            });
        }
        verify::by_root(&new, "root", &raw)?;
        self.root = VerifiedRoot::new("root", new);
        Ok(&self.root)
    }

    /// Verify `bytes` as the timestamp. Fails with [`Error::EqualVersion`] when the version is
    /// already trusted (nothing to store). An expired timestamp is kept (for rollback checks of
    /// a later one) but reported as [`Error::ExpiredMetadata`].
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<&VerifiedTimestamp> {
        if self.snapshot.is_some() {
            return Err(Error::Workflow("timestamp cannot change after snapshot"));
        }
        if self.root.is_expired(self.now) {
            return Err(expired("root", self.root.expires));
        }
        let (raw, new) = verify::parse::<Timestamp>("timestamp", bytes)?;
        verify::by_root(&self.root, "timestamp", &raw)?;
        let new_snap = new
            .snapshot_meta()
            .map_err(|source| Error::InvalidMetadata {
                role: "timestamp".into(),
                source,
            })?;
        if let Some(old) = &self.timestamp {
            if new.version < old.version {
                return Err(Error::Rollback {
                    role: "timestamp".into(),
                    trusted: old.version,
                    new: new.version,
                });
            }
            if new.version == old.version {
                return Err(Error::EqualVersion {
                    version: new.version,
                });
            }
            let old_snap = self.snapshot_meta()?;
            if new_snap.version < old_snap.version {
                return Err(Error::Rollback {
                    role: "snapshot".into(),
                    trusted: old_snap.version,
                    new: new_snap.version,
                });
            }
        }
        let ts = self
            .timestamp
            .insert(VerifiedTimestamp::new("timestamp", new));
        if ts.is_expired(self.now) {
            return Err(expired("timestamp", ts.expires));
        }
        Ok(ts)
    }

    /// The `snapshot.json` entry of the trusted timestamp.
    pub fn snapshot_meta(&self) -> Result<&MetaFile> {
        let ts = self
            .timestamp
            .as_ref()
            .ok_or(Error::Workflow("snapshot needs a timestamp first"))?;
        ts.snapshot_meta().map_err(|source| Error::InvalidMetadata {
            role: "timestamp".into(),
            source,
        })
    }

    fn check_final_timestamp(&self) -> Result<()> {
        match &self.timestamp {
            None => Err(Error::Workflow("snapshot needs a timestamp first")),
            Some(ts) if ts.is_expired(self.now) => Err(expired("timestamp", ts.expires)),
            Some(_) => Ok(()),
        }
    }

    /// Verify `bytes` as the snapshot the timestamp lists. `from_cache` skips the length and
    /// hash check (cached bytes were verified when received, and the timestamp may have moved
    /// on since): a cached snapshot then serves as the baseline for rollback checks.
    pub fn update_snapshot(&mut self, bytes: &[u8], from_cache: bool) -> Result<&VerifiedSnapshot> {
        if self.targets.contains_key("targets") {
            return Err(Error::Workflow("snapshot cannot change after targets"));
        }
        self.check_final_timestamp()?;
        if !from_cache {
            verify::against_meta("snapshot", bytes, self.snapshot_meta()?)?;
        }
        let (raw, new) = verify::parse::<Snapshot>("snapshot", bytes)?;
        verify::by_root(&self.root, "snapshot", &raw)?;
        if let Some(old) = &self.snapshot {
            for (file, old_meta) in &old.meta {
                let Some(new_meta) = new.meta.get(file) else {
                    return Err(Error::SnapshotEntryRemoved { file: file.clone() });
                };
                if new_meta.version < old_meta.version {
                    return Err(Error::Rollback {
                        role: file.trim_end_matches(".json").to_string(),
                        trusted: old_meta.version,
                        new: new_meta.version,
                    });
                }
            }
        }
        self.snapshot = Some(VerifiedSnapshot::new("snapshot", new));
        self.check_final_snapshot()
    }

    fn check_final_snapshot(&self) -> Result<&VerifiedSnapshot> {
        let snap = self
            .snapshot
            .as_ref()
            .ok_or(Error::Workflow("targets need a snapshot first"))?;
        if snap.is_expired(self.now) {
            return Err(expired("snapshot", snap.expires));
        }
        let expected = self.snapshot_meta()?.version;
        if snap.version != expected {
            return Err(Error::VersionMismatch {
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
        let meta = snap
            .meta
            .get(&format!("{role}.json"))
            .ok_or_else(|| Error::NotInSnapshot {
                role: role.to_string(),
            })?;
        verify::against_meta(role, bytes, meta)?;
        let (raw, new) = verify::parse::<Targets>(role, bytes)?;
        self.verify_delegation(role, delegator, &raw)?;
        if new.version != meta.version {
            return Err(Error::VersionMismatch {
                role: role.to_string(),
                expected: meta.version,
                actual: new.version,
            });
        }
        if new.is_expired(self.now) {
            return Err(expired(role, new.expires));
        }
        let loaded = LoadedTargets {
            index: DelegationIndex::new(new.delegations.as_ref()),
            verified: VerifiedTargets::new(role, new),
            raw,
            verified_by: vec![delegator.to_string()],
        };
        self.targets.insert(role.to_string(), loaded);
        self.targets
            .get(role)
            .map(|l| &l.verified)
            .ok_or(Error::Workflow("targets role vanished"))
    }

    fn verify_delegation(&self, role: &str, delegator: &str, raw: &RawMetadata) -> Result<()> {
        if delegator == "root" {
            if role != "targets" {
                return Err(Error::NotDelegated {
                    role: role.to_string(),
                    delegator: "root".into(),
                });
            }
            return verify::by_root(&self.root, "targets", raw);
        }
        let parent = self.targets.get(delegator).ok_or(Error::Workflow(
            "a delegator must be loaded before its delegates",
        ))?;
        verify::by_delegator(delegator, &parent.verified, &parent.index, role, raw)
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
            self.verify_delegation(role, delegator, &loaded.raw)?;
            if let Some(l) = self.targets.get_mut(role) {
                l.verified_by.push(delegator.to_string());
            }
        }
        Ok(self.targets.get(role).map(|l| &l.verified))
    }
}
