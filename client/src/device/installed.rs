//! What is installed (`STATE/installed.json`), rewritten atomically after each install.
use super::error::{state_io, DeviceError, DeviceResult};
use super::state::StateDir;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The record of the installed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    /// Image name (`custom.ota.name`).
    pub name: String,
    /// Installed version (`custom.ota.version`).
    pub version: String,
    /// Target path it came from.
    pub target: String,
    /// sha256 of the installed image.
    pub image_sha256: String,
    /// Length of the installed image.
    pub image_length: u64,
    /// Where it was installed.
    pub install_path: PathBuf,
    /// When (RFC 3339, UTC).
    pub installed_at: String,
}

impl Installed {
    /// The record of an image installed now at `install_path`.
    pub fn stamped(
        name: &str,
        version: &str,
        target: &str,
        image_sha256: &str,
        image_length: u64,
        install_path: &std::path::Path,
    ) -> Self {
        Installed {
            name: name.to_string(),
            version: version.to_string(),
            target: target.to_string(),
            image_sha256: image_sha256.to_string(),
            image_length,
            install_path: install_path.to_path_buf(),
            installed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// Load `STATE/installed.json`; `None` when nothing was installed yet.
    pub fn load(state: &StateDir) -> DeviceResult<Option<Self>> {
        let path = state.installed();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(state_io(path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DeviceError::BadState {
                path,
                reason: e.to_string(),
            })
    }

    /// Replace `STATE/installed.json` atomically.
    pub fn save(&self, state: &StateDir) -> DeviceResult<()> {
        super::state::write_json(state.installed(), self)
    }
}
