//! Roles and targets that passed verification. Only the state machine in
//! [`crate::trusted`] constructs these, so holding one is proof of the checks.
use ota_formats::hash::Hashes;
use ota_formats::metadata::{Root, Snapshot, TargetFile, Targets, Timestamp};
use serde_json::Value;
use std::ops::Deref;

/// A role's metadata that passed signature, version, expiry and snapshot checks.
#[derive(Debug, Clone)]
pub struct Verified<T> {
    name: String,
    signed: T,
}

impl<T> Verified<T> {
    pub(crate) fn new(name: impl Into<String>, signed: T) -> Self {
        Verified {
            name: name.into(),
            signed,
        }
    }

    /// The role name ("root", "targets", or a delegated role's name).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The verified `signed` content.
    pub fn signed(&self) -> &T {
        &self.signed
    }
}

impl<T> Deref for Verified<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.signed
    }
}

/// The trusted root.
pub type VerifiedRoot = Verified<Root>;
/// The trusted timestamp.
pub type VerifiedTimestamp = Verified<Timestamp>;
/// The trusted snapshot.
pub type VerifiedSnapshot = Verified<Snapshot>;
/// A trusted targets role (top-level or delegated).
pub type VerifiedTargets = Verified<Targets>;

/// A target path and its entry, proven by the delegation chain from the top-level targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTarget {
    path: String,
    file: TargetFile,
    role: String,
}

impl VerifiedTarget {
    pub(crate) fn new(path: impl Into<String>, file: TargetFile, role: impl Into<String>) -> Self {
        VerifiedTarget {
            path: path.into(),
            file,
            role: role.into(),
        }
    }

    /// The target path, as listed in metadata.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full signed entry (length, hashes, custom).
    pub fn file(&self) -> &TargetFile {
        &self.file
    }

    /// Name of the targets role that listed it.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Length in bytes.
    pub fn length(&self) -> u64 {
        self.file.length
    }

    /// Listed hashes.
    pub fn hashes(&self) -> &Hashes {
        &self.file.hashes
    }

    /// Application-specific signed data.
    pub fn custom(&self) -> Option<&Value> {
        self.file.custom.as_ref()
    }
}
