//! The updater: fetching and caching around the verification state machine.
//!
//! ```no_run
//! use ota_client::{Updater, UpdaterConfig};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = UpdaterConfig::http(
//!     "/var/lib/ota/metadata",
//!     "https://updates.example.com/metadata/",
//!     "https://updates.example.com/targets/",
//! )?;
//! let mut updater = Updater::new(config)?;
//! updater.refresh()?;
//! if let Some(target) = updater.get_target_info("firmware/v2.bin")? {
//!     let dir = std::path::Path::new("/var/lib/ota/downloads");
//!     let path = match updater.find_cached_target(&target, dir)? {
//!         Some(p) => p,
//!         None => updater.download_target(&target, dir)?,
//!     };
//!     println!("verified file at {}", path.display());
//! }
//! # Ok(()) }
//! ```
use crate::config::{Limits, UpdaterConfig};
use crate::metadata_cache::MetadataCache;
use crate::names::metadata_file;
use crate::resident::ResidentRoles;
use crate::role_writer::RoleWriter;
use crate::transport::{fetch_bytes, Transport, TransportError};
use crate::trusted::TrustedSet;
use crate::verified::{VerifiedTarget, VerifiedTargets};
use crate::{clock::Clock, Error, Result};
use ota_formats::metadata::RoleKeys;

/// A TUF client bound to one repository and one metadata directory.
pub struct Updater {
    pub(crate) cache: MetadataCache,
    pub(crate) metadata: Box<dyn Transport>,
    pub(crate) targets: Box<dyn Transport>,
    pub(crate) limits: Limits,
    pub(crate) prefix_targets_with_hash: bool,
    clock: Box<dyn Clock>,
    pub(crate) trusted: TrustedSet,
    resident: ResidentRoles,
    role_writer: RoleWriter,
    refreshed: bool,
}

impl Updater {
    /// Open the metadata directory and load its trusted `root.json` (no network).
    pub fn new(config: UpdaterConfig) -> Result<Self> {
        let cache = MetadataCache::open(&config.metadata_dir)?;
        let trusted = Self::load_trusted_root(&cache, config.clock.now())?;
        Ok(Updater {
            cache,
            metadata: config.metadata,
            targets: config.targets,
            limits: config.limits,
            prefix_targets_with_hash: config.prefix_targets_with_hash,
            clock: config.clock,
            trusted,
            resident: ResidentRoles::default(),
            role_writer: RoleWriter::default(),
            refreshed: false,
        })
    }

    /// Install `root_bytes` as the trusted root of a new metadata directory, after checking
    /// that it is a root signed by its own threshold. This is the trust-on-first-use step.
    pub fn bootstrap(metadata_dir: &std::path::Path, root_bytes: &[u8]) -> Result<()> {
        TrustedSet::new(root_bytes, chrono::Utc::now())?;
        MetadataCache::open(metadata_dir)?.store("root", root_bytes)
    }

    fn load_trusted_root(
        cache: &MetadataCache,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<TrustedSet> {
        let path = cache.path("root");
        let bytes = cache.load("root")?.ok_or_else(|| {
            Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no trusted root.json"),
            )
        })?;
        // Only bytes that verified were ever stored here, so a failure is local damage.
        TrustedSet::new(&bytes, now).map_err(|e| Error::CorruptTrustedRoot {
            path: cache.path("root"),
            source: Box::new(e),
        })
    }

    /// Run the top-level refresh of the client workflow: root chain, timestamp, snapshot,
    /// top-level targets. Every role is stored in the metadata directory as soon as it
    /// verifies. Can be called again later for a fresh refresh.
    pub fn refresh(&mut self) -> Result<()> {
        self.refreshed = false;
        self.trusted = Self::load_trusted_root(&self.cache, self.clock.now())?;
        self.resident = ResidentRoles::default();
        // Roles still queued from an earlier refresh are written before any is read back.
        self.role_writer.flush();
        self.update_root()?;
        self.update_timestamp()?;
        self.update_snapshot()?;
        self.load_targets("targets", "root")?;
        self.refreshed = true;
        Ok(())
    }

    fn ensure_refreshed(&mut self) -> Result<()> {
        if self.refreshed {
            Ok(())
        } else {
            self.refresh()
        }
    }

    /// Fetch a metadata file, with its length cap.
    pub(crate) fn fetch_metadata(
        &self,
        role: &str,
        version: Option<u64>,
        max_len: u64,
    ) -> Result<Vec<u8>> {
        let name = metadata_file(role, version);
        fetch_bytes(self.metadata.as_ref(), &name, max_len).map_err(|e| match e {
            TransportError::TooLarge { location, limit } => Error::LengthExceeded {
                what: location,
                limit,
            },
            other => Error::Transport(other),
        })
    }

    fn update_root(&mut self) -> Result<()> {
        let keys_of =
            |t: &TrustedSet, role: &str| -> Option<RoleKeys> { t.root().roles.get(role).cloned() };
        let (ts_keys, snap_keys) = (
            keys_of(&self.trusted, "timestamp"),
            keys_of(&self.trusted, "snapshot"),
        );
        for _ in 0..self.limits.max_root_rotations {
            let next = self.trusted.root().version + 1;
            let bytes = match self.fetch_metadata("root", Some(next), self.limits.root) {
                Ok(b) => b,
                // 404 or 403 ends the chain (python-tuf treats both as "no newer root").
                Err(Error::Transport(e)) if e.is_missing() => break,
                Err(e) => return Err(e),
            };
            self.trusted.update_root(&bytes)?;
            self.cache.store("root", &bytes)?;
            tracing::debug!(version = next, "root updated");
        }
        // Fast-forward attack recovery (specification 5.3.11): when the timestamp and/or the
        // snapshot keys were rotated, the trusted timestamp and snapshot (whose versions
        // whoever held the old keys may have inflated) are no longer a baseline for rollback
        // checks, so forget both. The new timestamp pins the snapshot by version and hash.
        let rotated = |old: Option<RoleKeys>, new: Option<RoleKeys>| {
            old.map(|k| (k.keyids, k.threshold)) != new.map(|k| (k.keyids, k.threshold))
        };
        let ts_rotated = rotated(ts_keys, keys_of(&self.trusted, "timestamp"));
        if ts_rotated || rotated(snap_keys, keys_of(&self.trusted, "snapshot")) {
            tracing::debug!(
                "timestamp or snapshot keys rotated: trusted timestamp and snapshot forgotten"
            );
            self.cache.remove("timestamp")?;
            self.cache.remove("snapshot")?;
        }
        Ok(())
    }

    fn update_timestamp(&mut self) -> Result<()> {
        if let Some(local) = self.cache.load("timestamp")? {
            if let Err(e) = self.trusted.update_timestamp(&local) {
                tracing::debug!("cached timestamp not valid as final: {e}");
            }
        }
        let bytes = self.fetch_metadata("timestamp", None, self.limits.timestamp)?;
        match self.trusted.update_timestamp(&bytes) {
            Ok(_) => self.cache.store("timestamp", &bytes),
            Err(Error::EqualVersion { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn update_snapshot(&mut self) -> Result<()> {
        if let Some(local) = self.cache.load("snapshot")? {
            match self.trusted.update_snapshot(&local, true) {
                Ok(_) => return Ok(()),
                Err(e) => tracing::debug!("cached snapshot not valid as final: {e}"),
            }
        }
        let meta = self.trusted.snapshot_meta()?.clone();
        let version = self.trusted.root().consistent().then_some(meta.version);
        let max = meta.length.unwrap_or(self.limits.snapshot);
        let bytes = self.fetch_metadata("snapshot", version, max)?;
        self.trusted.update_snapshot(&bytes, false)?;
        self.cache.store("snapshot", &bytes)
    }

    /// Load targets role `role` through `delegator`: from memory (re-verified against this
    /// delegator), else from the cache, else from the repository. Delegated roles past the
    /// memory budget ([`Limits::resident_target_entries`]) are then forgotten, oldest first.
    pub(crate) fn load_targets(&mut self, role: &str, delegator: &str) -> Result<()> {
        if self.trusted.loaded_targets_via(role, delegator)?.is_some() {
            return Ok(());
        }
        self.reload_delegator(delegator)?;
        self.verify_targets(role, delegator)?;
        if role != "targets" {
            let entries = self.trusted.target_count(role).unwrap_or(0);
            self.resident.loaded(role, delegator, entries);
            let budget = self.limits.resident_target_entries;
            for old in self.resident.over_budget(budget, role) {
                self.trusted.forget_targets(&old);
            }
        }
        Ok(())
    }

    /// Load `delegator` again if it was forgotten, through the delegator it was verified
    /// through before (and so on up the chain).
    fn reload_delegator(&mut self, delegator: &str) -> Result<()> {
        if delegator == "root" || self.trusted.targets_role(delegator).is_some() {
            return Ok(());
        }
        let Some(grand) = self.resident.delegator_of(delegator).map(str::to_string) else {
            return Err(Error::Workflow(
                "a delegator must be loaded before its delegates",
            ));
        };
        self.load_targets(delegator, &grand)
    }

    fn verify_targets(&mut self, role: &str, delegator: &str) -> Result<()> {
        if self.resident.delegator_of(role).is_some() {
            // Loaded before and forgotten since: its file may still be queued for writing.
            self.role_writer.flush();
        }
        if let Some(local) = self.cache.load(role)? {
            match self
                .trusted
                .update_delegated_targets(&local, role, delegator)
            {
                Ok(_) => return Ok(()),
                Err(e) => tracing::debug!("cached {role} not valid: {e}"),
            }
        }
        let snapshot = self
            .trusted
            .snapshot()
            .ok_or(Error::Workflow("targets need a snapshot first"))?;
        let meta =
            snapshot
                .meta
                .get(&format!("{role}.json"))
                .ok_or_else(|| Error::NotInSnapshot {
                    role: role.to_string(),
                })?;
        let version = self.trusted.root().consistent().then_some(meta.version);
        let max = meta.length.unwrap_or(self.limits.targets);
        let bytes = self.fetch_metadata(role, version, max)?;
        self.trusted
            .update_delegated_targets(&bytes, role, delegator)?;
        if role == "targets" {
            return self.cache.store(role, &bytes);
        }
        self.role_writer.store(&self.cache, role, bytes);
        Ok(())
    }

    /// The verified entry for `target_path`, searching delegations (loaded lazily, pre-order
    /// depth-first). Refreshes first if this updater has not refreshed yet.
    pub fn get_target_info(&mut self, target_path: &str) -> Result<Option<VerifiedTarget>> {
        self.ensure_refreshed()?;
        self.search(target_path)
    }

    /// Wait until every delegated role verified so far is written to the metadata directory.
    /// They are written in the background while the search goes on (root, timestamp,
    /// snapshot and the top-level targets are written before the call that verified them
    /// returns); dropping the updater waits too.
    pub fn wait_for_metadata_writes(&mut self) {
        self.role_writer.flush();
    }

    /// The trusted metadata (root, timestamp, snapshot, loaded targets roles).
    pub fn trusted(&self) -> &TrustedSet {
        &self.trusted
    }

    /// The verified top-level targets role (after a refresh).
    pub fn top_level_targets(&mut self) -> Result<&VerifiedTargets> {
        self.ensure_refreshed()?;
        self.trusted
            .top_targets()
            .ok_or(Error::Workflow("top-level targets not loaded"))
    }

    /// Every target listed directly by the top-level targets role (refreshes first if needed).
    /// For targets of delegated roles too, see [`Updater::all_targets`].
    pub fn top_level_target_iter(&mut self) -> Result<impl Iterator<Item = VerifiedTarget> + '_> {
        let top = self.top_level_targets()?;
        Ok(top
            .targets
            .iter()
            .map(|(path, file)| VerifiedTarget::new(path.clone(), file.clone(), "targets")))
    }
}
