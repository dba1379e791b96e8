//! What can go wrong in a signing ceremony: a request or signature file that is damaged, for
//! another request or by a key that may not sign; a request the repository has moved past;
//! too few signatures; an audit log that does not verify.
//!
//! Like [`RepoError`], each variant names the file, role or key concerned and gives no advice:
//! the front end (`ota-sign`) words the hint.
use crate::keys::short_id;
use crate::RepoError;
use ota_fs::user_file::UserFileError;
use std::path::PathBuf;

/// Result with [`CeremonyError`].
pub type Result<T, E = CeremonyError> = std::result::Result<T, E>;

/// How many valid signatures one threshold of a request has, of how many it needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ThresholdCount {
    /// Which keys: `targets`, `root v1 (current)`, `root v2 (new)`.
    pub name: String,
    /// Valid signatures by distinct keys of this set.
    pub valid: usize,
    /// Signatures needed.
    pub threshold: u64,
    /// Keys in the set.
    pub keys: usize,
    /// Key ids that signed validly.
    pub signed_by: Vec<String>,
}

impl ThresholdCount {
    /// Whether the threshold is reached.
    pub fn met(&self) -> bool {
        self.valid as u64 >= self.threshold
    }
}

impl std::fmt::Display for ThresholdCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} valid signature(s) of the {} needed ({} key(s) may sign)",
            self.name, self.valid, self.threshold, self.keys
        )
    }
}

fn counts(c: &[ThresholdCount]) -> String {
    c.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// An error of the signing ceremony.
#[derive(Debug, thiserror::Error)]
pub enum CeremonyError {
    /// The repository could not be read, locked or written.
    #[error(transparent)]
    Repo(Box<RepoError>),

    // --- Requests. ---
    /// Only targets and root are signed in ceremonies.
    #[error("role {role:?} cannot be signed in a ceremony (only targets and root can)")]
    UnsupportedRole {
        /// The role asked for.
        role: String,
    },
    /// Nothing differs from what is published, so there is nothing to sign.
    #[error("nothing to sign for {role}: {reason}")]
    NothingToSign {
        /// The role.
        role: String,
        /// Why.
        reason: String,
    },
    /// An expiry time that has already passed.
    #[error("expiry {expires} is not in the future")]
    ExpiryInPast {
        /// The expiry asked for.
        expires: chrono::DateTime<chrono::Utc>,
    },
    /// `ota-staged-root.json` that is not the next root.
    #[error("{}: {reason}", path.display())]
    StagedRootInvalid {
        /// The staged root file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A request file that is missing, not a regular file, too large or unreadable.
    #[error("request file {source}")]
    RequestUnreadable {
        /// The file.
        path: PathBuf,
        /// Why (names the file).
        source: UserFileError,
    },
    /// A request file that is not a signing request (not JSON, fields missing, a format this
    /// version does not read).
    #[error("{} is not a signing request ota-sign can read: {reason}", path.display())]
    RequestCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A request file whose content does not hash to its `request_sha256`.
    #[error("{} is damaged or was edited: its content hashes to {actual}, not to the request_sha256 {stated} it states", path.display())]
    RequestDamaged {
        /// The file.
        path: PathBuf,
        /// The hash the file states.
        stated: String,
        /// The hash of its content.
        actual: String,
    },
    /// A request file whose hash holds but whose parts disagree (the metadata and its
    /// hash, role or version, the summary and the change it describes).
    #[error("{} is inconsistent: {reason}", path.display())]
    RequestInconsistent {
        /// The file.
        path: PathBuf,
        /// What disagrees.
        reason: String,
    },
    /// A request or signature file that already exists where a new one is to be written.
    #[error("{} already exists (request and signature files are never overwritten)", path.display())]
    OutputExists {
        /// The file.
        path: PathBuf,
    },

    // --- Signing a request. ---
    /// A key that the request does not list among those that may sign it.
    #[error("key {} is not one of the keys that may sign {role} v{version} ({} key(s) may: {})", short_id(keyid), allowed.len(), allowed.iter().map(|k| short_id(k)).collect::<Vec<_>>().join(", "))]
    KeyNotAllowed {
        /// The role of the request.
        role: String,
        /// Its version.
        version: u64,
        /// The key's id.
        keyid: String,
        /// The key ids that may sign.
        allowed: Vec<String>,
    },
    /// A signer name that cannot go into the audit log (empty, too long, control characters).
    #[error("signer name {name:?} is not usable: {reason}")]
    SignerName {
        /// The name given.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// Signing failed, or the signature made does not verify with the key the request lists.
    #[error("cannot sign: {source}")]
    Sign {
        /// The failure.
        source: ota_formats::Error,
    },

    // --- Signature files. ---
    /// A signature file that is missing, not a regular file, too large or unreadable.
    #[error("signature file {source}")]
    SignatureUnreadable {
        /// The file.
        path: PathBuf,
        /// Why (names the file).
        source: UserFileError,
    },
    /// A signature file that does not parse (truncated, damaged, not a signature file).
    #[error("signature file {} is damaged or truncated: {reason}", path.display())]
    SignatureCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A signature file made for another request.
    #[error("signature file {} is for another request ({role} v{version}, request {}), not for this one (request {})", path.display(), short_id(request_sha256), short_id(expected))]
    SignatureForOtherRequest {
        /// The file.
        path: PathBuf,
        /// The role it says it signs.
        role: String,
        /// The version it says it signs.
        version: u64,
        /// The request it was made for.
        request_sha256: String,
        /// This request.
        expected: String,
    },
    /// A signature by a key that may not sign this request.
    #[error("signature file {} is signed by key {}, which may not sign {role} v{version}", path.display(), short_id(keyid))]
    SignatureKeyNotAllowed {
        /// The file.
        path: PathBuf,
        /// The key id it names.
        keyid: String,
        /// The request's role.
        role: String,
        /// The request's version.
        version: u64,
    },
    /// A signature that does not verify over the request's content: made over other bytes
    /// (or with another key than the one it names).
    #[error("signature file {}: the signature of key {} does not verify over this request's content ({reason})", path.display(), short_id(keyid))]
    SignatureInvalid {
        /// The file.
        path: PathBuf,
        /// The key id it names.
        keyid: String,
        /// Why.
        reason: String,
    },
    /// `combine` without any signature file.
    #[error("no signature files given")]
    NoSignatures,

    /// A request that does not match the root the signer trusts.
    #[error("{role} v{version} does not match the trusted root v{root_version}: {reason}")]
    UntrustedRequest {
        /// The role.
        role: String,
        /// The version requested.
        version: u64,
        /// The trusted root's version (0: the file is not a root).
        root_version: u64,
        /// What does not match.
        reason: String,
    },

    // --- Combining. ---
    /// The repository has moved on since the request was made.
    #[error("stale request: {role} v{version} was requested over {role} v{base_version} (root v{base_root_version}), the repository now has {role} v{current_version} (root v{current_root_version}){}", if detail.is_empty() { String::new() } else { format!("; {detail}") })]
    StaleRequest {
        /// The role.
        role: String,
        /// The version requested.
        version: u64,
        /// The version the request builds on.
        base_version: u64,
        /// The root version the request was made under.
        base_root_version: u64,
        /// The repository's version now.
        current_version: u64,
        /// The repository's root version now.
        current_root_version: u64,
        /// What else differs.
        detail: String,
    },
    /// A request whose metadata has expired: clients would refuse it.
    #[error("{role} v{version} of this request expired at {expires}: clients would refuse it")]
    RequestExpired {
        /// The role.
        role: String,
        /// The version.
        version: u64,
        /// Its expiry.
        expires: chrono::DateTime<chrono::Utc>,
    },
    /// Fewer valid signatures than a threshold of the request needs.
    #[error(
        "{role} v{version} is not signed enough to publish: {}{}",
        counts(thresholds),
        if duplicates.is_empty() { String::new() } else { format!("; not counted again: {}", duplicates.join(", ")) }
    )]
    BelowThreshold {
        /// The role.
        role: String,
        /// The version.
        version: u64,
        /// Each threshold's count.
        thresholds: Vec<ThresholdCount>,
        /// Signature files by keys already counted, described.
        duplicates: Vec<String>,
    },
    // --- The audit log. ---
    /// The audit log cannot be read or is not a regular file.
    #[error("audit log {source}")]
    AuditUnreadable {
        /// The log.
        path: PathBuf,
        /// Why (names the file).
        source: UserFileError,
    },
    /// The audit log's hash chain is broken (or the recorded head is not in it).
    #[error("audit log {} is broken at line {line}: {reason}", path.display())]
    AuditBroken {
        /// The log.
        path: PathBuf,
        /// The first line that does not verify (from 1).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Appending to the audit log failed.
    #[error("cannot append to the audit log {}: {source}", path.display())]
    AuditWrite {
        /// The log.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

impl From<RepoError> for CeremonyError {
    fn from(e: RepoError) -> Self {
        CeremonyError::Repo(Box::new(e))
    }
}

impl CeremonyError {
    /// Whether the error is about the audit log itself (so it is not recorded there).
    pub fn is_audit(&self) -> bool {
        matches!(
            self,
            CeremonyError::AuditUnreadable { .. }
                | CeremonyError::AuditBroken { .. }
                | CeremonyError::AuditWrite { .. }
        )
    }

    /// The key id an error is about, if any (recorded with a refusal).
    pub fn keyid(&self) -> Option<&str> {
        match self {
            CeremonyError::SignatureKeyNotAllowed { keyid, .. }
            | CeremonyError::SignatureInvalid { keyid, .. }
            | CeremonyError::KeyNotAllowed { keyid, .. } => Some(keyid),
            _ => None,
        }
    }
}
