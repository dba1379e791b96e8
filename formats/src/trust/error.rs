//! Why the state machine refused metadata: one variant per refused attack or misuse, so callers
//! (and tests) can tell a rollback from an expired role from a bad signature.
use chrono::{DateTime, Utc};

/// Result with [`TrustError`].
pub type Result<T, E = TrustError> = std::result::Result<T, E>;

/// Why metadata was not accepted into the trusted set.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The bytes are not valid metadata of the expected role (bad JSON, wrong `_type`, ...).
    #[error("{role} metadata is invalid: {source}")]
    InvalidMetadata {
        /// Role being loaded.
        role: String,
        /// What the data model refused.
        #[source]
        source: crate::Error,
    },
    /// Not enough valid signatures from the keys the delegator trusts for the role.
    #[error("{role} metadata is not signed by its threshold of trusted keys: {source}")]
    SignatureThreshold {
        /// Role being verified.
        role: String,
        /// Details (how many valid, threshold, or a duplicate key id).
        #[source]
        source: crate::Error,
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
        source: crate::Error,
    },
    /// The caller used the state machine out of order (a bug in the caller).
    #[error("client workflow misuse: {0}")]
    Workflow(&'static str),
}

impl TrustError {
    pub(crate) fn expired(role: &str, expires: DateTime<Utc>) -> Self {
        TrustError::ExpiredMetadata {
            role: role.to_string(),
            expires,
        }
    }
}
