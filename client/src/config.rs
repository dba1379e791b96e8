//! Configuration of the [`crate::Updater`].
use crate::clock::{Clock, SystemClock};
use crate::transport::{DirTransport, HttpTransport, Transport, TransportError};
use std::path::PathBuf;

/// Caps that stop endless-data and runaway-graph attacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest root metadata accepted (bytes).
    pub root: u64,
    /// Largest timestamp metadata accepted (bytes).
    pub timestamp: u64,
    /// Largest snapshot when the timestamp lists no length (bytes).
    pub snapshot: u64,
    /// Largest targets role when the snapshot lists no length (bytes).
    pub targets: u64,
    /// Most root versions walked in one refresh.
    pub max_root_rotations: u64,
    /// Most targets roles visited in one target search.
    pub max_delegations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            root: 512 * 1024,
            timestamp: 16 * 1024,
            snapshot: 32 * 1024 * 1024,
            targets: 32 * 1024 * 1024,
            max_root_rotations: 256,
            max_delegations: 256,
        }
    }
}

/// Everything an [`crate::Updater`] needs.
pub struct UpdaterConfig {
    /// Directory of trusted metadata; must already hold a trusted `root.json`.
    pub metadata_dir: PathBuf,
    /// Where metadata files are fetched from.
    pub metadata: Box<dyn Transport>,
    /// Where target files are fetched from.
    pub targets: Box<dyn Transport>,
    /// Download caps.
    pub limits: Limits,
    /// With consistent snapshots, fetch targets as `dir/<hash>.name` (the specification's
    /// layout). Turn off for repositories that publish targets only under their plain path.
    pub prefix_targets_with_hash: bool,
    /// Source of the reference time.
    pub clock: Box<dyn Clock>,
}

impl UpdaterConfig {
    /// A configuration with default limits and the system clock.
    pub fn new(
        metadata_dir: impl Into<PathBuf>,
        metadata: Box<dyn Transport>,
        targets: Box<dyn Transport>,
    ) -> Self {
        UpdaterConfig {
            metadata_dir: metadata_dir.into(),
            metadata,
            targets,
            limits: Limits::default(),
            prefix_targets_with_hash: true,
            clock: Box::new(SystemClock),
        }
    }

    /// A repository served over HTTP(S): `metadata_url` and `targets_url` are base URLs.
    pub fn http(
        metadata_dir: impl Into<PathBuf>,
        metadata_url: &str,
        targets_url: &str,
    ) -> Result<Self, TransportError> {
        Ok(Self::new(
            metadata_dir,
            Box::new(HttpTransport::new(metadata_url)?),
            Box::new(HttpTransport::new(targets_url)?),
        ))
    }

    /// A repository copied to a directory (removable media) with `metadata/` and `targets/`.
    pub fn local_dir(metadata_dir: impl Into<PathBuf>, repo_dir: impl Into<PathBuf>) -> Self {
        let repo = repo_dir.into();
        Self::new(
            metadata_dir,
            Box::new(DirTransport::new(repo.join("metadata"))),
            Box::new(DirTransport::new(repo.join("targets"))),
        )
    }
}
