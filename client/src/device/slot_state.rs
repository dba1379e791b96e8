//! The A/B update state (`STATE/slots.json`): which slot is committed, what each slot holds,
//! where an update stands, which versions failed to boot. Every change is one atomic write
//! through [`Storage`] (temp file, fsync, rename, directory fsync), so after any crash the
//! file is the old or the new record, and every command starts by reconciling it with the
//! boot variables ([`super::Device::reconcile`]).
use super::error::{DeviceError, DeviceResult};
use super::image::VerifiedImage;
use crate::boot::Slot;
use crate::storage::Storage;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Where an update stands. The order of a successful update is the order of the variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Nothing in progress.
    Idle,
    /// Fetching the release (full image or patch).
    Downloading,
    /// The download matched its signed hashes.
    Verified,
    /// Writing the inactive slot (its content is partial until the next phase).
    Writing,
    /// The slot was written, fsync'd, read back and matched the signed image.
    SlotVerified,
    /// The boot variables select the new slot for a trial boot; waiting for a reboot.
    PendingReboot,
    /// Running the new slot on trial; `mark-good` commits it, the boot loader's bootlimit
    /// rolls it back.
    Trial,
}

impl Phase {
    /// The phase as `status` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Downloading => "downloading",
            Phase::Verified => "verified",
            Phase::Writing => "writing",
            Phase::SlotVerified => "slot-verified",
            Phase::PendingReboot => "pending-reboot",
            Phase::Trial => "trial",
        }
    }
}

/// What a slot holds, as far as the device knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotHealth {
    /// The committed image: what the device falls back to.
    Committed,
    /// A new image on trial.
    Trial,
    /// A complete, verified image that is not the committed one.
    Written,
    /// An image that did not boot (the boot loader fell back).
    Failed,
    /// Nothing known: empty, partial, or written by something else.
    Unknown,
}

/// One slot's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    /// Image name (the image line), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Version of the image in it, when known.
    pub version: Option<String>,
    /// sha256 of that image, when known.
    pub sha256: Option<String>,
    /// Its length, when known.
    pub length: Option<u64>,
    /// Its health.
    pub state: SlotHealth,
}

impl SlotRecord {
    /// A slot about which nothing is known.
    pub fn unknown() -> Self {
        SlotRecord {
            name: None,
            version: None,
            sha256: None,
            length: None,
            state: SlotHealth::Unknown,
        }
    }

    /// A slot holding `image`.
    pub fn holding(image: &ReleaseRecord, state: SlotHealth) -> Self {
        SlotRecord {
            name: Some(image.name.clone()),
            version: Some(image.version.clone()),
            sha256: Some(image.sha256.clone()),
            length: Some(image.length),
            state,
        }
    }
}

/// The release an update is installing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Image name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Target path.
    pub target: String,
    /// Signed image sha256.
    pub sha256: String,
    /// Signed image length.
    pub length: u64,
    /// The slot it goes to.
    pub slot: Slot,
}

impl ReleaseRecord {
    /// The record of `image` going to `slot`.
    pub fn of(image: &VerifiedImage, slot: Slot) -> Self {
        ReleaseRecord {
            name: image.name().to_string(),
            version: image.version().to_string(),
            target: image.target().to_string(),
            sha256: image.sha256().to_string(),
            length: image.length(),
            slot,
        }
    }

    /// Whether this is the release of `image`.
    pub fn is(&self, image: &VerifiedImage) -> bool {
        self.target == image.target()
            && self.sha256 == image.sha256()
            && self.length == image.length()
    }
}

/// The slots of the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slots {
    /// Slot a.
    pub a: SlotRecord,
    /// Slot b.
    pub b: SlotRecord,
}

impl Slots {
    /// The record of `slot`.
    pub fn get(&self, slot: Slot) -> &SlotRecord {
        match slot {
            Slot::A => &self.a,
            Slot::B => &self.b,
        }
    }

    /// The record of `slot`, mutably.
    pub fn get_mut(&mut self, slot: Slot) -> &mut SlotRecord {
        match slot {
            Slot::A => &mut self.a,
            Slot::B => &mut self.b,
        }
    }
}

/// `STATE/slots.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotState {
    /// The committed slot: known good, what the boot loader falls back to.
    pub committed: Slot,
    /// What each slot holds.
    pub slots: Slots,
    /// Where the update stands.
    pub update_state: Phase,
    /// The release being installed (from `downloading` to `trial`).
    #[serde(default)]
    pub release: Option<ReleaseRecord>,
    /// Versions that failed to boot here; not offered again (a newer one is).
    #[serde(default)]
    pub failed_versions: Vec<String>,
    /// Why the last update attempt failed or was interrupted.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl SlotState {
    /// The state of a device just set up: `committed` runs an image of unknown version.
    pub fn new(committed: Slot) -> Self {
        let mut slots = Slots {
            a: SlotRecord::unknown(),
            b: SlotRecord::unknown(),
        };
        slots.get_mut(committed).state = SlotHealth::Committed;
        SlotState {
            committed,
            slots,
            update_state: Phase::Idle,
            release: None,
            failed_versions: Vec::new(),
            last_error: None,
        }
    }

    /// Load `path`; `None` when it does not exist.
    pub fn load(path: &Path) -> DeviceResult<Option<Self>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(super::error::state_io(path, e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DeviceError::BadState {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// Replace `path` atomically through `storage`.
    pub fn save(&self, path: &Path, storage: &dyn Storage) -> DeviceResult<()> {
        let bad = |reason: String| DeviceError::BadState {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| bad(e.to_string()))?;
        crate::crash_point::reached("state");
        storage
            .replace(path, &bytes, ota_fs::mode::PUBLIC_FILE)
            .map_err(|e| super::error::state_io(path, e))
    }

    /// The committed slot's image as an installed record (what updates must be newer
    /// than), when its name and version are known. `slots.json` is written in order with
    /// the boot variables, so this, not `installed.json`, is the anti-rollback floor.
    pub fn committed_image(&self, slot_path: &Path) -> Option<super::installed::Installed> {
        let r = self.slots.get(self.committed);
        Some(super::installed::Installed {
            name: r.name.clone()?,
            version: r.version.clone()?,
            target: String::new(),
            image_sha256: r.sha256.clone().unwrap_or_default(),
            image_length: r.length.unwrap_or_default(),
            install_path: slot_path.to_path_buf(),
            installed_at: String::new(),
        })
    }

    /// Move to `phase` (recording the release once one is chosen).
    pub fn enter(&mut self, phase: Phase) {
        self.update_state = phase;
        if phase == Phase::Idle {
            self.release = None;
        }
    }

    /// Record that `version` failed to boot.
    pub fn fail(&mut self, version: &str) {
        if !self.failed_versions.iter().any(|v| v == version) {
            self.failed_versions.push(version.to_string());
        }
    }
}
