//! The device's state directory and the files in it.
use std::path::{Path, PathBuf};

/// Layout of a device state directory: `config.json`, `metadata/` (TUF cache), `downloads/`,
/// `installed.json`, `slots.json` (A/B mode), `lock`, `device.key`, `group-keys/`, and the TLS files `ca.pem`, `identity.key`,
/// `identity.csr`, `identity.pem`.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// The state directory at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.json`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `metadata/`: the trusted TUF metadata.
    pub fn metadata(&self) -> PathBuf {
        self.root.join("metadata")
    }

    /// `downloads/`: verified target files.
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// `installed.json`.
    pub fn installed(&self) -> PathBuf {
        self.root.join("installed.json")
    }

    /// `slots.json`: the A/B update state (slot mode only).
    pub fn slots(&self) -> PathBuf {
        self.root.join("slots.json")
    }

    /// `time-floor.json`: the newest time already seen (see [`crate::clock::TimeFloor`]).
    pub fn time_floor(&self) -> PathBuf {
        self.root.join("time-floor.json")
    }

    /// `lock`: locked (`flock`) by the running `ota-client`.
    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// `device.key`: the device's secret recipient key (0600).
    pub fn device_key(&self) -> PathBuf {
        self.root.join("device.key")
    }

    /// `group-keys/`: group secret keys imported with `ota-client keys import-group` (0700).
    pub fn group_keys(&self) -> PathBuf {
        self.root.join("group-keys")
    }

    /// `group-keys/NAME.key`: the secret key of group `name` (0600).
    pub fn group_key(&self, name: &str) -> PathBuf {
        self.group_keys().join(format!("{name}.key"))
    }

    /// `ca.pem`: the copy of the CA bundle the server must chain to (0644).
    pub fn ca_bundle(&self) -> PathBuf {
        self.root.join("ca.pem")
    }

    /// `identity.key`: the device's TLS client key, PKCS#8 PEM (0600); made on the device by
    /// `enroll` or copied in by `init`.
    pub fn identity_key(&self) -> PathBuf {
        self.root.join("identity.key")
    }

    /// `identity.csr`: the certificate signing request for `identity.key` (0644).
    pub fn identity_csr(&self) -> PathBuf {
        self.root.join("identity.csr")
    }

    /// `identity.pem`: the device's TLS client certificate (chain) for `identity.key` (0644).
    pub fn identity_cert(&self) -> PathBuf {
        self.root.join("identity.pem")
    }

    /// `path` made absolute (against the current directory), as recorded in `config.json`.
    pub fn absolute(&self, path: &Path) -> PathBuf {
        std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Write a small state file (`config.json`, `installed.json`) as pretty JSON, atomically.
pub(crate) fn write_json<T: serde::Serialize>(
    path: PathBuf,
    value: &T,
) -> super::error::DeviceResult<()> {
    let bad = |reason: String| super::error::DeviceError::BadState {
        path: path.clone(),
        reason,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| bad(e.to_string()))?;
    ota_fs::atomic::replace(&path, &bytes, ota_fs::mode::PUBLIC_FILE)
        .map_err(|e| bad(e.to_string()))
}
