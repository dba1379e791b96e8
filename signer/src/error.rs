//! Errors of the signer, each with a hint for the user and an exit code of the CLI.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a write failed part-way (the repository still serves the previous release) |
//! | 2 | usage or bad input (arguments, firmware file, image name, version, hardware id, a target name taken by another image or version, recipients) |
//! | 3 | keys: missing, unreadable, not an Ed25519 PKCS#8 PEM key, not authorised for the role in root, or inside the repository |
//! | 4 | repository: missing, corrupt, already existing where a new one was asked, or locked by another run |
//! | 5 | version policy: the version is not newer than the published one, or that version is already published with another image; `publish --to`: the server refused a targets version not above its published one |
//! | 6 | `publish --to`: the server cannot be reached (connection, TLS, timeout) or gave an unexpected answer |
//! | 7 | `publish --to`: the server refused the publication: wrong or missing token, a release that does not verify (signatures, threshold, expiry, target files), or over its size limit |
//! | 10 | `status` only: a role expires within a quarter of its period, or has expired |
//!
//! With `--json`, a failure also prints `{"error": {"kind", "message", "hint", "exit_code"}}` on
//! stdout, `kind` being [`Error::kind`].
use ota_fs::user_file::UserFileError;
use ota_repo::RepoError;

/// Result with the signer error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, grouped by what the user must fix. Each variant carries the message and a
/// hint with the next step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or input files.
    #[error("{msg}")]
    Input {
        /// What is wrong.
        msg: String,
        /// What to do about it.
        hint: String,
    },
    /// Missing, unreadable or unauthorised keys.
    #[error("{msg}")]
    Keys {
        /// What is wrong.
        msg: String,
        /// What to do about it.
        hint: String,
    },
    /// Missing, corrupt or already existing repository.
    #[error("{msg}")]
    Repo {
        /// What is wrong.
        msg: String,
        /// What to do about it.
        hint: String,
    },
    /// A version that the policy refuses (e.g. a downgrade).
    #[error("{msg}")]
    Policy {
        /// What is wrong.
        msg: String,
        /// What to do about it.
        hint: String,
    },
    /// The server of `publish --to` cannot be reached or answered unexpectedly.
    #[error("{msg}")]
    Network {
        /// What failed.
        msg: String,
        /// What to do about it.
        hint: String,
    },
    /// The server of `publish --to` refused the publication (its reason in `msg`).
    #[error("{msg}")]
    Refused {
        /// The refusal, in the server's words.
        msg: String,
        /// What to do about it.
        hint: String,
    },
    /// An I/O failure while writing.
    #[error("{msg}")]
    Io {
        /// What failed.
        msg: String,
        /// What to do about it.
        hint: String,
    },
}

/// Exit code of the `status` command when a role needs re-signing soon (or has expired).
pub const EXIT_EXPIRING: u8 = 10;

impl Error {
    /// Bad input.
    pub fn input(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Input {
            msg: msg.into(),
            hint: hint.into(),
        }
    }
    /// Key problem.
    pub fn keys(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Keys {
            msg: msg.into(),
            hint: hint.into(),
        }
    }
    /// Repository problem.
    pub fn repo(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Repo {
            msg: msg.into(),
            hint: hint.into(),
        }
    }
    /// Version policy refusal.
    pub fn policy(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Policy {
            msg: msg.into(),
            hint: hint.into(),
        }
    }
    /// The server cannot be reached or answered unexpectedly.
    pub fn network(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Network {
            msg: msg.into(),
            hint: hint.into(),
        }
    }
    /// The server refused the publication.
    pub fn refused(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Refused {
            msg: msg.into(),
            hint: hint.into(),
        }
    }
    /// A failed write of `path`.
    pub fn write(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Error::Io {
            msg: format!("cannot write {}: {e}", path.display()),
            hint: "check free space and permissions; the repository still serves its previous state, so the command can be re-run".into(),
        }
    }

    /// A file the user named (or one of the repository's own files) that cannot be read:
    /// `what` names it in the message ("key file", "firmware"), `class` is the error class
    /// (and so the exit code), `hint` the next step when the file is missing or unreadable.
    pub fn user_file(
        what: &str,
        e: UserFileError,
        class: fn(String, String) -> Error,
        hint: &str,
    ) -> Self {
        let hint = match &e {
            UserFileError::NotRegular { .. } => format!(
                "{what} must be a regular file (or a link to one): a FIFO would block and a device may never end; {hint}"
            ),
            UserFileError::TooLarge { .. } => {
                format!("no real {what} is that large; check the path ({hint})")
            }
            _ => hint.to_string(),
        };
        class(format!("{what} {e}"), hint)
    }

    /// The stable, lower-case word for the error class in `--json` error output: `input`,
    /// `keys`, `repo`, `policy`, `io`, `network` or `refused`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Input { .. } => "input",
            Error::Keys { .. } => "keys",
            Error::Repo { .. } => "repo",
            Error::Policy { .. } => "policy",
            Error::Io { .. } => "io",
            Error::Network { .. } => "network",
            Error::Refused { .. } => "refused",
        }
    }

    /// The hint shown under the message.
    pub fn hint(&self) -> &str {
        match self {
            Error::Input { hint, .. }
            | Error::Keys { hint, .. }
            | Error::Repo { hint, .. }
            | Error::Policy { hint, .. }
            | Error::Io { hint, .. }
            | Error::Network { hint, .. }
            | Error::Refused { hint, .. } => hint,
        }
    }

    /// The documented exit code of the CLI for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Io { .. } => 1,
            Error::Input { .. } => 2,
            Error::Keys { .. } => 3,
            Error::Repo { .. } => 4,
            Error::Policy { .. } => 5,
            Error::Network { .. } => 6,
            Error::Refused { .. } => 7,
        }
    }
}

/// The hint for a repository that is corrupt.
const RESTORE: &str =
    "restore the repository directory from a backup (ota-sign never leaves a half-written one)";
/// The hint for missing keys.
const PASS_KEYS: &str = "pass the --keys directory that `ota-sign init` wrote for this repository";

/// The one place where the library's typed errors get the CLI's class (exit code), wording
/// and hint.
impl From<RepoError> for Error {
    fn from(e: RepoError) -> Self {
        let msg = e.to_string();
        match e {
            RepoError::NoRepository { dir } => Error::repo(
                msg,
                format!(
                    "create it with: ota-sign init --repo {} --keys KEYS_DIR",
                    dir.display()
                ),
            ),
            RepoError::NotARepository { dir } => Error::repo(
                format!(
                    "{} is not an ota-sign repository ({} is missing)",
                    dir.display(),
                    ota_repo::config::CONFIG_FILE
                ),
                format!(
                    "create one with: ota-sign init --repo {} --keys KEYS_DIR",
                    dir.display()
                ),
            ),
            RepoError::Unreadable { source, .. } => {
                Error::user_file("repository file", source, Error::repo, RESTORE)
            }
            RepoError::Corrupt { .. }
            | RepoError::BadSignatures { .. }
            | RepoError::RootCopyDiffers { .. }
            | RepoError::VersionMismatch { .. }
            | RepoError::LengthMismatch { .. }
            | RepoError::NotListed { .. }
            | RepoError::DirMissing { .. }
            | RepoError::TargetWithoutHash { .. }
            | RepoError::TargetFileLength { .. }
            | RepoError::TargetFileMissing { .. } => Error::repo(msg, RESTORE),
            RepoError::MetadataExists { .. } => Error::repo(
                msg,
                "no published metadata lists that file: remove it and run the command again",
            ),
            RepoError::RotationInterrupted { dir, .. } => Error::repo(
                msg,
                format!(
                    "finish it with: ota-sign rotate --repo {} --keys KEYS_DIR --resume (devices keep their firmware until then)",
                    dir.display()
                ),
            ),
            RepoError::TargetFileConflict { .. } => Error::repo(
                msg,
                "the targets directory is corrupt; remove that file (no metadata can reference it) and re-run",
            ),
            RepoError::StagedCorrupt { .. } => Error::repo(
                msg,
                "remove it to drop the staged targets, then add them again",
            ),
            RepoError::ConfigCorrupt { .. } => Error::repo(
                msg,
                format!(
                    "restore {} from your backup or version control",
                    ota_repo::config::CONFIG_FILE
                ),
            ),
            RepoError::ConfigFormat { found, supported } => Error::repo(
                format!(
                    "{} has format {found}, this ota-sign reads format {supported}",
                    ota_repo::config::CONFIG_FILE
                ),
                "use the ota-sign version that created the repository",
            ),
            RepoError::Locked { lock } => Error::repo(
                format!(
                    "another ota-sign is writing this repository ({} is locked)",
                    lock.display()
                ),
                "wait for it to finish (the lock is released when that process exits, however it exits)",
            ),
            RepoError::Write { path, source } => Error::write(&path, source),
            RepoError::ListDir { .. } => Error::repo(msg, RESTORE),
            RepoError::OfflineKeyOnline { .. } => Error::keys(
                msg,
                "keep root and targets keys on the release machine; give the server only the --online-keys directory",
            ),
            RepoError::Encode { .. } => Error::input(msg, "report this bug"),
            RepoError::BelowThreshold {
                ref role,
                threshold,
                found,
                ..
            } if threshold > 1 && found > 0 && matches!(role.as_str(), "targets" | "root") => {
                Error::keys(
                    msg,
                    format!(
                        "a threshold of {threshold} is signed by its key holders in a signing ceremony: `ota-sign request --repo REPO --role {role}` (with --expires to re-sign only), `ota-sign sign-request` by each holder, then `ota-sign combine`"
                    ),
                )
            }
            RepoError::KeyDirMissing { .. }
            | RepoError::BelowThreshold { .. }
            | RepoError::KeyMissing { .. } => Error::keys(msg, PASS_KEYS),
            RepoError::KeyUnreadable { source, .. } => {
                let hint = match source {
                    UserFileError::NotFound { .. } => PASS_KEYS,
                    _ => "check the file's owner and permissions (it should be yours, mode 600)",
                };
                Error::user_file("key file", source, Error::keys, hint)
            }
            RepoError::KeyInvalid { .. } => Error::keys(
                msg,
                "restore the key from your backup; ota-sign reads Ed25519 keys in PKCS#8 PEM, as `ota-sign init` and `openssl genpkey -algorithm ed25519` write them",
            ),
            RepoError::KeySource { source, .. } => crate::keys::key_source_error(msg, &source),
            RepoError::KeyId { .. } => Error::keys(msg, "restore the key from your backup"),
            RepoError::KeyEncode { .. } => Error::keys(msg, "report this bug; nothing was written"),
            RepoError::KeyNotAuthorised { role, .. } => Error::keys(
                msg,
                format!("root.json authorises other keys for {role}; pass the --keys directory made for this repository"),
            ),
            RepoError::Sign { .. } => Error::keys(
                msg,
                "check the key files of the role; nothing was written",
            ),
            RepoError::TargetNameTaken { .. } => Error::input(
                msg,
                "target names are NAME-VERSION and both may contain '-': choose an image name or version that gives another target name",
            ),
            RepoError::NotNewer { .. } => Error::policy(
                msg,
                "publish a higher version; to move devices back, withdraw the bad release (`ota-sign withdraw NAME@VERSION`) and sign the older one with --rollback-from VERSION",
            ),
            RepoError::VersionTaken { .. } => Error::policy(
                msg,
                "a published version is never replaced (devices could not tell the two apart): publish the new image under a new version",
            ),
            // Refusals of an upload (made by the server's library; listed for completeness).
            RepoError::UploadNotNewer { .. } => Error::policy(
                msg,
                "sign a new targets version above the published one, then publish again",
            ),
            RepoError::UploadTargetsCount { .. }
            | RepoError::UploadBadName { .. }
            | RepoError::UploadCorrupt { .. }
            | RepoError::UploadBelowThreshold { .. }
            | RepoError::UploadSignatures { .. }
            | RepoError::UploadExpired { .. }
            | RepoError::UploadNotDelegated { .. }
            | RepoError::UploadUnsafeTargetPath { .. }
            | RepoError::UploadPayloadMissing { .. }
            | RepoError::UploadPayloadMismatch { .. }
            | RepoError::UploadMetadataExists { .. } => Error::refused(
                msg,
                "nothing was published; fix the release on the release machine and publish again",
            ),
            RepoError::Rotate(e) => crate::cmd::rotate::error(msg, &e),
            RepoError::UploadRead { .. } => Error::repo(msg, "check the staging directory's disk"),
        }
    }
}
