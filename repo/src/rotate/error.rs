//! What can go wrong in a rotation. Like [`crate::RepoError`], each variant names the role,
//! key, file or root version concerned and gives no advice (front ends word their own).
use ota_fs::user_file::UserFileError;
use std::path::PathBuf;

/// A rotation refused before anything was written.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    /// Neither a top-level role nor one the top-level targets delegate to.
    #[error("{role:?} is not a role of this repository (top-level roles: root, targets, snapshot, timestamp; delegated roles: those the top-level targets delegate to)")]
    UnknownRole {
        /// The role given.
        role: String,
    },
    /// A request that only a top-level role can take (staging a new root) for a delegated
    /// role, whose keys are listed by the targets metadata that delegates to it, not by root.
    #[error("{role} is a delegated role: its keys are listed by the targets metadata that delegates to it, not by root, so no new root is staged for it")]
    DelegatedRole {
        /// The role given.
        role: String,
    },
    /// No key added or removed and the threshold unchanged.
    #[error("nothing to rotate for role {role}: no key added or removed, and the threshold stays {threshold}")]
    NothingToChange {
        /// The role.
        role: String,
        /// Its threshold.
        threshold: u64,
    },
    /// A key id (or prefix) to remove that is no key of the role.
    #[error(
        "{keyid} is not a key of role {role} (its keys: {})",
        short_list(listed)
    )]
    UnknownKeyId {
        /// The role.
        role: String,
        /// The id or prefix given.
        keyid: String,
        /// The role's key ids.
        listed: Vec<String>,
    },
    /// A key id prefix that matches several keys of the role.
    #[error("key id prefix {prefix} matches {count} keys of role {role}")]
    AmbiguousKeyId {
        /// The role.
        role: String,
        /// The prefix given.
        prefix: String,
        /// How many keys it matches.
        count: usize,
    },
    /// A key id to remove that belongs to another role.
    #[error("{keyid} is a key of role {other}, not of role {role}")]
    KeyOfOtherRole {
        /// The role being rotated.
        role: String,
        /// The key id.
        keyid: String,
        /// The role it belongs to.
        other: String,
    },
    /// A key to add that the role already lists.
    #[error("key {keyid} is already a key of role {role}")]
    KeyAlreadyListed {
        /// The role.
        role: String,
        /// The key id.
        keyid: String,
    },
    /// A key to add that another role lists.
    #[error("key {keyid} is already a key of role {other}")]
    KeyOfAnotherRole {
        /// The key id.
        keyid: String,
        /// The role that lists it.
        other: String,
    },
    /// Removing keys would leave the role without any.
    #[error(
        "removing {} would leave role {role} with no keys",
        short_list(removed)
    )]
    LastKey {
        /// The role.
        role: String,
        /// The key ids to remove.
        removed: Vec<String>,
    },
    /// A threshold of zero.
    #[error("a threshold of 0 would let role {role} be signed by no key at all")]
    ThresholdZero {
        /// The role.
        role: String,
    },
    /// A threshold above the number of keys the role would have.
    #[error("threshold {threshold} of role {role} is above its {keys} key(s) after the change")]
    ThresholdAboveKeys {
        /// The role.
        role: String,
        /// The threshold.
        threshold: u64,
        /// How many keys the role would have.
        keys: usize,
    },
    /// A public key file that cannot be read.
    #[error("public key file {source}")]
    PublicKeyUnreadable {
        /// The file.
        path: PathBuf,
        /// Why (names the file).
        source: UserFileError,
    },
    /// A public key file that does not parse as a usable public key.
    #[error("public key file {}: {reason}", path.display())]
    PublicKeyInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A "public key" file that holds a private key.
    #[error("{} holds a private key, not a public key", path.display())]
    PublicKeyIsPrivate {
        /// The file.
        path: PathBuf,
    },
    /// Fewer signing keys at hand than a threshold the rotation must meet.
    #[error("{signing} needs {threshold} signature(s) by {of_root}; {found} found in {}{}", dir.display(), missing_list(missing))]
    NotEnoughKeys {
        /// What is being signed (`root v4`, `targets`).
        signing: String,
        /// Whose keys must sign (`root keys of the current root v3`, `targets keys of the new
        /// root v4`).
        of_root: String,
        /// The threshold.
        threshold: u64,
        /// Usable keys found.
        found: usize,
        /// The key directory looked in.
        dir: PathBuf,
        /// Key files the policy lists that are absent.
        missing: Vec<String>,
    },
    /// A staged root waits already.
    #[error("a new root (version {version}) is already staged in {}", path.display())]
    StagedRootPending {
        /// The staged root file.
        path: PathBuf,
        /// Its version.
        version: u64,
    },
    /// A staged root file that does not parse.
    #[error("staged root {}: {reason}", path.display())]
    StagedRootCorrupt {
        /// The staged root file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A signed root that is not the repository's next root version.
    #[error("the signed root has version {version}; the next root of this repository is version {expected}")]
    RootVersion {
        /// Its version.
        version: u64,
        /// The next version.
        expected: u64,
    },
    /// A signed root that does not parse, or lacks the signatures a client requires.
    #[error("the new root does not verify against {by}: {source}")]
    RootNotSigned {
        /// `the current root v3` or `itself (root v4)`.
        by: String,
        /// What the verification found.
        source: ota_formats::Error,
    },
    /// An online-roles repository rotated without the online key directory.
    #[error("snapshot and timestamp keys of this repository are kept in an online key directory, and none was given")]
    NoOnlineKeyDir,
    /// A delegation refused ([`crate::delegation`]).
    #[error(transparent)]
    Delegation(#[from] crate::delegation::DelegationError),
}

fn short_list(ids: &[String]) -> String {
    let v: Vec<&str> = ids.iter().map(|k| crate::keys::short_id(k)).collect();
    v.join(", ")
}

fn missing_list(missing: &[String]) -> String {
    if missing.is_empty() {
        String::new()
    } else {
        format!(" (missing: {})", missing.join(", "))
    }
}
