//! The verification state machine of the TUF client workflow: [`ota_formats::trust::TrustedSet`]
//! (pure, no I/O: fed bytes and a reference time), with this crate's [`Error`](crate::Error).
//!
//! Everything that reads the set (`root()`, `timestamp()`, `snapshot()`, `top_targets()`,
//! `targets_role()`, `delegates_for()`, ...) comes through `Deref`; the steps that change it
//! are here, each returning the client's error (the same variants, messages and exit codes).
use crate::verified::{VerifiedRoot, VerifiedSnapshot, VerifiedTargets, VerifiedTimestamp};
use crate::Result;
use chrono::{DateTime, Utc};
use ota_formats::metadata::{MetaFile, TargetFile};
use ota_formats::trust;
use std::ops::Deref;

/// The set of metadata trusted so far in one refresh.
pub struct TrustedSet(trust::TrustedSet);

impl Deref for TrustedSet {
    type Target = trust::TrustedSet;
    fn deref(&self) -> &trust::TrustedSet {
        &self.0
    }
}

impl TrustedSet {
    /// Start from locally trusted root bytes, verified only by themselves. An expired root is
    /// accepted here: expiry is checked on the final root, before the timestamp is loaded.
    /// Delegated roles keep their target entries as verified bytes with an index, parsed
    /// when looked up ([`trust::TrustedSet::index_delegated_entries`]): read them with
    /// [`TrustedSet::target`] and `target_paths`.
    pub fn new(root_bytes: &[u8], now: DateTime<Utc>) -> Result<Self> {
        let mut set = trust::TrustedSet::new(root_bytes, now)?;
        set.index_delegated_entries();
        Ok(TrustedSet(set))
    }

    /// The verified entry of `path` in loaded targets role `role`, if it lists it.
    pub fn target(&self, role: &str, path: &str) -> Result<Option<TargetFile>> {
        Ok(self.0.target(role, path)?)
    }

    /// Verify `bytes` as the next root: signed by the trusted root's root keys AND by its own,
    /// with version exactly one more. Expiry is not checked here.
    pub fn update_root(&mut self, bytes: &[u8]) -> Result<&VerifiedRoot> {
        Ok(self.0.update_root(bytes)?)
    }

    /// Verify `bytes` as the timestamp. Fails with [`Error::EqualVersion`] when the version is
    /// already trusted (nothing to store). An expired timestamp is kept (for rollback checks of
    /// a later one) but reported as [`crate::Error::ExpiredMetadata`].
    pub fn update_timestamp(&mut self, bytes: &[u8]) -> Result<&VerifiedTimestamp> {
        Ok(self.0.update_timestamp(bytes)?)
    }

    /// The `snapshot.json` entry of the trusted timestamp.
    pub fn snapshot_meta(&self) -> Result<&MetaFile> {
        Ok(self.0.snapshot_meta()?)
    }

    /// Verify `bytes` as the snapshot the timestamp lists. `from_cache` skips the length and
    /// hash check (cached bytes were verified when received).
    pub fn update_snapshot(&mut self, bytes: &[u8], from_cache: bool) -> Result<&VerifiedSnapshot> {
        Ok(self.0.update_snapshot(bytes, from_cache)?)
    }

    /// Verify `bytes` as the top-level targets.
    pub fn update_targets(&mut self, bytes: &[u8]) -> Result<&VerifiedTargets> {
        Ok(self.0.update_targets(bytes)?)
    }

    /// Verify `bytes` as targets role `role` delegated by `delegator` ("root" for the
    /// top-level targets).
    pub fn update_delegated_targets(
        &mut self,
        bytes: &[u8],
        role: &str,
        delegator: &str,
    ) -> Result<&VerifiedTargets> {
        Ok(self.0.update_delegated_targets(bytes, role, delegator)?)
    }

    /// Drop loaded delegated role `role` from memory; see
    /// [`ota_formats::trust::TrustedSet::forget_targets`].
    pub fn forget_targets(&mut self, role: &str) -> bool {
        self.0.forget_targets(role)
    }

    /// The already loaded role `role`, if any, re-verified against `delegator` when it was
    /// reached through another delegator before.
    pub fn loaded_targets_via(
        &mut self,
        role: &str,
        delegator: &str,
    ) -> Result<Option<&VerifiedTargets>> {
        Ok(self.0.loaded_targets_via(role, delegator)?)
    }
}
