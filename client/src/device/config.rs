//! The device configuration (`STATE/config.json`): which server, which hardware, which image.
use super::error::{state_io, DeviceError, DeviceResult};
use super::state::StateDir;
use crate::config::TransferSettings;
use crate::transport::{TlsSettings, TransportError};
use crate::UpdaterConfig;
use serde::{Deserialize, Serialize};

/// What `ota-client init` records about the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceConfig {
    /// Base URL of the repository (serving `metadata/` and `targets/`).
    pub server: String,
    /// This device's hardware id; only targets listing it are installed.
    pub hardware_id: String,
    /// Image name to follow, if restricted (else the installed image's name, else any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// Time bounds of downloads (slow retrieval protection); defaults when absent.
    #[serde(default, skip_serializing_if = "TransferSettings::is_default")]
    pub transfer: TransferSettings,
    /// Which HTTPS servers are trusted, the client certificate, proxy and TLS version;
    /// defaults (public roots) when absent. Relative paths are relative to the state
    /// directory.
    #[serde(default, skip_serializing_if = "TlsSettings::is_default")]
    pub tls: TlsSettings,
    /// A/B slot mode: the two slots and the boot environment; absent in single-file mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<SlotConfig>,
    /// Where status reports go; `SERVER/api/v1/reports` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_url: Option<String>,
    /// What to do with expired metadata: `"refuse"` (the default and only policy).
    #[serde(default, skip_serializing_if = "ExpiredMetadataPolicy::is_default")]
    pub expired_metadata: ExpiredMetadataPolicy,
}

/// What a device does with metadata that has expired at its verification time (the later of
/// its clock and its time floor, see [`crate::clock`]): `"expired_metadata"` in
/// `config.json`. There is one policy, `refuse`: nothing is installed from expired metadata
/// and the command fails (exit 4) saying which role expired when. Any other value is refused
/// when the configuration is loaded, so a typo or a wish to "ignore" expiry never turns
/// verification off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiredMetadataPolicy {
    /// Refuse the update (the TUF rule).
    #[default]
    Refuse,
}

impl ExpiredMetadataPolicy {
    /// Whether this is the default (then `config.json` need not mention it).
    pub fn is_default(&self) -> bool {
        *self == ExpiredMetadataPolicy::default()
    }
}

/// The A/B slots of a device and how its boot loader is told which one to boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotConfig {
    /// Slot `a`: a regular file or a block device (links such as
    /// `/dev/disk/by-partlabel/rootfs_a` are followed).
    pub a: std::path::PathBuf,
    /// Slot `b`.
    pub b: std::path::PathBuf,
    /// The boot environment (`uboot[:FW_ENV_CONFIG]`, `grub:ENVFILE`, `file:ENVFILE`).
    pub boot_control: crate::boot::BootSpec,
    /// Capacity of a regular-file slot in bytes (a block device has its own size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot_size: Option<u64>,
}

impl SlotConfig {
    /// The path of `slot`.
    pub fn path(&self, slot: crate::boot::Slot) -> &std::path::Path {
        match slot {
            crate::boot::Slot::A => &self.a,
            crate::boot::Slot::B => &self.b,
        }
    }

    /// Refuse a missing slot, and two names for one slot (the running system would be
    /// overwritten).
    pub fn validate(&self) -> DeviceResult<()> {
        for (name, path) in [("a", &self.a), ("b", &self.b)] {
            let meta = std::fs::metadata(path).map_err(|e| DeviceError::InvalidSetting {
                setting: "slots",
                reason: format!("slot {name} ({}): {e}", path.display()),
            })?;
            if meta.is_dir() {
                return Err(DeviceError::InvalidSetting {
                    setting: "slots",
                    reason: format!("slot {name} ({}) is a directory", path.display()),
                });
            }
        }
        if super::slot_installer::same_file(&self.a, &self.b) {
            return Err(DeviceError::InvalidSetting {
                setting: "slots",
                reason: format!(
                    "slot a ({}) and slot b ({}) are the same file or device",
                    self.a.display(),
                    self.b.display()
                ),
            });
        }
        Ok(())
    }
}

impl DeviceConfig {
    /// A validated configuration.
    pub fn new(server: &str, hardware_id: &str, image_name: Option<&str>) -> DeviceResult<Self> {
        let bad = |setting, reason: String| DeviceError::InvalidSetting { setting, reason };
        let url =
            url::Url::parse(server).map_err(|e| bad("server URL", format!("{server:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("server URL", format!("{server:?} is not http(s)")));
        }
        ota_formats::target_meta::validate_hardware_id(hardware_id)
            .map_err(|e| bad("hardware id", e.to_string()))?;
        if let Some(n) = image_name {
            ota_formats::target_meta::validate_name(n)
                .map_err(|e| bad("image name", e.to_string()))?;
        }
        Ok(DeviceConfig {
            server: server.trim_end_matches('/').to_string(),
            hardware_id: hardware_id.to_string(),
            image_name: image_name.map(str::to_string),
            transfer: TransferSettings::default(),
            tls: TlsSettings::default(),
            slots: None,
            report_url: None,
            expired_metadata: ExpiredMetadataPolicy::Refuse,
        })
    }

    /// Base URL of the metadata (`SERVER/metadata/`).
    pub fn metadata_url(&self) -> String {
        format!("{}/metadata/", self.server)
    }

    /// Where status reports are posted: `report_url`, else `SERVER/api/v1/reports` (the
    /// server's own report endpoint).
    pub fn report_url(&self) -> String {
        match &self.report_url {
            Some(u) => u.clone(),
            None => format!("{}/api/v1/reports", self.server),
        }
    }

    /// Base URL of the targets (`SERVER/targets/`).
    pub fn targets_url(&self) -> String {
        format!("{}/targets/", self.server)
    }

    /// Load `STATE/config.json`.
    pub fn load(state: &StateDir) -> DeviceResult<Self> {
        let path = state.config();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DeviceError::NotInitialized {
                    state: state.root().to_path_buf(),
                })
            }
            Err(e) => return Err(state_io(path, e)),
        };
        let cfg: DeviceConfig =
            serde_json::from_slice(&bytes).map_err(|e| DeviceError::BadState {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        // Re-validate: the file may have been edited by hand.
        let bad = |reason: String| DeviceError::BadState {
            path: path.clone(),
            reason,
        };
        cfg.transfer.validate().map_err(bad)?;
        // Values only; the files are read when a transport is built.
        cfg.tls.pin().map_err(|e| bad(e.to_string()))?;
        cfg.tls.proxy().map_err(|e| bad(e.to_string()))?;
        let checked = DeviceConfig::new(&cfg.server, &cfg.hardware_id, cfg.image_name.as_deref())
            .map_err(|e| bad(e.to_string()))?;
        Ok(DeviceConfig {
            transfer: cfg.transfer,
            tls: cfg.tls,
            slots: cfg.slots,
            report_url: cfg.report_url,
            expired_metadata: cfg.expired_metadata,
            ..checked
        })
    }

    /// Write `STATE/config.json` atomically.
    pub fn save(&self, state: &StateDir) -> DeviceResult<()> {
        super::state::write_json(state.config(), self)
    }

    /// The TLS settings with their files resolved against the state directory.
    pub fn tls_settings(&self, state: &StateDir) -> TlsSettings {
        self.tls.relative_to(state.root())
    }

    /// An updater configuration for this device's metadata directory and server. Unusable
    /// TLS files are [`DeviceError::Tls`].
    pub fn updater_config(&self, state: &StateDir) -> DeviceResult<UpdaterConfig> {
        UpdaterConfig::http_with_tls(
            state.metadata(),
            &self.metadata_url(),
            &self.targets_url(),
            &self.transfer,
            &self.tls_settings(state),
        )
        .map_err(|e| match e {
            TransportError::Settings(e) => DeviceError::Tls(e),
            other => DeviceError::BadState {
                path: state.config(),
                reason: other.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_validation() {
        let c = DeviceConfig::new("http://127.0.0.1:8080/repo/", "board-a", Some("fw")).unwrap();
        assert_eq!(c.metadata_url(), "http://127.0.0.1:8080/repo/metadata/");
        assert_eq!(c.targets_url(), "http://127.0.0.1:8080/repo/targets/");
        for (server, hw, name) in [
            ("ftp://x", "board-a", None),
            ("not a url", "board-a", None),
            ("http://x", "board/a", None),
            ("http://x", "board-a", Some("../fw")),
        ] {
            let err = DeviceConfig::new(server, hw, name).unwrap_err();
            assert!(matches!(err, DeviceError::InvalidSetting { .. }), "{err}");
            assert_eq!(err.category().exit_code(), 2);
        }
    }

    #[test]
    fn save_load_and_hand_edited_config() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert!(matches!(
            DeviceConfig::load(&state),
            Err(DeviceError::NotInitialized { .. })
        ));
        let c = DeviceConfig::new("https://u.example", "b", None).unwrap();
        c.save(&state).unwrap();
        assert_eq!(DeviceConfig::load(&state).unwrap(), c);
        std::fs::write(
            state.config(),
            br#"{"server": "https://u.example", "hardware_id": "a b"}"#,
        )
        .unwrap();
        assert!(matches!(
            DeviceConfig::load(&state),
            Err(DeviceError::BadState { .. })
        ));
    }

    #[test]
    fn expired_metadata_policy_is_refuse_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let c = DeviceConfig::new("https://u.example", "b", None).unwrap();
        c.save(&state).unwrap();
        assert!(!std::fs::read_to_string(state.config())
            .unwrap()
            .contains("expired_metadata"));
        assert_eq!(
            DeviceConfig::load(&state).unwrap().expired_metadata,
            ExpiredMetadataPolicy::Refuse
        );
        std::fs::write(
            state.config(),
            br#"{"server": "https://u.example", "hardware_id": "b", "expired_metadata": "refuse"}"#,
        )
        .unwrap();
        assert_eq!(
            DeviceConfig::load(&state).unwrap().expired_metadata,
            ExpiredMetadataPolicy::Refuse
        );
        for bad in ["ignore", "warn", "Refuse", ""] {
            std::fs::write(
                state.config(),
                format!(r#"{{"server": "https://u.example", "hardware_id": "b", "expired_metadata": "{bad}"}}"#),
            )
            .unwrap();
            let err = DeviceConfig::load(&state).unwrap_err();
            assert!(matches!(err, DeviceError::BadState { .. }), "{bad}: {err}");
            assert!(err.to_string().contains("refuse"), "{err}");
        }
    }

    #[test]
    fn transfer_settings_default_when_absent_and_load_when_given() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        // Written without "transfer": old files and new defaults look the same.
        let c = DeviceConfig::new("https://u.example", "b", None).unwrap();
        c.save(&state).unwrap();
        assert!(!std::fs::read_to_string(state.config())
            .unwrap()
            .contains("transfer"));
        let loaded = DeviceConfig::load(&state).unwrap();
        assert_eq!(loaded.transfer, TransferSettings::default());
        assert_eq!(loaded.transfer.metadata_deadline_secs, Some(30));
        std::fs::write(
            state.config(),
            br#"{"server": "https://u.example", "hardware_id": "b",
                "transfer": {"metadata_deadline_secs": 5, "target_deadline_secs": null,
                             "min_rate_bytes_per_sec": 100}}"#,
        )
        .unwrap();
        let t = DeviceConfig::load(&state).unwrap().transfer;
        assert_eq!(
            t.metadata_bounds().deadline,
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(t.target_bounds().deadline, None);
        assert_eq!(t.min_rate_bytes_per_sec, 100);
        assert_eq!(t.grace_secs, 10, "absent keys take their defaults");
        std::fs::write(
            state.config(),
            br#"{"server": "https://u.example", "hardware_id": "b",
                "transfer": {"metadata_deadline_secs": 0}}"#,
        )
        .unwrap();
        let err = DeviceConfig::load(&state).unwrap_err();
        assert!(err.to_string().contains("metadata_deadline_secs"), "{err}");
    }
}
