//! Errors of the data model.

/// Result with the data-model error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can be wrong with metadata, keys, signatures or hashes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not JSON of the expected shape.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed (e.g. "timestamp metadata").
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A value could not be written as canonical JSON (e.g. it contains a float).
    #[error("cannot encode canonical JSON: {0}")]
    Canonical(String),
    /// The `_type` field names another role than expected.
    #[error("wrong metadata type: expected {expected}, found {found}")]
    WrongType {
        /// The expected role type.
        expected: String,
        /// The type found in the metadata.
        found: String,
    },
    /// The specification version is not one we implement.
    #[error("unsupported spec_version {0:?} (this client implements 1.x)")]
    UnsupportedSpecVersion(String),
    /// A key is of a type or scheme we cannot verify, or its public part is unreadable.
    #[error("unsupported or invalid key {keyid}: {reason}")]
    BadKey {
        /// The key id as listed.
        keyid: String,
        /// Why the key is unusable.
        reason: String,
    },
    /// The same key id appears twice where each must be unique.
    #[error("key id {keyid} is listed twice in {place}")]
    DuplicateKeyId {
        /// The repeated key id.
        keyid: String,
        /// Where it was repeated ("signatures", "role root", ...).
        place: String,
    },
    /// Fewer valid signatures than the role's threshold.
    #[error("role {role}: {valid} valid signature(s), threshold is {threshold}")]
    ThresholdNotMet {
        /// Role whose signatures were checked.
        role: String,
        /// Number of distinct keys with a valid signature.
        valid: usize,
        /// Required number.
        threshold: u64,
    },
    /// A role is not defined where it must be (e.g. root without a `timestamp` role).
    #[error("role {0} is not defined")]
    MissingRole(String),
    /// A threshold of zero, a version of zero, or a similar impossible value.
    #[error("invalid value in {what}: {reason}")]
    Invalid {
        /// Where the value is.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// None of the listed hash algorithms is one we support.
    #[error("no supported hash algorithm among {0:?} (supported: sha256, sha512)")]
    NoSupportedHash(Vec<String>),
    /// A hash did not match.
    #[error("{algorithm} mismatch: expected {expected}, got {actual}")]
    HashMismatch {
        /// Algorithm name.
        algorithm: String,
        /// Hex digest expected.
        expected: String,
        /// Hex digest computed.
        actual: String,
    },
    /// The length did not match.
    #[error("length mismatch: expected {expected} bytes, got {actual}")]
    LengthMismatch {
        /// Expected length.
        expected: u64,
        /// Actual length.
        actual: u64,
    },
    /// A private key could not be loaded or used.
    #[error("signing key: {0}")]
    SigningKey(String),
}

impl Error {
    pub(crate) fn malformed(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
    pub(crate) fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}
