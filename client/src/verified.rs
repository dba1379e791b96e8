//! Roles and targets that passed verification. The roles ([`Verified`] and its aliases) come
//! from the state machine in `ota_formats::trust`, the only code that constructs them;
//! [`VerifiedTarget`] comes from this crate's target search through the delegations of verified
//! roles, the only code that constructs it. Holding one is proof of the checks.
use ota_formats::hash::Hashes;
use ota_formats::metadata::TargetFile;
pub use ota_formats::trust::{
    Verified, VerifiedRoot, VerifiedSnapshot, VerifiedTargets, VerifiedTimestamp,
};
use serde_json::Value;

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
