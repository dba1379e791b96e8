//! A device bound to its state directory: check for and install updates.
use super::config::DeviceConfig;
use super::error::{state_io, DeviceError, DeviceResult};
use super::install::{prepare, Inputs};
use super::installed::Installed;
use super::keys;
use super::select::{Candidate, Selector};
use super::state::StateDir;
use crate::{Updater, UpdaterConfig};
use std::path::Path;

/// An initialised device: its configuration, installed record and TUF client.
pub struct Device {
    state: StateDir,
    config: DeviceConfig,
    updater: Updater,
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
    /// (e.g. wrap the targets transport to show progress).
    pub fn open(state: StateDir, adjust: impl FnOnce(&mut UpdaterConfig)) -> DeviceResult<Self> {
        let config = DeviceConfig::load(&state)?;
        let mut uc = config.updater_config(&state)?;
        adjust(&mut uc);
        let updater = Updater::new(uc).map_err(|e| match e {
            crate::Error::Io { path, source } => DeviceError::StateIo { path, source },
            other => DeviceError::Tuf(other),
        })?;
        Ok(Device {
            state,
            config,
            updater,
        })
    }

    /// Initialise `state`: write the configuration and trust `root_bytes` (checked to be a
    /// root signed by its own threshold). Refuses an initialised directory unless `force`,
    /// in which case the old metadata, downloads and installed record are discarded.
    pub fn init(
        state: &StateDir,
        config: &DeviceConfig,
        root_bytes: &[u8],
        force: bool,
    ) -> DeviceResult<()> {
        if state.config().exists() {
            if !force {
                return Err(DeviceError::AlreadyExists {
                    path: state.config(),
                });
            }
            for dir in [state.metadata(), state.downloads()] {
                match std::fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(state_io(dir, e)),
                }
            }
            match std::fs::remove_file(state.installed()) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(state_io(state.installed(), e)),
            }
        }
        std::fs::create_dir_all(state.root()).map_err(|e| state_io(state.root(), e))?;
        Updater::bootstrap(&state.metadata(), root_bytes)?;
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

    /// The installed record, if any.
    pub fn installed(&self) -> DeviceResult<Option<Installed>> {
        Installed::load(&self.state)
    }

    /// Refresh metadata and return the newest target for this device newer than installed.
    pub fn check(&mut self) -> DeviceResult<Option<Candidate>> {
        let installed = self.installed()?;
        self.updater.refresh()?;
        let targets = self.updater.all_targets()?;
        let selector = Selector {
            hardware_id: &self.config.hardware_id,
            image_name: self.config.image_name.as_deref(),
            installed: installed.as_ref(),
        };
        Ok(selector.newest(&targets))
    }

    /// Check, and install the update to `install_to` if there is one. A failure leaves
    /// `install_to` and `installed.json` untouched and no temp file behind.
    pub fn update(&mut self, install_to: &Path) -> DeviceResult<UpdateOutcome> {
        let Some(candidate) = self.check()? else {
            return Ok(UpdateOutcome::UpToDate(self.installed()?));
        };
        self.install(&candidate, install_to)
            .map(UpdateOutcome::Installed)
    }

    /// Download (or reuse a verified cached copy of) `candidate` and install it.
    pub fn install(&mut self, candidate: &Candidate, install_to: &Path) -> DeviceResult<Installed> {
        let downloads = self.state.downloads();
        let target = &candidate.target;
        let keys = keys::Keyring::load(&self.state)?;
        let key_path = self.state.device_key();
        // Fail before downloading what this device could never decrypt.
        if candidate.ota.encryption.is_some() && keys.is_empty() {
            return Err(DeviceError::NoDeviceKey {
                target: target.path().to_string(),
                key: key_path,
            });
        }
        let downloaded = match self.updater.find_cached_target(target, &downloads)? {
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
                self.updater.download_target(target, &downloads)?
            }
        };
        let inputs = Inputs {
            candidate,
            downloaded: &downloaded,
            keys: &keys,
            device_key_path: &key_path,
            targets: self.updater.targets.as_ref(),
        };
        let image = prepare(&inputs, install_to)?;
        image.install()?;
        let record = Installed {
            name: candidate.ota.name.clone(),
            version: candidate.ota.version.clone(),
            target: target.path().to_string(),
            image_sha256: candidate.ota.image.sha256.clone(),
            image_length: candidate.ota.image.length,
            install_path: install_to.to_path_buf(),
            installed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        record.save(&self.state)?;
        tracing::info!(name = %record.name, version = %record.version, "installed");
        // The download is no longer needed; keep the device's disk use bounded.
        if let Err(e) = std::fs::remove_file(&downloaded) {
            tracing::debug!("removing {}: {e}", downloaded.display());
        }
        Ok(record)
    }
}
