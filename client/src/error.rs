//! Errors of the TUF client: one variant per refused attack or failure, so callers (and tests)
//! can tell a rollback from an expired role from a network outage.
use crate::transport::TransportError;
use chrono::{DateTime, Utc};
use ota_formats::trust::TrustError;
use std::path::PathBuf;

/// Result with the client error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a refresh or a download was refused. The refusals of the verification state machine
/// ([`TrustError`]) map one to one onto the variants of the same names.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not valid metadata of the expected role (bad JSON, wrong `_type`, ...).
    #[error("{role} metadata is invalid: {source}")]
    InvalidMetadata {
        /// Role being loaded.
        role: String,
        /// What the data model refused.
        #[source]
        source: ota_formats::Error,
    },
    /// Not enough valid signatures from the keys the delegator trusts for the role.
    #[error("{role} metadata is not signed by its threshold of trusted keys: {source}")]
    SignatureThreshold {
        /// Role being verified.
        role: String,
        /// Details (how many valid, threshold, or a duplicate key id).
        #[source]
        source: ota_formats::Error,
    },
    /// The metadata expired (freeze attack, or a stale repository).
    #[error("{role} metadata expired at {expires}")]
    ExpiredMetadata {
        /// Expired role.
        role: String,
        /// Its expiry time.
        expires: DateTime<Utc>,
    },
    /// A version went backwards (rollback attack).
    #[error("rollback of {role}: trusted version {trusted}, offered version {new}")]
    Rollback {
        /// Role (or meta file) whose version decreased.
        role: String,
        /// Version already trusted.
        trusted: u64,
        /// Version offered.
        new: u64,
    },
    /// A version is not the one required (root not +1, snapshot/targets not as listed).
    #[error("{role} has version {actual}, expected {expected}")]
    VersionMismatch {
        /// Role in question.
        role: String,
        /// Version required by the trusted metadata.
        expected: u64,
        /// Version received.
        actual: u64,
    },
    /// The offered timestamp has the same version as the trusted one (nothing new).
    #[error("timestamp version {version} is already trusted")]
    EqualVersion {
        /// The unchanged version.
        version: u64,
    },
    /// A new snapshot no longer lists a file the trusted snapshot listed.
    #[error("new snapshot drops {file}, which the trusted snapshot lists")]
    SnapshotEntryRemoved {
        /// The missing meta file name.
        file: String,
    },
    /// A targets role is not listed in the trusted snapshot (mix-and-match protection).
    #[error("{role} is not listed in the trusted snapshot")]
    NotInSnapshot {
        /// The unlisted role.
        role: String,
    },
    /// A role is loaded through a delegator that does not delegate to it.
    #[error("{delegator} does not delegate to {role}")]
    NotDelegated {
        /// The role.
        role: String,
        /// The claimed delegator.
        delegator: String,
    },
    /// Bytes did not match the length or hashes listed by trusted metadata.
    #[error("{what} does not match its trusted length and hashes: {source}")]
    HashMismatch {
        /// File or role checked.
        what: String,
        /// The mismatch.
        #[source]
        source: ota_formats::Error,
    },
    /// A download exceeded its length cap (endless data attack).
    #[error("{what} exceeds its length limit of {limit} bytes")]
    LengthExceeded {
        /// What was being downloaded.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// No trusted role lists the target path.
    #[error("target {path} is not listed by any trusted targets role")]
    TargetNotFound {
        /// The target path.
        path: String,
    },
    /// A remote file is missing or the network failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The trusted root stored on this device is unreadable or invalid: a local problem
    /// (damaged storage, a hand edit), not an attack by the repository.
    #[error("the trusted root {} stored on this device is unusable: {source}", path.display())]
    CorruptTrustedRoot {
        /// The stored root file.
        path: PathBuf,
        /// Why it does not load.
        #[source]
        source: Box<Error>,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The caller used the state machine out of order (a bug in the caller).
    #[error("client workflow misuse: {0}")]
    Workflow(&'static str),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<TrustError> for Error {
    fn from(e: TrustError) -> Self {
        use TrustError as T;
        match e {
            T::InvalidMetadata { role, source } => Error::InvalidMetadata { role, source },
            T::SignatureThreshold { role, source } => Error::SignatureThreshold { role, source },
            T::ExpiredMetadata { role, expires } => Error::ExpiredMetadata { role, expires },
            T::Rollback { role, trusted, new } => Error::Rollback { role, trusted, new },
            T::VersionMismatch {
                role,
                expected,
                actual,
            } => Error::VersionMismatch {
                role,
                expected,
                actual,
            },
            T::EqualVersion { version } => Error::EqualVersion { version },
            T::SnapshotEntryRemoved { file } => Error::SnapshotEntryRemoved { file },
            T::NotInSnapshot { role } => Error::NotInSnapshot { role },
            T::NotDelegated { role, delegator } => Error::NotDelegated { role, delegator },
            T::HashMismatch { what, source } => Error::HashMismatch { what, source },
            T::Workflow(what) => Error::Workflow(what),
        }
    }
}
