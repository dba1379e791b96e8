//! Configuration of the [`crate::Updater`].
use crate::clock::{Clock, SystemClock};
use crate::transport::{
    DirTransport, HttpTransport, TlsSettings, TransferBounds, Transport, TransportError,
};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

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
    /// Target entries of delegated roles kept in memory between lookups. Past it, the roles
    /// searched longest ago are forgotten and verified again from the metadata directory when
    /// a search needs them, so memory stays flat however many roles and targets a repository
    /// has (a single role larger than this is still held while it is searched).
    pub resident_target_entries: usize,
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
            resident_target_entries: 4096,
        }
    }
}

/// Time bounds of HTTP fetches in whole seconds, as written in a device's `config.json`
/// (`"transfer": {...}`); absent keys take their defaults. See [`TransferBounds`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransferSettings {
    /// Deadline per metadata file (seconds); `null` for none.
    pub metadata_deadline_secs: Option<u64>,
    /// Deadline per target file (seconds); `null` (the default) for none beyond what the
    /// rate floor implies for the target's length.
    pub target_deadline_secs: Option<u64>,
    /// Lowest average rate accepted after the grace period (bytes per second); 0 disables.
    pub min_rate_bytes_per_sec: u64,
    /// Seconds from each request before the rate floor applies.
    pub grace_secs: u64,
    /// Longest silence (seconds) accepted while waiting for data without a deadline.
    pub stall_secs: u64,
}

impl Default for TransferSettings {
    fn default() -> Self {
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        TransferSettings {
            metadata_deadline_secs: secs(TransferBounds::METADATA.deadline),
            target_deadline_secs: secs(TransferBounds::TARGETS.deadline),
            min_rate_bytes_per_sec: TransferBounds::TARGETS.min_rate,
            grace_secs: TransferBounds::TARGETS.grace.as_secs(),
            stall_secs: TransferBounds::TARGETS.stall.as_secs(),
        }
    }
}

impl TransferSettings {
    /// Whether every value is the default (then `config.json` need not mention them).
    pub fn is_default(&self) -> bool {
        *self == TransferSettings::default()
    }

    /// Refuse values that would make every fetch fail: a deadline of 0 s.
    pub fn validate(&self) -> Result<(), String> {
        for (key, v) in [
            ("metadata_deadline_secs", self.metadata_deadline_secs),
            ("target_deadline_secs", self.target_deadline_secs),
        ] {
            if v == Some(0) {
                return Err(format!(
                    "transfer.{key} must be at least 1 (or null for none)"
                ));
            }
        }
        if self.stall_secs == 0 {
            return Err("transfer.stall_secs must be at least 1".into());
        }
        Ok(())
    }

    fn bounds(&self, deadline_secs: Option<u64>) -> TransferBounds {
        TransferBounds {
            deadline: deadline_secs.map(Duration::from_secs),
            min_rate: self.min_rate_bytes_per_sec,
            grace: Duration::from_secs(self.grace_secs),
            stall: Duration::from_secs(self.stall_secs),
        }
    }

    /// Bounds for metadata fetches.
    pub fn metadata_bounds(&self) -> TransferBounds {
        self.bounds(self.metadata_deadline_secs)
    }

    /// Bounds for target fetches.
    pub fn target_bounds(&self) -> TransferBounds {
        self.bounds(self.target_deadline_secs)
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
    /// Fetches use the default [`TransferSettings`].
    pub fn http(
        metadata_dir: impl Into<PathBuf>,
        metadata_url: &str,
        targets_url: &str,
    ) -> Result<Self, TransportError> {
        Self::http_with(
            metadata_dir,
            metadata_url,
            targets_url,
            &TransferSettings::default(),
        )
    }

    /// Like [`UpdaterConfig::http`], with the given time bounds for metadata and targets.
    pub fn http_with(
        metadata_dir: impl Into<PathBuf>,
        metadata_url: &str,
        targets_url: &str,
        transfer: &TransferSettings,
    ) -> Result<Self, TransportError> {
        Self::http_with_tls(
            metadata_dir,
            metadata_url,
            targets_url,
            transfer,
            &TlsSettings::default(),
        )
    }

    /// Like [`UpdaterConfig::http_with`], connecting as `tls` says (trusted CA or pinned
    /// key, client certificate, proxy, TLS version).
    pub fn http_with_tls(
        metadata_dir: impl Into<PathBuf>,
        metadata_url: &str,
        targets_url: &str,
        transfer: &TransferSettings,
        tls: &TlsSettings,
    ) -> Result<Self, TransportError> {
        Ok(Self::new(
            metadata_dir,
            Box::new(HttpTransport::with_tls(
                metadata_url,
                transfer.metadata_bounds(),
                tls,
            )?),
            Box::new(HttpTransport::with_tls(
                targets_url,
                transfer.target_bounds(),
                tls,
            )?),
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
