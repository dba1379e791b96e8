//! A device bound to its state directory: check for and install updates.
use super::config::DeviceConfig;
use super::delta::{choose, CurrentImage, DeltaTarget};
use super::error::{state_io, DeviceError, DeviceResult};
use super::install::{prepare, Inputs, InstallableImage};
use super::installed::Installed;
use super::keys::{self, Keyring};
use super::patch::{prepare_patched, PatchInputs};
use super::select::{Candidate, Selector};
use super::state::StateDir;
use crate::{Updater, UpdaterConfig};
use ota_formats::envelope::EncryptionInfo;
use std::path::Path;

/// An initialised device: its configuration, installed record and TUF client.
pub struct Device {
    state: StateDir,
    config: DeviceConfig,
    updater: Updater,
    last_transfer: Option<Transfer>,
    skipped: Vec<Skipped>,
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
            last_transfer: None,
            skipped: Vec::new(),
        })
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
        if state.config().exists() {
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
        // The root is checked before any TLS file is copied in.
        Updater::bootstrap(&state.metadata(), root_bytes)?;
        let config = DeviceConfig {
            tls: super::tls_files::import(state, &config.tls, force)?,
            ..config.clone()
        };
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

    /// The patch target of `candidate` whose base is the image now at `install_to`, if any.
    /// Hashes the file (installed.json is not trusted for this).
    pub fn delta_for<'c>(
        &self,
        candidate: &'c Candidate,
        install_to: &Path,
    ) -> Option<&'c DeltaTarget> {
        if candidate.deltas.is_empty() {
            return None;
        }
        let current = match CurrentImage::measure(install_to) {
            Ok(Some(c)) => c,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!("cannot read {} to pick a delta: {e}", install_to.display());
                return None;
            }
        };
        let found = choose(&candidate.deltas, &current);
        if found.is_none() {
            tracing::info!(
                sha256 = %current.sha256,
                "no patch has the installed image as its base; using the full image"
            );
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
                let p = self.updater.download_target(target, &downloads)?;
                transfer.downloaded_bytes += target.length();
                p
            }
        })
    }

    /// Build the image from `delta` (download, decrypt, apply against `install_to`).
    fn patched_image(
        &self,
        candidate: &Candidate,
        delta: &DeltaTarget,
        install_to: &Path,
        keys: &Keyring,
        transfer: &mut Transfer,
    ) -> DeviceResult<InstallableImage> {
        let downloaded = self.fetch(&delta.target, transfer)?;
        let inputs = PatchInputs {
            delta,
            image: &candidate.ota.image,
            downloaded: &downloaded,
            scratch: &self.state.downloads(),
            keys,
            device_key_path: &self.state.device_key(),
            targets: self.updater.targets.as_ref(),
        };
        let image = prepare_patched(&inputs, install_to);
        // The patch is only good for this one base; keep the device's disk use bounded.
        if let Err(e) = std::fs::remove_file(&downloaded) {
            tracing::debug!("removing {}: {e}", downloaded.display());
        }
        image
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
        let installed = self.installed()?;
        self.updater.refresh()?;
        let targets = self.updater.all_targets()?;
        let selector = Selector {
            hardware_id: &self.config.hardware_id,
            image_name: self.config.image_name.as_deref(),
            installed: installed.as_ref(),
        };
        let keys = Keyring::load(&self.state)?;
        for candidate in selector.candidates(&targets)? {
            match self.not_for_this_device(&candidate, &keys)? {
                None => return Ok(Some(selector.with_deltas(candidate, &targets))),
                Some(reason) => {
                    tracing::info!(target = candidate.target.path(), "skipped: {reason}");
                    self.skipped.push(Skipped {
                        target: candidate.target.path().to_string(),
                        version: candidate.ota.version.clone(),
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
        let Some(value) = &candidate.ota.encryption else {
            return Ok(None);
        };
        if keys.is_empty() {
            tracing::warn!(
                target = candidate.target.path(),
                "an encrypted release exists and this device holds no decryption key"
            );
            return Ok(Some(
                "encrypted, and this device holds no decryption key".into(),
            ));
        }
        // Malformed encryption metadata is not skipped: installing refuses it by name.
        let Ok(info) = serde_json::from_value::<EncryptionInfo>(value.clone()) else {
            return Ok(None);
        };
        let addressed = super::unlock::addressed_to(
            candidate.target.path(),
            &info,
            keys,
            self.updater.targets.as_ref(),
        )?;
        Ok((!addressed).then(|| "encrypted for other devices".to_string()))
    }

    /// Check, and install the update to `install_to` if there is one. A failure leaves
    /// `install_to` and `installed.json` untouched and no temp file behind.
    pub fn update(&mut self, install_to: &Path) -> DeviceResult<UpdateOutcome> {
        super::install::check_install_path(install_to)?;
        let Some(candidate) = self.check()? else {
            return Ok(UpdateOutcome::UpToDate(self.installed()?));
        };
        self.install(&candidate, install_to)
            .map(UpdateOutcome::Installed)
    }

    /// Install `candidate`: from a patch when one has the image at `install_to` as its base
    /// (any failure of that path falls back to the full image), else from the full target
    /// (downloaded, or a verified cached copy).
    pub fn install(&mut self, candidate: &Candidate, install_to: &Path) -> DeviceResult<Installed> {
        // Before any download: a device node, a link or a directory is never replaced.
        super::install::check_install_path(install_to)?;
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
        let mut transfer = Transfer::default();
        let mut downloaded = None;
        let patched = match self.delta_for(candidate, install_to) {
            None => None,
            Some(delta) => {
                tracing::info!(patch = delta.target.path(), base = %delta.info.base.version, "using a delta update");
                match self.patched_image(candidate, delta, install_to, &keys, &mut transfer) {
                    Ok(image) => {
                        transfer.delta = Some(delta.target.path().to_string());
                        transfer.delta_base_version = Some(delta.info.base.version.clone());
                        Some(image)
                    }
                    Err(e) => {
                        tracing::warn!(
                            "delta update from {} failed, falling back to the full image: {e}",
                            delta.target.path()
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
                let path = self.fetch(target, &mut transfer)?;
                let inputs = Inputs {
                    candidate,
                    downloaded: &path,
                    keys: &keys,
                    device_key_path: &key_path,
                    targets: self.updater.targets.as_ref(),
                };
                let image = prepare(&inputs, install_to)?;
                downloaded = Some(path);
                image
            }
        };
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
        if self.config.image_name.is_none() {
            // The first install fixes the device's image line; it never switches after.
            self.config.image_name = Some(record.name.clone());
            self.config.save(&self.state)?;
        }
        tracing::info!(name = %record.name, version = %record.version, "installed");
        // The download is no longer needed; keep the device's disk use bounded.
        if let Some(downloaded) = downloaded {
            if let Err(e) = std::fs::remove_file(&downloaded) {
                tracing::debug!("removing {}: {e}", downloaded.display());
            }
        }
        self.last_transfer = Some(transfer);
        Ok(record)
    }
}
