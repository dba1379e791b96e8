//! A device bound to its state directory: check for and install updates.
use super::base::Base;
use super::config::DeviceConfig;
use super::delta::{choose, CurrentImage, DeltaTarget};
use super::error::{state_io, DeviceError, DeviceResult};
use super::file_installer::FileInstaller;
use super::image::Encryption;
use super::install::{prepare, InstallableImage};
use super::install_target::InstallTarget;
use super::installed::Installed;
use super::keys::{self, Keyring};
use super::lock::StateLock;
use super::patch::{prepare_patched, PatchInputs};
use super::select::{Candidate, Selector};
use super::state::StateDir;
use super::unlock::Unlock;
use crate::storage::Storage;
use crate::{Updater, UpdaterConfig};
use std::path::Path;
use std::sync::Arc;

/// An initialised device: its configuration, installed record and TUF client.
pub struct Device {
    pub(super) state: StateDir,
    pub(super) config: DeviceConfig,
    pub(super) updater: Updater,
    pub(super) storage: Arc<dyn Storage>,
    last_transfer: Option<Transfer>,
    skipped: Vec<Skipped>,
    /// The device clock, before the time floor is applied.
    clock: Arc<dyn crate::Clock>,
    /// The time floor when the device was opened.
    time_floor: Option<chrono::DateTime<chrono::Utc>>,
}

/// Where an install stands, reported to the caller of [`Device::install_into`] so that the
/// A/B flow can persist it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InstallStep {
    /// About to fetch a target (a patch, or the full image).
    Downloading,
    /// The target matched its signed hashes.
    Downloaded,
    /// About to write the destination.
    Writing,
}

/// A release newer than the installed one that the last [`Device::check`] passed over
/// because it is not for this device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The target.
    pub target: String,
    /// Its version.
    pub version: String,
    /// Why it is not for this device.
    pub reason: String,
}

/// How the last [`Device::install`] got the image.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Transfer {
    /// The patch target the image was built from, when a delta was used.
    pub delta: Option<String>,
    /// Base version of that patch.
    pub delta_base_version: Option<String>,
    /// Target bytes downloaded and verified for this install (patch, full image, or both
    /// after a failed delta); a verified cached copy counts nothing.
    pub downloaded_bytes: u64,
    /// Why a delta was tried and abandoned for the full image, if it was.
    pub delta_fallback: Option<String>,
}

/// The outcome of [`Device::update`].
#[derive(Debug)]
pub enum UpdateOutcome {
    /// Nothing newer for this device.
    UpToDate(Option<Installed>),
    /// The candidate was installed; the new record.
    Installed(Installed),
}

impl Device {
    /// Open an initialised state directory. `adjust` may change the updater configuration
    /// (e.g. wrap the targets transport to show progress, or inject a clock).
    pub fn open(state: StateDir, adjust: impl FnOnce(&mut UpdaterConfig)) -> DeviceResult<Self> {
        Self::open_from(state, None, adjust)
    }

    /// Like [`Device::open`]; with `from`, metadata and targets come from that directory
    /// (a repository copy on removable media, as `ota-sign export` writes it: `metadata/`
    /// and `targets/`) instead of the configured server. Only the transport differs: the
    /// metadata is verified against the same trusted state, and the state it leaves is
    /// where the next refresh (from the server or another copy) starts.
    ///
    /// Expiry is checked against the later of the updater's clock and the device's time
    /// floor ([`crate::clock`]).
    pub fn open_from(
        state: StateDir,
        from: Option<&Path>,
        adjust: impl FnOnce(&mut UpdaterConfig),
    ) -> DeviceResult<Self> {
        let config = DeviceConfig::load(&state)?;
        let mut uc = match from {
            None => config.updater_config(&state)?,
            Some(dir) => {
                let metadata = dir.join("metadata");
                if !metadata.join("timestamp.json").is_file() {
                    return Err(DeviceError::NoRepositoryCopy {
                        dir: dir.to_path_buf(),
                        reason: format!(
                            "no repository copy here ({} is missing)",
                            metadata.join("timestamp.json").display()
                        ),
                    });
                }
                UpdaterConfig::local_dir(state.metadata(), dir)
            }
        };
        adjust(&mut uc);
        let time_floor = crate::clock::TimeFloor::load(&state.time_floor())?;
        let clock: Arc<dyn crate::Clock> = Arc::from(std::mem::replace(
            &mut uc.clock,
            Box::new(crate::SystemClock),
        ));
        uc.clock = Box::new(crate::clock::FlooredClock::new(clock.clone(), time_floor));
        let updater = Updater::new(uc).map_err(|e| match e {
            crate::Error::Io { path, source } => DeviceError::StateIo { path, source },
            other => DeviceError::Tuf(other),
        })?;
        Ok(Device {
            state,
            config,
            updater,
            storage: crate::storage::os(),
            last_transfer: None,
            skipped: Vec::new(),
            clock,
            time_floor,
        })
    }

    /// The device clock compared with its time floor (no network).
    pub fn clock_check(&self) -> crate::clock::ClockCheck {
        crate::clock::ClockCheck::new(self.clock.now(), self.time_floor)
    }

    /// Refresh the metadata at the floored time: warn when the clock is behind the floor,
    /// add the clock's state to a refusal when it is clearly wrong, and raise the floor to
    /// the clock after a successful refresh.
    fn refresh(&mut self) -> DeviceResult<()> {
        let check = self.clock_check();
        if let Some(msg) = check.message() {
            tracing::warn!("{msg}");
        }
        match self.updater.refresh() {
            Ok(()) => {}
            Err(e) => {
                let e = DeviceError::Tuf(e);
                return Err(match check.message() {
                    Some(clock)
                        if check.state == crate::clock::ClockState::Wrong
                            && e.category() == super::error::Category::Refused =>
                    {
                        DeviceError::ClockWrong {
                            clock,
                            source: Box::new(e),
                        }
                    }
                    _ => e,
                });
            }
        }
        // The metadata verified at the clock's time (or the floor's): never trust less.
        self.time_floor = Some(crate::clock::TimeFloor::raise(
            &self.state.time_floor(),
            check.verification_time,
        )?);
        Ok(())
    }

    /// Send slot writes, the A/B state and a `file:` boot environment through `storage`
    /// instead of the file system directly (a crash simulation records them).
    pub fn with_storage(mut self, storage: Arc<dyn Storage>) -> Self {
        self.storage = storage;
        self
    }

    /// Initialise `state`: write the configuration and trust `root_bytes` (checked to be a
    /// root signed by its own threshold). Refuses an initialised directory unless `force`,
    /// in which case the old metadata, downloads and installed record are discarded.
    ///
    /// The files named in `config.tls` are checked first (nothing changes if one is
    /// unusable), then copied into the state directory (`ca.pem`, `identity.pem`,
    /// `identity.key`) and the saved configuration names the copies. An identity already
    /// installed by `enroll` is used when `config.tls` names no client certificate.
    pub fn init(
        state: &StateDir,
        config: &DeviceConfig,
        root_bytes: &[u8],
        force: bool,
    ) -> DeviceResult<()> {
        if state.config().exists() && !force {
            return Err(DeviceError::AlreadyExists {
                path: state.config(),
            });
        }
        config.tls.validate()?;
        // Slots and boot environment are checked before anything is written.
        let slot_state = config
            .slots
            .as_ref()
            .map(super::ab::prepare_slots)
            .transpose()?;
        if state.config().exists() {
            for dir in [state.metadata(), state.downloads()] {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(state_io(dir, e)),
                }
            }
            // The time floor comes from the discarded metadata: it goes with it.
            for file in [state.installed(), state.time_floor()] {
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(state_io(file, e)),
                }
            }
        }
        std::fs::create_dir_all(state.root()).map_err(|e| state_io(state.root(), e))?;
        // The root is checked before any TLS file is copied in.
        Updater::bootstrap(&state.metadata(), root_bytes)?;
        let config = DeviceConfig {
            tls: super::tls_files::import(state, &config.tls, force)?,
            ..config.clone()
        };
        match slot_state {
            Some(s) => s.save(&state.slots(), &crate::storage::OsStorage)?,
            None => match std::fs::remove_file(state.slots()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(state_io(state.slots(), e)),
            },
        }
        config.save(state)
    }

    /// The configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The TUF client.
    pub fn updater(&self) -> &Updater {
        &self.updater
    }

    /// How the last successful [`Device::install`] got its image (delta or full, bytes).
    pub fn last_transfer(&self) -> Option<&Transfer> {
        self.last_transfer.as_ref()
    }

    /// The patch target of `candidate` whose base is the image at `base` (hashed now over
    /// each patch's signed base length; no record is trusted for this), the smallest when
    /// several are.
    pub fn delta_for<'c>(&self, candidate: &'c Candidate, base: &Base) -> Option<&'c DeltaTarget> {
        let mut lengths: Vec<u64> = candidate
            .deltas()
            .iter()
            .map(|d| d.info().base.length)
            .collect();
        lengths.sort_unstable();
        lengths.dedup();
        let mut found: Option<&DeltaTarget> = None;
        for length in lengths {
            let sha256 = match base.sha256_of(length) {
                Ok(Some(h)) => h,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("cannot read {} to pick a delta: {e}", base.path().display());
                    return None;
                }
            };
            let current = CurrentImage { length, sha256 };
            if let Some(d) = choose(candidate.deltas(), &current) {
                if found.is_none_or(|f| d.target().length() < f.target().length()) {
                    found = Some(d);
                }
            }
        }
        if found.is_none() && !candidate.deltas().is_empty() {
            tracing::info!("no patch has the current image as its base; using the full image");
        }
        found
    }

    /// Download `target` unless a verified copy is cached; adds to `transfer`.
    fn fetch(
        &self,
        target: &crate::VerifiedTarget,
        transfer: &mut Transfer,
    ) -> DeviceResult<std::path::PathBuf> {
        let downloads = self.state.downloads();
        Ok(match self.updater.find_cached_target(target, &downloads)? {
            Some(p) => {
                tracing::info!(target = target.path(), "using verified cached download");
                p
            }
            None => {
                tracing::info!(
                    target = target.path(),
                    length = target.length(),
                    "downloading"
                );
                let (p, bytes) = self.updater.download_target_counted(target, &downloads)?;
                transfer.downloaded_bytes += bytes;
                p
            }
        })
    }

    /// Build the image from `delta` (download, decrypt, apply against `base`) into `dest`.
    fn patched_image(
        &self,
        candidate: &Candidate,
        (base, delta): (&Base, &DeltaTarget),
        dest: &dyn InstallTarget,
        unlock: &Unlock,
        transfer: &mut Transfer,
        step: &mut dyn FnMut(InstallStep) -> DeviceResult<()>,
    ) -> DeviceResult<InstallableImage> {
        step(InstallStep::Downloading)?;
        let downloaded = self.fetch(delta.target(), transfer)?;
        step(InstallStep::Downloaded)?;
        let inputs = PatchInputs {
            delta,
            image: candidate.image(),
            downloaded: &downloaded,
            scratch: &self.state.downloads(),
            unlock,
        };
        step(InstallStep::Writing)?;
        let image = prepare_patched(&inputs, base, dest);
        // The patch is only good for this one base; keep the device's disk use bounded.
        if let Err(e) = std::fs::remove_file(&downloaded) {
            tracing::debug!("removing {}: {e}", downloaded.display());
        }
        image
    }

    /// What an update must be newer than: in A/B mode the committed slot's image (from
    /// `slots.json`), else `installed.json`.
    pub(crate) fn floor(&self) -> DeviceResult<Option<Installed>> {
        match &self.config.slots {
            None => self.installed(),
            Some(slots) => Ok(super::slot_state::SlotState::load(&self.state.slots())?
                .and_then(|s| s.committed_image(slots.path(s.committed)))),
        }
    }

    /// The installed record, if any.
    pub fn installed(&self) -> DeviceResult<Option<Installed>> {
        Installed::load(&self.state)
    }

    /// Releases newer than installed that the last [`Device::check`] passed over because they
    /// are not for this device (encrypted to other devices), newest first.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Refresh metadata and return the newest release for this device newer than installed:
    /// of its image line, for its hardware, and, when encrypted, addressed to a key it holds.
    /// Releases encrypted to other devices are not updates for this one: they are passed
    /// over (see [`Device::skipped`]) and an older release that is for it may be chosen.
    pub fn check(&mut self) -> DeviceResult<Option<Candidate>> {
        self.skipped.clear();
        let installed = self.floor()?;
        self.refresh()?;
        let targets = self.updater.all_targets()?;
        let selector = Selector {
            hardware_id: &self.config.hardware_id,
            image_name: self.config.image_name.as_deref(),
            installed: installed.as_ref(),
        };
        let keys = Keyring::load(&self.state)?;
        let failed = self.failed_versions()?;
        for candidate in selector.candidates(&targets)? {
            let reason = if failed.iter().any(|v| *v == candidate.ota().version) {
                Some("failed to boot on this device before; a newer release will be tried".into())
            } else {
                self.not_for_this_device(&candidate, &keys)?
            };
            match reason {
                None => return Ok(Some(selector.with_deltas(candidate, &targets))),
                Some(reason) => {
                    tracing::info!(target = candidate.target().path(), "skipped: {reason}");
                    self.skipped.push(Skipped {
                        target: candidate.target().path().to_string(),
                        version: candidate.ota().version.clone(),
                        reason,
                    });
                }
            }
        }
        Ok(None)
    }

    /// Why `candidate` is not for this device, if it is not.
    fn not_for_this_device(
        &self,
        candidate: &Candidate,
        keys: &Keyring,
    ) -> DeviceResult<Option<String>> {
        let info = match candidate.encryption() {
            Encryption::None => return Ok(None),
            // Malformed encryption metadata is not skipped: installing refuses it by name.
            Encryption::Malformed(_) if !keys.is_empty() => return Ok(None),
            Encryption::Sealed(info) if !keys.is_empty() => info,
            _ => {
                tracing::warn!(
                    target = candidate.target().path(),
                    "an encrypted release exists and this device holds no decryption key"
                );
                return Ok(Some(
                    "encrypted, and this device holds no decryption key".into(),
                ));
            }
        };
        let addressed = super::unlock::addressed_to(
            candidate.target().path(),
            info,
            keys,
            self.updater.targets.as_ref(),
        )?;
        Ok((!addressed).then(|| "encrypted for other devices".to_string()))
    }

    /// Check, and install the update to `install_to` if there is one. A failure leaves
    /// `install_to` and `installed.json` untouched and no temp file behind.
    pub fn update(&mut self, install_to: &Path) -> DeviceResult<UpdateOutcome> {
        self.update_with(&FileInstaller::new(install_to), install_to)
    }

    /// Check, and install the update into `dest` (a single-image destination: a file or an
    /// install hook) if there is one; `recorded_as` is the path `installed.json` names.
    pub fn update_with(
        &mut self,
        dest: &dyn InstallTarget,
        recorded_as: &Path,
    ) -> DeviceResult<UpdateOutcome> {
        let _lock = StateLock::acquire(&self.state)?;
        self.refuse_slot_mode("single-file update")?;
        // Before the network: a device node, a link or a directory is never replaced.
        dest.check_destination()?;
        let Some(candidate) = self.check()? else {
            return Ok(UpdateOutcome::UpToDate(self.installed()?));
        };
        self.install_single(&candidate, dest, recorded_as)
            .map(UpdateOutcome::Installed)
    }

    /// Install `candidate` to the file `install_to` (see [`Device::update`]).
    pub fn install(&mut self, candidate: &Candidate, install_to: &Path) -> DeviceResult<Installed> {
        let _lock = StateLock::acquire(&self.state)?;
        self.refuse_slot_mode("single-file install")?;
        self.install_single(candidate, &FileInstaller::new(install_to), install_to)
    }

    /// Install `candidate` into a single-image destination and record it in `installed.json`
    /// under `recorded_as` (the caller holds the lock).
    fn install_single(
        &mut self,
        candidate: &Candidate,
        dest: &dyn InstallTarget,
        recorded_as: &Path,
    ) -> DeviceResult<Installed> {
        // Before any download: an image that cannot go there is refused.
        dest.check(candidate.image())?;
        let transfer = self.install_into(candidate, dest, &mut |_| Ok(()))?;
        let image = candidate.image();
        let record = self.record_installed(Installed::stamped(
            image.name(),
            &candidate.ota().version,
            image.target(),
            image.sha256(),
            image.length(),
            recorded_as,
        ))?;
        self.last_transfer = Some(transfer);
        Ok(record)
    }

    /// A device set up with A/B slots installs only through the A/B flow.
    fn refuse_slot_mode(&self, what: &str) -> DeviceResult<()> {
        if self.config.slots.is_some() {
            return Err(DeviceError::NotSlotMode {
                state: self.state.root().to_path_buf(),
                what: format!("{what} asked of a device set up with A/B slots"),
            });
        }
        Ok(())
    }

    /// Write `installed.json`, and fix the image line on the first install.
    pub(super) fn record_installed(&mut self, record: Installed) -> DeviceResult<Installed> {
        crate::crash_point::reached("state");
        record.save(&self.state)?;
        self.fix_image_line(&record.name)?;
        tracing::info!(name = %record.name, version = %record.version, "installed");
        Ok(record)
    }

    /// The first install fixes the device's image line; it never switches after.
    pub(super) fn fix_image_line(&mut self, name: &str) -> DeviceResult<()> {
        if self.config.image_name.is_none() {
            self.config.image_name = Some(name.to_string());
            self.config.save(&self.state)?;
        }
        Ok(())
    }

    /// Install `candidate` into `dest`: from a patch when one has `dest`'s base as its base
    /// (any failure of that path falls back to the full image), else from the full target
    /// (downloaded, or a verified cached copy). `step` hears where the install stands.
    pub(super) fn install_into(
        &self,
        candidate: &Candidate,
        dest: &dyn InstallTarget,
        step: &mut dyn FnMut(InstallStep) -> DeviceResult<()>,
    ) -> DeviceResult<Transfer> {
        let target = candidate.target();
        let keys = keys::Keyring::load(&self.state)?;
        let key_path = self.state.device_key();
        // Fail before downloading what this device could never decrypt.
        if candidate.encryption().is_encrypted() && keys.is_empty() {
            return Err(DeviceError::NoDeviceKey {
                target: target.path().to_string(),
                key: key_path,
            });
        }
        let unlock = Unlock {
            keys: &keys,
            device_key_path: &key_path,
            targets: self.updater.targets.as_ref(),
        };
        let mut transfer = Transfer::default();
        let mut downloaded = None;
        let base = dest.base();
        let delta = base
            .as_ref()
            .and_then(|b| self.delta_for(candidate, b).map(|d| (b, d)));
        let patched = match delta {
            None => None,
            Some((base, delta)) => {
                tracing::info!(patch = delta.target().path(), base = %delta.info().base.version, "using a delta update");
                match self.patched_image(
                    candidate,
                    (base, delta),
                    dest,
                    &unlock,
                    &mut transfer,
                    step,
                ) {
                    Ok(image) => {
                        transfer.delta = Some(delta.target().path().to_string());
                        transfer.delta_base_version = Some(delta.info().base.version.clone());
                        Some(image)
                    }
                    // The A/B flow's own state write failing is not a reason to fall back.
                    Err(e @ (DeviceError::StateIo { .. } | DeviceError::BadState { .. })) => {
                        return Err(e)
                    }
                    Err(e) => {
                        tracing::warn!(
                            "delta update from {} failed, falling back to the full image: {e}",
                            delta.target().path()
                        );
                        transfer.delta_fallback = Some(e.to_string());
                        None
                    }
                }
            }
        };
        let image = match patched {
            Some(image) => image,
            None => {
                step(InstallStep::Downloading)?;
                let path = self.fetch(target, &mut transfer)?;
                step(InstallStep::Downloaded)?;
                step(InstallStep::Writing)?;
                let image = prepare(candidate, &path, &unlock, dest)?;
                downloaded = Some(path);
                image
            }
        };
        image.install()?;
        // The download is no longer needed, nor are partial downloads of releases that were
        // superseded; keep the device's disk use bounded.
        if let Some(downloaded) = downloaded {
            if let Err(e) = std::fs::remove_file(&downloaded) {
                tracing::debug!("removing {}: {e}", downloaded.display());
            }
        }
        self.remove_partials();
        Ok(transfer)
    }

    /// Delete every partial download (`*.part`, `*.part.json`) in `downloads/`.
    fn remove_partials(&self) {
        let dir = self.state.downloads();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".part") || name.ends_with(".part.json") {
                if let Err(err) = std::fs::remove_file(e.path()) {
                    tracing::debug!("removing {}: {err}", e.path().display());
                }
            }
        }
    }

    /// Remember how the last install got its image.
    pub(super) fn set_last_transfer(&mut self, transfer: Transfer) {
        self.last_transfer = Some(transfer);
    }
}
