//! Errors of the device workflow, each with a category (which maps to the CLI's exit code)
//! and a hint naming what to do about it.
use ota_formats::envelope::EnvelopeError;
use std::path::PathBuf;

/// Result with the device error.
pub type DeviceResult<T> = std::result::Result<T, DeviceError>;

/// Broad class of a failure; the CLI turns it into its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Usage, configuration or state directory problem (exit 2).
    State,
    /// Network or server unreachable (exit 3).
    Network,
    /// Verification refused: signatures, rollback, expiry, hashes, decryption (exit 4).
    Refused,
    /// Writing the installed image failed locally (exit 5).
    InstallIo,
}

impl Category {
    /// The documented exit code of the `ota-client` binary.
    pub fn exit_code(self) -> u8 {
        match self {
            Category::State => 2,
            Category::Network => 3,
            Category::Refused => 4,
            Category::InstallIo => 5,
        }
    }

    /// A stable lower-case word for the category, as in `--json` error objects:
    /// `state`, `network`, `refused`, `install_io`.
    pub fn kind(self) -> &'static str {
        match self {
            Category::State => "state",
            Category::Network => "network",
            Category::Refused => "refused",
            Category::InstallIo => "install_io",
        }
    }
}

/// Why a device command failed.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The state directory has no `config.json`.
    #[error("{} is not an initialised device state directory", state.display())]
    NotInitialized {
        /// The state directory.
        state: PathBuf,
    },
    /// `init` or `keygen` would overwrite existing state.
    #[error("{} already exists", path.display())]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// A configuration value given by the operator is invalid.
    #[error("invalid {setting}: {reason}")]
    InvalidSetting {
        /// Which setting (`server URL`, `hardware id`, `image name`).
        setting: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A configuration value or state file is invalid.
    #[error("{}: {reason}", path.display())]
    BadState {
        /// File or directory involved.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A state file could not be read or written.
    #[error("{}: {source}", path.display())]
    StateIo {
        /// File involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The target is encrypted and this device holds no key at all.
    #[error("target {target} is encrypted and this device holds no key ({} does not exist, no group keys imported)", key.display())]
    NoDeviceKey {
        /// The target.
        target: String,
        /// Where the key was expected.
        key: PathBuf,
    },
    /// A group secret key given to `keys import-group` is not usable.
    #[error("group key from {from}: {reason}")]
    InvalidGroupKey {
        /// Where the key text came from (a file, or `-` for stdin).
        from: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS settings are unusable: a CA bundle, client certificate or key file, the pin,
    /// or the proxy.
    #[error(transparent)]
    Tls(#[from] crate::transport::TlsError),
    /// A certificate given for the device identity is unusable: not a certificate, expired,
    /// or issued for another key.
    #[error(transparent)]
    Certificate(#[from] crate::pki::PkiError),
    /// A certificate was given but the device has no identity key to match it against.
    #[error("{} does not exist: the device has no identity key, so no certificate can be installed", path.display())]
    NoIdentityKey {
        /// Where the key was expected.
        path: PathBuf,
    },
    /// A status report needs the device's certificate (its identity for the service).
    #[error("{} does not exist: the device has no certificate to sign status reports with (enrol it first)", path.display())]
    NoIdentityCertificate {
        /// Where the certificate was expected.
        path: PathBuf,
    },
    /// The status report could not be made (an identity key of another kind than P-256).
    #[error("status report: {0}")]
    Report(#[from] ota_formats::report::ReportError),
    /// The service answered a status report with an error.
    #[error("the service at {url} refused the status report: HTTP {status}: {reason}")]
    ReportRefused {
        /// The report URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The service's reason.
        reason: String,
    },
    /// The TUF client refused or failed (metadata or target download).
    #[error(transparent)]
    Tuf(#[from] crate::Error),
    /// The target's signed `custom.ota` is present but malformed or unusable.
    #[error("target {target}: {reason}")]
    BadTargetMeta {
        /// The target.
        target: String,
        /// What is wrong.
        reason: String,
    },
    /// The per-device key slip could not be fetched (network).
    #[error("fetching the key slip of {target}: {source}")]
    SlipFetch {
        /// The target.
        target: String,
        /// The transport failure.
        #[source]
        source: crate::transport::TransportError,
    },
    /// Decryption refused (no slip for this device, wrong key, tampering, truncation, ...).
    #[error("decrypting {target}: {source}")]
    Decrypt {
        /// The target.
        target: String,
        /// What the envelope refused.
        #[source]
        source: EnvelopeError,
    },
    /// The (decrypted) payload is not a valid zstd stream within the window limit.
    #[error("decompressing {target}: {source}")]
    Decompress {
        /// The target.
        target: String,
        /// The decoder error.
        #[source]
        source: std::io::Error,
    },
    /// The final image does not match the signed `custom.ota.image` length or sha256.
    #[error("image of {target} does not match its signed length and sha256: {source}")]
    ImageMismatch {
        /// The target.
        target: String,
        /// The mismatch.
        #[source]
        source: ota_formats::Error,
    },
    /// A delta patch could not be applied (wrong base, corrupt patch, result mismatch).
    #[error("applying the patch {target}: {source}")]
    Patch {
        /// The patch target.
        target: String,
        /// What the applier refused.
        #[source]
        source: ota_formats::patch::PatchError,
    },
    /// `--install-to` names something other than a regular file (a device node, a link, a
    /// directory, a FIFO): the file installer never replaces those.
    #[error("{} is {kind}, not a regular file; refusing to install there", path.display())]
    InstallPathNotRegular {
        /// The install path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// No image name is configured or installed, and the repository offers several image
    /// lines for this hardware: the device cannot guess which one it runs.
    #[error("no image name is configured and the repository has several images for hardware {hardware_id}: {}", names.join(", "))]
    AmbiguousImage {
        /// This device's hardware id.
        hardware_id: String,
        /// The image names offered for it.
        names: Vec<String>,
    },
    /// An A/B slot cannot take the image: missing, not a file or block device, the running
    /// slot, too small, or not writable. Found before anything is written.
    #[error("slot {}: {reason}", slot.display())]
    SlotUnusable {
        /// The slot.
        slot: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The slot, read back after the write and fsync, does not hold the signed image.
    #[error("slot {} does not hold what was written: expected {expected}, read {actual}", slot.display())]
    SlotReadBack {
        /// The slot.
        slot: PathBuf,
        /// The signed image.
        expected: String,
        /// What was read.
        actual: String,
    },
    /// The boot environment could not be read or written.
    #[error(transparent)]
    Boot(#[from] crate::boot::BootError),
    /// Another process holds the state directory's lock.
    #[error("another ota-client is running on this state directory (it holds {})", lock.display())]
    Busy {
        /// The lock file.
        lock: PathBuf,
    },
    /// The install hook failed.
    #[error("install hook {} {stage}: {reason}", command.display())]
    Hook {
        /// The hook.
        command: PathBuf,
        /// `check`, `write`, `commit` or `abort`.
        stage: &'static str,
        /// What happened.
        reason: String,
    },
    /// An A/B command on a device set up for single-file installs (or the reverse).
    #[error("{}: {what}", state.display())]
    NotSlotMode {
        /// The state directory.
        state: PathBuf,
        /// What was asked of it.
        what: String,
    },
    /// Writing or replacing the install path failed.
    #[error("installing to {}: {source}", path.display())]
    InstallIo {
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The time floor (`time-floor.json`) cannot be read or written.
    #[error(transparent)]
    TimeFloor(#[from] crate::clock::TimeFloorError),
    /// Verification refused the metadata on a device whose clock is clearly wrong (more than
    /// a day behind the time floor, or before 2020): the refusal stands, and says so.
    #[error("{source}; {clock}")]
    ClockWrong {
        /// What the clock check found (see [`crate::clock::ClockCheck::message`]).
        clock: String,
        /// The refusal.
        #[source]
        source: Box<DeviceError>,
    },
    /// The directory given to install from (removable media) holds no repository copy.
    #[error("{}: {reason}", dir.display())]
    NoRepositoryCopy {
        /// The directory.
        dir: PathBuf,
        /// What is missing.
        reason: String,
    },
}

impl DeviceError {
    /// The failure's category (and so the CLI exit code).
    pub fn category(&self) -> Category {
        use crate::transport::TransportError;
        match self {
            DeviceError::NotInitialized { .. }
            | DeviceError::AlreadyExists { .. }
            | DeviceError::InvalidSetting { .. }
            | DeviceError::BadState { .. }
            | DeviceError::StateIo { .. }
            | DeviceError::InvalidGroupKey { .. }
            | DeviceError::InstallPathNotRegular { .. }
            | DeviceError::AmbiguousImage { .. }
            | DeviceError::NoDeviceKey { .. }
            | DeviceError::Tls(_)
            | DeviceError::Certificate(_)
            | DeviceError::NoIdentityKey { .. }
            | DeviceError::NoIdentityCertificate { .. }
            | DeviceError::Report(_)
            | DeviceError::SlotUnusable { .. }
            | DeviceError::Boot(_)
            | DeviceError::Busy { .. }
            | DeviceError::TimeFloor(_)
            | DeviceError::NoRepositoryCopy { .. }
            | DeviceError::NotSlotMode { .. } => Category::State,
            DeviceError::ClockWrong { source, .. } => source.category(),
            DeviceError::SlotReadBack { .. } | DeviceError::Hook { .. } => Category::InstallIo,
            DeviceError::Tuf(e) => match e {
                crate::Error::Transport(TransportError::TooLarge { .. }) => Category::Refused,
                // Settings are checked when the device is opened; kept for completeness.
                crate::Error::Transport(TransportError::Settings(_)) => Category::State,
                // Unreachable, or a server that lacks files its own metadata lists.
                crate::Error::Transport(_) => Category::Network,
                crate::Error::Io { .. } => Category::InstallIo,
                crate::Error::Workflow(_) | crate::Error::CorruptTrustedRoot { .. } => {
                    Category::State
                }
                _ => Category::Refused,
            },
            DeviceError::SlipFetch { .. } | DeviceError::ReportRefused { .. } => Category::Network,
            DeviceError::Decrypt {
                source: EnvelopeError::Io(_),
                ..
            } => Category::InstallIo,
            DeviceError::BadTargetMeta { .. }
            | DeviceError::Decrypt { .. }
            | DeviceError::Decompress { .. }
            | DeviceError::ImageMismatch { .. } => Category::Refused,
            DeviceError::Patch {
                source: ota_formats::patch::PatchError::Io(_),
                ..
            } => Category::InstallIo,
            DeviceError::Patch { .. } => Category::Refused,
            DeviceError::InstallIo { .. } => Category::InstallIo,
        }
    }
}

pub(crate) fn state_io(path: impl Into<PathBuf>, source: std::io::Error) -> DeviceError {
    DeviceError::StateIo {
        path: path.into(),
        source,
    }
}
