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
    /// Writing or replacing the install path failed.
    #[error("installing to {}: {source}", path.display())]
    InstallIo {
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
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
            | DeviceError::NoIdentityKey { .. } => Category::State,
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
            DeviceError::SlipFetch { .. } => Category::Network,
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

    /// One line telling the operator what to do.
    pub fn hint(&self) -> String {
        use crate::transport::TransportError;
        match self {
            DeviceError::NotInitialized { state } => format!(
                "run `ota-client init --state {} --root ROOT.json --server URL --hardware ID` first",
                state.display()
            ),
            DeviceError::AlreadyExists { .. } => {
                "pass --force to replace it (this discards the existing state)".into()
            }
            DeviceError::InvalidSetting { setting, .. } => format!(
                "pass a valid {setting} (see `ota-client init --help`)"
            ),
            DeviceError::BadState { path, .. } | DeviceError::StateIo { path, .. } => format!(
                "check {} (permissions, disk space, or re-run `ota-client init --force`)",
                path.display()
            ),
            DeviceError::NoDeviceKey { .. } => {
                "run `ota-client keygen --state DIR` and have the release encrypted to the printed public key, or import the group's key with `ota-client keys import-group`".into()
            }
            DeviceError::InvalidGroupKey { .. } => {
                "pass the one-line otasec1... file written by `ota-sign recipients group-create` (KEYS/group-NAME.otasec)".into()
            }
            DeviceError::Tls(_) => {
                "fix the TLS settings: the files named under \"tls\" in config.json must be PEM certificates and keys that belong together, the pin 64 hex digits, the proxy http://HOST:PORT".into()
            }
            DeviceError::Certificate(crate::pki::PkiError::KeyMismatch { .. }) => {
                "install the certificate issued for this device's own certificate signing request (identity.csr); a certificate made for another request or device cannot be used".into()
            }
            DeviceError::Certificate(crate::pki::PkiError::Expired { .. }) => {
                "have the CA issue a new certificate for the device's signing request (or check the device clock)".into()
            }
            DeviceError::Certificate(_) => {
                "pass the PEM certificate (BEGIN CERTIFICATE) the CA issued for this device".into()
            }
            DeviceError::NoIdentityKey { .. } => {
                "create the identity key and its signing request first, then have the CA sign that request".into()
            }
            DeviceError::Tuf(crate::Error::Transport(TransportError::Tls { cause, .. })) => {
                use crate::transport::TlsCause;
                match cause {
                    TlsCause::ServerNotTrusted => "the server is not one this device trusts: check the CA bundle or pinned key under \"tls\" in config.json against the server's certificate (and the device clock); nothing was changed",
                    TlsCause::ClientRefused => "the server requires a client certificate it accepts: install one issued by the fleet CA for this device's identity key; nothing was changed",
                    TlsCause::Other => "the TLS connection failed: check the minimum TLS version under \"tls\" in config.json and the server's TLS setup; nothing was changed",
                }
                .into()
            }
            DeviceError::Tuf(crate::Error::Transport(_)) | DeviceError::SlipFetch { .. } => {
                "check the server URL in config.json and that the server is reachable; nothing was changed".into()
            }
            DeviceError::Tuf(crate::Error::Io { path, .. }) => {
                format!("check {} (permissions, disk space)", path.display())
            }
            DeviceError::Tuf(crate::Error::CorruptTrustedRoot { .. }) => {
                "the device's own copy of the trusted root is damaged (storage or a hand edit), not an attack: re-provision it with `ota-client init --force --root ROOT.json` using the root you shipped".into()
            }
            DeviceError::Tuf(crate::Error::ExpiredMetadata { .. }) => {
                "check this device's clock first (`date -u`): a clock far in the future makes valid metadata look expired; if the clock is right, the repository was not re-signed in time: report it to the release owner. Nothing was installed".into()
            }
            DeviceError::InstallPathNotRegular { .. } => {
                "--install-to replaces a regular file; block devices and partitions need an A/B slot installer, and links or special files are refused so that they are never replaced".into()
            }
            DeviceError::AmbiguousImage { .. } => {
                "a device follows one image line: choose it with `ota-client init --force --name NAME` (or edit image_name in config.json)".into()
            }
            DeviceError::Decrypt {
                source: EnvelopeError::NoSlipForRecipient(_),
                ..
            } => "this device is not a recipient of the release: encrypt it to this device (`ota-client keys list` shows its key ids) or to a group whose key it holds".into(),
            DeviceError::InstallIo { path, .. } => format!(
                "check that {} is writable and has free space; the old image was left in place",
                path.display()
            ),
            _ => "the update was refused for security reasons and nothing was installed; report it to the release owner".into(),
        }
    }
}

pub(crate) fn state_io(path: impl Into<PathBuf>, source: std::io::Error) -> DeviceError {
    DeviceError::StateIo {
        path: path.into(),
        source,
    }
}
